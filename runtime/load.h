/* load.h — the loaded pipeline (load.c) as residency.c sees it: its
 * components, each with its placement (placement.h) and host copy. */
#ifndef HOIST_LOAD_H
#define HOIST_LOAD_H

#include "pipeline.h"
#include "placement.h"

struct hoist_loaded {
  hoist_runtime *rt;
  const hoist_pipeline *p;
  loaded_component *components; /* load order: index = position */
  size_t count;
  double seconds;
  uint64_t total_bytes;
};

/* hoist_load_pipeline_ext, the load with an order and a transient model:
 * in hoist_tools.h. */

#endif /* HOIST_LOAD_H */
