/* device.c — picks a device backend from a spec string ("host", "cuda:N"). */
#include "device.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
