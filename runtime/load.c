/* load.c — hoist_load_pipeline: for each component in the planned order,
 * admission against the device's free memory read just before it, one arena
 * (or a few) with tensors placed largest-first at 256-byte alignment, and
 * the upload engine to fill it; offloaded components are read once into a
 * pinned host copy instead.  Any failure releases everything this load took,
 * so a refused or broken load leaves the device as it found it.
 *
 * With a target dtype (--dtype), floating tensors are placed in target
 * bytes and their chunks land in a small device scratch ring (held only
 * while the component uploads, and counted by its admission) from which the
 * conversion kernel writes the arena.  --verify compares, per chunk, the
 * block checksum the reader threads took of the bytes they read with the
 * device's checksum of the same bytes: where they landed for plain chunks,
 * in the scratch before conversion for converted ones. */
#include "load.h"
#include "admission.h"
#include "dtype.h"
#include "job.h"
#include "verify.h"

#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define DEFAULT_SCRATCH (64ull << 20)
/* Each component's target dtype (load order) from --dtype and the
 * --dtype-for entries, later entries winning. */
static int resolve_targets(hoist_runtime *rt, const hoist_load_options *o,
                           const hoist_component_info *const *infos, size_t n, hoist_dtype *target) {
  hoist_dtype all = HOIST_DTYPE_KEEP;
  int rc = HOIST_OK;
  if (o->dtype != NULL && o->dtype[0] != '\0' &&
      (rc = hoist_dtype_target_parse(rt, "dtype", o->dtype, strlen(o->dtype), &all)) != HOIST_OK)
    return rc;
  for (size_t i = 0; i < n; i++) target[i] = all;
  if (o->dtype_for == NULL || o->dtype_for[0] == '\0') return HOIST_OK;
  unsigned char *mark = malloc(n > 0 ? n : 1);
  if (mark == NULL) return hoist_fail(rt, HOIST_NO_MEMORY, "out of memory");
  const char *p = o->dtype_for;
  while (*p != '\0' && rc == HOIST_OK) {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    char name[128];
    hoist_dtype d = HOIST_DTYPE_KEEP;
    if (eq == NULL || eq == p || (size_t)(eq - p) >= sizeof name) {
      rc = hoist_fail(rt, HOIST_INVALID_ARGUMENT, "--dtype-for: '%.*s' is not NAME=DTYPE",
                      (int)(len > 128 ? 128 : len), p);
      break;
    }
    memcpy(name, p, (size_t)(eq - p));
    name[eq - p] = '\0';
    if ((rc = hoist_dtype_target_parse(rt, "dtype-for", eq + 1, len - (size_t)(eq - p) - 1, &d)) != HOIST_OK)
      break;
    memset(mark, 0, n > 0 ? n : 1);
    if ((rc = hoist_component_select(rt, "dtype-for", name, infos, n, mark)) != HOIST_OK) break;
    for (size_t i = 0; i < n; i++)
      if (mark[i]) target[i] = d;
    p += len;
    if (*p == ',') p++;
  }
  free(mark);
  return rc;
}

static void comp_release(hoist_runtime *rt, comp_state *c) {
  comp_free_arenas(rt, c);
  if (c->host_copy != NULL) rt->dev->ops->pinned_free(rt->dev, c->host_copy);
  c->host_copy = NULL;
  c->pub.device_bytes = 0;
  c->pub.device_begin = c->pub.device_end = 0;
}

/* Bytes of the transient device memory a component's upload uses: the
 * scratch ring when it converts, UPLOAD_VERIFY_BYTES_PER_CHUNK per chunk for
 * --verify; each rounded to the backend's granularity. */
static int comp_own_transient(hoist_runtime *rt, hoist_engine *e, comp_state *c, int verify,
                              uint64_t scratch_ring, uint64_t convert_step) {
  uint64_t chunk = hoist_engine_chunk_bytes(e), bound = 0, g = rt->dev->ops->alloc_granularity;
  for (size_t i = 0; i < c->ntensors; i++) {
    const placed_tensor *pt = &c->tensors[i];
    uint64_t step = pt->dev.dtype != pt->t->dtype ? convert_step : chunk;
    bound += pt->t->nbytes / step + 1;
  }
  c->chunk_bound = bound;
  uint64_t scratch = 0, hashes = 0, total = 0;
  if ((c->converts && !hoist_round_up_u64(scratch_ring, g, &scratch)) ||
      (verify && (bound > UINT64_MAX / UPLOAD_VERIFY_BYTES_PER_CHUNK ||
                  !hoist_round_up_u64(bound * UPLOAD_VERIFY_BYTES_PER_CHUNK, g, &hashes))) ||
      !hoist_add_u64(scratch, hashes, &total))
    return hoist_fail(rt, HOIST_OVERFLOW, "%s: scratch size overflows", c->info->name);
  c->ring_bytes = scratch;
  c->hash_bytes = hashes;
  return HOIST_OK;
}

/* Uploads c's tensors into its arenas (or its host copy when to_host);
 * scratch (a pool of scratch_slots slots of scratch_slot bytes) and hashes
 * are the device memory of its own transient (0 when unused).  With
 * o->verify it then checks every chunk (after ext's after_upload hook). */
static int comp_upload(hoist_runtime *rt, hoist_engine *e, hoist_loaded *l, size_t pos,
                       int to_host, const hoist_load_options *o, const hoist_load_ext *ext,
                       uint64_t scratch, uint64_t scratch_slot, unsigned scratch_slots,
                       uint64_t hashes) {
  comp_state *c = &l->comps[pos];
  if (c->ntensors == 0) return HOIST_OK;
  upload_job job = {0};
  job.component = c->info->name;
  job.to_host = to_host;
  job.progress = o->progress;
  job.progress_user = o->progress_user;
  job.cancel = o->cancel;
  job.scratch = scratch;
  job.scratch_slot = scratch_slot;
  job.scratch_slots = scratch_slots;
  job.verify = o->verify != 0;
  job.dev_hashes = hashes;
  job.hash_stride = c->chunk_bound;
  int rc = HOIST_OK;
  hoist_read_mode mode = o->read_mode;
  if (to_host && (mode == HOIST_READ_REGISTER || mode == HOIST_READ_DIRECT)) mode = HOIST_READ_AUTO;
  rc = upload_files_open(rt, (const hoist_file *const *)c->files, c->nfiles, mode, &job.files);
  if (rc != HOIST_OK) goto done;
  job.nfiles = c->nfiles;
  /* Host copies convert through the reader's pinned slot (a chunk). */
  uint64_t step = to_host || scratch_slot == 0 ? hoist_engine_chunk_bytes(e) : scratch_slot;
  rc = upload_job_build(rt, &job, c, hoist_engine_chunk_bytes(e), step);
  if (rc != HOIST_OK) goto done;
  if (job.verify && !to_host && job.nchunks > c->chunk_bound) {
    rc = hoist_fail(rt, HOIST_OVERFLOW, "%s: %zu chunks above the bound of %llu", c->info->name,
                    job.nchunks, (unsigned long long)c->chunk_bound);
    goto done;
  }
  double t0 = now_seconds();
  rc = hoist_engine_run(e, &job);
  double t1 = now_seconds();
  if (rc != HOIST_OK) goto done;
  size_t converting = 0;
  for (size_t i = 0; i < job.nchunks; i++) converting += job.chunks[i].from != job.chunks[i].to;
  if (to_host)
    hoist_log(rt, HOIST_LOG_DEBUG, "%s: %llu bytes in %zu transfers (%zu converted) to its host "
              "copy in %.3f ms",
              c->info->name, (unsigned long long)job.total_bytes, job.nchunks, converting,
              (t1 - t0) * 1e3);
  else
    hoist_log(rt, HOIST_LOG_DEBUG,
              "%s: %llu bytes in %zu transfers (%zu converted) uploaded in %.3f ms by %u "
              "reader%s; they waited %.3f ms in all for their earlier transfers (a copy, and "
              "the conversion it waited for)",
              c->info->name, (unsigned long long)job.total_bytes, job.nchunks, converting,
              (t1 - t0) * 1e3, job.readers, job.readers == 1 ? "" : "s", job.copy_wait_ns / 1e6);
  if (ext != NULL && ext->after_upload != NULL) ext->after_upload(ext->after_upload_user, l, pos);
  if (!job.verify) goto done;
  t0 = now_seconds();
  rc = upload_job_verify(rt, e, c, &job);
  if (rc == HOIST_OK)
    hoist_log(rt, HOIST_LOG_DEBUG, "%s: verified in %.3f ms", c->info->name,
              (now_seconds() - t0) * 1e3);
done:
  upload_job_free(&job);
  upload_files_close(rt, job.files, job.nfiles);
  return rc;
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

/* The load's conversion scratch ring: bytes, and the positions of the first
 * and last device-placed components that convert (first > last: none). */
typedef struct ring_span {
  uint64_t bytes;
  size_t first, last;
} ring_span;

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
  uint64_t ring_addr = 0;      /* the conversion scratch ring, while held */
  uint64_t hashes_addr = 0;    /* this component's verify hashes */
  hoist_dtype *target = NULL;
  const hoist_component_info **infos = NULL;
  unsigned char *offload = NULL, *fsdp = NULL;
  hoist_loaded *l = calloc(1, sizeof *l);
  size_t n = hoist_pipeline_component_count(p);
  if (l == NULL || (l->comps = calloc(n > 0 ? n : 1, sizeof *l->comps)) == NULL ||
      (offload = calloc(n > 0 ? n : 1, 1)) == NULL || (fsdp = calloc(n > 0 ? n : 1, 1)) == NULL ||
      (target = calloc(n > 0 ? n : 1, sizeof *target)) == NULL ||
      (infos = calloc(n > 0 ? n : 1, sizeof *infos)) == NULL) {
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
    infos[pos] = c->info;
    c->index_i = c->info->index;
    for (size_t i = 0; i < n; i++)
      if (hoist_pipeline_component(p, i) == c->info) c->index_i = i;
    c->nfiles = hoist_pipeline_safetensors(p, c->index_i, &c->files);
    c->pub.name = c->info->name;
    c->pub.residency = HOIST_RESIDENT;
    if (c->nfiles == 0 && c->info->file_count > 0)
      hoist_log(rt, HOIST_LOG_WARN, "%s: only non-safetensors weights; not loaded", c->info->name);
  }
  /* Target dtypes, then placement in target bytes: an impossible
   * conversion fails here, before anything is allocated. */
  if ((rc = resolve_targets(rt, o, infos, n, target)) != HOIST_OK) goto fail;
  for (size_t pos = 0; pos < n; pos++)
    if ((rc = comp_place(rt, &l->comps[pos], d->ops->alloc_granularity, target[pos])) != HOIST_OK)
      goto fail;
  rc = hoist_component_select(rt, "offload", o->offload, infos, n, offload);
  if (rc == HOIST_OK) rc = hoist_component_select(rt, "fsdp", o->fsdp, infos, n, fsdp);
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

  /* The engine's threads and chunk size the scratch ring (made once per
   * runtime; it holds pinned memory, not device memory). */
  hoist_engine *e = NULL;
  if ((rc = hoist_engine_get(rt, &e)) != HOIST_OK) goto fail;
  uint64_t scratch_want = o->scratch_bytes != 0 ? o->scratch_bytes : DEFAULT_SCRATCH;
  uint64_t scratch_slot = hoist_engine_scratch_slot(e, scratch_want);
  unsigned scratch_slots = hoist_engine_scratch_slots(e, scratch_want);
  uint64_t scratch_ring = scratch_slot * scratch_slots;
  for (size_t pos = 0; pos < n; pos++) {
    comp_state *c = &l->comps[pos];
    if (c->converts && scratch_slot == 0 && !offload[pos]) {
      rc = hoist_fail(rt, HOIST_INVALID_ARGUMENT,
                      "%s: a scratch of %llu bytes is below one 4096-byte slot",
                      c->info->name, (unsigned long long)scratch_want);
      goto fail;
    }
    if ((rc = comp_own_transient(rt, e, c, o->verify, scratch_ring,
                                 scratch_slot != 0 ? scratch_slot : hoist_engine_chunk_bytes(e))) !=
        HOIST_OK)
      goto fail;
  }
  /* One scratch ring for the load (not one per component: each allocation
   * and free costs a device synchronization). */
  ring_span ring = {0, SIZE_MAX, 0};
  for (size_t pos = 0; pos < n; pos++) {
    comp_state *c = &l->comps[pos];
    if (!c->converts || offload[pos] || c->ntensors == 0) continue;
    ring.bytes = c->ring_bytes;
    if (ring.first == SIZE_MAX) ring.first = pos;
    ring.last = pos;
  }
  for (size_t pos = 0; pos < n; pos++) {
    comp_state *c = &l->comps[pos];
    c->held_bytes = c->hash_bytes + (pos >= ring.first && pos <= ring.last ? ring.bytes : 0);
  }

  uint64_t free_b = 0, total_b = 0;
  if ((rc = d->ops->mem_info(d, &free_b, &total_b)) != HOIST_OK) goto fail;
  uint64_t headroom = hoist_admission_headroom(d, o->headroom, total_b);
  if (o->on_oom == HOIST_ON_OOM_FAIL &&
      (rc = hoist_admission_preflight(rt, l->comps, n, offload, headroom, free_b, o->failure)) !=
          HOIST_OK)
    goto fail;

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
      /* Transient bytes this component's load holds besides its arenas:
       * its verify hashes, the scratch ring if it converts and the ring is
       * not held yet, and hoist_load_ext's (0 for hoist's own loader). */
      bool new_ring = c->converts && ring_addr == 0;
      uint64_t trans = 0, need = c->need;
      if (!hoist_add_u64(need, c->hash_bytes, &need) ||
          (new_ring && !hoist_add_u64(need, c->ring_bytes, &need)) ||
          (ext != NULL && ext->transient != NULL &&
           (!hoist_round_up_u64(ext->transient(ext->transient_user, c->info, c->pub.bytes),
                                d->ops->alloc_granularity, &trans) ||
            !hoist_add_u64(need, trans, &need)))) {
        rc = hoist_fail(rt, HOIST_OVERFLOW, "%s: transient bytes overflow", c->info->name);
        goto fail;
      }
      /* Admission: free memory now, not at the start. */
      if ((rc = d->ops->mem_info(d, &free_b, &total_b)) != HOIST_OK) goto fail;
      bool fits = hoist_admits(need, headroom, free_b);
      if (fits) {
        rc = comp_alloc_arenas(rt, c);
        if (rc == HOIST_OK && new_ring &&
            (rc = d->ops->alloc(d, c->ring_bytes, &ring_addr)) != HOIST_OK)
          ring_addr = 0;
        if (rc == HOIST_OK && c->hash_bytes > 0 &&
            (rc = d->ops->alloc(d, c->hash_bytes, &hashes_addr)) != HOIST_OK)
          hashes_addr = 0;
        if (rc == HOIST_OK && trans > 0 &&
            (rc = d->ops->alloc(d, trans, &transient_addr)) != HOIST_OK)
          transient_addr = 0;
        if (rc != HOIST_OK) { /* give back what this component took */
          if (hashes_addr != 0) d->ops->free(d, hashes_addr);
          hashes_addr = 0;
          if (new_ring && ring_addr != 0) d->ops->free(d, ring_addr);
          if (new_ring) ring_addr = 0;
          comp_free_arenas(rt, c);
        }
        if (rc == HOIST_DEVICE_OOM) fits = false; /* lost a race with another allocator */
        else if (rc != HOIST_OK) goto fail;
      }
      if (!fits) {
        if (o->on_oom != HOIST_ON_OOM_OFFLOAD || fsdp[pos]) {
          hoist_admission_failure(o->failure, c->info->name, need + headroom, free_b);
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
    double a1 = now_seconds();
    const bool dev_converts = !to_host && c->converts;
    rc = comp_upload(rt, e, l, pos, to_host, o, ext, dev_converts ? ring_addr : 0, scratch_slot,
                     dev_converts ? scratch_slots : 0, to_host ? 0 : hashes_addr);
    double u1 = now_seconds();
    if (transient_addr != 0) d->ops->free(d, transient_addr);
    transient_addr = 0;
    if (hashes_addr != 0) d->ops->free(d, hashes_addr);
    hashes_addr = 0;
    /* After the last component that converts, the ring goes. */
    if (ring_addr != 0 && pos >= ring.last) {
      d->ops->free(d, ring_addr);
      ring_addr = 0;
    }
    if (rc != HOIST_OK) goto fail;
    hoist_log(rt, HOIST_LOG_DEBUG,
              "%s: admission and allocation %.3f ms, upload and verify %.3f ms, transient "
              "memory freed in %.3f ms",
              c->info->name, (a1 - c0) * 1e3, (u1 - a1) * 1e3, (now_seconds() - u1) * 1e3);
    c->pub.seconds = now_seconds() - c0;
    l->total_bytes += c->pub.bytes;
  }
  l->seconds = now_seconds() - t0;
  free(offload);
  free(fsdp);
  free(target);
  free(infos);
  hoist_sigbus_guard_release();
  uv_mutex_unlock(&rt->load_lock);
  *out = l;
  return HOIST_OK;
fail:
  if (transient_addr != 0) d->ops->free(d, transient_addr);
  if (hashes_addr != 0) d->ops->free(d, hashes_addr);
  if (ring_addr != 0) d->ops->free(d, ring_addr);
  loaded_free(l);
  free(offload);
  free(fsdp);
  free(target);
  free(infos);
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
    const placed_tensor *pt = comp_find_tensor(c, tensor);
    if (pt == NULL) return hoist_fail(l->rt, HOIST_NOT_FOUND, "%s: no tensor '%s'", component, tensor);
    if (info != NULL) *info = &pt->dev;
    if (c->narenas == 0)
      return hoist_fail(l->rt, HOIST_UNSUPPORTED, "%s: offloaded; call hoist_prepare_for_use",
                        component);
    *device_addr = comp_tensor_addr(c, pt);
    return HOIST_OK;
  }
  return hoist_fail(l->rt, HOIST_NOT_FOUND, "no component '%s'", component);
}
