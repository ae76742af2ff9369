/* control.c — hoist serve's control socket: a Unix stream socket (mode 0600,
 * 0666 when other uids are allowed) whose peers are checked with
 * SO_PEERCRED before anything is read, and the per-connection handling of
 * the wire protocol (hoist_wire.h): attach, detach, prepare, release,
 * reload, verify.
 *
 * The loop polls the sockets (uv_poll) and this file does the reads and
 * writes itself with recvmsg/sendmsg, because arenas travel as descriptors
 * (SCM_RIGHTS: memfds on the host backend, CUDA virtual-memory handles on a
 * GPU) attached to a message's first byte.
 * A message that carries descriptors owns duplicates of them, so a
 * generation freed while the message waits in the queue cannot turn its
 * descriptor numbers into someone else's.  Garbage (a bad frame, a
 * descriptor from a client, a frame that does not complete within the read
 * timeout) answers ERROR(PROTOCOL) and closes that connection only; a
 * closed connection drops every reference its client held. */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A client that stops reading is cut off past this much queued output. */
#define MAX_QUEUED (256u << 20)

typedef struct out_msg {
  unsigned char *data;
  size_t len, sent;
  int *fds;             /* owned duplicates, sent with the first byte */
  size_t nfds;
  struct out_msg *next;
} out_msg;

struct ctl_conn {
  serve *sv;
  int fd;
  uv_poll_t poll;
  uv_timer_t timer;
  int handles;          /* uv handles not yet closed */
  uid_t uid;
  pid_t pid;
  unsigned char in[HOIST_WIRE_HEADER_BYTES + HOIST_WIRE_MAX_REQUEST];
  size_t in_len;
  out_msg *out_head, *out_tail;
  size_t queued;
  gen *g;               /* the generation attached to, or NULL */
  unsigned char *prepared; /* per component of g: held prepared */
  int waiting_attach;
  uint32_t attach_id;
  int closing;          /* write what is queued, then close */
  int closed;
  int events;           /* uv_poll events asked for */
  ctl_conn *next, **pprev;
};

static void conn_close(ctl_conn *c, int lost);
static void flush(ctl_conn *c);

/* ------------------------------------------------------------------------ */
/* Output */

static void msg_free(out_msg *m) {
  for (size_t i = 0; i < m->nfds; i++) close(m->fds[i]);
  free(m->fds);
  free(m->data);
  free(m);
}

/* Queues a copy of a whole message (with id patched in when id != 0) and
 * duplicates of fds.  Closes the connection when that fails. */
static void queue_msg(ctl_conn *c, const unsigned char *data, size_t len, uint32_t id,
                      const int *fds, size_t nfds) {
  if (c->closed) return;
  out_msg *m = calloc(1, sizeof *m);
  if (m != NULL) m->data = malloc(len);
  if (m != NULL && nfds > 0) m->fds = calloc(nfds, sizeof *m->fds);
  if (m == NULL || m->data == NULL || (nfds > 0 && m->fds == NULL) || c->queued + len > MAX_QUEUED) {
    if (m != NULL) msg_free(m);
    conn_close(c, 1);
    return;
  }
  memcpy(m->data, data, len);
  m->len = len;
  if (id != 0)
    for (unsigned i = 0; i < 4; i++) m->data[12 + i] = (unsigned char)(id >> (8 * i));
  for (size_t i = 0; i < nfds; i++) {
    int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      fprintf(stderr, "hoist serve: cannot duplicate an arena descriptor: %s\n", strerror(errno));
      msg_free(m);
      conn_close(c, 1);
      return;
    }
    m->fds[m->nfds++] = d;
  }
  if (c->out_tail != NULL) c->out_tail->next = m;
  else c->out_head = m;
  c->out_tail = m;
  c->queued += len;
  flush(c);
}

static void queue_buf(ctl_conn *c, hoist__wbuf *b) {
  if (hoist__wbuf_end(b) == 0) queue_msg(c, b->data, b->len, 0, NULL, 0);
  else conn_close(c, 1);
  hoist__wbuf_free(b);
}

void control_reply_error(ctl_conn *c, uint32_t id, int status, const char *msg) {
  hoist__wbuf b = {0};
  char line[HOIST_WIRE_MAX_STRING];
  snprintf(line, sizeof line, "%s", msg);
  hoist__wbuf_begin(&b, HOIST_WIRE_ERROR, id);
  hoist__wbuf_u32(&b, (uint32_t)status);
  hoist__wbuf_str(&b, line);
  queue_buf(c, &b);
}

static void reply_empty(ctl_conn *c, uint16_t type, uint32_t id) {
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, type, id);
  queue_buf(c, &b);
}

void control_reply_u32u64u64(ctl_conn *c, uint16_t type, uint32_t id, uint32_t a, uint64_t b2,
                             uint64_t d) {
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, type, id);
  hoist__wbuf_u32(&b, a);
  hoist__wbuf_u64(&b, b2);
  hoist__wbuf_u64(&b, d);
  queue_buf(c, &b);
}

void control_reply_prepared(ctl_conn *c, uint32_t id, gen *g, size_t comp) {
  const shared_arenas *a = &g->comps[comp].arenas;
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, HOIST_WIRE_PREPARED, id);
  hoist__wbuf_str(&b, hoist_loaded_component(g->l, comp)->name);
  hoist__wire_put_arenas(&b, a->n, a->bytes, (const unsigned char(*)[HOIST_WIRE_HANDLE_BYTES])a->handles);
  if (hoist__wbuf_end(&b) != 0) {
    hoist__wbuf_free(&b);
    conn_close(c, 1);
    return;
  }
  int fds[HOIST_WIRE_MAX_ARENAS];
  size_t n = 0;
  for (size_t k = 0; k < a->n; k++)
    if (a->fds[k] >= 0) fds[n++] = a->fds[k];
  queue_msg(c, b.data, b.len, 0, fds, n);
  hoist__wbuf_free(&b);
}

static void on_poll(uv_poll_t *p, int status, int events);

static void want(ctl_conn *c) {
  int ev = (c->closing ? 0 : UV_READABLE) | (c->out_head != NULL ? UV_WRITABLE : 0);
  if (c->closed || ev == c->events) return;
  c->events = ev;
  if (ev == 0) uv_poll_stop(&c->poll);
  else uv_poll_start(&c->poll, ev, on_poll);
}

static void flush(ctl_conn *c) {
  while (!c->closed && c->out_head != NULL) {
    out_msg *m = c->out_head;
    struct iovec iov = {m->data + m->sent, m->len - m->sent};
    struct msghdr mh = {0};
    union {
      struct cmsghdr h;
      unsigned char b[CMSG_SPACE(HOIST_WIRE_MAX_FDS * sizeof(int))];
    } ctl;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (m->sent == 0 && m->nfds > 0) {
      memset(&ctl, 0, sizeof ctl);
      mh.msg_control = ctl.b;
      mh.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
      struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
      memcpy(CMSG_DATA(cm), m->fds, m->nfds * sizeof(int));
    }
    ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      conn_close(c, 1);
      return;
    }
    m->sent += (size_t)n;
    if (m->sent < m->len) continue;
    c->out_head = m->next;
    if (c->out_head == NULL) c->out_tail = NULL;
    c->queued -= m->len;
    msg_free(m);
  }
  if (c->closed) return;
  if (c->closing && c->out_head == NULL) {
    conn_close(c, 0);
    return;
  }
  want(c);
}

/* Answers ERROR and closes once it is written. */
static void refuse(ctl_conn *c, uint32_t id, int status, const char *msg) {
  control_reply_error(c, id, status, msg);
  c->closing = 1;
  flush(c);
}

/* ------------------------------------------------------------------------ */
/* References */

int control_attached_to(const ctl_conn *c, const gen *g) { return c->g == g; }

int control_holds_prepared(const ctl_conn *c, gen *g, size_t comp) {
  return c->g == g && c->prepared != NULL && c->prepared[comp];
}

void control_mark_prepared(ctl_conn *c, size_t comp) {
  if (c->prepared != NULL) c->prepared[comp] = 1;
}

/* Drops everything c holds on its generation. */
static void detach(ctl_conn *c) {
  serve *sv = c->sv;
  gen *g = c->g;
  if (g == NULL) return;
  for (size_t i = 0; i < g->ncomps; i++)
    if (c->prepared[i]) {
      c->prepared[i] = 0;
      g->comps[i].prep_refs--;
      serve_release_comp(sv, g, i);
    }
  free(c->prepared);
  c->prepared = NULL;
  c->g = NULL;
  sv->attached--;
  sv->detaches_total++;
  serve_gen_unref(sv, g);
}

static void attach_now(ctl_conn *c, uint32_t id) {
  serve *sv = c->sv;
  gen *g = sv->current;
  c->prepared = calloc(g->ncomps > 0 ? g->ncomps : 1, 1);
  if (c->prepared == NULL) {
    control_reply_error(c, id, HOIST_NO_MEMORY, "out of memory");
    return;
  }
  c->g = g;
  g->clients++;
  sv->attached++;
  sv->attaches_total++;
  queue_msg(c, g->table.data, g->table.len, id, g->fds, g->nfds);
}

void control_answer_waiters(serve *sv, int status, const char *msg) {
  for (ctl_conn *c = sv->ctls, *next; c != NULL; c = next) {
    next = c->next;
    if (!c->waiting_attach) continue;
    c->waiting_attach = 0;
    if (status == HOIST_OK && sv->current != NULL && !sv->stopping) attach_now(c, c->attach_id);
    else control_reply_error(c, c->attach_id, status, msg);
  }
}

void control_notify(serve *sv, uint16_t type, uint32_t value, gen *only) {
  for (ctl_conn *c = sv->ctls, *next; c != NULL; c = next) {
    next = c->next;
    if (c->g == NULL || (only != NULL && c->g != only)) continue;
    hoist__wbuf b = {0};
    hoist__wbuf_begin(&b, type, 0);
    hoist__wbuf_u32(&b, value);
    queue_buf(c, &b);
  }
}

/* ------------------------------------------------------------------------ */
/* Requests */

static size_t find_component(const gen *g, const char *name) {
  for (size_t i = 0; i < g->ncomps; i++)
    if (strcmp(hoist_loaded_component(g->l, i)->name, name) == 0) return i;
  return SIZE_MAX;
}

static void handle_attach(ctl_conn *c, const hoist__wire_request *r) {
  serve *sv = c->sv;
  if (c->g != NULL || c->waiting_attach) {
    refuse(c, r->id, HOIST_PROTOCOL, "already attached on this connection");
    return;
  }
  if (sv->stopping) control_reply_error(c, r->id, HOIST_CLOSED, "the server is shutting down");
  else if (sv->current != NULL) attach_now(c, r->id);
  else if (sv->load_failed) control_reply_error(c, r->id, sv->last_status, sv->last_error);
  else if (r->flags & HOIST_WIRE_FLAG_NO_WAIT) {
    char msg[200];
    uv_mutex_lock(&sv->progress_lock);
    snprintf(msg, sizeof msg, "still loading: %llu of %llu bytes",
             (unsigned long long)sv->prog.done, (unsigned long long)sv->prog.total);
    uv_mutex_unlock(&sv->progress_lock);
    control_reply_error(c, r->id, HOIST_NOT_READY, msg);
  } else {
    c->waiting_attach = 1;
    c->attach_id = r->id;
  }
}

/* The component a PREPARE or RELEASE names, or SIZE_MAX after an ERROR. */
static size_t request_component(ctl_conn *c, const hoist__wire_request *r) {
  if (c->g == NULL) {
    control_reply_error(c, r->id, HOIST_INVALID_ARGUMENT, "not attached");
    return SIZE_MAX;
  }
  size_t i = find_component(c->g, r->component);
  if (i == SIZE_MAX) {
    char msg[300];
    snprintf(msg, sizeof msg, "no component '%s'", r->component);
    control_reply_error(c, r->id, HOIST_NOT_FOUND, msg);
  }
  return i;
}

static void handle_request(ctl_conn *c, const hoist__wire_request *r) {
  serve *sv = c->sv;
  waiter w = {c, r->id, NULL, NULL};
  size_t i;
  switch (r->type) {
  case HOIST_WIRE_ATTACH:
    handle_attach(c, r);
    break;
  case HOIST_WIRE_DETACH:
    c->waiting_attach = 0;
    detach(c);
    reply_empty(c, HOIST_WIRE_DETACHED, r->id);
    break;
  case HOIST_WIRE_PREPARE:
    if ((i = request_component(c, r)) == SIZE_MAX) break;
    if (hoist_loaded_component(c->g->l, i)->residency != HOIST_OFFLOAD)
      control_reply_error(c, r->id, HOIST_INVALID_ARGUMENT, "the component is not offloaded");
    else if (control_holds_prepared(c, c->g, i))
      control_reply_prepared(c, r->id, c->g, i);
    else
      serve_prepare(sv, c->g, i, w);
    break;
  case HOIST_WIRE_RELEASE:
    if ((i = request_component(c, r)) == SIZE_MAX) break;
    if (control_holds_prepared(c, c->g, i)) {
      c->prepared[i] = 0;
      c->g->comps[i].prep_refs--;
      serve_release_comp(sv, c->g, i);
    }
    reply_empty(c, HOIST_WIRE_RELEASED, r->id);
    break;
  case HOIST_WIRE_RELOAD:
    serve_reload(sv, w);
    break;
  case HOIST_WIRE_VERIFY:
    serve_verify(sv, w);
    break;
  }
}

/* ------------------------------------------------------------------------ */
/* Input */

static void on_frame_timeout(uv_timer_t *t) {
  ctl_conn *c = t->data;
  refuse(c, 0, HOIST_PROTOCOL, "a message did not arrive whole within the read timeout");
}

static void process(ctl_conn *c) {
  while (!c->closed && !c->closing && c->in_len >= HOIST_WIRE_HEADER_BYTES) {
    hoist__wire_header h;
    hoist__wire_request r;
    char why[200];
    if (hoist__wire_header_parse(c->in, 1, &h, why, sizeof why) != HOIST_OK) {
      refuse(c, 0, HOIST_PROTOCOL, why);
      return;
    }
    size_t total = HOIST_WIRE_HEADER_BYTES + h.length;
    if (c->in_len < total) break;
    if (hoist__wire_request_decode(&h, c->in + HOIST_WIRE_HEADER_BYTES, &r, why, sizeof why) !=
        HOIST_OK) {
      refuse(c, h.id, HOIST_PROTOCOL, why);
      return;
    }
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    handle_request(c, &r);
  }
  if (c->closed) return;
  if (c->in_len > 0 && !uv_is_active((uv_handle_t *)&c->timer))
    uv_timer_start(&c->timer, on_frame_timeout, (uint64_t)(c->sv->o->read_timeout * 1000), 0);
  else if (c->in_len == 0)
    uv_timer_stop(&c->timer);
}

static void read_input(ctl_conn *c) {
  while (!c->closed && !c->closing) {
    union {
      struct cmsghdr h;
      unsigned char b[CMSG_SPACE(16 * sizeof(int))];
    } ctl;
    struct iovec iov = {c->in + c->in_len, sizeof c->in - c->in_len};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.b;
    m.msg_controllen = sizeof ctl.b;
    ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    int got_fds = (m.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; cm != NULL; cm = CMSG_NXTHDR(&m, cm))
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int fd;
          memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
          close(fd);
        }
        got_fds = 1;
      }
    if (n <= 0) {
      conn_close(c, 1);
      return;
    }
    if (got_fds) {
      refuse(c, 0, HOIST_PROTOCOL, "clients do not send descriptors");
      return;
    }
    c->in_len += (size_t)n;
    process(c);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  ctl_conn *c = p->data;
  if (status < 0) {
    conn_close(c, 1);
    return;
  }
  if (events & UV_WRITABLE) flush(c);
  if (!c->closed && (events & UV_READABLE)) read_input(c);
}

/* ------------------------------------------------------------------------ */
/* Connections */

static void on_handle_closed(uv_handle_t *h) {
  ctl_conn *c = h->data;
  if (--c->handles > 0) return;
  close(c->fd);
  free(c);
}

static void conn_close(ctl_conn *c, int lost) {
  if (c->closed) return;
  serve *sv = c->sv;
  c->closed = 1;
  if (c->g != NULL) {
    if (lost) sv->lost_total++;
    detach(c);
  }
  serve_forget_waiters(sv, c, NULL);
  *c->pprev = c->next;
  if (c->next != NULL) c->next->pprev = c->pprev;
  sv->nctl--;
  while (c->out_head != NULL) {
    out_msg *m = c->out_head;
    c->out_head = m->next;
    msg_free(m);
  }
  uv_timer_stop(&c->timer);
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->poll, on_handle_closed);
  serve_maybe_finish(sv);
}

void control_close_all(serve *sv, int only_unattached) {
  for (ctl_conn *c = sv->ctls, *next; c != NULL; c = next) {
    next = c->next;
    if (only_unattached && c->g != NULL) continue;
    conn_close(c, 0);
  }
}

/* Whether uid may use the socket: the server's own, or --allow-uid. */
static int uid_allowed(const serve *sv, uid_t uid) {
  if (uid == geteuid()) return 1;
  for (size_t i = 0; i < sv->o->n_allow; i++)
    if (sv->o->allow_uid[i] == uid) return 1;
  return 0;
}

/* A refusal before a connection exists: one small ERROR frame, sent
 * without waiting (it fits any socket buffer), then close. */
static void refuse_fd(int fd, int status, const char *msg) {
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, HOIST_WIRE_ERROR, 0);
  hoist__wbuf_u32(&b, (uint32_t)status);
  hoist__wbuf_str(&b, msg);
  if (hoist__wbuf_end(&b) == 0) (void)!send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
  hoist__wbuf_free(&b);
  close(fd);
}

static void accept_one(serve *sv, int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  char msg[200];
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    refuse_fd(fd, HOIST_DENIED, "cannot read the peer's credentials");
    return;
  }
  if (!uid_allowed(sv, cred.uid)) {
    snprintf(msg, sizeof msg, "uid %u may not attach (the server runs as uid %u; see --allow-uid)",
             (unsigned)cred.uid, (unsigned)geteuid());
    fprintf(stderr, "hoist serve: refused pid %d: %s\n", (int)cred.pid, msg);
    refuse_fd(fd, HOIST_DENIED, msg);
    return;
  }
  if (sv->nctl >= sv->o->max_control) {
    snprintf(msg, sizeof msg, "too many control connections (%u)", sv->o->max_control);
    refuse_fd(fd, HOIST_CLOSED, msg);
    return;
  }
  ctl_conn *c = calloc(1, sizeof *c);
  if (c == NULL || uv_poll_init(sv->loop, &c->poll, fd) != 0) {
    free(c);
    refuse_fd(fd, HOIST_NO_MEMORY, "out of memory");
    return;
  }
  uv_timer_init(sv->loop, &c->timer);
  c->handles = 2;
  c->poll.data = c->timer.data = c;
  c->sv = sv;
  c->fd = fd;
  c->uid = cred.uid;
  c->pid = cred.pid;
  c->next = sv->ctls;
  if (c->next != NULL) c->next->pprev = &c->next;
  c->pprev = &sv->ctls;
  sv->ctls = c;
  sv->nctl++;
  want(c);
}

static void on_listen(uv_poll_t *p, int status, int events) {
  serve *sv = p->data;
  if (status < 0 || sv->stopping) return;
  for (;;) {
    int fd = accept4(sv->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_one(sv, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      fprintf(stderr, "hoist serve: accept on the control socket: %s\n", strerror(errno));
    return;
  }
}

/* ------------------------------------------------------------------------ */
/* The listening socket */

/* The default path: $XDG_RUNTIME_DIR/hoist/DEV.sock, else /run/hoist/DEV.sock,
 * DEV being host or cudaN; the hoist folder is made when missing. */
static int default_path(serve *sv) {
  serve_options *o = sv->o;
  const char *base = getenv("XDG_RUNTIME_DIR");
  if (base == NULL || base[0] != '/') base = "/run";
  char dir[80], dev[32] = "host";
  const char *spec = o->load.cfg.device;
  int ord = 0;
  if (spec != NULL && strncmp(spec, "cuda", 4) == 0) {
    if (spec[4] == ':') ord = atoi(spec + 5);
    snprintf(dev, sizeof dev, "cuda%d", ord);
  }
  if (snprintf(dir, sizeof dir, "%s/hoist", base) >= (int)sizeof dir ||
      snprintf(o->unix_path, sizeof o->unix_path, "%s/%s.sock", dir, dev) >=
          (int)sizeof o->unix_path) {
    fprintf(stderr, "hoist serve: $XDG_RUNTIME_DIR is too long for a socket path; use --unix\n");
    return -1;
  }
  mode_t mode = o->n_allow > 0 ? 0711 : 0700; /* other uids must reach the socket */
  struct stat st;
  if (mkdir(dir, mode) != 0 && errno != EEXIST) {
    fprintf(stderr, "hoist serve: cannot create %s: %s (use --unix PATH)\n", dir, strerror(errno));
    return -1;
  }
  if (stat(dir, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0777) != mode)
    chmod(dir, mode); /* ours, made by an earlier run with other rights */
  return 0;
}

/* A socket file left by a server that died is replaced; a live one is not. */
static int clear_stale(const char *path, const struct sockaddr_un *sa) {
  struct stat st;
  if (lstat(path, &st) != 0) return 0;
  if (!S_ISSOCK(st.st_mode)) {
    fprintf(stderr, "hoist serve: %s exists and is not a socket\n", path);
    return -1;
  }
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int live = probe >= 0 && connect(probe, (const struct sockaddr *)sa, sizeof *sa) == 0;
  if (probe >= 0) close(probe);
  if (live) {
    fprintf(stderr, "hoist serve: another server listens on %s\n", path);
    return -1;
  }
  unlink(path);
  return 0;
}

int control_listen(serve *sv) {
  serve_options *o = sv->o;
  if (!o->unix_given && default_path(sv) != 0) return -1;
  struct sockaddr_un sa = {0};
  sa.sun_family = AF_UNIX;
  if (strlen(o->unix_path) >= sizeof sa.sun_path) {
    fprintf(stderr, "hoist serve: --unix path longer than %zu bytes\n", sizeof sa.sun_path - 1);
    return -1;
  }
  memcpy(sa.sun_path, o->unix_path, strlen(o->unix_path) + 1);
  if (clear_stale(o->unix_path, &sa) != 0) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  /* Created 0600 (no window with wider rights), widened only for --allow-uid. */
  mode_t old = umask(0177);
  int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  umask(old);
  if (ok && o->n_allow > 0) ok = chmod(o->unix_path, 0666) == 0;
  if (ok) ok = listen(fd, 128) == 0;
  if (!ok) {
    fprintf(stderr, "hoist serve: cannot listen on %s: %s\n", o->unix_path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  sv->ctl_fd = fd;
  if (uv_poll_init(sv->loop, &sv->ctl_poll, fd) != 0) {
    close(fd);
    unlink(o->unix_path);
    return -1;
  }
  sv->ctl_poll.data = sv;
  uv_poll_start(&sv->ctl_poll, UV_READABLE, on_listen);
  sv->ctl_open = 1;
  return 0;
}

static void on_listener_closed(uv_handle_t *h) {
  serve *sv = h->data;
  close(sv->ctl_fd);
  sv->ctl_fd = -1;
}

void control_close_listener(serve *sv) {
  if (!sv->ctl_open) return;
  sv->ctl_open = 0;
  uv_poll_stop(&sv->ctl_poll);
  uv_close((uv_handle_t *)&sv->ctl_poll, on_listener_closed);
  unlink(sv->o->unix_path);
}
