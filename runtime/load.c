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
#include "convert_ref.h"
#include "upload.h"

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

int hoist__tensor_arena(const loaded_component *c, const placed_tensor *pt) {
  int a = c->narenas - 1;
  while (a > 0 && pt->off < c->arena_begin[a]) a--;
  return a;
}

uint64_t hoist__tensor_addr(const loaded_component *c, const placed_tensor *pt) {
  int a = hoist__tensor_arena(c, pt);
  return c->arena_addr[a] + (pt->off - c->arena_begin[a]);
}

void hoist__arenas_free(hoist_runtime *rt, loaded_component *c) {
  for (int a = 0; a < c->narenas; a++) rt->dev->ops->free(rt->dev, c->arena_addr[a]);
  c->narenas = 0;
}

/* Splits the placement into k arenas at tensor boundaries, close to equal
 * sizes, and allocates them; frees what it took when one fails. */
static int alloc_split(hoist_runtime *rt, loaded_component *c, int k) {
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
      hoist__arenas_free(rt, c);
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

int hoist__arenas_alloc(hoist_runtime *rt, loaded_component *c) {
  if (c->span == 0) return HOIST_OK;
  int rc = HOIST_OK;
  /* One arena, or a few when fragmentation denies a single one. */
  for (int k = 1; k <= HOIST_MAX_ARENAS; k *= 2) {
    rc = alloc_split(rt, c, k);
    if (rc != HOIST_DEVICE_OOM || (size_t)k >= c->ntensors) break;
    hoist__log(rt, HOIST_LOG_INFO, "%s: no single arena of %llu bytes; trying %d", c->info->name,
              (unsigned long long)c->span, k * 2);
  }
  return rc;
}

#define DEFAULT_SCRATCH (64ull << 20)
#define DTYPE_KEEP HOIST_DTYPE_KEEP

static bool dtype_is_float(hoist_dtype d) {
  switch (d) {
  case HOIST_DTYPE_F16: case HOIST_DTYPE_BF16: case HOIST_DTYPE_F32: case HOIST_DTYPE_F64:
  case HOIST_DTYPE_C64: case HOIST_DTYPE_F8_E4M3: case HOIST_DTYPE_F8_E5M2:
  case HOIST_DTYPE_F8_E8M0: case HOIST_DTYPE_F8_E4M3FNUZ: case HOIST_DTYPE_F8_E5M2FNUZ:
  case HOIST_DTYPE_F4: case HOIST_DTYPE_F6_E2M3: case HOIST_DTYPE_F6_E3M2:
    return true;
  default:
    return false;
  }
}

int hoist__dtype_target_parse(hoist_runtime *rt, const char *what, const char *s, size_t len,
                             hoist_dtype *out) {
  static const struct { const char *name; hoist_dtype d; } names[] = {
      {"bf16", HOIST_DTYPE_BF16}, {"f16", HOIST_DTYPE_F16}, {"f32", HOIST_DTYPE_F32},
      {"keep", DTYPE_KEEP}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i].name) == len && strncasecmp(names[i].name, s, len) == 0) {
      *out = names[i].d;
      return HOIST_OK;
    }
  return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "--%s: '%.*s' is not bf16, f16, f32 or keep", what,
                    (int)(len > 64 ? 64 : len), s);
}

int hoist__tensor_target(hoist_runtime *rt, const char *component, const hoist_tensor_info *t,
                        hoist_dtype target, hoist_dtype *to, uint64_t *bytes) {
  *to = t->dtype;
  *bytes = t->nbytes;
  if (target == DTYPE_KEEP || !dtype_is_float(t->dtype) || t->dtype == target) return HOIST_OK;
  if (!hoist__convert_supported(t->dtype, target) || hoist_dtype_bits(t->dtype) % 8 != 0)
    return hoist__fail(rt, HOIST_UNSUPPORTED,
                      "%s: tensor '%s': no conversion from %s to %s (--dtype); keep this "
                      "component's dtype with --dtype-for %s=keep",
                      component, t->name, hoist_dtype_name(t->dtype), hoist_dtype_name(target),
                      component);
  if (!hoist__mul_u64(t->nelements, hoist_dtype_bits(target) / 8, bytes))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: tensor '%s': target size overflows", component,
                      t->name);
  *to = target;
  return HOIST_OK;
}

/* Each component's target dtype (load order) from --dtype and the
 * --dtype-for entries, later entries winning. */
static int resolve_targets(hoist_runtime *rt, const hoist_load_options *o, const loaded_component *comps,
                           size_t n, hoist_dtype *target) {
  hoist_dtype all = DTYPE_KEEP;
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
    hoist_dtype d = DTYPE_KEEP;
    if (eq == NULL || eq == p || (size_t)(eq - p) >= sizeof name) {
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT, "--dtype-for: '%.*s' is not NAME=DTYPE",
                      (int)(len > 128 ? 128 : len), p);
      break;
    }
    memcpy(name, p, (size_t)(eq - p));
    name[eq - p] = '\0';
    if ((rc = hoist__dtype_target_parse(rt, "dtype-for", eq + 1, len - (size_t)(eq - p) - 1, &d)) != HOIST_OK)
      break;
    memset(mark, 0, n > 0 ? n : 1);
    if ((rc = hoist__component_select(rt, "dtype-for", name, comps, n, mark)) != HOIST_OK) break;
    for (size_t i = 0; i < n; i++)
      if (mark[i]) target[i] = d;
    p += len;
    if (*p == ',') p++;
  }
  free(mark);
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

/* Tensors of the component with their device dtype (target: DTYPE_KEEP or
 * the dtype floating tensors become), placed largest-first in device
 * bytes; span and need.  A floating tensor with no conversion to target is
 * HOIST_UNSUPPORTED. */
static int hoist__place(hoist_runtime *rt, loaded_component *c, uint64_t granularity, hoist_dtype target) {
  size_t n = 0;
  for (size_t f = 0; f < c->nfiles; f++) n += hoist_file_tensor_count(c->files[f]);
  c->ntensors = n;
  c->tensors = calloc(n > 0 ? n : 1, sizeof *c->tensors);
  c->by_name = calloc(n > 0 ? n : 1, sizeof *c->by_name);
  if (c->tensors == NULL || c->by_name == NULL)
    return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory placing %zu tensors", c->info->name, n);
  size_t k = 0;
  for (size_t f = 0; f < c->nfiles; f++)
    for (size_t i = 0; i < hoist_file_tensor_count(c->files[f]); i++) {
      const hoist_tensor_info *t = hoist_file_tensor(c->files[f], i);
      placed_tensor *pt = &c->tensors[k++];
      *pt = (placed_tensor){t, (uint32_t)f, 0, *t};
      int rc = hoist__tensor_target(rt, c->info->name, t, target, &pt->dev.dtype, &pt->dev.nbytes);
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

static void comp_release(hoist_runtime *rt, loaded_component *c) {
  hoist__arenas_free(rt, c);
  if (c->host_copy != NULL) rt->dev->ops->pinned_free(rt->dev, c->host_copy);
  c->host_copy = NULL;
  c->pub.device_bytes = 0;
  c->pub.device_begin = c->pub.device_end = 0;
}

/* Verify's device bytes per chunk: 3 rows of 8-byte hashes and the batch
 * checksum's table (upload.h, upload_job.dev_hashes). */
#define HASH_BYTES_PER_CHUNK (24u + HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN)

/* Bytes of the transient device memory a component's upload uses: the
 * scratch ring when it converts, HASH_BYTES_PER_CHUNK per chunk for
 * --verify; each rounded to the backend's granularity. */
static int comp_own_transient(hoist_runtime *rt, hoist__engine *e, loaded_component *c, int verify,
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
      (verify && (bound > UINT64_MAX / HASH_BYTES_PER_CHUNK ||
                  !hoist__round_up_u64(bound * HASH_BYTES_PER_CHUNK, g, &hashes))) ||
      !hoist__add_u64(scratch, hashes, &total))
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: scratch size overflows", c->info->name);
  c->ring_bytes = scratch;
  c->hash_bytes = hashes;
  return HOIST_OK;
}

/* Copies n bytes at addr (the device, or the host copy of a host job) to
 * back. */
static int fetch_landed(hoist_runtime *rt, const upload_job *job, uint64_t addr, void *back,
                        uint64_t n) {
  if (!job->to_host) return rt->dev->ops->copy_d2h(rt->dev, back, addr, (size_t)n);
  memcpy(back, (const void *)(uintptr_t)addr, (size_t)n);
  return HOIST_OK;
}

/* Looks for the first byte (plain) or element (converted) of chunk ch that
 * differs from the file's bytes (converted: from the CPU reference
 * conversion of them), reading one segment at a time.  Returns HOIST_OK
 * with *found set and *seg_at, *at (byte offset in the tensor, or element
 * index) and, for plain chunks, the two byte values filled in; or the
 * status of a step that failed (memory, device, file). */
static int locate_difference(hoist_runtime *rt, const upload_job *job, const upload_chunk *ch,
                             int *found, const upload_segment **seg_at, uint64_t *at,
                             unsigned *dev_byte, unsigned *file_byte) {
  const upload_segment *seg = &job->segs[ch->first_seg];
  const bool converts = ch->from != ch->to;
  const uint64_t sb = converts ? hoist_dtype_bits(ch->from) / 8 : 1;
  const uint64_t db = converts ? hoist_dtype_bits(ch->to) / 8 : 1;
  *found = 0;
  int rc = HOIST_OK;
  for (uint32_t k = 0; k < ch->nseg && rc == HOIST_OK && !*found; k++) {
    const upload_segment *sg = &seg[k];
    const uint64_t n = sg->len / sb, out = n * db;
    unsigned char *file = malloc(sg->len + 1), *back = malloc(out + 1);
    unsigned char *want = converts ? malloc(out + 1) : file;
    if (file == NULL || back == NULL || want == NULL)
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "verify: out of memory");
    if (rc == HOIST_OK)
      rc = fetch_landed(rt, job, ch->dst + sg->slot_off / sb * db, back, out);
    if (rc == HOIST_OK) rc = hoist__upload_read(rt, &job->files[sg->file], sg->file_off, file, sg->len);
    if (rc == HOIST_OK && converts) rc = hoist__convert_ref(want, ch->to, file, ch->from, n);
    if (rc == HOIST_OK && memcmp(back, want, out) != 0) {
      uint64_t j = 0;
      while (memcmp(back + j * db, want + j * db, db) == 0) j++;
      *found = 1;
      *seg_at = sg;
      *at = converts ? sg->tensor_off / sb + j : sg->tensor_off + j;
      *dev_byte = back[j * db];
      *file_byte = want[j * db];
    }
    if (want != file) free(want);
    free(file);
    free(back);
  }
  return rc;
}

/* Names what failed verification in chunk bad (the hashes dev_hash, and
 * want, which it should have had).  A converted chunk's source was hashed
 * in the scratch, which is gone: that mismatch names the chunk's tensors.
 * Otherwise the chunk is read back and compared with the file (converted:
 * with the CPU conversion of the file), segment by segment, to name the
 * tensor and the byte or element; when that reading fails, or finds no
 * difference, the message still reports the mismatch from the hashes. */
static int report_mismatch(hoist_runtime *rt, loaded_component *c, upload_job *job, size_t bad,
                           uint64_t dev_hash, uint64_t want, int after_convert) {
  const upload_chunk *ch = &job->chunks[bad];
  const upload_segment *seg = &job->segs[ch->first_seg];
  const placed_tensor *first = &c->tensors[seg[0].tensor];
  const placed_tensor *last = &c->tensors[seg[ch->nseg - 1].tensor];
  const bool converts = ch->from != ch->to;
  const char *from = hoist_dtype_name(ch->from), *to = hoist_dtype_name(ch->to);
  const char *where = job->to_host ? "in its host copy" : "on the device";
  const char *dev_name = job->to_host ? "hash now" : "device hash";
  const char *want_name = converts ? "hash at conversion" : "host hash";
  char what[700];
  if (ch->nseg == 1)
    snprintf(what, sizeof what, "tensor '%s' (from %s)", first->t->name,
             hoist_file_path(c->files[first->file]));
  else
    snprintf(what, sizeof what, "one of the %u tensors '%s' .. '%s' (one transfer)", ch->nseg,
             first->t->name, last->t->name);
  if (converts && !after_convert && !job->to_host) {
    char range[80] = "";
    if (ch->nseg == 1)
      snprintf(range, sizeof range, " in source bytes [%llu, %llu)",
               (unsigned long long)seg[0].tensor_off,
               (unsigned long long)(seg[0].tensor_off + seg[0].len));
    return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                      "verify: %s: %s differs from the file%s before the %s -> %s conversion: "
                      "device hash %#018llx, host hash %#018llx",
                      c->info->name, what, range, from, to, (unsigned long long)dev_hash,
                      (unsigned long long)want);
  }
  int found = 0;
  const upload_segment *sg = NULL;
  uint64_t at = 0;
  unsigned dev_byte = 0, file_byte = 0;
  int rc = locate_difference(rt, job, ch, &found, &sg, &at, &dev_byte, &file_byte);
  if (rc == HOIST_OK && found) {
    const placed_tensor *t = &c->tensors[sg->tensor];
    if (converts)
      return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                        "verify: %s: tensor '%s' changed %s after its %s -> %s conversion, at "
                        "element %llu: %s %#018llx, %s %#018llx",
                        c->info->name, t->t->name, where, from, to, (unsigned long long)at,
                        dev_name, (unsigned long long)dev_hash, want_name,
                        (unsigned long long)want);
    return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                      "verify: %s: tensor '%s' differs from %s at byte %llu (%s %#04x, file "
                      "%#04x): %s %#018llx, host hash %#018llx",
                      c->info->name, t->t->name, hoist_file_path(c->files[t->file]),
                      (unsigned long long)at, job->to_host ? "host copy" : "device", dev_byte,
                      file_byte, dev_name, (unsigned long long)dev_hash,
                      (unsigned long long)want);
  }
  /* Nothing named: the bytes now agree with the file (what was hashed
   * differed, or the alignment padding changed), or they could not be read
   * back.  The hashes still disagree. */
  char why[160] = "";
  if (rc != HOIST_OK)
    snprintf(why, sizeof why, " (could not read it back to name the byte: %s)",
             hoist_status_name(rc));
  return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                    "verify: %s: %s %s %s%s: %s %#018llx, %s %#018llx%s", c->info->name, what,
                    converts ? "or the padding next to it changed" : "differs", where,
                    converts ? " after the conversion" : "", dev_name,
                    (unsigned long long)dev_hash, want_name, (unsigned long long)want, why);
}

/* Uploads c's tensors into its arenas (or its host copy when to_host);
 * scratch (a pool of scratch_slots slots of scratch_slot bytes) and hashes
 * are the device memory of its own transient (0 when unused).  With
 * o->verify it then checks every chunk (after ext's after_upload hook). */
static int comp_upload(hoist_runtime *rt, hoist__engine *e, hoist_loaded *l, size_t pos,
                       int to_host, const hoist_load_options *o, const hoist__load_ext *ext,
                       uint64_t scratch, uint64_t scratch_slot, unsigned scratch_slots,
                       uint64_t hashes) {
  loaded_component *c = &l->comps[pos];
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
  const hoist_tensor_info **ts = malloc(c->ntensors * sizeof *ts);
  uint32_t *tf = malloc(c->ntensors * sizeof *tf);
  uint64_t *dst = malloc(c->ntensors * sizeof *dst);
  hoist_dtype *to = malloc(c->ntensors * sizeof *to);
  uint8_t *arena = malloc(c->ntensors);
  int rc = HOIST_OK;
  if (ts == NULL || tf == NULL || dst == NULL || to == NULL || arena == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", c->info->name);
    goto done;
  }
  for (size_t i = 0; i < c->ntensors; i++) {
    ts[i] = c->tensors[i].t;
    tf[i] = c->tensors[i].file;
    to[i] = c->tensors[i].dev.dtype;
    dst[i] = to_host ? (uint64_t)(uintptr_t)c->host_copy + c->tensors[i].off
                     : hoist__tensor_addr(c, &c->tensors[i]);
    arena[i] = to_host ? 0 : (uint8_t)hoist__tensor_arena(c, &c->tensors[i]);
  }
  hoist_read_mode mode = o->read_mode;
  if (to_host && (mode == HOIST_READ_REGISTER || mode == HOIST_READ_DIRECT)) mode = HOIST_READ_AUTO;
  rc = hoist__upload_files_open(rt, (const hoist_file *const *)c->files, c->nfiles, mode, &job.files);
  if (rc != HOIST_OK) goto done;
  job.nfiles = c->nfiles;
  /* Host copies convert through the reader's pinned slot (a chunk). */
  uint64_t step = to_host || scratch_slot == 0 ? hoist__engine_chunk_bytes(e) : scratch_slot;
  rc = hoist__upload_job_build(rt, &job, hoist__engine_chunk_bytes(e), ts, tf, dst, arena, c->ntensors, to,
                        step);
  if (rc != HOIST_OK) goto done;
  if (job.verify && !to_host && job.nchunks > c->chunk_bound) {
    rc = hoist__fail(rt, HOIST_OVERFLOW, "%s: %zu chunks above the bound of %llu", c->info->name,
                    job.nchunks, (unsigned long long)c->chunk_bound);
    goto done;
  }
  double t0 = now_seconds();
  rc = hoist__engine_run(e, &job);
  double t1 = now_seconds();
  if (rc != HOIST_OK) goto done;
  size_t converting = 0;
  for (size_t i = 0; i < job.nchunks; i++) converting += job.chunks[i].from != job.chunks[i].to;
  if (to_host)
    hoist__log(rt, HOIST_LOG_DEBUG, "%s: %llu bytes in %zu transfers (%zu converted) to its host "
              "copy in %.3f ms",
              c->info->name, (unsigned long long)job.total_bytes, job.nchunks, converting,
              (t1 - t0) * 1e3);
  else
    hoist__log(rt, HOIST_LOG_DEBUG,
              "%s: %llu bytes in %zu transfers (%zu converted) uploaded in %.3f ms by %u "
              "reader%s; they waited %.3f ms in all for their earlier transfers (a copy, and "
              "the conversion it waited for)",
              c->info->name, (unsigned long long)job.total_bytes, job.nchunks, converting,
              (t1 - t0) * 1e3, job.readers, job.readers == 1 ? "" : "s", job.copy_wait_ns / 1e6);
  if (ext != NULL && ext->after_upload != NULL) ext->after_upload(ext->after_upload_user, l, pos);
  if (!job.verify) goto done;
  size_t bad = SIZE_MAX;
  uint64_t dev_hash = 0, want = 0;
  int after_convert = 0;
  t0 = now_seconds();
  rc = hoist_engine_verify(e, &job, &bad, &dev_hash, &want, &after_convert);
  if (rc == HOIST_OK && bad != SIZE_MAX)
    rc = report_mismatch(rt, c, &job, bad, dev_hash, want, after_convert);
  if (rc == HOIST_OK)
    hoist__log(rt, HOIST_LOG_DEBUG, "%s: verified in %.3f ms", c->info->name,
              (now_seconds() - t0) * 1e3);
done:
  hoist__upload_job_free(&job);
  hoist__upload_files_close(rt, job.files, job.nfiles);
  free(ts);
  free(tf);
  free(dst);
  free(to);
  free(arena);
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

static uint64_t default_headroom(const hoist__device *d, uint64_t total) {
  if (strcmp(d->kind, "host") == 0) return 0;
  uint64_t pct = total / 50;
  return pct > (256ull << 20) ? pct : (256ull << 20);
}

/* The load's conversion scratch ring: bytes, and the positions of the first
 * and last device-placed components that convert (first > last: none). */
typedef struct ring_span {
  uint64_t bytes;
  size_t first, last;
} ring_span;

/* Preflight: can every device-placed component fit under today's free
 * memory?  Names the first that does not. */
static int preflight(hoist_runtime *rt, hoist_loaded *l, const unsigned char *offload,
                     uint64_t headroom, uint64_t free_b, const hoist_load_options *o,
                     const ring_span *ring) {
  uint64_t sum = 0;
  for (size_t i = 0; i < l->ncomps; i++) {
    loaded_component *c = &l->comps[i];
    if (offload[i] || c->need == 0) continue;
    uint64_t next = sum + c->need;
    /* Its hashes are held only while it uploads, the scratch ring from the
     * first converting component to the last. */
    uint64_t transient = c->hash_bytes + (i >= ring->first && i <= ring->last ? ring->bytes : 0);
    if (next + transient + headroom > free_b) {
      uint64_t total = next;
      for (size_t j = i + 1; j < l->ncomps; j++)
        if (!offload[j]) total += l->comps[j].need;
      set_failure(o, c->info->name, c->need + transient + headroom,
                  free_b > sum ? free_b - sum : 0);
      return hoist__fail(rt, HOIST_ADMISSION,
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
  return hoist__load_pipeline_ext(rt, p, opts, NULL, out);
}

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

int hoist__load_pipeline_ext(hoist_runtime *rt, const hoist_pipeline *p,
                            const hoist_load_options *opts, const hoist__load_ext *ext,
                            hoist_loaded **out) {
  hoist_load_options defaults = HOIST_LOAD_OPTIONS_INIT;
  const hoist_load_options *o = opts != NULL ? opts : &defaults;
  *out = NULL;
  if (o->struct_size != sizeof(hoist_load_options))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "hoist_load_options.struct_size mismatch (use HOIST_LOAD_OPTIONS_INIT)");
  if (o->failure != NULL) memset(o->failure, 0, sizeof *o->failure);
  hoist__device *d = rt->dev;
  uv_mutex_lock(&rt->load_lock);
  /* Copies from file mappings turn a truncation into FILE_CHANGED. */
  hoist__sigbus_guard_acquire();
  double t0 = now_seconds();
  int rc = HOIST_OK;
  uint64_t transient_addr = 0; /* a transient allocation held during one upload */
  uint64_t ring_addr = 0;      /* the conversion scratch ring, while held */
  uint64_t hashes_addr = 0;    /* this component's verify hashes */
  hoist_dtype *target = NULL;
  unsigned char *offload = NULL, *fsdp = NULL;
  hoist_loaded *l = calloc(1, sizeof *l);
  size_t n = hoist_pipeline_component_count(p);
  if (l == NULL || (l->comps = calloc(n > 0 ? n : 1, sizeof *l->comps)) == NULL ||
      (offload = calloc(n > 0 ? n : 1, 1)) == NULL || (fsdp = calloc(n > 0 ? n : 1, 1)) == NULL ||
      (target = calloc(n > 0 ? n : 1, sizeof *target)) == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory starting a load");
    goto fail;
  }
  l->rt = rt;
  l->p = p;
  l->ncomps = n;
  if (ext != NULL && ext->order != NULL && (rc = check_order(rt, ext->order, n)) != HOIST_OK)
    goto fail;

  /* Plan: every component's placement, in load order. */
  for (size_t pos = 0; pos < n; pos++) {
    loaded_component *c = &l->comps[pos];
    c->info = ext != NULL && ext->order != NULL ? hoist_pipeline_component(p, ext->order[pos])
                                                : hoist_pipeline_ordered(p, pos);
    c->index_i = c->info->index;
    for (size_t i = 0; i < n; i++)
      if (hoist_pipeline_component(p, i) == c->info) c->index_i = i;
    c->nfiles = hoist__pipeline_safetensors(p, c->index_i, &c->files);
    c->pub.name = c->info->name;
    c->pub.residency = HOIST_RESIDENT;
    if (c->nfiles == 0 && c->info->file_count > 0)
      hoist__log(rt, HOIST_LOG_WARN, "%s: only non-safetensors weights; not loaded", c->info->name);
  }
  /* Target dtypes, then placement in target bytes: an impossible
   * conversion fails here, before anything is allocated. */
  if ((rc = resolve_targets(rt, o, l->comps, n, target)) != HOIST_OK) goto fail;
  for (size_t pos = 0; pos < n; pos++)
    if ((rc = hoist__place(rt, &l->comps[pos], d->ops->alloc_granularity, target[pos])) != HOIST_OK)
      goto fail;
  rc = hoist__component_select(rt, "offload", o->offload, l->comps, n, offload);
  if (rc == HOIST_OK) rc = hoist__component_select(rt, "fsdp", o->fsdp, l->comps, n, fsdp);
  if (rc != HOIST_OK) goto fail;
  for (size_t i = 0; i < n; i++) {
    if (offload[i] && fsdp[i]) {
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "%s: marked both --offload and --fsdp; an FSDP component is placed by its owner",
                      l->comps[i].info->name);
      goto fail;
    }
    if (fsdp[i]) l->comps[i].pub.residency = HOIST_FSDP;
  }

  /* The engine's threads and chunk size the scratch ring (made once per
   * runtime; it holds pinned memory, not device memory). */
  hoist__engine *e = NULL;
  if ((rc = hoist__engine_get(rt, &e)) != HOIST_OK) goto fail;
  uint64_t scratch_want = o->scratch_bytes != 0 ? o->scratch_bytes : DEFAULT_SCRATCH;
  uint64_t scratch_slot = hoist__engine_scratch_slot(e, scratch_want);
  unsigned scratch_slots = hoist__engine_scratch_slots(e, scratch_want);
  uint64_t scratch_ring = scratch_slot * scratch_slots;
  for (size_t pos = 0; pos < n; pos++) {
    loaded_component *c = &l->comps[pos];
    if (c->converts && scratch_slot == 0 && !offload[pos]) {
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "%s: a scratch of %llu bytes is below one 4096-byte slot",
                      c->info->name, (unsigned long long)scratch_want);
      goto fail;
    }
    if ((rc = comp_own_transient(rt, e, c, o->verify, scratch_ring,
                                 scratch_slot != 0 ? scratch_slot : hoist__engine_chunk_bytes(e))) !=
        HOIST_OK)
      goto fail;
  }
  /* One scratch ring for the load (not one per component: each allocation
   * and free costs a device synchronization). */
  ring_span ring = {0, SIZE_MAX, 0};
  for (size_t pos = 0; pos < n; pos++) {
    loaded_component *c = &l->comps[pos];
    if (!c->converts || offload[pos] || c->ntensors == 0) continue;
    ring.bytes = c->ring_bytes;
    if (ring.first == SIZE_MAX) ring.first = pos;
    ring.last = pos;
  }

  uint64_t free_b = 0, total_b = 0;
  if ((rc = d->ops->mem_info(d, &free_b, &total_b)) != HOIST_OK) goto fail;
  uint64_t headroom = o->headroom >= 0 ? (uint64_t)o->headroom : default_headroom(d, total_b);
  if (o->on_oom == HOIST_ON_OOM_FAIL &&
      (rc = preflight(rt, l, offload, headroom, free_b, o, &ring)) != HOIST_OK)
    goto fail;

  for (size_t pos = 0; pos < n; pos++) {
    loaded_component *c = &l->comps[pos];
    if (o->cancel != NULL && *o->cancel) {
      rc = hoist__fail(rt, HOIST_CANCELLED, "load cancelled before '%s'", c->info->name);
      goto fail;
    }
    if (c->ntensors == 0) continue;
    double c0 = now_seconds();
    bool to_host = offload[pos];
    if (!to_host) {
      /* Transient bytes this component's load holds besides its arenas:
       * its verify hashes, the scratch ring if it converts and the ring is
       * not held yet, and hoist__load_ext's (0 for hoist's own loader). */
      bool new_ring = c->converts && ring_addr == 0;
      uint64_t trans = 0, need = c->need;
      if (!hoist__add_u64(need, c->hash_bytes, &need) ||
          (new_ring && !hoist__add_u64(need, c->ring_bytes, &need)) ||
          (ext != NULL && ext->transient != NULL &&
           (!hoist__round_up_u64(ext->transient(ext->transient_user, c->info, c->pub.bytes),
                                d->ops->alloc_granularity, &trans) ||
            !hoist__add_u64(need, trans, &need)))) {
        rc = hoist__fail(rt, HOIST_OVERFLOW, "%s: transient bytes overflow", c->info->name);
        goto fail;
      }
      /* Admission: free memory now, not at the start. */
      if ((rc = d->ops->mem_info(d, &free_b, &total_b)) != HOIST_OK) goto fail;
      bool fits = need <= free_b && headroom <= free_b - need;
      if (fits) {
        rc = hoist__arenas_alloc(rt, c);
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
          hoist__arenas_free(rt, c);
        }
        if (rc == HOIST_DEVICE_OOM) fits = false; /* lost a race with another allocator */
        else if (rc != HOIST_OK) goto fail;
      }
      if (!fits) {
        if (o->on_oom != HOIST_ON_OOM_OFFLOAD || fsdp[pos]) {
          set_failure(o, c->info->name, need + headroom, free_b);
          rc = hoist__fail(rt, HOIST_ADMISSION,
                          "%s: needs %llu bytes (+%llu headroom) on %s but %llu are free%s",
                          c->info->name, (unsigned long long)need,
                          (unsigned long long)headroom, d->name, (unsigned long long)free_b,
                          rc == HOIST_DEVICE_OOM ? " (allocation failed despite admission)" : "");
          goto fail;
        }
        hoist__log(rt, HOIST_LOG_INFO, "%s: %llu bytes do not fit in %llu free; offloading",
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
    hoist__log(rt, HOIST_LOG_DEBUG,
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
  hoist__sigbus_guard_release();
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
  hoist__sigbus_guard_release();
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
    const loaded_component *c = &l->comps[i];
    if (strcmp(c->info->name, component) != 0) continue;
    size_t lo = 0, hi = c->ntensors;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      int cmp = strcmp(c->by_name[mid]->t->name, tensor);
      if (cmp == 0) {
        if (info != NULL) *info = &c->by_name[mid]->dev;
        if (c->narenas == 0)
          return hoist__fail(l->rt, HOIST_UNSUPPORTED, "%s: offloaded; call hoist_prepare_for_use",
                            component);
        *device_addr = hoist__tensor_addr(c, c->by_name[mid]);
        return HOIST_OK;
      }
      if (cmp < 0) lo = mid + 1;
      else hi = mid;
    }
    return hoist__fail(l->rt, HOIST_NOT_FOUND, "%s: no tensor '%s'", component, tensor);
  }
  return hoist__fail(l->rt, HOIST_NOT_FOUND, "no component '%s'", component);
}
