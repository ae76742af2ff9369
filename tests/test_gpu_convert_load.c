/* test_gpu_convert_load.c — `hoist load --dtype` and `--verify` on a real GPU
 * (label gpu; prints a SKIP line and passes where no CUDA device is usable):
 * the mixed-dtype pipeline loaded on cuda:0 with bf16, f16 and f32 targets in
 * every read mode equals the CPU reference conversion tensor by tensor;
 * --verify passes and catches a byte flipped on the device after the upload
 * with and without conversion; many small tensors converted in shared
 * transfers equal the reference too; and the device peak during a bf16 load of an
 * F32 pipeline (cudaMemGetInfo sampled from the progress callback) stays
 * within the target bytes plus the scratch ring and allocation rounding. */
#include "convert_fixture.h"

#include "load.h"

static char pipe_dir[1024];

static uint64_t used_now(hoist_runtime *rt) {
  uint64_t f = 0, t = 0;
  ck_assert_int_eq(rt->dev->ops->mem_info(rt->dev, &f, &t), HOIST_OK);
  return t - f;
}

/* Loads p with --dtype dtype, that read mode and scratch, and --verify;
 * fails the test (naming case k) unless it loads. */
static hoist_loaded *load_verified(hoist_runtime *rt, hoist_pipeline *p, const char *dtype,
                                   hoist_read_mode mode, uint64_t scratch, size_t k) {
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = dtype;
  o.read_mode = mode;
  o.scratch_bytes = scratch;
  o.verify = 1;
  hoist_loaded *l = NULL;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "case %zu: %s", k,
                hoist_last_error(rt));
  return l;
}

START_TEST(every_target_and_mode_equals_reference) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_conv_modes", pipe_dir, sizeof pipe_dir);
  cf_write_pipeline(pipe_dir, 21, 0);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  struct {
    const char *dtype;
    hoist_dtype t;
    hoist_read_mode mode;
    uint64_t scratch;
  } cases[] = {
      {"bf16", HOIST_DTYPE_BF16, HOIST_READ_AUTO, 0},
      {"bf16", HOIST_DTYPE_BF16, HOIST_READ_PREAD, 1u << 20},
      {"bf16", HOIST_DTYPE_BF16, HOIST_READ_MMAP, 0},
      {"bf16", HOIST_DTYPE_BF16, HOIST_READ_DIRECT, 0},
      {"bf16", HOIST_DTYPE_BF16, HOIST_READ_REGISTER, 0},
      {"f16", HOIST_DTYPE_F16, HOIST_READ_AUTO, 0},
      {"f32", HOIST_DTYPE_F32, HOIST_READ_AUTO, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_loaded *l = load_verified(rt, p, cases[k].dtype, cases[k].mode, cases[k].scratch, k);
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", cases[k].t, &placed), 14);
    ck_assert_uint_eq(cf_check_component(rt, p, l, "vae", cases[k].t, &placed), 2);
    hoist_loaded_close(l);
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

typedef struct flip {
  hoist_runtime *rt;
  const char *component, *tensor;
  int fired;
} flip;

/* Flips device byte 10 of a tensor after its component's upload. */
static void flip_byte(void *user, hoist_loaded *l, size_t pos) {
  flip *f = user;
  if (strcmp(hoist_loaded_component(l, pos)->name, f->component) != 0) return;
  hoist__device *d = f->rt->dev;
  uint64_t addr = 0;
  unsigned char b = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, f->component, f->tensor, &addr, NULL), HOIST_OK);
  ck_assert_int_eq(d->ops->copy_d2h(d, &b, addr + 10, 1), HOIST_OK);
  b ^= 0x21;
  ck_assert_int_eq(d->ops->copy_h2d_async(d, addr + 10, &b, 1, NULL), HOIST_OK);
  ck_assert_int_eq(d->ops->stream_sync(d, NULL), HOIST_OK);
  f->fired++;
}

START_TEST(verify_catches_flip) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_conv_verify", pipe_dir, sizeof pipe_dir);
  cf_write_pipeline(pipe_dir, 22, 0);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  uint64_t used0 = 0;
  struct {
    const char *dtype, *tensor, *expect;
  } cases[] = {
      {NULL, "w.f32.big", "at byte 10 "},
      {"bf16", "w.f32.big", "after its F32 -> BF16 conversion"},
      {"bf16", "w.f16", "after its F16 -> BF16 conversion"},
      {"bf16", "w.i64", "at byte 10 "},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = cases[k].dtype;
    o.verify = 1;
    hoist_loaded *l = NULL;
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
    hoist_loaded_close(l);
    if (k == 0) used0 = used_now(rt);
    flip f = {rt, "transformer", cases[k].tensor, 0};
    hoist__load_ext ext = {NULL, NULL, NULL, flip_byte, &f};
    int rc = hoist__load_pipeline_ext(rt, p, &o, &ext, &l);
    const char *msg = hoist_last_error(rt);
    ck_assert_int_eq(f.fired, 1);
    ck_assert_ptr_null(l);
    ck_assert_msg(rc == HOIST_VERIFY_MISMATCH, "case %zu: %s: %s", k, hoist_status_name(rc), msg);
    char want[160];
    snprintf(want, sizeof want, "transformer: tensor '%s'", cases[k].tensor);
    ck_assert_msg(strstr(msg, want) != NULL, "case %zu: %s", k, msg);
    ck_assert_msg(strstr(msg, cases[k].expect) != NULL, "case %zu: %s", k, msg);
    ck_assert_msg(strstr(msg, "device hash 0x") != NULL, "case %zu: %s", k, msg);
    printf("gpu verify case %zu: %s\n", k, msg);
    /* Everything the failed load took is back. */
    ck_assert_uint_eq(used_now(rt), used0);
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* Many small tensors whose conversions share transfers (one copy and one
 * kernel per span of neighbours) equal the reference on the device for
 * downcasts and upcasts, with a scratch small enough to cut the runs; a
 * byte flipped after the upload inside such a span is named by tensor and
 * element. */
START_TEST(small_tensors_share_converted_transfers) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_conv_small", pipe_dir, sizeof pipe_dir);
  size_t converted = 0;
  const size_t n = cf_write_small_pipeline(pipe_dir, 23, &converted);
  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  struct {
    const char *dtype;
    hoist_dtype t;
    uint64_t scratch;
  } cases[] = {{"bf16", HOIST_DTYPE_BF16, 0},
               {"f16", HOIST_DTYPE_F16, 16 * 8192},
               {"f32", HOIST_DTYPE_F32, 0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_loaded *l = load_verified(rt, p, cases[k].dtype, HOIST_READ_AUTO, cases[k].scratch, k);
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", cases[k].t, &placed), n);
    hoist_loaded_close(l);
  }
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  o.verify = 1;
  hoist_loaded *l = NULL;
  flip f = {rt, "transformer", "blk.100.F32", 0};
  hoist__load_ext ext = {NULL, NULL, NULL, flip_byte, &f};
  int rc = hoist__load_pipeline_ext(rt, p, &o, &ext, &l);
  const char *msg = hoist_last_error(rt);
  ck_assert_int_eq(f.fired, 1);
  ck_assert_msg(rc == HOIST_VERIFY_MISMATCH, "%s: %s", hoist_status_name(rc), msg);
  ck_assert_msg(strstr(msg, "tensor 'blk.100.F32' changed on the device after its F32 -> BF16 "
                            "conversion, at element 5: device hash 0x") != NULL,
                "%s", msg);
  printf("gpu verify, shared transfer: %s\n", msg);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

typedef struct peak_probe {
  hoist_runtime *rt;
  uint64_t peak;
  size_t calls;
} peak_probe;

static void on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  peak_probe *pp = user;
  uint64_t u = used_now(pp->rt);
  if (u > pp->peak) pp->peak = u;
  pp->calls++;
}

START_TEST(peak_is_target_plus_scratch) {
  if (!tu_gpu_available()) return;
  tu_scratch_dir("gpu_conv_peak", pipe_dir, sizeof pipe_dir);
  /* An F32 pipeline of 768 MiB: 6 tensors of 128 MiB and a small vae. */
  cf_put(pipe_dir, "model_index.json",
         "{\"_class_name\":\"FluxPipeline\","
         "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"],"
         "\"vae\":[\"diffusers\",\"AutoencoderKL\"]}");
  char path[1200];
  snprintf(path, sizeof path, "%s/transformer", pipe_dir);
  mkdir(path, 0755);
  static const cf_tensor big[] = {
      {"blocks.0.w", "F32", 4, 2, {8192, 4096}}, {"blocks.1.w", "F32", 4, 2, {8192, 4096}},
      {"blocks.2.w", "F32", 4, 2, {8192, 4096}}, {"blocks.3.w", "F32", 4, 2, {8192, 4096}},
      {"blocks.4.w", "F32", 4, 2, {8192, 4096}}, {"blocks.5.w", "F32", 4, 2, {8192, 4096}},
      {"blocks.5.b", "F32", 4, 1, {4096}}};
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model.safetensors", pipe_dir);
  cf_write_file(path, big, 7, 23);
  snprintf(path, sizeof path, "%s/vae", pipe_dir);
  mkdir(path, 0755);
  static const cf_tensor v[] = {{"decoder.w", "F32", 4, 2, {512, 4096}}};
  snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", pipe_dir);
  cf_write_file(path, v, 1, 24);

  hoist_runtime *rt = tu_cuda_runtime();
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  hoist_loaded *l = NULL;
  /* Warm-up: engine, CUDA context and the kernels' modules. */
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  hoist_loaded_close(l);
  for (int verify = 0; verify <= 1; verify++) {
    o.verify = verify;
    peak_probe pp = {rt, 0, 0};
    uint64_t before = used_now(rt);
    pp.peak = before;
    o.progress = on_progress;
    o.progress_user = &pp;
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
    const uint64_t scratch = 64ull << 20, gran = 2ull << 20;
    uint64_t arenas = 0, source = 0;
    for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
      arenas += hoist_loaded_component(l, i)->device_bytes;
      source += hoist_loaded_component(l, i)->bytes;
    }
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", HOIST_DTYPE_BF16, &placed), 7);
    ck_assert_uint_eq(cf_check_component(rt, p, l, "vae", HOIST_DTYPE_BF16, &placed), 1);
    hoist_loaded_close(l);
    uint64_t peak = pp.peak - before;
    printf("gpu peak (verify %d): source %llu bytes, arenas %llu, peak %llu (arenas + %llu), "
           "%zu samples\n",
           verify, (unsigned long long)source, (unsigned long long)arenas,
           (unsigned long long)peak, (unsigned long long)(peak > arenas ? peak - arenas : 0),
           pp.calls);
    ck_assert_uint_gt(pp.calls, 10);
    /* Arenas in target bytes: half the F32 bytes, rounded to 2 MiB each. */
    ck_assert_uint_ge(arenas, source / 2);
    ck_assert_uint_le(arenas, source / 2 + 2 * gran);
    /* Target bytes + the 64 MiB scratch + the verify hashes and rounding of
     * the four allocations. */
    ck_assert_uint_le(peak, arenas + scratch + 4 * gran);
    ck_assert_uint_ge(peak, arenas / 2); /* the probe did see the arenas */
    ck_assert_uint_lt(peak, source);     /* never the F32 bytes, let alone both */
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gpu_convert_load");
  TCase *tc = tcase_create("cuda");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, every_target_and_mode_equals_reference);
  tcase_add_test(tc, verify_catches_flip);
  tcase_add_test(tc, small_tensors_share_converted_transfers);
  tcase_add_test(tc, peak_is_target_plus_scratch);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
