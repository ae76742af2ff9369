"""Destinations of Runtime.load_into as DLPack capsules.

A destination is a torch tensor, a numpy array or any object with
``__dlpack__``.  Each becomes ``(name, capsule, dtype)`` for the extension,
which reads the capsule (data pointer and byte_offset, dtype, shape,
strides, device) without consuming it; the objects and capsules are kept
alive for the call by the caller.

Torch gets three things more, without importing torch when the caller has
not: a parameter is detached (torch refuses to export what requires
grad); dtypes DLPack has no code for (float8, float4) are exported as
their uint8 bytes with the safetensors dtype given beside them; and on
CUDA, torch's current stream is synchronized first, since hoist's copy
streams do not wait for work torch queued on the destinations.
"""

import sys

from . import _core

__all__ = ["capsules"]

# torch dtype name -> safetensors dtype, for dtypes exported as uint8 bytes.
_TORCH_BYTE_DTYPES = {"float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
                      "float8_e8m0fnu": "F8_E8M0", "float8_e4m3fnuz": "F8_E4M3FNUZ",
                      "float8_e5m2fnuz": "F8_E5M2FNUZ", "float4_e2m1fn_x2": "F4"}


def _dl_device(device):
    """The DLPack (device_type, device_id) of a runtime device name."""
    if device == "host":
        return (_core.kDLCPU, 0)
    return (_core.kDLCUDA, int(device.split(":", 1)[1]))


def _device_text(dl):
    kind = {_core.kDLCPU: "cpu", _core.kDLCUDA: "cuda"}.get(dl[0], f"DLPack device type {dl[0]}")
    return kind if dl[0] == _core.kDLCPU else f"{kind}:{dl[1]}"


def _torch_tensor(obj):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _from_torch(name, t, want):
    """(capsule, dtype or None, object to keep) of a torch tensor."""
    torch = sys.modules["torch"]
    t = t.detach()
    dtype = _TORCH_BYTE_DTYPES.get(str(t.dtype).replace("torch.", ""))
    if dtype is not None:
        t = t.view(torch.uint8)
    have = (_core.kDLCUDA, t.device.index or 0) if t.device.type == "cuda" else (
        (_core.kDLCPU, 0) if t.device.type == "cpu" else None)
    if have != want:
        raise ValueError(f"hoist: destination {name!r} is on {t.device}, the runtime's device "
                         f"is {_device_text(want)}")
    if t.device.type == "cuda":
        torch.cuda.current_stream(t.device).synchronize()
    return t.__dlpack__(), dtype, t


def _from_dlpack(name, obj, want):
    """(capsule, None, obj) of any object with __dlpack__."""
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(f"hoist: destination {name!r} is a {type(obj).__name__}, not a tensor "
                        f"(torch, numpy, or any object with __dlpack__)")
    if hasattr(obj, "__dlpack_device__"):
        have = tuple(obj.__dlpack_device__())
        if have != want:
            raise ValueError(f"hoist: destination {name!r} is on {_device_text(have)}, the "
                             f"runtime's device is {_device_text(want)}")
    try:
        capsule = obj.__dlpack__()
    except (BufferError, TypeError, ValueError) as e:
        # numpy refuses read-only arrays here, torch tensors needing grad.
        raise ValueError(f"hoist: destination {name!r} cannot be written through DLPack: "
                         f"{e}") from e
    return capsule, None, obj


def capsules(destinations, device):
    """``([(name, capsule, dtype or None)], keep)`` for the destinations of a
    load into ``device`` ("host" or "cuda:N"); keep holds what must outlive
    the call."""
    want = _dl_device(device)
    targets, keep = [], []
    for name, obj in destinations.items():
        if not isinstance(name, str):
            raise TypeError(f"hoist: destination names are str, got {name!r}")
        make = _from_torch if _torch_tensor(obj) else _from_dlpack
        capsule, dtype, owner = make(name, obj, want)
        targets.append((name, capsule, dtype))
        keep.append(owner)
    return targets, keep
