/* load.h — the loaded pipeline (load.c) as residency.c sees it: each
 * component's placement (placement.h) and host copy, and the internal load
 * variant with an order and a transient model. */
#ifndef HOIST_LOAD_H
#define HOIST_LOAD_H

#include "pipeline.h"
#include "placement.h"

struct hoist_loaded {
  hoist_runtime *rt;
  const hoist_pipeline *p;
  comp_state *comps;            /* load order */
  size_t ncomps;
  double seconds;
  uint64_t total_bytes;
};

/* Internal load variants (not exported; `hoist bench oom` uses them). */
typedef struct hoist_load_ext {
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
} hoist_load_ext;

/* hoist_load_pipeline with an order and a transient model; ext NULL is
 * exactly hoist_load_pipeline.  A bad order is HOIST_INVALID_ARGUMENT. */
int hoist_load_pipeline_ext(hoist_runtime *rt, const hoist_pipeline *p,
                            const hoist_load_options *opts, const hoist_load_ext *ext,
                            hoist_loaded **out);

#endif /* HOIST_LOAD_H */
