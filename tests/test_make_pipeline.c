/* test_make_pipeline.c — the preset tables and the pipeline writer behind
 * `hoist make-pipeline`: published sizes at scale 1 (from the tables, no
 * writing), the scaling rule, shard layout at every scale, every preset
 * written at a tiny scale and read back with the strict reader
 * (hoist_file_open), index files, contents (non-zero, reproducible from
 * the seed), determinism, the error paths (non-empty dir, write failure
 * with cleanup), and links: --force never writes through a symbolic link
 * of any kind, anywhere (refused, with the tree and what the links point
 * to byte-identical afterwards), a link planted during the write is
 * harmless, a hard link keeps its old bytes, and a failed or refused
 * --force run leaves the old pipeline as it was. */
#include "pipeline_writer.h"
#include "presets.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <math.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TINY 0.001

/* ------------------------------------------------------------------------ */
/* Tables */

START_TEST(presets_listed_and_found) {
  ck_assert_uint_eq(hoist__preset_count(), 4);
  static const char *names[] = {"flux1-dev", "wan2.2-t2v-a14b", "qwen-image", "sd3.5-large"};
  for (size_t i = 0; i < 4; i++) {
    const hoist__preset *p = hoist__preset_find(names[i]);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->name, names[i]);
    /* model_index keys are sorted, as diffusers writes them */
    for (size_t k = 1; k < p->component_count; k++)
      ck_assert_int_lt(strcmp(p->components[k - 1].name, p->components[k].name), 0);
    for (size_t k = 0; k < p->component_count; k++) {
      const hoist__preset_component *c = &p->components[k];
      if (c->kind != HOIST_PRESET_WEIGHTS) continue;
      cJSON *cfg = cJSON_Parse(c->config_json);
      ck_assert_msg(cfg != NULL, "%s/%s: config.json is not JSON", p->name, c->name);
      cJSON_Delete(cfg);
    }
  }
  ck_assert_ptr_null(hoist__preset_find("flux1-schnell"));
  ck_assert_ptr_null(hoist__preset_at(4));
  ck_assert(!hoist__preset_scale_valid(0.0));
  ck_assert(!hoist__preset_scale_valid(1.5));
  ck_assert(!hoist__preset_scale_valid(NAN));
  ck_assert(hoist__preset_scale_valid(1.0));
}
END_TEST

/* Published component sizes, written here independently of the tables'
 * own published_bytes field (bytes; the models' published sizes). */
static const struct {
  const char *preset, *component;
  double bytes;
  uint32_t shards;
  hoist_dtype dtype;
} published[] = {
    {"flux1-dev", "transformer", 23.80e9, 3, HOIST_DTYPE_BF16},
    {"flux1-dev", "text_encoder_2", 9.52e9, 2, HOIST_DTYPE_BF16},
    {"flux1-dev", "text_encoder", 246e6, 1, HOIST_DTYPE_BF16},
    {"flux1-dev", "vae", 168e6, 1, HOIST_DTYPE_BF16},
    {"wan2.2-t2v-a14b", "transformer", 28.6e9, 12, HOIST_DTYPE_BF16},
    {"wan2.2-t2v-a14b", "transformer_2", 28.6e9, 12, HOIST_DTYPE_BF16},
    {"wan2.2-t2v-a14b", "text_encoder", 11.4e9, 3, HOIST_DTYPE_BF16},
    {"wan2.2-t2v-a14b", "vae", 0.508e9, 1, HOIST_DTYPE_F32},
    {"qwen-image", "transformer", 40.9e9, 9, HOIST_DTYPE_BF16},
    {"qwen-image", "text_encoder", 16.6e9, 4, HOIST_DTYPE_BF16},
    {"qwen-image", "vae", 0.254e9, 1, HOIST_DTYPE_BF16},
    {"sd3.5-large", "transformer", 16.3e9, 2, HOIST_DTYPE_BF16},
    {"sd3.5-large", "text_encoder", 0.247e9, 1, HOIST_DTYPE_F16},
    {"sd3.5-large", "text_encoder_2", 1.39e9, 1, HOIST_DTYPE_F16},
    {"sd3.5-large", "text_encoder_3", 9.52e9, 2, HOIST_DTYPE_F16},
    {"sd3.5-large", "vae", 0.168e9, 1, HOIST_DTYPE_F16},
};

static const hoist__preset_component *find_component(const hoist__preset *p, const char *name) {
  for (size_t k = 0; k < p->component_count; k++)
    if (strcmp(p->components[k].name, name) == 0) return &p->components[k];
  return NULL;
}

START_TEST(totals_match_published_sizes) {
  const size_t n = sizeof published / sizeof published[0];
  size_t weights = 0;
  for (size_t i = 0; i < hoist__preset_count(); i++) {
    const hoist__preset *p = hoist__preset_at(i);
    for (size_t k = 0; k < p->component_count; k++)
      weights += p->components[k].kind == HOIST_PRESET_WEIGHTS;
  }
  ck_assert_uint_eq(weights, n); /* every weight component is covered */
  for (size_t i = 0; i < n; i++) {
    const hoist__preset *p = hoist__preset_find(published[i].preset);
    ck_assert_ptr_nonnull(p);
    const hoist__preset_component *c = find_component(p, published[i].component);
    ck_assert_ptr_nonnull(c);
    uint64_t bytes = 0, count = 0;
    ck_assert_int_eq(hoist__preset_component_totals(c, 1.0, &bytes, &count), HOIST_OK);
    double err = fabs((double)bytes - published[i].bytes) / published[i].bytes;
    ck_assert_msg(err < 0.01, "%s/%s: %llu bytes, published %.0f (%.2f %% off)", p->name, c->name,
                  (unsigned long long)bytes, published[i].bytes, 100 * err);
    ck_assert_msg(fabs((double)bytes - (double)c->published_bytes) < 0.01 * (double)c->published_bytes,
                  "%s/%s against its table entry", p->name, c->name);
    ck_assert_uint_eq(c->shards, published[i].shards);
    ck_assert_int_eq(c->dtype, published[i].dtype);
    ck_assert_uint_gt(count, 100);
  }
  /* The two checkpoints whose index total_size is known to the byte. */
  uint64_t b;
  hoist__preset_component_totals(find_component(hoist__preset_find("flux1-dev"), "transformer"), 1.0, &b,
                                NULL);
  ck_assert_uint_eq(b, 23802816640ull);
  hoist__preset_component_totals(find_component(hoist__preset_find("flux1-dev"), "text_encoder_2"), 1.0,
                                &b, NULL);
  ck_assert_uint_eq(b, 9524621312ull);
}
END_TEST

typedef struct probe {
  const char *want;
  int found;
  uint32_t ndim;
  uint64_t shape[HOIST_PRESET_MAX_DIMS];
  hoist_dtype dtype;
  size_t count;
  /* names seen, to check uniqueness */
  char **names;
  size_t nnames, cap;
} probe;

static int probe_fn(void *user, const hoist__preset_tensor *t) {
  probe *pr = user;
  pr->count++;
  if (pr->want && strcmp(t->name, pr->want) == 0) {
    pr->found = 1;
    pr->ndim = t->ndim;
    pr->dtype = t->dtype;
    memcpy(pr->shape, t->shape, t->ndim * sizeof(uint64_t));
  }
  if (pr->cap) {
    if (pr->nnames == pr->cap) {
      pr->cap *= 2;
      pr->names = realloc(pr->names, pr->cap * sizeof(char *));
      ck_assert_ptr_nonnull(pr->names);
    }
    pr->names[pr->nnames++] = strdup(t->name);
  }
  return 0;
}

static void expect_shape(const char *preset, const char *comp, double scale, const char *name,
                         uint32_t ndim, const uint64_t *shape) {
  probe pr = {.want = name};
  const hoist__preset_component *c = find_component(hoist__preset_find(preset), comp);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(hoist__preset_tensors(c, scale, probe_fn, &pr), 0);
  ck_assert_msg(pr.found, "%s/%s: no tensor %s", preset, comp, name);
  ck_assert_uint_eq(pr.ndim, ndim);
  for (uint32_t i = 0; i < ndim; i++)
    ck_assert_msg(pr.shape[i] == shape[i], "%s dim %u: %llu, want %llu", name, i,
                  (unsigned long long)pr.shape[i], (unsigned long long)shape[i]);
}

START_TEST(real_names_and_shapes) {
  expect_shape("flux1-dev", "transformer", 1.0, "transformer_blocks.18.attn.to_q.weight", 2,
               (uint64_t[]){3072, 3072});
  expect_shape("flux1-dev", "transformer", 1.0, "single_transformer_blocks.37.proj_out.weight", 2,
               (uint64_t[]){3072, 15360});
  expect_shape("flux1-dev", "text_encoder_2", 1.0, "encoder.block.23.layer.0.SelfAttention.q.weight",
               2, (uint64_t[]){4096, 4096});
  expect_shape("flux1-dev", "text_encoder_2", 1.0, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
               2, (uint64_t[]){10240, 4096});
  expect_shape("flux1-dev", "text_encoder_2", 1.0, "shared.weight", 2, (uint64_t[]){32128, 4096});
  expect_shape("wan2.2-t2v-a14b", "transformer", 1.0, "blocks.39.ffn.net.0.proj.weight", 2,
               (uint64_t[]){13824, 5120});
  expect_shape("wan2.2-t2v-a14b", "text_encoder", 1.0, "shared.weight", 2, (uint64_t[]){256384, 4096});
  expect_shape("wan2.2-t2v-a14b", "vae", 1.0, "decoder.conv_out.weight", 5, (uint64_t[]){3, 96, 3, 3, 3});
  expect_shape("qwen-image", "transformer", 1.0, "transformer_blocks.59.img_mod.1.weight", 2,
               (uint64_t[]){18432, 3072});
  expect_shape("qwen-image", "text_encoder", 1.0, "model.layers.27.self_attn.k_proj.weight", 2,
               (uint64_t[]){512, 3584});
  expect_shape("sd3.5-large", "transformer", 1.0, "transformer_blocks.37.attn.to_q.weight", 2,
               (uint64_t[]){2432, 2432});
  expect_shape("sd3.5-large", "text_encoder_2", 1.0, "text_model.encoder.layers.31.mlp.fc1.weight", 2,
               (uint64_t[]){5120, 1280});
  /* Scaling rule: largest dim * F rounded, min 1; ranks and others kept. */
  expect_shape("flux1-dev", "transformer", TINY, "transformer_blocks.0.attn.to_q.weight", 2,
               (uint64_t[]){3, 3072});
  expect_shape("flux1-dev", "transformer", TINY, "transformer_blocks.0.attn.to_q.bias", 1,
               (uint64_t[]){3});
  expect_shape("flux1-dev", "transformer", TINY, "transformer_blocks.0.attn.norm_q.weight", 1,
               (uint64_t[]){1});
  expect_shape("flux1-dev", "transformer", 0.5, "single_transformer_blocks.0.proj_out.weight", 2,
               (uint64_t[]){3072, 7680});
  expect_shape("wan2.2-t2v-a14b", "vae", 0.01, "decoder.conv_out.weight", 5, (uint64_t[]){3, 1, 3, 3, 3});
  uint64_t s[3] = {7, 7, 2};
  hoist__preset_scale_shape(3, s, 0.5); /* ties: the first largest dim */
  ck_assert_uint_eq(s[0], 4);
  ck_assert_uint_eq(s[1], 7);
  ck_assert_uint_eq(s[2], 2);
}
END_TEST

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
  uint64_t before, total;
  uint32_t shards, last, *count;
  int monotone;
} shard_walk_state;

static int shard_walk(void *user, const hoist__preset_tensor *t) {
  shard_walk_state *w = user;
  uint32_t s = hoist__preset_shard_of(w->before, t->nbytes, w->total, w->shards);
  if (s < w->last) w->monotone = 0;
  w->last = s;
  w->count[s]++;
  w->before += t->nbytes;
  return 0;
}

/* Floating weights are finite normal numbers of a model's magnitude: at
 * most 1/sqrt(fan-in) (1 for biases and norms), at least a 2^-7 of that,
 * with both signs, in every dtype a preset or --dtype writes; at any
 * offset the bytes are the same stream. */
typedef struct value_case {
  hoist_dtype dtype;
  uint32_t ndim;
  uint64_t shape[4];
} value_case;

static double element_at(hoist_dtype d, const uint8_t *p, int *finite) {
  if (d == HOIST_DTYPE_F32 || d == HOIST_DTYPE_BF16) {
    uint32_t bits = 0;
    if (d == HOIST_DTYPE_F32) memcpy(&bits, p, 4);
    else bits = (uint32_t)(p[0] | (p[1] << 8)) << 16;
    uint32_t e = (bits >> 23) & 0xff;
    *finite = e != 0 && e != 0xff;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
  unsigned e = (h >> 10) & 0x1f;
  *finite = e != 0 && e != 0x1f;
  double m = 1.0 + (double)(h & 0x3ff) / 1024.0;
  return ((h & 0x8000) ? -1.0 : 1.0) * ldexp(m, (int)e - 15);
}

START_TEST(floating_values_finite_and_scaled) {
  static const value_case cases[] = {
      {HOIST_DTYPE_BF16, 2, {3072, 3072}}, {HOIST_DTYPE_BF16, 1, {3072}},
      {HOIST_DTYPE_F16, 2, {10240, 4096}}, {HOIST_DTYPE_F16, 3, {1, 36864, 2432}},
      {HOIST_DTYPE_F32, 4, {128, 256, 3, 3}}, {HOIST_DTYPE_F32, 0, {0}},
      {HOIST_DTYPE_BF16, 2, {1, 1}},
  };
  const size_t n = 4096;
  uint8_t *buf = malloc(n), *part = malloc(n);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const value_case *c = &cases[k];
    double fan_in = 1.0;
    for (uint32_t i = 1; i < c->ndim; i++) fan_in *= (double)c->shape[i];
    double limit = c->ndim >= 2 ? 1.0 / sqrt(fan_in) : 1.0;
    /* F16 holds normal numbers down to 2^-14 only: its floor is [2^-11, 2^-7). */
    double upper = c->dtype == HOIST_DTYPE_F16 ? fmax(limit, 0x1p-7) : limit;
    hoist__writer_values v = hoist__writer_values_for(c->dtype, c->ndim, c->shape);
    hoist__writer_fill(7 + k, v, 0, buf, n);
    size_t es = hoist_dtype_bits(c->dtype) / 8, negative = 0;
    for (size_t i = 0; i < n; i += es) {
      int finite;
      double x = element_at(c->dtype, buf + i, &finite);
      ck_assert_msg(finite, "case %zu element %zu: not a finite normal number", k, i / es);
      ck_assert_msg(fabs(x) < upper && fabs(x) >= limit / 256.0,
                    "case %zu element %zu: %g outside [%g/256, %g)", k, i / es, x, limit, upper);
      negative += x < 0;
    }
    ck_assert_uint_gt(negative, n / es / 4);
    ck_assert_uint_lt(negative, 3 * n / es / 4);
    /* Any offset gives the same bytes as the whole stream. */
    hoist__writer_fill(7 + k, v, 13, part, n - 13);
    ck_assert(memcmp(part, buf + 13, n - 13) == 0);
  }
  /* Integer dtypes keep every random bit. */
  uint64_t shape[2] = {64, 64};
  hoist__writer_values raw = hoist__writer_values_for(HOIST_DTYPE_I32, 2, shape);
  ck_assert(raw.keep == ~0ull && raw.set == 0);
  free(buf);
  free(part);
}
END_TEST

START_TEST(names_unique_and_shards_nonempty_at_every_scale) {
  static const double scales[] = {1.0, 0.25, 0.01, TINY, 1e-5};
  for (size_t i = 0; i < hoist__preset_count(); i++) {
    const hoist__preset *p = hoist__preset_at(i);
    for (size_t k = 0; k < p->component_count; k++) {
      const hoist__preset_component *c = &p->components[k];
      if (c->kind != HOIST_PRESET_WEIGHTS) continue;
      probe pr = {.cap = 64};
      pr.names = malloc(pr.cap * sizeof(char *));
      hoist__preset_tensors(c, 1.0, probe_fn, &pr);
      qsort(pr.names, pr.nnames, sizeof(char *), cmp_str);
      for (size_t j = 1; j < pr.nnames; j++)
        ck_assert_msg(strcmp(pr.names[j - 1], pr.names[j]) != 0, "%s/%s: %s twice", p->name, c->name,
                      pr.names[j]);
      for (size_t j = 0; j < pr.nnames; j++) free(pr.names[j]);
      free(pr.names);
      for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        uint64_t total, n;
        ck_assert_int_eq(hoist__preset_component_totals(c, scales[si], &total, &n), HOIST_OK);
        ck_assert_uint_eq(n, pr.nnames); /* names and ranks kept at every scale */
        /* walk again, assigning shards as the writer does */
        uint32_t counts[64] = {0};
        shard_walk_state wk = {0, total, c->shards, 0, counts, 1};
        hoist__preset_tensors(c, scales[si], shard_walk, &wk);
        ck_assert_msg(wk.monotone, "%s/%s: shards are not runs", p->name, c->name);
        for (uint32_t s = 0; s < c->shards; s++)
          ck_assert_msg(counts[s] > 0, "%s/%s at scale %g: shard %u empty", p->name, c->name,
                        scales[si], s + 1);
        if (scales[si] < 1.0) {
          uint64_t full;
          hoist__preset_component_totals(c, 1.0, &full, NULL);
          ck_assert_uint_lt(total, full);
        }
      }
    }
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Writing */

static char *path2(const char *a, const char *b) {
  char *s = malloc(strlen(a) + strlen(b) + 2);
  sprintf(s, "%s/%s", a, b);
  return s;
}

typedef struct check_ctx {
  const char *dir;
  const hoist__preset_component *c;
  hoist_file **files; /* one per shard */
  cJSON *index;       /* weight_map or NULL */
  uint64_t seed;
  size_t seen;
} check_ctx;

static int check_tensor(void *user, const hoist__preset_tensor *t) {
  check_ctx *x = user;
  const hoist_tensor_info *info = NULL;
  uint32_t where = 0;
  for (uint32_t s = 0; s < x->c->shards; s++) {
    const hoist_tensor_info *i = hoist_file_find(x->files[s], t->name);
    if (i) {
      ck_assert_msg(info == NULL, "%s in two shards", t->name);
      info = i;
      where = s;
    }
  }
  ck_assert_msg(info != NULL, "%s/%s: not in any shard", x->c->name, t->name);
  ck_assert_int_eq(info->dtype, t->dtype);
  ck_assert_uint_eq(info->ndim, t->ndim);
  for (uint32_t d = 0; d < t->ndim; d++) ck_assert_uint_eq(info->shape[d], t->shape[d]);
  ck_assert_uint_eq(info->nbytes, t->nbytes);
  if (x->index) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(x->index, t->name);
    ck_assert_msg(cJSON_IsString(e), "%s: not in the index", t->name);
    char want[128];
    hoist__preset_shard_name(x->c, where, want, sizeof want);
    ck_assert_str_eq(e->valuestring, want);
  }
  /* Contents: non-zero and exactly the seeded stream. */
  uint8_t *got = malloc(t->nbytes), *exp = malloc(t->nbytes);
  ck_assert_int_eq(hoist_file_read(x->files[where], hoist_file_data_offset(x->files[where]) + info->begin,
                                   got, t->nbytes),
                   HOIST_OK);
  hoist__writer_fill(hoist__writer_tensor_key(x->seed, x->c->name, t->name),
                     hoist__writer_values_for(t->dtype, t->ndim, t->shape), 0, exp, t->nbytes);
  ck_assert_msg(memcmp(got, exp, t->nbytes) == 0, "%s: bytes differ from the seeded stream", t->name);
  int nonzero = 0;
  for (uint64_t i = 0; i < t->nbytes && !nonzero; i++) nonzero = got[i] != 0;
  ck_assert_msg(nonzero, "%s: all zeros", t->name);
  free(got);
  free(exp);
  x->seen++;
  return 0;
}

static void check_written(const hoist__preset *p, const char *dir, uint64_t seed,
                          const hoist__write_result *r) {
  char *mi = path2(dir, "model_index.json");
  size_t len;
  char *text = tu_read_file(mi, &len);
  cJSON *root = cJSON_ParseWithLength(text, len);
  ck_assert_ptr_nonnull(root);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "_class_name")->valuestring, p->class_name);
  ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "_diffusers_version")));
  ck_assert_uint_eq(r->count, p->component_count);
  uint64_t total = 0;
  for (size_t k = 0; k < p->component_count; k++) {
    const hoist__preset_component *c = &p->components[k];
    cJSON *pair = cJSON_GetObjectItemCaseSensitive(root, c->name);
    ck_assert_int_eq(cJSON_GetArraySize(pair), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(pair, 0)->valuestring, c->library);
    ck_assert_str_eq(cJSON_GetArrayItem(pair, 1)->valuestring, c->class_name);
    ck_assert_str_eq(r->components[k].name, c->name);
    for (size_t f = 0; f < r->components[k].file_count; f++) {
      char *fp = path2(dir, r->components[k].files[f]);
      struct stat st;
      ck_assert_msg(stat(fp, &st) == 0, "%s missing", fp);
      free(fp);
    }
    if (c->kind != HOIST_PRESET_WEIGHTS) continue;
    check_ctx x = {dir, c, calloc(c->shards, sizeof(hoist_file *)), NULL, seed, 0};
    char name[128], rel[256];
    for (uint32_t s = 0; s < c->shards; s++) {
      hoist__preset_shard_name(c, s, name, sizeof name);
      snprintf(rel, sizeof rel, "%s/%s", c->name, name);
      char *fp = path2(dir, rel);
      int rc = hoist_file_open(NULL, fp, &x.files[s]);
      ck_assert_msg(rc == HOIST_OK, "%s: %s", fp, hoist_last_error(NULL));
      ck_assert_uint_eq(hoist_file_header_bytes(x.files[s]) % 8, 0);
      ck_assert_int_eq(hoist_file_has_metadata(x.files[s]), 1);
      ck_assert_str_eq(hoist_file_metadata_key(x.files[s], 0), "format");
      ck_assert_str_eq(hoist_file_metadata_value(x.files[s], 0), "pt");
      ck_assert_uint_gt(hoist_file_tensor_count(x.files[s]), 0);
      /* safetensors' own order: offsets ascending, names ascending */
      for (size_t t = 1; t < hoist_file_tensor_count(x.files[s]); t++)
        ck_assert_int_lt(strcmp(hoist_file_tensor(x.files[s], t - 1)->name,
                                hoist_file_tensor(x.files[s], t)->name),
                         0);
      free(fp);
    }
    cJSON *iroot = NULL;
    if (c->shards > 1) {
      hoist__preset_index_name(c, name, sizeof name);
      snprintf(rel, sizeof rel, "%s/%s", c->name, name);
      char *ip = path2(dir, rel);
      size_t ilen;
      char *itext = tu_read_file(ip, &ilen);
      iroot = cJSON_ParseWithLength(itext, ilen);
      ck_assert_ptr_nonnull(iroot);
      x.index = cJSON_GetObjectItemCaseSensitive(iroot, "weight_map");
      cJSON *ts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(iroot, "metadata"),
                                                  "total_size");
      ck_assert_uint_eq((uint64_t)ts->valuedouble, r->components[k].bytes);
      free(itext);
      free(ip);
    } else {
      hoist__preset_index_name(c, name, sizeof name);
      snprintf(rel, sizeof rel, "%s/%s", c->name, name);
      char *ip = path2(dir, rel);
      struct stat st;
      ck_assert_msg(stat(ip, &st) != 0, "%s: single-file component has an index", ip);
      free(ip);
    }
    ck_assert_int_eq(hoist__preset_tensors(c, TINY, check_tensor, &x), 0);
    size_t in_files = 0;
    for (uint32_t s = 0; s < c->shards; s++) in_files += hoist_file_tensor_count(x.files[s]);
    ck_assert_uint_eq(in_files, x.seen); /* nothing extra in the files */
    if (x.index) {
      /* every index entry names a distinct tensor the tables know */
      ck_assert_int_eq(cJSON_GetArraySize(x.index), (int)x.seen);
      size_t n = 0;
      char **names = malloc(x.seen * sizeof(char *));
      for (cJSON *e = x.index->child; e; e = e->next) names[n++] = e->string;
      qsort(names, n, sizeof(char *), cmp_str);
      for (size_t i = 1; i < n; i++) ck_assert_str_ne(names[i - 1], names[i]);
      free(names);
    }
    uint64_t cb;
    hoist__preset_component_totals(c, TINY, &cb, NULL);
    ck_assert_uint_eq(cb, r->components[k].bytes);
    total += cb;
    cJSON_Delete(iroot);
    for (uint32_t s = 0; s < c->shards; s++) hoist_file_close(x.files[s]);
    free(x.files);
  }
  ck_assert_uint_eq(total, r->total_bytes);
  cJSON_Delete(root);
  free(text);
  free(mi);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes a scratch tree once a test has passed (the files run to ~200 MB). */
static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

START_TEST(write_each_preset_tiny) {
  const hoist__preset *p = hoist__preset_at((size_t)_i);
  char buf[512];
  const char *scratch = tu_scratch_dir(p->name, buf, sizeof buf);
  char *dir = path2(scratch, "pipe");
  hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
  o.scale = TINY;
  o.seed = 1234;
  o.threads = 3;
  hoist__write_result r;
  int rc = hoist__pipeline_write(p, dir, &o, &r);
  ck_assert_msg(rc == HOIST_OK, "%s: %s", p->name, hoist_last_error(NULL));
  check_written(p, dir, o.seed, &r);
  /* the extra model_index values of the preset (Wan2.2's boundary_ratio) */
  if (strcmp(p->name, "wan2.2-t2v-a14b") == 0) {
    char *mi = path2(dir, "model_index.json");
    size_t len;
    char *text = tu_read_file(mi, &len);
    cJSON *root = cJSON_ParseWithLength(text, len);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(root, "boundary_ratio")->valuedouble, 0.875);
    cJSON_Delete(root);
    free(text);
    free(mi);
  }
  hoist__write_result_free(&r);
  rm_tree(scratch);
  free(dir);
}
END_TEST

static int same_file(const char *a, const char *b) {
  size_t la, lb;
  void *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
  int same = la == lb && memcmp(x, y, la) == 0;
  free(x);
  free(y);
  return same;
}

START_TEST(deterministic_by_seed) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_seed", buf, sizeof buf);
  const hoist__preset *p = hoist__preset_find("flux1-dev");
  const char *sub[3] = {"a", "b", "c"};
  uint64_t seeds[3] = {7, 7, 8};
  uint32_t threads[3] = {1, 4, 2};
  for (int i = 0; i < 3; i++) {
    char *dir = path2(scratch, sub[i]);
    hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
    o.scale = 0.0005;
    o.seed = seeds[i];
    o.threads = threads[i];
    hoist__write_result r;
    ck_assert_int_eq(hoist__pipeline_write(p, dir, &o, &r), HOIST_OK);
    hoist__write_result_free(&r);
    free(dir);
  }
  static const char *files[] = {"transformer/diffusion_pytorch_model-00002-of-00003.safetensors",
                                "text_encoder_2/model-00001-of-00002.safetensors",
                                "vae/diffusion_pytorch_model.safetensors",
                                "transformer/diffusion_pytorch_model.safetensors.index.json"};
  for (size_t f = 0; f < 4; f++) {
    char rel[256];
    snprintf(rel, sizeof rel, "a/%s", files[f]);
    char *a = path2(scratch, rel);
    snprintf(rel, sizeof rel, "b/%s", files[f]);
    char *b = path2(scratch, rel);
    snprintf(rel, sizeof rel, "c/%s", files[f]);
    char *c = path2(scratch, rel);
    ck_assert_msg(same_file(a, b), "%s: same seed, different bytes", files[f]);
    if (f < 3) ck_assert_msg(!same_file(a, c), "%s: other seed, same bytes", files[f]);
    free(a);
    free(b);
    free(c);
  }
  /* the two Wan experts share names but not contents */
  ck_assert_uint_ne(hoist__writer_tensor_key(0, "transformer", "proj_out.weight"),
                    hoist__writer_tensor_key(0, "transformer_2", "proj_out.weight"));
  rm_tree(scratch);
}
END_TEST

START_TEST(refuses_non_empty_dir_and_bad_options) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_busy", buf, sizeof buf);
  char *junk = path2(scratch, "keep.txt");
  tu_write_file(junk, "x", 1);
  const hoist__preset *p = hoist__preset_find("sd3.5-large");
  hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
  o.scale = TINY;
  hoist__write_result r;
  ck_assert_int_eq(hoist__pipeline_write(p, scratch, &o, &r), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "not empty"));
  o.force = 1;
  ck_assert_int_eq(hoist__pipeline_write(p, scratch, &o, &r), HOIST_OK);
  hoist__write_result_free(&r);
  struct stat st;
  ck_assert_int_eq(stat(junk, &st), 0); /* --force never deletes other files */
  o.scale = 0.0;
  ck_assert_int_eq(hoist__pipeline_write(p, scratch, &o, &r), HOIST_INVALID_ARGUMENT);
  o.scale = TINY;
  o.threads = 1000;
  ck_assert_int_eq(hoist__pipeline_write(p, scratch, &o, &r), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist__pipeline_write(p, junk, &o, &r), HOIST_INVALID_ARGUMENT);
  free(junk);
}
END_TEST

static size_t count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

START_TEST(write_failure_names_file_and_cleans_up) {
  /* A file-size limit makes pwrite fail (EFBIG) past 1 MiB: the same path
   * as a full disk.  Check forks each test, so the limit stays here. */
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_enospc", buf, sizeof buf);
  char *dir = path2(scratch, "pipe");
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {1u << 20, 1u << 20};
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
  o.scale = 0.01; /* shards of ~80 MB */
  o.threads = 2;
  hoist__write_result r;
  int rc = hoist__pipeline_write(hoist__preset_find("flux1-dev"), dir, &o, &r);
  ck_assert_int_eq(rc, HOIST_IO);
  const char *msg = hoist_last_error(NULL);
  ck_assert_msg(strstr(msg, ".safetensors") != NULL, "message names no file: %s", msg);
  ck_assert_msg(strstr(msg, "large") != NULL || strstr(msg, "space") != NULL, "no cause: %s", msg);
  struct stat st;
  ck_assert_msg(stat(dir, &st) != 0, "%s still exists after a failed write", dir);
  ck_assert_uint_eq(count_entries(scratch), 0);
  free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Links */

#define LINK_SCALE 0.0005 /* flux1-dev in ~18 MB */

static int write_flux(const char *dir, int force, uint64_t seed) {
  hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
  o.scale = LINK_SCALE;
  o.seed = seed;
  o.threads = 2;
  o.force = force;
  hoist__write_result r;
  int rc = hoist__pipeline_write(hoist__preset_find("flux1-dev"), dir, &o, &r);
  if (rc == HOIST_OK) hoist__write_result_free(&r);
  return rc;
}

/* A listing of a tree that changes when anything in it does: every
 * entry's path, type, and size and content hash (a link: its target),
 * sorted.  nftw has no user pointer, hence the statics. */
static size_t snap_root_len;
static char **snap_lines;
static size_t snap_n, snap_cap;

static int snap_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)flag;
  (void)ftw;
  char what[4200];
  if (S_ISLNK(st->st_mode)) {
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target - 1);
    ck_assert(n >= 0);
    target[n] = '\0';
    snprintf(what, sizeof what, "link -> %s", target);
  } else if (S_ISREG(st->st_mode)) {
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    free(b);
    snprintf(what, sizeof what, "file %zu %016llx", len, (unsigned long long)h);
  } else {
    snprintf(what, sizeof what, "%s", S_ISDIR(st->st_mode) ? "folder" : "other");
  }
  if (snap_n == snap_cap) {
    snap_cap = snap_cap ? 2 * snap_cap : 64;
    snap_lines = realloc(snap_lines, snap_cap * sizeof *snap_lines);
    ck_assert_ptr_nonnull(snap_lines);
  }
  size_t n = strlen(path) + strlen(what) + 3;
  snap_lines[snap_n] = malloc(n);
  snprintf(snap_lines[snap_n++], n, "%s %s\n", path + snap_root_len, what);
  return 0;
}

static char *snapshot(const char *dir) {
  snap_root_len = strlen(dir);
  snap_n = 0;
  ck_assert_int_eq(nftw(dir, snap_entry, 16, FTW_PHYS), 0);
  qsort(snap_lines, snap_n, sizeof *snap_lines, cmp_str);
  size_t total = 1;
  for (size_t i = 0; i < snap_n; i++) total += strlen(snap_lines[i]);
  char *all = malloc(total), *o = all;
  for (size_t i = 0; i < snap_n; i++) {
    size_t k = strlen(snap_lines[i]);
    memcpy(o, snap_lines[i], k);
    o += k;
    free(snap_lines[i]);
  }
  *o = '\0';
  return all;
}

static void expect_same_tree(const char *dir, const char *before) {
  char *after = snapshot(dir);
  ck_assert_msg(strcmp(after, before) == 0, "%s changed:\n--- before\n%s--- after\n%s", dir, before, after);
  free(after);
}

static int no_hidden_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  ck_assert_msg(path[ftw->base] != '.' || ftw->level == 0, "left behind: %s", path);
  return 0;
}

/* No temporary (".NAME.hoist-*") is left anywhere under dir. */
static void expect_no_temporaries(const char *dir) { ck_assert_int_eq(nftw(dir, no_hidden_entry, 16, FTW_PHYS), 0); }

/* Every tensor of the file at path is the stream of seed for component. */
static void expect_seeded(const char *path, const char *component, uint64_t seed) {
  struct stat st;
  ck_assert_int_eq(lstat(path, &st), 0);
  ck_assert_msg(S_ISREG(st.st_mode), "%s is not a regular file", path);
  hoist_file *f = NULL;
  ck_assert_msg(hoist_file_open(NULL, path, &f) == HOIST_OK, "%s: %s", path, hoist_last_error(NULL));
  ck_assert_uint_gt(hoist_file_tensor_count(f), 0);
  for (size_t t = 0; t < hoist_file_tensor_count(f); t++) {
    const hoist_tensor_info *ti = hoist_file_tensor(f, t);
    uint8_t *got = malloc(ti->nbytes + 1), *want = malloc(ti->nbytes + 1);
    ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + ti->begin, got, ti->nbytes), HOIST_OK);
    hoist__writer_fill(hoist__writer_tensor_key(seed, component, ti->name),
                       hoist__writer_values_for(ti->dtype, ti->ndim, ti->shape), 0, want, ti->nbytes);
    ck_assert_msg(memcmp(got, want, ti->nbytes) == 0, "%s: %s is not seed %llu's", path, ti->name,
                  (unsigned long long)seed);
    free(got);
    free(want);
  }
  hoist_file_close(f);
}

/* scratch/outside/file.bin (random bytes) and scratch/outside/dir/keep.txt:
 * what the links point to. */
static char *make_outside(const char *scratch) {
  char *out = path2(scratch, "outside");
  ck_assert_int_eq(mkdir(out, 0755), 0);
  char *file = path2(out, "file.bin"), *dir = path2(out, "dir");
  uint8_t bytes[4096];
  hoist__writer_fill(99, HOIST_WRITER_RAW_BITS, 0, bytes, sizeof bytes);
  tu_write_file(file, bytes, sizeof bytes);
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  char *keep = path2(dir, "keep.txt");
  tu_write_file(keep, "keep\n", 5);
  free(keep);
  free(file);
  free(dir);
  return out;
}

/* Descriptors open in this process: a failed run must close all it made. */
static size_t open_fds(void) { return count_entries("/proc/self/fd"); }

enum { TO_FILE, TO_FOLDER, DANGLING, LOOP };

/* Every kind of name the writer writes, each made every kind of link. */
static const struct {
  const char *at;
  int kind;
} link_cases[] = {
    {"text_encoder/model.safetensors", TO_FILE},
    {"transformer/diffusion_pytorch_model-00002-of-00003.safetensors", TO_FILE},
    {"transformer/diffusion_pytorch_model.safetensors.index.json", TO_FILE},
    {"vae/config.json", TO_FILE},
    {"tokenizer/tokenizer_config.json", TO_FILE},
    {"model_index.json", TO_FILE},
    {"text_encoder_2", TO_FOLDER},
    {"scheduler", TO_FOLDER},
    {"text_encoder/config.json", TO_FOLDER},
    {"vae/diffusion_pytorch_model.safetensors", DANGLING},
    {"transformer", DANGLING},
    {"model_index.json", DANGLING},
    {"tokenizer_2", LOOP},
    {"text_encoder_2/model-00001-of-00002.safetensors", LOOP},
};

START_TEST(force_never_writes_through_links) {
  const char *at = link_cases[_i].at;
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_links", buf, sizeof buf);
  char *pipe = path2(scratch, "pipe"), *out = make_outside(scratch);
  ck_assert_int_eq(write_flux(pipe, 0, 1), HOIST_OK);
  char *victim = path2(pipe, at);
  rm_tree(victim);
  const char *slash = strrchr(at, '/');
  const char *self = slash ? slash + 1 : at;
  char *target = link_cases[_i].kind == TO_FILE     ? path2(out, "file.bin")
                 : link_cases[_i].kind == TO_FOLDER ? path2(out, "dir")
                 : link_cases[_i].kind == DANGLING  ? path2(out, "missing")
                                                    : strdup(self);
  ck_assert_int_eq(symlink(target, victim), 0);
  char *before = snapshot(scratch);
  size_t fds = open_fds();
  ck_assert_int_eq(write_flux(pipe, 1, 2), HOIST_INVALID_ARGUMENT);
  ck_assert_uint_eq(open_fds(), fds);
  const char *msg = hoist_last_error(NULL);
  char want[512];
  snprintf(want, sizeof want, "%s is a symbolic link (to %s)", at, target);
  ck_assert_msg(strstr(msg, want) != NULL, "'%s' does not say '%s'", msg, want);
  ck_assert_msg(strchr(msg, '\n') == NULL, "two lines: %s", msg);
  /* Nothing changed: not the pipeline (no temporary left, the link still
   * there), not what the link points to, and a dangling one still dangles. */
  expect_same_tree(scratch, before);
  free(before);
  free(target);
  free(victim);
  free(out);
  free(pipe);
  rm_tree(scratch);
}
END_TEST

/* The reproducer: a Hugging Face cache snapshot, whose files are links to
 * ../../blobs, must never have its blobs overwritten. */
START_TEST(force_refuses_a_hugging_face_snapshot) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_hf", buf, sizeof buf);
  char *staging = path2(scratch, "staging"), *repo = path2(scratch, "models--org--flux");
  char *blobs = path2(repo, "blobs"), *snaps = path2(repo, "snapshots");
  char *snap = path2(snaps, "0123abcd");
  ck_assert_int_eq(mkdir(repo, 0755), 0);
  ck_assert_int_eq(mkdir(blobs, 0755), 0);
  ck_assert_int_eq(mkdir(snaps, 0755), 0);
  ck_assert_int_eq(mkdir(snap, 0755), 0);
  hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
  o.scale = LINK_SCALE;
  o.seed = 1;
  hoist__write_result r;
  ck_assert_int_eq(hoist__pipeline_write(hoist__preset_find("flux1-dev"), staging, &o, &r), HOIST_OK);
  unsigned blob = 0;
  char rel[32], link[64];
  for (size_t i = 0; i <= r.count; i++) {
    size_t nf = i < r.count ? r.components[i].file_count : 1;
    for (size_t k = 0; k < nf; k++) {
      const char *name = i < r.count ? r.components[i].files[k] : "model_index.json";
      char *from = path2(staging, name), *to = path2(snap, name);
      snprintf(rel, sizeof rel, "blob%03u", blob++);
      char *blob_path = path2(blobs, rel);
      ck_assert_int_eq(rename(from, blob_path), 0);
      if (i < r.count) {
        char *folder = path2(snap, r.components[i].name);
        mkdir(folder, 0755);
        free(folder);
      }
      snprintf(link, sizeof link, "%s../../blobs/%s", i < r.count ? "../" : "", rel);
      ck_assert_int_eq(symlink(link, to), 0);
      free(from);
      free(to);
      free(blob_path);
    }
  }
  hoist__write_result_free(&r);
  char *before = snapshot(repo);
  ck_assert_int_eq(write_flux(snap, 0, 2), HOIST_INVALID_ARGUMENT); /* not empty */
  ck_assert_int_eq(write_flux(snap, 1, 2), HOIST_INVALID_ARGUMENT);
  const char *msg = hoist_last_error(NULL);
  ck_assert_msg(strstr(msg, "model_index.json is a symbolic link (to ../../blobs/") != NULL, "%s", msg);
  expect_same_tree(repo, before);
  free(before);
  free(snap);
  free(snaps);
  free(blobs);
  free(repo);
  free(staging);
  rm_tree(scratch);
}
END_TEST

/* DIR itself: a link as its last component is refused (the folder it
 * points to stays as it was; a dangling one creates nothing), named on one
 * line whatever its name; "DIR/" names the folder it points to, and links
 * among DIR's parents are the caller's path. */
START_TEST(folder_given_as_a_link) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_root_link", buf, sizeof buf);
  char *real = path2(scratch, "real"), *lnk = path2(scratch, "lnk"), *dang = path2(scratch, "dang");
  char *odd = path2(scratch, "l\nnk\x1b[2J");
  ck_assert_int_eq(mkdir(real, 0755), 0);
  ck_assert_int_eq(symlink("real", lnk), 0);
  ck_assert_int_eq(symlink("nowhere", dang), 0);
  ck_assert_int_eq(symlink("real", odd), 0);
  char *before = snapshot(scratch);
  for (int force = 0; force < 2; force++) {
    ck_assert_int_eq(write_flux(lnk, force, 1), HOIST_INVALID_ARGUMENT);
    ck_assert_msg(strstr(hoist_last_error(NULL), "lnk: is a symbolic link (to real)") != NULL, "%s",
                  hoist_last_error(NULL));
    ck_assert_int_eq(write_flux(dang, force, 1), HOIST_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "dang: is a symbolic link (to nowhere)"));
    ck_assert_int_eq(write_flux(odd, force, 1), HOIST_INVALID_ARGUMENT);
    const char *msg = hoist_last_error(NULL);
    ck_assert_msg(strpbrk(msg, "\n\x1b") == NULL, "not one plain line: %s", msg);
    ck_assert_ptr_nonnull(strstr(msg, "l\\x0ank\\x1b[2J: is a symbolic link"));
  }
  expect_same_tree(scratch, before);
  free(before);
  /* The link's folder, named with a trailing '/'. */
  char *slashed = path2(lnk, "");
  ck_assert_int_eq(write_flux(slashed, 0, 1), HOIST_OK);
  char *mi = path2(real, "model_index.json");
  struct stat st;
  ck_assert_int_eq(lstat(mi, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  /* A link among the parents: the pipeline goes where the path leads. */
  char *real2 = path2(scratch, "real2"), *plink = path2(scratch, "plink");
  ck_assert_int_eq(mkdir(real2, 0755), 0);
  ck_assert_int_eq(symlink("real2", plink), 0);
  char *nested = path2(plink, "sub/pipe");
  ck_assert_int_eq(write_flux(nested, 0, 1), HOIST_OK);
  char *landed = path2(real2, "sub/pipe/vae/diffusion_pytorch_model.safetensors");
  expect_seeded(landed, "vae", 1);
  free(landed);
  free(nested);
  free(plink);
  free(real2);
  free(mi);
  free(slashed);
  free(odd);
  free(dang);
  free(lnk);
  free(real);
  rm_tree(scratch);
}
END_TEST

START_TEST(force_replaces_a_hard_link_without_writing_its_other_name) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_hard_link", buf, sizeof buf);
  char *pipe = path2(scratch, "pipe"), *out = make_outside(scratch);
  char *other = path2(out, "file.bin");
  ck_assert_int_eq(write_flux(pipe, 0, 1), HOIST_OK);
  char *victim = path2(pipe, "vae/diffusion_pytorch_model.safetensors");
  ck_assert_int_eq(unlink(victim), 0);
  ck_assert_int_eq(link(other, victim), 0);
  char *before = snapshot(out);
  ck_assert_msg(write_flux(pipe, 1, 2) == HOIST_OK, "%s", hoist_last_error(NULL));
  expect_same_tree(out, before);
  struct stat st;
  ck_assert_int_eq(stat(other, &st), 0);
  ck_assert_uint_eq(st.st_nlink, 1); /* the pipeline's name is a new file */
  expect_seeded(victim, "vae", 2);
  expect_no_temporaries(pipe);
  free(before);
  free(victim);
  free(other);
  free(out);
  free(pipe);
  rm_tree(scratch);
}
END_TEST

/* Between the checks and the renames (the progress callback runs on the
 * writing thread while the weights are written): a link where a file will
 * be renamed, and a component folder swapped for a link to another
 * folder.  Folders are written through their descriptors and a rename
 * replaces the link itself, so nothing outside changes. */
typedef struct planter {
  const char *pipe, *out;
  int calls;
} planter;

static void plant_links(void *user, uint64_t done, uint64_t total) {
  (void)done;
  (void)total;
  planter *p = user;
  if (p->calls++ > 0) return;
  char *file = path2(p->pipe, "text_encoder/model.safetensors"), *target = path2(p->out, "file.bin");
  unlink(file);
  ck_assert_int_eq(symlink(target, file), 0);
  char *vae = path2(p->pipe, "vae"), *moved = path2(p->pipe, "vae.moved"), *dir = path2(p->out, "dir");
  ck_assert_int_eq(rename(vae, moved), 0);
  ck_assert_int_eq(symlink(dir, vae), 0);
  free(file);
  free(target);
  free(vae);
  free(moved);
  free(dir);
}

START_TEST(links_planted_during_the_write_are_harmless) {
  int force = _i;
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_toctou", buf, sizeof buf);
  char *pipe = path2(scratch, "pipe"), *out = make_outside(scratch);
  if (force) ck_assert_int_eq(write_flux(pipe, 0, 1), HOIST_OK);
  char *before = snapshot(out);
  planter pl = {pipe, out, 0};
  hoist__writer_options o = HOIST_WRITER_OPTIONS_INIT;
  o.scale = LINK_SCALE;
  o.seed = 2;
  o.threads = 2;
  o.force = force;
  o.progress = plant_links;
  o.progress_user = &pl;
  hoist__write_result r;
  ck_assert_msg(hoist__pipeline_write(hoist__preset_find("flux1-dev"), pipe, &o, &r) == HOIST_OK, "%s",
                hoist_last_error(NULL));
  hoist__write_result_free(&r);
  ck_assert_int_gt(pl.calls, 0);
  expect_same_tree(out, before);
  char *te = path2(pipe, "text_encoder/model.safetensors");
  char *moved = path2(pipe, "vae.moved/diffusion_pytorch_model.safetensors");
  expect_seeded(te, "text_encoder", 2);
  expect_seeded(moved, "vae", 2);
  expect_no_temporaries(pipe);
  free(moved);
  free(te);
  free(before);
  free(out);
  free(pipe);
  rm_tree(scratch);
}
END_TEST

/* A full disk (the file-size limit stands in: the same failed pwrite)
 * during --force: the old pipeline stays byte for byte, no temporary. */
START_TEST(failed_force_write_keeps_the_old_files) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_force_enospc", buf, sizeof buf);
  char *pipe = path2(scratch, "pipe");
  ck_assert_int_eq(write_flux(pipe, 0, 1), HOIST_OK);
  char *before = snapshot(scratch);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {1u << 20, 1u << 20};
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  size_t fds = open_fds();
  ck_assert_int_eq(write_flux(pipe, 1, 2), HOIST_IO);
  ck_assert_uint_eq(open_fds(), fds);
  const char *msg = hoist_last_error(NULL);
  ck_assert_msg(strstr(msg, ".safetensors") != NULL && strstr(msg, "large") != NULL, "%s", msg);
  expect_same_tree(scratch, before);
  free(before);
  free(pipe);
}
END_TEST

static int give_to_nobody(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return lchown(path, 65534, 65534);
}

/* A read-only DIR (0) or component folder (1): the run fails with the
 * cause, naming the file, and removes every temporary it made elsewhere.
 * Run in a child without privileges (root writes through modes), the tree
 * then given to that user so that only the locked folder is read-only. */
START_TEST(read_only_folder_fails_cleanly) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_read_only", buf, sizeof buf);
  char *dir = path2(scratch, "pipe"), *locked = _i ? path2(dir, "transformer") : strdup(dir);
  ck_assert_int_eq(write_flux(dir, 0, 1), HOIST_OK);
  if (geteuid() == 0) ck_assert_int_eq(nftw(scratch, give_to_nobody, 16, FTW_PHYS), 0);
  ck_assert_int_eq(chmod(locked, 0555), 0);
  char *before = snapshot(scratch);
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ne(pid, -1);
  if (pid == 0) {
    close(fds[0]);
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    char line[1100];
    int rc = write_flux(dir, 1, 2);
    int n = snprintf(line, sizeof line, "%d %s", rc, hoist_last_error(NULL));
    _exit(write(fds[1], line, (size_t)n) == n ? 0 : 4);
  }
  close(fds[1]);
  char line[1100] = "";
  size_t got = 0;
  ssize_t k;
  while ((k = read(fds[0], line + got, sizeof line - 1 - got)) > 0) got += (size_t)k;
  line[got] = '\0';
  close(fds[0]);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
  int rc = atoi(line);
  ck_assert_msg(rc == HOIST_IO, "%s", line);
  ck_assert_msg(strstr(line, "Permission denied") != NULL, "%s", line);
  const char *first = _i ? "pipe/transformer/config.json: cannot create" : "pipe/model_index.json: cannot create";
  ck_assert_msg(strstr(line, first) != NULL, "%s", line);
  expect_same_tree(scratch, before);
  chmod(locked, 0755);
  free(before);
  free(locked);
  free(dir);
  rm_tree(scratch);
}
END_TEST

/* The CLI: a refusal is exit 2 with one line on stderr. */
START_TEST(cli_refuses_links_with_exit_2) {
  char buf[512];
  const char *scratch = tu_scratch_dir("make_pipeline_cli_links", buf, sizeof buf);
  char *pipe = path2(scratch, "pipe"), *out = make_outside(scratch), *err = path2(scratch, "err.txt");
  char *lnk = path2(scratch, "lnk");
  ck_assert_int_eq(write_flux(pipe, 0, 1), HOIST_OK);
  char *victim = path2(pipe, "text_encoder/model.safetensors"), *target = path2(out, "file.bin");
  ck_assert_int_eq(unlink(victim), 0);
  ck_assert_int_eq(symlink(target, victim), 0);
  ck_assert_int_eq(symlink("pipe", lnk), 0);
  static const struct {
    const char *dir, *says;
  } runs[] = {{"pipe", "text_encoder/model.safetensors is a symbolic link"},
              {"lnk", "lnk: is a symbolic link (to pipe)"}};
  for (size_t i = 0; i < 2; i++) {
    char *dir = path2(scratch, runs[i].dir);
    char *before = snapshot(out);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s make-pipeline --preset flux1-dev --scale %g --force '%s' >/dev/null 2>'%s'",
             HOIST_CLI_PATH, LINK_SCALE, dir, err);
    int status = system(cmd);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", cmd, status);
    size_t len;
    char *text = tu_read_file(err, &len);
    ck_assert_msg(len > 0 && text[len - 1] == '\n' && strchr(text, '\n') == text + len - 1,
                  "not one line: %s", text);
    ck_assert_msg(strstr(text, runs[i].says) != NULL, "%s", text);
    expect_same_tree(out, before);
    free(text);
    free(before);
    free(dir);
  }
  free(target);
  free(victim);
  free(lnk);
  free(err);
  free(out);
  free(pipe);
  rm_tree(scratch);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("make_pipeline");
  TCase *t = tcase_create("tables");
  tcase_add_test(t, presets_listed_and_found);
  tcase_add_test(t, totals_match_published_sizes);
  tcase_add_test(t, real_names_and_shapes);
  tcase_add_test(t, names_unique_and_shards_nonempty_at_every_scale);
  tcase_add_test(t, floating_values_finite_and_scaled);
  suite_add_tcase(s, t);
  TCase *w = tcase_create("write");
  tcase_set_timeout(w, 300);
  tcase_add_loop_test(w, write_each_preset_tiny, 0, (int)hoist__preset_count());
  tcase_add_test(w, deterministic_by_seed);
  tcase_add_test(w, refuses_non_empty_dir_and_bad_options);
  tcase_add_test(w, write_failure_names_file_and_cleans_up);
  suite_add_tcase(s, w);
  TCase *l = tcase_create("links");
  tcase_set_timeout(l, 300);
  tcase_add_loop_test(l, force_never_writes_through_links, 0,
                      (int)(sizeof link_cases / sizeof link_cases[0]));
  tcase_add_test(l, force_refuses_a_hugging_face_snapshot);
  tcase_add_test(l, folder_given_as_a_link);
  tcase_add_test(l, force_replaces_a_hard_link_without_writing_its_other_name);
  tcase_add_loop_test(l, links_planted_during_the_write_are_harmless, 0, 2);
  tcase_add_test(l, failed_force_write_keeps_the_old_files);
  tcase_add_loop_test(l, read_only_folder_fails_cleanly, 0, 2);
  tcase_add_test(l, cli_refuses_links_with_exit_2);
  suite_add_tcase(s, l);
  return s;
}

int main(void) { return tu_run_suite(suite()); }
