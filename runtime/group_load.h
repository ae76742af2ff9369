/* group_load.h — a load with ranks (hoist_load_options.group): the votes
 * the loader takes at each step so that every rank goes on or stops
 * together, the shard plan of this rank, and the completion of replicated
 * components by a collective.  load.c calls these at its steps; with no
 * group every call is a no-op that returns the status it was given.  Not
 * installed; nothing here is exported. */
#ifndef HOIST_GROUP_LOAD_H
#define HOIST_GROUP_LOAD_H

#include "group.h"
#include "placement.h"
#include "shard.h"

typedef struct hoist__group_load {
  hoist_group *g;         /* NULL: a load alone */
  uint32_t rank, world;   /* 0 and 1 alone */
  int agreed;             /* the last failure is known to every rank */
  hoist__shard_plan plan; /* hoist_load_options.shard for this rank */
} hoist__group_load;

/* Starts a load on rank gl->g (o->group): the stop flag, the shard plan.
 * *cancel is what the engine polls: o->cancel alone, the group's flag with
 * ranks. */
int hoist__group_load_start(hoist_runtime *rt, const hoist_load_options *o,
                            hoist__group_load *gl, const volatile int **cancel);

/* The shard table of component c before it is placed (fsdp: it is
 * FSDP-marked). */
int hoist__group_load_shards(hoist_runtime *rt, hoist__group_load *gl, loaded_component *c,
                             int fsdp);

/* The plan vote, after the plan and the preflight: every rank's status
 * (the first failure wins on every rank), then every rank's plan compared
 * with rank 0's: HOIST_GROUP_MISMATCH naming the first difference.  Also
 * checks the shard plan's rules matched (status then fails). */
int hoist__group_load_plan(hoist_runtime *rt, hoist__group_load *gl, int status,
                           const hoist_load_options *o, const loaded_component *cs, size_t n,
                           const hoist_dtype *target);

/* The admission vote of component c: status (a failure before it), and
 * *on_device this rank's decision; afterwards *on_device is every rank's
 * (false when any rank refused) and a refusal with must_fit fails every
 * rank with HOIST_ADMISSION naming the refusing rank (failure filled from
 * its numbers).  Also sets c's own range when it is replicated. */
int hoist__group_load_admit(hoist_runtime *rt, hoist__group_load *gl, int status,
                            loaded_component *c, bool *on_device, bool must_fit, uint64_t need,
                            uint64_t free_bytes, hoist_load_failure *failure);

/* After c's upload: a failed rank stops the others, every rank's status
 * is voted, and a replicated component is completed by the collective
 * (NCCL on cuda, the group's connections on host). */
int hoist__group_load_uploaded(hoist_runtime *rt, hoist__group_load *gl, int status,
                               loaded_component *c);

/* The end of the load: a failure not voted by every rank fails the group
 * (so no rank waits for this one), or, when another rank stopped this one,
 * becomes that rank's failure.  Returns the load's status. */
int hoist__group_load_finish(hoist_runtime *rt, hoist__group_load *gl, int status);

#endif /* HOIST_GROUP_LOAD_H */
