/* cuda_device.cuh — what the launchers ask of the current CUDA device, asked
 * once: its SM count sizes every grid, and the launchers run once per
 * upload chunk, so the attribute query is cached per device (the count of a
 * device never changes).  Header-only; shared by kernels/convert.cu and
 * kernels/checksum.cu.  Thread-safe. */
#ifndef HOIST_CUDA_DEVICE_CUH
#define HOIST_CUDA_DEVICE_CUH

#include <cuda_runtime.h>

#include <atomic>

namespace hoist_kernels {

/* The calling thread's current device and its multiprocessor count. */
inline cudaError_t current_device_sms(int *device, int *sms) {
  static std::atomic<int> cache[64]; /* zero: not asked yet */
  cudaError_t err = cudaGetDevice(device);
  if (err != cudaSuccess) return err;
  const bool cached = *device >= 0 && *device < 64;
  if (cached && (*sms = cache[*device].load(std::memory_order_relaxed)) > 0) return cudaSuccess;
  err = cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, *device);
  if (err == cudaSuccess && cached && *sms > 0)
    cache[*device].store(*sms, std::memory_order_relaxed);
  return err;
}

} // namespace hoist_kernels

#endif /* HOIST_CUDA_DEVICE_CUH */
