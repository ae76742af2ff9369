/* bench_kernels.cu — bandwidth of the conversion and checksum kernels
 * against the device's own copy bandwidth (issue 7's target: every
 * conversion >= 80 % of a device-to-device cudaMemcpy), and the tuning
 * table that picks the conversion variant per pair.
 *
 * Bandwidth is bytes read + bytes written over the time between two CUDA
 * events around one operation, the median of --runs runs after warm-up, on
 * --bytes of source (default 1 GiB, several times any L2) filled with
 * weight-like random values (|x| spread over 2^-14 .. 4, random signs:
 * realistic exponents, not raw bit patterns that are mostly huge or NaN).
 * The checksum counts the bytes it reads; the host checksum (all cores) is
 * measured too, as --verify pays it.
 *
 * Variants: every kernel variant of kernels/convert_kernels.cuh listed in
 * variants_for() (element function, layout, unroll, store hint) at every
 * grid of --grids, for every pair.  Before a variant is timed its output is
 * checked bit for bit: on the full benchmark input against the CPU
 * reference (hoist__convert_ref on all cores, compared on the device), and
 * on every 8/16-bit source pattern (F32: 2^20 random patterns rich in
 * specials) at unaligned offsets with guard bytes.  A variant that fails is
 * reported and never chosen.  The launcher (hoist__convert_launch) is
 * checked and timed the same way.  At start the branch-free element
 * functions are compared with the reference on every 8/16-bit input and all
 * 2^32 F32 inputs on the CPU (--check-cpu does only that, no GPU needed).
 *
 * Prints the summary table, one table per pair with every variant and
 * grid, the best variant per pair as a line of hoist__convert_launch()'s
 * table, and two JSON lines (summary; variants).  Exit 1 when a check
 * fails.
 *
 *   bench_kernels [--bytes N] [--runs R] [--device I] [--grids 4,8,0]
 *                 [--no-variants] [--check-cpu] */
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "convert_fast.h"
#include "convert_kernels.cuh"
#include "convert_ref.h"
#include "kernels.h"

#define BENCH_CU(call)                                                                   \
  do {                                                                                   \
    cudaError_t e_ = (call);                                                             \
    if (e_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "bench_kernels: %s: %s\n", #call, cudaGetErrorString(e_));    \
      std::exit(5);                                                                      \
    }                                                                                    \
  } while (0)

#define BENCH_OK(call)                                                                   \
  do {                                                                                   \
    int rc_ = (call);                                                                    \
    if (rc_ != HOIST_OK) {                                                               \
      std::fprintf(stderr, "bench_kernels: %s: %s\n", #call, hoist_last_error(NULL));    \
      std::exit(5);                                                                      \
    }                                                                                    \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Kernels */

__device__ __forceinline__ uint64_t bench_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* n elements of size bytes: weight-like F32 values, stored in dtype
 * (F32 as is, F16/BF16 via the reference narrowing, FP8 as random bytes
 * whose exponent field is kept away from NaN-heavy extremes). */
__global__ void bench_fill_kernel(void *dst, uint64_t n, int dtype, uint64_t seed) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
       i += (uint64_t)gridDim.x * blockDim.x) {
    uint64_t r = bench_mix(i ^ seed);
    /* sign | exponent 113..129 (2^-14 .. 4) | random mantissa */
    uint32_t f = (uint32_t)(r & 0x807fffffu) | ((113u + (uint32_t)((r >> 32) % 17)) << 23);
    switch (dtype) {
    case HOIST_DTYPE_F32:
      static_cast<uint32_t *>(dst)[i] = f;
      break;
    case HOIST_DTYPE_F16:
      static_cast<uint16_t *>(dst)[i] = (uint16_t)hoist__cvt_f32_to_f16(f);
      break;
    case HOIST_DTYPE_BF16:
      static_cast<uint16_t *>(dst)[i] = (uint16_t)hoist__cvt_f32_to_bf16(f);
      break;
    default:
      static_cast<uint8_t *>(dst)[i] = (uint8_t)((r & 0x83u) | ((2u + (r >> 40) % 12u) << 3));
      break;
    }
  }
}

/* Counts the 16-byte words where a and b differ into *bad. */
__global__ void bench_compare_kernel(const uint4 *a, const uint4 *b, uint64_t n16,
                                     unsigned long long *bad) {
  unsigned long long local = 0;
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n16;
       i += (uint64_t)gridDim.x * blockDim.x) {
    const uint4 x = __ldcs(a + i), y = __ldcs(b + i);
    local += (x.x != y.x) | (x.y != y.y) | (x.z != y.z) | (x.w != y.w);
  }
  if (local) atomicAdd(bad, local);
}

/* ------------------------------------------------------------------------ */
/* Variants */

typedef cudaError_t (*bench_cvt_fn)(void *, const void *, uint64_t, int, int, int, cudaStream_t);

struct bench_variant {
  std::string name; /* e.g. C2-fast-cs: layout, unroll, element function, store hint */
  const char *elem, *layout;
  int unroll;
  bool cs;
  bench_cvt_fn fn;
};

template <class C, int E, int L, int U, bool CS> static void add_variant(std::vector<bench_variant> &v) {
  static const char *const elems[] = {"REF", "FAST", "TABLE"}, *const short_elems[] = {"ref", "fast", "tab"};
  static const char *const layouts[] = {"WIDE", "COALESCED"};
  char name[32];
  std::snprintf(name, sizeof name, "%c%d-%s-%s", L == hoist_cvt::LAYOUT_WIDE ? 'W' : 'C', U,
                short_elems[E], CS ? "cs" : "wb");
  v.push_back({name, elems[E], layouts[L], U, CS, &hoist_cvt::launch<C, E, L, U, CS>});
}

/* The variants timed for pair C: the kernel before tuning (W1-ref-cs), the
 * wide (unroll 1/2) and coalesced (unroll 1/2/4) layouts with the fast
 * element functions, streaming or default stores (the wide layout's
 * half-sector stores may fare differently without evict-first), and the
 * shared-memory table for F8 sources.
 * Where both layouts have the same unit (16-bit <-> 16-bit) only the
 * coalesced ones are listed. */
template <class C> static std::vector<bench_variant> variants_for() {
  using namespace hoist_cvt;
  std::vector<bench_variant> v;
  add_variant<C, ELEM_REF, LAYOUT_WIDE, 1, true>(v);
  if constexpr (unit<C, LAYOUT_WIDE>::Q != unit<C, LAYOUT_COALESCED>::Q) {
    add_variant<C, ELEM_FAST, LAYOUT_WIDE, 1, true>(v);
    add_variant<C, ELEM_FAST, LAYOUT_WIDE, 2, true>(v);
    add_variant<C, ELEM_FAST, LAYOUT_WIDE, 1, false>(v);
    add_variant<C, ELEM_FAST, LAYOUT_WIDE, 2, false>(v);
  }
  add_variant<C, ELEM_FAST, LAYOUT_COALESCED, 1, true>(v);
  add_variant<C, ELEM_FAST, LAYOUT_COALESCED, 2, true>(v);
  add_variant<C, ELEM_FAST, LAYOUT_COALESCED, 4, true>(v);
  add_variant<C, ELEM_FAST, LAYOUT_COALESCED, 2, false>(v);
  add_variant<C, ELEM_FAST, LAYOUT_COALESCED, 4, false>(v);
  if constexpr (C::S == 1) {
    add_variant<C, ELEM_TABLE, LAYOUT_COALESCED, 2, true>(v);
    add_variant<C, ELEM_TABLE, LAYOUT_COALESCED, 4, true>(v);
  }
  return v;
}

struct bench_pair;
typedef bool (*bench_cpu_check_fn)(const bench_pair &, unsigned threads);

struct bench_pair {
  hoist_dtype from, to;
  const char *from_tok, *to_tok, *tag; /* as written in hoist__convert_launch()'s table */
  std::vector<bench_variant> variants;
  bench_cpu_check_fn cpu_check;
};

template <class C> static bool cpu_check_pair(const bench_pair &p, unsigned threads);

#define BENCH_PAIR(from, to, tag)                                                          \
  bench_pair {                                                                             \
    HOIST_DTYPE_##from, HOIST_DTYPE_##to, #from, #to, #tag, variants_for<hoist_cvt::tag>(), \
        &cpu_check_pair<hoist_cvt::tag>                                                    \
  }

static std::vector<bench_pair> bench_pairs(void) {
  return {BENCH_PAIR(F32, BF16, f32_bf16),         BENCH_PAIR(F32, F16, f32_f16),
          BENCH_PAIR(F16, BF16, f16_bf16),         BENCH_PAIR(BF16, F16, bf16_f16),
          BENCH_PAIR(BF16, F32, bf16_f32),         BENCH_PAIR(F16, F32, f16_f32),
          BENCH_PAIR(F8_E4M3, BF16, e4m3_bf16),    BENCH_PAIR(F8_E4M3, F16, e4m3_f16),
          BENCH_PAIR(F8_E4M3, F32, e4m3_f32),      BENCH_PAIR(F8_E5M2, BF16, e5m2_bf16),
          BENCH_PAIR(F8_E5M2, F16, e5m2_f16),      BENCH_PAIR(F8_E5M2, F32, e5m2_f32)};
}

/* ------------------------------------------------------------------------ */
/* CPU checks */

/* C::fast == C::ref for every source pattern of the pair (2^32 for F32, on
 * `threads` threads).  Prints one line; returns whether they agree. */
template <class C> static bool cpu_check_pair(const bench_pair &p, unsigned threads) {
  const unsigned bits = hoist_dtype_bits(p.from);
  const uint64_t count = 1ull << bits;
  std::atomic<uint64_t> bad{0}, first{UINT64_MAX};
  std::vector<std::thread> pool;
  const uint64_t per = (count + threads - 1) / threads;
  for (unsigned t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      const uint64_t lo = t * per, hi = std::min(count, lo + per);
      uint64_t my_bad = 0, my_first = UINT64_MAX;
      for (uint64_t x = lo; x < hi; x++)
        if (C::fast((uint32_t)x) != C::ref((uint32_t)x)) {
          my_bad++;
          if (my_first == UINT64_MAX) my_first = x;
        }
      bad += my_bad;
      uint64_t cur = first.load();
      while (my_first < cur && !first.compare_exchange_weak(cur, my_first)) {
      }
    });
  }
  for (auto &th : pool) th.join();
  if (bad == 0) {
    std::printf("cpu check %s->%s: fast == reference on all %llu inputs\n", hoist_dtype_name(p.from),
                hoist_dtype_name(p.to), (unsigned long long)count);
    return true;
  }
  const uint32_t x = (uint32_t)first.load();
  std::printf("cpu check %s->%s: %llu of %llu inputs differ, first 0x%x: fast 0x%x, reference "
              "0x%x\n",
              hoist_dtype_name(p.from), hoist_dtype_name(p.to), (unsigned long long)bad.load(),
              (unsigned long long)count, x, C::fast(x), C::ref(x));
  return false;
}

/* hoist__convert_ref over n elements on `threads` threads. */
static void cpu_reference(void *dst, hoist_dtype to, const void *src, hoist_dtype from, uint64_t n,
                          unsigned threads) {
  const uint64_t ss = hoist_dtype_bits(from) / 8, ds = hoist_dtype_bits(to) / 8;
  const uint64_t per = (n / threads + 63) & ~uint64_t(63);
  std::vector<std::thread> pool;
  for (uint64_t lo = 0; lo < n; lo += per) {
    const uint64_t cnt = std::min(per, n - lo);
    pool.emplace_back([=] {
      BENCH_OK(hoist__convert_ref(static_cast<char *>(dst) + lo * ds, to,
                                 static_cast<const char *>(src) + lo * ss, from, cnt));
    });
  }
  for (auto &th : pool) th.join();
}

/* ------------------------------------------------------------------------ */
/* Device checks and timing */

template <class F> static double median_ms(F &&op, int runs, cudaStream_t stream) {
  cudaEvent_t a, b;
  BENCH_CU(cudaEventCreate(&a));
  BENCH_CU(cudaEventCreate(&b));
  for (int i = 0; i < 3; i++) op();
  BENCH_CU(cudaStreamSynchronize(stream));
  std::vector<float> t;
  for (int i = 0; i < runs; i++) {
    BENCH_CU(cudaEventRecord(a, stream));
    op();
    BENCH_CU(cudaEventRecord(b, stream));
    BENCH_CU(cudaEventSynchronize(b));
    float ms = 0;
    BENCH_CU(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  BENCH_CU(cudaEventDestroy(a));
  BENCH_CU(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
}

/* The small pattern check of one pair: every 8/16-bit source pattern (F32:
 * random patterns with specials), converted at three element offset pairs
 * into a guarded destination. */
struct pattern_check {
  static constexpr int kCases = 3;
  static constexpr uint64_t kGuard = 64;
  const uint64_t soff[kCases] = {0, 1, 7}, doff[kCases] = {0, 3, 2};
  uint64_t n = 0, ss = 0, ds = 0, dalloc = 0;
  std::vector<unsigned char> src, want[kCases], got;
  unsigned char *dsrc = NULL, *ddst = NULL;

  pattern_check(const bench_pair &p) {
    ss = hoist_dtype_bits(p.from) / 8;
    ds = hoist_dtype_bits(p.to) / 8;
    n = ss == 4 ? (1u << 20) + 37 : ss == 2 ? 2 * 65536 + 37 : 16 * 256 + 37;
    src.resize((n + 8) * ss);
    uint64_t r = 0x9e3779b97f4a7c15ull;
    static const uint32_t specials[] = {0x00000000u, 0x7f800000u, 0x7fc00000u, 0x7f800001u,
                                        0x7fffffffu, 0x7f7fffffu, 0x00000001u, 0x007fffffu,
                                        0x00800000u, 0x477fe000u, 0x477ff000u, 0x33000000u,
                                        0x33800000u, 0x387fe000u, 0x38800000u, 0x38000000u};
    for (uint64_t i = 0; i < n + 8; i++) {
      r ^= r >> 12;
      r ^= r << 25;
      r ^= r >> 27;
      const uint64_t x = r * 0x2545f4914f6cdd1dull;
      uint32_t v = ss == 4 ? (uint32_t)x : (uint32_t)i;
      if (ss == 4 && (x >> 60) == 0) v = specials[(x >> 40) & 15] ^ ((uint32_t)(x >> 32) & 0x80000000u);
      if (ss == 4 && (x >> 60) == 1) v = (v & ~0x1fffu) | 0x1000u; /* F16 ties */
      if (ss == 4 && (x >> 60) == 2) v = (v & ~0xffffu) | 0x8000u; /* BF16 ties */
      std::memcpy(&src[i * ss], &v, ss);
    }
    for (int c = 0; c < kCases; c++) {
      want[c].resize(n * ds);
      BENCH_OK(hoist__convert_ref(want[c].data(), p.to, &src[soff[c] * ss], p.from, n));
    }
    dalloc = 8 * ds + n * ds + kGuard;
    got.resize(dalloc);
    BENCH_CU(cudaMalloc(&dsrc, src.size()));
    BENCH_CU(cudaMalloc(&ddst, dalloc));
    BENCH_CU(cudaMemcpy(dsrc, src.data(), src.size(), cudaMemcpyHostToDevice));
  }
  ~pattern_check() {
    cudaFree(dsrc);
    cudaFree(ddst);
  }
  pattern_check(const pattern_check &) = delete;
  pattern_check &operator=(const pattern_check &) = delete;

  /* Runs fn at every offset pair; returns an empty string or what failed. */
  std::string run(bench_cvt_fn fn, int grid, int device, int sms, cudaStream_t stream) {
    char msg[160];
    for (int c = 0; c < kCases; c++) {
      BENCH_CU(cudaMemsetAsync(ddst, 0xa5, dalloc, stream));
      BENCH_CU(fn(ddst + doff[c] * ds, dsrc + soff[c] * ss, n, grid, device, sms, stream));
      BENCH_CU(cudaMemcpyAsync(got.data(), ddst, dalloc, cudaMemcpyDeviceToHost, stream));
      BENCH_CU(cudaStreamSynchronize(stream));
      const uint64_t lo = doff[c] * ds, hi = lo + n * ds;
      for (uint64_t i = 0; i < dalloc; i++)
        if ((i < lo || i >= hi) && got[i] != 0xa5) {
          std::snprintf(msg, sizeof msg, "patterns: byte %lld outside the destination written",
                        (long long)i - (long long)lo);
          return msg;
        }
      if (std::memcmp(&got[lo], want[c].data(), n * ds) != 0) {
        uint64_t i = 0;
        while (std::memcmp(&got[lo + i * ds], &want[c][i * ds], ds) == 0) i++;
        uint32_t s = 0, g = 0, w = 0;
        std::memcpy(&s, &src[(soff[c] + i) * ss], ss);
        std::memcpy(&g, &got[lo + i * ds], ds);
        std::memcpy(&w, &want[c][i * ds], ds);
        std::snprintf(msg, sizeof msg,
                      "patterns (offsets %llu/%llu): element %llu, source 0x%x: device 0x%x, "
                      "reference 0x%x",
                      (unsigned long long)soff[c], (unsigned long long)doff[c],
                      (unsigned long long)i, s, g, w);
        return msg;
      }
    }
    return "";
  }
};

struct bench_timing {
  int variant; /* index into the pair's variants; -1: the launcher */
  int grid;
  bool ok;
  std::string why;
  double ms, gbps;
};

static const char *grid_name(int g, char *buf, size_t size) {
  if (g == 0)
    std::snprintf(buf, size, "pass");
  else
    std::snprintf(buf, size, "g%d", g);
  return buf;
}

int main(int argc, char **argv) {
  uint64_t bytes = 1ull << 30;
  int runs = 30, device = 0;
  bool variants = true, check_cpu_only = false;
  std::vector<int> grids = {4, 8, 0};
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--bytes") && i + 1 < argc)
      bytes = std::strtoull(argv[++i], NULL, 0);
    else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc)
      device = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--grids") && i + 1 < argc) {
      grids.clear();
      for (const char *s = argv[++i]; *s;) {
        char *end = NULL;
        long g = std::strtol(s, &end, 10);
        if (end == s || g < 0 || g > 64) {
          std::fprintf(stderr, "bench_kernels: --grids wants blocks per SM (0: one pass), "
                               "comma-separated\n");
          return 2;
        }
        grids.push_back((int)g);
        s = *end == ',' ? end + 1 : end;
      }
    } else if (!std::strcmp(argv[i], "--no-variants"))
      variants = false;
    else if (!std::strcmp(argv[i], "--check-cpu"))
      check_cpu_only = true;
    else {
      std::fprintf(stderr, "usage: bench_kernels [--bytes N] [--runs R] [--device I] "
                           "[--grids 4,8,0] [--no-variants] [--check-cpu]\n");
      return 2;
    }
  }
  if (runs < 20) runs = 20;
  bytes &= ~uint64_t(63);
  if (bytes == 0) bytes = 64;
  if (grids.empty()) grids.push_back(8);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());

  std::vector<bench_pair> pairs = bench_pairs();
  bool all_ok = true;
  for (const auto &p : pairs) all_ok &= p.cpu_check(p, threads);
  if (check_cpu_only) return all_ok ? 0 : 1;

  BENCH_CU(cudaSetDevice(device));
  cudaDeviceProp prop;
  BENCH_CU(cudaGetDeviceProperties(&prop, device));
  const int sms = prop.multiProcessorCount;
  cudaStream_t stream;
  BENCH_CU(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  /* Source: `bytes`; destination and its reference: up to 4x (FP8 -> F32);
   * host copies of the source and the reference, pinned. */
  void *src = NULL, *dst = NULL, *dref = NULL, *hsrc = NULL, *href = NULL;
  uint64_t *dhash = NULL;
  unsigned long long *dbad = NULL;
  BENCH_CU(cudaMalloc(&src, bytes));
  BENCH_CU(cudaMalloc(&dst, bytes * 4));
  BENCH_CU(cudaMalloc(&dref, bytes * 4));
  BENCH_CU(cudaMalloc(&dhash, 8));
  BENCH_CU(cudaMalloc(&dbad, sizeof *dbad));
  BENCH_CU(cudaMallocHost(&hsrc, bytes));
  BENCH_CU(cudaMallocHost(&href, bytes * 4));

  /* Full-size check of one conversion: dst == dref over dbytes. */
  auto full_check = [&](const std::function<void()> &op, uint64_t dbytes) -> unsigned long long {
    unsigned long long bad = 0;
    BENCH_CU(cudaMemsetAsync(dst, 0xa5, dbytes, stream));
    BENCH_CU(cudaMemsetAsync(dbad, 0, sizeof *dbad, stream));
    op();
    bench_compare_kernel<<<sms * 8, 256, 0, stream>>>(static_cast<const uint4 *>(dst),
                                                       static_cast<const uint4 *>(dref), dbytes / 16,
                                                       dbad);
    BENCH_CU(cudaGetLastError());
    BENCH_CU(cudaMemcpyAsync(&bad, dbad, sizeof bad, cudaMemcpyDeviceToHost, stream));
    BENCH_CU(cudaStreamSynchronize(stream));
    return bad;
  };

  /* Device-to-device copy of the source size: read + write. */
  bench_fill_kernel<<<sms * 8, 256, 0, stream>>>(src, bytes / 4, HOIST_DTYPE_F32, 1);
  BENCH_CU(cudaGetLastError());
  auto copy_op = [&] {
    BENCH_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
  };
  const double copy_ms = median_ms(copy_op, runs, stream);
  const double copy_gbps = 2.0 * bytes / (copy_ms * 1e6);

  std::vector<std::vector<bench_timing>> timings(pairs.size());
  for (size_t pi = 0; pi < pairs.size(); pi++) {
    const bench_pair &p = pairs[pi];
    const uint64_t ss = hoist_dtype_bits(p.from) / 8, ds = hoist_dtype_bits(p.to) / 8;
    const uint64_t n = bytes / ss, dbytes = n * ds;
    const double moved = (double)n * (ss + ds);
    bench_fill_kernel<<<sms * 8, 256, 0, stream>>>(src, n, p.from, (uint64_t)p.from * 7 + 3);
    BENCH_CU(cudaGetLastError());
    BENCH_CU(cudaMemcpyAsync(hsrc, src, bytes, cudaMemcpyDeviceToHost, stream));
    BENCH_CU(cudaStreamSynchronize(stream));
    cpu_reference(href, p.to, hsrc, p.from, n, threads);
    BENCH_CU(cudaMemcpyAsync(dref, href, dbytes, cudaMemcpyHostToDevice, stream));
    BENCH_CU(cudaStreamSynchronize(stream));

    /* The launcher, as the library runs it. */
    {
      auto op = [&] { BENCH_OK(hoist__convert_launch(dst, p.to, src, p.from, n, stream)); };
      bench_timing t{-1, 0, true, "", 0, 0};
      const unsigned long long bad = full_check(op, dbytes);
      if (bad) {
        t.ok = false;
        t.why = std::to_string(bad) + " of " + std::to_string(dbytes / 16) +
                " 16-byte words differ from the CPU reference";
      }
      t.ms = median_ms(op, runs, stream);
      t.gbps = moved / (t.ms * 1e6);
      timings[pi].push_back(t);
    }
    if (!variants) continue;
    pattern_check pat(p);
    for (size_t vi = 0; vi < p.variants.size(); vi++) {
      const bench_variant &v = p.variants[vi];
      for (int g : grids) {
        auto op = [&] { BENCH_CU(v.fn(dst, src, n, g, device, sms, stream)); };
        bench_timing t{(int)vi, g, true, pat.run(v.fn, g, device, sms, stream), 0, 0};
        if (t.why.empty()) {
          const unsigned long long bad = full_check(op, dbytes);
          if (bad)
            t.why = "full input: " + std::to_string(bad) + " of " + std::to_string(dbytes / 16) +
                    " 16-byte words differ from the CPU reference";
        }
        t.ok = t.why.empty();
        if (t.ok) {
          t.ms = median_ms(op, runs, stream);
          t.gbps = moved / (t.ms * 1e6);
        }
        timings[pi].push_back(t);
      }
    }
  }
  /* The copy again, to see drift over the run. */
  const double copy_end_ms = median_ms(copy_op, runs, stream);
  const double copy_end_gbps = 2.0 * bytes / (copy_end_ms * 1e6);

  double ck_ms = median_ms([&] { BENCH_OK(hoist__checksum_launch(src, bytes, dhash, stream)); },
                           runs, stream);
  const double ck_gbps = bytes / (ck_ms * 1e6);

  /* Host checksum over a host copy, all cores; median of 5. */
  BENCH_CU(cudaMemcpy(hsrc, src, bytes, cudaMemcpyDeviceToHost));
  uint64_t dev_hash = 0, host_hash = 0;
  BENCH_CU(cudaMemcpy(&dev_hash, dhash, 8, cudaMemcpyDeviceToHost));
  std::vector<double> ht;
  for (int i = 0; i < 5; i++) {
    auto t0 = std::chrono::steady_clock::now();
    host_hash = hoist__checksum_host(hsrc, bytes, 0);
    ht.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::sort(ht.begin(), ht.end());
  const double hk_gbps = bytes / (ht[2] * 1e6);

  /* ---- Summary: the launcher per pair. */
  char names[16][48];
  std::printf("device: %s (%d SMs, L2 %d MiB), source %.2f GiB, median of %d runs\n", prop.name,
              sms, prop.l2CacheSize >> 20, bytes / 1073741824.0, runs);
  std::printf("%-20s %10s %10s %8s\n", "operation", "ms", "GB/s", "vs copy");
  std::printf("%-20s %10.3f %10.1f %7.1f%%\n", "D2D copy", copy_ms, copy_gbps, 100.0);
  for (size_t pi = 0; pi < pairs.size(); pi++) {
    const bench_timing &t = timings[pi][0];
    std::snprintf(names[pi], sizeof names[0], "%s->%s", hoist_dtype_name(pairs[pi].from),
                  hoist_dtype_name(pairs[pi].to));
    std::printf("%-20s %10.3f %10.1f %7.1f%%%s\n", names[pi], t.ms, t.gbps,
                100.0 * t.gbps / copy_gbps, t.ok ? "" : "  WRONG OUTPUT");
    if (!t.ok) std::printf("  %s\n", t.why.c_str());
    all_ok &= t.ok;
  }
  std::printf("%-20s %10.3f %10.1f %7.1f%%\n", "checksum (device)", ck_ms, ck_gbps,
              100.0 * ck_gbps / copy_gbps);
  std::printf("%-20s %10.3f %10.1f %7.1f%%\n", "checksum (host)", ht[2], hk_gbps,
              100.0 * hk_gbps / copy_gbps);
  std::printf("%-20s %10.3f %10.1f %7.1f%%  (drift check)\n", "D2D copy, at end", copy_end_ms,
              copy_end_gbps, 100.0 * copy_end_gbps / copy_gbps);
  std::printf("checksum device == host: %s\n", dev_hash == host_hash ? "yes" : "NO");

  /* ---- Variants: one table per pair, % of the copy, best marked. */
  std::vector<int> best(pairs.size(), -1);
  if (variants) {
    char gb[16];
    std::printf("\nvariants (%% of D2D copy; W/C = wide/coalesced layout, digit = units per "
                "thread, ref/fast/tab = element function, cs/wb = store hint; gN = N blocks of "
                "256 per SM, capped at what fits; pass = one pass)\n");
    for (size_t pi = 0; pi < pairs.size(); pi++) {
      const bench_pair &p = pairs[pi];
      const auto &ts = timings[pi];
      for (size_t k = 1; k < ts.size(); k++)
        if (ts[k].ok && (best[pi] < 0 || ts[k].gbps > ts[best[pi]].gbps)) best[pi] = (int)k;
      std::printf("%-16s", names[pi]);
      for (int g : grids) std::printf(" %7s", grid_name(g, gb, sizeof gb));
      std::printf("   (launcher %.1f%%)\n", 100.0 * ts[0].gbps / copy_gbps);
      for (size_t vi = 0; vi < p.variants.size(); vi++) {
        std::printf("  %-14s", p.variants[vi].name.c_str());
        std::string fails;
        for (size_t k = 1; k < ts.size(); k++) {
          if (ts[k].variant != (int)vi) continue;
          if (ts[k].ok)
            std::printf(" %6.1f%c", 100.0 * ts[k].gbps / copy_gbps, (int)k == best[pi] ? '*' : ' ');
          else {
            std::printf(" %7s", "WRONG");
            fails = ts[k].why;
            all_ok = false;
          }
        }
        std::printf("\n");
        if (!fails.empty()) std::printf("    %s\n", fails.c_str());
      }
    }
    std::printf("\nbest variant per pair, as lines of hoist__convert_launch()'s table:\n");
    for (size_t pi = 0; pi < pairs.size(); pi++) {
      const bench_pair &p = pairs[pi];
      if (best[pi] < 0) {
        std::printf("  /* %s: no variant passed its checks */\n", names[pi]);
        continue;
      }
      const bench_timing &t = timings[pi][best[pi]];
      const bench_variant &v = p.variants[t.variant];
      std::printf("  HOIST_CVT_CASE(%s, %s, %s, %s, %s, %d, %s, %d) /* %.1f %%, launcher %.1f %% */\n",
                  p.from_tok, p.to_tok, p.tag, v.elem, v.layout, v.unroll, v.cs ? "true" : "false",
                  t.grid, 100.0 * t.gbps / copy_gbps, 100.0 * timings[pi][0].gbps / copy_gbps);
    }
  }

  /* ---- JSON: the summary line (as before), then the variants. */
  int below = 0;
  std::printf("{\"bench\":\"kernels\",\"device\":\"%s\",\"source_bytes\":%llu,\"runs\":%d,"
              "\"d2d_copy_gbps\":%.1f,\"conversions\":[",
              prop.name, (unsigned long long)bytes, runs, copy_gbps);
  for (size_t pi = 0; pi < pairs.size(); pi++) {
    const double ratio = timings[pi][0].gbps / copy_gbps;
    below += ratio < 0.8;
    std::printf("%s{\"pair\":\"%s\",\"gbps\":%.1f,\"ratio\":%.3f,\"output_ok\":%s}", pi ? "," : "",
                names[pi], timings[pi][0].gbps, ratio, timings[pi][0].ok ? "true" : "false");
  }
  std::printf("],\"checksum_device_gbps\":%.1f,\"checksum_host_gbps\":%.2f,"
              "\"checksum_match\":%s,\"conversions_below_80pct\":%d}\n",
              ck_gbps, hk_gbps, dev_hash == host_hash ? "true" : "false", below);
  if (variants) {
    std::printf("{\"bench\":\"kernel_variants\",\"device\":\"%s\",\"d2d_copy_gbps\":%.1f,"
                "\"d2d_copy_end_gbps\":%.1f,\"pairs\":[",
                prop.name, copy_gbps, copy_end_gbps);
    for (size_t pi = 0; pi < pairs.size(); pi++) {
      const auto &ts = timings[pi];
      std::printf("%s{\"pair\":\"%s\",\"launcher_ratio\":%.3f,\"variants\":[", pi ? "," : "",
                  names[pi], ts[0].gbps / copy_gbps);
      for (size_t k = 1; k < ts.size(); k++)
        std::printf("%s{\"variant\":\"%s\",\"grid\":%d,\"ok\":%s,\"ratio\":%.3f}", k > 1 ? "," : "",
                    pairs[pi].variants[ts[k].variant].name.c_str(), ts[k].grid,
                    ts[k].ok ? "true" : "false", ts[k].gbps / copy_gbps);
      std::printf("]}");
    }
    std::printf("]}\n");
  }

  BENCH_CU(cudaFree(src));
  BENCH_CU(cudaFree(dst));
  BENCH_CU(cudaFree(dref));
  BENCH_CU(cudaFree(dhash));
  BENCH_CU(cudaFree(dbad));
  BENCH_CU(cudaFreeHost(hsrc));
  BENCH_CU(cudaFreeHost(href));
  BENCH_CU(cudaStreamDestroy(stream));
  return all_ok && dev_hash == host_hash ? 0 : 1;
}
