/* share.h — what sharing a loaded pipeline with other processes needs from
 * the loader, as a few small functions: the arenas of each component as
 * they are now, the placed tensors, the host copy of an offloaded
 * component (loaded_view.c, the one file that reads load.c's structs for
 * this), and a fingerprint of every tensor's bytes that a later check
 * compares with (share_verify.c).  `hoist serve` is the user.
 *
 * Threading: the view functions read state that only a load, a close,
 * hoist_prepare_for_use and hoist_release_after_use change; a caller
 * serializes them with those on the same hoist_loaded. */
#ifndef HOIST_SHARE_H
#define HOIST_SHARE_H

#include "device.h"

/* The runtime a pipeline was loaded with (its device: l's arenas). */
hoist_runtime *hoist__loaded_runtime(const hoist_loaded *l);

/* Arenas of component i (load order) now: 0 for an offloaded component that
 * is not prepared, or one without tensors. */
size_t hoist__loaded_arena_count(const hoist_loaded *l, size_t i);
/* Arena k of component i: its device address, bytes, and the placement
 * offset its first byte holds (arenas cover the placement span in order,
 * each starting where the one before it ends). */
void hoist__loaded_arena(const hoist_loaded *l, size_t i, size_t k, uint64_t *addr, uint64_t *bytes,
                        uint64_t *span_begin);
/* Tensor j (0 <= j < tensor_count) of component i in placement order: its
 * info as on the device, and in *span_off its offset in the placement span
 * (the tensor lies in the arena whose range holds it). */
const hoist_tensor_info *hoist__loaded_placed(const hoist_loaded *l, size_t i, size_t j,
                                             uint64_t *span_off);
/* The pinned host copy of offloaded component i (laid out as the span), or
 * NULL when it has none. */
const void *hoist__loaded_host_copy(const hoist_loaded *l, size_t i);

/* A fingerprint: the block checksum (kernels.h) of every tensor's bytes,
 * component by component in load order, tensors in placement order, hashed
 * where they lie: in the arenas, or in the host copy of an offloaded
 * component (a prepared one's arena holds the same bytes).  A component
 * with neither has no entries.  *out is malloc'd (free it); *n its count. */
int hoist__loaded_fingerprint(const hoist_loaded *l, uint64_t **out, size_t *n);

/* Takes the fingerprint again and compares it with base (from
 * hoist__loaded_fingerprint of the same l): HOIST_OK when every tensor
 * agrees, HOIST_VERIFY_MISMATCH naming the first component and tensor that
 * differ.  *tensors and *bytes (optional) count what was checked. */
int hoist__loaded_check(const hoist_loaded *l, const uint64_t *base, size_t n, uint64_t *tensors,
                       uint64_t *bytes);

#endif /* HOIST_SHARE_H */
