/* discover_file.c — one .safetensors file as a pipeline (pipeline.h): a
 * single component named after the file ("model" for model.safetensors),
 * library and class unknown, the file its only weight file.  So a caller
 * that holds one checkpoint file (safetensors.torch.load_file's input)
 * loads it with the same plan, admission and engine as a folder.  Variants
 * do not apply: the file is what was asked for. */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#define SUFFIX ".safetensors"

int hoist__single_file_layout(hoist_runtime *rt, hoist_pipeline *p) {
  char pb[HOIST_SHOW_PATH];
  const size_t len = strlen(p->path), suffix = sizeof SUFFIX - 1;
  const char *slash = strrchr(p->path, '/');
  const char *base = slash != NULL ? slash + 1 : p->path;
  const size_t base_len = len - (size_t)(base - p->path);
  if (base_len <= suffix || strcmp(p->path + len - suffix, SUFFIX) != 0)
    return hoist__fail(rt, HOIST_BAD_PIPELINE,
                       "%s: not a .safetensors file (a pipeline is a folder with model_index.json, "
                       "a folder of weights, or one NAME.safetensors file)",
                       hoist__show(p->path, pb, sizeof pb));
  p->components = calloc(1, sizeof *p->components);
  if (p->components == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  p->count = 1;
  hoist__component *c = &p->components[0];
  c->single_file = true;
  c->name = malloc(base_len - suffix + 1);
  c->path = hoist__strdup(p->path);
  if (c->name == NULL || c->path == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  memcpy(c->name, base, base_len - suffix);
  c->name[base_len - suffix] = '\0';
  return HOIST_OK;
}

int hoist__discover_file(hoist_runtime *rt, hoist_dtype target, hoist__component *c) {
  c->files = calloc(1, sizeof *c->files);
  c->st = calloc(1, sizeof *c->st);
  if (c->files == NULL || c->st == NULL || (c->files[0] = hoist__strdup(c->path)) == NULL)
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  c->file_count = 1;
  int rc = hoist_file_open(rt, c->path, &c->st[0]);
  if (rc != HOIST_OK) return rc; /* the reader names the file */
  c->st_count = 1;
  return hoist__component_count_bytes(rt, target, c);
}
