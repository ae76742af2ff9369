/* residency.c — residency strategies after a load: resident components stay
 * on the device, offloaded ones live in pinned host memory and are uploaded
 * into a fresh arena on prepare_for_use, and FSDP-marked ones are never
 * moved here (their sharding owner places them), mirroring the reference
 * where the resident strategy skips FSDP-managed modules.  Also the parsing
 * of --offload/--fsdp selections by name or group. */
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

static bool in_group(const char *group, const char *name) {
  if (strcmp(group, "all") == 0) return true;
  if (strcmp(group, "dit") == 0) return hoist__component_is_dit(name);
  if (strcmp(group, "text_encoder") == 0) return hoist__component_is_text_encoder(name);
  if (strcmp(group, "image_encoder") == 0) return hoist__component_is_image_encoder(name);
  if (strcmp(group, "vae") == 0) return hoist__component_is_vae(name);
  return false;
}

int hoist__component_select(hoist_runtime *rt, const char *what, const char *list,
                           const loaded_component *comps, size_t n, unsigned char *mark) {
  if (list == NULL || list[0] == '\0') return HOIST_OK;
  const char *p = list;
  while (*p != '\0') {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    char item[128];
    if (len == 0 || len >= sizeof item)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "--%s: empty or overlong entry in '%s'", what,
                        list);
    memcpy(item, p, len);
    item[len] = '\0';
    bool matched = false;
    for (size_t i = 0; i < n; i++) {
      /* An item selects the component of that name and, when it is also a
       * group name (text_encoder, vae), every component of the group. */
      if (strcmp(comps[i].info->name, item) == 0 || in_group(item, comps[i].info->load_name)) {
        mark[i] = 1;
        matched = true;
      }
    }
    if (!matched)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                        "--%s %s: no component or group of that name (groups: dit, "
                        "text_encoder, image_encoder, vae, all)",
                        what, item);
    p += len;
    if (*p == ',') p++;
  }
  return HOIST_OK;
}

int hoist_prepare_for_use(hoist_loaded *l, size_t i, void *stream, int *moved) {
  if (moved != NULL) *moved = 0;
  if (l == NULL || i >= l->ncomps)
    return hoist__fail(l != NULL ? l->rt : NULL, HOIST_INVALID_ARGUMENT,
                      "prepare_for_use: no component %zu", i);
  hoist_runtime *rt = l->rt;
  loaded_component *c = &l->comps[i];
  /* FSDP-owned: never moved here.  Resident, or offloaded but already
   * prepared: nothing to do. */
  if (c->pub.residency == HOIST_FSDP || c->pub.residency == HOIST_RESIDENT) return HOIST_OK;
  uv_mutex_lock(&rt->load_lock);
  /* Checked under the lock: two threads preparing at once upload once. */
  if (c->narenas > 0) {
    uv_mutex_unlock(&rt->load_lock);
    return HOIST_OK;
  }
  int rc = hoist__arenas_alloc(rt, c);
  if (rc == HOIST_OK) {
    hoist__device *d = rt->dev;
    void *s = stream;
    /* One copy per arena from the pinned host copy: the pinned H2D rate. */
    for (int a = 0; a < c->narenas && rc == HOIST_OK; a++)
      rc = d->ops->copy_h2d_async(d, c->arena_addr[a], (unsigned char *)c->host_copy + c->arena_begin[a],
                                  (size_t)c->arena_bytes[a], s);
    if (rc != HOIST_OK) {
      if (s != NULL) d->ops->stream_sync(d, s);
      hoist__arenas_free(rt, c);
    } else {
      c->pub.device_bytes = c->need;
      c->pub.device_begin = c->arena_addr[0];
      c->pub.device_end = c->arena_addr[0] + c->arena_bytes[0];
      if (moved != NULL) *moved = 1;
    }
  }
  uv_mutex_unlock(&rt->load_lock);
  return rc;
}

int hoist_release_after_use(hoist_loaded *l, size_t i, int *moved) {
  if (moved != NULL) *moved = 0;
  if (l == NULL || i >= l->ncomps)
    return hoist__fail(l != NULL ? l->rt : NULL, HOIST_INVALID_ARGUMENT,
                      "release_after_use: no component %zu", i);
  loaded_component *c = &l->comps[i];
  if (c->pub.residency != HOIST_OFFLOAD) return HOIST_OK;
  uv_mutex_lock(&l->rt->load_lock);
  if (c->narenas == 0) {
    uv_mutex_unlock(&l->rt->load_lock);
    return HOIST_OK;
  }
  hoist__arenas_free(l->rt, c);
  c->pub.device_bytes = 0;
  c->pub.device_begin = c->pub.device_end = 0;
  uv_mutex_unlock(&l->rt->load_lock);
  if (moved != NULL) *moved = 1;
  return HOIST_OK;
}
