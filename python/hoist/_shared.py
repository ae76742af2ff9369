"""The runtimes the adapters (hoist.torch, hoist.diffusers) load with: one
per device and set of Runtime options, made at the first load and kept for
the process, so that later loads do not pay again for the reader threads'
streams and for pinning the staging ring (pinning host memory is slow:
runtime/engine.c).

:func:`release_runtimes` closes them (tensors already handed out keep
their memory).  A forked child never uses its parent's runtimes: it makes
its own.
"""

import atexit
import os
import threading

from ._api import Runtime

__all__ = ["shared_runtime", "release_runtimes"]

_lock = threading.Lock()
_runtimes = {}
# A forked child's copies of its parent's runtimes: kept referenced so that
# they are never closed (their device state belongs to the parent).
_inherited = []


def _after_fork_in_child():
    """The parent's runtimes become untouchable; the lock is new, as another
    thread of the parent may have held it at the fork."""
    global _lock
    _lock = threading.Lock()
    _inherited.extend(_runtimes.values())
    _runtimes.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _key(device, runtime_kw):
    return (device, tuple(sorted(runtime_kw.items())))


def shared_runtime(device, **runtime_kw):
    """The process's Runtime for device ("host" or "cuda:N") with these
    Runtime keywords (capacity, threads, chunk, ring), made on first use."""
    key = _key(device, runtime_kw)
    with _lock:
        rt = _runtimes.get(key)
        if rt is None or rt.closed:
            rt = Runtime(device, **runtime_kw)
            _runtimes[key] = rt
        return rt


def release_runtimes():
    """Closes the runtimes the adapters keep (their reader threads' streams
    and pinned staging rings); the next adapter load makes a new one.
    Tensors already loaded stay valid: a runtime closes for good when the
    last of its loads is closed or collected."""
    with _lock:
        runtimes = list(_runtimes.values())
        _runtimes.clear()
    for rt in runtimes:
        rt.close()


atexit.register(release_runtimes)
