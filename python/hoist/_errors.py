"""Exceptions of the hoist package, and the one table that maps a library
status to them.

Every failure of the library becomes a :class:`Error` carrying the status's
name and code and the one-line detail message the ``hoist`` CLI prints for
the same failure.  The subclasses follow the CLI's exit codes: what the CLI
answers with exit 3 (invalid input) is :class:`InvalidInput`, exit 4 (does not
fit) :class:`DoesNotFit`, exit 5 (device) :class:`DeviceError`.  Argument
errors found before the library is called are plain ``TypeError`` /
``ValueError``; an argument the library itself refuses (an ``offload`` name
that matches no component) is :class:`InvalidArgument`, which is both a
:class:`Error` and a ``ValueError``.
"""

__all__ = ["Error", "InvalidArgument", "InvalidInput", "DoesNotFit", "DeviceError",
           "VerifyMismatch", "Busy", "NotReady", "Denied", "Disconnected"]


class Error(Exception):
    """A failure reported by libhoist.

    Attributes: ``status`` (the status name, e.g. ``"HEADER_JSON"``), ``code``
    (its negative number), ``message`` (the one-line detail) and
    ``exit_code`` (what the ``hoist`` CLI exits with for it).
    """

    def __init__(self, message, status="UNKNOWN", code=-1, exit_code=1):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.exit_code = exit_code

    def __str__(self):
        return self.message


class InvalidArgument(Error, ValueError):
    """The library refused an argument (status INVALID_ARGUMENT)."""


class InvalidInput(Error):
    """A bad file or pipeline: a malformed safetensors header, a broken
    model_index.json or shard index, a missing shard or folder."""


class DoesNotFit(Error):
    """Admission refused a component, or the device ran out of memory.

    ``component`` names it (``""`` when the failure is not about one),
    ``need_bytes`` is what it needed (arena, scratch and headroom) and
    ``free_bytes`` the device's free memory when it was checked.
    """

    def __init__(self, message, status="ADMISSION", code=-73, exit_code=4, component="",
                 need_bytes=0, free_bytes=0):
        super().__init__(message, status, code, exit_code)
        self.component = component
        self.need_bytes = need_bytes
        self.free_bytes = free_bytes


class DeviceError(Error):
    """No such device or driver, or a device call failed."""


class VerifyMismatch(Error):
    """``verify=True`` found device bytes that differ from the file."""


class Busy(Error):
    """A component cannot be released while tensors exported from it live."""


class NotReady(Error):
    """``hoist serve`` is still loading its pipeline: ``attach(wait=False)``,
    or a ``timeout`` that ran out first."""


class Denied(Error):
    """``hoist serve`` refused this client (another uid, not allowed)."""


class Disconnected(Error):
    """The server closed the connection, is shutting down, or is not there
    (no process listens on the socket)."""


# The one table: library status codes -> (exception class, CLI exit code).
# Ranges are inclusive, first match wins; anything else is a plain Error
# with exit code 1.  It mirrors the CLI's exit-code mapping.
_TABLE = (
    (-1, -1, InvalidArgument, 2),      # INVALID_ARGUMENT: usage
    (-4, -4, InvalidInput, 3),         # NOT_FOUND
    (-69, -20, InvalidInput, 3),       # safetensors format rules, pipeline layout
    (-73, -72, DoesNotFit, 4),         # DEVICE_OOM, ADMISSION
    (-71, -70, DeviceError, 5),        # NO_DEVICE, DEVICE
    (-74, -74, VerifyMismatch, 1),     # VERIFY_MISMATCH
    (-7, -7, Busy, 1),                 # BUSY: released while exported
    (-5, -5, Error, 130),              # CANCELLED
    (-90, -90, NotReady, 1),           # NOT_READY: the server still loads
    (-92, -92, Denied, 1),             # DENIED: refused by the server
    (-93, -93, Disconnected, 1),       # CLOSED: the server went away
    (-100, -100, InvalidInput, 3),     # GROUP_MISMATCH: the ranks' inputs differ
    (-102, -102, DeviceError, 5),      # NO_NCCL: several GPUs need it
)


def error_class(code):
    """(exception class, CLI exit code) for a library status code."""
    for first, last, cls, exit_code in _TABLE:
        if first <= code <= last:
            return cls, exit_code
    return Error, 1


def _from_status(code, status, message, component=None, need_bytes=0, free_bytes=0):
    """The exception for a failure (called by the extension)."""
    cls, exit_code = error_class(code)
    if cls is DoesNotFit:
        return cls(message, status, code, exit_code, component or "", need_bytes, free_bytes)
    return cls(message, status, code, exit_code)
