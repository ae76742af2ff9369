/* test_bench_oom.c — `hoist bench oom` on the host backend: the
 * measured thresholds (bisection over real load + unload trials) agree with
 * the header-only simulation within 2 MiB per component for every order,
 * several policies, every transient model and a co-tenant; the expectations
 * on the presets at scale 1 (with --transient cast the planned order is
 * never worse than any other and smallest-first is strictly worse on
 * FLUX.1-dev and Wan2.2; with --transient none every order is within
 * Σ device bytes + 1 %; offloading a component lowers the threshold by its
 * size); cancellation leaves nothing allocated; and the CLI's exit codes,
 * JSON and SVG. */
#include "testutil.h"

#include "bench_oom.h"
#include "device.h"
#include "pipeline_writer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <uv.h>

#define MIB (1ull << 20)
#define SCALE 0.001

static char pipe_dir[1024];

/* flux1-dev at SCALE, written once per forked test (cheap: ~34 MB). */
static void write_flux(const char *name) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  strcat(pipe_dir, "/flux");
  hoist__writer_options wo = HOIST_WRITER_OPTIONS_INIT;
  wo.scale = SCALE;
  wo.seed = 3;
  hoist__write_result wr;
  ck_assert_msg(hoist__pipeline_write(hoist__preset_find("flux1-dev"), pipe_dir, &wo, &wr) == HOIST_OK,
                "%s", hoist_last_error(NULL));
  hoist__write_result_free(&wr);
}

static size_t weighted(const oom_model *m) {
  size_t k = 0;
  for (size_t i = 0; i < m->n; i++) k += m->comps[i].tensors > 0;
  return k;
}

static uint64_t absdiff(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

/* Simulated threshold of one order × policy. */
static uint64_t sim_threshold(const oom_model *m, const size_t *order, const char *policy,
                              const char *transient, oom_result *at, oom_result *below) {
  oom_policy pol;
  oom_transient tr;
  char err[512];
  unsigned char *mark = calloc(m->n, 1);
  ck_assert_msg(oom_policy_parse(policy, m, &pol, err, sizeof err) == HOIST_OK, "%s", err);
  ck_assert_int_eq(oom_policy_marks(&pol, m, mark, err, sizeof err), HOIST_OK);
  ck_assert_int_eq(oom_transient_parse(transient, &tr, err, sizeof err), HOIST_OK);
  oom_setup s = {m, order, mark, pol.on_oom_offload, tr, {0}, 0, 256};
  int found = 0;
  uint64_t thr = 0;
  oom_result a, b;
  ck_assert_int_eq(oom_bisect(oom_sim_trial_fn, &s, oom_upper_bound(&s), OOM_STEP, &found, &thr,
                              at ? at : &a, below ? below : &b),
                   HOIST_OK);
  ck_assert(found);
  free(mark);
  return thr;
}

typedef struct combo {
  const char *orders, *policy, *transient, *cotenant;
} combo;

START_TEST(measured_matches_simulated_on_host) {
  write_flux("oom_measured");
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  oom_model m;
  char err[512];
  ck_assert_msg(oom_model_from_pipeline(p, &m, err, sizeof err) == HOIST_OK, "%s", err);
  ck_assert_uint_eq(weighted(&m), 4);
  const uint64_t tol = 2 * MIB * weighted(&m);
  static const combo combos[] = {
      {"planned,index,reverse,random:2", "resident", "none", NULL},
      {"planned,index,reverse,random:2", "offload:text_encoder_2", "none", NULL},
      {"planned,index,reverse,random:2", "on-oom=offload", "none", NULL},
      {"planned,index,reverse,random:2", "offload:vae,text_encoder+on-oom=offload", "none", NULL},
      {"planned,index,reverse,random:2", "resident", "cast", NULL},
      {"planned,index,reverse,random:2", "offload:text_encoder_2", "cast", NULL},
      {"planned,reverse", "resident", "scratch:3M", NULL},
      {"planned,reverse", "resident", "none", "6M@0.5"},
      {"planned,reverse", "on-oom=offload", "none", "6M@0.5"},
      {"planned", "resident", "cast", "4M@0"},
  };
  for (size_t k = 0; k < sizeof combos / sizeof combos[0]; k++) {
    const combo *c = &combos[k];
    oom_order *orders = NULL;
    size_t norders = 0;
    oom_policy pol;
    oom_transient tr;
    oom_cotenant ct = {0};
    unsigned char *mark = calloc(m.n, 1);
    ck_assert_int_eq(oom_orders_parse(c->orders, &m, 7, &orders, &norders, err, sizeof err), HOIST_OK);
    ck_assert_msg(oom_policy_parse(c->policy, &m, &pol, err, sizeof err) == HOIST_OK, "%s", err);
    ck_assert_int_eq(oom_policy_marks(&pol, &m, mark, err, sizeof err), HOIST_OK);
    ck_assert_int_eq(oom_transient_parse(c->transient, &tr, err, sizeof err), HOIST_OK);
    if (c->cotenant) ck_assert_int_eq(oom_cotenant_parse(c->cotenant, &ct, err, sizeof err), HOIST_OK);
    for (size_t o = 0; o < norders; o++) {
      oom_setup s = {&m, orders[o].slots, mark, pol.on_oom_offload, tr, ct, 0, 256};
      uint64_t hi = oom_upper_bound(&s);
      int sf = 0, mf = 0;
      uint64_t st = 0, mt = 0;
      oom_result sat, sbelow, mat, mbelow;
      ck_assert_int_eq(oom_bisect(oom_sim_trial_fn, &s, hi, OOM_STEP, &sf, &st, &sat, &sbelow), HOIST_OK);
      oom_measure x = {0};
      x.rt = rt;
      x.p = p;
      x.s = &s;
      x.pol = &pol;
      int rc = oom_bisect(oom_measure_trial, &x, hi, OOM_STEP, &mf, &mt, &mat, &mbelow);
      ck_assert_msg(rc == HOIST_OK, "%s", hoist_last_error(rt));
      ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
      ck_assert(sf && mf);
      ck_assert_msg(absdiff(st, mt) <= tol, "%s × %s × %s%s%s: measured %llu, simulated %llu",
                    orders[o].label, c->policy, c->transient, c->cotenant ? " × " : "",
                    c->cotenant ? c->cotenant : "", (unsigned long long)mt, (unsigned long long)st);
      ck_assert_msg(absdiff(sat.peak, mat.peak) <= tol, "peak: measured %llu, simulated %llu",
                    (unsigned long long)mat.peak, (unsigned long long)sat.peak);
      ck_assert_uint_eq(mat.device_bytes, oom_device_bytes(&s));
      /* One step below: a clean refusal, or an on-oom offload, never a crash. */
      if (mt > 0) {
        if (pol.on_oom_offload) {
          ck_assert_int_eq(mbelow.status, HOIST_OK);
          ck_assert_str_ne(mbelow.oom_offloaded, "");
        } else {
          ck_assert_int_eq(mbelow.status, HOIST_ADMISSION);
        }
      }
      /* With no transient and no co-tenant the threshold is Σ device bytes,
       * on the 1 MiB grid. */
      if (tr.kind == OOM_TRANSIENT_NONE && !ct.enabled) {
        ck_assert_uint_ge(mt, oom_device_bytes(&s));
        ck_assert_uint_lt(mt, oom_device_bytes(&s) + OOM_STEP);
      }
    }
    free(mark);
    oom_orders_free(orders, norders);
  }
  /* Offloading text_encoder_2 lowers the measured threshold by about its size. */
  size_t te2 = m.n;
  for (size_t i = 0; i < m.n; i++)
    if (strcmp(m.comps[i].name, "text_encoder_2") == 0) te2 = i;
  ck_assert_uint_lt(te2, m.n);
  uint64_t r = sim_threshold(&m, m.planned, "resident", "none", NULL, NULL);
  uint64_t off = sim_threshold(&m, m.planned, "offload:text_encoder_2", "none", NULL, NULL);
  ck_assert_uint_le(absdiff(r - off, oom_comp_need(&m.comps[te2], 256)), 2 * MIB);
  oom_model_free(&m);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

static void open_preset(const char *name, oom_model *m) {
  char err[512];
  ck_assert_msg(oom_model_from_preset(hoist__preset_find(name), 1.0, m, err, sizeof err) == HOIST_OK,
                "%s", err);
}

START_TEST(cast_planned_never_worse_smallest_first_strictly_worse) {
  static const char *names[] = {"flux1-dev", "wan2.2-t2v-a14b"};
  for (size_t k = 0; k < 2; k++) {
    oom_model m;
    open_preset(names[k], &m);
    oom_order *orders = NULL;
    size_t n = 0;
    char err[256];
    ck_assert_int_eq(oom_orders_parse("planned,index,reverse,random:32", &m, 11, &orders, &n, err,
                                      sizeof err),
                     HOIST_OK);
    uint64_t planned = sim_threshold(&m, orders[0].slots, "resident", "cast", NULL, NULL);
    for (size_t o = 1; o < n; o++) {
      uint64_t t = sim_threshold(&m, orders[o].slots, "resident", "cast", NULL, NULL);
      ck_assert_msg(planned <= t, "%s: planned %llu above %s %llu", names[k],
                    (unsigned long long)planned, orders[o].label, (unsigned long long)t);
      if (strcmp(orders[o].label, "reverse") == 0) {
        ck_assert_msg(t > planned, "%s: smallest-first not worse", names[k]);
        fprintf(stderr, "%s, cast: planned %.3f GiB, smallest-first %.3f GiB (+%.3f GiB)\n",
                names[k], planned / 1073741824.0, t / 1073741824.0, (t - planned) / 1073741824.0);
      }
    }
    oom_orders_free(orders, n);
    oom_model_free(&m);
  }
}
END_TEST

START_TEST(none_within_one_percent_and_offload_lowers_by_size) {
  for (size_t k = 0; k < hoist__preset_count(); k++) {
    oom_model m;
    open_preset(hoist__preset_at(k)->name, &m);
    oom_order *orders = NULL;
    size_t n = 0;
    char err[256];
    ck_assert_int_eq(oom_orders_parse("planned,index,reverse,random:8", &m, 5, &orders, &n, err,
                                      sizeof err),
                     HOIST_OK);
    uint64_t dev = 0;
    for (size_t i = 0; i < m.n; i++) dev += m.comps[i].tensors ? oom_comp_need(&m.comps[i], 256) : 0;
    for (size_t o = 0; o < n; o++) {
      uint64_t t = sim_threshold(&m, orders[o].slots, "resident", "none", NULL, NULL);
      ck_assert_uint_ge(t, dev);
      ck_assert_msg((double)t <= (double)dev * 1.01, "%s %s: %llu vs %llu", m.source,
                    orders[o].label, (unsigned long long)t, (unsigned long long)dev);
    }
    /* Offloading each weighted component lowers the threshold by its device
     * bytes (to the grid).  A name that is also a group ("text_encoder")
     * selects the whole group, as the loader's --offload does. */
    uint64_t res = sim_threshold(&m, m.planned, "resident", "none", NULL, NULL);
    unsigned char *mark = calloc(m.n, 1);
    for (size_t i = 0; i < m.n; i++) {
      if (m.comps[i].tensors == 0) continue;
      oom_policy pol;
      char spec[200];
      snprintf(spec, sizeof spec, "offload:%s", m.comps[i].name);
      ck_assert_int_eq(oom_policy_parse(spec, &m, &pol, err, sizeof err), HOIST_OK);
      ck_assert_int_eq(oom_policy_marks(&pol, &m, mark, err, sizeof err), HOIST_OK);
      uint64_t off = 0;
      for (size_t j = 0; j < m.n; j++) off += mark[j] ? oom_comp_need(&m.comps[j], 256) : 0;
      ck_assert_uint_ge(off, oom_comp_need(&m.comps[i], 256));
      uint64_t t = sim_threshold(&m, m.planned, spec, "none", NULL, NULL);
      ck_assert_msg(absdiff(res - t, off) <= 2 * MIB, "%s %s: %llu lower, %llu offloaded",
                    m.source, spec, (unsigned long long)(res - t), (unsigned long long)off);
    }
    free(mark);
    oom_orders_free(orders, n);
    oom_model_free(&m);
  }
}
END_TEST

/* Sets the flag after a short delay while trials run. */
static void set_later(void *arg) {
  uv_sleep(30);
  __atomic_store_n((volatile int *)arg, 1, __ATOMIC_RELAXED); /* the trials poll it */
}

START_TEST(cancel_between_and_during_trials_leaves_nothing) {
  write_flux("oom_cancel");
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  oom_model m;
  char err[256];
  ck_assert_int_eq(oom_model_from_pipeline(p, &m, err, sizeof err), HOIST_OK);
  unsigned char *mark = calloc(m.n, 1);
  oom_policy pol;
  ck_assert_int_eq(oom_policy_parse("resident", &m, &pol, err, sizeof err), HOIST_OK);
  oom_transient tr = {OOM_TRANSIENT_CAST, 0};
  oom_setup s = {&m, m.planned, mark, 0, tr, {0}, 0, 256};
  static volatile int cancel;
  __atomic_store_n(&cancel, 0, __ATOMIC_RELAXED);
  oom_measure x = {0};
  x.rt = rt;
  x.p = p;
  x.s = &s;
  x.pol = &pol;
  x.cancel = &cancel;
  uv_thread_t th;
  ck_assert_int_eq(uv_thread_create(&th, set_later, (void *)&cancel), 0);
  int rc = HOIST_OK;
  oom_result r;
  for (int i = 0; i < 100000 && rc == HOIST_OK; i++) {
    rc = oom_measure_trial(&x, oom_upper_bound(&s), &r);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  }
  uv_thread_join(&th);
  ck_assert_int_eq(rc, HOIST_CANCELLED);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  free(mark);
  oom_model_free(&m);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

static int run_cli(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s bench oom %s >/dev/null 2>&1", HOIST_CLI_PATH, args);
  int st = system(cmd);
  ck_assert(WIFEXITED(st));
  return WEXITSTATUS(st);
}

START_TEST(cli_impossible_requests_exit_2) {
  write_flux("oom_cli_bad");
  char args[2048];
  ck_assert_int_eq(run_cli("--preset flux1-dev --policy offload:no_such_component"), 2);
  ck_assert_int_eq(run_cli("--preset flux1-dev --policy offload:"), 2);
  ck_assert_int_eq(run_cli("--preset flux1-dev --policy resident+"), 2);
  ck_assert_int_eq(run_cli("--preset flux1-dev --policy bogus"), 2);
  ck_assert_int_eq(run_cli("--preset flux1-dev --orders planned,sideways"), 2);
  ck_assert_int_eq(run_cli("--preset flux1-dev --transient cast2"), 2);
  ck_assert_int_eq(run_cli("--preset flux1-dev --co-tenant 1G@1.5"), 2);
  ck_assert_int_eq(run_cli("--preset no-such-preset"), 2);
  ck_assert_int_eq(run_cli(""), 2);
  snprintf(args, sizeof args, "--max-capacity 1000000T '%s'", pipe_dir);
  ck_assert_int_eq(run_cli(args), 2);
  snprintf(args, sizeof args, "--policy offload:text_encoder_3 '%s'", pipe_dir);
  ck_assert_int_eq(run_cli(args), 2);
  snprintf(args, sizeof args, "--orders planned --policy offload:text_encoder_2 '%s'", pipe_dir);
  ck_assert_int_eq(run_cli(args), 0);
}
END_TEST

START_TEST(cli_json_rows_and_plot) {
  char dir[1024], cmd[4096], svg[1200];
  tu_scratch_dir("oom_cli_json", dir, sizeof dir);
  snprintf(svg, sizeof svg, "%s/plot.svg", dir);
  snprintf(cmd, sizeof cmd,
           "%s bench oom --json --preset flux1-dev --transient cast --orders planned,reverse "
           "--policy resident --policy offload:text_encoder_2 --plot '%s'",
           HOIST_CLI_PATH, svg);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  static char buf[1 << 16];
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  buf[len] = '\0';
  ck_assert_int_eq(pclose(f), 0);
  cJSON *root = cJSON_Parse(buf);
  ck_assert_ptr_nonnull(root);
  ck_assert_str_eq(cJSON_GetObjectItem(root, "preset")->valuestring, "flux1-dev");
  ck_assert_str_eq(cJSON_GetObjectItem(root, "device")->valuestring, "host");
  ck_assert_str_eq(cJSON_GetObjectItem(root, "transient")->valuestring, "cast");
  cJSON *rows = cJSON_GetObjectItem(root, "rows");
  ck_assert_int_eq(cJSON_GetArraySize(rows), 4);
  oom_model m;
  open_preset("flux1-dev", &m);
  oom_order *orders = NULL;
  size_t n = 0;
  char err[256];
  ck_assert_int_eq(oom_orders_parse("planned,reverse", &m, 1, &orders, &n, err, sizeof err), HOIST_OK);
  static const char *pols[] = {"resident", "offload:text_encoder_2"};
  for (int i = 0; i < 4; i++) {
    cJSON *r = cJSON_GetArrayItem(rows, i);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "order")->valuestring, orders[i / 2].label);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "policy")->valuestring, pols[i % 2]);
    oom_result at;
    uint64_t t = sim_threshold(&m, orders[i / 2].slots, pols[i % 2], "cast", &at, NULL);
    ck_assert_uint_eq((uint64_t)cJSON_GetObjectItem(r, "threshold_bytes")->valuedouble, t);
    ck_assert_uint_eq((uint64_t)cJSON_GetObjectItem(r, "peak_bytes")->valuedouble, at.peak);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "device_bytes")));
  }
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "what_fits")), 3);
  cJSON_Delete(root);
  oom_orders_free(orders, n);
  oom_model_free(&m);
  size_t slen = 0;
  char *text = tu_read_file(svg, &slen);
  ck_assert_ptr_nonnull(strstr(text, "<svg"));
  ck_assert_ptr_nonnull(strstr(text, "24 GB card"));
  ck_assert_ptr_nonnull(strstr(text, "</svg>"));
  free(text);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bench_oom");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, measured_matches_simulated_on_host);
  tcase_add_test(tc, cast_planned_never_worse_smallest_first_strictly_worse);
  tcase_add_test(tc, none_within_one_percent_and_offload_lowers_by_size);
  tcase_add_test(tc, cli_impossible_requests_exit_2);
  tcase_add_test(tc, cli_json_rows_and_plot);
  suite_add_tcase(s, tc);
  /* A cancel raised by another thread during trials: tagged threads, ctest
   * runs it alone as test_bench_oom_threads (label threads), which the
   * ThreadSanitizer build runs. */
  tc = tcase_create("threads");
  tcase_set_tags(tc, "threads");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, cancel_between_and_during_trials_leaves_nothing);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
