/* test_convert_ref.c — the CPU reference of the dtype conversions
 * (runtime/convert_ref.h) against hand-checked values and against
 * spec-level properties (nearest value, ties to even, overflow edge; the
 * compiler's own _Float16 conversion where it has one), and the host block
 * checksum (runtime/checksum_host.c: every SIMD form, hash-only and fused
 * with a copy) against a naive re-implementation of its definition, and
 * one thread's copy / fused / hash rates printed.  Runs in CI without a GPU. */
#include "testutil.h"

#include "checksum_host.h"
#include "convert_ref.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cvt_case {
  uint32_t in, out;
} cvt_case;

typedef uint32_t (*elem_fn)(uint32_t);

static void check_table(const char *what, elem_fn fn, const cvt_case *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t got = fn(c[i].in);
    ck_assert_msg(got == c[i].out, "%s(0x%08x) = 0x%08x, expected 0x%08x", what, c[i].in, got,
                  c[i].out);
  }
}
#define CHECK_TABLE(fn, table) check_table(#fn, fn, table, sizeof table / sizeof table[0])

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static int is_nan32(uint32_t x) { return (x & 0x7fffffffu) > 0x7f800000u; }
static int is_nan16(uint32_t h) { return (h & 0x7fffu) > 0x7c00u; }
static int is_nanbf(uint32_t b) { return (b & 0x7fffu) > 0x7f80u; }

START_TEST(f32_to_bf16_values) {
  static const cvt_case t[] = {
      {0x3f800000u, 0x3f80u}, /* 1.0 */
      {0xc0200000u, 0xc020u}, /* -2.5 */
      {0x477fe000u, 0x4780u}, /* 65504 rounds up to 65536 */
      {0x3f808000u, 0x3f80u}, /* tie, even stays */
      {0x3f818000u, 0x3f82u}, /* tie, odd rounds up */
      {0x3f808001u, 0x3f81u}, /* just above the tie */
      {0x3f807fffu, 0x3f80u}, /* just below */
      {0x00000000u, 0x0000u}, {0x80000000u, 0x8000u},
      {0x7f800000u, 0x7f80u}, {0xff800000u, 0xff80u},
      {0x7f7fffffu, 0x7f80u}, /* largest float rounds to inf */
      {0x7f7f7fffu, 0x7f7fu}, /* below the overflow midpoint */
      {0x00000001u, 0x0000u}, /* F32 subnormals round like any value */
      {0x00008000u, 0x0000u}, {0x00018000u, 0x0002u}, {0x80010000u, 0x8001u},
      {0x7fc00000u, 0x7fc0u}, /* quiet NaN */
      {0x7f800001u, 0x7fc0u}, /* signalling NaN: quiet, never inf */
      {0xffa00000u, 0xffe0u}, /* sign and top payload bits kept */
  };
  CHECK_TABLE(hoist__cvt_f32_to_bf16, t);
}
END_TEST

START_TEST(f32_to_f16_values) {
  static const cvt_case t[] = {
      {0x3f800000u, 0x3c00u}, {0xc0200000u, 0xc100u},
      {0x477fe000u, 0x7bffu}, /* 65504, the largest F16 */
      {0x477ff000u, 0x7c00u}, /* 65520 rounds to inf */
      {0xc77ff000u, 0xfc00u}, {0x47800000u, 0x7c00u}, {0x7f7fffffu, 0x7c00u},
      {0x477fefffu, 0x7bffu}, /* just below 65520 */
      {0x33800000u, 0x0001u}, /* 2^-24, smallest subnormal */
      {0xb3800000u, 0x8001u}, {0x33000000u, 0x0000u}, /* 2^-25: tie to even 0 */
      {0x33000001u, 0x0001u}, {0x33c00000u, 0x0002u}, /* 1.5 * 2^-24: tie to 2 */
      {0x32ffffffu, 0x0000u}, {0x387fc000u, 0x03ffu}, /* largest subnormal */
      {0x387fe000u, 0x0400u}, /* rounds up into the smallest normal */
      {0x38800000u, 0x0400u}, {0x3f801000u, 0x3c00u}, /* 1 + 2^-11: tie, even */
      {0x3f803000u, 0x3c02u}, {0x3f801001u, 0x3c01u}, {0x00000001u, 0x0000u},
      {0x80000001u, 0x8000u}, {0x00000000u, 0x0000u}, {0x80000000u, 0x8000u},
      {0x7f800000u, 0x7c00u}, {0xff800000u, 0xfc00u}, {0x7fc00000u, 0x7e00u},
      {0x7f800001u, 0x7e00u}, /* signalling NaN: quiet */
      {0xff802000u, 0xfe01u}, /* sign and top 10 payload bits kept */
  };
  CHECK_TABLE(hoist__cvt_f32_to_f16, t);
  ck_assert_uint_eq(hoist__cvt_f32_to_f16(f32_bits(65519.99f)), 0x7bffu);
  ck_assert_uint_eq(hoist__cvt_f32_to_f16(f32_bits(65520.0f)), 0x7c00u);
  ck_assert_uint_eq(hoist__cvt_f32_to_f16(f32_bits(ldexpf(1.0f, -24))), 0x0001u);
  ck_assert_uint_eq(hoist__cvt_f32_to_f16(f32_bits(ldexpf(1.0f, -25))), 0x0000u);
}
END_TEST

START_TEST(widening_values) {
  static const cvt_case f16[] = {
      {0x3c00u, 0x3f800000u}, {0xc100u, 0xc0200000u}, {0x7bffu, 0x477fe000u},
      {0x0001u, 0x33800000u}, {0x8001u, 0xb3800000u}, {0x03ffu, 0x387fc000u},
      {0x0400u, 0x38800000u}, {0x0000u, 0x00000000u}, {0x8000u, 0x80000000u},
      {0x7c00u, 0x7f800000u}, {0xfc00u, 0xff800000u}, {0x7e00u, 0x7fc00000u},
      {0x7c01u, 0x7fc02000u}, /* signalling NaN: quiet, payload kept */
      {0xfd00u, 0xffe00000u},
  };
  CHECK_TABLE(hoist__cvt_f16_to_f32, f16);
  static const cvt_case bf16[] = {
      {0x3f80u, 0x3f800000u}, {0xc020u, 0xc0200000u}, {0x7f80u, 0x7f800000u},
      {0xff80u, 0xff800000u}, {0x7f81u, 0x7fc10000u}, {0x0001u, 0x00010000u},
      {0x0000u, 0x00000000u}, {0x8000u, 0x80000000u},
  };
  CHECK_TABLE(hoist__cvt_bf16_to_f32, bf16);
}
END_TEST

START_TEST(f16_bf16_values) {
  static const cvt_case to_bf16[] = {
      {0x3c00u, 0x3f80u}, {0xc100u, 0xc020u}, {0x7bffu, 0x4780u}, /* 65504 -> 65536 */
      {0x0001u, 0x3380u}, /* 2^-24 exactly */
      {0x3c01u, 0x3f80u}, {0x3c04u, 0x3f80u}, /* 1 + 2^-8: tie, even */
      {0x3c0cu, 0x3f82u},                     /* 1 + 3 * 2^-8: tie, up */
      {0x3c05u, 0x3f81u}, {0x0000u, 0x0000u}, {0x8000u, 0x8000u},
      {0x7c00u, 0x7f80u}, {0xfc00u, 0xff80u}, {0x7e00u, 0x7fc0u},
      {0x7c01u, 0x7fc0u}, /* NaN stays NaN */
  };
  CHECK_TABLE(hoist__cvt_f16_to_bf16, to_bf16);
  static const cvt_case to_f16[] = {
      {0x3f80u, 0x3c00u}, {0xc020u, 0xc100u}, {0x4780u, 0x7c00u}, /* 65536: inf */
      {0x477fu, 0x7bf8u},                                         /* 65280 exactly */
      {0x3380u, 0x0001u}, {0x3300u, 0x0000u}, /* 2^-25: tie to 0 */
      {0x3340u, 0x0001u}, {0x0001u, 0x0000u}, {0x8000u, 0x8000u},
      {0x7f80u, 0x7c00u}, {0xff80u, 0xfc00u}, {0x7fc1u, 0x7e08u},
  };
  CHECK_TABLE(hoist__cvt_bf16_to_f16, to_f16);
}
END_TEST

START_TEST(fp8_values) {
  static const cvt_case e4m3_f32[] = {
      {0x38u, 0x3f800000u}, /* 1.0 */
      {0xc2u, 0xc0200000u}, /* -2.5 */
      {0x7eu, 0x43e00000u}, /* 448, the largest */
      {0xfeu, 0xc3e00000u}, {0x7fu, 0x7fc00000u}, /* the NaN */
      {0xffu, 0xffc00000u}, {0x01u, 0x3b000000u}, /* 2^-9 */
      {0x07u, 0x3c600000u},                       /* 7 * 2^-9 */
      {0x08u, 0x3c800000u},                       /* 2^-6, smallest normal */
      {0x78u, 0x43800000u},                       /* 256: e4m3fn has no inf */
      {0x00u, 0x00000000u}, {0x80u, 0x80000000u},
  };
  CHECK_TABLE(hoist__cvt_e4m3_to_f32, e4m3_f32);
  static const cvt_case e4m3_f16[] = {
      {0x38u, 0x3c00u}, {0xc2u, 0xc100u}, {0x7eu, 0x5f00u}, {0x01u, 0x1800u},
      {0x7fu, 0x7e00u}, {0xffu, 0xfe00u}, {0x80u, 0x8000u},
  };
  CHECK_TABLE(hoist__cvt_e4m3_to_f16, e4m3_f16);
  static const cvt_case e4m3_bf16[] = {
      {0x38u, 0x3f80u}, {0xc2u, 0xc020u}, {0x7eu, 0x43e0u}, {0x01u, 0x3b00u},
      {0x7fu, 0x7fc0u}, {0xffu, 0xffc0u},
  };
  CHECK_TABLE(hoist__cvt_e4m3_to_bf16, e4m3_bf16);
  static const cvt_case e5m2_f32[] = {
      {0x3cu, 0x3f800000u}, {0xc1u, 0xc0200000u}, {0x7cu, 0x7f800000u}, /* inf */
      {0xfcu, 0xff800000u}, {0x01u, 0x37800000u},                       /* 2^-16 */
      {0x7bu, 0x47600000u},                                             /* 57344 */
      {0x7du, 0x7fe00000u}, {0x7eu, 0x7fc00000u}, {0x00u, 0x00000000u},
      {0x80u, 0x80000000u},
  };
  CHECK_TABLE(hoist__cvt_e5m2_to_f32, e5m2_f32);
  static const cvt_case e5m2_f16[] = {
      {0x7cu, 0x7c00u}, {0x01u, 0x0100u}, {0x7du, 0x7f00u}, {0xc1u, 0xc100u},
  };
  CHECK_TABLE(hoist__cvt_e5m2_to_f16, e5m2_f16);
  static const cvt_case e5m2_bf16[] = {
      {0x7cu, 0x7f80u}, {0x01u, 0x3780u}, {0x7bu, 0x4760u}, {0x7du, 0x7fe0u},
  };
  CHECK_TABLE(hoist__cvt_e5m2_to_bf16, e5m2_bf16);
}
END_TEST

/* Every 8- and 16-bit pattern: widening is exact (the F32 value
 * round-trips), NaN maps to NaN, and narrowing F32 back gives the input
 * (NaNs: a NaN). */
START_TEST(exhaustive_round_trips) {
  for (uint32_t h = 0; h < 0x10000u; h++) {
    uint32_t f = hoist__cvt_f16_to_f32(h);
    ck_assert_int_eq(is_nan16(h), is_nan32(f));
    uint32_t back = hoist__cvt_f32_to_f16(f);
    if (is_nan16(h))
      ck_assert_msg(is_nan16(back) && (back & 0x8000u) == (h & 0x8000u), "f16 %04x", h);
    else
      ck_assert_msg(back == h, "f16 %04x -> %08x -> %04x", h, f, back);
    uint32_t bf = hoist__cvt_bf16_to_f32(h);
    ck_assert_int_eq(is_nanbf(h), is_nan32(bf));
    uint32_t bback = hoist__cvt_f32_to_bf16(bf);
    if (is_nanbf(h))
      ck_assert_msg(bback == (h | 0x40u), "bf16 %04x -> %04x", h, bback);
    else
      ck_assert_msg(bback == h, "bf16 %04x -> %04x", h, bback);
#ifdef __FLT16_MAX__
    if (!is_nan16(h)) { /* the compiler's own exact widening */
      _Float16 hv;
      uint16_t hb = (uint16_t)h;
      memcpy(&hv, &hb, 2);
      ck_assert_msg(f == f32_bits((float)hv), "f16 %04x", h);
    }
#endif
  }
  for (uint32_t v = 0; v < 0x100u; v++) {
    uint32_t f = hoist__cvt_e4m3_to_f32(v);
    ck_assert_int_eq((v & 0x7fu) == 0x7fu, is_nan32(f));
    ck_assert_int_eq(f >> 31, v >> 7);
    if (!is_nan32(f)) {
      /* value = (-1)^s * 2^(e-7) * (1 + m/8), or 2^-6 * m/8 for e == 0 */
      unsigned e = (v >> 3) & 0xf, m = v & 7;
      double want = e ? ldexp(1.0 + m / 8.0, (int)e - 7) : ldexp(m / 8.0, -6);
      ck_assert_msg(fabs((double)bits_f32(f)) == want, "e4m3 %02x", v);
      ck_assert_uint_eq(hoist__cvt_e4m3_to_f16(v), hoist__cvt_f32_to_f16(f));
      ck_assert_uint_eq(hoist__cvt_f16_to_f32(hoist__cvt_e4m3_to_f16(v)), f); /* exact */
    }
    uint32_t g = hoist__cvt_e5m2_to_f32(v);
    ck_assert_uint_eq(g, hoist__cvt_f16_to_f32(v << 8));
    ck_assert_int_eq(is_nan32(g), (v & 0x7fu) > 0x7cu);
  }
}
END_TEST

/* Spec-level check of a narrowing result r (bits of width 16 with sign at
 * 0x8000) for the F32 value x: r's value is the nearest representable one,
 * ties go to the even pattern, and overflow happens exactly at the
 * midpoint above the largest finite value. */
static void check_nearest(const char *what, uint32_t xb, uint32_t r, uint32_t (*widen)(uint32_t),
                          uint32_t inf_bits, double overflow_at) {
  double x = (double)bits_f32(xb), ax = fabs(x);
  ck_assert_msg((r & 0x8000u) == ((xb >> 16) & 0x8000u), "%s %08x: sign", what, xb);
  uint32_t mag = r & 0x7fffu;
  if (ax >= overflow_at) {
    ck_assert_msg(mag == inf_bits, "%s %08x -> %04x: expected inf", what, xb, r);
    return;
  }
  ck_assert_msg(mag < inf_bits, "%s %08x -> %04x: not finite", what, xb, r);
  double err = fabs(ax - (double)bits_f32(widen(mag)));
  for (int d = -1; d <= 1; d += 2) {
    if ((d < 0 && mag == 0) || (d > 0 && mag + 1 >= inf_bits)) continue;
    double other = fabs(ax - (double)bits_f32(widen(mag + (uint32_t)d)));
    ck_assert_msg(other > err || (other == err && (mag & 1u) == 0), "%s %08x -> %04x: not nearest",
                  what, xb, r);
  }
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rng_next(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static void check_f32(uint32_t xb) {
  uint32_t h = hoist__cvt_f32_to_f16(xb), b = hoist__cvt_f32_to_bf16(xb);
  if (is_nan32(xb)) {
    ck_assert(is_nan16(h) && (h & 0x200u) && (h >> 15) == (xb >> 31));
    ck_assert(is_nanbf(b) && (b & 0x40u) && (b >> 15) == (xb >> 31));
    return;
  }
  check_nearest("f16", xb, h, hoist__cvt_f16_to_f32, 0x7c00u, 65520.0);
  check_nearest("bf16", xb, b, hoist__cvt_bf16_to_f32, 0x7f80u, ldexp(2.0 - ldexp(1.0, -8), 127));
#ifdef __FLT16_MAX__
  _Float16 hv = (_Float16)bits_f32(xb); /* the compiler's round-to-nearest-even */
  uint16_t want;
  memcpy(&want, &hv, 2);
  ck_assert_msg(h == want, "f16 %08x -> %04x, compiler %04x", xb, h, want);
#endif
}

START_TEST(f32_narrowing_properties) {
  /* A stride through every exponent and mantissa, then random patterns,
   * then the neighbourhood of every rounding boundary of interest. */
  for (uint64_t x = 0; x <= 0xffffffffull; x += 65537) check_f32((uint32_t)x);
  for (int i = 0; i < 200000; i++) check_f32((uint32_t)rng_next());
  static const uint32_t edges[] = {0x477ff000u, 0x477fe000u, 0x33000000u, 0x33800000u,
                                   0x387fe000u, 0x38800000u, 0x3f808000u, 0x7f7f8000u,
                                   0x7f800000u, 0x00000000u, 0x00800000u, 0x3f801000u};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
    for (int d = -300; d <= 300; d++) {
      check_f32(edges[i] + (uint32_t)d);
      check_f32((edges[i] + (uint32_t)d) ^ 0x80000000u);
    }
}
END_TEST

START_TEST(bulk_and_supported) {
  static const hoist_dtype ok_pairs[][2] = {
      {HOIST_DTYPE_F32, HOIST_DTYPE_BF16},     {HOIST_DTYPE_F32, HOIST_DTYPE_F16},
      {HOIST_DTYPE_F16, HOIST_DTYPE_BF16},     {HOIST_DTYPE_BF16, HOIST_DTYPE_F16},
      {HOIST_DTYPE_BF16, HOIST_DTYPE_F32},     {HOIST_DTYPE_F16, HOIST_DTYPE_F32},
      {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_BF16}, {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_F16},
      {HOIST_DTYPE_F8_E4M3, HOIST_DTYPE_F32},  {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_BF16},
      {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_F16},  {HOIST_DTYPE_F8_E5M2, HOIST_DTYPE_F32},
  };
  int count = 0;
  for (int a = 0; a < HOIST_DTYPE_COUNT_; a++)
    for (int b = 0; b < HOIST_DTYPE_COUNT_; b++) {
      bool listed = a == b;
      for (size_t i = 0; i < sizeof ok_pairs / sizeof ok_pairs[0]; i++)
        listed |= ok_pairs[i][0] == (hoist_dtype)a && ok_pairs[i][1] == (hoist_dtype)b;
      ck_assert_int_eq(hoist__convert_supported((hoist_dtype)a, (hoist_dtype)b), listed);
      count += listed && a != b;
    }
  ck_assert_int_eq(count, 12);
  ck_assert(!hoist__convert_supported(HOIST_DTYPE_COUNT_, HOIST_DTYPE_COUNT_));
  ck_assert(!hoist__convert_supported(HOIST_DTYPE_F32, HOIST_DTYPE_F8_E4M3));

  /* Unaligned buffers, element by element like the table functions. */
  unsigned char src[4 * 33 + 1], dst[2 * 33 + 1];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)rng_next();
  ck_assert_int_eq(hoist__convert_ref(dst + 1, HOIST_DTYPE_F16, src + 1, HOIST_DTYPE_F32, 33),
                   HOIST_OK);
  for (int i = 0; i < 33; i++) {
    uint32_t x;
    uint16_t y;
    memcpy(&x, src + 1 + 4 * i, 4);
    memcpy(&y, dst + 1 + 2 * i, 2);
    ck_assert_uint_eq(y, hoist__cvt_f32_to_f16(x));
  }
  unsigned char wide[4 * 16];
  ck_assert_int_eq(hoist__convert_ref(wide, HOIST_DTYPE_F32, src, HOIST_DTYPE_F8_E4M3, 16), HOIST_OK);
  for (int i = 0; i < 16; i++) {
    uint32_t y;
    memcpy(&y, wide + 4 * i, 4);
    ck_assert_uint_eq(y, hoist__cvt_e4m3_to_f32(src[i]));
  }
  /* Same type: a copy, for any dtype with whole bytes. */
  ck_assert_int_eq(hoist__convert_ref(dst, HOIST_DTYPE_I64, src, HOIST_DTYPE_I64, 8), HOIST_OK);
  ck_assert_int_eq(memcmp(dst, src, 64 < sizeof dst ? 64 : sizeof dst), 0);
  ck_assert_int_eq(hoist__convert_ref(dst, HOIST_DTYPE_F4, src, HOIST_DTYPE_F4, 4), HOIST_OK);
  ck_assert_int_eq(hoist__convert_ref(dst, HOIST_DTYPE_F4, src, HOIST_DTYPE_F4, 3),
                   HOIST_INVALID_ARGUMENT);
  /* Refusals. */
  ck_assert_int_eq(hoist__convert_ref(dst, HOIST_DTYPE_F8_E4M3, src, HOIST_DTYPE_F32, 1),
                   HOIST_UNSUPPORTED);
  ck_assert_int_eq(hoist__convert_ref(NULL, HOIST_DTYPE_F16, src, HOIST_DTYPE_F32, 1),
                   HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist__convert_ref(NULL, HOIST_DTYPE_F16, NULL, HOIST_DTYPE_F32, 0), HOIST_OK);
  ck_assert_int_eq(hoist__convert_ref(dst, HOIST_DTYPE_F32, src, HOIST_DTYPE_F16, UINT64_MAX / 8),
                   HOIST_INVALID_ARGUMENT);
}
END_TEST

/* ---- Checksum. */

/* The mixer of the definition, written out here so the reference does not
 * share code with what it checks. */
static uint64_t ref_fmix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* The definition of checksum_host.h written the slow, obvious way: one byte
 * at a time, one block after another, the weights (m - i) multiplied in
 * (not the running or lane forms), no threads. */
static uint64_t naive_checksum(const unsigned char *p, uint64_t n) {
  const uint64_t k_seed = 0x9e3779b97f4a7c15ull, k_block = 0xa0761d6478bd642full,
                 k_len = 0xe7037ed1a0b428dbull;
  uint64_t acc = 0;
  for (uint64_t b = 0; b * 65536 < n; b++) {
    uint64_t start = b * 65536, len = n - start;
    if (len > 65536) len = 65536;
    uint64_t m = (len + 7) / 8, sa = 0, sb = 0;
    for (uint64_t i = 0; i < m; i++) {
      uint64_t w = 0;
      for (unsigned k = 0; k < 8; k++)
        if (i * 8 + k < len) w |= (uint64_t)p[start + i * 8 + k] << (8 * k);
      sa += w;
      sb += (m - i) * w;
    }
    acc += ref_fmix(ref_fmix(sa + b * k_block + k_seed) + sb + len * k_len);
  }
  return ref_fmix(acc + n * k_len + k_seed);
}

static unsigned char *random_bytes(size_t n) {
  unsigned char *p = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(rng_next() >> 56);
  return p;
}

static const hoist__ck_impl all_impls[] = {HOIST_CK_IMPL_SCALAR, HOIST_CK_IMPL_AVX2,
                                          HOIST_CK_IMPL_AVX512, HOIST_CK_IMPL_BEST};

/* Every implementation this CPU runs, hash-only and fused with a copy, at
 * src's alignment and one off, equals the reference; the copy is exact. */
static void check_impls(const unsigned char *src, uint64_t n, uint64_t want, unsigned char *dst) {
  for (size_t k = 0; k < sizeof all_impls / sizeof all_impls[0]; k++) {
    if (!hoist__ck_impl_available(all_impls[k])) continue;
    ck_assert_msg(hoist__ck_copy_hash(all_impls[k], NULL, src, n) == want, "%s n=%llu",
                  hoist__ck_impl_name(all_impls[k]), (unsigned long long)n);
    for (unsigned off = 0; off < 2; off++) {
      memset(dst, 0xa5, n + 2);
      ck_assert_msg(hoist__ck_copy_hash(all_impls[k], dst + off, src, n) == want, "%s copy n=%llu",
                    hoist__ck_impl_name(all_impls[k]), (unsigned long long)n);
      ck_assert(n == 0 || memcmp(dst + off, src, n) == 0);
      ck_assert(off == 0 || dst[0] == 0xa5);
      ck_assert(dst[n + off] == 0xa5);
    }
  }
}

START_TEST(checksum_matches_definition) {
  const size_t big = 5u * 1024 * 1024 + 3; /* 81 blocks, the last partial */
  unsigned char *buf = random_bytes(big + 16);
  unsigned char *dst = malloc(big + 16);
  ck_assert_ptr_nonnull(dst);
  static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 4095, 65535, 65536,
                                 65537, 65536 + 8 * 7 + 3, 131072, 3 * 65536 + 5,
                                 5u * 1024 * 1024 + 3};
  static const unsigned threads[] = {0, 1, 2, 3, 7, 16, 64, 1000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint64_t want = naive_checksum(buf, sizes[i]);
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++)
      ck_assert_msg(hoist__checksum_host(buf, sizes[i], threads[t]) == want, "n=%zu threads=%u",
                    sizes[i], threads[t]);
    check_impls(buf, sizes[i], want, dst);
    check_impls(buf + 3, sizes[i], naive_checksum(buf + 3, sizes[i]), dst);
    /* The same bytes at every misalignment give the same value. */
    for (unsigned off = 1; off < 8 && sizes[i] < 200000; off++) {
      memmove(buf + off, buf, sizes[i]);
      ck_assert_uint_eq(hoist__checksum_host(buf + off, sizes[i], 3), want);
      memmove(buf, buf + off, sizes[i]);
    }
  }
  /* Every length up to two lane steps past 1 KiB: all word counts modulo
   * the 8 lanes, with and without a partial last word; then every word
   * count of a full-size block modulo the lanes, near the block end. */
  for (size_t n = 0; n < 1100; n++) check_impls(buf, n, naive_checksum(buf, n), dst);
  for (size_t n = 65536 - 70; n <= 65536 + 70; n++) check_impls(buf, n, naive_checksum(buf, n), dst);
  ck_assert_uint_eq(hoist__checksum_host(NULL, 0, 4), naive_checksum(NULL, 0));
  ck_assert_uint_eq(hoist__ck_copy_hash(HOIST_CK_IMPL_BEST, NULL, NULL, 0), naive_checksum(NULL, 0));
  free(dst);
  free(buf);
}
END_TEST

/* Large sums: all-ones words make the lane sums and the weighted sum wrap
 * many times; the lane identity must hold modulo 2^64. */
START_TEST(checksum_wraps_modulo_2_64) {
  const size_t n = 3 * 65536 + 13;
  unsigned char *buf = malloc(n), *dst = malloc(n + 2);
  ck_assert_ptr_nonnull(buf);
  ck_assert_ptr_nonnull(dst);
  memset(buf, 0xff, n);
  check_impls(buf, n, naive_checksum(buf, n), dst);
  for (size_t i = 7; i < n; i += 16) buf[i] = 0x80; /* every other word's top byte */
  check_impls(buf, n, naive_checksum(buf, n), dst);
  free(dst);
  free(buf);
}
END_TEST

static void swap_bytes(unsigned char *buf, size_t a, size_t b, size_t len, unsigned char *tmp) {
  memcpy(tmp, buf + a, len);
  memcpy(buf + a, buf + b, len);
  memcpy(buf + b, tmp, len);
}

START_TEST(checksum_sensitivity) {
  const size_t n = 4u * 65536 + 100;
  unsigned char *buf = random_bytes(n + 64);
  const uint64_t base = hoist__checksum_host(buf, n, 4);
  ck_assert_uint_eq(base, naive_checksum(buf, n));
  /* Every single-bit flip at block edges, word edges (the top bit of a
   * word is bit 7 of its byte 7) and random places. */
  size_t where[96];
  size_t k = 0;
  static const size_t fixed[] = {0,         7,     8,         15,        65535,
                                 65536,     65537, 65536 + 7, 2 * 65536 - 1,
                                 2 * 65536 - 8, 3 * 65536 + 4095, 4u * 65536 + 95,
                                 4u * 65536 + 99};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) where[k++] = fixed[i];
  while (k < 96) where[k++] = (size_t)(rng_next() % n);
  for (size_t i = 0; i < k; i++)
    for (unsigned bit = 0; bit < 8; bit++) {
      buf[where[i]] ^= (unsigned char)(1u << bit);
      uint64_t h = hoist__ck_copy_hash(HOIST_CK_IMPL_BEST, NULL, buf, n);
      ck_assert_msg(h != base, "flip at %zu bit %u", where[i], bit);
      ck_assert_uint_eq(h, hoist__checksum_host(buf, n, 3));
      buf[where[i]] ^= (unsigned char)(1u << bit);
    }
  /* The top bit of every word of one block. */
  for (size_t i = 65536 + 7; i < 2 * 65536; i += 8) {
    buf[i] ^= 0x80;
    ck_assert_msg(hoist__ck_copy_hash(HOIST_CK_IMPL_BEST, NULL, buf, n) != base, "top bit at %zu", i);
    buf[i] ^= 0x80;
  }
  ck_assert_uint_eq(hoist__checksum_host(buf, n, 4), base);

  /* Swapping two whole blocks, or two words inside a block (neighbours,
   * lane-distance apart, far apart), changes it. */
  unsigned char *tmp = malloc(65536);
  ck_assert_ptr_nonnull(tmp);
  swap_bytes(buf, 0, 2 * 65536, 65536, tmp);
  ck_assert_uint_ne(hoist__checksum_host(buf, n, 4), base);
  swap_bytes(buf, 0, 2 * 65536, 65536, tmp);
  swap_bytes(buf, 65536, 3 * 65536, 65536, tmp);
  ck_assert_uint_ne(hoist__checksum_host(buf, n, 4), base);
  swap_bytes(buf, 65536, 3 * 65536, 65536, tmp);
  ck_assert_uint_eq(hoist__checksum_host(buf, n, 4), base);
  static const size_t pairs[][2] = {{800, 808}, {800, 864}, {0, 65528}, {65536, 65544},
                                    {4u * 65536, 4u * 65536 + 88}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    if (memcmp(buf + pairs[i][0], buf + pairs[i][1], 8) == 0) continue;
    swap_bytes(buf, pairs[i][0], pairs[i][1], 8, tmp);
    ck_assert_msg(hoist__checksum_host(buf, n, 4) != base, "swap %zu %zu", pairs[i][0], pairs[i][1]);
    swap_bytes(buf, pairs[i][0], pairs[i][1], 8, tmp);
  }
  ck_assert_uint_eq(hoist__checksum_host(buf, n, 4), base);
  free(tmp);

  /* Appended zero bytes change it (inside the last word and past it). */
  memset(buf + n, 0, 64);
  for (size_t extra = 1; extra <= 64; extra++)
    ck_assert_msg(hoist__checksum_host(buf, n + extra, 2) != base, "%zu zeros appended", extra);

  /* Length matters even when the extra bytes are zero; zeros hash to
   * distinct nonzero values. */
  unsigned char *zeros = calloc(65537, 1);
  ck_assert_ptr_nonnull(zeros);
  uint64_t z0 = hoist__checksum_host(zeros, 0, 1), z1 = hoist__checksum_host(zeros, 1, 1),
           z8 = hoist__checksum_host(zeros, 8, 1), zb = hoist__checksum_host(zeros, 65536, 1),
           zb1 = hoist__checksum_host(zeros, 65537, 1);
  ck_assert(z0 != z1 && z1 != z8 && z8 != zb && zb != zb1 && z0 != 0 && zb != 0);
  free(zeros);
  free(buf);
}
END_TEST

/* Pinned values, computed by naive_checksum: the device kernel, the host
 * function and anything that compares them must keep this definition. */
START_TEST(checksum_stable_values) {
  unsigned char *p = malloc(200000);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < 200000; i++) p[i] = (unsigned char)(i * 31 + (i >> 8));
  ck_assert_uint_eq(naive_checksum(NULL, 0), 0xe220a8397b1dcdafull);
  ck_assert_uint_eq(hoist__checksum_host(NULL, 0, 1), 0xe220a8397b1dcdafull);
  ck_assert_uint_eq(naive_checksum((const unsigned char *)"hoist", 5), 0xf00bfca99c625b8aull);
  ck_assert_uint_eq(hoist__checksum_host("hoist", 5, 1), 0xf00bfca99c625b8aull);
  ck_assert_uint_eq(naive_checksum(p, 200000), 0x6150ad60f678c625ull);
  ck_assert_uint_eq(hoist__checksum_host(p, 200000, 5), 0x6150ad60f678c625ull);
  free(p);
}
END_TEST

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Not a check of speed (this runs on any machine), a measurement: one
 * thread's GB/s for a plain copy, the fused copy + hash and the hash alone
 * of every implementation this CPU runs, over a buffer larger than the
 * caches; the copies and hashes must still be right. */
START_TEST(checksum_host_rates) {
  const size_t n = 64u << 20;
  unsigned char *src = random_bytes(n), *dst = malloc(n);
  ck_assert_ptr_nonnull(dst);
  memset(dst, 0, n);
  const uint64_t want = hoist__ck_copy_hash(HOIST_CK_IMPL_SCALAR, NULL, src, n);
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = now_s();
    memcpy(dst, src, n);
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  ck_assert_int_eq(memcmp(dst, src, n), 0);
  printf("checksum host, 1 thread, %zu MiB: copy %.2f GB/s\n", n >> 20, (double)n / best / 1e9);
  for (size_t k = 0; k < sizeof all_impls / sizeof all_impls[0] - 1; k++) {
    if (!hoist__ck_impl_available(all_impls[k])) continue;
    double fused = 1e30, hash = 1e30;
    for (int r = 0; r < 3; r++) {
      memset(dst, 0, 4096);
      double t0 = now_s();
      uint64_t h = hoist__ck_copy_hash(all_impls[k], dst, src, n);
      double t1 = now_s();
      uint64_t g = hoist__ck_copy_hash(all_impls[k], NULL, src, n);
      double t2 = now_s();
      ck_assert_uint_eq(h, want);
      ck_assert_uint_eq(g, want);
      if (t1 - t0 < fused) fused = t1 - t0;
      if (t2 - t1 < hash) hash = t2 - t1;
    }
    ck_assert_int_eq(memcmp(dst, src, n), 0);
    printf("checksum host, 1 thread, %zu MiB: %-6s fused copy+hash %.2f GB/s, hash only %.2f GB/s\n",
           n >> 20, hoist__ck_impl_name(all_impls[k]), (double)n / fused / 1e9,
           (double)n / hash / 1e9);
  }
  fflush(stdout);
  free(dst);
  free(src);
}
END_TEST

static Suite *convert_ref_suite(void) {
  Suite *s = suite_create("convert_ref");
  TCase *tc = tcase_create("convert");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, f32_to_bf16_values);
  tcase_add_test(tc, f32_to_f16_values);
  tcase_add_test(tc, widening_values);
  tcase_add_test(tc, f16_bf16_values);
  tcase_add_test(tc, fp8_values);
  tcase_add_test(tc, exhaustive_round_trips);
  tcase_add_test(tc, f32_narrowing_properties);
  tcase_add_test(tc, bulk_and_supported);
  suite_add_tcase(s, tc);
  TCase *ck = tcase_create("checksum");
  tcase_set_timeout(ck, 300);
  tcase_add_test(ck, checksum_matches_definition);
  tcase_add_test(ck, checksum_sensitivity);
  tcase_add_test(ck, checksum_stable_values);
  tcase_add_test(ck, checksum_wraps_modulo_2_64);
  tcase_add_test(ck, checksum_host_rates);
  suite_add_tcase(s, ck);
  return s;
}

int main(void) { return tu_run_suite(convert_ref_suite()); }
