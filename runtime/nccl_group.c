/* nccl_group.c — a group's NCCL communicator (group.h,
 * hoist__group_nccl).
 *
 * Ranks in separate processes: rank 0 makes a unique id, the group's
 * connections carry it to every rank, and each makes its communicator
 * (non-blocking, so a rank that never comes costs a timeout, not a hang).
 * Ranks of one process (hoist_group_create_local) share a local set: the
 * last rank to ask makes every communicator at once with ncclCommInitAll,
 * and the others wait for it (while their group is not stopped). */
#include "group.h"
#include "nccl_lib.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct hoist__local_set {
  uv_mutex_t lock;
  uv_cond_t cond;
  int n, refs, arrived, done, status;
  char msg[HOIST_ERROR_MAX];
  int *devices;
  hoist__nccl **comms;
} hoist__local_set;

struct hoist__nccl **hoist__group_nccl_slot(hoist_group *g, hoist__local_set ***local);
void hoist__group_nccl_release(hoist_group *g);
int hoist__group_local_attach(hoist_group **groups, int n);

static void local_unref(hoist__local_set *s) {
  uv_mutex_lock(&s->lock);
  const int last = --s->refs == 0;
  uv_mutex_unlock(&s->lock);
  if (!last) return;
  uv_cond_destroy(&s->cond);
  uv_mutex_destroy(&s->lock);
  free(s->devices);
  free(s->comms);
  free(s);
}

void hoist__group_nccl_release(hoist_group *g) {
  hoist__local_set **local = NULL;
  hoist__nccl **comm = hoist__group_nccl_slot(g, &local);
  hoist__nccl_free(*comm, hoist__group_failure(g) != HOIST_OK);
  *comm = NULL;
  if (*local != NULL) local_unref(*local);
  *local = NULL;
}

int hoist__group_local_attach(hoist_group **groups, int n) {
  hoist__local_set *s = calloc(1, sizeof *s);
  if (s == NULL || uv_mutex_init(&s->lock) != 0) {
    free(s);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for a group");
  }
  s->devices = calloc((size_t)n, sizeof *s->devices);
  s->comms = calloc((size_t)n, sizeof *s->comms);
  if (s->devices == NULL || s->comms == NULL || uv_cond_init(&s->cond) != 0) {
    free(s->devices);
    free(s->comms);
    uv_mutex_destroy(&s->lock);
    free(s);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for a group");
  }
  s->n = s->refs = n;
  for (int i = 0; i < n; i++) {
    hoist__local_set **local = NULL;
    (void)hoist__group_nccl_slot(groups[i], &local);
    *local = s;
  }
  return HOIST_OK;
}

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
    if (rc != HOIST_OK) snprintf(s->msg, sizeof s->msg, "%s", hoist__thread_last_error());
    s->done = 1;
    uv_cond_broadcast(&s->cond);
  }
  while (!s->done && !*stop) (void)uv_cond_timedwait(&s->cond, &s->lock, 50 * 1000 * 1000);
  const int done = s->done, status = s->status;
  char msg[HOIST_ERROR_MAX];
  snprintf(msg, sizeof msg, "%s", s->msg);
  if (done && status == HOIST_OK) {
    *out = s->comms[rank];
    s->comms[rank] = NULL;
  }
  uv_mutex_unlock(&s->lock);
  if (!done) return hoist__fail(NULL, HOIST_GROUP_LOST, "nccl: stopped waiting for the other "
                                                        "ranks of this process");
  return status == HOIST_OK ? HOIST_OK : hoist__fail(NULL, status, "%s", msg);
}

int hoist__group_nccl(hoist_group *g, hoist_runtime *rt, int device, hoist__nccl **out) {
  hoist__local_set **local = NULL;
  hoist__nccl **comm = hoist__group_nccl_slot(g, &local);
  *out = NULL;
  if (*comm != NULL) {
    *out = *comm;
    return HOIST_OK;
  }
  int rc = hoist__nccl_load(NULL, NULL);
  if (rc != HOIST_OK) return rc;
  if (*local != NULL) {
    rc = local_comm(g, *local, device, comm);
  } else {
    unsigned char id[HOIST_NCCL_ID_BYTES];
    memset(id, 0, sizeof id);
    /* Rank 0's failure to make an id reaches the others as an empty id. */
    int made = hoist_group_rank(g) == 0 ? hoist__nccl_unique_id(id, sizeof id) : HOIST_OK;
    rc = hoist__group_bcast(g, 0, id, sizeof id);
    unsigned char zero[HOIST_NCCL_ID_BYTES] = {0};
    if (rc == HOIST_OK && made != HOIST_OK) rc = made;
    else if (rc == HOIST_OK && memcmp(id, zero, sizeof id) == 0)
      rc = hoist__fail(rt, HOIST_NO_NCCL, "nccl: rank 0 could not make a unique id");
    if (rc == HOIST_OK)
      rc = hoist__nccl_init_rank(device, hoist_group_world_size(g), hoist_group_rank(g), id,
                                 sizeof id, hoist__group_timeout(g), hoist__group_stop_flag(g),
                                 comm);
  }
  if (rc == HOIST_OK) {
    *out = *comm;
    hoist__log(rt, HOIST_LOG_INFO, "nccl: rank %d of %d on cuda:%d ready", hoist_group_rank(g),
               hoist_group_world_size(g), device);
  }
  return rc;
}
