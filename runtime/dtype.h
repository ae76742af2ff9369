/* dtype.h — the rules on dtypes beyond hoist.h's table: which dtypes are
 * floating, the conversion targets an option may name, and the dtype and
 * size a tensor takes on the device under a target.  Discovery counts
 * inferred bytes with them and the loader places tensors with them, so the
 * plan and the load always agree.  The target lookup and HOIST_DTYPE_KEEP,
 * which the CLI uses too, are in hoist_tools.h.  Not installed; nothing
 * here is exported. */
#ifndef HOIST_DTYPE_H
#define HOIST_DTYPE_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The conversions hoist does (element by element in convert_ref.h, on the
 * device in kernels/convert.cu): F32->BF16, F32->F16, F16->BF16,
 * BF16->F16, BF16->F32, F16->F32, F8_E4M3->{BF16,F16,F32},
 * F8_E5M2->{BF16,F16,F32}; and from == to for any valid dtype (a copy).
 * Pure; in every build. */
bool hoist__convert_supported(hoist_dtype from, hoist_dtype to);

/* F16, BF16, F32, F64, C64 and the F8, F6 and F4 formats. */
bool hoist__dtype_is_float(hoist_dtype d);

/* hoist__dtype_target_lookup, with a bad name HOIST_INVALID_ARGUMENT naming
 * the option field (a hoist_load_options field name, quoted `so` in the
 * message, as every library message names an option). */
int hoist__dtype_target_parse(hoist_runtime *rt, const char *field, const char *s, size_t len,
                             hoist_dtype *out);

/* The dtype t has on the device under target and its byte size there:
 * floating tensors take the target, others (ints, bool) and same-dtype ones
 * keep theirs.  A floating dtype with no conversion to target (F64, C64,
 * F8_E8M0, the FNUZ and sub-byte dtypes) is HOIST_UNSUPPORTED naming
 * component, tensor and pair. */
int hoist__tensor_target(hoist_runtime *rt, const char *component, const hoist_tensor_info *t,
                        hoist_dtype target, hoist_dtype *to, uint64_t *bytes);

#endif /* HOIST_DTYPE_H */
