/* placement.c — placing a component's tensors in its span and holding the
 * span in device arenas (placement.h).
 *
 * Tensors are placed largest first so that the few big ones start the span
 * and the many small ones pack after them, which is also the order the
 * upload engine issues them in.  When the device denies one arena for the
 * whole span (fragmentation), the span is cut at tensor boundaries into 2,
 * 4 or 8 arenas of about equal size. */
#include "placement.h"

#include "dtype.h"
#include "shard.h"

#include <stdlib.h>
#include <string.h>

int hoist__tensor_arena(const arena_set *a, const placed_tensor *pt) {
  int k = a->n - 1;
  while (k > 0 && pt->off < a->begin[k]) k--;
  return k;
}

uint64_t hoist__tensor_addr(const arena_set *a, const placed_tensor *pt) {
  int k = hoist__tensor_arena(a, pt);
  return a->addr[k] + (pt->off - a->begin[k]);
}

void hoist__arenas_free(hoist_runtime *rt, arena_set *a) {
  for (int k = 0; k < a->n; k++) rt->dev->ops->free(rt->dev, a->addr[k]);
  a->n = 0;
}

/* Splits c's span into k arenas at tensor boundaries, close to equal
 * sizes, and allocates them into *a; frees what it took when one fails. */
static int alloc_split(hoist_runtime *rt, const loaded_component *c, int k, arena_set *a) {
  uint64_t target = c->span / (uint64_t)k + 1;
  a->n = 0;
  uint64_t begin = 0;
  for (size_t i = 0; i <= c->ntensors; i++) {
    bool last = i == c->ntensors;
    uint64_t off = last ? c->span : c->tensors[i].off;
    if (!last && (off - begin < target || a->n == k - 1)) continue;
    if (off == begin) continue;
    uint64_t bytes = off - begin;
    uint64_t addr = 0;
    int rc = rt->dev->ops->alloc(rt->dev, bytes, &addr);
    if (rc != HOIST_OK) {
      hoist__arenas_free(rt, a);
      return rc;
    }
    a->addr[a->n] = addr;
    a->begin[a->n] = begin;
    a->bytes[a->n] = bytes;
    a->n++;
    begin = off;
  }
  return HOIST_OK;
}

int hoist__arenas_alloc(hoist_runtime *rt, const loaded_component *c, arena_set *out) {
  out->n = 0;
  if (c->span == 0) return HOIST_OK;
  int rc = HOIST_OK;
  /* One arena, or a few when fragmentation denies a single one. */
  for (int k = 1; k <= HOIST_MAX_ARENAS; k *= 2) {
    rc = alloc_split(rt, c, k, out);
    if (rc != HOIST_DEVICE_OOM || (size_t)k >= c->ntensors) break;
    hoist__log(rt, HOIST_LOG_INFO, "%s: no single arena of %llu bytes; trying %d", c->info->name,
              (unsigned long long)c->span, k * 2);
  }
  return rc;
}

static int cmp_placement(const void *pa, const void *pb) {
  const placed_tensor *a = pa, *b = pb;
  if (a->dev.nbytes != b->dev.nbytes) return a->dev.nbytes > b->dev.nbytes ? -1 : 1;
  if (a->file != b->file) return a->file < b->file ? -1 : 1;
  return a->t->begin < b->t->begin ? -1 : a->t->begin > b->t->begin;
}

static int cmp_by_name(const void *pa, const void *pb) {
  const placed_tensor *a = *(const placed_tensor *const *)pa;
  const placed_tensor *b = *(const placed_tensor *const *)pb;
  return strcmp(a->t->name, b->t->name);
}

/* How many of c's tensors are selected (all when selected is NULL). */
static size_t count_selected(const loaded_component *c, const unsigned char *selected) {
  size_t n = 0, k = 0;
  for (size_t f = 0; f < c->nfiles; f++)
    for (size_t i = 0; i < hoist_file_tensor_count(c->files[f]); i++, k++)
      n += selected == NULL || selected[k];
  return n;
}

int hoist__place(hoist_runtime *rt, loaded_component *c, uint64_t granularity, hoist_dtype target,
                 const unsigned char *selected) {
  const size_t n = count_selected(c, selected);
  c->ntensors = n;
  c->tensors = calloc(n > 0 ? n : 1, sizeof *c->tensors);
  c->by_name = calloc(n > 0 ? n : 1, sizeof *c->by_name);
  if (c->tensors == NULL || c->by_name == NULL)
    return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory placing %zu tensors", c->info->name,
                      n);
  size_t k = 0, seen = 0;
  for (size_t f = 0; f < c->nfiles; f++)
    for (size_t i = 0; i < hoist_file_tensor_count(c->files[f]); i++) {
      if (selected != NULL && !selected[seen++]) continue;
      const hoist_tensor_info *t = hoist_file_tensor(c->files[f], i);
      const hoist__shard_part *part = NULL;
      /* Loads with ranks: this rank's part of t (shard.c). */
      int rc = hoist__shard_tensor(rt, c->shards, c->info->name, t, &t, &part);
      if (rc != HOIST_OK) return rc;
      placed_tensor *pt = &c->tensors[k++];
      *pt = (placed_tensor){t, (uint32_t)f, 0, *t, 0, part};
      rc = hoist__tensor_target(rt, c->info->name, t, target, &pt->dev.dtype, &pt->dev.nbytes);
      if (rc != HOIST_OK) return rc;
      if (pt->dev.dtype != t->dtype) c->converts = 1;
    }
  qsort(c->tensors, n, sizeof *c->tensors, cmp_placement);
  uint64_t off = 0, bytes = 0;
  for (size_t i = 0; i < n; i++) {
    if (!hoist__round_up_u64(off, HOIST_TENSOR_ALIGN, &off) ||
        !hoist__add_u64(bytes, c->tensors[i].t->nbytes, &bytes))
      return hoist__fail(rt, HOIST_OVERFLOW, "%s: placement overflows", c->info->name);
    c->tensors[i].off = off;
    if (!hoist__add_u64(off, c->tensors[i].dev.nbytes, &off))
      return hoist__fail(rt, HOIST_OVERFLOW, "%s: placement overflows", c->info->name);
    c->by_name[i] = &c->tensors[i];
  }
  qsort(c->by_name, n, sizeof *c->by_name, cmp_by_name);
  if (!hoist__round_up_u64(off, HOIST_TENSOR_ALIGN, &c->span) ||
      !hoist__round_up_u64(c->span, granularity, &c->need))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: placement overflows", c->info->name);
  c->pub.bytes = bytes;
  c->pub.tensor_count = n;
  return HOIST_OK;
}

const placed_tensor *hoist__find_tensor(const loaded_component *c, const char *name) {
  size_t lo = 0, hi = c->ntensors;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int cmp = strcmp(c->by_name[mid]->t->name, name);
    if (cmp == 0) return c->by_name[mid];
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}
