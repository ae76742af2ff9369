/* http_proto.c — hoist serve's HTTP request path (http_proto.h): the
 * http_parser callbacks that enforce the limits, the routes, the token
 * check and the response writer.  No sockets here. */
#include "http_proto.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_proto_init(http_proto *s, const http_proto_ops *ops, void *user,
                       const char *token) {
  memset(s, 0, sizeof *s);
  http_parser_init(&s->parser, HTTP_REQUEST);
  s->parser.data = s;
  s->ops = ops;
  s->user = user;
  s->token = token;
}

void http_proto_free(http_proto *s) {
  free(s->out);
  s->out = NULL;
  s->out_len = s->out_cap = 0;
}

/* ---- Responses */

static void out_put(http_proto *s, const char *p, size_t n) {
  if (s->out_failed) return;
  if (s->out_len + n > s->out_cap) {
    size_t cap = s->out_cap > 0 ? s->out_cap : 1024;
    while (cap < s->out_len + n) cap *= 2;
    char *o = realloc(s->out, cap);
    if (o == NULL) {
      s->out_failed = 1; /* the transport closes a connection that cannot answer */
      s->closing = 1;
      return;
    }
    s->out = o;
    s->out_cap = cap;
  }
  memcpy(s->out + s->out_len, p, n);
  s->out_len += n;
}

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 507: return "Insufficient Storage";
  default: return "Response";
  }
}

/* Writes a whole response; a JSON body unless type says otherwise. */
static void respond(http_proto *s, int status, const char *type, const char *body,
                    const char *extra) {
  char head[512];
  size_t blen = body != NULL ? strlen(body) : 0;
  if (s->closing) return; /* the last response said Connection: close */
  if (!s->keep_alive) s->closing = 1;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                   status, reason(status), type != NULL ? type : "application/json", blen,
                   s->closing ? "close" : "keep-alive", extra != NULL ? extra : "");
  out_put(s, head, (size_t)n);
  if (blen > 0) out_put(s, body, blen);
  s->responses++;
}

/* An error answer: {"error": msg}, and the connection closes when asked. */
static void respond_error(http_proto *s, int status, const char *msg, int close_after,
                          const char *extra) {
  char body[300];
  snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", msg);
  if (close_after) s->keep_alive = 0;
  respond(s, status, NULL, body, extra);
}

static void refuse(http_proto *s, int status, const char *msg) {
  if (s->ops->refused != NULL) s->ops->refused(s->user);
  s->keep_alive = 0;
  respond_error(s, status, msg, 1, NULL);
}

void http_proto_refuse_busy(http_proto *s) {
  refuse(s, 503, "too many connections");
}

void http_proto_timeout(http_proto *s) {
  if (s->in_request && !s->waiting) refuse(s, 408, "request not received in time");
  else s->closing = 1;
}

/* ---- Parser callbacks: they only collect and enforce limits. */

static http_proto *of(http_parser *p) { return p->data; }

static int on_message_begin(http_parser *p) {
  http_proto *s = of(p);
  s->in_request = 1;
  s->url_len = s->field_len = s->auth_len = 0;
  s->header_bytes = s->body_bytes = 0;
  s->header = 0;
  s->field_overlong = s->auth_overlong = 0;
  s->refuse = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  http_proto *s = of(p);
  if (len > HTTP_MAX_URL - s->url_len) {
    s->refuse = 414;
    return 1;
  }
  memcpy(s->url + s->url_len, at, len);
  s->url_len += len;
  s->url[s->url_len] = '\0';
  return 0;
}

static int count_header(http_proto *s, size_t len) {
  s->header_bytes += len;
  if (s->header_bytes > HTTP_MAX_HEADERS) {
    s->refuse = 431;
    return 1;
  }
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  http_proto *s = of(p);
  if (count_header(s, len) != 0) return 1;
  if (s->header != -1) { /* a new field begins (the previous callback was a value) */
    s->field_len = 0;
    s->field_overlong = 0;
    s->header = -1;
  }
  if (len > sizeof s->field - 1 - s->field_len) s->field_overlong = 1;
  else {
    memcpy(s->field + s->field_len, at, len);
    s->field_len += len;
  }
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  http_proto *s = of(p);
  if (count_header(s, len) != 0) return 1;
  if (s->header == -1) { /* the field's name is complete */
    s->field[s->field_len] = '\0';
    s->header = !s->field_overlong && strcasecmp(s->field, "authorization") == 0 ? 1 : 0;
    if (s->header == 1) s->auth_len = 0; /* the last Authorization wins */
  }
  if (s->header == 1) {
    if (len > sizeof s->auth - 1 - s->auth_len) s->auth_overlong = 1;
    else {
      memcpy(s->auth + s->auth_len, at, len);
      s->auth_len += len;
    }
  }
  return 0;
}

static int on_headers_complete(http_parser *p) {
  http_proto *s = of(p);
  if (p->upgrade) { /* no protocol switch here: refuse before routing */
    s->refuse = 400;
    return -1;
  }
  /* ULLONG_MAX: no Content-Length (a chunked body is counted in on_body). */
  if (p->content_length != ULLONG_MAX && p->content_length > HTTP_MAX_BODY) {
    s->refuse = 413;
    return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  http_proto *s = of(p);
  s->body_bytes += len;
  if (s->body_bytes > HTTP_MAX_BODY) {
    s->refuse = 413;
    return 1;
  }
  return 0;
}

/* ---- Routes */

/* Constant-time comparison of the presented token with the configured one:
 * the time depends on the configured token's length only. */
static int token_ok(const http_proto *s) {
  if (s->auth_overlong || s->auth_len < 7 || strncasecmp(s->auth, "Bearer ", 7) != 0) return 0;
  const char *got = s->auth + 7;
  size_t got_len = s->auth_len - 7;
  while (got_len > 0 && *got == ' ') got++, got_len--;
  size_t want_len = strlen(s->token);
  volatile unsigned char diff = (unsigned char)(got_len != want_len);
  for (size_t i = 0; i < want_len; i++)
    diff |= (unsigned char)(s->token[i] ^ (i < got_len ? got[i] : 0));
  return diff == 0;
}

static void get_route(http_proto *s, const char *path) {
  serve_snapshot snap;
  memset(&snap, 0, sizeof snap);
  int status = 200;
  char *body = NULL;
  const char *type = NULL;
  if (strcmp(path, "/healthz") == 0) {
    respond(s, 200, "text/plain; charset=utf-8", "ok\n", NULL);
    return;
  }
  s->ops->snapshot(s->user, &snap);
  if (strcmp(path, "/readyz") == 0) {
    body = render_readyz(&snap, &status);
  } else if (strcmp(path, "/v1/status") == 0) {
    body = render_status(&snap);
  } else {
    body = render_metrics(&snap);
    type = "text/plain; version=0.0.4; charset=utf-8";
  }
  serve_snapshot_free(&snap);
  if (body == NULL) respond_error(s, 500, "out of memory", 0, NULL);
  else respond(s, status, type, body, NULL);
  free(body);
}

static void route(http_proto *s) {
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (s->url_len == 0 || http_parser_parse_url(s->url, s->url_len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH))) {
    refuse(s, 400, "bad request target");
    return;
  }
  char path[HTTP_MAX_URL + 1];
  memcpy(path, s->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
  path[u.field_data[UF_PATH].len] = '\0';
  enum http_method m = (enum http_method)s->parser.method;
  static const char *const gets[] = {"/healthz", "/readyz", "/v1/status", "/metrics"};
  for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++)
    if (strcmp(path, gets[i]) == 0) {
      if (m == HTTP_GET) get_route(s, path);
      else respond_error(s, 405, "use GET", 0, "Allow: GET\r\n");
      return;
    }
  http_action a = strcmp(path, "/v1/reload") == 0   ? HTTP_ACTION_RELOAD
                  : strcmp(path, "/v1/verify") == 0 ? HTTP_ACTION_VERIFY
                                                    : 0;
  if (a == 0) {
    respond_error(s, 404, "no such endpoint", 0, NULL);
    return;
  }
  if (m != HTTP_POST) {
    respond_error(s, 405, "use POST", 0, "Allow: POST\r\n");
    return;
  }
  if (s->token == NULL) {
    respond_error(s, 403, "state changes over HTTP need the server started with --token-file", 0,
                  NULL);
    return;
  }
  if (!token_ok(s)) {
    respond_error(s, 401, "missing or wrong bearer token", 0,
                  "WWW-Authenticate: Bearer realm=\"hoist\"\r\n");
    return;
  }
  s->waiting = 1;
  http_parser_pause(&s->parser, 1);
  s->ops->action(s->user, s, a);
}

static int on_message_complete(http_parser *p) {
  http_proto *s = of(p);
  s->in_request = 0;
  s->keep_alive = http_should_keep_alive(p);
  route(s);
  return 0;
}

/* ---- Feeding */


size_t http_proto_feed(http_proto *s, const char *data, size_t n) {
  if (s->closing) return n;
  if (s->waiting) return 0;
  if (n > 0 && !s->in_request) s->in_request = 1; /* for the timeout, before the parser says so */
  size_t used = http_parser_execute(&s->parser, &settings, data, n);
  enum http_errno err = HTTP_PARSER_ERRNO(&s->parser);
  if (s->closing) return n;
  if (err == HPE_PAUSED && s->waiting) return used;
  if (err != HPE_OK) {
    int status = s->refuse != 0 ? s->refuse : err == HPE_HEADER_OVERFLOW ? 431 : 400;
    const char *msg = status == 414   ? "request target too long"
                      : status == 431 ? "request headers too large"
                      : status == 413 ? "request body too large"
                      : s->parser.upgrade ? "protocol upgrades are not supported"
                                      : http_errno_description(err);
    refuse(s, status, msg);
    return n;
  }
  if (s->parser.upgrade) {
    refuse(s, 400, "protocol upgrades are not supported");
    return n;
  }
  if (used < n) { /* http_parser stopped without an error: treat as malformed */
    refuse(s, 400, "malformed request");
    return n;
  }
  return used;
}

void http_proto_complete(http_proto *s, int status, const char *body) {
  if (!s->waiting) return;
  s->waiting = 0;
  respond(s, status, NULL, body, NULL);
  http_parser_pause(&s->parser, 0);
}
