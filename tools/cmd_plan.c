/* cmd_plan.c — `hoist plan`: discovers a pipeline and prints its
 * memory-aware load order (heavy components first) without loading any
 * tensor data.
 *
 *   hoist plan [--json] [--variant V] [--dtype T] [--device D] [--capacity BYTES] PIPELINE
 *
 * JSON (docs/cli.md, exactly these keys): {"pipeline":PATH,"components":[{"name",
 * "load_name","library","class","index","path","inferred_bytes":N|null,
 * "risk_rank","variant_priority","position"}],"order":[names]} with the
 * components in index order.  Missing component folders are reported on
 * stderr (and in the human table), not as extra JSON keys.  --device and
 * --capacity never change the order; the human form then also shows the
 * device's free memory against the plan's total. */
#include "cli_load_opts.h"

#include "hoist_tools.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void plan_usage(FILE *out) {
  fprintf(out,
          "usage: hoist plan [--json] [--variant V] [--dtype T] [--device D] [--capacity BYTES] "
          "PIPELINE\n"
          "\n"
          "Discovers PIPELINE (a folder with model_index.json, or a folder of weights)\n"
          "and prints the order its components load in: largest inferred size first\n"
          "(safetensors headers only, no tensor data read), then DiT, text encoder,\n"
          "image encoder, VAE, others; higher numbered variants (_2, _3) first.\n"
          "\n"
          "  --json            machine-readable output on stdout\n"
          "  --variant V       use the V weight files (name.V.safetensors), e.g. fp16\n"
          "  --dtype T         sizes as `hoist load --dtype T` places them (bf16|f16|f32):\n"
          "                    floating tensors in T, ints and bool as they are\n"
          "  --device D        host or cuda:N: show its free memory against the total\n"
          "  --capacity BYTES  host device capacity (e.g. 24G); implies --device host\n"
          "  -h, --help        this help\n"
          "\n"
          "exit codes: 0 ok, 2 usage, 3 invalid pipeline, 5 device error, 1 other\n");
}

static cJSON *str_or_null(const char *s) {
  return s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static int print_json(const hoist_pipeline *p) {
  cJSON *root = cJSON_CreateObject();
  cJSON *comps = cJSON_CreateArray();
  cJSON *order = cJSON_CreateArray();
  bool ok = root != NULL && comps != NULL && order != NULL &&
            cJSON_AddItemToObject(root, "pipeline", cJSON_CreateString(hoist_pipeline_path(p)));
  if (ok) {
    cJSON_AddItemToObject(root, "components", comps);
    cJSON_AddItemToObject(root, "order", order);
  } else {
    cJSON_Delete(comps);
    cJSON_Delete(order);
  }
  size_t n = hoist_pipeline_component_count(p);
  for (size_t i = 0; ok && i < n; i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    cJSON *o = cJSON_CreateObject();
    ok = o != NULL && cJSON_AddItemToArray(comps, o);
    if (!ok) {
      cJSON_Delete(o);
      break;
    }
    ok = cJSON_AddItemToObject(o, "name", cJSON_CreateString(c->name)) &&
         cJSON_AddItemToObject(o, "load_name", cJSON_CreateString(c->load_name)) &&
         cJSON_AddItemToObject(o, "library", str_or_null(c->library)) &&
         cJSON_AddItemToObject(o, "class", str_or_null(c->class_name)) &&
         cJSON_AddItemToObject(o, "index", cJSON_CreateNumber((double)c->index)) &&
         cJSON_AddItemToObject(o, "path", cJSON_CreateString(c->path));
    /* Byte counts and the variant priority are printed from their exact
     * decimal text: a double would round above 2^53, and the priority of a
     * long digit suffix is an unbounded integer in the reference. */
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, c->inferred_bytes);
    ok = ok &&
         cJSON_AddItemToObject(o, "inferred_bytes",
                               c->has_size ? cJSON_CreateRaw(num) : cJSON_CreateNull()) &&
         cJSON_AddItemToObject(o, "risk_rank", cJSON_CreateNumber(c->risk_rank)) &&
         cJSON_AddItemToObject(o, "variant_priority", cJSON_CreateRaw(c->variant_priority_text));
    snprintf(num, sizeof num, "%zu", c->position);
    ok = ok && cJSON_AddItemToObject(o, "position", cJSON_CreateRaw(num));
  }
  for (size_t i = 0; ok && i < n; i++)
    ok = cJSON_AddItemToArray(order, cJSON_CreateString(hoist_pipeline_ordered(p, i)->name));
  if (!ok) {
    cJSON_Delete(root);
    fprintf(stderr, "hoist plan: out of memory building JSON\n");
    return HOIST_EXIT_FAILURE;
  }
  return cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
}

static const char *rank_name(int rank) {
  switch (rank) {
  case 0: return "dit";
  case 1: return "text_encoder";
  case 2: return "image_encoder";
  case 3: return "vae";
  default: return "other";
  }
}

static int print_human(const hoist_pipeline *p, const char *variant, hoist_runtime *rt,
                       const char *device) {
  size_t n = hoist_pipeline_component_count(p);
  int wname = 4, wclass = 5;
  uint64_t total = 0;
  size_t files = 0, tensors = 0, unknown = 0;
  for (size_t i = 0; i < n; i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    int ln = (int)strlen(c->name), lc = c->class_name ? (int)strlen(c->class_name) : 1;
    if (ln > wname) wname = ln;
    if (lc > wclass) wclass = lc;
    if (c->has_size && __builtin_add_overflow(total, c->inferred_bytes, &total)) total = UINT64_MAX;
    files += c->file_count;
    tensors += c->tensor_count;
    unknown += !c->has_size;
  }
  if (wname > 40) wname = 40;
  if (wclass > 40) wclass = 40;
  printf("pipeline %s: %zu component%s, %s weights\n", hoist_pipeline_path(p), n,
         n == 1 ? "" : "s", variant != NULL ? variant : "default");
  printf("load order (largest inferred size first, then risk rank, variant, index):\n");
  printf("  %3s  %-*s  %-*s  %12s  %-16s  %5s  %7s\n", "pos", wname, "name", wclass, "class",
         "size", "rank", "files", "tensors");
  for (size_t i = 0; i < n; i++) {
    const hoist_component_info *c = hoist_pipeline_ordered(p, i);
    char hb[32], rk[24];
    const char *size = c->folder_missing ? "missing"
                       : c->has_size     ? cli_human_bytes(c->inferred_bytes, hb)
                                         : "unknown";
    snprintf(rk, sizeof rk, "%d %s", c->risk_rank, rank_name(c->risk_rank));
    printf("  %3zu  %-*s  %-*s  %12s  %-16s  %5zu  %7zu\n", c->position, wname, c->name, wclass,
           c->class_name ? c->class_name : "-", size, rk, c->file_count, c->tensor_count);
  }
  char hb[32];
  printf("total: %s (%" PRIu64 " bytes) in %zu file%s, %zu tensors", cli_human_bytes(total, hb),
         total, files, files == 1 ? "" : "s", tensors);
  if (unknown > 0) printf("; %zu component%s of unknown size", unknown, unknown == 1 ? "" : "s");
  printf("\n");
  if (rt != NULL) {
    uint64_t free_b = 0, total_b = 0;
    int rc = hoist__device_mem_info(rt, &free_b, &total_b);
    if (rc != HOIST_OK) return cli_load_report("plan", rt, rc);
    char fb[32], tb[32];
    printf("device %s (%s): %s free of %s; the plan needs %s: %s\n", device,
           hoist__device_name(rt), cli_human_bytes(free_b, fb), cli_human_bytes(total_b, tb),
           cli_human_bytes(total, hb),
           total <= free_b ? "fits" : "does not fit all resident (hoist load decides per component)");
  }
  return HOIST_EXIT_OK;
}

int cmd_plan(int argc, char **argv) {
  bool json = false;
  const char *variant = NULL, *device = NULL, *path = NULL, *dtype = NULL;
  uint64_t capacity = 0;
  bool have_capacity = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      plan_usage(stdout);
      return HOIST_EXIT_OK;
    } else if (strcmp(a, "--json") == 0) {
      json = true;
    } else if (strcmp(a, "--variant") == 0 || strncmp(a, "--variant=", 10) == 0) {
      variant = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
      if (variant == NULL || variant[0] == '\0')
        return cli_usage_error(argv[0], "--variant needs a name (e.g. fp16)");
    } else if (strcmp(a, "--dtype") == 0 || strncmp(a, "--dtype=", 8) == 0) {
      dtype = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
      if (dtype == NULL || !cli_dtype_target(dtype))
        return cli_usage_error(argv[0], "--dtype takes bf16, f16 or f32");
    } else if (strcmp(a, "--device") == 0 || strncmp(a, "--device=", 9) == 0) {
      device = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
      if (device == NULL || device[0] == '\0')
        return cli_usage_error(argv[0], "--device needs host or cuda:N");
    } else if (strcmp(a, "--capacity") == 0 || strncmp(a, "--capacity=", 11) == 0) {
      const char *v = a[10] == '=' ? a + 11 : (i + 1 < argc ? argv[++i] : NULL);
      if (v == NULL || !cli_parse_bytes(v, &capacity))
        return cli_usage_error(argv[0], "--capacity needs a byte count like 24G or 80000000000");
      have_capacity = true;
    } else if (strcmp(a, "--") == 0) {
      if (i + 2 != argc || path != NULL)
        return cli_usage_error(argv[0], "expected exactly one PIPELINE");
      path = argv[++i];
    } else if (a[0] == '-' && a[1] != '\0') {
      return cli_usage_error(argv[0], "unknown option '%s'", a);
    } else {
      if (path != NULL) return cli_usage_error(argv[0], "expected exactly one PIPELINE");
      path = a;
    }
  }
  if (path == NULL) return cli_usage_error(argv[0], "missing PIPELINE");

  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  int code = HOIST_EXIT_OK;
  if (device != NULL || have_capacity) {
    hoist_config cfg = HOIST_CONFIG_INIT;
    cfg.device = device != NULL ? device : "host";
    cfg.capacity = capacity;
    int rc = hoist_runtime_create(&cfg, &rt);
    if (rc != HOIST_OK) return cli_load_report("plan", NULL, rc);
  }
  hoist_pipeline_options opts = HOIST_PIPELINE_OPTIONS_INIT;
  opts.variant = variant;
  opts.dtype = dtype;
  int rc = hoist_pipeline_open(rt, path, &opts, &p);
  if (rc != HOIST_OK) {
    code = cli_load_report("plan", rt, rc);
    goto done;
  }
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    if (c->folder_missing)
      fprintf(stderr, "hoist plan: warning: component '%s': folder %s is missing (size unknown)\n",
              c->name, c->path);
  }
  code = json ? print_json(p) : print_human(p, variant, rt, device != NULL ? device : "host");
done:
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  return code;
}
