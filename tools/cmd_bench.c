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
          "usage: hoist bench load [--json] [--cold] [--repeat N] [--compare-dtype T] [OPTIONS]\n"
          "                        PIPELINE\n\n"
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
          "                     an even N puts each side first equally often\n%s",
          cli_load_opts_help);
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

static int bench_load(int argc, char **argv) {
  cli_load_opts o;
  cli_load_opts_init(&o);
  const char *path = NULL, *compare = NULL;
  int cold = 0;
  uint64_t repeat = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    }
    if (strcmp(argv[i], "--cold") == 0) {
      cold = 1;
      continue;
    }
    if (strcmp(argv[i], "--repeat") == 0) {
      if (i + 1 >= argc || !cli_parse_uint(argv[++i], 1, 100, &repeat))
        return cli_usage_error("bench load", "--repeat takes 1..100");
      continue;
    }
    if (strcmp(argv[i], "--compare-dtype") == 0) {
      if (i + 1 >= argc || !cli_dtype_target(argv[i + 1]))
        return cli_usage_error("bench load", "--compare-dtype takes bf16, f16 or f32");
      compare = argv[++i];
      continue;
    }
    int r = cli_load_opt("bench load", argc, argv, &i, &o);
    if (r < 0) return HOIST_EXIT_USAGE;
    if (r > 0) continue;
    if (argv[i][0] == '-') return cli_usage_error("bench load", "unknown option %s", argv[i]);
    if (path != NULL) return cli_usage_error("bench load", "one PIPELINE only");
    path = argv[i];
  }
  if (path == NULL) return cli_usage_error("bench load", "missing PIPELINE");
  if (o.group.given || o.group.devices != NULL || o.load.shard != NULL)
    return cli_usage_error("bench load", "loads with ranks are measured by `hoist load --repeat N` "
                                         "(bench/multi_gpu.sh)");
  static volatile int cancel;
  cli_install_cancel(&cancel);
  o.load.cancel = &cancel;
  /* The compared configuration: the same options with --dtype T. */
  cli_load_opts oc = o;
  oc.load.dtype = compare;

  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  int rc = hoist_runtime_create(&o.cfg, &rt);
  if (rc != HOIST_OK) return cli_report("bench load", NULL, rc);
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = o.variant;
  po.dtype = o.load.dtype; /* order by the bytes that will land */
  rc = hoist_pipeline_open(rt, path, &po, &p);
  if (rc != HOIST_OK) {
    int code = cli_load_report("bench load", rt, rc);
    hoist_runtime_close(rt);
    return code;
  }
  const char *files[4096];
  size_t nfiles = pipeline_files(p, files, 4096);
  const char *device = o.cfg.device != NULL ? o.cfg.device : "host";
  int is_cuda = strncmp(device, "cuda", 4) == 0;
  unsigned threads = o.cfg.threads != 0 ? o.cfg.threads : hoist__engine_default_threads();

  /* Limits first, in the same process and run. */
  double h2d = 0; /* shown as 0 when it cannot be measured */
  if (is_cuda) (void)hoist__device_h2d_rate(rt, 1u << 30, 10, &h2d);
  double read_buffered = 0, read_direct = 0;
  if (cold) {
    bench_evict(files, nfiles);
    read_buffered = bench_read_rate(files, nfiles, threads, 16u << 20, 0);
    bench_evict(files, nfiles);
    read_direct = bench_read_rate(files, nfiles, threads, 16u << 20, 1);
  }

  run_series *base = calloc(1, sizeof *base), *cmp = calloc(1, sizeof *cmp);
  double ratio[100];
  int code = HOIST_EXIT_OK;
  if (base == NULL || cmp == NULL) {
    code = cli_report("bench load", NULL, HOIST_NO_MEMORY);
    goto done;
  }
  base->opts = &o;
  cmp->opts = &oc;
  /* Warm-up: page cache, engine ring, CUDA context (and the compared
   * configuration's first-run costs). */
  if (!cold) {
    rc = series_run(rt, path, base, 0);
    if (rc == HOIST_OK && compare != NULL && (rc = series_run(rt, path, cmp, 0)) != HOIST_OK)
      fprintf(stderr, "hoist bench load: the compared load (--dtype %s) failed\n", compare);
  }
  /* With --compare-dtype the two alternate, each pair in the other order
   * from the last, so drift and order effects fall on both alike. */
  for (uint64_t r = 0; r < repeat && rc == HOIST_OK; r++) {
    run_series *order[2] = {base, cmp};
    if (r % 2 == 1) {
      order[0] = cmp;
      order[1] = base;
    }
    for (int k = 0; k < 2 && rc == HOIST_OK; k++) {
      if (order[k] == cmp && compare == NULL) continue;
      if (cold) bench_evict(files, nfiles);
      rc = series_run(rt, path, order[k], r);
      if (rc != HOIST_OK && order[k] == cmp)
        fprintf(stderr, "hoist bench load: the compared load (--dtype %s) failed\n", compare);
      if (!o.json && rc == HOIST_OK)
        fprintf(stderr, "  run %llu%s: %.3f s, %.2f GB/s\n", (unsigned long long)r + 1,
                order[k] == cmp ? " (compared)" : "", order[k]->seconds[r], order[k]->gbps[r]);
    }
    if (rc == HOIST_OK && compare != NULL) ratio[r] = cmp->gbps[r] / base->gbps[r];
  }
  if (rc != HOIST_OK) {
    code = cli_load_report("bench load", rt, rc);
    goto done;
  }
  double med, worst, best, cmed = 0, cworst = 0, cbest = 0, rmed = 0, rlo = 0, rhi = 0;
  spread(base->gbps, repeat, &med, &worst, &best);
  if (compare != NULL) {
    spread(cmp->gbps, repeat, &cmed, &cworst, &cbest);
    spread(ratio, repeat, &rmed, &rlo, &rhi);
  }
  double limit = cold ? (read_buffered > read_direct ? read_buffered : read_direct) : h2d;
  if (o.json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", device);
    cJSON_AddStringToObject(root, "mode", cold ? "cold" : "warm");
    cJSON_AddNumberToObject(root, "bytes", (double)base->bytes);
    cJSON_AddNumberToObject(root, "files", (double)nfiles);
    cJSON_AddNumberToObject(root, "runs", (double)repeat);
    cJSON_AddNumberToObject(root, "median_GBps", med);
    cJSON_AddNumberToObject(root, "max_GBps", best);
    cJSON_AddNumberToObject(root, "min_GBps", worst);
    cJSON_AddNumberToObject(root, "h2d_pinned_GBps", h2d);
    if (cold) {
      cJSON_AddNumberToObject(root, "read_buffered_GBps", read_buffered);
      cJSON_AddNumberToObject(root, "read_direct_GBps", read_direct);
    }
    cJSON_AddNumberToObject(root, "ratio_to_limit", limit > 0 ? med / limit : 0);
    cJSON_AddNumberToObject(root, "threads", threads);
    /* Device memory: the arenas (target bytes with --dtype) and the peak in
     * use during a load above what was in use before it (mem_info sampled
     * at every progress callback; arenas + scratch when converting). */
    cJSON_AddNumberToObject(root, "device_bytes", (double)base->arenas);
    cJSON_AddNumberToObject(root, "peak_device_bytes", (double)base->peak);
    cJSON_AddStringToObject(root, "dtype", o.load.dtype != NULL ? o.load.dtype : "keep");
    cJSON_AddBoolToObject(root, "verify", o.load.verify != 0);
    if (compare != NULL) {
      cJSON *c = cJSON_AddObjectToObject(root, "compare");
      if (c != NULL) {
        cJSON_AddStringToObject(c, "dtype", compare);
        cJSON_AddNumberToObject(c, "median_GBps", cmed);
        cJSON_AddNumberToObject(c, "max_GBps", cbest);
        cJSON_AddNumberToObject(c, "min_GBps", cworst);
        cJSON_AddNumberToObject(c, "device_bytes", (double)cmp->arenas);
        cJSON_AddNumberToObject(c, "peak_device_bytes", (double)cmp->peak);
        /* Per pair: the compared run's speed over the other's. */
        cJSON_AddNumberToObject(c, "ratio_median", rmed);
        cJSON_AddNumberToObject(c, "ratio_min", rlo);
        cJSON_AddNumberToObject(c, "ratio_max", rhi);
      }
    }
    code = cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
  } else {
    char a[32];
    printf("%s, %zu files, %s, %s: median %.2f GB/s (min %.2f, max %.2f) over %llu runs\n", path,
           nfiles, cli_human_bytes(base->bytes, a), cold ? "cold" : "warm", med, worst, best,
           (unsigned long long)repeat);
    if (is_cuda) printf("pinned host-to-device limit: %.2f GB/s\n", h2d);
    if (cold) printf("raw read: buffered %.2f GB/s, O_DIRECT %.2f GB/s\n", read_buffered, read_direct);
    if (limit > 0) printf("hoist / limit: %.2f\n", med / limit);
    char b[32];
    printf("device: arenas %s, peak during a load %s\n", cli_human_bytes(base->arenas, a),
           cli_human_bytes(base->peak, b));
    if (compare != NULL) {
      printf("with --dtype %s: median %.2f GB/s (min %.2f, max %.2f); arenas %s, peak %s\n",
             compare, cmed, cworst, cbest, cli_human_bytes(cmp->arenas, a),
             cli_human_bytes(cmp->peak, b));
      printf("paired speed ratio (--dtype %s over the other): median %.3f (min %.3f, max %.3f) "
             "over %llu pair%s\n",
             compare, rmed, rlo, rhi, (unsigned long long)repeat, repeat == 1 ? "" : "s");
    }
  }
done:
  free(base);
  free(cmp);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
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
