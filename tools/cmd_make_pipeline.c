/* cmd_make_pipeline.c — `hoist make-pipeline`: writes a realistic synthetic
 * diffusers pipeline from a preset (presets.h) with pipeline_writer.h.
 *
 *   hoist make-pipeline --preset NAME [--scale F] [--seed N] [--threads N]
 *                       [--dtype bf16|f16|f32] [--force] [--json] DIR
 *
 * --dtype writes every weight of the preset in that dtype (same names and
 * shapes): an F32 pipeline to benchmark `hoist load --dtype bf16` against a
 * plain load of the same files.
 *
 * Exit codes: 0 written; 2 usage (unknown preset, bad scale, DIR not
 * empty without --force); 1 a write failed (the files this run created are
 * removed again). */
#include "cli.h"
#include "pipeline_writer.h"
#include "presets.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: hoist make-pipeline --preset NAME [--scale F] [--seed N] [--threads N]\n"
          "                           [--dtype bf16|f16|f32] [--force] [--json] DIR\n\n"
          "Writes a diffusers pipeline with the real tensor names and shapes of a\n"
          "published model, random contents, scaled by F (0 < F <= 1, default 1).\n"
          "--dtype writes every weight in that dtype instead of the model's own\n"
          "(same names and shapes; f32 doubles a bf16 model's bytes), e.g. an F32\n"
          "pipeline for `hoist bench load --dtype bf16`.  config.json files keep the\n"
          "model's torch_dtype.\n\n"
          "presets:\n");
  for (size_t i = 0; i < hoist__preset_count(); i++) {
    const hoist__preset *p = hoist__preset_at(i);
    uint64_t bytes = 0;
    hoist__preset_totals(p, 1.0, &bytes, NULL);
    char h[32];
    fprintf(out, "  %-16s %-40s %s at scale 1\n", p->name, p->repo, cli_human_bytes(bytes, h));
  }
}

static void list_presets(FILE *out) {
  for (size_t i = 0; i < hoist__preset_count(); i++)
    fprintf(out, "%s%s", i ? ", " : "", hoist__preset_at(i)->name);
}

static void progress(void *user, uint64_t done, uint64_t total) {
  (void)user;
  char a[32], b[32];
  double pct = total ? 100.0 * (double)done / (double)total : 100.0;
  fprintf(stderr, "\rmake-pipeline: %s of %s (%.0f%%)   ", cli_human_bytes(done, a),
          cli_human_bytes(total, b), pct);
  if (done >= total) fputc('\n', stderr);
  fflush(stderr);
}

int cmd_make_pipeline(int argc, char **argv) {
  const char *cmd = "make-pipeline";
  const char *preset_name = NULL, *dir = NULL;
  int json = 0;
  hoist_dtype dtype = HOIST_DTYPE_COUNT_; /* the preset's own */
  hoist__writer_options opts = HOIST_WRITER_OPTIONS_INIT;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--force") == 0) {
      opts.force = 1;
    } else if (strcmp(a, "--preset") == 0) {
      if (val == NULL) return cli_usage_error(cmd, "--preset needs a name");
      preset_name = val;
      i++;
    } else if (strcmp(a, "--scale") == 0) {
      if (val == NULL) return cli_usage_error(cmd, "--scale needs a number");
      char *end = NULL;
      errno = 0;
      double f = strtod(val, &end);
      if (errno != 0 || end == val || *end != '\0' || !hoist__preset_scale_valid(f))
        return cli_usage_error(cmd, "--scale '%s' is not a number in (0, 1]", val);
      opts.scale = f;
      i++;
    } else if (strcmp(a, "--seed") == 0) {
      if (val == NULL || !cli_parse_uint(val, 0, UINT64_MAX, &opts.seed))
        return cli_usage_error(cmd, "--seed needs a non-negative integer");
      i++;
    } else if (strcmp(a, "--threads") == 0) {
      uint64_t n;
      if (val == NULL || !cli_parse_uint(val, 1, 64, &n))
        return cli_usage_error(cmd, "--threads needs an integer in [1, 64]");
      opts.threads = (uint32_t)n;
      i++;
    } else if (strcmp(a, "--dtype") == 0) {
      if (val == NULL) return cli_usage_error(cmd, "--dtype needs bf16, f16 or f32");
      if (strcasecmp(val, "bf16") == 0)
        dtype = HOIST_DTYPE_BF16;
      else if (strcasecmp(val, "f16") == 0)
        dtype = HOIST_DTYPE_F16;
      else if (strcasecmp(val, "f32") == 0)
        dtype = HOIST_DTYPE_F32;
      else
        return cli_usage_error(cmd, "--dtype '%s': takes bf16, f16 or f32", val);
      i++;
    } else if (a[0] == '-' && a[1] != '\0') {
      return cli_usage_error(cmd, "unknown option '%s'", a);
    } else if (dir == NULL) {
      dir = a;
    } else {
      return cli_usage_error(cmd, "more than one DIR ('%s', '%s')", dir, a);
    }
  }
  if (preset_name == NULL) {
    fprintf(stderr, "hoist %s: --preset is required; presets: ", cmd);
    list_presets(stderr);
    fputc('\n', stderr);
    return HOIST_EXIT_USAGE;
  }
  const hoist__preset *p = hoist__preset_find(preset_name);
  if (p == NULL) {
    fprintf(stderr, "hoist %s: unknown preset '%s'; presets: ", cmd, preset_name);
    list_presets(stderr);
    fputc('\n', stderr);
    return HOIST_EXIT_USAGE;
  }
  if (dir == NULL) return cli_usage_error(cmd, "DIR is required");
  /* --dtype: the same preset with every weights folder in that dtype. */
  hoist__preset retyped;
  hoist__preset_component retyped_comps[64];
  if (dtype != HOIST_DTYPE_COUNT_) {
    if (p->component_count > sizeof retyped_comps / sizeof retyped_comps[0])
      return cli_usage_error(cmd, "preset '%s' has too many components for --dtype", p->name);
    retyped = *p;
    for (size_t i = 0; i < p->component_count; i++) {
      retyped_comps[i] = p->components[i];
      if (retyped_comps[i].kind == HOIST_PRESET_WEIGHTS) retyped_comps[i].dtype = dtype;
    }
    retyped.components = retyped_comps;
    p = &retyped;
  }
  if (!json && isatty(STDERR_FILENO)) opts.progress = progress;

  hoist__write_result r;
  int rc = hoist__pipeline_write(p, dir, &opts, &r);
  if (rc != HOIST_OK) {
    /* A bad DIR is a usage error; everything else (a failed write) is 1. */
    const char *detail = hoist_last_error(NULL);
    fprintf(stderr, "hoist %s: %s\n", cmd, detail && detail[0] ? detail : hoist_strerror(rc));
    return rc == HOIST_INVALID_ARGUMENT ? HOIST_EXIT_USAGE : HOIST_EXIT_FAILURE;
  }
  int exit_code = HOIST_EXIT_OK;
  if (json) {
    cJSON *root = cJSON_CreateObject();
    cJSON *comps = root ? cJSON_CreateArray() : NULL;
    if (comps) {
      cJSON_AddStringToObject(root, "preset", p->name);
      cJSON_AddNumberToObject(root, "scale", opts.scale);
      cJSON_AddStringToObject(root, "dir", dir);
      cJSON_AddNumberToObject(root, "seed", (double)opts.seed);
      cJSON_AddStringToObject(root, "dtype",
                              dtype != HOIST_DTYPE_COUNT_ ? hoist_dtype_name(dtype) : "preset");
      cJSON_AddNumberToObject(root, "total_bytes", (double)r.total_bytes);
      cJSON_AddNumberToObject(root, "file_bytes", (double)r.file_bytes);
      cJSON_AddNumberToObject(root, "seconds", r.seconds);
      cJSON_AddItemToObject(root, "components", comps);
      for (size_t i = 0; i < r.count; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(comps, c);
        cJSON_AddStringToObject(c, "name", r.components[i].name);
        cJSON_AddNumberToObject(c, "bytes", (double)r.components[i].bytes);
        cJSON_AddItemToObject(c, "files",
                              cJSON_CreateStringArray((const char *const *)r.components[i].files,
                                                      (int)r.components[i].file_count));
      }
    } else {
      cJSON_Delete(root);
      root = NULL;
    }
    if (!cli_print_json(root)) exit_code = HOIST_EXIT_FAILURE;
  } else {
    char a[32];
    printf("%s: %s (%s) at scale %g, seed %llu\n", dir, p->name, p->repo, opts.scale,
           (unsigned long long)opts.seed);
    for (size_t i = 0; i < r.count; i++) {
      const hoist__written_component *c = &r.components[i];
      if (c->bytes == 0 && p->components[i].kind != HOIST_PRESET_WEIGHTS) {
        printf("  %-16s %-36s %zu file%s\n", c->name, p->components[i].class_name, c->file_count,
               c->file_count == 1 ? "" : "s");
        continue;
      }
      printf("  %-16s %-36s %12s  %u weight file%s\n", c->name, p->components[i].class_name,
             cli_human_bytes(c->bytes, a), p->components[i].shards,
             p->components[i].shards == 1 ? "" : "s");
    }
    double gbps = r.seconds > 0 ? (double)r.file_bytes / r.seconds / 1e9 : 0.0;
    printf("total %s of tensors in %.2f s (%.2f GB/s)\n", cli_human_bytes(r.total_bytes, a),
           r.seconds, gbps);
  }
  hoist__write_result_free(&r);
  return exit_code;
}
