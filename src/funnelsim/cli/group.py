"""The command group's error handling: a library error in the command line's words
(one line, exit status 2), Ctrl-C and SIGTERM as exit status 130 and 143, running out of
memory as one line."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from funnelsim.cli.shared import SOURCE, fail
from funnelsim.errors import FunnelsimError

OPTIONS = {
    "param": "--param",
    "variant": "--variant",
    "dask": "--dask",
    "strategy": "--strategy",
    "visitors": "--visitors",
    "split": "--split",
}
"""Library arguments that name themselves first in an error, and the option setting each."""


OVERRIDES = {
    "force": "use --force to overwrite",
    "allow_large": "use --allow-large to run it anyway",
}
"""Errors a command-line option overrides, and the hint naming it."""


def error_line(error: FunnelsimError, source: Path | None) -> str:
    """A library error in the command line's words: the option in place of the library
    argument, the option that overrides it, and the input file when it is about it."""
    field, text = error.field or "", str(error)
    if field in OPTIONS and text.startswith(field):
        return OPTIONS[field] + text[len(field) :]
    if field in OVERRIDES:
        text = f"{text}; {OVERRIDES[field]}"
    if source is None or error.located or text.startswith(f"{source}:"):
        return text
    return f"{source}: {text}"


class Commands(click.Group):
    """The command group. A FunnelsimError ends with one line and exit status 2. Ctrl-C
    anywhere ends with one line and exit status 130 (not click's "Aborted!" and status
    1), SIGTERM (a service manager's or kill's request to stop) the same way with 143,
    also when it strikes while a library loads and surfaces as some other error (an
    extension module failing to initialise). Running out of memory (a request run with
    --allow-large) ends with one line and status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        with _noting_interrupts() as interrupted:
            try:
                return super().invoke(ctx)
            except FunnelsimError as error:
                fail(error_line(error, ctx.meta.get(SOURCE)))
            except MemoryError:
                fail(
                    "out of memory: ask for fewer visitors, replications or workers "
                    "(without --allow-large a request is priced before it starts)"
                )
            except Exception:
                if not interrupted:
                    raise
            except KeyboardInterrupt:
                pass
        click.echo("interrupted: stopped; no file was left half-written", err=True)
        sys.exit(_interrupted_status())


INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C and a service manager's (or kill's) request to stop: both end a command the
same way, with exit status 128 + the signal's number (130, 143)."""
_NOTED: list[int] = []


def _interrupted_status() -> int:
    return 128 + (_NOTED[-1] if _NOTED else signal.SIGINT)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived that a library swallowed (PyMC stops
    sampling on Ctrl-C and returns the draws so far): such a result is not written."""
    if _NOTED:
        raise KeyboardInterrupt


@contextmanager
def _noting_interrupts() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are noted in the yielded list."""
    _NOTED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield _NOTED
        return

    def note(signum: int, _frame: object) -> None:
        _NOTED.append(signum)
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, note) for number in INTERRUPTING_SIGNALS}
    try:
        yield _NOTED
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
