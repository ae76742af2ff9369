"""diff_make_pipeline.py — `hoist make-pipeline` against the official
safetensors library.

Writes two presets at a small scale with the CLI, then for every weight file:
  * the official reader (safetensors.deserialize, the Rust parser) accepts it,
    and every tensor's name, dtype and shape agree with `hoist inspect --json`
    and with the component's index.json weight_map (which must name every
    tensor of the component exactly once, pointing at the file holding it);
  * re-serializing the tensors with the official writer
    (safetensors.serialize, metadata {"format": "pt"}) gives the very same
    bytes: header order, padding and offsets are the official layout;
  * no tensor is all zeros.
Also checks the --json summary against the files, the exit codes of bad
usage (unknown preset, non-empty dir), and that `safe_open` agrees on shapes.

Prints `diff_make_pipeline: N passed, 0 failed`; exits 1 on any failure.
"""
import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys

import safetensors
from safetensors import safe_open

WRITER_DTYPE = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)
    return cond


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def reserialize(tensors):
    """Official writer over the deserialized tensors (raw bytes kept alive)."""
    keep, specs = [], {}
    for name, t in tensors:
        data = bytes(t["data"])
        buf = ctypes.create_string_buffer(data, len(data))
        keep.append(buf)
        specs[name] = safetensors.TensorSpec(
            dtype=WRITER_DTYPE[t["dtype"]], shape=list(t["shape"]),
            data_ptr=ctypes.addressof(buf), data_len=len(data))
    out = bytes(safetensors.serialize(specs, metadata={"format": "pt"}))
    del keep
    return out


def check_pipeline(hoist, preset, scale, seed, d):
    r = run([hoist, "make-pipeline", "--preset", preset, "--scale", str(scale),
             "--seed", str(seed), "--json", d])
    if not check(r.returncode == 0, f"{preset}: make-pipeline exit {r.returncode}: {r.stderr}"):
        return
    summary = json.loads(r.stdout)
    check(summary["preset"] == preset and summary["dir"] == d, f"{preset}: summary header")
    mi = json.load(open(os.path.join(d, "model_index.json")))
    check("_class_name" in mi and "_diffusers_version" in mi, f"{preset}: model_index keys")

    r = run([hoist, "inspect", "--json", d])
    inspect = None
    if check(r.returncode == 0, f"{preset}: hoist inspect exit {r.returncode}: {r.stderr}"):
        inspect = {os.path.realpath(f["path"]): f for f in json.loads(r.stdout)["files"]}

    total = 0
    for comp in summary["components"]:
        name = comp["name"]
        check(name in mi and isinstance(mi[name], list) and len(mi[name]) == 2,
              f"{preset}/{name}: in model_index as [library, class]")
        weights = [f for f in comp["files"] if f.endswith(".safetensors")]
        for f in comp["files"]:
            check(os.path.isfile(os.path.join(d, f)), f"{preset}: {f} exists")
        if not weights:
            check(comp["bytes"] == 0, f"{preset}/{name}: weightless has 0 bytes")
            continue
        check(os.path.isfile(os.path.join(d, name, "config.json")), f"{preset}/{name}: config.json")
        index_files = [f for f in comp["files"] if f.endswith(".index.json")]
        weight_map = None
        if len(weights) > 1:
            if check(len(index_files) == 1, f"{preset}/{name}: one index for {len(weights)} shards"):
                idx = json.load(open(os.path.join(d, index_files[0])))
                weight_map = idx["weight_map"]
                check(idx["metadata"]["total_size"] == comp["bytes"], f"{preset}/{name}: total_size")
        else:
            check(not index_files, f"{preset}/{name}: single file has no index")
        seen = {}
        comp_bytes = 0
        for wf in weights:
            path = os.path.join(d, wf)
            data = open(path, "rb").read()
            try:
                tensors = safetensors.deserialize(data)
            except Exception as e:  # the official parser rejected the file
                check(False, f"{wf}: official reader: {e}")
                continue
            check(True, f"{wf}: official reader accepts")
            check(reserialize(tensors) == data, f"{wf}: official writer gives different bytes")
            hdr_len = int.from_bytes(data[:8], "little")
            check(hdr_len % 8 == 0, f"{wf}: header length {hdr_len} not a multiple of 8")
            header = json.loads(data[8:8 + hdr_len])
            check(header.get("__metadata__") == {"format": "pt"}, f"{wf}: __metadata__")
            with safe_open(path, "np") as so:
                check(so.metadata() == {"format": "pt"}, f"{wf}: safe_open metadata")
                shapes = {k: list(so.get_slice(k).get_shape()) for k in so.keys()}
            hfile = inspect.get(os.path.realpath(path)) if inspect else None
            check(hfile is not None or inspect is None, f"{wf}: listed by hoist inspect")
            hoist_t = {t["name"]: t for t in hfile["tensors"]} if hfile else {}
            check(not hfile or len(hoist_t) == len(tensors), f"{wf}: tensor count vs inspect")
            for tname, t in tensors:
                nbytes = len(t["data"])
                comp_bytes += nbytes
                check(tname not in seen, f"{preset}/{name}: {tname} in two files")
                seen[tname] = os.path.basename(wf)
                check(list(t["shape"]) == shapes[tname], f"{wf}: {tname} safe_open shape")
                check(any(t["data"]), f"{wf}: {tname} is all zeros")
                if hfile:
                    h = hoist_t.get(tname)
                    ok = (h is not None and h["dtype"] == t["dtype"]
                          and list(h["shape"]) == list(t["shape"])
                          and h["data_offsets"][1] - h["data_offsets"][0] == nbytes)
                    check(ok, f"{wf}: {tname} hoist {h} vs official {t['dtype']} {t['shape']}")
                if weight_map is not None:
                    check(weight_map.get(tname) == os.path.basename(wf),
                          f"{preset}/{name}: index maps {tname} to {weight_map.get(tname)}")
        if weight_map is not None:
            check(set(weight_map) == set(seen) and len(weight_map) == len(seen),
                  f"{preset}/{name}: weight_map covers exactly the {len(seen)} tensors")
        check(comp_bytes == comp["bytes"], f"{preset}/{name}: bytes {comp_bytes} vs {comp['bytes']}")
        total += comp_bytes
    check(total == summary["total_bytes"], f"{preset}: total_bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hoist", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.tmp, ignore_errors=True)
    os.makedirs(a.tmp)
    for preset, scale, seed in (("flux1-dev", 0.002, 1), ("wan2.2-t2v-a14b", 0.001, 2)):
        check_pipeline(a.hoist, preset, scale, seed, os.path.join(a.tmp, preset))

    # Usage errors.
    r = run([a.hoist, "make-pipeline", "--preset", "no-such", os.path.join(a.tmp, "x")])
    check(r.returncode == 2 and "flux1-dev" in r.stderr, f"unknown preset: {r.returncode} {r.stderr}")
    r = run([a.hoist, "make-pipeline", "--preset", "flux1-dev", "--scale", "0.001",
             os.path.join(a.tmp, "flux1-dev")])
    check(r.returncode == 2 and "not empty" in r.stderr, f"non-empty dir: {r.returncode} {r.stderr}")
    r = run([a.hoist, "make-pipeline", "--preset", "flux1-dev", "--scale", "2", os.path.join(a.tmp, "y")])
    check(r.returncode == 2, f"scale 2: exit {r.returncode}")

    shutil.rmtree(a.tmp, ignore_errors=True)
    print(f"diff_make_pipeline: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
