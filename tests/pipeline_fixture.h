/* pipeline_fixture.h — writes small but realistic pipelines for the load
 * and residency suites: model_index.json, sharded components with an index,
 * many small tensors (merged into shared chunks), large ones (split across
 * chunks), zero-size and scalar tensors, weightless folders (tokenizers,
 * a scheduler). */
#ifndef HOIST_PIPELINE_FIXTURE_H
#define HOIST_PIPELINE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

/* Writes the fixture pipeline into dir (which must exist).  Components:
 * transformer (2 shards + index, ~3.4 MB), text_encoder_2 (~1.3 MB),
 * text_encoder (~0.2 MB), vae (~0.1 MB), scheduler and tokenizer (no
 * weights).  Contents are random, never zero. */
void fixture_write_pipeline(const char *dir, uint64_t seed);

/* Writes one safetensors file with n tensors of the given byte sizes (U8,
 * shape [size]) named prefix.0 .. prefix.{n-1}. */
void fixture_write_file(const char *path, const char *prefix, const uint64_t *sizes, size_t n,
                        uint64_t seed);

#endif
