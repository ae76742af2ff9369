/* test_gpu_load.c — the load path on a real GPU (label gpu; prints a SKIP
 * line and passes where no CUDA device is usable): every read mode with
 * --verify, 50 load/unload cycles that leave device memory where it was,
 * and admission with a real ballast allocation (exact threshold, offload,
 * fsdp, nothing left allocated after a refusal). */
#include "testutil.h"

#include "device.h"
#include "pipeline_fixture.h"

#include <stdio.h>
#include <string.h>

static char pipe_dir[1024];

static uint64_t free_now(hoist_runtime *rt) {
  uint64_t f = 0, t = 0;
  ck_assert_int_eq(rt->dev->ops->mem_info(rt->dev, &f, &t), HOIST_OK);
  return f;
}

START_TEST(every_mode_verified) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_modes", pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 11);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  for (int m = HOIST_READ_AUTO; m <= HOIST_READ_REGISTER; m++) {
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.read_mode = (hoist_read_mode)m;
    o.verify = 1;
    hoist_loaded *l = NULL;
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "mode %d: %s", m,
                  hoist_last_error(rt));
    hoist_loaded_close(l);
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(fifty_cycles_device_memory_unchanged) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_cycles", pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 12);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  uint64_t before = 0;
  for (int i = 0; i < 50; i++) {
    hoist_loaded *l = NULL;
    ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &l), HOIST_OK);
    hoist_loaded_close(l);
    if (i == 0) before = free_now(rt); /* after the engine's one-time setup */
  }
  ck_assert_uint_eq(free_now(rt), before);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(admission_with_ballast) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_ballast", pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 13);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist__device *d = rt->dev;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  /* Needs, measured. */
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.headroom = 0;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_OK);
  uint64_t need = 0, need_te2 = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
    need += hoist_loaded_component(l, i)->device_bytes;
    if (strcmp(hoist_loaded_component(l, i)->name, "text_encoder_2") == 0)
      need_te2 = hoist_loaded_component(l, i)->device_bytes;
  }
  hoist_loaded_close(l);
  /* Ballast: leave about need + 64 MiB free, then set the headroom so the
   * threshold is exact whatever the allocator's rounding. */
  uint64_t ballast = 0, target = need + (64u << 20), f0 = free_now(rt);
  ck_assert_uint_gt(f0, target);
  ck_assert_int_eq(d->ops->alloc(d, (f0 - target) & ~((2ull << 20) - 1), &ballast), HOIST_OK);
  uint64_t f1 = free_now(rt);
  ck_assert_uint_ge(f1, need);
  printf("gpu ballast: need %llu, free %llu with ballast\n", (unsigned long long)need,
         (unsigned long long)f1);
  o.headroom = (int64_t)(f1 - need); /* exactly fits */
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  hoist_loaded_close(l);
  ck_assert_uint_eq(free_now(rt), f1);
  o.headroom = (int64_t)(f1 - need + 1); /* one byte short */
  hoist_load_failure fail;
  o.failure = &fail;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_ADMISSION);
  ck_assert_uint_eq(free_now(rt), f1);
  o.offload = "text_encoder_2";
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  /* cudaMalloc may sub-allocate small arenas, so the card can lose less
   * than the 2 MiB-rounded need, never more. */
  ck_assert_uint_ge(free_now(rt), f1 - (need - need_te2));
  ck_assert_uint_lt(free_now(rt), f1);
  size_t te2 = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (strcmp(hoist_loaded_component(l, i)->name, "text_encoder_2") == 0) te2 = i;
  ck_assert_int_eq(hoist_loaded_component(l, te2)->residency, HOIST_OFFLOAD);
  hoist_loaded_close(l);
  o.offload = NULL;
  o.headroom = 0;
  o.fsdp = "transformer";
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_OK);
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (strcmp(hoist_loaded_component(l, i)->name, "transformer") == 0) {
      int moved = -1;
      ck_assert_int_eq(hoist_loaded_component(l, i)->residency, HOIST_FSDP);
      ck_assert_int_eq(hoist_release_after_use(l, i, &moved), HOIST_OK);
      ck_assert_int_eq(moved, 0);
    }
  hoist_loaded_close(l);
  d->ops->free(d, ballast);
  ck_assert_uint_eq(free_now(rt), f0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gpu_load");
  TCase *tc = tcase_create("cuda");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, every_mode_verified);
  tcase_add_test(tc, fifty_cycles_device_memory_unchanged);
  tcase_add_test(tc, admission_with_ballast);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
