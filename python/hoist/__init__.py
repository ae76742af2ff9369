"""hoist: load safetensors model pipelines into GPU (or host) memory fast,
heavy components first, under admission control — and hand the tensors to
PyTorch or NumPy without a copy, through DLPack.

    import hoist, torch
    with hoist.Runtime("cuda:0") as rt, rt.load("/models/FLUX.1-dev") as loaded:
        w = torch.from_dlpack(loaded["transformer"]["x_embedder.weight"])

A pipeline kept resident by ``hoist serve`` is shared with
:func:`hoist.attach` (the same mapping, over the server's memory).

Adapters: :mod:`hoist.torch` (load_pipeline, weights_iterator, load_file)
and :mod:`hoist.diffusers` (from_pretrained, also on attached weights).
See the package README.
"""

from ._errors import (Busy, Denied, DeviceError, Disconnected, DoesNotFit, Error,
                      InvalidArgument, InvalidInput, NotReady, VerifyMismatch)
from ._api import IncompatibleKeys, Loaded, Plan, Runtime, ShardInfo, StateDict, Tensor
from ._attach import CLOSED, RELOADED, SHUTDOWN, Attached, attach
from ._shared import release_runtimes
from . import _core

__version__ = "0.1.0"
library_version = _core.library_version

__all__ = ["Runtime", "Loaded", "StateDict", "Tensor", "Plan", "IncompatibleKeys", "ShardInfo",
           "Error",
           "InvalidArgument", "InvalidInput", "DoesNotFit", "DeviceError", "VerifyMismatch", "Busy",
           "library_version", "attach", "Attached", "NotReady", "Denied", "Disconnected",
           "SHUTDOWN", "RELOADED", "CLOSED", "release_runtimes"]
