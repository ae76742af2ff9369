/* convert.cu — device-side dtype conversion, used by the upload path to turn
 * a source chunk in the scratch ring into the target dtype in the arena, so
 * the device never holds a checkpoint twice.
 *
 * The element conversions are those of runtime/convert_ref.h, the source the
 * CPU reference compiles (round to nearest even, quiet NaNs with the payload
 * rules stated there, F16 overflow to inf, exact subnormals, OCP FP8
 * decoding), in the branch-free forms of kernels/convert_fast.h or a
 * shared-memory table filled from the reference, bit-identical to it
 * (checked exhaustively on the CPU and on the device).
 *
 * The kernel is the template of convert_kernels.cuh (element function,
 * layout, unroll, store hint, grid); this file picks one variant per pair
 * from bench_kernels' measurements (the table in hoist__convert_launch(),
 * numbers in bench/RESULTS.md).  tests/test_gpu_kernels.c checks exactly
 * these variants exhaustively; bench_kernels checks every variant it times
 * against the CPU reference. */
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

extern "C" {
#include "checks.h"
}
#include "convert_kernels.cuh"
#include "cuda_device.cuh"
#include "convert_ref.h"
#include "kernels.h"

extern "C" int hoist__convert_launch(void *dst, hoist_dtype dst_type, const void *src,
                                    hoist_dtype src_type, uint64_t n_elements, void *stream_) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  if (!hoist__convert_supported(src_type, dst_type))
    return hoist__fail(NULL, HOIST_UNSUPPORTED, "convert: %s -> %s is not a supported conversion",
                      hoist_dtype_name(src_type) ? hoist_dtype_name(src_type) : "?",
                      hoist_dtype_name(dst_type) ? hoist_dtype_name(dst_type) : "?");
  const unsigned sbits = hoist_dtype_bits(src_type), dbits = hoist_dtype_bits(dst_type);
  uint64_t src_bits, dst_bits;
  if (!hoist__mul_u64(n_elements, sbits, &src_bits) || !hoist__mul_u64(n_elements, dbits, &dst_bits))
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: %llu elements of %s -> %s overflow the byte size",
                      static_cast<unsigned long long>(n_elements), hoist_dtype_name(src_type),
                      hoist_dtype_name(dst_type));
  if (n_elements == 0) return HOIST_OK;
  if (!dst || !src)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "convert: NULL %s pointer for %llu elements",
                      dst ? "source" : "destination", static_cast<unsigned long long>(n_elements));
  if (src_bits % 8 != 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: %llu elements of %s are not a whole number of bytes",
                      static_cast<unsigned long long>(n_elements), hoist_dtype_name(src_type));
  const uint64_t sbytes = src_bits / 8, dbytes = dst_bits / 8;
  const uintptr_t sa = reinterpret_cast<uintptr_t>(src), da = reinterpret_cast<uintptr_t>(dst);
  if (sbytes > UINTPTR_MAX - sa || dbytes > UINTPTR_MAX - da)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "convert: range wraps the address space");
  if (sa < da + dbytes && da < sa + sbytes)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: source [%#llx, +%llu) and destination [%#llx, +%llu) overlap",
                      static_cast<unsigned long long>(sa), static_cast<unsigned long long>(sbytes),
                      static_cast<unsigned long long>(da), static_cast<unsigned long long>(dbytes));
  if (src_type == dst_type) {
    CHECK_CUDA(NULL, cudaMemcpyAsync(dst, src, sbytes, cudaMemcpyDeviceToDevice, stream));
    return HOIST_OK;
  }
  if (sa % (sbits / 8) != 0 || da % (dbits / 8) != 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "convert: %s source %#llx or %s destination %#llx is not aligned to its "
                      "element size",
                      hoist_dtype_name(src_type), static_cast<unsigned long long>(sa),
                      hoist_dtype_name(dst_type), static_cast<unsigned long long>(da));

  int device = 0, sms = 0;
  CHECK_CUDA(NULL, hoist_kernels::current_device_sms(&device, &sms));

  /* The variant per pair: element function (REF / FAST / TABLE), layout
   * (WIDE / COALESCED), units per thread per iteration, streaming stores,
   * blocks per SM (0: one pass).  bench_kernels prints its best variant per
   * pair as a line of this table. */
  using namespace hoist_cvt;
#define HOIST_CVT_CASE(from, to, tag, elem, layout, unroll, cs, grid)                          \
  if (src_type == HOIST_DTYPE_##from && dst_type == HOIST_DTYPE_##to) {                       \
    CHECK_CUDA(NULL, (launch<tag, ELEM_##elem, LAYOUT_##layout, unroll, cs>(dst, src, n_elements, \
                                                                   grid, device, sms, stream))); \
    return HOIST_OK;                                                                           \
  }
  HOIST_CVT_CASE(F32, BF16, f32_bf16, FAST, COALESCED, 2, true, 0) /* H200 2026-11-27: 102.2 % of D2D copy */
  HOIST_CVT_CASE(F32, F16, f32_f16, REF, WIDE, 1, true, 0) /* H200 2026-11-27: 102.8 % of D2D copy */
  HOIST_CVT_CASE(F16, BF16, f16_bf16, FAST, COALESCED, 4, false, 8) /* H200 2026-11-27: 90.2 % of D2D copy (hardware cvt) */
  HOIST_CVT_CASE(BF16, F16, bf16_f16, FAST, COALESCED, 4, true, 0) /* H200 2026-11-27: 96.3 % of D2D copy */
  HOIST_CVT_CASE(BF16, F32, bf16_f32, FAST, COALESCED, 1, true, 0) /* H200 2026-11-27: 97.5 % of D2D copy */
  HOIST_CVT_CASE(F16, F32, f16_f32, FAST, COALESCED, 2, true, 0) /* H200 2026-11-27: 97.7 % of D2D copy */
  HOIST_CVT_CASE(F8_E4M3, BF16, e4m3_bf16, FAST, COALESCED, 4, false, 0) /* H200 2026-11-27: 94.0 % of D2D copy */
  HOIST_CVT_CASE(F8_E4M3, F16, e4m3_f16, TABLE, COALESCED, 4, true, 0) /* H200 2026-11-27: 94.1 % of D2D copy */
  HOIST_CVT_CASE(F8_E4M3, F32, e4m3_f32, FAST, COALESCED, 2, false, 0) /* H200 2026-11-27: 97.2 % of D2D copy */
  HOIST_CVT_CASE(F8_E5M2, BF16, e5m2_bf16, TABLE, COALESCED, 4, true, 0) /* H200 2026-11-27: 94.4 % of D2D copy */
  HOIST_CVT_CASE(F8_E5M2, F16, e5m2_f16, FAST, COALESCED, 2, true, 0) /* H200 2026-11-27: 97.5 % of D2D copy */
  HOIST_CVT_CASE(F8_E5M2, F32, e5m2_f32, TABLE, COALESCED, 2, true, 0) /* H200 2026-11-27: 96.9 % of D2D copy */
#undef HOIST_CVT_CASE
  /* hoist__convert_supported() and the table above disagree: a bug here. */
  return hoist__fail(NULL, HOIST_UNSUPPORTED, "convert: %s -> %s has no kernel",
                    hoist_dtype_name(src_type), hoist_dtype_name(dst_type));
}
