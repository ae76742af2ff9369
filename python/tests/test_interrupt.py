"""Ctrl-C during Runtime.load or Runtime.load_into raises
KeyboardInterrupt with nothing left allocated; so does an exception from
the progress callback.  Progress comes
on the calling thread, per component in load order."""

import os
import signal
import threading

import pytest

import hoist
from conftest import free_bytes, make_pipeline

CAP = 1 << 30


@pytest.fixture(scope="module")
def flux_large(hoist_cli, tmp_path_factory):
    """FLUX.1-dev-shaped pipeline at scale 0.01, 323 MB: with one reader,
    4 KiB chunks and verification it takes a few hundred milliseconds."""
    return make_pipeline(hoist_cli, tmp_path_factory.mktemp("flux-large"), scale="0.01",
                         seed="2")


def slow_runtime():
    return hoist.Runtime("host", capacity=CAP, threads=1, chunk=4096)


def test_sigint_cancels_the_load(flux_large):
    seen = []
    timer = []

    def progress(component, done, total):
        seen.append((component, done, total))
        if not timer:  # the load is under way: Ctrl-C from another thread
            timer.append(threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)))
            timer[0].start()

    with slow_runtime() as rt:
        plan = rt.plan(flux_large)
        with pytest.raises(KeyboardInterrupt):
            rt.load(flux_large, read="pread", verify=True, progress=progress)
        timer[0].join()
        assert seen, "the load reported no progress before it was interrupted"
        finished = {c for c, done, total in seen if done == total}
        weighted = [c["name"] for c in plan.components if c["inferred_bytes"]]
        assert finished != set(weighted), "the load ended before the interrupt"
        assert free_bytes(rt) == CAP  # nothing left allocated
        with rt.load(flux_large, progress=False) as loaded:  # and the runtime still loads
            assert len(loaded) == 4
        assert free_bytes(rt) == CAP


def test_sigint_cancels_load_into(flux_large):
    """Into numpy buffers as F32 (a conversion: the scratch is allocated)."""
    import numpy as np

    with slow_runtime() as rt:
        with rt.load(flux_large, tensors="encoder.block.*", progress=False) as loaded:
            into = {n: np.empty(t.shape, np.float32) for n, t in loaded["text_encoder_2"].items()}
        timer = []

        def progress(component, done, total):
            if not timer:
                timer.append(threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)))
                timer[0].start()

        with pytest.raises(KeyboardInterrupt):
            rt.load_into(flux_large, "text_encoder_2", into, tensors="encoder.block.*",
                         read="pread", verify=True, progress=progress)
        timer[0].join()
        assert free_bytes(rt) == CAP  # nothing left allocated
        rt.load_into(flux_large, "text_encoder_2", into, tensors="encoder.block.*",
                     progress=False)  # and the runtime still loads
        assert free_bytes(rt) == CAP


def test_exception_in_progress_cancels(flux_large):
    class Stop(Exception):
        pass

    def progress(component, done, total):
        raise Stop(component)

    with slow_runtime() as rt:
        with pytest.raises(Stop):
            rt.load(flux_large, read="pread", progress=progress)
        assert free_bytes(rt) == CAP


def test_progress_reports_every_component_in_order(np_pipeline):
    calls = []
    caller = threading.get_ident()

    def progress(component, done, total):
        calls.append((component, done, total, threading.get_ident()))

    with hoist.Runtime("host") as rt, rt.load(np_pipeline, progress=progress) as loaded:
        order = [c["name"] for c in loaded.components if c["tensor_count"]]
        totals = {c["name"]: c["bytes"] for c in loaded.components}
    assert all(tid == caller for *_, tid in calls)
    reported = []
    for component, done, total, _ in calls:
        if not reported or reported[-1] != component:
            reported.append(component)
        assert total == totals[component] and 0 < done <= total
    assert reported == order
    last = {c: (d, t) for c, d, t, _ in calls}
    assert all(d == t for d, t in last.values())


def test_progress_false_and_true_without_a_terminal(np_pipeline, capsys):
    with hoist.Runtime("host") as rt:
        for progress in (False, None, True):  # True: stderr is not a terminal here
            with rt.load(np_pipeline, progress=progress):
                pass
    assert capsys.readouterr().err == ""
