/* testutil.c — what the Check suites share (see testutil.h). */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "<build>/<rel>", the build folder being the parent of the folder that
 * holds this test binary. */
static void build_path(const char *rel, char *buf, size_t size) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  ck_assert_msg(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
  exe[n] = '\0';
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(exe, '/');
    ck_assert_msg(slash != NULL && slash != exe, "no build folder above %s", exe);
    *slash = '\0';
  }
  ck_assert_msg((size_t)snprintf(buf, size, "%s/%s", exe, rel) < size, "path too long");
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *tu_vector_dir(size_t i, char *buf, size_t size) {
  const char *env = getenv(i == 0 ? "HOIST_VECTORS_DIR" : "HOIST_SHARED_DIR");
  if (i == 0) {
    if (env != NULL)
      snprintf(buf, size, "%s", env);
    else
      build_path("vectors", buf, size);
    char expect[4200];
    snprintf(expect, sizeof expect, "%s/expect.json", buf);
    ck_assert_msg(access(expect, R_OK) == 0,
                  "%s: no test vectors (ctest's fixture make_vectors writes them: "
                  "tests/vectors/make_vectors.py DIR)",
                  buf);
    return buf;
  }
  if (i > 1) return NULL;
  snprintf(buf, size, "%s/vectors", env != NULL ? env : HOIST_SHARED_DIR);
  return is_dir(buf) ? buf : NULL;
}

const char *tu_vector_path(const char *rel, char *buf, size_t size) {
  char dir[4096];
  tu_vector_dir(0, dir, sizeof dir);
  snprintf(buf, size, "%s/%s", dir, rel);
  return buf;
}

static void rm_tree(const char *path) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) ck_abort_msg("cannot clear %s", path);
}

const char *tu_scratch_dir(const char *name, char *buf, size_t size) {
  char root[4096];
  const char *env = getenv("HOIST_TEST_TMP");
  if (env != NULL)
    snprintf(root, sizeof root, "%s", env);
  else
    build_path("test-tmp", root, sizeof root);
  mkdir(root, 0755);
  snprintf(buf, size, "%s/%s.%ld", root, name, (long)getpid());
  rm_tree(buf);
  ck_assert_msg(mkdir(buf, 0755) == 0, "mkdir %s: %s", buf, strerror(errno));
  return buf;
}

void tu_write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
  ck_assert(len == 0 || fwrite(data, 1, len, f) == len);
  ck_assert(fclose(f) == 0);
}

void tu_write_safetensors(const char *path, const char *header_json, const void *data,
                          size_t data_len) {
  size_t hlen = strlen(header_json);
  size_t total = 8 + hlen + data_len;
  unsigned char *buf = malloc(total > 0 ? total : 1);
  ck_assert(buf != NULL);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(buf + 8, header_json, hlen);
  for (size_t i = 0; i < data_len; i++)
    buf[8 + hlen + i] = data != NULL ? ((const unsigned char *)data)[i] : (unsigned char)(i * 131 + 7);
  tu_write_file(path, buf, total);
  free(buf);
}

void *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
  ck_assert(fseek(f, 0, SEEK_END) == 0);
  long n = ftell(f);
  ck_assert(n >= 0);
  rewind(f);
  void *buf = malloc((size_t)n + 1);
  ck_assert(buf != NULL);
  ck_assert((size_t)n == 0 || fread(buf, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  ((char *)buf)[n] = '\0';
  *len = (size_t)n;
  return buf;
}

int tu_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

hoist_runtime *tu_host_runtime(uint64_t capacity) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = "host";
  cfg.capacity = capacity;
  hoist_runtime *rt = NULL;
  int rc = hoist_runtime_create(&cfg, &rt);
  ck_assert_msg(rc == HOIST_OK, "runtime: %s", hoist_last_error(NULL));
  return rt;
}

hoist_runtime *tu_cuda_runtime(void) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = "cuda:0";
  hoist_runtime *rt = NULL;
  ck_assert_msg(hoist_runtime_create(&cfg, &rt) == HOIST_OK, "%s", hoist_last_error(NULL));
  return rt;
}

int tu_gpu_available(void) {
  static int cached = -1;
  if (cached >= 0) return cached;
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = "cuda:0";
  hoist_runtime *rt = NULL;
  int rc = hoist_runtime_create(&cfg, &rt);
  cached = rc == HOIST_OK;
  if (!cached) printf("SKIP: no usable CUDA device (%s)\n", hoist_last_error(NULL));
  hoist_runtime_close(rt);
  fflush(stdout);
  return cached;
}
