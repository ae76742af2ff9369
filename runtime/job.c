/* job.c — cutting a component's placement into the chunk list of its
 * upload job (job.h).
 *
 * Large tensors get chunks of their own, so a reader moves a few MiB per
 * copy.  Small ones placed next to each other share a chunk, with the
 * alignment padding between them zeroed in the pinned slot, so a component
 * of thousands of small tensors costs a few copies, not thousands.  A chunk
 * that converts carries the source bytes of one conversion: each piece sits
 * in the slot at its destination offset scaled by source/target element
 * size, so one copy and one kernel cover the whole span. */
#include "job.h"

#include "shard_job.h"

#include <stdlib.h>
#include <string.h>

void hoist__upload_job_free(upload_job *job) {
  free(job->chunks);
  free(job->segs);
  free(job->parts);
  job->chunks = NULL;
  job->segs = NULL;
  job->parts = NULL;
  job->nchunks = job->nsegs = job->nparts = 0;
}

/* How a tensor is cut: source and target bytes per element (1 and 1 for a
 * plain copy, whose bytes need not be whole elements) and the most source
 * bytes one of its chunks carries. */
typedef struct tensor_cut {
  uint64_t sb, db, step;
} tensor_cut;

static int cut_tensor(hoist_runtime *rt, const upload_job *job, const placed_tensor *pt,
                      uint64_t chunk_bytes, uint64_t convert_chunk, tensor_cut *cut) {
  const hoist_tensor_info *t = pt->t;
  *cut = (tensor_cut){1, 1, chunk_bytes};
  if (pt->dev.dtype == t->dtype) return HOIST_OK;
  cut->sb = hoist_dtype_bits(t->dtype) / 8;
  cut->db = hoist_dtype_bits(pt->dev.dtype) / 8;
  cut->step = convert_chunk < chunk_bytes ? convert_chunk : chunk_bytes;
  if (cut->sb == 0 || cut->db == 0 || hoist_dtype_bits(t->dtype) % 8 != 0 ||
      cut->step < cut->sb || t->nbytes % cut->sb != 0)
    return hoist__fail(rt, HOIST_UNSUPPORTED,
                      "%s: tensor '%s': %s cannot be converted in chunks of %llu bytes",
                      job->component, t->name, hoist_dtype_name(t->dtype),
                      (unsigned long long)cut->step);
  cut->step -= cut->step % cut->sb;
  return HOIST_OK;
}

/* A tensor of at least half a chunk gets chunks of its own. */
static bool is_large(const hoist_tensor_info *t, const tensor_cut *cut) {
  return t->nbytes >= cut->step / 2;
}

/* The segments c's job will have: one per chunk of a large tensor, one per
 * small tensor (chunks are never more).  Fails as cut_tensor does. */
static int count_segments(hoist_runtime *rt, const upload_job *job, const loaded_component *c,
                          uint64_t chunk_bytes, uint64_t convert_chunk, uint64_t *n) {
  *n = 0;
  for (size_t i = 0; i < c->ntensors; i++) {
    const hoist_tensor_info *t = c->tensors[i].t;
    tensor_cut cut;
    if (t->nbytes == 0 || !hoist__shard_owns(c, &c->tensors[i])) continue;
    int rc = cut_tensor(rt, job, &c->tensors[i], chunk_bytes, convert_chunk, &cut);
    if (rc != HOIST_OK) return rc;
    if (hoist__shard_strided(&c->tensors[i])) /* ranks: a part read in runs */
      *n += hoist__shard_job_segments(&c->tensors[i], cut.step);
    else
      *n += is_large(t, &cut) ? (t->nbytes + cut.step - 1) / cut.step : 1;
  }
  return HOIST_OK;
}

/* The "arena" of a tensor that lands in the caller's memory: such tensors
 * never share a chunk.  Two destinations that touch may still be two
 * allocations (two cudaMalloc blocks side by side), and one copy may not
 * cross from one allocation into the next (CUDA refuses it as an invalid
 * argument); nor may the bytes between two destinations be written. */
#define CALLER_ARENA (-1)

/* Where tensor pt of c lands for this job, and in which allocation. */
static uint64_t tensor_dst(const upload_job *job, const loaded_component *c,
                           const placed_tensor *pt, int *arena) {
  if (c->caller_buffers) {
    *arena = CALLER_ARENA;
    return pt->addr;
  }
  if (job->to_host) {
    *arena = 0;
    return (uint64_t)(uintptr_t)c->host_copy + pt->off;
  }
  *arena = hoist__tensor_arena(&c->arenas, pt);
  return hoist__tensor_addr(&c->arenas, pt);
}

/* The chunk being filled with small tensors, and the arena it lies in. */
typedef struct open_chunk {
  bool open;
  int arena;
  upload_chunk ch;
} open_chunk;

static void close_chunk(upload_job *job, open_chunk *cur) {
  if (cur->open) job->chunks[job->nchunks++] = cur->ch;
  cur->open = false;
}

/* Large tensor i: its own chunks of whole elements; the destination
 * advances in target bytes. */
static void add_large(upload_job *job, const placed_tensor *pt, uint32_t i, uint64_t dst,
                      const tensor_cut *cut) {
  const hoist_tensor_info *t = pt->t;
  const uint64_t base = hoist_file_data_offset(job->files[pt->file].file) + t->begin;
  for (uint64_t off = 0; off < t->nbytes; off += cut->step) {
    uint64_t len = t->nbytes - off < cut->step ? t->nbytes - off : cut->step;
    job->chunks[job->nchunks++] =
        (upload_chunk){dst + off / cut->sb * cut->db, len, len / cut->sb * cut->db,
                       (uint32_t)job->nsegs, 1, t->dtype, pt->dev.dtype, 0, 0};
    job->segs[job->nsegs++] = (upload_segment){pt->file, 0, base + off, len, i, off};
  }
}

/* Small tensor i: merged into the open chunk when that holds the same
 * conversion (or plain copies, of any dtypes) in the same arena and i is
 * placed right after it (at most the 256-byte alignment padding past its
 * end) and the span still fits a chunk.  Its source lands in the slot at
 * its destination offset scaled by sb/db, so one copy and one conversion
 * cover the whole span.  Otherwise it opens a chunk of its own. */
static void add_small(upload_job *job, open_chunk *cur, const placed_tensor *pt, uint32_t i,
                      uint64_t dst, int arena, const tensor_cut *cut) {
  const hoist_tensor_info *t = pt->t;
  const hoist_dtype target = pt->dev.dtype;
  const uint64_t src = hoist_file_data_offset(job->files[pt->file].file) + t->begin;
  const uint64_t dst_bytes = t->nbytes / cut->sb * cut->db;
  upload_chunk *ch = &cur->ch;
  const uint64_t cur_end = ch->dst + ch->dst_len;
  const bool same_kind = target == t->dtype ? ch->from == ch->to /* plain: any dtypes */
                                            : ch->from == t->dtype && ch->to == target;
  if (cur->open && arena != CALLER_ARENA && same_kind && arena == cur->arena && dst >= cur_end &&
      dst - cur_end < 256 && (dst - ch->dst) % cut->db == 0) {
    uint64_t slot_off = (dst - ch->dst) / cut->db * cut->sb;
    if (slot_off + t->nbytes <= cut->step) {
      job->segs[job->nsegs++] =
          (upload_segment){pt->file, (uint32_t)slot_off, src, t->nbytes, i, 0};
      ch->nseg++;
      ch->len = slot_off + t->nbytes;
      ch->dst_len = dst + dst_bytes - ch->dst;
      return;
    }
  }
  close_chunk(job, cur);
  *cur = (open_chunk){true, arena,
                      {dst, t->nbytes, dst_bytes, (uint32_t)job->nsegs, 1, t->dtype, target, 0, 0}};
  job->segs[job->nsegs++] = (upload_segment){pt->file, 0, src, t->nbytes, i, 0};
}

int hoist__upload_job_build(hoist_runtime *rt, upload_job *job, const loaded_component *c,
                     uint64_t chunk_bytes, uint64_t convert_chunk) {
  uint64_t nsegs = 0;
  job->total_bytes = 0;
  if (c->ntensors > UINT32_MAX)
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: too many tensors", job->component);
  int rc = count_segments(rt, job, c, chunk_bytes, convert_chunk, &nsegs);
  if (rc != HOIST_OK) return rc;
  if (nsegs > UINT32_MAX)
    return hoist__fail(rt, HOIST_OVERFLOW, "%s: too many pieces", job->component);
  job->chunks = malloc((nsegs > 0 ? nsegs : 1) * sizeof *job->chunks);
  job->segs = malloc((nsegs > 0 ? nsegs : 1) * sizeof *job->segs);
  if (job->chunks == NULL || job->segs == NULL) {
    hoist__upload_job_free(job);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory building chunks");
  }
  open_chunk cur = {false, 0, {0}};
  for (size_t i = 0; i < c->ntensors; i++) {
    const placed_tensor *pt = &c->tensors[i];
    tensor_cut cut;
    if (pt->t->nbytes == 0 || !hoist__shard_owns(c, pt)) continue;
    job->total_bytes += pt->t->nbytes;
    (void)cut_tensor(rt, job, pt, chunk_bytes, convert_chunk, &cut); /* checked by the count */
    int arena = 0;
    const uint64_t dst = tensor_dst(job, c, pt, &arena);
    if (hoist__shard_strided(pt)) { /* ranks: a part read in runs (shard_job.c) */
      close_chunk(job, &cur);
      hoist__shard_job_add(job, pt, (uint32_t)i, dst, cut.sb, cut.db, cut.step);
    } else if (is_large(pt->t, &cut)) {
      close_chunk(job, &cur);
      add_large(job, pt, (uint32_t)i, dst, &cut);
    } else {
      add_small(job, &cur, pt, (uint32_t)i, dst, arena, &cut);
    }
  }
  close_chunk(job, &cur);
  return HOIST_OK;
}

/* upload_job.check of a joined job: the check of chunk c's part, shown
 * the part's own segment numbering. */
static int part_check(void *user, const upload_job *job, const upload_chunk *c,
                      const unsigned char *bytes) {
  const upload_part *part = &job->parts[c->part];
  if (part->check == NULL) return HOIST_OK;
  upload_job view = *job;
  view.segs = job->segs + part->seg_begin;
  view.nsegs = job->nsegs - part->seg_begin;
  upload_chunk own = *c;
  own.first_seg -= (uint32_t)part->seg_begin;
  return part->check(part->check_user, &view, &own, bytes);
}

int hoist__upload_job_concat(hoist_runtime *rt, upload_job *parts, size_t n, upload_job *out) {
  size_t nfiles = 0, nchunks = 0, nsegs = 0;
  for (size_t i = 0; i < n; i++) {
    nfiles += parts[i].nfiles;
    nchunks += parts[i].nchunks;
    nsegs += parts[i].nsegs;
  }
  if (nfiles > UINT32_MAX || nsegs > UINT32_MAX || n > UINT32_MAX)
    return hoist__fail(rt, HOIST_OVERFLOW, "a pipelined upload of %zu pieces is too large", nsegs);
  out->files = calloc(nfiles > 0 ? nfiles : 1, sizeof *out->files);
  out->chunks = malloc((nchunks > 0 ? nchunks : 1) * sizeof *out->chunks);
  out->segs = malloc((nsegs > 0 ? nsegs : 1) * sizeof *out->segs);
  out->parts = calloc(n > 0 ? n : 1, sizeof *out->parts);
  if (out->files == NULL || out->chunks == NULL || out->segs == NULL || out->parts == NULL) {
    free(out->files);
    free(out->parts);
    out->files = NULL;
    out->parts = NULL;
    hoist__upload_job_free(out);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory joining %zu uploads", n);
  }
  out->total_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    upload_job *p = &parts[i];
    const uint32_t file0 = (uint32_t)out->nfiles, seg0 = (uint32_t)out->nsegs;
    out->parts[i].component = p->component;
    out->parts[i].total_bytes = p->total_bytes;
    out->parts[i].chunk_begin = out->nchunks;
    out->parts[i].seg_begin = out->nsegs;
    out->parts[i].check = p->check;
    out->parts[i].check_user = p->check_user;
    if (p->check != NULL) out->check = part_check;
    memcpy(out->files + out->nfiles, p->files, p->nfiles * sizeof *p->files);
    out->nfiles += p->nfiles;
    for (size_t k = 0; k < p->nsegs; k++) {
      out->segs[out->nsegs] = p->segs[k];
      out->segs[out->nsegs++].file += file0;
    }
    for (size_t k = 0; k < p->nchunks; k++) {
      out->chunks[out->nchunks] = p->chunks[k];
      out->chunks[out->nchunks].first_seg += seg0;
      out->chunks[out->nchunks++].part = (uint32_t)i;
    }
    out->parts[i].chunk_end = out->nchunks;
    out->total_bytes += p->total_bytes;
    /* The descriptors belong to out now. */
    free(p->files);
    p->files = NULL;
    p->nfiles = 0;
    hoist__upload_job_free(p);
  }
  out->nparts = n;
  return HOIST_OK;
}
