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
 *     counting every key (_class_name included), as issue 3 and hoist.h
 *     define it.  Only the relative order of indexes matters to the sort,
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
#include "load.h" /* target dtypes (hoist__tensor_target) */
#include "pipeline.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* model_index.json, config.json and shard indexes are small; a file above
 * this is not one. */
#define HOIST_JSON_MAX_BYTES ((uint64_t)256 << 20)

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
  return strcmp(*(char *const *)a, *(char *const *)b);
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

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
 * Returns the offset of the first bad byte, or len when all is well. */
static size_t utf8_check(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (len - i <= n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k <= n; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    i += n + 1;
  }
  return len;
}

/* Reads and parses a JSON file.  Every failure is recorded with `status`
 * (HOIST_BAD_PIPELINE or HOIST_BAD_INDEX) except I/O errors (HOIST_IO) and
 * a missing file (HOIST_NOT_FOUND).  *out is owned by the caller. */
static int read_json(hoist_runtime *rt, const char *path, int status, cJSON **out) {
  *out = NULL;
  int rc = HOIST_OK;
  char *buf = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return hoist__fail(rt, e == ENOENT ? HOIST_NOT_FOUND : HOIST_IO, "%s: %s", path,
                      strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = hoist__fail(rt, HOIST_IO, "%s: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = hoist__fail(rt, status, "%s: not a regular file", path);
    goto fail;
  }
  if ((uint64_t)st.st_size > HOIST_JSON_MAX_BYTES) {
    rc = hoist__fail(rt, status, "%s: %lld bytes, above the %llu-byte limit for a JSON file",
                    path, (long long)st.st_size, (unsigned long long)HOIST_JSON_MAX_BYTES);
    goto fail;
  }
  size_t len = (size_t)st.st_size;
  buf = malloc(len + 1);
  if (buf == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory reading %zu bytes", path, len);
    goto fail;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = hoist__fail(rt, HOIST_IO, "%s: %s", path, strerror(errno));
      goto fail;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  if (got != len) {
    rc = hoist__fail(rt, HOIST_IO, "%s: short read (%zu of %zu bytes)", path, got, len);
    goto fail;
  }
  buf[len] = '\0';
  size_t bad = utf8_check((const unsigned char *)buf, len);
  if (bad != len) {
    rc = hoist__fail(rt, status, "%s: not valid UTF-8 at byte %zu", path, bad);
    goto fail;
  }
  /* A raw NUL would end the C strings cJSON hands back; JSON never has one. */
  const char *nul = memchr(buf, '\0', len);
  if (nul != NULL) {
    rc = hoist__fail(rt, status, "%s: NUL byte at offset %zu", path, (size_t)(nul - buf));
    goto fail;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
  if (root == NULL) {
    size_t at = end != NULL && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
    rc = hoist__fail(rt, status, "%s: not valid JSON (near byte %zu)", path, at);
    goto fail;
  }
  /* cJSON stops after the first value; Python's json.load rejects trailing
   * data, and so do we. */
  size_t at = (size_t)(end - buf);
  while (at < len && (buf[at] == ' ' || buf[at] == '\t' || buf[at] == '\n' || buf[at] == '\r'))
    at++;
  if (at != len) {
    cJSON_Delete(root);
    rc = hoist__fail(rt, status, "%s: not valid JSON (extra data at byte %zu)", path, at);
    goto fail;
  }
  *out = root;
fail:
  free(buf);
  close(fd);
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
  str_list fallback_paths; /* parallel to fallback; full paths */
} folder_scan;

static void scan_free(folder_scan *s) {
  list_free(&s->index);
  list_free(&s->index_v);
  list_free(&s->st);
  list_free(&s->st_v);
  list_free(&s->fallback);
  list_free(&s->fallback_paths);
}

/* Lists the weight-related regular files of folder (full paths), keeping
 * variant files only for `variant`. */
static int scan_folder(hoist_runtime *rt, const char *folder, const char *variant,
                       folder_scan *s) {
  DIR *d = opendir(folder);
  if (d == NULL) return hoist__fail(rt, HOIST_IO, "%s: %s", folder, strerror(errno));
  int rc = HOIST_OK;
  size_t var_len = variant != NULL ? strlen(variant) : 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      if (errno != 0) rc = hoist__fail(rt, HOIST_IO, "%s: %s", folder, strerror(errno));
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
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", folder);
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
      rc = hoist__fail(rt, HOIST_OVERFLOW, "%s: weight file sizes overflow 64 bits", folder);
      break;
    }
    if (!list_push(to, full)) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", folder);
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

/* Adds the shards named by one index file to shards (full paths). */
static int read_index(hoist_runtime *rt, const char *folder, const char *index_path,
                      str_list *shards) {
  cJSON *root = NULL;
  int rc = read_json(rt, index_path, HOIST_BAD_INDEX, &root);
  if (rc != HOIST_OK) return rc;
  const cJSON *map = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map")
                                          : NULL;
  if (!cJSON_IsObject(root)) {
    rc = hoist__fail(rt, HOIST_BAD_INDEX, "%s: not a JSON object", index_path);
    goto fail;
  }
  if (!cJSON_IsObject(map)) {
    rc = hoist__fail(rt, HOIST_BAD_INDEX, "%s: \"weight_map\" is missing or not an object",
                    index_path);
    goto fail;
  }
  str_list names = {0};
  for (const cJSON *e = map->child; e != NULL; e = e->next) {
    if (!cJSON_IsString(e) || e->valuestring == NULL) {
      list_free(&names);
      rc = hoist__fail(rt, HOIST_BAD_INDEX, "%s: weight_map entry '%s' is not a string",
                      index_path, e->string != NULL ? e->string : "");
      goto fail;
    }
    if (!list_push(&names, hoist__strdup(e->valuestring))) {
      list_free(&names);
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", index_path);
      goto fail;
    }
  }
  list_sort_unique(&names);
  for (size_t i = 0; i < names.n && rc == HOIST_OK; i++) {
    const char *shard = names.v[i];
    if (!shard_name_ok(shard)) {
      rc = hoist__fail(rt, HOIST_BAD_INDEX,
                      "%s: shard '%s' is not a plain file name in the component folder "
                      "(path separators and '..' are not allowed)",
                      index_path, shard);
      break;
    }
    char *full = path_join(folder, shard);
    struct stat st;
    int found = -1;
    if (full != NULL) found = stat(full, &st) == 0 ? 0 : errno;
    if (full == NULL) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", index_path);
    } else if (found != 0 || !S_ISREG(st.st_mode)) {
      rc = hoist__fail(rt, HOIST_MISSING_SHARD, "%s: shard '%s' is missing (%s: %s)", index_path,
                      shard, full, found != 0 ? strerror(found) : "not a regular file");
      free(full);
    } else if (!list_push(shards, full)) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", index_path);
    }
  }
  list_free(&names);
fail:
  cJSON_Delete(root);
  return rc;
}

/* Finds the weight files of c (whose path is set), opens its safetensors
 * and fills its size fields.  A folder that is not there leaves the size
 * unknown. */
/* target: HOIST_DTYPE_KEEP, or the dtype floating tensors are counted in. */
static int discover_component(hoist_runtime *rt, const char *variant, hoist_dtype target,
                              hoist__component *c) {
  struct stat st;
  if (stat(c->path, &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      return hoist__fail(rt, HOIST_IO, "%s: %s", c->path, strerror(errno));
    c->info.folder_missing = 1; /* unknown size, as in the reference */
    return HOIST_OK;
  }
  if (!S_ISDIR(st.st_mode)) {
    c->info.folder_missing = 1; /* a file where the folder should be */
    return HOIST_OK;
  }
  folder_scan s = {0};
  str_list files = {0};
  int rc = scan_folder(rt, c->path, variant, &s);
  if (rc != HOIST_OK) goto fail;
  bool use_variant = variant != NULL && (s.index_v.n > 0 || s.st_v.n > 0);
  const str_list *indexes = use_variant ? &s.index_v : &s.index;
  str_list *plain = use_variant ? &s.st_v : &s.st;
  for (size_t i = 0; i < indexes->n; i++) {
    rc = read_index(rt, c->path, indexes->v[i], &files);
    if (rc != HOIST_OK) goto fail;
  }
  list_sort_unique(&files);
  if (files.n == 0) {
    files = *plain; /* take the list over */
    memset(plain, 0, sizeof *plain);
  }
  if (files.n > 0) {
    c->st = calloc(files.n, sizeof *c->st);
    if (c->st == NULL) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", c->path);
      goto fail;
    }
    uint64_t total = 0;
    size_t tensors = 0;
    for (size_t i = 0; i < files.n; i++) {
      rc = hoist_file_open(rt, files.v[i], &c->st[i]);
      if (rc != HOIST_OK) {
        /* The reader names the file in its detail; make sure of it. */
        char detail[HOIST_ERROR_MAX];
        snprintf(detail, sizeof detail, "%s", hoist_last_error(rt));
        if (strstr(detail, files.v[i]) == NULL)
          hoist__fail(rt, rc, "%s: %s", files.v[i], detail[0] ? detail : hoist_strerror(rc));
        goto fail;
      }
      c->st_count++;
      uint64_t bytes = hoist_file_data_bytes(c->st[i]);
      if (target != HOIST_DTYPE_KEEP) {
        /* Device bytes in the target dtype, tensor by tensor. */
        bytes = 0;
        for (size_t t = 0; t < hoist_file_tensor_count(c->st[i]); t++) {
          hoist_dtype to;
          uint64_t tb = 0;
          rc = hoist__tensor_target(rt, c->name, hoist_file_tensor(c->st[i], t), target, &to, &tb);
          if (rc != HOIST_OK) goto fail;
          if (!hoist__add_u64(bytes, tb, &bytes)) {
            rc = hoist__fail(rt, HOIST_OVERFLOW, "%s: data sizes overflow 64 bits", c->path);
            goto fail;
          }
        }
      }
      if (!hoist__add_u64(total, bytes, &total)) {
        rc = hoist__fail(rt, HOIST_OVERFLOW, "%s: data sizes overflow 64 bits", c->path);
        goto fail;
      }
      tensors += hoist_file_tensor_count(c->st[i]);
    }
    c->info.has_size = 1;
    c->info.inferred_bytes = total;
    c->info.tensor_count = tensors;
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

/* A model_index.json key used as a folder name must name a folder inside
 * the pipeline. */
static bool component_name_ok(const char *s) {
  if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
  return strchr(s, '/') == NULL && strchr(s, '\\') == NULL;
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

static int from_model_index(hoist_runtime *rt, hoist_pipeline *p, const char *index_path) {
  cJSON *root = NULL;
  const char **keys = NULL;
  int rc = read_json(rt, index_path, HOIST_BAD_PIPELINE, &root);
  if (rc != HOIST_OK) return rc;
  if (!cJSON_IsObject(root)) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE, "%s: not a JSON object", index_path);
    goto fail;
  }
  size_t nkeys = 0, ncomp = 0;
  for (const cJSON *e = root->child; e != NULL; e = e->next) {
    nkeys++;
    if (classify_entry(e) == ENTRY_COMPONENT) ncomp++;
  }
  /* Python's json keeps the last of duplicate keys, cJSON every one: the
   * file means nothing certain, so refuse it. */
  keys = malloc((nkeys ? nkeys : 1) * sizeof *keys);
  if (keys == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", index_path);
    goto fail;
  }
  size_t k = 0;
  for (const cJSON *e = root->child; e != NULL; e = e->next) keys[k++] = e->string;
  qsort(keys, nkeys, sizeof *keys, cmp_strp);
  for (size_t i = 1; i < nkeys; i++) {
    if (strcmp(keys[i - 1], keys[i]) == 0) {
      rc = hoist__fail(rt, HOIST_BAD_PIPELINE, "%s: duplicate key '%s'", index_path, keys[i]);
      goto fail;
    }
  }
  if (ncomp == 0) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE,
                    "%s: names no component (no key maps to [library, class])", index_path);
    goto fail;
  }
  p->components = calloc(ncomp, sizeof *p->components);
  if (p->components == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", index_path);
    goto fail;
  }
  uint32_t key_pos = 0;
  for (const cJSON *e = root->child; e != NULL; e = e->next, key_pos++) {
    if (classify_entry(e) != ENTRY_COMPONENT) continue;
    if (!component_name_ok(e->string)) {
      rc = hoist__fail(rt, HOIST_BAD_PIPELINE,
                      "%s: component name '%s' is not a folder name inside the pipeline",
                      index_path, e->string);
      goto fail;
    }
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
  free(keys);
  cJSON_Delete(root);
  return rc;
}

/* library/class of a plain model folder from its config.json; a missing or
 * unreadable config leaves them NULL (they only label the plan). */
static int plain_model_labels(hoist_runtime *rt, hoist__component *c) {
  char *cfg_path = path_join(c->path, "config.json");
  if (cfg_path == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  struct stat st;
  int rc = HOIST_OK;
  cJSON *root = NULL;
  if (stat(cfg_path, &st) != 0 || !S_ISREG(st.st_mode)) goto fail;
  /* A broken config.json only loses the labels: log it, go on. */
  if (read_json(rt, cfg_path, HOIST_BAD_PIPELINE, &root) != HOIST_OK) {
    hoist__log(rt, HOIST_LOG_WARN, "%s", hoist_last_error(rt));
    goto fail;
  }
  if (!cJSON_IsObject(root)) goto fail;
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "_diffusers_version");
  const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  if (ver != NULL) {
    if ((rc = strdup_or_fail(rt, "diffusers", &c->library)) != HOIST_OK) goto fail;
    if (cJSON_IsString(cls) && (rc = strdup_or_fail(rt, cls->valuestring, &c->class_name)) != HOIST_OK)
      goto fail;
  } else if (cJSON_IsArray(arch) && cJSON_IsString(arch->child)) {
    if ((rc = strdup_or_fail(rt, "transformers", &c->library)) != HOIST_OK ||
        (rc = strdup_or_fail(rt, arch->child->valuestring, &c->class_name)) != HOIST_OK)
      goto fail;
  }
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
  if (c->name == NULL || c->path == NULL)
    return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory (or no real path)", p->path);
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
  const char *variant = opts->variant;
  if (variant != NULL && (variant[0] == '\0' || strpbrk(variant, "./\\") != NULL))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "variant '%s' is not a plain name (like fp16 or bf16)", variant);

  hoist_dtype target = HOIST_DTYPE_KEEP;
  if (opts->dtype != NULL && opts->dtype[0] != '\0') {
    int prc = hoist__dtype_target_parse(rt, "dtype", opts->dtype, strlen(opts->dtype), &target);
    if (prc != HOIST_OK) return prc;
  }

  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    return hoist__fail(rt, e == ENOENT || e == ENOTDIR ? HOIST_NOT_FOUND : HOIST_IO, "%s: %s", path,
                      strerror(e));
  }
  if (!S_ISDIR(st.st_mode))
    return hoist__fail(rt, HOIST_BAD_PIPELINE,
                      "%s: not a folder (a pipeline is a folder with model_index.json, "
                      "or a folder of weights)",
                      path);

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
  bool has_index = lstat(index_path, &st) == 0 || errno != ENOENT;
  if (has_index) {
    rc = from_model_index(rt, p, index_path);
  } else {
    rc = plain_model(rt, p);
  }
  if (rc != HOIST_OK) goto fail;

  for (size_t i = 0; i < p->count; i++) {
    hoist__component *c = &p->components[i];
    c->info.name = c->name;
    c->info.load_name = c->name;
    rc = discover_component(rt, variant, target, c);
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
    if (c->info.folder_missing)
      hoist__log(rt, HOIST_LOG_INFO, "%s: component folder %s is missing; its size is unknown",
                c->name, c->path);
  }
  if (!has_index && p->components[0].file_count == 0) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE,
                    "%s: no model_index.json and no weight files (*.safetensors, "
                    "*.safetensors.index.json, .bin, .pt, .pth, .ckpt, .gguf)",
                    path);
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
