/* convert_ref.h — the bit-exact definition of hoist's floating-point dtype
 * conversions, shared by the CPU reference (convert_ref.c) and the device
 * kernels (kernels/convert.cu).
 *
 * Every element function below works on bit patterns with integer
 * operations only, so the same source compiled by the host compiler and by
 * nvcc gives bit-identical results by construction; the GPU tests still
 * check that exhaustively.
 *
 * Definition
 *   - Widening (F16, BF16, F8_E4M3, F8_E5M2 -> F32) is exact.  Subnormal
 *     inputs become normal F32 values; ±0 and ±inf are kept.
 *   - Narrowing (F32 -> F16, F32 -> BF16) rounds to nearest, ties to even.
 *     F16 overflow gives ±inf: every |x| >= 65520 (the midpoint between
 *     65504 and 2^16) becomes inf, as round-to-nearest-even requires.  F16
 *     subnormals are produced exactly (results below 2^-25 flush to ±0, a
 *     tie at 2^-25 goes to the even value 0).
 *   - Every other pair goes through F32: widen exactly, then narrow once, so
 *     there is never a double rounding (F16 <-> BF16, F8 -> F16/BF16).
 *   - NaN stays NaN, quiet, with its sign.  Payloads: widening puts the
 *     source mantissa at the top of the F32 mantissa and sets the quiet bit;
 *     narrowing keeps the top mantissa bits that fit (F16: 10, BF16: 7) and
 *     sets the quiet bit.  F8_E4M3 (OCP e4m3fn, bias 7, no infinities,
 *     S.1111.111 is its only NaN, max 448) has no payload: its NaN becomes
 *     the F32 quiet NaN 0x7FC00000 with the sign.  F8_E5M2 (OCP, bias 15,
 *     IEEE-like with inf and NaNs) is the top byte of an F16.
 *
 * Byte order is the host's (little-endian on every supported machine), as
 * in safetensors. */
#ifndef HOIST_CONVERT_REF_H
#define HOIST_CONVERT_REF_H

#include "hoist.h"

#include <stdbool.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define HOIST_CVT_FN static __host__ __device__ __forceinline__
#else
#define HOIST_CVT_FN static inline
#endif

/* Count of leading zero bits of a nonzero 32-bit value. */
HOIST_CVT_FN int hoist__cvt_clz32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __clz((int)x);
#else
  return __builtin_clz(x);
#endif
}

/* ---- Widening: exact. */

/* F16 bits -> F32 bits. */
HOIST_CVT_FN uint32_t hoist__cvt_f16_to_f32(uint32_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) /* inf, or NaN made quiet with its payload on top */
    return sign | 0x7f800000u | (m ? 0x00400000u | (m << 13) : 0u);
  if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);
  if (m == 0) return sign;
  /* Subnormal: m * 2^-24 with its leading one at bit p. */
  uint32_t p = 31u - (uint32_t)hoist__cvt_clz32(m);
  return sign | ((p + 103u) << 23) | ((m << (23u - p)) & 0x007fffffu);
}

/* BF16 bits -> F32 bits (a NaN is made quiet). */
HOIST_CVT_FN uint32_t hoist__cvt_bf16_to_f32(uint32_t b) {
  uint32_t x = (b & 0xffffu) << 16;
  if ((x & 0x7fffffffu) > 0x7f800000u) x |= 0x00400000u;
  return x;
}

/* F8_E4M3 (e4m3fn) bits -> F32 bits. */
HOIST_CVT_FN uint32_t hoist__cvt_e4m3_to_f32(uint32_t v) {
  uint32_t sign = (v & 0x80u) << 24;
  uint32_t e = (v >> 3) & 0xfu;
  uint32_t m = v & 0x7u;
  if ((v & 0x7fu) == 0x7fu) return sign | 0x7fc00000u;
  if (e != 0) return sign | ((e + 120u) << 23) | (m << 20);
  if (m == 0) return sign;
  /* Subnormal: m * 2^-9 with its leading one at bit p. */
  uint32_t p = 31u - (uint32_t)hoist__cvt_clz32(m);
  return sign | ((p + 118u) << 23) | ((m << (23u - p)) & 0x007fffffu);
}

/* F8_E5M2 bits -> F32 bits: E5M2 is the top byte of an F16. */
HOIST_CVT_FN uint32_t hoist__cvt_e5m2_to_f32(uint32_t v) {
  return hoist__cvt_f16_to_f32((v & 0xffu) << 8);
}

/* ---- Narrowing: round to nearest, ties to even. */

/* F32 bits -> BF16 bits. */
HOIST_CVT_FN uint32_t hoist__cvt_f32_to_bf16(uint32_t x) {
  if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x0040u;
  /* Adding 0x7fff plus the kept lsb rounds ties to even; a carry into the
   * exponent is the correct result (up to inf for the largest values). */
  return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

/* F32 bits -> F16 bits. */
HOIST_CVT_FN uint32_t hoist__cvt_f32_to_f16(uint32_t x) {
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);
  if (a >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520: inf */
  if (a >= 0x38800000u) {                      /* >= 2^-14: normal F16 */
    uint32_t r = a - 0x38000000u;              /* rebias 127 -> 15 */
    return sign | ((r + 0x0fffu + ((r >> 13) & 1u)) >> 13);
  }
  /* Subnormal F16 (or zero): round(mantissa * 2^(e - 150 + 24)). */
  uint32_t e = a >> 23;
  if (e < 102u) return sign; /* below 2^-25: rounds to zero */
  uint32_t m = (a & 0x007fffffu) | 0x00800000u;
  uint32_t shift = 126u - e; /* 14 .. 24 */
  uint32_t q = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1u);
  q += (rem > half || (rem == half && (q & 1u))) ? 1u : 0u;
  return sign | q;
}

/* ---- Every supported pair, by composition through F32. */

HOIST_CVT_FN uint32_t hoist__cvt_f16_to_bf16(uint32_t h) {
  return hoist__cvt_f32_to_bf16(hoist__cvt_f16_to_f32(h));
}
HOIST_CVT_FN uint32_t hoist__cvt_bf16_to_f16(uint32_t b) {
  return hoist__cvt_f32_to_f16(hoist__cvt_bf16_to_f32(b));
}
HOIST_CVT_FN uint32_t hoist__cvt_e4m3_to_bf16(uint32_t v) {
  return hoist__cvt_f32_to_bf16(hoist__cvt_e4m3_to_f32(v));
}
HOIST_CVT_FN uint32_t hoist__cvt_e4m3_to_f16(uint32_t v) {
  return hoist__cvt_f32_to_f16(hoist__cvt_e4m3_to_f32(v));
}
HOIST_CVT_FN uint32_t hoist__cvt_e5m2_to_bf16(uint32_t v) {
  return hoist__cvt_f32_to_bf16(hoist__cvt_e5m2_to_f32(v));
}
HOIST_CVT_FN uint32_t hoist__cvt_e5m2_to_f16(uint32_t v) {
  return hoist__cvt_f32_to_f16(hoist__cvt_e5m2_to_f32(v));
}

#ifdef __cplusplus
extern "C" {
#endif

/* Converts n elements of src_type at src into dst_type at dst on the CPU,
 * element by element with the functions above (a memcpy when the types are
 * equal).  The buffers must not overlap and need no alignment.  Returns
 * HOIST_OK, HOIST_UNSUPPORTED for a pair hoist__convert_supported()
 * (kernels/kernels.h) refuses,
 * or HOIST_INVALID_ARGUMENT for a NULL buffer with n > 0 or a byte size that
 * overflows.  Records nothing; thread-safe. */
int hoist__convert_ref(void *dst, hoist_dtype dst_type, const void *src, hoist_dtype src_type,
                      uint64_t n);

#ifdef __cplusplus
}
#endif

#endif /* HOIST_CONVERT_REF_H */
