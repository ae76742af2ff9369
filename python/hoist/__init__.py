"""hoist: load safetensors model pipelines into GPU (or host) memory fast,
heavy components first, under admission control — and hand the tensors to
PyTorch or NumPy without a copy, through DLPack.

    import hoist, torch
    with hoist.Runtime("cuda:0") as rt, rt.load("/models/FLUX.1-dev") as loaded:
        w = torch.from_dlpack(loaded["transformer"]["x_embedder.weight"])

Adapters: :mod:`hoist.torch` (load_pipeline, weights_iterator, load_file)
and :mod:`hoist.diffusers` (from_pretrained).  See the package README.
"""

from ._errors import (Busy, DeviceError, DoesNotFit, Error, InvalidArgument, InvalidInput,
                      VerifyMismatch)
from ._api import Loaded, Plan, Runtime, ShardInfo, StateDict, Tensor
from . import _core

__version__ = "0.1.0"
library_version = _core.library_version

__all__ = ["Runtime", "Loaded", "StateDict", "Tensor", "Plan", "ShardInfo", "Error", "InvalidArgument",
           "InvalidInput", "DoesNotFit", "DeviceError", "VerifyMismatch", "Busy",
           "library_version"]
