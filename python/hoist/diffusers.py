"""diffusers adapter: a working DiffusionPipeline whose model weights are
hoist's tensors.

    import hoist.diffusers
    pipe = hoist.diffusers.from_pretrained("/models/FLUX.1-dev", "cuda:0")
    image = pipe("a cat", num_inference_steps=28).images[0]

Each model component (diffusers or transformers class in model_index.json)
is built on the meta device from its config.json and filled by assignment
with hoist's tensors (``load_state_dict(..., assign=True)``): the
parameters are hoist's memory, never a second copy on the device.
Everything else (tokenizers, scheduler, feature extractors) is loaded by
diffusers as usual, with the built models passed in.

Offloaded components (``offload=...`` or ``on_oom="offload"``) stay in
pinned host memory: a hook uploads one before each call (Loaded.prepare on
torch's current stream), assigns the fresh tensors, and after the call
puts the parameters back on meta and frees the device copy
(Loaded.release).  Needs torch, diffusers, accelerate and, for
transformers components, transformers.

With ``attach=SOCKET`` the weights are those a ``hoist serve`` process
keeps resident (:func:`hoist.attach`): nothing is loaded, the models are
built on the server's memory, and offloaded components are prepared and
released through the server.
"""

import importlib
import json
import os
import re
import threading

import torch

from ._api import Runtime, split_options
from ._attach import Attached, attach as _attach
from ._shared import shared_runtime
from .torch import _runtime_device, to_torch

__all__ = ["from_pretrained", "load_components"]


def _model_class(library, class_name):
    if library not in ("diffusers", "transformers"):
        return None
    module = importlib.import_module(library)
    return getattr(module, class_name, None)


def _empty_model(library, cls, folder):
    """The model of folder's config.json with its parameters on meta (and
    its buffers real: non-persistent ones such as position ids are not in
    the checkpoint)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        if library == "diffusers":
            model = cls.from_config(cls.load_config(folder))
        else:
            config = cls.config_class.from_pretrained(folder)
            model = cls(config)
    return model.eval().requires_grad_(False)


def _ignored(patterns, key):
    return any(re.search(p, key) for p in (patterns or ()))


def _checkpoint_names(model, names):
    """The model's own name for each checkpoint name, as transformers renames
    them when it loads a checkpoint (its conversion mapping: e.g. a
    CLIPTextModel's checkpoint keeps "text_model." before every name, which
    transformers 5's model does not have).  Only renamings: a conversion
    that merges or splits tensors would need a copy, and is refused."""
    try:
        from transformers import PreTrainedModel
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
    except ImportError:  # a transformers without conversion mappings names them as they are
        return {n: n for n in names}
    if not isinstance(model, PreTrainedModel):
        return {n: n for n in names}
    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    meta = model.state_dict()
    out = {}
    for n in names:
        renamed, converter = rename_source_key(n, renamings, converters, model.base_model_prefix, meta)
        if converter is not None:
            raise ValueError(f"{type(model).__name__}: transformers converts checkpoint tensor "
                             f"'{n}' ({converter}), which needs a copy; hoist assigns tensors as "
                             f"they are")
        out[n] = renamed
    return out


def _assign(model, state_dict, name, device, names=None):
    """Makes state_dict (torch tensors on device) the model's parameters
    without a copy, under the names the model's library gives the
    checkpoint's tensors (names: _checkpoint_names of them, when the caller
    has it already); ties shared weights; moves the real buffers to
    device."""
    if names is None:
        names = _checkpoint_names(model, state_dict.keys())
    state_dict = {names[k]: v for k, v in state_dict.items()}
    result = model.load_state_dict(state_dict, strict=False, assign=True)
    unexpected = [k for k in result.unexpected_keys
                  if not _ignored(getattr(model, "_keys_to_ignore_on_load_unexpected", None), k)]
    if unexpected:
        raise ValueError(f"{name}: the checkpoint has tensors the model does not: "
                         f"{', '.join(unexpected[:5])}{' ..' if len(unexpected) > 5 else ''}")
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ValueError(f"{name}: the checkpoint lacks {', '.join(missing[:5])}"
                         f"{' ..' if len(missing) > 5 else ''}")
    for module in model.modules():
        for key, buf in list(module._buffers.items()):
            if buf is not None and not buf.is_meta and buf.device != device:
                module._buffers[key] = buf.to(device)


def _to_meta(model):
    """Puts every parameter back on meta, dropping the exported tensors."""
    for module in model.modules():
        for key, param in list(module._parameters.items()):
            if param is not None and not param.is_meta:
                module._parameters[key] = torch.nn.Parameter(
                    torch.empty_like(param, device="meta"), requires_grad=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def _offload_hook(loaded, name, device):
    """An accelerate hook that uploads component `name` for each call and
    frees it after; its execution_device tells diffusers where to run."""
    from accelerate.hooks import ModelHook

    class HoistOffloadHook(ModelHook):
        def __init__(self):
            super().__init__()
            self.execution_device = device
            self.names = None  # the model's names of the tensors: the same every call

        def pre_forward(self, module, *args, **kwargs):
            if isinstance(loaded, Attached):  # the server uploads it
                loaded.prepare(name)
            else:
                stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
                loaded.prepare(name, stream=stream)
            sd = {k: to_torch(t) for k, t in loaded[name].items()}
            if self.names is None:
                self.names = _checkpoint_names(module, sd.keys())
            _assign(module, sd, name, device, self.names)
            return args, kwargs

        def post_forward(self, module, output):
            _to_meta(module)
            loaded.release(name)
            return output

    return HoistOffloadHook()


class _Builder(threading.Thread):
    """Builds the empty models of a plan's components on a thread of its
    own while the calling thread loads their weights (model construction
    is Python and holds the GIL; the load runs without it).  The load stays
    on the calling thread so that Ctrl-C reaches it.  result() joins and
    returns {component: model}, or raises what the construction raised."""

    def __init__(self, plan):
        super().__init__(name="hoist-diffusers-build", daemon=True)
        self.plan = plan
        self.models = {}
        self.error = None
        self.start()

    def run(self):
        try:
            for name, comp in self.plan.items():
                cls = _model_class(comp["library"], comp["class"])
                if cls is not None and comp["tensor_count"] > 0:
                    self.models[name] = _empty_model(comp["library"], cls, comp["path"])
        except BaseException as e:  # handed to the loading thread
            self.error = e

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.models


def _plan(rt, path, load_kw):
    return {c["name"]: c for c in rt.plan(path, load_kw.get("variant"),
                                          load_kw.get("dtype")).components}


def _weights(path, device, attach, load_options):
    """(the empty models of the plan's components by name, the Loaded or
    Attached, its torch device) for load_components."""
    runtime_kw, load_kw, rest = split_options(load_options)
    if rest:
        raise TypeError(f"load_components() got unexpected keyword arguments: "
                        f"{', '.join(sorted(rest))}")
    if attach is not None:
        if runtime_kw or load_kw:
            raise TypeError(f"with attach=, the server loads: load options "
                            f"({', '.join(sorted({**runtime_kw, **load_kw}))}) go to hoist serve")
        with Runtime("host") as rt:  # discovery reads headers only
            plan = _plan(rt, path, {})

        def get_weights():
            return attach if isinstance(attach, Attached) else _attach(attach)
    else:
        load_kw.setdefault("progress", True)
        rt = shared_runtime(_runtime_device("cuda:0" if device is None else device), **runtime_kw)
        plan = _plan(rt, path, load_kw)

        def get_weights():
            return rt.load(path, **load_kw)
    builder = _Builder(plan)
    try:
        weights = get_weights()
    except BaseException:
        builder.join()
        raise
    runtime_device = weights.device
    try:
        models = builder.result()
        if attach is not None and device is not None and _runtime_device(device) != runtime_device:
            raise ValueError(f"the server's weights are on {runtime_device} here, not on "
                             f"{_runtime_device(device)}")
    except BaseException:
        if weights is not attach:
            weights.close()
        raise
    torch_device = torch.device("cpu" if runtime_device == "host" else runtime_device)
    return models, weights, torch_device


def load_components(path, device=None, attach=None, **load_options):
    """Loads the pipeline at path with hoist and builds its model
    components: returns ``(models, loaded)`` where models maps component
    name -> torch.nn.Module (diffusers/transformers classes of
    model_index.json) and loaded is the hoist.Loaded that backs them
    (offloaded components are wired to it through hooks; keep it
    referenced as long as the models are used).  Components of other
    libraries, or with a class these libraries do not have, are left to
    the caller.  The models are built on the meta device while the weights
    load, and the load uses the process's runtime for the device
    (hoist.release_runtimes() closes it).

    ``device``: "cuda:N" (default cuda:0) or "host"/"cpu".  ``attach``: the
    socket of a ``hoist serve`` process serving this pipeline (or an
    :class:`hoist.Attached`): the models are built on its weights, which
    are not loaded here (``loaded`` is then the Attached; ``device``, when
    given, must be where its weights are)."""
    built, loaded, torch_device = _weights(path, device, attach, load_options)
    models = {}
    try:
        for info in loaded.components:
            name = info["name"]
            model = built.get(name)
            if model is None or info["tensor_count"] == 0:
                continue
            if info["residency"] == "offload":
                from accelerate.hooks import add_hook_to_module

                add_hook_to_module(model, _offload_hook(loaded, name, torch_device))
            else:
                _assign(model, {k: to_torch(t) for k, t in loaded[name].items()}, name,
                        torch_device)
            models[name] = model
    except BaseException:
        models.clear()
        if loaded is not attach:
            loaded.close()
        raise
    return models, loaded


def from_pretrained(path, device=None, attach=None, **load_options):
    """A ``diffusers.DiffusionPipeline`` for the pipeline folder at path, its
    model weights loaded by hoist on device (zero-copy; default cuda:0),
    the rest by diffusers.  ``load_options``: Runtime's and Runtime.load's
    keywords (offload, dtype, on_oom, verify, ...); any other keyword goes
    to ``DiffusionPipeline.from_pretrained``.  ``attach=SOCKET`` builds the
    pipeline on the weights a ``hoist serve`` process of the same folder
    keeps resident instead of loading them (see load_components).  The
    pipeline keeps the load (or attachment) alive as
    ``pipe._hoist_loaded``."""
    import diffusers

    runtime_kw, load_kw, passthrough = split_options(load_options)
    models, loaded = load_components(path, device, attach, **runtime_kw, **load_kw)
    with open(os.path.join(os.fspath(path), "model_index.json"), encoding="utf-8") as f:
        index = json.load(f)
    if "dtype" not in passthrough and "torch_dtype" not in passthrough:
        passthrough[_dtype_keyword()] = _common_dtype(models)
    pipe_class = getattr(diffusers, index.get("_class_name", ""), None) or \
        diffusers.DiffusionPipeline
    try:
        pipe = pipe_class.from_pretrained(os.fspath(path), **models, **passthrough)
    except BaseException:
        models.clear()
        if loaded is not attach:
            loaded.close()
        raise
    pipe._hoist_loaded = loaded
    return pipe


def _common_dtype(models):
    """The floating dtype of the built models' parameters, for the
    components diffusers loads itself (None when mixed or none)."""
    dtypes = {p.dtype for m in models.values() for p in m.parameters()
              if p.is_floating_point() and not p.is_meta}
    return dtypes.pop() if len(dtypes) == 1 else None


def _dtype_keyword():
    """from_pretrained's dtype keyword: "dtype" where diffusers has it
    (torch_dtype is deprecated there), else "torch_dtype"."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"
