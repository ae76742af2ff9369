"""Runtime, Loaded, StateDict and Tensor: the Python face of libhoist.

Arguments are checked here, in the CLI's terms (``threads`` 1..64, ``chunk``
a multiple of 4 KiB, byte counts as integers or ``"24G"``-style strings),
so a mistake is a ``TypeError`` / ``ValueError`` before the library runs;
the extension (:mod:`hoist._core`) gets plain values.

Lifetime: a :class:`Loaded` owns one reference to its load, every tensor
exported through DLPack (``torch.from_dlpack(t)``, ``numpy.from_dlpack(t)``)
owns another.  ``Loaded.close()`` drops the first; the arenas are freed
when the last one goes, so an exported tensor never points at freed
memory.  :class:`StateDict` and :class:`Tensor` objects are views: after
``close()`` they raise instead of exporting.
"""

import logging
import os
import socket
from collections import namedtuple
from collections.abc import Mapping

from . import _core
from ._destinations import capsules
from ._errors import Error
from ._progress import resolve_progress

__all__ = ["Runtime", "Loaded", "StateDict", "Tensor", "Plan", "IncompatibleKeys",
           "ShardInfo", "split_options"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = """What Runtime.load_into(strict=False) did not match, as torch's
load_state_dict(strict=False) says it: ``missing_keys``, the component's
tensors no destination named (not read); ``unexpected_keys``, the
destinations that named no tensor (left alone)."""

ShardInfo = namedtuple("ShardInfo", "sharded rank world_size dim offset length padded_length "
                                    "global_shape")
ShardInfo.__doc__ = """Which part of a tensor this rank holds after a load with ranks.

``sharded`` is False for a whole tensor (replicated, a scalar, world size
1).  Otherwise the tensor is split on ``dim`` and this rank holds indices
``[offset, offset + length)``: FSDP2's torch.chunk layout for ``fsdp``
components (``padded_length`` = ceil(global / world_size), the rows FSDP2
pads its own storage of a shard to; hoist does not allocate the padding),
equal parts for a ``shard`` plan.  ``global_shape`` is the file's shape."""

_log = logging.getLogger("hoist")
_LOG_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20,
          "G": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TiB": 1 << 40, "KB": 10**3,
          "MB": 10**6, "GB": 10**9, "TB": 10**12}
_READ_MODES = ("auto", "pread", "mmap", "direct", "register")
_ON_OOM = ("fail", "offload")
_TARGET_DTYPES = {"bf16": "bf16", "bfloat16": "bf16", "torch.bfloat16": "bf16",
                  "f16": "f16", "float16": "f16", "half": "f16", "torch.float16": "f16",
                  "f32": "f32", "float32": "f32", "float": "f32", "torch.float32": "f32"}
_U64_MAX = (1 << 64) - 1
_I64_MAX = (1 << 63) - 1


def _bytes(value, what, minimum=0, maximum=_U64_MAX):
    """A byte count: an int, or a string with the CLI's units ("24G", "512MB")."""
    if isinstance(value, bool):
        raise TypeError(f"{what} takes a byte count, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        digits = len(text) - len(text.lstrip("0123456789"))
        unit = text[digits:]
        if digits == 0 or unit not in _UNITS:
            raise ValueError(f"{what}: bad byte count {value!r} (e.g. 4096, '64M', '24G')")
        value = int(text[:digits]) * _UNITS[unit]
    elif isinstance(value, int):
        pass
    elif hasattr(value, "__index__"):
        value = value.__index__()
    else:
        raise TypeError(f"{what} takes a byte count (int or '24G'), not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be in [{minimum}, {maximum}], got {value}")
    return value


def _device_name(device):
    """"host" or "cuda:N" from "host", "cpu", "cuda", "cuda:N", an int N or a
    torch.device."""
    if isinstance(device, bool):
        raise TypeError(f"device must be 'host' or 'cuda:N', not {device!r}")
    if isinstance(device, int):
        if device < 0:
            raise ValueError(f"device ordinal must be >= 0, got {device}")
        return f"cuda:{device}"
    if not isinstance(device, str):
        if type(device).__name__ != "device":  # torch.device
            raise TypeError(f"device must be a str, an int or a torch.device, "
                            f"not {type(device).__name__}")
        device = str(device)
    if device in ("host", "cpu"):
        return "host"
    if device == "cuda":
        return "cuda:0"
    if device.startswith("cuda:") and device[5:].isdigit() and device[5:].isascii():
        return f"cuda:{int(device[5:])}"
    raise ValueError(f"device must be 'host' (or 'cpu'), 'cuda' or 'cuda:N', got {device!r}")


def _names(value, what):
    """A comma list for offload/fsdp from a str or an iterable of str."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what} takes component names, got {item!r}")
        if item == "" or "," in item:
            raise ValueError(f"{what}: empty or comma-joined entry in {value!r}")
    return ",".join(items) if items else None


def _target_dtype(value, what, keep=False):
    if value is None:
        return None
    text = str(value).strip()
    if keep and text.lower() == "keep":
        return "keep"
    name = _TARGET_DTYPES.get(text.lower()) or _TARGET_DTYPES.get(text)
    if name is None:
        allowed = "bf16, f16, f32" + (" or keep" if keep else "")
        raise ValueError(f"{what} takes {allowed}, got {value!r}")
    return name


def _dtype_for(value):
    if value is None:
        return None
    if isinstance(value, str):
        pairs = [p.split("=", 1) for p in value.split(",")]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"dtype_for takes 'NAME=DTYPE[,NAME=DTYPE..]' or a dict, "
                             f"got {value!r}")
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise TypeError(f"dtype_for takes a dict {{name: dtype}} or a str, "
                        f"not {type(value).__name__}")
    out = []
    for name, dtype in pairs:
        if not isinstance(name, str) or name == "" or "," in name or "=" in name:
            raise ValueError(f"dtype_for: bad component name {name!r}")
        out.append(f"{name}={_target_dtype(dtype, 'dtype_for', keep=True)}")
    return ",".join(out) or None


def _choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{what} takes {'|'.join(allowed)}, got {value!r}")
    return allowed.index(value)


def _ranks(process_group, rank, world_size, rendezvous, group_timeout):
    """(rank, world_size, rendezvous, timeout) of a load with ranks; world
    size 0 for a load alone.  With a torch.distributed process group, its
    rank 0 finds a free TCP port and the group's broadcast carries the
    address to every rank (pure Python over the group); hoist's own
    connections then carry everything else, the NCCL unique id included."""
    timeout = 0.0 if group_timeout is None else float(group_timeout)
    if timeout < 0:
        raise ValueError(f"group_timeout must be >= 0, got {group_timeout}")
    if process_group is None:
        if rank is None and world_size is None and rendezvous is None:
            return 0, 0, None, timeout
        if isinstance(rank, bool) or isinstance(world_size, bool):
            raise TypeError("rank and world_size take ints")
        world = -1 if world_size is None else int(world_size)
        r = -1 if rank is None else int(rank)
        if world == 0 or world < -1 or r < -1:
            raise ValueError(f"rank {rank} of world size {world_size}")
        if rendezvous is not None and not isinstance(rendezvous, str):
            raise TypeError("rendezvous takes 'tcp://HOST:PORT' or 'file:PATH'")
        # -1 / 0: the library reads RANK / WORLD_SIZE (torchrun's variables).
        return r, max(world, 0) if world != -1 else _env_world(), rendezvous, timeout
    import torch.distributed as dist

    r, world = dist.get_rank(process_group), dist.get_world_size(process_group)
    if world == 1:
        return r, 1, None, timeout
    box = [rendezvous]
    if r == 0 and rendezvous is None:
        one_host = os.environ.get("LOCAL_WORLD_SIZE", "") == os.environ.get("WORLD_SIZE", "-")
        host = "127.0.0.1" if one_host else socket.gethostbyname(socket.gethostname())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            box[0] = f"tcp://{host}:{s.getsockname()[1]}"
    dist.broadcast_object_list(box, src=dist.get_global_rank(process_group, 0),
                               group=process_group)
    return r, world, box[0], timeout


def _env_world():
    text = os.environ.get("WORLD_SIZE", "")
    if not text.isdigit() or int(text) < 1:
        raise ValueError("rank given without world_size, and WORLD_SIZE is not set")
    return int(text)


def _pipeline_path(path):
    """A pipeline folder, a component folder or one .safetensors file, as a
    str."""
    path = os.fspath(path)
    return path if isinstance(path, str) else os.fsdecode(path)


def _tensor_filter(tensors):
    """(patterns, callable) for a ``tensors=`` argument: None, a glob, a
    list of globs, or a callable ``(component, name) -> bool``."""
    if tensors is None:
        return None, None
    if callable(tensors):
        return None, tensors
    items = [tensors] if isinstance(tensors, str) else tensors
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"tensors takes a glob, a list of globs or a callable "
                        f"(component, name) -> bool, not {type(tensors).__name__}") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"tensors: patterns are str, got {item!r}")
    if not items:
        raise ValueError("tensors: an empty list selects no tensor (None reads them all)")
    return items, None


_RUNTIME_OPTIONS = ("capacity", "threads", "chunk", "ring")
_LOAD_OPTIONS = ("variant", "offload", "fsdp", "dtype", "dtype_for", "headroom", "on_oom",
                 "verify", "read", "scratch", "progress", "tensors", "shard", "process_group",
                 "rank", "world_size", "rendezvous", "group_timeout")


def split_options(options):
    """(Runtime keywords, Runtime.load keywords, the rest) of an adapter's
    ``**load_options``."""
    runtime = {k: v for k, v in options.items() if k in _RUNTIME_OPTIONS}
    load = {k: v for k, v in options.items() if k in _LOAD_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in runtime and k not in load}
    return runtime, load, rest


class Plan:
    """The discovered pipeline and its load order (headers only).

    ``components``: one dict per component in model_index.json order (name,
    load_name, library, class, index, path, folder_missing, inferred_bytes
    (None when unknown), risk_rank, variant_priority, position, files,
    tensor_count); ``order``: the names in load order; ``total_bytes``: the
    sum of the known inferred sizes.
    """

    def __init__(self, path, components, order):
        self.path = path
        self.components = components
        self.order = order
        self.total_bytes = sum(c["inferred_bytes"] or 0 for c in components)

    def __repr__(self):
        return f"hoist.Plan({self.path!r}, order={self.order!r})"


class Runtime:
    """A device backend with its reader threads and pinned staging ring.

    ``device``: ``"cuda:N"`` (``"cuda"`` is ``"cuda:0"``), or ``"host"``
    (also ``"cpu"``): host memory with an enforced ``capacity``, a real
    target and the simulator of a smaller card.  ``capacity`` (host only),
    ``threads`` (1..64), ``chunk`` (a multiple of 4K in [4K, 1G]) and
    ``ring`` are the CLI's ``--capacity/--threads/--chunk/--ring``; None
    keeps the library's default.  Byte counts take ints or ``"24G"``.

    Close it with :meth:`close` or a ``with`` block; loads made with it keep
    the underlying runtime until they are closed themselves.
    """

    def __init__(self, device="cuda:0", capacity=None, threads=None, chunk=None, ring=None):
        self._core = None
        name = _device_name(device)
        if capacity is not None:
            if name != "host":
                raise ValueError("capacity applies to the host device only")
            capacity = _bytes(capacity, "capacity", minimum=1)
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int):
                raise TypeError(f"threads takes an int, not {type(threads).__name__}")
            if not 1 <= threads <= 64:
                raise ValueError(f"threads takes 1..64, got {threads}")
        if chunk is not None:
            chunk = _bytes(chunk, "chunk", minimum=4096, maximum=1 << 30)
            if chunk % 4096:
                raise ValueError(f"chunk must be a multiple of 4K in [4K, 1G], got {chunk}")
        if ring is not None:
            ring = _bytes(ring, "ring", minimum=1)
        self._core = _core.Runtime(name, capacity or 0, threads or 0, chunk or 0, ring or 0)
        self._drain_log()

    @property
    def device(self):
        """"host" or "cuda:N"."""
        return self._core.device

    @property
    def closed(self):
        return self._core is None or self._core.closed

    def close(self):
        """Closes the runtime (at once, or when the last of its loads closes)."""
        if self._core is not None:
            self._drain_log()
            self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"hoist.Runtime(device={self.device!r}, {state})"

    def _drain_log(self):
        lines, dropped = self._core.take_log()
        for level, text in lines:
            _log.log(_LOG_LEVELS[min(max(level, 0), 3)], "%s", text)
        if dropped:
            _log.warning("%d more log lines were dropped", dropped)

    def plan(self, path, variant=None, dtype=None):
        """Discovers the pipeline at ``path`` and returns its :class:`Plan`
        (components, load order, inferred bytes).  Reads headers only.
        ``dtype``: count floating tensors as that target (bf16, f16, f32)."""
        path = _pipeline_path(path)
        if variant is not None and not isinstance(variant, str):
            raise TypeError(f"variant takes a str, not {type(variant).__name__}")
        try:
            components, order = self._core.plan(path, variant, _target_dtype(dtype, "dtype"))
        finally:
            self._drain_log()
        return Plan(path, components, order)

    def mem_info(self):
        """``(free_bytes, total_bytes)`` of the device now, as admission
        reads it before each component (cuda: cudaMemGetInfo, every process
        on the card counted; host: the capacity less what this runtime
        holds)."""
        try:
            return self._core_open().mem_info()
        finally:
            self._drain_log()

    def _core_open(self):
        if self._core is None or self._core.closed:
            raise ValueError("hoist: the Runtime is closed")
        return self._core

    def load(self, path, *, tensors=None, variant=None, offload=None, fsdp=None, dtype=None,
             dtype_for=None, headroom=None, on_oom="fail", verify=False, read="auto",
             scratch=None, progress=True, shard=None, process_group=None, rank=None,
             world_size=None, rendezvous=None, group_timeout=None):
        """Loads every component of the pipeline folder, component folder
        or single .safetensors file at ``path`` in hoist's order under
        admission control, and returns a :class:`Loaded`.

        ``tensors`` reads only some tensors: a glob (fnmatch, whole name,
        case-sensitive, ``*`` matching dots too), a list of globs (a tensor
        matching any is read; a glob matching no tensor raises
        InvalidArgument), or a callable ``(component, name) -> bool``
        (called once per tensor before anything is allocated; an exception
        from it stops the load and propagates).  Only what is read is
        admitted, placed and listed; a component with nothing read has no
        key.

        Options are the CLI's: ``offload``/``fsdp`` (names or groups dit,
        text_encoder, image_encoder, vae, all; a str or a list),
        ``dtype`` (bf16|f16|f32: convert floating tensors while loading),
        ``dtype_for`` ({name: dtype or "keep"}), ``headroom`` (bytes kept
        free; None: the library's default), ``on_oom`` ("fail" or
        "offload"), ``verify``, ``read`` (auto|pread|mmap|direct|register),
        ``scratch`` (conversion scratch bytes), ``variant``.

        ``progress``: True draws a tqdm bar on a terminal (when tqdm is
        installed), a callable gets ``(component, done_bytes, total_bytes)``
        on this thread, False or None reports nothing.

        Loading with other ranks: ``process_group`` (a torch.distributed
        group: every rank of it calls ``load`` with the same path and
        options), or ``rank``/``world_size``/``rendezvous``
        ("tcp://HOST:PORT" or "file:PATH"; None: torchrun's variables);
        ``group_timeout`` seconds after which a silent rank is lost.
        ``fsdp`` components then load as this rank's FSDP2 shard and
        ``shard`` ("NAME:GLOB=DIM,..") splits the tensors it names into
        equal parts; :attr:`Tensor.shard` says which part a rank holds.

        The GIL is released while the load runs; Ctrl-C cancels it and
        raises KeyboardInterrupt with nothing left allocated.  Failures raise
        :class:`hoist.Error` subclasses.
        """
        path = _pipeline_path(path)
        if variant is not None and not isinstance(variant, str):
            raise TypeError(f"variant takes a str, not {type(variant).__name__}")
        args = (
            path,
            variant,
            _target_dtype(dtype, "dtype"),
            _dtype_for(dtype_for),
            _names(offload, "offload"),
            _names(fsdp, "fsdp"),
            -1 if headroom is None else _bytes(headroom, "headroom", maximum=_I64_MAX),
            _choice(on_oom, _ON_OOM, "on_oom"),
            bool(verify),
            _choice(read, _READ_MODES, "read"),
            0 if scratch is None else _bytes(scratch, "scratch", minimum=4096),
        )
        if shard is not None and not isinstance(shard, str):
            raise TypeError(f"shard takes 'NAME:GLOB=DIM[,..]', not {type(shard).__name__}")
        ranks = _ranks(process_group, rank, world_size, rendezvous, group_timeout)
        patterns, chooser = _tensor_filter(tensors)
        reporter = resolve_progress(progress)
        try:
            core = self._core.load(*args, reporter, patterns, chooser, shard or None, *ranks)
        finally:
            if reporter is not None and hasattr(reporter, "close"):
                reporter.close()
            self._drain_log()
        return Loaded(core, self)

    def load_into(self, path, component, destinations, strict=True, tensors=None, verify=False,
                  progress=True, read="auto"):
        """Streams one component's tensors into memory you own, with no
        arena: ``destinations`` maps tensor names to torch tensors, numpy
        arrays or any object with ``__dlpack__`` (contiguous, on this
        runtime's device: cuda:N memory of this process, or host memory on
        the host device), e.g. the parameters of a model built with
        ``to_empty(device="cuda")``.

        ``path`` is a pipeline, a component folder or one .safetensors file;
        ``component`` names the component (None: the only one with
        weights).  A destination whose dtype differs from the file's is
        converted while loading (floating pairs hoist converts: F32, F16,
        BF16 among themselves, FP8 to those); its shape must be the file's.

        Everything is checked before any byte moves — names, sizes, shapes,
        dtypes, devices, contiguity, memory this process may write (a
        pointer from another process is refused), overlap — raising
        InvalidArgument (a ValueError) or Error("UNSUPPORTED") for a dtype
        pair, TypeError/ValueError for what an object's DLPack export gets
        wrong.  ``strict`` (default): every tensor read needs a destination
        and every destination a tensor; ``strict=False`` skips both and
        says which in the returned :class:`IncompatibleKeys`.
        ``tensors``: which tensors to read, as in :meth:`load`.

        Device memory beyond the destinations is only the conversion
        scratch (and verify's hashes).  The GIL is released while it runs;
        Ctrl-C raises KeyboardInterrupt with nothing left allocated (the
        destinations may then hold part of the bytes).  On CUDA, torch's
        current stream is synchronized first and every copy is finished
        when it returns.
        """
        path = _pipeline_path(path)
        if component is not None and not isinstance(component, str):
            raise TypeError(f"component takes a str or None, not {type(component).__name__}")
        if not isinstance(destinations, Mapping):
            raise TypeError(f"destinations takes a mapping name -> tensor, "
                            f"not {type(destinations).__name__}")
        core = self._core_open()
        patterns, chooser = _tensor_filter(tensors)
        targets, keep = capsules(destinations, self.device)
        reporter = resolve_progress(progress)
        try:
            missing, unexpected = core.load_into(path, component, targets, bool(strict), patterns,
                                                 chooser, bool(verify),
                                                 _choice(read, _READ_MODES, "read"), reporter)
        finally:
            if reporter is not None and hasattr(reporter, "close"):
                reporter.close()
            self._drain_log()
            del targets, keep
        return IncompatibleKeys(missing, unexpected)


class Loaded(Mapping):
    """A load: a mapping component name -> :class:`StateDict`, in load order.

    Components without weights (tokenizers, schedulers) are not keys; every
    component of the load, with its residency and numbers, is in
    :attr:`components`.  Close with :meth:`close` or a ``with`` block:
    memory is freed once no tensor exported from it is alive.
    """

    def __init__(self, core, runtime):
        self._core = core
        self._runtime = runtime
        self._infos = core.components()
        self._index = {c["name"]: i for i, c in enumerate(self._infos)}
        self._keys = [c["name"] for c in self._infos if c["tensor_count"] > 0]
        self._names = {}
        self.device, self.seconds, self.total_bytes = core.summary()
        self._dl_device = core.dlpack_device()

    # Mapping
    def __getitem__(self, component):
        if component not in self._keys:
            raise KeyError(component)
        return StateDict(self, self._index[component], component)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)

    def __contains__(self, component):
        return component in self._keys

    @property
    def components(self):
        """One dict per component in load order: name, residency, bytes,
        device_bytes, device_range, seconds, tensor_count, exported (tensors
        exported and alive)."""
        return self._live().components()

    @property
    def closed(self):
        return self._core.closed

    def close(self):
        """Drops this object's hold on the load.  The arenas are freed now,
        or when the last exported tensor dies."""
        self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else f"{len(self)} components"
        return f"hoist.Loaded({self.device!r}, {state})"

    def _live(self):
        if self._core.closed:
            raise ValueError("hoist: the Loaded is closed")
        return self._core

    def _component_index(self, component):
        if not isinstance(component, str):
            raise TypeError(f"component names are str, not {type(component).__name__}")
        try:
            return self._index[component]
        except KeyError:
            raise KeyError(f"no component {component!r} in this load "
                           f"(components: {', '.join(self._index)})") from None

    def _tensor_names(self, i):
        names = self._names.get(i)
        if names is None:
            names = self._names[i] = self._live().tensor_names(i)
        return names

    def prepare(self, component, stream=None):
        """Makes an offloaded component resident (uploads it into a fresh
        arena); returns True when bytes moved.  Resident and FSDP components
        return False at once.  ``stream``: the CUDA stream to upload on (an
        int handle, or an object with ``.cuda_stream`` such as a
        torch.cuda.Stream); None is the legacy default stream, which every
        blocking stream (torch's default included) waits for."""
        i = self._component_index(component)
        if stream is None:
            handle = 0
        elif hasattr(stream, "cuda_stream"):
            handle = stream.cuda_stream
        elif isinstance(stream, int) and not isinstance(stream, bool):
            handle = stream
        else:
            raise TypeError("stream takes an int handle or an object with .cuda_stream")
        try:
            return self._live().prepare(i, handle)
        finally:
            self._runtime._drain_log()

    def release(self, component):
        """Frees an offloaded component's arena after use (its pinned host
        copy stays); returns True when memory was freed.  Raises
        :class:`hoist.Busy` while tensors exported from it are alive."""
        i = self._component_index(component)
        return self._live().release(i)


class StateDict(Mapping):
    """A component's tensors: a mapping name -> :class:`Tensor`, in name
    order (the tensors the load read)."""

    def __init__(self, loaded, index, component):
        self._loaded = loaded
        self._index = index
        self.component = component

    def _names(self):
        return self._loaded._tensor_names(self._index)

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise KeyError(name)
        return Tensor(self._loaded, self._index, self.component, name)

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def __contains__(self, name):
        return isinstance(name, str) and name in self._names()

    @property
    def residency(self):
        return self._loaded.components[self._index]["residency"]

    def __repr__(self):
        return f"hoist.StateDict({self.component!r}, {len(self)} tensors)"


# dtypes numpy holds, by safetensors name (as safetensors.numpy reads them).
_NUMPY_DTYPES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
                 "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64",
                 "F16": "float16", "F32": "float32", "F64": "float64", "C64": "complex64"}


class Tensor:
    """One tensor of a load, exported zero-copy through DLPack.

    ``dtype`` is the safetensors name as it lies in memory (the target
    dtype after a conversion).  ``shape`` and ``nbytes`` describe it,
    ``data_offsets`` is where its bytes are in its file (the header's
    ``data_offsets``, relative to the data section);
    ``device_ptr`` is its address (raises while its component is offloaded
    and not prepared).  ``torch.from_dlpack(t)`` and, on the host device,
    ``numpy.from_dlpack(t)`` share its memory.

    dtypes that DLPack has no code for travel as uint8 bytes:
    ``carrier`` names what a consumer receives ("uint8" for FP8, the
    sub-byte floats F4/F6 and, with DLPack < 0.8 headers, BOOL) and
    ``carrier_shape`` its shape (FP8, BOOL: the same shape; F4/F6: the last
    dimension in bytes when it divides, else one flat dimension).  View
    them back, e.g. ``torch.from_dlpack(t).view(torch.float8_e4m3fn)``;
    :mod:`hoist.torch` does it for you.
    """

    __slots__ = ("_loaded", "_index", "component", "name", "dtype", "shape", "nbytes",
                 "carrier", "carrier_shape", "data_offsets")

    @property
    def shard(self):
        """:class:`ShardInfo`: the part of the tensor this rank holds (its
        ``shape`` is the local one)."""
        return ShardInfo(*self._loaded._live().shard(self._index, self.name))

    def __init__(self, loaded, index, component, name):
        info = loaded._live().tensor(index, name)
        self._loaded = loaded
        self._index = index
        self.component = component
        self.name = name
        (self.dtype, self.shape, self.nbytes, _, self.carrier, self.carrier_shape,
         self.data_offsets) = info

    @property
    def device(self):
        return self._loaded.device

    @property
    def device_ptr(self):
        ptr = self._loaded._live().tensor(self._index, self.name)[3]
        if ptr is None:
            raise Error(f"{self.component}: offloaded; call loaded.prepare({self.component!r}) "
                        f"first", "UNSUPPORTED", -6, 1)
        return ptr

    def __dlpack_device__(self):
        return self._loaded._dl_device

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        # Data is complete when a load returns (every stream synchronized)
        # and when prepare() ran on the consumer's stream or the legacy
        # default stream, so no stream needs to wait here.
        if stream is not None and (isinstance(stream, bool) or not isinstance(stream, int)):
            raise TypeError("stream takes an int or None")
        if copy:
            raise BufferError("hoist tensors are exported without a copy (copy=True asked)")
        if dl_device is not None and tuple(dl_device) != self._loaded._dl_device:
            raise BufferError(f"hoist tensor lives on {self.device}, not on {dl_device}")
        # max_version: this build exports the unversioned "dltensor" capsule,
        # which consumers asking for a newer version accept.
        return self._loaded._live().export(self._index, self.name)

    def numpy(self):
        """The tensor as a numpy array sharing its memory (host device only).
        dtypes numpy cannot hold (BF16, FP8, F4/F6) raise TypeError, as
        safetensors.numpy does; BOOL comes as numpy bool."""
        import numpy

        if self.device != "host":
            raise TypeError(f"numpy reads host memory; this tensor is on {self.device} "
                            f"(use torch.from_dlpack)")
        name = _NUMPY_DTYPES.get(self.dtype)
        if name is None:
            raise TypeError(f"{self.name}: numpy has no dtype for {self.dtype} (use torch, or "
                            f"the {self.carrier} carrier through numpy.from_dlpack where it "
                            f"is one)")
        array = numpy.from_dlpack(self)
        return array if array.dtype == numpy.dtype(name) else array.view(name)

    def __repr__(self):
        return (f"hoist.Tensor({self.component}/{self.name}, {self.dtype}, "
                f"shape={list(self.shape)}, {self.device})")
