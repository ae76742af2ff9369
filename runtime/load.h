/* load.h — the loaded pipeline: made by the loader (load.c), kept by
 * loaded.c (accessors, lookups, holds, close) and moved by residency.c.
 *
 * Locks: rt->load_lock serializes loads and residency moves on a runtime;
 * l->lock guards what lookups read of every component of l while moves
 * change it: its arenas, its holds and the device fields of its public
 * view.  A move takes load_lock, then lock to publish; a lookup takes lock
 * only, so lookups never wait for a device transfer.  Not installed;
 * nothing here is exported. */
#ifndef HOIST_LOAD_H
#define HOIST_LOAD_H

#include "filter.h"
#include "pipeline.h"
#include "placement.h"
#include "targets.h"

struct hoist_loaded {
  hoist_runtime *rt;
  const hoist_pipeline *p;
  loaded_component *components; /* load order: index = position */
  size_t count;
  double seconds;
  uint64_t total_bytes;
  uint32_t rank, world; /* the load's rank in its group (0 of 1 alone) */
  uv_mutex_t lock;
};

/* A loaded pipeline of p's count components (zeroed, in load order), for
 * the loader to fill.  NULL when out of memory (nothing recorded). */
hoist_loaded *hoist__loaded_create(hoist_runtime *rt, const hoist_pipeline *p);
/* Frees l and everything its components hold (arenas, host copies);
 * NULL is a no-op.  The caller holds rt->load_lock. */
void hoist__loaded_destroy(hoist_loaded *l);

/* What hoist_load_into asks of a load: only the component at slot, placed
 * at the caller's targets instead of arenas. */
typedef struct hoist__into {
  size_t slot;
  hoist__targets targets;
} hoist__into;

/* hoist__load_pipeline_ext, and with into (not NULL) a load of into's
 * component alone into the caller's buffers: its plan places it at the
 * targets, its admission counts the transient memory only, and the result
 * holds no device memory (the caller closes it). */
int hoist__load_run(hoist_runtime *rt, const hoist_pipeline *p, const hoist_load_options *o,
                    const hoist__load_ext *ext, const hoist__into *into, hoist_loaded **out);

#endif /* HOIST_LOAD_H */
