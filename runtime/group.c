/* group.c — the ranks of a group (hoist.h "Groups", group.h): the
 * rendezvous, the exchanges, stops and failures, over TCP.
 *
 * Rank 0 is the hub: it listens, every other rank connects to it and
 * presents a hello (version, rank, world size, the rendezvous token).  When
 * all W - 1 have joined, the hub welcomes them all, or refuses them all
 * with the reason (two ranks with one number, different world sizes).
 *
 * Frames: a 24-byte header (magic, type, sequence, payload length; little
 * endian) and the payload.  An exchange is a CONTRIB from every rank to the
 * hub and one RESULT from the hub to every rank with all contributions; a
 * rank that stops its load sends STOP, which the hub forwards; the hub
 * sends FAIL when it loses a rank; a rank that closes its group says BYE,
 * so that leaving after the last exchange fails nobody, while an exchange
 * still waiting for it fails.  A thread per group reads every
 * connection, sends a heartbeat every timeout / 4 (at most every second)
 * and declares a rank lost when nothing came from it for the timeout, or
 * when its connection closed: a killed rank's connection closes at once,
 * a frozen one falls silent.  So no rank ever waits for a dead one longer
 * than the timeout.
 *
 * The main thread sends its own frames (contributions, results) under the
 * connection's send lock; the group's thread only reads, and sends
 * heartbeats and forwards when the lock is free. */
#include "group.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define GROUP_MAGIC 0x50524748u /* "HGRP" */
#define GROUP_VERSION 1u
#define HEADER_BYTES 24u
#define TOKEN_BYTES 16u
#define MAX_FRAME (UINT64_C(1) << 40)
#define DEFAULT_TIMEOUT 60.0

enum { F_HELLO = 1, F_WELCOME, F_REFUSE, F_BEAT, F_CONTRIB, F_RESULT, F_STOP, F_FAIL, F_BYE };

/* One connection: to the hub (on a rank > 0) or to rank r (on the hub). */
typedef struct peer_link {
  int fd;
  int rank;
  uv_mutex_t send_lock;
  double heard;           /* when bytes last came */
  unsigned char hdr[HEADER_BYTES];
  uint64_t got;           /* bytes of the frame being read */
  unsigned char *payload; /* the frame's payload while it is read */
  /* The last contribution (hub) or result (rank) received, under g->lock. */
  int have;
  uint64_t seq;
  unsigned char *data;
  uint64_t len;
  int left; /* it closed its group (BYE): its end of file is no failure */
} peer_link;

struct hoist_group {
  int rank, world, local_rank;
  double timeout;
  peer_link *links; /* hub: links[r] for r in 1..world-1; rank: links[0] is the hub */
  int nlinks;
  uv_thread_t thread;
  int thread_started;
  int wake[2];
  uv_mutex_t lock;
  uv_cond_t cond;
  /* Under lock. */
  int failed;
  char fail_msg[HOIST_ERROR_MAX];
  int stopping;      /* the thread should end */
  int stop_origin;   /* rank that stopped the load, -1: none */
  const volatile int *user_cancel;
  uint64_t seq;      /* the next exchange */
  volatile int stop; /* the load's cancel flag; written atomically (readers
                        poll it as hoist_load_options.cancel is polled) */
  hoist__group_nccl_state nccl; /* filled by nccl_group.c */
  hoist__local_set *local;      /* ranks of one process: shared, counted */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* ---- Sending */

/* Writes all of buf to fd (non-blocking); fails when no byte could be
 * written for timeout seconds (a large frame may take longer in all). */
static int write_all(int fd, const void *buf, uint64_t len, double timeout) {
  const unsigned char *p = buf;
  double deadline = now_s() + timeout;
  while (len > 0) {
    ssize_t n = send(fd, p, len > (1u << 30) ? (1u << 30) : (size_t)len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (uint64_t)n;
      deadline = now_s() + timeout;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    const double left = deadline - now_s();
    if (left <= 0) return -2;
    struct pollfd pfd = {fd, POLLOUT, 0};
    (void)poll(&pfd, 1, (int)(left * 1000) + 1);
  }
  return 0;
}

/* Sends one frame on l; blocking (within the timeout) unless try_only,
 * when a busy connection is skipped (returns 1). */
static int send_frame(hoist_group *g, peer_link *l, uint32_t type, uint64_t seq, const void *a,
                      uint64_t alen, const void *b, uint64_t blen, int try_only) {
  unsigned char h[HEADER_BYTES];
  put_u32(h, GROUP_MAGIC);
  put_u32(h + 4, type);
  put_u64(h + 8, seq);
  put_u64(h + 16, alen + blen);
  if (try_only) {
    if (uv_mutex_trylock(&l->send_lock) != 0) return 1;
  } else {
    uv_mutex_lock(&l->send_lock);
  }
  int rc = l->fd < 0 ? -1 : write_all(l->fd, h, sizeof h, g->timeout);
  if (rc == 0 && alen > 0) rc = write_all(l->fd, a, alen, g->timeout);
  if (rc == 0 && blen > 0) rc = write_all(l->fd, b, blen, g->timeout);
  uv_mutex_unlock(&l->send_lock);
  return rc;
}

/* ---- Failure */

static void wake_thread(hoist_group *g) {
  char c = 1;
  if (g->wake[1] >= 0) (void)!write(g->wake[1], &c, 1);
}

/* Marks g failed (the first failure wins); lock held.  The hub tells the
 * other ranks. */
static void fail_locked(hoist_group *g, int status, const char *msg) {
  if (g->failed) return;
  g->failed = status;
  snprintf(g->fail_msg, sizeof g->fail_msg, "%s", msg);
  __atomic_store_n(&g->stop, 1, __ATOMIC_RELAXED);
  uv_cond_broadcast(&g->cond);
}

static void tell_failure(hoist_group *g, int status, const char *msg) {
  if (g->rank != 0) return;
  unsigned char st[4];
  put_u32(st, (uint32_t)status);
  for (int i = 0; i < g->nlinks; i++)
    (void)send_frame(g, &g->links[i], F_FAIL, 0, st, 4, msg, strlen(msg), 1);
}

void hoist__group_fail(hoist_group *g, int status, const char *fmt, ...) {
  char msg[HOIST_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  uv_mutex_lock(&g->lock);
  const int first = !g->failed;
  fail_locked(g, status, msg);
  uv_mutex_unlock(&g->lock);
  if (!first) return;
  if (g->rank == 0) {
    tell_failure(g, status, msg);
  } else {
    unsigned char st[4];
    put_u32(st, (uint32_t)status);
    (void)send_frame(g, &g->links[0], F_FAIL, 0, st, 4, msg, strlen(msg), 1);
  }
}

int hoist__group_failure(hoist_group *g) {
  uv_mutex_lock(&g->lock);
  const int status = g->failed;
  char msg[HOIST_ERROR_MAX];
  snprintf(msg, sizeof msg, "%s", g->fail_msg);
  uv_mutex_unlock(&g->lock);
  return status != 0 ? hoist__fail(NULL, status, "%s", msg) : HOIST_OK;
}

int hoist__group_wait_failure(hoist_group *g, double seconds) {
  const double deadline = now_s() + seconds;
  uv_mutex_lock(&g->lock);
  while (!g->failed && now_s() < deadline)
    (void)uv_cond_timedwait(&g->cond, &g->lock, 20 * 1000 * 1000);
  uv_mutex_unlock(&g->lock);
  return hoist__group_failure(g);
}

/* A connection is gone or silent: the group fails; the hub tells the
 * others which rank it lost. */
static void lose_link(hoist_group *g, peer_link *l, const char *why) {
  char msg[HOIST_ERROR_MAX];
  snprintf(msg, sizeof msg, "group: rank %d %s", l->rank, why);
  uv_mutex_lock(&g->lock);
  const int first = !g->failed;
  fail_locked(g, HOIST_GROUP_LOST, msg);
  uv_mutex_unlock(&g->lock);
  if (l->fd >= 0) shutdown(l->fd, SHUT_RDWR);
  if (first) tell_failure(g, HOIST_GROUP_LOST, msg);
}

/* ---- Receiving (the group's thread) */

/* A whole frame arrived on l. */
static void on_frame(hoist_group *g, peer_link *l, uint32_t type, uint64_t seq, unsigned char *payload,
                     uint64_t len) {
  if (type == F_CONTRIB || type == F_RESULT) {
    uv_mutex_lock(&g->lock);
    free(l->data);
    l->data = payload;
    l->len = len;
    l->seq = seq;
    l->have = 1;
    uv_cond_broadcast(&g->cond);
    uv_mutex_unlock(&g->lock);
    return;
  }
  if (type == F_BYE) {
    uv_mutex_lock(&g->lock);
    l->left = 1;
    uv_cond_broadcast(&g->cond);
    uv_mutex_unlock(&g->lock);
  } else if (type == F_STOP && len >= 4) {
    const int origin = (int)get_u32(payload);
    uv_mutex_lock(&g->lock);
    const int first = g->stop_origin < 0;
    if (first) g->stop_origin = origin;
    __atomic_store_n(&g->stop, 1, __ATOMIC_RELAXED);
    uv_mutex_unlock(&g->lock);
    if (first && g->rank == 0)
      for (int i = 0; i < g->nlinks; i++)
        if (&g->links[i] != l) (void)send_frame(g, &g->links[i], F_STOP, 0, payload, 4, NULL, 0, 0);
  } else if (type == F_FAIL && len >= 4) {
    char msg[HOIST_ERROR_MAX];
    const uint64_t n = len - 4 < sizeof msg - 1 ? len - 4 : sizeof msg - 1;
    memcpy(msg, payload + 4, n);
    msg[n] = '\0';
    const int status = (int)get_u32(payload);
    uv_mutex_lock(&g->lock);
    const int first = !g->failed;
    fail_locked(g, status < 0 ? status : HOIST_GROUP_LOST, msg);
    uv_mutex_unlock(&g->lock);
    if (first) tell_failure(g, status < 0 ? status : HOIST_GROUP_LOST, msg);
  }
  free(payload);
}

/* Reads what is there on l; false when the connection is gone. */
static bool read_link(hoist_group *g, peer_link *l) {
  for (;;) {
    unsigned char *dst;
    uint64_t want;
    if (l->got < HEADER_BYTES) {
      dst = l->hdr + l->got;
      want = HEADER_BYTES - l->got;
    } else {
      dst = l->payload + (l->got - HEADER_BYTES);
      want = get_u64(l->hdr + 16) - (l->got - HEADER_BYTES);
    }
    ssize_t n = want > 0 ? recv(l->fd, dst, want > (1u << 30) ? (1u << 30) : (size_t)want, 0) : 0;
    if (want > 0 && n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    l->heard = now_s();
    l->got += (uint64_t)n;
    if (l->got == HEADER_BYTES) {
      const uint64_t len = get_u64(l->hdr + 16);
      if (get_u32(l->hdr) != GROUP_MAGIC || len > MAX_FRAME) return false;
      l->payload = malloc(len > 0 ? len : 1);
      if (l->payload == NULL) return false;
    }
    if (l->got >= HEADER_BYTES && l->got - HEADER_BYTES == get_u64(l->hdr + 16)) {
      unsigned char *payload = l->payload;
      l->payload = NULL;
      l->got = 0;
      on_frame(g, l, get_u32(l->hdr + 4), get_u64(l->hdr + 8), payload, get_u64(l->hdr + 16));
    }
  }
}

/* The user's cancel flag is set: this rank stops, and so does every other. */
static void stop_all(hoist_group *g) {
  uv_mutex_lock(&g->lock);
  const int first = g->stop_origin < 0;
  if (first) g->stop_origin = g->rank;
  __atomic_store_n(&g->stop, 1, __ATOMIC_RELAXED);
  uv_mutex_unlock(&g->lock);
  if (!first) return;
  unsigned char origin[4];
  put_u32(origin, (uint32_t)g->rank);
  for (int i = 0; i < g->nlinks; i++)
    (void)send_frame(g, &g->links[i], F_STOP, 0, origin, 4, NULL, 0, 0);
}

/* Closes l's descriptor under its send lock (the loading thread may be
 * writing to it). */
static void close_link(peer_link *l) {
  uv_mutex_lock(&l->send_lock);
  close(l->fd);
  l->fd = -1;
  uv_mutex_unlock(&l->send_lock);
}

/* Whether the thread should end; stops every rank when the user's cancel
 * flag of the current load was set. */
static bool thread_should_end(hoist_group *g) {
  uv_mutex_lock(&g->lock);
  const int stopping = g->stopping;
  const bool cancel = g->user_cancel != NULL &&
                      __atomic_load_n(g->user_cancel, __ATOMIC_RELAXED) && g->stop_origin < 0;
  uv_mutex_unlock(&g->lock);
  if (!stopping && cancel) stop_all(g);
  return stopping;
}

/* A heartbeat on every connection (skipped where a frame is being sent:
 * its bytes show the rank alive), and the links silent for the timeout
 * lost. */
static void beat_and_check(hoist_group *g, double now, bool beat) {
  for (int i = 0; i < g->nlinks; i++) {
    peer_link *l = &g->links[i];
    if (beat && l->fd >= 0) (void)send_frame(g, l, F_BEAT, 0, NULL, 0, NULL, 0, 1);
    if (l->fd < 0 || l->left || now - l->heard <= g->timeout) continue;
    char why[96];
    snprintf(why, sizeof why, "sent nothing for %.0f s (it is stuck, or its host is gone)",
             g->timeout);
    lose_link(g, l, why);
    close_link(l);
  }
}

/* Reads every connection poll found ready; one that closed without saying
 * BYE is a lost rank. */
static void read_ready(hoist_group *g, const struct pollfd *pfd) {
  for (int i = 0; i < g->nlinks; i++) {
    peer_link *l = &g->links[i];
    if (l->fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    if (read_link(g, l)) continue;
    if (!l->left) lose_link(g, l, "closed its connection (it exited or was killed)");
    close_link(l);
  }
}

static void group_thread(void *arg) {
  hoist_group *g = arg;
  const double beat = g->timeout / 4 < 1.0 ? g->timeout / 4 : 1.0;
  double last_beat = 0;
  struct pollfd *pfd = calloc((size_t)g->nlinks + 1, sizeof *pfd);
  if (pfd == NULL) {
    uv_mutex_lock(&g->lock);
    fail_locked(g, HOIST_NO_MEMORY, "group: out of memory in its thread");
    uv_mutex_unlock(&g->lock);
    return;
  }
  while (!thread_should_end(g)) {
    const double now = now_s();
    const bool beat_now = now - last_beat >= beat;
    beat_and_check(g, now, beat_now);
    if (beat_now) last_beat = now;
    for (int i = 0; i < g->nlinks; i++) pfd[i] = (struct pollfd){g->links[i].fd, POLLIN, 0};
    pfd[g->nlinks] = (struct pollfd){g->wake[0], POLLIN, 0};
    if (poll(pfd, (nfds_t)g->nlinks + 1, 20) < 0 && errno != EINTR) break;
    if (pfd[g->nlinks].revents & POLLIN) {
      char buf[64];
      (void)!read(g->wake[0], buf, sizeof buf);
    }
    read_ready(g, pfd);
  }
  free(pfd);
}

/* ---- Exchanges */

/* Waits (lock held) until l holds frame seq, or the group fails, or l's
 * rank left without sending it (the group fails then: everyone waits for
 * every rank). */
static int wait_frame(hoist_group *g, peer_link *l, uint64_t seq) {
  while (!(l->have && l->seq == seq) && !g->failed && !l->left) uv_cond_wait(&g->cond, &g->lock);
  if (l->have && l->seq == seq) return 0; /* a frame that came before a close counts */
  if (!g->failed) {
    char msg[128];
    snprintf(msg, sizeof msg, "group: rank %d left the group during a load", l->rank);
    fail_locked(g, HOIST_GROUP_LOST, msg);
  }
  return g->failed;
}

/* The hub's result frame: every rank's length and bytes, in rank order. */
static int hub_exchange(hoist_group *g, const void *mine, uint64_t len, unsigned char **out,
                        uint64_t *out_len) {
  uv_mutex_lock(&g->lock);
  int failed = 0;
  for (int i = 0; i < g->nlinks && !failed; i++) failed = wait_frame(g, &g->links[i], g->seq);
  char msg[HOIST_ERROR_MAX];
  snprintf(msg, sizeof msg, "%s", g->fail_msg);
  uv_mutex_unlock(&g->lock);
  if (failed) {
    tell_failure(g, failed, msg);
    return hoist__group_failure(g);
  }
  uint64_t total = 8 * (uint64_t)g->world + len;
  for (int i = 0; i < g->nlinks; i++) total += g->links[i].len;
  unsigned char *res = malloc(total);
  if (res == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "group: out of memory for an exchange");
  unsigned char *p = res;
  for (int r = 0; r < g->world; r++) {
    const peer_link *l = r > 0 ? &g->links[r - 1] : NULL;
    const uint64_t n = l != NULL ? l->len : len;
    put_u64(p, n);
    if (n > 0) memcpy(p + 8, l != NULL ? l->data : mine, n);
    p += 8 + n;
  }
  uv_mutex_lock(&g->lock);
  for (int i = 0; i < g->nlinks; i++) {
    free(g->links[i].data);
    g->links[i].data = NULL;
    g->links[i].have = 0;
  }
  uv_mutex_unlock(&g->lock);
  for (int i = 0; i < g->nlinks; i++)
    if (send_frame(g, &g->links[i], F_RESULT, g->seq, res, total, NULL, 0, 0) != 0)
      lose_link(g, &g->links[i], "could not be sent the result of an exchange");
  *out = res;
  *out_len = total;
  return HOIST_OK;
}

static int rank_exchange(hoist_group *g, const void *mine, uint64_t len, unsigned char **out,
                         uint64_t *out_len) {
  peer_link *hub = &g->links[0];
  if (send_frame(g, hub, F_CONTRIB, g->seq, mine, len, NULL, 0, 0) != 0)
    lose_link(g, hub, "could not be sent this rank's contribution");
  uv_mutex_lock(&g->lock);
  const int failed = wait_frame(g, hub, g->seq);
  if (!failed) {
    *out = hub->data;
    *out_len = hub->len;
    hub->data = NULL;
    hub->have = 0;
  }
  uv_mutex_unlock(&g->lock);
  return failed ? hoist__group_failure(g) : HOIST_OK;
}

int hoist__group_allgather(hoist_group *g, const void *mine, uint64_t len, unsigned char **all,
                           uint64_t **offs, uint64_t **lens) {
  *all = NULL;
  *offs = *lens = NULL;
  unsigned char *res = NULL;
  uint64_t res_len = 0;
  int rc = HOIST_OK;
  if (g->world == 1) {
    res_len = 8 + len;
    if ((res = malloc(res_len)) == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
    put_u64(res, len);
    if (len > 0) memcpy(res + 8, mine, len);
  } else {
    rc = g->rank == 0 ? hub_exchange(g, mine, len, &res, &res_len)
                      : rank_exchange(g, mine, len, &res, &res_len);
    if (rc != HOIST_OK) return rc;
  }
  g->seq++;
  uint64_t *o = calloc((size_t)g->world, sizeof *o), *n = calloc((size_t)g->world, sizeof *n);
  if (o == NULL || n == NULL) rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  uint64_t at = 0;
  for (int r = 0; r < g->world && rc == HOIST_OK; r++) {
    if (res_len - at < 8 || res_len - at - 8 < get_u64(res + at)) {
      rc = hoist__fail(NULL, HOIST_PROTOCOL, "group: a malformed exchange result from rank 0");
      break;
    }
    n[r] = get_u64(res + at);
    o[r] = at + 8;
    at += 8 + n[r];
  }
  if (rc != HOIST_OK) {
    free(res);
    free(o);
    free(n);
    return rc;
  }
  *all = res;
  *offs = o;
  *lens = n;
  return HOIST_OK;
}

int hoist__group_bcast(hoist_group *g, int root, void *buf, uint64_t len) {
  unsigned char *all = NULL;
  uint64_t *offs = NULL, *lens = NULL;
  int rc = hoist__group_allgather(g, buf, g->rank == root ? len : 0, &all, &offs, &lens);
  if (rc == HOIST_OK && lens[root] != len)
    rc = hoist__fail(NULL, HOIST_GROUP_MISMATCH, "group: rank %d sent %llu bytes, %llu expected",
                     root, (unsigned long long)lens[root], (unsigned long long)len);
  if (rc == HOIST_OK && g->rank != root && len > 0) memcpy(buf, all + offs[root], len);
  free(all);
  free(offs);
  free(lens);
  return rc;
}

/* ---- Loads */

const volatile int *hoist__group_stop_flag(const hoist_group *g) { return &g->stop; }

int hoist__group_load_begin(hoist_group *g, const volatile int *user_cancel) {
  uv_mutex_lock(&g->lock);
  const int failed = g->failed;
  if (!failed) {
    __atomic_store_n(&g->stop, 0, __ATOMIC_RELAXED);
    g->stop_origin = -1;
    g->user_cancel = user_cancel;
  }
  uv_mutex_unlock(&g->lock);
  return failed ? hoist__group_failure(g) : HOIST_OK;
}

void hoist__group_load_end(hoist_group *g) {
  uv_mutex_lock(&g->lock);
  g->user_cancel = NULL;
  uv_mutex_unlock(&g->lock);
}

void hoist__group_stop(hoist_group *g) {
  if (g->world > 1) stop_all(g);
}

int hoist__group_stopped_by_peer(const hoist_group *g) {
  const int origin = hoist__group_stop_origin(g);
  return origin >= 0 && origin != g->rank;
}

int hoist__group_stop_origin(const hoist_group *g) {
  uv_mutex_lock((uv_mutex_t *)&g->lock);
  const int origin = g->stop_origin;
  uv_mutex_unlock((uv_mutex_t *)&g->lock);
  return origin;
}

double hoist__group_timeout(const hoist_group *g) { return g->timeout; }

/* ---- Joining */

/* The group's state and thread once every connection is up (links made). */
static int start(hoist_group *g) {
  if (pipe2(g->wake, O_CLOEXEC | O_NONBLOCK) != 0)
    return hoist__fail(NULL, HOIST_IO, "group: cannot make a pipe: %s", strerror(errno));
  for (int i = 0; i < g->nlinks; i++) {
    (void)fcntl(g->links[i].fd, F_SETFL, fcntl(g->links[i].fd, F_GETFL) | O_NONBLOCK);
    g->links[i].heard = now_s();
  }
  if (g->world > 1 && uv_thread_create(&g->thread, group_thread, g) != 0)
    return hoist__fail(NULL, HOIST_NO_MEMORY, "group: cannot start its thread");
  g->thread_started = g->world > 1;
  return HOIST_OK;
}

static hoist_group *group_new(int rank, int world, int local_rank, double timeout) {
  hoist_group *g = calloc(1, sizeof *g);
  if (g == NULL) return NULL;
  g->rank = rank;
  g->world = world;
  g->local_rank = local_rank;
  g->timeout = timeout;
  g->stop_origin = -1;
  g->wake[0] = g->wake[1] = -1;
  g->nlinks = world > 1 ? (rank == 0 ? world - 1 : 1) : 0;
  g->links = calloc((size_t)(g->nlinks > 0 ? g->nlinks : 1), sizeof *g->links);
  if (g->links == NULL || uv_mutex_init(&g->lock) != 0) {
    free(g->links);
    free(g);
    return NULL;
  }
  if (uv_cond_init(&g->cond) != 0) {
    uv_mutex_destroy(&g->lock);
    free(g->links);
    free(g);
    return NULL;
  }
  for (int i = 0; i < g->nlinks; i++) {
    g->links[i].fd = -1;
    g->links[i].rank = rank == 0 ? i + 1 : 0;
    (void)uv_mutex_init(&g->links[i].send_lock);
  }
  return g;
}

/* Closes the connections gracefully: what this rank sent (a last result)
 * goes out before its end of file, and what the others still send is read
 * until they close too (at most a second), so no connection is reset with
 * a result unread at the other end. */
static int write_frame(int fd, uint32_t type, const void *p, uint64_t len);

static void linger_close(hoist_group *g) {
  const double deadline = now_s() + 1.0;
  for (int i = 0; i < g->nlinks; i++)
    if (g->links[i].fd >= 0 && write_frame(g->links[i].fd, F_BYE, NULL, 0) == 0)
      shutdown(g->links[i].fd, SHUT_WR);
  for (int i = 0; i < g->nlinks; i++) {
    peer_link *l = &g->links[i];
    char buf[4096];
    while (l->fd >= 0 && now_s() < deadline) {
      struct pollfd pfd = {l->fd, POLLIN, 0};
      if (poll(&pfd, 1, (int)((deadline - now_s()) * 1000) + 1) <= 0) break;
      const ssize_t n = recv(l->fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
  }
}

/* Drops g's count of its local set; the last frees it. */
static void local_set_unref(hoist__local_set *s) {
  if (s == NULL) return;
  uv_mutex_lock(&s->lock);
  const int last = --s->refs == 0;
  uv_mutex_unlock(&s->lock);
  if (!last) return;
  for (int i = 0; i < s->n && s->free_comm != NULL; i++)
    if (s->comms[i] != NULL) s->free_comm(s->comms[i]);
  uv_cond_destroy(&s->cond);
  uv_mutex_destroy(&s->lock);
  free(s->devices);
  free(s->comms);
  free(s);
}

/* A local set for n ranks, counted n times. */
static hoist__local_set *local_set_new(int n) {
  hoist__local_set *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->devices = calloc((size_t)n, sizeof *s->devices);
  s->comms = calloc((size_t)n, sizeof *s->comms);
  const bool lock_ok = s->devices != NULL && s->comms != NULL && uv_mutex_init(&s->lock) == 0;
  if (!lock_ok || uv_cond_init(&s->cond) != 0) {
    if (lock_ok) uv_mutex_destroy(&s->lock);
    free(s->devices);
    free(s->comms);
    free(s);
    return NULL;
  }
  s->n = s->refs = n;
  return s;
}

void hoist_group_close(hoist_group *g) {
  if (g == NULL) return;
  if (g->nccl.release != NULL) g->nccl.release(g);
  local_set_unref(g->local);
  uv_mutex_lock(&g->lock);
  g->stopping = 1;
  uv_mutex_unlock(&g->lock);
  wake_thread(g);
  if (g->thread_started) uv_thread_join(&g->thread);
  linger_close(g);
  for (int i = 0; i < g->nlinks; i++) {
    if (g->links[i].fd >= 0) close(g->links[i].fd);
    free(g->links[i].data);
    free(g->links[i].payload);
    uv_mutex_destroy(&g->links[i].send_lock);
  }
  if (g->wake[0] >= 0) close(g->wake[0]);
  if (g->wake[1] >= 0) close(g->wake[1]);
  uv_cond_destroy(&g->cond);
  uv_mutex_destroy(&g->lock);
  free(g->links);
  free(g);
}

int hoist_group_rank(const hoist_group *g) { return g->rank; }
int hoist_group_world_size(const hoist_group *g) { return g->world; }
int hoist_group_local_rank(const hoist_group *g) { return g->local_rank; }

hoist__group_nccl_state *hoist__group_nccl_state_of(hoist_group *g, hoist__local_set **local) {
  *local = g->local;
  return &g->nccl;
}

/* Reads exactly len bytes from a blocking-with-deadline fd. */
static int read_exact(int fd, void *buf, size_t len, double deadline) {
  unsigned char *p = buf;
  while (len > 0) {
    const double left = deadline - now_s();
    if (left <= 0) return -2;
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t n = recv(fd, p, len, 0);
    if (n == 0) return -1;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* One frame during the rendezvous (blocking, before the thread runs). */
static int read_frame(int fd, double deadline, uint32_t *type, unsigned char *payload,
                      size_t cap, uint64_t *len) {
  unsigned char h[HEADER_BYTES];
  if (read_exact(fd, h, sizeof h, deadline) != 0 || get_u32(h) != GROUP_MAGIC) return -1;
  *type = get_u32(h + 4);
  *len = get_u64(h + 16);
  if (*len > cap) return -1;
  return read_exact(fd, payload, (size_t)*len, deadline);
}

static int write_frame(int fd, uint32_t type, const void *p, uint64_t len) {
  unsigned char h[HEADER_BYTES];
  put_u32(h, GROUP_MAGIC);
  put_u32(h + 4, type);
  put_u64(h + 8, 0);
  put_u64(h + 16, len);
  if (write_all(fd, h, sizeof h, 10) != 0) return -1;
  return len > 0 ? write_all(fd, p, len, 10) : 0;
}

/* Where the ranks meet. */
typedef struct meeting {
  char host[256];
  char port[16];
  char path[1024]; /* file rendezvous: the address file ("" otherwise) */
  unsigned char token[TOKEN_BYTES];
  int listen_fd;   /* a listener made beforehand (local groups), else -1 */
} meeting;

/* Refuses every rank joined so far (and the one at fd, when >= 0). */
static void refuse_all(hoist_group *g, int fd, int status, const char *msg) {
  unsigned char buf[4 + 512];
  put_u32(buf, (uint32_t)status);
  const size_t n = strlen(msg) < 512 ? strlen(msg) : 512;
  memcpy(buf + 4, msg, n);
  if (fd >= 0) (void)write_frame(fd, F_REFUSE, buf, 4 + n);
  for (int i = 0; i < g->nlinks; i++)
    if (g->links[i].fd >= 0) (void)write_frame(g->links[i].fd, F_REFUSE, buf, 4 + n);
}

/* Checks a hello from fd.  0: rank joined; 1: a stray connection (closed,
 * waiting goes on); <0: the group cannot form (status in *status). */
static int admit_hello(hoist_group *g, const meeting *m, int fd, double deadline, int *status,
                       char *msg, size_t msg_size) {
  unsigned char p[12 + TOKEN_BYTES];
  uint32_t type = 0;
  uint64_t len = 0;
  if (read_frame(fd, deadline < now_s() + 5 ? deadline : now_s() + 5, &type, p, sizeof p, &len) !=
          0 ||
      type != F_HELLO || len != sizeof p || get_u32(p) != GROUP_VERSION ||
      memcmp(p + 12, m->token, TOKEN_BYTES) != 0)
    return 1;
  const int rank = (int)get_u32(p + 4), world = (int)get_u32(p + 8);
  if (world != g->world) {
    *status = HOIST_GROUP_MISMATCH;
    snprintf(msg, msg_size, "group: rank %d has world size %d, rank 0 has %d", rank, world,
             g->world);
    return -1;
  }
  if (rank < 1 || rank >= g->world || g->links[rank - 1].fd >= 0) {
    *status = HOIST_GROUP_MISMATCH;
    snprintf(msg, msg_size, "group: two ranks claim rank %d", rank);
    return -1;
  }
  g->links[rank - 1].fd = fd;
  return 0;
}

/* Writes the file rendezvous: "hoist-group 1 HOST PORT TOKENHEX". */
static int write_address(const meeting *m, const char *port) {
  char tmp[1100], hex[2 * TOKEN_BYTES + 1];
  for (unsigned i = 0; i < TOKEN_BYTES; i++) snprintf(hex + 2 * i, 3, "%02x", m->token[i]);
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", m->path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (f == NULL) return -1;
  const int ok = fprintf(f, "hoist-group %u 127.0.0.1 %s %s\n", GROUP_VERSION, port, hex) > 0;
  if (fclose(f) != 0 || !ok || rename(tmp, m->path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int hub_listen(const meeting *m, int *out, char *port, size_t port_size) {
  if (m->listen_fd >= 0) {
    *out = m->listen_fd;
    snprintf(port, port_size, "%s", m->port);
    return HOIST_OK;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  const int gai = getaddrinfo(m->host[0] != '\0' ? m->host : NULL, m->port, &hints, &ai);
  if (gai != 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "group: rendezvous host '%s': %s", m->host,
                       gai_strerror(gai));
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  if (fd >= 0) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return hoist__fail(NULL, HOIST_IO, "group: rank 0 cannot listen on %s:%s: %s", m->host,
                       m->port, strerror(err));
  }
  freeaddrinfo(ai);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  (void)getsockname(fd, (struct sockaddr *)&ss, &sl);
  const int p = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
  snprintf(port, port_size, "%d", p);
  *out = fd;
  return HOIST_OK;
}

/* Rank 0: listens, admits W - 1 ranks, welcomes them all. */
static int hub_join(hoist_group *g, const meeting *m, double deadline) {
  int lfd = -1, rc, status = HOIST_OK;
  char port[16], msg[600] = "";
  if ((rc = hub_listen(m, &lfd, port, sizeof port)) != HOIST_OK) return rc;
  if (m->path[0] != '\0' && write_address(m, port) != 0) {
    close(lfd);
    return hoist__fail(NULL, HOIST_IO, "group: cannot write the rendezvous file %s: %s", m->path,
                       strerror(errno));
  }
  int joined = 0;
  while (joined < g->world - 1 && status == HOIST_OK) {
    const double left = deadline - now_s();
    struct pollfd pfd = {lfd, POLLIN, 0};
    if (left <= 0) break;
    if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0) continue;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
    if (fd < 0) continue;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* votes are small */
    const int v = admit_hello(g, m, fd, deadline, &status, msg, sizeof msg);
    if (v == 0) joined++;
    else if (v > 0) close(fd);
    else {
      refuse_all(g, fd, status, msg);
      close(fd);
    }
  }
  close(lfd);
  if (m->path[0] != '\0') unlink(m->path);
  if (status == HOIST_OK && joined < g->world - 1) {
    status = HOIST_GROUP_LOST;
    snprintf(msg, sizeof msg, "group: %d of %d ranks joined rank 0 within %.0f s; missing:",
             joined + 1, g->world, g->timeout);
    for (int r = 1; r < g->world && strlen(msg) < sizeof msg - 16; r++)
      if (g->links[r - 1].fd < 0) snprintf(msg + strlen(msg), sizeof msg - strlen(msg), " %d", r);
    refuse_all(g, -1, status, msg);
  }
  if (status != HOIST_OK) return hoist__fail(NULL, status, "%s", msg);
  for (int i = 0; i < g->nlinks; i++)
    if (write_frame(g->links[i].fd, F_WELCOME, NULL, 0) != 0)
      return hoist__fail(NULL, HOIST_GROUP_LOST, "group: rank %d left during the rendezvous",
                         i + 1);
  return HOIST_OK;
}

/* Reads the file rendezvous into m's host, port and token; -1 while the
 * file is not there (or not whole). */
static int read_address(meeting *m) {
  FILE *f = fopen(m->path, "r");
  if (f == NULL) return -1;
  char host[64], port[16], hex[2 * TOKEN_BYTES + 2];
  unsigned version = 0;
  const int n = fscanf(f, "hoist-group %u %63s %15s %33s", &version, host, port, hex);
  fclose(f);
  if (n != 4 || version != GROUP_VERSION || strlen(hex) != 2 * TOKEN_BYTES) return -1;
  for (unsigned i = 0; i < TOKEN_BYTES; i++) {
    unsigned v = 0;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    m->token[i] = (unsigned char)v;
  }
  snprintf(m->host, sizeof m->host, "%s", host);
  snprintf(m->port, sizeof m->port, "%s", port);
  return 0;
}

static int try_connect(const meeting *m) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(m->host, m->port, &hints, &ai) != 0) return -1;
  int fd = -1;
  for (struct addrinfo *a = ai; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd >= 0) {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

/* A rank > 0: connects to the hub (retrying until it listens), says hello,
 * waits for the welcome. */
static int rank_join(hoist_group *g, meeting *m, double deadline) {
  int fd = -1;
  while (fd < 0 && now_s() < deadline) {
    if ((m->path[0] == '\0' || read_address(m) == 0) && (fd = try_connect(m)) >= 0) break;
    usleep(20000);
  }
  if (fd < 0)
    return hoist__fail(NULL, HOIST_GROUP_LOST, "group: rank %d found no rank 0 at %s within %.0f s",
                       g->rank, m->path[0] != '\0' ? m->path : m->host, g->timeout);
  unsigned char hello[12 + TOKEN_BYTES], reply[4 + 512 + 1];
  put_u32(hello, GROUP_VERSION);
  put_u32(hello + 4, (uint32_t)g->rank);
  put_u32(hello + 8, (uint32_t)g->world);
  memcpy(hello + 12, m->token, TOKEN_BYTES);
  uint32_t type = 0;
  uint64_t len = 0;
  /* Rank 0 decides at the deadline; its verdict gets a few seconds more. */
  if (write_frame(fd, F_HELLO, hello, sizeof hello) != 0 ||
      read_frame(fd, deadline + 5, &type, reply, sizeof reply - 1, &len) != 0) {
    close(fd);
    return hoist__fail(NULL, HOIST_GROUP_LOST,
                       "group: rank %d: rank 0 did not welcome it within %.0f s", g->rank,
                       g->timeout);
  }
  if (type != F_WELCOME) {
    close(fd);
    reply[len] = '\0';
    const int status = len >= 4 ? (int)get_u32(reply) : HOIST_GROUP_MISMATCH;
    return hoist__fail(NULL, status < 0 ? status : HOIST_GROUP_MISMATCH, "%s",
                       len > 4 ? (char *)reply + 4 : "group: refused by rank 0");
  }
  g->links[0].fd = fd;
  return HOIST_OK;
}

/* ---- Options */

static int env_int(const char *name, int *out) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0') return 0;
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || x < 0 || x > 65535) return -1;
  *out = (int)x;
  return 1;
}

/* The meeting place from the rendezvous option or the environment. */
static int parse_rendezvous(const char *text, meeting *m) {
  char buf[1100];
  if (text == NULL) text = getenv("HOIST_RENDEZVOUS");
  if (text == NULL || text[0] == '\0') {
    const char *addr = getenv("MASTER_ADDR");
    int port = 0;
    if (addr == NULL || env_int("MASTER_PORT", &port) != 1 || port >= 65535)
      return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                         "group: no rendezvous: give tcp://HOST:PORT or file:PATH, or set "
                         "HOIST_RENDEZVOUS, or MASTER_ADDR and MASTER_PORT (torchrun)");
    snprintf(buf, sizeof buf, "tcp://%.255s:%d", addr, port + 1);
    text = buf;
  }
  if (strncmp(text, "file:", 5) == 0 && text[5] != '\0' && strlen(text + 5) < sizeof m->path) {
    snprintf(m->path, sizeof m->path, "%s", text + 5);
    snprintf(m->host, sizeof m->host, "127.0.0.1");
    snprintf(m->port, sizeof m->port, "0");
    return HOIST_OK;
  }
  const char *hp = strncmp(text, "tcp://", 6) == 0 ? text + 6 : NULL;
  const char *colon = hp != NULL ? strrchr(hp, ':') : NULL;
  int port = 0;
  if (colon != NULL && colon > hp && (size_t)(colon - hp) < sizeof m->host &&
      sscanf(colon + 1, "%d", &port) == 1 && port >= 0 && port < 65536) {
    const char *h = hp, *he = colon;
    if (*h == '[' && he[-1] == ']') h++, he--; /* [v6]:port */
    snprintf(m->host, sizeof m->host, "%.*s", (int)(he - h), h);
    snprintf(m->port, sizeof m->port, "%d", port);
    return HOIST_OK;
  }
  char shown[HOIST_SHOW_PATH];
  return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                     "group: rendezvous '%s' is not tcp://HOST:PORT or file:PATH",
                     hoist__show(text, shown, sizeof shown));
}

/* rank, world and local rank from the options or the environment. */
static int resolve_ranks(const hoist_group_options *o, int *rank, int *world, int *local) {
  *rank = o->rank;
  *world = o->world_size;
  *local = o->local_rank;
  if (*rank < 0 && env_int("RANK", rank) != 1)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "group: no rank given and RANK is not set "
                                                     "to a number");
  if (*world <= 0 && env_int("WORLD_SIZE", world) != 1)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                       "group: no world size given and WORLD_SIZE is not set to a number");
  if (*local < 0 && env_int("LOCAL_RANK", local) != 1) *local = *rank;
  if (*world < 1 || *world > 4096 || *rank >= *world)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "group: rank %d of world size %d", *rank,
                       *world);
  return HOIST_OK;
}

static int join(hoist_group *g, meeting *m) {
  const double deadline = now_s() + g->timeout;
  int rc = HOIST_OK;
  if (g->world > 1) rc = g->rank == 0 ? hub_join(g, m, deadline) : rank_join(g, m, deadline);
  if (rc == HOIST_OK) rc = start(g);
  return rc;
}

int hoist_group_create(const hoist_group_options *opts, hoist_group **out) {
  hoist_group_options defaults = HOIST_GROUP_OPTIONS_INIT;
  const hoist_group_options *o = opts != NULL ? opts : &defaults;
  *out = NULL;
  if (o->struct_size != sizeof(hoist_group_options))
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                       "hoist_group_options.struct_size mismatch (use HOIST_GROUP_OPTIONS_INIT)");
  int rank = 0, world = 0, local = 0;
  int rc = resolve_ranks(o, &rank, &world, &local);
  if (rc != HOIST_OK) return rc;
  meeting m = {.listen_fd = -1};
  if (world > 1 && (rc = parse_rendezvous(o->rendezvous, &m)) != HOIST_OK) return rc;
  if (m.path[0] != '\0' && rank == 0 && getrandom(m.token, sizeof m.token, 0) != sizeof m.token)
    return hoist__fail(NULL, HOIST_IO, "group: no random token: %s", strerror(errno));
  hoist_group *g = group_new(rank, world, local,
                             o->timeout_seconds > 0 ? o->timeout_seconds : DEFAULT_TIMEOUT);
  if (g == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for a group");
  if ((rc = join(g, &m)) != HOIST_OK) {
    hoist_group_close(g);
    return rc;
  }
  *out = g;
  return HOIST_OK;
}

/* ---- Ranks of one process */

typedef struct local_join {
  hoist_group *g;
  meeting m;
  int rc;
  char msg[HOIST_ERROR_MAX];
} local_join;

static void local_join_main(void *arg) {
  local_join *j = arg;
  j->rc = join(j->g, &j->m);
  if (j->rc != HOIST_OK) snprintf(j->msg, sizeof j->msg, "%s", hoist__thread_last_error());
}

/* Where n ranks of this process meet: a loopback listener made now (so
 * every rank knows the port before any joins) and a random token. */
static int local_meeting(int n, meeting *m) {
  *m = (meeting){.listen_fd = -1};
  snprintf(m->host, sizeof m->host, "127.0.0.1");
  snprintf(m->port, sizeof m->port, "0");
  if (getrandom(m->token, sizeof m->token, 0) != sizeof m->token)
    return hoist__fail(NULL, HOIST_IO, "group: no random token: %s", strerror(errno));
  char port[16];
  int rc = n > 1 ? hub_listen(m, &m->listen_fd, port, sizeof port) : HOIST_OK;
  if (rc == HOIST_OK && n > 1) snprintf(m->port, sizeof m->port, "%s", port);
  return rc;
}

/* Joins the n ranks of jobs, each on a thread of its own (each waits for
 * the others).  The listener is rank 0's to close; when its thread cannot
 * start, it is closed here. */
static int join_local(local_join *jobs, int n, int listen_fd) {
  uv_thread_t *threads = calloc((size_t)n, sizeof *threads);
  if (threads == NULL) {
    if (listen_fd >= 0) close(listen_fd);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  }
  int rc = HOIST_OK, started = 0;
  for (; started < n; started++)
    if (uv_thread_create(&threads[started], local_join_main, &jobs[started]) != 0) {
      rc = hoist__fail(NULL, HOIST_NO_MEMORY, "group: cannot start a joining thread");
      break;
    }
  if (started == 0 && listen_fd >= 0) close(listen_fd);
  for (int i = 0; i < started; i++) uv_thread_join(&threads[i]);
  for (int i = 0; i < started && rc == HOIST_OK; i++)
    if (jobs[i].rc != HOIST_OK) rc = hoist__fail(NULL, jobs[i].rc, "%s", jobs[i].msg);
  free(threads);
  return rc;
}

int hoist_group_create_local(int n, hoist_group **groups) {
  if (n < 1 || n > 4096)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "group: %d local ranks", n);
  for (int i = 0; i < n; i++) groups[i] = NULL;
  local_join *jobs = calloc((size_t)n, sizeof *jobs);
  if (jobs == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for a group");
  meeting m;
  int rc = local_meeting(n, &m);
  for (int i = 0; i < n && rc == HOIST_OK; i++) {
    jobs[i].m = m;
    if ((jobs[i].g = group_new(i, n, i, DEFAULT_TIMEOUT)) == NULL)
      rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for a group");
  }
  if (rc == HOIST_OK) rc = join_local(jobs, n, m.listen_fd);
  else if (m.listen_fd >= 0) close(m.listen_fd);
  hoist__local_set *set = rc == HOIST_OK ? local_set_new(n) : NULL;
  if (rc == HOIST_OK && set == NULL) rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  for (int i = 0; i < n; i++) {
    if (rc != HOIST_OK) {
      hoist_group_close(jobs[i].g);
      continue;
    }
    groups[i] = jobs[i].g;
    groups[i]->local = set;
  }
  free(jobs);
  return rc;
}
