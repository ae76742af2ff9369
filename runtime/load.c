/* load.c — hoist_load_pipeline, as named phases (hoist__load_pipeline_ext
 * reads like a table of contents): plan (the components in load order,
 * their target dtypes, placement and residency marks, and the transient
 * memory each upload needs), manifest (with hoist_load_options.manifest,
 * every file against it), preflight (the whole plan against the free
 * memory at the start), then for each component admit (its need against
 * the free memory read just before it), place (its arenas, or a pinned host
 * copy for an offloaded one), upload (the engine fills them) and verify.
 * Any failure releases everything this load took, so a refused or broken
 * load leaves the device as it found it.
 *
 * A tensor filter (filter.c) chooses, before the runtime's lock is taken,
 * which tensors each component places.  hoist_load_into (load_into.c) is a
 * load of one component whose placement is the caller's buffers
 * (targets.c): it has no arenas and admits only its transient memory.
 *
 * With a target dtype (hoist_load_options.dtype), floating tensors are
 * placed in target bytes and their chunks land in a small device scratch
 * ring (held from the first converting component to the last, and counted
 * by admission) from which the conversion kernel writes the arena.
 * Verification compares, per chunk, the block checksum the reader threads
 * took of the bytes they read with the device's checksum of the same bytes:
 * where they landed for plain chunks, in the scratch before conversion for
 * converted ones.  docs/design.md draws the data flow. */
#include "load.h"
#include "admission.h"
#include "dtype.h"
#include "group_load.h"
#include "job.h"
#include "manifest_load.h"
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

/* One load in progress: what its phases share. */
typedef struct load_run {
  hoist_runtime *rt;
  hoist__device *d;
  const hoist_pipeline *p;
  const hoist_load_options *o;
  const hoist__load_ext *ext;
  hoist_loaded *l;
  size_t n;
  const hoist_component_info **infos; /* load order */
  hoist_dtype *target;                /* each component's target dtype */
  unsigned char *offload, *fsdp;      /* residency marks */
  hoist__engine *e;
  const hoist__into *into;            /* hoist_load_into; NULL for a load */
  hoist__selection sel;               /* the tensor filter's choice */
  /* The conversion scratch: a pool of scratch_slots slots of scratch_slot
   * bytes.  One ring serves the load (each allocation and free costs a
   * device synchronization), held from the first converting component placed
   * on the device until after the last, ring_last. */
  uint64_t scratch_want, scratch_slot;
  unsigned scratch_slots;
  size_t ring_last;
  uint64_t headroom;
  /* Device memory held besides the arenas: the ring while held, and the
   * current component's verify hashes and hoist__load_ext transient. */
  uint64_t ring_addr, hashes_addr, transient_addr;
  /* Loads with ranks (group_load.h): the group's votes and shard plan;
   * cancel is what the engine polls (o->cancel, or the group's flag). */
  hoist__group_load gl;
  const volatile int *cancel;
  hoist__manifest_run *manifest; /* hoist_load_options.manifest's checks */
} load_run;

/* Checks that order[0..n) is a permutation of the slots 0..n-1. */
static int check_order(hoist_runtime *rt, const size_t *order, size_t n) {
  unsigned char *seen = calloc(n > 0 ? n : 1, 1);
  if (seen == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory checking a load order");
  int rc = HOIST_OK;
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) {
    if (order[i] >= n || seen[order[i]])
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "load order: entry %zu is slot %zu, not a permutation of 0..%zu", i, order[i],
                      n > 0 ? n - 1 : 0);
    else
      seen[order[i]] = 1;
  }
  free(seen);
  return rc;
}

/* Takes the lock and the SIGBUS guard (copies from file mappings turn a
 * truncation into FILE_CHANGED) and the load's tables. */
static int run_open(load_run *r) {
  uv_mutex_lock(&r->rt->load_lock);
  hoist__sigbus_guard_acquire();
  const size_t n = r->n = hoist_pipeline_component_count(r->p), m = n > 0 ? n : 1;
  if ((r->l = hoist__loaded_create(r->rt, r->p)) == NULL || (r->offload = calloc(m, 1)) == NULL ||
      (r->fsdp = calloc(m, 1)) == NULL || (r->target = calloc(m, sizeof *r->target)) == NULL ||
      (r->infos = calloc(m, sizeof *r->infos)) == NULL)
    return hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory starting a load");
  if (r->ext != NULL && r->ext->order != NULL) return check_order(r->rt, r->ext->order, n);
  return HOIST_OK;
}

/* Gives back what the run holds; on failure (ok false) the loaded pipeline
 * too, so a failed load leaves the device as it found it. */
static void run_close(load_run *r, bool ok) {
  hoist__device *d = r->d;
  if (r->transient_addr != 0) d->ops->free(d, r->transient_addr);
  if (r->hashes_addr != 0) d->ops->free(d, r->hashes_addr);
  if (r->ring_addr != 0) d->ops->free(d, r->ring_addr);
  if (!ok) hoist__loaded_destroy(r->l);
  hoist__manifest_run_close(r->manifest);
  free(r->offload);
  free(r->fsdp);
  free(r->target);
  free(r->infos);
  hoist__sigbus_guard_release();
  uv_mutex_unlock(&r->rt->load_lock);
}

/* Each component's target dtype (load order) from hoist_load_options.dtype
 * and the dtype_for entries, later entries winning. */
static int resolve_targets(hoist_runtime *rt, const hoist_load_options *o,
                           const hoist_component_info *const *infos, size_t n,
                           hoist_dtype *target) {
  hoist_dtype all = HOIST_DTYPE_KEEP;
  int rc = HOIST_OK;
  if (o->dtype != NULL && o->dtype[0] != '\0' &&
      (rc = hoist__dtype_target_parse(rt, "dtype", o->dtype, strlen(o->dtype), &all)) != HOIST_OK)
    return rc;
  for (size_t i = 0; i < n; i++) target[i] = all;
  if (o->dtype_for == NULL || o->dtype_for[0] == '\0') return HOIST_OK;
  unsigned char *mark = malloc(n > 0 ? n : 1);
  if (mark == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  const char *p = o->dtype_for;
  while (*p != '\0' && rc == HOIST_OK) {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    char name[128];
    hoist_dtype d = HOIST_DTYPE_KEEP;
    if (eq == NULL || eq == p || (size_t)(eq - p) >= sizeof name) {
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT, "`dtype_for`: '%.*s' is not NAME=DTYPE",
                      (int)(len > 128 ? 128 : len), p);
      break;
    }
    memcpy(name, p, (size_t)(eq - p));
    name[eq - p] = '\0';
    rc = hoist__dtype_target_parse(rt, "dtype_for", eq + 1, len - (size_t)(eq - p) - 1, &d);
    if (rc != HOIST_OK) break;
    memset(mark, 0, n > 0 ? n : 1);
    if ((rc = hoist__component_select(rt, "dtype_for", name, infos, n, mark)) != HOIST_OK) break;
    for (size_t i = 0; i < n; i++)
      if (mark[i]) target[i] = d;
    p += len;
    if (*p == ',') p++;
  }
  free(mark);
  return rc;
}

/* Residency marks from hoist_load_options.offload and fsdp. */
static int plan_residency(load_run *r) {
  const hoist_load_options *o = r->o;
  int rc = hoist__component_select(r->rt, "offload", o->offload, r->infos, r->n, r->offload);
  if (rc == HOIST_OK) rc = hoist__component_select(r->rt, "fsdp", o->fsdp, r->infos, r->n, r->fsdp);
  for (size_t i = 0; i < r->n && rc == HOIST_OK; i++) {
    if (r->offload[i] && r->fsdp[i])
      return hoist__fail(r->rt, HOIST_INVALID_ARGUMENT,
                        "%s: marked both `offload` and `fsdp`; an FSDP component is placed by "
                        "its owner",
                        r->l->components[i].info->name);
    if (r->fsdp[i]) r->l->components[i].pub.residency = HOIST_FSDP;
  }
  return rc;
}

/* Phase "plan": the components in load order with their files, target
 * dtypes, placement in target bytes (an impossible conversion fails here,
 * before anything is allocated) and residency marks. */
static int plan(load_run *r) {
  const hoist__load_ext *ext = r->ext;
  for (size_t position = 0; position < r->n; position++) {
    loaded_component *c = &r->l->components[position];
    c->info = ext != NULL && ext->order != NULL
                  ? hoist_pipeline_component(r->p, ext->order[position])
                  : hoist_pipeline_ordered(r->p, position);
    r->infos[position] = c->info;
    c->slot = hoist__pipeline_slot(r->p, c->info);
    c->nfiles = hoist__pipeline_safetensors(r->p, c->slot, &c->files);
    c->pub.name = c->info->name;
    c->pub.residency = HOIST_RESIDENT;
    if (c->nfiles == 0 && c->info->file_count > 0)
      hoist__log(r->rt, HOIST_LOG_WARN, "%s: only non-safetensors weights; not loaded",
                c->info->name);
  }
  int rc = resolve_targets(r->rt, r->o, r->infos, r->n, r->target);
  if (rc == HOIST_OK) rc = plan_residency(r);
  for (size_t position = 0; position < r->n && rc == HOIST_OK; position++) {
    loaded_component *c = &r->l->components[position];
    const unsigned char *selected = hoist__selection_of(&r->sel, c->slot);
    /* With ranks: what of c this rank loads (group_load.c, shard.c). */
    rc = hoist__group_load_shards(r->rt, &r->gl, c, r->fsdp[position]);
    if (rc != HOIST_OK) break;
    if (r->into == NULL)
      rc = hoist__place(r->rt, c, r->d->ops->alloc_granularity, r->target[position], selected);
    else if (c->slot == r->into->slot)
      rc = hoist__place_targets(r->rt, c, &r->into->targets, selected);
  }
  return rc;
}

/* Bytes of the transient device memory a component's upload uses: the
 * scratch ring when it converts, UPLOAD_VERIFY_BYTES_PER_CHUNK per chunk for
 * verification; each rounded to the backend's granularity. */
static int size_own_transients(hoist_runtime *rt, hoist__engine *e, loaded_component *c, int verify,
                              uint64_t scratch_ring, uint64_t convert_step) {
  uint64_t chunk = hoist__engine_chunk_bytes(e), bound = 0, g = rt->dev->ops->alloc_granularity;
  for (size_t i = 0; i < c->ntensors; i++) {
    const placed_tensor *pt = &c->tensors[i];
    uint64_t step = pt->dev.dtype != pt->t->dtype ? convert_step : chunk;
    bound += pt->t->nbytes / step + 1;
  }
  c->chunk_bound = bound;
  uint64_t scratch = 0, hashes = 0, total = 0;
  if ((c->converts && !hoist__round_up_u64(scratch_ring, g, &scratch)) ||
      (verify && (bound > UINT64_MAX / UPLOAD_VERIFY_BYTES_PER_CHUNK ||
                  !hoist__round_up_u64(bound * UPLOAD_VERIFY_BYTES_PER_CHUNK, g, &hashes))) ||
      !hoist__add_u64(scratch, hashes, &total))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: scratch size overflows", c->info->name);
  c->ring_bytes = scratch;
  c->hash_bytes = hashes;
  return HOIST_OK;
}

/* Phase "plan", continued: the engine (made once per runtime; it holds
 * pinned memory, not device memory), the scratch pool its threads and
 * chunk size allow, each component's own transient bytes, and the ring's
 * span, which gives what the preflight counts for each component. */
static int plan_transients(load_run *r) {
  int rc = hoist__engine_get(r->rt, &r->e);
  if (rc != HOIST_OK) return rc;
  r->scratch_want = r->o->scratch_bytes != 0 ? r->o->scratch_bytes : DEFAULT_SCRATCH;
  r->scratch_slot = hoist__engine_scratch_slot(r->e, r->scratch_want);
  r->scratch_slots = hoist__engine_scratch_slots(r->e, r->scratch_want);
  const uint64_t ring_bytes = r->scratch_slot * r->scratch_slots;
  const uint64_t step = r->scratch_slot != 0 ? r->scratch_slot : hoist__engine_chunk_bytes(r->e);
  size_t first = SIZE_MAX;
  uint64_t ring_held = 0;
  r->ring_last = 0;
  for (size_t position = 0; position < r->n; position++) {
    loaded_component *c = &r->l->components[position];
    if (c->converts && r->scratch_slot == 0 && !r->offload[position])
      return hoist__fail(r->rt, HOIST_INVALID_ARGUMENT,
                        "%s: a scratch of %llu bytes is below one 4096-byte slot", c->info->name,
                        (unsigned long long)r->scratch_want);
    if ((rc = size_own_transients(r->rt, r->e, c, r->o->verify, ring_bytes, step)) != HOIST_OK)
      return rc;
    if (!c->converts || r->offload[position] || c->ntensors == 0) continue;
    if (first == SIZE_MAX) first = position;
    r->ring_last = position;
    ring_held = c->ring_bytes;
  }
  for (size_t position = 0; position < r->n; position++) {
    loaded_component *c = &r->l->components[position];
    c->held_bytes = c->hash_bytes + (position >= first && position <= r->ring_last ? ring_held : 0);
  }
  return HOIST_OK;
}

/* Phase "manifest": with hoist_load_options.manifest, every file against
 * it before anything is allocated, and the piece size against the chunks
 * the engine will cut (manifest_load.h). */
static int check_manifest(load_run *r) {
  if (r->o->manifest == NULL) return HOIST_OK;
  bool converts = false;
  for (size_t position = 0; position < r->n; position++)
    converts = converts || r->l->components[position].converts;
  return hoist__manifest_run_open(r->rt, r->o->manifest, r->p, r->l->components, r->n,
                                  hoist__engine_chunk_bytes(r->e), converts ? r->scratch_slot : 0,
                                  &r->manifest);
}

/* Phase "preflight": the free memory now and the load's headroom; with
 * on_oom fail, the whole plan must fit before anything is allocated. */
static int preflight(load_run *r) {
  uint64_t free_b = 0, total_b = 0;
  int rc = r->d->ops->mem_info(r->d, &free_b, &total_b);
  if (rc != HOIST_OK) return rc;
  r->headroom = hoist__admission_headroom(r->d, r->o->headroom, total_b);
  if (r->o->on_oom != HOIST_ON_OOM_FAIL) return HOIST_OK;
  return hoist__admission_preflight(r->rt, r->l->components, r->n, r->offload, r->headroom, free_b,
                                   r->o->failure);
}

/* What c needs on the device to load: its arenas, its verify hashes, the
 * scratch ring when it converts and the ring is not held yet (new_ring),
 * and hoist__load_ext's transient (*transient, rounded; 0 for hoist's own
 * loader). */
static int component_need(load_run *r, const loaded_component *c, bool new_ring, uint64_t *need,
                          uint64_t *transient) {
  const hoist__load_ext *ext = r->ext;
  *transient = 0;
  *need = c->need;
  if (!hoist__add_u64(*need, c->hash_bytes, need) ||
      (new_ring && !hoist__add_u64(*need, c->ring_bytes, need)) ||
      (ext != NULL && ext->transient != NULL &&
       (!hoist__round_up_u64(ext->transient(ext->transient_user, c->info, c->pub.bytes),
                            r->d->ops->alloc_granularity, transient) ||
        !hoist__add_u64(*need, *transient, need))))
    return hoist__fail(r->rt, HOIST_OVERFLOW, "%s: transient bytes overflow", c->info->name);
  return HOIST_OK;
}

/* Phase "place" on the device: c's arenas, then the transient memory of
 * its upload.  On failure what this component took is given back. */
static int place_on_device(load_run *r, loaded_component *c, bool new_ring, uint64_t transient) {
  hoist__device *d = r->d;
  int rc = hoist__arenas_alloc(r->rt, c, &c->arenas);
  if (rc == HOIST_OK && new_ring &&
      (rc = d->ops->alloc(d, c->ring_bytes, &r->ring_addr)) != HOIST_OK)
    r->ring_addr = 0;
  if (rc == HOIST_OK && c->hash_bytes > 0 &&
      (rc = d->ops->alloc(d, c->hash_bytes, &r->hashes_addr)) != HOIST_OK)
    r->hashes_addr = 0;
  if (rc == HOIST_OK && transient > 0 &&
      (rc = d->ops->alloc(d, transient, &r->transient_addr)) != HOIST_OK)
    r->transient_addr = 0;
  if (rc == HOIST_OK) {
    c->pub.device_bytes = c->need;
    c->pub.device_begin = c->arenas.addr[0];
    c->pub.device_end = c->arenas.addr[0] + c->arenas.bytes[0];
    return HOIST_OK;
  }
  if (r->hashes_addr != 0) d->ops->free(d, r->hashes_addr);
  r->hashes_addr = 0;
  if (new_ring && r->ring_addr != 0) d->ops->free(d, r->ring_addr);
  if (new_ring) r->ring_addr = 0;
  hoist__arenas_free(r->rt, &c->arenas);
  return rc;
}

/* Phases "admit" and "place" of component position: the free memory now, not
 * at the start, against its need plus the headroom; when it fits, its
 * device memory.  When it does not (or the device denies an allocation
 * despite admission: another allocator won the race), on_oom offload
 * places it in host memory instead (*to_host), else the load is refused. */
static int admit_and_place(load_run *r, size_t position, int status, bool *to_host) {
  loaded_component *c = &r->l->components[position];
  hoist__device *d = r->d;
  const bool new_ring = c->converts && r->ring_addr == 0;
  const bool must_fit = r->o->on_oom != HOIST_ON_OOM_OFFLOAD || r->fsdp[position];
  uint64_t need = 0, transient = 0, free_b = 0, total_b = 0;
  int rc = status;
  if (rc == HOIST_OK) rc = component_need(r, c, new_ring, &need, &transient);
  if (rc == HOIST_OK) rc = d->ops->mem_info(d, &free_b, &total_b);
  bool fits = rc == HOIST_OK && hoist__admits(need, r->headroom, free_b);
  /* With ranks: every rank's decision, before anything is allocated. */
  rc = hoist__group_load_admit(r->rt, &r->gl, rc, c, &fits, must_fit, need + r->headroom, free_b,
                               r->o->failure);
  if (rc != HOIST_OK) return rc;
  if (fits) {
    rc = place_on_device(r, c, new_ring, transient);
    if (rc != HOIST_DEVICE_OOM || r->gl.g != NULL) return rc;
  }
  if (must_fit) {
    hoist__admission_failure(r->o->failure, c->info->name, need + r->headroom, free_b);
    return hoist__fail(r->rt, HOIST_ADMISSION,
                      "%s: needs %llu bytes (+%llu headroom) on %s but %llu are free%s",
                      c->info->name, (unsigned long long)need, (unsigned long long)r->headroom,
                      d->name, (unsigned long long)free_b,
                      rc == HOIST_DEVICE_OOM ? " (allocation failed despite admission)" : "");
  }
  hoist__log(r->rt, HOIST_LOG_INFO, "%s: %llu bytes do not fit in %llu free; offloading",
            c->info->name, (unsigned long long)c->need, (unsigned long long)free_b);
  *to_host = true;
  return HOIST_OK;
}

/* Logs what the engine did for c's job. */
static void log_upload(hoist_runtime *rt, const loaded_component *c, const upload_job *job,
                       double seconds) {
  const char *name = c != NULL ? c->info->name : job->component;
  size_t converting = 0;
  for (size_t i = 0; i < job->nchunks; i++) converting += job->chunks[i].from != job->chunks[i].to;
  if (job->to_host)
    hoist__log(rt, HOIST_LOG_DEBUG, "%s: %llu bytes in %zu transfers (%zu converted) to its host "
              "copy in %.3f ms",
              name, (unsigned long long)job->total_bytes, job->nchunks, converting,
              seconds * 1e3);
  else
    hoist__log(rt, HOIST_LOG_DEBUG,
              "%s: %llu bytes in %zu transfers (%zu converted) uploaded in %.3f ms by %u "
              "reader%s; they waited %.3f ms in all for their earlier transfers (a copy, and "
              "the conversion it waited for)",
              name, (unsigned long long)job->total_bytes, job->nchunks, converting,
              seconds * 1e3, job->readers, job->readers == 1 ? "" : "s",
              job->copy_wait_ns / 1e6);
}

/* The upload job of component position: its files opened in the read mode (a
 * host copy reads through the pinned ring, never O_DIRECT or registered),
 * its chunk list, and the device memory of its own transient: the scratch
 * pool when it converts on the device, its verify hashes. */
static int job_open(load_run *r, size_t position, bool to_host, upload_job *job) {
  const loaded_component *c = &r->l->components[position];
  const hoist_load_options *o = r->o;
  const bool dev_converts = !to_host && c->converts;
  *job = (upload_job){.component = c->info->name,
                      .to_host = to_host,
                      .progress = o->progress,
                      .progress_user = o->progress_user,
                      .cancel = r->cancel,
                      .scratch = dev_converts ? r->ring_addr : 0,
                      .scratch_slot = r->scratch_slot,
                      .scratch_slots = dev_converts ? r->scratch_slots : 0,
                      .verify = o->verify != 0,
                      .dev_hashes = to_host ? 0 : r->hashes_addr,
                      .hash_stride = c->chunk_bound};
  hoist_read_mode mode = o->read_mode;
  if (to_host && (mode == HOIST_READ_REGISTER || mode == HOIST_READ_DIRECT)) mode = HOIST_READ_AUTO;
  int rc = hoist__upload_files_open(r->rt, (const hoist_file *const *)c->files, c->nfiles, mode,
                             &job->files);
  if (rc != HOIST_OK) return rc;
  job->nfiles = c->nfiles;
  /* Host copies convert through the reader's pinned slot (a chunk). */
  const uint64_t chunk = hoist__engine_chunk_bytes(r->e);
  const uint64_t convert_chunk = to_host || r->scratch_slot == 0 ? chunk : r->scratch_slot;
  rc = hoist__upload_job_build(r->rt, job, c, chunk, convert_chunk);
  if (rc == HOIST_OK && r->manifest != NULL)
    rc = hoist__manifest_job_open(r->manifest, position, c, job);
  if (rc == HOIST_OK && job->verify && !to_host && job->nchunks > c->chunk_bound)
    rc = hoist__fail(r->rt, HOIST_OVERFLOW, "%s: %zu chunks above the bound of %llu", c->info->name,
                    job->nchunks, (unsigned long long)c->chunk_bound);
  return rc;
}

/* Phases "upload" and "verify" of component position: the engine fills its
 * arenas (or its host copy); with hoist_load_options.verify every chunk is
 * then checked, after hoist__load_ext's after_upload hook. */
static int upload(load_run *r, size_t position, bool to_host) {
  const loaded_component *c = &r->l->components[position];
  upload_job job;
  int rc = job_open(r, position, to_host, &job);
  if (rc == HOIST_OK) {
    const double t0 = now_seconds();
    rc = hoist__engine_run(r->e, &job);
    if (rc == HOIST_OK) log_upload(r->rt, c, &job, now_seconds() - t0);
  }
  const hoist__load_ext *ext = r->ext;
  if (rc == HOIST_OK && ext != NULL && ext->after_upload != NULL)
    ext->after_upload(ext->after_upload_user, r->l, position);
  if (rc == HOIST_OK && job.verify) {
    const double t0 = now_seconds();
    rc = hoist__upload_job_verify(r->rt, r->e, c, &job);
    if (rc == HOIST_OK)
      hoist__log(r->rt, HOIST_LOG_DEBUG, "%s: verified in %.3f ms", c->info->name,
                (now_seconds() - t0) * 1e3);
  }
  hoist__manifest_job_close(&job);
  hoist__upload_job_free(&job);
  hoist__upload_files_close(r->rt, job.files, job.nfiles);
  return rc;
}

/* Gives back the transient memory of the upload at position; the ring goes
 * after the last component that converts. */
static void release_transients(load_run *r, size_t position) {
  hoist__device *d = r->d;
  if (r->transient_addr != 0) d->ops->free(d, r->transient_addr);
  r->transient_addr = 0;
  if (r->hashes_addr != 0) d->ops->free(d, r->hashes_addr);
  r->hashes_addr = 0;
  if (r->ring_addr != 0 && position >= r->ring_last) {
    d->ops->free(d, r->ring_addr);
    r->ring_addr = 0;
  }
}

/* One component, through admit, place, upload and verify. */
static int load_component(load_run *r, size_t position) {
  loaded_component *c = &r->l->components[position];
  int rc = HOIST_OK;
  if (c->ntensors == 0) return rc; /* no vote: ranks that are done may have left */
  if (hoist__cancel_requested(r->cancel))
    rc = hoist__fail(r->rt, HOIST_CANCELLED, "load cancelled before '%s'", c->info->name);
  /* With ranks a failure goes on to the next vote, which tells every rank. */
  if (rc != HOIST_OK && r->gl.g == NULL) return rc;
  const double c0 = now_seconds();
  bool to_host = r->offload[position];
  if (!to_host && (rc = admit_and_place(r, position, rc, &to_host)) != HOIST_OK) return rc;
  if (rc == HOIST_OK && to_host) {
    c->pub.residency = HOIST_OFFLOAD;
    rc = r->d->ops->pinned_alloc(r->d, (size_t)c->span, &c->host_copy);
  }
  const double a1 = now_seconds();
  if (rc == HOIST_OK) rc = upload(r, position, to_host);
  const double u1 = now_seconds();
  release_transients(r, position);
  /* With ranks: every rank's upload voted, a replicated component completed. */
  rc = hoist__group_load_uploaded(r->rt, &r->gl, rc, c);
  if (rc != HOIST_OK) return rc;
  hoist__log(r->rt, HOIST_LOG_DEBUG,
            "%s: admission and allocation %.3f ms, upload and verify %.3f ms, transient "
            "memory freed in %.3f ms",
            c->info->name, (a1 - c0) * 1e3, (u1 - a1) * 1e3, (now_seconds() - u1) * 1e3);
  c->pub.seconds = now_seconds() - c0;
  r->l->total_bytes += c->pub.bytes;
  return HOIST_OK;
}

/* Whether every component can upload in one engine run: nothing holds
 * transient device memory per component (verify hashes, a conversion
 * scratch, hoist__load_ext's transient) and no test hook runs between
 * components.  Then each component's device memory is admitted and placed
 * first, in load order as the sequential path does, and the readers stream
 * from one component straight into the next, so the link never idles
 * between components (no drain, no restart, no allocation in between). */
static bool can_pipeline(const load_run *r) {
  if (r->o->verify) return false;
  if (r->gl.g != NULL) return false; /* ranks vote component by component */
  if (r->ext != NULL && (r->ext->transient != NULL || r->ext->after_upload != NULL)) return false;
  for (size_t position = 0; position < r->n; position++)
    if (r->l->components[position].converts && !r->offload[position]) return false;
  return true;
}

/* Phases "admit" and "place" of every component, in load order: device
 * memory, or a pinned host copy for an offloaded one (to_host[position]). */
static int admit_and_place_all(load_run *r, bool *to_host) {
  for (size_t position = 0; position < r->n; position++) {
    loaded_component *c = &r->l->components[position];
    if (hoist__cancel_requested(r->o->cancel))
      return hoist__fail(r->rt, HOIST_CANCELLED, "load cancelled before '%s'", c->info->name);
    if (c->ntensors == 0) continue;
    to_host[position] = r->offload[position];
    int rc = to_host[position] ? HOIST_OK : admit_and_place(r, position, HOIST_OK, &to_host[position]);
    if (rc != HOIST_OK) return rc;
    if (!to_host[position]) continue;
    c->pub.residency = HOIST_OFFLOAD;
    if ((rc = r->d->ops->pinned_alloc(r->d, (size_t)c->span, &c->host_copy)) != HOIST_OK) return rc;
  }
  return HOIST_OK;
}

/* Phase "upload" of every device-resident component as one engine run:
 * their jobs joined in load order, each component timed from its first
 * chunk taken to the next one's (the last to the end of the run). */
static int upload_joined(load_run *r, const bool *to_host) {
  const hoist_load_options *o = r->o;
  size_t *at = calloc(r->n > 0 ? r->n : 1, sizeof *at);
  upload_job *jobs = calloc(r->n > 0 ? r->n : 1, sizeof *jobs);
  upload_job all = {.component = "pipeline", .progress = o->progress,
                    .progress_user = o->progress_user, .cancel = o->cancel};
  size_t nj = 0;
  int rc = at == NULL || jobs == NULL ? hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory") : HOIST_OK;
  for (size_t position = 0; position < r->n && rc == HOIST_OK; position++) {
    if (r->l->components[position].ntensors == 0 || to_host[position]) continue;
    at[nj] = position;
    rc = job_open(r, position, false, &jobs[nj++]); /* closed below, also when it failed */
  }
  if (rc == HOIST_OK && nj > 0 && (rc = hoist__upload_job_concat(r->rt, jobs, nj, &all)) == HOIST_OK) {
    const double t0 = now_seconds();
    const uint64_t start_ns = uv_hrtime();
    rc = hoist__engine_run(r->e, &all);
    const uint64_t end_ns = uv_hrtime();
    for (size_t k = 0; k < nj && rc == HOIST_OK; k++) {
      const uint64_t begin = all.parts[k].started_ns != 0 ? all.parts[k].started_ns : start_ns;
      const uint64_t next = k + 1 < nj && all.parts[k + 1].started_ns != 0 ? all.parts[k + 1].started_ns
                                                                          : end_ns;
      loaded_component *c = &r->l->components[at[k]];
      c->pub.seconds = next > begin ? (double)(next - begin) * 1e-9 : 0;
      hoist__log(r->rt, HOIST_LOG_DEBUG,
                 "%s: %llu bytes in %zu transfers uploaded in %.3f ms, in one run with the "
                 "components beside it",
                 c->info->name, (unsigned long long)all.parts[k].total_bytes,
                 all.parts[k].chunk_end - all.parts[k].chunk_begin, c->pub.seconds * 1e3);
    }
    if (rc == HOIST_OK) log_upload(r->rt, NULL, &all, now_seconds() - t0);
  }
  for (size_t k = 0; k < nj; k++) { /* checks, and parts left behind by a failed join */
    hoist__manifest_job_close(&jobs[k]);
    hoist__upload_job_free(&jobs[k]);
    hoist__upload_files_close(r->rt, jobs[k].files, jobs[k].nfiles);
  }
  hoist__upload_job_free(&all);
  hoist__upload_files_close(r->rt, all.files, all.nfiles);
  free(jobs);
  free(at);
  return rc;
}

/* The pipelined load (can_pipeline): admit and place everything, upload
 * the device-resident components in one run, then fill the host copies of
 * the offloaded ones. */
static int load_pipelined(load_run *r) {
  bool *to_host = calloc(r->n > 0 ? r->n : 1, sizeof *to_host);
  if (to_host == NULL) return hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory");
  const double a0 = now_seconds();
  int rc = admit_and_place_all(r, to_host);
  if (rc == HOIST_OK)
    hoist__log(r->rt, HOIST_LOG_DEBUG, "admission and allocation of every component %.3f ms",
               (now_seconds() - a0) * 1e3);
  if (rc == HOIST_OK) rc = upload_joined(r, to_host);
  for (size_t position = 0; position < r->n && rc == HOIST_OK; position++) {
    loaded_component *c = &r->l->components[position];
    if (c->ntensors == 0) continue;
    if (to_host[position]) {
      const double c0 = now_seconds();
      rc = upload(r, position, true);
      c->pub.seconds = now_seconds() - c0;
    }
    r->l->total_bytes += c->pub.bytes;
  }
  free(to_host);
  return rc;
}

int hoist_load_pipeline(hoist_runtime *rt, const hoist_pipeline *p, const hoist_load_options *opts,
                        hoist_loaded **out) {
  return hoist__load_pipeline_ext(rt, p, opts, NULL, out);
}

int hoist__load_pipeline_ext(hoist_runtime *rt, const hoist_pipeline *p,
                            const hoist_load_options *opts, const hoist__load_ext *ext,
                            hoist_loaded **out) {
  return hoist__load_run(rt, p, opts, ext, NULL, out);
}

int hoist__load_run(hoist_runtime *rt, const hoist_pipeline *p, const hoist_load_options *opts,
                    const hoist__load_ext *ext, const hoist__into *into, hoist_loaded **out) {
  hoist_load_options defaults = HOIST_LOAD_OPTIONS_INIT;
  const hoist_load_options *o = opts != NULL ? opts : &defaults;
  *out = NULL;
  int rc = hoist__check_struct_size(rt, "hoist_load_options", o->struct_size, sizeof *o);
  if (rc != HOIST_OK) return rc;
  if (o->failure != NULL) memset(o->failure, 0, sizeof *o->failure);
  load_run r = {.rt = rt, .d = rt->dev, .p = p, .o = o, .ext = ext, .into = into};
  const double t0 = now_seconds();
  /* Before the lock: the filter's callback may call hoist (filter.h). */
  const hoist__filter filter = {o->tensors, o->tensor_filter, o->tensor_filter_user};
  rc = hoist__filter_select(rt, p, &filter, into != NULL ? into->slot : SIZE_MAX, &r.sel);
  if (rc != HOIST_OK) return rc;
  rc = run_open(&r);
  if (rc == HOIST_OK) rc = hoist__group_load_start(rt, o, &r.gl, &r.cancel);
  if (rc == HOIST_OK) rc = plan(&r);
  if (rc == HOIST_OK) rc = plan_transients(&r);
  if (rc == HOIST_OK) rc = check_manifest(&r);
  if (rc == HOIST_OK) rc = preflight(&r);
  /* The shard plan's rules checked; with ranks, every rank's plan compared. */
  rc = hoist__group_load_plan(rt, &r.gl, rc, o, r.l != NULL ? r.l->components : NULL, r.n, r.target);
  if (rc == HOIST_OK) {
    hoist__log(rt, HOIST_LOG_DEBUG, "planned in %.3f ms", (now_seconds() - t0) * 1e3);
    if (can_pipeline(&r))
      rc = load_pipelined(&r);
    else
      for (size_t position = 0; position < r.n && rc == HOIST_OK; position++)
        rc = load_component(&r, position);
  }
  rc = hoist__group_load_finish(rt, &r.gl, rc);
  if (rc == HOIST_OK) {
    r.l->rank = r.gl.rank;
    r.l->world = r.gl.world;
    r.l->seconds = now_seconds() - t0;
    *out = r.l;
  }
  run_close(&r, rc == HOIST_OK);
  hoist__selection_free(&r.sel);
  return rc;
}
