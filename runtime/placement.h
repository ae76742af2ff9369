/* placement.h — where a component's tensors lie: each tensor placed
 * largest-first at HOIST_TENSOR_ALIGN in the component's span, in the dtype
 * it takes on the device, and the arenas (one, or a few on a fragmented
 * device) that hold the span.  The loader places and allocates with it,
 * residency allocates again on prepare_for_use, and lookups turn a tensor
 * name into an address.  Not installed; nothing here is exported. */
#ifndef HOIST_PLACEMENT_H
#define HOIST_PLACEMENT_H

#include "device.h"

#define HOIST_MAX_ARENAS 8

/* The device memory holding a component's span: one arena, or up to
 * HOIST_MAX_ARENAS when the device denies one (fragmentation), cut at
 * tensor boundaries.  n == 0: none (an offloaded component, unprepared). */
typedef struct arena_set {
  int n;
  uint64_t addr[HOIST_MAX_ARENAS];
  uint64_t begin[HOIST_MAX_ARENAS]; /* first span offset in each arena */
  uint64_t bytes[HOIST_MAX_ARENAS];
} arena_set;

/* One tensor of a component, where it lies in the component's span. */
typedef struct placed_tensor {
  const hoist_tensor_info *t;   /* as in the file */
  uint32_t file;                /* index into the component's files */
  uint64_t off;                 /* offset in the component's span */
  hoist_tensor_info dev;        /* as on the device: t with the target dtype
                                   and its byte size when converted */
  uint64_t addr;                /* in a component with caller_buffers: the
                                   caller's destination (off unused) */
  const struct hoist__shard_part *shard; /* loads with ranks: t is this rank's
                                   part of the file's tensor (shard.h); NULL
                                   for a whole tensor */
} placed_tensor;

/* A component of a load: the discovered component (info, its slot: its
 * 0-based place in index order), its placement, the transient memory its
 * upload needs, and where its span lives (arenas, or a host copy).  pub is
 * the public view (hoist_loaded_component); components of a load are kept
 * in load order, so their index in hoist_loaded is their position. */
typedef struct loaded_component {
  hoist_loaded_info pub;
  const hoist_component_info *info;
  size_t slot;                  /* as hoist_pipeline_component takes it */
  hoist_file *const *files;
  size_t nfiles;
  placed_tensor *tensors;       /* placement order: largest first */
  size_t ntensors;
  const placed_tensor **by_name; /* sorted by name, for lookups */
  uint64_t span;                /* bytes of the placement, aligned */
  uint64_t need;                /* device bytes it takes when resident */
  int converts;                 /* some tensor changes dtype on the way */
  uint64_t chunk_bound;         /* upper bound of the upload job's chunks */
  uint64_t ring_bytes;          /* the conversion scratch ring when it
                                   converts on the device (0 otherwise); one
                                   ring serves the load, held from the first
                                   converting component to the last */
  uint64_t hash_bytes;          /* verify hashes held during its upload */
  uint64_t held_bytes;          /* transient bytes held besides its arenas
                                   while it uploads, as the preflight counts
                                   them: its hashes and, within the ring's
                                   span, the scratch ring */
  arena_set arenas;             /* where the span lives on the device */
  void *host_copy;              /* offload: pinned host copy of the span */
  int caller_buffers;           /* hoist_load_into: every tensor lands at its
                                   addr, memory the caller owns; no span, no
                                   arenas (span and need are 0) */
  uint64_t holds;               /* hoist_loaded_hold count (under l->lock) */
  /* Loads with ranks (shard.h, group_load.c): the split tensors' local
   * descriptions (owned; NULL when nothing is split), and for a component
   * replicated over the ranks the span range this rank reads itself
   * (own_end 0: all of it). */
  struct hoist__shard_table *shards;
  uint64_t own_begin, own_end;
} loaded_component;

/* Device address of a placed tensor in arenas a (a->n > 0). */
uint64_t hoist__tensor_addr(const arena_set *a, const placed_tensor *pt);
/* Index of the arena of a that a placed tensor lies in. */
int hoist__tensor_arena(const arena_set *a, const placed_tensor *pt);
/* Places c's tensors (c->files, c->info, c->shards set), the selected ones
 * only when selected is not NULL (a flag per tensor of c's files,
 * filter.h): each (or this rank's part of it, when c->shards splits it)
 * with its device dtype
 * under target (HOIST_DTYPE_KEEP or the dtype floating tensors become),
 * largest first in device bytes at HOIST_TENSOR_ALIGN; sets span, need (the
 * span rounded to granularity), converts, by_name, pub.bytes and
 * pub.tensor_count.  A floating tensor with no conversion to target is
 * HOIST_UNSUPPORTED.  The tables stay for the caller to free on failure. */
int hoist__place(hoist_runtime *rt, loaded_component *c, uint64_t granularity, hoist_dtype target,
                 const unsigned char *selected);
/* The placed tensor of c named name; NULL when there is none. */
const placed_tensor *hoist__find_tensor(const loaded_component *c, const char *name);
/* Allocates arenas for c's span into *out (one, or up to HOIST_MAX_ARENAS
 * when one cannot be had); on failure nothing stays allocated and out->n
 * is 0.  c is only read. */
int hoist__arenas_alloc(hoist_runtime *rt, const loaded_component *c, arena_set *out);
/* Frees a's arenas; a->n becomes 0. */
void hoist__arenas_free(hoist_runtime *rt, arena_set *a);

#endif /* HOIST_PLACEMENT_H */
