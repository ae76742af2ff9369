/* targets.h — the caller's buffers as a component's placement
 * (hoist_load_into): each selected tensor of the component matched by name
 * to the target the caller gave for it, checked (name, size, shape, dtype
 * pair, alignment, overlap, memory the device may write) and placed at the
 * target's address, so the loader's upload path fills the caller's memory
 * as it fills arenas.  Not installed; nothing here is exported. */
#ifndef HOIST_TARGETS_H
#define HOIST_TARGETS_H

#include "placement.h"

/* hoist_load_into's targets and how strictly they must match. */
typedef struct hoist__targets {
  const hoist_load_target *v;
  size_t n;
  int strict;
  unsigned char *filled;     /* optional out, n flags */
  hoist_missing_fn missing;  /* optional */
  void *missing_user;
} hoist__targets;

/* Places c's selected tensors (c->files and c->info set; selected as for
 * hoist__place, NULL: all) at their targets: sets c->tensors (each with
 * its dtype and bytes in the target, and addr), ntensors, converts,
 * caller_buffers, pub.bytes and pub.tensor_count; span and need stay 0.
 * Every check of hoist_load_into's list runs here, before anything is
 * allocated on the device.  The tables stay for the caller to free on
 * failure, as hoist__place's. */
int hoist__place_targets(hoist_runtime *rt, loaded_component *c, const hoist__targets *targets,
                         const unsigned char *selected);

#endif /* HOIST_TARGETS_H */
