#!/usr/bin/env python3
"""make_vectors.py — writes the test vectors: safetensors files made by the
official writer (huggingface `safetensors`, with numpy), and expect.json,
which the reader suites and the differential tests check hoist against.

usage: make_vectors.py OUT_DIR

OUT_DIR receives
  all_dtypes.safetensors  every dtype the writer knows in a [3, 5] tensor, a
                          scalar, a 1000-element vector and a zero-size
                          tensor, with a metadata entry outside ASCII;
  empty.safetensors       no tensors at all;
  numpy.safetensors       two arrays through safetensors.numpy.save_file;
  pipe/                   a FLUX.1-shaped pipeline: model_index.json, a CLIP
                          text encoder (F32, one file), a T5 encoder (BF16)
                          sharded into five files with its
                          model.safetensors.index.json, a transformer (BF16)
                          and a VAE (F32); the scheduler and tokenizers are
                          named but have no folder, as in a download that
                          skipped them;
  expect.json             for every .safetensors under OUT_DIR (path relative
                          to it): file_size, header_len, payload_bytes,
                          metadata (or null) and per tensor its dtype, shape,
                          data_offsets and the sha256 of its bytes.

The contents come from a fixed seed and every metadata map has one entry
(the writer orders a map's entries at random), so two runs write the same
bytes.  The sha256 in expect.json is of the bytes this script handed to the
writer, and the offsets are the ones the writer put in the header; the
script checks the two agree before it writes expect.json, so a vector that
does not say what it holds is never produced.  The folder is written beside
OUT_DIR and renamed into place, so a reader sees all of it or none of it.
"""
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np
import safetensors
from safetensors.numpy import save_file

SEED = 20240601

# safetensors header dtype -> (TensorSpec dtype, bytes per element).
DTYPES = {
    "BOOL": ("bool", 1), "U8": ("uint8", 1), "I8": ("int8", 1),
    "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
    "I16": ("int16", 2), "U16": ("uint16", 2), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I32": ("int32", 4), "U32": ("uint32", 4), "F32": ("float32", 4),
    "I64": ("int64", 8), "U64": ("uint64", 8), "F64": ("float64", 8), "C64": ("complex64", 8),
}


class Tensors:
    """Named tensors as raw little-endian bytes, in the order they are added."""

    def __init__(self, rng):
        self.rng = rng
        self.items = {}

    def add(self, name, dtype, shape):
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        self.items[name] = (dtype, list(shape), self.contents(dtype, n))

    def contents(self, dtype, n):
        """Random values a model could hold: weights near zero for floats
        (BF16 the top half of an F32), the whole range for integers, raw
        bytes for FP8, 0/1 for BOOL."""
        rng = self.rng
        if dtype == "BOOL":
            return rng.integers(0, 2, n, dtype=np.uint8).tobytes()
        if dtype in ("F8_E4M3", "F8_E5M2"):
            return rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        if dtype == "BF16":
            f = (rng.standard_normal(n) * 0.02).astype("<f4")
            return (f.view("<u4") >> 16).astype("<u2").tobytes()
        if dtype in ("F16", "F32", "F64"):
            width = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}[dtype]
            return (rng.standard_normal(n) * 0.02).astype(width).tobytes()
        if dtype == "C64":
            return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype("<c8").tobytes()
        width = {"U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "I32": "<i4",
                 "U32": "<u4", "I64": "<i8", "U64": "<u8"}[dtype]
        info = np.iinfo(np.dtype(width))
        return rng.integers(info.min, info.max, n, dtype=np.dtype(width), endpoint=True).tobytes()

    def write(self, path, metadata, names=None):
        """Writes the named tensors (all by default) with the official
        writer's serialize_file and returns what expect.json says of them."""
        names = list(self.items) if names is None else names
        keep, specs = [], {}
        for name in names:
            dtype, shape, raw = self.items[name]
            buf = np.frombuffer(raw, dtype=np.uint8) if raw else np.zeros(1, np.uint8)
            keep.append(buf)
            specs[name] = safetensors.TensorSpec(dtype=DTYPES[dtype][0], shape=shape,
                                                 data_ptr=buf.ctypes.data, data_len=len(raw))
        safetensors.serialize_file(specs, path, metadata=metadata)
        return describe(path, {n: self.items[n] for n in names})


def describe(path, tensors):
    """expect.json's entry for a written file, checked against what was meant."""
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len].decode("utf-8"))
    data = raw[8 + header_len:]
    metadata = header.pop("__metadata__", None)
    if set(header) != set(tensors):
        raise SystemExit(f"{path}: the header names {sorted(header)}, not {sorted(tensors)}")
    out = {}
    for name, (dtype, shape, want) in tensors.items():
        h = header[name]
        b, e = h["data_offsets"]
        if h["dtype"] != dtype or h["shape"] != shape or data[b:e] != want:
            raise SystemExit(f"{path}: tensor {name!r} is not what was written")
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [b, e],
                     "sha256": hashlib.sha256(want).hexdigest()}
    return {"file_size": len(raw), "header_len": header_len, "payload_bytes": len(data),
            "metadata": metadata, "tensors": out}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def single_files(out, rng, expect):
    t = Tensors(rng)
    for dtype in DTYPES:
        t.add(f"t_{dtype.lower()}", dtype, [3, 5])
    t.add("scalar_f32", "F32", [])
    t.add("vec_f32", "F32", [1000])
    t.add("empty_bf16", "BF16", [0, 7])
    expect["all_dtypes.safetensors"] = t.write(os.path.join(out, "all_dtypes.safetensors"),
                                               {"note": "every dtype — ünï \"q\"\n"})

    # numpy's own writer, no metadata.
    arrays = {"a": (rng.standard_normal((3, 4)) * 0.02).astype("<f4"),
              "b": rng.integers(-2**40, 2**40, (2, 2), dtype="<i8")}
    path = os.path.join(out, "numpy.safetensors")
    save_file(arrays, path)
    expect["numpy.safetensors"] = describe(path, {
        "a": ("F32", [3, 4], arrays["a"].tobytes()), "b": ("I64", [2, 2], arrays["b"].tobytes())})

    path = os.path.join(out, "empty.safetensors")
    save_file({}, path)
    expect["empty.safetensors"] = describe(path, {})


def clip_text_encoder(rng, hidden=64, ffn=128, layers=2, vocab=1000, positions=77):
    t = Tensors(rng)
    t.add("embeddings.token_embedding.weight", "F32", [vocab, hidden])
    t.add("embeddings.position_embedding.weight", "F32", [positions, hidden])
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            t.add(p + f"self_attn.{proj}.weight", "F32", [hidden, hidden])
            t.add(p + f"self_attn.{proj}.bias", "F32", [hidden])
        t.add(p + "layer_norm1.weight", "F32", [hidden])
        t.add(p + "layer_norm1.bias", "F32", [hidden])
        t.add(p + "mlp.fc1.weight", "F32", [ffn, hidden])
        t.add(p + "mlp.fc1.bias", "F32", [ffn])
        t.add(p + "mlp.fc2.weight", "F32", [hidden, ffn])
        t.add(p + "mlp.fc2.bias", "F32", [hidden])
        t.add(p + "layer_norm2.weight", "F32", [hidden])
        t.add(p + "layer_norm2.bias", "F32", [hidden])
    t.add("final_layer_norm.weight", "F32", [hidden])
    t.add("final_layer_norm.bias", "F32", [hidden])
    config = {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
              "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
              "num_attention_heads": 2, "vocab_size": vocab,
              "max_position_embeddings": positions, "dtype": "float32"}
    return t, config


def t5_encoder(rng, d_model=256, d_ff=1024, layers=4, vocab=4000, buckets=32, heads=4):
    t = Tensors(rng)
    t.add("shared.weight", "BF16", [vocab, d_model])
    for i in range(layers):
        p = f"encoder.block.{i}.layer."
        for proj in ("q", "k", "v", "o"):
            t.add(p + f"0.SelfAttention.{proj}.weight", "BF16", [d_model, d_model])
        if i == 0:
            t.add(p + "0.SelfAttention.relative_attention_bias.weight", "BF16", [buckets, heads])
        t.add(p + "0.layer_norm.weight", "BF16", [d_model])
        t.add(p + "1.DenseReluDense.wi.weight", "BF16", [d_ff, d_model])
        t.add(p + "1.DenseReluDense.wo.weight", "BF16", [d_model, d_ff])
        t.add(p + "1.layer_norm.weight", "BF16", [d_model])
    t.add("encoder.final_layer_norm.weight", "BF16", [d_model])
    config = {"architectures": ["T5EncoderModel"], "model_type": "t5", "d_model": d_model,
              "d_ff": d_ff, "d_kv": d_model // heads, "num_layers": layers, "num_heads": heads,
              "relative_attention_num_buckets": buckets, "vocab_size": vocab,
              "dtype": "bfloat16"}
    return t, config


def shards(t, max_bytes):
    """transformers' rule: tensors in state-dict order, a new shard when the
    next tensor would take the current one past max_bytes."""
    out, size = [[]], 0
    for name, (_, _, raw) in t.items.items():
        if out[-1] and size + len(raw) > max_bytes:
            out.append([])
            size = 0
        out[-1].append(name)
        size += len(raw)
    return out


def write_sharded(t, folder, max_bytes, rel, expect):
    groups = shards(t, max_bytes)
    weight_map, total = {}, 0
    for k, names in enumerate(groups):
        fn = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        expect[f"{rel}/{fn}"] = t.write(os.path.join(folder, fn), {"format": "pt"}, names)
        for n in names:
            weight_map[n] = fn
            total += len(t.items[n][2])
    params = sum(int(np.prod(s, dtype=np.int64)) if s else 1 for _, s, _ in t.items.values())
    write_json(os.path.join(folder, "model.safetensors.index.json"),
               {"metadata": {"total_parameters": params, "total_size": total},
                "weight_map": weight_map})


def pipeline(out, rng, expect):
    root = os.path.join(out, "pipe")
    os.makedirs(root)
    # diffusers writes model_index.json with sorted keys: the component
    # indexes the plan reports follow from this order.
    write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "FluxPipeline", "_diffusers_version": "0.35.0",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"]})

    def folder(name, config):
        d = os.path.join(root, name)
        os.makedirs(d)
        write_json(os.path.join(d, "config.json"), config)
        return d

    clip, config = clip_text_encoder(rng)
    d = folder("text_encoder", config)
    expect["pipe/text_encoder/model.safetensors"] = clip.write(
        os.path.join(d, "model.safetensors"), {"format": "pt"})

    t5, config = t5_encoder(rng)
    write_sharded(t5, folder("text_encoder_2", config), 2_000_000, "pipe/text_encoder_2", expect)

    dit = Tensors(rng)
    for i in range(8):
        dit.add(f"blocks.{i}.weight", "BF16", [512, 512])
    d = folder("transformer", {"_class_name": "FluxTransformer2DModel",
                               "_diffusers_version": "0.35.0"})
    expect["pipe/transformer/diffusion_pytorch_model.safetensors"] = dit.write(
        os.path.join(d, "diffusion_pytorch_model.safetensors"), {"format": "pt"})

    vae = Tensors(rng)
    for i in range(2):
        vae.add(f"blocks.{i}.weight", "F32", [128, 128])
    d = folder("vae", {"_class_name": "AutoencoderKL", "_diffusers_version": "0.35.0"})
    expect["pipe/vae/diffusion_pytorch_model.safetensors"] = vae.write(
        os.path.join(d, "diffusion_pytorch_model.safetensors"), {"format": "pt"})


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    out = os.path.abspath(sys.argv[1])
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rng = np.random.default_rng(SEED)
    expect = {}
    single_files(tmp, rng, expect)
    pipeline(tmp, rng, expect)
    write_json(os.path.join(tmp, "expect.json"), expect)
    old = out + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(out):
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    print(f"make_vectors: {len(expect)} files and expect.json in {out}")


if __name__ == "__main__":
    main()
