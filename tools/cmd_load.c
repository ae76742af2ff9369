/* cmd_load.c — `hoist load`: loads a pipeline in its planned order under
 * admission control and reports, per component, bytes, device bytes,
 * seconds, GB/s, residency and device address range. */
#include "cli_load_opts.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out, "usage: hoist load [--json] [OPTIONS] PIPELINE\n\n"
               "Loads every component of PIPELINE (a dir with model_index.json, or a dir of\n"
               "weights) into device memory, heavy components first.\n\noptions:\n%s"
               "\nloading with other ranks (several GPUs, or processes):\n%s",
          cli_load_opts_help, cli_group_help);
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

int cmd_load(int argc, char **argv) {
  cli_load_opts o;
  cli_load_opts_init(&o);
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
  int rc = hoist_runtime_create(&o.cfg, &rt);
  if (rc != HOIST_OK) {
    memset(&failure, 0, sizeof failure);
    return o.json ? print_failure_json(rc, NULL, &failure) : cli_load_report("load", NULL, rc);
  }
  double t0 = cli_now_seconds();
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = o.variant;
  po.dtype = o.load.dtype; /* order by the bytes that will land */
  memset(&failure, 0, sizeof failure);
  rc = hoist_pipeline_open(rt, path, &po, &p);
  if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &o.load, &l);
  double seconds = cli_now_seconds() - t0;
  cli_progress_done();
  int code;
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
    printf("loaded %s on %s in %.3f s: %.2f GB/s%s\n", cli_human_bytes(total, a),
           o.cfg.device != NULL ? o.cfg.device : "host", seconds,
           seconds > 0 ? (double)total / seconds / 1e9 : 0.0, o.load.verify ? ", verified" : "");
    code = HOIST_EXIT_OK;
  }
done:
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  return code;
}
