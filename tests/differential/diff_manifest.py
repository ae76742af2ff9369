"""diff_manifest.py — `hoist manifest` against Python's hashlib and json.

Writes a small FLUX.1-dev-shaped pipeline with `hoist make-pipeline`, makes
its manifest with `hoist manifest`, then for every file the manifest lists
(weight files and side files):
  * its size is the file's size and its "sha256" is hashlib.sha256 of the
    whole file (the digest Hugging Face publishes for LFS files);
  * for a .safetensors file, "header_bytes" is 8 + N from the file's length
    prefix, and the tensors (name, dtype, shape, data_offsets), in
    data-offset order, are the header's as Python's json reads it;
and the manifest lists exactly the pipeline's weight files (the components'
*.safetensors) and side files (model_index.json, config.json, indexes).
Also: the --json summary agrees with the file; `hoist check` exits 0, and 3
with the changed file listed once one byte of a shard changes.

Prints `diff_manifest: N passed, 0 failed`; exits 1 on any failure.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

class Tally:
    """Counts the checks; prints each failure on stderr."""

    def __init__(self):
        self.passed, self.failed = 0, 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, file=sys.stderr)
        return cond


check = Tally()


def hoist(exe, *args):
    return subprocess.run([exe, *args], capture_output=True, text=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def header_of(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return 8 + n, json.loads(f.read(n))


def check_safetensors(path, entry):
    header_bytes, header = header_of(path)
    check(entry.get("header_bytes") == header_bytes, f"{path}: header_bytes")
    header.pop("__metadata__", None)
    want = sorted(((v["data_offsets"][0], v["data_offsets"][1], k), k, v) for k, v in header.items())
    got = entry.get("tensors", [])
    check(len(got) == len(want), f"{path}: {len(got)} tensors, header has {len(want)}")
    for t, (_, name, v) in zip(got, want):
        same = (t["name"] == name and t["dtype"] == v["dtype"] and t["shape"] == v["shape"]
                and t["data_offsets"] == v["data_offsets"])
        check(same, f"{path}: tensor {t['name']} against the header's {name}")


def expected_files(pipe):
    """The weight and side files the manifest must list, as relative paths."""
    weights, sides = [], ["model_index.json"]
    index = json.load(open(os.path.join(pipe, "model_index.json")))
    for name, value in index.items():
        folder = os.path.join(pipe, name)
        if name.startswith("_") or not isinstance(value, list) or not os.path.isdir(folder):
            continue
        for f in sorted(os.listdir(folder)):
            rel = f"{name}/{f}"
            if f.endswith(".safetensors"):
                weights.append(rel)
            elif f == "config.json" or ".safetensors.index." in f:
                sides.append(rel)
    return sorted(weights), sorted(sides)


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--hoist", "--tmp"):
        parser.add_argument(flag, required=True)
    return parser.parse_args()


def main():
    a = arguments()
    if os.path.isdir(a.tmp):
        shutil.rmtree(a.tmp)
    os.makedirs(a.tmp, exist_ok=True)
    pipe, out = os.path.join(a.tmp, "flux"), os.path.join(a.tmp, "flux.manifest.json")
    r = hoist(a.hoist, "make-pipeline", "--preset", "flux1-dev", "--scale", "0.002", "--seed", "3",
              pipe)
    if not check(r.returncode == 0, f"make-pipeline: {r.stderr}"):
        return 1
    r = hoist(a.hoist, "manifest", "--json", "--threads", "3", pipe, "-o", out)
    if not check(r.returncode == 0, f"manifest: {r.stderr}"):
        return 1
    summary = json.loads(r.stdout)
    manifest = json.load(open(out))
    check(manifest["format"] == "hoist-manifest" and manifest["version"] == 1, "format, version")
    check(manifest["piece_bytes"] == 1 << 20 and summary["piece_bytes"] == 1 << 20, "piece_bytes")
    weights, sides = expected_files(pipe)
    check([f["path"] for f in manifest["files"]] == weights, "the weight files listed")
    check([f["path"] for f in manifest["side_files"]] == sides, "the side files listed")
    for entry in manifest["files"] + manifest["side_files"]:
        path = os.path.join(pipe, entry["path"])
        check(entry["size"] == os.path.getsize(path), f"{entry['path']}: size")
        check(entry["sha256"] == sha256(path), f"{entry['path']}: sha256 against hashlib")
        if entry["path"].endswith(".safetensors"):
            check_safetensors(path, entry)
    listed = {f["path"]: f["sha256"] for f in summary["files"]}
    check(listed == {f["path"]: f["sha256"] for f in manifest["files"] + manifest["side_files"]},
          "--json summary against the file")

    r = hoist(a.hoist, "check", "--manifest", out, pipe)
    check(r.returncode == 0, f"check of the same files: {r.returncode} {r.stderr}")
    shard = os.path.join(pipe, weights[-1])
    with open(shard, "r+b") as f:
        f.seek(os.path.getsize(shard) - 3)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x80]))
    r = hoist(a.hoist, "check", "--json", "--manifest", out, pipe)
    check(r.returncode == 3, f"check of a changed shard: exit {r.returncode}")
    report = json.loads(r.stdout)
    diffs = report["differences"]
    check(len(diffs) == 1 and diffs[0]["path"] == weights[-1] and diffs[0]["verdict"] == "sha256"
          and diffs[0]["sha256"] == sha256(shard), f"check reports the shard: {diffs}")
    check(r.stderr.count("\n") == 1 and weights[-1] in r.stderr, f"one line: {r.stderr!r}")

    print(f"diff_manifest: {check.passed} passed, {check.failed} failed")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
