"""The one family of user errors: every mistake a user can fix is a :class:`FunnelsimError`.

A front end (the CLI, a notebook) catches this one class and shows ``str(error)``, a
single line; ``message`` is the problem alone and ``field`` what it is about, when known.
An error about an argument of a library call (``params``, ``dask``, ``visitors``...)
names that argument first in its message and in ``field``; the command line shows its
own option there instead (``--param``, ``--dask``, ``--visitors``...).
"""

from __future__ import annotations

from typing import ClassVar


class FunnelsimError(Exception):
    """A mistake a user can fix, told in one line.

    Attributes:
        message: What is wrong.
        field: The input it concerns (a scenario field, a column, an argument), or None.
        located: True for errors whose message starts with the file they are about.
    """

    located: ClassVar[bool] = False

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ArgumentError(FunnelsimError, ValueError):
    """An argument of a library call that cannot be used as given (``field`` names it)."""
