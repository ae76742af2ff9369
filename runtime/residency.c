/* residency.c — residency strategies after a load: resident components stay
 * on the device, offloaded ones live in pinned host memory and are uploaded
 * into a fresh arena on prepare_for_use, and FSDP-marked ones are never
 * moved here (their sharding owner places them), mirroring the reference
 * where the resident strategy skips FSDP-managed modules. */
#include "load.h"

#include <stdlib.h>
#include <string.h>

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

int hoist_prepare_for_use(hoist_loaded *l, size_t i, void *stream, int *moved) {
  if (moved != NULL) *moved = 0;
  if (l == NULL || i >= l->count)
    return hoist_fail(l != NULL ? l->rt : NULL, HOIST_INVALID_ARGUMENT,
                      "prepare_for_use: no component %zu", i);
  hoist_runtime *rt = l->rt;
  loaded_component *c = &l->components[i];
  /* FSDP-owned: never moved here.  Resident, or offloaded but already
   * prepared: nothing to do. */
  if (c->pub.residency == HOIST_FSDP || c->pub.residency == HOIST_RESIDENT) return HOIST_OK;
  uv_mutex_lock(&rt->load_lock);
  /* Checked under the lock: two threads preparing at once upload once. */
  if (c->arenas.n > 0) {
    uv_mutex_unlock(&rt->load_lock);
    return HOIST_OK;
  }
  int rc = comp_alloc_arenas(rt, c, &c->arenas);
  if (rc == HOIST_OK) {
    hoist_device *d = rt->dev;
    void *s = stream;
    /* One copy per arena from the pinned host copy: the pinned H2D rate. */
    for (int a = 0; a < c->arenas.n && rc == HOIST_OK; a++)
      rc = d->ops->copy_h2d_async(d, c->arenas.addr[a],
                                  (unsigned char *)c->host_copy + c->arenas.begin[a],
                                  (size_t)c->arenas.bytes[a], s);
    if (rc != HOIST_OK) {
      if (s != NULL) d->ops->stream_sync(d, s);
      comp_free_arenas(rt, &c->arenas);
    } else {
      c->pub.device_bytes = c->need;
      c->pub.device_begin = c->arenas.addr[0];
      c->pub.device_end = c->arenas.addr[0] + c->arenas.bytes[0];
      if (moved != NULL) *moved = 1;
    }
  }
  uv_mutex_unlock(&rt->load_lock);
  return rc;
}

int hoist_release_after_use(hoist_loaded *l, size_t i, int *moved) {
  if (moved != NULL) *moved = 0;
  if (l == NULL || i >= l->count)
    return hoist_fail(l != NULL ? l->rt : NULL, HOIST_INVALID_ARGUMENT,
                      "release_after_use: no component %zu", i);
  loaded_component *c = &l->components[i];
  if (c->pub.residency != HOIST_OFFLOAD) return HOIST_OK;
  uv_mutex_lock(&l->rt->load_lock);
  if (c->arenas.n == 0) {
    uv_mutex_unlock(&l->rt->load_lock);
    return HOIST_OK;
  }
  comp_free_arenas(l->rt, &c->arenas);
  c->pub.device_bytes = 0;
  c->pub.device_begin = c->pub.device_end = 0;
  uv_mutex_unlock(&l->rt->load_lock);
  if (moved != NULL) *moved = 1;
  return HOIST_OK;
}
