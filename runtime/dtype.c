/* dtype.c — the dtype table (generated from HOIST_DTYPE_MAP in hoist.h, so
 * the enum and the names never drift apart) and the rules built on it:
 * floating dtypes, conversion targets, a tensor's dtype on the device. */
#include "dtype.h"

#include <string.h>

static const struct {
  const char *name;
  unsigned bits;
} dtype_table[HOIST_DTYPE_COUNT_] = {
#define HOIST_DTYPE_ROW_(name, bits) {#name, bits},
    HOIST_DTYPE_MAP(HOIST_DTYPE_ROW_)
#undef HOIST_DTYPE_ROW_
};

const char *hoist_dtype_name(hoist_dtype dtype) {
  if ((unsigned)dtype >= HOIST_DTYPE_COUNT_) return NULL;
  return dtype_table[dtype].name;
}

unsigned hoist_dtype_bits(hoist_dtype dtype) {
  if ((unsigned)dtype >= HOIST_DTYPE_COUNT_) return 0;
  return dtype_table[dtype].bits;
}

int hoist_dtype_from_name(const char *name, size_t len, hoist_dtype *out) {
  if (name == NULL) return HOIST_BAD_DTYPE;
  for (unsigned i = 0; i < HOIST_DTYPE_COUNT_; i++) {
    if (strlen(dtype_table[i].name) == len && memcmp(dtype_table[i].name, name, len) == 0) {
      *out = (hoist_dtype)i;
      return HOIST_OK;
    }
  }
  return HOIST_BAD_DTYPE;
}

bool hoist__dtype_is_float(hoist_dtype d) {
  switch (d) {
  case HOIST_DTYPE_F16: case HOIST_DTYPE_BF16: case HOIST_DTYPE_F32: case HOIST_DTYPE_F64:
  case HOIST_DTYPE_C64: case HOIST_DTYPE_F8_E4M3: case HOIST_DTYPE_F8_E5M2:
  case HOIST_DTYPE_F8_E8M0: case HOIST_DTYPE_F8_E4M3FNUZ: case HOIST_DTYPE_F8_E5M2FNUZ:
  case HOIST_DTYPE_F4: case HOIST_DTYPE_F6_E2M3: case HOIST_DTYPE_F6_E3M2:
    return true;
  default:
    return false;
  }
}

bool hoist__convert_supported(hoist_dtype from, hoist_dtype to) {
  if ((unsigned)from >= HOIST_DTYPE_COUNT_ || (unsigned)to >= HOIST_DTYPE_COUNT_) return false;
  if (from == to) return true;
  const bool to_16 = to == HOIST_DTYPE_F16 || to == HOIST_DTYPE_BF16;
  switch (from) {
  case HOIST_DTYPE_F32: /* narrowing, rounded once */
    return to_16;
  case HOIST_DTYPE_F16: /* widening exactly, or to the other 16-bit format through F32 */
  case HOIST_DTYPE_BF16:
  case HOIST_DTYPE_F8_E4M3: /* the OCP FP8 formats widen */
  case HOIST_DTYPE_F8_E5M2:
    return to_16 || to == HOIST_DTYPE_F32;
  default:
    return false;
  }
}

bool hoist__dtype_target_lookup(const char *s, size_t len, hoist_dtype *out) {
  char upper[16];
  if (s == NULL || len >= sizeof upper) return false;
  for (size_t i = 0; i < len; i++)
    upper[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
  if (len == 4 && memcmp(upper, "KEEP", 4) == 0) {
    *out = HOIST_DTYPE_KEEP;
    return true;
  }
  hoist_dtype d;
  if (hoist_dtype_from_name(upper, len, &d) != HOIST_OK ||
      (d != HOIST_DTYPE_BF16 && d != HOIST_DTYPE_F16 && d != HOIST_DTYPE_F32))
    return false;
  *out = d;
  return true;
}

int hoist__dtype_target_parse(hoist_runtime *rt, const char *field, const char *s, size_t len,
                             hoist_dtype *out) {
  if (hoist__dtype_target_lookup(s, len, out)) return HOIST_OK;
  return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "`%s`: '%.*s' is not bf16, f16, f32 or keep",
                    field, (int)(len > 64 ? 64 : len), s);
}

int hoist__tensor_target(hoist_runtime *rt, const char *component, const hoist_tensor_info *t,
                        hoist_dtype target, hoist_dtype *to, uint64_t *bytes) {
  *to = t->dtype;
  *bytes = t->nbytes;
  if (target == HOIST_DTYPE_KEEP || !hoist__dtype_is_float(t->dtype) || t->dtype == target)
    return HOIST_OK;
  if (!hoist__convert_supported(t->dtype, target) || hoist_dtype_bits(t->dtype) % 8 != 0)
    return hoist__fail(rt, HOIST_UNSUPPORTED,
                      "%s: tensor '%s': no conversion from %s to %s (`dtype`); keep this "
                      "component's dtype with `dtype_for` %s=keep",
                      component, t->name, hoist_dtype_name(t->dtype), hoist_dtype_name(target),
                      component);
  if (!hoist__mul_u64(t->nelements, hoist_dtype_bits(target) / 8, bytes))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: tensor '%s': target size overflows", component,
                      t->name);
  *to = target;
  return HOIST_OK;
}
