"""One table model, two renderers: every table is built once and shown in the terminal
and in the HTML report from the same rows.

A :class:`Table` is data: a title, :class:`Column` headers, rows of :class:`Cell`
values (already formatted by :mod:`funnelsim.formatting`), a caption and notes. A
cell may carry a second line, its ``detail`` (an interval below its mean), and a
``tone`` (how a decision reads: good, bad, neutral, pending). :func:`to_rich` and
:func:`to_html` lay out the same cells; neither computes or formats a number.

In the terminal a table wider than the console is split into parts that fit, each
repeating the table's key columns, so no number is ever cut.

>>> t = Table("Demo", (Column("variant", numeric=False), Column("rate")),
...           (Row((Cell("a"), Cell("3.10%", "[2.90%, 3.30%]"))),))
>>> "<td class=\\"num\\">3.10%<br><small>[2.90%, 3.30%]</small></td>" in to_html(t)
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

Tone = Literal["", "good", "bad", "neutral", "pending"]
TERMINAL_STYLE: dict[str, str] = {
    "good": "bold green",
    "bad": "red",
    "neutral": "yellow",
    "pending": "cyan",
}
DASH = "—"


@dataclass(frozen=True)
class Cell:
    """One formatted value: its text, an optional second line and a tone."""

    text: str
    detail: str = ""
    tone: Tone = ""

    @property
    def lines(self) -> tuple[str, ...]:
        """The text lines the cell shows."""
        return (self.text, self.detail) if self.detail else (self.text,)


EMPTY = Cell(DASH)
"""A cell with nothing to show (the control's uplift, a missing value)."""


@dataclass(frozen=True)
class Column:
    """A header; ``numeric`` columns are right-aligned, ``key`` columns repeat when a
    table is split to fit the terminal."""

    header: str
    numeric: bool = True
    key: bool = False


def label(header: str) -> Column:
    """A text column that names what a row is about (variant, channel, stage)."""
    return Column(header, numeric=False, key=True)


def columns(*items: Column | str) -> tuple[Column, ...]:
    """Columns in order; a plain header is a numeric column."""
    return tuple(item if isinstance(item, Column) else Column(item) for item in items)


def text(header: str) -> Column:
    """A left-aligned text column that is not a key."""
    return Column(header, numeric=False)


@dataclass(frozen=True)
class Row:
    """Cells in column order; ``highlight`` marks the row to read first, ``section_end``
    draws a rule below it."""

    cells: tuple[Cell, ...]
    highlight: bool = False
    section_end: bool = False


@dataclass(frozen=True)
class Table:
    """A titled table of formatted cells, with a caption and notes (one line each) below
    it and ``lead`` lines above it (a question's answer, read before the rows)."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    caption: str = ""
    notes: tuple[Cell, ...] = ()
    lead: tuple[Cell, ...] = ()

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row.cells) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: a row has {len(row.cells)} cells for "
                    f"{len(self.columns)} columns"
                )

    def with_column(self, column: Column, cells: Sequence[Cell], after: str) -> Table:
        """This table with one more column placed after the column headed ``after``."""
        at = [c.header for c in self.columns].index(after) + 1
        rows = tuple(
            replace(row, cells=(*row.cells[:at], cell, *row.cells[at:]))
            for row, cell in zip(self.rows, cells, strict=True)
        )
        return replace(self, columns=(*self.columns[:at], column, *self.columns[at:]), rows=rows)

    def cells(self) -> Iterable[Cell]:
        """Every body cell, row by row."""
        return (cell for row in self.rows for cell in row.cells)


def rows(*cells: Sequence[Cell]) -> tuple[Row, ...]:
    """Plain rows from sequences of cells."""
    return tuple(Row(tuple(c)) for c in cells)


# --------------------------------------------------------------------------- terminal


def _needed_width(table: Table, index: int) -> int:
    """The width column ``index`` needs so that no cell wraps (its header may)."""
    from rich.cells import cell_len

    words = table.columns[index].header.split() or [""]
    lines = [line for row in table.rows for line in row.cells[index].lines]
    return max(cell_len(text) for text in [*words, *lines])


def _header_width(table: Table, index: int) -> int:
    """The width column ``index`` needs so that neither a cell nor its header wraps."""
    from rich.cells import cell_len

    return max(_needed_width(table, index), cell_len(table.columns[index].header))


def _widths(table: Table, columns: Sequence[int], console_width: int) -> list[int]:
    """Each column's width: wide enough for its cells, and for every header on one line
    when the console has room for them all (else the headers wrap at spaces)."""
    unwrapped = [_header_width(table, i) for i in columns]
    if sum(unwrapped) + 3 * len(columns) + 1 <= console_width:
        return unwrapped
    return [_needed_width(table, i) for i in columns]


def _rich_table(
    table: Table, columns: Sequence[int], title: str, widths: Sequence[int]
) -> RenderableType:
    """A rich table of ``columns`` at ``widths`` (each at least its widest cell line)."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    shown = RichTable(
        title=Text(title) if title else None,
        caption=Text(table.caption) if table.caption else None,
        box=box.SIMPLE_HEAD,
        caption_justify="left",
    )
    for i, width in zip(columns, widths, strict=True):
        column = table.columns[i]
        shown.add_column(
            Text(column.header), justify="right" if column.numeric else "left", width=width
        )
    for row in table.rows:
        shown.add_row(
            *(
                Text("\n".join(row.cells[i].lines), style=TERMINAL_STYLE.get(row.cells[i].tone, ""))
                for i in columns
            ),
            style="bold" if row.highlight else None,
            end_section=row.section_end,
        )
    return shown


def _width(table: Table, columns: Sequence[int]) -> int:
    """The width of the columns with no cell wrapped (headers wrap at spaces): each column
    is padded by one space on each side, separated by one and the edges take one each
    (the geometry of ``box.SIMPLE_HEAD``)."""
    return sum(_needed_width(table, i) for i in columns) + 3 * len(columns) + 1


def column_groups(table: Table, console: Console) -> list[list[int]]:
    """Column indices per part: as many columns as fit the console's width with no cell
    wrapped or cut, each part starting with the key columns."""
    keys = [i for i, c in enumerate(table.columns) if c.key]
    groups: list[list[int]] = []
    current = list(keys)
    for i, column in enumerate(table.columns):
        if column.key:
            continue
        trial = [*current, i]
        if len(current) > len(keys) and _width(table, trial) > console.width:
            groups.append(current)
            trial = [*keys, i]
        current = trial
    groups.append(current)
    return groups


def to_rich(table: Table, console: Console) -> list[RenderableType]:
    """The table for ``console``: its lead lines, one rich table or several parts when
    it is too wide, then its notes."""
    groups = column_groups(table, console)
    parts: list[RenderableType] = [
        _rich_table(
            table,
            group,
            table.title if len(groups) == 1 else f"{table.title} ({n} of {len(groups)})",
            _widths(table, group, console.width),
        )
        for n, group in enumerate(groups, start=1)
    ]
    return [_note(line) for line in table.lead] + parts + [_note(note) for note in table.notes]


def _note(note: Cell) -> RenderableType:
    from rich.text import Text

    return Text(note.text, style=TERMINAL_STYLE.get(note.tone, ""))


def print_note(note: Cell, console: Console) -> None:
    """Print one line below the tables, in its tone."""
    console.print(_note(note))


def print_table(table: Table, console: Console) -> None:
    """Print the table (split to fit the console when needed) and its notes."""
    for part in to_rich(table, console):
        console.print(part)


# --------------------------------------------------------------------------- HTML


def esc(value: object) -> str:
    """HTML-escape any value's text (names and descriptions are user input)."""
    return html.escape(str(value), quote=True)


def _html_line(line: str) -> str:
    """A line of a cell, escaped, its indentation kept."""
    text = line.lstrip(" ")
    return "&nbsp;" * (len(line) - len(text)) + esc(text)


def _html_cell(cell: Cell) -> str:
    body = "<br>".join(_html_line(line) for line in cell.text.split("\n"))
    if cell.tone:
        body = f'<span class="badge {cell.tone}">{body}</span>'
    if cell.detail:
        body += f"<br><small>{esc(cell.detail)}</small>"
    return body


def _align(column: Column) -> str:
    return ' class="num"' if column.numeric else ""


def _html_note(note: Cell) -> str:
    return f'<p class="{"warn" if note.tone == "bad" else "note"}">{esc(note.text)}</p>'


def to_html(table: Table, heading: bool = False) -> str:
    """The table as an HTML fragment; every text is escaped. With ``heading`` the title is
    an ``<h3>`` above it."""
    head = "".join(f"<th{_align(c)}>{esc(c.header)}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{_align(column)}>{_html_cell(cell)}</td>"
            for column, cell in zip(table.columns, row.cells, strict=True)
        )
        + "</tr>"
        for row in table.rows
    )
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    notes = "".join(_html_note(note) for note in table.notes)
    lead = "".join(_html_note(line) for line in table.lead)
    title = f"<h3>{esc(table.title)}</h3>" if heading else ""
    return (
        f'{lead}{title}<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{notes}"
    )
