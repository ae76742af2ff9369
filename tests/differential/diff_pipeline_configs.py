"""diff_pipeline_configs.py — `hoist make-pipeline` writes folders that the
libraries they name can read: every config.json describes the tensors
beside it, and every tokenizer folder loads with the tokenizer class
model_index.json names.

For every preset, written at a small scale:
  * config.json against the tensors.  The shapes a config implies are
    derived here, independently of the C tables, from the architecture's
    definition in diffusers/transformers (hidden sizes, heads, layer
    counts, vocabularies, channels); each is put through make-pipeline's
    documented scaling rule (the largest dimension, the first of equals,
    becomes max(1, floor(d * F + 0.5))) and compared with the written
    header; layer counts are counted from the tensor names.  So the
    configs are checked against the published model (scale 1) while only
    a few MB are written.  The configs say the published sizes: a model
    can be built from them only at scale 1.
  * tokenizers: tokenizer.json loads with tokenizers.Tokenizer.from_file;
    the class of model_index.json (CLIPTokenizer, T5TokenizerFast,
    Qwen2Tokenizer) loads with transformers' from_pretrained, encodes a
    prompt padded to the length the pipelines use, with its special
    tokens where the model expects them and every id below the
    vocab_size of the text encoder it feeds, and decodes it back.
  * the scheduler folder names the class of model_index.json.

Prints `diff_pipeline_configs: N passed, 0 failed`; exits 1 on any failure.
Needs transformers and tokenizers (not torch).
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys

import tokenizers
import transformers

passed = 0
failed = 0

SCALE = 0.0002
PROMPT = "A photo of a red cube on a table, high quality"


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)
    return cond


def scaled(shape, f):
    """make-pipeline's scaling rule."""
    shape = list(shape)
    if not shape or f >= 1.0:
        return shape
    big = max(range(len(shape)), key=lambda i: (shape[i], -i))
    shape[big] = max(1, int(math.floor(shape[big] * f + 0.5)))
    return shape


def read_headers(folder):
    """{tensor: shape} of every .safetensors file of a component folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        out.update({k: v["shape"] for k, v in header.items()})
    return out


class Component:
    """A written component: its config and tensors, with checks in the
    published model's terms."""

    def __init__(self, where, folder, scale):
        self.where = where
        self.config = json.load(open(os.path.join(folder, "config.json")))
        self.tensors = read_headers(folder)
        self.scale = scale

    def shape(self, name, real):
        got = self.tensors.get(name)
        want = scaled(real, self.scale)
        check(got == want, f"{self.where}: {name} is {got}, the config says {real} "
                           f"(scaled: {want})")

    def present(self, name, expected=True):
        check((name in self.tensors) == expected,
              f"{self.where}: {name} {'missing' if expected else 'present'} against the config")

    def count(self, pattern, want):
        """The number of distinct indices N in names matching pattern (with
        one (\\d+) group)."""
        rx = re.compile(pattern)
        got = {m.group(1) for n in self.tensors if (m := rx.match(n))}
        check(len(got) == want, f"{self.where}: {len(got)} of {pattern}, the config says {want}")


def check_flux(c):
    k = c.config
    hd, heads = k["attention_head_dim"], k["num_attention_heads"]
    inner, mlp = hd * heads, int(hd * heads * k.get("mlp_ratio", 4.0))
    check(sum(k["axes_dims_rope"]) == hd, f"{c.where}: axes_dims_rope sum to the head dim")
    out = k.get("out_channels") or k["in_channels"]
    c.shape("x_embedder.weight", [inner, k["in_channels"]])
    c.shape("context_embedder.weight", [inner, k["joint_attention_dim"]])
    c.shape("time_text_embed.timestep_embedder.linear_1.weight", [inner, 256])
    c.shape("time_text_embed.text_embedder.linear_1.weight", [inner, k["pooled_projection_dim"]])
    c.present("time_text_embed.guidance_embedder.linear_1.weight", k["guidance_embeds"])
    c.count(r"transformer_blocks\.(\d+)\.", k["num_layers"])
    c.count(r"single_transformer_blocks\.(\d+)\.", k["num_single_layers"])
    c.shape("transformer_blocks.0.attn.to_q.weight", [inner, inner])
    c.shape("transformer_blocks.0.attn.norm_q.weight", [hd])
    c.shape("transformer_blocks.0.ff.net.0.proj.weight", [mlp, inner])
    c.shape("transformer_blocks.0.norm1.linear.weight", [6 * inner, inner])
    c.shape("single_transformer_blocks.0.proj_out.weight", [inner, inner + mlp])
    c.shape("norm_out.linear.weight", [2 * inner, inner])
    c.shape("proj_out.weight", [k["patch_size"] ** 2 * out, inner])


def check_sd3(c):
    k = c.config
    hd, heads, p = k["attention_head_dim"], k["num_attention_heads"], k["patch_size"]
    inner = hd * heads
    c.shape("pos_embed.proj.weight", [inner, k["in_channels"], p, p])
    c.shape("pos_embed.pos_embed", [1, k["pos_embed_max_size"] ** 2, inner])
    c.shape("context_embedder.weight", [k["caption_projection_dim"], k["joint_attention_dim"]])
    c.shape("time_text_embed.text_embedder.linear_1.weight", [inner, k["pooled_projection_dim"]])
    c.count(r"transformer_blocks\.(\d+)\.", k["num_layers"])
    c.shape("transformer_blocks.0.attn.norm_q.weight", [hd])
    c.shape("transformer_blocks.0.ff.net.0.proj.weight", [4 * inner, inner])
    c.shape("proj_out.weight", [p * p * k["out_channels"], inner])


def check_qwen_image(c):
    k = c.config
    hd, heads, p = k["attention_head_dim"], k["num_attention_heads"], k["patch_size"]
    inner = hd * heads
    check(sum(k["axes_dims_rope"]) == hd, f"{c.where}: axes_dims_rope sum to the head dim")
    c.shape("img_in.weight", [inner, k["in_channels"]])
    c.shape("txt_in.weight", [inner, k["joint_attention_dim"]])
    c.shape("txt_norm.weight", [k["joint_attention_dim"]])
    c.count(r"transformer_blocks\.(\d+)\.", k["num_layers"])
    c.shape("transformer_blocks.0.attn.norm_q.weight", [hd])
    c.shape("transformer_blocks.0.img_mlp.net.0.proj.weight", [4 * inner, inner])
    c.shape("proj_out.weight", [p * p * k["out_channels"], inner])


def check_wan(c):
    k = c.config
    inner = k["attention_head_dim"] * k["num_attention_heads"]
    c.shape("patch_embedding.weight", [inner, k["in_channels"], *k["patch_size"]])
    c.shape("condition_embedder.text_embedder.linear_1.weight", [inner, k["text_dim"]])
    c.shape("condition_embedder.time_embedder.linear_1.weight", [inner, k["freq_dim"]])
    c.count(r"blocks\.(\d+)\.", k["num_layers"])
    c.shape("blocks.0.ffn.net.0.proj.weight", [k["ffn_dim"], inner])
    check(k["qk_norm"] == "rms_norm_across_heads", f"{c.where}: qk_norm across heads")
    c.shape("blocks.0.attn1.norm_q.weight", [inner])
    c.present("blocks.0.norm2.weight", k["cross_attn_norm"])
    c.shape("proj_out.weight", [k["out_channels"] * math.prod(k["patch_size"]), inner])


def check_t5(c):
    k = c.config
    d, inner = k["d_model"], k["num_heads"] * k["d_kv"]
    per_block = k["model_type"] == "umt5"
    c.shape("shared.weight", [k["vocab_size"], d])
    c.count(r"encoder\.block\.(\d+)\.", k["num_layers"])
    for i in (0, k["num_layers"] - 1):
        b = f"encoder.block.{i}.layer."
        c.shape(b + "0.SelfAttention.q.weight", [inner, d])
        c.shape(b + "0.SelfAttention.o.weight", [d, inner])
        rel = b + "0.SelfAttention.relative_attention_bias.weight"
        if i == 0 or per_block:
            c.shape(rel, [k["relative_attention_num_buckets"], k["num_heads"]])
        else:
            c.present(rel, False)
        check(k["feed_forward_proj"].startswith("gated"), f"{c.where}: gated feed-forward")
        c.shape(b + "1.DenseReluDense.wi_0.weight", [k["d_ff"], d])
        c.shape(b + "1.DenseReluDense.wi_1.weight", [k["d_ff"], d])
        c.shape(b + "1.DenseReluDense.wo.weight", [d, k["d_ff"]])
    c.shape("encoder.final_layer_norm.weight", [d])


def check_clip(c):
    k = c.config
    h = k["hidden_size"]
    check(h % k["num_attention_heads"] == 0, f"{c.where}: heads divide the hidden size")
    c.shape("text_model.embeddings.token_embedding.weight", [k["vocab_size"], h])
    c.shape("text_model.embeddings.position_embedding.weight", [k["max_position_embeddings"], h])
    c.count(r"text_model\.encoder\.layers\.(\d+)\.", k["num_hidden_layers"])
    c.shape("text_model.encoder.layers.0.self_attn.q_proj.weight", [h, h])
    c.shape("text_model.encoder.layers.0.mlp.fc1.weight", [k["intermediate_size"], h])
    c.shape("text_model.final_layer_norm.weight", [h])
    with_projection = k["architectures"] == ["CLIPTextModelWithProjection"]
    if with_projection:
        c.shape("text_projection.weight", [k["projection_dim"], h])
    else:
        c.present("text_projection.weight", False)


def check_qwen_vl(c):
    k, v = c.config, c.config["vision_config"]
    h, heads, kv = k["hidden_size"], k["num_attention_heads"], k["num_key_value_heads"]
    hd = h // heads
    c.shape("model.embed_tokens.weight", [k["vocab_size"], h])
    c.present("lm_head.weight", not k["tie_word_embeddings"])
    c.shape("lm_head.weight", [k["vocab_size"], h])
    c.count(r"model\.layers\.(\d+)\.", k["num_hidden_layers"])
    c.shape("model.layers.0.self_attn.q_proj.weight", [heads * hd, h])
    c.shape("model.layers.0.self_attn.k_proj.weight", [kv * hd, h])
    c.shape("model.layers.0.mlp.gate_proj.weight", [k["intermediate_size"], h])
    vh = v["hidden_size"]
    c.count(r"visual\.blocks\.(\d+)\.", v["depth"])
    c.shape("visual.patch_embed.proj.weight",
            [vh, v["in_chans"], v["temporal_patch_size"], v["patch_size"], v["patch_size"]])
    c.shape("visual.blocks.0.mlp.gate_proj.weight", [v["intermediate_size"], vh])
    merged = vh * v["spatial_merge_size"] ** 2
    c.shape("visual.merger.mlp.0.weight", [merged, merged])
    c.shape("visual.merger.mlp.2.weight", [v["out_hidden_size"], merged])


def check_vae_kl(c):
    k = c.config
    ch, lpb, z = k["block_out_channels"], k["layers_per_block"], k["latent_channels"]
    for n in ch:
        check(n % k["norm_num_groups"] == 0, f"{c.where}: {n} channels in groups")
    c.shape("encoder.conv_in.weight", [ch[0], k["in_channels"], 3, 3])
    c.count(r"encoder\.down_blocks\.(\d+)\.", len(ch))
    c.count(r"encoder\.down_blocks\.0\.resnets\.(\d+)\.", lpb)
    c.count(r"decoder\.up_blocks\.0\.resnets\.(\d+)\.", lpb + 1)
    cin = ch[0]
    for i, n in enumerate(ch):
        c.shape(f"encoder.down_blocks.{i}.resnets.0.conv1.weight", [n, cin, 3, 3])
        cin = n
    c.shape("encoder.conv_out.weight", [2 * z, ch[-1], 3, 3])
    c.shape("decoder.conv_in.weight", [ch[-1], z, 3, 3])
    c.shape("decoder.up_blocks.0.resnets.0.conv1.weight", [ch[-1], ch[-1], 3, 3])
    c.shape("decoder.conv_out.weight", [k["out_channels"], ch[0], 3, 3])
    c.present("quant_conv.weight", k["use_quant_conv"])
    c.present("post_quant_conv.weight", k["use_post_quant_conv"])
    c.present("encoder.mid_block.attentions.0.to_q.weight", k["mid_block_add_attention"])


def check_vae_wan(c):
    k = c.config
    dims = [k["base_dim"] * m for m in [1] + k["dim_mult"]]
    z, stages = k["z_dim"], len(k["dim_mult"])
    c.shape("encoder.conv_in.weight", [dims[0], 3, 3, 3, 3])
    c.count(r"encoder\.down_blocks\.(\d+)\.", stages * k["num_res_blocks"] + stages - 1)
    times = sum(1 for n in c.tensors if re.match(r"encoder\.down_blocks\.\d+\.time_conv\.weight", n))
    check(times == sum(k["temperal_downsample"]), f"{c.where}: {times} temporal downsamplers")
    c.shape("encoder.conv_out.weight", [2 * z, dims[-1], 3, 3, 3])
    c.shape("quant_conv.weight", [2 * z, 2 * z, 1, 1, 1])
    c.shape("post_quant_conv.weight", [z, z, 1, 1, 1])
    c.shape("decoder.conv_in.weight", [dims[-1], z, 3, 3, 3])
    c.count(r"decoder\.up_blocks\.(\d+)\.", stages)
    c.shape("decoder.norm_out.gamma", [dims[0], 1, 1, 1])
    c.shape("decoder.conv_out.weight", [3, dims[0], 3, 3, 3])


CHECKS = {
    "FluxTransformer2DModel": check_flux,
    "SD3Transformer2DModel": check_sd3,
    "QwenImageTransformer2DModel": check_qwen_image,
    "WanTransformer3DModel": check_wan,
    "T5EncoderModel": check_t5,
    "UMT5EncoderModel": check_t5,
    "CLIPTextModel": check_clip,
    "CLIPTextModelWithProjection": check_clip,
    "Qwen2_5_VLForConditionalGeneration": check_qwen_vl,
    "AutoencoderKL": check_vae_kl,
    "AutoencoderKLWan": check_vae_wan,
    "AutoencoderKLQwenImage": check_vae_wan,
}

# The text encoder each tokenizer feeds, by the pipelines' naming.
ENCODER_OF = {"tokenizer": "text_encoder", "tokenizer_2": "text_encoder_2",
              "tokenizer_3": "text_encoder_3"}


def check_tokenizer(d, name, cls_name, index):
    folder = os.path.join(d, name)
    where = f"{os.path.basename(d)}/{name}"
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        try:
            tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
            check(len(tok.encode("a red cube").ids) > 0, f"{where}: tokenizer.json encodes")
        except Exception as e:
            check(False, f"{where}: tokenizers.Tokenizer.from_file: {e}")
    cls = getattr(transformers, cls_name, None)
    if not check(cls is not None, f"{where}: transformers has {cls_name}"):
        return
    try:
        t = cls.from_pretrained(folder)
    except Exception as e:
        check(False, f"{where}: {cls_name}.from_pretrained: {e}")
        return
    encoder = ENCODER_OF.get(name)
    vocab_size = None
    if encoder in index:
        cfg = json.load(open(os.path.join(d, encoder, "config.json")))
        vocab_size = cfg.get("vocab_size")
    # The lengths the pipelines pad to: CLIP 77, T5 512 (FLUX, SD3) or 226
    # (Wan), Qwen as it comes.
    length = {"CLIPTokenizer": 77, "T5TokenizerFast": 256}.get(cls_name)
    if length:
        enc = t(PROMPT, padding="max_length", max_length=length, truncation=True)
    else:
        enc = t(PROMPT)
    ids = enc["input_ids"]
    check(not length or len(ids) == length, f"{where}: padded to {length}, got {len(ids)}")
    check(t.unk_token_id is None or t.unk_token_id not in ids[:len(PROMPT.split()) - 1]
          or cls_name == "CLIPTokenizer", f"{where}: the prompt's words are in the vocabulary")
    if vocab_size is not None:
        check(max(ids) < vocab_size and len(t) <= vocab_size,
              f"{where}: ids below {encoder}'s vocab_size {vocab_size} "
              f"(max id {max(ids)}, {len(t)} tokens)")
    if cls_name == "CLIPTokenizer":
        check(ids[0] == t.bos_token_id and t.eos_token_id in ids, f"{where}: <|startoftext|> .. "
                                                                 f"<|endoftext|>")
        # CLIPTextModel pools at the argmax of the ids (eos_token_id 2 in
        # the config): the end token must have the largest id.
        check(t.convert_tokens_to_ids("<|endoftext|>") == len(t) - 1,
              f"{where}: <|endoftext|> has the largest id")
    if cls_name == "T5TokenizerFast":
        check(t.pad_token_id == 0 and t.eos_token_id == 1, f"{where}: <pad> 0, </s> 1")
        check(ids[ids.index(1) + 1:] == [0] * (len(ids) - ids.index(1) - 1),
              f"{where}: </s> then padding")
        check(t.convert_tokens_to_ids("<extra_id_0>") != t.unk_token_id, f"{where}: sentinels")
    if cls_name == "Qwen2Tokenizer":
        tpl = "<|im_start|>user\n" + PROMPT + "<|im_end|>"
        qids = t(tpl)["input_ids"]
        check(qids[0] == t.convert_tokens_to_ids("<|im_start|>") and qids[-1] == t.eos_token_id,
              f"{where}: chat markers are single tokens")
    text = t.decode(ids, skip_special_tokens=True)
    check(text.lower().replace(" ", "") == PROMPT.lower().replace(" ", ""),
          f"{where}: decodes back to the prompt, got {text!r}")


def check_pipeline(hoist, preset, d):
    r = subprocess.run([hoist, "make-pipeline", "--preset", preset, "--scale", str(SCALE),
                        "--seed", "3", d], capture_output=True, text=True)
    if not check(r.returncode == 0, f"{preset}: make-pipeline exit {r.returncode}: {r.stderr}"):
        return
    index = json.load(open(os.path.join(d, "model_index.json")))
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list):
            continue
        library, cls_name = value
        folder = os.path.join(d, name)
        where = f"{preset}/{name}"
        if os.path.exists(os.path.join(folder, "config.json")):
            arch = CHECKS.get(cls_name)
            if check(arch is not None, f"{where}: a check for {cls_name}"):
                arch(Component(where, folder, SCALE))
        elif name.startswith("tokenizer"):
            check_tokenizer(d, name, cls_name, index)
        elif name == "scheduler":
            cfg = json.load(open(os.path.join(folder, "scheduler_config.json")))
            check(cfg["_class_name"] == cls_name, f"{where}: scheduler_config names {cls_name}")
        else:
            check(False, f"{where}: a folder with neither config nor tokenizer")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hoist", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.tmp, ignore_errors=True)
    os.makedirs(a.tmp)
    for preset in ("flux1-dev", "sd3.5-large", "wan2.2-t2v-a14b", "qwen-image"):
        check_pipeline(a.hoist, preset, os.path.join(a.tmp, preset))
    shutil.rmtree(a.tmp, ignore_errors=True)
    print(f"diff_pipeline_configs: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
