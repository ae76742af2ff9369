/* device.c — picks a device backend from a spec string ("host", "cuda:N"),
 * and what the CLI asks of a runtime's device (hoist_tools.h): its kind,
 * name and memory, raw allocations, and the pinned copy rate. */
#include "device.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int hoist__device_open(hoist_runtime *rt, const char *spec, uint64_t capacity,
                      hoist__device **out) {
  *out = NULL;
  if (spec == NULL || strcmp(spec, "host") == 0) return hoist__device_host_open(rt, capacity, out);
  int ordinal = 0;
  if (strcmp(spec, "cuda") != 0) {
    if (strncmp(spec, "cuda:", 5) != 0 || spec[5] < '0' || spec[5] > '9')
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                        "device '%s': expected host, cuda or cuda:N", spec);
    char *end = NULL;
    errno = 0;
    long v = strtol(spec + 5, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 1024)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "device '%s': bad ordinal", spec);
    ordinal = (int)v;
  }
#if defined(HOIST_HAVE_CUDA)
  return hoist__device_cuda_open(rt, ordinal, out);
#else
  (void)ordinal;
  return hoist__fail(rt, HOIST_NO_DEVICE,
                    "device '%s': this build of hoist has no CUDA backend "
                    "(configure with the CUDA toolkit installed)",
                    spec);
#endif
}

void hoist__device_close(hoist__device *d) {
  if (d != NULL) d->ops->destroy(d);
}

const char *hoist__device_kind(const hoist_runtime *rt) { return rt->dev->kind; }

void hoist__device_share_by_default(hoist_runtime *rt) {
  if (rt->dev->ops->share_by_default != NULL) rt->dev->ops->share_by_default(rt->dev);
}

const char *hoist__device_name(const hoist_runtime *rt) { return rt->dev->name; }
uint64_t hoist__device_granularity(const hoist_runtime *rt) {
  return rt->dev->ops->alloc_granularity;
}

int hoist__device_mem_info(hoist_runtime *rt, uint64_t *free_bytes, uint64_t *total_bytes) {
  return rt->dev->ops->mem_info(rt->dev, free_bytes, total_bytes);
}

int hoist_runtime_mem_info(hoist_runtime *rt, uint64_t *free_bytes, uint64_t *total_bytes) {
  uint64_t f = 0, t = 0;
  int rc = hoist__device_mem_info(rt, &f, &t);
  if (free_bytes != NULL) *free_bytes = rc == HOIST_OK ? f : 0;
  if (total_bytes != NULL) *total_bytes = rc == HOIST_OK ? t : 0;
  return rc;
}

int hoist__device_alloc(hoist_runtime *rt, uint64_t bytes, uint64_t *addr) {
  return rt->dev->ops->alloc(rt->dev, bytes, addr);
}

void hoist__device_free(hoist_runtime *rt, uint64_t addr) { rt->dev->ops->free(rt->dev, addr); }

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int hoist__device_h2d_rate(hoist_runtime *rt, size_t bytes, int reps, double *gbps) {
  hoist__device *d = rt->dev;
  void *host = NULL, *stream = NULL;
  uint64_t dev = 0;
  double times[64];
  *gbps = 0;
  if (reps < 1 || reps > 64 || bytes == 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "h2d rate: %d copies of %zu bytes", reps, bytes);
  int rc = d->ops->pinned_alloc(d, bytes, &host);
  if (rc == HOIST_OK) rc = d->ops->alloc(d, bytes, &dev);
  if (rc == HOIST_OK) rc = d->ops->stream_create(d, &stream);
  if (rc != HOIST_OK) goto done;
  /* Random contents: a device or link that compresses must not flatter. */
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy((char *)host + i, &x, 8);
  }
  for (int r = -2; r < reps && rc == HOIST_OK; r++) {
    double t0 = now_seconds();
    rc = d->ops->copy_h2d_async(d, dev, host, bytes, stream);
    if (rc == HOIST_OK) rc = d->ops->stream_sync(d, stream);
    if (r >= 0) times[r] = now_seconds() - t0;
  }
  if (rc == HOIST_OK) {
    qsort(times, (size_t)reps, sizeof times[0], cmp_double);
    *gbps = (double)bytes / times[reps / 2] / 1e9;
  }
done:
  if (stream != NULL) d->ops->stream_destroy(d, stream);
  if (dev != 0) d->ops->free(d, dev);
  if (host != NULL) d->ops->pinned_free(d, host);
  return rc;
}

int hoist__device_spec_for(const char *kind, const char *locator, char *spec, size_t size) {
  if (strcmp(kind, "host") == 0) {
    snprintf(spec, size, "host");
    return HOIST_OK;
  }
  if (strcmp(kind, "cuda") != 0)
    return hoist__fail(NULL, HOIST_NO_DEVICE, "device kind '%.32s' is not host or cuda", kind);
#if defined(HOIST_HAVE_CUDA)
  int ordinal = 0;
  int rc = hoist__device_cuda_ordinal(locator, &ordinal);
  if (rc == HOIST_OK) snprintf(spec, size, "cuda:%d", ordinal);
  return rc;
#else
  return hoist__fail(NULL, HOIST_NO_DEVICE,
                    "the server's device is the CUDA card %.32s but this build of hoist has no "
                    "CUDA backend", locator);
#endif
}
