"""The HTML report and its figures: self-contained, complete, escaped, and the CLI's --report."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SCENARIOS
from funnelsim import cli, html_report, plots, report
from funnelsim import formatting as fmt
from funnelsim.analysis.api import analyze
from funnelsim.analysis.conjugate import beta_posteriors, prob_beats
from funnelsim.analysis.data import experiment_from_counts
from funnelsim.experiment import ExperimentResult, run_experiment
from funnelsim.scenario import load_scenario

SMALL = {"traffic.days": 2, "traffic.visitors_per_day": 1500}


@pytest.fixture(scope="module")
def result() -> ExperimentResult:
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides(SMALL)
    return run_experiment(scenario, replications=6)


@pytest.fixture(scope="module")
def document(result: ExperimentResult) -> html_report.Report:
    return html_report.experiment_report(result)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first
    return width, height


def test_page_is_self_contained_with_every_figure_embedded(document) -> None:
    page = html_report.render_html(document)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(document.figures)
    for encoded in images:
        width, height = _png_size(base64.b64decode(encoded))
        assert width > 300 and height > 150


def test_report_has_every_section(document, result) -> None:
    titles = [s.title for s in document.sections]
    assert result.assumptions is not None  # the calibrated defaults' ranges
    assert titles == [
        "Decision at a glance",
        "Over what we do not know",
        "Scenario",
        "Funnels",
        "Uplift posteriors",
        "Expected loss",
        "Lifetime value",
        "Diagnostics",
    ]
    names = [f.name for f in document.figures]
    assert [f"funnel_{v}" for v in result.scenario.variant_names] == names[:4]
    assert {
        "uplift_conversion",
        "uplift_clv_per_visitor",
        "ltv_cac",
        "diagnostics_running_mean",
    } <= set(names)
    page = html_report.render_html(document)
    for s in result.variants:
        assert f'class="badge {report.OUTCOME_TONE[s.decision]}"' in page


def test_user_text_is_escaped(result) -> None:
    hostile = result.scenario.with_overrides(
        {"name": "<script>alert(1)</script>", "description": "a & b <img>"}
    )
    section = html_report.scenario_section(hostile)
    page = html_report.render_html(html_report.Report(hostile.name, "", {}, (section,)))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &amp; b &lt;img&gt;" in page


def test_conversion_posterior_agrees_with_the_exact_probability(result) -> None:
    draws = html_report._conversion_uplift_draws(result)
    first = result.replications[0]
    post = beta_posteriors(first.test_visitors, first.test_conversions)
    exact = prob_beats(post, 0)
    for i, name in enumerate(result.scenario.variant_names[1:], start=1):
        share = float(np.mean(draws[name] > 0))
        # Monte Carlo standard error of a share of 20,000 draws; 4 SE.
        se = math.sqrt(exact[i] * (1 - exact[i]) / html_report.POSTERIOR_DRAWS)
        assert abs(share - exact[i]) < 4 * se + 1e-9


def test_density_matches_the_exact_kernel_estimate_inside_the_range() -> None:
    draws = np.random.default_rng(7).normal(2.0, 0.5, size=20_000)
    grid, height = plots.density(draws)
    assert np.sum(height) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-9)
    quartiles = np.percentile(draws, [25, 75])
    spread = min(draws.std(), (quartiles[1] - quartiles[0]) / 1.34)
    bandwidth = 0.9 * spread * draws.size**-0.2  # Silverman's rule of thumb
    inside = np.abs(grid - 2.0) < 1.0  # two sd: far from the reflected ends
    z = (grid[inside, None] - draws[None, :]) / bandwidth
    exact = np.exp(-0.5 * z**2).sum(axis=1) / (draws.size * bandwidth * math.sqrt(2 * math.pi))
    # binning moves each draw by under half a bin (1/512 of the range, ~1/8 of the
    # bandwidth here); the shifts average out to first order, leaving ~(bin/bandwidth)^2/24
    # (under 0.1%) plus their scatter: well inside 1%
    assert height[inside] == pytest.approx(exact, rel=0.01)


def test_uplift_figure_draws_one_density_per_variant_and_labels_it() -> None:
    rng = np.random.default_rng(3)
    draws = {"b": rng.normal(0.05, 0.02, 4000), "c": np.full(10, 0.01)}  # c: no spread
    figure = plots.uplift_figure("conversion", draws, 0.01, {"b": "ship"})
    ax = figure.axes[0]
    (curve,) = [line for line in ax.lines if len(line.get_xdata()) > 2]
    grid, height = plots.density(draws["b"] * 100)  # drawn in percent
    assert np.array_equal(curve.get_xdata(), grid) and np.array_equal(curve.get_ydata(), height)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "b: P(uplift>0) 99%, ship" in labels  # P(N(5, 2) > 0) = 99.4%
    assert ax.get_ylim()[0] == 0.0


def test_funnel_bars_and_loss_shares_follow_the_counts() -> None:
    funnel = plots.FunnelData(
        "v",
        ("a", "b"),
        (1000.0, 400.0, 100.0),
        {"a": {"page_load": 200.0, "rate": 400.0}, "b": {"form_fields": 60.0, "rate": 240.0}},
    )
    figure = plots.funnel_figure(funnel)
    bars, losses = figure.axes
    assert [p.get_width() for p in bars.patches] == [1000.0, 400.0, 100.0]
    shares = {}
    for patch in losses.patches:
        row = round(patch.get_y() + patch.get_height() / 2)
        shares[row] = shares.get(row, 0.0) + patch.get_width()
    assert shares[0] == pytest.approx(0.6)  # 600 of 1000 lost at a
    assert shares[1] == pytest.approx(0.75)  # 300 of 400 lost at b


def test_ltv_cac_labels_free_channels() -> None:
    figure = plots.ltv_cac_figure({"organic": {"a": math.inf}, "paid": {"a": 2.5}}, ["a"])
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "no spend" in texts and "2.5" in texts


def test_ltv_cac_target_and_break_even_labels_do_not_overlap() -> None:
    figure = plots.ltv_cac_figure(
        {"organic": {"a": math.inf, "b": 40.0}, "paid": {"a": 2.5, "b": 0.9}}, ["a", "b"]
    )
    ax = figure.axes[0]
    legend = ax.get_legend()
    assert {"break-even (1:1)", "3:1 target"} <= {t.get_text() for t in legend.get_texts()}
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert not any(box.overlaps(legend.get_window_extent(renderer)) for box in boxes)


def test_figures_drawn_on_a_pool_are_those_drawn_here(result, document, monkeypatch) -> None:
    from funnelsim import parallel

    monkeypatch.setattr(parallel, "_pool_pays", lambda serial_s, workers: workers > 1)
    monkeypatch.setattr(html_report.os, "cpu_count", lambda: 2)  # the same on one core
    started = []
    pool = parallel.local_pool
    monkeypatch.setattr(parallel, "local_pool", lambda *a: started.append(a[0]) or pool(*a))
    on_pool = html_report.experiment_report(result, workers=2)
    assert started == [2]  # the figures after the first two went to two workers
    assert [(f.name, f.png) for f in on_pool.figures] == [(f.name, f.png) for f in document.figures]


def test_a_report_with_figures_left_to_draw_is_refused() -> None:
    job = html_report.FigureJob("ltv", "LTV:CAC", plots.ltv_cac_figure, ({"a": {"x": 2.0}}, ["x"]))
    section = html_report.Section("Value", to_draw=(job,))
    with pytest.raises(ValueError, match="draw_sections"):
        html_report.Report("t", "", {}, (section,))
    (drawn,) = html_report.draw_sections([section])
    assert [f.name for f in drawn.figures] == ["ltv"] and not drawn.to_draw
    assert _png_size(drawn.figures[0].png)[0] > 300


def test_write_report_writes_html_and_pngs(document, tmp_path) -> None:
    written = html_report.write_report(document, tmp_path / "r.html", tmp_path / "out")
    assert written[0] == tmp_path / "r.html"
    assert {p.name for p in written[1:]} == set(html_report.figure_names(document))
    for path in written[1:]:
        assert _png_size(path.read_bytes())[0] > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_run_report_end_to_end(tmp_path) -> None:
    runner = CliRunner()
    args = [
        "run",
        str(SCENARIOS / "checkout.yaml"),
        "--replications",
        "3",
        "--days",
        "1",
        "--workers",
        "1",
        "-q",
        "--report",
        str(tmp_path / "report.html"),
        "--out",
        str(tmp_path / "out"),
    ]
    result = runner.invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Checkout friction" in page
    assert (tmp_path / "out" / "funnel_control.png").exists()
    assert (tmp_path / "out" / "results.json").exists()
    again = runner.invoke(cli.main, args[:-2])
    assert again.exit_code == 2
    assert "report.html: exists; use --force" in again.output


def test_value_of_information_is_the_same_in_terminal_json_and_report(tmp_path) -> None:
    """run's value-of-information sentence and figures: one computation, shown alike in
    the terminal, results.json and the HTML report."""
    report_file, out = tmp_path / "report.html", tmp_path / "out"
    args = ["run", str(SCENARIOS / "checkout.yaml"), "--replications", "3", "--days", "1"]
    args += ["--workers", "1", "--report", str(report_file), "--out", str(out)]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    start = result.output.index("Value of information")
    terminal = " ".join(result.output[start : result.output.index("profit).", start) + 8].split())
    saved = json.loads((out / "results.json").read_text())["value_of_information"]
    assert saved["sentence"] == terminal
    assert html.escape(terminal, quote=False) in report_file.read_text(encoding="utf-8")
    interval = saved["worth_interval"]
    assert interval["kind"] == "Monte Carlo" and interval["level"] == 0.95
    assert interval["low"] <= saved["worth"] <= interval["high"]
    shown = [fmt.money(saved[k], "EUR", 0) for k in ("worth",)]
    shown += [fmt.money(interval[k], "EUR", 0) for k in ("low", "high")]
    assert all(figure in terminal for figure in shown), (shown, terminal)
    assert f"a {saved['test_days']}-day test" in terminal
    assert f"is {saved['best_test_days']} days" in terminal


def _synthetic_posterior():
    import arviz as az

    rng = np.random.default_rng(0)
    return az.from_dict(
        posterior={"rate": rng.normal(0.1, 0.01, size=(2, 200, 2))},
        sample_stats={"diverging": np.zeros((2, 200), dtype=bool)},
        coords={"variant": ["a", "b"]},
        dims={"rate": ["variant"]},
    )


def test_conjugate_analysis_report_shows_the_exact_readout() -> None:
    data = experiment_from_counts(["a", "b"], [10_000, 10_000], [1_000, 1_150])
    result = analyze(data, "a")
    document = html_report.analysis_report(result)
    assert [s.title for s in document.sections] == [
        "Decision at a glance",
        "Uplift posteriors",
        "Sample ratio",
        "Diagnostics",
    ]
    page = html_report.render_html(document)
    words = fmt.decision_words(result.decision.action, result.decision.variant, "a")
    assert words == "ship b" and f">{words}<" in page
    assert "nothing was sampled for the decision" in page
    assert [f.name for f in document.figures] == ["uplift_conversion"]


def test_mcmc_diagnostics_summarise_each_sampled_variable() -> None:
    idata = _synthetic_posterior()
    table = html_report.diagnostics_table(idata, ["rate"])
    assert [row.cells[0].text for row in table.rows] == ["rate"]  # one row, not per element
    assert table.rows[0].cells[1].text == "2"
    section = html_report._mcmc_diagnostics(idata, ["rate"])
    assert "Divergent transitions: <b>0</b>" in section.body
    assert [job.name for job in section.to_draw] == ["diagnostics_trace"]


def test_constant_quantities_are_left_out_of_the_diagnostics() -> None:
    import arviz as az

    rng = np.random.default_rng(1)
    idata = az.from_dict(
        posterior={
            "rate": rng.normal(0.1, 0.01, size=(2, 200, 2)),
            "uplift": np.concatenate(
                [np.zeros((2, 200, 1)), rng.normal(0.1, 0.01, size=(2, 200, 1))], axis=2
            ),
            "fixed": np.ones((2, 200)),
        },
        sample_stats={"diverging": np.zeros((2, 200), dtype=bool)},
    )
    table = html_report.diagnostics_table(idata, ["rate", "uplift", "fixed"])
    rows = {row.cells[0].text: row.cells for row in table.rows}
    assert set(rows) == {"rate", "uplift"}  # "fixed" never varies
    assert rows["uplift"][1].text == "1"  # the control's zero uplift is left out
    assert "nan" not in " ".join(c.text for cells in rows.values() for c in cells)


def test_trace_figure_has_a_density_and_a_trace_per_variable() -> None:
    figure = plots.trace_figure(_synthetic_posterior(), ["rate"])
    assert len(figure.axes) == 2
    assert len(figure.axes[1].lines) >= 4  # 2 variants x 2 chains
    density, trace = figure.axes
    assert density.get_title(loc="left") == "rate: density per chain"
    assert trace.get_title(loc="left") == "rate: draws per chain"
    assert density.get_title() == trace.get_title() == ""  # no centred title to misread


def _model_data(model: str):
    from funnelsim.analysis.data import OrderStats, experiment_from_rates

    if model == "funnel":
        rates = [[0.4, 0.5, 0.7], [0.4, 0.58, 0.7]]
        return experiment_from_rates(
            ["a", "b"], rates, 5000, ["cart", "checkout"], np.random.default_rng(3)
        )
    converted = np.array([300.0, 340.0])
    orders = OrderStats(
        converted,
        converted * 40,
        converted * 2000,
        converted * np.log(40),
        converted * np.log(40) ** 2 + 50,
    )
    return experiment_from_counts(["a", "b"], [5000, 5000], converted)._replace(orders=orders)


@pytest.mark.parametrize("model", ["conjugate", "funnel", "revenue"])
def test_analysis_report_shows_the_model_that_was_fitted(model: str) -> None:
    import warnings

    from rich.console import Console
    from test_tables import numbers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = analyze(_model_data(model), "a", model, draws=150, tune=150, chains=2, seed=1)
        document = html_report.analysis_report(result)
        page = html_report.render_html(document)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning | UserWarning)]
    console = Console(width=400, record=True, color_system=None)
    report.print_analysis(result, console)
    shown = re.sub(r"<[^>]+>", " ", page.replace("<br>", "\n"))
    assert numbers(console.export_text()) <= numbers(shown)  # every terminal number
    titles = [s.title for s in document.sections]
    assert f"{model} model, decision on" in page
    assert ("Beta-Binomial" in page) == (model == "conjugate")
    assert ("Stage by stage" in titles) == (model == "funnel")
    metric = "revenue_per_visitor" if model == "revenue" else "conversion"
    assert f"uplift_{metric}" in [f.name for f in document.figures]
