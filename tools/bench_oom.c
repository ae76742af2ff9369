/* bench_oom.c — `hoist bench oom`: for each load order × residency policy,
 * the least device capacity (to 1 MiB) at which a full load succeeds, found
 * by bisection over full load + unload trials in one process.  On host the
 * capacity of one runtime is set afresh per trial; on cuda a ballast
 * allocation leaves exactly the trial capacity free and is released after
 * each trial.  --simulate answers from the headers alone (oom_sim.h), also
 * for make-pipeline presets at scale 1.  Output: a table, JSON, an SVG bar
 * chart, and a "what fits" summary for 24/16/12 GiB cards. */
#include "bench_oom.h"

#include "cli_load_opts.h"
#include "hoist_tools.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

/* ------------------------------------------------------------------------ */
/* Measured trials */

static int is_cuda(const hoist_runtime *rt) { return strcmp(hoist__device_kind(rt), "cuda") == 0; }

static void sample_peak(oom_measure *x) {
  hoist_runtime *rt = x->rt;
  uint64_t used = 0;
  if (!is_cuda(rt)) {
    used = hoist__device_host_allocated(rt);
  } else {
    uint64_t f = 0, t = 0;
    if (hoist__device_mem_info(rt, &f, &t) != HOIST_OK) return;
    uint64_t other = x->cotenant_addr != 0 ? x->s->cotenant.bytes : 0;
    used = x->free0 > f + other ? x->free0 - f - other : 0;
  }
  if (used > x->peak) x->peak = used;
}

/* Another tenant takes its bytes: a capacity drop on host, a real
 * allocation on cuda (from the loader's worker thread, as a second
 * allocator would). */
static void strike(oom_measure *x) {
  hoist_runtime *rt = x->rt;
  x->struck = 1;
  uint64_t b = x->s->cotenant.bytes;
  if (!is_cuda(rt)) {
    hoist__device_host_set_capacity(rt, x->capacity > b ? x->capacity - b : 0);
  } else if (hoist__device_alloc(rt, b, &x->cotenant_addr) != HOIST_OK) {
    x->cotenant_addr = 0;
    x->cotenant_failed = 1;
  }
}

/* Progress reports are serialized by the upload engine and come component
 * after component, so the running total needs no lock. */
static void measure_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  oom_measure *x = user;
  if (component != x->cur) {
    x->base += x->cur_total;
    x->cur = component;
  }
  x->cur_total = total;
  sample_peak(x);
  if (!x->struck && oom_cotenant_struck(&x->s->cotenant, x->base + done, x->total_bytes))
    strike(x);
}

static uint64_t measure_transient(void *user, const hoist_component_info *c, uint64_t bytes) {
  const oom_measure *x = user;
  return oom_transient_bytes(&x->s->transient, bytes);
}

/* Cuda: a ballast of many allocations that leaves `capacity` bytes free (to
 * the 2 MiB allocation granularity).  One cudaMalloc of nearly all free
 * memory fails even when the memory is there (measured on an H200: 149.5 GB
 * of 150.7 GB free could not be had in one block), so the ballast is taken
 * in 1 GiB pieces and finished with corrections measured by mem_info. */
#define BALLAST_PIECES 1024
typedef struct ballast {
  uint64_t addr[BALLAST_PIECES];
  size_t n;
} ballast;

static void ballast_free(hoist_runtime *rt, ballast *b) {
  while (b->n > 0) hoist__device_free(rt, b->addr[--b->n]);
}

static int ballast_take(hoist_runtime *rt, uint64_t capacity, ballast *b, uint64_t *actual) {
  const uint64_t gran = hoist__device_granularity(rt), piece = 1ull << 30;
  uint64_t f = 0, t = 0;
  b->n = 0;
  int rc = hoist__device_mem_info(rt, &f, &t);
  if (rc != HOIST_OK) return rc;
  /* The search's top may sit a little above today's free memory (the
   * context grew since it was read): that trial runs with what is free. */
  if (capacity > f + gran)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "bench oom: trial capacity %llu bytes is above the %llu bytes free on %s",
                      (unsigned long long)capacity, (unsigned long long)f, hoist__device_name(rt));
  while (f > capacity + piece + gran && b->n < BALLAST_PIECES - 8) {
    if ((rc = hoist__device_alloc(rt, piece, &b->addr[b->n])) != HOIST_OK) break;
    b->n++;
    if ((rc = hoist__device_mem_info(rt, &f, &t)) != HOIST_OK) goto fail;
  }
  /* Corrections: what is still above the capacity, halved when the device
   * will not give it in one piece. */
  uint64_t want = f > capacity ? (f - capacity) & ~(gran - 1) : 0;
  while (want >= gran && b->n < BALLAST_PIECES) {
    if (hoist__device_alloc(rt, want, &b->addr[b->n]) != HOIST_OK) {
      want = (want / 2) & ~(gran - 1);
      continue;
    }
    b->n++;
    if ((rc = hoist__device_mem_info(rt, &f, &t)) != HOIST_OK) goto fail;
    want = f > capacity ? (f - capacity) & ~(gran - 1) : 0;
  }
  *actual = f;
  return HOIST_OK;
fail:
  ballast_free(rt, b);
  return rc;
}

int oom_measure_trial(void *user, uint64_t capacity, oom_result *r) {
  oom_measure *x = user;
  hoist_runtime *rt = x->rt;
  const oom_setup *s = x->s;
  memset(r, 0, sizeof *r);
  r->capacity = capacity;
  if (hoist__cancel_requested(x->cancel))
    return hoist__fail(rt, HOIST_CANCELLED, "bench oom: cancelled between trials");
  x->total_bytes = 0;
  for (size_t i = 0; i < s->m->n; i++) x->total_bytes += s->m->comps[i].bytes;
  x->cur = NULL;
  x->base = x->cur_total = x->peak = 0;
  x->struck = x->cotenant_failed = 0;
  x->cotenant_addr = 0;
  x->capacity = capacity;

  ballast bl;
  bl.n = 0;
  uint64_t before_free = 0, t = 0;
  int rc = HOIST_OK;
  if (!is_cuda(rt)) {
    if (hoist__device_host_allocated(rt) != 0)
      return hoist__fail(rt, HOIST_DEVICE, "bench oom: %llu bytes allocated before a trial",
                        (unsigned long long)hoist__device_host_allocated(rt));
    hoist__device_host_set_capacity(rt, capacity);
    x->free0 = capacity;
  } else {
    if ((rc = hoist__device_mem_info(rt, &before_free, &t)) != HOIST_OK) return rc;
    if ((rc = ballast_take(rt, capacity, &bl, &x->free0)) != HOIST_OK) return rc;
  }
  if (s->cotenant.enabled && s->cotenant.fraction == 0.0) strike(x);

  hoist_load_failure f;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = x->pol->offload[0] != '\0' ? x->pol->offload : NULL;
  o.on_oom = x->pol->on_oom_offload ? HOIST_ON_OOM_OFFLOAD : HOIST_ON_OOM_FAIL;
  o.headroom = (int64_t)s->headroom;
  o.cancel = x->cancel;
  o.progress = measure_progress;
  o.progress_user = x;
  o.failure = &f;
  hoist__load_ext ext = {s->order, measure_transient, x, NULL, NULL};
  hoist_loaded *l = NULL;
  int st = hoist__load_pipeline_ext(rt, x->p, &o, &ext, &l);
  r->status = st;
  if (st == HOIST_OK) {
    sample_peak(x);
    for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
      const hoist_loaded_info *li = hoist_loaded_component(l, i);
      r->device_bytes += li->device_bytes;
      if (li->residency != HOIST_OFFLOAD) continue;
      int marked = 0;
      for (size_t k = 0; k < s->m->n; k++)
        if (strcmp(s->m->comps[k].name, li->name) == 0) marked = s->offload[k];
      if (!marked) {
        size_t have = strlen(r->oom_offloaded);
        snprintf(r->oom_offloaded + have, sizeof r->oom_offloaded - have, "%s%s",
                 have ? "," : "", li->name);
      }
    }
  } else {
    snprintf(r->failed, sizeof r->failed, "%s", f.component);
  }
  hoist_loaded_close(l);
  if (x->cotenant_addr != 0) hoist__device_free(rt, x->cotenant_addr);
  x->cotenant_addr = 0;
  ballast_free(rt, &bl);

  /* Nothing may stay behind, whatever the outcome. */
  if (!is_cuda(rt)) {
    uint64_t left = hoist__device_host_allocated(rt);
    hoist__device_host_set_capacity(rt, capacity);
    if (left != 0)
      return hoist__fail(rt, HOIST_DEVICE, "bench oom: %llu bytes still allocated after a trial",
                        (unsigned long long)left);
  } else {
    /* The first trial may grow the context (streams, the upload engine):
     * only later ones must give back all they took. */
    uint64_t after = 0;
    if ((rc = hoist__device_mem_info(rt, &after, &t)) != HOIST_OK) return rc;
    if (x->trials++ > 0 && after + hoist__device_granularity(rt) < before_free)
      return hoist__fail(rt, HOIST_DEVICE,
                        "bench oom: %llu bytes free after a trial, %llu before: a leak",
                        (unsigned long long)after, (unsigned long long)before_free);
  }
  if (st == HOIST_CANCELLED) return st;
  if (x->cotenant_failed)
    return hoist__fail(rt, HOIST_DEVICE, "bench oom: the co-tenant could not take its %llu bytes",
                      (unsigned long long)s->cotenant.bytes);
  /* A refusal, or an allocation the device denied, is a failed trial; any
   * other failure (bad file, device error) stops the search. */
  if (st != HOIST_OK && st != HOIST_ADMISSION && st != HOIST_DEVICE_OOM) return st;
  r->ok = st == HOIST_OK && r->oom_offloaded[0] == '\0';
  if (st == HOIST_OK) r->peak = x->peak;
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* The command */

typedef struct row {
  const char *order;
  const char *policy;
  int found;
  uint64_t threshold, device_bytes, peak;
  oom_result below;
  int have_sim;
  int sim_found;
  uint64_t sim_threshold;
} row;

static void usage(FILE *out) {
  fprintf(out,
          "usage: hoist bench oom [--json] [--device cuda:N|host] [--orders LIST]\n"
          "                       [--policy SPEC]... [--transient MODEL]\n"
          "                       [--co-tenant BYTES@FRACTION] [--simulate]\n"
          "                       [--preset NAME [--scale F]] [--plot FILE.svg] [PIPELINE]\n\n"
          "For each load order and residency policy, the least device memory (to 1 MiB)\n"
          "at which the whole pipeline loads: bisection over full load + unload trials\n"
          "(host: a fresh capacity per trial; cuda: a ballast leaves exactly that much\n"
          "free), or, with --simulate, computed from the headers alone.\n\n"
          "options:\n"
          "  --orders LIST      planned,index,reverse,random:K (default planned,index,reverse)\n"
          "                     planned: the loader's order; index: model_index order;\n"
          "                     reverse: smallest first; random:K: K seeded shuffles\n"
          "  --seed N           seed of the random orders (default 1; printed)\n"
          "  --policy SPEC      repeatable (default resident).  SPEC := TERM('+'TERM)*,\n"
          "                     TERM := resident | offload:NAME[,NAME] | on-oom=fail|offload\n"
          "                     NAME: a component or group (dit, text_encoder,\n"
          "                     image_encoder, vae, all)\n"
          "  --transient MODEL  none (default) | cast (a component needs its bytes twice\n"
          "                     while it loads) | scratch:BYTES (per component load)\n"
          "  --co-tenant B@F    another allocator takes B bytes when the load is F done\n"
          "  --headroom BYTES   device memory the loader keeps free (default 0)\n"
          "  --max-capacity B   upper end of the search (default: what surely fits;\n"
          "                     cuda: at most the free memory)\n"
          "  --simulate         headers only, no data read, no device touched\n"
          "  --preset NAME      simulate a make-pipeline preset without writing it\n"
          "                     (flux1-dev, wan2.2-t2v-a14b, qwen-image, sd3.5-large)\n"
          "  --scale F          preset scale (default 1)\n"
          "  --variant V        the V variant's files\n"
          "  --plot FILE.svg    write a bar chart of the thresholds\n"
          "  --json             JSON on stdout (all figures in bytes)\n");
}

static double gib(uint64_t b) { return (double)b / (double)GIB; }

/* "31.425 GiB", or "67.5 MiB" under 1 GiB. */
static const char *size_text(uint64_t b, char buf[32]) {
  if (b >= GIB) snprintf(buf, 32, "%.3f GiB", gib(b));
  else snprintf(buf, 32, "%.1f MiB", (double)b / (double)MIB);
  return buf;
}

static const char *below_text(const row *w, char *buf, size_t size) {
  const oom_result *b = &w->below;
  if (!w->found || w->threshold == 0) return snprintf(buf, size, "-"), buf;
  if (b->status == HOIST_OK && b->oom_offloaded[0] != '\0')
    snprintf(buf, size, "loads with %s offloaded", b->oom_offloaded);
  else if (b->status == HOIST_ADMISSION)
    snprintf(buf, size, "clean refusal at %s", b->failed[0] ? b->failed : "preflight");
  else
    snprintf(buf, size, "%s%s%s", hoist_status_name(b->status), b->failed[0] ? " at " : "",
             b->failed);
  return buf;
}

/* Writes text with XML's special characters escaped. */
static void xml_text(FILE *f, const char *t) {
  for (; *t != '\0'; t++) {
    switch (*t) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*t, f);
    }
  }
}

static int write_svg(const char *path, const char *title, const row *rows, size_t n) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  double top = 24.0 * 1.1;
  for (size_t i = 0; i < n; i++)
    if (rows[i].found && gib(rows[i].threshold) * 1.08 > top) top = gib(rows[i].threshold) * 1.08;
  top = ceil(top / 4.0) * 4.0;
  const int left = 70, bar_w = 46, gap = 18, plot_h = 360, y0 = 60;
  int width = left + (int)n * (bar_w + gap) + 140;
  if (width < 560) width = 560;
  int height = y0 + plot_h + 170;
#define Y(v) (y0 + plot_h - (int)((v) / top * plot_h))
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
          "font-family=\"sans-serif\" font-size=\"12\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
          "<text x=\"%d\" y=\"24\" font-size=\"15\" font-weight=\"bold\">",
          width, height, left);
  xml_text(f, title);
  fprintf(f,
          "</text>\n<text x=\"%d\" y=\"42\" fill=\"#555\">least device memory at which the "
          "load succeeds, in GiB (a 24 GB card has 24 GiB); black tick: Σ tensor device bytes; "
          "blue: resident, purple: offload/on-oom policies</text>\n",
          left);
  for (double v = 0; v <= top + 1e-9; v += 4.0) {
    fprintf(f,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#eee\"/>"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.0f</text>\n",
            left, width - 130, Y(v), Y(v), left - 6, Y(v) + 4, v);
  }
  static const double cards[] = {12, 16, 24};
  static const char *colors[] = {"#d62728", "#ff7f0e", "#2ca02c"};
  for (size_t k = 0; k < 3; k++)
    fprintf(f,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-dasharray=\"6 4\" "
            "stroke-width=\"1.5\"/><text x=\"%d\" y=\"%d\" fill=\"%s\">%.0f GB card</text>\n",
            left, width - 130, Y(cards[k]), Y(cards[k]), colors[k], width - 124, Y(cards[k]) + 4,
            colors[k], cards[k]);
  for (size_t i = 0; i < n; i++) {
    const row *w = &rows[i];
    int x = left + gap / 2 + (int)i * (bar_w + gap);
    double v = w->found ? gib(w->threshold) : top;
    const char *fill = !w->found ? "#bbb" : w->policy[0] == 'r' && strchr(w->policy, '+') == NULL
                                                ? "#1f77b4"
                                                : "#9467bd";
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", x, Y(v),
            bar_w, y0 + plot_h - Y(v), fill);
    if (w->found && w->device_bytes > 0)
      fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"black\" stroke-width=\"2\"/>\n",
              x, x + bar_w, Y(gib(w->device_bytes)), Y(gib(w->device_bytes)));
    if (w->found)
      fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%.1f</text>\n",
              x + bar_w / 2, Y(v) - 4, v);
    else
      fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">n/a</text>\n",
              x + bar_w / 2, Y(v) - 4);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(45)\" font-size=\"11\">",
            x + bar_w / 2 - 4, y0 + plot_h + 14);
    xml_text(f, w->order);
    fputs(" · ", f);
    xml_text(f, w->policy);
    fputs("</text>\n", f);
  }
  fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"black\"/>\n</svg>\n", left,
          width - 130, y0 + plot_h, y0 + plot_h);
#undef Y
  return fclose(f) == 0 ? 0 : -1;
}

static void policy_text(const oom_model *m, const unsigned char *mark, char *buf, size_t size) {
  size_t have = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < m->n; i++)
    if (mark[i]) {
      have = strlen(buf);
      snprintf(buf + have, size - have, "%s%s", have ? "," : "offload:", m->comps[i].name);
    }
  if (buf[0] == '\0') snprintf(buf, size, "resident");
}

static volatile int cancel_flag;

/* The command line of `hoist bench oom`, checked. */
typedef struct oom_args {
  const char *device, *orders_spec, *transient_spec, *cotenant_spec, *preset_name, *plot, *path;
  const char *variant;
  const char *policies[64];
  size_t npol;
  int json, simulate, cuda;
  uint64_t seed, headroom, max_cap, gran;
  double scale;
  oom_transient tr;
  oom_cotenant ct;
} oom_args;

/* Parses one option with a value at argv[*i] (advancing *i).  Returns -1
 * when taken, else the exit code of a usage error. */
static int oom_arg_value(int argc, char **argv, int *i, oom_args *a) {
  const char *cmd = "bench oom", *o = argv[*i];
  if (*i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", o);
  const char *v = argv[++*i];
  if (strcmp(o, "--device") == 0) a->device = v;
  else if (strcmp(o, "--orders") == 0) a->orders_spec = v;
  else if (strcmp(o, "--transient") == 0) a->transient_spec = v;
  else if (strcmp(o, "--co-tenant") == 0) a->cotenant_spec = v;
  else if (strcmp(o, "--preset") == 0) a->preset_name = v;
  else if (strcmp(o, "--plot") == 0) a->plot = v;
  else if (strcmp(o, "--variant") == 0) a->variant = v;
  else if (strcmp(o, "--policy") == 0) {
    if (a->npol == 64) return cli_usage_error(cmd, "at most 64 --policy");
    a->policies[a->npol++] = v;
  } else if (strcmp(o, "--seed") == 0) {
    if (!cli_parse_uint(v, 0, UINT64_MAX, &a->seed))
      return cli_usage_error(cmd, "bad --seed '%s'", v);
  } else if (strcmp(o, "--headroom") == 0) {
    if (!cli_parse_bytes(v, &a->headroom) || a->headroom > INT64_MAX)
      return cli_usage_error(cmd, "bad --headroom '%s'", v);
  } else if (strcmp(o, "--max-capacity") == 0) {
    if (!cli_parse_bytes(v, &a->max_cap) || a->max_cap == 0)
      return cli_usage_error(cmd, "bad --max-capacity '%s'", v);
  } else if (strcmp(o, "--scale") == 0) {
    char *end = NULL;
    errno = 0;
    a->scale = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !hoist__preset_scale_valid(a->scale))
      return cli_usage_error(cmd, "--scale takes a number in (0, 1]");
  } else {
    return cli_usage_error(cmd, "unknown option %s", o);
  }
  return -1;
}

/* Parses and checks the command line into a.  Returns -1 to go on, else
 * the exit code (help printed, or a usage error). */
static int oom_parse_args(int argc, char **argv, oom_args *a) {
  const char *cmd = "bench oom";
  memset(a, 0, sizeof *a);
  a->device = "host";
  a->orders_spec = "planned,index,reverse";
  a->transient_spec = "none";
  a->seed = 1;
  a->scale = 1.0;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    }
    int code = -1;
    if (strcmp(s, "--json") == 0) a->json = 1;
    else if (strcmp(s, "--simulate") == 0) a->simulate = 1;
    else if (s[0] == '-') code = oom_arg_value(argc, argv, &i, a);
    else if (a->path != NULL) code = cli_usage_error(cmd, "one PIPELINE only");
    else a->path = s;
    if (code >= 0) return code;
  }
  if (a->npol == 0) a->policies[a->npol++] = "resident";
  if (a->preset_name != NULL) a->simulate = 1; /* a preset is never written here */
  if ((a->preset_name == NULL) == (a->path == NULL))
    return cli_usage_error(cmd, "give a PIPELINE or --preset NAME (one of them)");
  if (a->scale != 1.0 && a->preset_name == NULL)
    return cli_usage_error(cmd, "--scale applies to --preset only");
  a->cuda = strncmp(a->device, "cuda", 4) == 0;
  if (!a->cuda && strcmp(a->device, "host") != 0)
    return cli_usage_error(cmd, "--device takes host or cuda:N");
  a->gran = a->cuda ? (2ull << 20) : 256;
  char err[1024];
  if (oom_transient_parse(a->transient_spec, &a->tr, err, sizeof err) != HOIST_OK)
    return cli_usage_error(cmd, "%s", err);
  if (a->cotenant_spec != NULL &&
      oom_cotenant_parse(a->cotenant_spec, &a->ct, err, sizeof err) != HOIST_OK)
    return cli_usage_error(cmd, "%s", err);
  return -1;
}

/* One run of the command: its arguments, the model searched, one row per
 * order × policy, and what fits on the usual cards. */
typedef struct oom_run {
  oom_args a;
  hoist_runtime *rt;
  hoist_pipeline *p;
  oom_model m;
  oom_order *orders;
  size_t norders;
  oom_policy *pols;
  unsigned char *marks; /* per policy, m.n marks */
  row *rows;
  size_t nrows;
  uint64_t limit;       /* the search's top on the device */
  char fit_policy[3][OOM_LABEL_MAX];
  uint64_t fit_thr[3], fit_off[3];
  int fit_ok[3];
  char tlabel[64];
  int code, rc;         /* the exit code so far; the status that ended the run */
} oom_run;

static const uint64_t oom_cards[] = {24 * GIB, 16 * GIB, 12 * GIB};

/* The model searched: a preset's shapes, or an opened pipeline's headers.
 * false after reporting. */
static bool oom_open_model(oom_run *r) {
  const char *cmd = "bench oom";
  const oom_args *a = &r->a;
  char err[1024];
  if (a->preset_name != NULL) {
    const hoist__preset *ps = hoist__preset_find(a->preset_name);
    if (ps == NULL) {
      r->code = cli_usage_error(cmd, "unknown preset '%s' (flux1-dev, wan2.2-t2v-a14b, "
                                     "qwen-image, sd3.5-large)", a->preset_name);
      return false;
    }
    if ((r->rc = oom_model_from_preset(ps, a->scale, &r->m, err, sizeof err)) != HOIST_OK) {
      r->code = cli_usage_error(cmd, "%s", err);
      return false;
    }
    return true;
  }
  hoist_config cfg = HOIST_CONFIG_INIT;
  /* The simulation never touches a device: a host runtime reads headers. */
  cfg.device = a->simulate ? "host" : a->device;
  if ((r->rc = hoist_runtime_create(&cfg, &r->rt)) != HOIST_OK) {
    r->code = cli_report(cmd, NULL, r->rc);
    return false;
  }
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = a->variant;
  if ((r->rc = hoist_pipeline_open(r->rt, a->path, &po, &r->p)) != HOIST_OK) {
    r->code = cli_report(cmd, r->rt, r->rc);
    return false;
  }
  if ((r->rc = oom_model_from_pipeline(r->p, &r->m, err, sizeof err)) != HOIST_OK) {
    fprintf(stderr, "hoist %s: %s\n", cmd, err);
    r->code = cli_exit_code(r->rc);
    return false;
  }
  return true;
}

/* The orders and the policies' marks over the model.  false after
 * reporting. */
static bool oom_orders_and_policies(oom_run *r) {
  const char *cmd = "bench oom";
  const oom_args *a = &r->a;
  char err[1024];
  if (oom_orders_parse(a->orders_spec, &r->m, a->seed, &r->orders, &r->norders, err,
                       sizeof err) != HOIST_OK) {
    r->code = cli_usage_error(cmd, "%s", err);
    return false;
  }
  r->marks = calloc(a->npol * (r->m.n > 0 ? r->m.n : 1), 1);
  r->rows = calloc(r->norders * a->npol, sizeof *r->rows);
  if (r->marks == NULL || r->rows == NULL) {
    r->code = cli_report(cmd, NULL, HOIST_NO_MEMORY);
    return false;
  }
  for (size_t k = 0; k < a->npol; k++) {
    if (oom_policy_parse(a->policies[k], &r->m, &r->pols[k], err, sizeof err) != HOIST_OK ||
        oom_policy_marks(&r->pols[k], &r->m, r->marks + k * r->m.n, err, sizeof err) !=
            HOIST_OK) {
      r->code = cli_usage_error(cmd, "%s", err);
      return false;
    }
  }
  return true;
}

/* The device's limit on a measured search: cuda's free memory (after the
 * engine is made), the host's RAM.  false after reporting. */
static bool oom_device_limit(oom_run *r) {
  const char *cmd = "bench oom";
  const oom_args *a = &r->a;
  r->limit = UINT64_MAX;
  if (a->simulate) return true;
  if (a->cuda) {
    /* Warm-up: the upload engine (its streams, the pinned ring) is made
     * now, so the free memory read next is what the trials see. */
    uint64_t f = 0, t = 0;
    if ((r->rc = hoist__engine_prepare(r->rt)) != HOIST_OK ||
        (r->rc = hoist__device_mem_info(r->rt, &f, &t)) != HOIST_OK) {
      r->code = cli_report(cmd, r->rt, r->rc);
      return false;
    }
    r->limit = f;
  } else {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) r->limit = (uint64_t)pages * (uint64_t)page;
  }
  if (a->max_cap > r->limit) {
    char x[32], y[32];
    r->code = cli_usage_error(cmd, "--max-capacity %s is above the %s %s has",
                              cli_human_bytes(a->max_cap, x), cli_human_bytes(r->limit, y),
                              a->cuda ? "free on the device" : "of RAM the host");
    return false;
  }
  return true;
}

/* The row of order oi × policy k: the simulated threshold, and the
 * measured one unless --simulate.  false after reporting. */
static bool oom_fill_row(oom_run *r, size_t oi, size_t k) {
  const oom_args *a = &r->a;
  row *w = &r->rows[r->nrows++];
  w->order = r->orders[oi].label;
  w->policy = r->pols[k].label;
  oom_setup s = {&r->m, r->orders[oi].slots, r->marks + k * r->m.n, r->pols[k].on_oom_offload,
                 a->tr, a->ct, a->headroom, a->gran};
  uint64_t hi = a->max_cap != 0 ? a->max_cap : oom_upper_bound(&s);
  /* On a card the driver takes a little beyond the rounded arenas
   * (measured on an H200: one 2 MiB granule over the simulation), so a
   * measured search starts above the model's bound. */
  if (!a->simulate && a->cuda && a->max_cap == 0) hi += 256ull << 20;
  if (!a->simulate && hi > r->limit) hi = r->limit;
  oom_result at, sat, sbelow;
  int found = 0, sim_found;
  uint64_t thr = 0, sim_thr;
  oom_bisect(oom_sim_trial_fn, &s, hi, OOM_STEP, &sim_found, &sim_thr, &sat, &sbelow);
  if (a->simulate) {
    found = sim_found;
    thr = sim_thr;
    at = sat;
    w->below = sbelow;
  } else {
    oom_measure x = {0};
    x.rt = r->rt;
    x.p = r->p;
    x.s = &s;
    x.pol = &r->pols[k];
    x.cancel = &cancel_flag;
    r->rc = oom_bisect(oom_measure_trial, &x, hi, OOM_STEP, &found, &thr, &at, &w->below);
    if (!a->cuda) hoist__device_host_set_capacity(r->rt, hi);
    if (r->rc != HOIST_OK) {
      r->code = cli_report("bench oom", r->rt, r->rc);
      return false;
    }
    w->have_sim = 1;
    w->sim_found = sim_found;
    w->sim_threshold = sim_thr;
  }
  w->found = found;
  w->threshold = thr;
  w->device_bytes = oom_device_bytes(&s);
  w->peak = found ? at.peak : 0;
  if (!found) r->code = HOIST_EXIT_NO_FIT;
  if (!a->json && !a->simulate)
    fprintf(stderr, "  %s × %s: %s\n", w->order, w->policy,
            found ? "done" : "does not load within the search range");
  return true;
}

/* What fits on 24/16/12 GiB cards, planned order, this transient model.
 * false after reporting. */
static bool oom_what_fits_cards(oom_run *r) {
  const oom_model *m = &r->m;
  unsigned char *mk = calloc(m->n > 0 ? m->n : 1, 1), *none = calloc(m->n > 0 ? m->n : 1, 1);
  if (mk == NULL || none == NULL) {
    free(mk);
    free(none);
    r->code = cli_report("bench oom", NULL, HOIST_NO_MEMORY);
    return false;
  }
  oom_setup s = {m, m->planned, none, 0, r->a.tr, r->a.ct, r->a.headroom, r->a.gran};
  for (int c = 0; c < 3; c++) {
    r->fit_ok[c] = oom_what_fits(&s, oom_cards[c], mk, &r->fit_thr[c]) == 0;
    if (r->fit_ok[c]) {
      policy_text(m, mk, r->fit_policy[c], sizeof r->fit_policy[c]);
      for (size_t i = 0; i < m->n; i++)
        if (mk[i]) r->fit_off[c] += m->comps[i].bytes;
    } else {
      snprintf(r->fit_policy[c], sizeof r->fit_policy[c], "none fits");
    }
  }
  free(mk);
  free(none);
  return true;
}

static void oom_print_json(oom_run *r) {
  const oom_args *a = &r->a;
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, a->preset_name != NULL ? "preset" : "pipeline", r->m.source);
  cJSON_AddStringToObject(root, "device", a->device);
  cJSON_AddStringToObject(root, "mode", a->simulate ? "simulated" : "measured");
  cJSON_AddStringToObject(root, "transient", r->tlabel);
  cJSON_AddNumberToObject(root, "headroom_bytes", (double)a->headroom);
  cJSON_AddNumberToObject(root, "granularity_bytes", (double)a->gran);
  cJSON_AddNumberToObject(root, "step_bytes", (double)OOM_STEP);
  if (strstr(a->orders_spec, "random") != NULL)
    cJSON_AddNumberToObject(root, "seed", (double)a->seed);
  if (a->ct.enabled) {
    cJSON *c = cJSON_AddObjectToObject(root, "co_tenant");
    cJSON_AddNumberToObject(c, "bytes", (double)a->ct.bytes);
    cJSON_AddNumberToObject(c, "fraction", a->ct.fraction);
  }
  cJSON *arr = cJSON_AddArrayToObject(root, "rows");
  for (size_t i = 0; i < r->nrows; i++) {
    const row *w = &r->rows[i];
    cJSON *o = cJSON_CreateObject();
    char b[OOM_LABEL_MAX + 64];
    cJSON_AddStringToObject(o, "order", w->order);
    cJSON_AddStringToObject(o, "policy", w->policy);
    if (w->found) cJSON_AddNumberToObject(o, "threshold_bytes", (double)w->threshold);
    else cJSON_AddNullToObject(o, "threshold_bytes");
    cJSON_AddNumberToObject(o, "device_bytes", (double)w->device_bytes);
    cJSON_AddNumberToObject(o, "peak_bytes", (double)w->peak);
    if (w->have_sim) {
      if (w->sim_found)
        cJSON_AddNumberToObject(o, "simulated_threshold_bytes", (double)w->sim_threshold);
      else cJSON_AddNullToObject(o, "simulated_threshold_bytes");
    }
    cJSON_AddStringToObject(o, "one_step_below", below_text(w, b, sizeof b));
    cJSON_AddItemToArray(arr, o);
  }
  cJSON *fits = cJSON_AddArrayToObject(root, "what_fits");
  for (int c = 0; c < 3; c++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "card_bytes", (double)oom_cards[c]);
    cJSON_AddStringToObject(o, "policy", r->fit_policy[c]);
    if (r->fit_ok[c]) {
      cJSON_AddNumberToObject(o, "threshold_bytes", (double)r->fit_thr[c]);
      cJSON_AddNumberToObject(o, "offloaded_bytes", (double)r->fit_off[c]);
    }
    cJSON_AddItemToArray(fits, o);
  }
  if (!cli_print_json(root)) r->code = HOIST_EXIT_FAILURE;
}

/* One line of the table. */
static void oom_print_row(const oom_run *r, const row *w) {
  char b[OOM_LABEL_MAX + 64], thr[32], sim[32], dev[32], pk[32];
  if (w->found) size_text(w->threshold, thr);
  else snprintf(thr, sizeof thr, "n/a");
  double over = w->found && w->device_bytes > 0
                    ? ((double)w->threshold - (double)w->device_bytes) /
                          (double)w->device_bytes * 100.0
                    : 0.0;
  if (w->have_sim && w->sim_found) size_text(w->sim_threshold, sim);
  else snprintf(sim, sizeof sim, "n/a");
  char simcol[40] = "";
  if (!r->a.simulate) snprintf(simcol, sizeof simcol, " %12s", sim);
  printf("%-10s %-40s %12s %12s %8.1f%% %12s%s  %s\n", w->order, w->policy, thr,
         size_text(w->device_bytes, dev), over, size_text(w->peak, pk), simcol,
         below_text(w, b, sizeof b));
}

static void oom_print_table(const oom_run *r) {
  const oom_args *a = &r->a;
  printf("%s on %s, %s, transient %s, headroom %llu", r->m.source, a->device,
         a->simulate ? "simulated" : "measured", r->tlabel, (unsigned long long)a->headroom);
  if (a->ct.enabled)
    printf(", co-tenant %llu bytes at %.2f", (unsigned long long)a->ct.bytes, a->ct.fraction);
  if (strstr(a->orders_spec, "random") != NULL) printf(", seed %llu", (unsigned long long)a->seed);
  printf("\n%-10s %-40s %12s %12s %9s %12s%s  %s\n", "order", "policy", "threshold", "device",
         "overhead", "peak", a->simulate ? "" : "    simulated", "1 MiB below threshold");
  for (size_t i = 0; i < r->nrows; i++) oom_print_row(r, &r->rows[i]);
  char thr[32];
  printf("what fits (planned order, transient %s):\n", r->tlabel);
  for (int c = 0; c < 3; c++) {
    if (r->fit_ok[c])
      printf("  %2llu GiB card: %-40s threshold %s, %.2f GB offloaded\n",
             (unsigned long long)(oom_cards[c] / GIB), r->fit_policy[c],
             size_text(r->fit_thr[c], thr), (double)r->fit_off[c] / 1e9);
    else
      printf("  %2llu GiB card: none fits\n", (unsigned long long)(oom_cards[c] / GIB));
  }
}

/* The rows, what fits, the plot and the report, once the model is open. */
static void oom_search_and_report(oom_run *r) {
  const oom_args *a = &r->a;
  if (!oom_orders_and_policies(r) || !oom_device_limit(r)) return;
  for (size_t oi = 0; oi < r->norders; oi++)
    for (size_t k = 0; k < a->npol; k++)
      if (!oom_fill_row(r, oi, k)) return;
  if (!oom_what_fits_cards(r)) return;
  oom_transient_label(&a->tr, r->tlabel, sizeof r->tlabel);
  if (a->plot != NULL) {
    char title[1200];
    snprintf(title, sizeof title, "%s — OOM thresholds on %s, transient %s%s", r->m.source,
             a->device, r->tlabel, a->simulate ? " (simulated)" : " (measured)");
    if (write_svg(a->plot, title, r->rows, r->nrows) != 0) {
      fprintf(stderr, "hoist bench oom: cannot write %s\n", a->plot);
      r->code = HOIST_EXIT_FAILURE;
      return;
    }
  }
  if (a->json) oom_print_json(r);
  else oom_print_table(r);
}

int bench_oom(int argc, char **argv) {
  oom_run *r = calloc(1, sizeof *r);
  if (r == NULL) return cli_report("bench oom", NULL, HOIST_NO_MEMORY);
  int code = oom_parse_args(argc, argv, &r->a);
  if (code >= 0) {
    free(r);
    return code;
  }
  r->code = HOIST_EXIT_OK;
  r->pols = calloc(r->a.npol, sizeof *r->pols);
  if (r->pols == NULL) {
    free(r);
    return cli_report("bench oom", NULL, HOIST_NO_MEMORY);
  }
  cli_install_cancel(&cancel_flag);
  if (oom_open_model(r)) oom_search_and_report(r);
  if (r->rc == HOIST_CANCELLED) r->code = HOIST_EXIT_CANCELLED;
  code = r->code;
  free(r->rows);
  free(r->marks);
  free(r->pols);
  oom_orders_free(r->orders, r->norders);
  oom_model_free(&r->m);
  hoist_pipeline_close(r->p);
  hoist_runtime_close(r->rt);
  free(r);
  return code;
}
