"""Ctrl-C and SIGTERM during a command: noted when they arrive, so that one a library
swallows (PyMC stops sampling and returns its draws; an interrupted import inside SciPy
surfaces as an ImportError its fallback catches) still stops the command at the next
checkpoint: every progress callback is one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C and a service manager's (or kill's) request to stop: both end a command the
same way, with exit status 128 + the signal's number (130, 143)."""
_NOTED: list[int] = []


def interrupted_status() -> int:
    """The exit status of the command the last noted signal stopped (130 for Ctrl-C)."""
    return 128 + (_NOTED[-1] if _NOTED else signal.SIGINT)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived that a library swallowed (PyMC stops
    sampling on Ctrl-C and returns the draws so far): such a result is not written."""
    if _NOTED:
        raise KeyboardInterrupt


@contextmanager
def noting_interrupts() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are noted in the yielded list, for
    the block only: the notes are forgotten when it ends (a later command in the same
    process, as in tests or a notebook, starts uninterrupted)."""
    _NOTED.clear()
    if threading.current_thread() is not threading.main_thread():
        try:
            yield _NOTED
        finally:
            _NOTED.clear()
        return

    def note(signum: int, _frame: object) -> None:
        _NOTED.append(signum)
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, note) for number in INTERRUPTING_SIGNALS}
    try:
        yield _NOTED
    finally:
        _NOTED.clear()
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
