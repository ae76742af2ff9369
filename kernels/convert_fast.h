/* convert_fast.h — cheaper element functions for the conversion kernels,
 * bit-identical to the definitions in runtime/convert_ref.h.
 *
 * The reference functions are written for clarity (branches, clz loops for
 * subnormals, every pair composed through F32).  On the device each branch
 * becomes a select and the subnormal paths cost a dozen instructions per
 * element, which made the F8 and F16 -> BF16 kernels instruction-bound.
 * These versions are branch-free and short:
 *   - subnormals are normalized with one exact single-precision add or
 *     subtract (the Sterbenz-exact "magic number" trick: the result is a
 *     multiple of the subnormal step and exactly representable, so IEEE
 *     round-to-nearest-even gives the same value on every IEEE machine;
 *     flushing a denormal input to zero cannot change a result either: such
 *     inputs round to zero in F16 and never occur in the widening paths);
 *   - conversions that are exact (F8 -> F16/BF16/F32, F8_E5M2 -> BF16) drop
 *     the rounding step of the composition; the NaN encodings are those the
 *     reference produces.
 * Equality with the reference is checked exhaustively on the CPU (every 8-
 * and 16-bit source and all 2^32 F32 patterns) by `bench_kernels
 * --check-cpu`, and on the device by the bench (each variant against the
 * CPU reference) and tests/test_gpu_kernels.c (the launcher's choice).
 *
 * Pure functions on bit patterns; host and device; no state. */
#ifndef HOIST_CONVERT_FAST_H
#define HOIST_CONVERT_FAST_H

#include "convert_ref.h"

#include <string.h>

/* Bits <-> float, and an IEEE single-precision add (never contracted into an
 * FMA: nvcc's __fadd_rn, and a lone add on the host). */
HOIST_CVT_FN float hoist__cvtf_as_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}

HOIST_CVT_FN uint32_t hoist__cvtf_as_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
#endif
}

HOIST_CVT_FN float hoist__cvtf_add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

/* ---- Widening. */

/* F16 bits -> F32 bits.  Subnormal m * 2^-24: (1 + m/1024) * 2^-14 - 2^-14,
 * exact; m = 0 gives +0. */
HOIST_CVT_FN uint32_t hoist__cvtf_f16_to_f32(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t a = h & 0x7fffu;
  uint32_t r = (a << 13) + (112u << 23);
  if (a >= 0x7c00u) r += 112u << 23;    /* inf / NaN: exponent 255 */
  if (a > 0x7c00u) r |= 0x00400000u;    /* NaN: quiet, payload kept */
  if (a < 0x0400u)
    r = hoist__cvtf_as_bits(hoist__cvtf_add(hoist__cvtf_as_float((a << 13) | (113u << 23)),
                                          -6.103515625e-05f /* 2^-14 */));
  return sign | r;
}

/* F8_E4M3 bits -> F32 bits.  Subnormal m * 2^-9: (1 + m/8) * 2^-6 - 2^-6. */
HOIST_CVT_FN uint32_t hoist__cvtf_e4m3_to_f32(uint32_t v) {
  const uint32_t sign = (v & 0x80u) << 24;
  const uint32_t a = v & 0x7fu;
  uint32_t r = (a << 20) + (120u << 23);
  if (a < 8u)
    r = hoist__cvtf_as_bits(
        hoist__cvtf_add(hoist__cvtf_as_float((a << 20) | (121u << 23)), -0.015625f /* 2^-6 */));
  if (a == 0x7fu) r = 0x7fc00000u;
  return sign | r;
}

/* F8_E4M3 -> BF16 is exact: the top half of the F32 (NaN: 0x7FC0). */
HOIST_CVT_FN uint32_t hoist__cvtf_e4m3_to_bf16(uint32_t v) { return hoist__cvtf_e4m3_to_f32(v) >> 16; }

/* F8_E4M3 -> F16 is exact (every value, subnormals included, is a normal
 * F16 or zero); NaN gives 0x7E00 with the sign, as the reference. */
HOIST_CVT_FN uint32_t hoist__cvtf_e4m3_to_f16(uint32_t v) {
  const uint32_t sign = (v & 0x80u) << 8;
  const uint32_t a = v & 0x7fu;
  uint32_t r = (a << 7) + (8u << 10);
  if (a < 8u) /* subnormal: exact F32, rebias 127 -> 15; low bits are zero */
    r = (hoist__cvtf_as_bits(
             hoist__cvtf_add(hoist__cvtf_as_float((a << 20) | (121u << 23)), -0.015625f)) -
         (112u << 23)) >> 13;
  if (a == 0u) r = 0u;
  if (a == 0x7fu) r = 0x7e00u;
  return sign | r;
}

/* F8_E5M2 is the top byte of an F16: the F16 with a NaN made quiet. */
HOIST_CVT_FN uint32_t hoist__cvtf_e5m2_to_f16(uint32_t v) {
  const uint32_t h = (v & 0xffu) << 8;
  return (h & 0x7fffu) > 0x7c00u ? h | 0x0200u : h;
}

HOIST_CVT_FN uint32_t hoist__cvtf_e5m2_to_f32(uint32_t v) {
  return hoist__cvtf_f16_to_f32((v & 0xffu) << 8);
}

/* F8_E5M2 -> BF16 is exact (2 mantissa bits, F32's exponent range): the
 * top half of the F32, whose NaNs already carry the quiet bit. */
HOIST_CVT_FN uint32_t hoist__cvtf_e5m2_to_bf16(uint32_t v) { return hoist__cvtf_e5m2_to_f32(v) >> 16; }

/* ---- Narrowing. */

/* F32 bits -> F16 bits.  The subnormal range (|x| < 2^-14) rounds by one
 * add: |x| + 0.5 lands in [0.5, 1] where the F32 step is 2^-24, the F16
 * subnormal step, so the hardware's round-to-nearest-even does the F16
 * rounding (up to 2^-14 itself, the smallest normal F16 0x0400). */
HOIST_CVT_FN uint32_t hoist__cvtf_f32_to_f16(uint32_t x) {
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  const uint32_t n = a - 0x38000000u; /* rebias 127 -> 15 */
  uint32_t r = (n + 0x0fffu + ((n >> 13) & 1u)) >> 13;
  if (a < 0x38800000u)
    r = hoist__cvtf_as_bits(hoist__cvtf_add(hoist__cvtf_as_float(a), 0.5f)) - 0x3f000000u;
  if (a >= 0x477ff000u) r = 0x7c00u; /* >= 65520: inf */
  if (a > 0x7f800000u) r = 0x7e00u | ((a >> 13) & 0x3ffu);
  return sign | r;
}

HOIST_CVT_FN uint32_t hoist__cvtf_bf16_to_f16(uint32_t b) {
  return hoist__cvtf_f32_to_f16((b & 0xffffu) << 16);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
/* On the device: the hardware conversions.  F16 -> F32 is exact and
 * cvt.rn.bf16.f32 rounds to nearest even, as the reference does, so they
 * agree everywhere but on NaNs (the hardware returns a canonical NaN), which
 * take the reference path.  The composition through integer code was
 * instruction-bound at 79 % of a D2D copy. */
HOIST_CVT_FN uint32_t hoist__cvtf_f16_to_bf16(uint32_t h) {
  if ((h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0u)
    return hoist__cvt_f32_to_bf16(hoist__cvtf_f16_to_f32(h));
  unsigned short in = (unsigned short)h, out;
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(in));
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(out) : "f"(f));
  return out;
}
#else
HOIST_CVT_FN uint32_t hoist__cvtf_f16_to_bf16(uint32_t h) {
  return hoist__cvt_f32_to_bf16(hoist__cvtf_f16_to_f32(h));
}
#endif

#endif /* HOIST_CONVERT_FAST_H */
