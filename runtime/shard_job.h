/* shard_job.h — what the job builder (job.c) asks when ranks load
 * together: whether this rank reads a placed tensor itself, and the chunks
 * of a tensor part that lies in the file as several runs.  Not installed;
 * nothing here is exported. */
#ifndef HOIST_SHARD_JOB_H
#define HOIST_SHARD_JOB_H

#include "engine.h"
#include "placement.h"

/* Whether this rank reads pt itself: always, except in a component
 * replicated over the ranks, where each reads the tensors of its own span
 * range (c->own_begin, c->own_end) and the others' come by a collective. */
bool hoist__shard_owns(const loaded_component *c, const placed_tensor *pt);

/* Whether pt is a part made of several runs of its file (a split on a
 * dimension past the first). */
bool hoist__shard_strided(const placed_tensor *pt);

/* The most segments hoist__shard_job_add makes of pt with chunks of step
 * source bytes. */
uint64_t hoist__shard_job_segments(const placed_tensor *pt, uint64_t step);

/* Appends the chunks of strided part pt (tensor i of the component) to
 * job: its runs gathered, in order, into chunks of at most step source
 * bytes landing contiguously from dst (sb source and db target bytes per
 * element: 1 and 1 for a plain copy). */
void hoist__shard_job_add(upload_job *job, const placed_tensor *pt, uint32_t i, uint64_t dst,
                          uint64_t sb, uint64_t db, uint64_t step);

#endif /* HOIST_SHARD_JOB_H */
