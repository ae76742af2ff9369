/* pipeline_fixture.c — see pipeline_fixture.h. */
#include "pipeline_fixture.h"

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fixture_write_file(const char *path, const char *prefix, const uint64_t *sizes, size_t n,
                        uint64_t seed) {
  size_t cap = 64 + n * 160;
  char *h = malloc(cap);
  ck_assert(h != NULL);
  size_t len = (size_t)snprintf(h, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    len += (size_t)snprintf(h + len, cap - len,
                            ",\"%s.%zu\":{\"dtype\":\"U8\",\"shape\":[%llu],\"data_offsets\":[%llu,%llu]}",
                            prefix, i, (unsigned long long)sizes[i], (unsigned long long)off,
                            (unsigned long long)(off + sizes[i]));
    off += sizes[i];
  }
  len += (size_t)snprintf(h + len, cap - len, "}");
  unsigned char *data = malloc(off > 0 ? off : 1);
  ck_assert(data != NULL);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint64_t i = 0; i < off; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    data[i] = (unsigned char)(x | 1); /* never zero */
  }
  tu_write_safetensors(path, h, data, off);
  free(data);
  free(h);
}

static void put(const char *dir, const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  tu_write_file(path, text, strlen(text));
}

static void sub(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  mkdir(path, 0755);
}

void fixture_write_pipeline(const char *dir, uint64_t seed) {
  char path[1024];
  put(dir, "model_index.json",
      "{\"_class_name\":\"FluxPipeline\",\"_diffusers_version\":\"0.35.0\","
      "\"scheduler\":[\"diffusers\",\"FlowMatchEulerDiscreteScheduler\"],"
      "\"text_encoder\":[\"transformers\",\"CLIPTextModel\"],"
      "\"text_encoder_2\":[\"transformers\",\"T5EncoderModel\"],"
      "\"tokenizer\":[\"transformers\",\"CLIPTokenizer\"],"
      "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"],"
      "\"vae\":[\"diffusers\",\"AutoencoderKL\"]}");
  sub(dir, "scheduler");
  put(dir, "scheduler/scheduler_config.json", "{\"shift\":3.0}");
  sub(dir, "tokenizer");
  put(dir, "tokenizer/vocab.json", "{\"a\":0}");

  /* transformer: two shards; big tensors (split across 2 MiB chunks),
   * many small ones (merged), a zero-size one. */
  sub(dir, "transformer");
  uint64_t s1[40], s2[30];
  s1[0] = 2500000;
  s1[1] = 300000;
  for (int i = 2; i < 40; i++) s1[i] = 100 + (uint64_t)i * 37;
  s2[0] = 600001;
  s2[1] = 0;
  for (int i = 2; i < 30; i++) s2[i] = 3 + (uint64_t)i * 101;
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model-00001-of-00002.safetensors", dir);
  fixture_write_file(path, "blocks.a", s1, 40, seed + 1);
  snprintf(path, sizeof path, "%s/transformer/diffusion_pytorch_model-00002-of-00002.safetensors", dir);
  fixture_write_file(path, "blocks.b", s2, 30, seed + 2);
  char index[8192];
  size_t len = (size_t)snprintf(index, sizeof index, "{\"metadata\":{},\"weight_map\":{");
  for (int i = 0; i < 40; i++)
    len += (size_t)snprintf(index + len, sizeof index - len,
                            "%s\"blocks.a.%d\":\"diffusion_pytorch_model-00001-of-00002.safetensors\"",
                            i ? "," : "", i);
  for (int i = 0; i < 30; i++)
    len += (size_t)snprintf(index + len, sizeof index - len,
                            ",\"blocks.b.%d\":\"diffusion_pytorch_model-00002-of-00002.safetensors\"", i);
  snprintf(index + len, sizeof index - len, "}}");
  put(dir, "transformer/diffusion_pytorch_model.safetensors.index.json", index);

  sub(dir, "text_encoder_2");
  uint64_t t2[12];
  for (int i = 0; i < 12; i++) t2[i] = 110000 + (uint64_t)i * 7;
  snprintf(path, sizeof path, "%s/text_encoder_2/model.safetensors", dir);
  fixture_write_file(path, "encoder", t2, 12, seed + 3);

  sub(dir, "text_encoder");
  uint64_t t1[20];
  for (int i = 0; i < 20; i++) t1[i] = 9000 + (uint64_t)i;
  snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
  fixture_write_file(path, "clip", t1, 20, seed + 4);

  sub(dir, "vae");
  uint64_t v[9] = {50000, 20000, 10000, 5000, 1, 2, 3, 0, 4096};
  snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", dir);
  fixture_write_file(path, "decoder", v, 9, seed + 5);
}
