/* kernels.h — host entry points of the device kernels (the .cu files in
 * kernels/) and their host-side twins: dtype conversion and the block
 * checksum.
 *
 * A plain C header: no CUDA types (a stream is a cudaStream_t passed as
 * void *, NULL meaning the legacy default stream), callable from the C
 * runtime.  The launchers exist only in builds with CUDA (HOIST_HAVE_CUDA);
 * hoist__convert_supported() and hoist__checksum_host() exist in every build.
 *
 * Errors: launchers return a hoist status and record a detail message for
 * the calling thread (hoist_last_error(NULL)); they take no runtime.
 * Threading: every function may be called from several threads at once;
 * launchers work on the current CUDA device of the calling thread and only
 * enqueue work (the caller synchronizes the stream before reading results
 * or freeing buffers). */
#ifndef HOIST_KERNELS_H
#define HOIST_KERNELS_H

#include "hoist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Conversion.
 * Supported pairs (definition in runtime/convert_ref.h): F32->BF16,
 * F32->F16, F16->BF16, BF16->F16, BF16->F32, F16->F32,
 * F8_E4M3->{BF16,F16,F32}, F8_E5M2->{BF16,F16,F32}; and from == to for any
 * valid dtype (a copy).  Pure; available without CUDA. */
bool hoist__convert_supported(hoist_dtype from, hoist_dtype to);

#if defined(HOIST_HAVE_CUDA)
/* Enqueues on stream the conversion of n_elements elements of src_type at
 * the device address src into dst_type at dst (a cudaMemcpyAsync when the
 * types are equal).  Both pointers must be device memory aligned to their
 * element size and the ranges must not overlap; 16-byte alignment of both
 * at the same element index gives the vectorized path, any other
 * element-aligned pair is still correct but slower.  n_elements == 0 does
 * nothing.  Returns HOIST_OK; HOIST_UNSUPPORTED for a pair the kernels do
 * not do; HOIST_INVALID_ARGUMENT for a NULL or misaligned pointer, a byte
 * size that overflows or overlapping ranges; a device status (HOIST_DEVICE,
 * ...) with the CUDA error in the detail.  Buffers are borrowed: they must
 * stay valid until the stream has passed the work. */
int hoist__convert_launch(void *dst, hoist_dtype dst_type, const void *src, hoist_dtype src_type,
                         uint64_t n_elements, void *stream);
#endif

/* ---- Checksum: a 64-bit hash of a byte range, the same on device and host.
 * The range is cut into HOIST_CHECKSUM_BLOCK-byte blocks (the last one may
 * be shorter); each block is hashed on its own, keyed with its index and
 * length, and the block hashes are combined into one value keyed with the
 * total length.  Definition in runtime/checksum_host.h.  Not cryptographic:
 * it detects corruption, reordered blocks and truncation, not an attacker. */
#define HOIST_CHECKSUM_BLOCK 65536u

/* Hashes n bytes at bytes (no alignment needed; NULL allowed for n == 0)
 * with up to threads threads (0: the machine's parallelism).  The result
 * does not depend on threads.  Thread-safe; never fails (if a thread cannot
 * be started its share runs on the calling thread). */
uint64_t hoist__checksum_host(const void *bytes, uint64_t n, unsigned threads);

#if defined(HOIST_HAVE_CUDA)
/* Enqueues on stream the hash of n_bytes at the device address dev_bytes
 * (any alignment; 16-byte aligned is the fast path) and writes it to the
 * device address dev_out_hash (8-byte aligned device memory, used as the
 * accumulator while the work runs).  Equals hoist__checksum_host() on the
 * same bytes.  Returns HOIST_OK, HOIST_INVALID_ARGUMENT for a NULL or
 * misaligned pointer, or a device status with the CUDA error in the detail.
 * Borrowed buffers, as for hoist__convert_launch(). */
int hoist__checksum_launch(const void *dev_bytes, uint64_t n_bytes, uint64_t *dev_out_hash,
                          void *stream);
#endif

/* One range of a batched checksum: the hash of n bytes at the device
 * address addr goes to the 8-byte aligned device word at out. */
typedef struct hoist__checksum_span {
  uint64_t addr, n, out;
} hoist__checksum_span;

/* Device bytes of the table a batch of n_spans spans needs (40 a span). */
#define HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN 40u

#if defined(HOIST_HAVE_CUDA)
/* Enqueues on stream the hash of every span (as hoist__checksum_launch
 * would, each into its out) with one table upload, one memset and two
 * kernels.  spans is host memory, read before the call returns; dev_table
 * is 8-byte aligned device memory of n_spans *
 * HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN bytes that the work uses until the
 * stream passes it.  Outputs must not overlap the table.  Returns HOIST_OK,
 * HOIST_INVALID_ARGUMENT (a NULL or misaligned pointer, a wrapping span),
 * HOIST_NO_MEMORY, or a device status with the CUDA error in the detail. */
int hoist__checksum_batch_launch(const hoist__checksum_span *spans, size_t n_spans, void *dev_table,
                                void *stream);
#endif

#ifdef __cplusplus
}
#endif

#endif /* HOIST_KERNELS_H */
