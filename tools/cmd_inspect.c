/* cmd_inspect.c — `hoist inspect [--json] PATH`: lists the tensors of a
 * .safetensors file, of every *.safetensors in a component folder, or of
 * every component of a pipeline folder (model_index.json order), through the
 * strict reader.  JSON (docs/cli.md):
 *   {"files":[{"path","header_bytes","data_bytes","metadata":{..}|null,
 *              "tensors":[{"name","dtype","shape":[..],"data_offsets":[b,e]}]}]}
 * with tensors in file-offset order and every integer printed exactly.
 * A pipeline folder is read by the library's discovery (the files hoist
 * would load, under its rules and caps); a folder without model_index.json
 * is listed as it is.  Names and paths from files are escaped in the human
 * output and in messages (hoist__show), so nothing in a file can drive the
 * terminal. */
#include "cli.h"

#include "hoist_tools.h"

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
         "sorted, not recursive) or a pipeline folder (model_index.json: the files\n"
         "hoist plan and hoist load use, component by component in the index's order).\n"
         "\n"
         "  --json   machine-readable output:\n"
         "           {\"files\":[{\"path\",\"header_bytes\",\"data_bytes\",\"metadata\",\n"
         "                      \"tensors\":[{\"name\",\"dtype\",\"shape\",\"data_offsets\"}]}]}\n"
         "  --help   this text\n"
         "\n"
         "exit codes: 0 ok, 1 other failure, 2 usage, 3 invalid input (bad file or\n"
         "            pipeline, missing or unreadable path, not a regular file)\n");
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

/* Prints "hoist inspect: <path>: <why>" (path shown) and returns the exit
 * code of status. */
static int fail_path(const char *path, int status, const char *why) {
  char pb[HOIST_SHOW_PATH];
  fprintf(stderr, "hoist %s: %s: %s\n", cmd, hoist__show(path, pb, sizeof pb), why);
  return cli_exit_code(status);
}

static int out_of_memory(void) {
  fprintf(stderr, "hoist %s: out of memory\n", cmd);
  return HOIST_EXIT_FAILURE;
}

/* Appends dir's *.safetensors (not dotfiles, not recursive), sorted. */
static int add_component(const char *dir, path_list *out) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    int e = errno;
    char why[160];
    snprintf(why, sizeof why, "cannot list: %s", strerror(e));
    return fail_path(dir, hoist__path_status(e), why);
  }
  path_list names = {0};
  struct dirent *de;
  bool oom = false;
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
      oom = true;
      break;
    }
  }
  closedir(d);
  if (!oom && names.count > 1) qsort(names.items, names.count, sizeof *names.items, cmp_str);
  for (size_t i = 0; i < names.count && !oom; i++) {
    oom = !list_push(out, names.items[i]);
    names.items[i] = NULL;
  }
  list_free(&names);
  return oom ? out_of_memory() : HOIST_EXIT_OK;
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
  char hb[32], db[32], pb[HOIST_SHOW_PATH], kb[HOIST_SHOW_PATH], vb[HOIST_SHOW_PATH];
  printf("%s\n  header %s, data %s, %zu tensor%s\n", hoist__show(hoist_file_path(f), pb, sizeof pb),
         cli_human_bytes(hoist_file_header_bytes(f), hb), cli_human_bytes(hoist_file_data_bytes(f), db),
         hoist_file_tensor_count(f), hoist_file_tensor_count(f) == 1 ? "" : "s");
  if (hoist_file_has_metadata(f)) {
    printf("  metadata:");
    if (hoist_file_metadata_count(f) == 0) printf(" {}");
    for (size_t i = 0; i < hoist_file_metadata_count(f); i++)
      printf("%s %s=%s", i ? "," : "", hoist__show(hoist_file_metadata_key(f, i), kb, sizeof kb),
             hoist__show(hoist_file_metadata_value(f, i), vb, sizeof vb));
    printf("\n");
  }
  if (hoist_file_tensor_count(f) == 0) return;
  int w = 4;
  for (size_t i = 0; i < hoist_file_tensor_count(f); i++) {
    size_t l = strlen(hoist__show(hoist_file_tensor(f, i)->name, kb, sizeof kb));
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
    printf("  %-*s  %-11s  %-20s  %-25s  %s\n", w, hoist__show(t->name, kb, sizeof kb),
           hoist_dtype_name(t->dtype), shape, offs, cli_human_bytes(t->nbytes, sz));
  }
}

/* What has been listed so far. */
typedef struct listing {
  cJSON *files; /* --json: the "files" array; NULL for human output */
  size_t count;
  uint64_t bytes, tensors;
} listing;

/* Adds one opened file to the output; false when out of memory. */
static bool emit(listing *o, const hoist_file *f) {
  o->count++;
  o->bytes += hoist_file_data_bytes(f);
  o->tensors += hoist_file_tensor_count(f);
  if (o->files != NULL) return push(o->files, file_json(f));
  print_human(f);
  printf("\n");
  return true;
}

/* Opens and lists each file in turn; the first bad one ends the listing
 * with its one-line message. */
static int inspect_files(listing *o, const path_list *files) {
  for (size_t i = 0; i < files->count; i++) {
    hoist_file *f = NULL;
    int status = hoist_file_open(NULL, files->items[i], &f);
    if (status != HOIST_OK) return cli_report(cmd, NULL, status);
    bool ok = emit(o, f);
    hoist_file_close(f);
    if (!ok) return out_of_memory();
  }
  return HOIST_EXIT_OK;
}

/* A pipeline folder: its components' safetensors as discovery finds them,
 * component by component in the index's order. */
static int inspect_pipeline(listing *o, const char *path) {
  hoist_pipeline *p = NULL;
  int status = hoist_pipeline_open(NULL, path, NULL, &p);
  if (status != HOIST_OK) return cli_report(cmd, NULL, status);
  int rc = HOIST_EXIT_OK;
  for (size_t i = 0; i < hoist_pipeline_component_count(p) && rc == HOIST_EXIT_OK; i++) {
    hoist_file *const *files = NULL;
    size_t n = hoist__pipeline_safetensors(p, i, &files);
    for (size_t k = 0; k < n && rc == HOIST_EXIT_OK; k++)
      if (!emit(o, files[k])) rc = out_of_memory();
  }
  hoist_pipeline_close(p);
  return rc;
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
    int e = errno;
    return fail_path(path, hoist__path_status(e), strerror(e));
  }
  listing o = {0};
  cJSON *root = NULL;
  if (json && ((root = cJSON_CreateObject()) == NULL ||
               (o.files = cJSON_AddArrayToObject(root, "files")) == NULL)) {
    cJSON_Delete(root);
    return out_of_memory();
  }
  path_list files = {0};
  int rc = HOIST_EXIT_OK;
  if (S_ISDIR(st.st_mode)) {
    char *index = join(path, "model_index.json");
    struct stat ist;
    if (index == NULL)
      rc = out_of_memory();
    else if (lstat(index, &ist) == 0 || errno != ENOENT)
      rc = inspect_pipeline(&o, path);
    else if ((rc = add_component(path, &files)) == HOIST_EXIT_OK)
      rc = inspect_files(&o, &files);
    free(index);
    if (rc == HOIST_EXIT_OK && o.count == 0)
      rc = fail_path(path, HOIST_NO_WEIGHTS, "no .safetensors files (no weights found)");
  } else {
    rc = list_push(&files, strdup(path)) ? inspect_files(&o, &files) : out_of_memory();
  }
  list_free(&files);
  if (rc == HOIST_EXIT_OK && json) {
    rc = cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
    root = NULL;
  } else if (rc == HOIST_EXIT_OK) {
    char tb[32];
    printf("total: %zu file%s, %" PRIu64 " tensor%s, %s of tensor data\n", o.count,
           o.count == 1 ? "" : "s", o.tensors, o.tensors == 1 ? "" : "s",
           cli_human_bytes(o.bytes, tb));
  }
  cJSON_Delete(root);
  return rc;
}
