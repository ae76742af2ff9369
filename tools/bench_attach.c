/* bench_attach.c — `hoist bench attach`: what attaching to a resident
 * pipeline costs a worker.
 *
 *   latency: in this process, after the device (the CUDA context) is open,
 *   N x (hoist_attach, every tensor's address looked up, hoist_detach);
 *   median, min and max of each step.
 *
 *   --restart: a worker's whole restart, from process start to every tensor
 *   usable, N times each way: a fresh process (this binary) that attaches
 *   to the server, and one that loads PIPELINE itself with hoist's loader
 *   (the load options apply).  The parent times fork+exec to the child's
 *   report, so the CUDA context the child creates is counted, as a real
 *   restart pays it. */
#include "bench_attach.h"
#include "cli_load_opts.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: hoist bench attach [--json] [--repeat N] [--device D] SOCKET\n"
          "       hoist bench attach --restart [--json] [--repeat N] [LOAD OPTIONS] SOCKET PIPELINE\n\n"
          "Attach latency to the pipeline a `hoist serve` keeps resident (SOCKET: its control\n"
          "socket): with the device already open in this process, N times attach (every\n"
          "arena opened), look up every tensor, detach.  --device opens that device first\n"
          "(cuda:N: the CUDA context exists before the clock starts; default: the server's).\n"
          "With --restart: a worker's restart, process start to every tensor usable, N\n"
          "times by attaching and N times by loading PIPELINE with hoist's loader.\n\n"
          "options:\n"
          "  --repeat N   runs of each (default 20; --restart: 5)\n"
          "  --json       one JSON object on stdout\n"
          "load options (--restart, the loading worker):\n%s",
          cli_load_opts_help);
}

static int cmp_d(const void *a, const void *b) { return cli_cmp_double(a, b); }

typedef struct series {
  double *v;
  int n;
} series;

static void series_add(series *s, double x) { s->v[s->n++] = x; }

static void series_stats(series *s, double *med, double *lo, double *hi) {
  qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_d);
  *med = s->n == 0 ? 0 : s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
  *lo = s->n > 0 ? s->v[0] : 0;
  *hi = s->n > 0 ? s->v[s->n - 1] : 0;
}

static void series_json(cJSON *o, const char *name, series *s) {
  double med, lo, hi;
  series_stats(s, &med, &lo, &hi);
  cJSON *e = cJSON_AddObjectToObject(o, name);
  cJSON_AddNumberToObject(e, "median_ms", med * 1e3);
  cJSON_AddNumberToObject(e, "min_ms", lo * 1e3);
  cJSON_AddNumberToObject(e, "max_ms", hi * 1e3);
}

static void series_print(const char *name, series *s) {
  double med, lo, hi;
  series_stats(s, &med, &lo, &hi);
  printf("%-28s median %9.3f ms  (min %9.3f, max %9.3f) over %d\n", name, med * 1e3, lo * 1e3,
         hi * 1e3, s->n);
}

/* Looks every tensor up; returns how many, or -1 on a failure. */
static long touch_all(hoist_attached *a, uint64_t *bytes) {
  long n = 0;
  *bytes = 0;
  for (size_t i = 0; i < hoist_attached_component_count(a); i++) {
    const hoist_loaded_info *c = hoist_attached_component(a, i);
    for (size_t j = 0; j < c->tensor_count; j++) {
      uint64_t addr = 0;
      const hoist_tensor_info *t = NULL;
      int rc = hoist_attached_tensor_at(a, i, j, &addr, &t);
      if (rc == HOIST_UNSUPPORTED) break; /* offloaded: not part of the resident set */
      if (rc != HOIST_OK) return -1;
      *bytes += t->nbytes;
      n++;
    }
  }
  return n;
}

/* ---- The worker processes of --restart */

static int worker(const char *mode, int argc, char **argv) {
  /* argv: SOCKET or the load options and PIPELINE; reports on fd 3. */
  FILE *report = fdopen(3, "w");
  if (report == NULL) return HOIST_EXIT_FAILURE;
  int code = HOIST_EXIT_OK;
  if (strcmp(mode, "attach") == 0) {
    hoist_attached *a = NULL;
    uint64_t bytes = 0;
    int rc = hoist_attach(argv[0], &a);
    long n = rc == HOIST_OK ? touch_all(a, &bytes) : -1;
    fprintf(report, "%ld %llu\n", n, (unsigned long long)bytes);
    fflush(report);
    hoist_detach(a);
    code = n >= 0 ? HOIST_EXIT_OK : cli_report("bench attach", NULL, rc);
  } else {
    cli_load_opts o;
    cli_load_opts_init(&o);
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
      int r = cli_load_opt("bench attach", argc, argv, &i, &o);
      if (r < 0) return HOIST_EXIT_USAGE;
      if (r == 0) path = argv[i];
    }
    hoist_runtime *rt = NULL;
    hoist_pipeline *p = NULL;
    hoist_loaded *l = NULL;
    hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
    po.variant = o.variant;
    po.dtype = o.load.dtype;
    int rc = hoist_runtime_create(&o.cfg, &rt);
    if (rc == HOIST_OK) rc = hoist_pipeline_open(rt, path, &po, &p);
    if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &o.load, &l);
    uint64_t bytes = l != NULL ? hoist_loaded_total_bytes(l) : 0;
    fprintf(report, "%ld %llu\n", rc == HOIST_OK ? 0L : -1L, (unsigned long long)bytes);
    fflush(report);
    if (rc != HOIST_OK) code = cli_report("bench attach", rt, rc);
    hoist_loaded_close(l);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
  fclose(report);
  return code;
}

/* Starts this binary as a worker and returns the seconds from fork to its
 * report (negative on a failure). */
static double time_worker(const char *mode, const char *const *args, int nargs) {
  int p[2];
  if (pipe(p) != 0) return -1;
  double t0 = cli_now_seconds();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(p[1], 3);
    const char *argv[80];
    int n = 0;
    argv[n++] = "hoist";
    argv[n++] = "bench";
    argv[n++] = "attach";
    argv[n++] = "--worker";
    argv[n++] = mode;
    for (int i = 0; i < nargs && n < 78; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execv("/proc/self/exe", (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  char line[128] = "";
  ssize_t got = read(p[0], line, sizeof line - 1);
  double t = cli_now_seconds() - t0;
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (got <= 0 || atol(line) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return t;
}

/* ---- The command */

/* The command line, parsed. */
typedef struct attach_args {
  cli_load_opts o;
  int restart;
  uint64_t repeat;
  const char *pos[2]; /* SOCKET, and PIPELINE with --restart */
  int npos;
  const char *load_args[64]; /* the load options again, for the loading worker */
  int nload;
} attach_args;

/* Parses the command line into a.  Returns -1 to go on, else the exit code
 * (help printed, or a usage error). */
static int attach_parse_args(int argc, char **argv, attach_args *a) {
  cli_load_opts_init(&a->o);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    }
    if (strcmp(argv[i], "--restart") == 0) {
      a->restart = 1;
      continue;
    }
    if (strcmp(argv[i], "--repeat") == 0) {
      if (i + 1 >= argc || !cli_parse_uint(argv[++i], 1, 1000, &a->repeat))
        return cli_usage_error("bench attach", "--repeat takes 1..1000");
      continue;
    }
    int first = i;
    int r = cli_load_opt("bench attach", argc, argv, &i, &a->o);
    if (r < 0) return HOIST_EXIT_USAGE;
    if (r > 0) {
      for (int k = first; k <= i && a->nload < 62; k++)
        if (strcmp(argv[k], "--json") != 0) a->load_args[a->nload++] = argv[k];
      continue;
    }
    if (argv[i][0] == '-') return cli_usage_error("bench attach", "unknown option %s", argv[i]);
    if (a->npos == 2) return cli_usage_error("bench attach", "too many arguments");
    a->pos[a->npos++] = argv[i];
  }
  if (a->npos != (a->restart ? 2 : 1))
    return cli_usage_error("bench attach", a->restart ? "--restart needs SOCKET and PIPELINE"
                                                      : "needs SOCKET (and no PIPELINE)");
  if (a->repeat == 0) a->repeat = a->restart ? 5 : 20;
  return -1;
}

/* What was measured: per step a series of seconds (attach, lookup, detach;
 * with --restart, by attaching and by loading), and what an attach
 * holds. */
typedef struct attach_result {
  series s1, s2, s3;
  long tensors;
  uint64_t bytes;
} attach_result;

/* --restart: N workers that attach and N that load, alternating. */
static int attach_restarts(attach_args *a, attach_result *res) {
  for (uint64_t k = 0; k < a->repeat; k++) {
    double ta = time_worker("attach", &a->pos[0], 1);
    a->load_args[a->nload] = a->pos[1];
    double tl = time_worker("load", a->load_args, a->nload + 1);
    if (ta < 0 || tl < 0) return HOIST_EXIT_FAILURE;
    series_add(&res->s1, ta);
    series_add(&res->s2, tl);
  }
  return HOIST_EXIT_OK;
}

/* In this process, after the device is open (--device): N + 1 x attach,
 * look up every tensor, detach; the first is not counted. */
static int attach_latency(const attach_args *a, attach_result *res) {
  hoist_runtime *rt = NULL;
  int code = HOIST_EXIT_OK;
  /* The device first: the clock starts with the CUDA context made. */
  if (a->o.cfg.device != NULL && hoist_runtime_create(&a->o.cfg, &rt) != HOIST_OK)
    code = cli_report("bench attach", NULL, HOIST_NO_DEVICE);
  for (uint64_t k = 0; k <= a->repeat && code == HOIST_EXIT_OK; k++) {
    hoist_attached *w = NULL;
    double t0 = cli_now_seconds();
    int rc = hoist_attach(a->pos[0], &w);
    double t1 = cli_now_seconds();
    res->tensors = rc == HOIST_OK ? touch_all(w, &res->bytes) : -1;
    double t2 = cli_now_seconds();
    hoist_detach(w);
    double t3 = cli_now_seconds();
    if (rc != HOIST_OK || res->tensors < 0) {
      code = cli_report("bench attach", NULL, rc != HOIST_OK ? rc : HOIST_PROTOCOL);
      break;
    }
    if (k == 0) continue; /* the first attach opens the device when --device was not given */
    series_add(&res->s1, t1 - t0);
    series_add(&res->s2, t2 - t1);
    series_add(&res->s3, t3 - t2);
  }
  hoist_runtime_close(rt);
  return code;
}

static int attach_report(const attach_args *a, attach_result *res) {
  if (a->o.json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "socket", a->pos[0]);
    if (a->restart) {
      cJSON_AddStringToObject(root, "pipeline", a->pos[1]);
      series_json(root, "restart_attach", &res->s1);
      series_json(root, "restart_load", &res->s2);
    } else {
      cJSON_AddNumberToObject(root, "tensors", (double)res->tensors);
      cJSON_AddNumberToObject(root, "bytes", (double)res->bytes);
      series_json(root, "attach", &res->s1);
      series_json(root, "lookup_all", &res->s2);
      series_json(root, "detach", &res->s3);
    }
    cJSON_AddNumberToObject(root, "repeat", (double)a->repeat);
    return cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
  }
  if (a->restart) {
    series_print("restart by attach", &res->s1);
    series_print("restart by hoist load", &res->s2);
  } else {
    char h[32];
    printf("%ld tensors, %s resident on the server\n", res->tensors,
           cli_human_bytes(res->bytes, h));
    series_print("attach", &res->s1);
    series_print("look up every tensor", &res->s2);
    series_print("detach", &res->s3);
  }
  return HOIST_EXIT_OK;
}

int bench_attach(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--worker") == 0) return worker(argv[2], argc - 3, argv + 3);
  attach_args a;
  memset(&a, 0, sizeof a);
  int code = attach_parse_args(argc, argv, &a);
  if (code >= 0) return code;
  attach_result res = {{calloc(a.repeat, sizeof(double)), 0},
                       {calloc(a.repeat, sizeof(double)), 0},
                       {calloc(a.repeat, sizeof(double)), 0}, 0, 0};
  if (res.s1.v == NULL || res.s2.v == NULL || res.s3.v == NULL)
    code = cli_report("bench attach", NULL, HOIST_NO_MEMORY);
  else
    code = a.restart ? attach_restarts(&a, &res) : attach_latency(&a, &res);
  if (code == HOIST_EXIT_OK) code = attach_report(&a, &res);
  free(res.s1.v);
  free(res.s2.v);
  free(res.s3.v);
  return code;
}
