/* cmd_shards.c — `hoist shards`: what each rank of a group of W reads of a
 * pipeline, without loading: for every tensor split by --fsdp (FSDP2's
 * dim-0 chunks) or --shard (tensor-parallel equal parts), its dimension,
 * the indices this rank holds, its local shape and the runs of the file it
 * reads.  The library's own rules (hoist__shard_describe), so this is what
 * `hoist load --rank R --world-size W` does. */
#include "cli_load_opts.h"

#include "hoist_tools.h"

#include <string.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: hoist shards [--json] --world-size W [--rank R] [--fsdp LIST]\n"
          "                    [--shard PLAN] [--variant V] [--all] PIPELINE\n\n"
          "Prints what rank R (every rank when --rank is not given) of a group of W\n"
          "reads of each split tensor (--all: of every tensor).\n\n"
          "  --fsdp LIST    components loaded as FSDP2 shards (dim 0, torch.chunk)\n"
          "  --shard PLAN   NAME:GLOB=DIM[,..]: tensor-parallel equal parts on DIM\n");
}

typedef struct shards_out {
  int json, all;
  uint32_t rank;
  cJSON *tensors;
  uint64_t bytes, split;
} shards_out;

static cJSON *u64_array(const uint64_t *v, uint32_t n) {
  cJSON *a = cJSON_CreateArray();
  for (uint32_t k = 0; k < n; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[k]));
  return a;
}

static void shape_text(const uint64_t *v, uint32_t n, char *buf, size_t size) {
  size_t at = (size_t)snprintf(buf, size, "[");
  for (uint32_t k = 0; k < n && at < size; k++)
    at += (size_t)snprintf(buf + at, size - at, "%s%llu", k > 0 ? "," : "",
                           (unsigned long long)v[k]);
  if (at < size) snprintf(buf + at, size - at, "]");
}

static void visit(void *user, const hoist__shard_view *v) {
  shards_out *o = user;
  const hoist_tensor_info *t = v->tensor;
  const uint64_t nbytes = v->pieces * v->piece_bytes;
  o->bytes += nbytes;
  o->split += v->split != 0;
  if (!v->split && !o->all) return;
  if (o->json) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "component", v->component);
    cJSON_AddStringToObject(e, "tensor", t->name);
    cJSON_AddStringToObject(e, "dtype", hoist_dtype_name(t->dtype));
    cJSON_AddItemToObject(e, "shape", u64_array(t->shape, t->ndim));
    cJSON_AddStringToObject(e, "split", !v->split ? "none" : v->kind == 1 ? "fsdp" : "tp");
    cJSON_AddNumberToObject(e, "dim", v->dim);
    cJSON_AddNumberToObject(e, "offset", (double)v->offset);
    cJSON_AddNumberToObject(e, "length", (double)v->length);
    cJSON_AddNumberToObject(e, "padded", (double)v->padded);
    cJSON_AddItemToObject(e, "local_shape", u64_array(v->local_shape, t->ndim));
    cJSON_AddNumberToObject(e, "nbytes", (double)nbytes);
    cJSON_AddNumberToObject(e, "data_begin", (double)t->begin);
    cJSON *runs = cJSON_AddObjectToObject(e, "runs");
    cJSON_AddNumberToObject(runs, "count", (double)v->pieces);
    cJSON_AddNumberToObject(runs, "bytes", (double)v->piece_bytes);
    cJSON_AddNumberToObject(runs, "first", (double)v->first);
    cJSON_AddNumberToObject(runs, "stride", (double)v->stride);
    cJSON_AddItemToArray(o->tensors, e);
    return;
  }
  char g[160], l[160];
  shape_text(t->shape, t->ndim, g, sizeof g);
  shape_text(v->local_shape, t->ndim, l, sizeof l);
  if (!v->split)
    printf("  %s/%s %s: whole, %llu bytes\n", v->component, t->name, g, (unsigned long long)nbytes);
  else
    printf("  %s/%s %s -> %s: %s, dim %u [%llu, %llu), %llu run%s of %llu bytes every %llu\n",
           v->component, t->name, g, l, v->kind == 1 ? "fsdp" : "tp", v->dim,
           (unsigned long long)v->offset, (unsigned long long)(v->offset + v->length),
           (unsigned long long)v->pieces, v->pieces == 1 ? "" : "s",
           (unsigned long long)v->piece_bytes, (unsigned long long)v->stride);
}

/* The command line of `hoist shards`. */
typedef struct shards_args {
  const char *path, *fsdp, *shard, *variant;
  uint64_t world, only; /* only: UINT64_MAX for every rank */
} shards_args;

/* Parses argv into a and o's flags; -1 for --help (printed), else an exit
 * code (HOIST_EXIT_OK to go on). */
static int parse_args(int argc, char **argv, shards_args *a, shards_out *o) {
  *a = (shards_args){.only = UINT64_MAX};
  for (int i = 1; i < argc; i++) {
    const char *x = argv[i];
    const bool has = i + 1 < argc;
    if (strcmp(x, "--help") == 0 || strcmp(x, "-h") == 0) {
      usage(stdout);
      return -1;
    } else if (strcmp(x, "--json") == 0) {
      o->json = 1;
    } else if (strcmp(x, "--all") == 0) {
      o->all = 1;
    } else if (strcmp(x, "--world-size") == 0 && has) {
      if (!cli_parse_uint(argv[++i], 1, 4096, &a->world))
        return cli_usage_error("shards", "--world-size takes 1..4096");
    } else if (strcmp(x, "--rank") == 0 && has) {
      if (!cli_parse_uint(argv[++i], 0, 4095, &a->only))
        return cli_usage_error("shards", "--rank takes 0..4095");
    } else if (strcmp(x, "--fsdp") == 0 && has) {
      a->fsdp = argv[++i];
    } else if (strcmp(x, "--shard") == 0 && has) {
      a->shard = argv[++i];
    } else if (strcmp(x, "--variant") == 0 && has) {
      a->variant = argv[++i];
    } else if (x[0] == '-') {
      return cli_usage_error("shards", "unknown option or missing value: %s", x);
    } else if (a->path != NULL) {
      return cli_usage_error("shards", "one PIPELINE only");
    } else {
      a->path = x;
    }
  }
  if (a->path == NULL || a->world == 0)
    return cli_usage_error("shards", "needs --world-size W and a PIPELINE");
  if (a->only != UINT64_MAX && a->only >= a->world)
    return cli_usage_error("shards", "--rank %llu of --world-size %llu",
                           (unsigned long long)a->only, (unsigned long long)a->world);
  return HOIST_EXIT_OK;
}

/* Describes what rank r reads: into ranks (JSON) or on stdout. */
static int describe_rank(const hoist_pipeline *p, const shards_args *a, uint32_t r,
                         shards_out *o, cJSON *ranks) {
  o->rank = r;
  o->bytes = o->split = 0;
  cJSON *entry = NULL;
  if (o->json) {
    entry = cJSON_CreateObject();
    cJSON_AddNumberToObject(entry, "rank", r);
    o->tensors = cJSON_AddArrayToObject(entry, "tensors");
    cJSON_AddItemToArray(ranks, entry);
  } else {
    printf("rank %u of %llu:\n", r, (unsigned long long)a->world);
  }
  const int rc = hoist__shard_describe(NULL, p, a->fsdp, a->shard, r, (uint32_t)a->world, visit, o);
  if (entry != NULL) {
    cJSON_AddNumberToObject(entry, "bytes", (double)o->bytes);
    cJSON_AddNumberToObject(entry, "split_tensors", (double)o->split);
  } else if (rc == HOIST_OK) {
    char b[32];
    printf("  rank %u reads %s (%llu tensors split)\n", r, cli_human_bytes(o->bytes, b),
           (unsigned long long)o->split);
  }
  return rc;
}

int cmd_shards(int argc, char **argv) {
  shards_args a;
  shards_out o = {0};
  const int parsed = parse_args(argc, argv, &a, &o);
  if (parsed != HOIST_EXIT_OK) return parsed < 0 ? HOIST_EXIT_OK : parsed;
  hoist_pipeline *p = NULL;
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = a.variant;
  int rc = hoist_pipeline_open(NULL, a.path, &po, &p);
  if (rc != HOIST_OK) return cli_load_report("shards", NULL, rc);
  cJSON *root = o.json ? cJSON_CreateObject() : NULL, *ranks = NULL;
  if (root != NULL) {
    cJSON_AddNumberToObject(root, "world_size", (double)a.world);
    ranks = cJSON_AddArrayToObject(root, "ranks");
  }
  for (uint32_t r = 0; r < a.world && rc == HOIST_OK; r++)
    if (a.only == UINT64_MAX || r == a.only) rc = describe_rank(p, &a, r, &o, ranks);
  int code = rc == HOIST_OK ? HOIST_EXIT_OK : cli_load_report("shards", NULL, rc);
  if (root != NULL && rc == HOIST_OK) code = cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
  else cJSON_Delete(root);
  hoist_pipeline_close(p);
  return code;
}
