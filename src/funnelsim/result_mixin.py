"""One way for every result of the package to show itself: :class:`Result`.

A run, a sweep, a bench, a plan and the analyses each print readably (``repr``),
convert to plain data (``to_dict()``, their JSON document) and to a pandas DataFrame
(``to_frame()``) with one column naming rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas


class Result:
    """A result that prints readably and converts to plain data and to a DataFrame.

    A result defines :meth:`to_dict` (its JSON document), :meth:`rows` (one dictionary
    per row of its table, values possibly nested) and :meth:`headline` (one line);
    :meth:`details` may add lines to its ``repr``. One naming rule holds for every
    frame: nested keys are joined with ``_`` (``conversion_mean``), and the column named
    by ``frame_index`` (when set) becomes the index.
    """

    frame_index: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (its JSON document)."""
        raise NotImplementedError

    def rows(self) -> list[dict[str, Any]]:
        """One dictionary per row of the result's table."""
        raise NotImplementedError

    def headline(self) -> str:
        """The result in one line (what ``repr`` shows first)."""
        raise NotImplementedError

    def details(self) -> list[str]:
        """More lines for ``repr`` (none by default)."""
        return []

    def __repr__(self) -> str:
        return "\n".join([f"{type(self).__name__}({self.headline()})", *self.details()])

    def to_frame(self) -> pandas.DataFrame:
        """A pandas DataFrame of :meth:`rows`, nested keys joined with ``_``."""
        import pandas as pd

        frame = pd.DataFrame([flat_row(row) for row in self.rows()])
        return frame.set_index(self.frame_index) if self.frame_index else frame


def flat_row(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a_b": 1}`` (the frame naming rule).

    >>> flat_row({"variant": "b", "conversion": {"mean": 0.1, "low": 0.09}})
    {'variant': 'b', 'conversion_mean': 0.1, 'conversion_low': 0.09}
    """
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_row(value, f"{name}_"))
        else:
            flat[name] = value
    return flat
