"""The command group's error handling: a library error in the command line's words
(one line, exit status 2), Ctrl-C and SIGTERM as exit status 130 and 143, running out of
memory as one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from funnelsim.cli.interrupts import interrupted_status, noting_interrupts
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
        with noting_interrupts() as interrupted:
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
            status = interrupted_status()
        click.echo("interrupted: stopped; no file was left half-written", err=True)
        sys.exit(status)
