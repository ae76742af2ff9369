/* test_plan.c — pipeline discovery and the memory-aware load order: the
 * reference's (SGLang component_loading_order.py) unit scenarios, sharded
 * indexes, HF-cache symlinks, variants, the .bin fallback, config values in
 * model_index.json, bad input, the Flux-like vector pipeline, the `hoist
 * plan` CLI, and a planning-time bound. */
#include "testutil.h"

#include "pipeline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Shared checks */

static char scratch[4096];

static const char *pth(const char *rel) {
  static char buf[8][4608];
  static int slot;
  char *b = buf[slot++ % 8];
  snprintf(b, sizeof buf[0], "%s/%s", scratch, rel);
  return b;
}

static void mkdir_p(const char *rel) {
  char tmp[4608];
  snprintf(tmp, sizeof tmp, "%s", pth(rel));
  for (char *s = tmp + strlen(scratch) + 1; *s; s++) {
    if (*s == '/') {
      *s = '\0';
      mkdir(tmp, 0755);
      *s = '/';
    }
  }
  ck_assert_msg(mkdir(tmp, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", tmp, strerror(errno));
}

static void write_text(const char *rel, const char *text) {
  tu_write_file(pth(rel), text, strlen(text));
}

/* A safetensors file with one U8 tensor of `payload` bytes, named tensor
 * (tensor names are unique across a component's files). */
static void write_st_as(const char *rel, const char *tensor, uint64_t payload) {
  char header[256];
  snprintf(header, sizeof header,
           "{\"%s\":{\"dtype\":\"U8\",\"shape\":[%" PRIu64 "],\"data_offsets\":[0,%" PRIu64 "]}}",
           tensor, payload, payload);
  tu_write_safetensors(pth(rel), header, NULL, (size_t)payload);
}

static void write_st(const char *rel, uint64_t payload) { write_st_as(rel, "w", payload); }

static void write_bytes(const char *rel, size_t n) {
  char *b = calloc(1, n ? n : 1);
  ck_assert_ptr_nonnull(b);
  tu_write_file(pth(rel), b, n);
  free(b);
}

static hoist_pipeline *open_ok(const char *path, const char *variant) {
  hoist_pipeline_options o = HOIST_PIPELINE_OPTIONS_INIT;
  o.variant = variant;
  hoist_pipeline *p = NULL;
  int rc = hoist_pipeline_open(NULL, path, &o, &p);
  ck_assert_msg(rc == HOIST_OK, "open %s: %s (%s)", path, hoist_status_name(rc),
                hoist_last_error(NULL));
  ck_assert_ptr_nonnull(p);
  return p;
}

static int open_fail(const char *path, const char *variant) {
  hoist_pipeline_options o = HOIST_PIPELINE_OPTIONS_INIT;
  o.variant = variant;
  hoist_pipeline *p = (hoist_pipeline *)(uintptr_t)1;
  int rc = hoist_pipeline_open(NULL, path, &o, &p);
  ck_assert_msg(rc != HOIST_OK, "open %s unexpectedly succeeded", path);
  ck_assert_ptr_null(p);
  return rc;
}

/* "a,b,c": the names in load order. */
static void assert_order(const hoist_pipeline *p, const char *expect) {
  char got[4096] = "";
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *c = hoist_pipeline_ordered(p, i);
    ck_assert_uint_eq(c->position, i);
    if (i) strcat(got, ",");
    strcat(got, c->name);
  }
  ck_assert_str_eq(got, expect);
}

static const hoist_component_info *find(const hoist_pipeline *p, const char *name) {
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++)
    if (strcmp(hoist_pipeline_component(p, i)->name, name) == 0)
      return hoist_pipeline_component(p, i);
  ck_abort_msg("no component %s", name);
  return NULL;
}

/* Sorts hand-made infos (the reference tests build ComponentLoadSpec
 * directly, some with a load name that differs from the name). */
static void assert_sorted(const char *const *names, const char *const *load_names, size_t n,
                          const char *expect) {
  hoist_component_info infos[16];
  const hoist_component_info *v[16];
  ck_assert(n <= 16);
  for (size_t i = 0; i < n; i++) {
    memset(&infos[i], 0, sizeof infos[i]);
    infos[i].name = names[i];
    infos[i].load_name = load_names != NULL ? load_names[i] : names[i];
    infos[i].index = (uint32_t)i;
    v[i] = &infos[i];
  }
  hoist__component_sort(v, n);
  char got[1024] = "";
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(got, ",");
    strcat(got, v[i]->name);
  }
  ck_assert_str_eq(got, expect);
}

/* ---- The reference's scenarios */

START_TEST(ref_unknown_sizes_rank_by_class) {
  const char *names[] = {"scheduler", "tokenizer", "text_encoder", "transformer", "vae"};
  assert_sorted(names, NULL, 5, "transformer,text_encoder,vae,scheduler,tokenizer");
  /* The same through discovery: no folder exists, every size is unknown. */
  tu_scratch_dir("plan_unknown", scratch, sizeof scratch);
  write_text("model_index.json",
             "{\"_class_name\":\"P\",\"_diffusers_version\":\"0.35.0\","
             "\"scheduler\":[\"diffusers\",\"S\"],\"tokenizer\":[\"transformers\",\"T\"],"
             "\"text_encoder\":[\"transformers\",\"E\"],\"transformer\":[\"diffusers\",\"D\"],"
             "\"vae\":[\"diffusers\",\"V\"]}");
  hoist_pipeline *p = open_ok(scratch, NULL);
  assert_order(p, "transformer,text_encoder,vae,scheduler,tokenizer");
  for (size_t i = 0; i < 5; i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    ck_assert_uint_eq(c->index, i + 2); /* every key counts, _class_name too */
    ck_assert_uint_eq(hoist__pipeline_slot(p, c), i);
    ck_assert_int_eq(c->folder_missing, 1);
    ck_assert_int_eq(c->has_size, 0);
    ck_assert_uint_eq(c->file_count, 0);
  }
  ck_assert_str_eq(find(p, "scheduler")->library, "diffusers");
  ck_assert_str_eq(find(p, "tokenizer")->class_name, "T");
  hoist_pipeline_close(p);
}
END_TEST

START_TEST(ref_numbered_variants_first) {
  const char *names[] = {"transformer", "transformer_2", "text_encoder", "text_encoder_3",
                         "text_encoder_2"};
  assert_sorted(names, NULL, 5,
                "transformer_2,transformer,text_encoder_3,text_encoder_2,text_encoder");
}
END_TEST

START_TEST(ref_weightless_rank_last) {
  ck_assert_int_lt(hoist__component_risk_rank("transformer"), hoist__component_risk_rank("scheduler"));
  ck_assert_int_lt(hoist__component_risk_rank("text_encoder_2"),
                   hoist__component_risk_rank("processor"));
  ck_assert_int_lt(hoist__component_risk_rank("vae"), hoist__component_risk_rank("tokenizer"));
  /* Exact classes, on the name and on its base name. */
  static const struct {
    const char *name;
    int rank;
  } cases[] = {
      {"transformer", 0},        {"transformer_2", 0},       {"transformer_3", 0},
      {"video_dit", 0},          {"video_dit_2", 0},         {"audio_dit", 0},
      {"dual_tower_bridge", 0},  {"audio_dit_07", 0},        {"text_encoder", 1},
      {"text_encoder_2", 1},     {"text_encoder_x", 1},      {"my_text_encoder", 1},
      {"my_text_encoder_7", 1},  {"text_encoder_\xc2\xb2", 1}, {"image_encoder", 2},
      {"image_encoder_2", 2},    {"vae", 3},                 {"vae_2", 3},
      {"video_vae", 3},          {"audio_vae", 3},           {"vocoder", 3},
      {"spatial_upsampler", 3},  {"condition_image_encoder", 3}, {"vae_x", 10},
      {"scheduler", 10},         {"tokenizer_2", 10},        {"transformers", 10},
      {"unet", 10},              {"", 10},                   {"_2", 10},
      {"image_encoder_", 10},    {"xtransformer", 10},       {"text_encode", 10},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg(hoist__component_risk_rank(cases[i].name) == cases[i].rank,
                  "risk_rank(%s) = %d, expected %d", cases[i].name,
                  hoist__component_risk_rank(cases[i].name), cases[i].rank);
  ck_assert(hoist__component_is_dit("transformer_9"));
  ck_assert(!hoist__component_is_dit("vae"));
  ck_assert(hoist__component_is_text_encoder("clip_text_encoder"));
  ck_assert(hoist__component_is_image_encoder("image_encoder_12"));
  ck_assert(hoist__component_is_vae("condition_image_encoder"));
  ck_assert(!hoist__component_is_image_encoder("condition_image_encoder"));
}
END_TEST

START_TEST(ref_inferred_size_beats_rank) {
  tu_scratch_dir("plan_sizes", scratch, sizeof scratch);
  write_text("model_index.json",
             "{\"_class_name\":\"P\",\"transformer\":[\"diffusers\",\"D\"],"
             "\"text_encoder\":[\"transformers\",\"E\"],\"scheduler\":[\"diffusers\",\"S\"]}");
  mkdir_p("transformer");
  mkdir_p("text_encoder");
  write_st("transformer/model.safetensors", 16);
  write_st("text_encoder/model.safetensors", 64);
  hoist_pipeline *p = open_ok(scratch, NULL);
  assert_order(p, "text_encoder,transformer,scheduler");
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 64);
  ck_assert_uint_eq(find(p, "transformer")->inferred_bytes, 16);
  ck_assert_int_eq(find(p, "scheduler")->folder_missing, 1);
  ck_assert_int_eq(find(p, "scheduler")->has_size, 0);
  ck_assert_uint_eq(find(p, "text_encoder")->tensor_count, 1);
  hoist_pipeline_close(p);
}
END_TEST

START_TEST(ref_load_name_alias) {
  const char *names[] = {"condition_image_encoder", "encoder_alias"};
  const char *load[] = {"condition_image_encoder", "text_encoder_2"};
  assert_sorted(names, load, 2, "encoder_alias,condition_image_encoder");
  /* Without the alias, encoder_alias ranks 10 (other) and goes last. */
  assert_sorted(names, NULL, 2, "condition_image_encoder,encoder_alias");
}
END_TEST

/* ---- Variant priority */

START_TEST(variant_priority_exact) {
  static const struct {
    const char *name;
    const char *text;
    int64_t value;
  } cases[] = {
      {"text_encoder", "0", 0},
      {"text_encoder_2", "-2", -2},
      {"text_encoder_007", "-7", -7},
      {"text_encoder_0", "0", 0},
      {"text_encoder_000", "0", 0},
      {"text_encoder_x", "0", 0},
      {"text_encoder_", "0", 0},
      {"text_encoder_\xc2\xb2", "0", 0},
      {"a_9223372036854775807", "-9223372036854775807", -INT64_MAX},
      {"a_9223372036854775808", "-9223372036854775808", INT64_MIN},
      {"a_9223372036854775809", "-9223372036854775809", INT64_MIN},
      {"text_encoder_99999999999999999999999", "-99999999999999999999999", INT64_MIN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[64];
    int64_t v = 1;
    hoist__component_variant_priority(cases[i].name, &v, text, sizeof text);
    ck_assert_msg(strcmp(text, cases[i].text) == 0 && v == cases[i].value,
                  "%s: got %s/%" PRId64, cases[i].name, text, v);
  }
  ck_assert_uint_eq(hoist__component_base_len("text_encoder_2"), 12);
  ck_assert_uint_eq(hoist__component_base_len("text_encoder_x"), 14);
  ck_assert_uint_eq(hoist__component_base_len("text_encoder_"), 13);
}
END_TEST

START_TEST(variant_priority_no_overflow) {
  /* Both saturate in 64 bits; the exact comparison still orders them. */
  const char *names[] = {"text_encoder_5", "text_encoder_99999999999999999999999",
                         "text_encoder_99999999999999999999998", "text_encoder_010"};
  assert_sorted(names, NULL, 4,
                "text_encoder_99999999999999999999999,text_encoder_99999999999999999999998,"
                "text_encoder_010,text_encoder_5");
  /* Leading zeros do not make a number bigger. */
  const char *z[] = {"vae_0000000000000000000000000001", "vae_2"};
  assert_sorted(z, NULL, 2, "vae_2,vae_0000000000000000000000000001");
}
END_TEST

/* ---- Discovery */

START_TEST(sharded_index) {
  tu_scratch_dir("plan_sharded", scratch, sizeof scratch);
  write_text("model_index.json", "{\"text_encoder_2\":[\"transformers\",\"T5EncoderModel\"]}");
  mkdir_p("text_encoder_2");
  write_st_as("text_encoder_2/model-00001-of-00002.safetensors", "b", 100);
  write_st_as("text_encoder_2/model-00002-of-00002.safetensors", "a", 50);
  /* Not named by the index: must not count. */
  write_st("text_encoder_2/stray.safetensors", 1000);
  write_text("text_encoder_2/model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":150},\"weight_map\":{"
             "\"a\":\"model-00002-of-00002.safetensors\","
             "\"b\":\"model-00001-of-00002.safetensors\"}}");
  hoist_pipeline *p = open_ok(scratch, NULL);
  const hoist_component_info *c = hoist_pipeline_component(p, 0);
  ck_assert_int_eq(c->has_size, 1);
  ck_assert_uint_eq(c->inferred_bytes, 150);
  ck_assert_uint_eq(c->file_count, 2);
  ck_assert_str_eq(c->files[0], pth("text_encoder_2/model-00001-of-00002.safetensors"));
  ck_assert_str_eq(c->files[1], pth("text_encoder_2/model-00002-of-00002.safetensors"));
  ck_assert_uint_eq(c->tensor_count, 2);
  hoist_file *const *files = NULL;
  ck_assert_uint_eq(hoist__pipeline_safetensors(p, 0, &files), 2);
  ck_assert_str_eq(hoist_file_path(files[1]), c->files[1]);
  ck_assert_uint_eq(hoist_file_data_bytes(files[0]), 100);
  ck_assert_uint_eq(hoist__pipeline_safetensors(p, 5, &files), 0);
  ck_assert_ptr_null(files);
  hoist_pipeline_close(p);

  /* An index whose weight_map is empty yields nothing: fall back to the
   * folder's safetensors. */
  write_text("text_encoder_2/model.safetensors.index.json", "{\"weight_map\":{}}");
  p = open_ok(scratch, NULL);
  ck_assert_uint_eq(hoist_pipeline_component(p, 0)->inferred_bytes, 1150);
  ck_assert_uint_eq(hoist_pipeline_component(p, 0)->file_count, 3);
  hoist_pipeline_close(p);
}
END_TEST

START_TEST(bad_indexes) {
  tu_scratch_dir("plan_badindex", scratch, sizeof scratch);
  write_text("model_index.json", "{\"transformer\":[\"diffusers\",\"D\"]}");
  mkdir_p("transformer");
  write_st("transformer/a.safetensors", 8);
  write_st("x.safetensors", 8); /* what an escaping name would reach */
  static const struct {
    const char *index;
    int status;
    const char *needle;
  } cases[] = {
      {"{\"weight_map\":{\"w\":\"missing.safetensors\"}}", HOIST_MISSING_SHARD,
       "missing.safetensors"},
      {"{\"weight_map\":{\"w\":\"../x.safetensors\"}}", HOIST_BAD_INDEX, "../x.safetensors"},
      {"{\"weight_map\":{\"w\":\"sub/a.safetensors\"}}", HOIST_BAD_INDEX, "sub/a.safetensors"},
      {"{\"weight_map\":{\"w\":\"..\\\\x.safetensors\"}}", HOIST_BAD_INDEX, "x.safetensors"},
      {"{\"weight_map\":{\"w\":\"..\"}}", HOIST_BAD_INDEX, "'..'"},
      {"{\"weight_map\":{\"w\":\".\"}}", HOIST_BAD_INDEX, "'.'"},
      {"{\"weight_map\":{\"w\":\"\"}}", HOIST_BAD_INDEX, "''"},
      {"{\"weight_map\":{\"w\":\"/etc/passwd\"}}", HOIST_BAD_INDEX, "/etc/passwd"},
      {"{\"weight_map\":{\"w\":3}}", HOIST_BAD_INDEX, "not a string"},
      {"{\"weight_map\":[]}", HOIST_BAD_INDEX, "weight_map"},
      {"{\"metadata\":{}}", HOIST_BAD_INDEX, "weight_map"},
      {"[1,2]", HOIST_BAD_INDEX, "not a JSON object"},
      {"{\"weight_map\":", HOIST_BAD_INDEX, "not valid JSON"},
      {"{} {}", HOIST_BAD_INDEX, "extra data"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text("transformer/model.safetensors.index.json", cases[i].index);
    int rc = open_fail(scratch, NULL);
    const char *msg = hoist_last_error(NULL);
    ck_assert_msg(rc == cases[i].status, "case %zu: %s, expected %s (%s)", i,
                  hoist_status_name(rc), hoist_status_name(cases[i].status), msg);
    ck_assert_msg(strstr(msg, "transformer/model.safetensors.index.json") != NULL &&
                      strstr(msg, cases[i].needle) != NULL,
                  "case %zu: message '%s' lacks the index file or '%s'", i, msg,
                  cases[i].needle);
  }
}
END_TEST

START_TEST(hf_cache_symlinks) {
  tu_scratch_dir("plan_hfcache", scratch, sizeof scratch);
  mkdir_p("blobs");
  mkdir_p("snapshots/rev1/transformer");
  mkdir_p("snapshots/rev1/text_encoder");
  mkdir_p("other/vae_real");
  write_text("blobs/aaa", "{\"_class_name\":\"FluxPipeline\",\"transformer\":[\"diffusers\",\"D\"],"
                          "\"text_encoder\":[\"transformers\",\"E\"],\"vae\":[\"diffusers\",\"V\"]}");
  write_st("blobs/bbb", 300);
  write_st_as("blobs/ccc", "x", 200);
  write_st_as("blobs/ddd", "y", 250);
  write_text("blobs/eee", "{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
                          "\"y\":\"model-00002-of-00002.safetensors\"}}");
  write_st("other/vae_real/diffusion_pytorch_model.safetensors", 10);
  ck_assert_int_eq(symlink("../../blobs/aaa", pth("snapshots/rev1/model_index.json")), 0);
  ck_assert_int_eq(symlink("../../../blobs/bbb",
                           pth("snapshots/rev1/transformer/diffusion_pytorch_model.safetensors")),
                   0);
  ck_assert_int_eq(symlink("../../../blobs/ccc",
                           pth("snapshots/rev1/text_encoder/model-00001-of-00002.safetensors")),
                   0);
  ck_assert_int_eq(symlink("../../../blobs/ddd",
                           pth("snapshots/rev1/text_encoder/model-00002-of-00002.safetensors")),
                   0);
  ck_assert_int_eq(symlink("../../../blobs/eee",
                           pth("snapshots/rev1/text_encoder/model.safetensors.index.json")),
                   0);
  /* A symlinked component folder, and a dangling link that is skipped. */
  ck_assert_int_eq(symlink("../../other/vae_real", pth("snapshots/rev1/vae")), 0);
  ck_assert_int_eq(symlink("../../../blobs/nope",
                           pth("snapshots/rev1/transformer/dangling.safetensors")),
                   0);
  hoist_pipeline *p = open_ok(pth("snapshots/rev1"), NULL);
  assert_order(p, "text_encoder,transformer,vae");
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 450);
  ck_assert_uint_eq(find(p, "transformer")->inferred_bytes, 300);
  ck_assert_uint_eq(find(p, "transformer")->file_count, 1);
  ck_assert_uint_eq(find(p, "vae")->inferred_bytes, 10);
  ck_assert_int_eq(find(p, "vae")->folder_missing, 0);
  hoist_pipeline_close(p);
}
END_TEST

START_TEST(variants) {
  tu_scratch_dir("plan_variants", scratch, sizeof scratch);
  write_text("model_index.json", "{\"transformer\":[\"diffusers\",\"D\"],"
                                 "\"text_encoder\":[\"transformers\",\"E\"],"
                                 "\"vae\":[\"diffusers\",\"V\"]}");
  mkdir_p("transformer");
  mkdir_p("text_encoder");
  mkdir_p("vae");
  write_st("transformer/diffusion_pytorch_model.safetensors", 400);
  write_st("transformer/diffusion_pytorch_model.fp16.safetensors", 200);
  write_st("transformer/diffusion_pytorch_model.bf16.safetensors", 201);
  write_st_as("text_encoder/model-00001-of-00002.safetensors", "a", 300);
  write_st_as("text_encoder/model-00002-of-00002.safetensors", "b", 300);
  write_text("text_encoder/model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
             "\"b\":\"model-00002-of-00002.safetensors\"}}");
  write_st_as("text_encoder/model.fp16-00001-of-00002.safetensors", "a", 150);
  write_st_as("text_encoder/model.fp16-00002-of-00002.safetensors", "b", 140);
  write_text("text_encoder/model.safetensors.index.fp16.json",
             "{\"weight_map\":{\"a\":\"model.fp16-00001-of-00002.safetensors\","
             "\"b\":\"model.fp16-00002-of-00002.safetensors\"}}");
  write_st("vae/diffusion_pytorch_model.safetensors", 50);

  hoist_pipeline *p = open_ok(scratch, NULL);
  ck_assert_uint_eq(find(p, "transformer")->inferred_bytes, 400);
  ck_assert_uint_eq(find(p, "transformer")->file_count, 1);
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 600);
  ck_assert_uint_eq(find(p, "vae")->inferred_bytes, 50);
  assert_order(p, "text_encoder,transformer,vae");
  hoist_pipeline_close(p);

  p = open_ok(scratch, "fp16");
  ck_assert_uint_eq(find(p, "transformer")->inferred_bytes, 200);
  ck_assert_str_eq(find(p, "transformer")->files[0],
                   pth("transformer/diffusion_pytorch_model.fp16.safetensors"));
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 290);
  ck_assert_uint_eq(find(p, "text_encoder")->file_count, 2);
  /* No fp16 files: the default ones, as diffusers does. */
  ck_assert_uint_eq(find(p, "vae")->inferred_bytes, 50);
  assert_order(p, "text_encoder,transformer,vae");
  hoist_pipeline_close(p);

  p = open_ok(scratch, "bf16");
  ck_assert_uint_eq(find(p, "transformer")->inferred_bytes, 201);
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 600);
  assert_order(p, "text_encoder,transformer,vae");
  hoist_pipeline_close(p);

  /* Unsharded fp16 without an index, beside a sharded default. */
  unlink(pth("text_encoder/model.safetensors.index.fp16.json"));
  p = open_ok(scratch, "fp16");
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 290);
  hoist_pipeline_close(p);

  ck_assert_int_eq(open_fail(scratch, "a/b"), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(open_fail(scratch, ""), HOIST_INVALID_ARGUMENT);
}
END_TEST

START_TEST(bin_fallback) {
  tu_scratch_dir("plan_bin", scratch, sizeof scratch);
  write_text("model_index.json", "{\"text_encoder\":[\"transformers\",\"E\"],"
                                 "\"unet\":[\"diffusers\",\"U\"],"
                                 "\"tokenizer\":[\"transformers\",\"T\"],"
                                 "\"mixed\":[\"diffusers\",\"M\"],"
                                 "\"zero\":[\"diffusers\",\"Z\"]}");
  mkdir_p("text_encoder");
  mkdir_p("unet");
  mkdir_p("tokenizer");
  mkdir_p("mixed");
  mkdir_p("zero");
  mkdir_p("unet/sub.bin"); /* a folder named like a weight file is not one */
  write_bytes("text_encoder/pytorch_model.bin", 123);
  write_bytes("text_encoder/extra.ckpt", 7);
  write_bytes("text_encoder/.hidden.bin", 1000);
  write_text("text_encoder/config.json", "{}");
  write_bytes("unet/a.pt", 30);
  write_bytes("unet/b.pth", 40);
  write_bytes("unet/c.gguf", 50);
  write_text("tokenizer/tokenizer.json", "{}");
  write_bytes("mixed/pytorch_model.bin", 5000);
  write_st("mixed/model.safetensors", 60);
  write_bytes("zero/empty.bin", 0);
  hoist_pipeline *p = open_ok(scratch, NULL);
  ck_assert_uint_eq(find(p, "text_encoder")->inferred_bytes, 130);
  ck_assert_uint_eq(find(p, "text_encoder")->file_count, 2);
  ck_assert_uint_eq(find(p, "unet")->inferred_bytes, 120);
  ck_assert_int_eq(find(p, "tokenizer")->has_size, 0);
  ck_assert_int_eq(find(p, "tokenizer")->folder_missing, 0);
  ck_assert_uint_eq(find(p, "mixed")->inferred_bytes, 60);
  ck_assert_int_eq(find(p, "zero")->has_size, 1);
  ck_assert_uint_eq(find(p, "zero")->inferred_bytes, 0);
  /* Known 0 orders like unknown: by rank, then variant, then index. */
  assert_order(p, "text_encoder,unet,mixed,tokenizer,zero");
  hoist_pipeline_close(p);
}
END_TEST

START_TEST(config_values_in_model_index) {
  tu_scratch_dir("plan_config", scratch, sizeof scratch);
  write_text("model_index.json",
             "{\"_class_name\":\"WanPipeline\",\"_diffusers_version\":\"0.35.0\","
             "\"boundary_ratio\":0.875,\"expand_timesteps\":true,\"note\":\"x\","
             "\"shape\":[1,2,3],\"pair\":[1,2],\"obj\":{\"a\":1},\"nothing\":null,"
             "\"image_encoder\":[null,null],\"image_processor\":[null,\"CLIPImageProcessor\"],"
             "\"transformer\":[\"diffusers\",\"WanTransformer3DModel\"],"
             "\"_private\":[\"diffusers\",\"X\"],"
             "\"transformer_2\":[\"diffusers\",\"WanTransformer3DModel\"],"
             "\"odd\":[\"diffusers\",null],"
             "\"vae\":[\"diffusers\",\"AutoencoderKLWan\"]}");
  hoist_pipeline *p = open_ok(scratch, NULL);
  ck_assert_uint_eq(hoist_pipeline_component_count(p), 4);
  ck_assert_str_eq(hoist_pipeline_component(p, 0)->name, "transformer");
  ck_assert_str_eq(hoist_pipeline_component(p, 1)->name, "transformer_2");
  ck_assert_str_eq(hoist_pipeline_component(p, 2)->name, "odd");
  ck_assert_ptr_null(hoist_pipeline_component(p, 2)->class_name);
  ck_assert_str_eq(hoist_pipeline_component(p, 3)->name, "vae");
  /* The index is the position among all keys of the file. */
  ck_assert_uint_eq(hoist_pipeline_component(p, 0)->index, 11);
  ck_assert_uint_eq(hoist_pipeline_component(p, 1)->index, 13);
  ck_assert_uint_eq(hoist_pipeline_component(p, 2)->index, 14);
  ck_assert_uint_eq(hoist_pipeline_component(p, 3)->index, 15);
  assert_order(p, "transformer_2,transformer,vae,odd");
  ck_assert_str_eq(hoist_pipeline_component(p, 1)->path, pth("transformer_2"));
  hoist_pipeline_close(p);
}
END_TEST

START_TEST(malformed_model_index) {
  tu_scratch_dir("plan_malformed", scratch, sizeof scratch);
  static const struct {
    const char *text;
    const char *needle;
  } cases[] = {
      {"{", "not valid JSON"},
      {"", "not valid JSON"},
      {"[\"transformer\"]", "not a JSON object"},
      {"\"x\"", "not a JSON object"},
      {"{\"vae\":[\"diffusers\",\"V\"]} x", "extra data"},
      {"{\"vae\":[\"diffusers\",\"V\xff\"]}", "UTF-8"},
      {"{\"vae\":[\"diffusers\",\"V\"],\"vae\":[\"diffusers\",\"W\"]}", "duplicate key 'vae'"},
      {"{\"_class_name\":\"P\",\"boundary_ratio\":0.5}", "names no component"},
      {"{\"../up\":[\"diffusers\",\"V\"]}", "../up"},
      {"{\"a/b\":[\"diffusers\",\"V\"]}", "a/b"},
      {"{\"..\":[\"diffusers\",\"V\"]}", "'..'"},
      {"{\"\":[\"diffusers\",\"V\"]}", "''"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text("model_index.json", cases[i].text);
    int rc = open_fail(scratch, NULL);
    const char *msg = hoist_last_error(NULL);
    ck_assert_msg(rc == HOIST_BAD_PIPELINE, "case %zu: %s (%s)", i, hoist_status_name(rc), msg);
    ck_assert_msg(strstr(msg, "model_index.json") != NULL && strstr(msg, cases[i].needle) != NULL,
                  "case %zu: '%s' lacks '%s'", i, msg, cases[i].needle);
  }
  /* A NUL byte inside. */
  tu_write_file(pth("model_index.json"), "{\"vae\":[\"d\",\"V\"]\0}", 18);
  ck_assert_int_eq(open_fail(scratch, NULL), HOIST_BAD_PIPELINE);
  /* model_index.json that is a folder. */
  unlink(pth("model_index.json"));
  mkdir_p("model_index.json");
  ck_assert_int_eq(open_fail(scratch, NULL), HOIST_BAD_PIPELINE);
  rmdir(pth("model_index.json"));
  /* No model_index.json and no weights. */
  write_text("readme.txt", "hi");
  ck_assert_int_eq(open_fail(scratch, NULL), HOIST_BAD_PIPELINE);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "no model_index.json"));
  /* Not there, not a folder. */
  ck_assert_int_eq(open_fail(pth("nope"), NULL), HOIST_NOT_FOUND);
  ck_assert_int_eq(open_fail(pth("readme.txt"), NULL), HOIST_BAD_PIPELINE);
  /* A bad safetensors header in a component: the reader's status, with the
   * file named. */
  write_text("model_index.json", "{\"vae\":[\"diffusers\",\"V\"]}");
  mkdir_p("vae");
  tu_write_safetensors(pth("vae/diffusion_pytorch_model.safetensors"), "{\"w\":", NULL, 0);
  int rc = open_fail(scratch, NULL);
  ck_assert_msg(rc <= -20 && rc > -50, "%s", hoist_status_name(rc));
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), pth("vae/diffusion_pytorch_model.safetensors")));
  /* Options of another size. */
  hoist_pipeline_options o = HOIST_PIPELINE_OPTIONS_INIT;
  o.struct_size = 1;
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(NULL, scratch, &o, &p), HOIST_INVALID_ARGUMENT);
  hoist_pipeline_close(NULL);
}
END_TEST

START_TEST(one_component_dir) {
  tu_scratch_dir("plan_single", scratch, sizeof scratch);
  mkdir_p("t5-small");
  write_st("t5-small/model.safetensors", 77);
  write_text("t5-small/config.json", "{\"architectures\":[\"T5EncoderModel\"],\"d_model\":8}");
  hoist_pipeline *p = open_ok(pth("t5-small/"), NULL);
  ck_assert_uint_eq(hoist_pipeline_component_count(p), 1);
  const hoist_component_info *c = hoist_pipeline_component(p, 0);
  ck_assert_str_eq(c->name, "t5-small");
  ck_assert_str_eq(c->load_name, "t5-small");
  ck_assert_str_eq(c->library, "transformers");
  ck_assert_str_eq(c->class_name, "T5EncoderModel");
  ck_assert_uint_eq(c->index, 0);
  ck_assert_uint_eq(c->position, 0);
  ck_assert_str_eq(c->path, pth("t5-small/"));
  ck_assert_uint_eq(c->inferred_bytes, 77);
  hoist_pipeline_close(p);

  mkdir_p("flux_dit");
  write_st("flux_dit/diffusion_pytorch_model.safetensors", 5);
  write_text("flux_dit/config.json",
             "{\"_class_name\":\"FluxTransformer2DModel\",\"_diffusers_version\":\"0.35.0\"}");
  p = open_ok(pth("flux_dit"), NULL);
  c = hoist_pipeline_component(p, 0);
  ck_assert_str_eq(c->name, "flux_dit");
  ck_assert_str_eq(c->library, "diffusers");
  ck_assert_str_eq(c->class_name, "FluxTransformer2DModel");
  hoist_pipeline_close(p);

  /* No config.json: labels unknown.  "." names the folder by its real path. */
  mkdir_p("bare");
  write_bytes("bare/weights.gguf", 9);
  p = open_ok(pth("bare/."), NULL);
  c = hoist_pipeline_component(p, 0);
  ck_assert_str_eq(c->name, "bare");
  ck_assert_ptr_null(c->library);
  ck_assert_ptr_null(c->class_name);
  ck_assert_uint_eq(c->inferred_bytes, 9);
  hoist_pipeline_close(p);
}
END_TEST

/* ---- The Flux-like pipeline of the test vectors */

/* The pipe/ folder of one vector set, against that set's expect.json. */
static void check_flux_pipe(const char *vectors) {
  char dir[4200], ej[4200];
  snprintf(dir, sizeof dir, "%s/pipe", vectors);
  snprintf(ej, sizeof ej, "%s/expect.json", vectors);
  size_t len;
  char *text = tu_read_file(ej, &len);
  cJSON *expect = cJSON_ParseWithLength(text, len);
  free(text);
  ck_assert_ptr_nonnull(expect);
  /* Expected per component folder: Σ payload_bytes, file and tensor counts. */
  static const char *const names[] = {"text_encoder", "text_encoder_2", "transformer", "vae"};
  uint64_t bytes[4] = {0};
  size_t nfiles[4] = {0}, ntensors[4] = {0};
  for (const cJSON *e = expect->child; e != NULL; e = e->next) {
    for (size_t k = 0; k < 4; k++) {
      char prefix[64];
      snprintf(prefix, sizeof prefix, "pipe/%s/", names[k]);
      if (strncmp(e->string, prefix, strlen(prefix)) != 0 || strchr(e->string + strlen(prefix), '/'))
        continue;
      bytes[k] += (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "payload_bytes"));
      nfiles[k]++;
      ntensors[k] += (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(e, "tensors"));
    }
  }
  cJSON_Delete(expect);
  hoist_pipeline *p = open_ok(dir, NULL);
  ck_assert_uint_eq(hoist_pipeline_component_count(p), 7);
  for (size_t k = 0; k < 4; k++) {
    const hoist_component_info *c = find(p, names[k]);
    ck_assert_int_eq(c->has_size, 1);
    ck_assert_uint_eq(c->inferred_bytes, bytes[k]);
    ck_assert_uint_eq(c->file_count, nfiles[k]);
    ck_assert_uint_eq(c->tensor_count, ntensors[k]);
  }
  /* Known sizes: descending.  Then those of unknown size (scheduler,
   * tokenizer, tokenizer_2: rank 10, folders missing) by variant priority
   * (tokenizer_2 is -2) and then index. */
  for (size_t i = 0; i + 1 < 4; i++)
    ck_assert_uint_ge(hoist_pipeline_ordered(p, i)->inferred_bytes,
                      hoist_pipeline_ordered(p, i + 1)->inferred_bytes);
  for (size_t i = 0; i < 4; i++) ck_assert_int_eq(hoist_pipeline_ordered(p, i)->has_size, 1);
  ck_assert_str_eq(hoist_pipeline_ordered(p, 4)->name, "tokenizer_2");
  ck_assert_str_eq(hoist_pipeline_ordered(p, 5)->name, "scheduler");
  ck_assert_str_eq(hoist_pipeline_ordered(p, 6)->name, "tokenizer");
  ck_assert_int_eq(find(p, "scheduler")->folder_missing, 1);
  ck_assert_str_eq(find(p, "text_encoder_2")->class_name, "T5EncoderModel");
  ck_assert_uint_eq(find(p, "scheduler")->index, 2);
  ck_assert_uint_eq(find(p, "vae")->index, 8);
  hoist_pipeline_close(p);
}

/* The generated vectors, and the extra set when present. */
START_TEST(vector_flux_pipe) {
  char vectors[4096];
  for (size_t set = 0; tu_vector_dir(set, vectors, sizeof vectors) != NULL; set++)
    check_flux_pipe(vectors);
}
END_TEST

/* ---- The CLI */

static int run_cli(const char *args, char **out) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s plan %s 2>%s", HOIST_CLI_PATH, args, pth("stderr.txt"));
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  ck_assert_ptr_nonnull(buf);
  size_t r;
  while ((r = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
    n += r;
    if (n + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      ck_assert_ptr_nonnull(buf);
    }
  }
  buf[n] = '\0';
  int st = pclose(f);
  *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(cli_json_and_exit_codes) {
  tu_scratch_dir("plan_cli", scratch, sizeof scratch);
  write_text("model_index.json",
             "{\"_class_name\":\"P\",\"scheduler\":[\"diffusers\",\"S\"],"
             "\"text_encoder_99999999999999999999999\":[\"transformers\",\"E\"],"
             "\"transformer\":[\"diffusers\",\"D\"],\"boundary_ratio\":0.875}");
  mkdir_p("transformer");
  write_st("transformer/diffusion_pytorch_model.safetensors", 32);
  char args[4608], *out = NULL;
  snprintf(args, sizeof args, "--json '%s'", scratch);
  ck_assert_int_eq(run_cli(args, &out), 0);
  cJSON *root = cJSON_Parse(out);
  ck_assert_msg(root != NULL, "not JSON: %s", out);
  ck_assert_int_eq(cJSON_GetArraySize(root), 3);
  ck_assert_str_eq(cJSON_GetObjectItem(root, "pipeline")->valuestring, scratch);
  const cJSON *comps = cJSON_GetObjectItem(root, "components");
  ck_assert_int_eq(cJSON_GetArraySize(comps), 3);
  static const char *const keys[] = {"name", "load_name", "library", "class", "index", "path",
                                     "inferred_bytes", "risk_rank", "variant_priority",
                                     "position"};
  for (const cJSON *c = comps->child; c != NULL; c = c->next) {
    ck_assert_int_eq(cJSON_GetArraySize(c), 10);
    size_t k = 0;
    for (const cJSON *f = c->child; f != NULL; f = f->next, k++) ck_assert_str_eq(f->string, keys[k]);
  }
  const cJSON *te = cJSON_GetArrayItem(comps, 1);
  ck_assert_str_eq(cJSON_GetObjectItem(te, "name")->valuestring,
                   "text_encoder_99999999999999999999999");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(te, "inferred_bytes")));
  ck_assert_int_eq(cJSON_GetObjectItem(te, "risk_rank")->valueint, 1);
  ck_assert_int_eq(cJSON_GetObjectItem(te, "index")->valueint, 2);
  ck_assert_ptr_nonnull(strstr(out, "\"variant_priority\":-99999999999999999999999"));
  ck_assert_ptr_nonnull(strstr(out, "\"inferred_bytes\":32"));
  ck_assert_ptr_nonnull(strstr(out, "\"order\":[\"transformer\","
                                    "\"text_encoder_99999999999999999999999\",\"scheduler\"]"));
  cJSON_Delete(root);
  free(out);
  /* The missing folders are reported on stderr. */
  size_t elen;
  char *err = tu_read_file(pth("stderr.txt"), &elen);
  ck_assert_ptr_nonnull(strstr(err, "scheduler"));
  ck_assert_ptr_nonnull(strstr(err, "missing"));
  free(err);

  /* Human form: the table in load order and the total. */
  snprintf(args, sizeof args, "--capacity 1K '%s'", scratch);
  ck_assert_int_eq(run_cli(args, &out), 0);
  ck_assert_ptr_nonnull(strstr(out, "transformer"));
  ck_assert_ptr_nonnull(strstr(out, "missing"));
  ck_assert_ptr_nonnull(strstr(out, "total: 32 B"));
  ck_assert_ptr_nonnull(strstr(out, "free of"));
  ck_assert((uintptr_t)strstr(out, "transformer") < (uintptr_t)strstr(out, "scheduler"));
  free(out);

  ck_assert_int_eq(run_cli("--help", &out), 0);
  ck_assert_ptr_nonnull(strstr(out, "usage: hoist plan"));
  free(out);
  ck_assert_int_eq(run_cli("", &out), 2);
  free(out);
  ck_assert_int_eq(run_cli("--bogus x", &out), 2);
  free(out);
  ck_assert_int_eq(run_cli("a b", &out), 2);
  free(out);
  ck_assert_int_eq(run_cli("--capacity 12Q x", &out), 2);
  free(out);
  snprintf(args, sizeof args, "'%s'", pth("nope"));
  ck_assert_int_eq(run_cli(args, &out), 3);
  free(out);
  write_text("model_index.json", "{nope");
  snprintf(args, sizeof args, "--json '%s'", scratch);
  ck_assert_int_eq(run_cli(args, &out), 3);
  ck_assert_str_eq(out, "");
  free(out);
  err = tu_read_file(pth("stderr.txt"), &elen);
  ck_assert_ptr_nonnull(strstr(err, "model_index.json"));
  free(err);
}
END_TEST

/* ---- Timing: 10 files, 3,000 tensors */

START_TEST(planning_is_fast) {
  tu_scratch_dir("plan_timing", scratch, sizeof scratch);
  write_text("model_index.json", "{\"transformer\":[\"diffusers\",\"D\"],"
                                 "\"text_encoder\":[\"transformers\",\"E\"]}");
  mkdir_p("transformer");
  mkdir_p("text_encoder");
  size_t hcap = 300 * 160 + 64;
  char *h = malloc(hcap);
  ck_assert_ptr_nonnull(h);
  for (int f = 0; f < 10; f++) {
    size_t n = 0;
    n += (size_t)snprintf(h + n, hcap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int t = 0; t < 300; t++)
      n += (size_t)snprintf(h + n, hcap - n,
                            ",\"model.layers.%d.block.%03d.weight\":{\"dtype\":\"BF16\","
                            "\"shape\":[4,2],\"data_offsets\":[%d,%d]}",
                            f, t, t * 16, t * 16 + 16);
    n += (size_t)snprintf(h + n, hcap - n, "}");
    char rel[128];
    snprintf(rel, sizeof rel, "%s/model-%05d-of-00010.safetensors",
             f < 7 ? "transformer" : "text_encoder", f + 1);
    tu_write_safetensors(pth(rel), h, NULL, 300 * 16);
  }
  free(h);
  double best = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    hoist_pipeline *p = open_ok(scratch, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    if (ms < best) best = ms;
    ck_assert_uint_eq(find(p, "transformer")->tensor_count + find(p, "text_encoder")->tensor_count,
                      3000);
    assert_order(p, "transformer,text_encoder");
    hoist_pipeline_close(p);
  }
  printf("plan timing: 10 files, 3000 tensors planned in %.2f ms (best of 5)\n", best);
  fflush(stdout);
  /* The target is well under 50 ms; the bound leaves room for sanitizers. */
  ck_assert_msg(best < 500.0, "planning took %.1f ms", best);
}
END_TEST

static Suite *plan_suite(void) {
  Suite *s = suite_create("plan");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, ref_unknown_sizes_rank_by_class);
  tcase_add_test(tc, ref_numbered_variants_first);
  tcase_add_test(tc, ref_weightless_rank_last);
  tcase_add_test(tc, ref_inferred_size_beats_rank);
  tcase_add_test(tc, ref_load_name_alias);
  tcase_add_test(tc, variant_priority_exact);
  tcase_add_test(tc, variant_priority_no_overflow);
  tcase_add_test(tc, sharded_index);
  tcase_add_test(tc, bad_indexes);
  tcase_add_test(tc, hf_cache_symlinks);
  tcase_add_test(tc, variants);
  tcase_add_test(tc, bin_fallback);
  tcase_add_test(tc, config_values_in_model_index);
  tcase_add_test(tc, malformed_model_index);
  tcase_add_test(tc, one_component_dir);
  tcase_add_test(tc, vector_flux_pipe);
  tcase_add_test(tc, cli_json_and_exit_codes);
  tcase_add_test(tc, planning_is_fast);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run_suite(plan_suite()); }
