/* test_nccl.c — finding NCCL at run time, without a GPU (nccl_lib.c): a
 * build with NCCL support finds a library that has every function hoist
 * uses, or says it found none and where it looked; $HOIST_NCCL_LIBRARY (a
 * folder or a file) comes first, and a file that is not NCCL is passed
 * over; a build without NCCL support says so.  Each test runs in its own
 * process (the library is loaded once per process). */
#include "testutil.h"

#include "group.h"
#include "nccl_lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(HOIST_HAVE_NCCL)

/* The library the default search finds, looked up in a child; "" when none. */
static void default_library(char *out, size_t size) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    const char *path = NULL;
    const char *found = hoist__nccl_load(&path, NULL) == HOIST_OK ? path : "";
    (void)!write(fds[1], found, strlen(found) + 1);
    _exit(0);
  }
  close(fds[1]);
  ssize_t n = read(fds[0], out, size - 1);
  out[n > 0 ? n : 0] = '\0';
  close(fds[0]);
  waitpid(pid, NULL, 0);
}

START_TEST(finds_nccl_or_says_where_it_looked) {
  const char *path = NULL;
  int version = 0;
  const int rc = hoist__nccl_load(&path, &version);
  if (rc == HOIST_OK) {
    printf("nccl: %s, version %d\n", path, version);
    ck_assert_int_ge(version, 21400); /* ncclCommInitRankConfig */
    ck_assert_ptr_nonnull(strstr(path, "libnccl"));
  } else {
    ck_assert_int_eq(rc, HOIST_NO_NCCL);
    ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "tried"));
    ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "HOIST_NCCL_LIBRARY"));
  }
}
END_TEST

START_TEST(the_environment_comes_first) {
  char real[1024], scratch[1024], link[1200];
  default_library(real, sizeof real);
  if (real[0] == '\0') {
    printf("SKIP: no NCCL on this machine to point HOIST_NCCL_LIBRARY at\n");
    return;
  }
  tu_scratch_dir("nccl_env", scratch, sizeof scratch);
  snprintf(link, sizeof link, "%s/libnccl.so.2", scratch);
  ck_assert_int_eq(symlink(real, link), 0);
  setenv("HOIST_NCCL_LIBRARY", scratch, 1);
  const char *path = NULL;
  ck_assert_int_eq(hoist__nccl_load(&path, NULL), HOIST_OK);
  ck_assert_str_eq(path, link);
}
END_TEST

START_TEST(a_file_that_is_not_nccl_is_passed_over) {
  char real[1024];
  default_library(real, sizeof real);
  setenv("HOIST_NCCL_LIBRARY", "libm.so.6", 1);
  const char *path = NULL;
  const int rc = hoist__nccl_load(&path, NULL);
  if (real[0] != '\0') {
    ck_assert_int_eq(rc, HOIST_OK);
    ck_assert_str_eq(path, real);
  } else {
    ck_assert_int_eq(rc, HOIST_NO_NCCL);
    ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "libm.so.6 (no ncclGetVersion"));
  }
}
END_TEST

#else

START_TEST(a_build_without_nccl_says_so) {
  ck_assert_int_eq(hoist__nccl_load(NULL, NULL), HOIST_NO_NCCL);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "no NCCL support"));
  unsigned char id[HOIST_NCCL_ID_BYTES];
  ck_assert_int_eq(hoist__nccl_unique_id(id, sizeof id), HOIST_NO_NCCL);
}
END_TEST

#endif

int main(void) {
  Suite *s = suite_create("nccl");
  TCase *tc = tcase_create("loading");
#if defined(HOIST_HAVE_NCCL)
  tcase_add_test(tc, finds_nccl_or_says_where_it_looked);
  tcase_add_test(tc, the_environment_comes_first);
  tcase_add_test(tc, a_file_that_is_not_nccl_is_passed_over);
#else
  tcase_add_test(tc, a_build_without_nccl_says_so);
#endif
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
