"""PyTorch adapters: hoist's tensors as torch.Tensors, zero-copy.

    import hoist.torch
    sd = hoist.torch.load_pipeline("/models/FLUX.1-dev", "cuda:0")
    sd["transformer"]["x_embedder.weight"]            # torch.bfloat16 on cuda:0

    model.load_weights(hoist.torch.weights_iterator("/models/Llama", "cuda:0"))

Every tensor shares hoist's memory (torch.from_dlpack); a component's
memory is freed when the last tensor from it dies.  The adapters load with
one runtime per device, kept for the process so that its pinned staging
ring is made once; hoist.release_runtimes() closes them.  dtypes DLPack has no
code for come back as their torch dtype: FP8 as torch.float8_*, F4 as
torch.float4_e2m1fn_x2 (pairs packed in a byte, last dimension halved),
BOOL as torch.bool; F6 stays uint8 (torch has no such dtype).
"""

import fnmatch
import os

import torch

from ._api import _device_name, split_options
from ._errors import InvalidArgument
from ._shared import shared_runtime

__all__ = ["to_torch", "load_pipeline", "weights_iterator", "load_file"]

# safetensors dtype -> torch dtype for tensors exported as uint8 bytes.
_VIEWS = {
    "BOOL": torch.bool,
    "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
    "F8_E5M2": getattr(torch, "float8_e5m2", None),
    "F8_E8M0": getattr(torch, "float8_e8m0fnu", None),
    "F8_E4M3FNUZ": getattr(torch, "float8_e4m3fnuz", None),
    "F8_E5M2FNUZ": getattr(torch, "float8_e5m2fnuz", None),
    "F4": getattr(torch, "float4_e2m1fn_x2", None),
}


def to_torch(tensor):
    """A hoist.Tensor as a torch.Tensor sharing its memory, in its torch
    dtype (FP8/F4/BOOL viewed back from their uint8 carrier)."""
    out = torch.from_dlpack(tensor)
    if tensor.carrier == "uint8" and tensor.dtype != "U8":
        view = _VIEWS.get(tensor.dtype)
        if view is not None:
            out = out.view(view)
    return out


def _runtime_device(device):
    if isinstance(device, torch.device):
        device = str(device)
    return _device_name(device)


def _check_no_rest(rest, what):
    if rest:
        raise TypeError(f"{what}() got unexpected keyword arguments: {', '.join(sorted(rest))}")


def _load_tensors(path, device, options, what):
    """{component: {name: torch.Tensor}} of the resident components of a
    load of path with the process's runtime for device (hoist._shared); the
    Loaded is closed before it returns (the tensors keep the memory)."""
    runtime_kw, load_kw, rest = split_options(options)
    _check_no_rest(rest, what)
    load_kw.setdefault("progress", False)
    rt = shared_runtime(_runtime_device(device), **runtime_kw)
    with rt.load(path, **load_kw) as loaded:
        out = {}
        for info in loaded.components:
            # Offloaded components have no device tensors until prepared;
            # Runtime.load with prepare()/release() serves them.
            if info["tensor_count"] == 0 or info["residency"] == "offload":
                continue
            sd = loaded[info["name"]]
            out[info["name"]] = {name: to_torch(t) for name, t in sd.items()}
        return out


def load_pipeline(path, device="cuda:0", **load_options):
    """Loads every component of the pipeline (or component folder) at path
    and returns ``{component: {name: torch.Tensor}}`` on device, in hoist's
    load order.  ``load_options`` are Runtime's (capacity, threads, chunk,
    ring) and Runtime.load's (offload, dtype, dtype_for, headroom, on_oom,
    verify, read, ...); offloaded components are left out (use
    Runtime.load and Loaded.prepare/release for those)."""
    return _load_tensors(path, device, load_options, "load_pipeline")


def _weights_folder(files_or_dir):
    """The folder to load for weights_iterator: a folder as given, or the
    folder of a list of .safetensors files when they are exactly its
    safetensors files.  None when the files are some other selection (each
    is then loaded on its own, a one-file pipeline)."""
    if isinstance(files_or_dir, (str, os.PathLike)):
        path = os.fspath(files_or_dir)
        if os.path.isdir(path):
            return path
        files = [path]
    else:
        files = [os.fspath(f) for f in files_or_dir]
    if not files:
        raise ValueError("weights_iterator: no files given")
    folders = {os.path.dirname(os.path.abspath(f)) for f in files}
    if len(folders) != 1:
        return None
    folder = folders.pop()
    names = {os.path.basename(f) for f in files}
    present = {n for n in os.listdir(folder) if n.endswith(".safetensors")}
    return folder if names == present else None


def weights_iterator(files_or_dir, device="cuda:0", *, tensors=None, **load_options):
    """Yields ``(name, torch.Tensor)`` for every weight, the contract of
    vLLM's and SGLang's ``model.load_weights(iterator)``.

    ``files_or_dir``: a model folder (or a pipeline folder: names are then
    prefixed ``component.``), one .safetensors file, or a list of
    .safetensors files, as the engines' loaders hold them.  A folder (or a
    list that is exactly its .safetensors files) is loaded at once, in
    hoist's order and under its admission control; any other list file by
    file.  Then the weights are handed out component by component; a
    component's memory is freed once the consumer dropped all its tensors
    (a load_weights that copies into its parameters leaves nothing behind).

    ``tensors`` (a glob, a list of globs or a callable ``(component, name)
    -> bool``, as Runtime.load takes it) reads only the weights the model
    wants, e.g. ``lambda c, n: not n.startswith("lm_head.")`` for a model
    whose head is tied to its embedding: the others are never read nor
    placed, so they cost neither time nor device memory."""
    folder = _weights_folder(files_or_dir)
    paths = [folder] if folder is not None else [os.fspath(f) for f in files_or_dir]
    across = None
    if len(paths) > 1 and tensors is not None and not callable(tensors):
        # A glob that matches nothing in one file is no mistake when another
        # file has its tensors: match over all files, complain at the end.
        across = _GlobsAcross(tensors)
        tensors = across
    if tensors is not None:
        load_options["tensors"] = tensors
    for path in paths:
        loaded = _load_tensors(path, device, load_options, "weights_iterator")
        prefix = len(loaded) > 1
        # Popped as they go, so the iterator holds no tensor the consumer
        # has already taken.
        for component in list(loaded):
            sd = loaded.pop(component)
            for name in list(sd):
                yield (f"{component}.{name}" if prefix else name), sd.pop(name)
    if across is not None:
        across.check()


class _GlobsAcross:
    """Globs as a tensor filter callable over several loads, remembering
    which matched (fnmatch's rules: whole name, case-sensitive)."""

    def __init__(self, patterns):
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if not self.patterns or not all(isinstance(p, str) for p in self.patterns):
            raise TypeError(f"tensors takes a glob, a list of globs or a callable, "
                            f"got {patterns!r}")
        self.hit = set()

    def __call__(self, component, name):
        matched = [p for p in self.patterns if fnmatch.fnmatchcase(name, p)]
        self.hit.update(matched)
        return bool(matched)

    def check(self):
        for p in self.patterns:
            if p not in self.hit:
                raise InvalidArgument(f"tensors: pattern {p!r} matches no tensor of the files",
                                      "INVALID_ARGUMENT", -1, 2)


# safetensors' backends -> hoist's read modes: "mmap" serves bytes from the
# file's mapping (hoist's auto copies cached pages from it and reads the
# others with O_DIRECT), "pread" reads them.
_BACKENDS = {"mmap": "auto", "pread": "pread"}


def load_file(filename, device="cpu", *, backend="mmap"):
    """``safetensors.torch.load_file`` through hoist, with its signature and
    result: ``{name: torch.Tensor}`` of one .safetensors file on
    ``device`` ("cpu", "cuda", "cuda:N", an int or a torch.device), in the
    file's order (data offsets, as safetensors returns them).  "cpu"
    loads on the host backend and hands the tensors to torch through DLPack
    (no numpy).  ``backend``: "mmap" or "pread", as safetensors takes it.

    The tensors share hoist's memory: it is freed when the last of them
    dies.  Unlike ``Runtime.load``, no headroom is kept on the device, as
    safetensors keeps none."""
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    if backend not in _BACKENDS:
        raise ValueError(f"backend takes {' or '.join(map(repr, _BACKENDS))}, got {backend!r}")
    rt = shared_runtime(_runtime_device(device))
    with rt.load(os.fspath(filename), read=_BACKENDS[backend], headroom=0,
                 progress=False) as loaded:
        tensors = [sd[name] for sd in loaded.values() for name in sd]
        tensors.sort(key=lambda t: (t.data_offsets[0], t.name))
        return {t.name: to_torch(t) for t in tensors}
