/* residency.c — residency strategies after a load: resident components stay
 * on the device, offloaded ones live in pinned host memory and are uploaded
 * into a fresh arena on prepare_for_use, and FSDP-marked ones are never
 * moved here (their sharding owner places them), mirroring the reference
 * where the resident strategy skips FSDP-managed modules.
 *
 * A move holds the runtime's load lock for its whole length and l's lock
 * only to publish or take away a component's arenas (load.h), so lookups
 * from other threads (loaded.c) see either the old arenas or the new ones,
 * and a held component is never released. */
#include "load.h"

const char *hoist_residency_name(hoist_residency r) {
  switch (r) {
  case HOIST_RESIDENT:
    return "resident";
  case HOIST_OFFLOAD:
    return "offload";
  case HOIST_FSDP:
    return "fsdp";
  }
  return "unknown";
}

/* Uploads c's pinned host copy into fresh arenas *out on stream (NULL:
 * the default stream), one copy per arena: the pinned H2D rate.  On
 * failure nothing stays allocated. */
static int upload_host_copy(hoist_runtime *rt, const loaded_component *c, void *stream,
                            arena_set *out) {
  hoist__device *d = rt->dev;
  int rc = hoist__arenas_alloc(rt, c, out);
  for (int a = 0; a < out->n && rc == HOIST_OK; a++)
    rc = d->ops->copy_h2d_async(d, out->addr[a], (unsigned char *)c->host_copy + out->begin[a],
                                (size_t)out->bytes[a], stream);
  if (rc != HOIST_OK) {
    if (stream != NULL) d->ops->stream_sync(d, stream);
    hoist__arenas_free(rt, out);
  }
  return rc;
}

int hoist_prepare_for_use(hoist_loaded *l, size_t position, void *stream, int *moved) {
  if (moved != NULL) *moved = 0;
  if (l == NULL || position >= l->count)
    return hoist__fail(l != NULL ? l->rt : NULL, HOIST_INVALID_ARGUMENT,
                      "prepare_for_use: no component %zu", position);
  hoist_runtime *rt = l->rt;
  loaded_component *c = &l->components[position];
  /* FSDP-owned: never moved here.  Resident: nothing to do. */
  if (c->pub.residency != HOIST_OFFLOAD) return HOIST_OK;
  uv_mutex_lock(&rt->load_lock);
  /* Every move holds load_lock: two threads preparing at once upload once,
   * and the arenas read here cannot change until it is released. */
  int rc = HOIST_OK;
  if (c->arenas.n == 0) {
    arena_set made;
    rc = upload_host_copy(rt, c, stream, &made);
    if (rc == HOIST_OK) {
      uv_mutex_lock(&l->lock);
      c->arenas = made;
      c->pub.device_bytes = c->need;
      c->pub.device_begin = made.addr[0];
      c->pub.device_end = made.addr[0] + made.bytes[0];
      uv_mutex_unlock(&l->lock);
      if (moved != NULL) *moved = 1;
    }
  }
  uv_mutex_unlock(&rt->load_lock);
  return rc;
}

int hoist_release_after_use(hoist_loaded *l, size_t position, int *moved) {
  if (moved != NULL) *moved = 0;
  if (l == NULL || position >= l->count)
    return hoist__fail(l != NULL ? l->rt : NULL, HOIST_INVALID_ARGUMENT,
                      "release_after_use: no component %zu", position);
  hoist_runtime *rt = l->rt;
  loaded_component *c = &l->components[position];
  if (c->pub.residency != HOIST_OFFLOAD) return HOIST_OK;
  uv_mutex_lock(&rt->load_lock);
  /* Taken away under l's lock, so no lookup computes an address from
   * arenas being freed; freed after it, so lookups do not wait for that. */
  uv_mutex_lock(&l->lock);
  const uint64_t holds = c->holds;
  arena_set gone = {0};
  if (holds == 0) {
    gone = c->arenas;
    c->arenas.n = 0;
    c->pub.device_bytes = 0;
    c->pub.device_begin = c->pub.device_end = 0;
  }
  uv_mutex_unlock(&l->lock);
  const bool freed = gone.n > 0;
  hoist__arenas_free(rt, &gone);
  uv_mutex_unlock(&rt->load_lock);
  if (holds > 0)
    return hoist__fail(rt, HOIST_BUSY,
                      "release_after_use: %s is held (%llu hold%s outstanding); release it "
                      "after hoist_loaded_unhold",
                      c->info->name, (unsigned long long)holds, holds == 1 ? "" : "s");
  if (moved != NULL) *moved = freed;
  return HOIST_OK;
}
