/* pipeline.h — the struct behind hoist_pipeline (discover.c), and the
 * rules on component names (order.c) that the order, the loader and the
 * selections share: the classifiers (DiT, text encoder, image encoder,
 * VAE), the order key and the selection by name or group.  Components are
 * kept in index order (a component's slot is its place there); load order
 * gives each a position (hoist.h).
 *
 * The ordering is a port of SGLang's component_loading_order.py: ascending
 * by (-(inferred bytes or 0), risk rank, variant priority, index), where the
 * risk rank and the variant priority come from the component's load name.
 * Not installed; nothing here is exported. */
#ifndef HOIST_PIPELINE_H
#define HOIST_PIPELINE_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One component.  info is the public view; every pointer in it points into
 * memory this struct owns. */
typedef struct hoist__component {
  hoist_component_info info;
  char *name;          /* also info.name and info.load_name */
  char *library;       /* NULL when unknown */
  char *class_name;    /* NULL when unknown */
  char *path;          /* component folder (pipeline path joined with name) */
  char *vp_text;       /* exact variant priority in decimal */
  char **files;        /* file_count weight files (safetensors or fallback) */
  size_t file_count;
  hoist_file **st;     /* the safetensors among them, opened (st_count) */
  size_t st_count;
  bool single_file;    /* the pipeline is this one .safetensors file (path) */
} hoist__component;

struct hoist_pipeline {
  char *path;                   /* as given to hoist_pipeline_open */
  size_t count;
  hoist__component *components;  /* index order */
  const hoist_component_info **ordered; /* load order */
};

/* The slot (0-based place in index order, as hoist_pipeline_component
 * takes it) of one of p's components; SIZE_MAX for a foreign pointer.  The
 * slot is not info->index, which counts every key of model_index.json. */
size_t hoist__pipeline_slot(const hoist_pipeline *p, const hoist_component_info *info);

/* hoist__pipeline_safetensors (the opened files of a component): in
 * hoist_tools.h. */

/* Discovery's shared steps (discover.c): the device bytes of c's opened
 * safetensors (in the target dtype, tensor by tensor, when it is not
 * HOIST_DTYPE_KEEP) and its tensor count, into c->info. */
int hoist__component_count_bytes(hoist_runtime *rt, hoist_dtype target, hoist__component *c);

/* A single .safetensors file as a pipeline (discover_file.c).  The layout:
 * p (its path the file's) gets its one component, named after the file
 * without ".safetensors", whose path is the file; HOIST_BAD_PIPELINE for a
 * file of another name.  Then its discovery: the file opened as its only
 * weight file, and its size. */
int hoist__single_file_layout(hoist_runtime *rt, hoist_pipeline *p);
int hoist__discover_file(hoist_runtime *rt, hoist_dtype target, hoist__component *c);

/* ---- Classifiers (order.c).  Each checks the name and its base name (a
 * trailing "_<ASCII digits>" stripped), as the reference's risk rank does.
 * Pure functions of the string; thread-safe. */

/* transformer, transformer_2, video_dit, video_dit_2, audio_dit,
 * dual_tower_bridge. */
bool hoist__component_is_dit(const char *name);
/* Starts or ends with "text_encoder". */
bool hoist__component_is_text_encoder(const char *name);
/* Exactly image_encoder. */
bool hoist__component_is_image_encoder(const char *name);
/* vae, video_vae, audio_vae, vocoder, spatial_upsampler,
 * condition_image_encoder. */
bool hoist__component_is_vae(const char *name);
/* 0 DiT, 1 text encoder, 2 image encoder, 3 VAE, 10 anything else (the
 * first class that matches, in that order). */
int hoist__component_risk_rank(const char *name);

/* ---- Selection (order.c): hoist_load_options.offload, fsdp and the names
 * of dtype_for pick components by name or group. */

/* hoist__component_selected_by (what one item selects): in hoist_tools.h. */

/* Marks in mark[] (mark[i] for infos[i]) the components a comma list of
 * items selects; what is the hoist_load_options field the list came from,
 * named in messages.  NULL or ""
 * selects nothing.  An item that selects nothing is HOIST_INVALID_ARGUMENT. */
int hoist__component_select(hoist_runtime *rt, const char *what, const char *list,
                           const hoist_component_info *const *infos, size_t n,
                           unsigned char *mark);

/* Length of the base name: the part before the last '_' when what follows
 * it is one or more ASCII digits, else strlen(name). */
size_t hoist__component_base_len(const char *name);

/* The variant priority of name: -N for a trailing "_<ASCII digits N>", else
 * 0.  *value saturates at INT64_MIN; text (size >= strlen(name) + 2 is
 * always enough) receives the exact decimal ("-7", "0",
 * "-99999999999999999999999"). */
void hoist__component_variant_priority(const char *name, int64_t *value, char *text,
                                      size_t text_size);

/* Compares two components by the reference key: -(inferred bytes, unknown
 * as 0), then risk rank and variant priority of load_name (exactly, with no
 * overflow whatever the digit count), then index.  <0, 0, >0 as strcmp. */
int hoist__component_order_cmp(const hoist_component_info *a, const hoist_component_info *b);

/* hoist__component_sort: in hoist_tools.h. */

#endif /* HOIST_PIPELINE_H */
