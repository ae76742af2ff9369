/* trace_load.c — what paces a load on the device: a CUPTI activity trace
 * (every host-to-device copy and kernel with GPU timestamps) of whole
 * pipeline loads through the public API, summarized per load.
 *
 *   trace_load [--device cuda:N] [--threads N] [--chunk BYTES] [--repeat N]
 *              [--dtype T] [--csv FILE] PIPELINE
 *
 * Runs a warm-up load (and a --dtype one when given), then N plain loads,
 * alternating with N --dtype loads when given (so both see the same
 * machine; an even N puts each first equally often), and prints one line
 * per traced load:
 *   - window: first copy start to last copy or kernel end;
 *   - link busy: the share of the window with at least one copy running,
 *     and the rate while busy (bytes over that union);
 *   - copies in flight: time-weighted mean over the busy time;
 *   - the median time of the largest (full-chunk) copies, and the link's
 *     idle time between copies;
 *   - the copy rate while copying in 10 us bins that a kernel overlaps and
 *     in those it does not (each copy's bytes spread evenly over its
 *     duration): whether conversion kernels slow the copy engines;
 *   - the median gap from a copy's end to the next copy's start on the
 *     same stream, pooled over all streams.
 * --csv writes every record of the traced loads (load, kind, stream, start,
 * end, bytes) for a closer look; `trace_load --summarize FILE.csv` prints
 * the summary lines again from such a file, without a device.  Needs CUPTI (CUDA toolkit); built only
 * with HOIST_CUDA when CMake finds libcupti. */
#include "hoist.h"

#include <cupti.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIN_NS 10000u

typedef struct rec {
  uint64_t start, end, bytes;
  uint32_t stream;
  int kernel;
} rec;

static rec *g_recs;
static size_t g_n, g_cap;
static int g_oom, g_dropped;

/* 0 when call succeeded; otherwise says which CUPTI call failed. */
#define CUPTI_FAILED(call) cupti_failed((call), #call)
static int cupti_failed(CUptiResult r, const char *what) {
  if (r == CUPTI_SUCCESS) return 0;
  const char *s = NULL;
  cuptiGetResultString(r, &s);
  fprintf(stderr, "trace_load: %s: %s\n", what, s != NULL ? s : "?");
  return 1;
}

static void push(rec r) {
  if (g_n == g_cap) {
    size_t cap = g_cap != 0 ? g_cap * 2 : 65536;
    rec *p = realloc(g_recs, cap * sizeof *p);
    if (p == NULL) {
      g_oom = 1;
      return;
    }
    g_recs = p;
    g_cap = cap;
  }
  g_recs[g_n++] = r;
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
  *size = 8u << 20;
  *buffer = aligned_alloc(8, *size);
  *max_records = 0;
  if (*buffer == NULL) *size = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size,
                                      size_t valid) {
  (void)ctx;
  (void)stream;
  (void)size;
  CUpti_Activity *a = NULL;
  while (cuptiActivityGetNextRecord(buffer, valid, &a) == CUPTI_SUCCESS) {
    if (a->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)a;
      if (m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD)
        push((rec){m->start, m->end, m->bytes, m->streamId, 0});
    } else if (a->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
      const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)a;
      push((rec){k->start, k->end, 0, k->streamId, 1});
    }
  }
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS && dropped > 0)
    g_dropped = 1;
  free(buffer);
}

static int cmp_start(const void *a, const void *b) {
  const rec *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Median of sorted v[0..n) in microseconds (of the middle two when n is
 * even; 0 when empty). */
static double median_us(const uint64_t *v, size_t n) {
  if (n == 0) return 0.0;
  double m = n % 2 == 1 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
  return m / 1e3;
}

/* Summarizes records r[0..n) (one load) on one line. */
static void summarize(const char *label, rec *r, size_t n) {
  qsort(r, n, sizeof *r, cmp_start);
  uint64_t t0 = UINT64_MAX, t1 = 0, bytes = 0, busy = 0, inflight_ns = 0;
  size_t copies = 0, kernels = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].end <= r[i].start) continue;
    if (!r[i].kernel && r[i].start < t0) t0 = r[i].start;
    if (r[i].end > t1) t1 = r[i].end;
    if (r[i].kernel) {
      kernels++;
    } else {
      copies++;
      bytes += r[i].bytes;
      inflight_ns += r[i].end - r[i].start;
    }
  }
  if (copies == 0 || t1 <= t0) {
    printf("%s: no copies traced\n", label);
    return;
  }
  /* Union of copy intervals (records are sorted by start). */
  uint64_t cur_s = 0, cur_e = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].kernel || r[i].end <= r[i].start) continue;
    if (cur_e == 0 || r[i].start > cur_e) {
      busy += cur_e - cur_s;
      cur_s = r[i].start;
      cur_e = r[i].end;
    } else if (r[i].end > cur_e) {
      cur_e = r[i].end;
    }
  }
  busy += cur_e - cur_s;
  /* Bins: each copy's bytes and running time spread over its duration,
   * and whether a kernel ran in the bin.  The copy rate on each side is
   * bytes over the copies' running time in those bins, so bins where only
   * kernels run, and partly filled bins, weigh nothing. */
  size_t nbins = (size_t)((t1 - t0) / BIN_NS) + 1;
  double *bin_bytes = calloc(nbins, sizeof *bin_bytes);
  double *bin_busy = calloc(nbins, sizeof *bin_busy);
  unsigned char *bin_kernel = calloc(nbins, 1);
  if (bin_bytes == NULL || bin_busy == NULL || bin_kernel == NULL) {
    free(bin_bytes);
    free(bin_busy);
    free(bin_kernel);
    printf("%s: out of memory\n", label);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (r[i].end <= r[i].start || r[i].end <= t0) continue;
    uint64_t start = r[i].start > t0 ? r[i].start : t0; /* a kernel may start before t0 */
    size_t b0 = (size_t)((start - t0) / BIN_NS), b1 = (size_t)((r[i].end - 1 - t0) / BIN_NS);
    if (b1 >= nbins) b1 = nbins - 1;
    if (r[i].kernel) {
      for (size_t b = b0; b <= b1; b++) bin_kernel[b] = 1;
      continue;
    }
    double per_ns = (double)r[i].bytes / (double)(r[i].end - r[i].start);
    for (size_t b = b0; b <= b1; b++) {
      uint64_t bs = t0 + (uint64_t)b * BIN_NS, be = bs + BIN_NS;
      uint64_t s = start > bs ? start : bs, e = r[i].end < be ? r[i].end : be;
      if (e > s) {
        bin_bytes[b] += per_ns * (double)(e - s);
        bin_busy[b] += (double)(e - s);
      }
    }
  }
  double kb = 0, nb = 0, kbusy = 0, nbusy = 0;
  size_t kn = 0, nn = 0;
  for (size_t b = 0; b < nbins; b++) {
    if (bin_busy[b] <= 0) continue;
    if (bin_kernel[b]) {
      kb += bin_bytes[b];
      kbusy += bin_busy[b];
      kn++;
    } else {
      nb += bin_bytes[b];
      nbusy += bin_busy[b];
      nn++;
    }
  }
  free(bin_bytes);
  free(bin_busy);
  free(bin_kernel);
  /* The largest copies (the full chunks): their median duration.  And
   * the link's idle gaps: from the latest end so far to the next start. */
  uint64_t largest = 0, *durs = malloc(copies * sizeof *durs), *idle = malloc(copies * sizeof *idle);
  size_t ndurs = 0, nidle = 0;
  uint64_t idle_sum = 0, last_end = 0;
  for (size_t i = 0; i < n; i++)
    if (!r[i].kernel && r[i].bytes > largest) largest = r[i].bytes;
  for (size_t i = 0; i < n && durs != NULL && idle != NULL; i++) {
    if (r[i].kernel || r[i].end <= r[i].start) continue;
    if (r[i].bytes == largest) durs[ndurs++] = r[i].end - r[i].start;
    if (last_end != 0) {
      uint64_t g = r[i].start > last_end ? r[i].start - last_end : 0;
      idle[nidle++] = g;
      idle_sum += g;
    }
    if (r[i].end > last_end) last_end = r[i].end;
  }
  qsort(durs, ndurs, sizeof *durs, cmp_u64);
  qsort(idle, nidle, sizeof *idle, cmp_u64);
  /* Per stream: gaps between consecutive copies. */
  uint64_t *gaps = malloc(copies * sizeof *gaps);
  size_t ngaps = 0;
  if (gaps != NULL) {
    for (size_t i = 0; i < n; i++) {
      if (r[i].kernel || r[i].end <= r[i].start) continue;
      for (size_t j = i + 1; j < n; j++) {
        if (r[j].kernel || r[j].end <= r[j].start || r[j].stream != r[i].stream) continue;
        gaps[ngaps++] = r[j].start > r[i].end ? r[j].start - r[i].end : 0;
        break;
      }
    }
    qsort(gaps, ngaps, sizeof *gaps, cmp_u64);
  }
  double window = (double)(t1 - t0);
  printf("%s: window %.3f ms; %zu copies, %.3f GB (%.2f GB/s over the window); link busy %.1f %% "
         "at %.2f GB/s; %.2f copies in flight; %zu copies of %llu bytes take %.1f us (median); "
         "link idle between copies %.2f ms in all (median %.2f us); %zu kernels; copy rate "
         "%.2f GB/s while copying in %zu bins with a kernel, %.2f GB/s in %zu without; median gap "
         "between consecutive copies of one stream (all streams) %.1f us\n",
         label, window / 1e6, copies, (double)bytes / 1e9, (double)bytes / window,
         100.0 * (double)busy / window, (double)bytes / (double)busy,
         (double)inflight_ns / (double)busy, ndurs, (unsigned long long)largest,
         median_us(durs, ndurs), (double)idle_sum / 1e6, median_us(idle, nidle), kernels,
         kbusy > 0 ? kb / kbusy : 0.0, kn, nbusy > 0 ? nb / nbusy : 0.0, nn,
         median_us(gaps, ngaps));
  free(gaps);
  free(durs);
  free(idle);
}

static int traced_load(hoist_runtime *rt, const char *path, const char *dtype, const char *label,
                       int index, FILE *csv) {
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.dtype = dtype;
  hoist_load_options lo = HOIST_LOAD_OPTIONS_INIT;
  lo.dtype = dtype;
  g_n = 0;
  g_oom = g_dropped = 0;
  if (CUPTI_FAILED(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY))) return 1;
  if (CUPTI_FAILED(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL))) {
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY);
    return 1;
  }
  int rc = hoist_pipeline_open(rt, path, &po, &p);
  if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &lo, &l);
  int bad = CUPTI_FAILED(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY));
  bad |= CUPTI_FAILED(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
  bad |= CUPTI_FAILED(cuptiActivityFlushAll(1));
  if (rc != HOIST_OK) fprintf(stderr, "trace_load: %s: %s\n", hoist_strerror(rc), hoist_last_error(rt));
  if (rc != HOIST_OK || bad) {
    hoist_loaded_close(l);
    hoist_pipeline_close(p);
    return 1;
  }
  char name[96];
  snprintf(name, sizeof name, "%s %d (%.3f s)", label, index, hoist_loaded_seconds(l));
  if (csv != NULL)
    for (size_t i = 0; i < g_n; i++)
      fprintf(csv, "%s,%d,%s,%u,%llu,%llu,%llu\n", label, index,
              g_recs[i].kernel ? "kernel" : "h2d", g_recs[i].stream,
              (unsigned long long)g_recs[i].start, (unsigned long long)g_recs[i].end,
              (unsigned long long)g_recs[i].bytes);
  if (g_oom || g_dropped) printf("%s: records were dropped; figures are partial\n", name);
  summarize(name, g_recs, g_n);
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  return 0;
}

/* --summarize FILE: the summary lines again from a --csv file (no device
 * needed), one per load in the order written.  Returns an exit status. */
static int summarize_csv(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    perror(path);
    return 3;
  }
  char line[512], cur[160] = "";
  int bad = 0;
  g_n = 0;
  if (fgets(line, sizeof line, f) == NULL || strncmp(line, "load,index,kind,", 16) != 0) bad = 1;
  while (!bad && fgets(line, sizeof line, f) != NULL) {
    char load[64], kind[16], key[160];
    int index = 0;
    unsigned stream = 0;
    unsigned long long start = 0, end = 0, bytes = 0;
    if (sscanf(line, "%63[^,],%d,%15[^,],%u,%llu,%llu,%llu", load, &index, kind, &stream, &start,
               &end, &bytes) != 7 ||
        (strcmp(kind, "h2d") != 0 && strcmp(kind, "kernel") != 0)) {
      bad = 1;
      break;
    }
    snprintf(key, sizeof key, "%s %d", load, index);
    if (strcmp(key, cur) != 0) {
      if (g_n > 0) summarize(cur, g_recs, g_n);
      g_n = 0;
      snprintf(cur, sizeof cur, "%s", key);
    }
    push((rec){start, end, bytes, stream, strcmp(kind, "kernel") == 0});
    if (g_oom) bad = 1;
  }
  if (!bad && g_n > 0) summarize(cur, g_recs, g_n);
  fclose(f);
  if (bad) fprintf(stderr, "trace_load: %s: not a trace_load --csv file (or out of memory)\n", path);
  return bad ? 3 : 0;
}

/* A whole decimal number in [lo, hi], or -1. */
static long long number(const char *v, long long lo, long long hi) {
  char *end = NULL;
  long long x = strtoll(v, &end, 10);
  return end != v && *end == '\0' && x >= lo && x <= hi ? x : -1;
}

int main(int argc, char **argv) {
  const char *device = "cuda:0", *dtype = NULL, *path = NULL, *csv_path = NULL;
  long repeat = 3, threads = 0;
  long long chunk = 0; /* 0: the engine's default */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--device") == 0 && v != NULL) {
      device = v;
      i++;
    } else if (strcmp(a, "--dtype") == 0 && v != NULL) {
      dtype = v;
      i++;
    } else if (strcmp(a, "--repeat") == 0 && v != NULL) {
      repeat = (long)number(v, 1, 100);
      i++;
    } else if (strcmp(a, "--threads") == 0 && v != NULL) {
      threads = (long)number(v, 0, 64);
      i++;
    } else if (strcmp(a, "--chunk") == 0 && v != NULL) {
      chunk = number(v, 4096, 1ll << 30);
      i++;
    } else if (strcmp(a, "--csv") == 0 && v != NULL) {
      csv_path = v;
      i++;
    } else if (strcmp(a, "--summarize") == 0 && v != NULL && i + 2 == argc) {
      int code = summarize_csv(v);
      free(g_recs);
      return code;
    } else if (a[0] != '-' && path == NULL) {
      path = a;
    } else {
      path = NULL;
      break;
    }
  }
  if (path == NULL || repeat < 1 || threads < 0 || chunk < 0 || strncmp(device, "cuda", 4) != 0) {
    fprintf(stderr, "usage: trace_load [--device cuda:N] [--threads N] [--chunk BYTES] "
                    "[--repeat 1..100] [--dtype T] [--csv FILE] PIPELINE\n"
                    "       trace_load --summarize FILE.csv\n");
    return 2;
  }
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = device;
  cfg.threads = (uint32_t)threads;
  cfg.chunk_bytes = (uint64_t)chunk;
  hoist_runtime *rt = NULL;
  int rc = hoist_runtime_create(&cfg, &rt);
  if (rc != HOIST_OK) {
    fprintf(stderr, "trace_load: %s\n", hoist_last_error(NULL));
    return 3;
  }
  if (CUPTI_FAILED(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed))) {
    hoist_runtime_close(rt);
    return 3;
  }
  FILE *csv = NULL;
  if (csv_path != NULL && (csv = fopen(csv_path, "w")) == NULL) {
    perror(csv_path);
    hoist_runtime_close(rt);
    return 3;
  }
  if (csv != NULL) fprintf(csv, "load,index,kind,stream,start_ns,end_ns,bytes\n");
  /* Warm-up: page cache, engine ring, CUDA context, both configurations. */
  int bad = traced_load(rt, path, NULL, "warm-up plain", 0, NULL);
  if (!bad && dtype != NULL) bad = traced_load(rt, path, dtype, "warm-up converted", 0, NULL);
  for (long r = 0; r < repeat && !bad; r++) {
    const char *first = r % 2 == 0 ? "plain" : "dtype", *second = r % 2 == 0 ? "dtype" : "plain";
    const char *order[2] = {first, second};
    for (int k = 0; k < 2 && !bad; k++) {
      int conv = strcmp(order[k], "dtype") == 0;
      if (conv && dtype == NULL) continue;
      bad = traced_load(rt, path, conv ? dtype : NULL, conv ? dtype : "plain", (int)r + 1, csv);
    }
  }
  if (csv != NULL) fclose(csv);
  free(g_recs);
  hoist_runtime_close(rt);
  return bad ? 1 : 0;
}
