"""The benchmark's target lines, and the README performance table built from them.

Every benchmark script prints each target it measures as one line::

    TARGET | name | figure | before | ratio | goal | met | includes | command

(``before`` is the figure of the code before the change, measured in the same run where
a ratio is meant, else "-"; ``met`` is yes, no or "-" for a figure reported without a
goal; ``includes`` says what the figure counts, cold or warm; ``command`` reproduces it).

``python benchmarks/targets.py OUTPUT README.md`` rewrites the table between the
``<!-- bench-table -->`` markers of README.md from the TARGET lines of OUTPUT (the
saved output of ``make bench``, which runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

MARK = "TARGET"
COLUMNS = ("target", "figure", "before", "ratio", "goal", "met", "includes", "reproduce")
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


class Target(NamedTuple):
    """One measured target of a benchmark run."""

    name: str
    figure: str
    before: str
    ratio: str
    goal: str
    met: bool | None
    includes: str
    command: str


def line(target: Target) -> str:
    """The TARGET line a benchmark prints for ``target``."""
    met = "-" if target.met is None else ("yes" if target.met else "no")
    cells = (*target[:5], met, *target[6:])
    return " | ".join((MARK, *(cell.replace("|", "/") for cell in cells)))


def report(target: Target) -> Target:
    """Print ``target`` as its TARGET line (flushed) and return it."""
    print(line(target), flush=True)
    return target


def parse(text: str) -> list[Target]:
    """The targets of a benchmark output, in order (other lines are skipped)."""
    found = []
    for row in text.splitlines():
        cells = [cell.strip() for cell in row.split(" | ")]
        if cells[0] != MARK or len(cells) != len(COLUMNS) + 1:
            continue
        met = {"yes": True, "no": False}.get(cells[6])
        found.append(Target(*cells[1:6], met, *cells[7:]))  # type: ignore[arg-type]
    return found


def markdown(targets: list[Target]) -> str:
    """The README table of ``targets``: one row each, the command in backticks."""
    rows = [f"| {' | '.join(COLUMNS)} |", "|" + "---|" * len(COLUMNS)]
    for t in targets:
        met = "-" if t.met is None else ("yes" if t.met else "**no**")
        cells = (t.name, t.figure, t.before, t.ratio, t.goal, met, t.includes, f"`{t.command}`")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def rewrite_readme(readme: str, targets: list[Target]) -> str:
    """``readme`` with the text between the table markers replaced by the table."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{markdown(targets)}\n{END}{tail}"


def main() -> None:
    output, readme = (Path(arg) for arg in sys.argv[1:3])
    targets = parse(output.read_text(encoding="utf-8"))
    if not targets:
        raise SystemExit(f"{output}: no {MARK} lines")
    readme.write_text(rewrite_readme(readme.read_text(encoding="utf-8"), targets), "utf-8")
    print(f"{readme}: performance table rewritten from {len(targets)} targets of {output}")


if __name__ == "__main__":
    main()
