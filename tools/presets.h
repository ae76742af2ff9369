/* presets.h — tables of realistic diffusers pipelines (FLUX.1-dev,
 * Wan2.2-T2V-A14B, Qwen-Image, SD3.5-large) as data, usable without writing
 * a byte: the folders of each pipeline, per folder its library, class,
 * dtype, shard count and config.json text, and every tensor (name, dtype,
 * shape) of its weights at a given scale, with exact totals.
 *
 * `hoist make-pipeline` writes these pipelines (pipeline_writer.h); `hoist
 * bench oom --simulate --preset NAME` reads them at scale 1 without writing.
 *
 * Tensors are generated from per-architecture layer templates (the real
 * state-dict keys and shapes of FluxTransformer2DModel, T5EncoderModel,
 * CLIPTextModel(WithProjection), AutoencoderKL, WanTransformer3DModel,
 * UMT5EncoderModel, AutoencoderKLWan, QwenImageTransformer2DModel,
 * Qwen2_5_VLForConditionalGeneration, SD3Transformer2DModel), in module
 * (definition) order, the order in which the real checkpoints are sharded.
 *
 * Scaling rule (scale F, 0 < F <= 1): every tensor of rank >= 1 keeps its
 * name, dtype and rank; its largest dimension (the first one when several
 * tie) becomes max(1, floor(d * F + 0.5)), the other dimensions are kept.
 * So a [3072, 3072] weight at F = 0.001 is [3, 3072] and its [3072] bias is
 * [3]: 1-D biases and norms stay proportional to their weights.  Rank-0
 * tensors are unchanged.  Every tensor's size is F times its real size up to
 * that rounding (and the floor of one element).
 *
 * The config.json texts are the published ones: they describe the tensors
 * at scale 1 only, the one scale at which a folder builds a model
 * (tests/differential/diff_pipeline_configs.py derives every shape from
 * the configs and checks it through this rule).
 *
 * Sharding: a component with N shards splits its tensors, in module order,
 * at byte boundaries k * total / N: tensor i goes to shard
 * floor(N * (bytes before i + bytes(i) / 2) / total), so shards are runs of
 * consecutive layers of about equal size, as transformers/diffusers cut
 * them, and the shard count is the real one at every scale.
 *
 * Threading: everything here is pure (no global state); any function may be
 * called from several threads at once.  The tables are static and
 * immutable: pointers returned are valid for the whole program.
 */
#ifndef HOIST_PRESETS_H
#define HOIST_PRESETS_H

#include "hoist.h"
#include "tokenizer_files.h"

#include <stddef.h>
#include <stdint.h>

#define HOIST_PRESET_MAX_DIMS 5
#define HOIST_PRESET_NAME_MAX 160

typedef enum hoist__preset_kind {
  HOIST_PRESET_WEIGHTS = 0, /* a model folder: config.json + safetensors */
  HOIST_PRESET_TOKENIZER,   /* tokenizer files only */
  HOIST_PRESET_SCHEDULER    /* scheduler_config.json only */
} hoist__preset_kind;

/* One extra text file of a weightless folder ("tokenizer_config.json"). */
typedef struct hoist__preset_file {
  const char *name;
  const char *text;
} hoist__preset_file;

typedef struct hoist__preset_component {
  const char *name;         /* model_index key and folder name */
  const char *library;      /* "diffusers" or "transformers" */
  const char *class_name;   /* "FluxTransformer2DModel" ... */
  hoist__preset_kind kind;
  hoist_dtype dtype;        /* every tensor's dtype (weights only) */
  uint32_t shards;          /* 1: a single file, else the real shard count */
  /* Weights file stem: "diffusion_pytorch_model" (diffusers) or "model"
   * (transformers). NULL for weightless folders. */
  const char *stem;
  const char *config_json;  /* text of config.json (weights) or NULL */
  size_t file_count;        /* extra files (tokenizer, scheduler) */
  const hoist__preset_file *files;
  /* Published size at scale 1 in bytes (0 for weightless) and where it
   * comes from; the tests check the tables against it within 1 %. */
  uint64_t published_bytes;
  const char *published_source;
  int arch;                 /* internal: which template generates tensors */
  /* Tokenizer folders: the vocabulary files generated beside the static
   * ones (tokenizer_files.h); HOIST_VOCAB_NONE for others. */
  hoist__vocab_kind vocab;
} hoist__preset_component;

typedef struct hoist__preset {
  const char *name;              /* "flux1-dev" */
  const char *repo;              /* "black-forest-labs/FLUX.1-dev" */
  const char *class_name;        /* model_index _class_name */
  const char *diffusers_version; /* model_index _diffusers_version */
  /* Non-component config values of model_index.json as a JSON object text
   * ("{\"boundary_ratio\":0.875,...}"), or NULL. */
  const char *extra_config_json;
  size_t component_count;        /* in model_index order (sorted by name) */
  const hoist__preset_component *components;
} hoist__preset;

/* One tensor as the iterator hands it out.  name and shape point into the
 * iterator's storage and are valid only during the callback. */
typedef struct hoist__preset_tensor {
  const char *name;
  hoist_dtype dtype;
  uint32_t ndim;
  const uint64_t *shape;
  uint64_t nbytes;          /* product of shape * dtype size */
} hoist__preset_tensor;

/* Returns nonzero to stop the iteration early (hoist__preset_tensors then
 * returns that value). */
typedef int (*hoist__preset_tensor_fn)(void *user, const hoist__preset_tensor *t);

size_t hoist__preset_count(void);
/* i < hoist__preset_count(); NULL otherwise. */
const hoist__preset *hoist__preset_at(size_t i);
/* Exact name lookup; NULL when unknown. */
const hoist__preset *hoist__preset_find(const char *name);
/* Whether 0 < scale <= 1 (and not NaN). */
int hoist__preset_scale_valid(double scale);

/* Calls fn for every tensor of the component (a WEIGHTS one; others have
 * none) at the given scale, in module order.  Returns 0, fn's nonzero
 * value, or HOIST_INVALID_ARGUMENT for a bad scale. */
int hoist__preset_tensors(const hoist__preset_component *c, double scale,
                         hoist__preset_tensor_fn fn, void *user);

/* Exact totals of a component at a scale: tensor bytes and count.  Returns
 * HOIST_OK, HOIST_INVALID_ARGUMENT (bad scale) or HOIST_OVERFLOW. */
int hoist__preset_component_totals(const hoist__preset_component *c, double scale,
                                  uint64_t *bytes, uint64_t *tensors);
/* Sum over every component of the preset. */
int hoist__preset_totals(const hoist__preset *p, double scale, uint64_t *bytes,
                        uint64_t *tensors);

/* Scales one dimension list in place by the rule above. */
void hoist__preset_scale_shape(uint32_t ndim, uint64_t *shape, double scale);

/* Shard of a tensor (0-based) given the bytes of the tensors before it in
 * module order, its own bytes, the component total and the shard count. */
uint32_t hoist__preset_shard_of(uint64_t before, uint64_t nbytes, uint64_t total,
                               uint32_t shards);

/* File name of shard k (0-based) of c: "model-00001-of-00002.safetensors",
 * or "<stem>.safetensors" for a single file; and the index file name
 * "<stem>.safetensors.index.json".  Return the snprintf length. */
int hoist__preset_shard_name(const hoist__preset_component *c, uint32_t k, char *buf,
                            size_t size);
int hoist__preset_index_name(const hoist__preset_component *c, char *buf, size_t size);

#endif /* HOIST_PRESETS_H */
