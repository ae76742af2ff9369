/* attach.c — the client side of hoist serve: hoist_attach connects to the
 * control socket, receives the tensor table and one descriptor (or CUDA
 * IPC handle) per arena (hoist_wire.h), opens every arena once through the
 * device backend's share_open (a descriptor mapped read-only: a CUDA
 * virtual-memory allocation, or a memfd on the host backend; or a CUDA IPC
 * handle) and answers lookups from the table, as hoist_loaded does for a
 * load in this process.
 *
 * The connection is plain blocking I/O with poll() deadlines: a client
 * makes one request at a time.  Notices the server sends between replies
 * (shutdown, a new generation) are kept for hoist_attached_poll.  Order of
 * teardown matters on a GPU: the arenas are closed here before the server
 * hears of the detach, because the server frees them as soon as the last
 * holder is gone. */
#include "device.h"
#include "safetensors.h"
#include "hoist_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Longest wait for the server's acknowledgement of a detach. */
#define DETACH_WAIT_SECONDS 10.0
/* Descriptors the client keeps queued between reads: one message's worth,
 * twice (a partial read may bring the next message's too). */
#define FD_QUEUE (2 * HOIST_WIRE_MAX_FDS)

struct hoist_attached {
  int sock;
  uv_mutex_t lock;      /* one request at a time, and poll */
  uint32_t next_id;
  double timeout;       /* hoist_attach_options.timeout_seconds */
  hoist_runtime *rt;    /* this process's view of the server's device */
  hoist__wire_table *table;
  hoist_loaded_info *infos;
  uint64_t (*local)[HOIST_WIRE_MAX_ARENAS]; /* arena addresses here, per component */
  char device[32];
  unsigned events;      /* HOIST_ATTACHED_* not yet polled */
  int broken;           /* the connection is unusable (closed or a protocol error) */
  unsigned char *rx;    /* received bytes not yet consumed */
  size_t rx_len, rx_cap;
  int fds[FD_QUEUE];    /* received descriptors not yet consumed, in order */
  size_t nfds;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void close_queued_fds(hoist_attached *a) {
  for (size_t i = 0; i < a->nfds; i++) close(a->fds[i]);
  a->nfds = 0;
}

/* ------------------------------------------------------------------------ */
/* Transport */

static int send_all(hoist_attached *a, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(a->sock, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      a->broken = 1;
      return hoist__fail(NULL, HOIST_CLOSED, "attach: the server closed the connection (%s)",
                        w < 0 ? strerror(errno) : "EOF");
    }
    p += w;
    n -= (size_t)w;
  }
  return HOIST_OK;
}

/* One recvmsg: appends bytes to rx and descriptors to the queue.  wait_ms
 * < 0 blocks; 0 returns HOIST_NOT_READY at once when nothing is there. */
static int receive(hoist_attached *a, int wait_ms) {
  struct pollfd pfd = {a->sock, POLLIN, 0};
  int pr;
  do pr = poll(&pfd, 1, wait_ms);
  while (pr < 0 && errno == EINTR);
  if (pr == 0) return HOIST_NOT_READY;
  if (pr < 0) return hoist__fail(NULL, HOIST_IO, "attach: poll: %s", strerror(errno));
  if (a->rx_cap - a->rx_len < 65536) {
    size_t cap = a->rx_cap > 0 ? a->rx_cap * 2 : 131072;
    if (cap > HOIST_WIRE_MAX_REPLY + 2 * 65536 + HOIST_WIRE_HEADER_BYTES)
      return hoist__fail(NULL, HOIST_PROTOCOL, "attach: the server sent more than a message holds");
    unsigned char *rx = realloc(a->rx, cap);
    if (rx == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "attach: out of memory");
    a->rx = rx;
    a->rx_cap = cap;
  }
  union {
    struct cmsghdr h;
    unsigned char b[CMSG_SPACE(HOIST_WIRE_MAX_FDS * sizeof(int))];
  } ctl;
  struct iovec iov = {a->rx + a->rx_len, a->rx_cap - a->rx_len};
  struct msghdr m = {0};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.b;
  m.msg_controllen = sizeof ctl.b;
  ssize_t n;
  do n = recvmsg(a->sock, &m, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  int rc = HOIST_OK;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (a->nfds < FD_QUEUE) a->fds[a->nfds++] = fd;
      else {
        close(fd);
        rc = HOIST_PROTOCOL;
      }
    }
  }
  if (rc == HOIST_OK && (m.msg_flags & MSG_CTRUNC)) rc = HOIST_PROTOCOL;
  if (rc != HOIST_OK) {
    a->broken = 1;
    return hoist__fail(NULL, rc, "attach: the server sent more descriptors than a message carries");
  }
  if (n <= 0) {
    a->broken = 1;
    a->events |= HOIST_ATTACHED_CLOSED;
    return hoist__fail(NULL, HOIST_CLOSED, "attach: the server closed the connection%s%s",
                      n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
  }
  a->rx_len += (size_t)n;
  return HOIST_OK;
}

/* The next whole message, read until deadline (< 0: none; 0: only what is
 * there).  Its payload stays in rx until consume(). */
static int next_message(hoist_attached *a, double deadline, hoist__wire_header *h) {
  for (;;) {
    if (a->rx_len >= HOIST_WIRE_HEADER_BYTES) {
      char why[200];
      if (hoist__wire_header_parse(a->rx, 0, h, why, sizeof why) != HOIST_OK) {
        a->broken = 1;
        return hoist__fail(NULL, HOIST_PROTOCOL, "attach: %s", why);
      }
      if (a->rx_len - HOIST_WIRE_HEADER_BYTES >= h->length) return HOIST_OK;
    }
    int wait_ms = -1;
    if (deadline == 0) wait_ms = 0;
    else if (deadline > 0) {
      double left = deadline - now_seconds();
      if (left <= 0)
        return hoist__fail(NULL, HOIST_NOT_READY, "attach: no answer from the server in time");
      wait_ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
    }
    int rc = receive(a, wait_ms);
    if (rc == HOIST_NOT_READY) {
      if (deadline == 0) return rc;
      continue;
    }
    if (rc != HOIST_OK) return rc;
  }
}

static void consume(hoist_attached *a, const hoist__wire_header *h) {
  size_t n = HOIST_WIRE_HEADER_BYTES + h->length;
  memmove(a->rx, a->rx + n, a->rx_len - n);
  a->rx_len -= n;
}

/* Records a notice; anything else with id 0 breaks the protocol. */
static int take_notice(hoist_attached *a, const hoist__wire_header *h) {
  hoist__rbuf r = {a->rx + HOIST_WIRE_HEADER_BYTES, h->length, 0, NULL};
  (void)hoist__rbuf_u32(&r, "notice");
  if ((h->type != HOIST_WIRE_SHUTDOWN && h->type != HOIST_WIRE_GENERATION) || r.bad != NULL ||
      r.at != r.len) {
    a->broken = 1;
    return hoist__fail(NULL, HOIST_PROTOCOL, "attach: unexpected message %u from the server",
                      h->type);
  }
  a->events |= h->type == HOIST_WIRE_SHUTDOWN ? HOIST_ATTACHED_SHUTDOWN : HOIST_ATTACHED_RELOADED;
  consume(a, h);
  return HOIST_OK;
}

/* Sends a request (type, optional component name or flags) and reads until
 * its reply, keeping notices.  An ERROR reply becomes its status; the
 * reply's header is in *h and its payload in rx until consume(). */
static int transact(hoist_attached *a, uint16_t type, const char *component, uint32_t flags,
                    double timeout, hoist__wire_header *h) {
  if (a->broken)
    return hoist__fail(NULL, HOIST_CLOSED, "attach: the connection to the server is gone");
  uint32_t id = ++a->next_id;
  if (id == 0) id = a->next_id = 1;
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, type, id);
  if (type == HOIST_WIRE_ATTACH) hoist__wbuf_u32(&b, flags);
  if (component != NULL) hoist__wbuf_str(&b, component);
  int rc = hoist__wbuf_end(&b) == 0 ? send_all(a, b.data, b.len)
                                   : hoist__fail(NULL, HOIST_NO_MEMORY, "attach: out of memory");
  hoist__wbuf_free(&b);
  double deadline = timeout > 0 ? now_seconds() + timeout : -1;
  /* A server that refused the connection (another uid) may have closed it
   * before the request went out: its ERROR is still there to read. */
  if (rc == HOIST_CLOSED && next_message(a, 0, h) == HOIST_OK && h->type == HOIST_WIRE_ERROR)
    rc = HOIST_OK;
  while (rc == HOIST_OK) {
    if ((rc = next_message(a, deadline, h)) != HOIST_OK) break;
    if (h->id == 0 && h->type != HOIST_WIRE_ERROR) {
      rc = take_notice(a, h);
      continue;
    }
    if (h->id != id && h->id != 0) {
      a->broken = 1;
      return hoist__fail(NULL, HOIST_PROTOCOL, "attach: a reply to request %u, expected %u", h->id,
                        id);
    }
    if (h->type != HOIST_WIRE_ERROR) return HOIST_OK;
    /* An ERROR with id 0 is about the connection (a refused uid, a frame
     * the server could not read): it closes after it. */
    int status = HOIST_PROTOCOL;
    char msg[HOIST_ERROR_MAX];
    if (hoist__wire_error_decode(a->rx + HOIST_WIRE_HEADER_BYTES, h->length, &status, msg,
                                sizeof msg) != HOIST_OK || h->id == 0)
      a->broken = 1;
    consume(a, h);
    return hoist__fail(NULL, status, "%s", msg);
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Arenas */

/* Opens the arenas of component i described in the table, taking one
 * queued descriptor for each arena that travels as one. */
static int open_arenas(hoist_attached *a, size_t i) {
  hoist__wire_component *c = &a->table->comps[i];
  hoist__device *d = a->rt->dev;
  size_t nfds = hoist__wire_component_fds(c);
  int rc = HOIST_OK;
  char shown[160];
  hoist__show(c->name, shown, sizeof shown); /* names from another process */
  if (a->nfds < nfds) {
    a->broken = 1;
    return hoist__fail(NULL, HOIST_PROTOCOL, "attach: %s: %zu arenas by descriptor but %zu "
                      "descriptors", shown, nfds, a->nfds);
  }
  uint32_t k = 0;
  size_t taken = 0;
  for (; k < c->narenas && rc == HOIST_OK; k++) {
    bool by_fd = hoist__wire_arena_by_fd(&c->arenas[k]);
    hoist__share_handle h = {by_fd ? a->fds[taken++] : -1, {0}};
    memcpy(h.blob, c->arenas[k].handle, sizeof h.blob);
    rc = d->ops->share_open(d, &h, c->arenas[k].bytes, &a->local[i][k]);
    if (rc != HOIST_OK) rc = hoist__fail(NULL, rc, "attach: %s: %s", shown, hoist_last_error(a->rt));
  }
  /* The mappings keep the memory; the descriptors go. */
  for (size_t j = 0; j < nfds; j++) close(a->fds[j]);
  memmove(a->fds, a->fds + nfds, (a->nfds - nfds) * sizeof *a->fds);
  a->nfds -= nfds;
  if (rc != HOIST_OK) {
    for (uint32_t j = 0; j + 1 < k; j++) d->ops->share_close(d, a->local[i][j], c->arenas[j].bytes);
    memset(a->local[i], 0, sizeof a->local[i]);
    c->narenas = 0;
    return rc;
  }
  hoist_loaded_info *info = &a->infos[i];
  info->device_bytes = 0;
  for (uint32_t j = 0; j < c->narenas; j++) info->device_bytes += c->arenas[j].bytes;
  info->device_begin = c->narenas > 0 ? a->local[i][0] : 0;
  info->device_end = c->narenas > 0 ? a->local[i][0] + c->arenas[0].bytes : 0;
  return HOIST_OK;
}

static void close_arenas(hoist_attached *a, size_t i) {
  hoist__wire_component *c = &a->table->comps[i];
  for (uint32_t k = 0; k < c->narenas; k++)
    a->rt->dev->ops->share_close(a->rt->dev, a->local[i][k], c->arenas[k].bytes);
  memset(a->local[i], 0, sizeof a->local[i]);
  c->narenas = 0;
  a->infos[i].device_bytes = 0;
  a->infos[i].device_begin = a->infos[i].device_end = 0;
}

/* ------------------------------------------------------------------------ */
/* Attach and detach */

static int connect_to(const char *path, int *out) {
  struct sockaddr_un sa = {0};
  sa.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa.sun_path)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "attach: socket path longer than %zu bytes",
                      sizeof sa.sun_path - 1);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return hoist__fail(NULL, HOIST_IO, "attach: socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    int st = e == ENOENT ? HOIST_NOT_FOUND
             : e == EACCES || e == EPERM ? HOIST_DENIED
             : e == ECONNREFUSED ? HOIST_CLOSED
                                 : HOIST_IO;
    char shown[160];
    return hoist__fail(NULL, st, "attach: cannot connect to %s: %s",
                      hoist__show(path, shown, sizeof shown), strerror(e));
  }
  *out = fd;
  return HOIST_OK;
}

/* Frees everything a holds; the arenas must be closed already. */
static void attached_free(hoist_attached *a) {
  if (a->sock >= 0) close(a->sock);
  close_queued_fds(a);
  hoist__wire_table_free(a->table);
  free(a->infos);
  free(a->local);
  free(a->rx);
  hoist_runtime_close(a->rt);
  uv_mutex_destroy(&a->lock);
  free(a);
}

/* Turns an ATTACHED payload into the table, this process's device and the
 * open arenas of every component that has them. */
static int take_table(hoist_attached *a, const hoist__wire_header *h) {
  char why[300];
  int rc = hoist__wire_table_decode(a->rx + HOIST_WIRE_HEADER_BYTES, h->length, &a->table, why,
                                   sizeof why);
  consume(a, h);
  if (rc != HOIST_OK) {
    a->broken = 1;
    return hoist__fail(NULL, rc, "attach: %s", rc == HOIST_PROTOCOL ? why : "out of memory");
  }
  size_t n = a->table->ncomps;
  a->infos = calloc(n > 0 ? n : 1, sizeof *a->infos);
  a->local = calloc(n > 0 ? n : 1, sizeof *a->local);
  if (a->infos == NULL || a->local == NULL)
    return hoist__fail(NULL, HOIST_NO_MEMORY, "attach: out of memory");
  if ((rc = hoist__device_spec_for(a->table->device, a->table->locator, a->device,
                                  sizeof a->device)) != HOIST_OK)
    return rc;
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = a->device;
  if ((rc = hoist_runtime_create(&cfg, &a->rt)) != HOIST_OK) return rc;
  for (size_t i = 0; i < n; i++) {
    const hoist__wire_component *c = &a->table->comps[i];
    a->infos[i] = (hoist_loaded_info){c->name, c->residency, c->bytes, 0, 0, 0,
                                      (double)c->micros / 1e6, c->ntensors};
  }
  /* Every arena's descriptor came with the message: check the count before
   * mapping any. */
  if (a->nfds != hoist__wire_table_fds(a->table)) {
    a->broken = 1;
    return hoist__fail(NULL, HOIST_PROTOCOL, "attach: %zu arenas but %zu descriptors",
                      hoist__wire_table_fds(a->table), a->nfds);
  }
  size_t i = 0;
  for (; i < n && rc == HOIST_OK; i++) rc = open_arenas(a, i);
  if (rc != HOIST_OK)
    while (i-- > 0) close_arenas(a, i);
  return rc;
}

int hoist_attach(const char *socket_path, hoist_attached **out) {
  return hoist_attach_ex(socket_path, NULL, out);
}

int hoist_attach_ex(const char *socket_path, const hoist_attach_options *opts,
                    hoist_attached **out) {
  hoist_attach_options defaults = HOIST_ATTACH_OPTIONS_INIT;
  const hoist_attach_options *o = opts != NULL ? opts : &defaults;
  *out = NULL;
  if (socket_path == NULL || socket_path[0] == '\0')
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "attach: no socket path");
  if (o->struct_size != sizeof(hoist_attach_options))
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "hoist_attach_options.struct_size mismatch (use HOIST_ATTACH_OPTIONS_INIT)");
  hoist_attached *a = calloc(1, sizeof *a);
  if (a == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "attach: out of memory");
  a->sock = -1;
  a->timeout = o->timeout_seconds;
  if (uv_mutex_init(&a->lock) != 0) {
    free(a);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "attach: cannot create a mutex");
  }
  hoist__wire_header h;
  int rc = connect_to(socket_path, &a->sock);
  if (rc == HOIST_OK)
    rc = transact(a, HOIST_WIRE_ATTACH, NULL, o->no_wait ? HOIST_WIRE_FLAG_NO_WAIT : 0,
                  o->timeout_seconds, &h);
  if (rc == HOIST_OK && h.type != HOIST_WIRE_ATTACHED) {
    rc = hoist__fail(NULL, HOIST_PROTOCOL, "attach: the server answered ATTACH with message %u",
                    h.type);
    a->broken = 1;
  }
  if (rc == HOIST_OK) rc = take_table(a, &h);
  if (rc != HOIST_OK) {
    attached_free(a); /* the server drops its references when the socket closes */
    return rc;
  }
  *out = a;
  return HOIST_OK;
}

void hoist_detach(hoist_attached *a) {
  if (a == NULL) return;
  uv_mutex_lock(&a->lock);
  for (size_t i = 0; i < a->table->ncomps; i++) close_arenas(a, i);
  /* Wait for the acknowledgement, so that when this returns the server has
   * dropped this client's references (a reload's old arenas are freed). */
  hoist__wire_header h;
  double wait = a->timeout > 0 && a->timeout < DETACH_WAIT_SECONDS ? a->timeout : DETACH_WAIT_SECONDS;
  if (!a->broken && transact(a, HOIST_WIRE_DETACH, NULL, 0, wait, &h) == HOIST_OK) consume(a, &h);
  uv_mutex_unlock(&a->lock);
  attached_free(a);
}

/* ------------------------------------------------------------------------ */
/* Lookups */

size_t hoist_attached_component_count(const hoist_attached *a) { return a->table->ncomps; }

const hoist_loaded_info *hoist_attached_component(const hoist_attached *a, size_t i) {
  return i < a->table->ncomps ? &a->infos[i] : NULL;
}

const char *hoist_attached_device(const hoist_attached *a) { return a->device; }
uint32_t hoist_attached_generation(const hoist_attached *a) { return a->table->generation; }
int hoist_attached_fd(const hoist_attached *a) { return a->sock; }

/* The address of t of component i here, or UNSUPPORTED when unmapped. */
static int locate(const hoist_attached *a, size_t i, const hoist__wire_tensor *t,
                  uint64_t *device_addr, const hoist_tensor_info **info) {
  const hoist__wire_component *c = &a->table->comps[i];
  char shown[160];
  if (info != NULL) *info = &t->info;
  if (c->narenas == 0)
    return hoist__fail(NULL, HOIST_UNSUPPORTED, "%s: offloaded; call hoist_attached_prepare",
                      hoist__show(c->name, shown, sizeof shown));
  uint32_t k = c->narenas - 1;
  while (k > 0 && t->span_off < c->arenas[k].span_begin) k--;
  *device_addr = a->local[i][k] + (t->span_off - c->arenas[k].span_begin);
  return HOIST_OK;
}

int hoist_attached_tensor_at(const hoist_attached *a, size_t i, size_t j, uint64_t *device_addr,
                             const hoist_tensor_info **info) {
  *device_addr = 0;
  if (i >= a->table->ncomps || j >= a->table->comps[i].ntensors)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "no tensor %zu of component %zu", j, i);
  return locate(a, i, a->table->comps[i].by_name[j], device_addr, info);
}

int hoist_attached_tensor(const hoist_attached *a, const char *component, const char *tensor,
                          uint64_t *device_addr, const hoist_tensor_info **info) {
  *device_addr = 0;
  char shown[160];
  for (size_t i = 0; i < a->table->ncomps; i++) {
    const hoist__wire_component *c = &a->table->comps[i];
    if (strcmp(c->name, component) != 0) continue;
    const hoist__wire_tensor *t = hoist__wire_find(c, tensor);
    char comp[160];
    if (t == NULL)
      return hoist__fail(NULL, HOIST_NOT_FOUND, "%s: no tensor '%s'",
                        hoist__show(c->name, comp, sizeof comp),
                        hoist__show(tensor, shown, sizeof shown));
    return locate(a, i, t, device_addr, info);
  }
  return hoist__fail(NULL, HOIST_NOT_FOUND, "no component '%s'",
                    hoist__show(component, shown, sizeof shown));
}

/* ------------------------------------------------------------------------ */
/* Prepare, release, poll */

int hoist_attached_prepare(hoist_attached *a, size_t i) {
  if (i >= a->table->ncomps)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "prepare: no component %zu", i);
  hoist__wire_component *c = &a->table->comps[i];
  if (c->residency != HOIST_OFFLOAD || c->narenas > 0) return HOIST_OK;
  uv_mutex_lock(&a->lock);
  hoist__wire_header h;
  int rc = transact(a, HOIST_WIRE_PREPARE, c->name, 0, 0, &h);
  if (rc == HOIST_OK && h.type != HOIST_WIRE_PREPARED) {
    a->broken = 1;
    rc = hoist__fail(NULL, HOIST_PROTOCOL, "prepare: answered with message %u", h.type);
  }
  if (rc == HOIST_OK) {
    char why[300];
    rc = hoist__wire_prepared_decode(a->rx + HOIST_WIRE_HEADER_BYTES, h.length, c, why, sizeof why);
    consume(a, &h);
    if (rc != HOIST_OK) {
      a->broken = 1;
      rc = hoist__fail(NULL, rc, "prepare: %s", why);
    } else if (a->nfds != hoist__wire_component_fds(c)) { /* only PREPARED carries them now */
      a->broken = 1;
      rc = hoist__fail(NULL, HOIST_PROTOCOL, "prepare: %zu arenas by descriptor but %zu descriptors",
                      hoist__wire_component_fds(c), a->nfds);
      close_queued_fds(a);
      c->narenas = 0;
    }
  }
  if (rc == HOIST_OK) rc = open_arenas(a, i);
  uv_mutex_unlock(&a->lock);
  return rc;
}

int hoist_attached_release(hoist_attached *a, size_t i) {
  if (i >= a->table->ncomps)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "release: no component %zu", i);
  hoist__wire_component *c = &a->table->comps[i];
  if (c->residency != HOIST_OFFLOAD || c->narenas == 0) return HOIST_OK;
  uv_mutex_lock(&a->lock);
  close_arenas(a, i); /* before the server may free them */
  hoist__wire_header h;
  int rc = transact(a, HOIST_WIRE_RELEASE, c->name, 0, a->timeout, &h);
  if (rc == HOIST_OK) {
    if (h.type != HOIST_WIRE_RELEASED) {
      a->broken = 1;
      rc = hoist__fail(NULL, HOIST_PROTOCOL, "release: answered with message %u", h.type);
    }
    consume(a, &h);
  }
  uv_mutex_unlock(&a->lock);
  return rc;
}

int hoist_attached_poll(hoist_attached *a, unsigned *events) {
  uv_mutex_lock(&a->lock);
  int rc = HOIST_OK;
  hoist__wire_header h;
  while (!a->broken) {
    rc = next_message(a, 0, &h);
    if (rc == HOIST_NOT_READY || rc == HOIST_CLOSED) {
      rc = HOIST_OK;
      break;
    }
    if (rc == HOIST_OK) rc = take_notice(a, &h);
    if (rc != HOIST_OK) break;
  }
  if (a->broken) a->events |= HOIST_ATTACHED_CLOSED;
  *events = a->events;
  a->events = 0;
  uv_mutex_unlock(&a->lock);
  return rc;
}
