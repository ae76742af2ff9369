/* shard_plan.c — hoist__shard_describe (hoist_tools.h): what every rank
 * of a group reads, without loading, through the same shard tables the
 * loader places with (shard.c), so `hoist shards` prints what a load does. */
#include "pipeline.h"
#include "shard.h"

#include <stdlib.h>

/* Visits the tensors of component c (its slot's files) for table t. */
static int describe_component(hoist_runtime *rt, const hoist_pipeline *p,
                              const hoist_component_info *c, int fsdp, hoist__shard_plan *plan,
                              hoist__shard_visit_fn fn, void *user) {
  hoist_file *const *files = NULL;
  const size_t nfiles = hoist__pipeline_safetensors(p, hoist__pipeline_slot(p, c), &files);
  size_t n = 0;
  for (size_t f = 0; f < nfiles; f++) n += hoist_file_tensor_count(files[f]);
  hoist__shard_table *table = NULL;
  int rc = hoist__shard_table_create(rt, c, fsdp, plan, n, &table);
  for (size_t f = 0; f < nfiles && rc == HOIST_OK; f++)
    for (size_t i = 0; i < hoist_file_tensor_count(files[f]) && rc == HOIST_OK; i++) {
      const hoist_tensor_info *t = hoist_file_tensor(files[f], i), *local = NULL;
      const hoist__shard_part *part = NULL;
      if ((rc = hoist__shard_tensor(rt, table, c->name, t, &local, &part)) != HOIST_OK) break;
      hoist__shard_view v = {.component = c->name, .tensor = t, .local_shape = local->shape,
                             .pieces = t->nbytes > 0, .piece_bytes = t->nbytes,
                             .stride = t->nbytes, .length = t->ndim > 0 ? t->shape[0] : 1};
      v.padded = v.length;
      if (part != NULL) {
        v.split = 1;
        v.kind = part->kind;
        v.dim = part->cut.dim;
        v.offset = part->cut.offset;
        v.length = part->cut.length;
        v.padded = part->cut.padded;
        v.pieces = part->cut.pieces;
        v.piece_bytes = part->cut.piece_bytes;
        v.first = part->cut.first;
        v.stride = part->cut.stride;
      }
      fn(user, &v);
    }
  hoist__shard_table_free(table);
  return rc;
}

int hoist__shard_describe(hoist_runtime *rt, const hoist_pipeline *p, const char *fsdp,
                          const char *shard, uint32_t rank, uint32_t world,
                          hoist__shard_visit_fn fn, void *user) {
  const size_t n = hoist_pipeline_component_count(p);
  const hoist_component_info **infos = calloc(n > 0 ? n : 1, sizeof *infos);
  unsigned char *marks = calloc(n > 0 ? n : 1, 1);
  hoist__shard_plan plan = {0};
  int rc = infos != NULL && marks != NULL ? HOIST_OK
                                          : hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  if (rc == HOIST_OK && (world < 1 || rank >= world))
    rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT, "rank %u of world size %u", rank, world);
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) infos[i] = hoist_pipeline_ordered(p, i);
  if (rc == HOIST_OK) rc = hoist__component_select(rt, "fsdp", fsdp, infos, n, marks);
  if (rc == HOIST_OK) rc = hoist__shard_plan_parse(rt, shard, rank, world, &plan);
  for (size_t i = 0; i < n && rc == HOIST_OK; i++)
    rc = describe_component(rt, p, infos[i], marks[i], &plan, fn, user);
  if (rc == HOIST_OK) rc = hoist__shard_plan_check(rt, &plan);
  hoist__shard_plan_free(&plan);
  free(infos);
  free(marks);
  return rc;
}
