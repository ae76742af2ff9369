/* test_status.c — status codes, dtype table, error details and the host
 * runtime's basic contract. */
#include "testutil.h"

#include "device.h"

#include <string.h>

START_TEST(status_names_and_sentences) {
  ck_assert_str_eq(hoist_status_name(HOIST_OK), "OK");
  ck_assert_str_eq(hoist_status_name(HOIST_HEADER_JSON), "HEADER_JSON");
  ck_assert_str_eq(hoist_strerror(HOIST_ADMISSION), "does not fit in device memory");
  ck_assert_str_eq(hoist_status_name(12345), "UNKNOWN");
  ck_assert_str_eq(hoist_strerror(12345), "unknown status");
}
END_TEST

START_TEST(dtype_table) {
  hoist_dtype d;
  ck_assert_int_eq(hoist_dtype_from_name("BF16", 4, &d), HOIST_OK);
  ck_assert_int_eq(d, HOIST_DTYPE_BF16);
  ck_assert_uint_eq(hoist_dtype_bits(d), 16);
  ck_assert_int_eq(hoist_dtype_from_name("bf16", 4, &d), HOIST_BAD_DTYPE);
  ck_assert_int_eq(hoist_dtype_from_name("F8_E4M3", 7, &d), HOIST_OK);
  ck_assert_uint_eq(hoist_dtype_bits(d), 8);
  ck_assert_int_eq(hoist_dtype_from_name("F4", 2, &d), HOIST_OK);
  ck_assert_uint_eq(hoist_dtype_bits(d), 4);
  ck_assert_int_eq(hoist_dtype_from_name("F6_E3M2", 7, &d), HOIST_OK);
  ck_assert_uint_eq(hoist_dtype_bits(d), 6);
  ck_assert_int_eq(hoist_dtype_from_name("F1", 2, &d), HOIST_BAD_DTYPE);
  ck_assert_ptr_null(hoist_dtype_name(HOIST_DTYPE_COUNT_));
}
END_TEST

static int log_calls;
static void count_log(void *user, hoist_log_level level, const char *msg) {
  (void)user;
  (void)level;
  (void)msg;
  log_calls++;
}

START_TEST(runtime_errors_and_log) {
  hoist_runtime *rt = NULL;
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = "tpu:0";
  ck_assert_int_eq(hoist_runtime_create(&cfg, &rt), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_null(rt);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "tpu:0"));
  cfg.struct_size = 3;
  ck_assert_int_eq(hoist_runtime_create(&cfg, &rt), HOIST_INVALID_ARGUMENT);

  rt = tu_host_runtime(1 << 20);
  hoist_log_set(rt, count_log, NULL, HOIST_LOG_DEBUG);
  log_calls = 0;
  hoist__log(rt, HOIST_LOG_INFO, "hello %d", 1);
  ck_assert_int_eq(log_calls, 1);
  hoist_log_set(rt, count_log, NULL, HOIST_LOG_ERROR);
  hoist__log(rt, HOIST_LOG_INFO, "dropped");
  ck_assert_int_eq(log_calls, 1);
  ck_assert_int_eq(hoist__fail(rt, HOIST_IO, "x %s", "y"), HOIST_IO);
  ck_assert_str_eq(hoist_last_error(rt), "x y");
  hoist_runtime_close(rt);
  hoist_runtime_close(NULL);
}
END_TEST

START_TEST(host_backend_capacity) {
  hoist_runtime *rt = tu_host_runtime(4096);
  hoist__device *d = rt->dev;
  uint64_t free_b, total_b, a = 0, b = 0;
  ck_assert_int_eq(d->ops->mem_info(d, &free_b, &total_b), HOIST_OK);
  ck_assert_uint_eq(total_b, 4096);
  ck_assert_uint_eq(free_b, 4096);
  ck_assert_int_eq(d->ops->alloc(d, 3000, &a), HOIST_OK);
  ck_assert_uint_eq(a % 256, 0);
  ck_assert_uint_eq(hoist__device_host_allocated(d), 3072);
  ck_assert_int_eq(d->ops->alloc(d, 1025, &b), HOIST_DEVICE_OOM);
  ck_assert_int_eq(d->ops->alloc(d, 1024, &b), HOIST_OK);
  d->ops->free(d, a);
  d->ops->free(d, b);
  ck_assert_uint_eq(hoist__device_host_allocated(d), 0);
  hoist__device_host_fail_alloc_at(d, 2, 1);
  ck_assert_int_eq(d->ops->alloc(d, 10, &a), HOIST_OK);
  ck_assert_int_eq(d->ops->alloc(d, 10, &b), HOIST_DEVICE_OOM);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "injected"));
  ck_assert_int_eq(d->ops->alloc(d, 10, &b), HOIST_OK); /* only one failed */
  d->ops->free(d, b);
  hoist__device_host_fail_alloc_at(d, 1, UINT64_MAX);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(d->ops->alloc(d, 10, &b), HOIST_DEVICE_OOM);
  hoist__device_host_fail_alloc_at(d, 0, 0);
  d->ops->free(d, a);
  ck_assert_uint_eq(hoist__device_host_allocated(d), 0);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("status");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, status_names_and_sentences);
  tcase_add_test(tc, dtype_table);
  tcase_add_test(tc, runtime_errors_and_log);
  tcase_add_test(tc, host_backend_capacity);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
