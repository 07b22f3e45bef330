"""`analyze --report` (HTML of a real experiment) and `analyze --transactions` (order logs)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

import funnelsim
from conftest import SCENARIOS
from funnelsim.cli import main


def _aggregated(path):
    path.write_text("variant,visitors,conversions\na,5000,400\nb,5000,460\n")
    return path


def test_analyze_writes_an_html_report_with_figures(tmp_path):
    data = _aggregated(tmp_path / "ab.csv")
    report, out = tmp_path / "report.html", tmp_path / "out"
    result = CliRunner().invoke(
        main, ["analyze", str(data), "--report", str(report), "--out", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "<img" in html and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html.replace("https://docs", "")
    assert list(out.glob("*.png"))
    again = CliRunner().invoke(main, ["analyze", str(data), "--report", str(report)])
    assert again.exit_code == 2 and "--force" in again.output


def test_library_analyze_matches_the_command(tmp_path):
    data = _aggregated(tmp_path / "ab.csv")
    result = funnelsim.analyze(data, control="a")
    by_name = {v.name: v for v in result.variants}
    assert by_name["b"].prob_beats_control > 0.95
    assert result.reliable


def _order_log(path, customers=120):
    """Customers of 'loyal' buy about twice as often as those of 'control' (one year)."""
    rng = np.random.default_rng(3)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["customer", "variant", "date", "amount"])
        for variant, orders_per_year in (("control", 2.0), ("loyal", 4.0)):
            for c in range(customers):
                first = int(rng.integers(0, 90))
                days = first + np.cumsum(rng.exponential(365 / orders_per_year, 8)).astype(int)
                for day in [first, *[d for d in days if d < 365]]:
                    date = np.datetime64("2025-01-01") + np.timedelta64(int(day), "D")
                    writer.writerow([f"{variant}{c}", variant, str(date), 30])
    return path


def test_transactions_give_repeat_purchase_and_clv_per_customer_and_per_visitor(tmp_path):
    """'loyal' customers are worth more, but 'loyal' won its 120 customers from three times
    as many visitors: CLV per customer favours it, CLV per visitor favours the control."""
    orders = _order_log(tmp_path / "orders.csv")
    visitors = tmp_path / "visitors.csv"
    visitors.write_text("variant,visitors,conversions\ncontrol,1000,120\nloyal,3000,120\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "analyze",
            str(orders),
            "--transactions",
            "--draws",
            "200",
            "--visitors",
            str(visitors),
            "--margin",
            "0.5",
            "--out",
            str(out),
            "--report",
            str(tmp_path / "orders.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "CLV per visitor" in result.output and "95% credible interval" in result.output
    html = (tmp_path / "orders.html").read_text()
    assert "CLV per customer" in html and "CLV per visitor" in html and "loyal" in html
    assert html.count("data:image/png;base64,") == 3  # repeat purchases, uplift, trace
    assert {p.name for p in out.glob("*.png")} == {
        "repeat_purchases.png",
        "uplift_clv_per_visitor.png",
        "diagnostics_trace.png",
    }
    document = json.loads((out / "results.json").read_text())
    control, loyal = document["variants"]["control"], document["variants"]["loyal"]
    assert loyal["repeat_purchases"]["mean"] > control["repeat_purchases"]["mean"]
    assert loyal["clv_per_customer"]["mean"] > control["clv_per_customer"]["mean"]
    assert loyal["prob_beats_control"] > 0.95
    assert (control["visitors"], loyal["visitors"]) == (1000, 3000)
    assert loyal["clv_per_visitor"]["prob_beats_control"] < 0.05
    assert control["clv_per_visitor"]["prob_best"] > 0.95
    assert loyal["uplift_vs_control"]["clv_per_visitor"]["high"] < 0
    for variant in (control, loyal):
        per_visitor = variant["clv_per_visitor"]
        assert per_visitor["low"] < per_visitor["mean"] < per_visitor["high"]
        # margin 0.5 x 30 per order x (1 + repeat purchases): at least half the order value
        assert variant["clv_per_customer"]["low"] >= 15.0
    assert isinstance(document["diagnostics"]["reliable"], bool)
    assert (out / "posterior.nc").stat().st_size > 0


def test_library_reads_an_order_log(tmp_path):
    """funnelsim.analyze_orders is the command's readout: it prints on one line and converts
    to the results.json document and a frame with one row per variant."""
    readout = funnelsim.analyze_orders(
        _order_log(tmp_path / "orders.csv", customers=60),
        visitors={"control": 500, "loyal": 500},
        draws=100,
    )
    assert readout.variants == ["control", "loyal"]
    assert "TransactionReadout(customers: control 60, loyal 60; per visitor yes" in repr(readout)
    assert "\n" not in repr(readout)
    document = readout.to_dict()
    assert json.dumps(document, allow_nan=False)
    frame = readout.to_frame()
    assert list(frame.index) == ["control", "loyal"]
    assert (
        frame.loc["loyal", "clv_per_visitor_mean"]
        == document["variants"]["loyal"]["clv_per_visitor"]["mean"]
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--visitors", "control=1000"], "no visitor count for variant 'loyal'"),
        (["--visitors", "control=1000,loyal=100"], "'loyal' has 100 visitors but 120 customers"),
        (["--visitors", "control=1000,other=5"], "variant 'other' is not in the order log"),
        (["--visitors", "control=many"], "expected NAME=COUNT"),
        (["--visitors", "control=1000,loyal=3000", "--control", "nobody"], "unknown control"),
        (["--model", "funnel"], "--model does not apply to --transactions"),
    ],
)
def test_transactions_refuse_bad_visitor_counts_before_fitting(tmp_path, arguments, message):
    orders = _order_log(tmp_path / "orders.csv")
    result = CliRunner().invoke(main, ["analyze", str(orders), "--transactions", *arguments])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_visitor_counts_need_transactions(tmp_path):
    result = CliRunner().invoke(
        main, ["analyze", str(_aggregated(tmp_path / "ab.csv")), "--visitors", "a=10"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == "error: --visitors applies only with --transactions"


def test_every_result_prints_readably_and_converts(tmp_path):
    analysis = funnelsim.analyze(_aggregated(tmp_path / "ab.csv"), control="a")
    swept = funnelsim.sweep(
        SCENARIOS / "checkout.yaml",
        {"stages.checkout.friction.form_fields": [6, 12]},
        variants=["control"],
        replications=2,
        execution=funnelsim.Execution(seed=1),
    )
    bench = funnelsim.bench(
        SCENARIOS / "checkout.yaml",
        ["fixed", "peeking"],
        replications=20,
        truth_replications=2,
        execution=funnelsim.Execution(seed=1),
    )
    for result, rows in ((analysis, 2), (swept, 2), (bench, 2)):
        assert type(result).__name__ in repr(result)
        assert "\n" not in repr(result)
        assert json.dumps(result.to_dict(), allow_nan=False)
        assert len(result.to_frame()) == rows
    frame = swept.to_frame()
    assert frame["conversion_mean"].iloc[0] > frame["conversion_mean"].iloc[1]
