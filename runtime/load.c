/* load.c — hoist_load_pipeline: for each component in the planned order,
 * admission against the device's free memory read just before it, one arena
 * (or a few) with tensors placed largest-first at 256-byte alignment, and
 * the upload engine to fill it; offloaded components are read once into a
 * pinned host copy instead.  Any failure releases everything this load took,
 * so a refused or broken load leaves the device as it found it. */
#include "load.h"
#include "upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t comp_tensor_addr(const comp_state *c, const placed_tensor *pt) {
  int a = c->narenas - 1;
  while (a > 0 && pt->off < c->arena_begin[a]) a--;
  return c->arena_addr[a] + (pt->off - c->arena_begin[a]);
}

void comp_free_arenas(hoist_runtime *rt, comp_state *c) {
  for (int a = 0; a < c->narenas; a++) rt->dev->ops->free(rt->dev, c->arena_addr[a]);
  c->narenas = 0;
}

/* Splits the placement into k arenas at tensor boundaries, close to equal
 * sizes, and allocates them; frees what it took when one fails. */
static int alloc_split(hoist_runtime *rt, comp_state *c, int k) {
  uint64_t target = c->span / (uint64_t)k + 1;
  c->narenas = 0;
  uint64_t begin = 0;
  int rc = HOIST_OK;
  for (size_t i = 0; i <= c->ntensors; i++) {
    bool last = i == c->ntensors;
    uint64_t off = last ? c->span : c->tensors[i].off;
    if (!last && (off - begin < target || c->narenas == k - 1)) continue;
    if (off == begin) continue;
    uint64_t bytes = off - begin;
    uint64_t addr = 0;
    rc = rt->dev->ops->alloc(rt->dev, bytes, &addr);
    if (rc != HOIST_OK) {
      comp_free_arenas(rt, c);
      return rc;
    }
    c->arena_addr[c->narenas] = addr;
    c->arena_begin[c->narenas] = begin;
    c->arena_bytes[c->narenas] = bytes;
    c->narenas++;
    begin = off;
  }
  return HOIST_OK;
}

int comp_alloc_arenas(hoist_runtime *rt, comp_state *c) {
  if (c->span == 0) return HOIST_OK;
  int rc = HOIST_OK;
  /* One arena, or a few when fragmentation denies a single one. */
  for (int k = 1; k <= HOIST_MAX_ARENAS; k *= 2) {
    rc = alloc_split(rt, c, k);
    if (rc != HOIST_DEVICE_OOM || (size_t)k >= c->ntensors) break;
    hoist_log(rt, HOIST_LOG_INFO, "%s: no single arena of %llu bytes; trying %d", c->info->name,
              (unsigned long long)c->span, k * 2);
  }
  return rc;
}

static int cmp_placement(const void *pa, const void *pb) {
  const placed_tensor *a = pa, *b = pb;
  if (a->t->nbytes != b->t->nbytes) return a->t->nbytes > b->t->nbytes ? -1 : 1;
  if (a->file != b->file) return a->file < b->file ? -1 : 1;
  return a->t->begin < b->t->begin ? -1 : a->t->begin > b->t->begin;
}

static int cmp_by_name(const void *pa, const void *pb) {
  const placed_tensor *a = *(const placed_tensor *const *)pa;
  const placed_tensor *b = *(const placed_tensor *const *)pb;
  return strcmp(a->t->name, b->t->name);
}

/* Tensors of the component, placed largest-first; span and need. */
static int comp_place(hoist_runtime *rt, comp_state *c, uint64_t granularity) {
  size_t n = 0;
  for (size_t f = 0; f < c->nfiles; f++) n += hoist_file_tensor_count(c->files[f]);
  c->ntensors = n;
  c->tensors = calloc(n > 0 ? n : 1, sizeof *c->tensors);
  c->by_name = calloc(n > 0 ? n : 1, sizeof *c->by_name);
  if (c->tensors == NULL || c->by_name == NULL)
    return hoist_fail(rt, HOIST_NO_MEMORY, "%s: out of memory placing %zu tensors", c->info->name, n);
  size_t k = 0;
  for (size_t f = 0; f < c->nfiles; f++)
    for (size_t i = 0; i < hoist_file_tensor_count(c->files[f]); i++)
      c->tensors[k++] = (placed_tensor){hoist_file_tensor(c->files[f], i), (uint32_t)f, 0};
  qsort(c->tensors, n, sizeof *c->tensors, cmp_placement);
  uint64_t off = 0, bytes = 0;
  for (size_t i = 0; i < n; i++) {
    if (!hoist_round_up_u64(off, HOIST_TENSOR_ALIGN, &off) ||
        !hoist_add_u64(bytes, c->tensors[i].t->nbytes, &bytes))
      return hoist_fail(rt, HOIST_OVERFLOW, "%s: placement overflows", c->info->name);
    c->tensors[i].off = off;
    if (!hoist_add_u64(off, c->tensors[i].t->nbytes, &off))
      return hoist_fail(rt, HOIST_OVERFLOW, "%s: placement overflows", c->info->name);
    c->by_name[i] = &c->tensors[i];
  }
  qsort(c->by_name, n, sizeof *c->by_name, cmp_by_name);
  if (!hoist_round_up_u64(off, HOIST_TENSOR_ALIGN, &c->span) ||
      !hoist_round_up_u64(c->span, granularity, &c->need))
    return hoist_fail(rt, HOIST_OVERFLOW, "%s: placement overflows", c->info->name);
  c->pub.bytes = bytes;
  c->pub.tensor_count = n;
  return HOIST_OK;
}

static void comp_release(hoist_runtime *rt, comp_state *c) {
  comp_free_arenas(rt, c);
  if (c->host_copy != NULL) rt->dev->ops->pinned_free(rt->dev, c->host_copy);
  c->host_copy = NULL;
  c->pub.device_bytes = 0;
  c->pub.device_begin = c->pub.device_end = 0;
}

/* Uploads c's tensors into its arenas (or its host copy when to_host). */
static int comp_upload(hoist_runtime *rt, hoist_engine *e, comp_state *c, int to_host,
                       const hoist_load_options *o) {
  if (c->ntensors == 0) return HOIST_OK;
  upload_job job = {0};
  job.component = c->info->name;
  job.to_host = to_host;
  job.progress = o->progress;
  job.progress_user = o->progress_user;
  job.cancel = o->cancel;
  const hoist_tensor_info **ts = malloc(c->ntensors * sizeof *ts);
  uint32_t *tf = malloc(c->ntensors * sizeof *tf);
  uint64_t *dst = malloc(c->ntensors * sizeof *dst);
  int rc = HOIST_OK;
  if (ts == NULL || tf == NULL || dst == NULL) {
    rc = hoist_fail(rt, HOIST_NO_MEMORY, "%s: out of memory", c->info->name);
    goto done;
  }
  for (size_t i = 0; i < c->ntensors; i++) {
    ts[i] = c->tensors[i].t;
    tf[i] = c->tensors[i].file;
    dst[i] = to_host ? (uint64_t)(uintptr_t)c->host_copy + c->tensors[i].off
                     : comp_tensor_addr(c, &c->tensors[i]);
  }
  hoist_read_mode mode = o->read_mode;
  if (to_host && (mode == HOIST_READ_REGISTER || mode == HOIST_READ_DIRECT)) mode = HOIST_READ_AUTO;
  rc = upload_files_open(rt, (const hoist_file *const *)c->files, c->nfiles, mode, &job.files);
  if (rc != HOIST_OK) goto done;
  job.nfiles = c->nfiles;
  rc = upload_job_build(rt, &job, hoist_engine_chunk_bytes(e), ts, tf, dst, c->ntensors);
  if (rc != HOIST_OK) goto done;
  rc = hoist_engine_run(e, &job);
done:
  upload_job_free(&job);
  upload_files_close(rt, job.files, job.nfiles);
  free(ts);
  free(tf);
  free(dst);
  return rc;
}

/* Compares every tensor of c on the device (or in its host copy) with the
 * file; reports the first differing byte. */
static int comp_verify(hoist_runtime *rt, comp_state *c) {
  const size_t piece = 8u << 20;
  unsigned char *dev_buf = malloc(piece), *file_buf = malloc(piece);
  int rc = HOIST_OK;
  if (dev_buf == NULL || file_buf == NULL) {
    rc = hoist_fail(rt, HOIST_NO_MEMORY, "verify: out of memory");
    goto done;
  }
  for (size_t i = 0; i < c->ntensors && rc == HOIST_OK; i++) {
    const placed_tensor *pt = &c->tensors[i];
    const hoist_file *f = c->files[pt->file];
    uint64_t base = c->host_copy != NULL && c->narenas == 0
                        ? (uint64_t)(uintptr_t)c->host_copy + pt->off
                        : comp_tensor_addr(c, pt);
    for (uint64_t off = 0; off < pt->t->nbytes && rc == HOIST_OK; off += piece) {
      size_t len = (size_t)(pt->t->nbytes - off < piece ? pt->t->nbytes - off : piece);
      if (c->narenas == 0)
        memcpy(dev_buf, (const void *)(uintptr_t)(base + off), len);
      else if ((rc = rt->dev->ops->copy_d2h(rt->dev, dev_buf, base + off, len)) != HOIST_OK)
        break;
      rc = hoist_file_read(f, hoist_file_data_offset(f) + pt->t->begin + off, file_buf, len);
      if (rc != HOIST_OK) {
        rc = hoist_fail(rt, rc, "verify: %s: cannot read tensor '%s'", hoist_file_path(f), pt->t->name);
        break;
      }
      if (memcmp(dev_buf, file_buf, len) != 0) {
        size_t j = 0;
        while (dev_buf[j] == file_buf[j]) j++;
        rc = hoist_fail(rt, HOIST_VERIFY_MISMATCH,
                        "verify: %s: tensor '%s' differs from %s at byte %llu (device %#04x, "
                        "file %#04x)",
                        c->info->name, pt->t->name, hoist_file_path(f),
                        (unsigned long long)(off + j), dev_buf[j], file_buf[j]);
      }
    }
  }
done:
  free(dev_buf);
  free(file_buf);
  return rc;
}

static void set_failure(const hoist_load_options *o, const char *name, uint64_t need,
                        uint64_t free_b) {
  if (o->failure == NULL) return;
  snprintf(o->failure->component, sizeof o->failure->component, "%s", name);
  o->failure->need_bytes = need;
  o->failure->free_bytes = free_b;
}

static void loaded_free(hoist_loaded *l) {
  if (l == NULL) return;
  for (size_t i = 0; i < l->ncomps; i++) {
    comp_release(l->rt, &l->comps[i]);
    free(l->comps[i].tensors);
    free(l->comps[i].by_name);
  }
  free(l->comps);
  free(l);
}

static uint64_t default_headroom(const hoist_device *d, uint64_t total) {
  if (strcmp(d->kind, "host") == 0) return 0;
  uint64_t pct = total / 50;
  return pct > (256ull << 20) ? pct : (256ull << 20);
}

/* Preflight: can every device-placed component fit under today's free
 * memory?  Names the first that does not. */
static int preflight(hoist_runtime *rt, hoist_loaded *l, const unsigned char *offload,
                     uint64_t headroom, uint64_t free_b, const hoist_load_options *o) {
  uint64_t sum = 0;
  for (size_t i = 0; i < l->ncomps; i++) {
    comp_state *c = &l->comps[i];
    if (offload[i] || c->need == 0) continue;
    uint64_t next = sum + c->need;
    if (next + headroom > free_b) {
      uint64_t total = next;
      for (size_t j = i + 1; j < l->ncomps; j++)
        if (!offload[j]) total += l->comps[j].need;
      set_failure(o, c->info->name, c->need + headroom, free_b > sum ? free_b - sum : 0);
      return hoist_fail(rt, HOIST_ADMISSION,
                        "preflight: the plan needs %llu bytes on %s plus %llu headroom but %llu "
                        "are free; components before '%s' fit (%llu bytes), '%s' needs %llu "
                        "with %llu left; short by %llu bytes",
                        (unsigned long long)total, rt->dev->name, (unsigned long long)headroom,
                        (unsigned long long)free_b, c->info->name, (unsigned long long)sum,
                        c->info->name, (unsigned long long)c->need,
                        (unsigned long long)(free_b > sum + headroom ? free_b - sum - headroom : 0),
                        (unsigned long long)(total + headroom - free_b));
    }
    sum = next;
  }
  return HOIST_OK;
}

int hoist_load_pipeline(hoist_runtime *rt, const hoist_pipeline *p, const hoist_load_options *opts,
                        hoist_loaded **out) {
  return hoist_load_pipeline_ext(rt, p, opts, NULL, out);
}

/* Checks that order[0..n) is a permutation of the slots 0..n-1. */
static int check_order(hoist_runtime *rt, const size_t *order, size_t n) {
  unsigned char *seen = calloc(n > 0 ? n : 1, 1);
  if (seen == NULL) return hoist_fail(rt, HOIST_NO_MEMORY, "out of memory checking a load order");
  int rc = HOIST_OK;
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) {
    if (order[i] >= n || seen[order[i]])
      rc = hoist_fail(rt, HOIST_INVALID_ARGUMENT,
                      "load order: entry %zu is slot %zu, not a permutation of 0..%zu", i, order[i],
                      n > 0 ? n - 1 : 0);
    else
      seen[order[i]] = 1;
  }
  free(seen);
  return rc;
}

int hoist_load_pipeline_ext(hoist_runtime *rt, const hoist_pipeline *p,
                            const hoist_load_options *opts, const hoist_load_ext *ext,
                            hoist_loaded **out) {
  hoist_load_options defaults = HOIST_LOAD_OPTIONS_INIT;
  const hoist_load_options *o = opts != NULL ? opts : &defaults;
  *out = NULL;
  if (o->struct_size != sizeof(hoist_load_options))
    return hoist_fail(rt, HOIST_INVALID_ARGUMENT,
                      "hoist_load_options.struct_size mismatch (use HOIST_LOAD_OPTIONS_INIT)");
  if (o->failure != NULL) memset(o->failure, 0, sizeof *o->failure);
  hoist_device *d = rt->dev;
  uv_mutex_lock(&rt->load_lock);
  /* Copies from file mappings turn a truncation into FILE_CHANGED. */
  hoist_sigbus_guard_acquire();
  double t0 = now_seconds();
  int rc = HOIST_OK;
  uint64_t transient_addr = 0; /* a transient allocation held during one upload */
  unsigned char *offload = NULL, *fsdp = NULL;
  hoist_loaded *l = calloc(1, sizeof *l);
  size_t n = hoist_pipeline_component_count(p);
  if (l == NULL || (l->comps = calloc(n > 0 ? n : 1, sizeof *l->comps)) == NULL ||
      (offload = calloc(n > 0 ? n : 1, 1)) == NULL || (fsdp = calloc(n > 0 ? n : 1, 1)) == NULL) {
    rc = hoist_fail(rt, HOIST_NO_MEMORY, "out of memory starting a load");
    goto fail;
  }
  l->rt = rt;
  l->p = p;
  l->ncomps = n;
  if (ext != NULL && ext->order != NULL && (rc = check_order(rt, ext->order, n)) != HOIST_OK)
    goto fail;

  /* Plan: every component's placement, in load order. */
  for (size_t pos = 0; pos < n; pos++) {
    comp_state *c = &l->comps[pos];
    c->info = ext != NULL && ext->order != NULL ? hoist_pipeline_component(p, ext->order[pos])
                                                : hoist_pipeline_ordered(p, pos);
    c->index_i = c->info->index;
    for (size_t i = 0; i < n; i++)
      if (hoist_pipeline_component(p, i) == c->info) c->index_i = i;
    c->nfiles = hoist_pipeline_safetensors(p, c->index_i, &c->files);
    c->pub.name = c->info->name;
    c->pub.residency = HOIST_RESIDENT;
    if (c->nfiles == 0 && c->info->file_count > 0)
      hoist_log(rt, HOIST_LOG_WARN, "%s: only non-safetensors weights; not loaded", c->info->name);
    rc = comp_place(rt, c, d->ops->alloc_granularity);
    if (rc != HOIST_OK) goto fail;
  }
  rc = hoist_residency_select(rt, "offload", o->offload, l->comps, n, offload);
  if (rc == HOIST_OK) rc = hoist_residency_select(rt, "fsdp", o->fsdp, l->comps, n, fsdp);
  if (rc != HOIST_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    if (offload[i] && fsdp[i]) {
      rc = hoist_fail(rt, HOIST_INVALID_ARGUMENT,
                      "%s: marked both --offload and --fsdp; an FSDP component is placed by its owner",
                      l->comps[i].info->name);
      goto fail;
    }
    if (fsdp[i]) l->comps[i].pub.residency = HOIST_FSDP;
  }

  uint64_t free_b = 0, total_b = 0;
  if ((rc = d->ops->mem_info(d, &free_b, &total_b)) != HOIST_OK) goto fail;
  uint64_t headroom = o->headroom >= 0 ? (uint64_t)o->headroom : default_headroom(d, total_b);
  if (o->on_oom == HOIST_ON_OOM_FAIL &&
      (rc = preflight(rt, l, offload, headroom, free_b, o)) != HOIST_OK)
    goto fail;

  hoist_engine *e = NULL;
  if ((rc = hoist_engine_get(rt, &e)) != HOIST_OK) goto fail;

  for (size_t pos = 0; pos < n; pos++) {
    comp_state *c = &l->comps[pos];
    if (o->cancel != NULL && *o->cancel) {
      rc = hoist_fail(rt, HOIST_CANCELLED, "load cancelled before '%s'", c->info->name);
      goto fail;
    }
    if (c->ntensors == 0) continue;
    double c0 = now_seconds();
    bool to_host = offload[pos];
    if (!to_host) {
      /* Transient bytes this component's load holds besides its arenas
       * (hoist_load_ext; 0 for hoist's own loader). */
      uint64_t trans = 0, need = c->need;
      if (ext != NULL && ext->transient != NULL &&
          (!hoist_round_up_u64(ext->transient(ext->transient_user, c->info, c->pub.bytes),
                               d->ops->alloc_granularity, &trans) ||
           !hoist_add_u64(need, trans, &need))) {
        rc = hoist_fail(rt, HOIST_OVERFLOW, "%s: transient bytes overflow", c->info->name);
        goto fail;
      }
      /* Admission: free memory now, not at the start. */
      if ((rc = d->ops->mem_info(d, &free_b, &total_b)) != HOIST_OK) goto fail;
      bool fits = need <= free_b && headroom <= free_b - need;
      if (fits) {
        rc = comp_alloc_arenas(rt, c);
        if (rc == HOIST_OK && trans > 0 &&
            (rc = d->ops->alloc(d, trans, &transient_addr)) != HOIST_OK)
          comp_free_arenas(rt, c);
        if (rc == HOIST_DEVICE_OOM) fits = false; /* lost a race with another allocator */
        else if (rc != HOIST_OK) goto fail;
      }
      if (!fits) {
        if (o->on_oom != HOIST_ON_OOM_OFFLOAD || fsdp[pos]) {
          set_failure(o, c->info->name, need + headroom, free_b);
          rc = hoist_fail(rt, HOIST_ADMISSION,
                          "%s: needs %llu bytes (+%llu headroom) on %s but %llu are free%s",
                          c->info->name, (unsigned long long)need,
                          (unsigned long long)headroom, d->name, (unsigned long long)free_b,
                          rc == HOIST_DEVICE_OOM ? " (allocation failed despite admission)" : "");
          goto fail;
        }
        hoist_log(rt, HOIST_LOG_INFO, "%s: %llu bytes do not fit in %llu free; offloading",
                  c->info->name, (unsigned long long)c->need, (unsigned long long)free_b);
        to_host = true;
        rc = HOIST_OK;
      }
    }
    if (to_host) {
      c->pub.residency = HOIST_OFFLOAD;
      if ((rc = d->ops->pinned_alloc(d, (size_t)c->span, &c->host_copy)) != HOIST_OK) goto fail;
    } else {
      c->pub.device_bytes = c->need;
      c->pub.device_begin = c->arena_addr[0];
      c->pub.device_end = c->arena_addr[0] + c->arena_bytes[0];
    }
    rc = comp_upload(rt, e, c, to_host, o);
    if (transient_addr != 0) d->ops->free(d, transient_addr);
    transient_addr = 0;
    if (rc != HOIST_OK) goto fail;
    c->pub.seconds = now_seconds() - c0;
    l->total_bytes += c->pub.bytes;
  }
  l->seconds = now_seconds() - t0;
  if (o->verify)
    for (size_t pos = 0; pos < n && rc == HOIST_OK; pos++) rc = comp_verify(rt, &l->comps[pos]);
  if (rc != HOIST_OK) goto fail;
  free(offload);
  free(fsdp);
  hoist_sigbus_guard_release();
  uv_mutex_unlock(&rt->load_lock);
  *out = l;
  return HOIST_OK;
fail:
  if (transient_addr != 0) d->ops->free(d, transient_addr);
  loaded_free(l);
  free(offload);
  free(fsdp);
  hoist_sigbus_guard_release();
  uv_mutex_unlock(&rt->load_lock);
  return rc;
}

void hoist_loaded_close(hoist_loaded *l) {
  if (l == NULL) return;
  hoist_runtime *rt = l->rt;
  uv_mutex_lock(&rt->load_lock);
  loaded_free(l);
  uv_mutex_unlock(&rt->load_lock);
}

size_t hoist_loaded_component_count(const hoist_loaded *l) { return l->ncomps; }

const hoist_loaded_info *hoist_loaded_component(const hoist_loaded *l, size_t i) {
  return i < l->ncomps ? &l->comps[i].pub : NULL;
}

double hoist_loaded_seconds(const hoist_loaded *l) { return l->seconds; }
uint64_t hoist_loaded_total_bytes(const hoist_loaded *l) { return l->total_bytes; }
const char *hoist_loaded_device(const hoist_loaded *l) { return l->rt->device_name; }

int hoist_loaded_tensor(const hoist_loaded *l, const char *component, const char *tensor,
                        uint64_t *device_addr, const hoist_tensor_info **info) {
  *device_addr = 0;
  for (size_t i = 0; i < l->ncomps; i++) {
    const comp_state *c = &l->comps[i];
    if (strcmp(c->info->name, component) != 0) continue;
    size_t lo = 0, hi = c->ntensors;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      int cmp = strcmp(c->by_name[mid]->t->name, tensor);
      if (cmp == 0) {
        if (info != NULL) *info = c->by_name[mid]->t;
        if (c->narenas == 0)
          return hoist_fail(l->rt, HOIST_UNSUPPORTED, "%s: offloaded; call hoist_prepare_for_use",
                            component);
        *device_addr = comp_tensor_addr(c, c->by_name[mid]);
        return HOIST_OK;
      }
      if (cmp < 0) lo = mid + 1;
      else hi = mid;
    }
    return hoist_fail(l->rt, HOIST_NOT_FOUND, "%s: no tensor '%s'", component, tensor);
  }
  return hoist_fail(l->rt, HOIST_NOT_FOUND, "no component '%s'", component);
}
