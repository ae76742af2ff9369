/* engine.h — the upload engine: moves a job's chunks from their files into
 * device memory (or into a pinned host copy) through a small pinned ring,
 * reader threads and per-thread streams.
 *
 * The engine (threads' streams, events and ring slots) is created once per
 * runtime, on its first load, and reused; hoist__engine_destroy frees it at
 * runtime close.  One job runs at a time per runtime (load.c serializes). */
#ifndef HOIST_ENGINE_H
#define HOIST_ENGINE_H

#include "file_read.h"

#include <stdatomic.h>

/* A piece of one file that lands at slot_off inside a chunk. */
typedef struct upload_segment {
  uint32_t file;     /* index into the job's files */
  uint32_t slot_off;
  uint64_t file_off; /* absolute offset in the file */
  uint64_t len;
  uint32_t tensor;   /* index of its placed tensor in the component */
  uint64_t tensor_off; /* offset of the piece inside its tensor (source bytes) */
} upload_segment;

/* One transfer: a contiguous destination range filled from its segments
 * (several small tensors placed next to each other share one chunk; the
 * gaps between their segments in the slot are zeroed).  A converted chunk
 * (from != to) is a piece of one tensor cut at element boundaries, or
 * several small tensors of the same conversion: each segment sits in the
 * slot at its destination offset scaled by source/target element size, so
 * the len source bytes, copied into a device scratch slot, convert as one
 * span into dst_len bytes at dst (the converted gap lands in the arena's
 * alignment padding). */
typedef struct upload_chunk {
  uint64_t dst;        /* device address, or host address for host jobs */
  uint64_t len;        /* span read from the files, padding between merged
                          tensors included */
  uint64_t dst_len;    /* bytes written at dst (len unless converted) */
  uint32_t first_seg;
  uint32_t nseg;
  hoist_dtype from, to;
  uint32_t part;       /* the job part (component) it belongs to; 0 when the
                          job has none */
  uint64_t host_hash;  /* verify: block checksum of the len bytes read (or,
                          for host jobs, of the dst_len bytes written) */
} upload_chunk;

struct upload_job;

/* One component of a job that uploads several at once (a pipelined load):
 * its chunks are [chunk_begin, chunk_end) of the job.  Progress is reported
 * per part; the engine stamps when a reader first took one of its chunks. */
typedef struct upload_part {
  const char *component;
  uint64_t total_bytes;
  size_t chunk_begin, chunk_end;
  atomic_uint_fast64_t done;   /* tensor bytes issued */
  uint64_t reported;           /* last done given to the progress callback */
  atomic_uint_fast64_t started_ns; /* uv_hrtime of its first chunk taken; 0: none yet */
  /* Its job's content check (upload_job.check), which knows its segments
   * from seg_begin on as that job numbered them. */
  int (*check)(void *user, const struct upload_job *job, const struct upload_chunk *c,
               const unsigned char *bytes);
  void *check_user;
  size_t seg_begin;
} upload_part;

typedef struct upload_job {
  const char *component;        /* for messages and progress */
  /* Several components in one run (hoist__upload_job_concat): parts[i]
   * names each and counts its progress; NULL: the job is one component. */
  upload_part *parts;
  size_t nparts;
  upload_file *files;
  size_t nfiles;
  upload_chunk *chunks;         /* in issue order: largest tensors first */
  size_t nchunks;
  upload_segment *segs;
  size_t nsegs;
  uint64_t total_bytes;         /* tensor bytes, for progress */
  int to_host;                  /* 1: dst are host addresses (offload copy) */
  hoist_progress_fn progress;
  void *progress_user;
  const volatile int *cancel;
  /* Conversion: the device scratch ring from address scratch, set when a
   * chunk converts on the device: a pool of scratch_slots slots of
   * scratch_slot bytes that the reader threads share. */
  uint64_t scratch;
  uint64_t scratch_slot;
  unsigned scratch_slots;
  /* Verify: reader threads fill chunks[i].host_hash.  dev_hashes is device
   * memory of 3 x hash_stride (>= nchunks) 8-byte hashes (device jobs
   * only): row 0, chunk i's bytes on the device (a converted chunk's source
   * in the scratch, hashed before conversion); row 1, a converted chunk's
   * output right after conversion; row 2, that output again at verify time,
   * so a converted tensor changed afterwards is caught too.  After the rows,
   * hash_stride * HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN bytes for the batch
   * checksum that hashes every chunk at verify time. */
  int verify;
  uint64_t dev_hashes;          /* UPLOAD_VERIFY_BYTES_PER_CHUNK x hash_stride */
  uint64_t hash_stride;
  /* A content check (a manifest): when set, a reader calls it with each
   * chunk's bytes as read from the files, laid out as in its slot (segment
   * k at bytes + slot_off), before they are copied anywhere or converted;
   * a status other than HOIST_OK fails the run with the detail it
   * recorded.  Called from the reader threads, several at once. */
  int (*check)(void *user, const struct upload_job *job, const upload_chunk *c,
               const unsigned char *bytes);
  void *check_user;
  /* Out: nanoseconds the reader threads spent, summed, waiting for a pinned
   * slot's copy (and the conversion the copy stream waited for before it)
   * to finish before refilling it; high when the device side, not the
   * readers, sets the pace.  The final drain of the streams is not counted. */
  uint64_t copy_wait_ns;
  /* Out: how often readers found the scratch pool empty, and the time,
   * summed, from then until they had a slot (converting their other chunk
   * meanwhile counts here, not in copy_wait_ns). */
  uint64_t scratch_waits;
  uint64_t scratch_wait_ns;
  /* Out: reader threads the run started. */
  unsigned readers;
} upload_job;

/* Device bytes verification needs per chunk: the 3 rows of 8-byte hashes
 * and the batch checksum's table (upload_job.dev_hashes). */
#define UPLOAD_VERIFY_BYTES_PER_CHUNK (24u + HOIST_CHECKSUM_BATCH_BYTES_PER_SPAN)

typedef struct hoist__engine hoist__engine;

/* Creates the runtime's engine if needed (threads x 2 slots of chunk bytes,
 * within cfg.ring_bytes). */
int hoist__engine_get(hoist_runtime *rt, hoist__engine **out);
void hoist__engine_destroy(hoist__engine *e);
uint64_t hoist__engine_chunk_bytes(const hoist__engine *e);
uint64_t hoist__engine_pinned_bytes(const hoist__engine *e);

/* Runs a job to completion: every chunk copied and every stream
 * synchronized, or the first error (the others stop at the next chunk). */
int hoist__engine_run(hoist__engine *e, upload_job *job);

/* The scratch ring of a converting job within scratch_bytes: a pool of
 * slots the readers share, each holding one chunk in flight (a reader holds
 * at most two).  Slots: chunk-sized when two fit (at most two per reader
 * thread), else two halves, else one.  Bytes per slot: a multiple of 4096,
 * at most the chunk; 0 when scratch_bytes is below 4 KiB.  The ring is
 * slots x slot bytes. */
unsigned hoist__engine_scratch_slots(const hoist__engine *e, uint64_t scratch_bytes);
uint64_t hoist__engine_scratch_slot(const hoist__engine *e, uint64_t scratch_bytes);

/* A stream of the engine's for work between runs (verification's batch
 * checksum); valid until hoist__engine_destroy. */
void *hoist__engine_stream(const hoist__engine *e);

/* hoist__checksum_host(bytes, n, 1) (kernels.h), computed with the SIMD
 * block sums on the calling thread: what the reader threads take of every
 * chunk for verification that they did not hash while copying it. */
uint64_t hoist__upload_chunk_hash(const void *bytes, uint64_t n);

#endif /* HOIST_ENGINE_H */
