/* shard.c — the arithmetic of per-rank loading (shard.h).
 *
 * FSDP2 (torch.distributed.fsdp.fully_shard) shards every parameter on
 * dim 0 with torch.chunk: each rank's chunk has ceil(n / W) rows, the last
 * ranks get what is left, possibly nothing.  A tensor-parallel plan splits
 * named tensors into W equal parts on any dimension, and refuses a
 * dimension W does not divide, as tensor-parallel layers do.  A part on
 * dim 0 is one contiguous run of the file; on a later dimension it is one
 * run per index of the dimensions before it (a strided read), which the
 * job builder turns into gathered segments (shard_job.c).  A scalar has no
 * dimension to split: every rank holds it. */
#include "shard.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hoist__shard_fsdp_rows(uint64_t n, uint32_t world, uint32_t rank, uint64_t *offset,
                            uint64_t *length, uint64_t *padded) {
  const uint64_t chunk = n / world + (n % world != 0);
  const uint64_t begin = chunk * rank; /* <= n + world: no overflow for n <= 2^53 */
  *padded = chunk;
  *offset = begin < n ? begin : n;
  *length = begin < n ? (n - begin < chunk ? n - begin : chunk) : 0;
}

bool hoist__shard_even_rows(uint64_t n, uint32_t world, uint32_t rank, uint64_t *offset,
                            uint64_t *length) {
  if (n % world != 0) return false;
  *length = n / world;
  *offset = *length * rank;
  return true;
}

int hoist__shard_cut_tensor(hoist_runtime *rt, const char *component, const hoist_tensor_info *t,
                            uint32_t dim, uint64_t offset, uint64_t length,
                            hoist__shard_cut *out) {
  char shown[HOIST_SHOW_NAME];
  uint64_t outer = 1, inner = 1, row_bits = 0;
  for (uint32_t k = 0; k < dim; k++) outer *= t->shape[k]; /* the reader checked the products */
  for (uint32_t k = dim + 1; k < t->ndim; k++) inner *= t->shape[k];
  if (!hoist__mul_u64(inner, hoist_dtype_bits(t->dtype), &row_bits))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: tensor '%s': shard size overflows", component,
                       hoist__show(t->name, shown, sizeof shown));
  const bool whole = offset == 0 && length == t->shape[dim];
  if (!whole && row_bits % 8 != 0)
    return hoist__fail(rt, HOIST_UNSUPPORTED,
                       "%s: tensor '%s': a part of dimension %u of %s does not end on a byte "
                       "(%llu bits a row)",
                       component, hoist__show(t->name, shown, sizeof shown), dim,
                       hoist_dtype_name(t->dtype), (unsigned long long)row_bits);
  const uint64_t row = row_bits / 8;
  *out = (hoist__shard_cut){.dim = dim, .offset = offset, .length = length, .padded = length};
  out->stride = t->shape[dim] * row;
  out->first = offset * row;
  out->piece_bytes = length * row;
  out->pieces = out->piece_bytes == 0 ? 0 : outer;
  if (whole || outer == 1) { /* one contiguous run */
    out->piece_bytes = whole ? t->nbytes : out->piece_bytes;
    out->pieces = out->piece_bytes == 0 ? 0 : 1;
  }
  return HOIST_OK;
}

void hoist__shard_split_span(const uint64_t *offsets, size_t n, uint64_t span, uint32_t world,
                             uint32_t rank, uint64_t *begin, uint64_t *end) {
  /* Cut k (1 <= k < world) is the first tensor boundary at or past
   * k * span / world, so every rank computes the same ranges. */
  uint64_t cut_lo = 0, cut_hi = span;
  for (uint32_t k = 1; k < world; k++) {
    const uint64_t want = span / world * k + span % world * k / world;
    uint64_t at = span;
    for (size_t i = 0; i < n; i++)
      if (offsets[i] >= want) {
        at = offsets[i];
        break;
      }
    if (k == rank) cut_lo = at;
    if (k == rank + 1) cut_hi = at;
  }
  *begin = cut_lo;
  *end = cut_hi < cut_lo ? cut_lo : cut_hi;
}

/* ---- The plan */

void hoist__shard_plan_free(hoist__shard_plan *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->rules[i].component);
    free(p->rules[i].glob);
  }
  free(p->rules);
  p->rules = NULL;
  p->n = 0;
}

/* One entry NAME:GLOB=DIM of len bytes at s into *r. */
static int parse_rule(hoist_runtime *rt, const char *s, size_t len, hoist__shard_rule *r) {
  const char *colon = memchr(s, ':', len);
  const char *eq = NULL;
  for (const char *q = s + len; q-- > s;)
    if (*q == '=') {
      eq = q;
      break;
    }
  char dimtext[16] = "";
  char *end = NULL;
  long dim = 0;
  const size_t dimlen = eq != NULL ? (size_t)(s + len - eq - 1) : 0;
  if (eq != NULL && dimlen > 0 && dimlen < sizeof dimtext) {
    memcpy(dimtext, eq + 1, dimlen);
    dim = strtol(dimtext, &end, 10);
  }
  if (colon == NULL || colon == s || eq == NULL || eq < colon + 2 || end == NULL || *end != '\0' ||
      end == dimtext || dim < -64 || dim > 63)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "`shard`: '%.*s' is not NAME:GLOB=DIM (DIM an integer, negative from "
                       "the last)",
                       (int)(len > 200 ? 200 : len), s);
  r->component = strndup(s, (size_t)(colon - s));
  r->glob = strndup(colon + 1, (size_t)(eq - colon - 1));
  r->dim = (int)dim;
  r->matched = 0;
  if (r->component == NULL || r->glob == NULL)
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory reading `shard`");
  return HOIST_OK;
}

int hoist__shard_plan_parse(hoist_runtime *rt, const char *text, uint32_t rank, uint32_t world,
                            hoist__shard_plan *out) {
  *out = (hoist__shard_plan){.rank = rank, .world = world};
  if (text == NULL || text[0] == '\0') return HOIST_OK;
  size_t n = 1;
  for (const char *p = text; *p != '\0'; p++) n += *p == ',';
  out->rules = calloc(n, sizeof *out->rules);
  if (out->rules == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory reading `shard`");
  for (const char *p = text;;) {
    const char *comma = strchr(p, ',');
    const size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    int rc = parse_rule(rt, p, len, &out->rules[out->n]);
    out->n++;
    if (rc != HOIST_OK) return rc;
    if (comma == NULL) break;
    p = comma + 1;
  }
  return HOIST_OK;
}

int hoist__shard_plan_check(hoist_runtime *rt, const hoist__shard_plan *p) {
  for (size_t i = 0; i < p->n; i++) {
    const hoist__shard_rule *r = &p->rules[i];
    char a[HOIST_SHOW_NAME], b[HOIST_SHOW_NAME];
    if (r->matched == 0)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                         "`shard`: '%s:%s=%d' names no tensor (no component '%s' has a tensor "
                         "matching '%s')",
                         hoist__show(r->component, a, sizeof a), hoist__show(r->glob, b, sizeof b),
                         r->dim, a, b);
  }
  return HOIST_OK;
}

/* ---- A component's table */

void hoist__shard_table_free(hoist__shard_table *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->nparts; i++) free(t->parts[i].shape);
  free(t->parts);
  free(t->applies);
  free(t);
}

int hoist__shard_table_create(hoist_runtime *rt, const hoist_component_info *info, int fsdp,
                              hoist__shard_plan *plan, size_t ntensors,
                              hoist__shard_table **out) {
  *out = NULL;
  const bool split_fsdp = fsdp && plan->world > 1;
  size_t named = 0;
  for (size_t i = 0; i < plan->n; i++)
    named += hoist__component_selected_by(plan->rules[i].component, info->name, info->load_name);
  if (!split_fsdp && named == 0) return HOIST_OK;
  if (fsdp && named > 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s: both FSDP-marked and named by `shard`; an FSDP component is split "
                       "on dim 0 already",
                       info->name);
  hoist__shard_table *t = calloc(1, sizeof *t);
  if (t == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for a shard table");
  t->rank = plan->rank;
  t->world = plan->world;
  t->fsdp = split_fsdp;
  t->plan = plan;
  t->cap = ntensors;
  t->applies = calloc(plan->n > 0 ? plan->n : 1, 1);
  t->parts = calloc(ntensors > 0 ? ntensors : 1, sizeof *t->parts);
  if (t->applies == NULL || t->parts == NULL) {
    hoist__shard_table_free(t);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for a shard table");
  }
  for (size_t i = 0; i < plan->n; i++)
    t->applies[i] = hoist__component_selected_by(plan->rules[i].component, info->name,
                                                 info->load_name);
  *out = t;
  return HOIST_OK;
}

/* The rule that splits tensor name (the last of the component's rules
 * that matches it wins, as later entries do in dtype_for); counts every
 * match.  NULL when none matches. */
static const hoist__shard_rule *rule_for(hoist__shard_table *table, const char *name) {
  const hoist__shard_rule *found = NULL;
  for (size_t i = 0; i < table->plan->n; i++) {
    hoist__shard_rule *r = &table->plan->rules[i];
    if (!table->applies[i] || fnmatch(r->glob, name, 0) != 0) continue;
    r->matched++;
    found = r;
  }
  return found;
}

/* Where rank's part of t on dim lies: FSDP's chunk or the plan's equal
 * part; HOIST_INVALID_ARGUMENT when world does not divide a planned one. */
static int part_rows(hoist_runtime *rt, const hoist__shard_table *table, const char *component,
                     const hoist_tensor_info *t, uint32_t dim, int kind, hoist__shard_cut *rows) {
  char shown[HOIST_SHOW_NAME];
  uint64_t offset = 0, length = 0, padded = 0;
  if (kind == HOIST__SHARD_FSDP) {
    hoist__shard_fsdp_rows(t->shape[0], table->world, table->rank, &offset, &length, &padded);
  } else if (!hoist__shard_even_rows(t->shape[dim], table->world, table->rank, &offset, &length)) {
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "`shard`: %s: tensor '%s': dimension %u (%llu) does not split into %u "
                       "equal parts",
                       component, hoist__show(t->name, shown, sizeof shown), dim,
                       (unsigned long long)t->shape[dim], table->world);
  } else {
    padded = length;
  }
  *rows = (hoist__shard_cut){.dim = dim, .offset = offset, .length = length, .padded = padded};
  return HOIST_OK;
}

/* Fills part with t's local description from cut. */
static int describe_part(hoist_runtime *rt, const hoist_tensor_info *t, const hoist__shard_cut *cut,
                         int kind, hoist__shard_part *part) {
  part->shape = malloc((t->ndim > 0 ? t->ndim : 1) * sizeof *part->shape);
  if (part->shape == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for a shard");
  memcpy(part->shape, t->shape, t->ndim * sizeof *part->shape);
  part->shape[cut->dim] = cut->length;
  uint64_t nelements = 1;
  for (uint32_t k = 0; k < t->ndim; k++) nelements *= part->shape[k];
  const uint64_t nbytes = cut->pieces * cut->piece_bytes;
  const uint64_t extent = cut->pieces > 0 ? (cut->pieces - 1) * cut->stride + cut->piece_bytes : 0;
  part->local = *t;
  part->local.shape = part->shape;
  part->local.nelements = nelements;
  part->local.nbytes = nbytes;
  part->local.begin = t->begin + (cut->pieces > 0 ? cut->first : 0);
  part->local.end = part->local.begin + extent;
  part->global = t;
  part->cut = *cut;
  part->kind = kind;
  return HOIST_OK;
}

int hoist__shard_tensor(hoist_runtime *rt, hoist__shard_table *table, const char *component,
                        const hoist_tensor_info *t, const hoist_tensor_info **local,
                        const hoist__shard_part **part) {
  *local = t;
  *part = NULL;
  if (table == NULL) return HOIST_OK;
  const hoist__shard_rule *rule = table->fsdp ? NULL : rule_for(table, t->name);
  if ((!table->fsdp && rule == NULL) || t->ndim == 0) return HOIST_OK; /* replicated */
  const int kind = table->fsdp ? HOIST__SHARD_FSDP : HOIST__SHARD_TP;
  uint32_t dim = 0;
  if (rule != NULL) {
    const int d = rule->dim < 0 ? rule->dim + (int)t->ndim : rule->dim;
    char shown[HOIST_SHOW_NAME];
    if (d < 0 || d >= (int)t->ndim)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                         "`shard`: %s: tensor '%s' has %u dimension%s; it has no dimension %d",
                         component, hoist__show(t->name, shown, sizeof shown), t->ndim,
                         t->ndim == 1 ? "" : "s", rule->dim);
    dim = (uint32_t)d;
  }
  hoist__shard_cut rows = {0}, cut = {0};
  int rc = part_rows(rt, table, component, t, dim, kind, &rows);
  if (rc == HOIST_OK) rc = hoist__shard_cut_tensor(rt, component, t, dim, rows.offset, rows.length, &cut);
  if (rc != HOIST_OK || table->world == 1) return rc; /* world 1: checked, never split */
  cut.padded = rows.padded;
  if (table->nparts >= table->cap)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "%s: more tensors than its shard table holds",
                       component);
  hoist__shard_part *p = &table->parts[table->nparts];
  if ((rc = describe_part(rt, t, &cut, kind, p)) != HOIST_OK) return rc;
  table->nparts++;
  *local = &p->local;
  *part = p;
  return HOIST_OK;
}
