/* load.h — the loaded pipeline (load.c) as residency.c sees it: placed
 * tensors, arenas and host copies of each component. */
#ifndef HOIST_LOAD_H
#define HOIST_LOAD_H

#include "device.h"
#include "pipeline.h"

#define HOIST_MAX_ARENAS 8
#define HOIST_TENSOR_ALIGN 256u

typedef struct placed_tensor {
  const hoist_tensor_info *t;  /* as in the file */
  uint32_t file;   /* index into the component's files */
  uint64_t off;    /* offset in the component's placement span */
  hoist_tensor_info dev;       /* as on the device: t with the target dtype
                                  and its byte size when converted */
} placed_tensor;

typedef struct loaded_component {
  hoist_loaded_info pub;
  const hoist_component_info *info;
  size_t index_i;               /* index order position in the pipeline */
  hoist_file *const *files;
  size_t nfiles;
  placed_tensor *tensors;       /* placement order: largest first */
  size_t ntensors;
  const placed_tensor **by_name; /* sorted by name, for lookups */
  uint64_t span;                /* bytes of the placement, aligned */
  uint64_t need;                /* device bytes it takes when resident */
  int converts;                 /* some tensor changes dtype on the way */
  uint64_t chunk_bound;         /* upper bound of the upload job's chunks */
  uint64_t ring_bytes;          /* the conversion scratch ring when it
                                   converts on the device (0 otherwise); one
                                   ring serves the load, held from the first
                                   converting component to the last */
  uint64_t hash_bytes;          /* verify hashes held during its upload */
  int narenas;
  uint64_t arena_addr[HOIST_MAX_ARENAS];
  uint64_t arena_begin[HOIST_MAX_ARENAS]; /* first span offset in each arena */
  uint64_t arena_bytes[HOIST_MAX_ARENAS];
  void *host_copy;              /* offload: pinned host copy of the span */
} loaded_component;

struct hoist_loaded {
  hoist_runtime *rt;
  const hoist_pipeline *p;
  loaded_component *comps;            /* load order */
  size_t ncomps;
  double seconds;
  uint64_t total_bytes;
};

/* Target dtypes (hoist_load_options.dtype, hoist_pipeline_options.dtype).
 * HOIST_DTYPE_KEEP: every tensor keeps its dtype. */
#define HOIST_DTYPE_KEEP HOIST_DTYPE_COUNT_
/* Parses "bf16", "f16", "f32" (any case) or "keep" of length len; a bad
 * name is HOIST_INVALID_ARGUMENT naming the option `what`. */
int hoist__dtype_target_parse(hoist_runtime *rt, const char *what, const char *s, size_t len,
                             hoist_dtype *out);
/* The dtype t has on the device under target and its byte size there:
 * floating tensors take the target, others (ints, bool) and same-dtype ones
 * keep theirs.  A floating dtype with no conversion to target (F64, C64,
 * F8_E8M0, the FNUZ and sub-byte dtypes) is HOIST_UNSUPPORTED naming
 * component, tensor and pair. */
int hoist__tensor_target(hoist_runtime *rt, const char *component, const hoist_tensor_info *t,
                        hoist_dtype target, hoist_dtype *to, uint64_t *bytes);

/* Device address of a placed tensor of c (its arenas must exist). */
uint64_t hoist__tensor_addr(const loaded_component *c, const placed_tensor *pt);
/* Index of the arena a placed tensor lies in. */
int hoist__tensor_arena(const loaded_component *c, const placed_tensor *pt);
/* Allocates c's arenas (one, or up to HOIST_MAX_ARENAS when one cannot be
 * had) ; on failure nothing stays allocated. */
int hoist__arenas_alloc(hoist_runtime *rt, loaded_component *c);
void hoist__arenas_free(hoist_runtime *rt, loaded_component *c);

/* Marks components named by a comma list of names or groups (dit,
 * text_encoder, image_encoder, vae, all) in mark[] (load order).  An entry
 * that matches nothing is HOIST_INVALID_ARGUMENT. */
int hoist__component_select(hoist_runtime *rt, const char *what, const char *list,
                           const loaded_component *comps, size_t n, unsigned char *mark);

/* Internal load variants (not exported; `hoist bench oom` uses them). */
typedef struct hoist__load_ext {
  /* n index-order slots (as hoist_pipeline_component takes them) in load
   * order, a permutation of 0..n-1; NULL: the planned order. */
  const size_t *order;
  /* Transient device bytes a component needs during its own load besides
   * its arenas (a framework that materializes then casts, a scratch
   * buffer): admitted together with the arenas, allocated right after them,
   * freed when the component's upload ends; not taken for components placed
   * in host memory.  Called on the loading thread; NULL: none. */
  uint64_t (*transient)(void *user, const hoist_component_info *c, uint64_t tensor_bytes);
  void *transient_user;
  /* Test hook: called after a component's upload, before it is verified
   * (so a test can damage device bytes the way a fault would).  NULL: none. */
  void (*after_upload)(void *user, hoist_loaded *l, size_t pos);
  void *after_upload_user;
} hoist__load_ext;

/* hoist_load_pipeline with an order and a transient model; ext NULL is
 * exactly hoist_load_pipeline.  A bad order is HOIST_INVALID_ARGUMENT. */
int hoist__load_pipeline_ext(hoist_runtime *rt, const hoist_pipeline *p,
                            const hoist_load_options *opts, const hoist__load_ext *ext,
                            hoist_loaded **out);

#endif /* HOIST_LOAD_H */
