#!/usr/bin/env python3
"""make_discover_seeds.py — writes the seed corpus of fuzz_discover
(tests/fuzz/seeds-discover/): small valid pipelines in the harness's input
format (see fuzz_discover.c): a flags byte, then model_index.json, the
shard index, config.json and the shards, separated by "\\n--8<--\\n".

  python3 tests/fuzz/make_discover_seeds.py tests/fuzz/seeds-discover
"""
import json
import os
import struct
import sys

SEP = b"\n--8<--\n"
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "U8": 1, "BOOL": 1, "F64": 8}


def shard(tensors):
    """tensors: [(name, dtype, shape)] -> safetensors bytes (data filled
    with a pattern, never zero)."""
    header, data, off = {"__metadata__": {"format": "pt"}}, b"", 0
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        data += bytes((i * 37 + 11) % 251 + 1 for i in range(n))
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def seed(flags, model_index, index, config, shards):
    parts = [json.dumps(model_index).encode() if model_index is not None else b"",
             json.dumps(index).encode() if index is not None else b"",
             json.dumps(config).encode() if config is not None else b""]
    parts += [shard(s) for s in shards]
    return bytes([flags]) + SEP.join(parts)


def sharded(tensors_per_shard, variant=""):
    n = len(tensors_per_shard)
    names = [f"model{variant}-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    return {"metadata": {"total_size": 0},
            "weight_map": {t[0]: names[i] for i, ts in enumerate(tensors_per_shard) for t in ts}}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    mi = {"_class_name": "FluxPipeline", "_diffusers_version": "0.35.0",
          "transformer": ["diffusers", "FluxTransformer2DModel"],
          "vae": ["diffusers", "AutoencoderKL"], "scheduler": [None, None]}
    a = [("x_embedder.weight", "F32", [4, 8]), ("x_embedder.bias", "F32", [8])]
    b = [("proj_out.weight", "BF16", [8, 4]), ("scale", "F32", []), ("empty", "F16", [0, 3])]
    c = [("ids", "I32", [5]), ("mask", "BOOL", [3]), ("norm.weight", "F16", [16])]
    cfg = {"_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.35.0", "num_layers": 2}
    seeds = {
        "sharded": seed(0, mi, sharded([a, b]), cfg, [a, b]),
        "sharded-bf16": seed(1, mi, sharded([a, b, c]), cfg, [a, b, c]),
        "variant-fp16": seed(2, mi, sharded([a, c], ".fp16"), None, [a, c]),
        "offload": seed(4, mi, sharded([b, c]), cfg, [b, c]),
        "plain-single": seed(0, None, None, {"architectures": ["T5EncoderModel"], "d_model": 8},
                             [a + c]),
        "plain-index": seed(1, None, sharded([a, b]), {"architectures": ["T5EncoderModel"]},
                            [a, b]),
        "single-no-index": seed(5, mi, None, cfg, [a + b + c]),
    }
    for name, blob in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
