/* checksum_host.h — the definition of hoist's block checksum, shared by the
 * host functions (checksum_host.c, the readers in engine.c) and the device
 * kernel (kernels/checksum.cu) so they compute the same value by
 * construction.
 *
 * Definition, for n bytes cut into blocks of HOIST_CHECKSUM_BLOCK bytes
 * (block b holds bytes [b*BLK, min(n, (b+1)*BLK)), its length L_b; the last
 * block may be shorter; n == 0 has no block):
 *   - word i (0 <= i < m, m = ceil(L_b / 8)) of a block is its bytes
 *     [8i, 8i+8) read little-endian, the bytes past L_b taken as zero;
 *   - A_b = SUM_i w_i,  B_b = SUM_i (m - i) * w_i   (mod 2^64), a
 *     Fletcher-style pair with no multiply per word: in running form
 *     A += w_i; B += A for i = 0 .. m-1.  A change of one word always
 *     changes A_b; moving words changes B_b (the weights m - i are 1 .. m);
 *   - H_b = fmix(fmix(A_b + b * K_BLOCK + K_SEED) + B_b + L_b * K_LEN):
 *     a bijection of A_b for a fixed B_b and of B_b for a fixed A_b, keyed
 *     with the block's index (swapped blocks change the result) and length;
 *   - H = fmix(SUM_b H_b + n * K_LEN + K_SEED)   (mod 2^64).
 * Sums make every level a reduction: blocks can be hashed in any order by
 * any number of threads, and the words of a block by a whole thread block
 * (each thread adds w_i and (m - i) * w_i of its words) or by SIMD lanes.
 *
 * SIMD form (checksum_host.c): with L lanes, lane j takes words L*s + j,
 * s = 0 .. S-1, and runs a_j += w; b_j += a_j, so a_j = SUM_s w_{Ls+j} and
 * b_j = SUM_s (S - s) w_{Ls+j}.  For the first L*S words,
 * m' - i = L*S - (L*s + j) = L*(S - s) - j, hence
 *   A = SUM_j a_j,  B = SUM_j (L * b_j - j * a_j);
 * the remaining words (fewer than L, the last one zero-padded) continue the
 * running form from (A, B).
 * The mixers are multiply / xor-shift steps with odd constants (each step is
 * invertible); they run once per block, never per word. */
#ifndef HOIST_CHECKSUM_HOST_H
#define HOIST_CHECKSUM_HOST_H

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define HOIST_CK_FN static __host__ __device__ __forceinline__
#else
#define HOIST_CK_FN static inline
#endif

#define HOIST_CK_K_SEED 0x9e3779b97f4a7c15ull
#define HOIST_CK_K_BLOCK 0xa0761d6478bd642full
#define HOIST_CK_K_LEN 0xe7037ed1a0b428dbull
#define HOIST_CK_M1 0xbf58476d1ce4e5b9ull
#define HOIST_CK_M2 0x94d049bb133111ebull

/* The finalizer of block hashes and of the whole hash. */
HOIST_CK_FN uint64_t hoist__ck_fmix(uint64_t x) {
  x ^= x >> 30;
  x *= HOIST_CK_M1;
  x ^= x >> 27;
  x *= HOIST_CK_M2;
  x ^= x >> 31;
  return x;
}

/* H_b from the block's sums A and B, its index b and its length len. */
HOIST_CK_FN uint64_t hoist__ck_block_hash(uint64_t a, uint64_t b_sum, uint64_t b, uint64_t len) {
  return hoist__ck_fmix(hoist__ck_fmix(a + b * HOIST_CK_K_BLOCK + HOIST_CK_K_SEED) + b_sum +
                       len * HOIST_CK_K_LEN);
}

/* H from the sum of the block hashes and the total length. */
HOIST_CK_FN uint64_t hoist__ck_final(uint64_t block_sum, uint64_t n) {
  return hoist__ck_fmix(block_sum + n * HOIST_CK_K_LEN + HOIST_CK_K_SEED);
}

#if !defined(__CUDACC__)
/* Host implementations of the per-block sums, picked at run time. */
typedef enum hoist__ck_impl {
  HOIST_CK_IMPL_SCALAR = 0,
  HOIST_CK_IMPL_AVX2 = 1,   /* 8 lanes in two 256-bit registers */
  HOIST_CK_IMPL_AVX512 = 2, /* 8 lanes in one 512-bit register */
  HOIST_CK_IMPL_BEST = 3    /* the fastest this CPU runs */
} hoist__ck_impl;

/* Whether this build and this CPU can run impl (BEST and SCALAR: always). */
int hoist__ck_impl_available(hoist__ck_impl impl);
/* The name of impl ("scalar", "avx2", "avx512"; BEST: the one it picks). */
const char *hoist__ck_impl_name(hoist__ck_impl impl);

/* The whole hash H of the n bytes at src (blocks numbered from 0 at src;
 * any alignment; NULL allowed for n == 0).  When dst is not NULL, the n
 * bytes are also copied to dst in the same pass (the buffers must not
 * overlap): one read of the source feeds both the copy and the hash.  An
 * unavailable impl runs as SCALAR.  Thread-safe, never fails. */
uint64_t hoist__ck_copy_hash(hoist__ck_impl impl, void *dst, const void *src, uint64_t n);

/* SUM_b H_b for blocks [first, last) of the n bytes at base (block b at
 * base + b * HOIST_CHECKSUM_BLOCK), without the final mix: the per-thread
 * share of hoist__checksum_host(). */
uint64_t hoist__ck_blocks(hoist__ck_impl impl, const unsigned char *base, uint64_t n, uint64_t first,
                         uint64_t last);
#endif

#endif /* HOIST_CHECKSUM_HOST_H */
