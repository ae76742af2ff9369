/* shard.h — which bytes of a tensor a rank loads when several ranks load a
 * pipeline together: the arithmetic of FSDP2's dim-0 split and of tensor
 * parallel splits on any dimension, the parts of the file a split reads,
 * the tensor-parallel plan (hoist_load_options.shard), and the split of a
 * replicated component's span among the ranks.
 *
 * The split functions are pure; a component's shard table describes the
 * local part of each of its split tensors (placement.c places those
 * instead of the file's tensors) and lives as long as the loaded
 * component.  Not installed; nothing here is exported. */
#ifndef HOIST_SHARD_H
#define HOIST_SHARD_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- The splits (pure functions; thread-safe) */

/* FSDP2's split of n rows among world ranks, as torch.chunk(x, world, 0)
 * makes it: *padded = ceil(n / world) rows per rank, rank gets rows
 * [rank * padded, min((rank + 1) * padded, n)): *offset and *length (0 for
 * the ranks past the last chunk).  world >= 1, rank < world. */
void hoist__shard_fsdp_rows(uint64_t n, uint32_t world, uint32_t rank, uint64_t *offset,
                            uint64_t *length, uint64_t *padded);

/* Tensor parallel's split into world equal parts: false when world does
 * not divide n (nothing written). */
bool hoist__shard_even_rows(uint64_t n, uint32_t world, uint32_t rank, uint64_t *offset,
                            uint64_t *length);

/* The part of a tensor holding indices [offset, offset + length) of
 * dimension dim, as it lies in the file: `pieces` runs of piece_bytes, the
 * first at byte `first` of the tensor, each `stride` bytes after the one
 * before (one piece for dim 0, or when the part is the whole tensor; one
 * per index of the outer dimensions otherwise; none when empty). */
typedef struct hoist__shard_cut {
  uint32_t dim;
  uint64_t offset, length, padded;
  uint64_t pieces, piece_bytes, first, stride;
} hoist__shard_cut;

/* Cuts t on dim (< t->ndim) for indices [offset, offset + length), which
 * the caller keeps within shape[dim].  HOIST_UNSUPPORTED when a row of the
 * split does not end on a byte (a 4- or 6-bit dtype with an odd row). */
int hoist__shard_cut_tensor(hoist_runtime *rt, const char *component, const hoist_tensor_info *t,
                            uint32_t dim, uint64_t offset, uint64_t length,
                            hoist__shard_cut *out);

/* The replicated split: the span [0, span) of n placed tensors (their
 * offsets, ascending, the first 0) cut at tensor boundaries into world
 * contiguous ranges of about span / world bytes each; rank's range is
 * [*begin, *end) (empty ranges are possible with few tensors).  Every rank
 * computes the same ranges from the same placement. */
void hoist__shard_split_span(const uint64_t *offsets, size_t n, uint64_t span, uint32_t world,
                             uint32_t rank, uint64_t *begin, uint64_t *end);

/* ---- The tensor-parallel plan: "NAME:GLOB=DIM[,..]" */

typedef struct hoist__shard_rule {
  char *component; /* a component name or group (order.c's selection) */
  char *glob;      /* fnmatch pattern on tensor names */
  int dim;         /* negative: from the last dimension */
  uint64_t matched;
} hoist__shard_rule;

typedef struct hoist__shard_plan {
  uint32_t rank, world;
  hoist__shard_rule *rules;
  size_t n;
} hoist__shard_plan;

/* Parses text (NULL or "": no rules) for rank of world.  A malformed entry
 * is HOIST_INVALID_ARGUMENT naming it (field `shard`).  Free with
 * hoist__shard_plan_free, also after a failure. */
int hoist__shard_plan_parse(hoist_runtime *rt, const char *text, uint32_t rank, uint32_t world,
                            hoist__shard_plan *out);
void hoist__shard_plan_free(hoist__shard_plan *p);
/* After every component was placed: HOIST_INVALID_ARGUMENT naming the
 * first rule that matched no tensor. */
int hoist__shard_plan_check(hoist_runtime *rt, const hoist__shard_plan *p);

/* ---- A component's shard table */

enum { HOIST__SHARD_FSDP = 1, HOIST__SHARD_TP = 2 };

/* One split tensor: local is the tensor as this rank reads it (the file's
 * name and dtype, the local shape, nelements and nbytes; begin and end the
 * file range from its first byte to its last, relative to the data
 * section). */
typedef struct hoist__shard_part {
  hoist_tensor_info local;
  uint64_t *shape; /* local.shape's storage */
  const hoist_tensor_info *global;
  hoist__shard_cut cut;
  int kind;
} hoist__shard_part;

typedef struct hoist__shard_table {
  uint32_t rank, world;
  int fsdp;                       /* every tensor split on dim 0 */
  hoist__shard_plan *plan;        /* the rules, borrowed while placing */
  unsigned char *applies;         /* plan->n marks: rules naming this component */
  hoist__shard_part *parts;
  size_t nparts, cap;
} hoist__shard_table;

/* A table for a component of ntensors tensors: FSDP-marked (fsdp) or with
 * the rules of plan that select it (name, load_name).  *out NULL when
 * nothing of it is split or checked (not FSDP with world 1, and no rule
 * names it). */
int hoist__shard_table_create(hoist_runtime *rt, const hoist_component_info *info, int fsdp,
                              hoist__shard_plan *plan, size_t ntensors,
                              hoist__shard_table **out);
void hoist__shard_table_free(hoist__shard_table *t);

/* The tensor this rank loads for the file's tensor t of component: t
 * itself when it is not split (*part NULL), else the part's local
 * description.  A rule whose dimension is out of t's range, or that the
 * world size does not divide, is HOIST_INVALID_ARGUMENT. */
int hoist__shard_tensor(hoist_runtime *rt, hoist__shard_table *table, const char *component,
                        const hoist_tensor_info *t, const hoist_tensor_info **local,
                        const hoist__shard_part **part);

#endif /* HOIST_SHARD_H */
