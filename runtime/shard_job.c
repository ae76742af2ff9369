/* shard_job.c — the chunks of a tensor part that is several runs of its
 * file (shard_job.h).
 *
 * A part split on dimension d > 0 is one run per index of the dimensions
 * before d, each `piece_bytes` long and `stride` bytes from the one before.
 * The runs are gathered, in order, into chunks of at most the chunk size:
 * each run (or its piece that fits) is a segment at its place in the
 * pinned slot, so the slot holds the local part's bytes contiguously and
 * one copy (and, converting, one kernel) lands them at the part's place in
 * the arena.  Chunk sizes are multiples of the source element size, and so
 * are the runs, so a conversion never cuts an element. */
#include "shard_job.h"

#include "shard.h"

bool hoist__shard_owns(const loaded_component *c, const placed_tensor *pt) {
  return c->own_end == 0 || (pt->off >= c->own_begin && pt->off < c->own_end);
}

bool hoist__shard_strided(const placed_tensor *pt) {
  return pt->shard != NULL && pt->shard->cut.pieces > 1;
}

uint64_t hoist__shard_job_segments(const placed_tensor *pt, uint64_t step) {
  const hoist__shard_cut *cut = &pt->shard->cut;
  /* Every chunk boundary splits at most one run. */
  return cut->pieces + pt->t->nbytes / step + 1;
}

void hoist__shard_job_add(upload_job *job, const placed_tensor *pt, uint32_t i, uint64_t dst,
                          uint64_t sb, uint64_t db, uint64_t step) {
  const hoist__shard_cut *cut = &pt->shard->cut;
  const uint64_t base = hoist_file_data_offset(job->files[pt->file].file) +
                        pt->shard->global->begin + cut->first;
  upload_chunk *ch = NULL;
  uint64_t done = 0; /* source bytes of the part already in chunks */
  for (uint64_t k = 0; k < cut->pieces; k++) {
    for (uint64_t off = 0; off < cut->piece_bytes;) {
      if (ch == NULL) {
        ch = &job->chunks[job->nchunks++];
        *ch = (upload_chunk){.dst = dst + done / sb * db,
                             .first_seg = (uint32_t)job->nsegs,
                             .from = pt->t->dtype,
                             .to = pt->dev.dtype};
      }
      const uint64_t left = cut->piece_bytes - off, room = step - ch->len;
      const uint64_t take = left < room ? left : room;
      job->segs[job->nsegs++] = (upload_segment){pt->file, (uint32_t)ch->len,
                                                 base + k * cut->stride + off, take, i, done};
      ch->len += take;
      ch->dst_len = ch->len / sb * db;
      ch->nseg++;
      done += take;
      off += take;
      if (ch->len == step) ch = NULL;
    }
  }
}
