/* filter.h — tensor filters (hoist.h, "Tensor filters"): which tensors of
 * a pipeline's components a load reads.
 *
 * The selection is made before a load takes the runtime's lock, because
 * the caller's callback may call hoist itself (a binding's callback may
 * need a lock that a thread closing another load holds while it waits for
 * the runtime's).  It is one flag per tensor of each component read, in
 * the order the component's opened files list them (files in order, each
 * file's tensors in file order), which is the order placement walks them
 * in.  Not installed; nothing here is exported. */
#ifndef HOIST_FILTER_H
#define HOIST_FILTER_H

#include "pipeline.h"

/* A filter as the options give it: patterns (NULL-terminated, or NULL for
 * none) and a callback (or NULL). */
typedef struct hoist__filter {
  const char *const *patterns;
  hoist_tensor_filter_fn fn;
  void *user;
} hoist__filter;

/* flags[slot] for each of a pipeline's components: NULL when every tensor
 * of it is read (no filter, or a component the load does not read), else
 * one byte per tensor, 1 when selected. */
typedef struct hoist__selection {
  size_t n;
  unsigned char **flags;
} hoist__selection;

/* Whether f selects anything less than everything. */
bool hoist__filter_active(const hoist__filter *f);

/* Runs f over the tensors of p's components (only the one at slot `only`
 * when it is not SIZE_MAX) into *out, which the caller frees with
 * hoist__selection_free on every path.  Without a filter *out has no
 * flags.  HOIST_INVALID_ARGUMENT for an empty pattern list or a pattern
 * that matches no tensor read, HOIST_CANCELLED when the callback stops the
 * load; messages name the options field `tensors` / `tensor_filter`. */
int hoist__filter_select(hoist_runtime *rt, const hoist_pipeline *p, const hoist__filter *f,
                         size_t only, hoist__selection *out);
void hoist__selection_free(hoist__selection *s);
/* The flags of the component at slot; NULL: every tensor. */
const unsigned char *hoist__selection_of(const hoist__selection *s, size_t slot);

#endif /* HOIST_FILTER_H */
