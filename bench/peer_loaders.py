#!/usr/bin/env python3
"""peer_loaders.py — the hardware limit and the peer loaders, measured on the
same machine and the same files as `hoist bench load`, so hoist's figures
have something to be divided by.

usage: peer_loaders.py PATH [--repeat N] [--no-cold]

PATH is a .safetensors file or a folder (searched recursively).  Prints one
JSON object:
  gpu, files, bytes    the card and the tensor payload loaded
  h2d_pinned_GBps      pinned host->device copy of 1 GiB, median of 10 (the link)
  cold_read_GBps       one thread reading every file sequentially, caches dropped
  peer_cold_GBps       safetensors.torch.load_file(f, device="cuda:0"), caches dropped
  peer_warm_GBps       the same with the files in the page cache, best of N
  fst_warm_GBps        fastsafetensors (no GDS) to cuda:0, warm, best of N;
                       null when it is not installed (fst_error: why it failed)
Needs torch and safetensors.  Dropping the page cache needs root; without
it each file's pages are evicted with posix_fadvise(DONTNEED).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

GIB = 1 << 30


def safetensors_files(path):
    if os.path.isfile(path):
        return [path]
    return sorted(glob.glob(os.path.join(path, "**", "*.safetensors"), recursive=True))


def evict(files):
    """Drops the page cache where allowed, and each file's pages in any case."""
    subprocess.run("sync && echo 3 > /proc/sys/vm/drop_caches", shell=True,
                   stderr=subprocess.DEVNULL, check=False)
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def link_GBps(nbytes=GIB, runs=10):
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    host.random_(0, 256)
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda:0")
    for _ in range(3):  # warm-up
        dev.copy_(host, non_blocking=True)
    seconds = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        dev.copy_(host, non_blocking=True)
        stop.record()
        stop.synchronize()
        seconds.append(start.elapsed_time(stop) / 1e3)
    del host, dev
    torch.cuda.empty_cache()
    return nbytes / statistics.median(seconds) / 1e9


def read_seconds(files):
    """One thread, each file start to end into a reused 64 MiB buffer."""
    view = memoryview(bytearray(64 << 20))
    t0 = time.perf_counter()
    total = 0
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while (n := f.readinto(view)) > 0:
                total += n
    return total, time.perf_counter() - t0


def safetensors_load(files):
    """Every file through safetensors.torch.load_file onto cuda:0; returns
    (tensor bytes, seconds)."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    loaded = [load_file(path, device="cuda:0") for path in files]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    nbytes = sum(t.numel() * t.element_size() for d in loaded for t in d.values())
    del loaded
    torch.cuda.empty_cache()
    return nbytes, seconds


def fastsafetensors_load(files):
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    loader = SafeTensorsFileLoader(SingleGroup(), torch.device("cuda:0"), nogds=True)
    loader.add_filenames({0: files})
    buffers = loader.copy_files_to_device()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    buffers.close()
    loader.close()
    torch.cuda.empty_cache()
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("--repeat", type=int, default=3, help="warm loads per peer (best is kept)")
    ap.add_argument("--no-cold", action="store_true", help="skip the measurements that drop caches")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    files = safetensors_files(args.path)
    if not files:
        sys.exit(f"peer_loaders: no .safetensors files under {args.path}")

    out = {"gpu": torch.cuda.get_device_name(0), "files": len(files)}
    out["h2d_pinned_GBps"] = link_GBps()
    if not args.no_cold:
        evict(files)
        nread, seconds = read_seconds(files)
        out["cold_read_GBps"] = nread / seconds / 1e9
        evict(files)
        nbytes, seconds = safetensors_load(files)
        out["peer_cold_GBps"] = nbytes / seconds / 1e9
    read_seconds(files)  # into the page cache
    warm = [safetensors_load(files) for _ in range(args.repeat)]
    nbytes = warm[0][0]
    best = min(seconds for _, seconds in warm)
    out["bytes"] = nbytes
    out["peer_warm_GBps"] = nbytes / best / 1e9
    try:
        best = min(fastsafetensors_load(files) for _ in range(args.repeat))
        out["fst_warm_GBps"] = nbytes / best / 1e9
    except ImportError:
        out["fst_warm_GBps"] = None
    except Exception as e:  # a peer that fails is reported, not hidden
        out["fst_warm_GBps"] = None
        out["fst_error"] = repr(e)[:200]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
