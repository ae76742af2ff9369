/* convert.cu — device-side dtype conversion, used by the upload path to turn
 * a source chunk in the scratch ring into the target dtype in the arena, so
 * the device never holds a checkpoint twice.
 *
 * The element conversions are the integer-only functions of
 * runtime/convert_ref.h, the same source the CPU reference compiles, so the
 * device and the host agree bit for bit by construction (round to nearest
 * even, quiet NaNs with the payload rules stated there, F16 overflow to inf,
 * exact subnormals, OCP FP8 decoding).
 *
 * Memory access: each thread converts packs of P = 16 / min(src, dst
 * element size) elements with 16-byte loads and stores (streaming cache
 * hints: every byte is touched once), in a grid-stride loop over a grid
 * sized from the SM count.  The few elements before both pointers reach
 * 16-byte alignment and after the last whole pack go element by element;
 * when the two pointers can never be 16-byte aligned at the same index the
 * whole range goes element by element (correct, slower). */
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

extern "C" {
#include "checks.h"
}
#include "convert_ref.h"
#include "kernels.h"

/* ------------------------------------------------------------------------ */
/* Kernels */

namespace {

constexpr int kConvertThreads = 256;

/* One conversion pair: source and destination element bytes and the
 * element function. */
#define HOIST_CVT_PAIR(tag, s, d, fn)                                              \
  struct tag {                                                                     \
    static constexpr int S = s, D = d;                                             \
    static __device__ __forceinline__ uint32_t op(uint32_t x) { return fn(x); }    \
  };
HOIST_CVT_PAIR(cvt_f32_bf16, 4, 2, hoist_cvt_f32_to_bf16)
HOIST_CVT_PAIR(cvt_f32_f16, 4, 2, hoist_cvt_f32_to_f16)
HOIST_CVT_PAIR(cvt_f16_bf16, 2, 2, hoist_cvt_f16_to_bf16)
HOIST_CVT_PAIR(cvt_bf16_f16, 2, 2, hoist_cvt_bf16_to_f16)
HOIST_CVT_PAIR(cvt_bf16_f32, 2, 4, hoist_cvt_bf16_to_f32)
HOIST_CVT_PAIR(cvt_f16_f32, 2, 4, hoist_cvt_f16_to_f32)
HOIST_CVT_PAIR(cvt_e4m3_bf16, 1, 2, hoist_cvt_e4m3_to_bf16)
HOIST_CVT_PAIR(cvt_e4m3_f16, 1, 2, hoist_cvt_e4m3_to_f16)
HOIST_CVT_PAIR(cvt_e4m3_f32, 1, 4, hoist_cvt_e4m3_to_f32)
HOIST_CVT_PAIR(cvt_e5m2_bf16, 1, 2, hoist_cvt_e5m2_to_bf16)
HOIST_CVT_PAIR(cvt_e5m2_f16, 1, 2, hoist_cvt_e5m2_to_f16)
HOIST_CVT_PAIR(cvt_e5m2_f32, 1, 4, hoist_cvt_e5m2_to_f32)
#undef HOIST_CVT_PAIR

/* Elements per pack: 16 bytes of the narrower side. */
template <class C> struct cvt_pack {
  static constexpr int P = 16 / (C::S < C::D ? C::S : C::D);
  static constexpr int SV = P * C::S / 16; /* 16-byte source vectors per pack */
  static constexpr int DV = P * C::D / 16; /* 16-byte destination vectors */
};

/* Element j of size-byte little-endian elements packed in 32-bit words. */
template <int size> __device__ __forceinline__ uint32_t cvt_extract(const uint32_t *w, int j) {
  if (size == 4) return w[j];
  if (size == 2) return (w[j >> 1] >> ((j & 1) * 16)) & 0xffffu;
  return (w[j >> 2] >> ((j & 3) * 8)) & 0xffu;
}

template <int size> __device__ __forceinline__ void cvt_insert(uint32_t *w, int j, uint32_t v) {
  if (size == 4)
    w[j] = v;
  else
    w[j >> 1] |= (v & 0xffffu) << ((j & 1) * 16);
}

template <int size> __device__ __forceinline__ uint32_t cvt_load_one(const void *p, uint64_t i) {
  if (size == 4) return static_cast<const uint32_t *>(p)[i];
  if (size == 2) return static_cast<const uint16_t *>(p)[i];
  return static_cast<const uint8_t *>(p)[i];
}

template <int size> __device__ __forceinline__ void cvt_store_one(void *p, uint64_t i, uint32_t v) {
  if (size == 4)
    static_cast<uint32_t *>(p)[i] = v;
  else
    static_cast<uint16_t *>(p)[i] = static_cast<uint16_t>(v);
}

/* Converts n elements.  Elements [head, head + npacks * P) go as 16-byte
 * vectors (src + head * S and dst + head * D are 16-byte aligned); the
 * elements before head and after the last pack go one by one. */
template <class C>
__global__ void __launch_bounds__(kConvertThreads)
    convert_kernel(void *dst, const void *src, uint64_t n, uint64_t head, uint64_t npacks) {
  constexpr int P = cvt_pack<C>::P, SV = cvt_pack<C>::SV, DV = cvt_pack<C>::DV;
  const uint64_t tid = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint4 *s4 = reinterpret_cast<const uint4 *>(static_cast<const uint8_t *>(src) + head * C::S);
  uint4 *d4 = reinterpret_cast<uint4 *>(static_cast<uint8_t *>(dst) + head * C::D);

  for (uint64_t p = tid; p < npacks; p += stride) {
    uint32_t w[SV * 4];
#pragma unroll
    for (int i = 0; i < SV; i++) {
      uint4 q = __ldcs(s4 + p * SV + i);
      w[4 * i] = q.x;
      w[4 * i + 1] = q.y;
      w[4 * i + 2] = q.z;
      w[4 * i + 3] = q.w;
    }
    uint32_t o[DV * 4];
#pragma unroll
    for (int i = 0; i < DV * 4; i++) o[i] = 0;
#pragma unroll
    for (int j = 0; j < P; j++) cvt_insert<C::D>(o, j, C::op(cvt_extract<C::S>(w, j)));
#pragma unroll
    for (int i = 0; i < DV; i++)
      __stcs(d4 + p * DV + i, make_uint4(o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]));
  }

  const uint64_t tail = head + npacks * P;
  const uint64_t scalar = head + (n - tail);
  for (uint64_t k = tid; k < scalar; k += stride) {
    uint64_t i = k < head ? k : tail + (k - head);
    cvt_store_one<C::D>(dst, i, C::op(cvt_load_one<C::S>(src, i)));
  }
}

/* ------------------------------------------------------------------------ */
/* Launchers */

/* Threads per SM the grid aims for (full occupancy on sm_80 and sm_90). */
constexpr int kConvertBlocksPerSm = 2048 / kConvertThreads;

template <class C>
int convert_launch_pair(void *dst, const void *src, uint64_t n, cudaStream_t stream) {
  constexpr int P = cvt_pack<C>::P;
  const uintptr_t da = reinterpret_cast<uintptr_t>(dst), sa = reinterpret_cast<uintptr_t>(src);
  /* The first index where both sides are 16-byte aligned, if any: the
   * alignment pattern repeats every P elements. */
  uint64_t head = n, npacks = 0;
  for (uint64_t i = 0; i < static_cast<uint64_t>(P) && i < n; i++) {
    if ((da + i * C::D) % 16 == 0 && (sa + i * C::S) % 16 == 0) {
      head = i;
      npacks = (n - i) / P;
      break;
    }
  }
  const uint64_t scalar = n - npacks * P;
  const uint64_t work = npacks > scalar ? npacks : scalar;

  int device = 0, sms = 0;
  CHECK_CUDA(NULL, cudaGetDevice(&device));
  CHECK_CUDA(NULL, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  uint64_t blocks = (work + kConvertThreads - 1) / kConvertThreads;
  const uint64_t max_blocks = static_cast<uint64_t>(sms > 0 ? sms : 1) * kConvertBlocksPerSm;
  if (blocks > max_blocks) blocks = max_blocks;
  if (blocks == 0) blocks = 1;
  convert_kernel<C><<<static_cast<unsigned>(blocks), kConvertThreads, 0, stream>>>(dst, src, n, head,
                                                                                  npacks);
  CHECK_CUDA(NULL, cudaGetLastError());
  return HOIST_OK;
}

} // namespace

extern "C" int hoist_convert_launch(void *dst, hoist_dtype dst_type, const void *src,
                                    hoist_dtype src_type, uint64_t n_elements, void *stream_) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  if (!hoist_convert_supported(src_type, dst_type))
    return hoist_fail(NULL, HOIST_UNSUPPORTED, "convert: %s -> %s is not a supported conversion",
                      hoist_dtype_name(src_type) ? hoist_dtype_name(src_type) : "?",
                      hoist_dtype_name(dst_type) ? hoist_dtype_name(dst_type) : "?");
  const unsigned sbits = hoist_dtype_bits(src_type), dbits = hoist_dtype_bits(dst_type);
  uint64_t src_bits, dst_bits;
  if (!hoist_mul_u64(n_elements, sbits, &src_bits) || !hoist_mul_u64(n_elements, dbits, &dst_bits))
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: %llu elements of %s -> %s overflow the byte size",
                      static_cast<unsigned long long>(n_elements), hoist_dtype_name(src_type),
                      hoist_dtype_name(dst_type));
  if (n_elements == 0) return HOIST_OK;
  if (!dst || !src)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT, "convert: NULL %s pointer for %llu elements",
                      dst ? "source" : "destination", static_cast<unsigned long long>(n_elements));
  if (src_bits % 8 != 0)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: %llu elements of %s are not a whole number of bytes",
                      static_cast<unsigned long long>(n_elements), hoist_dtype_name(src_type));
  const uint64_t sbytes = src_bits / 8, dbytes = dst_bits / 8;
  const uintptr_t sa = reinterpret_cast<uintptr_t>(src), da = reinterpret_cast<uintptr_t>(dst);
  if (sbytes > UINTPTR_MAX - sa || dbytes > UINTPTR_MAX - da)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT, "convert: range wraps the address space");
  if (sa < da + dbytes && da < sa + sbytes)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: source [%#llx, +%llu) and destination [%#llx, +%llu) overlap",
                      static_cast<unsigned long long>(sa), static_cast<unsigned long long>(sbytes),
                      static_cast<unsigned long long>(da), static_cast<unsigned long long>(dbytes));
  if (src_type == dst_type) {
    CHECK_CUDA(NULL, cudaMemcpyAsync(dst, src, sbytes, cudaMemcpyDeviceToDevice, stream));
    return HOIST_OK;
  }
  if (sa % (sbits / 8) != 0 || da % (dbits / 8) != 0)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: %s source %#llx or %s destination %#llx is not aligned to its "
                      "element size",
                      hoist_dtype_name(src_type), static_cast<unsigned long long>(sa),
                      hoist_dtype_name(dst_type), static_cast<unsigned long long>(da));

#define HOIST_CVT_CASE(from, to, tag)                                              \
  if (src_type == HOIST_DTYPE_##from && dst_type == HOIST_DTYPE_##to)               \
    return convert_launch_pair<tag>(dst, src, n_elements, stream);
  HOIST_CVT_CASE(F32, BF16, cvt_f32_bf16)
  HOIST_CVT_CASE(F32, F16, cvt_f32_f16)
  HOIST_CVT_CASE(F16, BF16, cvt_f16_bf16)
  HOIST_CVT_CASE(BF16, F16, cvt_bf16_f16)
  HOIST_CVT_CASE(BF16, F32, cvt_bf16_f32)
  HOIST_CVT_CASE(F16, F32, cvt_f16_f32)
  HOIST_CVT_CASE(F8_E4M3, BF16, cvt_e4m3_bf16)
  HOIST_CVT_CASE(F8_E4M3, F16, cvt_e4m3_f16)
  HOIST_CVT_CASE(F8_E4M3, F32, cvt_e4m3_f32)
  HOIST_CVT_CASE(F8_E5M2, BF16, cvt_e5m2_bf16)
  HOIST_CVT_CASE(F8_E5M2, F16, cvt_e5m2_f16)
  HOIST_CVT_CASE(F8_E5M2, F32, cvt_e5m2_f32)
#undef HOIST_CVT_CASE
  /* hoist_convert_supported() and the table above disagree: a bug here. */
  return hoist_fail(NULL, HOIST_UNSUPPORTED, "convert: %s -> %s has no kernel",
                    hoist_dtype_name(src_type), hoist_dtype_name(dst_type));
}
