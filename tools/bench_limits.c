/* bench_limits.c — the hardware limits every hoist benchmark reports next to
 * its own figure (DESIGN.md, "Measuring"): pinned H2D bandwidth through the
 * runtime's device backend, and the raw parallel read rate of the same
 * files, buffered and O_DIRECT, after evicting their pages. */
#include "bench_limits.h"
#include "cli.h"

#include "device.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

double bench_h2d_pinned(hoist_runtime *rt, size_t bytes, int reps) {
  hoist__device *d = rt->dev;
  void *host = NULL, *stream = NULL;
  uint64_t dev = 0;
  double result = 0, times[64];
  if (reps > 64) reps = 64;
  if (d->ops->pinned_alloc(d, bytes, &host) != HOIST_OK) goto done;
  if (d->ops->alloc(d, bytes, &dev) != HOIST_OK) goto done;
  if (d->ops->stream_create(d, &stream) != HOIST_OK) goto done;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy((char *)host + i, &x, 8);
  }
  for (int r = -2; r < reps; r++) {
    double t0 = cli_now_seconds();
    if (d->ops->copy_h2d_async(d, dev, host, bytes, stream) != HOIST_OK ||
        d->ops->stream_sync(d, stream) != HOIST_OK)
      goto done;
    if (r >= 0) times[r] = cli_now_seconds() - t0;
  }
  qsort(times, (size_t)reps, sizeof times[0], cli_cmp_double);
  result = (double)bytes / times[reps / 2] / 1e9;
done:
  if (stream != NULL) d->ops->stream_destroy(d, stream);
  d->ops->free(d, dev);
  d->ops->pinned_free(d, host);
  return result;
}

int bench_evict(const char *const *files, size_t n) {
  int dropped = 0;
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd >= 0) {
    dropped = write(fd, "3\n", 2) == 2;
    close(fd);
  }
  for (size_t i = 0; i < n; i++) {
    int f = open(files[i], O_RDONLY);
    if (f < 0) continue;
    posix_fadvise(f, 0, 0, POSIX_FADV_DONTNEED);
    close(f);
  }
  return dropped;
}

typedef struct read_work {
  const char *const *files;
  size_t n;
  size_t block;
  int direct;
  atomic_size_t next; /* global block counter over all files */
  uint64_t *starts;   /* first block of each file */
  uint64_t total_blocks;
  atomic_int failed;
  atomic_uint_fast64_t bytes;
} read_work;

static void read_worker(void *arg) {
  read_work *w = arg;
  void *buf = NULL;
  if (posix_memalign(&buf, 4096, w->block) != 0) {
    atomic_store(&w->failed, 1);
    return;
  }
  int cur_file = -1, fd = -1;
  for (;;) {
    size_t b = atomic_fetch_add(&w->next, 1);
    if (b >= w->total_blocks || atomic_load(&w->failed)) break;
    size_t f = 0;
    while (f + 1 < w->n && w->starts[f + 1] <= b) f++;
    if ((int)f != cur_file) {
      if (fd >= 0) close(fd);
      fd = open(w->files[f], O_RDONLY | (w->direct ? O_DIRECT : 0));
      cur_file = (int)f;
      if (fd < 0) {
        atomic_store(&w->failed, 1);
        break;
      }
    }
    off_t off = (off_t)((b - w->starts[f]) * w->block);
    ssize_t got = pread(fd, buf, w->block, off);
    if (got < 0) {
      atomic_store(&w->failed, 1);
      break;
    }
    atomic_fetch_add(&w->bytes, (uint64_t)got);
  }
  if (fd >= 0) close(fd);
  free(buf);
}

double bench_read_rate(const char *const *files, size_t n, unsigned threads, size_t block,
                       int direct) {
  read_work w;
  memset(&w, 0, sizeof w);
  w.files = files;
  w.n = n;
  w.block = block;
  w.direct = direct;
  w.starts = calloc(n + 1, sizeof *w.starts);
  if (w.starts == NULL || threads == 0 || threads > 64) {
    free(w.starts);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    uint64_t size = stat(files[i], &st) == 0 ? (uint64_t)st.st_size : 0;
    w.starts[i] = w.total_blocks;
    w.total_blocks += (size + block - 1) / block;
  }
  w.starts[n] = w.total_blocks;
  uv_thread_t t[64];
  double t0 = cli_now_seconds();
  unsigned started = 0;
  for (; started < threads; started++)
    if (uv_thread_create(&t[started], read_worker, &w) != 0) break;
  for (unsigned i = 0; i < started; i++) uv_thread_join(&t[i]);
  double dt = cli_now_seconds() - t0;
  free(w.starts);
  if (atomic_load(&w.failed) || dt <= 0) return 0;
  return (double)atomic_load(&w.bytes) / dt / 1e9;
}
