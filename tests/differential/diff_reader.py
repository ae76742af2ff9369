#!/usr/bin/env python3
"""diff_reader.py — differential test of hoist's strict safetensors reader
against the reference (huggingface safetensors 0.8, `safetensors.deserialize`,
plus `safetensors.numpy.load_file` where numpy has the dtypes).

It writes valid files with the official library (numpy `save_file` with many
dtypes and shapes, scalars and zero-size tensors, metadata, a file of 2,000
tensors; `serialize` for the dtypes numpy lacks), malformed variants (one
per format rule, truncations at every byte, trailing bytes, header-length
edits, seeded random byte flips in headers), and takes every file under the
test vectors (--vectors, and --shared DIR/vectors as extra cases when that
folder exists).  For each file it runs `hoist inspect --json` and the
reference and requires:
  - the same verdict: hoist exits 0 with JSON, or 3 with a one-line message
    naming the file; any other exit (a crash, 1) fails;
  - for accepted files the same tensor table (names, dtypes, shapes, offsets
    as written in the header, metadata, header and data sizes) and the same
    bytes (sha256 of the bytes at hoist's offsets vs the reference's data).
Where hoist is documented as stricter than the reference (duplicate keys,
integers above 2^53, U+0000 in keys or metadata, numbers longer than cJSON's
63 characters, a dtype written as {"F32": null}) the case is listed as
expected-stricter: hoist must reject it, with a message giving that reason.
Exits 0 only when everything agrees and prints `diff_reader: N passed, 0 failed`.
"""
import argparse
import hashlib
import json
import os
import random
import struct
import subprocess
import sys

import numpy as np
import safetensors
from safetensors.numpy import load_file, save_file

import vector_sets

# Fragments of hoist's messages for the rules where it is stricter than the
# reference; a reject with one of these while the reference accepts is the
# documented difference, anything else is a disagreement.
STRICTER_REASONS = ("duplicate", "2^53", "U+0000", "63 characters", "dtype is not a string")

NP_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
    "I32": np.int32, "U32": np.uint32, "I64": np.int64, "U64": np.uint64, "F16": np.float16,
    "F32": np.float32, "F64": np.float64, "C64": np.complex64,
}
# TensorSpec names of the dtypes numpy lacks, with bits per element.
SPEC_DTYPES = {
    "bfloat16": ("BF16", 16), "float8_e4m3fn": ("F8_E4M3", 8), "float8_e5m2": ("F8_E5M2", 8),
    "float8_e8m0fnu": ("F8_E8M0", 8), "float8_e4m3fnuz": ("F8_E4M3FNUZ", 8),
    "float8_e5m2fnuz": ("F8_E5M2FNUZ", 8), "complex64": ("C64", 64), "float16": ("F16", 16),
}


def mk(header, data=b"", n=None):
    hb = header.encode("utf-8", "surrogatepass") if isinstance(header, str) else header
    return struct.pack("<Q", len(hb) if n is None else n) + hb + data


def split(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    return raw[8:8 + n], raw[8 + n:]


class Runner:
    def __init__(self, hoist, tmp):
        self.hoist = hoist
        self.tmp = tmp
        self.passed = 0
        self.failed = 0
        self.stricter = 0
        self.accepted = 0
        self.rejected = 0
        self.count = 0

    def fail(self, name, why):
        self.failed += 1
        print(f"FAIL {name}: {why}")

    def write(self, raw):
        self.count += 1
        path = os.path.join(self.tmp, f"case{self.count:05d}.safetensors")
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def reference(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        try:
            out = safetensors.deserialize(raw)
        except Exception as e:  # the reference's verdict, whatever it raised
            return None, str(e)
        table = {}
        for name, d in out:
            table[name] = (d["dtype"], list(d["shape"]), hashlib.sha256(bytes(d["data"])).hexdigest())
        return table, None

    def hoist_inspect(self, path):
        p = subprocess.run([self.hoist, "inspect", "--json", path], capture_output=True,
                           timeout=120)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def check(self, name, path, stricter=False):
        """stricter: hoist must reject (documented stricter rule)."""
        ref, ref_err = self.reference(path)
        rc, out, err = self.hoist_inspect(path)
        if rc not in (0, 3):
            return self.fail(name, f"hoist exited {rc}: {err.strip()[:300]}")
        if rc == 3:
            lines = err.strip().split("\n")
            if len(lines) != 1 or path not in lines[0] or out:
                return self.fail(name, f"reject message is not one line naming the file: {err!r}")
        if stricter:
            if rc != 3:
                return self.fail(name, "hoist accepted a file its stricter rules reject")
            self.stricter += ref is not None
            self.rejected += 1
            self.passed += 1
            return
        if ref is None and rc == 3:
            self.rejected += 1
            self.passed += 1
            return
        if ref is None:
            return self.fail(name, f"hoist accepted, reference rejected: {ref_err}")
        if rc == 3:
            if any(r in err for r in STRICTER_REASONS):
                self.stricter += 1
                self.rejected += 1
                self.passed += 1
                return
            return self.fail(name, f"hoist rejected, reference accepted: {err.strip()}")
        why = self.compare(path, ref, out)
        if why:
            return self.fail(name, why)
        if name.startswith("numpy") or name.startswith("vector"):
            why = self.compare_numpy(path, ref)
            if why:
                return self.fail(name, why)
        self.accepted += 1
        self.passed += 1

    def compare(self, path, ref, out):
        try:
            doc = json.loads(out)
        except ValueError as e:
            return f"hoist printed invalid JSON: {e}"
        files = doc.get("files")
        if not isinstance(files, list) or len(files) != 1:
            return "hoist JSON does not hold exactly one file"
        f = files[0]
        with open(path, "rb") as fp:
            raw = fp.read()
        header, data = split(raw)
        if f["path"] != path or f["header_bytes"] != len(header) or f["data_bytes"] != len(data):
            return f"sizes differ: {f['path']} {f['header_bytes']} {f['data_bytes']}"
        parsed = json.loads(header.decode("utf-8"))
        meta = parsed.pop("__metadata__", None)
        if f["metadata"] != meta:
            return f"metadata differs: {f['metadata']!r} vs {meta!r}"
        names = [t["name"] for t in f["tensors"]]
        if sorted(names) != sorted(ref):
            return f"tensor names differ: {sorted(names)[:5]} vs {sorted(ref)[:5]}"
        prev = None
        for t in f["tensors"]:
            dtype, shape, sha = ref[t["name"]]
            if t["dtype"] != dtype or t["shape"] != shape:
                return f"tensor {t['name']!r}: {t['dtype']} {t['shape']} vs {dtype} {shape}"
            if t["data_offsets"] != parsed[t["name"]]["data_offsets"]:
                return f"tensor {t['name']!r}: offsets {t['data_offsets']} differ from the header"
            b, e = t["data_offsets"]
            if hashlib.sha256(data[b:e]).hexdigest() != sha:
                return f"tensor {t['name']!r}: bytes differ from the reference's"
            key = (b, e, t["name"])
            if prev is not None and key < prev:
                return "tensors are not in file-offset order"
            prev = key
        return None

    def compare_numpy(self, path, ref):
        """numpy.load_file as a second reference, where numpy has every dtype."""
        if not all(d in NP_DTYPES for d, _, _ in ref.values()):
            return None
        try:
            arrays = load_file(path)
        except Exception as e:
            return f"safetensors.numpy.load_file failed on an accepted file: {e}"
        for name, arr in arrays.items():
            if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != ref[name][2]:
                return f"tensor {name!r}: numpy bytes differ"
        return None


def random_array(rng, dtype, shape):
    n = int(np.prod(shape)) if shape else 1
    if dtype == np.bool_:
        return (rng.integers(0, 2, n) == 1).reshape(shape)
    if dtype == np.complex64:
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64).reshape(shape)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(n).astype(dtype).reshape(shape)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True).reshape(shape)


SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 0, 4), (4, 1, 3), (16, 16), (1, 1, 1, 1), (33,), (0, 0)]


def valid_numpy_files(r, rng):
    dtypes = list(NP_DTYPES.values())
    for i in range(30):
        count = 2000 if i == 0 else int(rng.integers(1, 40))
        tensors = {}
        for k in range(count):
            shape = SHAPES[int(rng.integers(0, len(SHAPES)))] if i else (3,)
            tensors[f"layer.{k}.w{int(rng.integers(0, 1000))}"] = random_array(
                rng, dtypes[int(rng.integers(0, len(dtypes)))], shape)
        # Files 1..11 seed the byte flips: one metadata key keeps their
        # headers identical from run to run (the writer's map order varies).
        if i % 3 == 0:
            meta = None
        elif i < 12:
            meta = {"format": "np"}
        else:
            meta = {"format": "np", "i": str(i), "ünï": "v\n\"q\""}
        path = os.path.join(r.tmp, f"numpy{i:03d}.safetensors")
        save_file(tensors, path, metadata=meta)
        r.check(f"numpy{i:03d}", path)
        yield path


def valid_spec_files(r, rng):
    """Dtypes numpy lacks, through serialize() with TensorSpec."""
    for i in range(10):
        specs, keep = {}, []
        for k in range(int(rng.integers(1, 12))):
            tname = list(SPEC_DTYPES)[int(rng.integers(0, len(SPEC_DTYPES)))]
            _, bits = SPEC_DTYPES[tname]
            shape = list(SHAPES[int(rng.integers(0, len(SHAPES)))])
            nbytes = int(np.prod(shape)) * bits // 8 if shape else bits // 8
            buf = rng.integers(0, 256, max(nbytes, 1), dtype=np.uint8)
            keep.append(buf)
            specs[f"t{k}.{tname}"] = safetensors.TensorSpec(dtype=tname, shape=shape,
                                                           data_ptr=buf.ctypes.data, data_len=nbytes)
        # F4: two values per byte; the storage shape's last dimension is doubled.
        buf = rng.integers(0, 256, 6, dtype=np.uint8)
        keep.append(buf)
        specs["f4"] = safetensors.TensorSpec(dtype="float4_e2m1fn_x2", shape=[2, 3],
                                             data_ptr=buf.ctypes.data, data_len=6)
        raw = bytes(safetensors.serialize(specs, metadata={"k": str(i)} if i % 2 else None))
        path = r.write(raw)
        r.check(f"spec{i}", path)
        yield path


def hand_files(r):
    """Valid files the writers cannot produce: F6, odd whitespace, unknown fields."""
    cases = [
        ('{"a":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]},'
         '"b":{"dtype":"F6_E3M2","shape":[2,4],"data_offsets":[3,9]}}', 9),
        (' \n\t{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}\r\n  ', 4),
        ('{"w":{"x":[1.5e3,-0,{"k":null}],"dtype":"U8","shape":[2],"y":"z","data_offsets":[0,2]}}', 2),
        ('{"__metadata__":null,"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2),
        ('{"__metadata__":{},"w":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[0,2]}}', 2),
        ('{"\\u0077\\u00e9\\ud83d\\ude00":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2),
        ('{"w":{"dtype":"U8","shape":[9007199254740992,0],"data_offsets":[0,0]}}', 0),
        ('{}', 0),
        ('{"":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2),
        ('{"\\u005f_metadata__":{"a":"b"},"w":{"\\u0064type":"U\\u0038","shape":[2],'
         '"data_offsets":[0,2]}}', 2),
        ('{"__metadata__":{"":""},"a\\/b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2),
        ('{"w":{"dtype":"F4","shape":[9007199254740992,0],"data_offsets":[0,0]}}', 0),
    ]
    for i, (h, n) in enumerate(cases):
        r.check(f"hand{i}", r.write(mk(h, bytes(range(n)))))


BASE_META = '"__metadata__":{"format":"pt"}'
A = '"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}'
B = '"b":{"dtype":"I64","shape":[2],"data_offsets":[24,40]}'
C = '"c":{"dtype":"U8","shape":[0],"data_offsets":[40,40]}'
BASE = "{" + ",".join([BASE_META, A, B, C]) + "}"
DATA = bytes((i * 37 + 5) & 0xFF for i in range(40))


def rule_mutations(r):
    """One malformed (or edge) variant per rule. (name, raw bytes, stricter)."""
    def rep(old, new, data=DATA):
        assert old in BASE, old
        return mk(BASE.replace(old, new, 1), data)

    cases = [
        ("base", mk(BASE, DATA), False),
        ("nul pad", mk(BASE + "\0\0", DATA), False),
        ("space pad", mk(BASE + "   ", DATA), False),
        ("leading newline", mk("\n" + BASE, DATA), False),
        ("vertical tab", mk(BASE + "\v", DATA), False),
        ("form feed", mk("\f" + BASE, DATA), False),
        ("bom", mk("\ufeff" + BASE, DATA), False),
        ("invalid utf8", mk(BASE.encode().replace(b'"a"', b'"\xff"'), DATA), False),
        ("overlong utf8", mk(BASE.encode().replace(b'"a"', b'"\xc0\xaf"'), DATA), False),
        ("surrogate utf8", mk(BASE.encode().replace(b'"a"', b'"\xed\xa0\x80"'), DATA), False),
        ("above 10ffff", mk(BASE.encode().replace(b'"a"', b'"\xf4\x90\x80\x80"'), DATA), False),
        ("raw control char", rep('"a"', '"a\tb"'), False),
        ("lone surrogate escape", rep('"a"', '"\\ud800"'), False),
        ("bad escape", rep('"a"', '"\\q"'), False),
        ("float shape", rep("[2,3]", "[2.0,3]"), False),
        ("exponent shape", rep("[2,3]", "[2e0,3]"), False),
        ("negative zero shape", rep('[0],', '[-0],'), False),
        ("negative offset", rep("[40,40]", "[40,-1]"), False),
        ("leading zero", rep("[2,3]", "[02,3]"), False),
        ("plus sign", rep("[2,3]", "[+2,3]"), False),
        ("2^64 offset", rep("[40,40]", "[40,18446744073709551616]"), False),
        ("2^53+1 zero-size", rep('"shape":[0]', '"shape":[9007199254740993,0]'), True),
        ("2^63 zero-size", rep('"shape":[0]', '"shape":[0,9223372036854775808]'), True),
        ("overflow shape", rep('"shape":[0]', '"shape":[9007199254740992,9007199254740992,0]'), False),
        ("dup tensor identical", mk("{" + ",".join([BASE_META, A, B, C, C]) + "}", DATA), True),
        ("dup tensor differs", mk("{" + ",".join([BASE_META, A, B, C, A.replace("[0,24]", "[0,23]")]) + "}", DATA), False),
        ("dup key in entry", rep('"dtype":"I64"', '"dtype":"I64","dtype":"I64"'), False),
        ("dup metadata key", rep('"format":"pt"', '"format":"pt","format":"pt"'), True),
        ("dup __metadata__", mk("{" + ",".join([BASE_META, A, B, C, BASE_META]) + "}", DATA), False),
        ("dup in unknown field", rep('"dtype":"U8"', '"dtype":"U8","x":{"k":1,"k":1}'), True),
        ("metadata number", rep('"pt"', "1"), False),
        ("metadata nested", rep('"pt"', '{"x":"y"}'), False),
        ("metadata list", rep('{"format":"pt"}', '["pt"]'), False),
        ("metadata null", rep('{"format":"pt"}', "null"), False),
        ("metadata empty", rep('{"format":"pt"}', "{}"), False),
        ("metadata nul value", rep('"pt"', '"p\\u0000t"'), True),
        ("metadata nul key", rep('"format"', '"for\\u0000mat"'), True),
        ("tensor name nul", rep('"a"', '"a\\u0000"'), True),
        ("unknown key nul", rep('"dtype":"U8"', '"dtype":"U8","x\\u0000":1'), True),
        ("missing dtype", rep('"dtype":"U8",', ""), False),
        ("missing shape", rep('"shape":[2],', ""), False),
        ("missing offsets", rep(',"data_offsets":[40,40]', ""), False),
        ("lowercase dtype", rep('"F32"', '"f32"'), False),
        ("unknown dtype", rep('"F32"', '"F128"'), False),
        ("dtype number", rep('"F32"', "32"), False),
        ("dtype as enum object", rep('"I64"', '{"I64":null}'), True),
        ("entry is a list", rep('{"dtype":"U8","shape":[0],"data_offsets":[40,40]}', "[]"), False),
        ("entry is null", rep('{"dtype":"U8","shape":[0],"data_offsets":[40,40]}', "null"), False),
        ("shape string", rep("[2,3]", '"2,3"'), False),
        ("shape bool", rep("[2,3]", "[true,3]"), False),
        ("three offsets", rep("[24,40]", "[24,40,40]"), False),
        ("one offset", rep("[40,40]", "[40]"), False),
        ("begin after end", rep('"shape":[0],"data_offsets":[40,40]', '"shape":[0],"data_offsets":[41,40]'), False),
        ("offsets object", rep("[40,40]", '{"b":40,"e":40}'), False),
        ("size mismatch", rep("[2,3]", "[2,2]"), False),
        ("f4 odd", rep('"dtype":"U8","shape":[0]', '"dtype":"F4","shape":[3]'), False),
        ("f6 misaligned", rep('"dtype":"U8","shape":[0]', '"dtype":"F6_E3M2","shape":[1]'), False),
        ("gap", rep("[24,40]", "[25,41]", DATA + b"x"), False),
        ("overlap", rep("[24,40]", "[23,39]"), False),
        ("not from zero", mk('{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"abc"), False),
        ("trailing byte", mk(BASE, DATA + b"\0"), False),
        ("truncated data", mk(BASE, DATA[:-1]), False),
        ("empty header", mk("", b""), False),
        ("empty object with data", mk("{}", b"x"), False),
        ("length past file", mk(BASE, DATA, n=len(BASE) + len(DATA) + 1), False),
        ("length 100000001", mk("{}", b"", n=100000001), False),
        ("length 2^64-1", mk("{}", b"", n=2**64 - 1), False),
        ("length short by one", mk(BASE, DATA, n=len(BASE) - 1), False),
        ("length long by one", mk(BASE, DATA, n=len(BASE) + 1), False),
        ("top array", mk("[]", b""), False),
        ("top string", mk('"x"', b""), False),
        ("trailing comma", mk(BASE[:-1] + ",}", DATA), False),
        ("two objects", mk(BASE + "{}", DATA), False),
        ("single quotes", mk(BASE.replace('"a"', "'a'"), DATA), False),
        ("nan", rep("[2,3]", "[NaN,3]"), False),
        ("70 digit extra", rep('"dtype":"U8"', '"dtype":"U8","x":' + "1" * 70), True),
        ("60 digit extra", rep('"dtype":"U8"', '"dtype":"U8","x":' + "1" * 60), False),
        ("file of 7 bytes", b"\x02\0\0\0\0\0\0", False),
        ("empty file", b"", False),
    ]
    for depth in (120, 125, 126, 127, 200, 5000):
        cases.append((f"nesting {depth}", rep('"dtype":"U8"', '"dtype":"U8","x":' + "[" * depth + "]" * depth), False))
    for name, raw, stricter in cases:
        r.check(f"rule: {name}", r.write(raw), stricter=stricter)


def truncations(r, raw, label):
    for cut in range(0, len(raw)):
        r.check(f"{label} cut at {cut}", r.write(raw[:cut]))
    for extra in (b"\0", b" ", b"\0" * 100):
        r.check(f"{label} + {len(extra)} bytes", r.write(raw + extra))


def byte_flips(r, rng, bases, count):
    alphabet = b'{}[]:,"\\ 0123456789-+.eE\x00\x7f\x80\xff\tnulltruefalseFIUB_'
    for i in range(count):
        raw = bytearray(bases[i % len(bases)])
        n = struct.unpack("<Q", bytes(raw[:8]))[0]
        if n == 0:
            continue
        for _ in range(int(rng.integers(1, 4))):
            pos = 8 + int(rng.integers(0, n))
            if rng.integers(0, 2):
                raw[pos] = alphabet[int(rng.integers(0, len(alphabet)))]
            else:
                raw[pos] ^= 1 << int(rng.integers(0, 8))
        r.check(f"flip {i}", r.write(bytes(raw)))


def vectors(r, root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(".safetensors"):
                found.append(os.path.join(dirpath, fn))
    if not found:
        r.fail("vectors", f"no .safetensors under {root}")
    for path in found:
        r.check(f"vector {os.path.relpath(path, root)}", path)
    # The pipeline folder: components in model_index.json order, each
    # component's files sorted.
    pipe = os.path.join(root, "pipe")
    if os.path.isfile(os.path.join(pipe, "model_index.json")):
        with open(os.path.join(pipe, "model_index.json")) as f:
            index = json.load(f)
        want = []
        for key, val in index.items():
            if key.startswith("_") or not isinstance(val, list) or val == [None, None]:
                continue
            d = os.path.join(pipe, key)
            if os.path.isdir(d):
                want += sorted(os.path.join(d, fn) for fn in os.listdir(d)
                               if fn.endswith(".safetensors") and not fn.startswith("."))
        rc, out, err = r.hoist_inspect(pipe)
        got = [f["path"] for f in json.loads(out)["files"]] if rc == 0 else None
        if got != want:
            r.fail("pipeline dir", f"rc {rc}, files {got} vs {want}: {err.strip()}")
        else:
            r.passed += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hoist", required=True)
    vector_sets.add_arguments(ap)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--flips", type=int, default=600)
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()
    os.makedirs(args.tmp, exist_ok=True)
    for fn in os.listdir(args.tmp):
        if fn.endswith(".safetensors"):
            os.unlink(os.path.join(args.tmp, fn))
    rng = np.random.default_rng(args.seed)
    r = Runner(args.hoist, args.tmp)

    for root in vector_sets.roots(args):
        vectors(r, root)
    bases = [open(p, "rb").read() for p in valid_numpy_files(r, rng)][1:12]
    bases += [open(p, "rb").read() for p in valid_spec_files(r, rng)]
    hand_files(r)
    rule_mutations(r)
    truncations(r, mk(BASE, DATA), "base")
    byte_flips(r, rng, [mk(BASE, DATA)] + bases, args.flips)

    print(f"diff_reader: {r.passed} passed, {r.failed} failed "
          f"({r.accepted} accepted by both, {r.rejected} rejected by hoist, of which "
          f"{r.stricter} accepted by the reference under documented stricter rules)")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
