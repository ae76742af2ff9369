/* oom_sim.c — the OOM-threshold model and its header-only simulation (see
 * oom_sim.h for the rules).  Built from an opened pipeline (its parsed
 * headers) or from a preset table; the planned order comes from the same
 * ordering code the loader uses (hoist__component_sort). */
#include "oom_sim.h"

#include "cli.h"
#include "pipeline.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLACE_ALIGN 256u /* HOIST_TENSOR_ALIGN in runtime/load.h */

static int err_set(char *err, size_t errsz, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int err_set(char *err, size_t errsz, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err != NULL && errsz > 0) vsnprintf(err, errsz, fmt, ap);
  va_end(ap);
  return status;
}

static int add_tensor(oom_comp *c, uint64_t nbytes) {
  uint64_t r;
  if (!hoist__round_up_u64(nbytes, PLACE_ALIGN, &r) || !hoist__add_u64(c->span, r, &c->span) ||
      !hoist__add_u64(c->bytes, nbytes, &c->bytes))
    return HOIST_OVERFLOW;
  c->tensors++;
  return HOIST_OK;
}

void oom_model_free(oom_model *m) {
  if (m == NULL) return;
  free(m->comps);
  free(m->planned);
  m->comps = NULL;
  m->planned = NULL;
  m->n = 0;
}

static int model_alloc(oom_model *m, size_t n) {
  m->n = n;
  m->comps = calloc(n > 0 ? n : 1, sizeof *m->comps);
  m->planned = calloc(n > 0 ? n : 1, sizeof *m->planned);
  return m->comps != NULL && m->planned != NULL ? HOIST_OK : HOIST_NO_MEMORY;
}

int oom_model_from_pipeline(const hoist_pipeline *p, oom_model *m, char *err, size_t errsz) {
  memset(m, 0, sizeof *m);
  snprintf(m->source, sizeof m->source, "%s", hoist_pipeline_path(p));
  size_t n = hoist_pipeline_component_count(p);
  int rc = model_alloc(m, n);
  if (rc != HOIST_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    const hoist_component_info *info = hoist_pipeline_component(p, i);
    oom_comp *c = &m->comps[i];
    snprintf(c->name, sizeof c->name, "%s", info->name);
    hoist_file *const *files = NULL;
    size_t nf = hoist__pipeline_safetensors(p, i, &files);
    for (size_t f = 0; f < nf && rc == HOIST_OK; f++)
      for (size_t t = 0; t < hoist_file_tensor_count(files[f]) && rc == HOIST_OK; t++)
        rc = add_tensor(c, hoist_file_tensor(files[f], t)->nbytes);
    if (rc != HOIST_OK) {
      err_set(err, errsz, rc, "%s: tensor sizes overflow", info->name);
      goto fail;
    }
  }
  for (size_t pos = 0; pos < n; pos++) {
    size_t slot = hoist__pipeline_slot(p, hoist_pipeline_ordered(p, pos));
    if (slot >= n) {
      rc = err_set(err, errsz, HOIST_INVALID_ARGUMENT, "planned order names a foreign component");
      goto fail;
    }
    m->planned[pos] = slot;
  }
  return HOIST_OK;
fail:
  if (rc == HOIST_NO_MEMORY) err_set(err, errsz, rc, "out of memory");
  oom_model_free(m);
  return rc;
}

typedef struct preset_acc {
  oom_comp *c;
  int rc;
} preset_acc;

static int preset_tensor(void *user, const hoist__preset_tensor *t) {
  preset_acc *a = user;
  a->rc = add_tensor(a->c, t->nbytes);
  return a->rc != HOIST_OK ? 1 : 0;
}

int oom_model_from_preset(const hoist__preset *ps, double scale, oom_model *m, char *err,
                          size_t errsz) {
  memset(m, 0, sizeof *m);
  hoist_component_info *infos = NULL;
  const hoist_component_info **sorted = NULL;
  if (!hoist__preset_scale_valid(scale))
    return err_set(err, errsz, HOIST_INVALID_ARGUMENT, "scale %g is not in (0, 1]", scale);
  if (scale == 1.0)
    snprintf(m->source, sizeof m->source, "%s", ps->name);
  else
    snprintf(m->source, sizeof m->source, "%s@%g", ps->name, scale);
  size_t n = ps->component_count;
  int rc = model_alloc(m, n);
  infos = calloc(n > 0 ? n : 1, sizeof *infos);
  sorted = calloc(n > 0 ? n : 1, sizeof *sorted);
  if (rc != HOIST_OK || infos == NULL || sorted == NULL) {
    rc = err_set(err, errsz, HOIST_NO_MEMORY, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    const hoist__preset_component *pc = &ps->components[i];
    oom_comp *c = &m->comps[i];
    snprintf(c->name, sizeof c->name, "%s", pc->name);
    if (pc->kind == HOIST_PRESET_WEIGHTS) {
      preset_acc a = {c, HOIST_OK};
      int r = hoist__preset_tensors(pc, scale, preset_tensor, &a);
      if (r != 0 || a.rc != HOIST_OK) {
        rc = err_set(err, errsz, a.rc != HOIST_OK ? a.rc : HOIST_INVALID_ARGUMENT,
                     "%s: cannot enumerate tensors", pc->name);
        goto fail;
      }
    }
    /* The same key the discovery gives the loader: inferred bytes are the
     * data bytes of the safetensors files (Σ tensor bytes). */
    infos[i].name = infos[i].load_name = pc->name;
    infos[i].index = (uint32_t)i;
    infos[i].has_size = pc->kind == HOIST_PRESET_WEIGHTS;
    infos[i].inferred_bytes = c->bytes;
    sorted[i] = &infos[i];
  }
  hoist__component_sort(sorted, n);
  for (size_t pos = 0; pos < n; pos++) m->planned[pos] = (size_t)(sorted[pos] - infos);
  free(infos);
  free(sorted);
  return HOIST_OK;
fail:
  free(infos);
  free(sorted);
  oom_model_free(m);
  return rc;
}

uint64_t oom_comp_need(const oom_comp *c, uint64_t granularity) {
  uint64_t need = 0;
  if (!hoist__round_up_u64(c->span, granularity, &need)) return UINT64_MAX;
  return need;
}

/* ---- Orders */

void oom_orders_free(oom_order *o, size_t count) {
  if (o == NULL) return;
  for (size_t i = 0; i < count; i++) free(o[i].slots);
  free(o);
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int push_order(oom_order **v, size_t *count, size_t *cap, const char *label, size_t n,
                      oom_order **slot_out) {
  if (*count == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    oom_order *nv = realloc(*v, nc * sizeof *nv);
    if (nv == NULL) return HOIST_NO_MEMORY;
    *v = nv;
    *cap = nc;
  }
  oom_order *o = &(*v)[*count];
  memset(o, 0, sizeof *o);
  snprintf(o->label, sizeof o->label, "%s", label);
  o->slots = malloc((n > 0 ? n : 1) * sizeof *o->slots);
  if (o->slots == NULL) return HOIST_NO_MEMORY;
  (*count)++;
  *slot_out = o;
  return HOIST_OK;
}

int oom_orders_parse(const char *spec, const oom_model *m, uint64_t seed, oom_order **out,
                     size_t *count, char *err, size_t errsz) {
  oom_order *v = NULL, *o = NULL;
  size_t n = 0, cap = 0, nn = m->n;
  int rc = HOIST_OK;
  *out = NULL;
  *count = 0;
  const char *p = spec;
  while (*p != '\0') {
    size_t len = strcspn(p, ",");
    char item[64];
    if (len == 0 || len >= sizeof item) {
      rc = err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--orders: empty or overlong entry in '%s'",
                   spec);
      goto fail;
    }
    memcpy(item, p, len);
    item[len] = '\0';
    p += len;
    if (*p == ',') p++;
    if (strcmp(item, "planned") == 0 || strcmp(item, "index") == 0 ||
        strcmp(item, "reverse") == 0) {
      if ((rc = push_order(&v, &n, &cap, item, nn, &o)) != HOIST_OK) goto fail;
      for (size_t i = 0; i < nn; i++)
        o->slots[i] = item[0] == 'p' ? m->planned[i] : item[0] == 'i' ? i : m->planned[nn - 1 - i];
    } else if (strncmp(item, "random:", 7) == 0) {
      uint64_t k;
      if (!cli_parse_uint(item + 7, 1, 1000, &k)) {
        rc = err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--orders: random:K takes K in 1..1000");
        goto fail;
      }
      for (uint64_t r = 0; r < k; r++) {
        char label[32];
        snprintf(label, sizeof label, "random#%llu", (unsigned long long)r + 1);
        if ((rc = push_order(&v, &n, &cap, label, nn, &o)) != HOIST_OK) goto fail;
        uint64_t state = seed + r;
        for (size_t i = 0; i < nn; i++) o->slots[i] = i;
        for (size_t i = nn; i > 1; i--) { /* Fisher-Yates */
          size_t j = (size_t)(splitmix64(&state) % i);
          size_t t = o->slots[i - 1];
          o->slots[i - 1] = o->slots[j];
          o->slots[j] = t;
        }
      }
    } else {
      rc = err_set(err, errsz, HOIST_INVALID_ARGUMENT,
                   "--orders: unknown order '%s' (planned, index, reverse, random:K)", item);
      goto fail;
    }
  }
  if (n == 0) {
    rc = err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--orders: no order given");
    goto fail;
  }
  *out = v;
  *count = n;
  return HOIST_OK;
fail:
  if (rc == HOIST_NO_MEMORY) err_set(err, errsz, rc, "out of memory");
  oom_orders_free(v, n);
  return rc;
}

/* ---- Policies */

static int in_group(const char *group, const char *name) {
  if (strcmp(group, "all") == 0) return 1;
  if (strcmp(group, "dit") == 0) return hoist__component_is_dit(name);
  if (strcmp(group, "text_encoder") == 0) return hoist__component_is_text_encoder(name);
  if (strcmp(group, "image_encoder") == 0) return hoist__component_is_image_encoder(name);
  if (strcmp(group, "vae") == 0) return hoist__component_is_vae(name);
  return 0;
}

int oom_policy_marks(const oom_policy *pol, const oom_model *m, unsigned char *mark, char *err,
                     size_t errsz) {
  memset(mark, 0, m->n > 0 ? m->n : 1);
  const char *p = pol->offload;
  while (*p != '\0') {
    size_t len = strcspn(p, ",");
    char item[OOM_NAME_MAX];
    if (len == 0 || len >= sizeof item)
      return err_set(err, errsz, HOIST_INVALID_ARGUMENT, "policy '%s': empty or overlong name",
                     pol->label);
    memcpy(item, p, len);
    item[len] = '\0';
    int matched = 0;
    for (size_t i = 0; i < m->n; i++)
      if (strcmp(m->comps[i].name, item) == 0 || in_group(item, m->comps[i].name)) {
        mark[i] = 1;
        matched = 1;
      }
    if (!matched)
      return err_set(err, errsz, HOIST_INVALID_ARGUMENT,
                     "policy '%s': '%s' names no component of %s (groups: dit, text_encoder, "
                     "image_encoder, vae, all)",
                     pol->label, item, m->source);
    p += len;
    if (*p == ',') p++;
  }
  return HOIST_OK;
}

int oom_policy_parse(const char *spec, const oom_model *m, oom_policy *out, char *err,
                     size_t errsz) {
  memset(out, 0, sizeof *out);
  if (strlen(spec) >= sizeof out->label || spec[0] == '\0')
    return err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--policy: empty or overlong '%s'", spec);
  snprintf(out->label, sizeof out->label, "%s", spec);
  const char *p = spec;
  int seen_oom = 0;
  while (*p != '\0') {
    size_t len = strcspn(p, "+");
    char term[OOM_LABEL_MAX];
    memcpy(term, p, len);
    term[len] = '\0';
    p += len;
    if (*p == '+') {
      p++;
      if (*p == '\0')
        return err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--policy '%s': ends with '+'", spec);
    }
    if (strcmp(term, "resident") == 0) continue;
    if (strncmp(term, "offload:", 8) == 0 && term[8] != '\0') {
      size_t have = strlen(out->offload);
      if (have + 1 + strlen(term + 8) >= sizeof out->offload)
        return err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--policy '%s': list too long", spec);
      snprintf(out->offload + have, sizeof out->offload - have, "%s%s", have ? "," : "",
               term + 8);
    } else if (strncmp(term, "on-oom=", 7) == 0 && !seen_oom &&
               (strcmp(term + 7, "fail") == 0 || strcmp(term + 7, "offload") == 0)) {
      seen_oom = 1;
      out->on_oom_offload = strcmp(term + 7, "offload") == 0;
    } else {
      return err_set(err, errsz, HOIST_INVALID_ARGUMENT,
                     "--policy '%s': bad term '%s' (resident | offload:NAME[,NAME] | "
                     "on-oom=fail|offload, joined with '+')",
                     spec, term);
    }
  }
  /* Resolve now so that a name matching nothing is caught before any load. */
  unsigned char *mark = malloc(m->n > 0 ? m->n : 1);
  if (mark == NULL) return err_set(err, errsz, HOIST_NO_MEMORY, "out of memory");
  int rc = oom_policy_marks(out, m, mark, err, errsz);
  free(mark);
  return rc;
}

/* ---- Transients and the co-tenant */

int oom_transient_parse(const char *spec, oom_transient *out, char *err, size_t errsz) {
  memset(out, 0, sizeof *out);
  if (strcmp(spec, "none") == 0) return HOIST_OK;
  if (strcmp(spec, "cast") == 0) {
    out->kind = OOM_TRANSIENT_CAST;
    return HOIST_OK;
  }
  if (strncmp(spec, "scratch:", 8) == 0 && cli_parse_bytes(spec + 8, &out->scratch)) {
    out->kind = OOM_TRANSIENT_SCRATCH;
    return HOIST_OK;
  }
  return err_set(err, errsz, HOIST_INVALID_ARGUMENT,
                 "--transient takes none, cast or scratch:BYTES (not '%s')", spec);
}

uint64_t oom_transient_bytes(const oom_transient *t, uint64_t tensor_bytes) {
  switch (t->kind) {
  case OOM_TRANSIENT_CAST:
    return tensor_bytes;
  case OOM_TRANSIENT_SCRATCH:
    return t->scratch;
  default:
    return 0;
  }
}

void oom_transient_label(const oom_transient *t, char *buf, size_t size) {
  if (t->kind == OOM_TRANSIENT_CAST)
    snprintf(buf, size, "cast");
  else if (t->kind == OOM_TRANSIENT_SCRATCH)
    snprintf(buf, size, "scratch:%llu", (unsigned long long)t->scratch);
  else
    snprintf(buf, size, "none");
}

int oom_cotenant_parse(const char *spec, oom_cotenant *out, char *err, size_t errsz) {
  memset(out, 0, sizeof *out);
  const char *at = strchr(spec, '@');
  char bytes[64];
  if (at == NULL || (size_t)(at - spec) >= sizeof bytes)
    return err_set(err, errsz, HOIST_INVALID_ARGUMENT, "--co-tenant takes BYTES@FRACTION");
  memcpy(bytes, spec, (size_t)(at - spec));
  bytes[at - spec] = '\0';
  char *end = NULL;
  double f = strtod(at + 1, &end);
  if (!cli_parse_bytes(bytes, &out->bytes) || out->bytes == 0 || end == at + 1 || *end != '\0' ||
      !(f >= 0.0 && f < 1.0))
    return err_set(err, errsz, HOIST_INVALID_ARGUMENT,
                   "--co-tenant takes BYTES@FRACTION with BYTES > 0 and 0 <= FRACTION < 1 "
                   "(not '%s')",
                   spec);
  out->fraction = f;
  out->enabled = 1;
  return HOIST_OK;
}

int oom_cotenant_struck(const oom_cotenant *c, uint64_t done, uint64_t total) {
  if (!c->enabled) return 0;
  if (c->fraction == 0.0) return 1;
  return done > 0 && (double)done >= c->fraction * (double)total;
}

/* ---- Simulation */

uint64_t oom_device_bytes(const oom_setup *s) {
  uint64_t sum = 0;
  for (size_t i = 0; i < s->m->n; i++)
    if (!s->offload[i] && s->m->comps[i].tensors > 0)
      sum += oom_comp_need(&s->m->comps[i], s->granularity);
  return sum;
}

static uint64_t trans_need(const oom_setup *s, const oom_comp *c) {
  uint64_t t = 0;
  if (!hoist__round_up_u64(oom_transient_bytes(&s->transient, c->bytes), s->granularity, &t))
    return UINT64_MAX / 4;
  return t;
}

uint64_t oom_upper_bound(const oom_setup *s) {
  uint64_t max_t = 0;
  for (size_t i = 0; i < s->m->n; i++) {
    uint64_t t = trans_need(s, &s->m->comps[i]);
    if (s->m->comps[i].tensors > 0 && t > max_t) max_t = t;
  }
  uint64_t hi = oom_device_bytes(s) + max_t + s->headroom + OOM_STEP;
  if (s->cotenant.enabled) hi += s->cotenant.bytes;
  return hi;
}

static void append_name(char *list, size_t size, const char *name) {
  size_t have = strlen(list);
  snprintf(list + have, size - have, "%s%s", have ? "," : "", name);
}

void oom_sim_trial(const oom_setup *s, uint64_t capacity, oom_result *r) {
  const oom_model *m = s->m;
  memset(r, 0, sizeof *r);
  r->capacity = capacity;
  uint64_t total = 0, done = 0, used = 0;
  for (size_t i = 0; i < m->n; i++) total += m->comps[i].bytes;
  int struck = s->cotenant.enabled && s->cotenant.fraction == 0.0;
  uint64_t cap = capacity;
  if (struck) cap = cap > s->cotenant.bytes ? cap - s->cotenant.bytes : 0;
  if (!s->on_oom_offload) {
    /* Preflight against the free memory at the start. */
    uint64_t sum = oom_device_bytes(s);
    if (sum + s->headroom > cap) {
      uint64_t acc = 0;
      for (size_t pos = 0; pos < m->n; pos++) {
        const oom_comp *c = &m->comps[s->order[pos]];
        uint64_t need = oom_comp_need(c, s->granularity);
        if (s->offload[s->order[pos]] || need == 0) continue;
        if (acc + need + s->headroom > cap) {
          snprintf(r->failed, sizeof r->failed, "%s", c->name);
          break;
        }
        acc += need;
      }
      r->status = HOIST_ADMISSION;
      return;
    }
  }
  for (size_t pos = 0; pos < m->n; pos++) {
    size_t slot = s->order[pos];
    const oom_comp *c = &m->comps[slot];
    if (c->tensors == 0) continue;
    if (!struck && oom_cotenant_struck(&s->cotenant, done, total)) {
      struck = 1;
      cap = cap > s->cotenant.bytes ? cap - s->cotenant.bytes : 0;
    }
    if (!s->offload[slot]) {
      uint64_t need = oom_comp_need(c, s->granularity), t = trans_need(s, c);
      uint64_t free_b = cap > used ? cap - used : 0;
      if (need + t <= free_b && s->headroom <= free_b - need - t) {
        if (used + need + t > r->peak) r->peak = used + need + t;
        used += need;
      } else if (s->on_oom_offload) {
        append_name(r->oom_offloaded, sizeof r->oom_offloaded, c->name);
      } else {
        snprintf(r->failed, sizeof r->failed, "%s", c->name);
        r->status = HOIST_ADMISSION;
        r->peak = 0;
        return;
      }
    }
    done += c->bytes;
  }
  r->status = HOIST_OK;
  r->device_bytes = used;
  r->ok = r->oom_offloaded[0] == '\0';
}

int oom_sim_trial_fn(void *user, uint64_t capacity, oom_result *r) {
  oom_sim_trial(user, capacity, r);
  return HOIST_OK;
}

int oom_bisect(oom_trial_fn trial, void *user, uint64_t hi, uint64_t step, int *found,
               uint64_t *threshold, oom_result *at, oom_result *below) {
  oom_result r;
  memset(at, 0, sizeof *at);
  memset(below, 0, sizeof *below);
  *found = 0;
  *threshold = 0;
  uint64_t khi = hi / step, klo;
  int rc = trial(user, khi * step, &r);
  if (rc != HOIST_OK) return rc;
  if (!r.ok) {
    *at = r;
    return HOIST_OK;
  }
  *at = r;
  if ((rc = trial(user, 0, &r)) != HOIST_OK) return rc;
  if (r.ok) {
    *at = r;
    *found = 1;
    return HOIST_OK;
  }
  *below = r;
  klo = 0;
  /* Invariant: klo fails, khi succeeds. */
  while (khi - klo > 1) {
    uint64_t mid = klo + (khi - klo) / 2;
    if ((rc = trial(user, mid * step, &r)) != HOIST_OK) return rc;
    if (r.ok) {
      khi = mid;
      *at = r;
    } else {
      klo = mid;
      *below = r;
    }
  }
  *threshold = khi * step;
  *found = 1;
  return HOIST_OK;
}

int oom_what_fits(const oom_setup *s, uint64_t card, unsigned char *mark, uint64_t *threshold) {
  const oom_model *m = s->m;
  size_t w[16], nw = 0;
  for (size_t i = 0; i < m->n; i++)
    if (m->comps[i].tensors > 0 && nw < 16) w[nw++] = i;
  unsigned char *try_mark = calloc(m->n > 0 ? m->n : 1, 1);
  unsigned char *resolved = calloc(m->n > 0 ? m->n : 1, 1);
  if (try_mark == NULL || resolved == NULL) {
    free(try_mark);
    free(resolved);
    return -1;
  }
  int best = -1;
  uint64_t best_bytes = 0, best_thr = 0;
  unsigned best_count = 0;
  oom_setup t = *s;
  t.offload = try_mark;
  t.on_oom_offload = 0;
  for (uint32_t sub = 0; sub < (1u << nw); sub++) {
    memset(try_mark, 0, m->n > 0 ? m->n : 1);
    uint64_t bytes = 0;
    unsigned count = 0;
    for (size_t k = 0; k < nw; k++)
      if (sub & (1u << k)) {
        try_mark[w[k]] = 1;
        bytes += m->comps[w[k]].bytes;
        count++;
      }
    if (best >= 0 && (bytes > best_bytes || (bytes == best_bytes && count >= best_count))) continue;
    /* Only sets the loader's --offload can name: "text_encoder" is also a
     * group and selects text_encoder_2 with it. */
    oom_policy pol;
    memset(&pol, 0, sizeof pol);
    for (size_t k = 0; k < nw; k++)
      if (sub & (1u << k)) append_name(pol.offload, sizeof pol.offload, m->comps[w[k]].name);
    if (oom_policy_marks(&pol, m, resolved, NULL, 0) != HOIST_OK ||
        memcmp(resolved, try_mark, m->n) != 0)
      continue;
    int found;
    uint64_t thr;
    oom_result at, below;
    oom_bisect(oom_sim_trial_fn, &t, oom_upper_bound(&t), OOM_STEP, &found, &thr, &at, &below);
    if (!found || thr > card) continue;
    best = (int)sub;
    best_bytes = bytes;
    best_count = count;
    best_thr = thr;
  }
  if (best >= 0) {
    memset(mark, 0, m->n > 0 ? m->n : 1);
    for (size_t k = 0; k < nw; k++)
      if ((uint32_t)best & (1u << k)) mark[w[k]] = 1;
    *threshold = best_thr;
  }
  free(try_mark);
  free(resolved);
  return best >= 0 ? 0 : -1;
}
