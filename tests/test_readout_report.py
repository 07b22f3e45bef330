"""The per-visitor readouts of ``analyze`` (sequential, CUPED, guardrails, ratios,
segments, SRM) in the terminal and the HTML report: the same tables, the numbers of
``results.json``, and no crash on degenerate data."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from test_tables import numbers, page_text, terminal

from funnelsim import formatting as fmt
from funnelsim import html_report, plots, report
from funnelsim.analysis.api import AnalysisResult, analyze, results_dict
from funnelsim.analysis.readout_tables import sequential_table
from funnelsim.analysis.readouts import ReadoutRequest
from funnelsim.files import png_bytes
from funnelsim.tables import Table, to_html

pd = pytest.importorskip("pandas")
pytest.importorskip("duckdb")

REQUEST = ReadoutRequest(
    arm="variant",
    metric="converted",
    look="date",
    covariates=("pre_revenue",),
    guardrails=("retained",),
    secondary=("orders",),
    ratios=(("revenue", "orders"),),
    segment="device",
)


def _visitors(n: int, seed: int) -> pd.DataFrame:
    """Two arms over 7 days; b converts better on desktop and worse on mobile, orders
    more per visitor and halves retention."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "control", "b")
    device = rng.choice(["desktop", "mobile"], n)
    b = arm == "b"
    converted = rng.random(n) < np.where(b, np.where(device == "mobile", 0.07, 0.17), 0.10)
    pre_revenue = rng.gamma(2.0, 20.0, n)
    return pd.DataFrame(
        {
            "variant": arm,
            "date": pd.to_datetime("2026-03-01") + pd.to_timedelta(np.arange(n) * 7 // n, "D"),
            "converted": converted,
            "revenue": np.where(converted, np.round(0.8 * pre_revenue + 10, 2), 0.0),
            "orders": np.where(converted, 1 + rng.poisson(0.3, n), 0),
            "pre_revenue": np.round(pre_revenue, 2),
            "device": device,
            "retained": rng.random(n) < np.where(b, 0.2, 0.4),
        }
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> AnalysisResult:
    path = tmp_path_factory.mktemp("readouts") / "visitors.csv"
    _visitors(14_000, seed=16).to_csv(path, index=False)
    return analyze(path, "control", request=REQUEST, draws=200, tune=300, chains=2, seed=1)


def _printed(result: AnalysisResult, verbose: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, color_system=None)
    report.print_analysis(result, console, verbose)
    return buffer.getvalue()


def _table(tables: list[Table], title_start: str) -> Table:
    return next(t for t in tables if t.title.startswith(title_start))


def test_terminal_and_report_show_the_same_readout_tables(result) -> None:
    tables = report.analysis_tables(result, every_row=True)
    titles = [t.title.split(":")[0].split(" (")[0] for t in tables[1:]]
    assert titles == [
        "Sample ratio check",
        "Safe peeking on converted",
        "Safe peeking on revenue",
        "Variance reduction",
        "Metrics and guardrails",
        "Ratio revenue/orders",
        "Segments",
    ]
    page = html_report.render_html(html_report.analysis_report(result))
    printed = _printed(result, verbose=True)
    for table in tables:
        assert to_html(table) in page, table.title  # the report shows this very table
        assert table.title in printed
        assert numbers(terminal(table, 400)) == numbers(page_text(table)), table.title


def test_report_has_a_section_and_figure_per_readout(result) -> None:
    document = html_report.analysis_report(result)
    titles = [s.title for s in document.sections]
    for title in (
        "Sample ratio",
        "Safe peeking: converted",
        "Safe peeking: revenue",
        "Variance reduction (CUPED)",
        "Metrics and guardrails",
        "Ratio metrics",
        "Segments",
    ):
        assert title in titles
    names = [f.name for f in document.figures]
    for name in ("sequential_converted", "sequential_revenue", "cuped", "metrics", "ratios"):
        assert name in names
    assert "segments" in names
    page = html_report.render_html(document)
    warning = result.extras.segments.warnings[0]
    assert warning.startswith("Simpson's paradox risk: in segment mobile")
    assert f'<p class="warn">{warning}</p>' in page.replace("&#x27;", "'")


def _cells(table: Table, *keys: str) -> list[str]:
    """The cell texts of the row whose first cells are ``keys``."""
    row = next(r for r in table.rows if tuple(c.text for c in r.cells[: len(keys)]) == keys)
    return [c.text for c in row.cells]


def _uplift(entry: dict) -> str:
    value = entry.get("value", entry.get("mean"))
    return fmt.uplift(value, entry["low"], entry["high"])


def test_readout_tables_carry_the_numbers_of_results_json(result) -> None:
    document = results_dict(result)
    tables = report.analysis_tables(result, every_row=True)
    looks = _table(tables, "Safe peeking on converted")
    for look in document["sequential"]["converted"]["looks"]:
        cells = _cells(looks, look["look"], look["variant"])
        assert cells[3] == fmt.points(look["difference"], signed=True)
        assert cells[4] == fmt.p_value(look["p_value"])
        assert (cells[5] == "differs") == look["significant"]
    cuped = document["cuped"]["variants"]["b"]
    cells = _cells(_table(tables, "Variance reduction"), "b")
    assert cells[1:4] == [
        _uplift(cuped["uplift"]),
        _uplift(cuped["unadjusted_uplift"]),
        fmt.percent(cuped["variance_reduction"], digits=1),
    ]
    metrics = _table(tables, "Metrics and guardrails")
    for effect in document["metrics"]["effects"]:
        cells = _cells(metrics, effect["metric"], effect["variant"])
        assert cells[3] == _uplift(effect["uplift"])
        assert cells[4] == fmt.p_value(effect["q_value"])
        if effect["role"] == "guardrail":
            assert cells[5] == fmt.percent(effect["prob_harm"], digits=1)
            assert (cells[6] == "blocks ship") == effect["blocks"]
    ratio = document["ratios"][0]
    shown = _table(tables, "Ratio revenue/orders")
    for arm, label in (("control", "control"), ("b", "b")):
        assert _cells(shown, label)[1] == fmt.number(ratio["ratios"][arm]["value"])
    assert _cells(shown, "b")[2] == _uplift(ratio["variants"]["b"]["uplift"])
    assert _cells(shown, "b")[3] == _uplift(ratio["bayesian"]["uplift_vs_control"]["b"])
    segments = _table(tables, "Segments")
    for effect in document["segments"]["effects"]:
        cells = _cells(segments, effect["segment"], effect["variant"])
        assert cells[3] == fmt.points(effect["raw_difference"], signed=True)
        assert cells[4] == fmt.points(effect["difference"]["mean"], signed=True)
    srm = _table(tables, "Sample ratio check")
    assert srm.notes[0].text == document["sample_ratio"]["message"]


def test_ratio_labels_follow_the_arms_of_the_aggregates(result) -> None:
    """The warehouse sorts the arms (b, control); the CSV reader keeps the file's order
    (control, b): each ratio carries its own arm, as the posterior does."""
    ratio = results_dict(result)["ratios"][0]
    for arm in ("control", "b"):
        assert ratio["ratios"][arm]["value"] == pytest.approx(
            ratio["bayesian"]["ratios"][arm]["mean"], rel=0.01
        )
    assert ratio["ratios"]["control"]["value"] != ratio["ratios"]["b"]["value"]


def test_terminal_is_short_unless_verbose(result) -> None:
    short, verbose = _printed(result, False), _printed(result, True)
    found = result.extras.sequential[0]
    last = found.looks[-1].look
    assert short.count("2026-03-0") < verbose.count("2026-03-0")
    assert all(look.look in verbose for look in found.looks)
    table = sequential_table(found, every_row=False)
    assert {row.cells[0].text for row in table.rows} == {found.stop_look, last} - {None}
    assert "Sample ratio check" not in short  # shown only when it fails
    metrics = "Metrics and guardrails"
    assert "converted" not in short.split(metrics)[1].split("Ratio")[0]  # no primary row
    assert "converted" in verbose.split(metrics)[1].split("Ratio")[0]


def test_segments_use_the_sampler_settings_given(result) -> None:
    diagnostics = result.extras.segments.diagnostics
    assert (diagnostics.chains, diagnostics.draws) == (2, 200)


def test_degenerate_readouts_render_without_crashing(tmp_path: Path) -> None:
    """b enters on the third day and never converts: looks with an empty arm, a zero
    conversion rate, a guardrail whose variant mean is zero."""
    frame = _visitors(2_000, seed=3)
    b = frame["variant"] == "b"
    frame.loc[b, "converted"] = False
    frame.loc[b, ["revenue", "orders"]] = 0
    early = b & (frame["date"] < pd.Timestamp("2026-03-03"))
    frame = frame[~early]
    path = tmp_path / "degenerate.csv"
    frame.to_csv(path, index=False)
    request = REQUEST._replace(ratios=(), segment=None)
    found = analyze(path, "control", request=request)
    document = html_report.analysis_report(found)
    page = html_report.render_html(document)
    assert [f.name for f in document.figures] == [
        "uplift_conversion",
        "sequential_converted",
        "sequential_revenue",
        "cuped",
        "metrics",
    ]
    assert page.count("<img") == 5
    for table in report.analysis_tables(found, every_row=True):
        assert numbers(terminal(table, 400)) == numbers(page_text(table)), table.title


def test_figures_take_non_finite_values() -> None:
    nan, inf = math.nan, math.inf
    series = {
        "b": plots.SequenceSeries(np.array([nan, 0.1]), np.array([-inf, 0.0]), np.array([inf, 0.2]))
    }
    figure = plots.confidence_sequence_figure("converted", ["1", "2"], series, 0.95, None)
    assert png_bytes(figure)[:4] == b"\x89PNG"
    rows = plots.interval_rows_figure(
        "t", "x", {"s": {"a": (nan, nan, nan), "b": (0.1, -inf, 0.2)}}
    )
    assert png_bytes(rows)[:4] == b"\x89PNG"
