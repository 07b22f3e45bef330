"""The one family of user errors: every mistake a user can fix is a :class:`FunnelsimError`.

A front end (the CLI, a notebook) catches this one class and shows ``str(error)``, a
single line; ``message`` is the problem alone and ``field`` what it is about, when known.
"""

from __future__ import annotations


class FunnelsimError(Exception):
    """A mistake a user can fix, told in one line.

    Attributes:
        message: What is wrong.
        field: The input it concerns (a scenario field, a column, a parameter), or None.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
