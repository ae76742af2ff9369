/* test_residency_threads.c — the threading contract of a loaded pipeline
 * (hoist.h, "Threading of a loaded pipeline") on the host backend: reader
 * threads look tensors up and hold components while mover threads prepare
 * and release them.  Every address read under a hold must stay readable
 * and hold the file's bytes (on the host backend a freed arena is freed
 * host memory, which AddressSanitizer catches), a release of a held
 * component must refuse with HOIST_BUSY, and nothing may stay allocated.
 * ctest runs it with the label `threads`, the set a ThreadSanitizer build
 * runs. */
#include "testutil.h"

#include "device.h"
#include "pipeline_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READERS 4
#define MOVERS 2
#define READS_PER_READER 1500
#define ROUNDS_PER_MOVER 120
#define TENSORS_PER_COMPONENT 12

/* A tensor and its bytes as the file has them. */
typedef struct expected {
  const char *component;
  char name[64];
  size_t position;
  unsigned char *bytes;
  uint64_t nbytes;
} expected;

typedef struct world {
  char dir[1024];
  hoist_runtime *rt;
  hoist_pipeline *p;
  hoist_loaded *l;
  expected tensors[4 * TENSORS_PER_COMPONENT];
  size_t ntensors;
  size_t offloaded[4]; /* positions of the offloaded components */
  size_t noffloaded;
  uint64_t resident_bytes;
  /* Counters and the first failure, written by the threads. */
  atomic_ulong held_reads, held_offloaded_reads, unsupported_holds, unheld_lookups, moves;
  atomic_int movers_done;
  atomic_int failed;
  char failure[512];
  pthread_mutex_t failure_lock;
} world;

/* Keeps the first failure of any thread ("what name: STATUS") for the main
 * thread to report: Check's assertions belong to the test's own thread. */
static void record_failure(world *w, const char *what, const char *name, int status) {
  pthread_mutex_lock(&w->failure_lock);
  if (!atomic_load(&w->failed)) {
    snprintf(w->failure, sizeof w->failure, "%s %s: %s", what, name, hoist_status_name(status));
    atomic_store(&w->failed, 1);
  }
  pthread_mutex_unlock(&w->failure_lock);
}

/* Records up to TENSORS_PER_COMPONENT non-empty tensors of the component at
 * position with their bytes read from its files. */
static void expect_component(world *w, size_t position) {
  const hoist_component_info *info = hoist_pipeline_ordered(w->p, position);
  size_t taken = 0;
  for (size_t f = 0; f < info->file_count && taken < TENSORS_PER_COMPONENT; f++) {
    hoist_file *file = NULL;
    ck_assert_int_eq(hoist_file_open(NULL, info->files[f], &file), HOIST_OK);
    for (size_t i = 0; i < hoist_file_tensor_count(file) && taken < TENSORS_PER_COMPONENT; i++) {
      const hoist_tensor_info *t = hoist_file_tensor(file, i);
      if (t->nbytes == 0) continue;
      expected *e = &w->tensors[w->ntensors++];
      e->component = info->name;
      snprintf(e->name, sizeof e->name, "%s", t->name);
      e->position = position;
      e->nbytes = t->nbytes;
      e->bytes = malloc(t->nbytes);
      ck_assert_ptr_nonnull(e->bytes);
      ck_assert_int_eq(hoist_file_read(file, hoist_file_data_offset(file) + t->begin, e->bytes,
                                       t->nbytes),
                       HOIST_OK);
      taken++;
    }
    hoist_file_close(file);
  }
}

/* A pipeline loaded with two components offloaded, and the bytes to find. */
static void world_open(world *w, const char *name) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->failure_lock, NULL);
  tu_scratch_dir(name, w->dir, sizeof w->dir);
  fixture_write_pipeline(w->dir, 13);
  w->rt = tu_host_runtime(0);
  ck_assert_int_eq(hoist_pipeline_open(w->rt, w->dir, NULL, &w->p), HOIST_OK);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = "text_encoder_2,vae";
  ck_assert_msg(hoist_load_pipeline(w->rt, w->p, &o, &w->l) == HOIST_OK, "%s",
                hoist_last_error(w->rt));
  for (size_t i = 0; i < hoist_loaded_component_count(w->l); i++) {
    const hoist_loaded_info *c = hoist_loaded_component(w->l, i);
    if (c->tensor_count == 0) continue;
    if (c->residency == HOIST_OFFLOAD) w->offloaded[w->noffloaded++] = i;
    expect_component(w, i);
  }
  ck_assert_uint_eq(w->noffloaded, 2);
  w->resident_bytes = hoist__device_host_allocated(w->rt);
}

static void world_close(world *w) {
  hoist_loaded_close(w->l);
  ck_assert_uint_eq(hoist__device_host_allocated(w->rt), 0);
  for (size_t i = 0; i < w->ntensors; i++) free(w->tensors[i].bytes);
  hoist_pipeline_close(w->p);
  hoist_runtime_close(w->rt);
  pthread_mutex_destroy(&w->failure_lock);
}

/* Under a hold: the address, and the bytes behind it, are the file's. */
static void read_held(world *w, const expected *e, unsigned char *buf) {
  uint64_t addr = 0;
  int rc = hoist_loaded_tensor(w->l, e->component, e->name, &addr, NULL);
  if (rc != HOIST_OK) return record_failure(w, "lookup under a hold of", e->name, rc);
  rc = w->rt->dev->ops->copy_d2h(w->rt->dev, buf, addr, (size_t)e->nbytes);
  if (rc != HOIST_OK) return record_failure(w, "read under a hold of", e->name, rc);
  if (memcmp(buf, e->bytes, (size_t)e->nbytes) != 0)
    return record_failure(w, "bytes differ from the file under a hold in", e->name, HOIST_OK);
  atomic_fetch_add(&w->held_reads, 1);
}

static void *reader(void *arg) {
  world *w = arg;
  unsigned char *buf = malloc(4u << 20);
  uint64_t x = (uint64_t)(uintptr_t)&buf | 1;
  /* At least READS_PER_READER rounds, and on while the movers move. */
  for (int i = 0; (i < READS_PER_READER || atomic_load(&w->movers_done) < MOVERS) && buf != NULL &&
                  !atomic_load(&w->failed);
       i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const expected *e = &w->tensors[x % w->ntensors];
    int rc = hoist_loaded_hold(w->l, e->position);
    if (rc == HOIST_OK) {
      read_held(w, e, buf);
      if (hoist_loaded_component(w->l, e->position)->residency == HOIST_OFFLOAD)
        atomic_fetch_add(&w->held_offloaded_reads, 1);
      hoist_loaded_unhold(w->l, e->position);
    } else if (rc == HOIST_UNSUPPORTED) {
      atomic_fetch_add(&w->unsupported_holds, 1);
    } else {
      record_failure(w, "hold of", e->component, rc);
    }
    /* Without a hold a lookup may find the component either way, and
     * must not read its memory. */
    uint64_t addr = 0;
    rc = hoist_loaded_tensor(w->l, e->component, e->name, &addr, NULL);
    if (rc != HOIST_OK && rc != HOIST_UNSUPPORTED) record_failure(w, "lookup of", e->name, rc);
    atomic_fetch_add(&w->unheld_lookups, 1);
  }
  free(buf);
  return NULL;
}

/* Prepares every offloaded component, then releases them: each stays
 * prepared while the others move. */
static void *mover(void *arg) {
  world *w = arg;
  for (int r = 0; r < ROUNDS_PER_MOVER && !atomic_load(&w->failed); r++) {
    for (size_t k = 0; k < 2 * w->noffloaded; k++) {
      const size_t position = w->offloaded[(k + (size_t)r) % w->noffloaded];
      const char *name = hoist_loaded_component(w->l, position)->name;
      if (k < w->noffloaded) {
        int rc = hoist_prepare_for_use(w->l, position, NULL, NULL);
        if (rc != HOIST_OK) record_failure(w, "prepare of", name, rc);
        continue;
      }
      /* A reader may hold it right now: then the release refuses. */
      int rc = hoist_release_after_use(w->l, position, NULL);
      if (rc != HOIST_OK && rc != HOIST_BUSY) record_failure(w, "release of", name, rc);
      atomic_fetch_add(&w->moves, 1);
    }
  }
  atomic_fetch_add(&w->movers_done, 1);
  return NULL;
}

START_TEST(lookups_and_holds_race_prepare_and_release) {
  world w;
  world_open(&w, "threads_race");
  pthread_t t[READERS + MOVERS];
  for (int i = 0; i < READERS + MOVERS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, i < READERS ? reader : mover, &w), 0);
  for (int i = 0; i < READERS + MOVERS; i++) pthread_join(t[i], NULL);
  ck_assert_msg(!atomic_load(&w.failed), "%s", w.failure);
  ck_assert_uint_ge(atomic_load(&w.unheld_lookups), READERS * READS_PER_READER);
  ck_assert_uint_eq(atomic_load(&w.moves), MOVERS * ROUNDS_PER_MOVER * w.noffloaded);
  /* Components were read under holds while they moved, not only resident
   * ones. */
  ck_assert_uint_gt(atomic_load(&w.held_offloaded_reads), 0);
  ck_assert_uint_gt(atomic_load(&w.held_reads), atomic_load(&w.held_offloaded_reads));
  ck_assert_uint_gt(atomic_load(&w.unsupported_holds), 0);
  /* No hold is left: every offloaded component releases now. */
  for (size_t k = 0; k < w.noffloaded; k++)
    ck_assert_int_eq(hoist_release_after_use(w.l, w.offloaded[k], NULL), HOIST_OK);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), w.resident_bytes);
  world_close(&w);
}
END_TEST

/* The BUSY path across threads, in a fixed order: one thread holds a
 * prepared component, another's release refuses and frees nothing, the
 * holder still reads the file's bytes, unholds, and the release goes
 * through. */
typedef struct handoff {
  world *w;
  const expected *e;
  pthread_barrier_t step;
  int release_rc[2];
} handoff;

static void *holder(void *arg) {
  handoff *h = arg;
  unsigned char *buf = malloc((size_t)h->e->nbytes);
  int rc = hoist_loaded_hold(h->w->l, h->e->position);
  if (rc != HOIST_OK) record_failure(h->w, "hold of", h->e->component, rc);
  pthread_barrier_wait(&h->step); /* held */
  pthread_barrier_wait(&h->step); /* the other thread's release refused */
  if (buf != NULL) read_held(h->w, h->e, buf);
  hoist_loaded_unhold(h->w->l, h->e->position);
  pthread_barrier_wait(&h->step); /* unheld */
  free(buf);
  return NULL;
}

static void *releaser(void *arg) {
  handoff *h = arg;
  pthread_barrier_wait(&h->step);
  h->release_rc[0] = hoist_release_after_use(h->w->l, h->e->position, NULL);
  pthread_barrier_wait(&h->step);
  pthread_barrier_wait(&h->step);
  h->release_rc[1] = hoist_release_after_use(h->w->l, h->e->position, NULL);
  return NULL;
}

START_TEST(release_of_a_held_component_is_busy_across_threads) {
  world w;
  world_open(&w, "threads_busy");
  const expected *e = NULL;
  for (size_t i = 0; i < w.ntensors && e == NULL; i++)
    if (w.tensors[i].position == w.offloaded[0]) e = &w.tensors[i];
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(hoist_prepare_for_use(w.l, e->position, NULL, NULL), HOIST_OK);
  const uint64_t prepared = hoist__device_host_allocated(w.rt);
  handoff h = {&w, e, {{0}}, {0, 0}};
  pthread_barrier_init(&h.step, NULL, 2);
  pthread_t a, b;
  ck_assert_int_eq(pthread_create(&a, NULL, holder, &h), 0);
  ck_assert_int_eq(pthread_create(&b, NULL, releaser, &h), 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  pthread_barrier_destroy(&h.step);
  ck_assert_msg(!atomic_load(&w.failed), "%s", w.failure);
  ck_assert_int_eq(h.release_rc[0], HOIST_BUSY);
  ck_assert_int_eq(h.release_rc[1], HOIST_OK);
  ck_assert_uint_eq(atomic_load(&w.held_reads), 1);
  ck_assert_uint_lt(hoist__device_host_allocated(w.rt), prepared);
  ck_assert_uint_eq(hoist__device_host_allocated(w.rt), w.resident_bytes);
  world_close(&w);
}
END_TEST

int main(void) {
  Suite *s = suite_create("residency_threads");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, lookups_and_holds_race_prepare_and_release);
  tcase_add_test(tc, release_of_a_held_component_is_busy_across_threads);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
