/* test_threads.c — the threading contract of hoist.h, exercised by several
 * threads at once on the host backend; ctest label `threads`, which
 * `tools/test.sh --tsan` runs under ThreadSanitizer:
 *   - threads with a runtime each, loading the same pipeline;
 *   - one runtime shared by threads that load and fail at once, each
 *     reading back the detail of its own failure (a failed open on its own
 *     thread, and a file truncated under its own load, which fails in a
 *     reader thread and is handed to the loading one);
 *   - readers sharing an open pipeline and an open file while opening
 *     their own (with the shared runtime and without);
 *   - the log callback replaced while loads log through it.
 * Threads record their first failed expectation; the test thread asserts
 * after the joins (Check's assertions belong to the test thread). */
#include "testutil.h"

#include "internal.h"
#include "pipeline_fixture.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define THREADS 4

static char pipe_dir[1024];

typedef struct worker {
  int id;
  hoist_runtime *rt;      /* shared, or NULL for one of its own */
  char own_file[1200];    /* a file only this thread loads, and fails on */
  unsigned char *own_bytes; /* its original contents */
  size_t own_len;
  int rounds;
  int loads, failures;    /* what it did, for the checks after the join */
  char failure[1024];     /* first expectation that did not hold */
} worker;

static void fail_at(worker *w, const char *fmt, ...) HOIST_PRINTF(2, 3);

static void fail_at(worker *w, const char *fmt, ...) {
  if (w->failure[0] != '\0') return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->failure, sizeof w->failure, fmt, ap);
  va_end(ap);
}

/* Records the first failed expectation of a thread and leaves its body. */
#define EXPECT(w, cond, ...)  \
  do {                        \
    if (!(cond)) {            \
      fail_at(w, __VA_ARGS__); \
      goto done;              \
    }                         \
  } while (0)

static void run_threads(worker *w, int n, uv_thread_cb body) {
  uv_thread_t t[THREADS];
  ck_assert_int_le(n, THREADS);
  for (int i = 0; i < n; i++) ck_assert_int_eq(uv_thread_create(&t[i], body, &w[i]), 0);
  for (int i = 0; i < n; i++) ck_assert_int_eq(uv_thread_join(&t[i]), 0);
  for (int i = 0; i < n; i++) ck_assert_msg(w[i].failure[0] == '\0', "thread %d: %s", i, w[i].failure);
}

/* A host runtime with two readers and small chunks, so that the readers
 * interleave; callable from any thread. */
static int make_runtime(hoist_runtime **rt) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.threads = 2;
  cfg.chunk_bytes = 64 << 10;
  return hoist_runtime_create(&cfg, rt);
}

static hoist_runtime *host_runtime(void) {
  hoist_runtime *rt = NULL;
  ck_assert_msg(make_runtime(&rt) == HOIST_OK, "%s", hoist_last_error(NULL));
  return rt;
}

/* Every tensor of l equals its bytes in the file; "" or what differs. */
static int same_as_files(const hoist_pipeline *p, const hoist_loaded *l, char *why, size_t size) {
  size_t checked = 0;
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *ci = hoist_pipeline_component(p, i);
    for (size_t f = 0; f < ci->file_count; f++) {
      hoist_file *file = NULL;
      if (hoist_file_open(NULL, ci->files[f], &file) != HOIST_OK) {
        snprintf(why, size, "%s: %s", ci->files[f], hoist_last_error(NULL));
        return 0;
      }
      for (size_t t = 0; t < hoist_file_tensor_count(file); t++, checked++) {
        const hoist_tensor_info *ti = hoist_file_tensor(file, t);
        uint64_t addr = 0;
        const unsigned char *want = (const unsigned char *)hoist_file_mapping(file);
        if (hoist_loaded_tensor(l, ci->name, ti->name, &addr, NULL) != HOIST_OK ||
            (ti->nbytes > 0 && memcmp((const void *)(uintptr_t)addr,
                                      want + hoist_file_data_offset(file) + ti->begin, ti->nbytes) != 0)) {
          snprintf(why, size, "%s/%s differs from the file", ci->name, ti->name);
          hoist_file_close(file);
          return 0;
        }
      }
      hoist_file_close(file);
    }
  }
  if (checked < 100) snprintf(why, size, "only %zu tensors checked", checked);
  return checked >= 100;
}

/* Opens the fixture on rt, loads it verified, checks every byte. */
static void load_fixture(worker *w, hoist_runtime *rt) {
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  char why[512] = "";
  int rc = hoist_pipeline_open(rt, pipe_dir, NULL, &p);
  EXPECT(w, rc == HOIST_OK, "open: %s", hoist_last_error(rt));
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.verify = 1;
  rc = hoist_load_pipeline(rt, p, &o, &l);
  EXPECT(w, rc == HOIST_OK, "load: %s: %s", hoist_status_name(rc), hoist_last_error(rt));
  EXPECT(w, same_as_files(p, l, why, sizeof why), "%s", why);
  w->loads++;
done:
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
}

static void setup_fixture(const char *name) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 42);
}

/* ------------------------------------------------------------------------ */
/* A runtime per thread */

static void own_runtime_body(void *arg) {
  worker *w = arg;
  for (int r = 0; r < w->rounds; r++) {
    hoist_runtime *rt = NULL;
    EXPECT(w, make_runtime(&rt) == HOIST_OK, "runtime: %s", hoist_last_error(NULL));
    load_fixture(w, rt);
    hoist_runtime_close(rt);
    if (w->failure[0] != '\0') break;
  }
done:
  return;
}

START_TEST(threads_with_own_runtimes_load_one_pipeline) {
  setup_fixture("threads_own");
  worker w[THREADS] = {{0}};
  for (int i = 0; i < THREADS; i++) w[i] = (worker){.id = i, .rounds = 3};
  run_threads(w, THREADS, own_runtime_body);
  for (int i = 0; i < THREADS; i++) ck_assert_int_eq(w[i].loads, 3);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* One runtime, each thread its own failures */

/* The progress callback truncates the thread's own file once the load is
 * under way, so that a reader thread meets the short file. */
typedef struct truncator {
  const char *path;
  uint64_t keep;
  atomic_int fired;
} truncator;

static void truncate_once(void *user, const char *component, uint64_t done, uint64_t total) {
  (void)component;
  (void)done;
  (void)total;
  truncator *t = user;
  if (atomic_exchange(&t->fired, 1) == 0 && truncate(t->path, (off_t)t->keep) != 0) abort();
}

static int restore(const worker *w) {
  int fd = open(w->own_file, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return 0;
  int ok = write(fd, w->own_bytes, w->own_len) == (ssize_t)w->own_len;
  return close(fd) == 0 && ok;
}

static void shared_runtime_body(void *arg) {
  worker *w = arg;
  hoist_pipeline *p = NULL;
  EXPECT(w, hoist_last_error(w->rt)[0] == '\0', "a new thread starts with '%s'", hoist_last_error(w->rt));
  for (int r = 0; r < w->rounds; r++) {
    /* A failure on this thread itself. */
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/missing-%d-%d", pipe_dir, w->id, r);
    int rc = hoist_pipeline_open(w->rt, missing, NULL, &p);
    EXPECT(w, rc != HOIST_OK && p == NULL, "open of %s: %d", missing, rc);
    const char *msg = hoist_last_error(w->rt);
    EXPECT(w, strstr(msg, missing) != NULL, "open of %s failed but the detail is '%s'", missing, msg);
    EXPECT(w, hoist_last_error(NULL) == msg, "the thread has two details");
    w->failures++;

    /* A load that succeeds in between (loads on one runtime serialize). */
    load_fixture(w, w->rt);
    if (w->failure[0] != '\0') break;

    /* A failure in a reader thread of this thread's own load. */
    char own_dir[1200];
    snprintf(own_dir, sizeof own_dir, "%.*s", (int)(strrchr(w->own_file, '/') - w->own_file), w->own_file);
    rc = hoist_pipeline_open(w->rt, own_dir, NULL, &p);
    EXPECT(w, rc == HOIST_OK, "open of %s: %s", own_dir, hoist_last_error(w->rt));
    truncator t = {w->own_file, w->own_len / 3, 0};
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.read_mode = HOIST_READ_PREAD;
    o.progress = truncate_once;
    o.progress_user = &t;
    hoist_loaded *l = NULL;
    rc = hoist_load_pipeline(w->rt, p, &o, &l);
    msg = hoist_last_error(w->rt);
    EXPECT(w, rc == HOIST_FILE_CHANGED && l == NULL, "truncated %s loaded: %s (%s)", w->own_file,
           hoist_status_name(rc), msg);
    EXPECT(w, strstr(msg, w->own_file) != NULL, "its load of %s failed but the detail is '%s'",
           w->own_file, msg);
    w->failures++;
    hoist_pipeline_close(p);
    p = NULL;
    EXPECT(w, restore(w), "cannot restore %s", w->own_file);
  }
done:
  hoist_pipeline_close(p);
}

START_TEST(shared_runtime_each_thread_reads_its_own_failure) {
  setup_fixture("threads_shared");
  hoist_runtime *rt = host_runtime();
  worker w[THREADS] = {{0}};
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){.id = i, .rt = rt, .rounds = 3};
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/own-%d", pipe_dir, i);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(w[i].own_file, sizeof w[i].own_file, "%s/model.safetensors", dir);
    uint64_t sizes[8];
    for (int k = 0; k < 8; k++) sizes[k] = 96000 + (uint64_t)k * 1000 + (uint64_t)i;
    fixture_write_file(w[i].own_file, "own", sizes, 8, 7 + (uint64_t)i);
    w[i].own_bytes = tu_read_file(w[i].own_file, &w[i].own_len);
  }
  run_threads(w, THREADS, shared_runtime_body);
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq(w[i].loads, 3);
    ck_assert_int_eq(w[i].failures, 6);
    free(w[i].own_bytes);
  }
  /* The test thread failed nothing itself: no detail leaked onto it. */
  ck_assert_str_eq(hoist_last_error(rt), "");
  hoist_runtime_close(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Readers of a shared pipeline and file */

static const hoist_pipeline *shared_pipe;
static const hoist_file *shared_file;

static void readers_body(void *arg) {
  worker *w = arg;
  hoist_pipeline *p = NULL;
  hoist_file *f = NULL;
  for (int r = 0; r < w->rounds; r++) {
    hoist_runtime *rt = w->id % 2 ? w->rt : NULL;
    EXPECT(w, hoist_pipeline_open(rt, pipe_dir, NULL, &p) == HOIST_OK, "open: %s", hoist_last_error(rt));
    size_t n = hoist_pipeline_component_count(p);
    EXPECT(w, n == hoist_pipeline_component_count(shared_pipe), "%zu components", n);
    for (size_t i = 0; i < n; i++) {
      const hoist_component_info *a = hoist_pipeline_ordered(p, i), *b = hoist_pipeline_ordered(shared_pipe, i);
      EXPECT(w, strcmp(a->name, b->name) == 0 && a->inferred_bytes == b->inferred_bytes &&
                    a->file_count == b->file_count && a->tensor_count == b->tensor_count,
             "position %zu: %s against %s", i, a->name, b->name);
    }
    EXPECT(w, hoist_file_open(rt, hoist_file_path(shared_file), &f) == HOIST_OK, "%s",
           hoist_last_error(rt));
    EXPECT(w, hoist_file_tensor_count(f) == hoist_file_tensor_count(shared_file), "tensor counts differ");
    for (size_t t = 0; t < hoist_file_tensor_count(f); t++) {
      const hoist_tensor_info *mine = hoist_file_tensor(f, t);
      const hoist_tensor_info *theirs = hoist_file_find(shared_file, mine->name);
      EXPECT(w, theirs != NULL && theirs->begin == mine->begin && theirs->end == mine->end,
             "%s: not where the shared file has it", mine->name);
      unsigned char head[512];
      size_t len = mine->nbytes < sizeof head ? (size_t)mine->nbytes : sizeof head;
      uint64_t at = hoist_file_data_offset(shared_file) + theirs->begin;
      EXPECT(w, hoist_file_read(shared_file, at, head, len) == HOIST_OK, "read: %s", hoist_last_error(NULL));
      EXPECT(w, len == 0 || memcmp(head, (const unsigned char *)hoist_file_mapping(f) + at, len) == 0,
             "%s: bytes differ", mine->name);
    }
    hoist_file_close(f);
    f = NULL;
    hoist_pipeline_close(p);
    p = NULL;
    w->loads++;
  }
done:
  hoist_file_close(f);
  hoist_pipeline_close(p);
}

START_TEST(readers_share_an_open_pipeline_and_file) {
  setup_fixture("threads_readers");
  hoist_runtime *rt = host_runtime();
  hoist_pipeline *p = NULL;
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  char path[1200];
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model-00001-of-00002.safetensors", pipe_dir);
  ck_assert_int_eq(hoist_file_open(rt, path, &f), HOIST_OK);
  shared_pipe = p;
  shared_file = f;
  worker w[THREADS] = {{0}};
  for (int i = 0; i < THREADS; i++) w[i] = (worker){.id = i, .rt = rt, .rounds = 5};
  run_threads(w, THREADS, readers_body);
  for (int i = 0; i < THREADS; i++) ck_assert_int_eq(w[i].loads, 5);
  hoist_file_close(f);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The log callback replaced during loads */

/* Each callback is set with its own sink as user data: a call that gets
 * the other sink saw a torn (callback, user) pair. */
typedef struct sink {
  atomic_int calls, torn, bad_lines;
} sink;

static sink sink_a, sink_b;
static atomic_int loaders_running;

static void count_into(sink *expected, void *user, const char *message) {
  sink *s = user;
  if (s != expected) atomic_fetch_add(&expected->torn, 1);
  if (message == NULL || message[0] == '\0' || strchr(message, '\n') != NULL)
    atomic_fetch_add(&expected->bad_lines, 1);
  atomic_fetch_add(&expected->calls, 1);
}

static void log_a(void *user, hoist_log_level level, const char *message) {
  (void)level;
  count_into(&sink_a, user, message);
}

static void log_b(void *user, hoist_log_level level, const char *message) {
  (void)level;
  count_into(&sink_b, user, message);
}

static void loader_body(void *arg) {
  worker *w = arg;
  for (int r = 0; r < w->rounds && w->failure[0] == '\0'; r++) {
    load_fixture(w, w->rt);
    /* A failure: logged at debug level through whichever callback is set. */
    hoist_pipeline *p = NULL;
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/none-%d", pipe_dir, w->id);
    if (hoist_pipeline_open(w->rt, missing, NULL, &p) == HOIST_OK) fail_at(w, "%s opened", missing);
  }
  atomic_fetch_sub(&loaders_running, 1);
}

static void setter_body(void *arg) {
  worker *w = arg;
  while (atomic_load(&loaders_running) > 0) {
    hoist_log_set(w->rt, log_a, &sink_a, HOIST_LOG_DEBUG);
    uv_sleep(1);
    hoist_log_set(w->rt, log_b, &sink_b, HOIST_LOG_DEBUG);
    uv_sleep(1);
    hoist_log_set(w->rt, NULL, NULL, HOIST_LOG_DEBUG);
    w->loads++;
  }
}

START_TEST(log_callback_replaced_during_loads) {
  setup_fixture("threads_log");
  hoist_runtime *rt = host_runtime();
  worker w[THREADS] = {{0}};
  for (int i = 0; i < THREADS; i++) w[i] = (worker){.id = i, .rt = rt, .rounds = 4};
  atomic_store(&loaders_running, THREADS - 1);
  uv_thread_t t[THREADS];
  ck_assert_int_eq(uv_thread_create(&t[0], setter_body, &w[0]), 0);
  for (int i = 1; i < THREADS; i++) ck_assert_int_eq(uv_thread_create(&t[i], loader_body, &w[i]), 0);
  for (int i = 0; i < THREADS; i++) ck_assert_int_eq(uv_thread_join(&t[i]), 0);
  for (int i = 0; i < THREADS; i++) ck_assert_msg(w[i].failure[0] == '\0', "thread %d: %s", i, w[i].failure);
  for (int i = 1; i < THREADS; i++) ck_assert_int_eq(w[i].loads, 4);
  ck_assert_int_gt(w[0].loads, 0);
  ck_assert_int_eq(atomic_load(&sink_a.torn) + atomic_load(&sink_b.torn), 0);
  ck_assert_int_eq(atomic_load(&sink_a.bad_lines) + atomic_load(&sink_b.bad_lines), 0);
  ck_assert_int_gt(atomic_load(&sink_a.calls) + atomic_load(&sink_b.calls), 0);
  /* Logging is off now: nothing more arrives. */
  int before = atomic_load(&sink_a.calls) + atomic_load(&sink_b.calls);
  hoist_pipeline *p = NULL;
  ck_assert_int_ne(hoist_pipeline_open(rt, "/nonexistent/pipeline", NULL, &p), HOIST_OK);
  ck_assert_int_eq(atomic_load(&sink_a.calls) + atomic_load(&sink_b.calls), before);
  hoist_runtime_close(rt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("threads");
  TCase *t = tcase_create("contract");
  tcase_set_timeout(t, 120);
  tcase_add_test(t, threads_with_own_runtimes_load_one_pipeline);
  tcase_add_test(t, shared_runtime_each_thread_reads_its_own_failure);
  tcase_add_test(t, readers_share_an_open_pipeline_and_file);
  tcase_add_test(t, log_callback_replaced_during_loads);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return tu_run_suite(suite()); }
