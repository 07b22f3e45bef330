"""Dwell times from an event log: a synthetic log with known dwell parameters moves
their posteriors to cover the truth, narrower than the priors, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from funnelsim.calibration.api import read_counts
from funnelsim.calibration.model import stage_dwells
from funnelsim.cli import main
from funnelsim.scenario import load_scenario, parse_scenario

SCENARIO = """name: timed
traffic: {visitors_per_day: 1000, days: 1}
stages:
  - name: landing
    rate: {uncertain: beta, mean: 0.5, sd: 0.2}
    dwell_min:
      dist: lognormal
      mean: {uncertain: normal, mean: 6, sd: 2}   # minutes on the landing page
      sd: {uncertain: uniform, low: 0.5, high: 5}
  - name: cart
    rate: 0.5
    dwell_min: {dist: exponential, mean: {uncertain: triangular, low: 1, mode: 4, high: 8}}
  - name: checkout
    rate: 0.8
    dwell_min: {dist: uniform, low: {uncertain: uniform, low: 0.5, high: 1}, high: 3}
value: {order_value: 50}
"""
TRUTH = {
    "stages.landing.dwell_min.mean": 4.0,
    "stages.landing.dwell_min.sd": 2.0,
    "stages.cart.dwell_min.mean": 3.0,
}
STAGE_MAP = "view=landing,add=cart,pay=checkout,order=converted"
VISITORS = 600
RATES = (0.6, 0.5, 0.8)


def event_log(seed: int) -> str:
    """Visitors through the funnel with the ``TRUTH`` dwells (lognormal landing,
    exponential cart, uniform(0.75, 3) checkout), in epoch seconds."""
    rng = np.random.default_rng(seed)
    sigma2 = np.log1p((TRUTH["stages.landing.dwell_min.sd"] / 4.0) ** 2)
    dwells = (
        lambda: rng.lognormal(np.log(4.0) - sigma2 / 2, np.sqrt(sigma2)),
        lambda: rng.exponential(TRUTH["stages.cart.dwell_min.mean"]),
        lambda: rng.uniform(0.75, 3.0),
    )
    rows = ["visitor_id,timestamp,event"]
    for visitor in range(VISITORS):
        moment = 1_800_000_000.0 + 3600.0 * visitor
        rows.append(f"v{visitor},{moment:.3f},view")
        for event, rate, dwell in zip(("add", "pay", "order"), RATES, dwells, strict=True):
            if rng.random() >= rate:
                break
            moment += 60.0 * dwell()
            rows.append(f"v{visitor},{moment:.3f},{event}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``funnelsim calibrate`` of the scenario to the event log: its output folder and
    what it printed."""
    folder = tmp_path_factory.mktemp("times")
    (folder / "timed.yaml").write_text(SCENARIO, encoding="utf-8")
    (folder / "events.csv").write_text(event_log(seed=5), encoding="utf-8")
    args = ["calibrate", str(folder / "timed.yaml"), "--data", str(folder / "events.csv")]
    args += ["--stage-map", STAGE_MAP, "--out", str(folder / "out")]
    args += ["--report", str(folder / "report.html"), "--draws", "500", "--chains", "2"]
    result = CliRunner().invoke(main, [*args, "--seed", "4"])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_only_uncertain_dwells_of_a_fitted_family_are_timed(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text(event_log(seed=1), encoding="utf-8")
    counts = read_counts(
        tmp_path / "events.csv", stage_map=dict(pair.split("=") for pair in STAGE_MAP.split(","))
    )
    dwells = stage_dwells(parse_scenario(SCENARIO), counts)
    assert [(d.stage, d.family) for d in dwells] == [
        ("landing", "lognormal"),
        ("cart", "exponential"),
    ]
    assert [a.key for d in dwells for a in d.fitted()] == list(TRUTH)
    assert len(dwells[0].minutes) == counts.reached[0, 1]  # every visitor who moved on


def test_dwell_posteriors_cover_the_truth_and_narrow_the_priors(
    calibrated: tuple[Path, str],
) -> None:
    folder, printed = calibrated
    report = json.loads((folder / "out" / "calibration.json").read_text())
    diagnostics = report["diagnostics"]
    assert diagnostics["divergences"] == 0 and diagnostics["r_hat_max"] < 1.05, diagnostics
    for key, truth in TRUTH.items():
        update = report["assumptions"][key]
        # 3.5 posterior sds: a miss has probability below 0.05% for a normal posterior
        assert abs(update["posterior_mean"] - truth) < 3.5 * update["posterior_sd"], (key, update)
        assert update["posterior_sd"] < update["prior_sd"], (key, update)
        assert update["narrowed"] > 0.3, (key, update)
        assert key in printed
    assert "stages.landing.rate" in report["assumptions"]
    # a uniform dwell's bounds are not fitted: kept at the prior, and why
    assert "stages.checkout.dwell_min.low" not in report["assumptions"]
    assert "dwell time" in report["not_calibrated"]["stages.checkout.dwell_min.low"]
    assert "dwell_min.mean" in (folder / "report.html").read_text()


def test_the_calibrated_scenario_carries_the_dwell_posteriors(
    calibrated: tuple[Path, str],
) -> None:
    folder, _ = calibrated
    report = json.loads((folder / "out" / "calibration.json").read_text())
    scenario = load_scenario(folder / "out" / "calibrated.yaml")
    by_key = {a.key: a for a in scenario.assumptions}
    for key in TRUTH:
        spec = by_key[key].spec
        assert spec.central == pytest.approx(report["assumptions"][key]["posterior_mean"], rel=1e-5)
