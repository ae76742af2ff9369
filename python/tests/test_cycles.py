"""500 load/close cycles in one process keep RSS and the host backend's
allocated bytes flat, exports included."""

import os

import numpy as np

import hoist
from conftest import free_bytes

CAP = 256 << 20


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cycle(rt, path):
    with rt.load(path, progress=False) as loaded:
        sd = loaded["text_encoder"]
        arrays = [np.from_dlpack(sd[name]) for name in list(sd)[:8] if sd[name].dtype != "BF16"]
        raw = [sd[name].__dlpack__() for name in list(sd)[:8]]
        names = sum(len(s) for s in loaded.values())
    del arrays, raw
    return names


def test_500_cycles_stay_flat(flux_small, probe_dir):
    with hoist.Runtime("host", capacity=CAP) as rt:
        count = cycle(rt, flux_small)
        assert count > 1000
        for _ in range(50):  # warm-up: allocator pools, interned names
            cycle(rt, flux_small)
        rss0, free0 = rss_bytes(), free_bytes(rt, probe_dir, CAP)
        assert free0 == CAP
        for _ in range(450):
            assert cycle(rt, flux_small) == count
        grown = rss_bytes() - rss0
        assert free_bytes(rt, probe_dir, CAP) == CAP
        assert grown < 8 << 20, f"RSS grew by {grown} bytes over 450 cycles"
