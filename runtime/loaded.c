/* loaded.c — a loaded pipeline after its load: its accessors, tensor
 * lookups and holds, all safe from several threads at once (hoist.h,
 * "Threading of a loaded pipeline"), and its close.
 *
 * A lookup reads a component's arenas under l->lock, which every move
 * takes to publish a new arena set or to take one away (residency.c), so
 * an address is computed from arenas that exist at that moment.  What
 * keeps them existing afterwards is a hold: release_after_use refuses a
 * held component.  Holds are counted under the same lock. */
#include "load.h"
#include "shard.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

hoist_loaded *hoist__loaded_create(hoist_runtime *rt, const hoist_pipeline *p) {
  const size_t n = hoist_pipeline_component_count(p);
  hoist_loaded *l = calloc(1, sizeof *l);
  if (l == NULL) return NULL;
  l->components = calloc(n > 0 ? n : 1, sizeof *l->components);
  if (l->components == NULL || uv_mutex_init(&l->lock) != 0) {
    free(l->components);
    free(l);
    return NULL;
  }
  l->rt = rt;
  l->p = p;
  l->count = n;
  return l;
}

void hoist__loaded_destroy(hoist_loaded *l) {
  if (l == NULL) return;
  hoist__device *d = l->rt->dev;
  for (size_t i = 0; i < l->count; i++) {
    loaded_component *c = &l->components[i];
    hoist__arenas_free(l->rt, &c->arenas);
    if (c->host_copy != NULL) d->ops->pinned_free(d, c->host_copy);
    free(c->tensors);
    free(c->by_name);
    hoist__shard_table_free(c->shards);
  }
  uv_mutex_destroy(&l->lock);
  free(l->components);
  free(l);
}

void hoist_loaded_close(hoist_loaded *l) {
  if (l == NULL) return;
  hoist_runtime *rt = l->rt;
  uv_mutex_lock(&l->lock);
  for (size_t i = 0; i < l->count; i++)
    assert(l->components[i].holds == 0 && "hoist_loaded_close with holds outstanding");
  uv_mutex_unlock(&l->lock);
  uv_mutex_lock(&rt->load_lock);
  hoist__loaded_destroy(l);
  uv_mutex_unlock(&rt->load_lock);
}

size_t hoist_loaded_component_count(const hoist_loaded *l) { return l->count; }

const hoist_loaded_info *hoist_loaded_component(const hoist_loaded *l, size_t position) {
  return position < l->count ? &l->components[position].pub : NULL;
}

double hoist_loaded_seconds(const hoist_loaded *l) { return l->seconds; }
uint64_t hoist_loaded_total_bytes(const hoist_loaded *l) { return l->total_bytes; }
const char *hoist_loaded_device(const hoist_loaded *l) { return l->rt->device_name; }

/* l's lock; lookups lock it through a const l (the lock is not part of
 * what the pipeline's constness promises). */
static uv_mutex_t *lock_of(const hoist_loaded *l) { return (uv_mutex_t *)&l->lock; }

/* NOT_FOUND for a tensor c has not placed: none of its files holds it, or
 * the load's tensor filter left it out. */
static int no_tensor(const hoist_loaded *l, const loaded_component *c, const char *tensor) {
  char cb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME];
  bool in_files = false;
  for (size_t f = 0; f < c->nfiles && !in_files; f++)
    in_files = hoist_file_find(c->files[f], tensor) != NULL;
  return hoist__fail(l->rt, HOIST_NOT_FOUND, "%s: no tensor '%s'%s",
                     hoist__show(c->info->name, cb, sizeof cb), hoist__show(tensor, tb, sizeof tb),
                     in_files ? " in this load (the tensor filter left it out)" : "");
}

/* The address of c's placed tensor pt (0 with UNSUPPORTED while c is
 * offloaded and not prepared), and its info. */
static int placed_address(const hoist_loaded *l, const loaded_component *c,
                          const placed_tensor *pt, uint64_t *device_addr,
                          const hoist_tensor_info **info) {
  if (info != NULL) *info = &pt->dev;
  uv_mutex_lock(lock_of(l));
  const bool placed = c->arenas.n > 0;
  if (placed) *device_addr = hoist__tensor_addr(&c->arenas, pt);
  uv_mutex_unlock(lock_of(l));
  if (!placed) {
    char cb[HOIST_SHOW_NAME];
    return hoist__fail(l->rt, HOIST_UNSUPPORTED, "%s: offloaded; call hoist_prepare_for_use",
                       hoist__show(c->info->name, cb, sizeof cb));
  }
  return HOIST_OK;
}

int hoist_loaded_tensor(const hoist_loaded *l, const char *component, const char *tensor,
                        uint64_t *device_addr, const hoist_tensor_info **info) {
  *device_addr = 0;
  for (size_t i = 0; i < l->count; i++) {
    const loaded_component *c = &l->components[i];
    if (strcmp(c->info->name, component) != 0) continue;
    const placed_tensor *pt = hoist__find_tensor(c, tensor);
    if (pt == NULL) return no_tensor(l, c, tensor);
    return placed_address(l, c, pt, device_addr, info);
  }
  char cb[HOIST_SHOW_NAME];
  return hoist__fail(l->rt, HOIST_NOT_FOUND, "no component '%s'",
                     hoist__show(component, cb, sizeof cb));
}

int hoist_loaded_tensor_at(const hoist_loaded *l, size_t position, size_t j, uint64_t *device_addr,
                           const hoist_tensor_info **info) {
  *device_addr = 0;
  if (position >= l->count || j >= l->components[position].ntensors)
    return hoist__fail(l->rt, HOIST_INVALID_ARGUMENT, "tensor_at: no tensor %zu of component %zu",
                       j, position);
  const loaded_component *c = &l->components[position];
  return placed_address(l, c, c->by_name[j], device_addr, info);
}

int hoist_loaded_hold(hoist_loaded *l, size_t position) {
  if (position >= l->count)
    return hoist__fail(l->rt, HOIST_INVALID_ARGUMENT, "hold: no component %zu", position);
  loaded_component *c = &l->components[position];
  uv_mutex_lock(&l->lock);
  const bool unprepared = c->pub.residency == HOIST_OFFLOAD && c->arenas.n == 0;
  if (!unprepared) c->holds++;
  uv_mutex_unlock(&l->lock);
  if (unprepared)
    return hoist__fail(l->rt, HOIST_UNSUPPORTED,
                      "hold: %s is offloaded and not prepared; call hoist_prepare_for_use first",
                      c->info->name);
  return HOIST_OK;
}

void hoist_loaded_unhold(hoist_loaded *l, size_t position) {
  /* Misuse asserts; a build without assertions ignores it rather than
   * reach past the array or wrap the count. */
  assert(position < l->count && "hoist_loaded_unhold: no such component");
  if (position >= l->count) return;
  loaded_component *c = &l->components[position];
  uv_mutex_lock(&l->lock);
  assert(c->holds > 0 && "hoist_loaded_unhold of a component not held");
  if (c->holds > 0) c->holds--;
  uv_mutex_unlock(&l->lock);
}
