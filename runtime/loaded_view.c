/* loaded_view.c — the read-only view of a loaded pipeline that sharing it
 * with other processes needs (share.h): arenas, placed tensors and host
 * copies.  The only sharing code that reads load.h's structs, so that the
 * loader's layout can change behind these few functions. */
#include "load.h"
#include "share.h"

#include <assert.h>

hoist_runtime *hoist__loaded_runtime(const hoist_loaded *l) { return l->rt; }

size_t hoist__loaded_arena_count(const hoist_loaded *l, size_t i) {
  assert(i < l->ncomps);
  return (size_t)l->comps[i].narenas;
}

void hoist__loaded_arena(const hoist_loaded *l, size_t i, size_t k, uint64_t *addr, uint64_t *bytes,
                        uint64_t *span_begin) {
  assert(i < l->ncomps && k < (size_t)l->comps[i].narenas);
  const loaded_component *c = &l->comps[i];
  *addr = c->arena_addr[k];
  *bytes = c->arena_bytes[k];
  *span_begin = c->arena_begin[k];
}

const hoist_tensor_info *hoist__loaded_placed(const hoist_loaded *l, size_t i, size_t j,
                                             uint64_t *span_off) {
  assert(i < l->ncomps && j < l->comps[i].ntensors);
  const placed_tensor *pt = &l->comps[i].tensors[j];
  *span_off = pt->off;
  return &pt->dev;
}

const void *hoist__loaded_host_copy(const hoist_loaded *l, size_t i) {
  assert(i < l->ncomps);
  return l->comps[i].host_copy;
}
