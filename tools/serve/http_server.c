/* http_server.c — hoist serve's HTTP transport on libuv: the TCP listener
 * (127.0.0.1 by default), a cap on connections (over it: 503 and close),
 * the read timeout that stops a slow client from holding a slot (408), the
 * keep-alive idle timeout, and the writes.  Requests themselves are parsed
 * and answered by http_proto.c. */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes a paused connection may hold back (a client pipelining behind a
 * reload); past this the client is cut off. */
#define MAX_PENDING 65536u

struct http_conn {
  serve *sv;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles;
  http_proto s;
  char *pending;          /* bytes not consumed while the connection waits */
  size_t pending_len;
  int request_timer;      /* the timer runs for a request being read */
  int closed;
  unsigned writes;        /* in flight */
  http_conn *next, **pprev;
};

typedef struct write_req {
  uv_write_t req;
  http_conn *h;
  char *data;
} write_req;

static void conn_close(http_conn *h);
static void feed(http_conn *h, const char *data, size_t n);

/* ------------------------------------------------------------------------ */
/* Output and timers */

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  http_conn *h = w->h;
  free(w->data);
  free(w);
  h->writes--;
  if (status < 0 || (h->s.closing && h->writes == 0)) conn_close(h);
}

static void on_timeout(uv_timer_t *t);

/* Arms the timer for what the connection waits for: the rest of a request
 * (read timeout, from its first byte), the next request (idle timeout), or
 * nothing while the server works on an action. */
static void arm_timer(http_conn *h) {
  serve_options *o = h->sv->o;
  if (h->s.waiting) {
    uv_timer_stop(&h->timer);
    h->request_timer = 0;
  } else if (h->s.in_request) {
    if (!h->request_timer) {
      h->request_timer = 1;
      uv_timer_start(&h->timer, on_timeout, (uint64_t)(o->read_timeout * 1000), 0);
    }
  } else {
    h->request_timer = 0;
    uv_timer_start(&h->timer, on_timeout, (uint64_t)(o->idle_timeout * 1000), 0);
  }
}

/* Sends what the protocol side wrote, then closes when it asked to. */
static void drain(http_conn *h) {
  if (h->closed) return;
  if (h->s.out_failed) {
    conn_close(h);
    return;
  }
  if (h->s.out_len > 0) {
    write_req *w = malloc(sizeof *w);
    if (w == NULL) {
      conn_close(h);
      return;
    }
    w->h = h;
    w->data = h->s.out;
    uv_buf_t buf = uv_buf_init(h->s.out, (unsigned)h->s.out_len);
    h->s.out = NULL;
    h->s.out_len = h->s.out_cap = 0;
    if (uv_write(&w->req, (uv_stream_t *)&h->tcp, &buf, 1, on_write) != 0) {
      free(w->data);
      free(w);
      conn_close(h);
      return;
    }
    h->writes++;
  }
  h->sv->http_requests_total += h->s.responses;
  h->s.responses = 0;
  if (h->s.closing) {
    uv_read_stop((uv_stream_t *)&h->tcp);
    uv_timer_stop(&h->timer);
    if (h->writes == 0) conn_close(h);
    return;
  }
  arm_timer(h);
}

static void on_timeout(uv_timer_t *t) {
  http_conn *h = t->data;
  http_proto_timeout(&h->s);
  drain(h);
}

/* ------------------------------------------------------------------------ */
/* Input */

static void feed(http_conn *h, const char *data, size_t n) {
  size_t used = http_proto_feed(&h->s, data, n);
  if (used < n && !h->s.closing) {
    /* Paused for an action: keep the rest and stop reading meanwhile. */
    size_t rest = n - used;
    char *p = rest + h->pending_len <= MAX_PENDING ? realloc(h->pending, h->pending_len + rest) : NULL;
    if (p == NULL) {
      conn_close(h);
      return;
    }
    memcpy(p + h->pending_len, data + used, rest);
    h->pending = p;
    h->pending_len += rest;
    uv_read_stop((uv_stream_t *)&h->tcp);
  }
  drain(h);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  static char slab[65536]; /* the loop reads one connection at a time */
  *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  http_conn *h = s->data;
  if (n < 0) {
    conn_close(h);
    return;
  }
  if (n > 0) feed(h, buf->base, (size_t)n);
}

void http_answer(http_conn *h, int status, const char *body) {
  if (h->closed) return;
  http_proto_complete(&h->s, status, body);
  drain(h);
  if (h->closed || h->s.closing) return;
  /* Resume: first what arrived while paused, then the socket. */
  char *p = h->pending;
  size_t n = h->pending_len;
  h->pending = NULL;
  h->pending_len = 0;
  if (n > 0) feed(h, p, n);
  free(p);
  if (!h->closed && !h->s.waiting && !h->s.closing)
    uv_read_start((uv_stream_t *)&h->tcp, on_alloc, on_read);
}

/* ------------------------------------------------------------------------ */
/* Connections */

static void on_closed(uv_handle_t *handle) {
  http_conn *h = handle->data;
  if (--h->handles > 0) return;
  http_proto_free(&h->s);
  free(h->pending);
  free(h);
}

static void conn_close(http_conn *h) {
  if (h->closed) return;
  h->closed = 1;
  serve *sv = h->sv;
  if (h->s.waiting) serve_forget_waiters(sv, NULL, h);
  *h->pprev = h->next;
  if (h->next != NULL) h->next->pprev = h->pprev;
  sv->nhttp--;
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, on_closed);
  uv_close((uv_handle_t *)&h->tcp, on_closed);
}

void http_close_all(serve *sv) {
  while (sv->https != NULL) conn_close(sv->https);
}

static void snapshot_cb(void *user, serve_snapshot *s) { serve_snapshot_take(user, s); }

static void refused_cb(void *user) { ((serve *)user)->http_rejected_total++; }

static void action_cb(void *user, http_proto *p, http_action a) {
  serve *sv = user;
  http_conn *h = (http_conn *)((char *)p - offsetof(http_conn, s));
  waiter w = {NULL, 0, h, NULL};
  if (a == HTTP_ACTION_RELOAD) serve_reload(sv, w);
  else serve_verify(sv, w);
}

static void on_connection(uv_stream_t *server, int status) {
  serve *sv = server->data;
  if (status < 0) return;
  http_conn *h = calloc(1, sizeof *h);
  if (h == NULL) return;
  h->sv = sv;
  uv_tcp_init(sv->loop, &h->tcp);
  uv_timer_init(sv->loop, &h->timer);
  h->handles = 2;
  h->tcp.data = h->timer.data = h;
  http_proto_init(&h->s, &sv->http_ops, sv, sv->o->token);
  h->next = sv->https;
  if (h->next != NULL) h->next->pprev = &h->next;
  h->pprev = &sv->https;
  sv->https = h;
  sv->nhttp++;
  if (uv_accept(server, (uv_stream_t *)&h->tcp) != 0) {
    conn_close(h);
    return;
  }
  uv_tcp_nodelay(&h->tcp, 1);
  if (sv->nhttp > sv->o->max_http) {
    http_proto_refuse_busy(&h->s);
    drain(h);
    return;
  }
  /* The first request must arrive within the read timeout too. */
  h->s.in_request = 0;
  h->request_timer = 1;
  uv_timer_start(&h->timer, on_timeout, (uint64_t)(sv->o->read_timeout * 1000), 0);
  uv_read_start((uv_stream_t *)&h->tcp, on_alloc, on_read);
}

int http_listen(serve *sv) {
  serve_options *o = sv->o;
  sv->http_ops = (http_proto_ops){snapshot_cb, action_cb, refused_cb};
  if (o->listen_host[0] == '\0') return 0;
  struct sockaddr_storage ss;
  int rc = strchr(o->listen_host, ':') != NULL
               ? uv_ip6_addr(o->listen_host, o->listen_port, (struct sockaddr_in6 *)&ss)
               : uv_ip4_addr(o->listen_host, o->listen_port, (struct sockaddr_in *)&ss);
  if (rc == 0) rc = uv_tcp_init(sv->loop, &sv->http);
  if (rc != 0) {
    fprintf(stderr, "hoist serve: --listen %s: %s\n", o->listen_host, uv_strerror(rc));
    return -1;
  }
  sv->http.data = sv;
  sv->http_open = 1;
  rc = uv_tcp_bind(&sv->http, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&sv->http, 511, on_connection);
  if (rc != 0) {
    fprintf(stderr, "hoist serve: cannot listen on %s:%d: %s\n", o->listen_host, o->listen_port,
            uv_strerror(rc));
    return -1;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&sv->http, (struct sockaddr *)&bound, &len);
  sv->http_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

void http_close_listener(serve *sv) {
  if (!sv->http_open) return;
  sv->http_open = 0;
  uv_close((uv_handle_t *)&sv->http, NULL);
}
