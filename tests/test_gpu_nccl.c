/* test_gpu_nccl.c — NCCL loaded at run time, on one GPU (label gpu; a SKIP
 * line where no GPU is usable or NCCL is not found): a communicator of
 * world size 1 made through the dlopen'ed functions broadcasts in place
 * and leaves the bytes as they were, multicast stays off unless the user
 * chose, and a load with a group of one on the card is a plain load. */
#include "testutil.h"

#include "device.h"
#include "group.h"
#include "nccl_lib.h"
#include "pipeline_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool nccl_usable(void) {
  if (!tu_gpu_available()) return false;
  const char *path = NULL;
  int version = 0;
  if (hoist__nccl_load(&path, &version) != HOIST_OK) {
    printf("SKIP: %s\n", hoist_last_error(NULL));
    return false;
  }
  printf("nccl: %s, version %d\n", path, version);
  return true;
}

START_TEST(world_of_one_broadcasts_in_place) {
  if (!nccl_usable()) return;
  unsetenv("NCCL_NVLS_ENABLE");
  hoist_runtime *rt = tu_cuda_runtime();
  unsigned char id[HOIST_NCCL_ID_BYTES];
  ck_assert_int_eq(hoist__nccl_unique_id(id, sizeof id), HOIST_OK);
  ck_assert_str_eq(getenv("NCCL_NVLS_ENABLE"), "0");
  hoist__nccl *c = NULL;
  volatile int stop = 0;
  ck_assert_msg(hoist__nccl_init_rank(rt->dev->ordinal, 1, 0, id, sizeof id, 30, &stop, &c) ==
                    HOIST_OK,
                "%s", hoist_last_error(NULL));
  const size_t n = 3u << 20;
  unsigned char *host = malloc(n), *back = malloc(n);
  for (size_t i = 0; i < n; i++) host[i] = (unsigned char)(i * 131 + 7);
  uint64_t addr = 0;
  void *stream = NULL;
  ck_assert_int_eq(rt->dev->ops->alloc(rt->dev, n, &addr), HOIST_OK);
  ck_assert_int_eq(rt->dev->ops->stream_create(rt->dev, &stream), HOIST_OK);
  ck_assert_int_eq(rt->dev->ops->copy_h2d_async(rt->dev, addr, host, n, stream), HOIST_OK);
  ck_assert_int_eq(rt->dev->ops->stream_sync(rt->dev, stream), HOIST_OK);
  hoist__nccl_piece pieces[2] = {{addr, n / 2, 0}, {addr + n / 2, n - n / 2, 0}};
  ck_assert_msg(hoist__nccl_broadcast_wait(c, pieces, 2, stream, 30, &stop) == HOIST_OK, "%s",
                hoist_last_error(NULL));
  ck_assert_int_eq(rt->dev->ops->copy_d2h(rt->dev, back, addr, n), HOIST_OK);
  ck_assert_int_eq(memcmp(host, back, n), 0);
  hoist__nccl_free(c, 0);
  rt->dev->ops->stream_destroy(rt->dev, stream);
  rt->dev->ops->free(rt->dev, addr);
  free(host);
  free(back);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(the_user_keeps_multicast) {
  if (!nccl_usable()) return;
  setenv("NCCL_NVLS_ENABLE", "1", 1);
  unsigned char id[HOIST_NCCL_ID_BYTES];
  ck_assert_int_eq(hoist__nccl_unique_id(id, sizeof id), HOIST_OK);
  ck_assert_str_eq(getenv("NCCL_NVLS_ENABLE"), "1");
}
END_TEST

START_TEST(a_group_of_one_on_the_card) {
  if (!nccl_usable()) return;
  char pipe[1024];
  tu_scratch_dir("gpu_nccl_one", pipe, sizeof pipe);
  fixture_write_pipeline(pipe, 21);
  hoist_group *g = NULL;
  ck_assert_int_eq(hoist_group_create_local(1, &g), HOIST_OK);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = NULL;
  hoist_loaded *a = NULL, *b = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe, NULL, &p), HOIST_OK);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.verify = 1;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &a), HOIST_OK);
  o.group = g;
  o.fsdp = "transformer";
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &b) == HOIST_OK, "%s", hoist_last_error(rt));
  for (size_t i = 0; i < hoist_loaded_component_count(a); i++) {
    const hoist_loaded_info *x = hoist_loaded_component(a, i), *y = hoist_loaded_component(b, i);
    ck_assert_uint_eq(x->bytes, y->bytes);
    ck_assert_uint_eq(x->device_bytes, y->device_bytes);
  }
  hoist_loaded_close(a);
  hoist_loaded_close(b);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  hoist_group_close(g);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gpu_nccl");
  TCase *tc = tcase_create("nccl");
  tcase_add_test(tc, world_of_one_broadcasts_in_place);
  tcase_add_test(tc, the_user_keeps_multicast);
  tcase_add_test(tc, a_group_of_one_on_the_card);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
