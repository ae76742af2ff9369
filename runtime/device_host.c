/* device_host.c — the "host" device backend: device memory is host memory
 * with an enforced capacity, and memory info reports capacity minus what is
 * allocated.  It is a real target (weights in RAM for CPU engines) and the
 * deterministic substrate for CI and OOM-threshold simulation.
 *
 * Copies are synchronous memcpy, so streams and events are trivial tokens.
 * Accounting counts every device allocation at its size rounded up to 256
 * bytes; pinned (staging) memory is tracked separately so tests can prove
 * that nothing leaks on any path.
 *
 * Device memory is anonymous memory.  An allocation another process is to
 * map (share_export: `hoist serve` shares its arenas on the host backend as
 * a CUDA IPC handle does on a GPU) moves into a memfd at the same address
 * the first time it is exported, so that it can be handed over a Unix
 * socket (SCM_RIGHTS) and mapped there read-only.  Only then: shared
 * memory from a memfd is filled about a third slower than anonymous memory
 * (its pages are not huge pages), which every load would pay. */
#include "convert_ref.h"
#include "device.h"
#include "kernels.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOST_ALIGN 256

typedef struct host_block {
  uint64_t addr;
  uint64_t bytes;  /* rounded to HOST_ALIGN: the accounted size and the mapping's */
  int fd;          /* the memfd behind the mapping once shared; -1 before */
  struct host_block *next;
} host_block;

typedef struct host_device {
  hoist__device base;
  uv_mutex_t lock;
  uint64_t capacity;
  uint64_t allocated;
  uint64_t pinned;
  uint64_t fail_countdown; /* 0 = off; 1 = the next alloc fails */
  uint64_t fail_count;     /* failures left once the countdown hits */
  host_block *blocks;      /* live device allocations, for free() sizes */
  atomic_uint_fast64_t copies, converts, allocs; /* operations issued, for tests */
} host_device;

static host_device *as_host(hoist__device *d) { return (host_device *)d; }

static void host_destroy(hoist__device *d) {
  host_device *h = as_host(d);
  /* Anything still allocated here is a caller leak; free it so the process
   * does not compound it, and log it so tests notice. */
  for (host_block *b = h->blocks; b != NULL;) {
    host_block *next = b->next;
    hoist__log(d->rt, HOIST_LOG_WARN, "host device: %llu bytes still allocated at close",
              (unsigned long long)b->bytes);
    munmap((void *)(uintptr_t)b->addr, (size_t)b->bytes);
    if (b->fd >= 0) close(b->fd);
    free(b);
    b = next;
  }
  uv_mutex_destroy(&h->lock);
  free(h);
}

static int host_mem_info(hoist__device *d, uint64_t *free_bytes, uint64_t *total_bytes) {
  host_device *h = as_host(d);
  uv_mutex_lock(&h->lock);
  *total_bytes = h->capacity;
  *free_bytes = h->allocated >= h->capacity ? 0 : h->capacity - h->allocated;
  uv_mutex_unlock(&h->lock);
  return HOIST_OK;
}

static int host_alloc(hoist__device *d, uint64_t bytes, uint64_t *addr) {
  host_device *h = as_host(d);
  uint64_t rounded;
  if (bytes == 0) bytes = 1;
  if (!hoist__round_up_u64(bytes, HOST_ALIGN, &rounded) || rounded > SIZE_MAX)
    return hoist__fail(d->rt, HOIST_DEVICE_OOM, "host device: allocation of %llu bytes overflows",
                      (unsigned long long)bytes);
  uv_mutex_lock(&h->lock);
  bool injected = false;
  if (h->fail_countdown > 1) {
    h->fail_countdown--;
  } else if (h->fail_countdown == 1 && h->fail_count > 0) {
    injected = true;
    if (h->fail_count != UINT64_MAX && --h->fail_count == 0) h->fail_countdown = 0;
  }
  uint64_t free_now = h->allocated >= h->capacity ? 0 : h->capacity - h->allocated;
  if (injected || rounded > free_now) {
    uv_mutex_unlock(&h->lock);
    return hoist__fail(d->rt, HOIST_DEVICE_OOM,
                      "host device: cannot allocate %llu bytes, %llu free of %llu%s",
                      (unsigned long long)rounded, (unsigned long long)free_now,
                      (unsigned long long)h->capacity, injected ? " (injected failure)" : "");
  }
  h->allocated += rounded; /* reserve before dropping the lock */
  uv_mutex_unlock(&h->lock);

  host_block *b = malloc(sizeof *b);
  void *p = MAP_FAILED;
  if (b != NULL)
    p = mmap(NULL, (size_t)rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    int err = b == NULL ? ENOMEM : errno;
    free(b);
    uv_mutex_lock(&h->lock);
    h->allocated -= rounded;
    uv_mutex_unlock(&h->lock);
    return hoist__fail(d->rt, HOIST_DEVICE_OOM, "host device: out of RAM for %llu bytes (%s)",
                      (unsigned long long)rounded, strerror(err));
  }
  b->addr = (uint64_t)(uintptr_t)p;
  b->bytes = rounded;
  b->fd = -1;
  uv_mutex_lock(&h->lock);
  b->next = h->blocks;
  h->blocks = b;
  uv_mutex_unlock(&h->lock);
  atomic_fetch_add(&h->allocs, 1);
  *addr = b->addr;
  return HOIST_OK;
}

static void host_free(hoist__device *d, uint64_t addr) {
  host_device *h = as_host(d);
  if (addr == 0) return;
  uv_mutex_lock(&h->lock);
  host_block **pp = &h->blocks;
  while (*pp != NULL && (*pp)->addr != addr) pp = &(*pp)->next;
  host_block *b = *pp;
  if (b != NULL) {
    *pp = b->next;
    h->allocated -= b->bytes;
  }
  uv_mutex_unlock(&h->lock);
  if (b == NULL) {
    hoist__log(d->rt, HOIST_LOG_ERROR, "host device: free of unknown address %#llx",
              (unsigned long long)addr);
    return;
  }
  munmap((void *)(uintptr_t)b->addr, (size_t)b->bytes);
  if (b->fd >= 0) close(b->fd);
  free(b);
}

/* Pinned memory on the host backend is plain page-aligned memory (as
 * cudaHostAlloc's is, so O_DIRECT reads into it work); a size header in the
 * page in front of the block lets pinned_free keep the books. */
#define PINNED_ALIGN 4096u

static int host_pinned_alloc(hoist__device *d, size_t bytes, void **out) {
  host_device *h = as_host(d);
  size_t total;
  if (__builtin_add_overflow(bytes, (size_t)(2 * PINNED_ALIGN - 1), &total))
    return hoist__fail(d->rt, HOIST_NO_MEMORY, "host device: pinned size overflows");
  total &= ~(size_t)(PINNED_ALIGN - 1);
  unsigned char *p = aligned_alloc(PINNED_ALIGN, total);
  if (p == NULL)
    return hoist__fail(d->rt, HOIST_NO_MEMORY, "host device: cannot allocate %zu bytes of staging",
                      bytes);
  memcpy(p, &bytes, sizeof bytes);
  uv_mutex_lock(&h->lock);
  h->pinned += bytes;
  uv_mutex_unlock(&h->lock);
  *out = p + PINNED_ALIGN;
  return HOIST_OK;
}

static void host_pinned_free(hoist__device *d, void *p) {
  host_device *h = as_host(d);
  if (p == NULL) return;
  unsigned char *base = (unsigned char *)p - PINNED_ALIGN;
  size_t bytes;
  memcpy(&bytes, base, sizeof bytes);
  uv_mutex_lock(&h->lock);
  h->pinned -= bytes;
  uv_mutex_unlock(&h->lock);
  free(base);
}

/* Streams and events: copies complete before copy_h2d_async returns, so a
 * token is enough.  They are still allocated so leaks show under ASan. */
static int host_token_create(hoist__device *d, void **out) {
  *out = malloc(1);
  return *out != NULL ? HOIST_OK : hoist__fail(d->rt, HOIST_NO_MEMORY, "host device: out of memory");
}
static void host_token_destroy(hoist__device *d, void *token) { free(token); }
static int host_stream_sync(hoist__device *d, void *stream) { return HOIST_OK; }
static int host_event_record(hoist__device *d, void *event, void *stream) { return HOIST_OK; }
static int host_event_sync(hoist__device *d, void *event) { return HOIST_OK; }
static int host_stream_wait_event(hoist__device *d, void *stream, void *event) { return HOIST_OK; }

static int host_copy_h2d_async(hoist__device *d, uint64_t dst, const void *src, size_t n,
                               void *stream) {
  atomic_fetch_add(&as_host(d)->copies, 1);
  if (n > 0) memcpy((void *)(uintptr_t)dst, src, n);
  return HOIST_OK;
}

static int host_copy_d2h(hoist__device *d, void *dst, uint64_t src, size_t n) {
  if (n > 0) memcpy(dst, (const void *)(uintptr_t)src, n);
  return HOIST_OK;
}

static int host_register(hoist__device *d, void *p, size_t n, int read_only) {
  return hoist__fail(d->rt, HOIST_UNSUPPORTED, "host device: registration not supported");
}
static void host_unregister(hoist__device *d, void *p) {}

/* Conversion and checksum run on the calling thread, synchronously, with
 * the same definitions the kernels use, so CI exercises the device path. */
static int host_convert(hoist__device *d, uint64_t dst, hoist_dtype to, uint64_t src,
                        hoist_dtype from, uint64_t n, void *stream) {
  atomic_fetch_add(&as_host(d)->converts, 1);
  int rc = hoist__convert_ref((void *)(uintptr_t)dst, to, (const void *)(uintptr_t)src, from, n);
  if (rc != HOIST_OK)
    return hoist__fail(d->rt, rc, "host device: conversion %s -> %s of %llu elements refused",
                      hoist_dtype_name(from) ? hoist_dtype_name(from) : "?",
                      hoist_dtype_name(to) ? hoist_dtype_name(to) : "?", (unsigned long long)n);
  return HOIST_OK;
}

static int host_checksum(hoist__device *d, uint64_t src, uint64_t n, uint64_t out, void *stream) {
  uint64_t h = hoist__checksum_host((const void *)(uintptr_t)src, n, 1);
  memcpy((void *)(uintptr_t)out, &h, sizeof h);
  return HOIST_OK;
}

static int host_checksum_batch(hoist__device *d, const hoist__checksum_span *spans, size_t n,
                               uint64_t table, void *stream) {
  if (n == 0) return HOIST_OK;
  if (spans == NULL || table == 0 || table % 8 != 0)
    return hoist__fail(d->rt, HOIST_INVALID_ARGUMENT,
                      "host device: checksum batch without spans or a table");
  /* Every span checked before any output is written, as on cuda. */
  for (size_t i = 0; i < n; i++)
    if (spans[i].out == 0 || spans[i].out % 8 != 0 || (spans[i].addr == 0 && spans[i].n > 0) ||
        spans[i].n > UINT64_MAX - spans[i].addr)
      return hoist__fail(d->rt, HOIST_INVALID_ARGUMENT,
                        "host device: checksum span %zu has a NULL or misaligned pointer or "
                        "wraps around", i);
  for (size_t i = 0; i < n; i++) {
    uint64_t h = hoist__checksum_host((const void *)(uintptr_t)spans[i].addr, spans[i].n, 1);
    memcpy((void *)(uintptr_t)spans[i].out, &h, sizeof h);
  }
  return HOIST_OK;
}

/* The capacity is exact and nothing else allocates behind hoist's back:
 * no headroom is needed. */
static uint64_t host_default_headroom(const hoist__device *d, uint64_t total_bytes) { return 0; }

/* Sharing: the allocation's memfd, sealed first so that the receiver can
 * neither map it writable (F_SEAL_FUTURE_WRITE; this process's mapping
 * keeps working) nor see it shrink under its mapping.  Kernels before 5.1
 * lack the write seal: there read-only is the receiver's PROT_READ alone. */
/* Moves block b's bytes into a memfd mapped shared at the same address
 * (MAP_FIXED replaces the anonymous pages in one step), so that another
 * process can map them; b must not be written meanwhile (exports come
 * after the load that filled it).  Under the device's lock. */
static int host_block_to_memfd(hoist__device *d, host_block *b) {
  int fd = memfd_create("hoist-device", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  int rc = fd >= 0 && ftruncate(fd, (off_t)b->bytes) == 0 ? HOIST_OK : HOIST_IO;
  const unsigned char *p = (const unsigned char *)(uintptr_t)b->addr;
  for (uint64_t off = 0; rc == HOIST_OK && off < b->bytes;) {
    ssize_t n = pwrite(fd, p + off, (size_t)(b->bytes - off), (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) rc = HOIST_IO;
    else off += (uint64_t)n;
  }
  if (rc == HOIST_OK && mmap((void *)(uintptr_t)b->addr, (size_t)b->bytes,
                             PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
    rc = HOIST_IO;
  if (rc != HOIST_OK) {
    int e = errno;
    if (fd >= 0) close(fd);
    return hoist__fail(d->rt, rc, "host device: cannot share an allocation of %llu bytes: %s",
                       (unsigned long long)b->bytes, strerror(e));
  }
  b->fd = fd;
  return HOIST_OK;
}

static int host_share_export(hoist__device *d, uint64_t addr, hoist__share_handle *out) {
  host_device *h = as_host(d);
  memset(out, 0, sizeof *out);
  out->fd = -1;
  uv_mutex_lock(&h->lock);
  host_block *b = h->blocks;
  while (b != NULL && b->addr != addr) b = b->next;
  int rc = b != NULL && b->fd < 0 ? host_block_to_memfd(d, b) : HOIST_OK;
  int fd = b != NULL ? b->fd : -1;
  uv_mutex_unlock(&h->lock);
  if (rc != HOIST_OK) return rc;
  if (b == NULL)
    return hoist__fail(d->rt, HOIST_INVALID_ARGUMENT,
                      "host device: %#llx is not the start of an allocation",
                      (unsigned long long)addr);
  int seals = F_SEAL_SHRINK | F_SEAL_GROW;
  if (fcntl(fd, F_ADD_SEALS, seals | F_SEAL_FUTURE_WRITE) != 0 &&
      (errno != EINVAL || fcntl(fd, F_ADD_SEALS, seals) != 0))
    return hoist__fail(d->rt, HOIST_IO, "host device: cannot seal a shared allocation: %s",
                      strerror(errno));
  out->fd = fd;
  return HOIST_OK;
}

static int host_share_open(hoist__device *d, const hoist__share_handle *hd, uint64_t bytes,
                           uint64_t *addr) {
  struct stat st;
  if (hd->fd < 0 || fstat(hd->fd, &st) != 0)
    return hoist__fail(d->rt, HOIST_INVALID_ARGUMENT, "host device: shared handle without a "
                      "usable descriptor");
  if (bytes == 0 || bytes > SIZE_MAX || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < bytes)
    return hoist__fail(d->rt, HOIST_INVALID_ARGUMENT,
                      "host device: shared allocation of %lld bytes cannot hold %llu",
                      (long long)st.st_size, (unsigned long long)bytes);
  void *p = mmap(NULL, (size_t)bytes, PROT_READ, MAP_SHARED, hd->fd, 0);
  if (p == MAP_FAILED)
    return hoist__fail(d->rt, HOIST_NO_MEMORY, "host device: cannot map %llu shared bytes: %s",
                      (unsigned long long)bytes, strerror(errno));
  *addr = (uint64_t)(uintptr_t)p;
  return HOIST_OK;
}

static void host_share_close(hoist__device *d, uint64_t addr, uint64_t bytes) {
  if (addr != 0) munmap((void *)(uintptr_t)addr, (size_t)bytes);
}

static const hoist__device_ops host_ops = {
    .destroy = host_destroy,
    .mem_info = host_mem_info,
    .alloc = host_alloc,
    .free = host_free,
    .pinned_alloc = host_pinned_alloc,
    .pinned_free = host_pinned_free,
    .stream_create = host_token_create,
    .stream_destroy = host_token_destroy,
    .stream_sync = host_stream_sync,
    .event_create = host_token_create,
    .event_destroy = host_token_destroy,
    .event_record = host_event_record,
    .event_sync = host_event_sync,
    .stream_wait_event = host_stream_wait_event,
    .copy_h2d_async = host_copy_h2d_async,
    .copy_d2h = host_copy_d2h,
    .host_register = host_register,
    .host_unregister = host_unregister,
    .convert = host_convert,
    .checksum = host_checksum,
    .checksum_batch = host_checksum_batch,
    .default_headroom = host_default_headroom,
    .alloc_granularity = HOST_ALIGN,
    .share_export = host_share_export,
    .share_open = host_share_open,
    .share_close = host_share_close,
    .check_writable = hoist__host_check_writable,
};

int hoist__device_host_open(hoist_runtime *rt, uint64_t capacity, hoist__device **out) {
  host_device *h = calloc(1, sizeof *h);
  if (h == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "host device: out of memory");
  if (uv_mutex_init(&h->lock) != 0) {
    free(h);
    return hoist__fail(rt, HOIST_NO_MEMORY, "host device: cannot create a mutex");
  }
  if (capacity == 0) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    capacity = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
  }
  h->capacity = capacity;
  atomic_init(&h->copies, 0);
  atomic_init(&h->converts, 0);
  atomic_init(&h->allocs, 0);
  h->base.ops = &host_ops;
  h->base.rt = rt;
  h->base.kind = "host";
  h->base.ordinal = 0;
  strcpy(h->base.name, "host");
  *out = &h->base;
  return HOIST_OK;
}

/* The host backend of rt, for its hooks: another backend is API misuse. */
static host_device *host_of(hoist_runtime *rt) {
  assert(rt->dev->ops == &host_ops);
  return as_host(rt->dev);
}

void hoist__device_host_fail_alloc_at(hoist_runtime *rt, uint64_t k, uint64_t count) {
  host_device *h = host_of(rt);
  uv_mutex_lock(&h->lock);
  h->fail_countdown = k;
  h->fail_count = count;
  uv_mutex_unlock(&h->lock);
}

void hoist__device_host_set_capacity(hoist_runtime *rt, uint64_t capacity) {
  host_device *h = host_of(rt);
  uv_mutex_lock(&h->lock);
  h->capacity = capacity;
  uv_mutex_unlock(&h->lock);
}

uint64_t hoist__device_host_allocated(hoist_runtime *rt) {
  host_device *h = host_of(rt);
  uv_mutex_lock(&h->lock);
  uint64_t v = h->allocated;
  uv_mutex_unlock(&h->lock);
  return v;
}

uint64_t hoist__device_host_pinned(hoist_runtime *rt) {
  host_device *h = host_of(rt);
  uv_mutex_lock(&h->lock);
  uint64_t v = h->pinned;
  uv_mutex_unlock(&h->lock);
  return v;
}

void hoist__device_host_counts(hoist_runtime *rt, uint64_t *copies, uint64_t *converts,
                              uint64_t *allocs) {
  host_device *h = host_of(rt);
  *allocs = atomic_load(&h->allocs);
  *copies = atomic_load(&h->copies);
  *converts = atomic_load(&h->converts);
}
