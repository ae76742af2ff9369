"""Runtime.load_into on the host backend through numpy: tensors land in
numpy buffers bit-identical to safetensors.numpy, or converted exactly
(F32 -> F16 as numpy rounds, F16/BF16 -> F32 exactly); every refusal comes
before any byte moves and leaves nothing allocated; strict=False reports
what did not match; the tensor filter chooses what is read."""

import ctypes
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hoist
from conftest import free_bytes

CAP = 64 << 20
SENTINEL = 0x5A


def fresh(want):
    """Buffers shaped and typed as want's arrays, filled with a sentinel."""
    out = {}
    for name, a in want.items():
        b = np.empty_like(a)
        b.view(np.uint8).reshape(-1)[:] = SENTINEL
        out[name] = b
    return out


def untouched(arrays):
    return all((a.view(np.uint8) == SENTINEL).all() for a in arrays if a.size)


def test_into_numpy_is_bit_identical(np_pipeline):
    with hoist.Runtime("host", capacity=CAP) as rt:
        for component in ("transformer", "text_encoder"):
            want = load_file(str(np_pipeline / component / "model.safetensors"))
            into = fresh(want)
            result = rt.load_into(np_pipeline, component, into, progress=False)
            assert result == hoist.IncompatibleKeys([], [])
            for name, a in want.items():
                assert into[name].dtype == a.dtype and into[name].shape == a.shape, name
                assert into[name].tobytes() == a.tobytes(), name
        assert free_bytes(rt) == CAP


def test_one_file_needs_no_component_name(np_pipeline):
    f = np_pipeline / "text_encoder" / "model.safetensors"
    want = load_file(str(f))
    with hoist.Runtime("host", capacity=CAP) as rt:
        into = fresh(want)
        rt.load_into(f, None, into, progress=False)
        assert all(into[n].tobytes() == a.tobytes() for n, a in want.items())
        with pytest.raises(hoist.InvalidArgument, match="has 2 components with safetensors "
                                                        "weights: name the one"):
            rt.load_into(np_pipeline, None, into, progress=False)


def write_bf16(path, name, bits):
    """A safetensors file of one BF16 tensor with the given uint16 bits."""
    header = json.dumps({name: {"dtype": "BF16", "shape": list(bits.shape),
                                "data_offsets": [0, bits.nbytes]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())


def test_destination_dtype_converts(tmp_path):
    rng = np.random.default_rng(3)
    f32 = rng.standard_normal((300, 129)).astype(np.float32) * 1000
    f32.reshape(-1)[:6] = [np.inf, -np.inf, 0.0, -0.0, 1e-30, 65519.0]
    f16 = rng.standard_normal(1001).astype(np.float16)
    ints = rng.integers(-9, 9, 77, dtype=np.int64)
    save_file({"f32": f32, "f16": f16, "ints": ints}, str(tmp_path / "model.safetensors"))
    bits = rng.integers(0, 1 << 16, (33, 7), dtype=np.uint16)
    bits[bits & 0x7F80 == 0x7F80] = 0x3F80  # no NaNs: their payloads are the rule's, not numpy's
    write_bf16(tmp_path / "bf16.safetensors", "w", bits)
    with hoist.Runtime("host", capacity=CAP) as rt:
        into = {"f32": np.empty(f32.shape, np.float16), "f16": np.empty(f16.shape, np.float32),
                "ints": np.empty_like(ints)}
        for verify in (False, True):
            rt.load_into(tmp_path / "model.safetensors", None, into, verify=verify,
                         progress=False)
            assert into["f32"].tobytes() == f32.astype(np.float16).tobytes()
            assert into["f16"].tobytes() == f16.astype(np.float32).tobytes()
            assert into["ints"].tobytes() == ints.tobytes()
        w = np.empty(bits.shape, np.float32)
        rt.load_into(tmp_path / "bf16.safetensors", "bf16", {"w": w}, progress=False)
        assert w.tobytes() == (bits.astype(np.uint32) << 16).view(np.float32).tobytes()
        assert free_bytes(rt) == CAP


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


class ForeignPointer:
    """A DLPack producer whose data pointer is an address this process has
    not mapped, as a pointer from another process would be: 1024 F32 on the
    CPU at 0x1000 (below mmap_min_addr, never mapped)."""

    def __init__(self):
        self.shape = (ctypes.c_int64 * 1)(1024)
        self.managed = _DLManagedTensor(
            _DLTensor(0x1000, _DLDevice(hoist._core.kDLCPU, 0), 1, _DLDataType(2, 32, 1),
                      self.shape, None, 0), None, None)

    def __dlpack_device__(self):
        return (hoist._core.kDLCPU, 0)

    def __dlpack__(self, stream=None):
        new = ctypes.pythonapi.PyCapsule_New
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        return new(ctypes.addressof(self.managed), b"dltensor", None)


class OnAnotherDevice:
    def __dlpack_device__(self):
        return (hoist._core.kDLCUDA, 0)

    def __dlpack__(self, stream=None):
        raise AssertionError("not asked for a capsule")


def _read_only(a):
    a.setflags(write=False)
    return a


def _overlap(into):
    shared = np.empty(2048, np.float32)
    into["a.bias"] = shared[:1024]
    into["steps"] = shared.view(np.int64)[:100]


# (what, change to the destinations, exception, message)
REFUSALS = [
    ("size", lambda d: d.update({"a.bias": np.empty(1023, np.float32)}), hoist.InvalidArgument,
     "tensor 'a.bias' takes 4096 bytes as F32, its target has 4092"),
    ("shape", lambda d: d.update({"a.weight": np.empty((1024, 256), np.float32)}),
     hoist.InvalidArgument, r"has shape \[256, 1024\] in the file, its target \[1024, 256\]"),
    ("int to float", lambda d: d.update({"steps": np.empty(100, np.float64)}), hoist.Error,
     "tensor 'steps' is I64 in the file and its target is F64: no conversion"),
    ("f32 to f64", lambda d: d.update({"a.bias": np.empty(1024, np.float64)}), hoist.Error,
     "is F32 in the file and its target is F64"),
    ("strided", lambda d: d.update({"a.weight": np.empty((256, 2048), np.float32)[:, ::2]}),
     ValueError, "'a.weight': not contiguous"),
    ("fortran", lambda d: d.update({"a.weight": np.empty((1024, 256), np.float32).T}),
     ValueError, "'a.weight': not contiguous"),
    ("read-only", lambda d: d.update({"a.bias": _read_only(np.empty(1024, np.float32))}),
     ValueError, "'a.bias' cannot be written through DLPack"),
    ("missing", lambda d: d.pop("steps"), hoist.InvalidArgument,
     r"transformer: tensor 'steps' has no target \(strict\)"),
    ("extra", lambda d: d.update({"nope": np.empty(3)}), hoist.InvalidArgument,
     "no tensor 'nope' in the component"),
    ("overlap", _overlap, hoist.InvalidArgument,
     "the targets of tensors '(a.bias|steps)' and '(a.bias|steps)' overlap"),
    ("not a tensor", lambda d: d.update({"steps": [0] * 100}), TypeError,
     "'steps' is a list, not a tensor"),
    ("another device", lambda d: d.update({"steps": OnAnotherDevice()}), ValueError,
     "'steps' is on cuda:0, the runtime's device is cpu"),
    ("no such dtype", lambda d: d.update({"a.bias": np.empty(1024, np.complex128)}), TypeError,
     "'a.bias' has DLPack dtype .code 5, 128 bits"),
    ("another process", lambda d: d.update({"a.bias": ForeignPointer()}),
     hoist.InvalidArgument, r"tensor 'a.bias': its target \[0x1000, \+4096\) is not mapped in "
                            r"this process"),
    ("name", lambda d: d.update({3: np.empty(3)}), TypeError, "names are str"),
]


@pytest.mark.parametrize("what,change,exc,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_move_nothing(np_pipeline, what, change, exc, message):
    want = load_file(str(np_pipeline / "transformer" / "model.safetensors"))
    with hoist.Runtime("host", capacity=CAP) as rt:
        into = fresh(want)
        kept = list(into.values())
        change(into)
        with pytest.raises(exc, match=message) as err:
            rt.load_into(np_pipeline, "transformer", into, progress=False)
        assert "\n" not in str(err.value)
        assert untouched(kept), f"{what}: bytes moved"
        assert free_bytes(rt) == CAP
        # The runtime is still fine.
        rt.load_into(np_pipeline, "transformer", fresh(want), progress=False)


def test_closed_runtime_and_bad_arguments(np_pipeline):
    rt = hoist.Runtime("host", capacity=CAP)
    with pytest.raises(TypeError, match="destinations takes a mapping"):
        rt.load_into(np_pipeline, "transformer", [np.empty(3)])
    with pytest.raises(TypeError, match="component takes a str or None"):
        rt.load_into(np_pipeline, 0, {})
    with pytest.raises(hoist.InvalidInput, match="no component 'nope'"):
        rt.load_into(np_pipeline, "nope", {}, progress=False)
    rt.close()
    with pytest.raises(ValueError, match="Runtime is closed"):
        rt.load_into(np_pipeline, "transformer", {})


def test_not_strict_reports_what_did_not_match(np_pipeline):
    want = load_file(str(np_pipeline / "transformer" / "model.safetensors"))
    with hoist.Runtime("host", capacity=CAP) as rt:
        into = {n: a for n, a in fresh(want).items() if n.startswith("a.")}
        into["ghost"] = ghost = np.full(8, SENTINEL, np.uint8)
        result = rt.load_into(np_pipeline, "transformer", into, strict=False, progress=False)
        assert result.missing_keys == ["b.weight", "steps"]
        assert result.unexpected_keys == ["ghost"]
        assert untouched([ghost])
        assert all(into[n].tobytes() == want[n].tobytes() for n in ("a.weight", "a.bias"))


def test_filter_chooses_what_is_read(np_pipeline):
    want = load_file(str(np_pipeline / "transformer" / "model.safetensors"))
    with hoist.Runtime("host", capacity=CAP) as rt:
        into = {n: a for n, a in fresh(want).items() if n.startswith("a.")}
        rt.load_into(np_pipeline, "transformer", into, tensors="a.*", progress=False)
        assert all(into[n].tobytes() == want[n].tobytes() for n in into)
        seen = []

        def no_steps(component, name):
            seen.append((component, name))
            return name != "steps"

        into = fresh(want)
        steps = into.pop("steps")
        rt.load_into(np_pipeline, "transformer", into, tensors=no_steps, progress=False)
        assert sorted(seen) == [("transformer", n) for n in sorted(want)]
        assert all(into[n].tobytes() == want[n].tobytes() for n in into)
        assert untouched([steps])

        class Refused(Exception):
            pass

        def refuse(component, name):
            raise Refused(name)

        into = fresh(want)
        with pytest.raises(Refused):
            rt.load_into(np_pipeline, "transformer", into, tensors=refuse, progress=False)
        assert untouched(into.values())
        assert free_bytes(rt) == CAP


def test_progress_on_the_calling_thread(np_pipeline):
    want = load_file(str(np_pipeline / "transformer" / "model.safetensors"))
    calls = []
    with hoist.Runtime("host", capacity=CAP) as rt:
        rt.load_into(np_pipeline, "transformer", fresh(want),
                     progress=lambda c, done, total: calls.append((c, done, total)))
    total = sum(a.nbytes for a in want.values())
    assert calls and calls[-1] == ("transformer", total, total)
    assert all(c == "transformer" and 0 < d <= t == total for c, d, t in calls)
