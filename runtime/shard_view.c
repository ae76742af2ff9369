/* shard_view.c — hoist_loaded_tensor_shard: which part of a tensor this
 * rank holds after a load with a group (hoist.h). */
#include "load.h"
#include "shard.h"

#include <string.h>

int hoist_loaded_tensor_shard(const hoist_loaded *l, const char *component, const char *tensor,
                              hoist_shard_info *out) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < l->count; i++) {
    const loaded_component *c = &l->components[i];
    if (strcmp(c->info->name, component) != 0) continue;
    const placed_tensor *pt = hoist__find_tensor(c, tensor);
    char shown[HOIST_SHOW_NAME];
    if (pt == NULL)
      return hoist__fail(l->rt, HOIST_NOT_FOUND, "%s: no tensor '%s'", component,
                         hoist__show(tensor, shown, sizeof shown));
    const hoist__shard_part *part = pt->shard;
    const hoist_tensor_info *global = part != NULL ? part->global : pt->t;
    out->rank = l->rank;
    out->world_size = l->world > 0 ? l->world : 1;
    out->ndim = global->ndim;
    out->global_shape = global->shape;
    if (part != NULL) {
      out->sharded = 1;
      out->dim = part->cut.dim;
      out->offset = part->cut.offset;
      out->length = part->cut.length;
      out->padded_length = part->cut.padded;
    } else {
      out->length = out->padded_length = global->ndim > 0 ? global->shape[0] : 1;
    }
    return HOIST_OK;
  }
  char shown[HOIST_SHOW_NAME];
  return hoist__fail(l->rt, HOIST_NOT_FOUND, "no component '%s'",
                     hoist__show(component, shown, sizeof shown));
}
