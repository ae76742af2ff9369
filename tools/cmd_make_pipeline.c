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
 * Nothing is ever written through a symbolic link: a DIR that is a link,
 * and with --force a link where a file or folder is to be written (a
 * Hugging Face cache snapshot links every file to its blobs), are refused
 * before anything is written.  Files are written as temporaries and
 * renamed into place when all are complete (pipeline_writer.h).
 *
 * Exit codes: 0 written; 2 usage (unknown preset, bad scale, DIR not
 * empty without --force, a link refused); 1 a write failed (the files this
 * run created are removed again, those it was replacing keep their
 * bytes). */
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
          "A non-empty DIR is refused unless --force.  Nothing is written through a\n"
          "symbolic link: a DIR that is one (DIR/ names its folder), or with --force a\n"
          "link where a file or folder is to be written (as in a Hugging Face cache\n"
          "snapshot), is refused with exit 2.  Files are written beside their final\n"
          "names and renamed into place when all are complete: a failed run leaves\n"
          "the files it would have replaced as they were.\n\n"
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

/* The command line, parsed. */
typedef struct mp_args {
  const char *preset_name, *dir;
  int json;
  hoist_dtype dtype; /* HOIST_DTYPE_COUNT_: the preset's own */
  hoist__writer_options opts;
} mp_args;

/* --dtype's value. */
static int parse_dtype(const char *cmd, const char *val, hoist_dtype *out) {
  if (val == NULL) return cli_usage_error(cmd, "--dtype needs bf16, f16 or f32");
  if (strcasecmp(val, "bf16") == 0)
    *out = HOIST_DTYPE_BF16;
  else if (strcasecmp(val, "f16") == 0)
    *out = HOIST_DTYPE_F16;
  else if (strcasecmp(val, "f32") == 0)
    *out = HOIST_DTYPE_F32;
  else
    return cli_usage_error(cmd, "--dtype '%s': takes bf16, f16 or f32", val);
  return -1;
}

/* An option that takes a value (val: the next argument, NULL when none).
 * Returns -1 when taken, 0 when a is none of them, else the exit code of a
 * usage error. */
static int parse_valued(const char *cmd, const char *a, const char *val, mp_args *m) {
  if (strcmp(a, "--preset") == 0) {
    if (val == NULL) return cli_usage_error(cmd, "--preset needs a name");
    m->preset_name = val;
  } else if (strcmp(a, "--scale") == 0) {
    if (val == NULL) return cli_usage_error(cmd, "--scale needs a number");
    char *end = NULL;
    errno = 0;
    double f = strtod(val, &end);
    if (errno != 0 || end == val || *end != '\0' || !hoist__preset_scale_valid(f))
      return cli_usage_error(cmd, "--scale '%s' is not a number in (0, 1]", val);
    m->opts.scale = f;
  } else if (strcmp(a, "--seed") == 0) {
    if (val == NULL || !cli_parse_uint(val, 0, UINT64_MAX, &m->opts.seed))
      return cli_usage_error(cmd, "--seed needs a non-negative integer");
  } else if (strcmp(a, "--threads") == 0) {
    uint64_t n;
    if (val == NULL || !cli_parse_uint(val, 1, 64, &n))
      return cli_usage_error(cmd, "--threads needs an integer in [1, 64]");
    m->opts.threads = (uint32_t)n;
  } else if (strcmp(a, "--dtype") == 0) {
    return parse_dtype(cmd, val, &m->dtype);
  } else {
    return 0;
  }
  return -1;
}

/* Parses the command line into m.  Returns -1 to go on, else the exit
 * code (help printed, or a usage error). */
static int parse_args(const char *cmd, int argc, char **argv, mp_args *m) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    } else if (strcmp(a, "--json") == 0) {
      m->json = 1;
      continue;
    } else if (strcmp(a, "--force") == 0) {
      m->opts.force = 1;
      continue;
    }
    int code = parse_valued(cmd, a, val, m);
    if (code == -1) {
      i++;
    } else if (code > 0) {
      return code;
    } else if (a[0] == '-' && a[1] != '\0') {
      return cli_usage_error(cmd, "unknown option '%s'", a);
    } else if (m->dir == NULL) {
      m->dir = a;
    } else {
      return cli_usage_error(cmd, "more than one DIR ('%s', '%s')", m->dir, a);
    }
  }
  return -1;
}

/* The preset to write: the named one, or with --dtype a copy with every
 * weights folder in that dtype (in *retyped and comps, cap entries).
 * NULL after a usage error (*code). */
static const hoist__preset *pick_preset(const char *cmd, const mp_args *m,
                                        hoist__preset *retyped, hoist__preset_component *comps,
                                        size_t cap, int *code) {
  *code = HOIST_EXIT_USAGE;
  if (m->preset_name == NULL) {
    fprintf(stderr, "hoist %s: --preset is required; presets: ", cmd);
    list_presets(stderr);
    fputc('\n', stderr);
    return NULL;
  }
  const hoist__preset *p = hoist__preset_find(m->preset_name);
  if (p == NULL) {
    fprintf(stderr, "hoist %s: unknown preset '%s'; presets: ", cmd, m->preset_name);
    list_presets(stderr);
    fputc('\n', stderr);
    return NULL;
  }
  if (m->dir == NULL) {
    *code = cli_usage_error(cmd, "DIR is required");
    return NULL;
  }
  if (m->dtype == HOIST_DTYPE_COUNT_) return p;
  if (p->component_count > cap) {
    *code = cli_usage_error(cmd, "preset '%s' has too many components for --dtype", p->name);
    return NULL;
  }
  *retyped = *p;
  for (size_t i = 0; i < p->component_count; i++) {
    comps[i] = p->components[i];
    if (comps[i].kind == HOIST_PRESET_WEIGHTS) comps[i].dtype = m->dtype;
  }
  retyped->components = comps;
  return retyped;
}

static int print_json(const mp_args *m, const hoist__preset *p, const hoist__write_result *r) {
  cJSON *root = cJSON_CreateObject();
  cJSON *comps = root ? cJSON_CreateArray() : NULL;
  if (comps) {
    cJSON_AddStringToObject(root, "preset", p->name);
    cJSON_AddNumberToObject(root, "scale", m->opts.scale);
    cJSON_AddStringToObject(root, "dir", m->dir);
    cJSON_AddNumberToObject(root, "seed", (double)m->opts.seed);
    cJSON_AddStringToObject(root, "dtype",
                            m->dtype != HOIST_DTYPE_COUNT_ ? hoist_dtype_name(m->dtype) : "preset");
    cJSON_AddNumberToObject(root, "total_bytes", (double)r->total_bytes);
    cJSON_AddNumberToObject(root, "file_bytes", (double)r->file_bytes);
    cJSON_AddNumberToObject(root, "seconds", r->seconds);
    cJSON_AddItemToObject(root, "components", comps);
    for (size_t i = 0; i < r->count; i++) {
      cJSON *c = cJSON_CreateObject();
      cJSON_AddItemToArray(comps, c);
      cJSON_AddStringToObject(c, "name", r->components[i].name);
      cJSON_AddNumberToObject(c, "bytes", (double)r->components[i].bytes);
      cJSON_AddItemToObject(c, "files",
                            cJSON_CreateStringArray((const char *const *)r->components[i].files,
                                                    (int)r->components[i].file_count));
    }
  } else {
    cJSON_Delete(root);
    root = NULL;
  }
  return cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
}

static void print_text(const mp_args *m, const hoist__preset *p, const hoist__write_result *r) {
  char a[32];
  printf("%s: %s (%s) at scale %g, seed %llu\n", m->dir, p->name, p->repo, m->opts.scale,
         (unsigned long long)m->opts.seed);
  for (size_t i = 0; i < r->count; i++) {
    const hoist__written_component *c = &r->components[i];
    if (c->bytes == 0 && p->components[i].kind != HOIST_PRESET_WEIGHTS) {
      printf("  %-16s %-36s %zu file%s\n", c->name, p->components[i].class_name, c->file_count,
             c->file_count == 1 ? "" : "s");
      continue;
    }
    printf("  %-16s %-36s %12s  %u weight file%s\n", c->name, p->components[i].class_name,
           cli_human_bytes(c->bytes, a), p->components[i].shards,
           p->components[i].shards == 1 ? "" : "s");
  }
  double gbps = r->seconds > 0 ? (double)r->file_bytes / r->seconds / 1e9 : 0.0;
  printf("total %s of tensors in %.2f s (%.2f GB/s)\n", cli_human_bytes(r->total_bytes, a),
         r->seconds, gbps);
}

int cmd_make_pipeline(int argc, char **argv) {
  const char *cmd = "make-pipeline";
  mp_args m = {NULL, NULL, 0, HOIST_DTYPE_COUNT_, HOIST_WRITER_OPTIONS_INIT};
  int code = parse_args(cmd, argc, argv, &m);
  if (code >= 0) return code;
  hoist__preset retyped;
  hoist__preset_component retyped_comps[64];
  const hoist__preset *p = pick_preset(cmd, &m, &retyped, retyped_comps,
                                       sizeof retyped_comps / sizeof retyped_comps[0], &code);
  if (p == NULL) return code;
  if (!m.json && isatty(STDERR_FILENO)) m.opts.progress = progress;

  hoist__write_result r;
  int rc = hoist__pipeline_write(p, m.dir, &m.opts, &r);
  if (rc != HOIST_OK) {
    /* A bad DIR is a usage error; everything else (a failed write) is 1. */
    const char *detail = hoist_last_error(NULL);
    fprintf(stderr, "hoist %s: %s\n", cmd, detail && detail[0] ? detail : hoist_strerror(rc));
    return rc == HOIST_INVALID_ARGUMENT ? HOIST_EXIT_USAGE : HOIST_EXIT_FAILURE;
  }
  int exit_code = HOIST_EXIT_OK;
  if (m.json) exit_code = print_json(&m, p, &r);
  else print_text(&m, p, &r);
  hoist__write_result_free(&r);
  return exit_code;
}
