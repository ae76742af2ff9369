"""Every tensor hoist loads on the host backend, read through numpy, is
bit-identical to the official reader (safetensors' numpy API) for the
dtypes numpy holds, and to the file's bytes for the others."""

import ctypes
import hashlib
import json
import shutil

import numpy as np
import pytest
from safetensors import safe_open

import hoist
from conftest import component_files, raw_tensors

NUMPY_HOLDS = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "F32",
               "F64", "C64"}


def host_bytes(t):
    return ctypes.string_at(t.device_ptr, t.nbytes) if t.nbytes else b""


def check_component(sd, folder):
    """Every tensor of folder's files against sd; returns how many."""
    seen = 0
    for path in component_files(folder):
        raw = raw_tensors(path)
        with safe_open(str(path), framework="np") as ref:
            for name, (dtype, shape, data) in raw.items():
                t = sd[name]
                assert (t.dtype, t.shape, t.nbytes) == (dtype, shape, len(data)), name
                assert host_bytes(t) == data, name
                if dtype in NUMPY_HOLDS:
                    want = ref.get_tensor(name)
                    got = t.numpy()
                    assert got.dtype == want.dtype and got.shape == want.shape, name
                    assert got.tobytes() == want.tobytes(), name
                    if got.size:
                        assert got.ctypes.data == t.device_ptr, f"{name}: not zero-copy"
                else:
                    with pytest.raises(TypeError, match="numpy has no dtype"):
                        t.numpy()
                seen += 1
    assert seen == len(sd)
    return seen


def test_make_pipeline_bit_identical(flux_tiny):
    with hoist.Runtime("host") as rt, rt.load(flux_tiny, progress=False) as loaded:
        assert list(loaded) == ["transformer", "text_encoder_2", "vae", "text_encoder"]
        total = 0
        for component, sd in loaded.items():
            total += check_component(sd, flux_tiny / component)
        assert total == sum(c["tensor_count"] for c in loaded.components)


def test_numpy_from_dlpack_is_zero_copy(flux_tiny, tmp_path):
    from safetensors.numpy import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    want = {"f": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
            "i": np.arange(5, dtype=np.int64), "b": np.array([True, False, True])}
    save_file(want, str(folder / "model.safetensors"))
    with hoist.Runtime("host") as rt, rt.load(folder, progress=False) as loaded:
        (sd,) = loaded.values()
        for name, ref in want.items():
            t = sd[name]
            assert t.__dlpack_device__() == (hoist._core.kDLCPU, 0)
            arr = np.from_dlpack(t)
            assert arr.ctypes.data == t.device_ptr, name
            assert arr.tobytes() == ref.tobytes(), name
            assert t.numpy().dtype == ref.dtype, name  # BOOL: bool again
    with hoist.Runtime("host") as rt, rt.load(flux_tiny, progress=False) as loaded:
        sd = loaded["text_encoder_2"]
        t = next(t for t in (sd[n] for n in sd) if t.dtype == "BF16")
        with pytest.raises(TypeError, match="numpy has no dtype for BF16"):
            t.numpy()


def test_shared_vector_files(shared_vectors, tmp_path):
    expect = json.loads((shared_vectors / "expect.json").read_text())
    files = [f for f in expect if f.endswith(".safetensors")]
    assert files
    with hoist.Runtime("host") as rt:
        for i, fname in enumerate(files):
            folder = tmp_path / f"c{i}"
            folder.mkdir()
            shutil.copy(shared_vectors / fname, folder / "model.safetensors")
            tensors = expect[fname]["tensors"]
            if not tensors:  # a file without tensors loads to nothing
                with rt.load(folder, progress=False) as loaded:
                    assert len(loaded) == 0
                continue
            with rt.load(folder, progress=False) as loaded:
                (sd,) = loaded.values()
                assert sorted(sd) == sorted(tensors)
                for name, e in tensors.items():
                    t = sd[name]
                    assert t.dtype == e["dtype"] and list(t.shape) == e["shape"], name
                    assert hashlib.sha256(host_bytes(t)).hexdigest() == e["sha256"], name
                check_component(sd, folder)


def test_shared_vector_pipeline(shared_vectors):
    pipe = shared_vectors / "pipe"
    with hoist.Runtime("host") as rt, rt.load(pipe, progress=False) as loaded:
        assert set(loaded) == {p.name for p in pipe.iterdir() if p.is_dir()}
        for component, sd in loaded.items():
            check_component(sd, pipe / component)


def test_carrier_of_dtypes_without_a_dlpack_code(shared_vectors, tmp_path):
    """FP8 and sub-byte dtypes travel as uint8 with the logical dtype kept."""
    folder = tmp_path / "all"
    folder.mkdir()
    shutil.copy(shared_vectors / "all_dtypes.safetensors", folder / "model.safetensors")
    with hoist.Runtime("host") as rt, rt.load(folder, progress=False) as loaded:
        (sd,) = loaded.values()
        for name in sd:
            t = sd[name]
            bits = hoist._core.dtype_bits(t.dtype)
            if t.dtype.startswith("F8_"):
                assert (t.carrier, t.carrier_shape) == ("uint8", t.shape)
            elif bits < 8:
                assert t.carrier == "uint8"
                assert int(np.prod(t.carrier_shape)) == t.nbytes
            if t.carrier == "uint8" and t.dtype != "U8":
                arr = np.from_dlpack(t)
                assert arr.dtype == np.uint8 and arr.shape == t.carrier_shape
                assert arr.tobytes() == host_bytes(t)
