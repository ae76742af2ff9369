/* shard_rules.c — a component's *.safetensors.index.json files and the
 * rules its weight files keep, so that a component means one thing or
 * nothing (shard_rules.h states them):
 *   - the shards an index names: plain file names in the component's
 *     folder, each a regular file (the reference silently skips both a
 *     name that escapes the folder and a shard that is not there);
 *   - one tensor, one shard: two indexes may repeat an entry but not map a
 *     tensor to two shards, and an index agrees with its shards' headers
 *     both ways;
 *   - without an index, a tensor name held by two files is refused.
 * Names are matched through a name set (names.h): linear in the tensors,
 * which matters for indexes of half a million entries.  Every name and
 * path that comes from a file is shown through hoist__show. */
#include "shard_rules.h"

#include "safetensors.h" /* hoist__file_type_name */
#include "side_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A shard name from an index must stay in the component's folder. */
static bool shard_name_ok(const char *s) {
  if (s[0] == '\0' || strcmp(s, ".") == 0 || strncmp(s, "..", 2) == 0) return false;
  return strchr(s, '/') == NULL && strchr(s, '\\') == NULL;
}

void hoist__shard_map_free(hoist__shard_map *m) {
  if (m->roots != NULL)
    for (size_t i = 0; i < m->indexes->n; i++) cJSON_Delete(m->roots[i]);
  free(m->roots);
  free(m->v);
  hoist__name_set_free(&m->by_tensor);
  memset(m, 0, sizeof *m);
}

static bool map_push(hoist__shard_map *m, const char *tensor, const char *shard, size_t index) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    hoist__map_entry *v = realloc(m->v, cap * sizeof *v);
    if (v == NULL) return false;
    m->v = v;
    m->cap = cap;
  }
  m->v[m->n++] = (hoist__map_entry){tensor, shard, index};
  return true;
}

/* Adds the entries of the index at slot i of m->indexes to m. */
static int read_index(hoist_runtime *rt, hoist__shard_map *m, size_t i) {
  const char *index_path = m->indexes->v[i];
  char pb[HOIST_SHOW_PATH], nb[HOIST_SHOW_NAME];
  const char *shown = hoist__show(index_path, pb, sizeof pb);
  int rc = hoist__side_json_read(rt, index_path, &hoist__side_shard_index, &m->roots[i], NULL);
  if (rc != HOIST_OK) return rc;
  const cJSON *root = m->roots[i];
  if (!cJSON_IsObject(root))
    return hoist__fail(rt, HOIST_BAD_INDEX, "%s: not a JSON object", shown);
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(map))
    return hoist__fail(rt, HOIST_BAD_INDEX, "%s: \"weight_map\" is missing or not an object",
                       shown);
  for (const cJSON *e = map->child; e != NULL; e = e->next) {
    if (!cJSON_IsString(e))
      return hoist__fail(rt, HOIST_BAD_INDEX, "%s: weight_map entry '%s' is not a string", shown,
                        hoist__show(e->string, nb, sizeof nb));
    if (!map_push(m, e->string, e->valuestring, i))
      return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", shown);
  }
  return HOIST_OK;
}

/* Adds to shards (full paths) the shard of entry e when it is the first
 * entry naming it: a plain name of a regular file in folder. */
static int add_shard(hoist_runtime *rt, const char *folder, const hoist__shard_map *m,
                     const hoist__map_entry *e, hoist__str_list *shards) {
  char pb[HOIST_SHOW_PATH], nb[HOIST_SHOW_NAME], fb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(m->indexes->v[e->index], pb, sizeof pb);
  if (!shard_name_ok(e->shard))
    return hoist__fail(rt, HOIST_BAD_INDEX,
                      "%s: shard '%s' is not a plain file name in the component folder "
                      "(path separators and '..' are not allowed)",
                      shown, hoist__show(e->shard, nb, sizeof nb));
  char *full = hoist__path_join(folder, e->shard);
  if (full == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", shown);
  struct stat st;
  int err = stat(full, &st) == 0 ? 0 : errno;
  if (err != 0 || !S_ISREG(st.st_mode)) {
    int rc = hoist__fail(rt, HOIST_MISSING_SHARD, "%s: shard '%s' is missing (%s: %s)", shown,
                        hoist__show(e->shard, nb, sizeof nb), hoist__show(full, fb, sizeof fb),
                        err != 0 ? strerror(err) : hoist__file_type_name(st.st_mode));
    free(full);
    return rc;
  }
  if (!hoist__str_list_push(shards, full))
    return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", shown);
  return HOIST_OK;
}

int hoist__shard_map_read(hoist_runtime *rt, const char *folder, const hoist__str_list *indexes,
                          hoist__shard_map *m, hoist__str_list *shards) {
  m->indexes = indexes;
  m->roots = calloc(indexes->n ? indexes->n : 1, sizeof *m->roots);
  if (m->roots == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < indexes->n; i++) {
    int rc = read_index(rt, m, i);
    if (rc != HOIST_OK) return rc;
  }
  hoist__name_set shard_names = {0};
  if (!hoist__name_set_init(&m->by_tensor, m->n) || !hoist__name_set_init(&shard_names, m->n)) {
    hoist__name_set_free(&shard_names);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory reading shard indexes");
  }
  int rc = HOIST_OK;
  for (size_t i = 0; i < m->n && rc == HOIST_OK; i++) {
    const hoist__map_entry *e = &m->v[i];
    /* Entries of one shard mostly come together: skip the set for them. */
    bool same = i > 0 && strcmp(e->shard, m->v[i - 1].shard) == 0;
    if (!same && hoist__name_set_add(&shard_names, &e->shard) == NULL)
      rc = add_shard(rt, folder, m, e, shards);
    const void *first = hoist__name_set_add(&m->by_tensor, &e->tensor);
    const hoist__map_entry *had = first;
    if (rc != HOIST_OK || had == NULL || strcmp(had->shard, e->shard) == 0) continue;
    char ia[HOIST_SHOW_PATH], ib[HOIST_SHOW_PATH], tb[HOIST_SHOW_NAME], sa[HOIST_SHOW_NAME],
        sb[HOIST_SHOW_NAME];
    rc = hoist__fail(rt, HOIST_BAD_INDEX, "%s: tensor '%s' is mapped to '%s', but to '%s' by %s",
                    hoist__show(indexes->v[had->index], ia, sizeof ia),
                    hoist__show(e->tensor, tb, sizeof tb), hoist__show(had->shard, sa, sizeof sa),
                    hoist__show(e->shard, sb, sizeof sb),
                    hoist__show(indexes->v[e->index], ib, sizeof ib));
  }
  hoist__name_set_free(&shard_names);
  hoist__str_list_sort_unique(shards);
  return rc;
}

/* One tensor of one of the component's files, for the uniqueness check
 * (name first: the name set points at it). */
typedef struct tensor_claim {
  const char *name;
  size_t file;
} tensor_claim;

int hoist__shard_check_unique(hoist_runtime *rt, const hoist__component *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->st_count; i++) n += hoist_file_tensor_count(c->st[i]);
  if (c->st_count < 2 || n < 2) return HOIST_OK;
  tensor_claim *v = malloc(n * sizeof *v);
  hoist__name_set set = {0};
  if (v == NULL || !hoist__name_set_init(&set, n)) {
    free(v);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory checking tensor names");
  }
  n = 0;
  for (size_t i = 0; i < c->st_count; i++)
    for (size_t t = 0; t < hoist_file_tensor_count(c->st[i]); t++)
      v[n++] = (tensor_claim){hoist_file_tensor(c->st[i], t)->name, i};
  int rc = HOIST_OK;
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) {
    const void *first = hoist__name_set_add(&set, &v[i].name);
    const tensor_claim *had = first;
    if (had == NULL) continue;
    char nb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME], ab[HOIST_SHOW_PATH], bb[HOIST_SHOW_PATH];
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE, "%s: tensor '%s' is in two files, %s and %s",
                    hoist__show(c->name, nb, sizeof nb), hoist__show(v[i].name, tb, sizeof tb),
                    hoist__show(hoist_file_path(c->st[had->file]), ab, sizeof ab),
                    hoist__show(hoist_file_path(c->st[v[i].file]), bb, sizeof bb));
  }
  hoist__name_set_free(&set);
  free(v);
  return rc;
}

/* The slot of c's file named shard (c->st is sorted by path, and every
 * path is the folder joined with a shard name); SIZE_MAX when none. */
static size_t find_shard(const hoist__component *c, size_t prefix, const char *shard) {
  size_t lo = 0, hi = c->st_count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(hoist_file_path(c->st[mid]) + prefix, shard);
    if (cmp == 0) return mid;
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return SIZE_MAX;
}

int hoist__shard_check_index(hoist_runtime *rt, const hoist__component *c,
                             const hoist__shard_map *m) {
  char ib[HOIST_SHOW_PATH], tb[HOIST_SHOW_NAME], sb[HOIST_SHOW_NAME];
  size_t prefix = hoist__path_join_prefix(c->path);
  for (size_t i = 0; i < m->n; i++) {
    const hoist__map_entry *e = &m->v[i];
    size_t f = find_shard(c, prefix, e->shard);
    if (f != SIZE_MAX && hoist_file_find(c->st[f], e->tensor) != NULL) continue;
    return hoist__fail(rt, HOIST_BAD_INDEX,
                      "%s: weight_map maps tensor '%s' to '%s', which does not hold it",
                      hoist__show(m->indexes->v[e->index], ib, sizeof ib),
                      hoist__show(e->tensor, tb, sizeof tb), hoist__show(e->shard, sb, sizeof sb));
  }
  for (size_t f = 0; f < c->st_count; f++) {
    const char *shard = hoist_file_path(c->st[f]) + prefix;
    for (size_t t = 0; t < hoist_file_tensor_count(c->st[f]); t++) {
      const char *name = hoist_file_tensor(c->st[f], t)->name;
      const void *mapped = hoist__name_set_find(&m->by_tensor, name);
      const hoist__map_entry *e = mapped;
      if (e != NULL && strcmp(e->shard, shard) == 0) continue;
      if (e != NULL) {
        /* Mapped elsewhere, and that shard holds it too (checked above). */
        char ab[HOIST_SHOW_PATH], bb[HOIST_SHOW_PATH];
        return hoist__fail(rt, HOIST_BAD_INDEX,
                          "%s: tensor '%s' is in two files, %s and %s (weight_map names '%s')",
                          hoist__show(m->indexes->v[e->index], ib, sizeof ib),
                          hoist__show(name, tb, sizeof tb),
                          hoist__show(hoist_file_path(c->st[find_shard(c, prefix, e->shard)]), ab,
                                     sizeof ab),
                          hoist__show(hoist_file_path(c->st[f]), bb, sizeof bb),
                          hoist__show(e->shard, sb, sizeof sb));
      }
      /* Name the index when there is one, else the folder. */
      const char *where = m->indexes->n == 1 ? m->indexes->v[0] : c->path;
      return hoist__fail(rt, HOIST_BAD_INDEX, "%s: tensor '%s' of shard '%s' is not in weight_map",
                        hoist__show(where, ib, sizeof ib), hoist__show(name, tb, sizeof tb),
                        hoist__show(shard, sb, sizeof sb));
    }
  }
  return HOIST_OK;
}
