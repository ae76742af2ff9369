/* manifest_load.c — a load held to a content manifest (manifest_load.h).
 *
 * Before anything is allocated, the pipeline's weight files must be the
 * manifest's: the same set, each of the recorded size, with a header whose
 * XXH3 is the recorded one and a tensor table equal to the recorded one
 * (which pins the table the load was planned from to the header hashed).
 * During the upload, the reader thread that reads a chunk hashes each
 * piece of it right after reading it, while the bytes are in its core's
 * caches, and before they are copied to the device, converted or written
 * into a host copy (manifest.h says why whole pieces fill every chunk); the
 * first piece that differs fails the load, naming the file and its tensor,
 * and the loader's failure path releases everything.  So a file corrupted
 * at rest, or rewritten in place (same size) before or during the load,
 * never loads. */
#include "manifest_load.h"

#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <xxh_x86dispatch.h>

struct hoist__manifest_run {
  const hoist_manifest *m;
  size_t n;
  const manifest_file ***file_of; /* [position][file]: the recorded file */
};

void hoist__manifest_run_close(hoist__manifest_run *run) {
  if (run == NULL) return;
  for (size_t i = 0; run->file_of != NULL && i < run->n; i++) free(run->file_of[i]);
  free(run->file_of);
  free(run);
}

/* The piece size must divide the chunks the engine cuts tensors into. */
static int check_piece(hoist_runtime *rt, uint64_t piece, uint64_t chunk, uint64_t slot) {
  if (chunk % piece != 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "`manifest`: its pieces of %llu bytes must fall on upload chunk "
                       "boundaries, but the chunk is %llu bytes; use a chunk that is a multiple "
                       "of the piece, or a manifest made with smaller pieces",
                       (unsigned long long)piece, (unsigned long long)chunk);
  if (slot != 0 && slot % piece != 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "`manifest`: its pieces of %llu bytes must fall on conversion chunk "
                       "boundaries, but a `scratch_bytes` of this size makes slots of %llu "
                       "bytes; give a scratch whose slots are multiples of the piece",
                       (unsigned long long)piece, (unsigned long long)slot);
  return HOIST_OK;
}

/* XXH3 of f's first 8 + N bytes (its header), read with pread. */
static int header_hash(hoist_runtime *rt, const hoist_file *f, uint64_t *out) {
  const uint64_t len = hoist_file_data_offset(f);
  const size_t block = 1u << 20;
  unsigned char *buf = malloc(block);
  XXH3_state_t *st = XXH3_createState();
  int rc = HOIST_OK;
  if (buf == NULL || st == NULL || XXH3_64bits_reset(st) != XXH_OK)
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory hashing a header");
  for (uint64_t off = 0; off < len && rc == HOIST_OK; off += block) {
    size_t n = len - off < block ? (size_t)(len - off) : block;
    if ((rc = hoist_file_read(f, off, buf, n)) == HOIST_OK) XXH3_64bits_update(st, buf, n);
  }
  if (rc == HOIST_OK) *out = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  free(buf);
  return rc;
}

/* Whether f's tensor table is the recorded one. */
static bool same_tensors(const hoist_file *f, const manifest_file *mf) {
  if (hoist_file_tensor_count(f) != mf->ntensors) return false;
  for (size_t i = 0; i < mf->ntensors; i++) {
    const hoist_tensor_info *t = hoist_file_tensor(f, i);
    const manifest_tensor *mt = &mf->tensors[i];
    if (strcmp(t->name, mt->name) != 0 || t->dtype != mt->dtype || t->ndim != mt->ndim ||
        t->begin != mt->begin || t->end != mt->end ||
        (t->ndim > 0 && memcmp(t->shape, mt->shape, t->ndim * sizeof *t->shape) != 0))
      return false;
  }
  return true;
}

/* One weight file of the load against its record. */
static int check_file(hoist_runtime *rt, const hoist_file *f, const manifest_file *mf) {
  char pb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(hoist_file_path(f), pb, sizeof pb);
  uint64_t h = 0;
  if (!mf->safetensors)
    return hoist__fail(rt, HOIST_MANIFEST_MISMATCH,
                       "%s: the manifest records it without a safetensors header", shown);
  if (hoist_file_size(f) != mf->pub.size)
    return hoist__fail(rt, HOIST_MANIFEST_MISMATCH, "%s: %llu bytes, the manifest records %llu",
                       shown, (unsigned long long)hoist_file_size(f),
                       (unsigned long long)mf->pub.size);
  int rc = hoist_file_data_offset(f) == mf->header_bytes ? header_hash(rt, f, &h) : HOIST_OK;
  if (rc != HOIST_OK) return rc;
  if (hoist_file_data_offset(f) != mf->header_bytes || h != mf->header_xxh3)
    return hoist__fail(rt, HOIST_MANIFEST_MISMATCH,
                       "%s: its header (%llu bytes) differs from the manifest's (%llu bytes, "
                       "XXH3 %016llx)",
                       shown, (unsigned long long)hoist_file_data_offset(f),
                       (unsigned long long)mf->header_bytes, (unsigned long long)mf->header_xxh3);
  if (!same_tensors(f, mf))
    return hoist__fail(rt, HOIST_MANIFEST_MISMATCH,
                       "%s: its tensors differ from the manifest's although its header hashes "
                       "the same (the file changed since it was opened)",
                       shown);
  return HOIST_OK;
}

/* Finds each file of component c in the manifest, checks it and marks it
 * seen. */
static int match_component(hoist_runtime *rt, hoist__manifest_run *run, const char *base,
                           const loaded_component *c, size_t position, unsigned char *seen) {
  char pb[HOIST_SHOW_PATH];
  run->file_of[position] = calloc(c->nfiles > 0 ? c->nfiles : 1, sizeof **run->file_of);
  if (run->file_of[position] == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  int rc = HOIST_OK;
  for (size_t k = 0; k < c->nfiles && rc == HOIST_OK; k++) {
    const char *path = hoist_file_path(c->files[k]);
    char *rel = hoist__manifest_relpath(base, path);
    const manifest_file *mf = rel != NULL ? hoist__manifest_find(run->m, rel, 0) : NULL;
    free(rel);
    if (mf == NULL)
      rc = hoist__fail(rt, HOIST_MANIFEST_MISMATCH,
                       "%s: a weight file of '%s' that the manifest does not list",
                       hoist__show(path, pb, sizeof pb), c->info->name);
    else if ((rc = check_file(rt, c->files[k], mf)) == HOIST_OK)
      seen[mf - run->m->files] = 1;
    run->file_of[position][k] = mf;
  }
  return rc;
}

int hoist__manifest_run_open(hoist_runtime *rt, const hoist_manifest *m, const hoist_pipeline *p,
                             const loaded_component *cs, size_t n, uint64_t chunk, uint64_t slot,
                             hoist__manifest_run **out) {
  *out = NULL;
  int rc = check_piece(rt, m->piece_bytes, chunk, slot);
  if (rc != HOIST_OK) return rc;
  hoist__manifest_run *run = calloc(1, sizeof *run);
  char *base = hoist__manifest_base(hoist_pipeline_path(p));
  unsigned char *seen = calloc(m->nfiles > 0 ? m->nfiles : 1, 1);
  if (run != NULL) {
    run->m = m;
    run->n = n;
    run->file_of = calloc(n > 0 ? n : 1, sizeof *run->file_of);
  }
  if (run == NULL || run->file_of == NULL || base == NULL || seen == NULL)
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory checking the manifest");
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) rc = match_component(rt, run, base, &cs[i], i, seen);
  for (size_t i = 0; i < m->nweights && rc == HOIST_OK; i++) {
    char pb[HOIST_SHOW_PATH];
    if (m->files[i].safetensors && !seen[i])
      rc = hoist__fail(rt, HOIST_MANIFEST_MISMATCH,
                       "%s: listed in the manifest but not among the pipeline's weight files",
                       hoist__show(m->files[i].path, pb, sizeof pb));
  }
  free(seen);
  free(base);
  if (rc != HOIST_OK) {
    hoist__manifest_run_close(run);
    return rc;
  }
  *out = run;
  return HOIST_OK;
}

/* ---- The readers' check */

/* What a reader needs to check one segment (a piece of one tensor). */
typedef struct check_seg {
  const uint64_t *expect;   /* the recorded hash of the segment's first piece */
  const char *tensor;
  const char *path;
  uint64_t tensor_off;      /* where the segment starts in its tensor */
} check_seg;

typedef struct manifest_job {
  hoist_runtime *rt;
  const char *component;
  uint64_t piece;
  check_seg *segs;          /* one per segment of the job */
} manifest_job;

static int mismatch(const manifest_job *mj, const check_seg *cs, uint64_t off, uint64_t n,
                    uint64_t got, uint64_t want) {
  char pb[HOIST_SHOW_PATH], nb[HOIST_SHOW_NAME];
  const uint64_t at = cs->tensor_off + off;
  return hoist__fail(mj->rt, HOIST_MANIFEST_MISMATCH,
                     "%s: tensor '%s' (%s) differs from the manifest in its bytes [%llu, %llu): "
                     "XXH3 %016llx, recorded %016llx; the file changed since the manifest was made",
                     hoist__show(cs->path, pb, sizeof pb), hoist__show(cs->tensor, nb, sizeof nb),
                     mj->component, (unsigned long long)at, (unsigned long long)(at + n),
                     (unsigned long long)got, (unsigned long long)want);
}

/* upload_job.check: every piece of chunk c against its record. */
static int chunk_check(void *user, const upload_job *job, const upload_chunk *c,
                       const unsigned char *bytes) {
  const manifest_job *mj = user;
  for (uint32_t s = 0; s < c->nseg; s++) {
    const upload_segment *seg = &job->segs[c->first_seg + s];
    const check_seg *cs = &mj->segs[c->first_seg + s];
    const unsigned char *p = bytes + seg->slot_off;
    for (uint64_t off = 0, k = 0; off < seg->len; off += mj->piece, k++) {
      const uint64_t n = seg->len - off < mj->piece ? seg->len - off : mj->piece;
      const uint64_t h = XXH3_64bits(p + off, (size_t)n);
      if (h != cs->expect[k]) return mismatch(mj, cs, off, n, h, cs->expect[k]);
    }
  }
  return HOIST_OK;
}

/* The index of tensor t among f's tensors (offset order): a search by
 * begin, then the tensors that share it (empty ones) by identity. */
static size_t tensor_index(const hoist_file *f, const hoist_tensor_info *t) {
  size_t lo = 0, hi = hoist_file_tensor_count(f);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (hoist_file_tensor(f, mid)->begin < t->begin)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i < hoist_file_tensor_count(f); i++)
    if (hoist_file_tensor(f, i) == t) return i;
  return SIZE_MAX;
}

/* The check of one segment: its recorded pieces, which must start at a
 * piece boundary of its tensor and end at one or at the tensor's end. */
static int seg_check(const hoist__manifest_run *run, size_t position, const loaded_component *c,
                     const upload_segment *seg, check_seg *out) {
  const placed_tensor *pt = &c->tensors[seg->tensor];
  const manifest_file *mf = run->file_of[position][pt->file];
  const size_t i = tensor_index(c->files[pt->file], pt->t);
  const uint64_t piece = run->m->piece_bytes;
  if (i == SIZE_MAX || seg->tensor_off % piece != 0 ||
      (seg->len % piece != 0 && seg->tensor_off + seg->len != pt->t->nbytes))
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                       "%s: a chunk of tensor '%s' does not hold whole pieces of the manifest",
                       c->info->name, pt->t->name);
  *out = (check_seg){mf->tensors[i].pieces + seg->tensor_off / piece, pt->t->name,
                     hoist_file_path(c->files[pt->file]), seg->tensor_off};
  return HOIST_OK;
}

int hoist__manifest_job_open(hoist__manifest_run *run, size_t position, const loaded_component *c,
                             upload_job *job) {
  manifest_job *mj = calloc(1, sizeof *mj);
  check_seg *segs = calloc(job->nsegs > 0 ? job->nsegs : 1, sizeof *segs);
  if (mj == NULL || segs == NULL) {
    free(mj);
    free(segs);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for the manifest's checks");
  }
  *mj = (manifest_job){NULL, c->info->name, run->m->piece_bytes, segs};
  int rc = HOIST_OK;
  for (size_t s = 0; s < job->nsegs && rc == HOIST_OK; s++)
    rc = seg_check(run, position, c, &job->segs[s], &segs[s]);
  if (rc != HOIST_OK) {
    free(segs);
    free(mj);
    return rc;
  }
  job->check = chunk_check;
  job->check_user = mj;
  return HOIST_OK;
}

void hoist__manifest_job_close(upload_job *job) {
  if (job->check != chunk_check) return;
  manifest_job *mj = job->check_user;
  free(mj->segs);
  free(mj);
  job->check = NULL;
  job->check_user = NULL;
}
