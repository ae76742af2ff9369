"""Load progress: a tqdm bar per component on a terminal, a user callable,
or nothing.

The extension calls the reporter on the thread that called Runtime.load,
between the short waits in which it checks for Ctrl-C, with
``(component, done_bytes, total_bytes)``; components come in load order.
"""

import sys


class _TqdmBars:
    """One tqdm bar per component, closed when the next one starts and at the
    end of the load."""

    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bar = None
        self._component = None

    def __call__(self, component, done, total):
        if component != self._component:
            self.close()
            self._component = component
            self._bar = self._tqdm(total=total, desc=component, unit="B", unit_scale=True,
                                   unit_divisor=1000, leave=False, file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def resolve_progress(progress):
    """The reporter for Runtime.load's ``progress`` argument, or None."""
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            isatty = sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):
            isatty = False
        if not isatty:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return _TqdmBars(tqdm)
    if callable(progress):
        return progress
    raise TypeError(f"progress takes True, False, None or a callable, "
                    f"not {type(progress).__name__}")
