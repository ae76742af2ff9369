/* test_gpu_load_into.c — hoist_load_into on a real GPU (label gpu; prints
 * a SKIP line and passes where no CUDA device is usable): every tensor of
 * the mixed-dtype component lands in device buffers equal to the CPU
 * reference conversion, for each target dtype, read mode and with
 * verification; pointers that are not device memory of this card in this
 * process (host memory, a value from another process) are refused before
 * anything moves; and device memory beyond the destinations stays within
 * the conversion scratch during the load and is all given back after. */
#include "into_fixture.h"

#include "load.h"

static char pipe_dir[1024];

static uint64_t used_now(hoist_runtime *rt) {
  uint64_t f = 0, t = 0;
  ck_assert_int_eq(hoist_runtime_mem_info(rt, &f, &t), HOIST_OK);
  return t - f;
}

START_TEST(into_device_buffers_equals_reference) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_into", pipe_dir, sizeof pipe_dir);
  cf_write_pipeline(pipe_dir, 31, 0);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  const hoist_dtype targets[] = {HOIST_DTYPE_COUNT_, HOIST_DTYPE_BF16, HOIST_DTYPE_F16,
                                 HOIST_DTYPE_F32};
  const hoist_read_mode modes[] = {HOIST_READ_AUTO, HOIST_READ_DIRECT, HOIST_READ_REGISTER};
  /* A plain and a converting load first: CUDA gives the engine's copy
   * streams, and then its conversion streams, device memory of their own
   * at their first use, once per process; after that a load leaves the
   * device as it found it. */
  for (size_t k = 0; k < 2; k++) {
    if_set s;
    if_build(rt, p, "transformer", targets[k], 1, &s);
    ck_assert_msg(hoist_load_into(rt, p, "transformer", s.t, s.n, NULL) == HOIST_OK, "%s",
                  hoist_last_error(rt));
    if_free(rt, &s);
  }
  for (size_t k = 0; k < 4; k++)
    for (size_t m = 0; m < 3; m++)
      for (int verify = 0; verify <= 1; verify++) {
        if_set s;
        if_build(rt, p, "transformer", targets[k], 1, &s);
        const uint64_t used0 = used_now(rt);
        hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
        o.read_mode = modes[m];
        o.verify = verify;
        ck_assert_msg(hoist_load_into(rt, p, "transformer", s.t, s.n, &o) == HOIST_OK,
                      "target %zu mode %zu verify %d: %s", k, m, verify, hoist_last_error(rt));
        if_check(rt, &s);
        ck_assert_uint_eq(used_now(rt), used0);
        if_free(rt, &s);
      }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(foreign_pointers_are_refused) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_into_foreign", pipe_dir, sizeof pipe_dir);
  cf_write_pipeline(pipe_dir, 32, 0);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  if_set s;
  if_build(rt, p, "vae", HOIST_DTYPE_COUNT_, 1, &s);
  const size_t w = if_find(&s, "decoder.w");
  const uint64_t mine = s.t[w].addr;
  void *host = malloc(s.t[w].nbytes);
  ck_assert_ptr_nonnull(host);
  /* Host memory, and an address that is nothing here (as a device pointer
   * sent over from another process would be). */
  const uint64_t foreign[] = {(uint64_t)(uintptr_t)host, 0x7f0000000000ull};
  for (size_t k = 0; k < 2; k++) {
    s.t[w].addr = foreign[k];
    const uint64_t used0 = used_now(rt);
    ck_assert_int_eq(hoist_load_into(rt, p, "vae", s.t, s.n, NULL), HOIST_INVALID_ARGUMENT);
    ck_assert_msg(strstr(hoist_last_error(rt), "decoder.w': its target") != NULL &&
                      strstr(hoist_last_error(rt), "no memory CUDA knows in this process") != NULL,
                  "%s", hoist_last_error(rt));
    ck_assert_uint_eq(used_now(rt), used0);
  }
  s.t[w].addr = mine;
  ck_assert_int_eq(hoist_load_into(rt, p, "vae", s.t, s.n, NULL), HOIST_OK);
  if_check(rt, &s);
  free(host);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

typedef struct peak {
  hoist_runtime *rt;
  uint64_t base, top;
} peak;

static void sample(void *user, const char *component, uint64_t done, uint64_t total) {
  peak *k = user;
  const uint64_t used = used_now(k->rt);
  if (used > k->top) k->top = used;
}

START_TEST(device_memory_is_destinations_plus_scratch) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_into_peak", pipe_dir, sizeof pipe_dir);
  size_t converted = 0;
  cf_write_small_pipeline(pipe_dir, 33, &converted);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  if_set s;
  if_build(rt, p, "transformer", HOIST_DTYPE_BF16, 1, &s);
  /* A first call makes the engine and loads the kernels. */
  ck_assert_msg(hoist_load_into(rt, p, "transformer", s.t, s.n, NULL) == HOIST_OK, "%s",
                hoist_last_error(rt));
  peak k = {rt, used_now(rt), 0};
  k.top = k.base;
  hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
  o.progress = sample;
  o.progress_user = &k;
  ck_assert_int_eq(hoist_load_into(rt, p, "transformer", s.t, s.n, &o), HOIST_OK);
  if_check(rt, &s);
  ck_assert_msg(k.top - k.base <= (64u << 20), "%llu bytes above the destinations",
                (unsigned long long)(k.top - k.base));
  ck_assert_uint_eq(used_now(rt), k.base);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gpu_load_into");
  TCase *tc = tcase_create("gpu");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, into_device_buffers_equals_reference);
  tcase_add_test(tc, foreign_pointers_are_refused);
  tcase_add_test(tc, device_memory_is_destinations_plus_scratch);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
