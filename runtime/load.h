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

/* hoist_load_pipeline_ext, the load with an order and a transient model:
 * in hoist_tools.h. */

#endif /* HOIST_LOAD_H */
