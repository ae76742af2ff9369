/* fuzz_control.c — libFuzzer entry for the control socket's messages
 * (runtime/share_wire.c), both directions.  The first input byte picks
 * the view: a client's byte stream as the server frames and decodes it, a
 * server's stream as the client does (ATTACHED tables, PREPARED arena
 * lists, ERROR messages, notices), or a bare ATTACHED payload.  Whatever
 * decodes must be consistent (every tensor found by its name and inside
 * one arena, names NUL-free, messages on one line), and a decoded table
 * must survive a round trip through the encoders unchanged. */
#include "hoist_tools.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_control: invariant failed: %s\n", what);
    abort();
  }
}

static void check_component(const hoist__wire_component *c) {
  check(c->name != NULL && c->name[0] != '\0' && strlen(c->name) <= HOIST_WIRE_MAX_NAME, "name");
  check(c->narenas <= HOIST_WIRE_MAX_ARENAS, "arena count");
  uint64_t begin = 0;
  for (uint32_t k = 0; k < c->narenas; k++) {
    check(c->arenas[k].span_begin == begin && c->arenas[k].bytes > 0, "arenas tile the span");
    begin += c->arenas[k].bytes;
  }
  for (size_t j = 0; j < c->ntensors; j++) {
    const hoist__wire_tensor *t = &c->tensors[j];
    check(hoist__wire_find(c, t->info.name) == t, "lookup by name");
    check((uint64_t)t->info.nelements * hoist_dtype_bits(t->info.dtype) == t->info.nbytes * 8,
          "bytes from shape");
    check(t->info.ndim <= HOIST_WIRE_MAX_NDIM, "ndim");
    if (c->narenas > 0) check(t->span_off + t->info.nbytes <= begin, "inside the arenas");
  }
}

/* Encodes t again and decodes the result: it must be the same table. */
static void round_trip(const hoist__wire_table *t) {
  hoist__wbuf b = {0};
  hoist__wbuf_begin(&b, HOIST_WIRE_ATTACHED, 1);
  hoist__wbuf_u32(&b, t->generation);
  hoist__wbuf_str(&b, t->device);
  hoist__wbuf_str(&b, t->locator);
  hoist__wbuf_u32(&b, (uint32_t)t->ncomps);
  for (size_t i = 0; i < t->ncomps; i++) {
    const hoist__wire_component *c = &t->comps[i];
    uint64_t bytes[HOIST_WIRE_MAX_ARENAS];
    unsigned char handles[HOIST_WIRE_MAX_ARENAS][HOIST_WIRE_HANDLE_BYTES];
    for (uint32_t k = 0; k < c->narenas; k++) {
      bytes[k] = c->arenas[k].bytes;
      memcpy(handles[k], c->arenas[k].handle, HOIST_WIRE_HANDLE_BYTES);
    }
    hoist__wire_put_component(&b, c->name, c->residency, c->bytes, c->device_bytes, c->micros);
    hoist__wire_put_arenas(&b, c->narenas, bytes, (const unsigned char(*)[HOIST_WIRE_HANDLE_BYTES])handles);
    hoist__wbuf_u32(&b, (uint32_t)c->ntensors);
    for (size_t j = 0; j < c->ntensors; j++) hoist__wire_put_tensor(&b, &c->tensors[j].info, c->tensors[j].span_off);
  }
  if (hoist__wbuf_end(&b) != 0) { /* only allocation can fail for a decoded table */
    hoist__wbuf_free(&b);
    return;
  }
  hoist__wire_table *u = NULL;
  char why[300];
  check(hoist__wire_table_decode(b.data + HOIST_WIRE_HEADER_BYTES, b.len - HOIST_WIRE_HEADER_BYTES,
                                &u, why, sizeof why) == HOIST_OK,
        "re-encoded table decodes");
  check(u->generation == t->generation && u->ncomps == t->ncomps &&
            strcmp(u->device, t->device) == 0 && strcmp(u->locator, t->locator) == 0,
        "same head");
  for (size_t i = 0; i < t->ncomps; i++) {
    const hoist__wire_component *c = &t->comps[i], *d = &u->comps[i];
    check(strcmp(c->name, d->name) == 0 && c->ntensors == d->ntensors && c->narenas == d->narenas &&
              c->bytes == d->bytes && memcmp(c->arenas, d->arenas, sizeof c->arenas) == 0,
          "same component");
    for (size_t j = 0; j < c->ntensors; j++) {
      const hoist_tensor_info *x = &c->tensors[j].info, *y = &d->tensors[j].info;
      check(strcmp(x->name, y->name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim &&
                memcmp(x->shape, y->shape, x->ndim * sizeof *x->shape) == 0 &&
                x->nbytes == y->nbytes && x->begin == y->begin && x->end == y->end &&
                c->tensors[j].span_off == d->tensors[j].span_off,
            "same tensor");
    }
  }
  hoist__wire_table_free(u);
  hoist__wbuf_free(&b);
}

static void table(const uint8_t *p, size_t n, const uint8_t *extra, size_t extra_n) {
  hoist__wire_table *t = NULL;
  char why[300];
  int rc = hoist__wire_table_decode(p, n, &t, why, sizeof why);
  check((rc == HOIST_OK) == (t != NULL), "status and table agree");
  if (rc != HOIST_OK) {
    check(rc == HOIST_NO_MEMORY || strchr(why, '\n') == NULL, "one-line reason");
    return;
  }
  check(hoist__wire_table_fds(t) <= HOIST_WIRE_MAX_FDS, "descriptor limit");
  for (size_t i = 0; i < t->ncomps; i++) check_component(&t->comps[i]);
  round_trip(t);
  /* The rest of the input as a PREPARED for the first component. */
  if (t->ncomps > 0 && extra_n > 0) {
    hoist__wire_component *c = &t->comps[0];
    if (hoist__wire_prepared_decode(extra, extra_n, c, why, sizeof why) == HOIST_OK) check_component(c);
  }
  hoist__wire_table_free(t);
}

/* A stream of frames in one direction. */
static void stream(const uint8_t *p, size_t n, int from_client) {
  while (n >= HOIST_WIRE_HEADER_BYTES) {
    hoist__wire_header h;
    char why[300];
    if (hoist__wire_header_parse(p, from_client, &h, why, sizeof why) != HOIST_OK) {
      check(strchr(why, '\n') == NULL, "one-line reason");
      return;
    }
    check(h.length <= (from_client ? HOIST_WIRE_MAX_REQUEST : HOIST_WIRE_MAX_REPLY), "length limit");
    if (n - HOIST_WIRE_HEADER_BYTES < h.length) return;
    const uint8_t *payload = p + HOIST_WIRE_HEADER_BYTES;
    if (from_client) {
      hoist__wire_request r;
      if (hoist__wire_request_decode(&h, payload, &r, why, sizeof why) == HOIST_OK) {
        check(r.type == h.type && r.id == h.id, "request header");
        check(memchr(r.component, '\0', sizeof r.component) != NULL, "terminated name");
      }
    } else if (h.type == HOIST_WIRE_ATTACHED) {
      table(payload, h.length, NULL, 0);
    } else if (h.type == HOIST_WIRE_ERROR) {
      int status = 0;
      char msg[HOIST_ERROR_MAX];
      if (hoist__wire_error_decode(payload, h.length, &status, msg, sizeof msg) == HOIST_OK) {
        check(status < 0, "an error status");
        for (const char *c = msg; *c != '\0'; c++) check((unsigned char)*c >= 0x20 && *c != 0x7f, "one line");
      }
    }
    p += HOIST_WIRE_HEADER_BYTES + h.length;
    n -= HOIST_WIRE_HEADER_BYTES + h.length;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned mode = data[0] % 3;
  data++;
  size--;
  if (mode == 0) stream(data, size, 1);
  else if (mode == 1) stream(data, size, 0);
  else {
    /* A bare table; its first two bytes say where a PREPARED starts. */
    if (size < 2) return 0;
    size_t cut = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1);
    table(data + 2, cut, data + 2 + cut, size - 2 - cut);
  }
  return 0;
}
