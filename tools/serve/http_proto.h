/* http_proto.h — one HTTP/1.1 connection of hoist serve as a pure state
 * machine: bytes in (parsed by http_parser, Debian's libhttp-parser), a
 * response out, and flags saying when to close.  The libuv transport
 * (http_server.c) moves bytes and runs timers; the fuzzer feeds bytes
 * directly.
 *
 * Limits: the request line's URL at most 2 KiB (414), all header bytes at
 * most 8 KiB (431), a body at most 4 KiB (413: no endpoint takes one),
 * anything http_parser rejects is 400.  Every refusal answers and closes.
 * Routes: GET /healthz, /readyz, /v1/status, /metrics; POST /v1/reload and
 * /v1/verify with "Authorization: Bearer TOKEN" (401 without or with a
 * wrong one, compared in constant time; 403 when the server has no token).
 * POST routes are asynchronous: the connection pauses until the server calls
 * http_proto_complete. */
#ifndef HOIST_SERVE_HTTP_PROTO_H
#define HOIST_SERVE_HTTP_PROTO_H

#include "snapshot.h"

#include <http_parser.h>
#include <stddef.h>

#define HTTP_MAX_URL 2048u
#define HTTP_MAX_HEADERS 8192u
#define HTTP_MAX_BODY 4096u
#define HTTP_MAX_TOKEN 256u

typedef enum http_action { HTTP_ACTION_RELOAD = 1, HTTP_ACTION_VERIFY = 2 } http_action;

typedef struct http_proto http_proto;

/* What the protocol side asks of the server. */
typedef struct http_proto_ops {
  /* Fills *s (freed by it with serve_snapshot_free). */
  void (*snapshot)(void *user, serve_snapshot *s);
  /* Starts an authorized state change; the server answers with
   * http_proto_complete(p, ...), at once or later, unless the connection
   * closes first. */
  void (*action)(void *user, http_proto *p, http_action a);
  /* Counts a request refused before routing (malformed, too large). */
  void (*refused)(void *user);
} http_proto_ops;

struct http_proto {
  http_parser parser;
  const http_proto_ops *ops;
  void *user;
  const char *token;       /* NULL: POST routes are forbidden */
  /* The request being read. */
  char url[HTTP_MAX_URL + 1];
  size_t url_len;
  int header;              /* which header's value is being read: 0 other, 1 authorization */
  char field[32];
  size_t field_len;
  int field_overlong;
  char auth[HTTP_MAX_TOKEN + 16];
  size_t auth_len;
  int auth_overlong;
  size_t header_bytes, body_bytes;
  int in_request;          /* bytes of a request have arrived and it is not complete */
  int refuse;              /* the HTTP status a limit chose (414, 431, 413) */
  /* State. */
  int waiting;             /* an action is running; the parser is paused */
  int keep_alive;          /* of the request being answered */
  int closing;             /* close once out is written; ignore further input */
  /* Response bytes not yet taken by the transport. */
  char *out;
  size_t out_len, out_cap;
  int out_failed;
  unsigned responses;      /* responses written since the transport last looked */
};

void http_proto_init(http_proto *s, const http_proto_ops *ops, void *user,
                       const char *token);
void http_proto_free(http_proto *s);
/* Parses n bytes.  Returns how many were consumed: fewer than n when an
 * action paused the connection (the transport keeps the rest and feeds it
 * again after http_proto_complete), all of them otherwise (after a
 * refusal the rest is ignored). */
size_t http_proto_feed(http_proto *s, const char *data, size_t n);
/* Answers the paused action and resumes. */
void http_proto_complete(http_proto *s, int status, const char *body);
/* The read timeout fired: 408 when a request was partly read, else a
 * quiet close. */
void http_proto_timeout(http_proto *s);
/* Refuses the connection at once (the server is over its cap). */
void http_proto_refuse_busy(http_proto *s);

#endif
