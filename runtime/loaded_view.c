/* loaded_view.c — the view of a loaded pipeline that sharing it with other
 * processes needs (hoist_tools.h, "Sharing"): arenas, placed tensors and host
 * copies.  The only sharing code that reads load.h's structs, so that the
 * loader's layout can change behind these few functions. */
#include "load.h"

#include <string.h>

#include <assert.h>

hoist_runtime *hoist__loaded_runtime(const hoist_loaded *l) { return l->rt; }

size_t hoist__loaded_arena_count(const hoist_loaded *l, size_t i) {
  assert(i < l->count);
  return (size_t)l->components[i].arenas.n;
}

void hoist__loaded_arena(const hoist_loaded *l, size_t i, size_t k, uint64_t *addr, uint64_t *bytes,
                        uint64_t *span_begin) {
  assert(i < l->count && k < (size_t)l->components[i].arenas.n);
  const loaded_component *c = &l->components[i];
  *addr = c->arenas.addr[k];
  *bytes = c->arenas.bytes[k];
  *span_begin = c->arenas.begin[k];
}

const hoist_tensor_info *hoist__loaded_placed(const hoist_loaded *l, size_t i, size_t j,
                                             uint64_t *span_off) {
  assert(i < l->count && j < l->components[i].ntensors);
  const placed_tensor *pt = &l->components[i].tensors[j];
  *span_off = pt->off;
  return &pt->dev;
}

const void *hoist__loaded_host_copy(const hoist_loaded *l, size_t i) {
  assert(i < l->count);
  return l->components[i].host_copy;
}

const char *hoist__device_locator(const hoist_runtime *rt) { return rt->dev->locator; }

int hoist__loaded_arena_export(const hoist_loaded *l, size_t i, size_t k, int *fd,
                               unsigned char *blob) {
  uint64_t addr = 0, bytes = 0, begin = 0;
  hoist__loaded_arena(l, i, k, &addr, &bytes, &begin);
  hoist__share_handle h;
  hoist__device *d = l->rt->dev;
  int rc = d->ops->share_export(d, addr, &h);
  *fd = rc == HOIST_OK ? h.fd : -1;
  memcpy(blob, h.blob, HOIST_WIRE_HANDLE_BYTES);
  return rc;
}

int hoist__loaded_prepare_synced(hoist_loaded *l, size_t i, int *moved) {
  hoist__device *d = l->rt->dev;
  void *stream = NULL;
  int rc = d->ops->stream_create(d, &stream);
  if (rc == HOIST_OK) rc = hoist_prepare_for_use(l, i, stream, moved);
  if (stream != NULL) {
    int sync = d->ops->stream_sync(d, stream);
    if (rc == HOIST_OK) rc = sync;
    d->ops->stream_destroy(d, stream);
  }
  return rc;
}
