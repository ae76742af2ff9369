/* checksum_host.c — the host side of hoist's block checksum (definition in
 * checksum_host.h): hashes file bytes on several threads (libuv threads,
 * each taking a contiguous run of blocks) so `hoist load --verify` can
 * compare it with the value the device computed over the uploaded bytes
 * (kernels/checksum.cu).  Plain C; built with or without CUDA. */
#include "checksum_host.h"

#include "kernels.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Below this many blocks per thread the threads cost more than they save. */
#define HOIST_CK_MIN_BLOCKS_PER_THREAD 16u
#define HOIST_CK_MAX_THREADS 64u

/* Word i (little-endian) of a block of len bytes; bytes past len are 0. */
static uint64_t hoist_ck_load_word(const unsigned char *p, uint64_t len, uint64_t i) {
  uint64_t off = i * 8, w = 0;
  if (off + 8 <= len) {
    memcpy(&w, p + off, 8); /* little-endian host, as on every supported machine */
    return w;
  }
  for (uint64_t k = 0; off + k < len; k++) w |= (uint64_t)p[off + k] << (8 * k);
  return w;
}

/* SUM_b H_b over blocks [first, last) of the n bytes at base. */
static uint64_t hoist_ck_blocks(const unsigned char *base, uint64_t n, uint64_t first,
                                uint64_t last) {
  uint64_t acc = 0;
  for (uint64_t b = first; b < last; b++) {
    uint64_t start = b * HOIST_CHECKSUM_BLOCK;
    uint64_t len = n - start < HOIST_CHECKSUM_BLOCK ? n - start : HOIST_CHECKSUM_BLOCK;
    const unsigned char *p = base + start;
    uint64_t words = (len + 7) / 8, sum = 0;
    for (uint64_t i = 0; i < words; i++) sum += hoist_ck_word_term(hoist_ck_load_word(p, len, i), i);
    acc += hoist_ck_block_hash(sum, b, len);
  }
  return acc;
}

typedef struct hoist_ck_job {
  const unsigned char *base;
  uint64_t n, first, last;
  uint64_t acc; /* written by the worker, read after the join */
  uv_thread_t thread;
  int started;
} hoist_ck_job;

static void hoist_ck_worker(void *arg) {
  hoist_ck_job *job = arg;
  job->acc = hoist_ck_blocks(job->base, job->n, job->first, job->last);
}

uint64_t hoist_checksum_host(const void *bytes, uint64_t n, unsigned threads) {
  const unsigned char *base = bytes;
  uint64_t n_blocks = n / HOIST_CHECKSUM_BLOCK + (n % HOIST_CHECKSUM_BLOCK != 0);
  if (threads == 0) threads = uv_available_parallelism();
  if (threads > HOIST_CK_MAX_THREADS) threads = HOIST_CK_MAX_THREADS;
  uint64_t useful = n_blocks / HOIST_CK_MIN_BLOCKS_PER_THREAD;
  if (threads > useful) threads = (unsigned)(useful > 0 ? useful : 1);
  if (threads <= 1) return hoist_ck_final(hoist_ck_blocks(base, n, 0, n_blocks), n);

  hoist_ck_job *jobs = calloc(threads, sizeof *jobs);
  if (!jobs) return hoist_ck_final(hoist_ck_blocks(base, n, 0, n_blocks), n);
  /* Contiguous runs of blocks; sums commute, so the split cannot change
   * the result.  Job 0 runs on the calling thread. */
  for (unsigned t = 0; t < threads; t++) {
    jobs[t].base = base;
    jobs[t].n = n;
    jobs[t].first = n_blocks * t / threads;
    jobs[t].last = n_blocks * (t + 1) / threads;
  }
  for (unsigned t = 1; t < threads; t++)
    jobs[t].started = uv_thread_create(&jobs[t].thread, hoist_ck_worker, &jobs[t]) == 0;
  hoist_ck_worker(&jobs[0]);
  uint64_t acc = jobs[0].acc;
  for (unsigned t = 1; t < threads; t++) {
    if (jobs[t].started)
      uv_thread_join(&jobs[t].thread);
    else
      hoist_ck_worker(&jobs[t]);
    acc += jobs[t].acc;
  }
  free(jobs);
  return hoist_ck_final(acc, n);
}
