/* fuzz_http.c — libFuzzer entry for hoist serve's HTTP request path
 * (tools/serve/http_proto.c and the renderers): the input is a byte
 * stream from one client, cut into reads at places the input's first
 * bytes choose, with state changes answered either at once or later (as
 * the server does).  Whatever the bytes, the output must be a
 * sequence of well-formed HTTP/1.1 responses (checked by http_parser in
 * response mode, Content-Length included), nothing may follow a response
 * that closes the connection, and an action must be answered before the
 * next request is read. */
#include "http_proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_http: invariant failed: %s\n", what);
    abort();
  }
}

typedef struct harness {
  http_proto s;
  int sync;             /* answer actions inside the callback */
  int pending;          /* an action waits for its answer */
  unsigned actions;
} harness;

static void snapshot(void *user, serve_snapshot *s) {
  memset(s, 0, sizeof *s);
  s->state = "ready";
  s->ready = 1;
  s->pipeline = "/models/\"quoted\"\npipe";
  s->device = "host";
  s->device_name = "host";
  s->generation = 3;
  s->bytes_done = s->bytes_total = 123456789;
  s->ncomps = 2;
  s->comps = calloc(2, sizeof *s->comps);
  if (s->comps == NULL) {
    s->ncomps = 0;
    return;
  }
  snprintf(s->comps[0].name, sizeof s->comps[0].name, "transformer");
  snprintf(s->comps[1].name, sizeof s->comps[1].name, "we\"ird\\name\n");
  s->comps[0].state = "resident";
  s->comps[1].state = "offloaded";
  s->comps[1].residency = 1;
  s->have_mem = 1;
  s->mem_total = 1000;
  s->mem_free = 400;
  s->ngens = 1;
  s->gens = calloc(1, sizeof *s->gens);
  if (s->gens != NULL) s->gens[0] = (serve_gen_snap){3, 1, 2};
  else s->ngens = 0;
  snprintf(s->error, sizeof s->error, "none");
}

static void action(void *user, http_proto *p, http_action a) {
  harness *h = user;
  check(a == HTTP_ACTION_RELOAD || a == HTTP_ACTION_VERIFY, "known action");
  check(p->token != NULL, "actions only with a token");
  check(!h->pending, "one action at a time");
  h->actions++;
  if (h->sync) http_proto_complete(p, 503, "{\"error\":\"busy\"}");
  else h->pending = 1;
}

static void refused(void *user) {}

static const http_proto_ops ops = {snapshot, action, refused};

/* ---- Checking the output with http_parser as a client would. */

typedef struct out_check {
  int complete;
  int close_seen;
} out_check;

static int on_complete(http_parser *p) {
  out_check *c = p->data;
  check(!c->close_seen, "a response after Connection: close");
  c->complete++;
  if (!http_should_keep_alive(p)) c->close_seen = 1;
  return 0;
}

/* closing: the connection closes; said: it closed by a response (not a quiet
 * timeout of an idle connection). */
static void check_output(const char *out, size_t n, int closing, int said) {
  http_parser p;
  http_parser_settings st;
  memset(&st, 0, sizeof st);
  st.on_message_complete = on_complete;
  out_check c = {0, 0};
  http_parser_init(&p, HTTP_RESPONSE);
  p.data = &c;
  size_t used = http_parser_execute(&p, &st, out, n);
  check(HTTP_PARSER_ERRNO(&p) == HPE_OK && used == n, "responses parse");
  check(n == 0 || c.complete > 0, "whole responses only");
  check(!said || c.close_seen, "a refusal says Connection: close");
  check(!c.close_seen || closing, "Connection: close only when closing");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  harness h;
  memset(&h, 0, sizeof h);
  h.sync = data[0] & 1;
  const char *token = (data[0] & 2) ? "tok" : NULL;
  size_t step = (size_t)data[1] % 64 + 1; /* read sizes */
  data += 2;
  size -= 2;
  http_proto_init(&h.s, &ops, &h, token);
  char *all = NULL; /* everything written, checked at the end */
  size_t all_len = 0;
  char *rest = NULL; /* bytes held back while an action runs */
  size_t rest_len = 0;
  size_t at = 0;
  while ((at < size || rest_len > 0) && !h.s.closing) {
    const char *chunk;
    size_t n;
    if (rest_len > 0 && !h.s.waiting) {
      chunk = rest;
      n = rest_len;
    } else if (at < size && !h.s.waiting) {
      chunk = (const char *)data + at;
      n = size - at < step ? size - at : step;
      at += n;
    } else {
      break;
    }
    size_t used = http_proto_feed(&h.s, chunk, n);
    check(used <= n, "consumed at most what was fed");
    if (used < n) {
      check(h.s.waiting && h.pending, "holds bytes back only while an action waits");
      char *r = malloc(n - used);
      check(r != NULL, "memory");
      memcpy(r, chunk + used, n - used);
      free(rest);
      rest = r;
      rest_len = n - used;
    } else if (chunk == rest) {
      free(rest);
      rest = NULL;
      rest_len = 0;
    }
    if (h.pending) {
      h.pending = 0;
      http_proto_complete(&h.s, 200, "{\"ok\":true}\n");
    }
    if (h.s.out_len > 0) {
      all = realloc(all, all_len + h.s.out_len);
      check(all != NULL, "memory");
      memcpy(all + all_len, h.s.out, h.s.out_len);
      all_len += h.s.out_len;
      h.s.out_len = 0;
    }
  }
  int closed_before = h.s.closing;
  int was_reading = h.s.in_request;
  http_proto_timeout(&h.s);
  if (h.s.out_len > 0) {
    all = realloc(all, all_len + h.s.out_len);
    check(all != NULL, "memory");
    memcpy(all + all_len, h.s.out, h.s.out_len);
    all_len += h.s.out_len;
  }
  check_output(all, all_len, h.s.closing, closed_before || was_reading);
  free(all);
  free(rest);
  http_proto_free(&h.s);
  return 0;
}
