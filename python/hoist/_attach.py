"""hoist.attach: the pipeline a ``hoist serve`` process keeps resident,
mapped into this process without a copy.

    import hoist, torch
    with hoist.attach("/run/user/1000/hoist/cuda0.sock") as weights:
        w = torch.from_dlpack(weights["transformer"]["x_embedder.weight"])

:class:`Attached` is the mapping :class:`hoist.Loaded` is — component name
-> :class:`hoist.StateDict` -> :class:`hoist.Tensor`, with the same DLPack
export and dtype rules — over memory the server owns: one descriptor per
arena (a CUDA virtual-memory allocation on a GPU, a memfd on the host
backend; a CUDA IPC handle where the card cannot share by descriptor),
mapped once.  The weights are READ-ONLY: never write to a tensor from an
attachment.  Descriptor mappings are read-only: a write crashes the
process on the host backend and, on a GPU, faults and loses the process's
CUDA context; the weights are unchanged.  With CUDA IPC handles nothing
stops it, and every other worker would see the damage.

Lifetime is the Loaded's: ``detach()`` (or leaving the ``with``) drops the
Attached's hold, and the arenas are unmapped (and the server told) when
the last exported tensor dies, on whatever thread that happens.
"""

from ._api import Loaded, StateDict, Tensor
from . import _core

__all__ = ["attach", "Attached", "SHUTDOWN", "RELOADED", "CLOSED"]

#: :meth:`Attached.poll` bits: the server is stopping (detach within its
#: drain time); a newer generation is ready (attach again to use it); the
#: connection is gone.
SHUTDOWN = _core.ATTACHED_SHUTDOWN
RELOADED = _core.ATTACHED_RELOADED
CLOSED = _core.ATTACHED_CLOSED


def attach(socket, wait=True, timeout=None):
    """Attaches to the ``hoist serve`` process listening on the Unix socket
    ``socket`` (a path) and maps every resident component; returns an
    :class:`Attached`.

    While the server still loads, ``wait=True`` waits until it is ready (at
    most ``timeout`` seconds when given; None: no limit), ``wait=False``
    raises :class:`hoist.NotReady` at once.  The wait releases the GIL and
    Ctrl-C raises KeyboardInterrupt with nothing left connected.  The
    server's own load failure comes back as its exception
    (:class:`hoist.DoesNotFit`, ...); a refused uid is
    :class:`hoist.Denied`; a server that stops or is not there (a stale
    socket) :class:`hoist.Disconnected`; a socket path that does not exist
    :class:`hoist.InvalidInput`, as for the CLI.

    On CUDA the server's card becomes this thread's current device (opened
    in the process's primary context, which torch shares); tensors are on
    ``attached.device`` ("cuda:N" as this process numbers the card).
    """
    import os

    path = os.fspath(socket)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if not path:
        raise ValueError("attach: empty socket path")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout takes seconds (a number) or None, "
                            f"not {type(timeout).__name__}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return Attached(_core.attach(path, bool(wait), float(timeout or 0.0)))


class Attached(Loaded):
    """A pipeline attached from ``hoist serve``: a mapping component name ->
    :class:`hoist.StateDict`, in the server's load order, as a
    :class:`hoist.Loaded`.

    ``generation`` is the server's load this attachment holds (1 for the
    first, +1 per reload); :meth:`poll` says what the server announced;
    :meth:`prepare` / :meth:`release` map and unmap offloaded components;
    :meth:`detach` (or a ``with`` block) ends it once no exported tensor
    is alive.  ``fileno()`` is the connection's descriptor, readable when
    there is news for :meth:`poll`.
    """

    def __init__(self, core):
        # The Loaded's attributes, from the attachment.
        self._core = core
        self._runtime = None
        self._infos = core.components()
        self._index = {c["name"]: i for i, c in enumerate(self._infos)}
        self._keys = [c["name"] for c in self._infos if c["tensor_count"] > 0]
        self._names = {}
        self.device, self.generation, self._fd = core.summary()
        self.seconds = max((c["seconds"] for c in self._infos), default=0.0)
        self.total_bytes = sum(c["bytes"] for c in self._infos)
        self._dl_device = core.dlpack_device()

    def __getitem__(self, component):
        if component not in self._keys:
            raise KeyError(component)
        return _AttachedStateDict(self, self._index[component], component)

    def fileno(self):
        self._live()
        return self._fd

    def poll(self):
        """The server's news since the last call, without blocking: a mask of
        :data:`hoist.SHUTDOWN` (stopping: detach within its drain time),
        :data:`hoist.RELOADED` (new weights: attach again for them) and
        :data:`hoist.CLOSED` (the connection is gone); 0 when none."""
        return self._live().poll()

    def prepare(self, component):
        """Asks the server to make an offloaded component resident and maps
        it here; True when it was not mapped before.  Resident components
        return False at once."""
        return self._live().prepare(self._component_index(component))

    def release(self, component):
        """Unmaps an offloaded component and drops this client's hold on the
        server's copy; True when it was mapped.  Raises :class:`hoist.Busy`
        while tensors exported from it are alive."""
        return self._live().release(self._component_index(component))

    def detach(self):
        """Drops this object's hold.  The arenas are unmapped, and the server
        told, now or when the last exported tensor dies."""
        self._core.close()

    close = detach

    def __repr__(self):
        state = "detached" if self.closed else f"{len(self)} components"
        return f"hoist.Attached({self.device!r}, generation {self.generation}, {state})"

    def _live(self):
        if self._core.closed:
            raise ValueError("hoist: the Attached is detached")
        return self._core


class _AttachedStateDict(StateDict):
    """A component of an attachment: tensors in name order."""

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise KeyError(name)
        return _AttachedTensor(self._loaded, self._index, self.component, name)

    def __repr__(self):
        return f"hoist.StateDict({self.component!r}, {len(self)} tensors, attached)"


class _AttachedTensor(Tensor):
    """A tensor of an attachment: read-only memory of the server."""

    __slots__ = ()

    def numpy(self):
        """As :meth:`hoist.Tensor.numpy`, marked read-only: the memory is the
        server's, shared by every worker."""
        array = super().numpy()
        array.flags.writeable = False
        return array
