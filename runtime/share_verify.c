/* share_verify.c — proves that nobody wrote into shared weights: a
 * fingerprint of every tensor (the block checksum of kernels.h, one per
 * tensor) taken when a served pipeline becomes ready, and a check that
 * hashes everything again and names the first tensor that changed.
 *
 * Device bytes are hashed on the device with the batched checksum (a few
 * kernels for thousands of tensors, into a small table allocated for the
 * call); on the host backend, where device addresses are host pointers, and
 * for host copies, on the CPU with every core.  Both give the same value
 * for the same bytes, so a prepared arena is checked against the
 * fingerprint of the host copy it came from.  When the load ran with
 * --verify, the fingerprint is of bytes already proven equal to the files. */
#include "device.h"

#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

/* Spans per batch: bounds the device table (48 bytes a span). */
#define BATCH_SPANS 65536u

typedef enum { FROM_ARENAS, FROM_HOST_COPY } hash_source;

static int device_is_host(const hoist__device *d) { return strcmp(d->kind, "host") == 0; }

/* Device address of tensor j of component i in its arenas. */
static uint64_t tensor_addr(const hoist_loaded *l, size_t i, uint64_t span_off) {
  size_t k = hoist__loaded_arena_count(l, i);
  uint64_t addr = 0, bytes = 0, begin = 0;
  while (k-- > 0) {
    hoist__loaded_arena(l, i, k, &addr, &bytes, &begin);
    if (span_off >= begin) break;
  }
  return addr + (span_off - begin);
}

/* Hashes cnt tensors of component i on the device, batch by batch. */
static int hash_on_device(const hoist_loaded *l, size_t i, size_t cnt, uint64_t *out) {
  hoist_runtime *rt = hoist__loaded_runtime(l);
  hoist__device *d = rt->dev;
  size_t per = cnt < BATCH_SPANS ? cnt : BATCH_SPANS;
  uint64_t mem = 0;
  void *stream = NULL;
  hoist__checksum_span *spans = malloc(per * sizeof *spans);
  int rc = spans == NULL ? hoist__fail(rt, HOIST_NO_MEMORY, "verify: out of memory") : HOIST_OK;
  if (rc == HOIST_OK)
    rc = d->ops->alloc(d, (uint64_t)per * (8 + HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN), &mem);
  if (rc == HOIST_OK) rc = d->ops->stream_create(d, &stream);
  for (size_t first = 0; first < cnt && rc == HOIST_OK; first += per) {
    size_t m = cnt - first < per ? cnt - first : per;
    for (size_t j = 0; j < m; j++) {
      uint64_t off = 0;
      const hoist_tensor_info *t = hoist__loaded_placed(l, i, first + j, &off);
      spans[j] = (hoist__checksum_span){tensor_addr(l, i, off), t->nbytes, mem + 8 * j};
    }
    rc = d->ops->checksum_batch(d, spans, m, mem + 8 * (uint64_t)per, stream);
    int sync = d->ops->stream_sync(d, stream); /* the table is in use until then */
    if (rc == HOIST_OK) rc = sync;
    if (rc == HOIST_OK) rc = d->ops->copy_d2h(d, out + first, mem, m * sizeof *out);
  }
  if (stream != NULL) d->ops->stream_destroy(d, stream);
  if (mem != 0) d->ops->free(d, mem);
  free(spans);
  return rc;
}

/* Hashes the tensors of component i where src says into out. */
static int hash_component(const hoist_loaded *l, size_t i, hash_source src, uint64_t *out) {
  size_t cnt = hoist_loaded_component(l, i)->tensor_count;
  hoist__device *d = hoist__loaded_runtime(l)->dev;
  if (src == FROM_ARENAS && !device_is_host(d)) return hash_on_device(l, i, cnt, out);
  const unsigned char *host = hoist__loaded_host_copy(l, i);
  for (size_t j = 0; j < cnt; j++) {
    uint64_t off = 0;
    const hoist_tensor_info *t = hoist__loaded_placed(l, i, j, &off);
    const void *p = src == FROM_HOST_COPY ? (const void *)(host + off)
                                          : (const void *)(uintptr_t)tensor_addr(l, i, off);
    out[j] = hoist__checksum_host(p, t->nbytes, 0);
  }
  return HOIST_OK;
}

/* Where component i's bytes are fingerprinted: arenas when it has them,
 * else its host copy; -1: nowhere. */
static int fingerprint_source(const hoist_loaded *l, size_t i) {
  if (hoist_loaded_component(l, i)->tensor_count == 0) return -1;
  if (hoist__loaded_host_copy(l, i) != NULL) return FROM_HOST_COPY;
  return hoist__loaded_arena_count(l, i) > 0 ? FROM_ARENAS : -1;
}

static size_t fingerprint_len(const hoist_loaded *l) {
  size_t n = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (fingerprint_source(l, i) >= 0) n += hoist_loaded_component(l, i)->tensor_count;
  return n;
}

int hoist__loaded_fingerprint(const hoist_loaded *l, uint64_t **out, size_t *n) {
  hoist_runtime *rt = hoist__loaded_runtime(l);
  size_t total = fingerprint_len(l), at = 0;
  uint64_t *h = malloc((total > 0 ? total : 1) * sizeof *h);
  *out = NULL;
  *n = 0;
  if (h == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "fingerprint: out of memory");
  int rc = HOIST_OK;
  for (size_t i = 0; i < hoist_loaded_component_count(l) && rc == HOIST_OK; i++) {
    int src = fingerprint_source(l, i);
    if (src < 0) continue;
    rc = hash_component(l, i, (hash_source)src, h + at);
    at += hoist_loaded_component(l, i)->tensor_count;
  }
  if (rc != HOIST_OK) {
    free(h);
    return rc;
  }
  *out = h;
  *n = total;
  return HOIST_OK;
}

/* Device bytes of component i's tensors (after any dtype conversion). */
static uint64_t tensor_bytes(const hoist_loaded *l, size_t i) {
  uint64_t sum = 0, off = 0;
  for (size_t j = 0; j < hoist_loaded_component(l, i)->tensor_count; j++)
    sum += hoist__loaded_placed(l, i, j, &off)->nbytes;
  return sum;
}

/* Compares cnt fresh hashes of component i (from where) with base. */
static int compare(const hoist_loaded *l, size_t i, const uint64_t *now, const uint64_t *base,
                   size_t cnt, const char *where) {
  for (size_t j = 0; j < cnt; j++) {
    if (now[j] == base[j]) continue;
    uint64_t off = 0;
    const hoist_tensor_info *t = hoist__loaded_placed(l, i, j, &off);
    char shown[160];
    return hoist__fail(hoist__loaded_runtime(l), HOIST_VERIFY_MISMATCH,
                      "verify: %s: tensor '%s' (%llu bytes) changed %s since the load: hash "
                      "now %#018llx, at load %#018llx",
                      hoist_loaded_component(l, i)->name, hoist__show(t->name, shown, sizeof shown),
                      (unsigned long long)t->nbytes, where, (unsigned long long)now[j],
                      (unsigned long long)base[j]);
  }
  return HOIST_OK;
}

int hoist__loaded_check(const hoist_loaded *l, const uint64_t *base, size_t n, uint64_t *tensors,
                       uint64_t *bytes) {
  hoist_runtime *rt = hoist__loaded_runtime(l);
  uint64_t nt = 0, nb = 0;
  if (tensors != NULL) *tensors = 0;
  if (bytes != NULL) *bytes = 0;
  if (n != fingerprint_len(l))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "verify: the fingerprint has %zu entries, the pipeline %zu tensors", n,
                      fingerprint_len(l));
  size_t most = 0, at = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (hoist_loaded_component(l, i)->tensor_count > most)
      most = hoist_loaded_component(l, i)->tensor_count;
  uint64_t *now = malloc((most > 0 ? most : 1) * sizeof *now);
  if (now == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "verify: out of memory");
  int rc = HOIST_OK;
  for (size_t i = 0; i < hoist_loaded_component_count(l) && rc == HOIST_OK; i++) {
    size_t cnt = hoist_loaded_component(l, i)->tensor_count;
    if (fingerprint_source(l, i) < 0) continue;
    /* Every copy there is: the arenas (resident, or prepared from the host
     * copy) and the host copy of an offloaded component. */
    if (hoist__loaded_arena_count(l, i) > 0) {
      rc = hash_component(l, i, FROM_ARENAS, now);
      if (rc == HOIST_OK) rc = compare(l, i, now, base + at, cnt, "on the device");
      nt += cnt;
      nb += tensor_bytes(l, i);
    }
    if (rc == HOIST_OK && hoist__loaded_host_copy(l, i) != NULL) {
      rc = hash_component(l, i, FROM_HOST_COPY, now);
      if (rc == HOIST_OK) rc = compare(l, i, now, base + at, cnt, "in its host copy");
      nt += cnt;
      nb += tensor_bytes(l, i);
    }
    at += cnt;
  }
  free(now);
  if (rc == HOIST_OK) {
    if (tensors != NULL) *tensors = nt;
    if (bytes != NULL) *bytes = nb;
  }
  return rc;
}
