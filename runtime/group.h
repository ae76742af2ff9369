/* group.h — the ranks of a group (hoist_group, group.c): what the loader
 * asks of them beyond hoist.h.  Exchanges are collective: every rank makes
 * the same calls in the same order.  Not installed; nothing here is
 * exported. */
#ifndef HOIST_GROUP_H
#define HOIST_GROUP_H

#include "internal.h"

#include <uv.h>

#include <stddef.h>
#include <stdint.h>

/* The bytes of an NCCL unique id (ncclUniqueId). */
#define HOIST_NCCL_ID_BYTES 128

/* Every rank contributes len bytes at mine (len may differ between
 * ranks); *all (malloc'd, the caller frees) receives every rank's
 * contribution in rank order, each with its length in lens[r] (lens has
 * world entries; *offs, malloc'd too, where each starts in *all).  Blocks
 * until every rank contributed: a rank lost, or a failed group, is its
 * status (HOIST_GROUP_LOST ...) with the group's detail.  Exchanges are
 * not interrupted by a stop (hoist__group_stop): they are how ranks learn
 * why one stopped. */
int hoist__group_allgather(hoist_group *g, const void *mine, uint64_t len, unsigned char **all,
                           uint64_t **offs, uint64_t **lens);

/* Copies len bytes at buf on rank root into buf on every rank (an
 * allgather where only root contributes; len is the same on every rank). */
int hoist__group_bcast(hoist_group *g, int root, void *buf, uint64_t len);

/* The flag a load polls between chunks (hoist_load_options.cancel's
 * role): set when this rank's user cancel was seen, when another rank
 * stopped its load, or when the group failed.  Valid while g is open. */
const volatile int *hoist__group_stop_flag(const hoist_group *g);

/* A load starts on this rank: clears the stop flag of the previous one and
 * watches user_cancel (may be NULL) from the group's thread, which stops
 * every rank when it becomes non-zero.  A failed group returns its status
 * at once.  hoist__group_load_end stops watching. */
int hoist__group_load_begin(hoist_group *g, const volatile int *user_cancel);
void hoist__group_load_end(hoist_group *g);

/* Tells every rank to stop its load at the next chunk (this rank failed). */
void hoist__group_stop(hoist_group *g);
/* Whether this rank's stop flag was set by another rank (its own load then
 * stopped because of that rank, not on its own). */
int hoist__group_stopped_by_peer(const hoist_group *g);
/* The rank that stopped the current load (-1: none). */
int hoist__group_stop_origin(const hoist_group *g);

/* The group's failure (0 when it has none), with its detail recorded as
 * the calling thread's error when it has one. */
int hoist__group_failure(hoist_group *g);

/* Waits at most seconds for the group to fail (another rank is telling
 * it why it stopped this one); its failure as hoist__group_failure, or
 * HOIST_OK when none came. */
int hoist__group_wait_failure(hoist_group *g, double seconds);

/* Marks the group failed with status and a detail (an NCCL error), and
 * tells the other ranks. */
void hoist__group_fail(hoist_group *g, int status, const char *fmt, ...) HOIST_PRINTF(3, 4);

/* The liveness timeout in seconds (what a collective may wait). */
double hoist__group_timeout(const hoist_group *g);

/* ---- What the group keeps for NCCL (nccl_group.c fills it; group.c,
 * below it, only frees it through the functions stored there). */

struct hoist__nccl;

/* Ranks of one process (hoist_group_create_local) share a local set: the
 * devices they asked for and the communicators made for them together.
 * Counted by its ranks; the last to close frees it, and with free_comm any
 * communicator no rank took. */
typedef struct hoist__local_set {
  uv_mutex_t lock;
  uv_cond_t cond;
  int n, refs, arrived, done, status;
  char msg[HOIST_ERROR_MAX];
  int *devices;
  struct hoist__nccl **comms;
  void (*free_comm)(struct hoist__nccl *c);
} hoist__local_set;

/* A rank's NCCL state: its communicator, and what closes it when the group
 * closes (set with it). */
typedef struct hoist__group_nccl_state {
  struct hoist__nccl *comm;
  void (*release)(hoist_group *g);
} hoist__group_nccl_state;

/* g's NCCL state, and in *local its local set (NULL for ranks of separate
 * processes). */
hoist__group_nccl_state *hoist__group_nccl_state_of(hoist_group *g, hoist__local_set **local);

/* The NCCL communicator of this rank on CUDA device `device` (an opaque
 * hoist__nccl, nccl_lib.h), made at the first call: rank 0 makes a unique id
 * and sends it over the group (ranks of one process made by
 * hoist_group_create_local make theirs together with ncclCommInitAll).
 * HOIST_NO_NCCL when the library cannot be loaded. */
int hoist__group_nccl(hoist_group *g, hoist_runtime *rt, int device, struct hoist__nccl **out);

#endif /* HOIST_GROUP_H */
