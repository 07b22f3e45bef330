"""End to end: `funnelsim run` output, the results.json contract, and safe writing."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from conftest import SCENARIOS
from funnelsim.cli import main

QUICK = ["--replications", "4", "--days", "2", "--workers", "1"]
METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor")


@pytest.fixture(scope="module")
def checkout_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = CliRunner().invoke(
        main, ["run", str(SCENARIOS / "checkout.yaml"), *QUICK, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return result.output, out


def test_run_prints_both_tables(checkout_results):
    output, _ = checkout_results
    assert "Expected effect" in output and "A/B test of 2 days" in output
    for name in ("control", "guest_checkout", "short_form", "extra_payment"):
        assert name in output
    assert "changes" in output and "checkout" in output


def test_results_json_contract(checkout_results):
    _, out = checkout_results
    data = json.loads((out / "results.json").read_text())
    assert data["control"] == "control"
    for name, variant in data["variants"].items():
        for metric in METRICS:
            interval = variant[metric]
            assert interval["low"] <= interval["mean"] <= interval["high"]
        if name == "control":
            continue
        for metric in METRICS:
            uplift = variant["uplift_vs_control"][metric]
            assert set(uplift) >= {"mean", "low", "high", "interval", "level", "monte_carlo"}
            assert set(uplift["monte_carlo"]) == {"mean", "low", "high", "level"}
        experiment = variant["experiment"]
        assert 0 <= experiment["prob_beats_control"] <= 1
        assert 0 <= experiment["prob_best"] <= 1
        assert experiment["expected_loss"] >= 0
        assert experiment["decision"] in ("ship", "stop", "keep_testing")
    assert data["variants"]["short_form"]["uplift_vs_control"]["conversion"]["mean"] > 0.1


def test_summary_csv_has_a_row_per_variant(checkout_results):
    _, out = checkout_results
    with (out / "summary.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [r["variant"] for r in rows] == [
        "control",
        "guest_checkout",
        "short_form",
        "extra_payment",
    ]
    assert float(rows[2]["uplift_conversion_mean"]) > 0


def test_existing_results_need_force(checkout_results):
    _, out = checkout_results
    before = (out / "results.json").read_bytes()
    result = CliRunner().invoke(
        main, ["run", str(SCENARIOS / "checkout.yaml"), *QUICK, "--out", str(out)]
    )
    assert result.exit_code == 2
    assert result.output.strip().endswith("use --force to overwrite")
    assert (out / "results.json").read_bytes() == before


def test_quiet_prints_nothing_and_json_prints_the_document(tmp_path):
    runner = CliRunner()
    quiet = runner.invoke(main, ["run", str(SCENARIOS / "page_speed.yaml"), *QUICK, "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""
    as_json = runner.invoke(main, ["run", str(SCENARIOS / "page_speed.yaml"), *QUICK, "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["variants"]["faster_mobile"]["conversion"]["mean"] > 0


def test_cli_overrides_and_events(tmp_path):
    events = tmp_path / "events.csv"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(SCENARIOS / "lead_response.yaml"),
            "--replications",
            "2",
            "--days",
            "1",
            "--visitors-per-day",
            "100",
            "--seed",
            "3",
            "--workers",
            "1",
            "-q",
            "--events",
            str(events),
        ],
    )
    assert result.exit_code == 0, result.output
    with events.open() as stream:
        rows = list(csv.DictReader(stream))
    assert {r["variant"] for r in rows} == {"control", "instant_reply", "one_more_rep"}
    assert {r["stage"] for r in rows} >= {"landing"}
    assert all(float(r["left_min"]) >= float(r["entered_min"]) for r in rows)
    assert any(r["outcome"].startswith("lost:") for r in rows)


def test_bad_scenario_exits_2_with_one_line(write_scenario):
    path = write_scenario("name: x\ntraffic: {visitors_per_day: -1, days: 1}\n")
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"error: {path}:2: traffic.visitors_per_day:")
