/* convert_fixture.h — a small pipeline of mixed dtypes for the conversion
 * load tests (host: test_convert_load.c, GPU: test_gpu_convert_load.c):
 * F32, F16, BF16, F8_E4M3, F8_E5M2, I64 and BOOL tensors of awkward sizes
 * (split across chunks, merged, scalars, zero-size), random bit patterns
 * (NaNs, infinities and subnormals included), and the check that every
 * tensor on the device equals the CPU reference conversion of the file's
 * bytes.  Header-only (static functions) so both suites build it without a
 * change to the test library. */
#ifndef HOIST_CONVERT_FIXTURE_H
#define HOIST_CONVERT_FIXTURE_H

#include "testutil.h"

#include "convert_ref.h"
#include "device.h"
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct cf_tensor {
  const char *name;
  const char *dtype;
  unsigned bytes;     /* element size */
  int ndim;
  uint64_t shape[2];
} cf_tensor;

static uint64_t cf_next(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

/* Writes a safetensors file of the given tensors with random contents
 * (BOOL: 0 or 1). */
static void cf_write_file(const char *path, const cf_tensor *ts, size_t n, uint64_t seed) {
  char *h = malloc(256 + n * 200);
  ck_assert_ptr_nonnull(h);
  size_t len = (size_t)sprintf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t elems = 1;
    for (int d = 0; d < ts[i].ndim; d++) elems *= ts[i].shape[d];
    uint64_t nb = elems * ts[i].bytes;
    len += (size_t)sprintf(h + len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", ts[i].name, ts[i].dtype);
    for (int d = 0; d < ts[i].ndim; d++)
      len += (size_t)sprintf(h + len, "%s%llu", d ? "," : "", (unsigned long long)ts[i].shape[d]);
    len += (size_t)sprintf(h + len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                           (unsigned long long)(off + nb));
    off += nb;
  }
  strcpy(h + len, "}");
  unsigned char *data = malloc(off > 0 ? off : 1);
  ck_assert_ptr_nonnull(data);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7, at = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t elems = 1;
    for (int d = 0; d < ts[i].ndim; d++) elems *= ts[i].shape[d];
    for (uint64_t k = 0; k < elems * ts[i].bytes; k++)
      data[at++] = strcmp(ts[i].dtype, "BOOL") == 0 ? (unsigned char)(cf_next(&x) & 1)
                                                    : (unsigned char)(cf_next(&x) >> 24);
  }
  tu_write_safetensors(path, h, data, off);
  free(data);
  free(h);
}

static void cf_put(const char *dir, const char *rel, const char *text) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  tu_write_file(path, text, strlen(text));
}

/* The mixed pipeline: transformer (every dtype, two shards, loads first)
 * and vae (F32 only, loads last).  with_f64 adds a text_encoder holding an
 * F64 tensor, which has no conversion to a 16-bit target. */
static void cf_write_pipeline(const char *dir, uint64_t seed, int with_f64) {
  char path[1200];
  cf_put(dir, "model_index.json",
         with_f64 ? "{\"_class_name\":\"FluxPipeline\","
                    "\"text_encoder\":[\"transformers\",\"CLIPTextModel\"],"
                    "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"],"
                    "\"vae\":[\"diffusers\",\"AutoencoderKL\"]}"
                  : "{\"_class_name\":\"FluxPipeline\","
                    "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"],"
                    "\"vae\":[\"diffusers\",\"AutoencoderKL\"]}");
  snprintf(path, sizeof path, "%s/transformer", dir);
  mkdir(path, 0755);
  static const cf_tensor s1[] = {
      {"w.f32.big", "F32", 4, 2, {300, 1001}},  /* 1.2 MB: many chunks */
      {"w.f16", "F16", 2, 1, {100001}},          /* odd element count */
      {"w.bf16", "BF16", 2, 2, {50, 101}},       /* same as the target */
      {"w.e4m3", "F8_E4M3", 1, 1, {70001}},
      {"w.e5m2", "F8_E5M2", 1, 1, {333}},
      {"w.i64", "I64", 8, 1, {1000}},
      {"w.bool", "BOOL", 1, 1, {77}},
      {"w.f32.scalar", "F32", 4, 0, {0}},
      {"w.f32.empty", "F32", 4, 2, {0, 4}},
  };
  static const cf_tensor s2[] = {
      {"x.f32.mid", "F32", 4, 1, {40000}}, {"x.f32.small", "F32", 4, 1, {33}},
      {"x.f16.small", "F16", 2, 1, {3}},   {"x.i64.small", "I64", 8, 1, {5}},
      {"x.e5m2.big", "F8_E5M2", 1, 1, {262147}},
  };
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
           dir);
  cf_write_file(path, s1, sizeof s1 / sizeof s1[0], seed + 1);
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
           dir);
  cf_write_file(path, s2, sizeof s2 / sizeof s2[0], seed + 2);
  char index[4096];
  size_t len = (size_t)sprintf(index, "{\"metadata\":{},\"weight_map\":{");
  for (size_t i = 0; i < sizeof s1 / sizeof s1[0]; i++)
    len += (size_t)sprintf(index + len, "%s\"%s\":\"diffusion_pytorch_model-00001-of-00002.safetensors\"",
                           i ? "," : "", s1[i].name);
  for (size_t i = 0; i < sizeof s2 / sizeof s2[0]; i++)
    len += (size_t)sprintf(index + len, ",\"%s\":\"diffusion_pytorch_model-00002-of-00002.safetensors\"",
                           s2[i].name);
  strcpy(index + len, "}}");
  cf_put(dir, "transformer/diffusion_pytorch_model.safetensors.index.json", index);

  snprintf(path, sizeof path, "%s/vae", dir);
  mkdir(path, 0755);
  static const cf_tensor v[] = {{"decoder.w", "F32", 4, 2, {64, 513}}, {"decoder.b", "F32", 4, 1, {64}}};
  snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", dir);
  cf_write_file(path, v, 2, seed + 3);

  if (with_f64) {
    snprintf(path, sizeof path, "%s/text_encoder", dir);
    mkdir(path, 0755);
    static const cf_tensor t[] = {{"enc.f32", "F32", 4, 1, {1000}}, {"enc.f64", "F64", 8, 1, {10}}};
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
    cf_write_file(path, t, 2, seed + 4);
  }
}

/* A one-component pipeline ("transformer") of many small tensors in size
 * bands by dtype (BF16, F32, F16, F8_E4M3, F8_E5M2 from largest to
 * smallest in a 16-bit target; a few tiny I64 among the last) so that,
 * placed largest first, runs of the same conversion sit next to each other
 * and share transfers.  Returns the count of tensors; *converted counts
 * those a bf16 target converts. */
static size_t cf_write_small_pipeline(const char *dir, uint64_t seed, size_t *converted) {
  enum { N = 330 };
  static cf_tensor ts[N];
  static char names[N][32];
  size_t n = 0, conv = 0;
  for (size_t i = 0; i < N; i++) {
    cf_tensor t = {names[i], "F32", 4, 1, {0}};
    if (i < 150) t.shape[0] = 1000 + (i * 37) % 1000;
    else if (i < 210) t = (cf_tensor){names[i], "F16", 2, 1, {500 + (i * 13) % 499}};
    else if (i < 230) t = (cf_tensor){names[i], "BF16", 2, 2, {20, 100 + i % 50}};
    else if (i < 290) t = (cf_tensor){names[i], "F8_E4M3", 1, 1, {250 + (i * 7) % 250}};
    else if (i < 320) t = (cf_tensor){names[i], "F8_E5M2", 1, 1, {1 + (i * 5) % 249}};
    else t = (cf_tensor){names[i], "I64", 8, 1, {1 + i % 9}};
    snprintf(names[i], sizeof names[i], "blk.%03zu.%s", i, t.dtype);
    if (strcmp(t.dtype, "BF16") != 0 && strcmp(t.dtype, "I64") != 0) conv++;
    ts[n++] = t;
  }
  char path[1200];
  cf_put(dir, "model_index.json",
         "{\"_class_name\":\"FluxPipeline\","
         "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"]}");
  snprintf(path, sizeof path, "%s/transformer", dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
  cf_write_file(path, ts, n, seed);
  *converted = conv;
  return n;
}

/* Opens the pipeline at dir, failing the test when it cannot. */
static hoist_pipeline *cf_open(hoist_runtime *rt, const char *dir) {
  hoist_pipeline *p = NULL;
  ck_assert_msg(hoist_pipeline_open(rt, dir, NULL, &p) == HOIST_OK, "%s", hoist_last_error(rt));
  return p;
}

static int cf_is_float(hoist_dtype d) {
  return d == HOIST_DTYPE_F32 || d == HOIST_DTYPE_F16 || d == HOIST_DTYPE_BF16 ||
         d == HOIST_DTYPE_F8_E4M3 || d == HOIST_DTYPE_F8_E5M2;
}

/* Checks every tensor of component `name` of l against the file: floating
 * ones equal hoist__convert_ref(file bytes) in target (target ==
 * HOIST_DTYPE_COUNT_: unchanged), others the file bytes.  Device bytes are
 * fetched with the backend's copy_d2h (offloaded components must be
 * prepared).  Returns the count of tensors checked and adds their device
 * bytes (256-aligned each) to *placed. */
static inline size_t cf_check_component(hoist_runtime *rt, const hoist_pipeline *p,
                                        const hoist_loaded *l, const char *name,
                                        hoist_dtype target, uint64_t *placed) {
  size_t checked = 0;
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *ci = hoist_pipeline_component(p, i);
    if (strcmp(ci->name, name) != 0) continue;
    for (size_t f = 0; f < ci->file_count; f++) {
      hoist_file *file = NULL;
      ck_assert_int_eq(hoist_file_open(rt, ci->files[f], &file), HOIST_OK);
      for (size_t t = 0; t < hoist_file_tensor_count(file); t++) {
        const hoist_tensor_info *ti = hoist_file_tensor(file, t);
        const hoist_tensor_info *di = NULL;
        uint64_t addr = 0;
        ck_assert_int_eq(hoist_loaded_tensor(l, ci->name, ti->name, &addr, &di), HOIST_OK);
        ck_assert_uint_eq(addr % 256, 0);
        hoist_dtype to = target != HOIST_DTYPE_COUNT_ && cf_is_float(ti->dtype) ? target : ti->dtype;
        uint64_t want_bytes = ti->nelements * (hoist_dtype_bits(to) / 8);
        ck_assert_msg(di->dtype == to, "%s/%s: device dtype %s, want %s", name, ti->name,
                      hoist_dtype_name(di->dtype), hoist_dtype_name(to));
        ck_assert_uint_eq(di->nbytes, want_bytes);
        ck_assert_uint_eq(di->nelements, ti->nelements);
        unsigned char *src = malloc(ti->nbytes + 1), *want = malloc(want_bytes + 1),
                      *got = malloc(want_bytes + 1);
        ck_assert(src != NULL && want != NULL && got != NULL);
        ck_assert_int_eq(hoist_file_read(file, hoist_file_data_offset(file) + ti->begin, src,
                                         (size_t)ti->nbytes),
                         HOIST_OK);
        ck_assert_int_eq(hoist__convert_ref(want, to, src, ti->dtype, ti->nelements), HOIST_OK);
        if (want_bytes > 0)
          ck_assert_int_eq(rt->dev->ops->copy_d2h(rt->dev, got, addr, (size_t)want_bytes), HOIST_OK);
        ck_assert_msg(memcmp(got, want, (size_t)want_bytes) == 0, "%s/%s (%s -> %s) differs", name,
                      ti->name, hoist_dtype_name(ti->dtype), hoist_dtype_name(to));
        free(src);
        free(want);
        free(got);
        *placed += (want_bytes + 255) / 256 * 256;
        checked++;
      }
      hoist_file_close(file);
    }
  }
  return checked;
}

#endif
