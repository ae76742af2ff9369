/* cmd_load_group.c — `hoist load` with other ranks: this process is one
 * rank of a group (--rank/--world-size/--rendezvous, or torchrun's
 * variables), or drives one rank per device of --devices on its own
 * threads (the ranks' NCCL communicators made together).  Each rank
 * reports what it holds: FSDP and tensor-parallel components as its shard,
 * the others whole. */
#include "cli_load_opts.h"

#include "hoist_tools.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_LOCAL_RANKS 64

/* --devices: the ranks' loads start together, once every rank is set up
 * (runtime, engine, pipeline); expected drops to the ranks that started
 * when starting a thread fails, so none waits for one that never comes. */
typedef struct start_line {
  uv_mutex_t lock;
  uv_cond_t cond;
  int arrived, expected;
} start_line;

static void start_line_wait(start_line *sl) {
  uv_mutex_lock(&sl->lock);
  sl->arrived++;
  uv_cond_broadcast(&sl->cond);
  while (sl->arrived < sl->expected) uv_cond_wait(&sl->cond, &sl->lock);
  uv_mutex_unlock(&sl->lock);
}

static void start_line_expect(start_line *sl, int n) {
  uv_mutex_lock(&sl->lock);
  sl->expected = n;
  uv_cond_broadcast(&sl->cond);
  uv_mutex_unlock(&sl->lock);
}

/* One rank's load and what it reports. */
typedef struct rank_run {
  const cli_load_opts *o;
  const char *path;
  hoist_group *g;
  char device[64];
  volatile int *cancel;
  start_line *ready;   /* --devices: every rank set up before the loads */
  int rc;
  char message[HOIST_ERROR_MAX];
  hoist_load_failure failure;
  double *seconds; /* each load's seconds (--repeat) */
  cJSON *report;
} rank_run;

static cJSON *num(double v) { return cJSON_CreateNumber(v); }

/* Tensors of component i that this rank holds a part of. */
static uint64_t split_tensors(const hoist_loaded *l, size_t i) {
  const hoist_loaded_info *c = hoist_loaded_component(l, i);
  uint64_t n = 0, off = 0;
  for (size_t j = 0; j < c->tensor_count; j++) {
    const hoist_tensor_info *t = hoist__loaded_placed(l, i, j, &off);
    hoist_shard_info s;
    if (hoist_loaded_tensor_shard(l, c->name, t->name, &s) == HOIST_OK && s.sharded) n++;
  }
  return n;
}

static cJSON *rank_report(const rank_run *rr, const hoist_loaded *l) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddItemToObject(root, "rank", num(hoist_group_rank(rr->g)));
  cJSON_AddItemToObject(root, "world_size", num(hoist_group_world_size(rr->g)));
  cJSON_AddStringToObject(root, "device", rr->device);
  cJSON_AddItemToObject(root, "total_bytes", num((double)hoist_loaded_total_bytes(l)));
  cJSON_AddItemToObject(root, "seconds", num(hoist_loaded_seconds(l)));
  cJSON *runs = cJSON_AddArrayToObject(root, "runs");
  for (unsigned k = 0; k < rr->o->group.repeat; k++) cJSON_AddItemToArray(runs, num(rr->seconds[k]));
  cJSON *arr = cJSON_AddArrayToObject(root, "components");
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
    const hoist_loaded_info *c = hoist_loaded_component(l, i);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", c->name);
    cJSON_AddStringToObject(e, "residency", hoist_residency_name(c->residency));
    cJSON_AddItemToObject(e, "bytes", num((double)c->bytes));
    cJSON_AddItemToObject(e, "device_bytes", num((double)c->device_bytes));
    cJSON_AddItemToObject(e, "split_tensors", num((double)split_tensors(l, i)));
    cJSON_AddItemToObject(e, "tensors", num((double)c->tensor_count));
    cJSON_AddItemToObject(e, "seconds", num(c->seconds));
    cJSON_AddItemToArray(arr, e);
  }
  return root;
}

/* Runs one rank's load from its runtime to its report. */
static void run_rank(rank_run *rr) {
  hoist_config cfg = rr->o->cfg;
  cfg.device = rr->device;
  hoist_load_options lo = rr->o->load;
  lo.group = rr->g;
  lo.cancel = rr->cancel;
  lo.failure = &rr->failure;
  lo.progress = NULL;
  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = rr->o->variant;
  po.dtype = lo.dtype;
  rr->rc = hoist_runtime_create(&cfg, &rt);
  /* The engine's pinned ring is made before the loads, as hoist bench
   * load does, so that the seconds are the loads'. */
  if (rr->rc == HOIST_OK) rr->rc = hoist__engine_prepare(rt);
  if (rr->rc == HOIST_OK) rr->rc = hoist_pipeline_open(rt, rr->path, &po, &p);
  if (rr->ready != NULL) start_line_wait(rr->ready);
  for (unsigned k = 0; k < rr->o->group.repeat && rr->rc == HOIST_OK; k++) {
    hoist_loaded_close(l);
    l = NULL;
    rr->rc = hoist_load_pipeline(rt, p, &lo, &l);
    if (rr->rc == HOIST_OK) rr->seconds[k] = hoist_loaded_seconds(l);
  }
  if (rr->rc == HOIST_OK) rr->report = rank_report(rr, l);
  else snprintf(rr->message, sizeof rr->message, "%s", hoist_last_error(rt));
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}

static void rank_thread(void *arg) { run_rank(arg); }

/* The failure of rank rr on stderr (or as JSON); its exit code. */
static int report_failure(const cli_load_opts *o, const rank_run *rr, int rank, int world) {
  char buf[2048];
  const char *detail = rr->message[0] != '\0' ? rr->message : hoist_strerror(rr->rc);
  cli_flag_message(detail, buf, sizeof buf);
  if (o->json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "rank", num(rank));
    cJSON_AddItemToObject(root, "world_size", num(world));
    cJSON_AddStringToObject(root, "error", buf);
    cJSON_AddStringToObject(root, "status", hoist_status_name(rr->rc));
    if (rr->failure.component[0] != '\0') {
      cJSON_AddStringToObject(root, "component", rr->failure.component);
      cJSON_AddItemToObject(root, "need_bytes", num((double)rr->failure.need_bytes));
      cJSON_AddItemToObject(root, "free_bytes", num((double)rr->failure.free_bytes));
    }
    cli_print_json(root);
  } else {
    fprintf(stderr, "hoist load (rank %d of %d): %s\n", rank, world, buf);
  }
  return cli_exit_code(rr->rc);
}

static void print_text(const cJSON *r) {
  char a[32], b[32];
  printf("rank %d of %d on %s:\n", cJSON_GetObjectItem(r, "rank")->valueint,
         cJSON_GetObjectItem(r, "world_size")->valueint,
         cJSON_GetObjectItem(r, "device")->valuestring);
  const cJSON *c = NULL;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "components")) {
    printf("  %-20s %-9s %12s %12s  %4d of %4d tensors split  %.3f s\n",
           cJSON_GetObjectItem(c, "name")->valuestring,
           cJSON_GetObjectItem(c, "residency")->valuestring,
           cli_human_bytes((uint64_t)cJSON_GetObjectItem(c, "bytes")->valuedouble, a),
           cli_human_bytes((uint64_t)cJSON_GetObjectItem(c, "device_bytes")->valuedouble, b),
           cJSON_GetObjectItem(c, "split_tensors")->valueint,
           cJSON_GetObjectItem(c, "tensors")->valueint,
           cJSON_GetObjectItem(c, "seconds")->valuedouble);
  }
  printf("  %s held in %.3f s\n",
         cli_human_bytes((uint64_t)cJSON_GetObjectItem(r, "total_bytes")->valuedouble, a),
         cJSON_GetObjectItem(r, "seconds")->valuedouble);
}

/* Starts a thread per rank and waits for them; returns how many started
 * (the others' groups closed, so those that started fail instead of
 * waiting for them). */
static int run_threads(rank_run *runs, int n, start_line *ready, hoist_group **groups) {
  uv_thread_t threads[MAX_LOCAL_RANKS];
  int started = 0;
  for (; started < n; started++)
    if (uv_thread_create(&threads[started], rank_thread, &runs[started]) != 0) break;
  if (started < n) {
    for (int i = started; i < n; i++) hoist_group_close(groups[i]);
    for (int i = started; i < n; i++) groups[i] = NULL;
    start_line_expect(ready, started);
  }
  for (int i = 0; i < started; i++) uv_thread_join(&threads[i]);
  return started;
}

/* What the ranks of --devices did: one JSON object, or each rank's text;
 * the first failure instead.  Returns the exit code. */
static int report_local(const cli_load_opts *o, rank_run *runs, int n, int started,
                        const double *seconds, double wall) {
  const unsigned repeat = o->group.repeat;
  int code = started == n ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
  cJSON *all = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(all, "ranks");
  cJSON_AddItemToObject(all, "world_size", num(n));
  cJSON_AddItemToObject(all, "wall_seconds", num(wall));
  /* Every card holds the pipeline when the slowest rank's load returns. */
  cJSON *every = cJSON_AddArrayToObject(all, "all_ranks_seconds");
  for (unsigned k = 0; k < repeat; k++) {
    double most = 0;
    for (int i = 0; i < started; i++)
      if (seconds[(size_t)i * repeat + k] > most) most = seconds[(size_t)i * repeat + k];
    cJSON_AddItemToArray(every, num(most));
  }
  for (int i = 0; i < started; i++) {
    if (runs[i].rc != HOIST_OK && code == HOIST_EXIT_OK) code = report_failure(o, &runs[i], i, n);
    if (runs[i].report != NULL) cJSON_AddItemToArray(arr, runs[i].report);
    runs[i].report = NULL;
  }
  if (code == HOIST_EXIT_OK && o->json) {
    code = cli_print_json(all) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
    all = NULL;
  } else if (code == HOIST_EXIT_OK) {
    const cJSON *r = NULL;
    cJSON_ArrayForEach(r, arr) print_text(r);
    printf("every rank holds its part %.3f s after the loads started\n",
           cJSON_GetArrayItem(every, (int)repeat - 1)->valuedouble);
  }
  cJSON_Delete(all);
  return code;
}

/* --devices: one rank per device, each on its own thread. */
static int load_local(cli_load_opts *o, const char *path, volatile int *cancel) {
  char specs[MAX_LOCAL_RANKS][32];
  const int n = cli_group_devices("load", o->group.devices, specs, MAX_LOCAL_RANKS);
  if (n < 0) return HOIST_EXIT_USAGE;
  hoist_group *groups[MAX_LOCAL_RANKS];
  rank_run runs[MAX_LOCAL_RANKS];
  int rc = hoist_group_create_local(n, groups);
  if (rc != HOIST_OK) return cli_load_report("load", NULL, rc);
  start_line ready = {.expected = n};
  double *seconds = calloc((size_t)n * o->group.repeat, sizeof *seconds);
  const bool lock_ok = seconds != NULL && uv_mutex_init(&ready.lock) == 0;
  if (!lock_ok || uv_cond_init(&ready.cond) != 0) {
    if (lock_ok) uv_mutex_destroy(&ready.lock);
    free(seconds);
    for (int i = 0; i < n; i++) hoist_group_close(groups[i]);
    return cli_load_report("load", NULL, hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory"));
  }
  for (int i = 0; i < n; i++) {
    runs[i] = (rank_run){.o = o, .path = path, .g = groups[i], .cancel = cancel, .ready = &ready,
                         .seconds = seconds + (size_t)i * o->group.repeat};
    snprintf(runs[i].device, sizeof runs[i].device, "%s", specs[i]);
  }
  const double t0 = cli_now_seconds();
  const int started = run_threads(runs, n, &ready, groups);
  const int code = report_local(o, runs, n, started, seconds, cli_now_seconds() - t0);
  uv_cond_destroy(&ready.cond);
  uv_mutex_destroy(&ready.lock);
  free(seconds);
  for (int i = 0; i < n; i++) hoist_group_close(groups[i]);
  return code;
}

int cmd_load_group(cli_load_opts *o, const char *path) {
  static volatile int cancel;
  cli_install_cancel(&cancel);
  if (o->group.devices != NULL) return load_local(o, path, &cancel);
  hoist_group *g = NULL;
  int rc = hoist_group_create(&o->group.opts, &g);
  if (rc != HOIST_OK) return cli_load_report("load", NULL, rc);
  double *seconds = calloc(o->group.repeat, sizeof *seconds);
  if (seconds == NULL) {
    hoist_group_close(g);
    return cli_load_report("load", NULL, hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory"));
  }
  rank_run rr = {.o = o, .path = path, .g = g, .cancel = &cancel, .seconds = seconds};
  char dev[64];
  snprintf(rr.device, sizeof rr.device, "%s",
           cli_group_device(o->cfg.device != NULL ? o->cfg.device : "host", g, dev, sizeof dev));
  run_rank(&rr);
  int code = HOIST_EXIT_OK;
  if (rr.rc != HOIST_OK) {
    code = report_failure(o, &rr, hoist_group_rank(g), hoist_group_world_size(g));
  } else if (o->json) {
    code = cli_print_json(rr.report) ? HOIST_EXIT_OK : HOIST_EXIT_FAILURE;
    rr.report = NULL;
  } else {
    print_text(rr.report);
  }
  cJSON_Delete(rr.report);
  free(seconds);
  hoist_group_close(g);
  return code;
}
