/* convert_ref.c — the CPU reference of the dtype conversions: the element
 * functions of convert_ref.h applied to whole buffers, and the table of
 * supported pairs.  Plain C; built with or without CUDA.  The GPU kernels
 * (kernels/convert.cu) must agree with this file bit for bit. */
#include "convert_ref.h"

#include "internal.h"
#include "kernels.h"

#include <string.h>

typedef uint32_t (*hoist__cvt_elem_fn)(uint32_t);

/* The element function for a pair, or NULL when the pair is not a
 * conversion hoist does (from == to is handled by the callers). */
static hoist__cvt_elem_fn hoist__cvt_lookup(hoist_dtype from, hoist_dtype to) {
  switch (from) {
  case HOIST_DTYPE_F32:
    if (to == HOIST_DTYPE_BF16) return hoist__cvt_f32_to_bf16;
    if (to == HOIST_DTYPE_F16) return hoist__cvt_f32_to_f16;
    return NULL;
  case HOIST_DTYPE_F16:
    if (to == HOIST_DTYPE_BF16) return hoist__cvt_f16_to_bf16;
    if (to == HOIST_DTYPE_F32) return hoist__cvt_f16_to_f32;
    return NULL;
  case HOIST_DTYPE_BF16:
    if (to == HOIST_DTYPE_F16) return hoist__cvt_bf16_to_f16;
    if (to == HOIST_DTYPE_F32) return hoist__cvt_bf16_to_f32;
    return NULL;
  case HOIST_DTYPE_F8_E4M3:
    if (to == HOIST_DTYPE_BF16) return hoist__cvt_e4m3_to_bf16;
    if (to == HOIST_DTYPE_F16) return hoist__cvt_e4m3_to_f16;
    if (to == HOIST_DTYPE_F32) return hoist__cvt_e4m3_to_f32;
    return NULL;
  case HOIST_DTYPE_F8_E5M2:
    if (to == HOIST_DTYPE_BF16) return hoist__cvt_e5m2_to_bf16;
    if (to == HOIST_DTYPE_F16) return hoist__cvt_e5m2_to_f16;
    if (to == HOIST_DTYPE_F32) return hoist__cvt_e5m2_to_f32;
    return NULL;
  default:
    return NULL;
  }
}

bool hoist__convert_supported(hoist_dtype from, hoist_dtype to) {
  if ((unsigned)from >= (unsigned)HOIST_DTYPE_COUNT_ || (unsigned)to >= (unsigned)HOIST_DTYPE_COUNT_)
    return false;
  return from == to || hoist__cvt_lookup(from, to) != NULL;
}

/* Reads element i of a buffer of size-byte little-endian elements. */
static uint32_t hoist__cvt_load(const unsigned char *p, unsigned size, uint64_t i) {
  switch (size) {
  case 1:
    return p[i];
  case 2: {
    uint16_t v;
    memcpy(&v, p + i * 2, 2);
    return v;
  }
  default: {
    uint32_t v;
    memcpy(&v, p + i * 4, 4);
    return v;
  }
  }
}

static void hoist__cvt_store(unsigned char *p, unsigned size, uint64_t i, uint32_t v) {
  if (size == 2) {
    uint16_t h = (uint16_t)v;
    memcpy(p + i * 2, &h, 2);
  } else {
    memcpy(p + i * 4, &v, 4);
  }
}

int hoist__convert_ref(void *dst, hoist_dtype dst_type, const void *src, hoist_dtype src_type,
                      uint64_t n) {
  if (!hoist__convert_supported(src_type, dst_type)) return HOIST_UNSUPPORTED;
  uint64_t src_bits, dst_bits;
  if (!hoist__mul_u64(n, hoist_dtype_bits(src_type), &src_bits) ||
      !hoist__mul_u64(n, hoist_dtype_bits(dst_type), &dst_bits) || src_bits / 8 > SIZE_MAX ||
      dst_bits / 8 > SIZE_MAX)
    return HOIST_INVALID_ARGUMENT;
  if (n == 0) return HOIST_OK;
  if (!dst || !src) return HOIST_INVALID_ARGUMENT;
  if (src_type == dst_type) {
    /* Sub-byte dtypes copy only whole bytes. */
    if (src_bits % 8 != 0) return HOIST_INVALID_ARGUMENT;
    memcpy(dst, src, (size_t)(src_bits / 8));
    return HOIST_OK;
  }
  hoist__cvt_elem_fn fn = hoist__cvt_lookup(src_type, dst_type);
  unsigned ss = hoist_dtype_bits(src_type) / 8, ds = hoist_dtype_bits(dst_type) / 8;
  const unsigned char *s = src;
  unsigned char *d = dst;
  for (uint64_t i = 0; i < n; i++) hoist__cvt_store(d, ds, i, fn(hoist__cvt_load(s, ss, i)));
  return HOIST_OK;
}
