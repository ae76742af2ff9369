"""A tensor keeps its component's memory alive: closing the Loaded, or the
Runtime, while exported arrays live never leaves them dangling, and the
memory comes back when the last one dies.  Memory is read through the host
backend's accounting (admission's free bytes).  The adapters' shared
runtimes: a forked child makes its own and never closes its parent's."""

import gc
import os
import weakref

import numpy as np
import pytest
from safetensors.numpy import load_file

import hoist
from hoist import _shared
from conftest import free_bytes

CAP = 64 << 20


def test_close_keeps_exported_memory_until_the_last_array_dies(np_pipeline):
    want = load_file(str(np_pipeline / "text_encoder" / "model.safetensors"))
    with hoist.Runtime("host", capacity=CAP) as rt:
        assert free_bytes(rt) == CAP
        loaded = rt.load(np_pipeline, progress=False)
        used = sum(c["device_bytes"] for c in loaded.components)
        assert used > 0
        assert free_bytes(rt) == CAP - used
        emb = np.from_dlpack(loaded["text_encoder"]["emb"])
        ids = loaded["text_encoder"]["ids"].numpy()
        tensor = loaded["transformer"]["a.weight"]
        assert loaded.components[1]["exported"] + loaded.components[0]["exported"] == 2
        loaded.close()
        # The arrays still read the loaded bytes; the arenas are still held.
        assert np.array_equal(emb, want["emb"]) and np.array_equal(ids, want["ids"])
        assert free_bytes(rt) == CAP - used
        # Views of a closed load refuse new exports.
        with pytest.raises(ValueError, match="closed"):
            tensor.__dlpack__()
        with pytest.raises(ValueError, match="closed"):
            loaded["transformer"]["a.bias"]
        del emb
        assert free_bytes(rt) == CAP - used
        del ids
        assert free_bytes(rt) == CAP


def test_with_block_and_gc_of_a_cycle(np_pipeline):
    with hoist.Runtime("host", capacity=CAP) as rt:
        with rt.load(np_pipeline, progress=False) as loaded:
            cycle = [np.from_dlpack(loaded["transformer"]["steps"])]
            cycle.append(cycle)
        assert loaded.closed
        assert free_bytes(rt) < CAP
        del cycle
        gc.collect()
        assert free_bytes(rt) == CAP


def test_unconsumed_capsule_frees_its_hold(np_pipeline):
    with hoist.Runtime("host", capacity=CAP) as rt:
        loaded = rt.load(np_pipeline, progress=False)
        capsule = loaded["transformer"]["a.weight"].__dlpack__()
        loaded.close()
        assert free_bytes(rt) < CAP
        del capsule
        assert free_bytes(rt) == CAP


def test_runtime_closed_before_the_arrays(np_pipeline):
    want = load_file(str(np_pipeline / "transformer" / "model.safetensors"))
    rt = hoist.Runtime("host", capacity=CAP)
    loaded = rt.load(np_pipeline, progress=False)
    arr = loaded["transformer"]["a.weight"].numpy()
    rt.close()
    loaded.close()
    assert rt.closed and loaded.closed
    with pytest.raises(ValueError, match="Runtime is closed"):
        rt.load(np_pipeline, progress=False)
    assert np.array_equal(arr, want["a.weight"])  # runtime and load live on for it
    del arr


def test_release_refused_while_exported(np_pipeline):
    with hoist.Runtime("host", capacity=CAP) as rt:
        loaded = rt.load(np_pipeline, offload="text_encoder", progress=False)
        infos = {c["name"]: c for c in loaded.components}
        assert infos["text_encoder"]["residency"] == "offload"
        resident = infos["transformer"]["device_bytes"]
        assert free_bytes(rt) == CAP - resident
        t = loaded["text_encoder"]["emb"]
        with pytest.raises(hoist.Error, match=r"offloaded; call loaded.prepare\('text_encoder'\)"):
            np.from_dlpack(t)
        with pytest.raises(hoist.Error) as err:
            t.device_ptr
        assert err.value.status == "UNSUPPORTED"

        assert loaded.prepare("text_encoder") is True
        assert loaded.prepare("text_encoder") is False  # already resident
        prepared = {c["name"]: c for c in loaded.components}["text_encoder"]["device_bytes"]
        assert free_bytes(rt) == CAP - resident - prepared
        arr = np.from_dlpack(t)
        want = load_file(str(np_pipeline / "text_encoder" / "model.safetensors"))
        assert np.array_equal(arr, want["emb"])
        with pytest.raises(hoist.Busy, match="text_encoder: 1 exported tensor is still alive") \
                as err:
            loaded.release("text_encoder")
        assert (err.value.status, err.value.code) == ("BUSY", -7)
        assert np.array_equal(arr, want["emb"])  # not freed under it
        del arr
        assert loaded.release("text_encoder") is True
        assert free_bytes(rt) == CAP - resident
        assert loaded.release("transformer") is False  # resident: nothing to free
        with pytest.raises(KeyError, match="no component 'nope'"):
            loaded.prepare("nope")
        loaded.close()
        assert free_bytes(rt) == CAP


def test_a_forked_child_never_closes_its_parents_shared_runtime():
    hoist.release_runtimes()
    parents = weakref.ref(_shared.shared_runtime("host"))  # only _shared holds it
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: releasing, then a runtime of its own, never the parent's
        ok = False
        try:
            hoist.release_runtimes()
            gc.collect()
            kept = parents() is not None and not parents().closed
            mine = _shared.shared_runtime("host")
            hoist.release_runtimes()
            ok = kept and mine is not parents() and mine.closed and not parents().closed
        finally:
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"
    rt = parents()
    assert rt is not None and _shared.shared_runtime("host") is rt and not rt.closed
    hoist.release_runtimes()
    assert rt.closed
