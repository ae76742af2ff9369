/* checksum_host.h — the definition of hoist's block checksum, shared by the
 * host function (checksum_host.c) and the device kernel
 * (kernels/checksum.cu) so the two compute the same value by construction.
 *
 * Definition, for n bytes cut into blocks of B = HOIST_CHECKSUM_BLOCK bytes
 * (block b holds bytes [b*B, min(n, (b+1)*B)), its length L_b; the last
 * block may be shorter; n == 0 has no block):
 *   - word i of a block is its bytes [8i, 8i+8) read little-endian, the
 *     bytes past L_b taken as zero;
 *   - sum_b = SUM_i word_mix(word_i ^ (i * K_POS + K_SEED))   (mod 2^64)
 *     word_mix is a bijection, so a change in one word always changes sum_b,
 *     and the position key makes the sum depend on the words' order;
 *   - H_b = fmix(sum_b + b * K_BLOCK + L_b * K_LEN): keyed with the block's
 *     index, so swapped blocks change the result, and with its length;
 *   - H = fmix(SUM_b H_b + n * K_LEN + K_SEED)   (mod 2^64).
 * Sums make every level a reduction: blocks can be hashed in any order by
 * any number of threads, and the words of a block by a whole thread block.
 * The mixers are multiply / xor-shift steps with odd constants (each step is
 * invertible). */
#ifndef HOIST_CHECKSUM_HOST_H
#define HOIST_CHECKSUM_HOST_H

#include <stdint.h>

#if defined(__CUDACC__)
#define HOIST_CK_FN static __host__ __device__ __forceinline__
#else
#define HOIST_CK_FN static inline
#endif

#define HOIST_CK_K_SEED 0x9e3779b97f4a7c15ull
#define HOIST_CK_K_POS 0xd6e8feb86659fd93ull
#define HOIST_CK_K_BLOCK 0xa0761d6478bd642full
#define HOIST_CK_K_LEN 0xe7037ed1a0b428dbull
#define HOIST_CK_M1 0xbf58476d1ce4e5b9ull
#define HOIST_CK_M2 0x94d049bb133111ebull

/* The per-word mixer: two multiply / xor-shift rounds. */
HOIST_CK_FN uint64_t hoist_ck_word_mix(uint64_t x) {
  x *= HOIST_CK_M1;
  x ^= x >> 31;
  x *= HOIST_CK_M2;
  x ^= x >> 29;
  return x;
}

/* The term word i of a block adds to the block's sum. */
HOIST_CK_FN uint64_t hoist_ck_word_term(uint64_t word, uint64_t i) {
  return hoist_ck_word_mix(word ^ (i * HOIST_CK_K_POS + HOIST_CK_K_SEED));
}

/* The finalizer of block hashes and of the whole hash. */
HOIST_CK_FN uint64_t hoist_ck_fmix(uint64_t x) {
  x ^= x >> 30;
  x *= HOIST_CK_M1;
  x ^= x >> 27;
  x *= HOIST_CK_M2;
  x ^= x >> 31;
  return x;
}

/* H_b from the block's word sum, index and length. */
HOIST_CK_FN uint64_t hoist_ck_block_hash(uint64_t sum, uint64_t b, uint64_t len) {
  return hoist_ck_fmix(sum + b * HOIST_CK_K_BLOCK + len * HOIST_CK_K_LEN);
}

/* H from the sum of the block hashes and the total length. */
HOIST_CK_FN uint64_t hoist_ck_final(uint64_t block_sum, uint64_t n) {
  return hoist_ck_fmix(block_sum + n * HOIST_CK_K_LEN + HOIST_CK_K_SEED);
}

#endif /* HOIST_CHECKSUM_HOST_H */
