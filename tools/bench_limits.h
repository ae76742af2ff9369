/* bench_limits.h — hardware limits measured in the same run as a benchmark:
 * pinned host-to-device bandwidth and the files' raw read rates, plus
 * page-cache eviction for cold runs. */
#ifndef HOIST_BENCH_LIMITS_H
#define HOIST_BENCH_LIMITS_H

#include "hoist.h"

#include <stddef.h>

/* Median GB/s of copying `bytes` from pinned host memory to the device,
 * `reps` times after a warm-up (random contents).  0 on failure. */
double bench_h2d_pinned(hoist_runtime *rt, size_t bytes, int reps);

/* Evicts the files' pages (posix_fadvise DONTNEED, and drop_caches when
 * running as root).  Returns 0 when eviction was only per-file. */
int bench_evict(const char *const *files, size_t n);

/* Reads every file once with `threads` threads in `block`-byte reads;
 * direct = O_DIRECT.  Returns GB/s, or 0 on failure. */
double bench_read_rate(const char *const *files, size_t n, unsigned threads, size_t block,
                       int direct);

#endif
