/* copy_probe.cu — experiment (not part of the build): which part of a
 * converting load makes its host-to-device copies slower?  T host threads,
 * each with its own stream and two pinned 4 MiB slots (as the upload engine),
 * copy CHUNKS chunks in all; the mode picks the destination and what follows
 * each copy on the stream:
 *   plain        copy into an advancing arena (a plain load)
 *   scratch      copy into the thread's fixed scratch slot, nothing after
 *   scratch_cvt  copy into scratch, then f32->bf16 kernel scratch -> arena (a converting load)
 *   scratch_nop  copy into scratch, then an empty kernel
 *   plain_nop    copy into the arena, then an empty kernel
 *   plain_cvt    copy into the arena (f32), then convert that chunk into a bf16 region
 *   other_cvt    copy into the arena, then convert an unrelated buffer
 *   ring_cvt     copy into a 16-slot-per-thread scratch ring, convert to arena
 *   scratch_cvt_s2 copy into scratch, convert on a second stream (event handoff,
 *                two scratch slots per thread)
 *   split_host   one scratch slot per thread; convert on a second stream that
 *                waits for the copy; the HOST waits for the conversion before
 *                the next copy into the slot (the copy stream: copies only)
 *   split_host2  the same with two scratch slots per thread
 *   split_nop    split_host with an empty kernel
 *   plain_wait   plain, each copy after a wait on an event that completed long ago
 *   indep_nop    plain, and another thread launches one empty kernel per copy
 *                issued, on its own stream, with no dependency on the copies
 *   plain_memop  plain, and a cuStreamWriteValue32 after each copy
 *   persist      one persistent conversion kernel (PB blocks per reader, env,
 *                default 4) polls a per-reader flag that the copy stream sets
 *                with cuStreamWriteValue32 after the copy, converts the chunk
 *                and writes a done count into mapped host memory that the
 *                reader polls before it copies into its scratch slot again
 *   lazy_host    two scratch slots per reader; the copy stream holds only
 *                copies; when the reader has waited for slot k's copy (to
 *                refill the pinned slot) it launches the conversion of the
 *                chunk in scratch slot k on a second stream (no device-side
 *                wait: the copy is known done) and waits on the host for it
 *   lazy_dev     the same, but the copy stream waits for that conversion on
 *                the device instead of the host
 * Modes are interleaved in rounds; each run is timed with events around the
 * whole run after a device synchronize.  Prints GB/s per run and medians. */
#include <cuda_bf16.h>
#include <cuda.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <atomic>
#include <vector>

#define CK(x)                                                                         \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) {                                                          \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

static const size_t CHUNK = 4u << 20;

__global__ void cvt_f32_bf16(const float4 *__restrict__ src, uint2 *__restrict__ dst, size_t n4) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
       i += (size_t)gridDim.x * blockDim.x) {
    float4 v = src[i];
    __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    uint2 o;
    memcpy(&o.x, &a, 4);
    memcpy(&o.y, &b, 4);
    __stcs(dst + i, o);
  }
}
__global__ void nop_kernel() {}

#define STOP 0xffffffffu
/* Block b serves reader b / pb, converting part b % pb of each chunk. */
__global__ void persist_kernel(volatile unsigned *ready, volatile unsigned *done, unsigned *count,
                               volatile unsigned long long *desc, const char *scratch, char *out,
                               int pb) {
  __shared__ unsigned seq_s;
  __shared__ unsigned long long idx_s;
  int g = blockIdx.x / pb, part = blockIdx.x % pb;
  unsigned last = 0;
  size_t n4 = CHUNK / 16, per = (n4 + pb - 1) / pb;
  const float4 *src = (const float4 *)(scratch + (size_t)g * 16 * CHUNK);
  for (;;) {
    if (threadIdx.x == 0) {
      unsigned v;
      while ((v = ready[g]) == last) __nanosleep(200);
      seq_s = v;
      idx_s = desc[g];
    }
    __syncthreads();
    unsigned v = seq_s;
    if (v == STOP) return;
    uint2 *o = (uint2 *)(out + idx_s * (CHUNK / 2));
    size_t lo = part * per, hi = lo + per < n4 ? lo + per : n4;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
      float4 x = src[i];
      __nv_bfloat162 a = __floats2bfloat162_rn(x.x, x.y), b = __floats2bfloat162_rn(x.z, x.w);
      uint2 r;
      memcpy(&r.x, &a, 4);
      memcpy(&r.y, &b, 4);
      __stcs(o + i, r);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      unsigned old = atomicAdd(&count[g], 1);
      if ((old + 1) % pb == 0) {
        __threadfence_system();
        done[g] = v;
      }
    }
    last = v;
  }
}

enum Mode { PLAIN, SCRATCH, SCRATCH_CVT, SCRATCH_NOP, PLAIN_NOP, PLAIN_CVT, OTHER_CVT, RING_CVT, SCRATCH_CVT_S2,
            SPLIT_HOST, SPLIT_HOST2, SPLIT_NOP, PLAIN_WAIT, INDEP_NOP, PLAIN_MEMOP, PERSIST, LAZY_HOST, LAZY_DEV, NMODES };
static const char *mode_names[] = {"plain", "scratch", "scratch_cvt", "scratch_nop", "plain_nop",
                                   "plain_cvt", "other_cvt", "ring_cvt", "scratch_cvt_s2",
                                   "split_host", "split_host2", "split_nop", "plain_wait",
                                   "indep_nop", "plain_memop", "persist", "lazy_host", "lazy_dev"};

struct Shared {
  Mode mode;
  size_t chunks;
  std::atomic<size_t> next;
  char *arena;     /* chunks * CHUNK bytes (f32 destinations) */
  char *out;       /* chunks * CHUNK / 2 bytes (bf16 destinations) */
  char *scratch;   /* T * 16 * CHUNK */
  char *other;     /* T * CHUNK */
  int sms;
  int fill;        /* CPU-refill the pinned slot from host memory before each copy */
  char *host_src;  /* 64 MiB of random host bytes for refills */
  std::atomic<size_t> issued;
  unsigned *ready;                 /* device: per-reader sequence set after a copy */
  unsigned *count;                 /* device: finished blocks per reader */
  volatile unsigned *done_h;       /* mapped host: per-reader converted sequence */
  unsigned *done_d;
  volatile unsigned long long *desc_h; /* mapped host: chunk index per reader */
  unsigned long long *desc_d;
};

struct Worker {
  Shared *sh;
  int id;
  cudaStream_t s, s2;
  char *slot[2];
  cudaEvent_t ev[2], cv[2], idle_ev;
  int pending[2], cpending[2];
  unsigned seq;
  long long held[2];
  pthread_t th;
};

static void *worker_main(void *arg) {
  Worker *w = (Worker *)arg;
  Shared *sh = w->sh;
  unsigned k = 0, r = 0;
  size_t n4 = CHUNK / 16;
  int grid = sh->sms * 4;
  for (;;) {
    size_t i = sh->next.fetch_add(1);
    if (i >= sh->chunks) break;
    if (w->pending[k]) { CK(cudaEventSynchronize(w->ev[k])); w->pending[k] = 0; }
    if ((sh->mode == LAZY_HOST || sh->mode == LAZY_DEV) && w->held[k] >= 0) {
      char *sk = sh->scratch + ((size_t)w->id * 16 + k) * CHUNK;
      cvt_f32_bf16<<<grid, 256, 0, w->s2>>>((const float4 *)sk, (uint2 *)(sh->out + w->held[k] * (CHUNK / 2)), n4);
      CK(cudaEventRecord(w->cv[k], w->s2));
      if (sh->mode == LAZY_HOST) CK(cudaEventSynchronize(w->cv[k]));
      else CK(cudaStreamWaitEvent(w->s, w->cv[k], 0));
      w->held[k] = -1;
    }
    if (sh->fill) memcpy(w->slot[k], sh->host_src + (i % 16) * CHUNK, CHUNK);
    char *scr = sh->scratch + (size_t)w->id * 16 * CHUNK;
    char *dst = sh->arena + i * CHUNK;
    switch (sh->mode) {
      case SCRATCH: case SCRATCH_CVT: case SCRATCH_NOP: dst = scr; break;
      case RING_CVT: dst = scr + (r % 16) * CHUNK; r++; break;
      case SCRATCH_CVT_S2: case SPLIT_HOST2: dst = scr + k * CHUNK; break;
      case LAZY_HOST: case LAZY_DEV: dst = scr + k * CHUNK; w->held[k] = (long long)i; break;
      case SPLIT_HOST: case SPLIT_NOP: dst = scr; break;
      default: break;
    }
    /* split modes: the host waits for the conversion that last read this
     * scratch slot, so the copy stream holds nothing but copies */
    if ((sh->mode == SPLIT_HOST || sh->mode == SPLIT_NOP) && w->cpending[0]) {
      CK(cudaEventSynchronize(w->cv[0]));
      w->cpending[0] = 0;
    }
    if (sh->mode == SPLIT_HOST2 && w->cpending[k]) {
      CK(cudaEventSynchronize(w->cv[k]));
      w->cpending[k] = 0;
    }
    if (sh->mode == PLAIN_WAIT) CK(cudaStreamWaitEvent(w->s, w->idle_ev, 0));
    if (sh->mode == PERSIST) {
      dst = scr;
      while (sh->done_h[w->id] != w->seq) __builtin_ia32_pause();
      sh->desc_h[w->id] = i;
    }
    if (sh->mode == SCRATCH_CVT_S2 && w->cpending[k]) {
      CK(cudaStreamWaitEvent(w->s, w->cv[k], 0));
      w->cpending[k] = 0;
    }
    CK(cudaMemcpyAsync(dst, w->slot[k], CHUNK, cudaMemcpyHostToDevice, w->s));
    CK(cudaEventRecord(w->ev[k], w->s));
    w->pending[k] = 1;
    uint2 *o = (uint2 *)(sh->out + i * (CHUNK / 2));
    switch (sh->mode) {
      case SCRATCH_CVT: case PLAIN_CVT: case RING_CVT:
        cvt_f32_bf16<<<grid, 256, 0, w->s>>>((const float4 *)dst, o, n4); break;
      case OTHER_CVT:
        cvt_f32_bf16<<<grid, 256, 0, w->s>>>((const float4 *)(sh->other + (size_t)w->id * CHUNK), o, n4); break;
      case SCRATCH_NOP: case PLAIN_NOP: nop_kernel<<<1, 32, 0, w->s>>>(); break;
      case PLAIN_MEMOP:
        if (cuStreamWriteValue32((CUstream)w->s, (CUdeviceptr)(sh->count + w->id), (cuuint32_t)i, 0) != CUDA_SUCCESS) { fprintf(stderr, "memop\n"); exit(1); }
        break;
      case PERSIST:
        w->seq++;
        if (cuStreamWriteValue32((CUstream)w->s, (CUdeviceptr)(sh->ready + w->id), w->seq, 0) != CUDA_SUCCESS) { fprintf(stderr, "memop\n"); exit(1); }
        break;
      case INDEP_NOP: sh->issued.fetch_add(1); break;
      case SCRATCH_CVT_S2:
        CK(cudaStreamWaitEvent(w->s2, w->ev[k], 0));
        cvt_f32_bf16<<<grid, 256, 0, w->s2>>>((const float4 *)dst, o, n4);
        CK(cudaEventRecord(w->cv[k], w->s2));
        w->cpending[k] = 1;
        break;
      case SPLIT_HOST: case SPLIT_NOP: case SPLIT_HOST2: {
        unsigned c = sh->mode == SPLIT_HOST2 ? k : 0;
        CK(cudaStreamWaitEvent(w->s2, w->ev[k], 0));
        if (sh->mode == SPLIT_NOP) nop_kernel<<<1, 32, 0, w->s2>>>();
        else cvt_f32_bf16<<<grid, 256, 0, w->s2>>>((const float4 *)dst, o, n4);
        CK(cudaEventRecord(w->cv[c], w->s2));
        w->cpending[c] = 1;
        break;
      }
      default: break;
    }
    CK(cudaGetLastError());
    k ^= 1;
  }
  if (sh->mode == PERSIST) while (sh->done_h[w->id] != w->seq) __builtin_ia32_pause();
  for (unsigned j = 0; j < 2; j++, k ^= 1)
    if (w->held[k] >= 0) {
      if (w->pending[k]) CK(cudaEventSynchronize(w->ev[k]));
      char *sk = sh->scratch + ((size_t)w->id * 16 + k) * CHUNK;
      cvt_f32_bf16<<<grid, 256, 0, w->s2>>>((const float4 *)sk, (uint2 *)(sh->out + w->held[k] * (CHUNK / 2)), n4);
      w->held[k] = -1;
    }
  CK(cudaStreamSynchronize(w->s));
  CK(cudaStreamSynchronize(w->s2));
  w->pending[0] = w->pending[1] = 0;
  w->cpending[0] = w->cpending[1] = 0;
  return NULL;
}

static void *nop_launcher(void *arg) {
  Shared *sh = (Shared *)arg;
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  size_t launched = 0;
  while (launched < sh->chunks) {
    if (sh->issued.load() > launched) { nop_kernel<<<1, 32, 0, s>>>(); launched++; }
    else __builtin_ia32_pause();
  }
  CK(cudaStreamSynchronize(s));
  CK(cudaStreamDestroy(s));
  return NULL;
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 12;
  size_t chunks = argc > 2 ? (size_t)atoll(argv[2]) : 1024;
  int rounds = argc > 3 ? atoi(argv[3]) : 7;
  int fill = argc > 4 ? atoi(argv[4]) : 0;
  const char *only = argc > 5 ? argv[5] : NULL; /* comma list of modes */
  CK(cudaSetDevice(0));
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  printf("device %s, %d SMs, L2 %d MiB; threads %d, chunks %zu x 4 MiB, rounds %d, fill %d\n",
         p.name, p.multiProcessorCount, p.l2CacheSize >> 20, threads, chunks, rounds, fill);
  Shared sh;
  sh.chunks = chunks;
  sh.sms = p.multiProcessorCount;
  sh.fill = fill;
  CK(cudaMalloc(&sh.arena, chunks * CHUNK));
  CK(cudaMalloc(&sh.out, chunks * CHUNK / 2));
  CK(cudaMalloc(&sh.scratch, (size_t)threads * 16 * CHUNK));
  CK(cudaMalloc(&sh.other, (size_t)threads * CHUNK));
  CK(cudaMemset(sh.other, 0x3c, (size_t)threads * CHUNK));
  CK(cudaMalloc(&sh.ready, threads * sizeof(unsigned)));
  CK(cudaMalloc(&sh.count, threads * sizeof(unsigned)));
  CK(cudaHostAlloc((void **)&sh.done_h, threads * sizeof(unsigned), cudaHostAllocMapped));
  CK(cudaHostGetDevicePointer((void **)&sh.done_d, (void *)sh.done_h, 0));
  CK(cudaHostAlloc((void **)&sh.desc_h, threads * 8, cudaHostAllocMapped));
  CK(cudaHostGetDevicePointer((void **)&sh.desc_d, (void *)sh.desc_h, 0));
  int pb = getenv("PB") ? atoi(getenv("PB")) : 4;
  cudaStream_t ks;
  CK(cudaStreamCreateWithFlags(&ks, cudaStreamNonBlocking));
  sh.host_src = (char *)malloc(16 * CHUNK);
  srand(1);
  for (size_t i = 0; i < 16 * CHUNK; i++) sh.host_src[i] = (char)(rand() >> 7);
  std::vector<Worker> ws(threads);
  for (int t = 0; t < threads; t++) {
    Worker &w = ws[t];
    memset(&w, 0, sizeof w);
    w.sh = &sh;
    w.held[0] = w.held[1] = -1;
    w.id = t;
    CK(cudaStreamCreateWithFlags(&w.s, cudaStreamNonBlocking));
    CK(cudaStreamCreateWithFlags(&w.s2, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&w.idle_ev, cudaEventDisableTiming));
    CK(cudaEventRecord(w.idle_ev, w.s2));
    for (int k = 0; k < 2; k++) {
      CK(cudaHostAlloc((void **)&w.slot[k], CHUNK, cudaHostAllocPortable));
      memcpy(w.slot[k], sh.host_src + (size_t)(t * 2 + k) % 16 * CHUNK, CHUNK);
      CK(cudaEventCreateWithFlags(&w.ev[k], cudaEventDisableTiming));
      CK(cudaEventCreateWithFlags(&w.cv[k], cudaEventDisableTiming));
    }
  }
  cudaEvent_t t0, t1;
  CK(cudaEventCreate(&t0));
  CK(cudaEventCreate(&t1));
  std::vector<int> modes;
  for (int m = 0; m < NMODES; m++)
    if (!only || strstr(only, mode_names[m])) {
      /* exact token match */
      const char *q = only ? only : "";
      bool ok = !only;
      while (only && *q) {
        const char *c = strchr(q, ',');
        size_t len = c ? (size_t)(c - q) : strlen(q);
        if (len == strlen(mode_names[m]) && !strncmp(q, mode_names[m], len)) ok = true;
        q = c ? c + 1 : q + len;
      }
      if (ok) modes.push_back(m);
    }
  std::vector<std::vector<double>> gbps(NMODES);
  for (int r = -1; r < rounds; r++) { /* round -1 warms up */
    for (size_t mi = 0; mi < modes.size(); mi++) {
      int m = modes[(mi + (r < 0 ? 0 : r)) % modes.size()]; /* rotate the order each round */
      sh.mode = (Mode)m;
      sh.next = 0;
      sh.issued = 0;
      CK(cudaDeviceSynchronize());
      CK(cudaEventRecord(t0, 0));
      pthread_t lt;
      if (m == PERSIST) {
        CK(cudaMemset(sh.ready, 0, threads * sizeof(unsigned)));
        CK(cudaMemset(sh.count, 0, threads * sizeof(unsigned)));
        for (int t = 0; t < threads; t++) { sh.done_h[t] = 0; ws[t].seq = 0; }
        CK(cudaDeviceSynchronize());
        persist_kernel<<<threads * pb, 512, 0, ks>>>(sh.ready, sh.done_d, sh.count, sh.desc_d, sh.scratch, sh.out, pb);
        CK(cudaGetLastError());
      }
      if (m == INDEP_NOP) pthread_create(&lt, NULL, nop_launcher, &sh);
      for (int t = 0; t < threads; t++) pthread_create(&ws[t].th, NULL, worker_main, &ws[t]);
      for (int t = 0; t < threads; t++) pthread_join(ws[t].th, NULL);
      if (m == INDEP_NOP) pthread_join(lt, NULL);
      if (m == PERSIST) {
        for (int t = 0; t < threads; t++)
          if (cuStreamWriteValue32((CUstream)ws[t].s, (CUdeviceptr)(sh.ready + t), STOP, 0) != CUDA_SUCCESS) { fprintf(stderr, "memop stop\n"); exit(1); }
        CK(cudaStreamSynchronize(ks));
      }
      CK(cudaDeviceSynchronize());
      CK(cudaEventRecord(t1, 0));
      CK(cudaEventSynchronize(t1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, t0, t1));
      double g = (double)chunks * CHUNK / (ms * 1e6);
      if (r >= 0) gbps[m].push_back(g);
      printf("round %d %-15s %7.3f ms %6.2f GB/s\n", r, mode_names[m], ms, g);
    }
  }
  double base = gbps[PLAIN].empty() ? 0 : median(gbps[PLAIN]);
  printf("\nmode             median GB/s  ratio to plain (median of per-round ratios)\n");
  for (int m : modes) {
    std::vector<double> ratio;
    for (size_t i = 0; i < gbps[m].size() && i < gbps[PLAIN].size(); i++) ratio.push_back(gbps[m][i] / gbps[PLAIN][i]);
    printf("%-15s  %8.2f     %s%.4f\n", mode_names[m], median(gbps[m]), base ? "" : "n/a ",
           ratio.empty() ? 0.0 : median(ratio));
  }
  return 0;
}
