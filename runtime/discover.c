/* discover.c — pipeline discovery: from a directory to its components, each
 * with its weight files, its inferred device bytes and its place in the
 * memory-aware load order (order.c).
 *
 * Layouts
 *   - A diffusers pipeline: PATH/model_index.json maps component names to
 *     [library, class]; each component lives in PATH/<name>/.
 *       keys starting with '_' (_class_name, _diffusers_version, ...) are
 *         metadata, never components;
 *       [library, class] with library a string and class a string or null
 *         is a component;
 *       [null, x] (x a string or null) is an absent optional component,
 *         as diffusers writes it: not a component and not an error;
 *       every other value ("boundary_ratio": 0.875, "expand_timesteps":
 *         true, lists of another shape, strings, objects) is pipeline
 *         configuration, not a component.
 *     A component's index is its 0-based position in the file's key order,
 *     counting every key (_class_name included), as hoist.h defines it.  Only the relative order of indexes matters to the sort,
 *     so this gives the reference's order whichever way its caller numbers
 *     them.  Components are kept in index order; their array slot is not
 *     their index.
 *   - A plain model folder (no model_index.json, but weight files in it):
 *     a one-component pipeline named after the folder, whose library and
 *     class come from its config.json (_class_name and "diffusers" when
 *     _diffusers_version is present, else architectures[0] and
 *     "transformers"; NULL when unknown).
 *
 * Weight files of a component folder (non-recursive; names starting with
 *   '.' skipped, as Python's glob does; symlinks followed, as in the Hugging
 *   Face cache where snapshots/<rev>/x points at ../../blobs/<sha>):
 *   1. every *.safetensors.index.json (sorted by name): the files named by
 *      the values of its "weight_map", deduplicated and sorted.  A shard
 *      name with '/' or '\' in it, or one that is "", "." or starts with
 *      "..", is HOIST_BAD_INDEX; a shard that is not there is
 *      HOIST_MISSING_SHARD (the reference silently skips both);
 *   2. when the indexes name no shard: every *.safetensors in the folder;
 *   3. when there is no safetensors file: every .bin, .pt, .pth, .ckpt and
 *      .gguf file.
 *   Variants follow diffusers' naming (_add_variant inserts the variant
 *   before the last extension): name.<V>.safetensors,
 *   name.<V>-00001-of-00002.safetensors and name.safetensors.index.<V>.json
 *   are variant V.  By default variant files are left out; with a variant V
 *   requested, a component that has variant-V safetensors files or indexes
 *   uses only those, and one that has none uses its default files (as
 *   diffusers loads the non-variant weights of a component without that
 *   variant).  Variants apply to safetensors only: the fallback formats are
 *   summed whole, as in the reference (.gguf names carry dotted quant tags).
 *
 * What discovery refuses (exit 3 in the CLI; README, "What discovery
 * refuses"), so that a pipeline means one thing or nothing:
 *   - JSON side files above their size cap, checked before anything is
 *     read: 1 MiB for model_index.json and config.json, 64 MiB for a
 *     *.safetensors.index.json (real ones are a few kB and at most a few
 *     MB); nesting deeper than 32 levels, more than 2^21 JSON values,
 *     strings that decode to U+0000 and duplicate keys in any object.
 *     Each file is validated by json_lexer.c before cJSON parses it, so a
 *     failed parse can only be out of memory, reported as such; the value
 *     cap bounds the tree cJSON builds (about 80 bytes a value): a plan of
 *     an index at the cap peaks near 230 MB.  (A config.json whose text is
 *     broken only loses its labels, logged; over a cap it is refused.)
 *   - anything but a regular file (symbolic links followed) where a file
 *     is read: a FIFO never blocks discovery, a device is never opened (a
 *     component "folder" that is not a folder counts as missing, as in the
 *     reference, and a special file in a folder is not a weight);
 *   - a tensor name held by two files of one component (within the files
 *     it loads: an index's shards, or the folder's safetensors);
 *   - an index that disagrees with its shards' headers: a weight_map
 *     entry whose shard does not hold that tensor, a tensor of a named
 *     shard that weight_map does not map to that shard, one tensor mapped
 *     to two shards by two indexes;
 *   - component names (and library and class names) with control
 *     characters, or longer than NAME_MAX.
 *   A path that is a symbolic link loop, a name too long or without
 *   permission is HOIST_BAD_PATH.  Every name and path that comes from a
 *   file is shown through hoist__show in messages (one line, no terminal
 *   control).
 *
 * Inferred bytes: for safetensors, the data section of each file (which
 *   the strict reader checks equals the sum of end - begin over its
 *   tensors); else the sizes of the fallback files; else unknown.  Every
 *   safetensors header is read and validated (no tensor data): a bad
 *   header fails the whole discovery with the reader's status.
 *   With a target dtype (hoist_pipeline_options.dtype) floating tensors
 *   count at the target's size instead, as `hoist load --dtype` places them.
 *
 * Ownership: hoist_pipeline_open returns a pipeline that owns every string,
 * every path and every opened file; hoist_pipeline_close frees them.  An
 * open pipeline is immutable and may be read from several threads. */
#include "json_lexer.h"
#include "dtype.h"
#include "pipeline.h"
#include "safetensors.h" /* hoist__open_regular */
#include "text.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The caps on JSON side files (see the top of this file). */
#define HOIST_MODEL_INDEX_MAX_BYTES (UINT64_C(1) << 20)
#define HOIST_CONFIG_MAX_BYTES (UINT64_C(1) << 20)
#define HOIST_SHARD_INDEX_MAX_BYTES (UINT64_C(64) << 20)
#define HOIST_SIDE_JSON_MAX_DEPTH 32
#define HOIST_SIDE_JSON_MAX_VALUES ((size_t)1 << 21)

/* ---- Small helpers */

static bool ends_with(const char *s, size_t len, const char *suffix) {
  size_t n = strlen(suffix);
  return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* os.path.join(dir, name) for a relative name: one '/' between them. */
static char *path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  bool slash = a > 0 && dir[a - 1] != '/';
  char *out = malloc(a + (slash ? 1 : 0) + b + 1);
  if (out == NULL) return NULL;
  memcpy(out, dir, a);
  if (slash) out[a++] = '/';
  memcpy(out + a, name, b + 1);
  return out;
}

static int cmp_strp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A growable list of owned strings. */
typedef struct str_list {
  char **v;
  size_t n, cap;
} str_list;

static bool list_push(str_list *l, char *s) {
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

static void list_free(str_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* Sorts and removes duplicates. */
static void list_sort_unique(str_list *l) {
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

/* Whether s holds a C0 control character, DEL or a C1 control character
 * (U+0080..U+009F, UTF-8 C2 80..C2 9F): a name that would break a line or
 * drive a terminal wherever it is printed. */
static bool has_control(const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
    if (*c < 0x20 || *c == 0x7f || (c[0] == 0xC2 && c[1] >= 0x80 && c[1] < 0xA0)) return true;
  return false;
}

/* ---- A set of names, for the duplicate and agreement checks: open
 * addressing over pointers to the name field of the caller's items (so
 * that a name found leads back to its item), hashed as the reader hashes
 * tensor names.  Linear in the names, where sorting them took a second on
 * an index of half a million long, alike tensor names. */

typedef struct name_set {
  const char *const **slot;
  size_t mask;
} name_set;

/* Room for n names. */
static bool set_init(name_set *s, size_t n) {
  size_t cap = 16;
  while (cap / 2 < n) cap *= 2;
  s->slot = calloc(cap, sizeof *s->slot);
  s->mask = cap - 1;
  return s->slot != NULL;
}

static void set_free(name_set *s) {
  free(s->slot);
  memset(s, 0, sizeof *s);
}

/* The item already holding *name's name, or NULL after adding name. */
static const char *const *set_add(name_set *s, const char *const *name) {
  size_t h = hoist__hash_str(*name) & s->mask;
  for (; s->slot[h] != NULL; h = (h + 1) & s->mask)
    if (strcmp(*s->slot[h], *name) == 0) return s->slot[h];
  s->slot[h] = name;
  return NULL;
}

static const char *const *set_find(const name_set *s, const char *name) {
  for (size_t h = hoist__hash_str(name) & s->mask; s->slot[h] != NULL; h = (h + 1) & s->mask)
    if (strcmp(*s->slot[h], name) == 0) return s->slot[h];
  return NULL;
}

/* ---- JSON side files */

/* A kind of side file: its name in messages, its size cap, and the status
 * of a file that breaks a rule. */
typedef struct side_kind {
  const char *name;
  uint64_t max_bytes;
  int status;
} side_kind;

static const side_kind SIDE_MODEL_INDEX = {"model_index.json", HOIST_MODEL_INDEX_MAX_BYTES,
                                           HOIST_BAD_PIPELINE};
static const side_kind SIDE_CONFIG = {"config.json", HOIST_CONFIG_MAX_BYTES, HOIST_BAD_PIPELINE};
static const side_kind SIDE_SHARD_INDEX = {"a shard index", HOIST_SHARD_INDEX_MAX_BYTES,
                                           HOIST_BAD_INDEX};

/* Reads a whole side file after checking that it is a regular file within
 * its cap; *buf (NUL-terminated, owned by the caller) and *len. */
static int read_side_file(hoist_runtime *rt, const char *path, const side_kind *kind, char **buf,
                          size_t *len) {
  char pb[HOIST_SHOW_PATH];
  *buf = NULL;
  *len = 0;
  int fd;
  struct stat st;
  int rc = hoist__open_regular(rt, path, kind->status, &fd, &st);
  if (rc != HOIST_OK) return rc;
  if ((uint64_t)st.st_size > kind->max_bytes) {
    rc = hoist__fail(rt, kind->status,
                    "%s: %llu bytes, above the %llu MiB cap for %s (refused before parsing)",
                    hoist__show(path, pb, sizeof pb), (unsigned long long)st.st_size,
                    (unsigned long long)(kind->max_bytes >> 20), kind->name);
    goto fail;
  }
  size_t n = (size_t)st.st_size;
  char *b = malloc(n + 1);
  if (b == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory reading %zu bytes",
                    hoist__show(path, pb, sizeof pb), n);
    goto fail;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0)
        rc = hoist__fail(rt, HOIST_IO, "%s: %s", hoist__show(path, pb, sizeof pb), strerror(errno));
      else
        rc = hoist__fail(rt, HOIST_FILE_CHANGED, "%s: shrank while it was read (%zu of %zu bytes)",
                        hoist__show(path, pb, sizeof pb), got, n);
      free(b);
      goto fail;
    }
    got += (size_t)r;
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
fail:
  close(fd);
  return rc;
}

/* The cJSON member whose key field is *key. */
static const cJSON *member_of(const char *const *key) {
  return (const cJSON *)(const void *)((const char *)key - offsetof(cJSON, string));
}

/* Refuses duplicate keys in every object of the tree (where: the key of
 * the member holding v, NULL at the top): Python's json keeps the last of
 * them, cJSON every one, so such a file means nothing certain.  The tree is
 * at most HOIST_SIDE_JSON_MAX_DEPTH deep, which bounds the recursion. */
static int check_unique_keys(hoist_runtime *rt, const char *shown_path, int status,
                             const cJSON *v, const char *where) {
  if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return HOIST_OK;
  int rc = HOIST_OK;
  if (cJSON_IsObject(v) && v->child != NULL && v->child->next != NULL) {
    size_t n = 0;
    for (const cJSON *m = v->child; m != NULL; m = m->next) n++;
    name_set set;
    if (!set_init(&set, n))
      return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory checking keys", shown_path);
    for (const cJSON *m = v->child; m != NULL && rc == HOIST_OK; m = m->next) {
      const char *const *had = set_add(&set, (const char *const *)&m->string);
      if (had == NULL) continue;
      const cJSON *first = member_of(had);
      char kb[HOIST_SHOW_NAME], wb[HOIST_SHOW_NAME], ab[HOIST_SHOW_NAME], bb[HOIST_SHOW_NAME];
      char in[HOIST_SHOW_NAME + 16] = "", values[2 * HOIST_SHOW_NAME + 24] = "";
      if (where != NULL) snprintf(in, sizeof in, " in \"%s\"", hoist__show(where, wb, sizeof wb));
      if (cJSON_IsString(first) && cJSON_IsString(m))
        snprintf(values, sizeof values, " (values '%s' and '%s')",
                 hoist__show(first->valuestring, ab, sizeof ab),
                 hoist__show(m->valuestring, bb, sizeof bb));
      rc = hoist__fail(rt, status, "%s: duplicate key '%s'%s%s", shown_path,
                      hoist__show(m->string, kb, sizeof kb), in, values);
    }
    set_free(&set);
  }
  for (const cJSON *m = v->child; m != NULL && rc == HOIST_OK; m = m->next)
    rc = check_unique_keys(rt, shown_path, status, m, cJSON_IsObject(v) ? m->string : where);
  return rc;
}

/* Reads and parses a JSON side file under the rules at the top of this
 * file.  A broken rule is kind->status, except that a file that is not
 * there is HOIST_NOT_FOUND, an unusable path HOIST_BAD_PATH, a read error
 * HOIST_IO and out of memory HOIST_NO_MEMORY.  *content_error (may be
 * NULL) tells a file whose text is wrong (not JSON, bad UTF-8, duplicate
 * keys) from one refused for what it is (type, caps) or an I/O or memory
 * failure.  *out is owned by the caller. */
static int read_json(hoist_runtime *rt, const char *path, const side_kind *kind, cJSON **out,
                     bool *content_error) {
  char pb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(path, pb, sizeof pb);
  *out = NULL;
  if (content_error != NULL) *content_error = false;
  char *buf = NULL;
  size_t len = 0;
  int rc = read_side_file(rt, path, kind, &buf, &len);
  if (rc != HOIST_OK) return rc;
  size_t values = 0;
  hoist__json_error jerr;
  int lrc = hoist__json_check(buf, len, HOIST_SIDE_JSON_MAX_DEPTH, &values, &jerr);
  bool bad_text = false;
  if (lrc == HOIST_HEADER_UTF8) {
    bad_text = true;
    rc = hoist__fail(rt, kind->status, "%s: not valid UTF-8 at byte %zu", shown, jerr.offset);
  } else if (lrc != HOIST_OK && jerr.depth_limit != 0) {
    rc = hoist__fail(rt, kind->status,
                    "%s: nesting deeper than %zu levels at byte %zu, the cap for JSON side files",
                    shown, jerr.depth_limit, jerr.offset);
  } else if (lrc != HOIST_OK) {
    bad_text = true;
    rc = hoist__fail(rt, kind->status, "%s: not valid JSON: %s at byte %zu", shown, jerr.what,
                    jerr.offset);
  } else if (values > HOIST_SIDE_JSON_MAX_VALUES) {
    rc = hoist__fail(rt, kind->status, "%s: %zu JSON values, above the cap of %zu for %s", shown,
                    values, HOIST_SIDE_JSON_MAX_VALUES, kind->name);
  }
  if (rc != HOIST_OK) goto fail;
  /* The text passed the strict validator, which accepts nothing cJSON
   * refuses: a NULL here can only be an allocation that failed. */
  cJSON *root = cJSON_ParseWithLengthOpts(buf, len, NULL, 0);
  if (root == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory parsing %zu bytes of JSON", shown, len);
    goto fail;
  }
  rc = check_unique_keys(rt, shown, kind->status, root, NULL);
  if (rc != HOIST_OK) {
    bad_text = rc != HOIST_NO_MEMORY;
    cJSON_Delete(root);
    goto fail;
  }
  *out = root;
fail:
  if (content_error != NULL) *content_error = bad_text;
  free(buf);
  return rc;
}

/* ---- File names */

typedef enum file_kind {
  KIND_OTHER,
  KIND_INDEX,        /* *.safetensors.index.json */
  KIND_INDEX_VARIANT,/* *.safetensors.index.<V>.json */
  KIND_ST,           /* *.safetensors, not a variant */
  KIND_ST_VARIANT,   /* *.<V>.safetensors, *.<V>-NNNNN-of-NNNNN.safetensors */
  KIND_FALLBACK      /* .bin .pt .pth .ckpt .gguf */
} file_kind;

/* Whether s[0..len) ends in "-<digits>-of-<digits>"; *cut gets its start. */
static bool shard_suffix(const char *s, size_t len, size_t *cut) {
  size_t i = len, d2 = 0, d1 = 0;
  while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--, d2++;
  if (d2 == 0 || i < 4 || memcmp(s + i - 4, "-of-", 4) != 0) return false;
  i -= 4;
  while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--, d1++;
  if (d1 == 0 || i == 0 || s[i - 1] != '-') return false;
  *cut = i - 1;
  return true;
}

/* Classifies a directory entry; for variants, *v and *vlen get the variant. */
static file_kind classify(const char *name, const char **v, size_t *vlen) {
  size_t len = strlen(name);
  *v = NULL;
  *vlen = 0;
  if (ends_with(name, len, ".safetensors.index.json")) return KIND_INDEX;
  if (ends_with(name, len, ".json")) {
    size_t s = len - 5; /* without ".json" */
    const char *dot = memrchr(name, '.', s);
    static const char mid[] = ".safetensors.index";
    if (dot != NULL && (size_t)(dot - name) + 1 < s &&
        ends_with(name, (size_t)(dot - name), mid) &&
        (size_t)(dot - name) > sizeof mid - 1) {
      *v = dot + 1;
      *vlen = s - (size_t)(dot - name) - 1;
      return KIND_INDEX_VARIANT;
    }
    return KIND_OTHER;
  }
  if (ends_with(name, len, ".safetensors")) {
    size_t stem = len - 12;
    const char *dot = memrchr(name, '.', stem);
    if (dot == NULL) return KIND_ST;
    size_t b = (size_t)(dot - name) + 1, e = stem, cut;
    if (shard_suffix(name + b, e - b, &cut)) e = b + cut;
    if (e == b) return KIND_ST; /* "name.-00001-of-00002": no variant text */
    *v = name + b;
    *vlen = e - b;
    return KIND_ST_VARIANT;
  }
  static const char *const fallback[] = {".bin", ".pt", ".pth", ".ckpt", ".gguf"};
  for (size_t i = 0; i < sizeof fallback / sizeof fallback[0]; i++)
    if (ends_with(name, len, fallback[i])) return KIND_FALLBACK;
  return KIND_OTHER;
}

/* A shard name from an index must stay in the component's folder. */
static bool shard_name_ok(const char *s) {
  if (s[0] == '\0' || strcmp(s, ".") == 0 || strncmp(s, "..", 2) == 0) return false;
  return strchr(s, '/') == NULL && strchr(s, '\\') == NULL;
}

/* ---- One component folder */

typedef struct folder_scan {
  str_list index, index_v, st, st_v, fallback;
  uint64_t fallback_bytes;
} folder_scan;

static void scan_free(folder_scan *s) {
  list_free(&s->index);
  list_free(&s->index_v);
  list_free(&s->st);
  list_free(&s->st_v);
  list_free(&s->fallback);
}

/* Lists the weight-related regular files of folder (full paths), keeping
 * variant files only for `variant`. */
static int scan_folder(hoist_runtime *rt, const char *folder, const char *variant,
                       folder_scan *s) {
  char pb[HOIST_SHOW_PATH];
  DIR *d = opendir(folder);
  if (d == NULL) {
    int e = errno;
    return hoist__fail(rt, hoist__path_status(e), "%s: cannot list: %s",
                      hoist__show(folder, pb, sizeof pb), strerror(e));
  }
  int rc = HOIST_OK;
  size_t var_len = variant != NULL ? strlen(variant) : 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      if (errno != 0)
        rc = hoist__fail(rt, HOIST_IO, "%s: %s", hoist__show(folder, pb, sizeof pb), strerror(errno));
      break;
    }
    if (de->d_name[0] == '.') continue;
    const char *v;
    size_t vlen;
    file_kind k = classify(de->d_name, &v, &vlen);
    if (k == KIND_OTHER) continue;
    if ((k == KIND_INDEX_VARIANT || k == KIND_ST_VARIANT) &&
        (variant == NULL || vlen != var_len || memcmp(v, variant, vlen) != 0))
      continue;
    char *full = path_join(folder, de->d_name);
    if (full == NULL) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", hoist__show(folder, pb, sizeof pb));
      break;
    }
    struct stat st;
    /* stat, not lstat: symlinks into an HF cache's blobs are the norm.  A
     * dangling link or a folder named like a weight file is not a weight. */
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(full);
      continue;
    }
    str_list *to = k == KIND_INDEX           ? &s->index
                   : k == KIND_INDEX_VARIANT ? &s->index_v
                   : k == KIND_ST            ? &s->st
                   : k == KIND_ST_VARIANT    ? &s->st_v
                                             : &s->fallback;
    if (k == KIND_FALLBACK && !hoist__add_u64(s->fallback_bytes, (uint64_t)st.st_size,
                                            &s->fallback_bytes)) {
      free(full);
      rc = hoist__fail(rt, HOIST_OVERFLOW, "%s: weight file sizes overflow 64 bits",
                      hoist__show(folder, pb, sizeof pb));
      break;
    }
    if (!list_push(to, full)) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", hoist__show(folder, pb, sizeof pb));
      break;
    }
  }
  closedir(d);
  if (rc != HOIST_OK) return rc;
  list_sort_unique(&s->index);
  list_sort_unique(&s->index_v);
  list_sort_unique(&s->st);
  list_sort_unique(&s->st_v);
  list_sort_unique(&s->fallback);
  return HOIST_OK;
}

/* ---- Shard indexes and the files they name */

/* One weight_map entry: a tensor and its shard (strings owned by the
 * index's cJSON tree) and the slot of the index that holds it.  tensor
 * comes first: the name set of a shard_map points at it. */
typedef struct map_entry {
  const char *tensor;
  const char *shard;
  size_t index;
} map_entry;

/* The weight_maps of a component's indexes, merged. */
typedef struct shard_map {
  const str_list *indexes; /* the index files, by slot */
  cJSON **roots;           /* their parsed trees, by slot */
  map_entry *v;            /* every entry, in file order */
  size_t n, cap;
  name_set by_tensor;      /* each tensor once: its first entry */
} shard_map;

static void shard_map_free(shard_map *m) {
  if (m->roots != NULL)
    for (size_t i = 0; i < m->indexes->n; i++) cJSON_Delete(m->roots[i]);
  free(m->roots);
  free(m->v);
  set_free(&m->by_tensor);
  memset(m, 0, sizeof *m);
}

static bool map_push(shard_map *m, const char *tensor, const char *shard, size_t index) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    map_entry *v = realloc(m->v, cap * sizeof *v);
    if (v == NULL) return false;
    m->v = v;
    m->cap = cap;
  }
  m->v[m->n++] = (map_entry){tensor, shard, index};
  return true;
}

/* Adds the entries of the index at slot i of m->indexes to m. */
static int read_index(hoist_runtime *rt, shard_map *m, size_t i) {
  const char *index_path = m->indexes->v[i];
  char pb[HOIST_SHOW_PATH], nb[HOIST_SHOW_NAME];
  const char *shown = hoist__show(index_path, pb, sizeof pb);
  int rc = read_json(rt, index_path, &SIDE_SHARD_INDEX, &m->roots[i], NULL);
  if (rc != HOIST_OK) return rc;
  const cJSON *root = m->roots[i];
  if (!cJSON_IsObject(root))
    return hoist__fail(rt, HOIST_BAD_INDEX, "%s: not a JSON object", shown);
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(map))
    return hoist__fail(rt, HOIST_BAD_INDEX, "%s: \"weight_map\" is missing or not an object", shown);
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
static int add_shard(hoist_runtime *rt, const char *folder, const shard_map *m,
                     const map_entry *e, str_list *shards) {
  char pb[HOIST_SHOW_PATH], nb[HOIST_SHOW_NAME], fb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(m->indexes->v[e->index], pb, sizeof pb);
  if (!shard_name_ok(e->shard))
    return hoist__fail(rt, HOIST_BAD_INDEX,
                      "%s: shard '%s' is not a plain file name in the component folder "
                      "(path separators and '..' are not allowed)",
                      shown, hoist__show(e->shard, nb, sizeof nb));
  char *full = path_join(folder, e->shard);
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
  return list_push(shards, full) ? HOIST_OK
                                 : hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", shown);
}

/* Reads every index of a component into m, and the shards they name into
 * shards (full paths, sorted).  Duplicate keys within one weight_map were
 * refused with its file; two indexes may repeat an entry, but not map one
 * tensor to two shards. */
static int read_indexes(hoist_runtime *rt, const char *folder, const str_list *indexes,
                        shard_map *m, str_list *shards) {
  m->indexes = indexes;
  m->roots = calloc(indexes->n ? indexes->n : 1, sizeof *m->roots);
  if (m->roots == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < indexes->n; i++) {
    int rc = read_index(rt, m, i);
    if (rc != HOIST_OK) return rc;
  }
  name_set shard_names = {0};
  if (!set_init(&m->by_tensor, m->n) || !set_init(&shard_names, m->n)) {
    set_free(&shard_names);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory reading shard indexes");
  }
  int rc = HOIST_OK;
  for (size_t i = 0; i < m->n && rc == HOIST_OK; i++) {
    const map_entry *e = &m->v[i];
    /* Entries of one shard mostly come together: skip the set for them. */
    bool same = i > 0 && strcmp(e->shard, m->v[i - 1].shard) == 0;
    if (!same && set_add(&shard_names, &e->shard) == NULL) rc = add_shard(rt, folder, m, e, shards);
    const map_entry *had = (const map_entry *)(const void *)set_add(&m->by_tensor, &e->tensor);
    if (rc != HOIST_OK || had == NULL || strcmp(had->shard, e->shard) == 0) continue;
    char ia[HOIST_SHOW_PATH], ib[HOIST_SHOW_PATH], tb[HOIST_SHOW_NAME], sa[HOIST_SHOW_NAME],
        sb[HOIST_SHOW_NAME];
    rc = hoist__fail(rt, HOIST_BAD_INDEX, "%s: tensor '%s' is mapped to '%s', but to '%s' by %s",
                    hoist__show(indexes->v[had->index], ia, sizeof ia),
                    hoist__show(e->tensor, tb, sizeof tb), hoist__show(had->shard, sa, sizeof sa),
                    hoist__show(e->shard, sb, sizeof sb), hoist__show(indexes->v[e->index], ib, sizeof ib));
  }
  set_free(&shard_names);
  list_sort_unique(shards);
  return rc;
}

/* One tensor of one of the component's files, for the uniqueness check
 * (name first: the name set points at it). */
typedef struct tensor_claim {
  const char *name;
  size_t file;
} tensor_claim;

/* Within a component every tensor name is held by one file: otherwise
 * which bytes a lookup returns would depend on the file order.  (For the
 * shards of an index, check_index_agreement implies it.) */
static int check_unique_tensors(hoist_runtime *rt, const hoist__component *c) {
  size_t n = 0;
  for (size_t i = 0; i < c->st_count; i++) n += hoist_file_tensor_count(c->st[i]);
  if (c->st_count < 2 || n < 2) return HOIST_OK;
  tensor_claim *v = malloc(n * sizeof *v);
  name_set set = {0};
  if (v == NULL || !set_init(&set, n)) {
    free(v);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory checking tensor names");
  }
  n = 0;
  for (size_t i = 0; i < c->st_count; i++)
    for (size_t t = 0; t < hoist_file_tensor_count(c->st[i]); t++)
      v[n++] = (tensor_claim){hoist_file_tensor(c->st[i], t)->name, i};
  int rc = HOIST_OK;
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) {
    const tensor_claim *had = (const tensor_claim *)(const void *)set_add(&set, &v[i].name);
    if (had == NULL) continue;
    char nb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME], ab[HOIST_SHOW_PATH], bb[HOIST_SHOW_PATH];
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE, "%s: tensor '%s' is in two files, %s and %s",
                    hoist__show(c->name, nb, sizeof nb), hoist__show(v[i].name, tb, sizeof tb),
                    hoist__show(hoist_file_path(c->st[had->file]), ab, sizeof ab),
                    hoist__show(hoist_file_path(c->st[v[i].file]), bb, sizeof bb));
  }
  set_free(&set);
  free(v);
  return rc;
}

/* The length of path_join(dir, ""): where a shard's name starts in its
 * full path. */
static size_t joined_prefix_len(const char *dir) {
  size_t a = strlen(dir);
  return a + (a > 0 && dir[a - 1] != '/' ? 1 : 0);
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

/* An index agrees with its shards' headers both ways: every weight_map
 * entry's shard holds that tensor, and every tensor of a named shard is
 * mapped to that shard.  As weight_map maps a tensor to one shard, this
 * also makes tensor names unique across the shards: a tensor in two of
 * them is refused naming both. */
static int check_index_agreement(hoist_runtime *rt, const hoist__component *c, const shard_map *m) {
  char ib[HOIST_SHOW_PATH], tb[HOIST_SHOW_NAME], sb[HOIST_SHOW_NAME];
  size_t prefix = joined_prefix_len(c->path);
  for (size_t i = 0; i < m->n; i++) {
    const map_entry *e = &m->v[i];
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
      const map_entry *e = (const map_entry *)(const void *)set_find(&m->by_tensor, name);
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

int hoist__component_count_bytes(hoist_runtime *rt, hoist_dtype target, hoist__component *c) {
  char pb[HOIST_SHOW_PATH];
  uint64_t total = 0;
  size_t tensors = 0;
  for (size_t i = 0; i < c->st_count; i++) {
    uint64_t bytes = hoist_file_data_bytes(c->st[i]);
    if (target != HOIST_DTYPE_KEEP) {
      bytes = 0;
      for (size_t t = 0; t < hoist_file_tensor_count(c->st[i]); t++) {
        hoist_dtype to;
        uint64_t tb = 0;
        int rc = hoist__tensor_target(rt, c->name, hoist_file_tensor(c->st[i], t), target, &to, &tb);
        if (rc != HOIST_OK) return rc;
        if (!hoist__add_u64(bytes, tb, &bytes))
          return hoist__fail(rt, HOIST_OVERFLOW, "%s: data sizes overflow 64 bits",
                            hoist__show(c->path, pb, sizeof pb));
      }
    }
    if (!hoist__add_u64(total, bytes, &total))
      return hoist__fail(rt, HOIST_OVERFLOW, "%s: data sizes overflow 64 bits",
                        hoist__show(c->path, pb, sizeof pb));
    tensors += hoist_file_tensor_count(c->st[i]);
  }
  c->info.has_size = 1;
  c->info.inferred_bytes = total;
  c->info.tensor_count = tensors;
  return HOIST_OK;
}

/* Finds the weight files of c (whose path is set), opens its safetensors,
 * checks that they agree with its indexes and fills its size fields.  A
 * folder that is not there leaves the size unknown.  target:
 * HOIST_DTYPE_KEEP, or the dtype floating tensors are counted in. */
static int discover_component(hoist_runtime *rt, const char *variant, hoist_dtype target,
                              hoist__component *c) {
  char pb[HOIST_SHOW_PATH];
  struct stat st;
  if (stat(c->path, &st) != 0) {
    int e = errno;
    if (e != ENOENT && e != ENOTDIR)
      return hoist__fail(rt, hoist__path_status(e), "%s: component folder: %s",
                        hoist__show(c->path, pb, sizeof pb), strerror(e));
    c->info.folder_missing = 1; /* unknown size, as in the reference */
    return HOIST_OK;
  }
  if (!S_ISDIR(st.st_mode)) {
    c->info.folder_missing = 1; /* a file where the folder should be */
    return HOIST_OK;
  }
  folder_scan s = {0};
  str_list files = {0};
  shard_map map = {0};
  int rc = scan_folder(rt, c->path, variant, &s);
  if (rc != HOIST_OK) goto fail;
  bool use_variant = variant != NULL && (s.index_v.n > 0 || s.st_v.n > 0);
  const str_list *indexes = use_variant ? &s.index_v : &s.index;
  str_list *plain = use_variant ? &s.st_v : &s.st;
  rc = read_indexes(rt, c->path, indexes, &map, &files);
  if (rc != HOIST_OK) goto fail;
  bool indexed = files.n > 0;
  if (!indexed) {
    files = *plain; /* take the list over */
    memset(plain, 0, sizeof *plain);
  }
  if (files.n > 0) {
    c->st = calloc(files.n, sizeof *c->st);
    if (c->st == NULL) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", hoist__show(c->path, pb, sizeof pb));
      goto fail;
    }
    for (size_t i = 0; i < files.n; i++) {
      rc = hoist_file_open(rt, files.v[i], &c->st[i]);
      if (rc != HOIST_OK) {
        /* The reader names the file in its detail; make sure of it. */
        char detail[HOIST_ERROR_MAX];
        snprintf(detail, sizeof detail, "%s", hoist_last_error(rt));
        hoist__show(files.v[i], pb, sizeof pb);
        if (strstr(detail, pb) == NULL)
          hoist__fail(rt, rc, "%s: %s", pb, detail[0] ? detail : hoist_strerror(rc));
        goto fail;
      }
      c->st_count++;
    }
    rc = indexed ? check_index_agreement(rt, c, &map) : check_unique_tensors(rt, c);
    if (rc != HOIST_OK) goto fail;
    rc = hoist__component_count_bytes(rt, target, c);
    if (rc != HOIST_OK) goto fail;
  } else if (s.fallback.n > 0) {
    files = s.fallback;
    memset(&s.fallback, 0, sizeof s.fallback);
    c->info.has_size = 1;
    c->info.inferred_bytes = s.fallback_bytes;
  }
  c->files = files.v;
  c->file_count = files.n;
  memset(&files, 0, sizeof files);
fail:
  shard_map_free(&map);
  list_free(&files);
  scan_free(&s);
  return rc;
}

/* ---- Pipeline */

static void component_free(hoist__component *c) {
  for (size_t i = 0; i < c->st_count; i++) hoist_file_close(c->st[i]);
  free(c->st);
  for (size_t i = 0; i < c->file_count; i++) free(c->files[i]);
  free(c->files);
  free(c->name);
  free(c->library);
  free(c->class_name);
  free(c->path);
  free(c->vp_text);
}

void hoist_pipeline_close(hoist_pipeline *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->count; i++) component_free(&p->components[i]);
  free(p->components);
  free(p->ordered);
  free(p->path);
  free(p);
}

/* Why a model_index.json key cannot be a component's folder name, or NULL
 * when it can: it must name a folder inside the pipeline, fit a file
 * name, and print as one line. */
static const char *component_name_problem(const char *s) {
  if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/') != NULL ||
      strchr(s, '\\') != NULL)
    return "is not a folder name inside the pipeline";
  if (strlen(s) > NAME_MAX) return "is longer than a file name may be (NAME_MAX, 255 bytes)";
  if (has_control(s)) return "contains control characters";
  return NULL;
}

typedef enum entry_kind { ENTRY_CONFIG, ENTRY_ABSENT, ENTRY_COMPONENT } entry_kind;

static entry_kind classify_entry(const cJSON *e) {
  if (e->string == NULL || e->string[0] == '_') return ENTRY_CONFIG;
  if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2) return ENTRY_CONFIG;
  const cJSON *lib = e->child, *cls = lib->next;
  if (!(cJSON_IsString(cls) || cJSON_IsNull(cls))) return ENTRY_CONFIG;
  if (cJSON_IsNull(lib)) return ENTRY_ABSENT;
  if (cJSON_IsString(lib)) return ENTRY_COMPONENT;
  return ENTRY_CONFIG;
}

static int strdup_or_fail(hoist_runtime *rt, const char *s, char **out) {
  *out = NULL;
  if (s == NULL) return HOIST_OK;
  *out = hoist__strdup(s);
  return *out != NULL ? HOIST_OK : hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
}

/* Checks one component entry of model_index.json (e: its key and
 * [library, class]) before it is taken. */
static int check_component_entry(hoist_runtime *rt, const char *shown_path, const cJSON *e) {
  char nb[HOIST_SHOW_NAME], vb[HOIST_SHOW_NAME];
  const char *why = component_name_problem(e->string);
  if (why != NULL)
    return hoist__fail(rt, HOIST_BAD_PIPELINE, "%s: component name '%s' %s", shown_path,
                      hoist__show(e->string, nb, sizeof nb), why);
  const cJSON *lib = e->child, *cls = lib->next;
  const char *label = has_control(lib->valuestring) ? lib->valuestring
                      : cJSON_IsString(cls) && has_control(cls->valuestring) ? cls->valuestring
                                                                             : NULL;
  if (label != NULL)
    return hoist__fail(rt, HOIST_BAD_PIPELINE,
                      "%s: component '%s': library or class name '%s' contains control characters",
                      shown_path, hoist__show(e->string, nb, sizeof nb),
                      hoist__show(label, vb, sizeof vb));
  return HOIST_OK;
}

static int from_model_index(hoist_runtime *rt, hoist_pipeline *p, const char *index_path) {
  char pb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(index_path, pb, sizeof pb);
  cJSON *root = NULL;
  /* Duplicate keys are refused by read_json, here as in every side file. */
  int rc = read_json(rt, index_path, &SIDE_MODEL_INDEX, &root, NULL);
  if (rc != HOIST_OK) return rc;
  if (!cJSON_IsObject(root)) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE, "%s: not a JSON object", shown);
    goto fail;
  }
  size_t ncomp = 0;
  for (const cJSON *e = root->child; e != NULL; e = e->next)
    if (classify_entry(e) == ENTRY_COMPONENT) ncomp++;
  if (ncomp == 0) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE,
                    "%s: names no component (no key maps to [library, class])", shown);
    goto fail;
  }
  p->components = calloc(ncomp, sizeof *p->components);
  if (p->components == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", shown);
    goto fail;
  }
  uint32_t key_pos = 0;
  for (const cJSON *e = root->child; e != NULL; e = e->next, key_pos++) {
    if (classify_entry(e) != ENTRY_COMPONENT) continue;
    if ((rc = check_component_entry(rt, shown, e)) != HOIST_OK) goto fail;
    hoist__component *c = &p->components[p->count++];
    c->info.index = key_pos;
    const cJSON *cls = e->child->next;
    if ((rc = strdup_or_fail(rt, e->string, &c->name)) != HOIST_OK ||
        (rc = strdup_or_fail(rt, e->child->valuestring, &c->library)) != HOIST_OK ||
        (rc = strdup_or_fail(rt, cJSON_IsString(cls) ? cls->valuestring : NULL,
                             &c->class_name)) != HOIST_OK)
      goto fail;
    c->path = path_join(p->path, c->name);
    if (c->path == NULL) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
      goto fail;
    }
  }
fail:
  cJSON_Delete(root);
  return rc;
}

/* library/class of a plain model folder from its config.json; a missing
 * config leaves them NULL (they only label the plan), and so does one
 * whose text is broken (logged).  A config.json that is not a regular
 * file or breaks a cap is refused like every side file. */
static int plain_model_labels(hoist_runtime *rt, hoist__component *c) {
  char *cfg_path = path_join(c->path, "config.json");
  if (cfg_path == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  struct stat st;
  int rc = HOIST_OK;
  cJSON *root = NULL;
  if (stat(cfg_path, &st) != 0 && errno == ENOENT) goto fail;
  bool broken = false;
  rc = read_json(rt, cfg_path, &SIDE_CONFIG, &root, &broken);
  if (broken) {
    hoist__log(rt, HOIST_LOG_WARN, "%s", hoist_last_error(rt));
    rc = HOIST_OK;
  }
  if (rc != HOIST_OK || !cJSON_IsObject(root)) goto fail;
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "_diffusers_version");
  const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  const char *library = NULL, *class_name = NULL;
  if (ver != NULL) {
    library = "diffusers";
    class_name = cJSON_IsString(cls) ? cls->valuestring : NULL;
  } else if (cJSON_IsArray(arch) && cJSON_IsString(arch->child)) {
    library = "transformers";
    class_name = arch->child->valuestring;
  }
  if (class_name != NULL && has_control(class_name)) {
    char pb[HOIST_SHOW_PATH];
    hoist__log(rt, HOIST_LOG_WARN, "%s: class name with control characters; not used",
              hoist__show(cfg_path, pb, sizeof pb));
    library = class_name = NULL;
  }
  if ((rc = strdup_or_fail(rt, library, &c->library)) != HOIST_OK ||
      (rc = strdup_or_fail(rt, class_name, &c->class_name)) != HOIST_OK)
    goto fail;
fail:
  cJSON_Delete(root);
  free(cfg_path);
  return rc;
}

/* The folder's own name: the last path element, or the real path's when
 * that is "." or "..". */
static char *folder_name(const char *path) {
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') len--;
  const char *start = memrchr(path, '/', len);
  start = start != NULL ? start + 1 : path;
  size_t n = len - (size_t)(start - path);
  if (n == 0 || (n == 1 && start[0] == '.') || (n == 2 && start[0] == '.' && start[1] == '.') ||
      (n == 1 && start[0] == '/')) {
    char *real = realpath(path, NULL);
    if (real == NULL) return NULL;
    const char *b = strrchr(real, '/');
    char *out = hoist__strdup(b != NULL && b[1] != '\0' ? b + 1 : real);
    free(real);
    return out;
  }
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  memcpy(out, start, n);
  out[n] = '\0';
  return out;
}

static int plain_model(hoist_runtime *rt, hoist_pipeline *p) {
  p->components = calloc(1, sizeof *p->components);
  if (p->components == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  p->count = 1;
  hoist__component *c = &p->components[0];
  c->name = folder_name(p->path);
  c->path = hoist__strdup(p->path);
  if (c->name == NULL || c->path == NULL) {
    char pb[HOIST_SHOW_PATH];
    return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory (or no real path)",
                      hoist__show(p->path, pb, sizeof pb));
  }
  return plain_model_labels(rt, c);
}

int hoist_pipeline_open(hoist_runtime *rt, const char *path, const hoist_pipeline_options *opts,
                        hoist_pipeline **out) {
  if (out == NULL || path == NULL)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "hoist_pipeline_open: NULL path or out");
  *out = NULL;
  hoist_pipeline_options defaults = HOIST_PIPELINE_OPTIONS_INIT;
  if (opts == NULL) opts = &defaults;
  if (opts->struct_size != sizeof(hoist_pipeline_options))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "hoist_pipeline_options.struct_size is %u, expected %zu "
                      "(use HOIST_PIPELINE_OPTIONS_INIT)",
                      opts->struct_size, sizeof(hoist_pipeline_options));
  char pb[HOIST_SHOW_PATH];
  const char *variant = opts->variant;
  if (variant != NULL && (variant[0] == '\0' || strpbrk(variant, "./\\") != NULL))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "variant '%s' is not a plain name (like fp16 or bf16)",
                      hoist__show(variant, pb, sizeof pb));

  hoist_dtype target = HOIST_DTYPE_KEEP;
  if (opts->dtype != NULL && opts->dtype[0] != '\0') {
    int prc = hoist__dtype_target_parse(rt, "dtype", opts->dtype, strlen(opts->dtype), &target);
    if (prc != HOIST_OK) return prc;
  }

  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    return hoist__fail(rt, hoist__path_status(e), "%s: %s", hoist__show(path, pb, sizeof pb),
                      strerror(e));
  }
  const bool single_file = S_ISREG(st.st_mode);
  if (!S_ISDIR(st.st_mode) && !single_file)
    return hoist__fail(rt, HOIST_BAD_PIPELINE,
                      "%s: not a folder or a file (a pipeline is a folder with model_index.json, "
                      "a folder of weights, or one .safetensors file)",
                      hoist__show(path, pb, sizeof pb));

  int rc = HOIST_OK;
  char *index_path = NULL;
  hoist_pipeline *p = calloc(1, sizeof *p);
  if (p == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  p->path = hoist__strdup(path);
  index_path = path_join(path, "model_index.json");
  if (p->path == NULL || index_path == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
    goto fail;
  }
  bool has_index = !single_file && (lstat(index_path, &st) == 0 || errno != ENOENT);
  if (single_file) {
    rc = hoist__single_file_layout(rt, p);
  } else if (has_index) {
    rc = from_model_index(rt, p, index_path);
  } else {
    rc = plain_model(rt, p);
  }
  if (rc != HOIST_OK) goto fail;

  for (size_t i = 0; i < p->count; i++) {
    hoist__component *c = &p->components[i];
    c->info.name = c->name;
    c->info.load_name = c->name;
    rc = c->single_file ? hoist__discover_file(rt, target, c)
                        : discover_component(rt, variant, target, c);
    if (rc != HOIST_OK) goto fail;
    c->info.library = c->library;
    c->info.class_name = c->class_name;
    c->info.path = c->path;
    c->info.file_count = c->file_count;
    c->info.files = (const char *const *)c->files;
    c->info.risk_rank = hoist__component_risk_rank(c->name);
    size_t tsize = strlen(c->name) + 2;
    c->vp_text = malloc(tsize);
    if (c->vp_text == NULL) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
      goto fail;
    }
    hoist__component_variant_priority(c->name, &c->info.variant_priority, c->vp_text, tsize);
    c->info.variant_priority_text = c->vp_text;
    if (c->info.folder_missing) {
      char nb[HOIST_SHOW_NAME];
      hoist__log(rt, HOIST_LOG_INFO, "%s: component folder %s is missing; its size is unknown",
                hoist__show(c->name, nb, sizeof nb), hoist__show(c->path, pb, sizeof pb));
    }
  }
  if (!has_index && p->components[0].file_count == 0) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE,
                    "%s: no model_index.json and no weight files (*.safetensors, "
                    "*.safetensors.index.json, .bin, .pt, .pth, .ckpt, .gguf)",
                    hoist__show(path, pb, sizeof pb));
    goto fail;
  }

  p->ordered = malloc(p->count * sizeof *p->ordered);
  if (p->ordered == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < p->count; i++) p->ordered[i] = &p->components[i].info;
  hoist__component_sort(p->ordered, p->count);
  for (size_t i = 0; i < p->count; i++)
    p->components[hoist__pipeline_slot(p, p->ordered[i])].info.position = i;

  free(index_path);
  *out = p;
  return HOIST_OK;
fail:
  free(index_path);
  hoist_pipeline_close(p);
  return rc;
}

const char *hoist_pipeline_path(const hoist_pipeline *p) { return p->path; }
size_t hoist_pipeline_component_count(const hoist_pipeline *p) { return p->count; }

const hoist_component_info *hoist_pipeline_component(const hoist_pipeline *p, size_t i) {
  return i < p->count ? &p->components[i].info : NULL;
}

const hoist_component_info *hoist_pipeline_ordered(const hoist_pipeline *p, size_t position) {
  return position < p->count ? p->ordered[position] : NULL;
}

size_t hoist__pipeline_slot(const hoist_pipeline *p, const hoist_component_info *info) {
  for (size_t i = 0; i < p->count; i++)
    if (&p->components[i].info == info) return i;
  return SIZE_MAX;
}

size_t hoist__pipeline_safetensors(const hoist_pipeline *p, size_t index_order_i,
                                  hoist_file *const **files) {
  if (index_order_i >= p->count || p->components[index_order_i].st_count == 0) {
    *files = NULL;
    return 0;
  }
  *files = p->components[index_order_i].st;
  return p->components[index_order_i].st_count;
}
