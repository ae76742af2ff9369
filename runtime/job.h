/* job.h — a component's upload job: the chunk list the engine runs, cut
 * from the component's placement.  Not installed; nothing here is
 * exported. */
#ifndef HOIST_JOB_H
#define HOIST_JOB_H

#include "engine.h"
#include "placement.h"

/* Builds the chunk list of job (its component, files and to_host set) from
 * c's placed tensors, in placement order, which is the order chunks are
 * issued in.  Each tensor lands in c's arenas, at its offset in c's host
 * copy when job->to_host, or at its own addr when c->caller_buffers.  A
 * plain tensor is cut into chunks of at most chunk_bytes; one whose device
 * dtype differs from its file's into chunks of at most min(convert_chunk,
 * chunk_bytes) source bytes at element boundaries.  A tensor smaller than
 * half a chunk shares a chunk with the small tensors of the same
 * conversion (or plain copies) placed right before it in the same arena;
 * tensors of different arenas never share a chunk, even when the arenas
 * happen to be adjacent.  In the caller's buffers every tensor has chunks
 * of its own (two buffers may be two allocations, and nothing between
 * them is ever written).  On failure
 * the job holds no chunk list. */
int hoist__upload_job_build(hoist_runtime *rt, upload_job *job, const loaded_component *c,
                     uint64_t chunk_bytes, uint64_t convert_chunk);
/* Frees the chunk list (and parts) of job; its files are the caller's. */
void hoist__upload_job_free(upload_job *job);

/* Joins the jobs parts[0..n) (built, files open) into one job out, whose
 * chunks run in the parts' order with progress per part: out takes their
 * files, chunks and segments (each part keeps nothing to free but its
 * content check, which out calls for the part's chunks and the part's
 * owner closes after the run); the caller sets out's other fields.  On
 * failure the parts are as they were. */
int hoist__upload_job_concat(hoist_runtime *rt, upload_job *parts, size_t n, upload_job *out);

#endif /* HOIST_JOB_H */
