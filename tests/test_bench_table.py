"""README's performance table has the shape `make bench` writes (not its numbers)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import targets  # noqa: E402  (benchmarks/ is not a package)


def _readme_table() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    _, rest = readme.split(targets.START, 1)
    table, _ = rest.split(targets.END, 1)
    return table.strip().splitlines()


def test_a_target_line_round_trips_into_a_table_row() -> None:
    target = targets.Target(
        "run", "1.2 s", "9.0 s", "7.5x", "< 2 s", True, "warm, end to end", "funnelsim run x"
    )
    (parsed,) = targets.parse("noise\n" + targets.line(target) + "\nmore noise")
    assert parsed == target
    row = targets.markdown([parsed]).splitlines()[-1]
    assert (
        row == "| run | 1.2 s | 9.0 s | 7.5x | < 2 s | yes | warm, end to end | `funnelsim run x` |"
    )


def test_the_readme_table_is_the_benchmark_output_format() -> None:
    lines = _readme_table()
    header, rule, *rows = lines
    assert header == targets.markdown([]).splitlines()[0]
    assert rule == targets.markdown([]).splitlines()[1]
    assert rows, "the README table has no rows: run make bench"
    for row in rows:
        cells = row.strip("|").split(" | ")
        assert len(cells) == len(targets.COLUMNS), row
        assert cells[5].strip() in ("yes", "**no**", "-"), row
        assert cells[7].strip().startswith("`") and cells[7].strip().endswith("`"), row


def test_rewriting_the_readme_keeps_what_surrounds_the_table() -> None:
    text = f"intro\n{targets.START}\nold table\n{targets.END}\noutro\n"
    target = targets.Target("a", "1", "-", "-", "< 2", None, "cold", "cmd")
    new = targets.rewrite_readme(text, [target])
    assert new.startswith(f"intro\n{targets.START}\n| target |")
    assert new.endswith(f"{targets.END}\noutro\n") and "old table" not in new


def test_make_bench_runs_every_benchmark_that_reports_targets() -> None:
    """A benchmark that prints TARGET lines reaches README's table only through `make
    bench`: every such script is in its recipe."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    reporting = {
        path.name
        for path in (ROOT / "benchmarks").glob("*.py")
        if path.name != "targets.py" and "targets.report(" in path.read_text(encoding="utf-8")
    }
    assert "profit_plan.py" in reporting
    assert {name for name in reporting if f"benchmarks/{name}" not in recipe} == set()
