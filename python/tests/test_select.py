"""Runtime.load(tensors=...) reads only some tensors — globs (whole
names, case-sensitive), or a callable (component, name) — and admits,
places and lists only those; a single .safetensors file loads as a
one-component pipeline; holds on exported tensors are the library's
(release answers Busy), whatever thread drops them."""

import threading

import numpy as np
import pytest
from safetensors.numpy import load_file

import hoist
from conftest import free_bytes

CAP = 64 << 20


def test_globs_select_whole_names(np_pipeline, hoist_cli):
    with hoist.Runtime("host", capacity=CAP) as rt:
        with rt.load(np_pipeline, tensors=["a.*", "ids"], progress=False) as loaded:
            assert list(loaded) == ["transformer", "text_encoder"]
            assert list(loaded["transformer"]) == ["a.bias", "a.weight"]
            assert list(loaded["text_encoder"]) == ["ids"]
            infos = {c["name"]: c for c in loaded.components}
            assert infos["transformer"]["bytes"] == (256 * 1024 + 1024) * 4
            assert infos["text_encoder"]["tensor_count"] == 1
            assert free_bytes(rt) == CAP - sum(c["device_bytes"] for c in infos.values())
            want = load_file(str(np_pipeline / "transformer" / "model.safetensors"))
            assert np.array_equal(loaded["transformer"]["a.weight"].numpy(), want["a.weight"])
            with pytest.raises(KeyError, match="the tensor filter left it out"):
                loaded["transformer"]["b.weight"]
        # A component with nothing selected has no key.
        with rt.load(np_pipeline, tensors="emb", progress=False) as loaded:
            assert list(loaded) == ["text_encoder"]
            assert {c["name"]: c["tensor_count"] for c in loaded.components} == {
                "transformer": 0, "text_encoder": 1}
        # Case matters; a pattern that matches nothing is refused.
        with pytest.raises(hoist.InvalidArgument,
                           match="`tensors`: pattern 'A.\\*' matches no tensor") as err:
            rt.load(np_pipeline, tensors=["a.*", "A.*"], progress=False)
        assert err.value.exit_code == 2
        assert free_bytes(rt) == CAP


def test_callable_selects(np_pipeline):
    seen = []

    def big_floats(component, name):
        seen.append((component, name))
        return name in ("a.weight", "b.weight", "emb")

    with hoist.Runtime("host", capacity=CAP) as rt:
        with rt.load(np_pipeline, tensors=big_floats, progress=False) as loaded:
            assert {c: list(sd) for c, sd in loaded.items()} == {
                "transformer": ["a.weight", "b.weight"], "text_encoder": ["emb"]}
        assert len(seen) == 7 and {c for c, _ in seen} == {"transformer", "text_encoder"}

        class Stop(Exception):
            pass

        def stop(component, name):
            raise Stop(name)

        with pytest.raises(Stop):
            rt.load(np_pipeline, tensors=stop, progress=False)
        assert free_bytes(rt) == CAP


def test_admission_counts_only_what_is_read(np_pipeline):
    # The pipeline takes 2 MB; "emb" and "ids" fit in 1 MB.
    with hoist.Runtime("host", capacity=1 << 20) as rt:
        with pytest.raises(hoist.DoesNotFit) as err:
            rt.load(np_pipeline, progress=False)
        assert err.value.component == "transformer"
        with rt.load(np_pipeline, tensors=["emb", "ids"], progress=False) as loaded:
            assert list(loaded) == ["text_encoder"]
            assert free_bytes(rt) == (1 << 20) - loaded.components[1]["device_bytes"]
        assert free_bytes(rt) == 1 << 20


def test_one_file_is_a_pipeline(np_pipeline, hoist_cli):
    f = np_pipeline / "text_encoder" / "model.safetensors"
    want = load_file(str(f))
    with hoist.Runtime("host", capacity=CAP) as rt:
        plan = rt.plan(f)
        assert plan.order == ["model"]
        (c,) = plan.components
        assert (c["library"], c["class"], c["path"]) == (None, None, str(f))
        assert c["files"] == [str(f)] and c["tensor_count"] == 3
        with rt.load(f, progress=False) as loaded:
            assert list(loaded) == ["model"]
            sd = loaded["model"]
            assert sorted(sd) == sorted(want)
            for name, a in want.items():
                assert np.array_equal(sd[name].numpy(), a), name
        assert free_bytes(rt) == CAP


def test_release_is_refused_by_the_library_while_exported(np_pipeline):
    with hoist.Runtime("host", capacity=CAP) as rt:
        loaded = rt.load(np_pipeline, offload="text_encoder", progress=False)
        loaded.prepare("text_encoder")
        arrays = [np.from_dlpack(loaded["text_encoder"][n]) for n in ("emb", "ids")]
        with pytest.raises(hoist.Busy, match="2 exported tensors are still alive") as err:
            loaded.release("text_encoder")
        assert err.value.status == "BUSY"
        # The last export dies on another thread: the hold goes with it.
        t = threading.Thread(target=arrays.clear)
        t.start()
        t.join()
        assert [c["exported"] for c in loaded.components] == [0, 0]
        assert loaded.release("text_encoder") is True
        loaded.close()
        assert free_bytes(rt) == CAP
