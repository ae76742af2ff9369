/* test_convert_load.c — `hoist load --dtype` and `--verify` on the host
 * backend (CI): a pipeline of F32, F16, BF16, F8_E4M3, F8_E5M2, I64 and
 * BOOL tensors loaded with a 16-bit or 32-bit target equals the CPU
 * reference conversion of the file bytes tensor by tensor (ints and bool
 * unchanged), arenas are sized in target bytes, per-component targets
 * override the global one, a floating dtype with no conversion fails before
 * anything is allocated, admission counts the scratch ring (and the device
 * peak stays within arenas + scratch), offloaded components convert on the
 * host, and --verify catches a byte flipped after the upload with and
 * without conversion. */
#include "convert_fixture.h"

#include "kernels.h"
#include "load.h"
#include "job.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static char pipe_dir[1024];

static void setup(const char *name, int with_f64) {
  tu_scratch_dir(name, pipe_dir, sizeof pipe_dir);
  cf_write_pipeline(pipe_dir, 7, with_f64);
}

static hoist_runtime *runtime_with(uint32_t threads, uint64_t chunk, uint64_t capacity) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.threads = threads;
  cfg.chunk_bytes = chunk;
  cfg.capacity = capacity;
  hoist_runtime *rt = NULL;
  ck_assert_msg(hoist_runtime_create(&cfg, &rt) == HOIST_OK, "%s", hoist_last_error(NULL));
  return rt;
}

static const hoist_loaded_info *find(const hoist_loaded *l, const char *name, size_t *pos) {
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    if (strcmp(hoist_loaded_component(l, i)->name, name) == 0) {
      if (pos != NULL) *pos = i;
      return hoist_loaded_component(l, i);
    }
  ck_abort_msg("no component %s", name);
  return NULL;
}

/* Largest device allocation seen from the progress callback. */
typedef struct peak_probe {
  hoist_runtime *rt;
  uint64_t peak;
  size_t calls;
} peak_probe;

static void on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  peak_probe *pp = user;
  uint64_t a = hoist__device_host_allocated(pp->rt);
  if (a > pp->peak) pp->peak = a;
  pp->calls++;
}

START_TEST(bf16_equals_reference_every_mode) {
  setup("conv_modes", 0);
  struct {
    uint32_t threads;
    uint64_t chunk;
    hoist_read_mode mode;
    uint64_t scratch;
    int verify;
  } cases[] = {{2, 65536, HOIST_READ_PREAD, 0, 0},       {3, 0, HOIST_READ_MMAP, 0, 1},
               {1, 4096, HOIST_READ_DIRECT, 0, 1},       {4, 65536, HOIST_READ_AUTO, 32768, 1},
               {2, 1u << 20, HOIST_READ_PREAD, 16384, 0},
               /* Scratch pools smaller than the readers' want (two slots
                * each): one 4 KiB slot for 4 readers, 3 slots for 6. */
               {4, 65536, HOIST_READ_PREAD, 4096, 1},    {6, 65536, HOIST_READ_MMAP, 3 * 65536, 0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_runtime *rt = runtime_with(cases[k].threads, cases[k].chunk, 0);
    hoist_pipeline *p = cf_open(rt, pipe_dir);
    hoist_loaded *l = NULL;
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = k % 2 ? "BF16" : "bf16";
    o.read_mode = cases[k].mode;
    o.scratch_bytes = cases[k].scratch;
    o.verify = cases[k].verify;
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "case %zu: %s", k,
                  hoist_last_error(rt));
    uint64_t placed_t = 0, placed_v = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", HOIST_DTYPE_BF16, &placed_t), 14);
    ck_assert_uint_eq(cf_check_component(rt, p, l, "vae", HOIST_DTYPE_BF16, &placed_v), 2);
    /* Arenas in target bytes: exactly the 256-aligned target sizes. */
    ck_assert_uint_eq(find(l, "transformer", NULL)->device_bytes, placed_t);
    ck_assert_uint_eq(find(l, "vae", NULL)->device_bytes, placed_v);
    ck_assert_uint_eq(placed_v, (64 * 513 * 2 + 255) / 256 * 256 + 256); /* half of F32 */
    /* bytes stays the file's. */
    ck_assert_uint_eq(find(l, "vae", NULL)->bytes, (64 * 513 + 64) * 4);
    hoist_loaded_close(l);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
}
END_TEST

START_TEST(f16_f32_and_per_component_targets) {
  setup("conv_targets", 0);
  hoist_runtime *rt = runtime_with(2, 65536, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  struct {
    const char *dtype, *dtype_for;
    hoist_dtype t, v;
  } cases[] = {
      {"f16", NULL, HOIST_DTYPE_F16, HOIST_DTYPE_F16},
      {"f32", NULL, HOIST_DTYPE_F32, HOIST_DTYPE_COUNT_},
      {"bf16", "vae=f16,transformer=keep", HOIST_DTYPE_COUNT_, HOIST_DTYPE_F16},
      {NULL, "dit=f32", HOIST_DTYPE_F32, HOIST_DTYPE_COUNT_},
      {"bf16", "all=keep,vae=bf16", HOIST_DTYPE_COUNT_, HOIST_DTYPE_BF16},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_loaded *l = NULL;
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = cases[k].dtype;
    o.dtype_for = cases[k].dtype_for;
    o.verify = 1;
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "case %zu: %s", k,
                  hoist_last_error(rt));
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", cases[k].t, &placed), 14);
    ck_assert_uint_eq(cf_check_component(rt, p, l, "vae", cases[k].v, &placed), 2);
    hoist_loaded_close(l);
  }
  /* Bad targets and entries are refused with a message. */
  const char *bad_dtype[] = {"bf8", "F64", "", NULL};
  for (size_t k = 0; bad_dtype[k] != NULL; k++) {
    hoist_loaded *l = NULL;
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = "bf16";
    o.dtype_for = k == 2 ? "vae" : NULL;
    if (k < 2) o.dtype = bad_dtype[k];
    ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_INVALID_ARGUMENT);
    /* The library names the option by its field; the CLI maps it to a flag. */
    ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), k < 2 ? "`dtype`: '"
                                                             : "`dtype_for`: 'vae' is not NAME=DTYPE"));
  }
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype_for = "nosuch=bf16";
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &o, &l), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "nosuch"));
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(unsupported_pair_fails_before_allocation) {
  setup("conv_f64", 1);
  hoist_runtime *rt = runtime_with(2, 65536, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  int rc = hoist_load_pipeline(rt, p, &o, &l);
  ck_assert_msg(rc == HOIST_UNSUPPORTED, "%s: %s", hoist_status_name(rc), hoist_last_error(rt));
  ck_assert_ptr_null(l);
  const char *msg = hoist_last_error(rt);
  ck_assert_ptr_nonnull(strstr(msg, "text_encoder"));
  ck_assert_ptr_nonnull(strstr(msg, "'enc.f64'"));
  ck_assert_ptr_nonnull(strstr(msg, "F64 to BF16"));
  /* Nothing was allocated: no arena, not even the pinned ring. */
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  ck_assert_uint_eq(hoist__device_host_pinned(rt), 0);
  /* Keeping that component's dtype loads the rest converted. */
  o.dtype_for = "text_encoder=keep";
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  uint64_t placed = 0;
  ck_assert_uint_eq(cf_check_component(rt, p, l, "text_encoder", HOIST_DTYPE_COUNT_, &placed), 2);
  ck_assert_uint_eq(cf_check_component(rt, p, l, "vae", HOIST_DTYPE_BF16, &placed), 2);
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* Flips device byte 10 of a named tensor after its component's upload. */
typedef struct flip {
  const char *component, *tensor;
  int fired;
} flip;

static void flip_byte(void *user, hoist_loaded *l, size_t pos) {
  flip *f = user;
  if (strcmp(hoist_loaded_component(l, pos)->name, f->component) != 0) return;
  uint64_t addr = 0;
  ck_assert_int_eq(hoist_loaded_tensor(l, f->component, f->tensor, &addr, NULL), HOIST_OK);
  ((unsigned char *)(uintptr_t)addr)[10] ^= 0x21;
  f->fired++;
}

/* flip_byte, then the file at truncate_path shrinks to 100 bytes. */
static char truncate_path[1200];
static void flip_and_truncate(void *user, hoist_loaded *l, size_t pos) {
  flip *f = user;
  int before = f->fired;
  flip_byte(user, l, pos);
  if (f->fired != before) ck_assert_int_eq(truncate(truncate_path, 100), 0);
}

START_TEST(verify_catches_flip_with_and_without_conversion) {
  setup("conv_verify", 0);
  struct {
    const char *dtype, *component, *tensor, *expect;
  } cases[] = {
      {NULL, "transformer", "w.f32.big", "at byte 10 "},
      {NULL, "vae", "decoder.b", "at byte 10 "},
      {"bf16", "transformer", "w.f32.big", "after its F32 -> BF16 conversion"},
      {"bf16", "transformer", "w.e4m3", "after its F8_E4M3 -> BF16 conversion"},
      {"bf16", "transformer", "w.i64", "at byte 10 "},
      {"bf16", "transformer", "w.bf16", "at byte 10 "},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_runtime *rt = runtime_with(2, 65536, 0);
    hoist_pipeline *p = cf_open(rt, pipe_dir);
    hoist_loaded *l = NULL;
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = cases[k].dtype;
    o.verify = 1;
    flip f = {cases[k].component, cases[k].tensor, 0};
    hoist__load_ext ext = {NULL, NULL, NULL, flip_byte, &f};
    int rc = hoist__load_pipeline_ext(rt, p, &o, &ext, &l);
    ck_assert_int_eq(f.fired, 1);
    ck_assert_ptr_null(l);
    const char *msg = hoist_last_error(rt);
    ck_assert_msg(rc == HOIST_VERIFY_MISMATCH, "case %zu: %s: %s", k, hoist_status_name(rc), msg);
    char want[160];
    snprintf(want, sizeof want, "%s: tensor '%s'", cases[k].component, cases[k].tensor);
    ck_assert_msg(strstr(msg, want) != NULL, "case %zu: %s", k, msg);
    ck_assert_msg(strstr(msg, cases[k].expect) != NULL, "case %zu: %s", k, msg);
    ck_assert_msg(strstr(msg, "device hash 0x") != NULL, "case %zu: %s", k, msg);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    /* Without the flip the same load verifies. */
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
    hoist_loaded_close(l);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
}
END_TEST

/* Small tensors of one conversion placed side by side share transfers:
 * one copy and one conversion per span, the padding between them converted
 * into the arena's padding, and every tensor still equal to its reference
 * conversion — downcasts and upcasts, a scratch small enough to cut the
 * runs, every read mode, with and without --verify, and the host copy of
 * an offloaded component.  A byte flipped after the upload inside a shared
 * transfer is named by tensor and element. */
START_TEST(small_tensors_share_converted_transfers) {
  tu_scratch_dir("conv_small", pipe_dir, sizeof pipe_dir);
  size_t converted = 0;
  const size_t n = cf_write_small_pipeline(pipe_dir, 11, &converted);
  struct {
    const char *dtype;
    hoist_dtype target;
    uint64_t scratch;
    hoist_read_mode mode;
    int verify, offload;
  } cases[] = {
      {"bf16", HOIST_DTYPE_BF16, 0, HOIST_READ_AUTO, 0, 0},
      {"bf16", HOIST_DTYPE_BF16, 0, HOIST_READ_PREAD, 1, 0},
      {"f32", HOIST_DTYPE_F32, 0, HOIST_READ_MMAP, 1, 0},
      {"f16", HOIST_DTYPE_F16, 2 * 8192, HOIST_READ_DIRECT, 1, 0},
      {"bf16", HOIST_DTYPE_BF16, 0, HOIST_READ_AUTO, 1, 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hoist_runtime *rt = runtime_with(2, 65536, 0);
    hoist_pipeline *p = cf_open(rt, pipe_dir);
    hoist_loaded *l = NULL;
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = cases[k].dtype;
    o.scratch_bytes = cases[k].scratch;
    o.read_mode = cases[k].mode;
    o.verify = cases[k].verify;
    o.offload = cases[k].offload ? "all" : NULL;
    uint64_t copies0 = 0, converts0 = 0, copies = 0, converts = 0, allocs = 0;
    hoist__device_host_counts(rt, &copies0, &converts0, &allocs);
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "case %zu: %s", k,
                  hoist_last_error(rt));
    hoist__device_host_counts(rt, &copies, &converts, &allocs);
    copies -= copies0;
    converts -= converts0;
    if (cases[k].offload) {
      ck_assert_uint_eq(converts, 0); /* converted on the host, into the host copy */
      int moved = 0;
      ck_assert_int_eq(hoist_prepare_for_use(l, 0, NULL, &moved), HOIST_OK);
      ck_assert_int_eq(moved, 1);
    } else {
      /* 300 converted tensors in a few dozen transfers (about 900 KB of
       * F32 sources at 64 KiB a chunk); with the small scratch, 8 KiB
       * slots hold one or two of the F32 ones (4-8 KB each). */
      uint64_t most = cases[k].scratch != 0 ? 200 : 40;
      ck_assert_msg(converts >= 1 && converts <= most, "case %zu: %llu conversions for %zu", k,
                    (unsigned long long)converts, converted);
      ck_assert_msg(copies <= most + 10, "case %zu: %llu copies", k, (unsigned long long)copies);
    }
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", cases[k].target, &placed), n);
    ck_assert_uint_eq(find(l, "transformer", NULL)->device_bytes, placed);
    hoist_loaded_close(l);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
  /* A flip inside a shared transfer, after it was converted. */
  hoist_runtime *rt = runtime_with(2, 65536, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  o.verify = 1;
  flip f = {"transformer", "blk.100.F32", 0};
  hoist__load_ext ext = {NULL, NULL, NULL, flip_byte, &f};
  ck_assert_int_eq(hoist__load_pipeline_ext(rt, p, &o, &ext, &l), HOIST_VERIFY_MISMATCH);
  ck_assert_int_eq(f.fired, 1);
  const char *msg = hoist_last_error(rt);
  ck_assert_msg(strstr(msg, "tensor 'blk.100.F32' changed on the device after its F32 -> BF16 "
                            "conversion, at element 5:") != NULL,
                "%s", msg);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  /* The file shrinks before the report can re-read it: still a mismatch,
   * named from the hashes, with the reason it could not say more. */
  for (int conv = 0; conv <= 1; conv++) {
    o.dtype = conv ? "bf16" : NULL;
    flip g = {"transformer", "blk.100.F32", 0};
    snprintf(truncate_path, sizeof truncate_path, "%s/transformer/diffusion_pytorch_model.safetensors",
             pipe_dir);
    hoist__load_ext ext2 = {NULL, NULL, NULL, flip_and_truncate, &g};
    ck_assert_int_eq(hoist__load_pipeline_ext(rt, p, &o, &ext2, &l), HOIST_VERIFY_MISMATCH);
    msg = hoist_last_error(rt);
    ck_assert_msg(strstr(msg, "could not read it back to name the byte: FILE_CHANGED") != NULL,
                  "%s", msg);
    ck_assert_msg(strstr(msg, conv ? "after the conversion: device hash 0x"
                                   : "differs on the device: device hash 0x") != NULL,
                  "%s", msg);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    hoist_pipeline_close(p);
    size_t converted2 = 0;
    cf_write_small_pipeline(pipe_dir, 11, &converted2); /* whole again */
    p = cf_open(rt, pipe_dir);
  }
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* The chunk list itself: converted small tensors share a chunk with each
 * source at its destination offset x source/target size; tensors of two
 * allocations never share one, even when the allocations are adjacent. */
START_TEST(chunks_scale_offsets_and_respect_arenas) {
  tu_scratch_dir("conv_chunks", pipe_dir, sizeof pipe_dir);
  static const cf_tensor ts8[] = {{"a", "F32", 4, 1, {250}}, {"b", "F32", 4, 1, {250}},
                                  {"c", "F32", 4, 1, {250}}, {"d", "F32", 4, 1, {250}},
                                  {"e", "F32", 4, 1, {250}}, {"f", "F32", 4, 1, {250}},
                                  {"g", "F32", 4, 1, {250}}, {"h", "F32", 4, 1, {250}}};
  char path[1200];
  snprintf(path, sizeof path, "%s/m.safetensors", pipe_dir);
  cf_write_file(path, ts8, 8, 5);
  hoist_runtime *rt = runtime_with(1, 0, 0);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(rt, path, &f), HOIST_OK);
  upload_file uf = {0};
  uf.file = f;
  /* Eight tensors placed 1024 bytes apart (plain) or 512 (converted to
   * BF16), in one arena or two adjacent ones of four tensors each. */
  placed_tensor placed[8];
  loaded_component c = {0};
  c.tensors = placed;
  c.ntensors = 8;
  for (int conv = 0; conv <= 1; conv++) {
    const uint64_t stride = conv ? 512 : 1024;
    for (int i = 0; i < 8; i++) {
      const hoist_tensor_info *t = hoist_file_tensor(f, (size_t)i);
      placed[i] = (placed_tensor){t, 0, stride * (uint64_t)i, *t, 0, NULL};
      if (conv) {
        placed[i].dev.dtype = HOIST_DTYPE_BF16;
        placed[i].dev.nbytes = t->nbytes / 2;
      }
    }
    for (int split = 0; split <= 1; split++) {
      c.arenas.n = split ? 2 : 1;
      c.arenas.addr[0] = 0x100000;
      c.arenas.begin[0] = 0;
      c.arenas.addr[1] = 0x100000 + 4 * stride; /* adjacent to the first */
      c.arenas.begin[1] = 4 * stride;
      upload_job job = {0};
      job.component = "m";
      job.files = &uf;
      job.nfiles = 1;
      ck_assert_int_eq(hoist__upload_job_build(rt, &job, &c, 1u << 20, 1u << 20), HOIST_OK);
      ck_assert_uint_eq(job.nchunks, split ? 2 : 1);
      for (size_t k = 0; k < job.nchunks; k++) {
        const upload_chunk *ch = &job.chunks[k];
        uint32_t per = split ? 4 : 8;
        ck_assert_uint_eq(ch->nseg, per);
        ck_assert_uint_eq(ch->dst, 0x100000 + stride * 4 * k);
        for (uint32_t j = 0; j < per; j++)
          ck_assert_uint_eq(job.segs[ch->first_seg + j].slot_off, 1024 * j); /* 512 x 4/2 */
        ck_assert_uint_eq(ch->len, 1024 * (per - 1) + 1000);
        ck_assert_uint_eq(ch->dst_len, conv ? 512 * (per - 1) + 500 : ch->len);
        ck_assert_int_eq(ch->from, HOIST_DTYPE_F32);
        ck_assert_int_eq(ch->to, conv ? HOIST_DTYPE_BF16 : HOIST_DTYPE_F32);
      }
      hoist__upload_job_free(&job);
    }
  }
  hoist_file_close(f);
  hoist_runtime_close(rt);
}
END_TEST

START_TEST(admission_counts_scratch) {
  setup("conv_admission", 0);
  /* 2 threads x one 64 KiB slot: a 128 KiB ring. */
  const uint64_t ring = 131072;
  hoist_runtime *rt = runtime_with(2, 65536, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  o.scratch_bytes = ring;
  o.headroom = 0;
  peak_probe pp = {rt, 0, 0};
  o.progress = on_progress;
  o.progress_user = &pp;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  uint64_t arenas = 0;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++)
    arenas += hoist_loaded_component(l, i)->device_bytes;
  /* The peak seen while uploading: arenas so far plus one scratch ring. */
  ck_assert_uint_gt(pp.calls, 0);
  ck_assert_uint_le(pp.peak, arenas + ring);
  ck_assert_uint_gt(pp.peak, arenas);
  hoist_loaded_close(l);
  /* Both components convert and share one ring: one allocation more than
   * the plain load's arenas. */
  uint64_t c0, v0, a0, c1, v1, a1, a2;
  hoist__device_host_counts(rt, &c0, &v0, &a0);
  o.dtype = NULL;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  hoist_loaded_close(l);
  hoist__device_host_counts(rt, &c1, &v1, &a1);
  o.dtype = "bf16";
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  hoist_loaded_close(l);
  hoist__device_host_counts(rt, &c1, &v1, &a2);
  ck_assert_uint_eq(a2 - a1, a1 - a0 + 1);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);

  /* Capacity for exactly the arenas and the ring: fits.  One allocation
   * granule less: the last component (vae, converted) is refused and its
   * need names the scratch. */
  for (int less = 0; less <= 1; less++) {
    rt = runtime_with(2, 65536, arenas + ring - (less ? 256 : 0));
    p = cf_open(rt, pipe_dir);
    hoist_load_failure fail;
    o.failure = &fail;
    o.progress = NULL;
    int rc = hoist_load_pipeline(rt, p, &o, &l);
    if (!less) {
      ck_assert_msg(rc == HOIST_OK, "%s", hoist_last_error(rt));
      hoist_loaded_close(l);
    } else {
      ck_assert_msg(rc == HOIST_ADMISSION, "%s: %s", hoist_status_name(rc), hoist_last_error(rt));
      ck_assert_str_eq(fail.component, "vae");
      ck_assert_uint_eq(fail.need_bytes, (64 * 513 * 2 + 255) / 256 * 256 + 256 + ring);
      ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    }
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
}
END_TEST

START_TEST(offload_converts_on_host) {
  setup("conv_offload", 0);
  hoist_runtime *rt = runtime_with(2, 65536, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "f16";
  o.offload = "all";
  o.verify = 1;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  const char *names[] = {"transformer", "vae"};
  for (int k = 0; k < 2; k++) {
    size_t pos = 0;
    ck_assert_int_eq(find(l, names[k], &pos)->residency, HOIST_OFFLOAD);
    int moved = 0;
    ck_assert_int_eq(hoist_prepare_for_use(l, pos, NULL, &moved), HOIST_OK);
    ck_assert_int_eq(moved, 1);
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, names[k], HOIST_DTYPE_F16, &placed),
                      k == 0 ? 14 : 2);
    ck_assert_uint_eq(find(l, names[k], NULL)->device_bytes, placed);
  }
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* Any device allocation of a converting, verifying load failing (arenas,
 * scratch) leaves nothing allocated. */
START_TEST(failed_allocations_leave_nothing) {
  setup("conv_faults", 0);
  hoist_runtime *rt = runtime_with(2, 65536, 0);
  hoist_pipeline *p = cf_open(rt, pipe_dir);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  o.verify = 1;
  int failed = 0;
  for (uint64_t k = 1; k <= 6; k++) {
    hoist__device_host_fail_alloc_at(rt, k, 1);
    hoist_loaded *l = NULL;
    int rc = hoist_load_pipeline(rt, p, &o, &l);
    hoist__device_host_fail_alloc_at(rt, 0, 0);
    if (rc == HOIST_OK) {
      hoist_loaded_close(l);
    } else {
      failed++;
      ck_assert_msg(rc == HOIST_ADMISSION || rc == HOIST_DEVICE_OOM, "k %llu: %s: %s",
                    (unsigned long long)k, hoist_status_name(rc), hoist_last_error(rt));
      ck_assert_ptr_null(l);
    }
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  }
  /* An arena that fails is retried split in two; a failed scratch (one
   * per component) refuses the load. */
  ck_assert_int_ge(failed, 2);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}
END_TEST

/* Progress callback: after 50 ms (the calling reader holds a scratch slot
 * meanwhile, so the others run into an empty pool), truncates the file at
 * trunc_file, or raises *cancel. */
typedef struct stop_midway {
  const char *trunc_file;
  volatile int *cancel;
  int fired;
} stop_midway;

static void stop_on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  stop_midway *m = user;
  if (m->fired || done == 0) return;
  m->fired = 1;
  usleep(50000);
  if (m->trunc_file != NULL)
    ck_assert_int_eq(truncate(m->trunc_file, 4096), 0);
  else
    __atomic_store_n(m->cancel, 1, __ATOMIC_RELAXED); /* the readers poll it */
}

/* Sums the "found the N-slot scratch pool empty K times" counts the engine
 * logs (debug) after each upload. */
static void count_pool_waits(void *user, hoist_log_level level, const char *message) {
  unsigned slots = 0;
  unsigned long long times = 0;
  const char *at = strstr(message, "found the ");
  if (at != NULL && sscanf(at, "found the %u-slot scratch pool empty %llu times", &slots, &times) == 2)
    __atomic_add_fetch((unsigned long long *)user, times, __ATOMIC_RELAXED);
}

/* Readers waiting for a slot of a one-slot scratch pool stop when another
 * reader fails (a file truncated under the load) or the load is cancelled:
 * the load returns that status, frees everything, and the runtime loads
 * again afterwards.  The engine's log says readers did wait. */
START_TEST(failure_wakes_readers_waiting_for_scratch) {
  for (int action = 0; action < 2; action++) {
    setup(action == 0 ? "conv_pool_trunc" : "conv_pool_cancel", 0);
    hoist_runtime *rt = runtime_with(4, 4096, 0);
    unsigned long long waits = 0;
    hoist_log_set(rt, count_pool_waits, &waits, HOIST_LOG_DEBUG);
    hoist_pipeline *p = cf_open(rt, pipe_dir);
    char file[1200];
    snprintf(file, sizeof file, "%s/transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
             pipe_dir);
    static volatile int cancel;
    __atomic_store_n(&cancel, 0, __ATOMIC_RELAXED);
    stop_midway m = {action == 0 ? file : NULL, &cancel, 0};
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.dtype = "bf16";
    o.scratch_bytes = 4096;
    o.read_mode = HOIST_READ_PREAD;
    o.progress = stop_on_progress;
    o.progress_user = &m;
    o.cancel = &cancel;
    hoist_loaded *l = NULL;
    int rc = hoist_load_pipeline(rt, p, &o, &l);
    ck_assert_msg(rc == (action == 0 ? HOIST_FILE_CHANGED : HOIST_CANCELLED), "action %d: %s: %s",
                  action, hoist_status_name(rc), hoist_last_error(rt));
    ck_assert_ptr_null(l);
    ck_assert_int_eq(m.fired, 1);
    ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
    ck_assert_msg(waits > 0, "action %d: no reader waited for the scratch pool", action);
    hoist_pipeline_close(p);
    /* The engine (its pool) serves the next load. */
    setup(action == 0 ? "conv_pool_trunc" : "conv_pool_cancel", 0);
    p = cf_open(rt, pipe_dir);
    o.progress = NULL;
    __atomic_store_n(&cancel, 0, __ATOMIC_RELAXED);
    ck_assert_msg(hoist_load_pipeline(rt, p, &o, &l) == HOIST_OK, "%s", hoist_last_error(rt));
    uint64_t placed = 0;
    ck_assert_uint_eq(cf_check_component(rt, p, l, "transformer", HOIST_DTYPE_BF16, &placed), 14);
    hoist_loaded_close(l);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
  }
}
END_TEST

/* hoist plan --dtype: inferred_bytes in target bytes, and the same refusal. */
START_TEST(plan_counts_target_bytes) {
  hoist_runtime *rt = runtime_with(1, 0, 0);
  /* text_encoder holds F64, which converts to no target: refused. */
  setup("conv_plan", 1);
  const char *targets[] = {NULL, "bf16", "f32"};
  for (int k = 0; k < 3; k++) {
    hoist_pipeline *p = NULL;
    hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
    po.dtype = targets[k];
    int rc = hoist_pipeline_open(rt, pipe_dir, &po, &p);
    ck_assert_int_eq(rc, k == 0 ? HOIST_OK : HOIST_UNSUPPORTED);
    if (k > 0) ck_assert_ptr_nonnull(strstr(hoist_last_error(rt), "'enc.f64'"));
    hoist_pipeline_close(p);
  }
  setup("conv_plan2", 0);
  for (int k = 0; k < 3; k++) {
    hoist_pipeline *p = NULL;
    hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
    po.dtype = targets[k];
    ck_assert_msg(hoist_pipeline_open(rt, pipe_dir, &po, &p) == HOIST_OK, "%s", hoist_last_error(rt));
    for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
      const hoist_component_info *ci = hoist_pipeline_component(p, i);
      uint64_t want = 0;
      for (size_t f = 0; f < ci->file_count; f++) {
        hoist_file *file = NULL;
        ck_assert_int_eq(hoist_file_open(rt, ci->files[f], &file), HOIST_OK);
        for (size_t t = 0; t < hoist_file_tensor_count(file); t++) {
          const hoist_tensor_info *ti = hoist_file_tensor(file, t);
          unsigned tb = k == 0 || !cf_is_float(ti->dtype) ? hoist_dtype_bits(ti->dtype) / 8
                                                          : (k == 1 ? 2u : 4u);
          want += ti->nelements * tb;
        }
        hoist_file_close(file);
      }
      ck_assert_uint_eq(ci->inferred_bytes, want);
      if (strcmp(ci->name, "vae") == 0)
        ck_assert_uint_eq(ci->inferred_bytes, (64 * 513 + 64) * (k == 1 ? 2u : 4u));
    }
    hoist_pipeline_close(p);
  }
  hoist_runtime_close(rt);
}
END_TEST

/* The readers' vectorized hash is the shared block checksum. */
START_TEST(chunk_hash_is_the_block_checksum) {
  size_t n = 300000 + 16;
  unsigned char *buf = malloc(n);
  ck_assert_ptr_nonnull(buf);
  uint64_t x = 99;
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(cf_next(&x) >> 11);
  for (size_t len = 0; len < 300000; len += len < 70 ? 1 : 777)
    for (size_t shift = 0; shift < 3; shift++)
      ck_assert_msg(hoist__upload_chunk_hash(buf + shift * 5, len) == hoist__checksum_host(buf + shift * 5, len, 1),
                    "len %zu shift %zu", len, shift);
  ck_assert_uint_eq(hoist__upload_chunk_hash(buf, n), hoist__checksum_host(buf, n, 3));
  free(buf);
}
END_TEST

/* `hoist bench load --compare-dtype T` alternates the configured load
 * with a --dtype T one in one process and reports both series and the
 * paired ratios; the compared loads have their target-dtype arenas.  A
 * target the kernels lack is a usage error. */
START_TEST(bench_compare_dtype_pairs_runs) {
  tu_scratch_dir("conv_bench", pipe_dir, sizeof pipe_dir);
  size_t converted = 0;
  cf_write_small_pipeline(pipe_dir, 5, &converted);
  char cmd[4096], path[1200];
  snprintf(cmd, sizeof cmd,
           "%s bench load --json --device host --threads 2 --repeat 3 --compare-dtype bf16 '%s' "
           "> '%s/out.json' 2>/dev/null",
           HOIST_CLI_PATH, pipe_dir, pipe_dir);
  int st = system(cmd);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 0);
  snprintf(path, sizeof path, "%s/out.json", pipe_dir);
  size_t len = 0;
  char *text = tu_read_file(path, &len);
  cJSON *root = cJSON_Parse(text);
  ck_assert_msg(root != NULL, "%s", text);
  const cJSON *cmp = cJSON_GetObjectItem(root, "compare");
  ck_assert_ptr_nonnull(cmp);
  ck_assert_str_eq(cJSON_GetObjectItem(root, "dtype")->valuestring, "keep");
  ck_assert_str_eq(cJSON_GetObjectItem(cmp, "dtype")->valuestring, "bf16");
  ck_assert_int_eq(cJSON_GetObjectItem(root, "runs")->valueint, 3);
  double plain = cJSON_GetObjectItem(root, "device_bytes")->valuedouble;
  double bf16 = cJSON_GetObjectItem(cmp, "device_bytes")->valuedouble;
  ck_assert_msg(bf16 > 0 && bf16 < plain, "arenas: bf16 %.0f, as stored %.0f", bf16, plain);
  ck_assert(cJSON_GetObjectItem(cmp, "peak_device_bytes")->valuedouble >= bf16);
  ck_assert(cJSON_GetObjectItem(cmp, "median_GBps")->valuedouble > 0);
  double lo = cJSON_GetObjectItem(cmp, "ratio_min")->valuedouble;
  double med = cJSON_GetObjectItem(cmp, "ratio_median")->valuedouble;
  double hi = cJSON_GetObjectItem(cmp, "ratio_max")->valuedouble;
  ck_assert_msg(lo > 0 && lo <= med && med <= hi, "ratios %f %f %f", lo, med, hi);
  cJSON_Delete(root);
  free(text);
  /* Text: every compared run is named on stderr, the ratio on stdout. */
  snprintf(cmd, sizeof cmd,
           "%s bench load --device host --repeat 2 --compare-dtype f16 '%s' > '%s/out.txt' "
           "2> '%s/err.txt'",
           HOIST_CLI_PATH, pipe_dir, pipe_dir, pipe_dir);
  st = system(cmd);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 0);
  snprintf(path, sizeof path, "%s/out.txt", pipe_dir);
  text = tu_read_file(path, &len);
  ck_assert_msg(strstr(text, "paired speed ratio (--dtype f16 over the other)") != NULL, "%s", text);
  free(text);
  snprintf(path, sizeof path, "%s/err.txt", pipe_dir);
  text = tu_read_file(path, &len);
  /* The second pair runs in the other order: the compared load first. */
  const char *first = strstr(text, "run 1:"), *first_cmp = strstr(text, "run 1 (compared)");
  const char *second = strstr(text, "run 2:"), *second_cmp = strstr(text, "run 2 (compared)");
  ck_assert_msg(first != NULL && first_cmp != NULL && second != NULL && second_cmp != NULL, "%s",
                text);
  ck_assert_msg(first < first_cmp && second_cmp < second, "%s", text);
  free(text);
  snprintf(cmd, sizeof cmd, "%s bench load --compare-dtype f64 '%s' 2> '%s/err.txt'",
           HOIST_CLI_PATH, pipe_dir, pipe_dir);
  st = system(cmd);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 2);
  text = tu_read_file(path, &len);
  ck_assert_msg(strstr(text, "--compare-dtype takes bf16, f16 or f32") != NULL, "%s", text);
  free(text);
}
END_TEST

int main(void) {
  Suite *s = suite_create("convert_load");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, bf16_equals_reference_every_mode);
  tcase_add_test(tc, f16_f32_and_per_component_targets);
  tcase_add_test(tc, unsupported_pair_fails_before_allocation);
  tcase_add_test(tc, verify_catches_flip_with_and_without_conversion);
  tcase_add_test(tc, small_tensors_share_converted_transfers);
  tcase_add_test(tc, chunks_scale_offsets_and_respect_arenas);
  tcase_add_test(tc, admission_counts_scratch);
  tcase_add_test(tc, offload_converts_on_host);
  tcase_add_test(tc, chunk_hash_is_the_block_checksum);
  tcase_add_test(tc, plan_counts_target_bytes);
  tcase_add_test(tc, failed_allocations_leave_nothing);
  tcase_add_test(tc, bench_compare_dtype_pairs_runs);
  suite_add_tcase(s, tc);
  /* Readers of one load racing a failure or a cancel from another thread:
   * tagged threads, ctest runs it alone as test_convert_load_threads
   * (label threads), which the ThreadSanitizer build runs. */
  tc = tcase_create("threads");
  tcase_set_tags(tc, "threads");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, failure_wakes_readers_waiting_for_scratch);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
