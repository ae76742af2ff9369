/* test_residency.c — admission control and residency on the host backend:
 * exact capacity thresholds, preflight refusal before any allocation,
 * offload and fsdp, on-oom offload, injected allocation failures and a
 * capacity drop between components, prepare/release moves and holds, and
 * the CLI's exit code 4 with its JSON and its flag names. */
#include "testutil.h"

#include "admission.h"
#include "device.h"
#include "pipeline_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char pipe_dir[1024];

typedef struct world {
  hoist_runtime *rt;
  hoist_pipeline *p;
  uint64_t need_total; /* sum of device bytes when everything is resident */
  uint64_t need_te2;   /* text_encoder_2's device bytes */
  uint64_t need_dit;
} world;

static uint64_t device_bytes_of(const hoist_loaded *l, const char *name) {
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (strcmp(hoist_loaded_component(l, i)->name, name) == 0)
      return hoist_loaded_component(l, i)->device_bytes;
  ck_abort_msg("no component %s", name);
  return 0;
}

static const hoist_loaded_info *comp(const hoist_loaded *l, const char *name, size_t *index) {
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (strcmp(hoist_loaded_component(l, i)->name, name) == 0) {
      if (index != NULL) *index = i;
      return hoist_loaded_component(l, i);
    }
  ck_abort_msg("no component %s", name);
  return NULL;
}

static void world_open(world *w, const char *name, uint64_t capacity) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 7);
  /* Measure the needs with an unlimited device first. */
  hoist_runtime *probe = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(probe, pipe_dir, NULL, &p), HOIST_OK);
  ck_assert_int_eq(hoist_load_pipeline(probe, p, NULL, &l), HOIST_OK);
  w->need_total = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    w->need_total += hoist_loaded_component(l, i)->device_bytes;
  w->need_te2 = device_bytes_of(l, "text_encoder_2");
  w->need_dit = device_bytes_of(l, "transformer");
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(probe);
  w->rt = tu_host_runtime(capacity != 0 ? capacity : w->need_total);
  ck_assert_int_eq(hoist_pipeline_open(w->rt, pipe_dir, NULL, &w->p), HOIST_OK);
}

static void world_close(world *w) {
  ck_assert_uint_eq(hoist__device_host_allocated(w->rt), 0);
  hoist_pipeline_close(w->p);
  hoist_runtime_close(w->rt);
}

/* The one admission rule, at its edges: exact, and no sum may wrap. */
START_TEST(admission_rule_is_exact_without_overflow) {
  ck_assert(hoist__admits(5, 5, 10));
  ck_assert(!hoist__admits(5, 6, 10));
  ck_assert(!hoist__admits(6, 5, 10));
  ck_assert(hoist__admits(0, 0, 0));
  ck_assert(hoist__admits(UINT64_MAX, 0, UINT64_MAX));
  ck_assert(hoist__admits(0, UINT64_MAX, UINT64_MAX));
  ck_assert(!hoist__admits(1, UINT64_MAX, UINT64_MAX));
  ck_assert(!hoist__admits(UINT64_MAX, 1, UINT64_MAX));
  ck_assert(!hoist__admits(UINT64_MAX, UINT64_MAX, UINT64_MAX - 1));
  /* The host backend keeps no headroom by default; an explicit one wins. */
  hoist_runtime *rt = tu_host_runtime(1 << 20);
  ck_assert_uint_eq(hoist__admission_headroom(rt->dev, -1, 1ull << 40), 0);
  ck_assert_uint_eq(hoist__admission_headroom(rt->dev, 4096, 1ull << 40), 4096);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(exact_capacity_loads_one_byte_less_refuses) {
  world w;
  world_open(&w, "res_exact", 0);
  hoist_loaded *l = NULL;
  ck_assert_msg(hoist_load_pipeline(w.rt, w.p, NULL, &l) == HOIST_OK, "%s", hoist_last_error(w.rt));
  hoist_loaded_close(l);
  hoist__device_host_set_capacity(w.rt, w.need_total - 1);
  hoist_load_failure f;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.failure = &f;
  /* The preflight refuses before anything is allocated: make any
   * allocation fail loudly to prove none is attempted. */
  hoist__device_host_fail_alloc_at(w.rt, 1, UINT64_MAX);
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_ADMISSION);
  ck_assert_ptr_null(l);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(w.rt), "preflight"));
  ck_assert_ptr_null(strstr(hoist_last_error(w.rt), "injected"));
  ck_assert_str_eq(f.component, "vae"); /* the last in load order no longer fits */
  hoist__device_host_fail_alloc_at(w.rt, 0, 0);
  world_close(&w);
}
END_TEST

START_TEST(offload_biggest_text_encoder_fits_same_capacity) {
  world w;
  world_open(&w, "res_offload", 0);
  hoist__device_host_set_capacity(w.rt, w.need_total - 1);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = "text_encoder_2";
  ck_assert_msg(hoist_load_pipeline(w.rt, w.p, &o, &l) == HOIST_OK, "%s", hoist_last_error(w.rt));
  size_t te2 = 0, dit = 0;
  ck_assert_int_eq(comp(l, "text_encoder_2", &te2)->residency, HOIST_OFFLOAD);
  ck_assert_uint_eq(comp(l, "text_encoder_2", NULL)->device_bytes, 0);
  ck_assert_int_eq(comp(l, "transformer", &dit)->residency, HOIST_RESIDENT);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), w.need_total - w.need_te2);

  /* Offloaded: no device address until prepared. */
  uint64_t addr = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder_2", "encoder.3", &addr, NULL),
                   HOIST_UNSUPPORTED);
  /* Release the DiT's room?  No: resident components never move. */
  int moved = -1;
  ck_assert_int_eq(hoist_prepare_for_use(l, dit, NULL, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 0);
  ck_assert_int_eq(hoist_release_after_use(l, dit, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 0);
  /* Not enough room to prepare text_encoder_2 now... */
  ck_assert_int_eq(hoist_prepare_for_use(l, te2, NULL, &moved), HOIST_DEVICE_OOM);
  ck_assert_int_eq(moved, 0);
  /* ...until the card grows. */
  hoist__device_host_set_capacity(w.rt, w.need_total);
  ck_assert_int_eq(hoist_prepare_for_use(l, te2, NULL, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 1);
  ck_assert_int_eq(hoist_prepare_for_use(l, te2, NULL, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 0);
  const hoist_tensor_info *ti = NULL;
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder_2", "encoder.3", &addr, &ti), HOIST_OK);
  char path[1200];
  snprintf(path, sizeof path, "%s/text_encoder_2/model.safetensors", pipe_dir);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_OK);
  unsigned char *want = malloc(ti->nbytes);
  ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + ti->begin, want, ti->nbytes), HOIST_OK);
  ck_assert(memcmp((void *)(uintptr_t)addr, want, ti->nbytes) == 0);
  free(want);
  hoist_file_close(f);
  ck_assert_int_eq(hoist_release_after_use(l, te2, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 1);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), w.need_total - w.need_te2);
  hoist_loaded_close(l);
  world_close(&w);
}
END_TEST

/* Holds pin a prepared component: release refuses with HOIST_BUSY, saying
 * how many holds are out, until every hold is given back; an unprepared
 * offloaded component cannot be held; resident and FSDP ones can. */
static hoist_loaded *load_marked(world *w, const char *offload, const char *fsdp) {
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = offload;
  o.fsdp = fsdp;
  hoist_loaded *l = NULL;
  ck_assert_msg(hoist_load_pipeline(w->rt, w->p, &o, &l) == HOIST_OK, "%s",
                hoist_last_error(w->rt));
  return l;
}

START_TEST(holds_keep_a_prepared_component) {
  world w;
  world_open(&w, "res_holds", 0);
  hoist_loaded *l = load_marked(&w, "text_encoder_2", "vae");
  size_t te2 = 0, dit = 0, vae = 0;
  comp(l, "text_encoder_2", &te2);
  comp(l, "transformer", &dit);
  comp(l, "vae", &vae);
  const uint64_t resident = w.need_total - w.need_te2;

  ck_assert_int_eq(hoist_loaded_hold(l, hoist_loaded_component_count(l)), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist_loaded_hold(l, te2), HOIST_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(w.rt), "call hoist_prepare_for_use first"));

  int moved = -1;
  ck_assert_int_eq(hoist_prepare_for_use(l, te2, NULL, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 1);
  uint64_t before = 0, after = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder_2", "encoder.3", &before, NULL), HOIST_OK);
  ck_assert_int_eq(hoist_loaded_hold(l, te2), HOIST_OK);
  ck_assert_int_eq(hoist_loaded_hold(l, te2), HOIST_OK);
  ck_assert_int_eq(hoist_release_after_use(l, te2, &moved), HOIST_BUSY);
  ck_assert_int_eq(moved, 0);
  ck_assert_str_eq(hoist_last_error(w.rt), "release_after_use: text_encoder_2 is held (2 holds "
                                           "outstanding); release it after hoist_loaded_unhold");
  /* Nothing moved: the same address, the same memory in use. */
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder_2", "encoder.3", &after, NULL), HOIST_OK);
  ck_assert_uint_eq(after, before);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), w.need_total);
  ck_assert_uint_eq(comp(l, "text_encoder_2", NULL)->device_bytes, w.need_te2);
  hoist_loaded_unhold(l, te2);
  ck_assert_int_eq(hoist_release_after_use(l, te2, &moved), HOIST_BUSY);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(w.rt), "(1 hold outstanding)"));
  hoist_loaded_unhold(l, te2);
  ck_assert_int_eq(hoist_release_after_use(l, te2, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 1);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), resident);
  ck_assert_int_eq(hoist_loaded_hold(l, te2), HOIST_UNSUPPORTED);

  /* Resident and FSDP components may be held; releasing them stays a
   * no-op, held or not. */
  ck_assert_int_eq(hoist_loaded_hold(l, dit), HOIST_OK);
  ck_assert_int_eq(hoist_loaded_hold(l, vae), HOIST_OK);
  ck_assert_int_eq(hoist_release_after_use(l, dit, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 0);
  ck_assert_int_eq(hoist_release_after_use(l, vae, &moved), HOIST_OK);
  ck_assert_int_eq(moved, 0);
  hoist_loaded_unhold(l, dit);
  hoist_loaded_unhold(l, vae);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), resident);
  hoist_loaded_close(l);
  world_close(&w);
}
END_TEST

START_TEST(busy_status_has_a_name) {
  ck_assert_int_eq(HOIST_BUSY, -7);
  ck_assert_str_eq(hoist_status_name(HOIST_BUSY), "BUSY");
  ck_assert_str_eq(hoist_strerror(HOIST_BUSY), "resource in use");
}
END_TEST

START_TEST(fsdp_component_is_never_moved) {
  world w;
  world_open(&w, "res_fsdp", 0);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.fsdp = "transformer";
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_OK);
  size_t dit = 0;
  const hoist_loaded_info *c = comp(l, "transformer", &dit);
  ck_assert_int_eq(c->residency, HOIST_FSDP);
  uint64_t begin = c->device_begin;
  int moved = -1;
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(hoist_release_after_use(l, dit, &moved), HOIST_OK);
    ck_assert_int_eq(moved, 0);
    ck_assert_int_eq(hoist_prepare_for_use(l, dit, NULL, &moved), HOIST_OK);
    ck_assert_int_eq(moved, 0);
  }
  ck_assert_uint_eq(comp(l, "transformer", NULL)->device_begin, begin);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), w.need_total);
  hoist_loaded_close(l);
  /* Both marks on one component is a usage error. */
  o.offload = "dit";
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_INVALID_ARGUMENT);
  world_close(&w);
}
END_TEST

START_TEST(on_oom_offload_degrades) {
  world w;
  world_open(&w, "res_degrade", 0);
  /* The DiT alone no longer fits: it goes to host memory, the rest loads. */
  hoist__device_host_set_capacity(w.rt, w.need_total - w.need_dit);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_ADMISSION);
  o.on_oom = HOIST_ON_OOM_OFFLOAD;
  ck_assert_msg(hoist_load_pipeline(w.rt, w.p, &o, &l) == HOIST_OK, "%s", hoist_last_error(w.rt));
  ck_assert_int_eq(comp(l, "transformer", NULL)->residency, HOIST_OFFLOAD);
  ck_assert_int_eq(comp(l, "text_encoder_2", NULL)->residency, HOIST_RESIDENT);
  ck_assert_int_eq(comp(l, "vae", NULL)->residency, HOIST_RESIDENT);
  hoist_loaded_close(l);
  world_close(&w);
}
END_TEST

START_TEST(groups_and_bad_names) {
  world w;
  world_open(&w, "res_groups", 0);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = "text_encoder,vae";
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_OK);
  ck_assert_int_eq(comp(l, "text_encoder", NULL)->residency, HOIST_OFFLOAD);
  ck_assert_int_eq(comp(l, "text_encoder_2", NULL)->residency, HOIST_OFFLOAD);
  ck_assert_int_eq(comp(l, "vae", NULL)->residency, HOIST_OFFLOAD);
  ck_assert_int_eq(comp(l, "transformer", NULL)->residency, HOIST_RESIDENT);
  hoist_loaded_close(l);
  o.offload = "unet";
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_INVALID_ARGUMENT);
  ck_assert_str_eq(hoist_last_error(w.rt), "`offload` unet: no component or group of that name "
                                           "(groups: dit, text_encoder, image_encoder, vae, all)");
  o.offload = "vae";
  o.fsdp = "vae";
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, &o, &l), HOIST_INVALID_ARGUMENT);
  ck_assert_str_eq(hoist_last_error(w.rt), "vae: marked both `offload` and `fsdp`; an FSDP "
                                           "component is placed by its owner");
  world_close(&w);
}
END_TEST

START_TEST(every_failed_allocation_frees_everything) {
  world w;
  world_open(&w, "res_inject", 0);
  for (uint64_t k = 1; k <= 4; k++) {
    hoist_loaded *l = NULL;
    hoist__device_host_fail_alloc_at(w.rt, k, UINT64_MAX);
    int rc = hoist_load_pipeline(w.rt, w.p, NULL, &l);
    ck_assert_msg(rc == HOIST_ADMISSION, "k=%llu: %s", (unsigned long long)k, hoist_status_name(rc));
    ck_assert_ptr_nonnull(strstr(hoist_last_error(w.rt), "despite admission"));
    ck_assert_uint_eq(hoist__device_host_allocated(w.rt), 0);
    /* The runtime stays usable. */
    hoist__device_host_fail_alloc_at(w.rt, 0, 0);
    ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, NULL, &l), HOIST_OK);
    hoist_loaded_close(l);
  }
  world_close(&w);
}
END_TEST

START_TEST(fragmented_device_gets_several_arenas) {
  world w;
  world_open(&w, "res_split", 0);
  /* The first (single-arena) allocation fails once, as on a fragmented
   * card: the component is placed in two arenas instead. */
  hoist__device_host_fail_alloc_at(w.rt, 1, 1);
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(w.rt, w.p, NULL, &l), HOIST_OK);
  const hoist_loaded_info *c = comp(l, "transformer", NULL);
  ck_assert_uint_lt(c->device_end - c->device_begin, c->device_bytes);
  uint64_t addr = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, "transformer", "blocks.b.5", &addr, NULL), HOIST_OK);
  hoist_loaded_close(l);
  world_close(&w);
}
END_TEST

typedef struct squeeze {
  hoist_runtime *rt;
  uint64_t capacity;
  int fired;
} squeeze;

/* When the first component is complete, another tenant takes memory. */
static void squeeze_after_first(void *user, hoist_loaded *l, size_t position) {
  squeeze *s = user;
  if (!s->fired) {
    s->fired = 1;
    hoist__device_host_set_capacity(s->rt, s->capacity);
  }
}

/* Component by component (the path of verified and converting loads, and
 * of loads with a hook between components), admission runs after the
 * component before has uploaded and sees what another tenant took
 * meanwhile.  (A plain load admits and places every component before the
 * first byte moves: pipelined_load_places_everything_first.) */
START_TEST(capacity_drop_between_components_is_noticed) {
  world w;
  world_open(&w, "res_drop", 0);
  squeeze s = {w.rt, w.need_dit + 1024, 0};
  hoist_load_failure f;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.failure = &f;
  hoist__load_ext ext = {0};
  ext.after_upload = squeeze_after_first;
  ext.after_upload_user = &s;
  hoist_loaded *l = NULL;
  /* Inject a failure on the 2nd allocation too: admission must refuse the
   * 2nd component before trying to allocate it. */
  hoist__device_host_fail_alloc_at(w.rt, 2, UINT64_MAX);
  ck_assert_int_eq(hoist__load_pipeline_ext(w.rt, w.p, &o, &ext, &l), HOIST_ADMISSION);
  ck_assert_int_eq(s.fired, 1);
  ck_assert_str_eq(f.component, "text_encoder_2");
  ck_assert_uint_eq(f.free_bytes, 1024);
  ck_assert_ptr_null(strstr(hoist_last_error(w.rt), "despite"));
  hoist__device_host_fail_alloc_at(w.rt, 0, 0);
  world_close(&w);
}
END_TEST

typedef struct first_progress {
  hoist_runtime *rt;
  uint64_t allocated; /* device bytes at the first progress call */
  int calls;
} first_progress;

static void note_first_progress(void *user, const char *component, uint64_t done,
                                uint64_t total) {
  first_progress *fp = user;
  if (fp->calls++ == 0) fp->allocated = hoist__device_host_allocated(fp->rt);
}

/* A plain load uploads every component in one run: all device memory is
 * admitted and placed before the first byte moves, so a tenant taking
 * memory later cannot strand a load halfway. */
START_TEST(pipelined_load_places_everything_first) {
  world w;
  world_open(&w, "res_pipe", 0);
  first_progress fp = {w.rt, 0, 0};
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.progress = note_first_progress;
  o.progress_user = &fp;
  hoist_loaded *l = NULL;
  ck_assert_msg(hoist_load_pipeline(w.rt, w.p, &o, &l) == HOIST_OK, "%s", hoist_last_error(w.rt));
  ck_assert_int_gt(fp.calls, 0);
  ck_assert_uint_eq(fp.allocated, w.need_total);
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    ck_assert_double_ge(hoist_loaded_component(l, i)->seconds, 0);
  hoist_loaded_close(l);
  world_close(&w);
}
END_TEST

START_TEST(cli_refusal_exit_4_with_json) {
  world w;
  world_open(&w, "res_cli", 0);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s load --json --device host --capacity %llu '%s' > '%s/out.json'",
           HOIST_CLI_PATH, (unsigned long long)(w.need_total - 1), pipe_dir, pipe_dir);
  int st = system(cmd);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 4);
  char path[1200];
  snprintf(path, sizeof path, "%s/out.json", pipe_dir);
  size_t len = 0;
  char *text = tu_read_file(path, &len);
  ck_assert_ptr_nonnull(strstr(text, "\"error\""));
  ck_assert_ptr_nonnull(strstr(text, "\"component\":\"vae\""));
  ck_assert_ptr_nonnull(strstr(text, "\"need_bytes\""));
  ck_assert_ptr_nonnull(strstr(text, "\"free_bytes\""));
  free(text);
  snprintf(cmd, sizeof cmd,
           "%s load --json --device host --capacity %llu --offload text_encoder_2 --fsdp transformer "
           "'%s' > '%s/out.json'",
           HOIST_CLI_PATH, (unsigned long long)(w.need_total - 1), pipe_dir, pipe_dir);
  st = system(cmd);
  ck_assert_int_eq(WEXITSTATUS(st), 0);
  text = tu_read_file(path, &len);
  ck_assert_ptr_nonnull(strstr(text, "\"name\":\"text_encoder_2\""));
  ck_assert_ptr_nonnull(strstr(text, "\"residency\":\"offload\""));
  ck_assert_ptr_nonnull(strstr(text, "\"residency\":\"fsdp\""));
  free(text);
  world_close(&w);
}
END_TEST

/* The library names option fields (`offload`); the CLI says its flags, on
 * stderr and in its JSON, and in the log of -vv. */
START_TEST(cli_names_flags_for_fields) {
  world w;
  world_open(&w, "res_cli_flags", 0);
  static const struct {
    const char *args, *want;
  } cases[] = {
      {"--offload unet", "hoist load: --offload unet: no component or group of that name"},
      {"--fsdp vae --offload vae", "hoist load: vae: marked both --offload and --fsdp;"},
      {"--dtype-for vae=f8", "hoist load: --dtype-for: 'f8' is not bf16, f16, f32 or keep"},
      {"--dtype-for =f16", "hoist load: --dtype-for: '=f16' is not NAME=DTYPE"},
      {"-vv --dtype-for unet=keep", "hoist: debug: --dtype-for unet: no component"},
      {"--json --offload unet", "\"error\":\"--offload unet: no component"}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s load --device host %s '%s' 2>&1", HOIST_CLI_PATH, cases[k].args,
             pipe_dir);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t len = fread(out, 1, sizeof out - 1, f);
    out[len] = '\0';
    int st = pclose(f);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: %s", cases[k].args, out);
    ck_assert_msg(strstr(out, cases[k].want) != NULL, "%s: %s", cases[k].args, out);
    ck_assert_msg(strchr(out, '`') == NULL, "%s: %s", cases[k].args, out);
  }
  world_close(&w);
}
END_TEST

/* The CLI's log on stderr: quiet by default, -v says why a component was
 * offloaded, -vv adds each component's timings; stdout keeps the JSON. */
START_TEST(cli_verbose_logs_on_stderr) {
  world w;
  world_open(&w, "res_cli_log", 0);
  static const struct {
    const char *flag, *want, *absent;
  } cases[] = {{"", NULL, "hoist: "},
               {"-v", "do not fit in", "hoist: debug:"},
               {"--verbose", "; offloading", "transfers"},
               {"-vv", "hoist: debug: transformer: ", NULL},
               {"-v -v", " transfers (0 converted) uploaded in ", NULL}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s load --json --device host --capacity %llu --on-oom offload %s '%s' > '%s/out.json' "
             "2> '%s/err.txt'",
             HOIST_CLI_PATH, (unsigned long long)(w.need_total - 1), cases[k].flag, pipe_dir,
             pipe_dir, pipe_dir);
    int st = system(cmd);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    char path[1200];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/err.txt", pipe_dir);
    char *err = tu_read_file(path, &len);
    if (cases[k].want != NULL)
      ck_assert_msg(strstr(err, cases[k].want) != NULL, "%s: %s", cases[k].flag, err);
    if (cases[k].absent != NULL)
      ck_assert_msg(strstr(err, cases[k].absent) == NULL, "%s: %s", cases[k].flag, err);
    free(err);
    snprintf(path, sizeof path, "%s/out.json", pipe_dir);
    char *out = tu_read_file(path, &len);
    ck_assert_msg(out[0] == '{' && strstr(out, "\"residency\":\"offload\"") != NULL, "%s", out);
    free(out);
  }
  world_close(&w);
}
END_TEST

int main(void) {
  Suite *s = suite_create("residency");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, admission_rule_is_exact_without_overflow);
  tcase_add_test(tc, exact_capacity_loads_one_byte_less_refuses);
  tcase_add_test(tc, offload_biggest_text_encoder_fits_same_capacity);
  tcase_add_test(tc, holds_keep_a_prepared_component);
  tcase_add_test(tc, busy_status_has_a_name);
  tcase_add_test(tc, fsdp_component_is_never_moved);
  tcase_add_test(tc, on_oom_offload_degrades);
  tcase_add_test(tc, groups_and_bad_names);
  tcase_add_test(tc, every_failed_allocation_frees_everything);
  tcase_add_test(tc, fragmented_device_gets_several_arenas);
  tcase_add_test(tc, capacity_drop_between_components_is_noticed);
  tcase_add_test(tc, pipelined_load_places_everything_first);
  tcase_add_test(tc, cli_refusal_exit_4_with_json);
  tcase_add_test(tc, cli_verbose_logs_on_stderr);
  tcase_add_test(tc, cli_names_flags_for_fields);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
