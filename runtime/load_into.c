/* load_into.c — hoist_load_into: one component's tensors into memory the
 * caller owns.
 *
 * It is a load (load.c) of that component alone, whose placement is the
 * caller's targets (targets.c) instead of arenas: the plan checks every
 * target before anything is allocated, admission counts only the upload's
 * transient memory (the conversion scratch, verify hashes) against the
 * free memory with no headroom (the destinations are already taken), and
 * the engine, the job builder, conversion and verification run unchanged,
 * so there is one upload path.  The loaded result holds no device memory
 * and is closed before returning. */
#include "load.h"

#include <string.h>

/* The slot of the component named component, or of p's only component
 * with safetensors weights when component is NULL. */
static int find_component(hoist_runtime *rt, const hoist_pipeline *p, const char *component,
                          size_t *slot) {
  const size_t n = hoist_pipeline_component_count(p);
  size_t found = SIZE_MAX, with_weights = 0;
  for (size_t i = 0; i < n; i++) {
    hoist_file *const *files = NULL;
    const bool weights = hoist__pipeline_safetensors(p, i, &files) > 0;
    with_weights += weights;
    if (component != NULL ? strcmp(hoist_pipeline_component(p, i)->name, component) == 0
                          : weights)
      found = i;
  }
  char nb[HOIST_SHOW_NAME], pb[HOIST_SHOW_PATH];
  const char *where = hoist__show(hoist_pipeline_path(p), pb, sizeof pb);
  if (component == NULL && with_weights != 1)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "%s has %zu components with safetensors weights: name the one to load into",
                       where, with_weights);
  if (found == SIZE_MAX)
    return hoist__fail(rt, HOIST_NOT_FOUND, "%s: no component '%s'", where,
                       hoist__show(component, nb, sizeof nb));
  hoist_file *const *files = NULL;
  if (hoist__pipeline_safetensors(p, found, &files) == 0)
    return hoist__fail(rt, HOIST_NO_WEIGHTS, "%s: component '%s' has no safetensors weights",
                       where, hoist__show(hoist_pipeline_component(p, found)->name, nb, sizeof nb));
  *slot = found;
  return HOIST_OK;
}

int hoist_load_into(hoist_runtime *rt, const hoist_pipeline *p, const char *component,
                    const hoist_load_target *targets, size_t ntargets,
                    const hoist_load_into_options *opts) {
  hoist_load_into_options defaults = HOIST_LOAD_INTO_OPTIONS_INIT;
  const hoist_load_into_options *o = opts != NULL ? opts : &defaults;
  int rc = hoist__check_struct_size(rt, "hoist_load_into_options", o->struct_size, sizeof *o);
  if (rc != HOIST_OK) return rc;
  if (o->failure != NULL) memset(o->failure, 0, sizeof *o->failure);
  if (targets == NULL && ntargets > 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "hoist_load_into: %zu targets at NULL",
                       ntargets);
  hoist__into into = {0, {targets, ntargets, o->strict, o->filled, o->missing, o->missing_user}};
  rc = find_component(rt, p, component, &into.slot);
  if (rc != HOIST_OK) return rc;
  hoist_load_options lo = HOIST_LOAD_OPTIONS_INIT;
  lo.progress = o->progress;
  lo.progress_user = o->progress_user;
  lo.verify = o->verify;
  lo.read_mode = o->read_mode;
  lo.headroom = 0;
  lo.cancel = o->cancel;
  lo.failure = o->failure;
  lo.scratch_bytes = o->scratch_bytes;
  lo.tensors = o->tensors;
  lo.tensor_filter = o->tensor_filter;
  lo.tensor_filter_user = o->tensor_filter_user;
  hoist_loaded *l = NULL;
  rc = hoist__load_run(rt, p, &lo, NULL, &into, &l);
  hoist_loaded_close(l);
  return rc;
}
