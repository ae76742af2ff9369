"""GPU tests of Runtime.load_into and hoist.torch.load_file (skipped with a
visible line without torch, CUDA or, for the T5 ones, transformers):

- a transformers T5EncoderModel built on the meta device, moved with
  to_empty(device="cuda") and filled by load_into gives bit for bit the
  parameters and the forward output of T5EncoderModel.from_pretrained of
  the same folder (written here by save_pretrained from a small random
  config: no download), in F32 and converted to BF16 while loading;
- hoist.torch.load_file equals safetensors.torch.load_file on CUDA (and
  the CPU), every dtype, in the same order;
- device memory while loading into preallocated parameters stays within
  the parameters plus 64 MiB (torch.cuda.mem_get_info sampled during the
  load), and torch's own allocations do not change;
- destinations torch cannot give (another device, non-contiguous, a
  pointer from another process) are refused before anything moves.
"""

import ctypes

import pytest

torch = pytest.importorskip("torch", reason="SKIP: torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("SKIP: no CUDA device for torch", allow_module_level=True)

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file as st_load_file  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import hoist  # noqa: E402
import hoist.torch as ht  # noqa: E402

MiB = 1 << 20


def t5_folder(tmp_path, d_model=256, layers=4, ff=1024, heads=4, vocab=4096):
    """A small random T5 encoder saved with save_pretrained (F32
    safetensors)."""
    transformers = pytest.importorskip("transformers", reason="SKIP: transformers is not "
                                                              "installed")
    config = transformers.T5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // heads,
                                   d_ff=ff, num_layers=layers, num_heads=heads,
                                   feed_forward_proj="gated-gelu", dropout_rate=0.0)
    torch.manual_seed(0)
    model = transformers.T5EncoderModel(config).eval()
    folder = tmp_path / "t5"
    model.save_pretrained(folder, safe_serialization=True)
    return folder, config


def empty_t5(config, dtype):
    """T5EncoderModel on the meta device, then uninitialized memory on cuda."""
    import transformers

    with torch.device("meta"):
        model = transformers.T5EncoderModel(config)
    model = model.to(dtype).to_empty(device="cuda").eval()
    model.tie_weights()  # to_empty gives tied parameters storage of their own
    return model


def file_names(folder):
    names = []
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            names.extend(h.keys())
    return names


def destinations(model, folder):
    state = model.state_dict()
    return {n: state[n] for n in file_names(folder)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_t5_from_load_into_equals_from_pretrained(tmp_path, dtype):
    import transformers

    folder, config = t5_folder(tmp_path)
    ref = transformers.T5EncoderModel.from_pretrained(folder, dtype=dtype).cuda().eval()
    model = empty_t5(config, dtype)
    with hoist.Runtime("cuda:0") as rt:
        result = rt.load_into(folder, None, destinations(model, folder), verify=True,
                              progress=False)
    assert result == hoist.IncompatibleKeys([], [])
    got, want = model.state_dict(), ref.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert torch.equal(got[name], want[name]), name
    ids = torch.randint(0, config.vocab_size, (2, 37), device="cuda")
    with torch.no_grad():
        out = model(input_ids=ids).last_hidden_state
        ref_out = ref(input_ids=ids).last_hidden_state
    assert torch.equal(out, ref_out)


def test_t5_state_dict_with_strict_false(tmp_path):
    """The whole state dict, tied names included, as a caller hands it."""
    folder, config = t5_folder(tmp_path)
    model = empty_t5(config, torch.float32)
    with hoist.Runtime("cuda:0") as rt:
        result = rt.load_into(folder, None, model.state_dict(), strict=False, progress=False)
    assert result.missing_keys == []
    assert set(result.unexpected_keys) == set(model.state_dict()) - set(file_names(folder))


def test_device_memory_is_parameters_plus_64_mib(tmp_path):
    folder, config = t5_folder(tmp_path, d_model=1024, layers=8, ff=4096, heads=16, vocab=32128)
    model = empty_t5(config, torch.bfloat16)  # F32 file into BF16: the scratch is used
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    dest = destinations(model, folder)
    with hoist.Runtime("cuda:0") as rt:
        rt.load_into(folder, None, dest, progress=False)  # engine made, kernels loaded
        torch.cuda.synchronize()
        allocated = torch.cuda.memory_allocated()
        free0, total = torch.cuda.mem_get_info()
        peak = [total - free0]

        def sample(component, done, size):
            free, _ = torch.cuda.mem_get_info()
            peak[0] = max(peak[0], total - free)

        rt.load_into(folder, None, dest, progress=sample)
        free1, _ = torch.cuda.mem_get_info()
    above = peak[0] - (total - free0)
    print(f"parameters {params / MiB:.1f} MiB; device memory above them during the load "
          f"{above / MiB:.1f} MiB")
    assert above <= 64 * MiB
    assert free1 == free0  # everything hoist took is back
    assert torch.cuda.memory_allocated() == allocated


def test_load_file_equals_safetensors_on_cuda(tmp_path):
    g = torch.Generator().manual_seed(5)
    tensors = {
        "f32": torch.randn(300, 77, generator=g),
        "f16": torch.randn(1001, generator=g).half(),
        "bf16": torch.randn(64, 33, generator=g).bfloat16(),
        "e4m3": torch.randn(513, generator=g).to(torch.float8_e4m3fn),
        "e5m2": torch.randn(3, 5, generator=g).to(torch.float8_e5m2),
        "i64": torch.randint(-9, 9, (100,), generator=g),
        "u8": torch.randint(0, 255, (7,), generator=g, dtype=torch.uint8),
        "bool": torch.randint(0, 2, (77,), generator=g).bool(),
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 4),
    }
    f = tmp_path / "model.safetensors"
    save_file(tensors, str(f))
    for device in ("cuda:0", "cuda", 0, torch.device("cuda:0"), "cpu"):
        got = ht.load_file(f, device=device)
        # safetensors takes a str or an int; hoist also takes a torch.device.
        want = st_load_file(str(f), device=str(device) if isinstance(device, torch.device) else device)
        assert list(got) == list(want)
        for name in want:
            a, b = got[name], want[name]
            assert (a.dtype, a.shape, a.device) == (b.dtype, b.shape, b.device), name
            assert torch.equal(a.reshape(-1).view(torch.uint8),
                               b.reshape(-1).view(torch.uint8)), name


class _Foreign:
    """A DLPack producer of 64 x 32 F32 on cuda:0 (the shape of the test's
    tensor) at an address this process never allocated, as a pointer sent
    over from another process is."""

    class _T(ctypes.Structure):
        _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int),
                    ("device_id", ctypes.c_int), ("ndim", ctypes.c_int), ("code", ctypes.c_uint8),
                    ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16),
                    ("shape", ctypes.POINTER(ctypes.c_int64)),
                    ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64),
                    ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]

    def __init__(self):
        self.shape = (ctypes.c_int64 * 2)(64, 32)
        self.t = self._T(0x7F0000000000, hoist._core.kDLCUDA, 0, 2, 2, 32, 1, self.shape, None, 0,
                         None, None)

    def __dlpack_device__(self):
        return (hoist._core.kDLCUDA, 0)

    def __dlpack__(self, stream=None):
        new = ctypes.pythonapi.PyCapsule_New
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        return new(ctypes.addressof(self.t), b"dltensor", None)


def test_torch_destinations_refused_before_anything_moves(tmp_path):
    f = tmp_path / "model.safetensors"
    w = torch.randn(64, 32)
    save_file({"w": w, "e4m3": torch.randn(16).to(torch.float8_e4m3fn)}, str(f))
    cases = [
        ({"w": torch.empty(64, 32)}, ValueError, "is on cpu, the runtime's device is cuda:0"),
        ({"w": torch.empty(32, 128, device="cuda")[:, ::2].t()}, ValueError, "not contiguous"),
        ({"w": torch.empty(32, 64, device="cuda")}, hoist.InvalidArgument, "has shape"),
        ({"w": torch.empty(64, 32, dtype=torch.int32, device="cuda")}, hoist.Error,
         "no conversion"),
        ({"w": _Foreign()}, hoist.InvalidArgument, "no memory CUDA knows in this process"),
    ]
    with hoist.Runtime("cuda:0") as rt:
        free0 = rt.mem_info()[0]
        e4m3 = torch.full((16,), 7, dtype=torch.uint8, device="cuda").view(torch.float8_e4m3fn)
        for dest, exc, message in cases:
            dest = dict(dest, e4m3=e4m3)
            with pytest.raises(exc, match=message):
                rt.load_into(f, None, dest, progress=False)
            assert (e4m3.view(torch.uint8) == 7).all()  # nothing moved
            assert rt.mem_info()[0] == free0
        # What torch holds as FP8 lands as its bytes; FP8 into BF16 converts.
        p = torch.nn.Parameter(torch.empty(64, 32, device="cuda"))  # requires grad
        bf16 = torch.empty(16, dtype=torch.bfloat16, device="cuda")
        rt.load_into(f, None, {"w": p, "e4m3": e4m3}, progress=False)
        want = st_load_file(str(f), device="cuda")
        assert torch.equal(p.detach(), want["w"])
        assert torch.equal(e4m3.view(torch.uint8), want["e4m3"].view(torch.uint8))
        rt.load_into(f, None, {"e4m3": bf16}, tensors="e4m3", progress=False)
        assert torch.equal(bf16, want["e4m3"].to(torch.bfloat16))
