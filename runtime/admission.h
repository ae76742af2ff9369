/* admission.h — whether a component may take device memory: the one rule
 * (need + headroom <= free), the headroom a load keeps, and the preflight
 * that checks a whole plan against the free memory at the start.  The
 * loader applies the rule before every component, the preflight before the
 * first, and `hoist bench oom --simulate` on its model of a load.  Not
 * installed; nothing here is exported. */
#ifndef HOIST_ADMISSION_H
#define HOIST_ADMISSION_H

#include "placement.h"

/* The rule itself, hoist__admits, is in hoist_tools.h: the OOM simulator
 * uses it too. */

/* The headroom of a load: option (hoist_load_options.headroom) when it is
 * >= 0, else the backend's default for a device of total_bytes. */
uint64_t hoist__admission_headroom(const hoist__device *d, int64_t option, uint64_t total_bytes);

/* Fills *f (when not NULL) with the component refused and the numbers. */
void hoist__admission_failure(hoist_load_failure *f, const char *component, uint64_t need,
                             uint64_t free_bytes);

/* The preflight: can every component placed on the device (offload[i] 0,
 * need > 0), in load order, fit under free_bytes with headroom, each
 * together with the transient bytes it holds while it uploads
 * (held_bytes)?  HOIST_ADMISSION naming the first that does not (and
 * filling *failure), else HOIST_OK. */
int hoist__admission_preflight(hoist_runtime *rt, const loaded_component *components, size_t n,
                              const unsigned char *offload, uint64_t headroom,
                              uint64_t free_bytes, hoist_load_failure *failure);

#endif /* HOIST_ADMISSION_H */
