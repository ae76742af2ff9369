/* test_load_into.c — hoist_load_into on the host backend: a component's
 * tensors land in the caller's buffers bit-identical to the file (and
 * converted exactly as the CPU reference converts them), in every read
 * mode, with no device memory taken unless a conversion or verification
 * needs its scratch; every buffer gets transfers of its own, even where
 * buffers touch (they may be two allocations), and the bytes between
 * buffers are never written; every refusal comes before any byte
 * moves and leaves nothing allocated; non-strict loads report what did not
 * match; the tensor filter, cancellation and admission of the scratch. */
#include "into_fixture.h"

#include "load.h"
#include "pipeline_fixture.h"

#include <sys/mman.h>
#include <unistd.h>

static char pipe_dir[1024];

static hoist_runtime *runtime_with(uint32_t threads, uint64_t chunk, uint64_t capacity) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.threads = threads;
  cfg.chunk_bytes = chunk;
  cfg.capacity = capacity;
  hoist_runtime *rt = NULL;
  ck_assert_msg(hoist_runtime_create(&cfg, &rt) == HOIST_OK, "%s", hoist_last_error(NULL));
  return rt;
}

static hoist_pipeline *mixed_pipeline(hoist_runtime *rt, const char *name, int with_f64) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  cf_write_pipeline(pipe_dir, 5, with_f64);
  return cf_open(rt, pipe_dir);
}

static int load_into(hoist_runtime *rt, const hoist_pipeline *p, const char *component,
                     const if_set *s, const hoist_load_into_options *o) {
  return hoist_load_into(rt, p, component, s->t, s->n, o);
}

START_TEST(into_host_buffers_bit_identical) {
  hoist_read_mode modes[] = {HOIST_READ_AUTO, HOIST_READ_PREAD, HOIST_READ_MMAP,
                             HOIST_READ_DIRECT};
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    hoist_runtime *rt = runtime_with(3, 4096 * (1u + (unsigned)m * 7), 0);
    hoist_pipeline *p = mixed_pipeline(rt, "into_plain", 0);
    if_set s;
    if_build(rt, p, "transformer", HOIST_DTYPE_COUNT_, 0, &s);
    ck_assert_uint_eq(s.n, 14);
    uint64_t copies0, converts0, allocs0, copies, converts, allocs;
    hoist__device_host_counts(rt, &copies0, &converts0, &allocs0);
    hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
    o.read_mode = modes[m];
    ck_assert_msg(load_into(rt, p, "transformer", &s, &o) == HOIST_OK, "%s", hoist_last_error(rt));
    if_check(rt, &s);
    hoist__device_host_counts(rt, &copies, &converts, &allocs);
    /* No arena, no scratch: not one device allocation; nothing converted. */
    ck_assert_uint_eq(allocs, allocs0);
    ck_assert_uint_eq(converts, converts0);
    ck_assert_uint_gt(copies, copies0);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    if_free(rt, &s);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
}
END_TEST

START_TEST(converts_to_each_target) {
  hoist_runtime *rt = runtime_with(2, 1u << 16, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_convert", 0);
  const hoist_dtype targets[] = {HOIST_DTYPE_BF16, HOIST_DTYPE_F16, HOIST_DTYPE_F32};
  for (size_t k = 0; k < 3; k++)
    for (int verify = 0; verify <= 1; verify++) {
      if_set s;
      if_build(rt, p, "transformer", targets[k], 0, &s);
      uint64_t c0, v0, a0, c1, v1, a1;
      hoist__device_host_counts(rt, &c0, &v0, &a0);
      hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
      o.verify = verify;
      ck_assert_msg(load_into(rt, p, "transformer", &s, &o) == HOIST_OK, "%s",
                    hoist_last_error(rt));
      if_check(rt, &s);
      hoist__device_host_counts(rt, &c1, &v1, &a1);
      ck_assert_uint_gt(v1, v0);
      /* Only the scratch ring and the verify hashes were allocated. */
      ck_assert_uint_le(a1 - a0, (uint64_t)(verify ? 2 : 1));
      ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
      if_free(rt, &s);
    }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(touching_buffers_keep_own_transfers_gaps_untouched) {
  tu_scratch_dir("into_touching", pipe_dir, sizeof pipe_dir);
  size_t converted = 0;
  const size_t n = cf_write_small_pipeline(pipe_dir, 9, &converted);
  hoist_runtime *rt = runtime_with(2, 1u << 20, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  for (int bf16 = 0; bf16 <= 1; bf16++) {
    if_set s;
    if_build(rt, p, "transformer", bf16 ? HOIST_DTYPE_BF16 : HOIST_DTYPE_COUNT_, 0, &s);
    ck_assert_uint_eq(s.n, n);
    /* One block: the tensors back to back, a 32-byte guard after every
     * third one (all sizes are even, so converted targets stay aligned). */
    uint64_t total = 0;
    for (size_t i = 0; i < s.n; i++) total += s.t[i].nbytes + (i % 3 == 2 ? 32 : 0);
    unsigned char *block = aligned_alloc(256, (total + 255) / 256 * 256);
    ck_assert_ptr_nonnull(block);
    memset(block, IF_SENTINEL, (size_t)total);
    uint64_t off = 0;
    for (size_t i = 0; i < s.n; i++) {
      free((void *)(uintptr_t)s.t[i].addr);
      s.t[i].addr = (uint64_t)(uintptr_t)(block + off);
      off += s.t[i].nbytes + (i % 3 == 2 ? 32 : 0);
    }
    uint64_t c0, v0, a0, c1, v1, a1;
    hoist__device_host_counts(rt, &c0, &v0, &a0);
    ck_assert_msg(load_into(rt, p, "transformer", &s, NULL) == HOIST_OK, "%s",
                  hoist_last_error(rt));
    hoist__device_host_counts(rt, &c1, &v1, &a1);
    if_check(rt, &s);
    off = 0;
    for (size_t i = 0; i < s.n; i++) {
      off += s.t[i].nbytes;
      if (i % 3 != 2) continue;
      for (int g = 0; g < 32; g++)
        ck_assert_msg(block[off + (uint64_t)g] == IF_SENTINEL, "guard after %s written",
                      s.t[i].tensor);
      off += 32;
    }
    /* Touching buffers never share a transfer: at least a copy each. */
    ck_assert_uint_ge(c1 - c0, n);
    for (size_t i = 0; i < s.n; i++) s.t[i].nbytes = 0; /* the block is freed once */
    if_free(rt, &s);
    free(block);
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* A page of memory this process may not write, or may not touch at all. */
static void *odd_page(int unmapped) {
  long page = sysconf(_SC_PAGESIZE);
  void *m = mmap(NULL, (size_t)page * 4, unmapped ? PROT_READ | PROT_WRITE : PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert(m != MAP_FAILED);
  if (unmapped) ck_assert_int_eq(munmap(m, (size_t)page * 4), 0);
  return m;
}

typedef struct refusal {
  const char *what;
  int status;
  const char *message;
} refusal;

/* Breaks set s the way case k says; returns what to expect. */
static refusal break_targets(size_t k, if_set *s, hoist_load_into_options *o, uint64_t *odd) {
  static const char *const only_w[] = {"w.*", NULL};
  static const char *const nothing[] = {"zzz*", NULL};
  const size_t f16 = if_find(s, "w.f16"), bf16 = if_find(s, "w.bf16"), i64 = if_find(s, "w.i64"),
               big = if_find(s, "w.f32.big");
  static uint64_t swapped[2] = {101, 50};
  switch (k) {
  case 0:
    s->t[f16].nbytes += 2;
    return (refusal){"size", HOIST_INVALID_ARGUMENT, "takes 200002 bytes as F16, its target has"};
  case 1:
    s->t[bf16].shape = swapped;
    return (refusal){"shape", HOIST_INVALID_ARGUMENT,
                     "has shape [50, 101] in the file, its target [101, 50]"};
  case 2:
    s->t[big] = s->t[--s->n];
    return (refusal){"missing", HOIST_INVALID_ARGUMENT,
                     "tensor 'w.f32.big' has no target (strict)"};
  case 3:
    s->t[s->n++] = (hoist_load_target){"nope", s->t[i64].addr + 8000, 0, HOIST_DTYPE_U8, 0, NULL};
    return (refusal){"extra", HOIST_INVALID_ARGUMENT, "no tensor 'nope' in the component"};
  case 4:
    s->t[s->n++] = (hoist_load_target){"w.i64", 0, 0, HOIST_DTYPE_I64, 0, NULL};
    return (refusal){"twice", HOIST_INVALID_ARGUMENT, "both name tensor 'w.i64'"};
  case 5:
    s->t[if_find(s, "w.bool")].addr = s->t[i64].addr + 8;
    return (refusal){"overlap", HOIST_INVALID_ARGUMENT,
                     "the targets of tensors 'w.i64' and 'w.bool' overlap"};
  case 6:
    s->t[i64].tensor = NULL;
    return (refusal){"null name", HOIST_INVALID_ARGUMENT, "names no tensor (NULL)"};
  case 7:
    s->t[i64].addr = 0;
    return (refusal){"null address", HOIST_INVALID_ARGUMENT, "target address 0 is not memory"};
  case 8:
    s->t[big].dtype = HOIST_DTYPE_BF16;
    s->t[big].nbytes /= 2;
    s->t[big].addr += 1;
    return (refusal){"misaligned", HOIST_INVALID_ARGUMENT, "is not aligned to 2 bytes"};
  case 9:
    s->t[i64].dtype = HOIST_DTYPE_F64;
    return (refusal){"int to float", HOIST_UNSUPPORTED, "is I64 in the file and its target is F64"};
  case 10:
    s->t[i64].addr = *odd = (uint64_t)(uintptr_t)odd_page(0);
    return (refusal){"read-only", HOIST_INVALID_ARGUMENT, "is a read-only mapping"};
  case 11:
    s->t[i64].addr = (uint64_t)(uintptr_t)odd_page(1);
    return (refusal){"unmapped", HOIST_INVALID_ARGUMENT, "is not mapped in this process"};
  case 12:
    s->t[i64].dtype = (hoist_dtype)99;
    return (refusal){"bad dtype", HOIST_INVALID_ARGUMENT, "target dtype 99 is not a dtype"};
  case 13:
    o->tensors = only_w;
    return (refusal){"filtered", HOIST_INVALID_ARGUMENT, "the tensor filter left it out (strict)"};
  case 14:
    o->struct_size -= 8;
    return (refusal){"struct size", HOIST_INVALID_ARGUMENT,
                     "hoist_load_into_options.struct_size is"};
  case 15:
    o->tensors = nothing;
    return (refusal){"pattern", HOIST_INVALID_ARGUMENT,
                     "`tensors`: pattern 'zzz*' matches no tensor of transformer"};
  case 16:
    s->t[f16].dtype = HOIST_DTYPE_F8_E4M3;
    s->t[f16].nbytes /= 2;
    return (refusal){"to fp8", HOIST_UNSUPPORTED, "is F16 in the file and its target is F8_E4M3"};
  default:
    return (refusal){NULL, 0, NULL};
  }
}

START_TEST(refusals_move_nothing_and_keep_nothing) {
  hoist_runtime *rt = runtime_with(2, 0, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_refusals", 0);
  for (size_t k = 0;; k++) {
    if_set s;
    if_build(rt, p, "transformer", HOIST_DTYPE_COUNT_, 0, &s);
    hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
    uint64_t odd = 0;
    const size_t n0 = s.n;
    hoist_load_target keep[16];
    memcpy(keep, s.t, n0 * sizeof *keep);
    hoist_load_target *grown = realloc(s.t, (n0 + 2) * sizeof *grown); /* room for one more */
    ck_assert_ptr_nonnull(grown);
    s.t = grown;
    refusal r = break_targets(k, &s, &o, &odd);
    if (r.what == NULL) {
      memcpy(s.t, keep, n0 * sizeof *keep);
      s.n = n0;
      if_free(rt, &s);
      break;
    }
    int rc = load_into(rt, p, "transformer", &s, &o);
    ck_assert_msg(rc == r.status, "%s: status %s, want %s (%s)", r.what, hoist_status_name(rc),
                  hoist_status_name(r.status), hoist_last_error(rt));
    ck_assert_msg(strstr(hoist_last_error(rt), r.message) != NULL, "%s: message '%s' lacks '%s'",
                  r.what, hoist_last_error(rt), r.message);
    ck_assert_msg(strchr(hoist_last_error(rt), '\n') == NULL, "%s: two lines", r.what);
    /* Nothing moved, nothing allocated. */
    memcpy(s.t, keep, n0 * sizeof *keep);
    s.n = n0;
    for (size_t i = 0; i < s.n; i++)
      ck_assert_msg(if_untouched(&s, i), "%s: %s written", r.what, s.t[i].tensor);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    if (odd != 0) munmap((void *)(uintptr_t)odd, (size_t)sysconf(_SC_PAGESIZE) * 4);
    if_free(rt, &s);
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(unconvertible_float_is_unsupported) {
  hoist_runtime *rt = runtime_with(1, 0, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_f64", 1);
  if_set s;
  if_build(rt, p, "text_encoder", HOIST_DTYPE_COUNT_, 0, &s);
  const size_t f64 = if_find(&s, "enc.f64");
  s.t[f64].dtype = HOIST_DTYPE_BF16;
  s.t[f64].nbytes = 20;
  ck_assert_int_eq(load_into(rt, p, "text_encoder", &s, NULL), HOIST_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt),
                               "text_encoder: tensor 'enc.f64' is F64 in the file and its target "
                               "is BF16: no conversion"));
  ck_assert(if_untouched(&s, if_find(&s, "enc.f32")));
  s.t[f64].dtype = HOIST_DTYPE_F64;
  s.t[f64].nbytes = 80;
  ck_assert_int_eq(load_into(rt, p, "text_encoder", &s, NULL), HOIST_OK);
  if_check(rt, &s);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

typedef struct missing_log {
  char names[8][32];
  size_t n;
} missing_log;

static void on_missing(void *user, const char *tensor) {
  missing_log *m = user;
  ck_assert_uint_lt(m->n, 8);
  snprintf(m->names[m->n++], sizeof m->names[0], "%s", tensor);
}

START_TEST(non_strict_reports_what_did_not_match) {
  hoist_runtime *rt = runtime_with(2, 0, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_loose", 0);
  if_set s;
  if_build(rt, p, "transformer", HOIST_DTYPE_BF16, 0, &s);
  /* Targets for the w.* tensors only, in reverse, plus one for no tensor. */
  hoist_load_target t[16];
  size_t n = 0;
  for (size_t i = s.n; i-- > 0;)
    if (strncmp(s.t[i].tensor, "w.", 2) == 0) t[n++] = s.t[i];
  unsigned char ghost_buf[64];
  memset(ghost_buf, IF_SENTINEL, sizeof ghost_buf);
  t[n++] = (hoist_load_target){"ghost", (uint64_t)(uintptr_t)ghost_buf, 64, HOIST_DTYPE_U8, 0,
                               NULL};
  unsigned char filled[16];
  memset(filled, 7, sizeof filled);
  missing_log m = {.n = 0};
  hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
  o.strict = 0;
  o.filled = filled;
  o.missing = on_missing;
  o.missing_user = &m;
  ck_assert_msg(hoist_load_into(rt, p, "transformer", t, n, &o) == HOIST_OK, "%s",
                hoist_last_error(rt));
  for (size_t i = 0; i + 1 < n; i++) ck_assert_uint_eq(filled[i], 1);
  ck_assert_uint_eq(filled[n - 1], 0);
  for (size_t k = 0; k < sizeof ghost_buf; k++) ck_assert_uint_eq(ghost_buf[k], IF_SENTINEL);
  const char *want[] = {"x.e5m2.big", "x.f16.small", "x.f32.mid", "x.f32.small", "x.i64.small"};
  ck_assert_uint_eq(m.n, 5);
  for (size_t k = 0; k < 5; k++) ck_assert_str_eq(m.names[k], want[k]);
  for (size_t i = 0; i < s.n; i++) {
    if (strncmp(s.t[i].tensor, "x.", 2) == 0)
      ck_assert(if_untouched(&s, i));
  }
  /* The w.* ones hold the reference conversion. */
  if_set w;
  if_subset(&s, "w.", NULL, &w);
  if_check(rt, &w);
  if_subset_free(&w);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

static int reject_i64(void *user, const char *component, const char *tensor) {
  int *calls = user;
  ++*calls;
  ck_assert_str_eq(component, "transformer");
  return strcmp(tensor, "x.i64.small") != 0;
}

START_TEST(filter_chooses_the_tensors_to_fill) {
  hoist_runtime *rt = runtime_with(2, 0, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_filter", 0);
  if_set s;
  if_build(rt, p, "transformer", HOIST_DTYPE_F32, 0, &s);
  if_set x;
  if_subset(&s, "x.", "x.i64.small", &x);
  ck_assert_uint_eq(x.n, 4);
  static const char *const only_x[] = {"x.*", NULL};
  int calls = 0;
  hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
  o.tensors = only_x;
  o.tensor_filter = reject_i64;
  o.tensor_filter_user = &calls;
  /* Strict: exactly the four selected tensors have targets. */
  ck_assert_msg(hoist_load_into(rt, p, "transformer", x.t, x.n, &o) == HOIST_OK, "%s",
                hoist_last_error(rt));
  ck_assert_int_eq(calls, 5); /* the callback sees what the patterns kept */
  if_check(rt, &x);
  for (size_t i = 0; i < s.n; i++)
    if (strncmp(s.t[i].tensor, "w.", 2) == 0) ck_assert(if_untouched(&s, i));
  if_subset_free(&x);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

static void cancel_soon(void *user, const char *component, uint64_t done, uint64_t total) {
  *(volatile int *)user = 1;
}

START_TEST(cancel_frees_everything) {
  hoist_runtime *rt = runtime_with(1, 4096, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_cancel", 0);
  if_set s;
  if_build(rt, p, "transformer", HOIST_DTYPE_BF16, 0, &s);
  volatile int cancel = 0;
  hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
  o.cancel = &cancel;
  o.progress = cancel_soon;
  o.progress_user = (void *)&cancel;
  o.verify = 1;
  ck_assert_int_eq(load_into(rt, p, "transformer", &s, &o), HOIST_CANCELLED);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(admission_counts_the_scratch_only) {
  hoist_runtime *rt = runtime_with(2, 1u << 20, 1u << 20);
  hoist_pipeline *p = mixed_pipeline(rt, "into_admission", 0);
  if_set s;
  /* 2.5 MB of tensors into a 1 MiB device: no device memory is needed. */
  if_build(rt, p, "transformer", HOIST_DTYPE_COUNT_, 0, &s);
  ck_assert_int_eq(load_into(rt, p, "transformer", &s, NULL), HOIST_OK);
  if_check(rt, &s);
  if_free(rt, &s);
  /* A conversion needs its scratch: 2 readers' 4 slots of 1 MiB do not
   * fit, 256 KiB do. */
  if_build(rt, p, "transformer", HOIST_DTYPE_BF16, 0, &s);
  hoist_load_failure failure;
  hoist_load_into_options o = HOIST_LOAD_INTO_OPTIONS_INIT;
  o.failure = &failure;
  ck_assert_int_eq(load_into(rt, p, "transformer", &s, &o), HOIST_ADMISSION);
  ck_assert_str_eq(failure.component, "transformer");
  ck_assert_uint_gt(failure.need_bytes, 1u << 20);
  ck_assert_uint_eq(failure.free_bytes, 1u << 20);
  for (size_t i = 0; i < s.n; i++) ck_assert(if_untouched(&s, i));
  o.scratch_bytes = 256u << 10;
  ck_assert_msg(load_into(rt, p, "transformer", &s, &o) == HOIST_OK, "%s", hoist_last_error(rt));
  if_check(rt, &s);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(component_is_chosen_by_name) {
  hoist_runtime *rt = runtime_with(1, 0, 0);
  hoist_pipeline *p = mixed_pipeline(rt, "into_component", 0);
  if_set s;
  if_build(rt, p, "vae", HOIST_DTYPE_COUNT_, 0, &s);
  ck_assert_int_eq(load_into(rt, p, NULL, &s, NULL), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "has 2 components with safetensors weights"));
  ck_assert_int_eq(load_into(rt, p, "nope", &s, NULL), HOIST_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "no component 'nope'"));
  /* A component without weights (a tokenizer) has nothing to load into. */
  char other[1200];
  snprintf(other, sizeof other, "%s/fixture", pipe_dir);
  ck_assert_int_eq(mkdir(other, 0755), 0);
  fixture_write_pipeline(other, 4);
  hoist_pipeline *q = cf_open(rt, other);
  ck_assert_int_eq(hoist_load_into(rt, q, "tokenizer", NULL, 0, NULL), HOIST_NO_WEIGHTS);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "component 'tokenizer' has no safetensors"));
  hoist_pipeline_close(q);
  ck_assert_int_eq(load_into(rt, p, "vae", &s, NULL), HOIST_OK);
  if_check(rt, &s);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  /* One file is a one-component pipeline: no name needed. */
  char file[1200];
  snprintf(file, sizeof file, "%s/vae/diffusion_pytorch_model.safetensors", pipe_dir);
  ck_assert_int_eq(hoist_pipeline_open(rt, file, NULL, &p), HOIST_OK);
  if_build(rt, p, "diffusion_pytorch_model", HOIST_DTYPE_F16, 0, &s);
  ck_assert_msg(load_into(rt, p, NULL, &s, NULL) == HOIST_OK, "%s", hoist_last_error(rt));
  if_check(rt, &s);
  if_free(rt, &s);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("load_into");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, into_host_buffers_bit_identical);
  tcase_add_test(tc, converts_to_each_target);
  tcase_add_test(tc, touching_buffers_keep_own_transfers_gaps_untouched);
  tcase_add_test(tc, refusals_move_nothing_and_keep_nothing);
  tcase_add_test(tc, unconvertible_float_is_unsupported);
  tcase_add_test(tc, non_strict_reports_what_did_not_match);
  tcase_add_test(tc, filter_chooses_the_tensors_to_fill);
  tcase_add_test(tc, cancel_frees_everything);
  tcase_add_test(tc, admission_counts_the_scratch_only);
  tcase_add_test(tc, component_is_chosen_by_name);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
