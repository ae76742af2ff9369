/* cmd_load.c — `hoist load`: loads a pipeline in its planned order under
 * admission control and reports, per component, bytes, device bytes,
 * seconds, GB/s, residency and device address range. */
#include "cli_load_opts.h"

#include "hoist_tools.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static void usage(FILE *out) {
  fprintf(out, "usage: hoist load [--json] [OPTIONS] PIPELINE\n\n"
               "Loads every component of PIPELINE (a dir with model_index.json, a dir of\n"
               "weights, or one .safetensors file: a component named after the file) into\n"
               "device memory, heavy components first.\n\noptions:\n%s%s"
               "\nloading with other ranks (several GPUs, or processes):\n%s",
          cli_load_opts_help, cli_manifest_opt_help, cli_group_help);
}

static cJSON *num(double v) { return cJSON_CreateNumber(v); }

static int print_failure_json(int status, hoist_runtime *rt, const hoist_load_failure *f) {
  cJSON *root = cJSON_CreateObject();
  char buf[2048];
  cJSON_AddStringToObject(root, "error", cli_flag_message(hoist_last_error(rt), buf, sizeof buf));
  cJSON_AddStringToObject(root, "status", hoist_status_name(status));
  if (f->component[0] != '\0') {
    cJSON_AddStringToObject(root, "component", f->component);
    cJSON_AddItemToObject(root, "need_bytes", num((double)f->need_bytes));
    cJSON_AddItemToObject(root, "free_bytes", num((double)f->free_bytes));
  }
  cli_print_json(root);
  return cli_exit_code(status);
}

/* The device's runtime, made on a thread of its own: a CUDA context and the
 * pinned staging ring take a good part of a fresh process's start-up, and
 * discovery (every header read and checked) overlaps them. */
typedef struct runtime_start {
  const hoist_config *cfg;
  hoist_runtime *rt;
  int rc;
  char error[HOIST_ERROR_MAX]; /* the failure's detail: details are per thread */
  double runtime_seconds;      /* creating the runtime (a CUDA context) */
  double seconds;              /* that, then the upload engine (pinned ring, streams) */
} runtime_start;

static void start_runtime(void *arg) {
  runtime_start *s = arg;
  const double t0 = cli_now_seconds();
  s->rc = hoist_runtime_create(s->cfg, &s->rt);
  s->runtime_seconds = cli_now_seconds() - t0;
  if (s->rc == HOIST_OK) s->rc = hoist__engine_prepare(s->rt);
  if (s->rc != HOIST_OK) {
    snprintf(s->error, sizeof s->error, "%s", hoist_last_error(s->rt));
    hoist_runtime_close(s->rt);
    s->rt = NULL;
  }
  s->seconds = cli_now_seconds() - t0;
}

/* Opens the pipeline while the device runtime comes up (on another thread
 * when the device is not the host: discovery then logs through a host
 * runtime of its own, which holds no device memory).  *rt is the device
 * runtime on return, also when discovery failed; *open_seconds is the
 * discovery's own time. */
static int open_beside_runtime(const cli_load_opts *o, const char *path, hoist_runtime **rt,
                               hoist_pipeline **p, double *open_seconds) {
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = o->variant;
  po.dtype = o->load.dtype; /* order by the bytes that will land */
  const bool host = o->cfg.device == NULL || strcmp(o->cfg.device, "host") == 0;
  runtime_start s = {.cfg = &o->cfg};
  uv_thread_t thread;
  const bool threaded = !host && uv_thread_create(&thread, start_runtime, &s) == 0;
  if (!threaded) start_runtime(&s);
  hoist_config dcfg = o->cfg;
  dcfg.device = "host";
  hoist_runtime *drt = NULL;
  const double t0 = cli_now_seconds();
  int rc = threaded ? hoist_runtime_create(&dcfg, &drt) : s.rc;
  if (rc == HOIST_OK) rc = hoist_pipeline_open(threaded ? drt : s.rt, path, &po, p);
  *open_seconds = cli_now_seconds() - t0;
  hoist_runtime_close(drt);
  if (threaded) uv_thread_join(&thread);
  if (s.rc == HOIST_OK && o->cfg.log_level >= HOIST_LOG_DEBUG)
    fprintf(stderr, "hoist: debug: device runtime and upload engine ready in %.3f ms (runtime "
                    "%.3f ms, then the engine %.3f ms); discovery %.3f ms%s\n",
            s.seconds * 1e3, s.runtime_seconds * 1e3, (s.seconds - s.runtime_seconds) * 1e3,
            *open_seconds * 1e3, threaded ? ", beside it" : "");
  *rt = s.rt;
  if (s.rc != HOIST_OK) {
    hoist_pipeline_close(*p);
    *p = NULL;
    return hoist__fail(NULL, s.rc, "%s", s.error);
  }
  return rc;
}

int cmd_load(int argc, char **argv) {
  cli_load_opts o;
  cli_load_opts_init(&o);
  o.manifest_ok = 1;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return HOIST_EXIT_OK;
    }
    int r = cli_load_opt("load", argc, argv, &i, &o);
    if (r < 0) return HOIST_EXIT_USAGE;
    if (r > 0) continue;
    if (argv[i][0] == '-') return cli_usage_error("load", "unknown option %s", argv[i]);
    if (path != NULL) return cli_usage_error("load", "one PIPELINE only");
    path = argv[i];
  }
  if (path == NULL) return cli_usage_error("load", "missing PIPELINE");
  int code = cli_load_manifest("load", &o);
  if (code != HOIST_EXIT_OK) return code;
  if (cli_group_wanted(&o.group)) return cmd_load_group(&o, path); /* ranks: cmd_load_group.c */

  static volatile int cancel;
  cli_install_cancel(&cancel);
  o.load.cancel = &cancel;
  hoist_load_failure failure;
  o.load.failure = &failure;
  if (!o.json && isatty(2)) o.load.progress = cli_progress_bar;

  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  double open_seconds = 0;
  memset(&failure, 0, sizeof failure);
  int rc = open_beside_runtime(&o, path, &rt, &p, &open_seconds);
  if (rc != HOIST_OK && rt == NULL) {
    code = o.json ? print_failure_json(rc, NULL, &failure) : cli_load_report("load", NULL, rc);
    cli_load_opts_free(&o);
    return code;
  }
  /* The load's time: discovery, then the load itself (not the wait for the
   * device, which discovery overlapped). */
  double t0 = cli_now_seconds();
  if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &o.load, &l);
  double seconds = cli_now_seconds() - t0 + open_seconds;
  cli_progress_done();
  if (rc != HOIST_OK) {
    code = o.json ? print_failure_json(rc, rt, &failure) : cli_load_report("load", rt, rc);
    goto done;
  }
  uint64_t total = hoist_loaded_total_bytes(l);
  if (o.json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "device", o.cfg.device != NULL ? o.cfg.device : "host");
    cJSON_AddItemToObject(root, "total_bytes", num((double)total));
    cJSON_AddItemToObject(root, "seconds", num(seconds));
    cJSON_AddItemToObject(root, "GBps", num(seconds > 0 ? (double)total / seconds / 1e9 : 0));
    cJSON_AddBoolToObject(root, "verified", o.load.verify != 0);
    if (o.manifest_path != NULL)
      cJSON_AddStringToObject(root, "manifest", o.manifest_path);
    else
      cJSON_AddNullToObject(root, "manifest");
    cJSON *arr = cJSON_AddArrayToObject(root, "components");
    for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
      const hoist_loaded_info *c = hoist_loaded_component(l, i);
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "name", c->name);
      cJSON_AddItemToObject(e, "bytes", num((double)c->bytes));
      cJSON_AddItemToObject(e, "device_bytes", num((double)c->device_bytes));
      cJSON_AddItemToObject(e, "seconds", num(c->seconds));
      cJSON_AddItemToObject(e, "GBps", num(c->seconds > 0 ? (double)c->bytes / c->seconds / 1e9 : 0));
      cJSON_AddStringToObject(e, "residency", hoist_residency_name(c->residency));
      cJSON *range = cJSON_AddArrayToObject(e, "device_range");
      cJSON_AddItemToArray(range, num((double)c->device_begin));
      cJSON_AddItemToArray(range, num((double)c->device_end));
      cJSON_AddItemToArray(arr, e);
    }
    code = cli_print_json(root) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
  } else {
    char a[32], b[32];
    printf("%-20s %12s %12s %9s %9s  %-9s %s\n", "component", "bytes", "device", "seconds", "GB/s",
           "residency", "device range");
    for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
      const hoist_loaded_info *c = hoist_loaded_component(l, i);
      printf("%-20s %12s %12s %9.3f %9.2f  %-9s", c->name, cli_human_bytes(c->bytes, a),
             cli_human_bytes(c->device_bytes, b), c->seconds,
             c->seconds > 0 ? (double)c->bytes / c->seconds / 1e9 : 0.0,
             hoist_residency_name(c->residency));
      if (c->device_end > c->device_begin)
        printf(" %#llx-%#llx", (unsigned long long)c->device_begin, (unsigned long long)c->device_end);
      printf("\n");
    }
    printf("loaded %s on %s in %.3f s: %.2f GB/s%s%s\n", cli_human_bytes(total, a),
           o.cfg.device != NULL ? o.cfg.device : "host", seconds,
           seconds > 0 ? (double)total / seconds / 1e9 : 0.0, o.load.verify ? ", verified" : "",
           o.load.manifest != NULL ? ", as the manifest records" : "");
    code = HOIST_EXIT_OK;
  }
done:;
  const double c0 = cli_now_seconds();
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  if (o.cfg.log_level >= HOIST_LOG_DEBUG)
    fprintf(stderr, "hoist: debug: released in %.3f ms\n", (cli_now_seconds() - c0) * 1e3);
  hoist_runtime_close(rt);
  cli_load_opts_free(&o);
  return code;
}
