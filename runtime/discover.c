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
 * What discovery refuses (exit 3 in the CLI; docs/cli.md, "What discovery
 * refuses"), so that a pipeline means one thing or nothing:
 *   - JSON side files above their size cap (1 MiB for model_index.json and
 *     config.json, 64 MiB for a *.safetensors.index.json), nested deeper
 *     than 32 levels, with more than 2^21 values, strings that decode to
 *     U+0000 or duplicate keys in any object (side_file.c says why).  (A
 *     config.json whose text is broken only loses its labels, logged; over
 *     a cap it is refused.)
 *   - anything but a regular file (symbolic links followed) where a file
 *     is read: a FIFO never blocks discovery, a device is never opened (a
 *     component "folder" that is not a folder counts as missing, as in the
 *     reference, and a special file in a folder is not a weight);
 *   - a tensor name held by two files of one component (within the files
 *     it loads: an index's shards, or the folder's safetensors);
 *   - an index that disagrees with its shards' headers: a weight_map
 *     entry whose shard does not hold that tensor, a tensor of a named
 *     shard that weight_map does not map to that shard, one tensor mapped
 *     to two shards by two indexes (these two: shard_rules.c);
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
#include "dtype.h"
#include "names.h"
#include "pipeline.h"
#include "safetensors.h" /* hoist__path_status, hoist__file_type_name */
#include "shard_rules.h"
#include "side_file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- Strings and names */

static bool ends_with(const char *s, size_t len, const char *suffix) {
  size_t n = strlen(suffix);
  return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Whether s holds a C0 control character, DEL or a C1 control character
 * (U+0080..U+009F, UTF-8 C2 80..C2 9F): a name that would break a line or
 * drive a terminal wherever it is printed. */
static bool has_control(const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
    if (*c < 0x20 || *c == 0x7f || (c[0] == 0xC2 && c[1] >= 0x80 && c[1] < 0xA0)) return true;
  return false;
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

/* ---- One component folder */

typedef struct folder_scan {
  hoist__str_list index, index_v, st, st_v, fallback;
  uint64_t fallback_bytes;
} folder_scan;

static void scan_free(folder_scan *s) {
  hoist__str_list_free(&s->index);
  hoist__str_list_free(&s->index_v);
  hoist__str_list_free(&s->st);
  hoist__str_list_free(&s->st_v);
  hoist__str_list_free(&s->fallback);
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
    char *full = hoist__path_join(folder, de->d_name);
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
    hoist__str_list *to = k == KIND_INDEX           ? &s->index
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
    if (!hoist__str_list_push(to, full)) {
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory", hoist__show(folder, pb, sizeof pb));
      break;
    }
  }
  closedir(d);
  if (rc != HOIST_OK) return rc;
  hoist__str_list_sort_unique(&s->index);
  hoist__str_list_sort_unique(&s->index_v);
  hoist__str_list_sort_unique(&s->st);
  hoist__str_list_sort_unique(&s->st_v);
  hoist__str_list_sort_unique(&s->fallback);
  return HOIST_OK;
}

/* Sums the device bytes of c's opened safetensors (in the target dtype,
 * tensor by tensor, when there is one) and its tensor count. */
static int count_bytes(hoist_runtime *rt, hoist_dtype target, hoist__component *c) {
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
  hoist__str_list files = {0};
  hoist__shard_map map = {0};
  int rc = scan_folder(rt, c->path, variant, &s);
  if (rc != HOIST_OK) goto fail;
  bool use_variant = variant != NULL && (s.index_v.n > 0 || s.st_v.n > 0);
  const hoist__str_list *indexes = use_variant ? &s.index_v : &s.index;
  hoist__str_list *plain = use_variant ? &s.st_v : &s.st;
  rc = hoist__shard_map_read(rt, c->path, indexes, &map, &files);
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
    rc = indexed ? hoist__shard_check_index(rt, c, &map) : hoist__shard_check_unique(rt, c);
    if (rc != HOIST_OK) goto fail;
    rc = count_bytes(rt, target, c);
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
  hoist__shard_map_free(&map);
  hoist__str_list_free(&files);
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
  /* Duplicate keys are refused by the side-file reader, as in every side file. */
  int rc = hoist__side_json_read(rt, index_path, &hoist__side_model_index, &root, NULL);
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
    c->path = hoist__path_join(p->path, c->name);
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
  char *cfg_path = hoist__path_join(c->path, "config.json");
  if (cfg_path == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  struct stat st;
  int rc = HOIST_OK;
  cJSON *root = NULL;
  if (stat(cfg_path, &st) != 0 && errno == ENOENT) goto fail;
  bool broken = false;
  rc = hoist__side_json_read(rt, cfg_path, &hoist__side_config, &root, &broken);
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

/* The options of an open, checked: *variant (NULL for none) and *target
 * (HOIST_DTYPE_KEEP for none). */
static int check_open_options(hoist_runtime *rt, const hoist_pipeline_options *opts,
                              const char **variant, hoist_dtype *target) {
  if (opts->struct_size != sizeof(hoist_pipeline_options))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "hoist_pipeline_options.struct_size is %u, expected %zu "
                      "(use HOIST_PIPELINE_OPTIONS_INIT)",
                      opts->struct_size, sizeof(hoist_pipeline_options));
  char pb[HOIST_SHOW_PATH];
  *variant = opts->variant;
  if (*variant != NULL && ((*variant)[0] == '\0' || strpbrk(*variant, "./\\") != NULL))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "variant '%s' is not a plain name (like fp16 or bf16)",
                      hoist__show(*variant, pb, sizeof pb));
  *target = HOIST_DTYPE_KEEP;
  if (opts->dtype != NULL && opts->dtype[0] != '\0')
    return hoist__dtype_target_parse(rt, "dtype", opts->dtype, strlen(opts->dtype), target);
  return HOIST_OK;
}

/* Fills the public view of c, discovered: its labels, files and order
 * key. */
static int describe_component(hoist_runtime *rt, hoist__component *c) {
  c->info.library = c->library;
  c->info.class_name = c->class_name;
  c->info.path = c->path;
  c->info.file_count = c->file_count;
  c->info.files = (const char *const *)c->files;
  c->info.risk_rank = hoist__component_risk_rank(c->name);
  size_t tsize = strlen(c->name) + 2;
  c->vp_text = malloc(tsize);
  if (c->vp_text == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  hoist__component_variant_priority(c->name, &c->info.variant_priority, c->vp_text, tsize);
  c->info.variant_priority_text = c->vp_text;
  if (c->info.folder_missing) {
    char nb[HOIST_SHOW_NAME], pb[HOIST_SHOW_PATH];
    hoist__log(rt, HOIST_LOG_INFO, "%s: component folder %s is missing; its size is unknown",
              hoist__show(c->name, nb, sizeof nb), hoist__show(c->path, pb, sizeof pb));
  }
  return HOIST_OK;
}

/* Sorts p's components into load order and gives each its position. */
static int order_components(hoist_runtime *rt, hoist_pipeline *p) {
  p->ordered = malloc(p->count * sizeof *p->ordered);
  if (p->ordered == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < p->count; i++) p->ordered[i] = &p->components[i].info;
  hoist__component_sort(p->ordered, p->count);
  for (size_t i = 0; i < p->count; i++)
    p->components[hoist__pipeline_slot(p, p->ordered[i])].info.position = i;
  return HOIST_OK;
}

int hoist_pipeline_open(hoist_runtime *rt, const char *path, const hoist_pipeline_options *opts,
                        hoist_pipeline **out) {
  if (out == NULL || path == NULL)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "hoist_pipeline_open: NULL path or out");
  *out = NULL;
  hoist_pipeline_options defaults = HOIST_PIPELINE_OPTIONS_INIT;
  if (opts == NULL) opts = &defaults;
  const char *variant = NULL;
  hoist_dtype target = HOIST_DTYPE_KEEP;
  int prc = check_open_options(rt, opts, &variant, &target);
  if (prc != HOIST_OK) return prc;

  char pb[HOIST_SHOW_PATH];
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    return hoist__fail(rt, hoist__path_status(e), "%s: %s", hoist__show(path, pb, sizeof pb),
                      strerror(e));
  }
  if (!S_ISDIR(st.st_mode))
    return hoist__fail(rt, HOIST_BAD_PIPELINE,
                      "%s: not a folder (a pipeline is a folder with model_index.json, "
                      "or a folder of weights)",
                      hoist__show(path, pb, sizeof pb));

  int rc = HOIST_OK;
  char *index_path = NULL;
  hoist_pipeline *p = calloc(1, sizeof *p);
  if (p == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  p->path = hoist__strdup(path);
  index_path = hoist__path_join(path, "model_index.json");
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
    if (rc == HOIST_OK) rc = describe_component(rt, c);
    if (rc != HOIST_OK) goto fail;
  }
  if (!has_index && p->components[0].file_count == 0) {
    rc = hoist__fail(rt, HOIST_BAD_PIPELINE,
                    "%s: no model_index.json and no weight files (*.safetensors, "
                    "*.safetensors.index.json, .bin, .pt, .pth, .ckpt, .gguf)",
                    hoist__show(path, pb, sizeof pb));
    goto fail;
  }

  rc = order_components(rt, p);
  if (rc != HOIST_OK) goto fail;
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
