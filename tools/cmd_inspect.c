/* cmd_inspect.c — `hoist inspect [--json] PATH`: lists the tensors of a
 * .safetensors file, of every *.safetensors in a component folder, or of
 * every component of a pipeline folder (model_index.json order), through the
 * strict reader.  JSON (docs/cli.md):
 *   {"files":[{"path","header_bytes","data_bytes","metadata":{..}|null,
 *              "tensors":[{"name","dtype","shape":[..],"data_offsets":[b,e]}]}]}
 * with tensors in file-offset order and every integer printed exactly.
 * Pipeline discovery here is deliberately minimal and self-contained (the
 * library's discovery lives in runtime/discover.c). */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const cmd = "inspect";

static void help(void) {
  printf("usage: hoist inspect [--json] PATH\n"
         "\n"
         "Lists the tensors of safetensors files after validating them strictly.\n"
         "PATH is a .safetensors file, a component folder (every *.safetensors in it,\n"
         "sorted, not recursive) or a pipeline folder (model_index.json: each\n"
         "component's folder in the index's order).\n"
         "\n"
         "  --json   machine-readable output:\n"
         "           {\"files\":[{\"path\",\"header_bytes\",\"data_bytes\",\"metadata\",\n"
         "                      \"tensors\":[{\"name\",\"dtype\",\"shape\",\"data_offsets\"}]}]}\n"
         "  --help   this text\n"
         "\n"
         "exit codes: 0 ok, 2 usage, 3 invalid input (bad file or pipeline, missing path)\n");
}

/* A growable list of malloc'd paths. */
typedef struct path_list {
  char **items;
  size_t count, cap;
} path_list;

static bool list_push(path_list *l, char *s) {
  if (s == NULL) return false;
  if (l->count == l->cap) {
    size_t cap = l->cap != 0 ? l->cap * 2 : 16;
    char **n = realloc(l->items, cap * sizeof *n);
    if (n == NULL) {
      free(s);
      return false;
    }
    l->items = n;
    l->cap = cap;
  }
  l->items[l->count++] = s;
  return true;
}

static void list_free(path_list *l) {
  for (size_t i = 0; i < l->count; i++) free(l->items[i]);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static char *join(const char *dir, const char *name) {
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dl--;
  size_t nl = strlen(name);
  char *s = malloc(dl + nl + 2);
  if (s == NULL) return NULL;
  memcpy(s, dir, dl);
  s[dl] = '/';
  memcpy(s + dl + 1, name, nl + 1);
  return s;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Appends dir's *.safetensors (not dotfiles, not recursive), sorted. */
static int add_component(const char *dir, path_list *out) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    fprintf(stderr, "hoist %s: %s: cannot list: %s\n", cmd, dir, strerror(errno));
    return HOIST_EXIT_INVALID_INPUT;
  }
  path_list names = {0};
  struct dirent *de;
  int rc = HOIST_EXIT_OK;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len <= 12 || strcmp(de->d_name + len - 12, ".safetensors") != 0)
      continue;
    char *full = join(dir, de->d_name);
    struct stat st;
    if (full != NULL && (stat(full, &st) != 0 || S_ISDIR(st.st_mode))) {
      free(full);
      continue;
    }
    if (!list_push(&names, full)) {
      rc = HOIST_EXIT_FAILURE;
      break;
    }
  }
  closedir(d);
  if (rc == HOIST_EXIT_OK) {
    if (names.count > 1) qsort(names.items, names.count, sizeof *names.items, cmp_str);
    for (size_t i = 0; i < names.count && rc == HOIST_EXIT_OK; i++) {
      if (!list_push(out, names.items[i])) rc = HOIST_EXIT_FAILURE;
      names.items[i] = NULL;
    }
  }
  list_free(&names);
  if (rc != HOIST_EXIT_OK) fprintf(stderr, "hoist %s: out of memory\n", cmd);
  return rc;
}

/* Pipeline folder: every component named by model_index.json (keys not
 * starting with '_' whose value is a [library, class] pair that is not
 * [null, null]) whose folder exists, in the index's order. */
static int add_pipeline(const char *dir, const char *index_path, path_list *out) {
  FILE *fp = fopen(index_path, "rb");
  if (fp == NULL) {
    fprintf(stderr, "hoist %s: %s: cannot open: %s\n", cmd, index_path, strerror(errno));
    return HOIST_EXIT_INVALID_INPUT;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 4096) {
      cap = cap != 0 ? cap * 2 : 8192;
      char *n = realloc(text, cap);
      if (n == NULL) {
        free(text);
        fclose(fp);
        fprintf(stderr, "hoist %s: out of memory\n", cmd);
        return HOIST_EXIT_FAILURE;
      }
      text = n;
    }
    size_t got = fread(text + len, 1, cap - len, fp);
    len += got;
    if (got == 0) break;
  }
  fclose(fp);
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (root == NULL || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    fprintf(stderr, "hoist %s: %s: not a JSON object (%s)\n", cmd, index_path,
            hoist_strerror(HOIST_BAD_PIPELINE));
    return HOIST_EXIT_INVALID_INPUT;
  }
  int rc = HOIST_EXIT_OK;
  const cJSON *m;
  cJSON_ArrayForEach(m, root) {
    if (m->string[0] == '_' || !cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2) continue;
    if (cJSON_IsNull(cJSON_GetArrayItem(m, 0)) && cJSON_IsNull(cJSON_GetArrayItem(m, 1))) continue;
    if (strchr(m->string, '/') != NULL || strcmp(m->string, "..") == 0) continue;
    char *sub = join(dir, m->string);
    if (sub == NULL) {
      rc = HOIST_EXIT_FAILURE;
      break;
    }
    if (is_dir(sub)) rc = add_component(sub, out);
    free(sub);
    if (rc != HOIST_EXIT_OK) break;
  }
  cJSON_Delete(root);
  return rc;
}

static cJSON *json_u64(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return cJSON_CreateRaw(buf);
}

/* Adds o[key] = item, failing on a NULL item. */
static bool put(cJSON *o, const char *key, cJSON *item) {
  if (item == NULL) return false;
  if (!cJSON_AddItemToObject(o, key, item)) {
    cJSON_Delete(item);
    return false;
  }
  return true;
}

static bool push(cJSON *a, cJSON *item) {
  if (item == NULL) return false;
  if (!cJSON_AddItemToArray(a, item)) {
    cJSON_Delete(item);
    return false;
  }
  return true;
}

static cJSON *file_json(const hoist_file *f) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  bool ok = put(o, "path", cJSON_CreateString(hoist_file_path(f))) &&
            put(o, "header_bytes", json_u64(hoist_file_header_bytes(f))) &&
            put(o, "data_bytes", json_u64(hoist_file_data_bytes(f)));
  if (ok && hoist_file_has_metadata(f)) {
    cJSON *meta = cJSON_CreateObject();
    ok = put(o, "metadata", meta);
    for (size_t i = 0; ok && i < hoist_file_metadata_count(f); i++)
      ok = put(meta, hoist_file_metadata_key(f, i), cJSON_CreateString(hoist_file_metadata_value(f, i)));
  } else if (ok) {
    ok = put(o, "metadata", cJSON_CreateNull());
  }
  cJSON *tensors = ok ? cJSON_CreateArray() : NULL;
  ok = ok && put(o, "tensors", tensors);
  for (size_t i = 0; ok && i < hoist_file_tensor_count(f); i++) {
    const hoist_tensor_info *t = hoist_file_tensor(f, i);
    cJSON *jt = cJSON_CreateObject(), *shape = NULL, *offs = NULL;
    ok = push(tensors, jt) && put(jt, "name", cJSON_CreateString(t->name)) &&
         put(jt, "dtype", cJSON_CreateString(hoist_dtype_name(t->dtype))) &&
         put(jt, "shape", shape = cJSON_CreateArray());
    for (uint32_t d = 0; ok && d < t->ndim; d++) ok = push(shape, json_u64(t->shape[d]));
    ok = ok && put(jt, "data_offsets", offs = cJSON_CreateArray()) &&
         push(offs, json_u64(t->begin)) && push(offs, json_u64(t->end));
  }
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static void print_human(const hoist_file *f) {
  char hb[32], db[32];
  printf("%s\n  header %s, data %s, %zu tensor%s\n", hoist_file_path(f),
         cli_human_bytes(hoist_file_header_bytes(f), hb), cli_human_bytes(hoist_file_data_bytes(f), db),
         hoist_file_tensor_count(f), hoist_file_tensor_count(f) == 1 ? "" : "s");
  if (hoist_file_has_metadata(f)) {
    printf("  metadata:");
    if (hoist_file_metadata_count(f) == 0) printf(" {}");
    for (size_t i = 0; i < hoist_file_metadata_count(f); i++)
      printf("%s %s=%s", i ? "," : "", hoist_file_metadata_key(f, i), hoist_file_metadata_value(f, i));
    printf("\n");
  }
  if (hoist_file_tensor_count(f) == 0) return;
  int w = 4;
  for (size_t i = 0; i < hoist_file_tensor_count(f); i++) {
    size_t l = strlen(hoist_file_tensor(f, i)->name);
    if (l > (size_t)w) w = l > 60 ? 60 : (int)l;
  }
  printf("  %-*s  %-11s  %-20s  %-25s  %s\n", w, "name", "dtype", "shape", "data_offsets", "size");
  for (size_t i = 0; i < hoist_file_tensor_count(f); i++) {
    const hoist_tensor_info *t = hoist_file_tensor(f, i);
    char shape[256], offs[64], sz[32];
    size_t o = (size_t)snprintf(shape, sizeof shape, "[");
    for (uint32_t d = 0; d < t->ndim && o < sizeof shape - 32; d++)
      o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%" PRIu64, d ? ", " : "", t->shape[d]);
    snprintf(shape + o, sizeof shape - o, "%s]", o >= sizeof shape - 32 ? ", ..." : "");
    snprintf(offs, sizeof offs, "[%" PRIu64 ", %" PRIu64 "]", t->begin, t->end);
    printf("  %-*s  %-11s  %-20s  %-25s  %s\n", w, t->name, hoist_dtype_name(t->dtype), shape, offs,
           cli_human_bytes(t->nbytes, sz));
  }
}

int cmd_inspect(int argc, char **argv) {
  bool json = false;
  const char *path = NULL;
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && strcmp(a, "--json") == 0) {
      json = true;
    } else if (!options_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
      help();
      return HOIST_EXIT_OK;
    } else if (!options_done && strcmp(a, "--") == 0) {
      options_done = true;
    } else if (!options_done && a[0] == '-' && a[1] != '\0') {
      return cli_usage_error(cmd, "unknown option '%s'", a);
    } else if (path == NULL) {
      path = a;
    } else {
      return cli_usage_error(cmd, "one PATH expected, got '%s' too", a);
    }
  }
  if (path == NULL) return cli_usage_error(cmd, "missing PATH");

  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "hoist %s: %s: %s\n", cmd, path, strerror(errno));
    return cli_exit_code(errno == ENOENT || errno == ENOTDIR ? HOIST_NOT_FOUND : HOIST_IO);
  }
  path_list files = {0};
  int rc = HOIST_EXIT_OK;
  if (S_ISDIR(st.st_mode)) {
    char *index = join(path, "model_index.json");
    struct stat ist;
    if (index == NULL) rc = HOIST_EXIT_FAILURE;
    else if (stat(index, &ist) == 0 && S_ISREG(ist.st_mode)) rc = add_pipeline(path, index, &files);
    else rc = add_component(path, &files);
    free(index);
    if (rc == HOIST_EXIT_OK && files.count == 0) {
      fprintf(stderr, "hoist %s: %s: no .safetensors files (%s)\n", cmd, path,
              hoist_strerror(HOIST_NO_WEIGHTS));
      rc = cli_exit_code(HOIST_NO_WEIGHTS);
    }
  } else if (!list_push(&files, strdup(path))) {
    rc = HOIST_EXIT_FAILURE;
  }
  if (rc != HOIST_EXIT_OK) {
    list_free(&files);
    return rc;
  }

  cJSON *root = json ? cJSON_CreateObject() : NULL;
  cJSON *arr = root != NULL ? cJSON_AddArrayToObject(root, "files") : NULL;
  if (json && arr == NULL) rc = HOIST_EXIT_FAILURE;
  uint64_t total_bytes = 0, total_tensors = 0;
  for (size_t i = 0; i < files.count && rc == HOIST_EXIT_OK; i++) {
    hoist_file *f = NULL;
    int status = hoist_file_open(NULL, files.items[i], &f);
    if (status != HOIST_OK) {
      rc = cli_report(cmd, NULL, status);
      break;
    }
    total_bytes += hoist_file_data_bytes(f);
    total_tensors += hoist_file_tensor_count(f);
    if (json) {
      if (!push(arr, file_json(f))) rc = HOIST_EXIT_FAILURE;
    } else {
      print_human(f);
      printf("\n");
    }
    hoist_file_close(f);
  }
  if (rc == HOIST_EXIT_FAILURE) fprintf(stderr, "hoist %s: out of memory\n", cmd);
  if (rc == HOIST_EXIT_OK) {
    if (json) {
      if (!cli_print_json(root)) rc = HOIST_EXIT_FAILURE;
      root = NULL;
    } else {
      char tb[32];
      printf("total: %zu file%s, %" PRIu64 " tensor%s, %s of tensor data\n", files.count,
             files.count == 1 ? "" : "s", total_tensors, total_tensors == 1 ? "" : "s",
             cli_human_bytes(total_bytes, tb));
    }
  }
  cJSON_Delete(root);
  list_free(&files);
  return rc;
}
