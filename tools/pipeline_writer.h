/* pipeline_writer.h — writes a preset (presets.h) as a real diffusers
 * pipeline folder: model_index.json, one folder per component with its
 * config.json, safetensors weights (sharded with an index.json where the
 * real checkpoint is) and the weightless tokenizer/scheduler folders.
 *
 * Weights are random values from a counter-based splitmix64 stream keyed by
 * the seed and "component/tensor": any byte range of any tensor can be
 * generated on its own, so worker threads (uv_thread) fill 8 MiB pieces of
 * every shard in parallel and pwrite them in place.  Floating weights are
 * finite and of a model's magnitude (hoist__writer_values_for), so a
 * pipeline written at scale 1 runs and gives finite outputs.  Files are laid out
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

/* Writes preset p into dir (created, with its missing parents, when
 * absent).  Nothing is ever written through a symbolic link (dir_writer.h):
 * dir itself must not be a link (the links among its parents are followed;
 * "dir/" names the folder a link dir points to), and with force, a link
 * anywhere this run would write (a component folder, a weight, config,
 * index, tokenizer or model_index.json file, dangling or not) is refused
 * before anything is written.  Every file is written as a temporary and
 * renamed over its final name once all are complete, so a file replaced
 * with force that is a hard link keeps its old bytes under its other
 * names, and a failed run leaves every file that was there unchanged.
 * Returns HOIST_OK and fills *out (free with hoist__write_result_free), or:
 *   HOIST_INVALID_ARGUMENT  bad options, dir exists and is not empty
 *                           without force, dir is not a folder or is a
 *                           link, or a name to write is a link or in the
 *                           way (one line naming it);
 *   HOIST_IO                a write failed (ENOSPC, EFBIG, EACCES, ...):
 *                           the message names the file; every temporary,
 *                           file and folder this call created is removed
 *                           again;
 *   HOIST_NO_MEMORY.
 * The free space must hold all tensor data even with force: the old files
 * go only when the new ones are complete.  The detail is in
 * hoist_last_error(NULL).  Not reentrant per dir; several calls on
 * different dirs may run at once. */
int hoist__pipeline_write(const hoist__preset *p, const char *dir,
                         const hoist__writer_options *opts, hoist__write_result *out);

void hoist__write_result_free(hoist__write_result *r);

/* How a tensor's random 64-bit words become its bytes: every word is
 * (word & keep) | set.  For a floating dtype the masks act on each element
 * (BF16, F16: four a word; F32: two) and keep its sign, its mantissa and
 * the two low bits of its exponent while fixing the exponent's high bits,
 * so every value is a finite, normal ±(1.m)·2^e with e in four
 * consecutive binades at or below 1/sqrt(fan-in) (fan-in: the product of
 * the dimensions after the first; rank 0 and 1 tensors, biases and norms:
 * at or below 1), as a model's initialised weights are.  Other dtypes keep
 * every bit (keep = all ones, set = 0). */
typedef struct hoist__writer_values {
  uint64_t keep, set;
} hoist__writer_values;

#define HOIST_WRITER_RAW_BITS ((hoist__writer_values){~0ull, 0})

hoist__writer_values hoist__writer_values_for(hoist_dtype dtype, uint32_t ndim,
                                              const uint64_t *shape);

/* The bytes tensor `key` holds at [off, off + len): exposed so the tests
 * can check contents independently of the files.  key comes from
 * hoist__writer_tensor_key(seed, component, tensor), v from
 * hoist__writer_values_for (or HOIST_WRITER_RAW_BITS for raw random
 * bytes). */
uint64_t hoist__writer_tensor_key(uint64_t seed, const char *component, const char *tensor);
void hoist__writer_fill(uint64_t key, hoist__writer_values v, uint64_t off, uint8_t *dst,
                        size_t len);

#endif /* HOIST_PIPELINE_WRITER_H */
