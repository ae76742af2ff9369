/* test_filter.c — selective loading on the host backend: glob patterns
 * select whole names (case-sensitive, '*' across dots), a callback selects
 * or stops the load, both together narrow each other; only the selected
 * tensors are placed, counted, admitted and listed (hoist_loaded_tensor_at,
 * hoist_runtime_mem_info), a component with none selected loads nothing,
 * and every refusal leaves nothing allocated.  The callback runs before the
 * load takes the runtime's lock, so it may close another load. */
#include "testutil.h"

#include "device.h"
#include "load.h"
#include "pipeline_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char pipe_dir[1024];

static hoist_pipeline *fixture(hoist_runtime *rt, const char *name) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 3);
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  return p;
}

static size_t position_of(const hoist_loaded *l, const char *name) {
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (strcmp(hoist_loaded_component(l, i)->name, name) == 0) return i;
  ck_abort_msg("no component %s", name);
  return 0;
}

static const hoist_loaded_info *info_of(const hoist_loaded *l, const char *name) {
  return hoist_loaded_component(l, position_of(l, name));
}

/* Lists component name of l through hoist_loaded_tensor_at: names in
 * strictly rising order, each found by hoist_loaded_tensor at the same
 * address with the file's bytes; returns the count. */
static size_t check_listing(const hoist_loaded *l, const char *name) {
  const size_t i = position_of(l, name);
  const hoist_loaded_info *c = hoist_loaded_component(l, i);
  const char *prev = NULL;
  for (size_t j = 0; j < c->tensor_count; j++) {
    uint64_t addr = 0, again = 0;
    const hoist_tensor_info *t = NULL, *t2 = NULL;
    ck_assert_int_eq(hoist_loaded_tensor_at(l, i, j, &addr, &t), HOIST_OK);
    if (prev != NULL) ck_assert_int_lt(strcmp(prev, t->name), 0);
    prev = t->name;
    ck_assert_int_eq(hoist_loaded_tensor(l, name, t->name, &again, &t2), HOIST_OK);
    ck_assert_uint_eq(addr, again);
    ck_assert_ptr_eq(t, t2);
  }
  uint64_t addr = 1;
  const hoist_tensor_info *t = NULL;
  ck_assert_int_eq(hoist_loaded_tensor_at(l, i, c->tensor_count, &addr, &t),
                   HOIST_INVALID_ARGUMENT);
  ck_assert_uint_eq(addr, 0);
  return c->tensor_count;
}

/* Free device memory as admission sees it. */
static uint64_t free_now(hoist_runtime *rt) {
  uint64_t f = 0, t = 0;
  ck_assert_int_eq(hoist_runtime_mem_info(rt, &f, &t), HOIST_OK);
  return f;
}

START_TEST(globs_select_whole_names) {
  const uint64_t cap = 64u << 20;
  hoist_runtime *rt = tu_host_runtime(cap);
  hoist_pipeline *p = fixture(rt, "filter_globs");
  uint64_t f = 0, t = 0;
  ck_assert_int_eq(hoist_runtime_mem_info(rt, &f, &t), HOIST_OK);
  ck_assert_uint_eq(f, cap);
  ck_assert_uint_eq(t, cap);
  ck_assert_int_eq(hoist_runtime_mem_info(rt, NULL, NULL), HOIST_OK);
  /* blocks.a.1 and blocks.a.10 .. 19; clip.3 (not clip.30: whole names);
   * nothing of text_encoder_2 or vae. */
  static const char *const patterns[] = {"blocks.a.1*", "clip.3", NULL};
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.tensors = patterns;
  hoist_loaded *l = NULL;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  ck_assert_uint_eq(check_listing(l, "transformer"), 11);
  ck_assert_uint_eq(check_listing(l, "text_encoder"), 1);
  ck_assert_uint_eq(check_listing(l, "text_encoder_2"), 0);
  ck_assert_uint_eq(info_of(l, "vae")->bytes, 0);
  ck_assert_uint_eq(info_of(l, "vae")->device_bytes, 0);
  /* Bytes count the selected tensors: 9000 + 3 for clip.3. */
  ck_assert_uint_eq(info_of(l, "text_encoder")->bytes, 9003);
  ck_assert_uint_eq(hoist_loaded_total_bytes(l),
                    info_of(l, "transformer")->bytes + info_of(l, "text_encoder")->bytes);
  /* The arenas hold only them, and that is what the device lost. */
  uint64_t held = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    held += hoist_loaded_component(l, i)->device_bytes;
  ck_assert_uint_eq(hoist__device_host_allocated(rt), held);
  ck_assert_uint_eq(free_now(rt), cap - held);
  ck_assert_uint_lt(held, 400u << 10);
  /* A tensor the filter left out, and one that never existed. */
  uint64_t addr = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder", "clip.4", &addr, NULL), HOIST_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "the tensor filter left it out"));
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder", "clip.99", &addr, NULL), HOIST_NOT_FOUND);
  ck_assert_ptr_null(strstr(hoist_last_error(rt), "filter"));
  hoist_loaded_close(l);
  ck_assert_uint_eq(free_now(rt), cap);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(bad_patterns_are_refused) {
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = fixture(rt, "filter_bad");
  static const char *const upper[] = {"blocks.*", "CLIP.*", NULL};
  static const char *const empty[] = {NULL};
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  hoist_loaded *l = NULL;
  o.tensors = upper;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(
      strstr(hoist_last_error(rt), "`tensors`: pattern 'CLIP.*' matches no tensor"));
  ck_assert_ptr_null(l);
  o.tensors = empty;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "an empty pattern list"));
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

typedef struct picker {
  size_t calls;
  size_t stop_at;          /* 1-based call that stops the load; 0: never */
  hoist_loaded *to_close;  /* closed on the first call */
} picker;

/* Keeps tensors whose name ends in an even digit. */
static int even_only(void *user, const char *component, const char *tensor) {
  picker *k = user;
  k->calls++;
  if (k->to_close != NULL) {
    hoist_loaded_close(k->to_close); /* takes the runtime's lock */
    k->to_close = NULL;
  }
  if (k->stop_at != 0 && k->calls == k->stop_at) return -1;
  ck_assert(component != NULL && component[0] != '\0');
  return (tensor[strlen(tensor) - 1] - '0') % 2 == 0;
}

START_TEST(callback_selects_and_may_call_hoist) {
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = fixture(rt, "filter_callback");
  hoist_loaded *first = NULL, *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &first), HOIST_OK);
  picker k = {0, 0, first};
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.tensor_filter = even_only;
  o.tensor_filter_user = &k;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  ck_assert_uint_eq(k.calls, 40 + 30 + 12 + 20 + 9); /* every tensor once */
  ck_assert_uint_eq(check_listing(l, "transformer"), 20 + 15);
  ck_assert_uint_eq(check_listing(l, "vae"), 5);
  uint64_t addr = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, "vae", "decoder.4", &addr, NULL), HOIST_OK);
  ck_assert_int_eq(hoist_loaded_tensor(l, "vae", "decoder.5", &addr, NULL), HOIST_NOT_FOUND);
  hoist_loaded_close(l);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);

  /* Patterns first, then the callback on what they kept. */
  static const char *const blocks[] = {"blocks.*", NULL};
  k = (picker){0, 0, NULL};
  o.tensors = blocks;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_OK);
  ck_assert_uint_eq(k.calls, 70);
  ck_assert_uint_eq(check_listing(l, "transformer"), 35);
  ck_assert_uint_eq(info_of(l, "text_encoder")->tensor_count, 0);
  hoist_loaded_close(l);

  /* A negative answer stops the load before anything is allocated. */
  k = (picker){0, 7, NULL};
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_CANCELLED);
  ck_assert_ptr_nonnull(
      strstr(hoist_last_error(rt), "`tensor_filter` stopped the load at transformer/"));
  ck_assert_ptr_null(l);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(admission_counts_selected_tensors_only) {
  /* The transformer alone is 3.4 MB; its small tensors fit in 512 KiB. */
  const uint64_t cap = 512u << 10;
  hoist_runtime *rt = tu_host_runtime(cap);
  hoist_pipeline *p = fixture(rt, "filter_admission");
  hoist_load_failure failure;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.failure = &failure;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_ADMISSION);
  ck_assert_str_eq(failure.component, "transformer");
  static const char *const small[] = {"blocks.a.[2-9]*", "blocks.b.[2-9]*", "clip.*", NULL};
  o.tensors = small;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  ck_assert_uint_eq(info_of(l, "transformer")->tensor_count, 28 + 18);
  ck_assert_uint_eq(info_of(l, "text_encoder")->tensor_count, 20);
  ck_assert_uint_le(hoist__device_host_allocated(rt), cap);
  ck_assert_uint_eq(free_now(rt), cap - hoist__device_host_allocated(rt));
  hoist_loaded_close(l);
  ck_assert_uint_eq(free_now(rt), cap);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(listing_an_offloaded_component) {
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = fixture(rt, "filter_offload");
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = "vae";
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_OK);
  const size_t vae = position_of(l, "vae");
  uint64_t addr = 1;
  const hoist_tensor_info *t = NULL;
  ck_assert_int_eq(hoist_loaded_tensor_at(l, vae, 0, &addr, &t), HOIST_UNSUPPORTED);
  ck_assert_uint_eq(addr, 0);
  ck_assert_str_eq(t->name, "decoder.0");
  ck_assert_int_eq(hoist_prepare_for_use(l, vae, NULL, NULL), HOIST_OK);
  ck_assert_uint_eq(check_listing(l, "vae"), 9);
  ck_assert_int_eq(hoist_loaded_tensor_at(l, 99, 0, &addr, &t), HOIST_INVALID_ARGUMENT);
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(older_options_are_refused) {
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = fixture(rt, "filter_abi");
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  /* A program built before the filter fields passes the smaller size. */
  o.struct_size = (uint32_t)offsetof(hoist_load_options, tensors);
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_INVALID_ARGUMENT);
  char want[160];
  snprintf(want, sizeof want, "hoist_load_options.struct_size is %u, this library's is %zu",
           o.struct_size, sizeof o);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), want));
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("filter");
  TCase *tc = tcase_create("host");
  tcase_add_test(tc, globs_select_whole_names);
  tcase_add_test(tc, bad_patterns_are_refused);
  tcase_add_test(tc, callback_selects_and_may_call_hoist);
  tcase_add_test(tc, admission_counts_selected_tensors_only);
  tcase_add_test(tc, listing_an_offloaded_component);
  tcase_add_test(tc, older_options_are_refused);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
