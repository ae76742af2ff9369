/* pipeline_writer.h — writes a preset (presets.h) as a real diffusers
 * pipeline folder: model_index.json, one folder per component with its
 * config.json, safetensors weights (sharded with an index.json where the
 * real checkpoint is) and the weightless tokenizer/scheduler folders.
 *
 * Weights are random bytes from a counter-based splitmix64 stream keyed by
 * the seed and "component/tensor": any byte range of any tensor can be
 * generated on its own, so worker threads (uv_thread) fill 8 MiB pieces of
 * every shard in parallel and pwrite them in place.  Files are laid out
 * exactly as the official safetensors writer lays them out (tensors sorted
 * by dtype alignment then name, compact JSON header with
 * {"__metadata__":{"format":"pt"}} first, padded with spaces to a multiple
 * of 8 bytes).  Every tensor's first bytes are nonzero.
 */
#ifndef HOIST_PIPELINE_WRITER_H
#define HOIST_PIPELINE_WRITER_H

#include "presets.h"

#include <stddef.h>
#include <stdint.h>

/* Called from the writing thread (the caller's) about ten times a second
 * while weights are written; bytes of tensor data done and in all. */
typedef void (*hoist__writer_progress_fn)(void *user, uint64_t done, uint64_t total);

typedef struct hoist__writer_options {
  double scale;                 /* 0 < scale <= 1 */
  uint64_t seed;
  uint32_t threads;             /* worker threads; 0: min(online CPUs, 8) */
  int force;                    /* write into a non-empty dir */
  hoist__writer_progress_fn progress;
  void *progress_user;
} hoist__writer_options;

#define HOIST_WRITER_OPTIONS_INIT { 1.0, 0, 0, 0, NULL, NULL }

typedef struct hoist__written_component {
  char *name;
  uint64_t bytes;               /* tensor data bytes */
  size_t file_count;
  char **files;                 /* paths relative to the pipeline dir */
} hoist__written_component;

typedef struct hoist__write_result {
  uint64_t total_bytes;         /* tensor data bytes over all components */
  uint64_t file_bytes;          /* bytes of every file written */
  double seconds;               /* wall time of the whole write */
  size_t count;
  hoist__written_component *components; /* in model_index order */
} hoist__write_result;

/* Writes preset p into dir (created when absent; its parent must exist).
 * Returns HOIST_OK and fills *out (free with hoist__write_result_free), or:
 *   HOIST_INVALID_ARGUMENT  bad options, or dir exists and is not empty
 *                           without force, or dir is not a directory;
 *   HOIST_IO                a write failed (ENOSPC, EFBIG, ...): the
 *                           message names the file; every file and folder
 *                           this call created is removed again;
 *   HOIST_NO_MEMORY.
 * The detail is in hoist_last_error(NULL).  Not reentrant per dir; several
 * calls on different dirs may run at once. */
int hoist__pipeline_write(const hoist__preset *p, const char *dir,
                         const hoist__writer_options *opts, hoist__write_result *out);

void hoist__write_result_free(hoist__write_result *r);

/* The bytes tensor `key` holds at [off, off + len): exposed so the tests
 * can check contents independently of the files.  key comes from
 * hoist__writer_tensor_key(seed, component, tensor). */
uint64_t hoist__writer_tensor_key(uint64_t seed, const char *component, const char *tensor);
void hoist__writer_fill(uint64_t key, uint64_t off, uint8_t *dst, size_t len);

#endif /* HOIST_PIPELINE_WRITER_H */
