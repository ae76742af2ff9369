/* share_wire.c — encoders and validating decoders of the control socket's
 * wire protocol (the byte format is documented in include/hoist_wire.h).  Nothing
 * here touches a socket: the server, the client and the fuzzer all feed it
 * bytes.  Every field is bounds-checked before use and every count is
 * checked against its limit before anything is allocated for it. */
#include "hoist_wire.h"

#include "safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char magic[4] = {'H', 'S', 'R', 'V'};

static int why_fail(char *why, size_t size, const char *fmt, ...) HOIST_PRINTF(3, 4);
static int why_fail(char *why, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (why != NULL && size > 0) vsnprintf(why, size, fmt, ap);
  va_end(ap);
  return HOIST_PROTOCOL;
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool is_request(unsigned t) { return t >= HOIST_WIRE_ATTACH && t <= HOIST_WIRE_VERIFY; }
static bool is_reply(unsigned t) {
  return (t >= HOIST_WIRE_ATTACHED && t <= HOIST_WIRE_VERIFIED) || t == HOIST_WIRE_ERROR ||
         t == HOIST_WIRE_SHUTDOWN || t == HOIST_WIRE_GENERATION;
}

int hoist__wire_header_parse(const unsigned char b[HOIST_WIRE_HEADER_BYTES], int from_client,
                            hoist__wire_header *h, char *why, size_t why_size) {
  if (memcmp(b, magic, 4) != 0) return why_fail(why, why_size, "bad magic");
  unsigned version = (unsigned)b[4] | (unsigned)b[5] << 8;
  if (version != HOIST_WIRE_VERSION)
    return why_fail(why, why_size, "protocol version %u, this end speaks %u", version,
                    HOIST_WIRE_VERSION);
  h->type = (uint16_t)(b[6] | b[7] << 8);
  h->length = get_u32(b + 8);
  h->id = get_u32(b + 12);
  if (from_client ? !is_request(h->type) : !is_reply(h->type))
    return why_fail(why, why_size, "unknown message type %u", h->type);
  uint32_t limit = from_client ? HOIST_WIRE_MAX_REQUEST : HOIST_WIRE_MAX_REPLY;
  if (h->length > limit)
    return why_fail(why, why_size, "message of %u bytes above the limit of %u", h->length, limit);
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing */

void hoist__wbuf_free(hoist__wbuf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static void put(hoist__wbuf *b, const void *p, size_t n) {
  if (b->failed) return;
  if (n > HOIST_WIRE_MAX_REPLY + HOIST_WIRE_HEADER_BYTES || b->len + n > SIZE_MAX / 2) {
    b->failed = 1;
    return;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap > 0 ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    unsigned char *d = realloc(b->data, cap);
    if (d == NULL) {
      b->failed = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put_le(hoist__wbuf *b, uint64_t v, unsigned bytes) {
  unsigned char t[8];
  for (unsigned i = 0; i < bytes; i++) t[i] = (unsigned char)(v >> (8 * i));
  put(b, t, bytes);
}

void hoist__wbuf_begin(hoist__wbuf *b, uint16_t type, uint32_t id) {
  b->start = b->len;
  put(b, magic, 4);
  put_le(b, HOIST_WIRE_VERSION, 2);
  put_le(b, type, 2);
  put_le(b, 0, 4); /* length, filled by hoist__wbuf_end */
  put_le(b, id, 4);
}

int hoist__wbuf_end(hoist__wbuf *b) {
  if (b->failed) return -1;
  size_t n = b->len - b->start - HOIST_WIRE_HEADER_BYTES;
  unsigned type = (unsigned)b->data[b->start + 6] | (unsigned)b->data[b->start + 7] << 8;
  if (n > (is_request(type) ? HOIST_WIRE_MAX_REQUEST : HOIST_WIRE_MAX_REPLY)) {
    b->failed = 1;
    return -1;
  }
  for (unsigned i = 0; i < 4; i++) b->data[b->start + 8 + i] = (unsigned char)(n >> (8 * i));
  return 0;
}

void hoist__wbuf_u8(hoist__wbuf *b, uint8_t v) { put(b, &v, 1); }
void hoist__wbuf_u32(hoist__wbuf *b, uint32_t v) { put_le(b, v, 4); }
void hoist__wbuf_u64(hoist__wbuf *b, uint64_t v) { put_le(b, v, 8); }
void hoist__wbuf_bytes(hoist__wbuf *b, const void *p, size_t n) { put(b, p, n); }

void hoist__wbuf_str(hoist__wbuf *b, const char *s) {
  size_t n = strlen(s);
  if (n > HOIST_WIRE_MAX_STRING) {
    b->failed = 1;
    return;
  }
  put_le(b, n, 4);
  put(b, s, n);
}

void hoist__wire_put_component(hoist__wbuf *b, const char *name, hoist_residency residency,
                              uint64_t bytes, uint64_t device_bytes, uint64_t micros) {
  hoist__wbuf_str(b, name);
  hoist__wbuf_u8(b, (uint8_t)residency);
  hoist__wbuf_u64(b, bytes);
  hoist__wbuf_u64(b, device_bytes);
  hoist__wbuf_u64(b, micros);
}

void hoist__wire_put_tensor(hoist__wbuf *b, const hoist_tensor_info *t, uint64_t span_off) {
  hoist__wbuf_str(b, t->name);
  hoist__wbuf_u8(b, (uint8_t)t->dtype);
  if (t->ndim > HOIST_WIRE_MAX_NDIM) {
    b->failed = 1;
    return;
  }
  hoist__wbuf_u8(b, (uint8_t)t->ndim);
  for (uint32_t d = 0; d < t->ndim; d++) hoist__wbuf_u64(b, t->shape[d]);
  hoist__wbuf_u64(b, t->begin);
  hoist__wbuf_u64(b, t->end);
  hoist__wbuf_u64(b, t->nbytes);
  hoist__wbuf_u64(b, span_off);
}

void hoist__wire_put_arenas(hoist__wbuf *b, size_t narenas, const uint64_t *bytes,
                           const unsigned char (*handles)[HOIST_WIRE_HANDLE_BYTES]) {
  if (narenas > HOIST_WIRE_MAX_ARENAS) {
    b->failed = 1;
    return;
  }
  hoist__wbuf_u32(b, (uint32_t)narenas);
  for (size_t k = 0; k < narenas; k++) {
    hoist__wbuf_u64(b, bytes[k]);
    hoist__wbuf_bytes(b, handles[k], HOIST_WIRE_HANDLE_BYTES);
  }
}

/* ------------------------------------------------------------------------ */
/* Reading */

static const unsigned char *take(hoist__rbuf *r, size_t n, const char *field) {
  if (r->bad != NULL) return NULL;
  if (n > r->len - r->at) {
    r->bad = field;
    return NULL;
  }
  const unsigned char *p = r->p + r->at;
  r->at += n;
  return p;
}

static uint64_t get_le(hoist__rbuf *r, unsigned bytes, const char *field) {
  const unsigned char *p = take(r, bytes, field);
  uint64_t v = 0;
  if (p != NULL)
    for (unsigned i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

uint8_t hoist__rbuf_u8(hoist__rbuf *r, const char *field) { return (uint8_t)get_le(r, 1, field); }
uint32_t hoist__rbuf_u32(hoist__rbuf *r, const char *field) { return (uint32_t)get_le(r, 4, field); }
uint64_t hoist__rbuf_u64(hoist__rbuf *r, const char *field) { return get_le(r, 8, field); }

void hoist__rbuf_bytes(hoist__rbuf *r, void *dst, size_t n, const char *field) {
  const unsigned char *p = take(r, n, field);
  if (p != NULL) memcpy(dst, p, n);
  else memset(dst, 0, n);
}

char *hoist__rbuf_str(hoist__rbuf *r, uint32_t max, const char *field) {
  uint32_t n = hoist__rbuf_u32(r, field);
  if (r->bad == NULL && n > max) r->bad = field;
  const unsigned char *p = take(r, n, field);
  if (p == NULL) return NULL;
  if (memchr(p, '\0', n) != NULL) {
    r->bad = field;
    return NULL;
  }
  char *s = malloc((size_t)n + 1);
  if (s == NULL) {
    r->bad = "memory";
    return NULL;
  }
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Ends a decode: the cursor must be good and consumed. */
static int finish(const hoist__rbuf *r, const char *what, char *why, size_t why_size) {
  if (r->bad != NULL && strcmp(r->bad, "memory") == 0) return HOIST_NO_MEMORY;
  if (r->bad != NULL) return why_fail(why, why_size, "%s: bad or truncated field '%s'", what, r->bad);
  if (r->at != r->len)
    return why_fail(why, why_size, "%s: %zu bytes left over", what, r->len - r->at);
  return HOIST_OK;
}

int hoist__wire_request_decode(const hoist__wire_header *h, const unsigned char *payload,
                              hoist__wire_request *out, char *why, size_t why_size) {
  hoist__rbuf r = {payload, h->length, 0, NULL};
  memset(out, 0, sizeof *out);
  out->type = h->type;
  out->id = h->id;
  if (h->type == HOIST_WIRE_ATTACH) {
    out->flags = hoist__rbuf_u32(&r, "flags");
    if (r.bad == NULL && (out->flags & ~HOIST_WIRE_FLAG_NO_WAIT) != 0)
      return why_fail(why, why_size, "ATTACH: unknown flags %#x", out->flags);
  } else if (h->type == HOIST_WIRE_PREPARE || h->type == HOIST_WIRE_RELEASE) {
    char *name = hoist__rbuf_str(&r, HOIST_WIRE_MAX_NAME, "component");
    if (name != NULL) {
      memcpy(out->component, name, strlen(name) + 1);
      free(name);
    }
  }
  return finish(&r, "request", why, why_size);
}

/* ------------------------------------------------------------------------ */
/* The table */

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp((*(const hoist__wire_tensor *const *)a)->info.name,
                (*(const hoist__wire_tensor *const *)b)->info.name);
}

static void component_free(hoist__wire_component *c) {
  for (size_t j = 0; j < c->ntensors; j++) {
    free((char *)c->tensors[j].info.name);
    free((uint64_t *)c->tensors[j].info.shape);
  }
  free(c->tensors);
  free(c->by_name);
  free(c->name);
}

void hoist__wire_table_free(hoist__wire_table *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->ncomps; i++) component_free(&t->comps[i]);
  free(t->comps);
  free(t);
}

bool hoist__wire_arena_by_fd(const hoist__wire_arena *a) {
  for (size_t k = 0; k < sizeof a->handle; k++)
    if (a->handle[k] != 0) return false;
  return true;
}

size_t hoist__wire_component_fds(const hoist__wire_component *c) {
  size_t n = 0;
  for (uint32_t k = 0; k < c->narenas; k++) n += hoist__wire_arena_by_fd(&c->arenas[k]);
  return n;
}

size_t hoist__wire_table_fds(const hoist__wire_table *t) {
  size_t n = 0;
  for (size_t i = 0; i < t->ncomps; i++) n += hoist__wire_component_fds(&t->comps[i]);
  return n;
}

/* Reads the arenas field into c. */
static void read_arenas(hoist__rbuf *r, hoist__wire_component *c) {
  uint32_t n = hoist__rbuf_u32(r, "narenas");
  if (r->bad != NULL) return;
  if (n > HOIST_WIRE_MAX_ARENAS) {
    r->bad = "narenas";
    return;
  }
  uint64_t begin = 0;
  for (uint32_t k = 0; k < n && r->bad == NULL; k++) {
    hoist__wire_arena *a = &c->arenas[k];
    a->bytes = hoist__rbuf_u64(r, "arena bytes");
    hoist__rbuf_bytes(r, a->handle, HOIST_WIRE_HANDLE_BYTES, "arena handle");
    a->span_begin = begin;
    if (r->bad == NULL && (a->bytes == 0 || !hoist__add_u64(begin, a->bytes, &begin)))
      r->bad = "arena bytes";
  }
  c->narenas = r->bad == NULL ? n : 0;
}

/* Reads one tensor; checks dtype, ndim, and nbytes against the shape. */
static void read_tensor(hoist__rbuf *r, hoist__wire_tensor *t) {
  t->info.name = hoist__rbuf_str(r, HOIST_WIRE_MAX_STRING, "tensor name");
  uint8_t dtype = hoist__rbuf_u8(r, "dtype");
  uint8_t ndim = hoist__rbuf_u8(r, "ndim");
  if (r->bad != NULL) return;
  if (dtype >= HOIST_DTYPE_COUNT_) r->bad = "dtype";
  if (ndim > HOIST_WIRE_MAX_NDIM) r->bad = "ndim";
  if (r->bad != NULL) return;
  uint64_t *shape = malloc((ndim > 0 ? ndim : 1) * sizeof *shape);
  if (shape == NULL) {
    r->bad = "memory";
    return;
  }
  t->info.shape = shape;
  t->info.dtype = (hoist_dtype)dtype;
  t->info.ndim = ndim;
  uint64_t elems = 1;
  for (unsigned d = 0; d < ndim && r->bad == NULL; d++) {
    shape[d] = hoist__rbuf_u64(r, "shape");
    if (r->bad == NULL && !hoist__mul_u64(elems, shape[d], &elems)) r->bad = "shape";
  }
  t->info.begin = hoist__rbuf_u64(r, "begin");
  t->info.end = hoist__rbuf_u64(r, "end");
  t->info.nbytes = hoist__rbuf_u64(r, "nbytes");
  t->span_off = hoist__rbuf_u64(r, "span_offset");
  if (r->bad != NULL) return;
  t->info.nelements = elems;
  uint64_t bits = 0;
  if (!hoist__mul_u64(elems, hoist_dtype_bits(t->info.dtype), &bits) || bits % 8 != 0 ||
      bits / 8 != t->info.nbytes)
    r->bad = "nbytes";
  else if (t->info.begin > t->info.end)
    r->bad = "data_offsets";
}

/* Every tensor of c must lie inside one of its arenas. */
static int check_placement(const hoist__wire_component *c, char *why, size_t why_size) {
  if (c->narenas == 0) return HOIST_OK;
  for (size_t j = 0; j < c->ntensors; j++) {
    const hoist__wire_tensor *t = &c->tensors[j];
    uint32_t k = c->narenas - 1;
    while (k > 0 && t->span_off < c->arenas[k].span_begin) k--;
    const hoist__wire_arena *a = &c->arenas[k];
    uint64_t end = 0;
    if (!hoist__add_u64(t->span_off, t->info.nbytes, &end) || t->span_off < a->span_begin ||
        end > a->span_begin + a->bytes) {
      char shown[160], comp[160];
      return why_fail(why, why_size, "%s: tensor '%s' lies outside its arena",
                      hoist__show(c->name, comp, sizeof comp),
                      hoist__show(t->info.name, shown, sizeof shown));
    }
  }
  return HOIST_OK;
}

static int read_component(hoist__rbuf *r, hoist__wire_component *c, char *why, size_t why_size) {
  c->name = hoist__rbuf_str(r, HOIST_WIRE_MAX_NAME, "component name");
  uint8_t residency = hoist__rbuf_u8(r, "residency");
  c->bytes = hoist__rbuf_u64(r, "bytes");
  c->device_bytes = hoist__rbuf_u64(r, "device_bytes");
  c->micros = hoist__rbuf_u64(r, "microseconds");
  if (r->bad == NULL && (c->name[0] == '\0' || residency > HOIST_FSDP)) r->bad = "component";
  c->residency = (hoist_residency)residency;
  read_arenas(r, c);
  uint32_t n = hoist__rbuf_u32(r, "ntensors");
  if (r->bad == NULL && (n > HOIST_WIRE_MAX_TENSORS || n > (r->len - r->at) / 38))
    r->bad = "ntensors"; /* 38: the smallest tensor on the wire */
  if (r->bad != NULL) return finish(r, "ATTACHED", why, why_size);
  c->tensors = calloc(n > 0 ? n : 1, sizeof *c->tensors);
  c->by_name = calloc(n > 0 ? n : 1, sizeof *c->by_name);
  if (c->tensors == NULL || c->by_name == NULL) return HOIST_NO_MEMORY;
  for (uint32_t j = 0; j < n && r->bad == NULL; j++) {
    c->ntensors = j + 1;
    read_tensor(r, &c->tensors[j]);
    uint64_t end = 0;
    if (r->bad == NULL) {
      if (!hoist__add_u64(c->tensors[j].span_off, c->tensors[j].info.nbytes, &end))
        r->bad = "span_offset";
      else if (end > c->span_need)
        c->span_need = end;
    }
    c->by_name[j] = &c->tensors[j];
  }
  if (r->bad != NULL) return finish(r, "ATTACHED", why, why_size);
  qsort(c->by_name, n, sizeof *c->by_name, cmp_tensor_name);
  for (uint32_t j = 1; j < n; j++)
    if (strcmp(c->by_name[j - 1]->info.name, c->by_name[j]->info.name) == 0) {
      char shown[160], comp[160];
      return why_fail(why, why_size, "%s: tensor '%s' twice",
                      hoist__show(c->name, comp, sizeof comp),
                      hoist__show(c->by_name[j]->info.name, shown, sizeof shown));
    }
  return check_placement(c, why, why_size);
}

int hoist__wire_table_decode(const unsigned char *payload, size_t len, hoist__wire_table **out,
                            char *why, size_t why_size) {
  hoist__rbuf r = {payload, len, 0, NULL};
  *out = NULL;
  hoist__wire_table *t = calloc(1, sizeof *t);
  if (t == NULL) return HOIST_NO_MEMORY;
  int rc = HOIST_OK;
  t->generation = hoist__rbuf_u32(&r, "generation");
  char *device = hoist__rbuf_str(&r, 16, "device");
  char *locator = hoist__rbuf_str(&r, sizeof t->locator - 1, "locator");
  uint32_t n = hoist__rbuf_u32(&r, "ncomponents");
  if (r.bad == NULL && (t->generation == 0 || n > HOIST_WIRE_MAX_COMPONENTS ||
                        (strcmp(device, "host") != 0 && strcmp(device, "cuda") != 0)))
    r.bad = "table head";
  if (r.bad == NULL) {
    snprintf(t->device, sizeof t->device, "%s", device);
    snprintf(t->locator, sizeof t->locator, "%s", locator);
    t->comps = calloc(n > 0 ? n : 1, sizeof *t->comps);
    if (t->comps == NULL) rc = HOIST_NO_MEMORY;
  }
  free(device);
  free(locator);
  if (r.bad != NULL) rc = finish(&r, "ATTACHED", why, why_size);
  char shown[160];
  for (uint32_t i = 0; i < n && rc == HOIST_OK; i++) {
    t->ncomps = i + 1;
    rc = read_component(&r, &t->comps[i], why, why_size);
    for (uint32_t k = 0; k < i && rc == HOIST_OK; k++)
      if (strcmp(t->comps[k].name, t->comps[i].name) == 0)
        rc = why_fail(why, why_size, "component '%s' twice",
                      hoist__show(t->comps[i].name, shown, sizeof shown));
  }
  if (rc == HOIST_OK) rc = finish(&r, "ATTACHED", why, why_size);
  if (rc == HOIST_OK && hoist__wire_table_fds(t) > HOIST_WIRE_MAX_FDS)
    rc = why_fail(why, why_size, "%zu arenas, above %u descriptors a message",
                  hoist__wire_table_fds(t), HOIST_WIRE_MAX_FDS);
  if (rc != HOIST_OK) {
    hoist__wire_table_free(t);
    return rc;
  }
  *out = t;
  return HOIST_OK;
}

int hoist__wire_prepared_decode(const unsigned char *payload, size_t len, hoist__wire_component *c,
                               char *why, size_t why_size) {
  hoist__rbuf r = {payload, len, 0, NULL};
  char *name = hoist__rbuf_str(&r, HOIST_WIRE_MAX_NAME, "component");
  hoist__wire_component tmp = *c;
  read_arenas(&r, &tmp);
  int rc = finish(&r, "PREPARED", why, why_size);
  if (rc == HOIST_OK && strcmp(name, c->name) != 0)
    rc = why_fail(why, why_size, "PREPARED names another component");
  if (rc == HOIST_OK) rc = check_placement(&tmp, why, why_size);
  if (rc == HOIST_OK) {
    c->narenas = tmp.narenas;
    memcpy(c->arenas, tmp.arenas, sizeof c->arenas);
  }
  free(name);
  return rc;
}

int hoist__wire_error_decode(const unsigned char *payload, size_t len, int *status, char *msg,
                            size_t msg_size) {
  hoist__rbuf r = {payload, len, 0, NULL};
  uint32_t raw = hoist__rbuf_u32(&r, "status");
  char *text = hoist__rbuf_str(&r, HOIST_WIRE_MAX_STRING, "message");
  int rc = finish(&r, "ERROR", msg, msg_size);
  if (rc == HOIST_OK) {
    int st = (int)(int32_t)raw;
    /* A status this build does not know still fails the call. */
    *status = st < 0 && strcmp(hoist_status_name(st), "UNKNOWN") != 0 ? st : HOIST_PROTOCOL;
    hoist__show(text, msg, msg_size); /* one line, whatever the peer sent */
  }
  free(text);
  return rc;
}

const hoist__wire_tensor *hoist__wire_find(const hoist__wire_component *c, const char *name) {
  size_t lo = 0, hi = c->ntensors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(c->by_name[mid]->info.name, name);
    if (cmp == 0) return c->by_name[mid];
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}
