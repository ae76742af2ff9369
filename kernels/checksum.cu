/* checksum.cu — device side of hoist's block checksum, so `hoist load
 * --verify` can check uploaded bytes without reading them back: the device
 * hashes what it holds and the host compares with hoist_checksum_host()
 * over the file bytes.
 *
 * The definition (runtime/checksum_host.h) is a two-level sum: one thread
 * block hashes one 64 KiB hash block (each thread adds its strided 8-byte
 * words w_i into A and (m - i) * w_i into B, then warp-shuffle reductions of
 * both), and adds the block's hash to a 64-bit accumulator with atomicAdd
 * (integer sums commute, so the result does not depend on scheduling); a
 * one-thread kernel then finalizes the accumulator in place.  Three
 * operations on the caller's stream: a memset
 * of the output, the blocks kernel, the finalize kernel. */
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

extern "C" {
#include "checks.h"
}
#include "checksum_host.h"
#include "kernels.h"

/* ------------------------------------------------------------------------ */
/* Kernels */

namespace {

constexpr int kChecksumThreads = 256;
constexpr int kChecksumBlocksPerSm = 2048 / kChecksumThreads;

/* Word i of a block of len bytes, read byte by byte (the unaligned path and
 * the last partial word); bytes past len are zero. */
__device__ __forceinline__ uint64_t ck_word_bytes(const uint8_t *p, uint32_t len, uint32_t i) {
  uint64_t w = 0;
  const uint32_t off = i * 8;
  for (uint32_t k = 0; k < 8 && off + k < len; k++) w |= static_cast<uint64_t>(p[off + k]) << (8 * k);
  return w;
}

/* Sum of a 64-bit value over the thread block; the result is valid in
 * thread 0.  warp_sums holds one slot per warp. */
__device__ __forceinline__ uint64_t ck_block_sum(uint64_t v, uint64_t *warp_sums) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = 0;
  if (warp == 0) {
    if (lane < static_cast<int>(blockDim.x / 32)) v = warp_sums[lane];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  __syncthreads(); /* warp_sums may be reused by the next hash block */
  return v;
}

/* Adds H_b of every hash block b of the n bytes at base to *acc.  aligned:
 * base is 16-byte aligned, so whole 16-byte vectors are read directly. */
template <bool aligned>
__global__ void __launch_bounds__(kChecksumThreads)
    checksum_blocks_kernel(const uint8_t *base, uint64_t n, uint64_t n_blocks,
                           unsigned long long *acc) {
  __shared__ uint64_t warp_sums[kChecksumThreads / 32];
  for (uint64_t b = blockIdx.x; b < n_blocks; b += gridDim.x) {
    const uint64_t start = b * HOIST_CHECKSUM_BLOCK;
    const uint32_t len = static_cast<uint32_t>(
        n - start < HOIST_CHECKSUM_BLOCK ? n - start : HOIST_CHECKSUM_BLOCK);
    const uint8_t *p = base + start;
    const uint32_t words = (len + 7) / 8; /* m of the definition */
    uint64_t sa = 0, sb = 0;
    uint32_t first_word = 0;
    if (aligned) {
      const uint32_t vecs = len / 16;
      const uint4 *p4 = reinterpret_cast<const uint4 *>(p);
#pragma unroll 4
      for (uint32_t v = threadIdx.x; v < vecs; v += blockDim.x) {
        const uint4 q = __ldcs(p4 + v);
        const uint64_t w0 = static_cast<uint64_t>(q.x) | static_cast<uint64_t>(q.y) << 32;
        const uint64_t w1 = static_cast<uint64_t>(q.z) | static_cast<uint64_t>(q.w) << 32;
        sa += w0 + w1;
        sb += static_cast<uint64_t>(words - 2 * v) * w0 + static_cast<uint64_t>(words - 2 * v - 1) * w1;
      }
      first_word = vecs * 2;
    }
    for (uint32_t i = first_word + threadIdx.x; i < words; i += blockDim.x) {
      const uint64_t w = ck_word_bytes(p, len, i);
      sa += w;
      sb += static_cast<uint64_t>(words - i) * w;
    }
    sa = ck_block_sum(sa, warp_sums);
    sb = ck_block_sum(sb, warp_sums);
    if (threadIdx.x == 0)
      atomicAdd(acc, static_cast<unsigned long long>(hoist_ck_block_hash(sa, sb, b, len)));
  }
}

/* Replaces the accumulated block sum by the final hash. */
__global__ void checksum_finalize_kernel(unsigned long long *acc, uint64_t n) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *acc = hoist_ck_final(*acc, n);
}

} // namespace

/* ------------------------------------------------------------------------ */
/* Launchers */

extern "C" int hoist_checksum_launch(const void *dev_bytes, uint64_t n_bytes,
                                     uint64_t *dev_out_hash, void *stream_) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  if (!dev_out_hash || reinterpret_cast<uintptr_t>(dev_out_hash) % 8 != 0)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT,
                      "checksum: output %p is NULL or not 8-byte aligned",
                      static_cast<void *>(dev_out_hash));
  if (!dev_bytes && n_bytes > 0)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT, "checksum: NULL input for %llu bytes",
                      static_cast<unsigned long long>(n_bytes));
  const uintptr_t a = reinterpret_cast<uintptr_t>(dev_bytes);
  if (n_bytes > UINTPTR_MAX - a)
    return hoist_fail(NULL, HOIST_INVALID_ARGUMENT, "checksum: %llu bytes at %#llx wrap around",
                      static_cast<unsigned long long>(n_bytes), static_cast<unsigned long long>(a));
  unsigned long long *acc = reinterpret_cast<unsigned long long *>(dev_out_hash);
  const uint64_t n_blocks = n_bytes / HOIST_CHECKSUM_BLOCK + (n_bytes % HOIST_CHECKSUM_BLOCK != 0);

  CHECK_CUDA(NULL, cudaMemsetAsync(acc, 0, sizeof *acc, stream));
  if (n_blocks > 0) {
    int device = 0, sms = 0;
    CHECK_CUDA(NULL, cudaGetDevice(&device));
    CHECK_CUDA(NULL, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    uint64_t grid = static_cast<uint64_t>(sms > 0 ? sms : 1) * kChecksumBlocksPerSm;
    if (grid > n_blocks) grid = n_blocks;
    const uint8_t *p = static_cast<const uint8_t *>(dev_bytes);
    if (a % 16 == 0)
      checksum_blocks_kernel<true>
          <<<static_cast<unsigned>(grid), kChecksumThreads, 0, stream>>>(p, n_bytes, n_blocks, acc);
    else
      checksum_blocks_kernel<false>
          <<<static_cast<unsigned>(grid), kChecksumThreads, 0, stream>>>(p, n_bytes, n_blocks, acc);
    CHECK_CUDA(NULL, cudaGetLastError());
  }
  checksum_finalize_kernel<<<1, 1, 0, stream>>>(acc, n_bytes);
  CHECK_CUDA(NULL, cudaGetLastError());
  return HOIST_OK;
}
