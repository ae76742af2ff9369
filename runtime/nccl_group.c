/* nccl_group.c — a group's NCCL communicator (group.h,
 * hoist__group_nccl).
 *
 * Ranks in separate processes: rank 0 makes a unique id, the group's
 * connections carry it to every rank, and each makes its communicator
 * (non-blocking, so a rank that never comes costs a timeout, not a hang).
 * Ranks of one process (hoist_group_create_local) share a local set: the
 * last rank to ask makes every communicator at once with ncclCommInitAll,
 * and the others wait for it (while their group is not stopped).  The
 * communicator is freed when the group closes (aborted when the group
 * failed), through the release function stored with it. */
#include "group.h"
#include "nccl_lib.h"

#include <stdlib.h>
#include <string.h>

static void release(hoist_group *g) {
  hoist__local_set *local = NULL;
  hoist__group_nccl_state *st = hoist__group_nccl_state_of(g, &local);
  hoist__nccl_free(st->comm, hoist__group_failure(g) != HOIST_OK);
  st->comm = NULL;
}

static void free_comm(hoist__nccl *c) { hoist__nccl_free(c, 0); }

/* A rank of a local set: the communicators are made by the last to come. */
static int local_comm(hoist_group *g, hoist__local_set *s, int device, hoist__nccl **out) {
  const int rank = hoist_group_rank(g);
  const volatile int *stop = hoist__group_stop_flag(g);
  uv_mutex_lock(&s->lock);
  s->devices[rank] = device;
  if (++s->arrived == s->n) {
    uv_mutex_unlock(&s->lock);
    const int rc = hoist__nccl_init_all(s->n, s->devices, s->comms);
    uv_mutex_lock(&s->lock);
    s->status = rc;
    s->free_comm = free_comm;
    if (rc != HOIST_OK) snprintf(s->msg, sizeof s->msg, "%s", hoist__thread_last_error());
    s->done = 1;
    uv_cond_broadcast(&s->cond);
  }
  while (!s->done && !__atomic_load_n(stop, __ATOMIC_RELAXED))
    (void)uv_cond_timedwait(&s->cond, &s->lock, 50 * 1000 * 1000);
  const int done = s->done, status = s->status;
  char msg[HOIST_ERROR_MAX];
  snprintf(msg, sizeof msg, "%s", s->msg);
  if (done && status == HOIST_OK) {
    *out = s->comms[rank];
    s->comms[rank] = NULL;
  }
  uv_mutex_unlock(&s->lock);
  if (!done)
    return hoist__fail(NULL, HOIST_GROUP_LOST,
                       "nccl: stopped waiting for the other ranks of this process");
  return status == HOIST_OK ? HOIST_OK : hoist__fail(NULL, status, "%s", msg);
}

/* Ranks of separate processes: rank 0's unique id over the group (an empty
 * one tells the others rank 0 could not make one), then this rank's
 * communicator. */
static int process_comm(hoist_group *g, hoist_runtime *rt, int device, hoist__nccl **out) {
  unsigned char id[HOIST_NCCL_ID_BYTES], zero[HOIST_NCCL_ID_BYTES] = {0};
  memset(id, 0, sizeof id);
  const int made = hoist_group_rank(g) == 0 ? hoist__nccl_unique_id(id, sizeof id) : HOIST_OK;
  int rc = hoist__group_bcast(g, 0, id, sizeof id);
  if (rc == HOIST_OK && made != HOIST_OK) rc = made;
  else if (rc == HOIST_OK && memcmp(id, zero, sizeof id) == 0)
    rc = hoist__fail(rt, HOIST_NO_NCCL, "nccl: rank 0 could not make a unique id");
  if (rc == HOIST_OK)
    rc = hoist__nccl_init_rank(device, hoist_group_world_size(g), hoist_group_rank(g), id,
                               sizeof id, hoist__group_timeout(g), hoist__group_stop_flag(g), out);
  return rc;
}

int hoist__group_nccl(hoist_group *g, hoist_runtime *rt, int device, hoist__nccl **out) {
  hoist__local_set *local = NULL;
  hoist__group_nccl_state *st = hoist__group_nccl_state_of(g, &local);
  *out = NULL;
  if (st->comm != NULL) {
    *out = st->comm;
    return HOIST_OK;
  }
  int rc = hoist__nccl_load(NULL, NULL);
  if (rc == HOIST_OK)
    rc = local != NULL ? local_comm(g, local, device, &st->comm)
                       : process_comm(g, rt, device, &st->comm);
  if (rc != HOIST_OK) return rc;
  st->release = release;
  *out = st->comm;
  hoist__log(rt, HOIST_LOG_INFO, "nccl: rank %d of %d on cuda:%d ready", hoist_group_rank(g),
             hoist_group_world_size(g), device);
  return HOIST_OK;
}
