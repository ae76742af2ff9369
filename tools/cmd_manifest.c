/* cmd_manifest.c — `hoist manifest` (record a pipeline's content: sizes,
 * SHA-256s, header and piece hashes, written atomically) and `hoist check`
 * (compare a pipeline's files with a manifest by whole-file SHA-256).  The
 * hashing and the format are the library's (hoist_manifest_*). */
#include "cli_load_opts.h"
#include "hoist_tools.h" /* HOIST_ERROR_MAX */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void manifest_usage(FILE *out) {
  fprintf(out,
          "usage: hoist manifest [--json] [--threads N] [--piece BYTES] [--variant V] PIPELINE\n"
          "                      -o FILE\n\n"
          "Records PIPELINE's content in FILE: every weight file discovery selects (path,\n"
          "size, SHA-256 of the whole file, XXH3 of its safetensors header and of every\n"
          "piece of every tensor) and the JSON side files (model_index.json, config.json,\n"
          "shard indexes).  `hoist load --manifest FILE` then refuses files that differ,\n"
          "`hoist check --manifest FILE` compares whole-file SHA-256s.  Every file is read\n"
          "once, several at a time.  FILE is written atomically (a temporary renamed into\n"
          "place), never through a symbolic link.\n\n"
          "options:\n"
          "  -o, --output FILE  the manifest to write (required)\n"
          "  --threads N        files hashed at once (default: one per core, at most 16)\n"
          "  --piece BYTES      bytes per piece hash, a power of two in [64K, 1G] (default 1M);\n"
          "                     loads with the manifest need chunks that are multiples of it\n"
          "  --variant V        the V variant's files (e.g. fp16)\n"
          "  --json             print a summary as JSON on stdout\n");
}

static void check_usage(FILE *out) {
  fprintf(out,
          "usage: hoist check [--json] [--threads N] [--variant V] --manifest FILE PIPELINE\n\n"
          "Compares PIPELINE's files with the manifest FILE (hoist manifest): the size and\n"
          "SHA-256 of every weight and side file it records (several files at a time), and\n"
          "the weight and side files of the pipeline it does not list.  Exit 0 when all\n"
          "match, 3 naming the first that differs (--json lists every difference).\n\n"
          "options:\n"
          "  --manifest FILE    the manifest to check against (required)\n"
          "  --threads N        files hashed at once (default: one per core, at most 16)\n"
          "  --variant V        discover the V variant's files (default: the manifest's)\n"
          "  --json             the verdicts as JSON on stdout\n");
}

/* The options both commands take besides their own. */
typedef struct hash_cli {
  hoist_manifest_options mo;
  int json;
  const char *pipeline;
  const char *file; /* -o FILE, or --manifest FILE */
} hash_cli;

/* Parses argv; own is the flag naming the file ("-o" or "--manifest").
 * Returns -1 after a usage error, 1 after --help, 0 when parsed. */
static int parse(const char *cmd, int argc, char **argv, bool record, hash_cli *h) {
  uint64_t n = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const bool has_value = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      record ? manifest_usage(stdout) : check_usage(stdout);
      return 1;
    }
    if (strcmp(a, "--json") == 0) {
      h->json = 1;
    } else if ((record && (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)) ||
               (!record && strcmp(a, "--manifest") == 0)) {
      if (!has_value) return cli_usage_error(cmd, "%s needs a FILE", a), -1;
      h->file = argv[++i];
    } else if (strcmp(a, "--threads") == 0) {
      if (!has_value || !cli_parse_uint(argv[++i], 1, 16, &n))
        return cli_usage_error(cmd, "--threads takes 1..16"), -1;
      h->mo.threads = (uint32_t)n;
    } else if (record && strcmp(a, "--piece") == 0) {
      if (!has_value || !cli_parse_bytes(argv[++i], &n) || n < (64u << 10) || n > (1u << 30) ||
          (n & (n - 1)) != 0)
        return cli_usage_error(cmd, "--piece takes a power of two in [64K, 1G]"), -1;
      h->mo.piece_bytes = n;
    } else if (strcmp(a, "--variant") == 0) {
      if (!has_value) return cli_usage_error(cmd, "--variant needs a value"), -1;
      h->mo.variant = argv[++i];
    } else if (a[0] == '-' && a[1] != '\0') {
      return cli_usage_error(cmd, "unknown option %s", a), -1;
    } else if (h->pipeline != NULL) {
      return cli_usage_error(cmd, "one PIPELINE only"), -1;
    } else {
      h->pipeline = a;
    }
  }
  if (h->pipeline == NULL) return cli_usage_error(cmd, "missing PIPELINE"), -1;
  if (h->file == NULL)
    return cli_usage_error(cmd, record ? "missing -o FILE" : "missing --manifest FILE"), -1;
  return 0;
}

/* Ctrl-C and the progress bar (on a terminal, without --json). */
static void hash_cli_start(hash_cli *h) {
  static volatile int cancel;
  cli_install_cancel(&cancel);
  h->mo.cancel = &cancel;
  if (!h->json && isatty(2)) h->mo.progress = cli_progress_bar;
}

static uint64_t manifest_bytes(const hoist_manifest *m) {
  uint64_t sum = 0;
  for (size_t i = 0; i < hoist_manifest_file_count(m); i++) sum += hoist_manifest_file(m, i)->size;
  return sum;
}

static int print_manifest(const hash_cli *h, const hoist_manifest *m, double seconds) {
  const uint64_t bytes = manifest_bytes(m);
  const double gbps = seconds > 0 ? (double)bytes / seconds / 1e9 : 0;
  size_t sides = 0;
  for (size_t i = 0; i < hoist_manifest_file_count(m); i++) sides += hoist_manifest_file(m, i)->side_file;
  if (!h->json) {
    char a[32];
    printf("%s: %zu weight files and %zu side files, %s hashed in %.2f s (%.2f GB/s); pieces of "
           "%llu bytes; written to %s\n",
           h->pipeline, hoist_manifest_file_count(m) - sides, sides, cli_human_bytes(bytes, a),
           seconds, gbps, (unsigned long long)hoist_manifest_piece_bytes(m), h->file);
    return HOIST_EXIT_OK;
  }
  cJSON *root = cJSON_CreateObject(), *files = NULL;
  cJSON_AddStringToObject(root, "pipeline", h->pipeline);
  cJSON_AddStringToObject(root, "manifest", h->file);
  if (hoist_manifest_variant(m) != NULL)
    cJSON_AddStringToObject(root, "variant", hoist_manifest_variant(m));
  else
    cJSON_AddNullToObject(root, "variant");
  cJSON_AddNumberToObject(root, "piece_bytes", (double)hoist_manifest_piece_bytes(m));
  cJSON_AddNumberToObject(root, "bytes", (double)bytes);
  cJSON_AddNumberToObject(root, "seconds", seconds);
  cJSON_AddNumberToObject(root, "GBps", gbps);
  files = cJSON_AddArrayToObject(root, "files");
  for (size_t i = 0; files != NULL && i < hoist_manifest_file_count(m); i++) {
    const hoist_manifest_file_info *f = hoist_manifest_file(m, i);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "path", f->path);
    cJSON_AddBoolToObject(e, "side_file", f->side_file);
    cJSON_AddNumberToObject(e, "size", (double)f->size);
    cJSON_AddStringToObject(e, "sha256", f->sha256);
    cJSON_AddNumberToObject(e, "tensors", (double)f->tensor_count);
    cJSON_AddItemToArray(files, e);
  }
  return cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
}

int cmd_manifest(int argc, char **argv) {
  hash_cli h = {.mo = HOIST_MANIFEST_OPTIONS_INIT};
  int r = parse("manifest", argc, argv, true, &h);
  if (r != 0) return r > 0 ? HOIST_EXIT_OK : HOIST_EXIT_USAGE;
  hash_cli_start(&h);
  hoist_manifest *m = NULL;
  const double t0 = cli_now_seconds();
  int rc = hoist_manifest_create(NULL, h.pipeline, &h.mo, &m);
  const double seconds = cli_now_seconds() - t0;
  cli_progress_done();
  if (rc == HOIST_OK) rc = hoist_manifest_save(NULL, m, h.file);
  int code = rc == HOIST_OK ? print_manifest(&h, m, seconds) : cli_load_report("manifest", NULL, rc);
  hoist_manifest_close(m);
  return code;
}

/* ---- hoist check */

/* Every verdict, kept for the summary. */
typedef struct verdicts {
  cJSON *differences; /* --json: the differences */
  size_t files, differ;
  uint64_t bytes;
  int json;
} verdicts;

static void on_result(void *user, const hoist_manifest_result *r) {
  verdicts *v = user;
  v->files += r->verdict != HOIST_MANIFEST_EXTRA;
  v->bytes += r->verdict == HOIST_MANIFEST_MATCH || r->verdict == HOIST_MANIFEST_SHA256 ? r->size : 0;
  if (r->verdict == HOIST_MANIFEST_MATCH) return;
  v->differ++;
  if (!v->json) {
    printf("  %-8s %s%s%s%s\n", hoist_manifest_verdict_name(r->verdict), r->path,
           r->side_file ? " (side file)" : "", r->detail[0] != '\0' ? ": " : "", r->detail);
    return;
  }
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "path", r->path);
  cJSON_AddBoolToObject(e, "side_file", r->side_file);
  cJSON_AddStringToObject(e, "verdict", hoist_manifest_verdict_name(r->verdict));
  cJSON_AddNumberToObject(e, "size", (double)r->size);
  cJSON_AddNumberToObject(e, "expected_size", (double)r->expected_size);
  cJSON_AddStringToObject(e, "sha256", r->sha256);
  cJSON_AddStringToObject(e, "expected_sha256", r->expected_sha256);
  cJSON_AddStringToObject(e, "detail", r->detail);
  cJSON_AddItemToArray(v->differences, e);
}

int cmd_check(int argc, char **argv) {
  hash_cli h = {.mo = HOIST_MANIFEST_OPTIONS_INIT};
  int r = parse("check", argc, argv, false, &h);
  if (r != 0) return r > 0 ? HOIST_EXIT_OK : HOIST_EXIT_USAGE;
  hoist_manifest *m = NULL;
  int rc = hoist_manifest_load(NULL, h.file, &m);
  if (rc != HOIST_OK) return cli_report("check", NULL, rc);
  hash_cli_start(&h);
  verdicts v = {.json = h.json, .differences = h.json ? cJSON_CreateArray() : NULL};
  h.mo.result = on_result;
  h.mo.result_user = &v;
  const double t0 = cli_now_seconds();
  rc = hoist_manifest_check(NULL, m, h.pipeline, &h.mo);
  const double seconds = cli_now_seconds() - t0;
  cli_progress_done();
  char error[HOIST_ERROR_MAX];
  snprintf(error, sizeof error, "%s", rc != HOIST_OK ? hoist_last_error(NULL) : "");
  int code = rc == HOIST_OK ? HOIST_EXIT_OK : cli_report("check", NULL, rc);
  if (h.json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "pipeline", h.pipeline);
    cJSON_AddStringToObject(root, "manifest", h.file);
    cJSON_AddBoolToObject(root, "ok", rc == HOIST_OK);
    cJSON_AddNumberToObject(root, "files", (double)v.files);
    cJSON_AddNumberToObject(root, "bytes", (double)v.bytes);
    cJSON_AddNumberToObject(root, "seconds", seconds);
    cJSON_AddItemToObject(root, "differences", v.differences);
    if (rc != HOIST_OK) {
      cJSON_AddStringToObject(root, "error", error);
      cJSON_AddStringToObject(root, "status", hoist_status_name(rc));
    }
    if (!cli_print_json(root) && code == HOIST_EXIT_OK) code = HOIST_EXIT_FAILURE;
  } else if (rc == HOIST_OK) {
    char a[32];
    printf("%s: %zu files (%s) match the manifest (%.2f s)\n", h.pipeline, v.files,
           cli_human_bytes(v.bytes, a), seconds);
  } else if (v.differ > 0) {
    printf("%s: %zu file%s differ%s from the manifest\n", h.pipeline, v.differ,
           v.differ == 1 ? "" : "s", v.differ == 1 ? "s" : "");
  }
  hoist_manifest_close(m);
  return code;
}
