/* checks.h — the one place CUDA errors become hoist statuses (after NCCL's
 * checks.h and ggml's CUDA_CHECK_GEN).  CHECK_CUDA returns from the
 * function; CHECK_CUDA_GOTO stores the status in rc and jumps to the
 * single-exit label that frees what the function took.  Both record the
 * failing statement with file:line in the runtime and clear CUDA's sticky
 * last error.  Only files that include cuda_runtime_api.h use it. */
#ifndef HOIST_CHECKS_H
#define HOIST_CHECKS_H

#include "internal.h"

#include <cuda_runtime_api.h>

/* Maps a CUDA error to a hoist status. */
static inline int hoist__cuda_status(cudaError_t e) {
  switch (e) {
  case cudaSuccess:
    return HOIST_OK;
  case cudaErrorMemoryAllocation:
    return HOIST_DEVICE_OOM;
  case cudaErrorNoDevice:
  case cudaErrorInsufficientDriver:
  case cudaErrorInvalidDevice:
  case cudaErrorDevicesUnavailable:
  case cudaErrorStubLibrary:
    return HOIST_NO_DEVICE;
  default:
    return HOIST_DEVICE;
  }
}

int hoist__cuda_fail(hoist_runtime *rt, cudaError_t e, const char *what, const char *file,
                    int line);

#define CHECK_CUDA(rt, call)                                                  \
  do {                                                                        \
    cudaError_t hoist_e_ = (call);                                            \
    if (hoist_e_ != cudaSuccess)                                              \
      return hoist__cuda_fail((rt), hoist_e_, #call, __FILE__, __LINE__);      \
  } while (0)

#define CHECK_CUDA_GOTO(rt, call, rc, label)                                  \
  do {                                                                        \
    cudaError_t hoist_e_ = (call);                                            \
    if (hoist_e_ != cudaSuccess) {                                            \
      (rc) = hoist__cuda_fail((rt), hoist_e_, #call, __FILE__, __LINE__);      \
      goto label;                                                             \
    }                                                                         \
  } while (0)

#endif /* HOIST_CHECKS_H */
