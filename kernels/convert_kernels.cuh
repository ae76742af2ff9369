/* convert_kernels.cuh — the dtype conversion kernel as a template over its
 * tuning choices, shared by the library launcher (kernels/convert.cu, which
 * instantiates one variant per pair) and the benchmark
 * (bench/bench_kernels.cu, which instantiates them all, checks each against
 * the CPU reference and times it).
 *
 * A variant is
 *   - the pair (source / destination element sizes and functions);
 *   - the element function: the reference of runtime/convert_ref.h
 *     (HOIST_CVT_ELEM_REF), the branch-free equivalents of
 *     kernels/convert_fast.h (HOIST_CVT_ELEM_FAST), or, for F8 sources, a
 *     256-entry table in shared memory that each block fills from the
 *     reference function (HOIST_CVT_ELEM_TABLE) — all bit-identical;
 *   - the layout: "wide" units of 16 bytes of the narrower side (one 16-byte
 *     source load and 2 or 4 16-byte stores per unit for a widening pair, the
 *     stores of a warp then strided 32 or 64 bytes apart), or "coalesced"
 *     units of 16 bytes of the wider side (a widening pair loads 4 or 8 bytes
 *     and stores 16; every load and store instruction of a warp covers one
 *     contiguous span, so no sector is written in halves by two
 *     instructions);
 *   - U, units per thread per loop iteration (all loads issued before the
 *     first store: U independent loads in flight per thread);
 *   - the store cache hint: streaming (.cs, evict-first) or default (.wb);
 *   - at launch, the grid: blocks of 256 threads per SM (grid-stride loop,
 *     capped at what fits on an SM at once), or 0 for one pass (enough
 *     blocks to cover the work once).
 *
 * Alignment: units start at `head`, the first element index at which both
 * pointers are 16-byte aligned (the pattern repeats every 16 / min(S, D)
 * elements); a unit of Q elements then sits at a multiple of its own byte
 * size on both sides.  Elements before head and after the last whole unit
 * go one by one; pointers that are never 16-byte aligned at the same index
 * go element by element (correct, slow).
 *
 * Threading: launch functions only enqueue on the given stream. */
#ifndef HOIST_CONVERT_KERNELS_CUH
#define HOIST_CONVERT_KERNELS_CUH

#include <cuda_runtime.h>

#include <stdint.h>

#include <atomic>

#include "convert_fast.h"
#include "convert_ref.h"

namespace hoist_cvt {

constexpr int kThreads = 256;

enum { ELEM_REF = 0, ELEM_FAST = 1, ELEM_TABLE = 2 };
enum { LAYOUT_WIDE = 0, LAYOUT_COALESCED = 1 };

/* One conversion pair: element bytes, reference and fast functions. */
#define HOIST_CVT_PAIR(tag, s, d, ref_fn, fast_fn)                                          \
  struct tag {                                                                              \
    static constexpr int S = s, D = d;                                                      \
    static __host__ __device__ __forceinline__ uint32_t ref(uint32_t x) { return ref_fn(x); } \
    static __host__ __device__ __forceinline__ uint32_t fast(uint32_t x) { return fast_fn(x); } \
  };
HOIST_CVT_PAIR(f32_bf16, 4, 2, hoist__cvt_f32_to_bf16, hoist__cvt_f32_to_bf16)
HOIST_CVT_PAIR(f32_f16, 4, 2, hoist__cvt_f32_to_f16, hoist__cvtf_f32_to_f16)
HOIST_CVT_PAIR(f16_bf16, 2, 2, hoist__cvt_f16_to_bf16, hoist__cvtf_f16_to_bf16)
HOIST_CVT_PAIR(bf16_f16, 2, 2, hoist__cvt_bf16_to_f16, hoist__cvtf_bf16_to_f16)
HOIST_CVT_PAIR(bf16_f32, 2, 4, hoist__cvt_bf16_to_f32, hoist__cvt_bf16_to_f32)
HOIST_CVT_PAIR(f16_f32, 2, 4, hoist__cvt_f16_to_f32, hoist__cvtf_f16_to_f32)
HOIST_CVT_PAIR(e4m3_bf16, 1, 2, hoist__cvt_e4m3_to_bf16, hoist__cvtf_e4m3_to_bf16)
HOIST_CVT_PAIR(e4m3_f16, 1, 2, hoist__cvt_e4m3_to_f16, hoist__cvtf_e4m3_to_f16)
HOIST_CVT_PAIR(e4m3_f32, 1, 4, hoist__cvt_e4m3_to_f32, hoist__cvtf_e4m3_to_f32)
HOIST_CVT_PAIR(e5m2_bf16, 1, 2, hoist__cvt_e5m2_to_bf16, hoist__cvtf_e5m2_to_bf16)
HOIST_CVT_PAIR(e5m2_f16, 1, 2, hoist__cvt_e5m2_to_f16, hoist__cvtf_e5m2_to_f16)
HOIST_CVT_PAIR(e5m2_f32, 1, 4, hoist__cvt_e5m2_to_f32, hoist__cvtf_e5m2_to_f32)
#undef HOIST_CVT_PAIR

/* Elements per unit: 16 bytes of the narrower side (wide) or of the wider
 * side (coalesced). */
template <class C, int L> struct unit {
  static constexpr int MIN = C::S < C::D ? C::S : C::D, MAX = C::S < C::D ? C::D : C::S;
  static constexpr int Q = L == LAYOUT_WIDE ? 16 / MIN : 16 / MAX;
  static constexpr int P = 16 / MIN; /* alignment period in elements */
};

/* Element j of size-byte little-endian elements packed in 32-bit words. */
template <int size> __device__ __forceinline__ uint32_t extract(const uint32_t *w, int j) {
  if (size == 4) return w[j];
  if (size == 2) return (w[j >> 1] >> ((j & 1) * 16)) & 0xffffu;
  return (w[j >> 2] >> ((j & 3) * 8)) & 0xffu;
}

template <int size> __device__ __forceinline__ void insert(uint32_t *w, int j, uint32_t v) {
  if (size == 4)
    w[j] = v;
  else if (j & 1)
    w[j >> 1] |= (v & 0xffffu) << 16;
  else
    w[j >> 1] = v & 0xffffu;
}

/* NB bytes (4, 8 or a multiple of 16) at an NB-aligned (or 16-aligned)
 * address, as 32-bit words; loads are streaming (.cs). */
template <int NB> __device__ __forceinline__ void load(const uint8_t *p, uint32_t *w) {
  if (NB == 4) {
    w[0] = __ldcs(reinterpret_cast<const unsigned int *>(p));
  } else if (NB == 8) {
    uint2 v = __ldcs(reinterpret_cast<const uint2 *>(p));
    w[0] = v.x;
    w[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < NB / 16; i++) {
      uint4 v = __ldcs(reinterpret_cast<const uint4 *>(p) + i);
      w[4 * i] = v.x;
      w[4 * i + 1] = v.y;
      w[4 * i + 2] = v.z;
      w[4 * i + 3] = v.w;
    }
  }
}

template <int NB, bool CS> __device__ __forceinline__ void store(uint8_t *p, const uint32_t *w) {
  if (NB == 4) {
    unsigned int *q = reinterpret_cast<unsigned int *>(p);
    if (CS)
      __stcs(q, w[0]);
    else
      *q = w[0];
  } else if (NB == 8) {
    uint2 *q = reinterpret_cast<uint2 *>(p);
    if (CS)
      __stcs(q, make_uint2(w[0], w[1]));
    else
      *q = make_uint2(w[0], w[1]);
  } else {
#pragma unroll
    for (int i = 0; i < NB / 16; i++) {
      uint4 *q = reinterpret_cast<uint4 *>(p) + i;
      uint4 v = make_uint4(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]);
      if (CS)
        __stcs(q, v);
      else
        *q = v;
    }
  }
}

template <int size> __device__ __forceinline__ uint32_t load_one(const void *p, uint64_t i) {
  if (size == 4) return static_cast<const uint32_t *>(p)[i];
  if (size == 2) return static_cast<const uint16_t *>(p)[i];
  return static_cast<const uint8_t *>(p)[i];
}

template <int size> __device__ __forceinline__ void store_one(void *p, uint64_t i, uint32_t v) {
  if (size == 4)
    static_cast<uint32_t *>(p)[i] = v;
  else
    static_cast<uint16_t *>(p)[i] = static_cast<uint16_t>(v);
}

template <class C, int E>
__device__ __forceinline__ uint32_t elem(const uint32_t *table, uint32_t x) {
  if (E == ELEM_TABLE) return table[x & 0xffu];
  if (E == ELEM_FAST) return C::fast(x);
  return C::ref(x);
}

/* Converts n elements: nunits units of Q elements from head on as vectors,
 * the rest element by element. */
template <class C, int E, int Q, int U, bool CS>
__global__ void __launch_bounds__(kThreads)
    convert_kernel(void *dst, const void *src, uint64_t n, uint64_t head, uint64_t nunits) {
  static_assert(E != ELEM_TABLE || C::S == 1, "the table decode is for 8-bit sources");
  constexpr int SB = Q * C::S, DB = Q * C::D;
  __shared__ uint32_t table[E == ELEM_TABLE ? 256 : 1];
  if (E == ELEM_TABLE) {
    for (uint32_t i = threadIdx.x; i < 256u; i += blockDim.x) table[i] = C::ref(i);
    __syncthreads();
  }
  const uint64_t tid = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint8_t *s = static_cast<const uint8_t *>(src) + head * C::S;
  uint8_t *d = static_cast<uint8_t *>(dst) + head * C::D;

  for (uint64_t base = tid; base < nunits; base += U * stride) {
    uint32_t w[U][SB / 4];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const uint64_t q = base + u * stride;
      if (q < nunits) load<SB>(s + q * SB, w[u]);
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const uint64_t q = base + u * stride;
      if (q < nunits) {
        uint32_t o[DB / 4];
#pragma unroll
        for (int j = 0; j < Q; j++) insert<C::D>(o, j, elem<C, E>(table, extract<C::S>(w[u], j)));
        store<DB, CS>(d + q * DB, o);
      }
    }
  }

  const uint64_t tail = head + nunits * Q;
  const uint64_t scalar = head + (n - tail);
  for (uint64_t k = tid; k < scalar; k += stride) {
    const uint64_t i = k < head ? k : tail + (k - head);
    store_one<C::D>(dst, i, elem<C, E>(table, load_one<C::S>(src, i)));
  }
}

/* Blocks of kernel K that fit on one SM of device (cached per kernel and
 * device; 1 if the runtime cannot tell).  Thread-safe. */
template <class C, int E, int Q, int U, bool CS> int max_active_blocks(int device) {
  static std::atomic<int> cache[64]; /* zero: not asked yet */
  const bool cached = device >= 0 && device < 64;
  if (cached) {
    const int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  int v = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, convert_kernel<C, E, Q, U, CS>, kThreads,
                                                    0) != cudaSuccess ||
      v <= 0) {
    (void)cudaGetLastError();
    v = 1;
  }
  if (cached) cache[device].store(v, std::memory_order_relaxed);
  return v;
}

/* Enqueues the variant on stream: n > 0 elements, pointers element-aligned
 * and not overlapping (the caller checked); device and sms: the current
 * device and its SM count.  blocks_per_sm > 0: a grid-stride grid of that
 * many blocks per SM, capped at the blocks that fit on an SM at once (so
 * the grid is one full wave: a partial second wave would leave most of the
 * machine idle at the end); 0: one pass, enough blocks to cover the work
 * once.  Returns cudaGetLastError() after the launch. */
template <class C, int E, int L, int U, bool CS>
cudaError_t launch(void *dst, const void *src, uint64_t n, int blocks_per_sm, int device, int sms,
                   cudaStream_t stream) {
  constexpr int Q = unit<C, L>::Q, P = unit<C, L>::P;
  const uintptr_t da = reinterpret_cast<uintptr_t>(dst), sa = reinterpret_cast<uintptr_t>(src);
  uint64_t head = n, nunits = 0;
  for (uint64_t i = 0; i < static_cast<uint64_t>(P) && i < n; i++) {
    if ((da + i * C::D) % 16 == 0 && (sa + i * C::S) % 16 == 0) {
      head = i;
      nunits = (n - i) / Q;
      break;
    }
  }
  const uint64_t scalar = n - nunits * Q;
  const uint64_t per_thread = (nunits + U - 1) / U;
  const uint64_t work = per_thread > scalar ? per_thread : scalar;
  uint64_t blocks = (work + kThreads - 1) / kThreads;
  if (blocks_per_sm > 0) {
    const int fit = max_active_blocks<C, E, Q, U, CS>(device);
    const uint64_t per_sm = static_cast<uint64_t>(blocks_per_sm < fit ? blocks_per_sm : fit);
    const uint64_t max_blocks = static_cast<uint64_t>(sms > 0 ? sms : 1) * per_sm;
    if (blocks > max_blocks) blocks = max_blocks;
  }
  if (blocks > (1u << 30)) blocks = 1u << 30; /* the grid-stride loop covers the rest */
  if (blocks == 0) blocks = 1;
  convert_kernel<C, E, Q, U, CS>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(dst, src, n, head, nunits);
  return cudaGetLastError();
}

} // namespace hoist_cvt

#endif /* HOIST_CONVERT_KERNELS_CUH */
