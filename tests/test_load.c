/* test_load.c — the whole load path on the host backend: every tensor byte
 * against the file, placement (largest first, 256-byte aligned, within the
 * bound), every read mode, chunk merging and splitting, truncation during a
 * load, verification, cancellation, and 50 load/unload cycles that leave
 * memory where it was.  Residency and admission are in test_residency.c. */
#include "testutil.h"

#include "device.h"
#include "load.h"
#include "pipeline_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char pipe_dir[1024];

static void setup_pipeline(const char *name) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  fixture_write_pipeline(pipe_dir, 42);
}

static hoist_runtime *runtime_with(uint32_t threads, uint64_t chunk) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.threads = threads;
  cfg.chunk_bytes = chunk;
  hoist_runtime *rt = NULL;
  ck_assert_msg(hoist_runtime_create(&cfg, &rt) == HOIST_OK, "%s", hoist_last_error(NULL));
  return rt;
}

/* Every tensor of every loaded component equals the file's bytes. */
static void check_all_bytes_min(hoist_runtime *rt, const hoist_pipeline *p, const hoist_loaded *l,
                                size_t min_tensors) {
  size_t checked = 0;
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *ci = hoist_pipeline_component(p, i);
    for (size_t f = 0; f < ci->file_count; f++) {
      hoist_file *file = NULL;
      ck_assert_int_eq(hoist_file_open(rt, ci->files[f], &file), HOIST_OK);
      for (size_t t = 0; t < hoist_file_tensor_count(file); t++) {
        const hoist_tensor_info *ti = hoist_file_tensor(file, t);
        uint64_t addr = 0;
        ck_assert_int_eq(hoist_loaded_tensor(l, ci->name, ti->name, &addr, NULL), HOIST_OK);
        ck_assert_uint_eq(addr % 256, 0);
        unsigned char *want = malloc(ti->nbytes + 1);
        ck_assert_int_eq(hoist_file_read(file, hoist_file_data_offset(file) + ti->begin, want,
                                         (size_t)ti->nbytes),
                         HOIST_OK);
        ck_assert_msg(memcmp((const void *)(uintptr_t)addr, want, (size_t)ti->nbytes) == 0,
                      "%s/%s differs", ci->name, ti->name);
        free(want);
        checked++;
      }
      hoist_file_close(file);
    }
  }
  ck_assert_uint_ge(checked, min_tensors);
}

static void check_all_bytes(hoist_runtime *rt, const hoist_pipeline *p, const hoist_loaded *l) {
  check_all_bytes_min(rt, p, l, 101);
}

static void load_and_check(uint32_t threads, uint64_t chunk, hoist_read_mode mode) {
  hoist_runtime *rt = runtime_with(threads, chunk);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.read_mode = mode;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  check_all_bytes(rt, p, l);
  /* Components come back in the planned order. */
  ck_assert_uint_eq(hoist_loaded_component_count(l), hoist_pipeline_component_count(p));
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    ck_assert_str_eq(hoist_loaded_component(l, i)->name, hoist_pipeline_ordered(p, i)->name);
  hoist_loaded_close(l);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}

START_TEST(bytes_default) {
  setup_pipeline("load_default");
  load_and_check(0, 0, HOIST_READ_AUTO);
}
END_TEST

START_TEST(bytes_each_mode_small_chunks) {
  setup_pipeline("load_modes");
  /* 4 KiB chunks: large tensors split into hundreds of chunks, small ones
   * merged; 3 threads contend for them. */
  hoist_read_mode modes[] = {HOIST_READ_AUTO, HOIST_READ_PREAD, HOIST_READ_MMAP,
                             HOIST_READ_DIRECT, HOIST_READ_REGISTER};
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) load_and_check(3, 4096, modes[m]);
  load_and_check(1, 8192, HOIST_READ_PREAD);
  load_and_check(7, 1u << 20, HOIST_READ_MMAP);
}
END_TEST

START_TEST(placement_largest_first_within_bound) {
  setup_pipeline("load_place");
  hoist_runtime *rt = runtime_with(2, 0);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &l), HOIST_OK);
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *ci = hoist_pipeline_component(p, i);
    uint64_t bound = 2u << 20, prev_size = UINT64_MAX, prev_addr = 0;
    const hoist_loaded_info *li = NULL;
    for (size_t k = 0; k < hoist_loaded_component_count(l); k++)
      if (strcmp(hoist_loaded_component(l, k)->name, ci->name) == 0) li = hoist_loaded_component(l, k);
    ck_assert_ptr_nonnull(li);
    /* Collect (size, addr) of every tensor: addresses rise as sizes fall. */
    for (size_t f = 0; f < ci->file_count; f++) {
      hoist_file *file = NULL;
      ck_assert_int_eq(hoist_file_open(rt, ci->files[f], &file), HOIST_OK);
      for (size_t t = 0; t < hoist_file_tensor_count(file); t++) {
        uint64_t n = hoist_file_tensor(file, t)->nbytes;
        bound += (n + 255) / 256 * 256;
      }
      hoist_file_close(file);
    }
    ck_assert_uint_le(li->device_bytes, bound);
    if (li->tensor_count == 0) continue;
    /* Walk tensors in address order via the loaded lookups. */
    size_t nt = 0;
    struct {
      uint64_t addr, size;
    } v[256];
    for (size_t f = 0; f < ci->file_count; f++) {
      hoist_file *file = NULL;
      ck_assert_int_eq(hoist_file_open(rt, ci->files[f], &file), HOIST_OK);
      for (size_t t = 0; t < hoist_file_tensor_count(file) && nt < 256; t++) {
        const hoist_tensor_info *ti = hoist_file_tensor(file, t);
        ck_assert_int_eq(hoist_loaded_tensor(l, ci->name, ti->name, &v[nt].addr, NULL), HOIST_OK);
        ck_assert_uint_ge(v[nt].addr, li->device_begin);
        ck_assert_uint_le(v[nt].addr + ti->nbytes, li->device_end);
        v[nt++].size = ti->nbytes;
      }
      hoist_file_close(file);
    }
    for (size_t a = 0; a < nt; a++)
      for (size_t b = 0; b < nt; b++)
        if (v[a].size > v[b].size) ck_assert_uint_lt(v[a].addr, v[b].addr);
    (void)prev_size;
    (void)prev_addr;
  }
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(fifty_cycles_leave_memory_as_found) {
  setup_pipeline("load_cycles");
  hoist_runtime *rt = runtime_with(2, 0);
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  uint64_t pinned_after_first = 0;
  for (int i = 0; i < 50; i++) {
    hoist_loaded *l = NULL;
    ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &l), HOIST_OK);
    ck_assert_uint_gt(hoist__device_host_allocated(rt), 0);
    hoist_loaded_close(l);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    /* The staging ring is made once and reused. */
    if (i == 0) pinned_after_first = hoist__device_host_pinned(rt);
    ck_assert_uint_eq(hoist__device_host_pinned(rt), pinned_after_first);
  }
  ck_assert_uint_le(pinned_after_first, 256u << 20);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* Progress callbacks that change the world mid-load. */
typedef struct mischief {
  const char *file;   /* file to damage */
  int action;         /* 0 truncate, 2 cancel */
  volatile int *cancel;
  int fired;
} mischief;

static void on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  mischief *m = user;
  if (m->fired || done == 0) return;
  m->fired = 1;
  if (m->action == 0) {
    ck_assert_int_eq(truncate(m->file, 4096), 0);
  } else {
    __atomic_store_n(m->cancel, 1, __ATOMIC_RELAXED); /* the readers poll it */
  }
}

static int run_mischief(int action, hoist_read_mode mode, int verify, hoist_runtime **rt_out) {
  hoist_runtime *rt = runtime_with(1, 4096);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  char file[1200];
  snprintf(file, sizeof file, "%s/transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
           pipe_dir);
  static volatile int cancel;
  __atomic_store_n(&cancel, 0, __ATOMIC_RELAXED);
  mischief m = {file, action, &cancel, 0};
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.progress = on_progress;
  o.progress_user = &m;
  o.read_mode = mode;
  o.verify = verify;
  o.cancel = &cancel;
  int rc = hoist_load_pipeline(rt, p, &o, &l);
  ck_assert_ptr_null(l);
  ck_assert_msg(m.fired == 1, "no progress before failure: %s", hoist_last_error(rt));
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  *rt_out = rt;
  return rc;
}

START_TEST(truncated_during_load_is_clean_error) {
  /* The last two: --verify, whose mapping reads copy and hash in one
   * guarded pass. */
  hoist_read_mode modes[] = {HOIST_READ_MMAP, HOIST_READ_PREAD, HOIST_READ_DIRECT,
                             HOIST_READ_MMAP, HOIST_READ_PREAD};
  for (size_t i = 0; i < 5; i++) {
    setup_pipeline("load_trunc");
    hoist_runtime *rt = NULL;
    int rc = run_mischief(0, modes[i], i >= 3, &rt);
    ck_assert_msg(rc == HOIST_FILE_CHANGED, "mode %zu: %s (%s)", i, hoist_status_name(rc),
                  hoist_last_error(rt));
    ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "diffusion_pytorch_model-00001"));
    hoist_runtime_close(rt);
  }
}
END_TEST

/* --verify compares the device's checksum of every chunk with the one the
 * readers took of the bytes they read: a byte of the largest tensor flipped
 * on the "device" after its upload (the hook runs before verification) is
 * named with its tensor, byte and both hashes. */
static void flip_device_byte(void *user, hoist_loaded *l, size_t pos) {
  int *fired = user;
  const hoist_loaded_info *ci = hoist_loaded_component(l, pos);
  if (strcmp(ci->name, "transformer") != 0) return;
  uint64_t addr = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, "transformer", "blocks.a.0", &addr, NULL), HOIST_OK);
  ((unsigned char *)(uintptr_t)addr)[10] ^= 0x5A;
  (*fired)++;
}

START_TEST(verify_reports_first_mismatch) {
  setup_pipeline("load_verify");
  uint64_t chunks[] = {4096, 0};
  /* pread hashes the filled slot; mmap copies and hashes in one pass. */
  for (size_t k = 0; k < 4; k++) {
    hoist_runtime *rt = runtime_with(2, chunks[k % 2]);
    hoist_pipeline *p = NULL;
    hoist_loaded *l = NULL;
    ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.verify = 1;
    o.read_mode = k < 2 ? HOIST_READ_PREAD : HOIST_READ_MMAP;
    /* Untouched, verification passes. */
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
    hoist_loaded_close(l);
    l = NULL;
    int fired = 0;
    hoist__load_ext ext = {NULL, NULL, NULL, flip_device_byte, &fired};
    int rc = hoist__load_pipeline_ext(rt, p, &o, &ext, &l);
    ck_assert_int_eq(fired, 1);
    ck_assert_ptr_null(l);
    ck_assert_msg(rc == HOIST_VERIFY_MISMATCH, "%s: %s", hoist_status_name(rc), hoist_last_error(rt));
    ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "tensor 'blocks.a.0'"));
    ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "at byte 10 "));
    ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "device hash 0x"));
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
}
END_TEST

START_TEST(cancel_stops_and_frees) {
  setup_pipeline("load_cancel");
  hoist_runtime *rt = NULL;
  ck_assert_int_eq(run_mischief(2, HOIST_READ_AUTO, 0, &rt), HOIST_CANCELLED);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(file_replaced_before_load) {
  setup_pipeline("load_replaced");
  hoist_runtime *rt = runtime_with(2, 0);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  char file[1200];
  snprintf(file, sizeof file, "%s/vae/diffusion_pytorch_model.safetensors", pipe_dir);
  ck_assert_int_eq(truncate(file, 100), 0);
  ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &l), HOIST_FILE_CHANGED);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST


/* Small tensors merged into one transfer must never span two arenas: the
 * gap between them belongs to someone else. */
START_TEST(merged_chunks_stay_inside_their_arena) {
  tu_scratch_dir("load_split_merge", pipe_dir, sizeof pipe_dir);
  char path[1200];
  snprintf(path, sizeof path, "%s/model.safetensors", pipe_dir);
  uint64_t sizes[64];
  for (int i = 0; i < 64; i++) sizes[i] = 1000;
  fixture_write_file(path, "w", sizes, 64, 9);
  hoist_runtime *rt = runtime_with(2, 0);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  /* The single arena is denied once: the component lands in several. */
  hoist__device_host_fail_alloc_at(rt, 1, 1);
  ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &l), HOIST_OK);
  const hoist_loaded_info *c = hoist_loaded_component(l, 0);
  ck_assert_uint_lt(c->device_end - c->device_begin, c->device_bytes);
  check_all_bytes_min(rt, p, l, 64);
  hoist_loaded_close(l);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* A same-size file moved over the path after the header was read is not
 * the file that was validated. */
START_TEST(file_moved_over_is_detected) {
  setup_pipeline("load_moved");
  hoist_runtime *rt = runtime_with(2, 0);
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe_dir, NULL, &p), HOIST_OK);
  char file[1200], copy[1300];
  snprintf(file, sizeof file, "%s/vae/diffusion_pytorch_model.safetensors", pipe_dir);
  snprintf(copy, sizeof copy, "%s.new", file);
  size_t len = 0;
  unsigned char *bytes = tu_read_file(file, &len);
  bytes[len - 1] ^= 0xFF;
  tu_write_file(copy, bytes, len);
  free(bytes);
  ck_assert_int_eq(rename(copy, file), 0);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.read_mode = HOIST_READ_PREAD;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_FILE_CHANGED);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "replaced"));
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("load");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, bytes_default);
  tcase_add_test(tc, bytes_each_mode_small_chunks);
  tcase_add_test(tc, placement_largest_first_within_bound);
  tcase_add_test(tc, fifty_cycles_leave_memory_as_found);
  tcase_add_test(tc, truncated_during_load_is_clean_error);
  tcase_add_test(tc, verify_reports_first_mismatch);
  tcase_add_test(tc, cancel_stops_and_frees);
  tcase_add_test(tc, file_replaced_before_load);
  tcase_add_test(tc, merged_chunks_stay_inside_their_arena);
  tcase_add_test(tc, file_moved_over_is_detected);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
