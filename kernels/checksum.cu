/* checksum.cu — device side of hoist's block checksum, so `hoist load
 * --verify` can check uploaded bytes without reading them back: the device
 * hashes what it holds and the host compares with hoist__checksum_host()
 * over the file bytes.
 *
 * The definition (runtime/checksum_host.h) is a two-level sum: one thread
 * block hashes one 64 KiB hash block (each thread adds its strided 8-byte
 * words w_i into A and (m - i) * w_i into B, then warp-shuffle reductions of
 * both), and adds the block's hash to a 64-bit accumulator with atomicAdd
 * (integer sums commute, so the result does not depend on scheduling); a
 * one-thread kernel then finalizes the accumulator in place.  Three
 * operations on the caller's stream: a memset
 * of the output, the blocks kernel, the finalize kernel.
 *
 * The batch form hashes many ranges (every chunk of a component, at verify
 * time) in one launch: a table of the ranges with their running block
 * counts goes to the device, each thread block finds its range by binary
 * search, and one accumulator a range is finalized into the range's own
 * output.  Thousands of chunks then cost four operations, not thousands of
 * small launches. */
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

extern "C" {
#include "checks.h"
}
#include "checksum_host.h"
#include "cuda_device.cuh"
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

/* H_b of hash block b (len bytes at p, 1 <= len <= HOIST_CHECKSUM_BLOCK),
 * valid in thread 0; every thread of the block must call it.  aligned: p is
 * 16-byte aligned, so whole 16-byte vectors are read directly. */
template <bool aligned>
__device__ __forceinline__ uint64_t ck_block_hash(const uint8_t *p, uint32_t len, uint64_t b,
                                                  uint64_t *warp_sums) {
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
  return hoist__ck_block_hash(sa, sb, b, len);
}

/* Adds H_b of every hash block b of the n bytes at base to *acc. */
template <bool aligned>
__global__ void __launch_bounds__(kChecksumThreads)
    checksum_blocks_kernel(const uint8_t *base, uint64_t n, uint64_t n_blocks,
                           unsigned long long *acc) {
  __shared__ uint64_t warp_sums[kChecksumThreads / 32];
  for (uint64_t b = blockIdx.x; b < n_blocks; b += gridDim.x) {
    const uint64_t start = b * HOIST_CHECKSUM_BLOCK;
    const uint32_t len = static_cast<uint32_t>(
        n - start < HOIST_CHECKSUM_BLOCK ? n - start : HOIST_CHECKSUM_BLOCK);
    const uint64_t h = ck_block_hash<aligned>(base + start, len, b, warp_sums);
    if (threadIdx.x == 0) atomicAdd(acc, static_cast<unsigned long long>(h));
  }
}

/* A batch: the table the launcher uploads (one entry a span) and, after
 * it, one accumulator a span. */
struct ck_entry {
  uint64_t addr, n, out;
  uint64_t block_end; /* hash blocks of this span and those before it */
};

/* Adds H_b of every hash block of every span to its span's accumulator:
 * global block g belongs to the first span whose block_end exceeds g. */
__global__ void __launch_bounds__(kChecksumThreads)
    checksum_batch_kernel(const ck_entry *spans, uint64_t n_spans, uint64_t total_blocks,
                          unsigned long long *acc) {
  __shared__ uint64_t warp_sums[kChecksumThreads / 32];
  for (uint64_t g = blockIdx.x; g < total_blocks; g += gridDim.x) {
    uint64_t lo = 0, hi = n_spans - 1;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (spans[mid].block_end > g) hi = mid;
      else lo = mid + 1;
    }
    const ck_entry e = spans[lo];
    const uint64_t first = lo > 0 ? spans[lo - 1].block_end : 0, b = g - first;
    const uint64_t start = b * HOIST_CHECKSUM_BLOCK;
    const uint32_t len = static_cast<uint32_t>(
        e.n - start < HOIST_CHECKSUM_BLOCK ? e.n - start : HOIST_CHECKSUM_BLOCK);
    const uint8_t *p = reinterpret_cast<const uint8_t *>(e.addr) + start;
    const uint64_t h = e.addr % 16 == 0 ? ck_block_hash<true>(p, len, b, warp_sums)
                                        : ck_block_hash<false>(p, len, b, warp_sums);
    if (threadIdx.x == 0) atomicAdd(acc + lo, static_cast<unsigned long long>(h));
  }
}

/* Writes each span's final hash to its output. */
__global__ void checksum_batch_finalize_kernel(const ck_entry *spans, uint64_t n_spans,
                                               const unsigned long long *acc) {
  for (uint64_t s = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; s < n_spans;
       s += static_cast<uint64_t>(gridDim.x) * blockDim.x)
    *reinterpret_cast<uint64_t *>(spans[s].out) = hoist__ck_final(acc[s], spans[s].n);
}

/* Replaces the accumulated block sum by the final hash. */
__global__ void checksum_finalize_kernel(unsigned long long *acc, uint64_t n) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *acc = hoist__ck_final(*acc, n);
}

} // namespace

/* ------------------------------------------------------------------------ */
/* Launchers */

extern "C" int hoist__checksum_launch(const void *dev_bytes, uint64_t n_bytes,
                                     uint64_t *dev_out_hash, void *stream_) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  if (!dev_out_hash || reinterpret_cast<uintptr_t>(dev_out_hash) % 8 != 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "checksum: output %p is NULL or not 8-byte aligned",
                      static_cast<void *>(dev_out_hash));
  if (!dev_bytes && n_bytes > 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "checksum: NULL input for %llu bytes",
                      static_cast<unsigned long long>(n_bytes));
  const uintptr_t a = reinterpret_cast<uintptr_t>(dev_bytes);
  if (n_bytes > UINTPTR_MAX - a)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "checksum: %llu bytes at %#llx wrap around",
                      static_cast<unsigned long long>(n_bytes), static_cast<unsigned long long>(a));
  unsigned long long *acc = reinterpret_cast<unsigned long long *>(dev_out_hash);
  const uint64_t n_blocks = n_bytes / HOIST_CHECKSUM_BLOCK + (n_bytes % HOIST_CHECKSUM_BLOCK != 0);

  CHECK_CUDA(NULL, cudaMemsetAsync(acc, 0, sizeof *acc, stream));
  if (n_blocks > 0) {
    int device = 0, sms = 0;
    CHECK_CUDA(NULL, hoist_kernels::current_device_sms(&device, &sms));
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

static_assert(sizeof(ck_entry) + sizeof(unsigned long long) == HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN,
              "the batch table layout and kernels.h disagree");

extern "C" int hoist__checksum_batch_launch(const hoist__checksum_span *spans, size_t n_spans,
                                           void *dev_table, void *stream_) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  if (n_spans == 0) return HOIST_OK;
  if (!spans || !dev_table || reinterpret_cast<uintptr_t>(dev_table) % 8 != 0)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "checksum batch: NULL spans or a table that is NULL or not 8-byte aligned");
  if (n_spans > UINT64_MAX / HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "checksum batch: %zu spans overflow", n_spans);
  ck_entry *table = static_cast<ck_entry *>(malloc(n_spans * sizeof(ck_entry)));
  if (table == NULL)
    return hoist__fail(NULL, HOIST_NO_MEMORY, "checksum batch: out of memory for %zu spans", n_spans);
  uint64_t blocks = 0;
  int rc = HOIST_OK;
  for (size_t i = 0; i < n_spans && rc == HOIST_OK; i++) {
    const hoist__checksum_span *sp = &spans[i];
    if (sp->out == 0 || sp->out % 8 != 0 || (sp->addr == 0 && sp->n > 0) ||
        sp->n > UINT64_MAX - sp->addr)
      rc = hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "checksum batch: span %zu (%llu bytes at %#llx, out %#llx) has a NULL or "
                      "misaligned pointer or wraps around",
                      i, static_cast<unsigned long long>(sp->n),
                      static_cast<unsigned long long>(sp->addr),
                      static_cast<unsigned long long>(sp->out));
    blocks += sp->n / HOIST_CHECKSUM_BLOCK + (sp->n % HOIST_CHECKSUM_BLOCK != 0);
    table[i] = ck_entry{sp->addr, sp->n, sp->out, blocks};
  }
  unsigned long long *acc =
      reinterpret_cast<unsigned long long *>(static_cast<ck_entry *>(dev_table) + n_spans);
  int device = 0, sms = 0;
  if (rc == HOIST_OK) {
    /* From pageable memory: returns once the table is staged, so it can be
     * freed below while the copy is still in flight. */
    CHECK_CUDA_GOTO(NULL, cudaMemcpyAsync(dev_table, table, n_spans * sizeof(ck_entry),
                                          cudaMemcpyHostToDevice, stream), rc, done);
    CHECK_CUDA_GOTO(NULL, cudaMemsetAsync(acc, 0, n_spans * sizeof *acc, stream), rc, done);
    CHECK_CUDA_GOTO(NULL, hoist_kernels::current_device_sms(&device, &sms), rc, done);
    if (blocks > 0) {
      uint64_t grid = static_cast<uint64_t>(sms > 0 ? sms : 1) * kChecksumBlocksPerSm;
      if (grid > blocks) grid = blocks;
      checksum_batch_kernel<<<static_cast<unsigned>(grid), kChecksumThreads, 0, stream>>>(
          static_cast<const ck_entry *>(dev_table), n_spans, blocks, acc);
      CHECK_CUDA_GOTO(NULL, cudaGetLastError(), rc, done);
    }
    const uint64_t fin = (n_spans + kChecksumThreads - 1) / kChecksumThreads;
    checksum_batch_finalize_kernel<<<static_cast<unsigned>(fin < 1024 ? fin : 1024),
                                     kChecksumThreads, 0, stream>>>(
        static_cast<const ck_entry *>(dev_table), n_spans, acc);
    CHECK_CUDA_GOTO(NULL, cudaGetLastError(), rc, done);
  }
done:
  free(table);
  return rc;
}
