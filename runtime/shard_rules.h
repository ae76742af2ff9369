/* shard_rules.h — a component's shard indexes and the rules its weight
 * files keep (shard_rules.c): what the indexes name, that they agree with
 * the shards' headers, and that a tensor name is held by one file only.
 * Not installed; nothing here is exported. */
#ifndef HOIST_SHARD_RULES_H
#define HOIST_SHARD_RULES_H

#include "names.h"
#include "pipeline.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* One weight_map entry: a tensor and its shard (strings owned by the
 * index's cJSON tree) and the slot of the index that holds it.  tensor
 * comes first: the name set of a shard map points at it. */
typedef struct hoist__map_entry {
  const char *tensor;
  const char *shard;
  size_t index;
} hoist__map_entry;

/* The weight_maps of a component's indexes, merged; {0} is empty. */
typedef struct hoist__shard_map {
  const hoist__str_list *indexes; /* the index files, by slot (borrowed) */
  cJSON **roots;                  /* their parsed trees, by slot */
  hoist__map_entry *v;            /* every entry, in file order */
  size_t n, cap;
  hoist__name_set by_tensor;      /* each tensor once: its first entry */
} hoist__shard_map;

/* Reads every index of a component (indexes: their paths, borrowed for
 * m's life) into m, and the shards they name into shards (full paths in
 * folder, sorted).  A shard name with a path separator, or "", "." or one
 * starting with "..", is HOIST_BAD_INDEX; a shard that is not a regular
 * file is HOIST_MISSING_SHARD.  Duplicate keys within one weight_map are
 * refused with its file; two indexes may repeat an entry, but not map one
 * tensor to two shards.  The caller frees m (also on failure). */
int hoist__shard_map_read(hoist_runtime *rt, const char *folder, const hoist__str_list *indexes,
                          hoist__shard_map *m, hoist__str_list *shards);
void hoist__shard_map_free(hoist__shard_map *m);

/* An index agrees with its shards' headers both ways: every weight_map
 * entry's shard holds that tensor, and every tensor of a named shard is
 * mapped to that shard (c->st: the opened shards, sorted by path, each the
 * folder joined with a shard name).  As weight_map maps a tensor to one
 * shard, this also makes tensor names unique across the shards: a tensor
 * in two of them is refused naming both.  HOIST_BAD_INDEX. */
int hoist__shard_check_index(hoist_runtime *rt, const hoist__component *c,
                             const hoist__shard_map *m);

/* Within a component every tensor name is held by one file (without an
 * index): otherwise which bytes a lookup returns would depend on the file
 * order.  HOIST_BAD_PIPELINE naming the tensor and both files. */
int hoist__shard_check_unique(hoist_runtime *rt, const hoist__component *c);

#endif /* HOIST_SHARD_RULES_H */
