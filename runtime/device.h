/* device.h — the device backend interface (a table of function pointers, as
 * in ggml's backends) and its two implementations: "cuda" (device_cuda.c)
 * and "host" (device_host.c, device memory is host memory under an enforced
 * capacity).
 *
 * Streams and events are opaque pointers owned by the backend.  All calls
 * return a hoist status and record a detail in the runtime on failure.
 * Thread-safety: every op may be called from several threads at once
 * (the host backend guards its accounting with a mutex; CUDA's runtime is
 * thread-safe), except destroy. */
#ifndef HOIST_DEVICE_H
#define HOIST_DEVICE_H

#include "kernels.h"
#include "runtime.h"

#include <stddef.h>
#include <stdint.h>

typedef struct hoist__device hoist__device;

/* What another process needs to open one device allocation (share_export,
 * share_open): a descriptor in fd, which a Unix socket passes on with
 * SCM_RIGHTS (host: a memfd of the allocation; cuda: the allocation's
 * POSIX handle, device_cuda_vmm.h), blob all zeros; or, on cuda without
 * descriptor sharing, the allocation's CUDA IPC handle in blob and fd -1. */
#define HOIST_SHARE_BLOB_BYTES 64
typedef struct hoist__share_handle {
  int fd;                                 /* a descriptor, or -1 */
  unsigned char blob[HOIST_SHARE_BLOB_BYTES]; /* cuda IPC: cudaIpcMemHandle_t */
} hoist__share_handle;

/* A range of memory: addr, and bytes from it. */
typedef struct hoist__range {
  uint64_t addr, bytes;
} hoist__range;

typedef struct hoist__device_ops {
  void (*destroy)(hoist__device *d);
  /* Free and total device memory as the device sees it now. */
  int (*mem_info)(hoist__device *d, uint64_t *free_bytes, uint64_t *total_bytes);
  /* Device memory; *addr is a device address (256-byte aligned at least). */
  int (*alloc)(hoist__device *d, uint64_t bytes, uint64_t *addr);
  void (*free)(hoist__device *d, uint64_t addr);
  /* Page-locked host memory for staging. */
  int (*pinned_alloc)(hoist__device *d, size_t bytes, void **out);
  void (*pinned_free)(hoist__device *d, void *p);
  int (*stream_create)(hoist__device *d, void **stream);
  void (*stream_destroy)(hoist__device *d, void *stream);
  int (*stream_sync)(hoist__device *d, void *stream);
  int (*event_create)(hoist__device *d, void **event);
  void (*event_destroy)(hoist__device *d, void *event);
  int (*event_record)(hoist__device *d, void *event, void *stream);
  int (*event_sync)(hoist__device *d, void *event);
  /* Work queued on stream after this call waits until event has passed. */
  int (*stream_wait_event)(hoist__device *d, void *stream, void *event);
  /* Asynchronous on the stream; src must stay valid until the stream passes
   * an event recorded after the copy. */
  int (*copy_h2d_async)(hoist__device *d, uint64_t dst, const void *src, size_t n, void *stream);
  /* Synchronous device-to-host copy (verification, tests). */
  int (*copy_d2h)(hoist__device *d, void *dst, uint64_t src, size_t n);
  /* Page-locks an existing host range for direct copies; UNSUPPORTED where
   * the backend has no such notion. */
  int (*host_register)(hoist__device *d, void *p, size_t n, int read_only);
  void (*host_unregister)(hoist__device *d, void *p);
  /* Enqueues on stream the conversion of n elements of `from` at the device
   * address src into `to` at dst (kernels/convert.cu on cuda, the CPU
   * reference hoist__convert_ref on host).  Addresses aligned to their
   * element size, ranges disjoint.  HOIST_UNSUPPORTED for a pair
   * hoist__convert_supported() refuses. */
  int (*convert)(hoist__device *d, uint64_t dst, hoist_dtype to, uint64_t src, hoist_dtype from,
                 uint64_t n, void *stream);
  /* Enqueues on stream the block checksum (kernels.h) of n bytes at the
   * device address src, written to the 8-byte aligned device address out. */
  int (*checksum)(hoist__device *d, uint64_t src, uint64_t n, uint64_t out, void *stream);
  /* Enqueues on stream the checksums of n spans at once (kernels.h's
   * batch form; spans is host memory read before the call returns) using
   * table, device memory of n * HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN bytes. */
  int (*checksum_batch)(hoist__device *d, const hoist__checksum_span *spans, size_t n, uint64_t table,
                        void *stream);
  /* Device bytes admission keeps free when the caller gives no headroom
   * (hoist_load_options.headroom -1), on a device of total_bytes. */
  uint64_t (*default_headroom)(const hoist__device *d, uint64_t total_bytes);
  /* Bytes a backend may allocate beyond the request (rounding). */
  uint64_t alloc_granularity;
  /* Sharing device memory with other processes (hoist serve and
   * hoist_attach).  share_export describes the allocation that starts at
   * addr (an address alloc returned): host: the allocation's memfd, sealed
   * so that it can never shrink nor be mapped writable again (the mapping
   * this process holds stays writable), borrowed until free(addr); cuda:
   * the allocation's descriptor, borrowed until free(addr), or where the
   * device does not share by descriptor, cudaIpcGetMemHandle.  share_open,
   * in the other process, maps bytes of it read-only (host: mmap PROT_READ
   * of the descriptor, which the caller still closes; a descriptor smaller
   * than bytes is HOIST_INVALID_ARGUMENT; cuda with a descriptor: imported
   * and mapped with read-only access, the caller still closes it; cuda
   * with an IPC handle: cudaIpcOpenMemHandle, where read-only is a
   * contract, not enforced, and a handle already open in this process is
   * shared and counted, as CUDA maps a handle once per process) and
   * share_close unmaps it.  Ops of a device opened in the receiving
   * process. */
  int (*share_export)(hoist__device *d, uint64_t addr, hoist__share_handle *out);
  /* Makes the allocations that follow shareable by descriptor where the
   * device can (cuda: CUDA virtual memory, unless HOIST_CUDA_SHARE=ipc is
   * set; a no-op on host, whose memory becomes a memfd when shared).  For
   * a process that will share what it loads (hoist serve): other loads
   * keep cudaMalloc.  NULL where there is nothing to do. */
  void (*share_by_default)(hoist__device *d);
  int (*share_open)(hoist__device *d, const hoist__share_handle *h, uint64_t bytes, uint64_t *addr);
  void (*share_close)(hoist__device *d, uint64_t addr, uint64_t bytes);
  /* Whether each of n ranges (sorted by address, disjoint) is memory this
   * device's copies and conversions may write, memory the caller owns
   * (hoist_load_into): cuda: device memory of this card that this process
   * reaches (cudaPointerGetAttributes of its first and last byte); host: a
   * writable mapping of this process (/proc/self/maps).  HOIST_OK, or
   * HOIST_INVALID_ARGUMENT (no detail recorded) with *bad the first range
   * that is not and *why a static phrase saying what it is instead; other
   * statuses when looking failed. */
  int (*check_writable)(hoist__device *d, const hoist__range *ranges, size_t n, size_t *bad,
                        const char **why);
} hoist__device_ops;

struct hoist__device {
  const hoist__device_ops *ops;
  hoist_runtime *rt;      /* borrowed: errors are recorded there */
  const char *kind;       /* "host" or "cuda" */
  int ordinal;            /* N of cuda:N; 0 for host */
  char name[256];         /* "host" or the GPU's name */
  char locator[32];       /* cuda: the PCI bus id ("0000:65:00.0"), which
                             names the card whatever CUDA_VISIBLE_DEVICES a
                             process has; host: "" */
  bool share_by_fd;       /* cuda: allocations are made shareable by
                             descriptor (device_cuda_vmm.h); else cudaMalloc,
                             shared by CUDA IPC handle.  See share_by_default */
};

/* Parses "host", "cuda" or "cuda:N" and opens that backend.  capacity is the
 * host backend's capacity (0: physical RAM). */
int hoist__device_open(hoist_runtime *rt, const char *spec, uint64_t capacity,
                      hoist__device **out);
void hoist__device_close(hoist__device *d);

int hoist__device_host_open(hoist_runtime *rt, uint64_t capacity, hoist__device **out);
/* The host backend's check_writable (host_maps.c): the ranges against the
 * writable mappings of /proc/self/maps. */
int hoist__host_check_writable(hoist__device *d, const hoist__range *ranges, size_t n, size_t *bad,
                               const char **why);
#if defined(HOIST_HAVE_CUDA)
int hoist__device_cuda_open(hoist_runtime *rt, int ordinal, hoist__device **out);
/* The ordinal of the card with PCI bus id locator in this process. */
int hoist__device_cuda_ordinal(const char *locator, int *ordinal);
#endif
/* The device spec ("host", "cuda:N") under which this process sees the
 * device another process described by kind and locator (hoist__device.kind
 * and .locator): host for "host", the ordinal of the card with that PCI bus
 * id for "cuda".  HOIST_NO_DEVICE when this process cannot see it. */
int hoist__device_spec_for(const char *kind, const char *locator, char *spec, size_t size);

/* The host backend's hooks (capacity, fault injection, counters) and what
 * the CLI asks of a runtime's device (device.c): in hoist_tools.h. */

#endif /* HOIST_DEVICE_H */
