/* names.c — string lists, the name set and path joining for discovery's
 * units (discover.c, side_file.c, shard_rules.c); see names.h. */
#include "names.h"

#include "safetensors.h" /* hoist__hash_str */

#include <stdlib.h>
#include <string.h>

char *hoist__path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  bool slash = a > 0 && dir[a - 1] != '/';
  char *out = malloc(a + (slash ? 1 : 0) + b + 1);
  if (out == NULL) return NULL;
  memcpy(out, dir, a);
  if (slash) out[a++] = '/';
  memcpy(out + a, name, b + 1);
  return out;
}

size_t hoist__path_join_prefix(const char *dir) {
  size_t a = strlen(dir);
  return a + (a > 0 && dir[a - 1] != '/' ? 1 : 0);
}

/* ---- The string list */

static int cmp_strp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool hoist__str_list_push(hoist__str_list *l, char *s) {
  if (s == NULL) return false;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) {
      free(s);
      return false;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return true;
}

void hoist__str_list_free(hoist__str_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

void hoist__str_list_sort_unique(hoist__str_list *l) {
  if (l->n < 2) return;
  qsort(l->v, l->n, sizeof *l->v, cmp_strp);
  size_t k = 1;
  for (size_t i = 1; i < l->n; i++) {
    if (strcmp(l->v[i], l->v[k - 1]) == 0)
      free(l->v[i]);
    else
      l->v[k++] = l->v[i];
  }
  l->n = k;
}

/* ---- The name set */

bool hoist__name_set_init(hoist__name_set *s, size_t n) {
  size_t cap = 16;
  while (cap / 2 < n) cap *= 2;
  s->slot = calloc(cap, sizeof *s->slot);
  s->mask = cap - 1;
  return s->slot != NULL;
}

void hoist__name_set_free(hoist__name_set *s) {
  free(s->slot);
  memset(s, 0, sizeof *s);
}

const char *const *hoist__name_set_add(hoist__name_set *s, const char *const *name) {
  size_t h = hoist__hash_str(*name) & s->mask;
  for (; s->slot[h] != NULL; h = (h + 1) & s->mask)
    if (strcmp(*s->slot[h], *name) == 0) return s->slot[h];
  s->slot[h] = name;
  return NULL;
}

const char *const *hoist__name_set_find(const hoist__name_set *s, const char *name) {
  for (size_t h = hoist__hash_str(name) & s->mask; s->slot[h] != NULL; h = (h + 1) & s->mask)
    if (strcmp(*s->slot[h], name) == 0) return s->slot[h];
  return NULL;
}
