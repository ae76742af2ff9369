/* targets.c — placing a component at the caller's buffers (targets.h).
 *
 * The component's tensors are indexed by name once; each target finds its
 * tensor there, so a target naming no tensor, one the filter left out and
 * two targets naming one tensor are told apart in the message.  Then each
 * pair is checked (dtype pair, size, shape, alignment), the destinations
 * against each other (no overlap) and against the device (memory it may
 * write), and only then placed: every refusal comes before anything is
 * allocated or moved.
 *
 * Placement order is the order the engine issues chunks in: large tensors
 * first, largest first (they set the pace, as in an arena), then the small
 * ones in address order, so that small tensors whose buffers touch share a
 * transfer (job.c merges only touching ones in the caller's memory). */
#include "targets.h"

#include "dtype.h"

#include <stdlib.h>
#include <string.h>

/* Tensors at least this large are issued first, largest first. */
#define LARGE_TENSOR (1u << 20)

/* One tensor of the component's files. */
typedef struct entry {
  const hoist_tensor_info *t;
  uint32_t file;
  bool selected;
  size_t target; /* index of the target naming it; SIZE_MAX: none */
} entry;

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const entry *)a)->t->name, ((const entry *)b)->t->name);
}

static entry *find_entry(entry *v, size_t n, const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(v[mid].t->name, name);
    if (cmp == 0) return &v[mid];
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* Every tensor of c's files, sorted by name, with its selection flag. */
static int index_tensors(hoist_runtime *rt, const loaded_component *c,
                         const unsigned char *selected, entry **out, size_t *n) {
  size_t count = 0, k = 0;
  for (size_t f = 0; f < c->nfiles; f++) count += hoist_file_tensor_count(c->files[f]);
  entry *v = malloc((count > 0 ? count : 1) * sizeof *v);
  if (v == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory matching targets");
  for (size_t f = 0; f < c->nfiles; f++)
    for (size_t i = 0; i < hoist_file_tensor_count(c->files[f]); i++, k++)
      v[k] = (entry){hoist_file_tensor(c->files[f], i), (uint32_t)f,
                     selected == NULL || selected[k], SIZE_MAX};
  qsort(v, count, sizeof *v, cmp_entry);
  *out = v;
  *n = count;
  return HOIST_OK;
}

/* Points each target at its tensor.  A target naming no selected tensor
 * is an error when strict, else left unfilled; two targets naming one
 * tensor always are. */
static int match_targets(hoist_runtime *rt, const loaded_component *c, const hoist__targets *tg,
                         entry *v, size_t n) {
  char cb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME];
  const char *comp = hoist__show(c->info->name, cb, sizeof cb);
  for (size_t k = 0; k < tg->n; k++) {
    const char *name = tg->v[k].tensor;
    if (tg->filled != NULL) tg->filled[k] = 0;
    if (name == NULL)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "%s: target %zu names no tensor (NULL)", comp,
                         k);
    entry *e = find_entry(v, n, name);
    if (e != NULL && e->target != SIZE_MAX)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                         "%s: targets %zu and %zu both name tensor '%s'", comp, e->target, k,
                         hoist__show(name, tb, sizeof tb));
    if (e != NULL && e->selected) {
      e->target = k;
      if (tg->filled != NULL) tg->filled[k] = 1;
      continue;
    }
    if (!tg->strict) continue;
    if (e == NULL)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                         "%s: no tensor '%s' in the component for a target (strict)", comp,
                         hoist__show(name, tb, sizeof tb));
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: tensor '%s' has a target but the tensor filter left it out (strict)",
                       comp, hoist__show(name, tb, sizeof tb));
  }
  return HOIST_OK;
}

/* Selected tensors without a target: the first is an error when strict,
 * else each goes to the missing callback, in name order. */
static int report_missing(hoist_runtime *rt, const loaded_component *c, const hoist__targets *tg,
                          const entry *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!v[i].selected || v[i].target != SIZE_MAX) continue;
    if (tg->strict) {
      char cb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME];
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "%s: tensor '%s' has no target (strict)",
                         hoist__show(c->info->name, cb, sizeof cb),
                         hoist__show(v[i].t->name, tb, sizeof tb));
    }
    if (tg->missing != NULL) tg->missing(tg->missing_user, v[i].t->name);
  }
  return HOIST_OK;
}

/* The bytes the tensor takes in dtype to: its own size in its own dtype,
 * else its element count times the target's element size. */
static bool target_bytes(const hoist_tensor_info *t, hoist_dtype to, uint64_t *bytes) {
  if (to == t->dtype) {
    *bytes = t->nbytes;
    return true;
  }
  return hoist__mul_u64(t->nelements, hoist_dtype_bits(to) / 8, bytes);
}

static void shape_text(uint32_t ndim, const uint64_t *shape, char *buf, size_t size) {
  size_t len = (size_t)snprintf(buf, size, "[");
  for (uint32_t k = 0; k < ndim && len < size; k++)
    len += (size_t)snprintf(buf + len, size - len, "%s%llu", k ? ", " : "",
                            (unsigned long long)shape[k]);
  if (len < size) snprintf(buf + len, size - len, "]");
}

/* One target against its tensor: dtype pair, bytes, shape, address. */
static int check_target(hoist_runtime *rt, const loaded_component *c, const hoist_tensor_info *t,
                        const hoist_load_target *x, uint64_t *bytes) {
  char cb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME];
  const char *comp = hoist__show(c->info->name, cb, sizeof cb);
  const char *name = hoist__show(t->name, tb, sizeof tb);
  if ((unsigned)x->dtype >= (unsigned)HOIST_DTYPE_COUNT_)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: tensor '%s': target dtype %d is not a dtype", comp, name,
                       (int)x->dtype);
  if (!hoist__convert_supported(t->dtype, x->dtype))
    return hoist__fail(rt, HOIST_UNSUPPORTED,
                       "%s: tensor '%s' is %s in the file and its target is %s: no conversion "
                       "between them (floating pairs only: F32, F16, BF16 among themselves, "
                       "F8_E4M3 and F8_E5M2 to those)",
                       comp, name, hoist_dtype_name(t->dtype), hoist_dtype_name(x->dtype));
  if (!target_bytes(t, x->dtype, bytes))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: tensor '%s': size overflows", comp, name);
  if (x->nbytes != *bytes)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: tensor '%s' takes %llu bytes as %s, its target has %llu", comp, name,
                       (unsigned long long)*bytes, hoist_dtype_name(x->dtype),
                       (unsigned long long)x->nbytes);
  bool same_shape = x->shape == NULL || x->ndim == t->ndim;
  for (uint32_t k = 0; same_shape && x->shape != NULL && k < t->ndim; k++)
    same_shape = x->shape[k] == t->shape[k];
  if (!same_shape) {
    char want[256], got[256];
    shape_text(t->ndim, t->shape, want, sizeof want);
    shape_text(x->ndim, x->shape, got, sizeof got);
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: tensor '%s' has shape %s in the file, its target %s", comp, name, want,
                       got);
  }
  if (*bytes == 0) return HOIST_OK;
  uint64_t end;
  if (x->addr == 0 || !hoist__add_u64(x->addr, *bytes, &end))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "%s: tensor '%s': target address %#llx is not "
                       "memory", comp, name, (unsigned long long)x->addr);
  const unsigned elem = hoist_dtype_bits(x->dtype) / 8;
  if (x->dtype != t->dtype && x->addr % elem != 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: tensor '%s' converts to %s, whose target address %#llx is not "
                       "aligned to %u bytes",
                       comp, name, hoist_dtype_name(x->dtype), (unsigned long long)x->addr, elem);
  return HOIST_OK;
}

static int cmp_addr(const void *a, const void *b) {
  const placed_tensor *x = *(const placed_tensor *const *)a, *y = *(const placed_tensor *const *)b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* The destinations of c's placed tensors (nonempty ones) do not overlap,
 * and the device may write each. */
static int check_memory(hoist_runtime *rt, const loaded_component *c) {
  const placed_tensor **by_addr = malloc((c->ntensors > 0 ? c->ntensors : 1) * sizeof *by_addr);
  hoist__range *ranges = malloc((c->ntensors > 0 ? c->ntensors : 1) * sizeof *ranges);
  int rc = by_addr == NULL || ranges == NULL
               ? hoist__fail(rt, HOIST_NO_MEMORY, "out of memory checking targets")
               : HOIST_OK;
  size_t n = 0;
  for (size_t i = 0; i < c->ntensors && rc == HOIST_OK; i++)
    if (c->tensors[i].dev.nbytes > 0) by_addr[n++] = &c->tensors[i];
  if (rc == HOIST_OK) qsort(by_addr, n, sizeof *by_addr, cmp_addr);
  char cb[HOIST_SHOW_NAME], ab[HOIST_SHOW_NAME], bb[HOIST_SHOW_NAME];
  for (size_t i = 1; i < n && rc == HOIST_OK; i++) {
    const placed_tensor *a = by_addr[i - 1], *b = by_addr[i];
    if (a->addr + a->dev.nbytes > b->addr)
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: the targets of tensors '%s' and '%s' overlap ([%#llx, +%llu) and "
                       "[%#llx, +%llu))",
                       hoist__show(c->info->name, cb, sizeof cb),
                       hoist__show(a->t->name, ab, sizeof ab),
                       hoist__show(b->t->name, bb, sizeof bb), (unsigned long long)a->addr,
                       (unsigned long long)a->dev.nbytes, (unsigned long long)b->addr,
                       (unsigned long long)b->dev.nbytes);
  }
  for (size_t i = 0; i < n && rc == HOIST_OK; i++)
    ranges[i] = (hoist__range){by_addr[i]->addr, by_addr[i]->dev.nbytes};
  size_t bad = 0;
  const char *why = "";
  hoist__device *d = rt->dev;
  if (rc == HOIST_OK && n > 0 &&
      (rc = d->ops->check_writable(d, ranges, n, &bad, &why)) == HOIST_INVALID_ARGUMENT)
    rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                     "%s: tensor '%s': its target [%#llx, +%llu) is %s, not memory %s may write",
                     hoist__show(c->info->name, cb, sizeof cb),
                     hoist__show(by_addr[bad]->t->name, ab, sizeof ab),
                     (unsigned long long)ranges[bad].addr, (unsigned long long)ranges[bad].bytes,
                     why, d->name);
  free(ranges);
  free(by_addr);
  return rc;
}

static int cmp_caller_order(const void *pa, const void *pb) {
  const placed_tensor *a = pa, *b = pb;
  const bool la = a->dev.nbytes >= LARGE_TENSOR, lb = b->dev.nbytes >= LARGE_TENSOR;
  if (la != lb) return la ? -1 : 1;
  if (la && a->dev.nbytes != b->dev.nbytes) return a->dev.nbytes > b->dev.nbytes ? -1 : 1;
  return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* c's tensors: each matched entry, checked, at its target. */
static int place_matched(hoist_runtime *rt, loaded_component *c, const hoist__targets *tg,
                         const entry *v, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++) count += v[i].target != SIZE_MAX;
  c->tensors = calloc(count > 0 ? count : 1, sizeof *c->tensors);
  if (c->tensors == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory placing targets");
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i].target == SIZE_MAX) continue;
    const hoist_load_target *x = &tg->v[v[i].target];
    uint64_t bytes = 0;
    int rc = check_target(rt, c, v[i].t, x, &bytes);
    if (rc != HOIST_OK) return rc;
    placed_tensor *pt = &c->tensors[c->ntensors++];
    *pt = (placed_tensor){v[i].t, v[i].file, 0, *v[i].t, x->addr, NULL};
    pt->dev.dtype = x->dtype;
    pt->dev.nbytes = bytes;
    if (x->dtype != v[i].t->dtype) c->converts = 1;
    if (!hoist__add_u64(total, v[i].t->nbytes, &total))
      return hoist__fail(rt, HOIST_OVERFLOW, "%s: sizes overflow", c->info->name);
  }
  qsort(c->tensors, c->ntensors, sizeof *c->tensors, cmp_caller_order);
  c->caller_buffers = 1;
  c->pub.bytes = total;
  c->pub.tensor_count = c->ntensors;
  return HOIST_OK;
}

int hoist__place_targets(hoist_runtime *rt, loaded_component *c, const hoist__targets *targets,
                         const unsigned char *selected) {
  entry *v = NULL;
  size_t n = 0;
  int rc = index_tensors(rt, c, selected, &v, &n);
  if (rc == HOIST_OK) rc = match_targets(rt, c, targets, v, n);
  if (rc == HOIST_OK) rc = report_missing(rt, c, targets, v, n);
  if (rc == HOIST_OK) rc = place_matched(rt, c, targets, v, n);
  if (rc == HOIST_OK) rc = check_memory(rt, c);
  free(v);
  return rc;
}
