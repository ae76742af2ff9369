/* file_read.c — reopening a component's files for a load, choosing each
 * one's read mode, and the reads themselves (file_read.h). */
#include "file_read.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int pread_full(hoist_runtime *rt, const upload_file *uf, int fd, uint64_t off, void *dst,
                      size_t len) {
  unsigned char *p = dst;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return hoist__fail(rt, HOIST_IO, "%s: read at offset %llu: %s", hoist_file_path(uf->file),
                        (unsigned long long)off, strerror(errno));
    if (n == 0)
      return hoist__fail(rt, HOIST_FILE_CHANGED,
                        "%s: file ended at offset %llu during the load (truncated or replaced)",
                        hoist_file_path(uf->file), (unsigned long long)off);
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return HOIST_OK;
}

int hoist__upload_read(hoist_runtime *rt, const upload_file *uf, uint64_t off, void *dst, size_t len) {
  if (uf->mode == HOIST_READ_MMAP && uf->map != NULL) {
    int rc = hoist__guarded_copy(dst, uf->map + off, len, NULL);
    if (rc != HOIST_OK)
      return hoist__fail(rt, rc, "%s: file shrank under its mapping at offset %llu during the load",
                        hoist_file_path(uf->file), (unsigned long long)off);
    return HOIST_OK;
  }
  return pread_full(rt, uf, uf->fd, off, dst, len);
}

/* Reads the aligned superset of the wanted range and points at where the
 * wanted bytes start. */
int hoist__upload_read_direct(hoist_runtime *rt, const upload_file *uf, uint64_t off, size_t len,
                       unsigned char *slot, unsigned char **data) {
  uint64_t a = off & ~(uint64_t)(HOIST_DIRECT_ALIGN - 1);
  uint64_t end = off + len;
  uint64_t b = (end + HOIST_DIRECT_ALIGN - 1) & ~(uint64_t)(HOIST_DIRECT_ALIGN - 1);
  uint64_t fsize = hoist_file_size(uf->file);
  size_t want = (size_t)(b - a);
  size_t got = 0;
  while (got < want) {
    ssize_t n = pread(uf->fd_direct, slot + got, want - got, (off_t)(a + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return hoist__fail(rt, HOIST_IO, "%s: O_DIRECT read at %llu: %s", hoist_file_path(uf->file),
                        (unsigned long long)(a + got), strerror(errno));
    if (n == 0) break;
    got += (size_t)n;
  }
  /* The aligned tail may run past the end of the file; only the wanted
   * bytes must be there, and the file must still be as long as it was. */
  if (a + got < end || (a + got < b && a + got < fsize))
    return hoist__fail(rt, HOIST_FILE_CHANGED,
                      "%s: file ended at offset %llu during the load (truncated or replaced)",
                      hoist_file_path(uf->file), (unsigned long long)(a + got));
  *data = slot + (off - a);
  return HOIST_OK;
}

/* Fraction of a file's data pages in the page cache, from a sample. */
static double cached_fraction(const upload_file *uf) {
  uint64_t size = hoist_file_size(uf->file);
  long page = sysconf(_SC_PAGESIZE);
  if (uf->map == NULL || size == 0 || page <= 0) return 1.0;
  const uint64_t samples = 64;
  uint64_t hits = 0, tried = 0;
  for (uint64_t i = 0; i < samples; i++) {
    uint64_t off = (size / samples) * i;
    off &= ~(uint64_t)(page - 1);
    unsigned char v = 0;
    if (mincore((void *)(uf->map + off), 1, &v) == 0) {
      tried++;
      hits += v & 1;
    }
  }
  return tried == 0 ? 1.0 : (double)hits / (double)tried;
}

void hoist__upload_files_close(hoist_runtime *rt, upload_file *files, size_t n) {
  if (files == NULL) return;
  for (size_t i = 0; i < n; i++) {
    if (files[i].registered) rt->dev->ops->host_unregister(rt->dev, (void *)files[i].map);
    if (files[i].fd >= 0) close(files[i].fd);
    if (files[i].fd_direct >= 0) close(files[i].fd_direct);
  }
  free(files);
}

int hoist__upload_files_open(hoist_runtime *rt, const hoist_file *const *files, size_t n,
                      hoist_read_mode mode, upload_file **out) {
  upload_file *uf = calloc(n > 0 ? n : 1, sizeof *uf);
  if (uf == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < n; i++) uf[i].fd = uf[i].fd_direct = -1;
  int rc = HOIST_OK;
  for (size_t i = 0; i < n; i++) {
    upload_file *u = &uf[i];
    u->file = files[i];
    u->map = hoist_file_mapping(files[i]);
    const char *path = hoist_file_path(files[i]);
    /* O_NONBLOCK: a FIFO swapped in for the file cannot block the reopen
     * (the inode check below then refuses it). */
    u->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (u->fd < 0) {
      rc = hoist__fail(rt, errno == ENOENT ? HOIST_FILE_CHANGED : HOIST_IO, "%s: reopen: %s", path,
                      strerror(errno));
      goto fail;
    }
    /* The file must still be the one whose header we validated: the same
     * inode (not a same-size file moved over the path, as a cache update
     * does) and the same size. */
    struct stat st, orig;
    if (fstat(u->fd, &st) != 0 || fstat(hoist__file_fd(files[i]), &orig) != 0 ||
        st.st_dev != orig.st_dev || st.st_ino != orig.st_ino) {
      rc = hoist__fail(rt, HOIST_FILE_CHANGED, "%s: replaced since its header was read", path);
      goto fail;
    }
    if ((uint64_t)st.st_size != hoist_file_size(files[i])) {
      rc = hoist__fail(rt, HOIST_FILE_CHANGED, "%s: size changed since its header was read", path);
      goto fail;
    }
    hoist_read_mode m = mode;
    /* Cached pages are copied straight from the mapping (the fastest warm
     * path); a file mostly out of the page cache is read with O_DIRECT,
     * which was faster than buffered reads on cold files (bench/RESULTS.md)
     * and does not evict other data. */
    if (m == HOIST_READ_AUTO) m = cached_fraction(u) >= 0.5 ? HOIST_READ_MMAP : HOIST_READ_DIRECT;
    if (m == HOIST_READ_MMAP && u->map == NULL) m = HOIST_READ_PREAD;
    if (m == HOIST_READ_DIRECT) {
      u->fd_direct = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_DIRECT);
      if (u->fd_direct < 0) {
        hoist__log(rt, HOIST_LOG_WARN, "%s: O_DIRECT unavailable (%s); using pread", path,
                  strerror(errno));
        m = HOIST_READ_PREAD;
      }
    } else if (m == HOIST_READ_PREAD) {
      posix_fadvise(u->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    if (m == HOIST_READ_REGISTER) {
      if (u->map == NULL) {
        m = HOIST_READ_PREAD;
      } else {
        /* Page-lock the mapping so the DMA engine reads the page cache
         * directly; a backend without registration falls back to copies. */
        rc = rt->dev->ops->host_register(rt->dev, (void *)u->map,
                                         (size_t)hoist_file_size(files[i]), 1);
        if (rc == HOIST_OK) {
          u->registered = 1;
        } else if (rc == HOIST_UNSUPPORTED) {
          m = HOIST_READ_MMAP;
          rc = HOIST_OK;
        } else {
          goto fail;
        }
      }
    }
    u->mode = m;
  }
  *out = uf;
  return HOIST_OK;
fail:
  hoist__upload_files_close(rt, uf, n);
  return rc;
}
