/* presets.c — the preset tables of presets.h: four real diffusers pipelines
 * as data, and the per-architecture layer templates that enumerate their
 * tensors (real state-dict keys and shapes) at any scale.
 *
 * Published sizes (scale 1) the tables are checked against, all from the
 * Hugging Face repositories' file listings / index.json total_size:
 *   black-forest-labs/FLUX.1-dev: transformer 23,802,816,640 B (index
 *     total_size, 3 shards, bf16), text_encoder_2 9,524,621,312 B (index
 *     total_size, 2 shards, bf16), text_encoder model.safetensors 246 MB,
 *     vae 168 MB (167,666,902 B file).  The 23.81 GB / 9.52 GB / 246 MB /
 *     168 MB figures are also quoted by carpedm30.notion.site "Diffusion"
 *     (found with the search tool).
 *   Wan-AI/Wan2.2-T2V-A14B-Diffusers: transformer and transformer_2 28.6 GB
 *     each in 12 shards, text_encoder (umt5-xxl) 11.4 GB in 3 shards, vae
 *     0.5 GB fp32 (model card / file listing; shard counts 12/12/3 as used
 *     by fuliucansheng/unitorch's diffusers hub table).
 *   Qwen/Qwen-Image: transformer 40.9 GB in 9 shards, text_encoder
 *     (Qwen2.5-VL-7B) 16.6 GB in 4 shards, vae 0.25 GB (file listing; shard
 *     counts 9/4 as in unitorch's table).
 *   stabilityai/stable-diffusion-3.5-large: transformer 16.3 GB in 2 shards,
 *     text_encoder 0.25 GB, text_encoder_2 1.39 GB, text_encoder_3 9.52 GB
 *     in 2 shards, vae 0.17 GB (file listing).
 */
#include "presets.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Emitting tensors */

typedef struct gen {
  hoist__preset_tensor_fn fn;
  void *user;
  double scale;
  hoist_dtype dtype;
  int rc; /* first nonzero callback result; stops the walk */
} gen;

void hoist__preset_scale_shape(uint32_t ndim, uint64_t *shape, double scale) {
  if (ndim == 0 || scale >= 1.0) return;
  uint32_t big = 0;
  for (uint32_t i = 1; i < ndim; i++)
    if (shape[i] > shape[big]) big = i;
  double v = floor((double)shape[big] * scale + 0.5);
  shape[big] = v < 1.0 ? 1 : (uint64_t)v;
}

static void emit(gen *g, const char *base, const char *suffix, uint32_t ndim,
                 const uint64_t *dims) {
  if (g->rc != 0) return;
  char name[HOIST_PRESET_NAME_MAX];
  snprintf(name, sizeof name, "%s%s", base, suffix);
  uint64_t shape[HOIST_PRESET_MAX_DIMS];
  memcpy(shape, dims, ndim * sizeof shape[0]);
  hoist__preset_scale_shape(ndim, shape, g->scale);
  /* Shapes here are at most ~10^9 elements: the product cannot overflow,
   * but it is checked all the same since the bytes feed file offsets. */
  uint64_t n = hoist_dtype_bits(g->dtype) / 8;
  for (uint32_t i = 0; i < ndim; i++) {
    if (__builtin_mul_overflow(n, shape[i], &n)) {
      g->rc = HOIST_OVERFLOW;
      return;
    }
  }
  hoist__preset_tensor t = {name, g->dtype, ndim, shape, n};
  g->rc = g->fn(g->user, &t);
}

#define DIMS(...) (uint32_t)(sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)), \
                  (const uint64_t[]){__VA_ARGS__}

#if defined(__GNUC__)
#define HOIST_PRINTF_(a, b) __attribute__((format(printf, a, b)))
#else
#define HOIST_PRINTF_(a, b)
#endif
/* A prefix buffer: P(b, "blocks.%d", i). */
static const char *P(char *buf, const char *fmt, ...) HOIST_PRINTF_(2, 3);
static const char *P(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, HOIST_PRESET_NAME_MAX, fmt, ap);
  va_end(ap);
  return buf;
}

static void linear(gen *g, const char *base, uint64_t out, uint64_t in, int bias) {
  emit(g, base, ".weight", DIMS(out, in));
  if (bias) emit(g, base, ".bias", DIMS(out));
}
static void norm(gen *g, const char *base, uint64_t n, int bias) {
  emit(g, base, ".weight", DIMS(n));
  if (bias) emit(g, base, ".bias", DIMS(n));
}
static void conv2d(gen *g, const char *base, uint64_t out, uint64_t in, uint64_t k, int bias) {
  emit(g, base, ".weight", DIMS(out, in, k, k));
  if (bias) emit(g, base, ".bias", DIMS(out));
}
static void conv3d(gen *g, const char *base, uint64_t out, uint64_t in, uint64_t kt,
                   uint64_t kh, uint64_t kw) {
  emit(g, base, ".weight", DIMS(out, in, kt, kh, kw));
  emit(g, base, ".bias", DIMS(out));
}

/* ------------------------------------------------------------------------ */
/* Architectures */

enum {
  ARCH_FLUX_DIT,
  ARCH_T5_XXL,
  ARCH_UMT5_XXL,
  ARCH_CLIP_L,
  ARCH_CLIP_L_PROJ,
  ARCH_CLIP_G_PROJ,
  ARCH_VAE_KL16,
  ARCH_WAN_DIT_A14B,
  ARCH_WAN_VAE,
  ARCH_QWEN_IMAGE_DIT,
  ARCH_QWEN25_VL_7B,
  ARCH_SD35_LARGE_DIT
};

/* FluxTransformer2DModel: 19 double-stream + 38 single-stream blocks, dim
 * 3072 (24 heads x 128), joint_attention_dim 4096, pooled 768, guidance. */
static void arch_flux(gen *g) {
  const uint64_t d = 3072, mlp = 12288, hd = 128;
  char b[HOIST_PRESET_NAME_MAX];
  linear(g, "x_embedder", d, 64, 1);
  linear(g, "context_embedder", d, 4096, 1);
  linear(g, "time_text_embed.timestep_embedder.linear_1", d, 256, 1);
  linear(g, "time_text_embed.timestep_embedder.linear_2", d, d, 1);
  linear(g, "time_text_embed.guidance_embedder.linear_1", d, 256, 1);
  linear(g, "time_text_embed.guidance_embedder.linear_2", d, d, 1);
  linear(g, "time_text_embed.text_embedder.linear_1", d, 768, 1);
  linear(g, "time_text_embed.text_embedder.linear_2", d, d, 1);
  for (int i = 0; i < 19; i++) {
    linear(g, P(b, "transformer_blocks.%d.norm1.linear", i), 6 * d, d, 1);
    linear(g, P(b, "transformer_blocks.%d.norm1_context.linear", i), 6 * d, d, 1);
    static const char *const lin[] = {"to_q", "to_k", "to_v", "add_q_proj", "add_k_proj",
                                      "add_v_proj", "to_out.0", "to_add_out"};
    for (size_t j = 0; j < 8; j++)
      linear(g, P(b, "transformer_blocks.%d.attn.%s", i, lin[j]), d, d, 1);
    static const char *const qk[] = {"norm_q", "norm_k", "norm_added_q", "norm_added_k"};
    for (size_t j = 0; j < 4; j++) norm(g, P(b, "transformer_blocks.%d.attn.%s", i, qk[j]), hd, 0);
    linear(g, P(b, "transformer_blocks.%d.ff.net.0.proj", i), mlp, d, 1);
    linear(g, P(b, "transformer_blocks.%d.ff.net.2", i), d, mlp, 1);
    linear(g, P(b, "transformer_blocks.%d.ff_context.net.0.proj", i), mlp, d, 1);
    linear(g, P(b, "transformer_blocks.%d.ff_context.net.2", i), d, mlp, 1);
  }
  for (int i = 0; i < 38; i++) {
    linear(g, P(b, "single_transformer_blocks.%d.norm.linear", i), 3 * d, d, 1);
    linear(g, P(b, "single_transformer_blocks.%d.proj_mlp", i), mlp, d, 1);
    linear(g, P(b, "single_transformer_blocks.%d.proj_out", i), d, d + mlp, 1);
    linear(g, P(b, "single_transformer_blocks.%d.attn.to_q", i), d, d, 1);
    linear(g, P(b, "single_transformer_blocks.%d.attn.to_k", i), d, d, 1);
    linear(g, P(b, "single_transformer_blocks.%d.attn.to_v", i), d, d, 1);
    norm(g, P(b, "single_transformer_blocks.%d.attn.norm_q", i), hd, 0);
    norm(g, P(b, "single_transformer_blocks.%d.attn.norm_k", i), hd, 0);
  }
  linear(g, "norm_out.linear", 2 * d, d, 1);
  linear(g, "proj_out", 64, d, 1);
}

/* T5EncoderModel (t5-v1_1-xxl) and UMT5EncoderModel (umt5-xxl): d_model
 * 4096, d_ff 10240 (gated GELU: wi_0, wi_1), 64 heads x 64, 24 blocks.
 * T5 has one relative_attention_bias (block 0); UMT5 has one per block.
 * encoder.embed_tokens is tied to shared and not saved. */
static void arch_t5(gen *g, uint64_t vocab, int bias_every_block) {
  const uint64_t d = 4096, ff = 10240, inner = 4096;
  char b[HOIST_PRESET_NAME_MAX];
  emit(g, "shared", ".weight", DIMS(vocab, d));
  for (int i = 0; i < 24; i++) {
    static const char *const qkvo[] = {"q", "k", "v"};
    for (size_t j = 0; j < 3; j++)
      linear(g, P(b, "encoder.block.%d.layer.0.SelfAttention.%s", i, qkvo[j]), inner, d, 0);
    linear(g, P(b, "encoder.block.%d.layer.0.SelfAttention.o", i), d, inner, 0);
    if (i == 0 || bias_every_block)
      emit(g, P(b, "encoder.block.%d.layer.0.SelfAttention.relative_attention_bias", i),
           ".weight", DIMS(32, 64));
    norm(g, P(b, "encoder.block.%d.layer.0.layer_norm", i), d, 0);
    linear(g, P(b, "encoder.block.%d.layer.1.DenseReluDense.wi_0", i), ff, d, 0);
    linear(g, P(b, "encoder.block.%d.layer.1.DenseReluDense.wi_1", i), ff, d, 0);
    linear(g, P(b, "encoder.block.%d.layer.1.DenseReluDense.wo", i), d, ff, 0);
    norm(g, P(b, "encoder.block.%d.layer.1.layer_norm", i), d, 0);
  }
  norm(g, "encoder.final_layer_norm", d, 0);
}

/* CLIPTextModel / CLIPTextModelWithProjection: CLIP-L (768, 12 layers, mlp
 * 3072) and OpenCLIP bigG (1280, 32 layers, mlp 5120); vocab 49408, 77
 * positions. */
static void arch_clip(gen *g, uint64_t d, int layers, uint64_t mlp, int projection) {
  char b[HOIST_PRESET_NAME_MAX];
  emit(g, "text_model.embeddings.token_embedding", ".weight", DIMS(49408, d));
  emit(g, "text_model.embeddings.position_embedding", ".weight", DIMS(77, d));
  for (int i = 0; i < layers; i++) {
    static const char *const proj[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
    for (size_t j = 0; j < 4; j++)
      linear(g, P(b, "text_model.encoder.layers.%d.self_attn.%s", i, proj[j]), d, d, 1);
    norm(g, P(b, "text_model.encoder.layers.%d.layer_norm1", i), d, 1);
    linear(g, P(b, "text_model.encoder.layers.%d.mlp.fc1", i), mlp, d, 1);
    linear(g, P(b, "text_model.encoder.layers.%d.mlp.fc2", i), d, mlp, 1);
    norm(g, P(b, "text_model.encoder.layers.%d.layer_norm2", i), d, 1);
  }
  norm(g, "text_model.final_layer_norm", d, 1);
  if (projection) linear(g, "text_projection", d, d, 0);
}

/* AutoencoderKL with 16 latent channels (FLUX.1, SD3): block_out_channels
 * 128/256/512/512, 2 resnets per down block, 3 per up block, mid-block
 * attention, no quant convs. */
static void vae_resnet(gen *g, const char *p, uint64_t cin, uint64_t cout) {
  char b[HOIST_PRESET_NAME_MAX];
  norm(g, P(b, "%s.norm1", p), cin, 1);
  conv2d(g, P(b, "%s.conv1", p), cout, cin, 3, 1);
  norm(g, P(b, "%s.norm2", p), cout, 1);
  conv2d(g, P(b, "%s.conv2", p), cout, cout, 3, 1);
  if (cin != cout) conv2d(g, P(b, "%s.conv_shortcut", p), cout, cin, 1, 1);
}
static void vae_mid(gen *g, const char *p, uint64_t c) {
  char b[HOIST_PRESET_NAME_MAX];
  norm(g, P(b, "%s.attentions.0.group_norm", p), c, 1);
  static const char *const lin[] = {"to_q", "to_k", "to_v", "to_out.0"};
  for (size_t j = 0; j < 4; j++) linear(g, P(b, "%s.attentions.0.%s", p, lin[j]), c, c, 1);
  vae_resnet(g, P(b, "%s.resnets.0", p), c, c);
  vae_resnet(g, P(b, "%s.resnets.1", p), c, c);
}
static void arch_vae_kl(gen *g, uint64_t latent) {
  static const uint64_t ch[4] = {128, 256, 512, 512};
  char b[HOIST_PRESET_NAME_MAX];
  conv2d(g, "encoder.conv_in", ch[0], 3, 3, 1);
  uint64_t cin = ch[0];
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 2; j++) {
      vae_resnet(g, P(b, "encoder.down_blocks.%d.resnets.%d", i, j), cin, ch[i]);
      cin = ch[i];
    }
    if (i < 3) conv2d(g, P(b, "encoder.down_blocks.%d.downsamplers.0.conv", i), ch[i], ch[i], 3, 1);
  }
  vae_mid(g, "encoder.mid_block", 512);
  norm(g, "encoder.conv_norm_out", 512, 1);
  conv2d(g, "encoder.conv_out", 2 * latent, 512, 3, 1);
  conv2d(g, "decoder.conv_in", 512, latent, 3, 1);
  vae_mid(g, "decoder.mid_block", 512);
  cin = 512;
  for (int i = 0; i < 4; i++) {
    uint64_t c = ch[3 - i];
    for (int j = 0; j < 3; j++) {
      vae_resnet(g, P(b, "decoder.up_blocks.%d.resnets.%d", i, j), cin, c);
      cin = c;
    }
    if (i < 3) conv2d(g, P(b, "decoder.up_blocks.%d.upsamplers.0.conv", i), c, c, 3, 1);
  }
  norm(g, "decoder.conv_norm_out", 128, 1);
  conv2d(g, "decoder.conv_out", 3, 128, 3, 1);
}

/* WanTransformer3DModel (Wan2.2 A14B experts): 40 blocks, dim 5120 (40
 * heads x 128), ffn 13824, text_dim 4096, freq_dim 256, patch (1,2,2),
 * 16 -> 16 channels, rms_norm_across_heads, cross_attn_norm. */
static void arch_wan_dit(gen *g) {
  const uint64_t d = 5120, ffn = 13824;
  char b[HOIST_PRESET_NAME_MAX];
  emit(g, "patch_embedding", ".weight", DIMS(d, 16, 1, 2, 2));
  emit(g, "patch_embedding", ".bias", DIMS(d));
  linear(g, "condition_embedder.time_embedder.linear_1", d, 256, 1);
  linear(g, "condition_embedder.time_embedder.linear_2", d, d, 1);
  linear(g, "condition_embedder.time_proj", 6 * d, d, 1);
  linear(g, "condition_embedder.text_embedder.linear_1", d, 4096, 1);
  linear(g, "condition_embedder.text_embedder.linear_2", d, d, 1);
  for (int i = 0; i < 40; i++) {
    for (int a = 1; a <= 2; a++) {
      static const char *const lin[] = {"to_q", "to_k", "to_v", "to_out.0"};
      for (size_t j = 0; j < 4; j++) linear(g, P(b, "blocks.%d.attn%d.%s", i, a, lin[j]), d, d, 1);
      norm(g, P(b, "blocks.%d.attn%d.norm_q", i, a), d, 0);
      norm(g, P(b, "blocks.%d.attn%d.norm_k", i, a), d, 0);
      if (a == 1) norm(g, P(b, "blocks.%d.norm2", i), d, 1);
    }
    linear(g, P(b, "blocks.%d.ffn.net.0.proj", i), ffn, d, 1);
    linear(g, P(b, "blocks.%d.ffn.net.2", i), d, ffn, 1);
    emit(g, P(b, "blocks.%d.scale_shift_table", i), "", DIMS(1, 6, d));
  }
  emit(g, "scale_shift_table", "", DIMS(1, 2, d));
  linear(g, "proj_out", 64, d, 1);
}

/* AutoencoderKLWan (Wan2.1/2.2-A14B VAE) and AutoencoderKLQwenImage (same
 * architecture): base_dim 96, dim_mult 1/2/4/4, 2 residual blocks, z_dim
 * 16, causal 3-D convolutions, RMS norms with gamma [C,1,1,1],
 * temporal down-sampling in stages 2 and 3. */
static void wan_res(gen *g, const char *p, uint64_t cin, uint64_t cout) {
  char b[HOIST_PRESET_NAME_MAX];
  emit(g, P(b, "%s.norm1", p), ".gamma", DIMS(cin, 1, 1, 1));
  conv3d(g, P(b, "%s.conv1", p), cout, cin, 3, 3, 3);
  emit(g, P(b, "%s.norm2", p), ".gamma", DIMS(cout, 1, 1, 1));
  conv3d(g, P(b, "%s.conv2", p), cout, cout, 3, 3, 3);
  if (cin != cout) conv3d(g, P(b, "%s.conv_shortcut", p), cout, cin, 1, 1, 1);
}
static void wan_mid(gen *g, const char *p, uint64_t c) {
  char b[HOIST_PRESET_NAME_MAX];
  wan_res(g, P(b, "%s.resnets.0", p), c, c);
  emit(g, P(b, "%s.attentions.0.norm", p), ".gamma", DIMS(c, 1, 1));
  conv2d(g, P(b, "%s.attentions.0.to_qkv", p), 3 * c, c, 1, 1);
  conv2d(g, P(b, "%s.attentions.0.proj", p), c, c, 1, 1);
  wan_res(g, P(b, "%s.resnets.1", p), c, c);
}
static void arch_wan_vae(gen *g) {
  char b[HOIST_PRESET_NAME_MAX];
  static const uint64_t dims[5] = {96, 96, 192, 384, 384};
  static const int tdown[3] = {0, 1, 1};
  conv3d(g, "encoder.conv_in", 96, 3, 3, 3, 3);
  int k = 0;
  for (int i = 0; i < 4; i++) {
    uint64_t cin = dims[i], cout = dims[i + 1];
    for (int j = 0; j < 2; j++) {
      wan_res(g, P(b, "encoder.down_blocks.%d", k++), cin, cout);
      cin = cout;
    }
    if (i < 3) {
      conv2d(g, P(b, "encoder.down_blocks.%d.resample.1", k), cout, cout, 3, 1);
      if (tdown[i]) conv3d(g, P(b, "encoder.down_blocks.%d.time_conv", k), cout, cout, 3, 1, 1);
      k++;
    }
  }
  wan_mid(g, "encoder.mid_block", 384);
  emit(g, "encoder.norm_out", ".gamma", DIMS(384, 1, 1, 1));
  conv3d(g, "encoder.conv_out", 32, 384, 3, 3, 3);
  conv3d(g, "quant_conv", 32, 32, 1, 1, 1);
  conv3d(g, "post_quant_conv", 16, 16, 1, 1, 1);
  conv3d(g, "decoder.conv_in", 384, 16, 3, 3, 3);
  wan_mid(g, "decoder.mid_block", 384);
  static const uint64_t up[5] = {384, 384, 384, 192, 96};
  static const int tup[3] = {1, 1, 0};
  for (int i = 0; i < 4; i++) {
    uint64_t cin = i > 0 ? up[i] / 2 : up[i], cout = up[i + 1];
    for (int j = 0; j < 3; j++) {
      wan_res(g, P(b, "decoder.up_blocks.%d.resnets.%d", i, j), cin, cout);
      cin = cout;
    }
    if (i < 3) {
      conv2d(g, P(b, "decoder.up_blocks.%d.upsamplers.0.resample.1", i), cout / 2, cout, 3, 1);
      if (tup[i])
        conv3d(g, P(b, "decoder.up_blocks.%d.upsamplers.0.time_conv", i), 2 * cout, cout, 3, 1, 1);
    }
  }
  emit(g, "decoder.norm_out", ".gamma", DIMS(96, 1, 1, 1));
  conv3d(g, "decoder.conv_out", 3, 96, 3, 3, 3);
}

/* QwenImageTransformer2DModel: 60 dual-stream blocks, dim 3072 (24 heads x
 * 128), joint_attention_dim 3584, in 64, out 16 x 2 x 2. */
static void arch_qwen_image(gen *g) {
  const uint64_t d = 3072, mlp = 12288;
  char b[HOIST_PRESET_NAME_MAX];
  linear(g, "time_text_embed.timestep_embedder.linear_1", d, 256, 1);
  linear(g, "time_text_embed.timestep_embedder.linear_2", d, d, 1);
  norm(g, "txt_norm", 3584, 0);
  linear(g, "img_in", d, 64, 1);
  linear(g, "txt_in", d, 3584, 1);
  for (int i = 0; i < 60; i++) {
    linear(g, P(b, "transformer_blocks.%d.img_mod.1", i), 6 * d, d, 1);
    static const char *const lin[] = {"to_q", "to_k", "to_v", "add_q_proj", "add_k_proj",
                                      "add_v_proj", "to_out.0", "to_add_out"};
    for (size_t j = 0; j < 8; j++)
      linear(g, P(b, "transformer_blocks.%d.attn.%s", i, lin[j]), d, d, 1);
    static const char *const qk[] = {"norm_q", "norm_k", "norm_added_q", "norm_added_k"};
    for (size_t j = 0; j < 4; j++) norm(g, P(b, "transformer_blocks.%d.attn.%s", i, qk[j]), 128, 0);
    linear(g, P(b, "transformer_blocks.%d.img_mlp.net.0.proj", i), mlp, d, 1);
    linear(g, P(b, "transformer_blocks.%d.img_mlp.net.2", i), d, mlp, 1);
    linear(g, P(b, "transformer_blocks.%d.txt_mod.1", i), 6 * d, d, 1);
    linear(g, P(b, "transformer_blocks.%d.txt_mlp.net.0.proj", i), mlp, d, 1);
    linear(g, P(b, "transformer_blocks.%d.txt_mlp.net.2", i), d, mlp, 1);
  }
  linear(g, "norm_out.linear", 2 * d, d, 1);
  linear(g, "proj_out", 64, d, 1);
}

/* Qwen2_5_VLForConditionalGeneration (Qwen2.5-VL-7B-Instruct): vision tower
 * (32 blocks, 1280, mlp 3420, patch merger to 3584) and the language model
 * (28 layers, 3584, GQA 28/4 heads x 128, mlp 18944, vocab 152064, untied
 * lm_head). */
static void arch_qwen25_vl(gen *g) {
  const uint64_t v = 1280, vm = 3420, d = 3584, kv = 512, ff = 18944, vocab = 152064;
  char b[HOIST_PRESET_NAME_MAX];
  emit(g, "visual.patch_embed.proj", ".weight", DIMS(v, 3, 2, 14, 14));
  for (int i = 0; i < 32; i++) {
    norm(g, P(b, "visual.blocks.%d.norm1", i), v, 0);
    norm(g, P(b, "visual.blocks.%d.norm2", i), v, 0);
    linear(g, P(b, "visual.blocks.%d.attn.qkv", i), 3 * v, v, 1);
    linear(g, P(b, "visual.blocks.%d.attn.proj", i), v, v, 1);
    linear(g, P(b, "visual.blocks.%d.mlp.gate_proj", i), vm, v, 1);
    linear(g, P(b, "visual.blocks.%d.mlp.up_proj", i), vm, v, 1);
    linear(g, P(b, "visual.blocks.%d.mlp.down_proj", i), v, vm, 1);
  }
  norm(g, "visual.merger.ln_q", v, 0);
  linear(g, "visual.merger.mlp.0", 4 * v, 4 * v, 1);
  linear(g, "visual.merger.mlp.2", d, 4 * v, 1);
  emit(g, "model.embed_tokens", ".weight", DIMS(vocab, d));
  for (int i = 0; i < 28; i++) {
    linear(g, P(b, "model.layers.%d.self_attn.q_proj", i), d, d, 1);
    linear(g, P(b, "model.layers.%d.self_attn.k_proj", i), kv, d, 1);
    linear(g, P(b, "model.layers.%d.self_attn.v_proj", i), kv, d, 1);
    linear(g, P(b, "model.layers.%d.self_attn.o_proj", i), d, d, 0);
    linear(g, P(b, "model.layers.%d.mlp.gate_proj", i), ff, d, 0);
    linear(g, P(b, "model.layers.%d.mlp.up_proj", i), ff, d, 0);
    linear(g, P(b, "model.layers.%d.mlp.down_proj", i), d, ff, 0);
    norm(g, P(b, "model.layers.%d.input_layernorm", i), d, 0);
    norm(g, P(b, "model.layers.%d.post_attention_layernorm", i), d, 0);
  }
  norm(g, "model.norm", d, 0);
  emit(g, "lm_head", ".weight", DIMS(vocab, d));
}

/* SD3Transformer2DModel (SD3.5-large): 38 MM-DiT blocks, 2432 (38 heads x
 * 64), joint_attention_dim 4096, pooled 2048, patch 2, 16 channels,
 * pos_embed_max_size 192 (its table is a persistent buffer), RMS qk norm;
 * the last block is context_pre_only. */
static void arch_sd35_large(gen *g) {
  const uint64_t d = 2432, mlp = 9728, hd = 64;
  char b[HOIST_PRESET_NAME_MAX];
  emit(g, "pos_embed.pos_embed", "", DIMS(1, 192 * 192, d));
  conv2d(g, "pos_embed.proj", d, 16, 2, 1);
  linear(g, "time_text_embed.timestep_embedder.linear_1", d, 256, 1);
  linear(g, "time_text_embed.timestep_embedder.linear_2", d, d, 1);
  linear(g, "time_text_embed.text_embedder.linear_1", d, 2048, 1);
  linear(g, "time_text_embed.text_embedder.linear_2", d, d, 1);
  linear(g, "context_embedder", d, 4096, 1);
  for (int i = 0; i < 38; i++) {
    const int last = i == 37;
    linear(g, P(b, "transformer_blocks.%d.norm1.linear", i), 6 * d, d, 1);
    linear(g, P(b, "transformer_blocks.%d.norm1_context.linear", i), (last ? 2 : 6) * d, d, 1);
    static const char *const lin[] = {"to_q", "to_k", "to_v", "add_q_proj", "add_k_proj",
                                      "add_v_proj", "to_out.0", "to_add_out"};
    for (size_t j = 0; j < (last ? 7u : 8u); j++)
      linear(g, P(b, "transformer_blocks.%d.attn.%s", i, lin[j]), d, d, 1);
    static const char *const qk[] = {"norm_q", "norm_k", "norm_added_q", "norm_added_k"};
    for (size_t j = 0; j < 4; j++) norm(g, P(b, "transformer_blocks.%d.attn.%s", i, qk[j]), hd, 0);
    linear(g, P(b, "transformer_blocks.%d.ff.net.0.proj", i), mlp, d, 1);
    linear(g, P(b, "transformer_blocks.%d.ff.net.2", i), d, mlp, 1);
    if (!last) {
      linear(g, P(b, "transformer_blocks.%d.ff_context.net.0.proj", i), mlp, d, 1);
      linear(g, P(b, "transformer_blocks.%d.ff_context.net.2", i), d, mlp, 1);
    }
  }
  linear(g, "norm_out.linear", 2 * d, d, 1);
  linear(g, "proj_out", 64, d, 1);
}

static void run_arch(gen *g, int arch) {
  switch (arch) {
  case ARCH_FLUX_DIT: arch_flux(g); break;
  case ARCH_T5_XXL: arch_t5(g, 32128, 0); break;
  case ARCH_UMT5_XXL: arch_t5(g, 256384, 1); break;
  case ARCH_CLIP_L: arch_clip(g, 768, 12, 3072, 0); break;
  case ARCH_CLIP_L_PROJ: arch_clip(g, 768, 12, 3072, 1); break;
  case ARCH_CLIP_G_PROJ: arch_clip(g, 1280, 32, 5120, 1); break;
  case ARCH_VAE_KL16: arch_vae_kl(g, 16); break;
  case ARCH_WAN_DIT_A14B: arch_wan_dit(g); break;
  case ARCH_WAN_VAE: arch_wan_vae(g); break;
  case ARCH_QWEN_IMAGE_DIT: arch_qwen_image(g); break;
  case ARCH_QWEN25_VL_7B: arch_qwen25_vl(g); break;
  case ARCH_SD35_LARGE_DIT: arch_sd35_large(g); break;
  default: break;
  }
}

/* ------------------------------------------------------------------------ */
/* Weightless folders: tokenizers and schedulers */

static const hoist__preset_file clip_tokenizer[] = {
    {"tokenizer_config.json",
     "{\"add_prefix_space\":false,\"bos_token\":\"<|startoftext|>\",\"clean_up_tokenization_spaces\":true,"
     "\"do_lower_case\":true,\"eos_token\":\"<|endoftext|>\",\"errors\":\"replace\","
     "\"model_max_length\":77,\"pad_token\":\"<|endoftext|>\",\"tokenizer_class\":\"CLIPTokenizer\","
     "\"unk_token\":\"<|endoftext|>\"}\n"},
    {"special_tokens_map.json",
     "{\"bos_token\":\"<|startoftext|>\",\"eos_token\":\"<|endoftext|>\",\"pad_token\":\"<|endoftext|>\","
     "\"unk_token\":\"<|endoftext|>\"}\n"},
};
static const hoist__preset_file clip_g_tokenizer[] = {
    {"tokenizer_config.json",
     "{\"add_prefix_space\":false,\"bos_token\":\"<|startoftext|>\",\"clean_up_tokenization_spaces\":true,"
     "\"do_lower_case\":true,\"eos_token\":\"<|endoftext|>\",\"errors\":\"replace\","
     "\"model_max_length\":77,\"pad_token\":\"!\",\"tokenizer_class\":\"CLIPTokenizer\","
     "\"unk_token\":\"<|endoftext|>\"}\n"},
    {"special_tokens_map.json",
     "{\"bos_token\":\"<|startoftext|>\",\"eos_token\":\"<|endoftext|>\",\"pad_token\":\"!\","
     "\"unk_token\":\"<|endoftext|>\"}\n"},
};
static const hoist__preset_file t5_tokenizer[] = {
    {"tokenizer_config.json",
     "{\"additional_special_tokens\":[],\"clean_up_tokenization_spaces\":true,\"eos_token\":\"</s>\","
     "\"extra_ids\":100,\"legacy\":true,\"model_max_length\":512,\"pad_token\":\"<pad>\","
     "\"sp_model_kwargs\":{},\"tokenizer_class\":\"T5Tokenizer\",\"unk_token\":\"<unk>\"}\n"},
    {"special_tokens_map.json", "{\"eos_token\":\"</s>\",\"pad_token\":\"<pad>\",\"unk_token\":\"<unk>\"}\n"},
};
static const hoist__preset_file umt5_tokenizer[] = {
    {"tokenizer_config.json",
     "{\"additional_special_tokens\":[],\"bos_token\":\"<s>\",\"clean_up_tokenization_spaces\":true,"
     "\"eos_token\":\"</s>\",\"extra_ids\":300,\"model_max_length\":1000000000000000019884624838656,"
     "\"pad_token\":\"<pad>\",\"sp_model_kwargs\":{},\"spaces_between_special_tokens\":false,"
     "\"tokenizer_class\":\"T5Tokenizer\",\"unk_token\":\"<unk>\"}\n"},
    {"special_tokens_map.json",
     "{\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"pad_token\":\"<pad>\",\"unk_token\":\"<unk>\"}\n"},
};
static const hoist__preset_file qwen_tokenizer[] = {
    {"tokenizer_config.json",
     "{\"add_prefix_space\":false,\"bos_token\":null,\"clean_up_tokenization_spaces\":false,"
     "\"eos_token\":\"<|im_end|>\",\"errors\":\"replace\",\"model_max_length\":131072,"
     "\"pad_token\":\"<|endoftext|>\",\"split_special_tokens\":false,\"tokenizer_class\":\"Qwen2Tokenizer\","
     "\"unk_token\":null,\"additional_special_tokens\":[\"<|im_start|>\",\"<|im_end|>\"]}\n"},
    {"special_tokens_map.json",
     "{\"eos_token\":{\"content\":\"<|im_end|>\",\"lstrip\":false,\"normalized\":false,\"rstrip\":false,"
     "\"single_word\":false},\"pad_token\":{\"content\":\"<|endoftext|>\",\"lstrip\":false,"
     "\"normalized\":false,\"rstrip\":false,\"single_word\":false}}\n"},
};
static const hoist__preset_file flux_scheduler[] = {
    {"scheduler_config.json",
     "{\"_class_name\":\"FlowMatchEulerDiscreteScheduler\",\"_diffusers_version\":\"0.30.0.dev0\","
     "\"base_image_seq_len\":256,\"base_shift\":0.5,\"max_image_seq_len\":4096,\"max_shift\":1.15,"
     "\"num_train_timesteps\":1000,\"shift\":3.0,\"use_dynamic_shifting\":true}\n"},
};
static const hoist__preset_file wan_scheduler[] = {
    {"scheduler_config.json",
     "{\"_class_name\":\"UniPCMultistepScheduler\",\"_diffusers_version\":\"0.35.0.dev0\","
     "\"beta_end\":0.02,\"beta_schedule\":\"linear\",\"beta_start\":0.0001,\"disable_corrector\":[],"
     "\"dynamic_thresholding_ratio\":0.995,\"final_sigmas_type\":\"zero\",\"flow_shift\":3.0,"
     "\"lower_order_final\":true,\"num_train_timesteps\":1000,\"predict_x0\":true,"
     "\"prediction_type\":\"flow_prediction\",\"rescale_betas_zero_snr\":false,\"sample_max_value\":1.0,"
     "\"solver_order\":2,\"solver_p\":null,\"solver_type\":\"bh2\",\"steps_offset\":0,"
     "\"thresholding\":false,\"timestep_spacing\":\"linspace\",\"trained_betas\":null,"
     "\"use_beta_sigmas\":false,\"use_exponential_sigmas\":false,\"use_flow_sigmas\":true,"
     "\"use_karras_sigmas\":false}\n"},
};
static const hoist__preset_file qwen_scheduler[] = {
    {"scheduler_config.json",
     "{\"_class_name\":\"FlowMatchEulerDiscreteScheduler\",\"_diffusers_version\":\"0.34.0.dev0\","
     "\"base_image_seq_len\":256,\"base_shift\":0.5,\"invert_sigmas\":false,\"max_image_seq_len\":8192,"
     "\"max_shift\":0.9,\"num_train_timesteps\":1000,\"shift\":1.0,\"shift_terminal\":0.02,"
     "\"stochastic_sampling\":false,\"time_shift_type\":\"exponential\",\"use_beta_sigmas\":false,"
     "\"use_dynamic_shifting\":true,\"use_exponential_sigmas\":false,\"use_karras_sigmas\":false}\n"},
};
static const hoist__preset_file sd3_scheduler[] = {
    {"scheduler_config.json",
     "{\"_class_name\":\"FlowMatchEulerDiscreteScheduler\",\"_diffusers_version\":\"0.31.0.dev0\","
     "\"num_train_timesteps\":1000,\"shift\":3.0}\n"},
};

#define FILES(a) sizeof(a) / sizeof((a)[0]), (a)
#define TOKENIZER(name, cls, files, vocab) \
  {name, "transformers", cls, HOIST_PRESET_TOKENIZER, HOIST_DTYPE_U8, 0, NULL, NULL, FILES(files), 0, NULL, \
   -1, vocab}
#define SCHEDULER(cls, files) \
  {"scheduler", "diffusers", cls, HOIST_PRESET_SCHEDULER, HOIST_DTYPE_U8, 0, NULL, NULL, FILES(files), 0, NULL, \
   -1, HOIST_VOCAB_NONE}

/* ------------------------------------------------------------------------ */
/* config.json texts */

#define CLIP_L_CONFIG(arch_name)                                                                     \
  "{\"_name_or_path\":\"openai/clip-vit-large-patch14\",\"architectures\":[\"" arch_name "\"],"     \
  "\"attention_dropout\":0.0,\"bos_token_id\":0,\"dropout\":0.0,\"eos_token_id\":2,"                \
  "\"hidden_act\":\"quick_gelu\",\"hidden_size\":768,\"initializer_factor\":1.0,"                   \
  "\"initializer_range\":0.02,\"intermediate_size\":3072,\"layer_norm_eps\":1e-05,"                  \
  "\"max_position_embeddings\":77,\"model_type\":\"clip_text_model\",\"num_attention_heads\":12,"   \
  "\"num_hidden_layers\":12,\"pad_token_id\":1,\"projection_dim\":768,\"torch_dtype\":"

#define T5_XXL_CONFIG(dtype)                                                                          \
  "{\"_name_or_path\":\"google/t5-v1_1-xxl\",\"architectures\":[\"T5EncoderModel\"],"               \
  "\"classifier_dropout\":0.0,\"d_ff\":10240,\"d_kv\":64,\"d_model\":4096,\"decoder_start_token_id\":0," \
  "\"dense_act_fn\":\"gelu_new\",\"dropout_rate\":0.1,\"eos_token_id\":1,"                          \
  "\"feed_forward_proj\":\"gated-gelu\",\"initializer_factor\":1.0,\"is_encoder_decoder\":true,"    \
  "\"is_gated_act\":true,\"layer_norm_epsilon\":1e-06,\"model_type\":\"t5\",\"num_decoder_layers\":24," \
  "\"num_heads\":64,\"num_layers\":24,\"output_past\":true,\"pad_token_id\":0,"                     \
  "\"relative_attention_max_distance\":128,\"relative_attention_num_buckets\":32,"                  \
  "\"tie_word_embeddings\":false,\"torch_dtype\":\"" dtype "\",\"use_cache\":true,\"vocab_size\":32128}\n"

#define VAE16_CONFIG(shift, scaling)                                                                  \
  "{\"_class_name\":\"AutoencoderKL\",\"_diffusers_version\":\"0.30.0.dev0\",\"act_fn\":\"silu\","  \
  "\"block_out_channels\":[128,256,512,512],\"down_block_types\":[\"DownEncoderBlock2D\","          \
  "\"DownEncoderBlock2D\",\"DownEncoderBlock2D\",\"DownEncoderBlock2D\"],\"force_upcast\":true,"    \
  "\"in_channels\":3,\"latent_channels\":16,\"latents_mean\":null,\"latents_std\":null,"            \
  "\"layers_per_block\":2,\"mid_block_add_attention\":true,\"norm_num_groups\":32,"                 \
  "\"out_channels\":3,\"sample_size\":1024,\"scaling_factor\":" scaling ",\"shift_factor\":" shift "," \
  "\"up_block_types\":[\"UpDecoderBlock2D\",\"UpDecoderBlock2D\",\"UpDecoderBlock2D\","             \
  "\"UpDecoderBlock2D\"],\"use_post_quant_conv\":false,\"use_quant_conv\":false}\n"

#define WAN_VAE_CONFIG(cls)                                                                           \
  "{\"_class_name\":\"" cls "\",\"_diffusers_version\":\"0.35.0.dev0\",\"attn_scales\":[],"         \
  "\"base_dim\":96,\"dim_mult\":[1,2,4,4],\"dropout\":0.0,\"latents_mean\":[-0.7571,-0.7089,"       \
  "-0.9113,0.1075,-0.1745,0.9653,-0.1517,1.5508,0.4134,-0.0715,0.5517,-0.3632,-0.1922,-0.9497,"    \
  "0.2503,-0.2921],\"latents_std\":[2.8184,1.4541,2.3275,2.6558,1.2196,1.7708,2.6052,2.0743,"      \
  "3.2687,2.1526,2.8652,1.5579,1.6382,1.1253,2.8251,1.916],\"num_res_blocks\":2,"                   \
  "\"temperal_downsample\":[false,true,true],\"z_dim\":16}\n"

#define WAN_DIT_CONFIG                                                                                \
  "{\"_class_name\":\"WanTransformer3DModel\",\"_diffusers_version\":\"0.35.0.dev0\","              \
  "\"added_kv_proj_dim\":null,\"attention_head_dim\":128,\"cross_attn_norm\":true,\"eps\":1e-06,"  \
  "\"ffn_dim\":13824,\"freq_dim\":256,\"image_dim\":null,\"in_channels\":16,"                       \
  "\"num_attention_heads\":40,\"num_layers\":40,\"out_channels\":16,\"patch_size\":[1,2,2],"        \
  "\"pos_embed_seq_len\":null,\"qk_norm\":\"rms_norm_across_heads\",\"rope_max_seq_len\":1024,"     \
  "\"text_dim\":4096}\n"

/* ------------------------------------------------------------------------ */
/* The presets */

static const hoist__preset_component flux_components[] = {
    SCHEDULER("FlowMatchEulerDiscreteScheduler", flux_scheduler),
    {"text_encoder", "transformers", "CLIPTextModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 1,
     "model", CLIP_L_CONFIG("CLIPTextModel") "\"bfloat16\",\"vocab_size\":49408}\n", 0, NULL,
     246000000ull, "FLUX.1-dev text_encoder/model.safetensors, 246 MB (bf16)", ARCH_CLIP_L, HOIST_VOCAB_NONE},
    {"text_encoder_2", "transformers", "T5EncoderModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 2,
     "model", T5_XXL_CONFIG("bfloat16"), 0, NULL, 9524621312ull,
     "FLUX.1-dev text_encoder_2/model.safetensors.index.json total_size 9524621312 (2 shards, bf16)",
     ARCH_T5_XXL, HOIST_VOCAB_NONE},
    TOKENIZER("tokenizer", "CLIPTokenizer", clip_tokenizer, HOIST_VOCAB_CLIP),
    TOKENIZER("tokenizer_2", "T5TokenizerFast", t5_tokenizer, HOIST_VOCAB_T5),
    {"transformer", "diffusers", "FluxTransformer2DModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 3,
     "diffusion_pytorch_model",
     "{\"_class_name\":\"FluxTransformer2DModel\",\"_diffusers_version\":\"0.30.0.dev0\","
     "\"attention_head_dim\":128,\"axes_dims_rope\":[16,56,56],\"guidance_embeds\":true,"
     "\"in_channels\":64,\"joint_attention_dim\":4096,\"num_attention_heads\":24,\"num_layers\":19,"
     "\"num_single_layers\":38,\"patch_size\":1,\"pooled_projection_dim\":768}\n",
     0, NULL, 23802816640ull,
     "FLUX.1-dev transformer/diffusion_pytorch_model.safetensors.index.json total_size 23802816640 "
     "(3 shards, bf16)",
     ARCH_FLUX_DIT, HOIST_VOCAB_NONE},
    {"vae", "diffusers", "AutoencoderKL", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 1,
     "diffusion_pytorch_model", VAE16_CONFIG("0.1159", "0.3611"), 0, NULL, 167666902ull,
     "FLUX.1-dev vae/diffusion_pytorch_model.safetensors, 167666902 B file (168 MB, bf16)",
     ARCH_VAE_KL16, HOIST_VOCAB_NONE},
};

static const hoist__preset_component wan_components[] = {
    SCHEDULER("UniPCMultistepScheduler", wan_scheduler),
    {"text_encoder", "transformers", "UMT5EncoderModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 3,
     "model",
     "{\"architectures\":[\"UMT5EncoderModel\"],\"classifier_dropout\":0.0,\"d_ff\":10240,\"d_kv\":64,"
     "\"d_model\":4096,\"decoder_start_token_id\":0,\"dense_act_fn\":\"gelu_new\",\"dropout_rate\":0.1,"
     "\"eos_token_id\":1,\"feed_forward_proj\":\"gated-gelu\",\"initializer_factor\":1.0,"
     "\"is_encoder_decoder\":true,\"is_gated_act\":true,\"layer_norm_epsilon\":1e-06,"
     "\"model_type\":\"umt5\",\"num_decoder_layers\":24,\"num_heads\":64,\"num_layers\":24,"
     "\"output_past\":true,\"pad_token_id\":0,\"relative_attention_max_distance\":128,"
     "\"relative_attention_num_buckets\":32,\"scalable_attention\":true,\"tie_word_embeddings\":false,"
     "\"tokenizer_class\":\"T5Tokenizer\",\"torch_dtype\":\"bfloat16\",\"use_cache\":true,"
     "\"vocab_size\":256384}\n",
     0, NULL, 11400000000ull, "Wan2.2-T2V-A14B-Diffusers text_encoder (umt5-xxl), 11.4 GB in 3 shards (bf16)",
     ARCH_UMT5_XXL, HOIST_VOCAB_NONE},
    TOKENIZER("tokenizer", "T5TokenizerFast", umt5_tokenizer, HOIST_VOCAB_UMT5),
    {"transformer", "diffusers", "WanTransformer3DModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 12,
     "diffusion_pytorch_model", WAN_DIT_CONFIG, 0, NULL, 28600000000ull,
     "Wan2.2-T2V-A14B-Diffusers transformer (high-noise expert), 28.6 GB in 12 shards (bf16)",
     ARCH_WAN_DIT_A14B, HOIST_VOCAB_NONE},
    {"transformer_2", "diffusers", "WanTransformer3DModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 12,
     "diffusion_pytorch_model", WAN_DIT_CONFIG, 0, NULL, 28600000000ull,
     "Wan2.2-T2V-A14B-Diffusers transformer_2 (low-noise expert), 28.6 GB in 12 shards (bf16)",
     ARCH_WAN_DIT_A14B, HOIST_VOCAB_NONE},
    {"vae", "diffusers", "AutoencoderKLWan", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_F32, 1,
     "diffusion_pytorch_model", WAN_VAE_CONFIG("AutoencoderKLWan"), 0, NULL, 508000000ull,
     "Wan2.2-T2V-A14B-Diffusers vae/diffusion_pytorch_model.safetensors, 508 MB (fp32)", ARCH_WAN_VAE, HOIST_VOCAB_NONE},
};

static const hoist__preset_component qwen_components[] = {
    SCHEDULER("FlowMatchEulerDiscreteScheduler", qwen_scheduler),
    {"text_encoder", "transformers", "Qwen2_5_VLForConditionalGeneration", HOIST_PRESET_WEIGHTS,
     HOIST_DTYPE_BF16, 4, "model",
     "{\"architectures\":[\"Qwen2_5_VLForConditionalGeneration\"],\"attention_dropout\":0.0,"
     "\"bos_token_id\":151643,\"eos_token_id\":151645,\"hidden_act\":\"silu\",\"hidden_size\":3584,"
     "\"image_token_id\":151655,\"initializer_range\":0.02,\"intermediate_size\":18944,"
     "\"max_position_embeddings\":128000,\"max_window_layers\":28,\"model_type\":\"qwen2_5_vl\","
     "\"num_attention_heads\":28,\"num_hidden_layers\":28,\"num_key_value_heads\":4,"
     "\"rms_norm_eps\":1e-06,\"rope_scaling\":{\"mrope_section\":[16,24,24],\"rope_type\":\"default\","
     "\"type\":\"default\"},\"rope_theta\":1000000.0,\"sliding_window\":32768,"
     "\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\",\"use_cache\":true,"
     "\"use_sliding_window\":false,\"video_token_id\":151656,\"vision_config\":{\"depth\":32,"
     "\"fullatt_block_indexes\":[7,15,23,31],\"hidden_act\":\"silu\",\"hidden_size\":1280,"
     "\"in_chans\":3,\"intermediate_size\":3420,\"model_type\":\"qwen2_5_vl\",\"num_heads\":16,"
     "\"out_hidden_size\":3584,\"patch_size\":14,\"spatial_merge_size\":2,\"spatial_patch_size\":14,"
     "\"temporal_patch_size\":2,\"tokens_per_second\":2,\"window_size\":112},"
     "\"vision_end_token_id\":151653,\"vision_start_token_id\":151652,\"vision_token_id\":151654,"
     "\"vocab_size\":152064}\n",
     0, NULL, 16600000000ull, "Qwen-Image text_encoder (Qwen2.5-VL-7B), 16.6 GB in 4 shards (bf16)",
     ARCH_QWEN25_VL_7B, HOIST_VOCAB_NONE},
    TOKENIZER("tokenizer", "Qwen2Tokenizer", qwen_tokenizer, HOIST_VOCAB_QWEN2),
    {"transformer", "diffusers", "QwenImageTransformer2DModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 9,
     "diffusion_pytorch_model",
     "{\"_class_name\":\"QwenImageTransformer2DModel\",\"_diffusers_version\":\"0.34.0.dev0\","
     "\"attention_head_dim\":128,\"axes_dims_rope\":[16,56,56],\"guidance_embeds\":false,"
     "\"in_channels\":64,\"joint_attention_dim\":3584,\"num_attention_heads\":24,\"num_layers\":60,"
     "\"out_channels\":16,\"patch_size\":2,\"pooled_projection_dim\":768}\n",
     0, NULL, 40900000000ull, "Qwen-Image transformer, 40.9 GB in 9 shards (bf16)", ARCH_QWEN_IMAGE_DIT, HOIST_VOCAB_NONE},
    {"vae", "diffusers", "AutoencoderKLQwenImage", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 1,
     "diffusion_pytorch_model", WAN_VAE_CONFIG("AutoencoderKLQwenImage"), 0, NULL, 254000000ull,
     "Qwen-Image vae/diffusion_pytorch_model.safetensors, 254 MB (0.25 GB, bf16)", ARCH_WAN_VAE, HOIST_VOCAB_NONE},
};

static const hoist__preset_component sd35_components[] = {
    SCHEDULER("FlowMatchEulerDiscreteScheduler", sd3_scheduler),
    {"text_encoder", "transformers", "CLIPTextModelWithProjection", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_F16,
     1, "model", CLIP_L_CONFIG("CLIPTextModelWithProjection") "\"float16\",\"vocab_size\":49408}\n", 0,
     NULL, 247000000ull, "SD3.5-large text_encoder/model.safetensors (CLIP-L), 247 MB (0.25 GB, fp16)",
     ARCH_CLIP_L_PROJ, HOIST_VOCAB_NONE},
    {"text_encoder_2", "transformers", "CLIPTextModelWithProjection", HOIST_PRESET_WEIGHTS,
     HOIST_DTYPE_F16, 1, "model",
     "{\"architectures\":[\"CLIPTextModelWithProjection\"],\"attention_dropout\":0.0,"
     "\"bos_token_id\":0,\"dropout\":0.0,\"eos_token_id\":2,\"hidden_act\":\"gelu\","
     "\"hidden_size\":1280,\"initializer_factor\":1.0,\"initializer_range\":0.02,"
     "\"intermediate_size\":5120,\"layer_norm_eps\":1e-05,\"max_position_embeddings\":77,"
     "\"model_type\":\"clip_text_model\",\"num_attention_heads\":20,\"num_hidden_layers\":32,"
     "\"pad_token_id\":1,\"projection_dim\":1280,\"torch_dtype\":\"float16\",\"vocab_size\":49408}\n",
     0, NULL, 1390000000ull, "SD3.5-large text_encoder_2/model.safetensors (CLIP-G), 1.39 GB (fp16)",
     ARCH_CLIP_G_PROJ, HOIST_VOCAB_NONE},
    {"text_encoder_3", "transformers", "T5EncoderModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_F16, 2,
     "model", T5_XXL_CONFIG("float16"), 0, NULL, 9520000000ull,
     "SD3.5-large text_encoder_3 (T5-XXL), 9.52 GB in 2 shards (fp16)", ARCH_T5_XXL, HOIST_VOCAB_NONE},
    TOKENIZER("tokenizer", "CLIPTokenizer", clip_tokenizer, HOIST_VOCAB_CLIP),
    TOKENIZER("tokenizer_2", "CLIPTokenizer", clip_g_tokenizer, HOIST_VOCAB_CLIP),
    TOKENIZER("tokenizer_3", "T5TokenizerFast", t5_tokenizer, HOIST_VOCAB_T5),
    {"transformer", "diffusers", "SD3Transformer2DModel", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_BF16, 2,
     "diffusion_pytorch_model",
     "{\"_class_name\":\"SD3Transformer2DModel\",\"_diffusers_version\":\"0.31.0.dev0\","
     "\"attention_head_dim\":64,\"caption_projection_dim\":2432,\"dual_attention_layers\":[],"
     "\"in_channels\":16,\"joint_attention_dim\":4096,\"num_attention_heads\":38,\"num_layers\":38,"
     "\"out_channels\":16,\"patch_size\":2,\"pooled_projection_dim\":2048,\"pos_embed_max_size\":192,"
     "\"qk_norm\":\"rms_norm\",\"sample_size\":128}\n",
     0, NULL, 16300000000ull, "SD3.5-large transformer, 16.3 GB in 2 shards (bf16)", ARCH_SD35_LARGE_DIT, HOIST_VOCAB_NONE},
    {"vae", "diffusers", "AutoencoderKL", HOIST_PRESET_WEIGHTS, HOIST_DTYPE_F16, 1,
     "diffusion_pytorch_model", VAE16_CONFIG("0.0609", "1.5305"), 0, NULL, 167666902ull,
     "SD3.5-large vae/diffusion_pytorch_model.safetensors, 168 MB (0.17 GB, fp16)", ARCH_VAE_KL16, HOIST_VOCAB_NONE},
};

#define COMPONENTS(a) sizeof(a) / sizeof((a)[0]), (a)
static const hoist__preset presets[] = {
    {"flux1-dev", "black-forest-labs/FLUX.1-dev", "FluxPipeline", "0.30.0.dev0", NULL,
     COMPONENTS(flux_components)},
    {"wan2.2-t2v-a14b", "Wan-AI/Wan2.2-T2V-A14B-Diffusers", "WanPipeline", "0.35.0.dev0",
     "{\"boundary_ratio\":0.875,\"expand_timesteps\":false}", COMPONENTS(wan_components)},
    {"qwen-image", "Qwen/Qwen-Image", "QwenImagePipeline", "0.34.0.dev0", NULL,
     COMPONENTS(qwen_components)},
    {"sd3.5-large", "stabilityai/stable-diffusion-3.5-large", "StableDiffusion3Pipeline",
     "0.31.0.dev0", NULL, COMPONENTS(sd35_components)},
};

/* ------------------------------------------------------------------------ */
/* Public functions */

size_t hoist__preset_count(void) { return sizeof presets / sizeof presets[0]; }

const hoist__preset *hoist__preset_at(size_t i) {
  return i < hoist__preset_count() ? &presets[i] : NULL;
}

const hoist__preset *hoist__preset_find(const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < hoist__preset_count(); i++)
    if (strcmp(presets[i].name, name) == 0) return &presets[i];
  return NULL;
}

int hoist__preset_scale_valid(double scale) { return scale > 0.0 && scale <= 1.0; }

int hoist__preset_tensors(const hoist__preset_component *c, double scale,
                         hoist__preset_tensor_fn fn, void *user) {
  if (!hoist__preset_scale_valid(scale)) return HOIST_INVALID_ARGUMENT;
  if (c->kind != HOIST_PRESET_WEIGHTS) return 0;
  gen g = {fn, user, scale, c->dtype, 0};
  run_arch(&g, c->arch);
  return g.rc;
}

typedef struct totals {
  uint64_t bytes, count;
} totals;

static int add_total(void *user, const hoist__preset_tensor *t) {
  totals *s = user;
  if (__builtin_add_overflow(s->bytes, t->nbytes, &s->bytes)) return HOIST_OVERFLOW;
  s->count++;
  return 0;
}

int hoist__preset_component_totals(const hoist__preset_component *c, double scale,
                                  uint64_t *bytes, uint64_t *tensors) {
  totals s = {0, 0};
  int rc = hoist__preset_tensors(c, scale, add_total, &s);
  if (rc != 0) return rc;
  if (bytes) *bytes = s.bytes;
  if (tensors) *tensors = s.count;
  return HOIST_OK;
}

int hoist__preset_totals(const hoist__preset *p, double scale, uint64_t *bytes,
                        uint64_t *tensors) {
  uint64_t b = 0, n = 0;
  for (size_t i = 0; i < p->component_count; i++) {
    uint64_t cb, cn;
    int rc = hoist__preset_component_totals(&p->components[i], scale, &cb, &cn);
    if (rc != 0) return rc;
    if (__builtin_add_overflow(b, cb, &b)) return HOIST_OVERFLOW;
    n += cn;
  }
  if (bytes) *bytes = b;
  if (tensors) *tensors = n;
  return HOIST_OK;
}

uint32_t hoist__preset_shard_of(uint64_t before, uint64_t nbytes, uint64_t total,
                               uint32_t shards) {
  if (shards <= 1 || total == 0) return 0;
  /* Midpoint of the tensor, in units of total/shards; long double keeps
   * the product exact enough for totals up to ~10^11 bytes. */
  long double mid = (long double)before + (long double)nbytes / 2.0L;
  long double k = mid * (long double)shards / (long double)total;
  uint32_t s = k <= 0 ? 0 : (uint32_t)k;
  return s >= shards ? shards - 1 : s;
}

int hoist__preset_shard_name(const hoist__preset_component *c, uint32_t k, char *buf,
                            size_t size) {
  if (c->shards <= 1) return snprintf(buf, size, "%s.safetensors", c->stem);
  return snprintf(buf, size, "%s-%05u-of-%05u.safetensors", c->stem, k + 1, c->shards);
}

int hoist__preset_index_name(const hoist__preset_component *c, char *buf, size_t size) {
  return snprintf(buf, size, "%s.safetensors.index.json", c->stem);
}
