"""The table model and its two renderers: the terminal and the HTML report show the same
cells, no number is ever cut, and the run tables fit 100 columns."""

from __future__ import annotations

import html
import io
import re
from collections import Counter

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from conftest import SCENARIOS
from funnelsim import cli, html_report, report
from funnelsim.analysis.api import analyze
from funnelsim.analysis.data import experiment_from_counts
from funnelsim.experiment import ExperimentResult, run_experiment
from funnelsim.profit_planning import (
    ProfitPlan,
    plan_profit,
    profit_plan_table,
    run_value_of_information,
)
from funnelsim.scenario import load_scenario
from funnelsim.tables import Cell, Column, Row, Table, label, print_note, print_table, to_html

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
SMALL = {"traffic.days": 2, "traffic.visitors_per_day": 1500}


def numbers(text: str) -> Counter[str]:
    """Every number written in ``text`` (digits with their separators and decimals)."""
    return Counter(NUMBER.findall(text))


def terminal(table: Table, width: int) -> str:
    buffer = io.StringIO()
    print_table(table, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


def page_text(table: Table) -> str:
    """What a reader of the HTML table sees: its text without tags."""
    fragment = to_html(table, heading=True).replace("<br>", "\n")
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def cell_numbers(table: Table) -> Counter[str]:
    return sum((numbers(line) for cell in table.cells() for line in cell.lines), Counter())


@pytest.fixture(scope="module")
def checkout() -> ExperimentResult:
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides(SMALL)
    return run_experiment(scenario, replications=6)


@pytest.fixture(scope="module")
def lead() -> ExperimentResult:
    scenario = load_scenario(SCENARIOS / "lead_response.yaml").with_overrides(SMALL)
    return run_experiment(scenario, replications=4)


@pytest.fixture(scope="module")
def profit_plan() -> ProfitPlan:
    """A small profit plan of checkout (its own uncertain assumptions)."""
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides(SMALL)
    return plan_profit(scenario, simulations=100, rule_simulations=10, truth_replications=2)


def _every_table(
    checkout: ExperimentResult, lead: ExperimentResult, profit_plan: ProfitPlan
) -> list[Table]:
    result = analyze(experiment_from_counts(["a", "b"], [10_000, 10_000], [1_000, 1_150]))
    return [
        profit_plan_table(profit_plan),
        *report.run_tables(checkout),
        *report.run_tables(lead),
        html_report.loss_table(checkout),
        html_report.precision_table(checkout),
        html_report.value_assumptions_table(checkout.scenario),
        *html_report._scenario_tables(lead.scenario),
        *report.analysis_tables(result),
    ]


def test_terminal_and_html_carry_the_same_numbers(checkout, lead, profit_plan) -> None:
    for table in _every_table(checkout, lead, profit_plan):
        shown, page = numbers(terminal(table, 400)), numbers(page_text(table))
        assert shown == page, table.title
        assert cell_numbers(table) <= shown, table.title


@pytest.mark.parametrize("width", [80, 100, 120])
def test_no_number_is_cut_at_any_width(checkout, lead, profit_plan, width: int) -> None:
    for table in _every_table(checkout, lead, profit_plan):
        text = terminal(table, width)
        assert "…" not in text, table.title
        assert max(cell_len(line.rstrip()) for line in text.splitlines()) <= width
        assert cell_numbers(table) <= numbers(text), table.title


@pytest.mark.parametrize(
    "name", ["checkout.yaml", "login_tradeoff.yaml", "lead_response.yaml", "lead_magnet.yaml"]
)
def test_run_tables_fit_100_columns_without_splitting(name: str) -> None:
    scenario = load_scenario(SCENARIOS / name).with_overrides(SMALL)
    result = run_experiment(scenario, replications=3)
    buffer = io.StringIO()
    report.print_results(result, Console(file=buffer, width=100, color_system=None))
    text = buffer.getvalue()
    assert " of 2)" not in text  # no table had to be split in parts
    assert max(cell_len(line.rstrip()) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("width", [80, 100, 120])
def test_value_of_information_line_wraps_to_the_width(checkout, width: int) -> None:
    """run's value-of-information line (longer than any terminal's width) wraps at
    spaces: no line is wider than the console, no number is cut."""
    line = run_value_of_information(checkout).describe()
    buffer = io.StringIO()
    print_note(Cell(line), Console(file=buffer, width=width, color_system=None))
    text = buffer.getvalue()
    assert len(line) > 120 and len(text.splitlines()) > 1
    assert max(cell_len(row.rstrip()) for row in text.splitlines()) <= width
    assert numbers(text) == numbers(line) and " ".join(text.split()) == line


@pytest.mark.parametrize(("columns", "width"), [(None, 100), ("80", 80), ("120", 120)])
def test_piped_output_takes_the_width_columns_gives(columns: str | None, width: int) -> None:
    """Output that is not a terminal is 100 columns wide, or as wide as COLUMNS says: no
    line is wider, and tables that do not fit split into parts."""
    args = ["run", str(SCENARIOS / "checkout.yaml"), "--replications", "3", "--workers", "1"]
    result = CliRunner().invoke(cli.main, args, env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= width
    assert max(cell_len(line.rstrip()) for line in lines) > width - 10  # the width is used


def _demo() -> Table:
    return Table(
        "Demo [bold]x[/]",
        (label("variant"), Column("rate")),
        (
            Row((Cell("<b>a</b>"), Cell("3.10%", "[2.90%, 3.30%]"))),
            Row((Cell("[red]b[/]"), Cell("4.00%", tone="good"))),
        ),
        caption="caption 1",
        notes=(Cell("note 2", tone="bad"),),
    )


def test_text_is_never_markup() -> None:
    text = terminal(_demo(), 80)
    assert "[red]b[/]" in text and "Demo [bold]x[/]" in text
    page = to_html(_demo(), heading=True)
    assert "<b>a</b>" not in page and "&lt;b&gt;a&lt;/b&gt;" in page
    assert '<span class="badge good">4.00%</span>' in page
    assert '<p class="warn">note 2</p>' in page


def test_a_wide_table_splits_repeating_its_key_column() -> None:
    columns = (label("variant"), *(Column(f"metric {i}") for i in range(12)))
    cells = (Cell("guest_checkout"), *(Cell(f"{1000 + i:,}.25") for i in range(12)))
    table = Table("Wide", columns, (Row(cells),))
    text = terminal(table, 60)
    assert text.count("guest_checkout") >= 2 and "(1 of " in text
    assert cell_numbers(table) <= numbers(text)


def test_with_column_adds_a_column_after_a_named_one() -> None:
    table = _demo().with_column(Column("low"), [Cell("1.0%"), Cell("2.0%")], after="variant")
    assert [c.header for c in table.columns] == ["variant", "low", "rate"]
    assert [row.cells[1].text for row in table.rows] == ["1.0%", "2.0%"]
    with pytest.raises(ValueError, match="cells for"):
        Table("bad", (label("a"),), (Row((Cell("1"), Cell("2"))),))


def test_headers_stay_on_one_line_when_the_console_has_room_for_all() -> None:
    columns = (label("variant"), Column("revenue per visitor"), Column("CLV per visitor"))
    table = Table("Headers", columns, (Row((Cell("b"), Cell("€1.81"), Cell("€1.34"))),))
    roomy = terminal(table, 80)
    assert "revenue per visitor" in roomy and "CLV per visitor" in roomy
    narrow = terminal(table, 40)  # no room for both: the headers wrap at spaces, cells do not
    assert "revenue per visitor" not in narrow and "CLV per visitor" not in narrow
    assert "€1.81" in narrow and "€1.34" in narrow
    assert max(cell_len(line) for line in narrow.splitlines()) <= 40
