/* device_cuda_vmm.h — device memory that another process maps through a
 * file descriptor: CUDA's virtual memory management (cuMemCreate with a
 * POSIX descriptor handle, cuMemMap), used by the cuda backend for its
 * allocations in a process that shares them (hoist serve), where the card
 * supports it.
 *
 * Why: a worker attaching to a FLUX.1-dev that hoist serve keeps resident
 * opened its four arenas' CUDA IPC handles (cudaIpcOpenMemHandle) in about
 * 190 ms and closed them in 66 ms; importing the same arenas' descriptors,
 * passed over the Unix socket, and mapping them takes under 2 ms and 1 ms
 * (bench/RESULTS.md, "Sharing").  And the mapping can be made read-only, so
 * that "workers never write shared weights" is enforced by the card, not
 * only a contract.
 *
 * The driver's functions are reached through the runtime
 * (cudaGetDriverEntryPointByVersion): libhoist does not link libcuda.
 * Every function is thread-safe (one process-wide table of mappings under a
 * mutex). */
#ifndef HOIST_DEVICE_CUDA_VMM_H
#define HOIST_DEVICE_CUDA_VMM_H

#include "internal.h"

#include <stdint.h>

/* Whether card ordinal can allocate memory shareable by descriptor; its
 * allocation granularity in *granularity when it can. */
bool hoist__vmm_supported(int ordinal, uint64_t *granularity);

/* Allocates bytes (rounded up to the granularity) on card ordinal, mapped
 * read-write in this process.  Out of device memory is HOIST_DEVICE_OOM. */
int hoist__vmm_alloc(hoist_runtime *rt, int ordinal, uint64_t bytes, uint64_t *addr);

/* Frees an allocation of hoist__vmm_alloc that starts at addr, and closes
 * its exported descriptor, after the card's queued work (as cudaFree);
 * failures are logged for rt.  false (nothing done) when addr is not one. */
bool hoist__vmm_free(hoist_runtime *rt, uint64_t addr);

/* The descriptor of the allocation that starts at addr, made at the first
 * call and borrowed until hoist__vmm_free.  HOIST_NOT_FOUND (no detail
 * recorded) when addr is not such an allocation. */
int hoist__vmm_export(hoist_runtime *rt, uint64_t addr, int *fd);

/* Maps bytes of the allocation behind descriptor fd (another process's
 * export; the caller still closes fd) on card ordinal, read-only. */
int hoist__vmm_import(hoist_runtime *rt, int ordinal, int fd, uint64_t bytes, uint64_t *addr);

/* Unmaps a mapping of hoist__vmm_import that starts at addr, after the
 * card's queued work; failures are logged for rt.  false (nothing done)
 * when addr is not one.  Only the card given at import may use the mapping
 * (no peer access is granted). */
bool hoist__vmm_unmap(hoist_runtime *rt, uint64_t addr);

#endif /* HOIST_DEVICE_CUDA_VMM_H */
