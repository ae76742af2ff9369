"""500 load/close cycles in one process keep RSS and the device's free
memory (hoist_runtime_mem_info) flat, exports and loads into numpy
buffers included."""

import os

import numpy as np

import hoist
from conftest import free_bytes

CAP = 256 << 20


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cycle(rt, path, into):
    with rt.load(path, progress=False) as loaded:
        sd = loaded["text_encoder"]
        arrays = [np.from_dlpack(sd[name]) for name in list(sd)[:8] if sd[name].dtype != "BF16"]
        raw = [sd[name].__dlpack__() for name in list(sd)[:8]]
        names = sum(len(s) for s in loaded.values())
    del arrays, raw
    # The vae's BF16 tensors into numpy buffers, as F32 (a conversion).
    assert rt.load_into(path, "vae", into, strict=False, progress=False).unexpected_keys == []
    return names


def test_500_cycles_stay_flat(flux_small):
    with hoist.Runtime("host", capacity=CAP) as rt:
        with rt.load(flux_small, tensors="*", progress=False) as loaded:
            into = {name: np.empty(t.shape, np.float32)
                    for name, t in loaded["vae"].items() if t.dtype == "BF16"}
        assert len(into) > 100
        count = cycle(rt, flux_small, into)
        assert count > 1000
        for _ in range(50):  # warm-up: allocator pools, interned names
            cycle(rt, flux_small, into)
        rss0, free0 = rss_bytes(), free_bytes(rt)
        assert free0 == CAP
        for _ in range(450):
            assert cycle(rt, flux_small, into) == count
            assert rt.mem_info() == (CAP, CAP)
        grown = rss_bytes() - rss0
        assert grown < 8 << 20, f"RSS grew by {grown} bytes over 450 cycles"
