#!/usr/bin/env python3
"""diff_plan.py — `hoist plan --json` against a Python port of the reference
load order (SGLang's component_loading_order.py) on generated layouts.

The port below is written from the reference's rules with Python's own
unbounded ints, glob and json, plus the amendments hoist makes on purpose:
  * only ASCII digits make a numeric suffix (Python's str.isdigit() accepts
    "²", on which the reference's int() raises);
  * .ckpt and .gguf join the .bin/.pt/.pth fallback;
  * an index naming a missing shard, or a shard escaping the folder, is an
    error (exit 3), not silently skipped; so is a bad safetensors header;
  * variant files (name.<V>.safetensors, name.<V>-00001-of-00002.safetensors,
    *.safetensors.index.<V>.json) are not mixed with the default files;
  * only regular files (symlinks followed) count as weights;
  * a component's index is its position among all keys of model_index.json
    (its position in the file's key order, as hoist.h states);
  * a tensor name held by two files of a component, or an index that
    disagrees with its shards' headers, is an error (exit 3): the layouts
    written here name every tensor after its file and derive weight_map
    from the shards, so they never break that rule.

Every layout is written to --tmp, planned by hoist, and every field of
every component and the order are compared; so is the pipe/ folder of the
test vectors (--vectors, and --shared DIR/vectors when that folder exists).
Exit status 1 on any disagreement.  Usage:
  python diff_plan.py --hoist build/hoist --vectors build/vectors --tmp /tmp/x
"""
import argparse
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

import vector_sets

# ---------------------------------------------------------------- the port

DIT = frozenset({"transformer", "transformer_2", "video_dit", "video_dit_2", "audio_dit",
                 "dual_tower_bridge"})
VAE = frozenset({"vae", "video_vae", "audio_vae", "vocoder", "spatial_upsampler",
                 "condition_image_encoder"})
FALLBACK_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".gguf")


def ascii_digits(s):
    return s != "" and all("0" <= ch <= "9" for ch in s)


def base_name(name):
    prefix, sep, suffix = name.rpartition("_")
    if sep and ascii_digits(suffix):
        return prefix
    return name


def variant_priority(name):
    _, sep, suffix = name.rpartition("_")
    if sep and ascii_digits(suffix):
        return -int(suffix)
    return 0


def is_text_encoder(n):
    return n.startswith("text_encoder") or n.endswith("text_encoder")


def risk_rank(name):
    cands = (name, base_name(name))
    if any(n in DIT for n in cands):
        return 0
    if any(is_text_encoder(n) for n in cands):
        return 1
    if any(n == "image_encoder" for n in cands):
        return 2
    if any(n in VAE for n in cands):
        return 3
    return 10


class PlanError(Exception):
    pass


SHARD_SUFFIX = re.compile(r"-[0-9]+-of-[0-9]+\Z")
INDEX_VARIANT = re.compile(r"(.+)\.safetensors\.index\.([^.]+)\.json\Z", re.S)


def st_variant(fname):
    stem = fname[: -len(".safetensors")]
    if "." not in stem:
        return None
    tail = SHARD_SUFFIX.sub("", stem.rsplit(".", 1)[1])
    return tail or None


def payload_bytes(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return sum(v["data_offsets"][1] - v["data_offsets"][0]
               for k, v in header.items() if k != "__metadata__")


def shard_ok(s):
    return not (s == "" or s == "." or s.startswith("..") or "/" in s or "\\" in s)


def component_files(folder, variant, bad_files):
    """(files, size or None); raises PlanError where hoist must exit 3."""
    def g(pattern):
        return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), pattern))
                      if os.path.isfile(p))

    idx = g("*.safetensors.index.json")
    sts = [p for p in g("*.safetensors") if st_variant(os.path.basename(p)) is None]
    idx_v, st_v = [], []
    if variant is not None:
        idx_v = [p for p in g("*.json")
                 if (m := INDEX_VARIANT.match(os.path.basename(p))) and m.group(2) == variant]
        st_v = [p for p in g("*.safetensors") if st_variant(os.path.basename(p)) == variant]
    if variant is not None and (idx_v or st_v):
        idx, sts = idx_v, st_v
    indexed = set()
    for ip in idx:
        try:
            with open(ip, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise PlanError(f"{ip}: bad JSON")
        if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
            raise PlanError(f"{ip}: no weight_map")
        for shard in sorted(set(doc["weight_map"].values())):
            if not isinstance(shard, str) or not shard_ok(shard):
                raise PlanError(f"{ip}: bad shard {shard!r}")
            sp = os.path.join(folder, shard)
            if not os.path.isfile(sp):
                raise PlanError(f"{ip}: missing shard {shard}")
            indexed.add(sp)
    files = sorted(indexed) if indexed else sts
    if files:
        for p in files:
            if p in bad_files:
                raise PlanError(f"{p}: bad header")
        return files, sum(payload_bytes(p) for p in files)
    fb = []
    for suffix in FALLBACK_SUFFIXES:
        fb.extend(g("*" + suffix))
    if not fb:
        return [], None
    return sorted(fb), sum(os.path.getsize(p) for p in fb)


def expected_plan(pipeline, variant, bad_files):
    """The reference's plan of a pipeline folder, or PlanError."""
    mi = os.path.join(pipeline, "model_index.json")
    comps = []
    if os.path.lexists(mi):
        try:
            with open(mi, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise PlanError("model_index.json: bad JSON")
        if not isinstance(doc, dict):
            raise PlanError("model_index.json: not an object")
        for position, (key, value) in enumerate(doc.items()):
            if key.startswith("_"):
                continue
            if not (isinstance(value, list) and len(value) == 2):
                continue  # pipeline config
            lib, cls = value
            if not (cls is None or isinstance(cls, str)):
                continue
            if lib is None:
                continue  # absent optional component
            if not isinstance(lib, str):
                continue
            if key in ("", ".", "..") or "/" in key or "\\" in key:
                raise PlanError(f"bad component name {key!r}")
            comps.append((position, key, lib, cls, os.path.join(pipeline, key)))
        if not comps:
            raise PlanError("no components")
    else:
        name = os.path.basename(os.path.normpath(pipeline))
        lib = cls = None
        cfg = os.path.join(pipeline, "config.json")
        if os.path.isfile(cfg):
            c = json.load(open(cfg))
            if "_diffusers_version" in c:
                lib, cls = "diffusers", c.get("_class_name")
                cls = cls if isinstance(cls, str) else None
            elif isinstance(c.get("architectures"), list) and c["architectures"] \
                    and isinstance(c["architectures"][0], str):
                lib, cls = "transformers", c["architectures"][0]
        comps.append((0, name, lib, cls, pipeline))
    specs = []
    for index, name, lib, cls, path in comps:
        size = None
        if os.path.isdir(path):
            files, size = component_files(path, variant, bad_files)
            if not os.path.exists(os.path.join(pipeline, "model_index.json")) and not files:
                raise PlanError("no weights")
        specs.append(dict(name=name, load_name=name, library=lib, **{"class": cls}, index=index,
                          path=path, inferred_bytes=size, risk_rank=risk_rank(name),
                          variant_priority=variant_priority(name)))
    # The reference's sort, verbatim in spirit.
    ordered = sorted(specs, key=lambda s: (-(s["inferred_bytes"] or 0), risk_rank(s["load_name"]),
                                           variant_priority(s["load_name"]), s["index"]))
    for pos, s in enumerate(ordered):
        s["position"] = pos
    return {"pipeline": pipeline, "components": specs, "order": [s["name"] for s in ordered]}


# ---------------------------------------------------------------- layouts

REALISTIC = ["transformer", "transformer_2", "text_encoder", "text_encoder_2", "text_encoder_3",
             "vae", "scheduler", "tokenizer", "tokenizer_2", "tokenizer_3", "image_encoder",
             "image_processor", "feature_extractor", "unet", "video_dit", "video_dit_2",
             "audio_dit", "dual_tower_bridge", "video_vae", "audio_vae", "vocoder",
             "spatial_upsampler", "condition_image_encoder", "connectors", "safety_checker",
             "prior", "controlnet", "processor", "vision_language_encoder"]
ADVERSARIAL = ["transformer_3", "transformer_007", "transformer_0", "text_encoder_x", "vae_2",
               "vae_x", "vae_", "my_text_encoder_7", "clip_text_encoder", "text_encoder_\u00b2",
               "text_encoder_\u0663", "vae_\u00b9", "text_encoder_99999999999999999999999",
               "text_encoder_99999999999999999999998", "text_encoder_5", "image_encoder_2",
               "a_0", "x_00", "transformer__2", "9", "text-encoder", "text encoder", "vaé",
               "vae_\U0001F600", "audio_dit_12", "video_vae_3", "condition_image_encoder_1",
               "image_encoder_x", "dual_tower_bridge_2", "text_encoder__", "TEXT_ENCODER",
               "transformer_18446744073709551616", "vae_9223372036854775808"]
CONFIG_VALUES = [0.875, True, False, "x", [1, 2, 3], [1, 2], {"a": 1}, None, 7, [],
                 ["diffusers"], [1, "x"]]
SIZES = [0, 2, 16, 64, 64, 100, 1000, 4096, 12345]


def write_st(path, rng, size, prefix, tensors=None):
    """A safetensors file whose tensors' bytes sum to size, its tensors
    named prefix.tN; returns their names."""
    n = tensors if tensors is not None else rng.randint(1, 3)
    cuts = sorted(rng.randint(0, size) for _ in range(n - 1))
    parts = [b - a for a, b in zip([0] + cuts, cuts + [size])]
    t = {f"{prefix}.t{i}": np.frombuffer(rng.randbytes(p), dtype=np.uint8).copy()
         for i, p in enumerate(parts)}
    save_file(t, path, metadata={"format": "pt"} if rng.random() < 0.5 else None)
    return list(t)


class Layout:
    def __init__(self, root, rng):
        self.root, self.rng = root, rng
        self.bad_files = set()
        self.blobs = os.path.join(os.path.dirname(root), os.path.basename(root) + ".blobs")
        self.has_variants = False

    def st(self, folder, fname, size=None):
        """Writes folder/fname; returns its tensor names (unique to the file)."""
        size = self.rng.choice(SIZES) if size is None else size
        path = os.path.join(folder, fname)
        if self.rng.random() < 0.15:  # HF-cache style: a symlink into blobs/
            os.makedirs(self.blobs, exist_ok=True)
            blob = os.path.join(self.blobs, "%016x" % self.rng.getrandbits(64))
            names = write_st(blob, self.rng, size, fname)
            os.symlink(os.path.relpath(blob, folder), path)
        else:
            names = write_st(path, self.rng, size, fname)
        return names

    def component(self, folder, error_ok):
        rng = self.rng
        kind = rng.choices(["missing", "config", "single", "multi", "index", "bin", "mixed",
                            "variant", "empty", "bad"],
                           [8, 8, 20, 8, 12, 8, 5, 8, 3, 2 if error_ok else 0])[0]
        if kind == "missing":
            return
        os.makedirs(folder, exist_ok=True)
        if rng.random() < 0.5:
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump({"_class_name": "X", "hidden": 8}, f)
        if rng.random() < 0.1:  # dotfiles are skipped, as glob does
            self.st(folder, ".hidden.safetensors", 999)
        if kind == "config":
            return
        if kind in ("single", "mixed"):
            self.st(folder, rng.choice(["model.safetensors", "diffusion_pytorch_model.safetensors",
                                        "w.safetensors"]))
        if kind == "multi":
            for i in range(rng.randint(2, 4)):
                self.st(folder, f"part{i}.safetensors")
        if kind == "empty":
            save_file({}, os.path.join(folder, "model.safetensors"))
        if kind == "index":
            n = rng.randint(1, 4)
            names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
            wm = {}
            for s in names:
                wm.update((t, s) for t in self.st(folder, s))
            if rng.random() < 0.3:
                self.st(folder, "stray.safetensors")
            if error_ok and rng.random() < 0.1:
                wm["bad"] = rng.choice(["missing-00009-of-00009.safetensors", "../escape.safetensors",
                                        "sub/x.safetensors", "..", "."])
            items = list(wm.items())
            rng.shuffle(items)
            with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": 1}, "weight_map": dict(items)}, f)
            if rng.random() < 0.2:  # a second index sharing a shard
                with open(os.path.join(folder, "b.safetensors.index.json"), "w") as f:
                    json.dump({"weight_map": {t: s for t, s in wm.items() if s == names[0]}}, f)
        if kind in ("bin", "mixed"):
            for i in range(rng.randint(1, 3)):
                ext = rng.choice(FALLBACK_SUFFIXES)
                with open(os.path.join(folder, f"weights{i}{ext}"), "wb") as f:
                    f.write(rng.randbytes(rng.choice(SIZES)))
        if kind == "variant":
            self.has_variants = True
            self.st(folder, "diffusion_pytorch_model.safetensors")
            self.st(folder, "diffusion_pytorch_model.fp16.safetensors")
            if rng.random() < 0.5:
                self.st(folder, "diffusion_pytorch_model.bf16.safetensors")
            if rng.random() < 0.5:
                names = ["model.fp16-00001-of-00002.safetensors",
                         "model.fp16-00002-of-00002.safetensors"]
                wm = {t: s for s in names for t in self.st(folder, s)}
                with open(os.path.join(folder, "model.safetensors.index.fp16.json"), "w") as f:
                    json.dump({"weight_map": wm}, f)
        if kind == "bad":
            path = os.path.join(folder, "model.safetensors")
            with open(path, "wb") as f:
                f.write((5).to_bytes(8, "little") + b"{\"a\":")
            self.bad_files.add(path)


def make_pipeline(root, rng, error_ok):
    lay = Layout(root, rng)
    os.makedirs(root)
    pool = REALISTIC if rng.random() < 0.5 else REALISTIC + ADVERSARIAL
    names = rng.sample(pool, rng.randint(1, min(10, len(pool))))
    doc = {"_class_name": "GeneratedPipeline", "_diffusers_version": "0.35.0"}
    entries = []
    for name in names:
        r = rng.random()
        if r < 0.06:
            value = [None, None]
        elif r < 0.09:
            value = [None, "SomeClass"]
        elif r < 0.12:
            value = [rng.choice(["diffusers", "transformers"]), None]
        else:
            value = [rng.choice(["diffusers", "transformers"]), "Class" + str(rng.randint(0, 99))]
        entries.append((name, value))
        lay.component(os.path.join(root, name), error_ok)
    for i in range(rng.randint(0, 3)):
        entries.append((rng.choice(["boundary_ratio", "expand_timesteps", "requires_safety_checker",
                                    "force_zeros", "_hidden_%d" % i]), rng.choice(CONFIG_VALUES)))
    rng.shuffle(entries)
    for k, v in entries:
        doc.setdefault(k, v)
    if not any(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and
               (v[1] is None or isinstance(v[1], str)) for k, v in doc.items()
               if not k.startswith("_")):
        doc["transformer_9"] = ["diffusers", "D"]  # at least one component
    if error_ok and rng.random() < 0.04:
        text = rng.choice(["{", "[1]", '{"vae": ["d", "V"]} x', '"s"'])
        with open(os.path.join(root, "model_index.json"), "w") as f:
            f.write(text)
    else:
        with open(os.path.join(root, "model_index.json"), "w") as f:
            json.dump(doc, f, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 2]))
    return lay


def make_single(root, rng):
    lay = Layout(root, rng)
    os.makedirs(root)
    if rng.random() < 0.5:
        for i in range(rng.randint(1, 3)):
            lay.st(root, f"model-{i:05d}.safetensors")
    else:
        with open(os.path.join(root, "pytorch_model.bin"), "wb") as f:
            f.write(rng.randbytes(rng.choice(SIZES)))
    cfg = rng.choice([None, {"architectures": ["T5EncoderModel"]},
                      {"_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0"},
                      {"d_model": 4}])
    if cfg is not None:
        with open(os.path.join(root, "config.json"), "w") as f:
            json.dump(cfg, f)
    return lay


# ---------------------------------------------------------------- compare

def run_hoist(hoist, path, variant):
    cmd = [hoist, "plan", "--json", path] + (["--variant", variant] if variant else [])
    p = subprocess.run(cmd, capture_output=True)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(hoist, path, variant, bad_files, label):
    try:
        want = expected_plan(path, variant, bad_files)
    except PlanError as e:
        want = e
    rc, out, err = run_hoist(hoist, path, variant)
    if isinstance(want, PlanError):
        if rc == 3 and out == "":
            return None
        return f"{label}: expected exit 3 ({want}), got {rc}: {out[:300]} {err[:300]}"
    if rc != 0:
        return f"{label}: expected success, got exit {rc}: {err.strip()}"
    try:
        got = json.loads(out)
    except ValueError as e:
        return f"{label}: output is not JSON ({e}): {out[:300]}"
    if list(got.keys()) != ["pipeline", "components", "order"]:
        return f"{label}: top-level keys {list(got.keys())}"
    keys = ["name", "load_name", "library", "class", "index", "path", "inferred_bytes",
            "risk_rank", "variant_priority", "position"]
    for c in got["components"]:
        if list(c.keys()) != keys:
            return f"{label}: component keys {list(c.keys())}"
    if got != want:
        return f"{label}: mismatch\n  want {json.dumps(want, ensure_ascii=False)}\n  got  " \
               f"{json.dumps(got, ensure_ascii=False)}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hoist", required=True)
    vector_sets.add_arguments(ap)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--seed", type=int, default=20240603)
    ap.add_argument("--layouts", type=int, default=240)
    args = ap.parse_args()
    shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.tmp)
    rng = random.Random(args.seed)
    passed = failed = errors_expected = 0

    def record(msg):
        nonlocal passed, failed
        if msg is None:
            passed += 1
        else:
            failed += 1
            print("FAIL", msg)

    # The Flux-like pipeline of the vectors, and of the extra set.
    for root in vector_sets.roots(args):
        record(check(args.hoist, os.path.join(root, "pipe"), None, set(), f"{root}/pipe"))

    for i in range(args.layouts):
        root = os.path.join(args.tmp, f"p{i:04d}")
        if rng.random() < 0.1:
            lay = make_single(root, rng)
        else:
            lay = make_pipeline(root, rng, error_ok=rng.random() < 0.3)
        variants = [None] + (["fp16", "bf16"] if lay.has_variants else [])
        for v in variants:
            try:
                expected_plan(root, v, lay.bad_files)
            except PlanError:
                errors_expected += 1
            record(check(args.hoist, root, v, lay.bad_files, f"layout {i} ({root}, variant {v})"))
    print(f"diff_plan: {passed} passed, {failed} failed "
          f"({errors_expected} expected rejections, seed {args.seed})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
