/* names.h — the small containers discovery's units share (names.c): an
 * owned list of strings (file paths, sorted and deduplicated), a set of
 * names for the duplicate and agreement checks, and joining a folder with
 * a file name.  Not installed; nothing here is exported. */
#ifndef HOIST_NAMES_H
#define HOIST_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* os.path.join(dir, name) for a relative name: one '/' between them.
 * NULL when out of memory; the caller frees the result. */
char *hoist__path_join(const char *dir, const char *name);

/* The length of hoist__path_join(dir, ""): where a name starts in the
 * joined path. */
size_t hoist__path_join_prefix(const char *dir);

/* A growable list of owned strings; {0} is an empty list. */
typedef struct hoist__str_list {
  char **v;
  size_t n, cap;
} hoist__str_list;

/* Appends s, which the list owns from then on (freed at once when it
 * cannot be appended).  false when s is NULL or out of memory. */
bool hoist__str_list_push(hoist__str_list *l, char *s);
/* Frees every string and the list; the list is empty again. */
void hoist__str_list_free(hoist__str_list *l);
/* Sorts by strcmp and removes duplicates. */
void hoist__str_list_sort_unique(hoist__str_list *l);

/* A set of names: open addressing over pointers to the name field of the
 * caller's items (so that a name found leads back to its item), hashed as
 * the safetensors reader hashes tensor names.  Linear in the names, where
 * sorting them took a second on an index of half a million long, alike
 * tensor names.  {0} is an empty set that holds nothing until init. */
typedef struct hoist__name_set {
  const char *const **slot;
  size_t mask;
} hoist__name_set;

/* Room for n names; false when out of memory. */
bool hoist__name_set_init(hoist__name_set *s, size_t n);
/* Frees the table (not the items); NULL-safe on a {0} set. */
void hoist__name_set_free(hoist__name_set *s);
/* The item already holding *name's name, or NULL after adding name (the
 * set keeps the pointer: the item must outlive it). */
const char *const *hoist__name_set_add(hoist__name_set *s, const char *const *name);
/* The item holding name, or NULL. */
const char *const *hoist__name_set_find(const hoist__name_set *s, const char *name);

#endif /* HOIST_NAMES_H */
