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

#include "pipeline.h"
#include "placement.h"

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

#endif /* HOIST_LOAD_H */
