/* checksum_host.c — the host side of hoist's block checksum (definition in
 * checksum_host.h): the per-block sums in scalar, AVX2 and AVX-512 forms
 * (picked at run time; each may also copy the bytes it reads, so a reader
 * copying from a file mapping hashes in the same pass), and a
 * multi-threaded hash of file bytes (libuv threads, each taking a
 * contiguous run of blocks) so `hoist load --verify` can compare with the
 * value the device computed over the uploaded bytes (kernels/checksum.cu).
 * Plain C; built with or without CUDA. */
#include "checksum_host.h"

#include "kernels.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HOIST_CK_X86 1
#include <immintrin.h>
#endif

/* Below this many blocks per thread the threads cost more than they save. */
#define HOIST_CK_MIN_BLOCKS_PER_THREAD 16u
#define HOIST_CK_MAX_THREADS 64u
/* Lanes of the SIMD forms (both run 8 lanes of 64 bits). */
#define HOIST_CK_LANES 8u

/* Continues the running form (A += w; B += A) over words [from, ceil(len/8))
 * of the len-byte block at p, the last word zero-padded; copies those bytes
 * to dst when it is not NULL. */
static void ck_tail(unsigned char *dst, const unsigned char *p, uint64_t len, uint64_t from,
                    uint64_t *pa, uint64_t *pb) {
  uint64_t a = *pa, b = *pb;
  uint64_t full = len / 8;
  for (uint64_t i = from; i < full; i++) {
    uint64_t w;
    memcpy(&w, p + 8 * i, 8); /* little-endian host, as on every supported machine */
    if (dst != NULL) memcpy(dst + 8 * i, &w, 8);
    a += w;
    b += a;
  }
  if (len % 8 != 0) {
    uint64_t w = 0;
    for (uint64_t k = 0; k < len % 8; k++) w |= (uint64_t)p[full * 8 + k] << (8 * k);
    if (dst != NULL) memcpy(dst + full * 8, p + full * 8, (size_t)(len % 8));
    a += w;
    b += a;
  }
  *pa = a;
  *pb = b;
}

/* (A, B) of the first L*S words from the lanes' sums:
 * A = SUM_j a_j, B = SUM_j (L * b_j - j * a_j)  (checksum_host.h). */
static void ck_combine(const uint64_t *la, const uint64_t *lb, unsigned lanes, uint64_t *pa,
                       uint64_t *pb) {
  uint64_t a = 0, b = 0;
  for (unsigned j = 0; j < lanes; j++) {
    a += la[j];
    b += (uint64_t)lanes * lb[j] - (uint64_t)j * la[j];
  }
  *pa = a;
  *pb = b;
}

static void ck_sums_scalar(unsigned char *dst, const unsigned char *p, uint64_t len, uint64_t *pa,
                           uint64_t *pb) {
  *pa = *pb = 0;
  ck_tail(dst, p, len, 0, pa, pb);
}

#if defined(HOIST_CK_X86)
__attribute__((target("avx2"))) static void ck_sums_avx2(unsigned char *dst,
                                                          const unsigned char *p, uint64_t len,
                                                          uint64_t *pa, uint64_t *pb) {
  uint64_t steps = len / (8 * HOIST_CK_LANES);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, b0 = a0, b1 = a0;
  if (dst != NULL) {
    for (uint64_t s = 0; s < steps; s++) {
      const unsigned char *q = p + 64 * s;
      __m256i v0 = _mm256_loadu_si256((const __m256i *)q);
      __m256i v1 = _mm256_loadu_si256((const __m256i *)(q + 32));
      _mm256_storeu_si256((__m256i *)(dst + 64 * s), v0);
      _mm256_storeu_si256((__m256i *)(dst + 64 * s + 32), v1);
      a0 = _mm256_add_epi64(a0, v0);
      a1 = _mm256_add_epi64(a1, v1);
      b0 = _mm256_add_epi64(b0, a0);
      b1 = _mm256_add_epi64(b1, a1);
    }
  } else {
    for (uint64_t s = 0; s < steps; s++) {
      const unsigned char *q = p + 64 * s;
      a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)q));
      a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(q + 32)));
      b0 = _mm256_add_epi64(b0, a0);
      b1 = _mm256_add_epi64(b1, a1);
    }
  }
  uint64_t la[HOIST_CK_LANES], lb[HOIST_CK_LANES];
  _mm256_storeu_si256((__m256i *)la, a0);
  _mm256_storeu_si256((__m256i *)(la + 4), a1);
  _mm256_storeu_si256((__m256i *)lb, b0);
  _mm256_storeu_si256((__m256i *)(lb + 4), b1);
  ck_combine(la, lb, HOIST_CK_LANES, pa, pb);
  ck_tail(dst, p, len, steps * HOIST_CK_LANES, pa, pb);
}

__attribute__((target("avx512f"))) static void ck_sums_avx512(unsigned char *dst,
                                                               const unsigned char *p,
                                                               uint64_t len, uint64_t *pa,
                                                               uint64_t *pb) {
  uint64_t steps = len / (8 * HOIST_CK_LANES);
  __m512i a = _mm512_setzero_si512(), b = a;
  if (dst != NULL) {
    for (uint64_t s = 0; s < steps; s++) {
      __m512i v = _mm512_loadu_si512((const void *)(p + 64 * s));
      _mm512_storeu_si512((void *)(dst + 64 * s), v);
      a = _mm512_add_epi64(a, v);
      b = _mm512_add_epi64(b, a);
    }
  } else {
    for (uint64_t s = 0; s < steps; s++) {
      a = _mm512_add_epi64(a, _mm512_loadu_si512((const void *)(p + 64 * s)));
      b = _mm512_add_epi64(b, a);
    }
  }
  uint64_t la[HOIST_CK_LANES], lb[HOIST_CK_LANES];
  _mm512_storeu_si512((void *)la, a);
  _mm512_storeu_si512((void *)lb, b);
  ck_combine(la, lb, HOIST_CK_LANES, pa, pb);
  ck_tail(dst, p, len, steps * HOIST_CK_LANES, pa, pb);
}
#endif

int hoist__ck_impl_available(hoist__ck_impl impl) {
  switch (impl) {
  case HOIST_CK_IMPL_SCALAR:
  case HOIST_CK_IMPL_BEST:
    return 1;
#if defined(HOIST_CK_X86)
  case HOIST_CK_IMPL_AVX2:
    return __builtin_cpu_supports("avx2");
  case HOIST_CK_IMPL_AVX512:
    return __builtin_cpu_supports("avx512f");
#endif
  default:
    return 0;
  }
}

/* impl made concrete: BEST or an unavailable one resolved. */
static hoist__ck_impl ck_resolve(hoist__ck_impl impl) {
  if (impl == HOIST_CK_IMPL_BEST) {
    if (hoist__ck_impl_available(HOIST_CK_IMPL_AVX512)) return HOIST_CK_IMPL_AVX512;
    if (hoist__ck_impl_available(HOIST_CK_IMPL_AVX2)) return HOIST_CK_IMPL_AVX2;
    return HOIST_CK_IMPL_SCALAR;
  }
  return hoist__ck_impl_available(impl) ? impl : HOIST_CK_IMPL_SCALAR;
}

const char *hoist__ck_impl_name(hoist__ck_impl impl) {
  switch (ck_resolve(impl)) {
  case HOIST_CK_IMPL_AVX2:
    return "avx2";
  case HOIST_CK_IMPL_AVX512:
    return "avx512";
  default:
    return "scalar";
  }
}

typedef void (*ck_sums_fn)(unsigned char *, const unsigned char *, uint64_t, uint64_t *,
                           uint64_t *);

static ck_sums_fn ck_pick(hoist__ck_impl impl) {
  switch (ck_resolve(impl)) {
#if defined(HOIST_CK_X86)
  case HOIST_CK_IMPL_AVX2:
    return ck_sums_avx2;
  case HOIST_CK_IMPL_AVX512:
    return ck_sums_avx512;
#endif
  default:
    return ck_sums_scalar;
  }
}

/* SUM_b H_b over blocks [first, last); copies them to dst (same offsets)
 * when dst is not NULL. */
static uint64_t ck_blocks(ck_sums_fn fn, unsigned char *dst, const unsigned char *base, uint64_t n,
                          uint64_t first, uint64_t last) {
  uint64_t acc = 0;
  for (uint64_t b = first; b < last; b++) {
    uint64_t start = b * HOIST_CHECKSUM_BLOCK;
    uint64_t len = n - start < HOIST_CHECKSUM_BLOCK ? n - start : HOIST_CHECKSUM_BLOCK;
    uint64_t sa = 0, sb = 0;
    fn(dst != NULL ? dst + start : NULL, base + start, len, &sa, &sb);
    acc += hoist__ck_block_hash(sa, sb, b, len);
  }
  return acc;
}

uint64_t hoist__ck_blocks(hoist__ck_impl impl, const unsigned char *base, uint64_t n, uint64_t first,
                         uint64_t last) {
  return ck_blocks(ck_pick(impl), NULL, base, n, first, last);
}

uint64_t hoist__ck_copy_hash(hoist__ck_impl impl, void *dst, const void *src, uint64_t n) {
  uint64_t n_blocks = n / HOIST_CHECKSUM_BLOCK + (n % HOIST_CHECKSUM_BLOCK != 0);
  return hoist__ck_final(ck_blocks(ck_pick(impl), dst, src, n, 0, n_blocks), n);
}

typedef struct hoist__ck_job {
  const unsigned char *base;
  uint64_t n, first, last;
  uint64_t acc; /* written by the worker, read after the join */
  uv_thread_t thread;
  int started;
} hoist__ck_job;

static void hoist__ck_worker(void *arg) {
  hoist__ck_job *job = arg;
  job->acc = hoist__ck_blocks(HOIST_CK_IMPL_BEST, job->base, job->n, job->first, job->last);
}

uint64_t hoist__checksum_host(const void *bytes, uint64_t n, unsigned threads) {
  const unsigned char *base = bytes;
  uint64_t n_blocks = n / HOIST_CHECKSUM_BLOCK + (n % HOIST_CHECKSUM_BLOCK != 0);
  if (threads == 0) threads = uv_available_parallelism();
  if (threads > HOIST_CK_MAX_THREADS) threads = HOIST_CK_MAX_THREADS;
  uint64_t useful = n_blocks / HOIST_CK_MIN_BLOCKS_PER_THREAD;
  if (threads > useful) threads = (unsigned)(useful > 0 ? useful : 1);
  if (threads <= 1) return hoist__ck_final(hoist__ck_blocks(HOIST_CK_IMPL_BEST, base, n, 0, n_blocks), n);

  hoist__ck_job *jobs = calloc(threads, sizeof *jobs);
  if (!jobs) return hoist__ck_final(hoist__ck_blocks(HOIST_CK_IMPL_BEST, base, n, 0, n_blocks), n);
  /* Contiguous runs of blocks; sums commute, so the split cannot change
   * the result.  Job 0 runs on the calling thread. */
  for (unsigned t = 0; t < threads; t++) {
    jobs[t].base = base;
    jobs[t].n = n;
    jobs[t].first = n_blocks * t / threads;
    jobs[t].last = n_blocks * (t + 1) / threads;
  }
  for (unsigned t = 1; t < threads; t++)
    jobs[t].started = uv_thread_create(&jobs[t].thread, hoist__ck_worker, &jobs[t]) == 0;
  hoist__ck_worker(&jobs[0]);
  uint64_t acc = jobs[0].acc;
  for (unsigned t = 1; t < threads; t++) {
    if (jobs[t].started)
      uv_thread_join(&jobs[t].thread);
    else
      hoist__ck_worker(&jobs[t]);
    acc += jobs[t].acc;
  }
  free(jobs);
  return hoist__ck_final(acc, n);
}
