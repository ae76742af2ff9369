"""diff_shard.py — what each rank of a group reads (`hoist shards`) against
a reference written in numpy.

The reference is the contract of torch.chunk, which FSDP2
(torch.distributed.fsdp.fully_shard) uses to shard every parameter on
dim 0: chunks of ceil(n / W) rows cut from the front, the ranks past the
last chunk getting none (FSDP2 pads its own storage of each chunk to
ceil(n / W) rows: `padded`); and, for a tensor-parallel plan, W equal parts
of the named dimension (numpy.split).  The pipeline is written by the
official safetensors writer (safetensors.numpy) with tensors of many
dtypes and shapes (scalars, empty and one-row tensors, 3-D and 4-D ones);
for every world size W in 1..7 and every rank, each tensor's split, local
shape, offset, length and padding must agree, and the bytes hoist says it
reads (its runs of the file) must be exactly the reference part's bytes.
A plan that W does not divide must fail before anything is read (exit 2,
naming the tensor).

With --torch the reference itself is checked against torch.chunk (and the
bytes hoist reads against torch's parts); where torch is not installed
that prints a SKIP line and passes.

Prints `diff_shard: N passed, 0 failed`; exits 1 on any failure.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import Tally  # noqa: E402

tally = Tally()
check = tally.check

TP_PLAN = "text_encoder:q.weight=1,text_encoder:o.weight=0,text_encoder:t3=-1"


def fsdp_part(arr, world, rank):
    """torch.chunk(arr, world, dim=0)[rank], with FSDP2's empty chunks past
    the last: (part, offset, length, padded)."""
    n = arr.shape[0]
    size = -(-n // world)
    start, stop = min(rank * size, n), min((rank + 1) * size, n)
    return arr[start:stop], start, stop - start, size


def tp_part(arr, world, rank, dim):
    """Equal parts of dimension dim: numpy.split (it refuses unequal ones)."""
    part = np.split(arr, world, axis=dim)[rank]
    length = arr.shape[dim] // world
    return part, rank * length, length, length


def random_array(rng, dtype, shape):
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(size=shape).astype(dtype)


def write_pipeline(root):
    rng = np.random.default_rng(17)
    comps = {
        "transformer": {
            "a": (np.float32, (7, 5)), "b": (np.float16, (5,)), "s": (np.float32, ()),
            "row": (np.uint8, (1, 9)), "empty": (np.float32, (0, 4)),
            "c3": (np.int64, (13, 3, 2)), "c4": (np.int8, (9, 2, 3, 4)),
            "flags": (np.bool_, (11, 2)), "big": (np.float32, (301, 67)),
        },
        "text_encoder": {
            "q.weight": (np.float32, (24, 12)), "o.weight": (np.float16, (12, 24)),
            "t3": (np.int16, (2, 3, 12)), "ln.weight": (np.float32, (24,)),
        },
    }
    arrays = {}
    os.makedirs(root)
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump({"_class_name": "FluxPipeline",
                   "transformer": ["diffusers", "FluxTransformer2DModel"],
                   "text_encoder": ["transformers", "CLIPTextModel"]}, f)
    for comp, tensors in comps.items():
        os.makedirs(os.path.join(root, comp))
        arrays[comp] = {n: random_array(rng, dt, shape) for n, (dt, shape) in tensors.items()}
        save_file(arrays[comp], os.path.join(root, comp, "model.safetensors"))
    return arrays


def file_data(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    return raw[8 + n:]


def read_runs(data, t):
    runs = t["runs"]
    base = t["data_begin"] + runs["first"]
    return b"".join(data[base + k * runs["stride"]:base + k * runs["stride"] + runs["bytes"]]
                    for k in range(runs["count"]))


def shards(hoist, root, world, with_plan):
    cmd = [hoist, "shards", "--json", "--all", "--world-size", str(world), "--fsdp",
           "transformer", root]
    if with_plan:
        cmd[2:2] = ["--shard", TP_PLAN]
    return subprocess.run(cmd, capture_output=True, text=True)


def expected(arrays, comp, name, world, rank, with_plan):
    arr = arrays[comp][name]
    if comp == "transformer" and arr.ndim > 0 and world > 1:
        part, off, length, padded = fsdp_part(arr, world, rank)
        return "fsdp", 0, part, off, length, padded
    dims = {"q.weight": 1, "o.weight": 0, "t3": arr.ndim - 1}
    if comp == "text_encoder" and with_plan and name in dims and world > 1:
        part, off, length, padded = tp_part(arr, world, rank, dims[name])
        return "tp", dims[name], part, off, length, padded
    n = arr.shape[0] if arr.ndim > 0 else 1
    return "none", 0, arr, 0, n, n


def compare_world(hoist, root, arrays, data, world):
    with_plan = 12 % world == 0
    r = shards(hoist, root, world, with_plan)
    if not check(r.returncode == 0, f"W={world}: exit {r.returncode}: {r.stderr.strip()}"):
        return
    out = json.loads(r.stdout)
    check(len(out["ranks"]) == world, f"W={world}: {len(out['ranks'])} ranks listed")
    for entry in out["ranks"]:
        rank = entry["rank"]
        for t in entry["tensors"]:
            comp, name = t["component"], t["tensor"]
            kind, dim, part, off, length, padded = expected(arrays, comp, name, world, rank,
                                                            with_plan)
            what = f"W={world} rank {rank} {comp}/{name}"
            check(t["split"] == kind, f"{what}: split {t['split']}, reference {kind}")
            if kind != "none":
                check((t["dim"], t["offset"], t["length"], t["padded"]) == (dim, off, length, padded),
                      f"{what}: dim/offset/length/padded {t['dim']},{t['offset']},{t['length']},"
                      f"{t['padded']}, reference {dim},{off},{length},{padded}")
            check(tuple(t["local_shape"]) == part.shape,
                  f"{what}: local shape {t['local_shape']}, reference {list(part.shape)}")
            got = read_runs(data[comp], t)
            check(got == np.ascontiguousarray(part).tobytes(),
                  f"{what}: the {len(got)} bytes of its runs differ from the reference part")
            check(t["nbytes"] == part.nbytes, f"{what}: {t['nbytes']} bytes, reference {part.nbytes}")


def check_refusals(hoist, root):
    """A plan W does not divide fails before anything is read, naming the
    tensor; so does a rule matching nothing."""
    r = shards(hoist, root, 5, True)
    check(r.returncode == 2 and "does not split into 5 equal parts" in r.stderr,
          f"W=5 with the plan: exit {r.returncode}: {r.stderr.strip()}")
    r = subprocess.run([hoist, "shards", "--world-size", "2", "--shard", "text_encoder:nope=0",
                        root], capture_output=True, text=True)
    check(r.returncode == 2 and "names no tensor" in r.stderr,
          f"a rule naming nothing: exit {r.returncode}: {r.stderr.strip()}")


def torch_cross_check(hoist, root, arrays, data):
    try:
        import torch
    except ImportError:
        print("SKIP: torch is not installed; the torch.chunk cross-check did not run")
        return
    for n in range(0, 41):
        for world in range(1, 10):
            x = torch.arange(n)
            chunks = list(torch.chunk(x, world, 0)) if n > 0 else []
            chunks += [x[:0]] * (world - len(chunks))  # FSDP2's _chunk_with_empty
            for rank in range(world):
                ref, _, _, _ = fsdp_part(np.arange(n), world, rank)
                check(np.array_equal(chunks[rank].numpy(), ref),
                      f"torch.chunk n={n} W={world} rank {rank} differs from the reference")
    for world in (2, 3, 4):
        r = shards(hoist, root, world, True)
        out = json.loads(r.stdout)
        for entry in out["ranks"]:
            for t in entry["tensors"]:
                arr = arrays[t["component"]][t["tensor"]]
                if t["split"] == "none" or arr.dtype == np.bool_:
                    continue
                chunks = list(torch.chunk(torch.from_numpy(arr.copy()), world, t["dim"]))
                chunks += [chunks[0][:0]] * (world - len(chunks))
                want = chunks[entry["rank"]].contiguous().numpy().tobytes()
                check(read_runs(data[t["component"]], t) == want,
                      f"torch W={world} rank {entry['rank']} {t['component']}/{t['tensor']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hoist", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--torch", action="store_true", help="check the reference against torch")
    args = ap.parse_args()
    shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.tmp)
    root = os.path.join(args.tmp, "pipe")
    arrays = write_pipeline(root)
    data = {c: file_data(os.path.join(root, c, "model.safetensors")) for c in arrays}
    if args.torch:
        torch_cross_check(args.hoist, root, arrays, data)
    else:
        for world in range(1, 8):
            compare_world(args.hoist, root, arrays, data, world)
        check_refusals(args.hoist, root)
    tally.close("diff_shard_torch" if args.torch else "diff_shard")


if __name__ == "__main__":
    main()
