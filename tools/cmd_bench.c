/* cmd_bench.c — `hoist bench load`: end-to-end load throughput (open the
 * pipeline, load every tensor, synchronize) over several runs, warm or cold,
 * with the hardware limits measured in the same run: pinned H2D bandwidth
 * on cuda, and the files' raw parallel read rate (buffered and O_DIRECT)
 * for cold runs. */
#include "bench_attach.h"
#include "bench_limits.h"
#include "bench_oom.h"
#include "cli_load_opts.h"
#include "hoist_tools.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: hoist bench load [--json] [--cold] [--repeat N] [--compare-dtype T]\n"
          "                        [--compare-manifest FILE] [OPTIONS] PIPELINE\n\n"
          "Loads PIPELINE N times (default 3, after one warm-up run when warm) and\n"
          "reports median/min/max GB/s next to the hardware limit measured in the same\n"
          "run: pinned host-to-device bandwidth (cuda) and, with --cold, the raw\n"
          "parallel read rate of the same files after evicting them from the page cache.\n\n"
          "options:\n"
          "  --cold             evict the files before every run\n"
          "  --repeat N         timed runs (default 3)\n"
          "  --compare-dtype T  also load with --dtype T (bf16|f16|f32) in the same process,\n"
          "                     alternating with the runs as configured, and report the\n"
          "                     median of the paired speed ratios (what converting costs);\n"
          "                     an even N puts each side first equally often\n"
          "  --compare-manifest FILE\n"
          "                     the same with --manifest FILE: what checking every piece\n"
          "                     against a manifest costs (pairs as with --compare-dtype)\n%s%s",
          cli_load_opts_help, cli_manifest_opt_help);
}

/* The pipeline's safetensors files (paths owned by p). */
static size_t pipeline_files(const hoist_pipeline *p, const char **out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    for (size_t f = 0; f < c->file_count && n < cap; f++) {
      size_t len = strlen(c->files[f]);
      if (len > 12 && strcmp(c->files[f] + len - 12, ".safetensors") == 0) out[n++] = c->files[f];
    }
  }
  return n;
}

/* One load; *peak (device bytes above the start, sampled from progress) and
 * *arenas (the components' device bytes) grow to the largest seen. */
static int one_run(hoist_runtime *rt, const char *path, cli_load_opts *o, double *seconds,
                   uint64_t *bytes, uint64_t *peak, uint64_t *arenas) {
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = o->variant;
  po.dtype = o->load.dtype; /* order by the bytes that will land */
  double t0 = cli_now_seconds();
  int rc = hoist_pipeline_open(rt, path, &po, &p);
  cli_device_peak pk = {0};
  hoist_load_options lo = o->load;
  cli_device_peak_start(&pk, rt);
  pk.chain = o->load.progress;
  pk.chain_user = o->load.progress_user;
  lo.progress = cli_device_peak_progress;
  lo.progress_user = &pk;
  if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &lo, &l);
  *seconds = cli_now_seconds() - t0;
  if (rc == HOIST_OK) {
    *bytes = hoist_loaded_total_bytes(l);
    uint64_t sum = 0;
    for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
      sum += hoist_loaded_component(l, i)->device_bytes;
    if (sum > *arenas) *arenas = sum;
    if (cli_device_peak_bytes(&pk) > *peak) *peak = cli_device_peak_bytes(&pk);
  }
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  return rc;
}

/* The timed runs of one configuration. */
typedef struct run_series {
  cli_load_opts *opts;
  double seconds[100];
  double gbps[100];
  uint64_t bytes, peak, arenas;
} run_series;

static int series_run(hoist_runtime *rt, const char *path, run_series *s, uint64_t r) {
  double t = 0;
  int rc = one_run(rt, path, s->opts, &t, &s->bytes, &s->peak, &s->arenas);
  if (rc == HOIST_OK) {
    s->seconds[r] = t;
    s->gbps[r] = (double)s->bytes / t / 1e9;
  }
  return rc;
}

/* Median (of the middle two when n is even), least and greatest of
 * v[0..n), n >= 1 (sorted in place). */
static void spread(double *v, uint64_t n, double *med, double *lo, double *hi) {
  qsort(v, (size_t)n, sizeof v[0], cli_cmp_double);
  *med = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  *lo = v[0];
  *hi = v[n - 1];
}

/* One `hoist bench load`: its options, the pipeline's files, the limits
 * measured in the same run, and the timed series. */
typedef struct bench_load_run {
  cli_load_opts o;  /* the configuration */
  cli_load_opts oc; /* the compared one: the same with --dtype T or --manifest F */
  const char *path, *compare, *compare_manifest, *device;
  char label[1100]; /* what the compared runs add ("--dtype bf16"); "" when none */
  int cold, is_cuda;
  uint64_t repeat;
  unsigned threads;
  const char *files[4096];
  size_t nfiles;
  double h2d, read_buffered, read_direct; /* 0 where not measured */
  run_series base, cmp;
  double ratio[100]; /* per pair: the compared run's speed over the other's */
} bench_load_run;

/* Parses the command line into b.  Returns -1 to go on, else the exit code
 * (help printed, or a usage error). */
static int bench_load_args(int argc, char **argv, bench_load_run *b) {
  cli_load_opts_init(&b->o);
  b->o.manifest_ok = 1;
  b->repeat = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    }
    if (strcmp(argv[i], "--cold") == 0) {
      b->cold = 1;
      continue;
    }
    if (strcmp(argv[i], "--repeat") == 0) {
      if (i + 1 >= argc || !cli_parse_uint(argv[++i], 1, 100, &b->repeat))
        return cli_usage_error("bench load", "--repeat takes 1..100");
      continue;
    }
    if (strcmp(argv[i], "--compare-dtype") == 0) {
      if (i + 1 >= argc || !cli_dtype_target(argv[i + 1]))
        return cli_usage_error("bench load", "--compare-dtype takes bf16, f16 or f32");
      b->compare = argv[++i];
      continue;
    }
    if (strcmp(argv[i], "--compare-manifest") == 0) {
      if (i + 1 >= argc) return cli_usage_error("bench load", "--compare-manifest needs a FILE");
      b->compare_manifest = argv[++i];
      continue;
    }
    int r = cli_load_opt("bench load", argc, argv, &i, &b->o);
    if (r < 0) return HOIST_EXIT_USAGE;
    if (r > 0) continue;
    if (argv[i][0] == '-') return cli_usage_error("bench load", "unknown option %s", argv[i]);
    if (b->path != NULL) return cli_usage_error("bench load", "one PIPELINE only");
    b->path = argv[i];
  }
  if (b->path == NULL) return cli_usage_error("bench load", "missing PIPELINE");
  if (b->compare != NULL && b->compare_manifest != NULL)
    return cli_usage_error("bench load", "compare one thing at a time: --compare-dtype or "
                                         "--compare-manifest");
  if (b->o.group.given || b->o.group.devices != NULL || b->o.load.shard != NULL)
    return cli_usage_error("bench load", "loads with ranks are measured by `hoist load --repeat N` "
                                         "(bench/multi_gpu.sh)");
  return -1;
}

/* The compared configuration: the same options with --dtype T, or with
 * --manifest FILE (read here: a bad one is refused before any load).
 * Returns the exit code (0: go on). */
static int bench_load_compared(bench_load_run *b) {
  b->oc = b->o;
  b->oc.manifest = NULL; /* o owns its manifest */
  if (b->compare != NULL) {
    b->oc.load.dtype = b->compare;
    snprintf(b->label, sizeof b->label, "--dtype %s", b->compare);
  } else if (b->compare_manifest != NULL) {
    b->oc.manifest_path = b->compare_manifest;
    int code = cli_load_manifest("bench load", &b->oc);
    if (code != HOIST_EXIT_OK) return code;
    snprintf(b->label, sizeof b->label, "--manifest %s", b->compare_manifest);
  }
  return HOIST_EXIT_OK;
}

/* The hardware limits, in the same process and run, before the loads:
 * the pinned host-to-device rate on cuda, the files' raw read rates when
 * cold. */
static void bench_load_limits(hoist_runtime *rt, bench_load_run *b) {
  if (b->is_cuda) (void)hoist__device_h2d_rate(rt, 1u << 30, 10, &b->h2d);
  if (b->cold) {
    bench_evict(b->files, b->nfiles);
    b->read_buffered = bench_read_rate(b->files, b->nfiles, b->threads, 16u << 20, 0);
    bench_evict(b->files, b->nfiles);
    b->read_direct = bench_read_rate(b->files, b->nfiles, b->threads, 16u << 20, 1);
  }
}

/* The warm-up (when warm) and the timed runs.  With --compare-dtype the two
 * configurations alternate, each pair in the other order from the last, so
 * drift and order effects fall on both alike. */
static int bench_load_runs(hoist_runtime *rt, bench_load_run *b) {
  run_series *base = &b->base, *cmp = &b->cmp;
  int rc = HOIST_OK;
  /* Warm-up: page cache, engine ring, CUDA context (and the compared
   * configuration's first-run costs). */
  if (!b->cold) {
    rc = series_run(rt, b->path, base, 0);
    if (rc == HOIST_OK && b->label[0] != '\0' && (rc = series_run(rt, b->path, cmp, 0)) != HOIST_OK)
      fprintf(stderr, "hoist bench load: the compared load (%s) failed\n", b->label);
  }
  for (uint64_t r = 0; r < b->repeat && rc == HOIST_OK; r++) {
    run_series *order[2] = {base, cmp};
    if (r % 2 == 1) {
      order[0] = cmp;
      order[1] = base;
    }
    for (int k = 0; k < 2 && rc == HOIST_OK; k++) {
      if (order[k] == cmp && b->label[0] == '\0') continue;
      if (b->cold) bench_evict(b->files, b->nfiles);
      rc = series_run(rt, b->path, order[k], r);
      if (rc != HOIST_OK && order[k] == cmp)
        fprintf(stderr, "hoist bench load: the compared load (%s) failed\n", b->label);
      if (!b->o.json && rc == HOIST_OK)
        fprintf(stderr, "  run %llu%s: %.3f s, %.2f GB/s\n", (unsigned long long)r + 1,
                order[k] == cmp ? " (compared)" : "", order[k]->seconds[r], order[k]->gbps[r]);
    }
    if (rc == HOIST_OK && b->label[0] != '\0') b->ratio[r] = cmp->gbps[r] / base->gbps[r];
  }
  return rc;
}

/* What the report states: the spreads of both series and of the ratios,
 * and the limit the median is compared with. */
typedef struct bench_load_stats {
  double med, worst, best, cmed, cworst, cbest, rmed, rlo, rhi, limit;
} bench_load_stats;

static void bench_load_stats_of(bench_load_run *b, bench_load_stats *st) {
  memset(st, 0, sizeof *st);
  spread(b->base.gbps, b->repeat, &st->med, &st->worst, &st->best);
  if (b->label[0] != '\0') {
    spread(b->cmp.gbps, b->repeat, &st->cmed, &st->cworst, &st->cbest);
    spread(b->ratio, b->repeat, &st->rmed, &st->rlo, &st->rhi);
  }
  st->limit = b->cold ? (b->read_buffered > b->read_direct ? b->read_buffered : b->read_direct)
                      : b->h2d;
}

static int bench_load_json(const bench_load_run *b, const bench_load_stats *st) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "device", b->device);
  cJSON_AddStringToObject(root, "mode", b->cold ? "cold" : "warm");
  cJSON_AddNumberToObject(root, "bytes", (double)b->base.bytes);
  cJSON_AddNumberToObject(root, "files", (double)b->nfiles);
  cJSON_AddNumberToObject(root, "runs", (double)b->repeat);
  cJSON_AddNumberToObject(root, "median_GBps", st->med);
  cJSON_AddNumberToObject(root, "max_GBps", st->best);
  cJSON_AddNumberToObject(root, "min_GBps", st->worst);
  cJSON_AddNumberToObject(root, "h2d_pinned_GBps", b->h2d);
  if (b->cold) {
    cJSON_AddNumberToObject(root, "read_buffered_GBps", b->read_buffered);
    cJSON_AddNumberToObject(root, "read_direct_GBps", b->read_direct);
  }
  cJSON_AddNumberToObject(root, "ratio_to_limit", st->limit > 0 ? st->med / st->limit : 0);
  cJSON_AddNumberToObject(root, "threads", b->threads);
  /* Device memory: the arenas (target bytes with --dtype) and the peak in
   * use during a load above what was in use before it (mem_info sampled
   * at every progress callback; arenas + scratch when converting). */
  cJSON_AddNumberToObject(root, "device_bytes", (double)b->base.arenas);
  cJSON_AddNumberToObject(root, "peak_device_bytes", (double)b->base.peak);
  cJSON_AddStringToObject(root, "dtype", b->o.load.dtype != NULL ? b->o.load.dtype : "keep");
  cJSON_AddBoolToObject(root, "verify", b->o.load.verify != 0);
  if (b->o.manifest_path != NULL)
    cJSON_AddStringToObject(root, "manifest", b->o.manifest_path);
  else
    cJSON_AddNullToObject(root, "manifest");
  if (b->label[0] != '\0') {
    cJSON *c = cJSON_AddObjectToObject(root, "compare");
    if (c != NULL) {
      if (b->compare != NULL) cJSON_AddStringToObject(c, "dtype", b->compare);
      if (b->compare_manifest != NULL) cJSON_AddStringToObject(c, "manifest", b->compare_manifest);
      cJSON_AddNumberToObject(c, "median_GBps", st->cmed);
      cJSON_AddNumberToObject(c, "max_GBps", st->cbest);
      cJSON_AddNumberToObject(c, "min_GBps", st->cworst);
      cJSON_AddNumberToObject(c, "device_bytes", (double)b->cmp.arenas);
      cJSON_AddNumberToObject(c, "peak_device_bytes", (double)b->cmp.peak);
      /* Per pair: the compared run's speed over the other's. */
      cJSON_AddNumberToObject(c, "ratio_median", st->rmed);
      cJSON_AddNumberToObject(c, "ratio_min", st->rlo);
      cJSON_AddNumberToObject(c, "ratio_max", st->rhi);
    }
  }
  return cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
}

static void bench_load_text(const bench_load_run *b, const bench_load_stats *st) {
  char a[32], c[32];
  printf("%s, %zu files, %s, %s: median %.2f GB/s (min %.2f, max %.2f) over %llu runs\n", b->path,
         b->nfiles, cli_human_bytes(b->base.bytes, a), b->cold ? "cold" : "warm", st->med,
         st->worst, st->best, (unsigned long long)b->repeat);
  if (b->is_cuda) printf("pinned host-to-device limit: %.2f GB/s\n", b->h2d);
  if (b->cold)
    printf("raw read: buffered %.2f GB/s, O_DIRECT %.2f GB/s\n", b->read_buffered,
           b->read_direct);
  if (st->limit > 0) printf("hoist / limit: %.2f\n", st->med / st->limit);
  printf("device: arenas %s, peak during a load %s\n", cli_human_bytes(b->base.arenas, a),
         cli_human_bytes(b->base.peak, c));
  if (b->label[0] != '\0') {
    printf("with %s: median %.2f GB/s (min %.2f, max %.2f); arenas %s, peak %s\n", b->label,
           st->cmed, st->cworst, st->cbest, cli_human_bytes(b->cmp.arenas, a),
           cli_human_bytes(b->cmp.peak, c));
    printf("paired speed ratio (%s over the other): median %.3f (min %.3f, max %.3f) "
           "over %llu pair%s\n",
           b->label, st->rmed, st->rlo, st->rhi, (unsigned long long)b->repeat,
           b->repeat == 1 ? "" : "s");
    if (st->rmed > 0)
      printf("so a load with %s takes %+.1f %% of the other's time (median pair)\n", b->label,
             (1.0 / st->rmed - 1.0) * 100.0);
  }
}

static int bench_load(int argc, char **argv) {
  bench_load_run *b = calloc(1, sizeof *b);
  if (b == NULL) return cli_report("bench load", NULL, HOIST_NO_MEMORY);
  int code = bench_load_args(argc, argv, b);
  if (code >= 0) {
    free(b);
    return code;
  }
  static volatile int cancel;
  cli_install_cancel(&cancel);
  b->o.load.cancel = &cancel;
  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  int rc = HOIST_OK;
  if ((code = cli_load_manifest("bench load", &b->o)) != HOIST_EXIT_OK ||
      (code = bench_load_compared(b)) != HOIST_EXIT_OK)
    goto done;
  b->base.opts = &b->o;
  b->cmp.opts = &b->oc;
  rc = hoist_runtime_create(&b->o.cfg, &rt);
  if (rc != HOIST_OK) {
    code = cli_report("bench load", NULL, rc);
    goto done;
  }
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = b->o.variant;
  po.dtype = b->o.load.dtype; /* order by the bytes that will land */
  rc = hoist_pipeline_open(rt, b->path, &po, &p);
  if (rc != HOIST_OK) {
    code = cli_load_report("bench load", rt, rc);
    goto done;
  }
  b->nfiles = pipeline_files(p, b->files, 4096);
  b->device = b->o.cfg.device != NULL ? b->o.cfg.device : "host";
  b->is_cuda = strncmp(b->device, "cuda", 4) == 0;
  b->threads = b->o.cfg.threads != 0 ? b->o.cfg.threads : hoist__engine_default_threads();

  bench_load_limits(rt, b);
  rc = bench_load_runs(rt, b);
  if (rc != HOIST_OK) {
    code = cli_load_report("bench load", rt, rc);
    goto done;
  }
  bench_load_stats st;
  bench_load_stats_of(b, &st);
  if (b->o.json)
    code = bench_load_json(b, &st);
  else
    bench_load_text(b, &st);
done:
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  cli_load_opts_free(&b->oc);
  cli_load_opts_free(&b->o);
  free(b);
  return code;
}

int cmd_bench(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: hoist bench load [OPTIONS] PIPELINE\n       hoist bench oom [OPTIONS] "
            "[PIPELINE]\n       hoist bench attach [OPTIONS] SOCKET [PIPELINE]\n");
    return argc < 2 ? HOIST_EXIT_USAGE : HOIST_EXIT_OK;
  }
  if (strcmp(argv[1], "load") == 0) return bench_load(argc - 1, argv + 1);
  if (strcmp(argv[1], "oom") == 0) return bench_oom(argc - 1, argv + 1);
  if (strcmp(argv[1], "attach") == 0) return bench_attach(argc - 1, argv + 1);
  return cli_usage_error("bench", "unknown benchmark '%s' (available: load, oom, attach)", argv[1]);
}
