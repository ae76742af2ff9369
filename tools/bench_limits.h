/* bench_limits.h — storage limits measured in the same run as a benchmark:
 * the files' raw read rates, and page-cache eviction for cold runs.  The
 * pinned host-to-device limit is hoist__device_h2d_rate (hoist_tools.h). */
#ifndef HOIST_BENCH_LIMITS_H
#define HOIST_BENCH_LIMITS_H

#include "hoist.h"

#include <stddef.h>

/* Evicts the files' pages (posix_fadvise DONTNEED, and drop_caches when
 * running as root).  Returns 0 when eviction was only per-file. */
int bench_evict(const char *const *files, size_t n);

/* Reads every file once with `threads` threads in `block`-byte reads;
 * direct = O_DIRECT.  Returns GB/s, or 0 on failure. */
double bench_read_rate(const char *const *files, size_t n, unsigned threads, size_t block,
                       int direct);

#endif
