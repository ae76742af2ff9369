/* device_cuda.c — the "cuda" device backend: device memory (cudaMalloc, or
 * memory shareable by descriptor in a process that shares its loads,
 * device_cuda_vmm.c), cudaMemGetInfo, pinned host memory, streams, events and
 * cudaMemcpyAsync on device cuda:N.  With device_cuda_vmm.c the only
 * runtime files besides kernels/ that include CUDA.
 *
 * Every op first makes the backend's device current on the calling thread,
 * because upload worker threads start with device 0 current. */
#include "checks.h"
#include "device.h"
#include "device_cuda_vmm.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_RT(d) ((d)->rt)
#define SET_DEVICE(d) CHECK_CUDA(CUDA_RT(d), cudaSetDevice((d)->ordinal))

static void cuda_destroy(hoist__device *d) { free(d); }

static int cuda_mem_info(hoist__device *d, uint64_t *free_bytes, uint64_t *total_bytes) {
  size_t f = 0, t = 0;
  SET_DEVICE(d);
  CHECK_CUDA(d->rt, cudaMemGetInfo(&f, &t));
  *free_bytes = f;
  *total_bytes = t;
  return HOIST_OK;
}

static int cuda_alloc(hoist__device *d, uint64_t bytes, uint64_t *addr) {
  void *p = NULL;
  SET_DEVICE(d);
  if (d->share_by_fd) return hoist__vmm_alloc(d->rt, d->ordinal, bytes, addr);
  cudaError_t e = cudaMalloc(&p, (size_t)bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return hoist__fail(d->rt, hoist__cuda_status(e), "cuda:%d: cudaMalloc of %llu bytes failed: %s",
                      d->ordinal, (unsigned long long)bytes, cudaGetErrorString(e));
  }
  *addr = (uint64_t)(uintptr_t)p;
  return HOIST_OK;
}

static void cuda_free(hoist__device *d, uint64_t addr) {
  if (addr == 0 || (d->share_by_fd && hoist__vmm_free(d->rt, addr))) return;
  if (cudaSetDevice(d->ordinal) != cudaSuccess || cudaFree((void *)(uintptr_t)addr) != cudaSuccess) {
    (void)cudaGetLastError();
    hoist__log(d->rt, HOIST_LOG_ERROR, "cuda:%d: cudaFree(%#llx) failed", d->ordinal,
              (unsigned long long)addr);
  }
}

static int cuda_pinned_alloc(hoist__device *d, size_t bytes, void **out) {
  SET_DEVICE(d);
  cudaError_t e = cudaHostAlloc(out, bytes, cudaHostAllocPortable);
  if (e != cudaSuccess) {
    /* Host RAM, not device memory, ran out: not an admission failure. */
    (void)cudaGetLastError();
    return hoist__fail(d->rt, e == cudaErrorMemoryAllocation ? HOIST_NO_MEMORY : hoist__cuda_status(e),
                      "cudaHostAlloc of %zu bytes of pinned host memory failed: %s", bytes,
                      cudaGetErrorString(e));
  }
  return HOIST_OK;
}

static void cuda_pinned_free(hoist__device *d, void *p) {
  if (p != NULL && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
}

static int cuda_stream_create(hoist__device *d, void **stream) {
  cudaStream_t s = NULL;
  SET_DEVICE(d);
  CHECK_CUDA(d->rt, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *stream = s;
  return HOIST_OK;
}

static void cuda_stream_destroy(hoist__device *d, void *stream) {
  if (stream != NULL && cudaStreamDestroy((cudaStream_t)stream) != cudaSuccess)
    (void)cudaGetLastError();
}

static int cuda_stream_sync(hoist__device *d, void *stream) {
  CHECK_CUDA(d->rt, cudaStreamSynchronize((cudaStream_t)stream));
  return HOIST_OK;
}

static int cuda_event_create(hoist__device *d, void **event) {
  cudaEvent_t e = NULL;
  SET_DEVICE(d);
  CHECK_CUDA(d->rt, cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  *event = e;
  return HOIST_OK;
}

static void cuda_event_destroy(hoist__device *d, void *event) {
  if (event != NULL && cudaEventDestroy((cudaEvent_t)event) != cudaSuccess)
    (void)cudaGetLastError();
}

static int cuda_event_record(hoist__device *d, void *event, void *stream) {
  CHECK_CUDA(d->rt, cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream));
  return HOIST_OK;
}

static int cuda_event_sync(hoist__device *d, void *event) {
  CHECK_CUDA(d->rt, cudaEventSynchronize((cudaEvent_t)event));
  return HOIST_OK;
}

static int cuda_stream_wait_event(hoist__device *d, void *stream, void *event) {
  CHECK_CUDA(d->rt, cudaStreamWaitEvent((cudaStream_t)stream, (cudaEvent_t)event, 0));
  return HOIST_OK;
}

static int cuda_copy_h2d_async(hoist__device *d, uint64_t dst, const void *src, size_t n,
                               void *stream) {
  SET_DEVICE(d);
  CHECK_CUDA(d->rt, cudaMemcpyAsync((void *)(uintptr_t)dst, src, n, cudaMemcpyHostToDevice,
                                    (cudaStream_t)stream));
  return HOIST_OK;
}

static int cuda_copy_d2h(hoist__device *d, void *dst, uint64_t src, size_t n) {
  SET_DEVICE(d);
  CHECK_CUDA(d->rt, cudaMemcpy(dst, (const void *)(uintptr_t)src, n, cudaMemcpyDeviceToHost));
  return HOIST_OK;
}

static int cuda_host_register(hoist__device *d, void *p, size_t n, int read_only) {
  SET_DEVICE(d);
  unsigned flags = cudaHostRegisterPortable | (read_only ? cudaHostRegisterReadOnly : 0u);
  CHECK_CUDA(d->rt, cudaHostRegister(p, n, flags));
  return HOIST_OK;
}

static void cuda_host_unregister(hoist__device *d, void *p) {
  if (cudaHostUnregister(p) != cudaSuccess) (void)cudaGetLastError();
}

/* The launchers record their detail for the calling thread; it is copied
 * into the runtime so the load reports it. */
static int cuda_convert(hoist__device *d, uint64_t dst, hoist_dtype to, uint64_t src,
                        hoist_dtype from, uint64_t n, void *stream) {
  SET_DEVICE(d);
  int rc = hoist__convert_launch((void *)(uintptr_t)dst, to, (const void *)(uintptr_t)src, from, n,
                                stream);
  if (rc != HOIST_OK) return hoist__fail(d->rt, rc, "%s", hoist_last_error(NULL));
  return HOIST_OK;
}

static int cuda_checksum(hoist__device *d, uint64_t src, uint64_t n, uint64_t out, void *stream) {
  SET_DEVICE(d);
  int rc = hoist__checksum_launch((const void *)(uintptr_t)src, n, (uint64_t *)(uintptr_t)out,
                                 stream);
  if (rc != HOIST_OK) return hoist__fail(d->rt, rc, "%s", hoist_last_error(NULL));
  return HOIST_OK;
}

static int cuda_checksum_batch(hoist__device *d, const hoist__checksum_span *spans, size_t n,
                               uint64_t table, void *stream) {
  SET_DEVICE(d);
  int rc = hoist__checksum_batch_launch(spans, n, (void *)(uintptr_t)table, stream);
  if (rc != HOIST_OK) return hoist__fail(d->rt, rc, "%s", hoist_last_error(NULL));
  return HOIST_OK;
}

/* The context, cuBLAS workspaces and the caching allocators of frameworks
 * grow after a load: keep max(256 MiB, 2 % of the card) free for them. */
static uint64_t cuda_default_headroom(const hoist__device *d, uint64_t total_bytes) {
  uint64_t pct = total_bytes / 50;
  return pct > (256ull << 20) ? pct : (256ull << 20);
}

/* Sharing: one descriptor (or CUDA IPC handle) per allocation, an arena,
 * never per tensor. */
static int cuda_share_export(hoist__device *d, uint64_t addr, hoist__share_handle *out) {
  cudaIpcMemHandle_t h;
  _Static_assert(sizeof h <= HOIST_SHARE_BLOB_BYTES, "cudaIpcMemHandle_t fits the blob");
  memset(out, 0, sizeof *out);
  out->fd = -1;
  int rc = hoist__vmm_export(d->rt, addr, &out->fd);
  if (rc != HOIST_NOT_FOUND) return rc; /* a descriptor, or its failure */
  SET_DEVICE(d);
  CHECK_CUDA(d->rt, cudaIpcGetMemHandle(&h, (void *)(uintptr_t)addr));
  memcpy(out->blob, &h, sizeof h);
  return HOIST_OK;
}

/* CUDA maps a handle once per process: a second cudaIpcOpenMemHandle of
 * the same handle fails (CUDA_ERROR_ALREADY_MAPPED) until the first is
 * closed.  Two attaches of one process to the same generation share the
 * mapping through this process-wide table, counted. */
typedef struct ipc_mapping {
  unsigned char blob[HOIST_SHARE_BLOB_BYTES];
  int ordinal;
  uint64_t addr;
  unsigned refs;
  struct ipc_mapping *next;
} ipc_mapping;

static ipc_mapping *ipc_mappings;
static uv_mutex_t ipc_lock;
static uv_once_t ipc_once = UV_ONCE_INIT;
static void ipc_lock_init(void) { uv_mutex_init(&ipc_lock); }

static int cuda_share_open(hoist__device *d, const hoist__share_handle *hd, uint64_t bytes,
                           uint64_t *addr) {
  if (hd->fd >= 0) {
    SET_DEVICE(d);
    return hoist__vmm_import(d->rt, d->ordinal, hd->fd, bytes, addr);
  }
  uv_once(&ipc_once, ipc_lock_init);
  uv_mutex_lock(&ipc_lock);
  ipc_mapping *m = ipc_mappings;
  while (m != NULL && (m->ordinal != d->ordinal || memcmp(m->blob, hd->blob, sizeof m->blob) != 0))
    m = m->next;
  if (m != NULL) {
    m->refs++;
    *addr = m->addr;
    uv_mutex_unlock(&ipc_lock);
    return HOIST_OK;
  }
  int rc = HOIST_OK;
  cudaIpcMemHandle_t h;
  void *p = NULL;
  memcpy(&h, hd->blob, sizeof h);
  m = calloc(1, sizeof *m);
  if (m == NULL) rc = hoist__fail(d->rt, HOIST_NO_MEMORY, "out of memory");
  cudaError_t e = cudaSuccess;
  if (rc == HOIST_OK && (e = cudaSetDevice(d->ordinal)) == cudaSuccess)
    e = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
  if (rc == HOIST_OK && e != cudaSuccess)
    rc = hoist__cuda_fail(d->rt, e, "cudaIpcOpenMemHandle", __FILE__, __LINE__);
  if (rc == HOIST_OK) {
    memcpy(m->blob, hd->blob, sizeof m->blob);
    m->ordinal = d->ordinal;
    m->addr = (uint64_t)(uintptr_t)p;
    m->refs = 1;
    m->next = ipc_mappings;
    ipc_mappings = m;
    *addr = m->addr;
  } else {
    free(m);
  }
  uv_mutex_unlock(&ipc_lock);
  return rc;
}

static void cuda_share_close(hoist__device *d, uint64_t addr, uint64_t bytes) {
  if (addr == 0 || hoist__vmm_unmap(d->rt, addr)) return;
  uv_once(&ipc_once, ipc_lock_init);
  uv_mutex_lock(&ipc_lock);
  ipc_mapping **pp = &ipc_mappings;
  while (*pp != NULL && ((*pp)->addr != addr || (*pp)->ordinal != d->ordinal)) pp = &(*pp)->next;
  ipc_mapping *m = *pp;
  if (m != NULL && --m->refs == 0) *pp = m->next;
  else m = NULL; /* still used by another attach (or unknown) */
  uv_mutex_unlock(&ipc_lock);
  if (m == NULL) return;
  if (cudaSetDevice(d->ordinal) != cudaSuccess ||
      cudaIpcCloseMemHandle((void *)(uintptr_t)addr) != cudaSuccess) {
    (void)cudaGetLastError();
    hoist__log(d->rt, HOIST_LOG_ERROR, "cuda:%d: cudaIpcCloseMemHandle(%#llx) failed",
              d->ordinal, (unsigned long long)addr);
  }
  free(m);
}

/* Why the byte at p is not device memory of d's card that this process
 * reaches, or NULL when it is. */
static const char *not_this_card(const hoist__device *d, uint64_t p) {
  struct cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, (const void *)(uintptr_t)p) != cudaSuccess) {
    (void)cudaGetLastError(); /* older drivers fail on unknown pointers */
    return "no memory CUDA knows in this process (a pointer from another process?)";
  }
  switch (a.type) {
  case cudaMemoryTypeDevice:
  case cudaMemoryTypeManaged:
    return a.device == d->ordinal ? NULL : "memory of another card";
  case cudaMemoryTypeHost:
    return "page-locked host memory";
  default:
    return "no memory CUDA knows in this process (host memory, or a pointer from another "
           "process)";
  }
}

static int cuda_check_writable(hoist__device *d, const hoist__range *ranges, size_t n, size_t *bad,
                               const char **why) {
  SET_DEVICE(d);
  for (size_t i = 0; i < n; i++) {
    const char *w = not_this_card(d, ranges[i].addr);
    if (w == NULL && ranges[i].bytes > 1)
      w = not_this_card(d, ranges[i].addr + ranges[i].bytes - 1);
    if (w != NULL) {
      *bad = i;
      *why = w;
      return HOIST_INVALID_ARGUMENT;
    }
  }
  return HOIST_OK;
}

static void cuda_share_by_default(hoist__device *d);

static const hoist__device_ops cuda_ops = {
    .destroy = cuda_destroy,
    .mem_info = cuda_mem_info,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .pinned_alloc = cuda_pinned_alloc,
    .pinned_free = cuda_pinned_free,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_sync = cuda_stream_sync,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_sync = cuda_event_sync,
    .stream_wait_event = cuda_stream_wait_event,
    .copy_h2d_async = cuda_copy_h2d_async,
    .copy_d2h = cuda_copy_d2h,
    .host_register = cuda_host_register,
    .host_unregister = cuda_host_unregister,
    .convert = cuda_convert,
    .checksum = cuda_checksum,
    .checksum_batch = cuda_checksum_batch,
    .default_headroom = cuda_default_headroom,
    .alloc_granularity = 2u << 20, /* cudaMalloc rounds to 2 MiB pages */
    .share_export = cuda_share_export,
    .share_by_default = cuda_share_by_default,
    .share_open = cuda_share_open,
    .share_close = cuda_share_close,
    .check_writable = cuda_check_writable,
};

int hoist__device_cuda_ordinal(const char *locator, int *ordinal) {
  cudaError_t e = cudaDeviceGetByPCIBusId(ordinal, locator);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return hoist__fail(NULL, HOIST_NO_DEVICE, "no CUDA device with PCI bus id %.32s here (%s)",
                      locator, cudaGetErrorString(e));
  }
  return HOIST_OK;
}

/* Where the card supports it at the backend's granularity, and unless
 * HOIST_CUDA_SHARE=ipc asks for cudaMalloc and CUDA IPC handles (for a
 * driver or container whose descriptor sharing does not work). */
static void cuda_share_by_default(hoist__device *d) {
  const char *v = getenv("HOIST_CUDA_SHARE");
  uint64_t g = 0;
  d->share_by_fd = (v == NULL || strcmp(v, "ipc") != 0) && hoist__vmm_supported(d->ordinal, &g) &&
                   g <= cuda_ops.alloc_granularity && cuda_ops.alloc_granularity % g == 0;
}

int hoist__device_cuda_open(hoist_runtime *rt, int ordinal, hoist__device **out) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return hoist__fail(rt, HOIST_NO_DEVICE, "cuda:%d: no usable CUDA driver or device (%s)",
                      ordinal, cudaGetErrorString(e));
  }
  if (ordinal >= count)
    return hoist__fail(rt, HOIST_NO_DEVICE, "cuda:%d: only %d CUDA device(s) present", ordinal,
                      count);
  struct cudaDeviceProp prop;
  CHECK_CUDA(rt, cudaGetDeviceProperties(&prop, ordinal));
  CHECK_CUDA(rt, cudaSetDevice(ordinal));
  CHECK_CUDA(rt, cudaFree(NULL)); /* create the context now, not inside a timed load */
  hoist__device *d = calloc(1, sizeof *d);
  if (d == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  d->ops = &cuda_ops;
  d->rt = rt;
  d->kind = "cuda";
  d->ordinal = ordinal;
  snprintf(d->name, sizeof d->name, "%s", prop.name);
  if (cudaDeviceGetPCIBusId(d->locator, (int)sizeof d->locator, ordinal) != cudaSuccess) {
    (void)cudaGetLastError();
    d->locator[0] = '\0';
  }
  *out = d;
  return HOIST_OK;
}
