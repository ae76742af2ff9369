/* host_maps.c — whether host memory the caller hands to hoist_load_into is
 * a writable mapping of this process, read from /proc/self/maps.  A
 * pointer from another process, a freed buffer or a read-only mapping
 * (weights shared read-only by `hoist serve`) would otherwise be written
 * by a reader thread and end the process with SIGSEGV; here it is a
 * refusal before any byte moves.  Linux only, as the host backend is. */
#include "device.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mapping {
  uint64_t begin, end;
  bool writable;
} mapping;

/* The process's mappings, in address order (as the kernel lists them). */
static int read_maps(hoist__device *d, mapping **out, size_t *count) {
  FILE *f = fopen("/proc/self/maps", "re");
  if (f == NULL)
    return hoist__fail(d->rt, HOIST_IO, "/proc/self/maps: %s", strerror(errno));
  mapping *v = NULL;
  size_t n = 0, cap = 0;
  char *line = NULL;
  size_t line_cap = 0;
  int rc = HOIST_OK;
  while (rc == HOIST_OK && getline(&line, &line_cap, f) > 0) {
    unsigned long long b, e;
    char perms[5];
    if (sscanf(line, "%llx-%llx %4s", &b, &e, perms) != 3) continue;
    if (n == cap) {
      size_t grown = cap > 0 ? 2 * cap : 256;
      mapping *w = realloc(v, grown * sizeof *w);
      if (w == NULL) {
        rc = hoist__fail(d->rt, HOIST_NO_MEMORY, "out of memory reading /proc/self/maps");
        break;
      }
      v = w;
      cap = grown;
    }
    v[n++] = (mapping){b, e, perms[1] == 'w'};
  }
  free(line);
  fclose(f);
  if (rc != HOIST_OK) {
    free(v);
    return rc;
  }
  *out = v;
  *count = n;
  return HOIST_OK;
}

/* Why [addr, addr + bytes) is not covered by writable mappings from
 * maps[k] on, or NULL when it is. */
static const char *uncovered(const mapping *maps, size_t n, size_t k, uint64_t addr,
                             uint64_t bytes) {
  uint64_t pos = addr, end = addr + bytes;
  for (; pos < end; k++) {
    if (k == n || maps[k].begin > pos)
      return "not mapped in this process (freed, or a pointer from another process?)";
    if (!maps[k].writable) return "a read-only mapping";
    pos = maps[k].end;
  }
  return NULL;
}

int hoist__host_check_writable(hoist__device *d, const hoist__range *ranges, size_t n, size_t *bad,
                               const char **why) {
  mapping *maps = NULL;
  size_t count = 0;
  int rc = read_maps(d, &maps, &count);
  if (rc != HOIST_OK) return rc;
  size_t k = 0; /* ranges come in address order: the mapping scan only moves forward */
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) {
    while (k < count && maps[k].end <= ranges[i].addr) k++;
    const char *w = uncovered(maps, count, k, ranges[i].addr, ranges[i].bytes);
    if (w != NULL) {
      *bad = i;
      *why = w;
      rc = HOIST_INVALID_ARGUMENT;
    }
  }
  free(maps);
  return rc;
}
