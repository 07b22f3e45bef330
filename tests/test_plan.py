"""Test planning: the frequentist sample size, the simulated assurance curve, the CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import MINIMAL
from funnelsim.analysis.operating import (
    calibrate_loss_threshold,
    operating_characteristics,
    operating_dict,
    risk_rates,
    ship_rate,
)
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.experiment.readout import decision_rule
from funnelsim.planning import (
    PlanResult,
    first_sustained,
    plan_summary,
    plan_test,
    simulate_paths,
    two_proportion_sample_size,
)
from funnelsim.scenario import parse_scenario
from funnelsim.strategies import Truth, trial_seeds, z_statistics

# the checkout stage's rate 0.4 -> 0.5 lifts conversion from 20% to 25% (+25%)
AB = MINIMAL + (
    "variants:\n  control: {}\n  better: {stages.checkout.rate: 0.5}\n"
    "  same: {stages.checkout.dwell_min: 3}\n"
)


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_sample_size_gives_the_stated_power(ratio: float) -> None:
    """Simulate 4000 two-proportion z-tests at the computed size: the share significant
    is the power (0.8) within 4 binomial standard errors (4 x 0.0063) plus 0.01 for the
    normal approximation behind the formula."""
    p_control, p_variant = 0.10, 0.12
    size = two_proportion_sample_size(p_control, p_variant, 0.05, 0.8, ratio)
    assert size.variant == pytest.approx(ratio * size.control)
    n = np.array([math.ceil(size.control), math.ceil(size.variant)])
    rng = np.random.default_rng(42)
    conversions = rng.binomial(n, [p_control, p_variant], size=(4000, 2))
    z = np.array([z_statistics(n, x, 0)[1] for x in conversions])
    power = np.mean(np.abs(z) > 1.959964)
    assert abs(power - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 4000) + 0.01


def test_sample_size_textbook_value_and_no_effect() -> None:
    # Fleiss, Levin & Paik (2003) formula, 10% vs 12%, alpha 0.05, power 0.8: 3841 per arm
    assert math.ceil(two_proportion_sample_size(0.10, 0.12).control) == 3841
    assert math.isinf(two_proportion_sample_size(0.10, 0.10).control)


def test_simulated_paths_accumulate_daily_counts() -> None:
    truth = Truth(
        ("a", "b"), np.array([0.2, 0.25]), np.array([10.0, 12.5]), np.array([0.5, 0.5]), 1000.0, 10
    )
    visitors, conversions = simulate_paths(truth, 30, trial_seeds(1, 2, 1)[0])
    assert visitors.shape == conversions.shape == (30, 2)
    assert np.all(np.diff(visitors, axis=0) >= 0) and np.all(conversions <= visitors)
    # 30 days of Poisson(1000) visitors: mean 30000, sd 173
    assert abs(visitors[-1].sum() - 30000) < 4 * math.sqrt(30000)


@pytest.fixture(scope="module")
def better_plan() -> PlanResult:
    scenario = parse_scenario(AB).with_overrides({"traffic.visitors_per_day": 200})
    return plan_test(
        scenario,
        "better",
        0.9,
        simulations=150,
        max_days=12,
        lengths=12,
        truth_replications=4,
        execution=Execution(seed=3),
    )


def test_plan_curve_rises_to_the_target(better_plan: PlanResult) -> None:
    assert better_plan.uplift == pytest.approx(0.25, abs=0.03)
    correct = np.array([p.prob_correct.mean for p in better_plan.curve])
    assert correct[0] < 0.9 and better_plan.days_needed is not None
    needed = [p.days for p in better_plan.curve].index(better_plan.days_needed)
    assert np.all(correct[needed:] >= 0.9) and correct[needed - 1] < 0.9
    for point in better_plan.curve:
        shares = point.prob_ship_variant + point.prob_ship_control + point.prob_stop
        assert point.prob_decided == pytest.approx(shares)
        assert point.prob_correct.mean == pytest.approx(point.prob_ship_variant)
        assert point.visitors == point.days * 200


def test_frequentist_answer_stands_beside_it_at_the_same_risk(better_plan: PlanResult) -> None:
    """By default the z-test is one-sided at the false-ship target: it ships an identical
    variant as often as the calibrated rule may."""
    truth = better_plan.truth
    expected = two_proportion_sample_size(*truth.conversion, 0.05, 0.9, one_sided=True)
    assert better_plan.frequentist == expected
    assert better_plan.frequentist_days == pytest.approx(2 * expected.control / 200)
    assert better_plan.to_dict()["z_test"] == "one-sided"


def test_one_sided_size_ships_an_identical_variant_at_alpha() -> None:
    """4,000 A/A z-tests at the one-sided size for 10% vs 12%: the variant is
    significantly better in alpha = 5% of them (4 binomial SE), and the size reaches
    its power against the 12% variant."""
    size = two_proportion_sample_size(0.10, 0.12, 0.05, 0.8, one_sided=True)
    assert size.control < two_proportion_sample_size(0.10, 0.12, 0.05, 0.8).control
    n = np.full(2, math.ceil(size.control))
    rng = np.random.default_rng(5)
    for rates, expected in (([0.10, 0.10], 0.05), ([0.10, 0.12], 0.8)):
        conversions = rng.binomial(n, rates, size=(4000, 2))
        z = np.array([z_statistics(n, x, 0)[1] for x in conversions])
        share = np.mean(z > 1.644854)
        assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000) + 0.01


def test_each_length_reads_the_rule_calibrated_there(better_plan: PlanResult) -> None:
    """Every length's threshold is the one analyze calibrates at its visitors per arm;
    fresh A/A tests at the length the plan needs ship the variant at most 5% of the time
    (within 4 binomial SE of 2,000 runs)."""
    rule = decision_rule(parse_scenario(AB))
    thresholds = [p.loss_threshold for p in better_plan.curve]
    assert len(set(thresholds)) > 1 and all(t != rule.loss_threshold for t in thresholds)
    point = next(p for p in better_plan.curve if p.days == better_plan.days_needed)
    again = calibrate_loss_threshold(
        rule,
        baseline=float(better_plan.truth.conversion[0]),
        visitors_per_arm=round(point.days * 200 / 2),
        replications=8 * 150,
        seed=3,
    )
    assert point.loss_threshold == again.loss_threshold
    fresh = ship_rate(
        again,
        float(better_plan.truth.conversion[0]),
        0.0,
        100 * point.days,
        replications=2000,
        seed=99,
    )
    assert fresh.value < 0.05 + 4 * math.sqrt(0.05 * 0.95 / 2000)


def test_uncalibrated_plan_reads_the_scenarios_rule() -> None:
    scenario = parse_scenario(AB).with_overrides({"traffic.visitors_per_day": 200})
    plan = plan_test(
        scenario,
        "better",
        0.9,
        simulations=40,
        max_days=8,
        lengths=8,
        truth_replications=2,
        execution=Execution(seed=3),
        false_ship_target=None,
    )
    rule = decision_rule(scenario)
    assert {p.loss_threshold for p in plan.curve} == {rule.loss_threshold}
    assert plan.frequentist == two_proportion_sample_size(*plan.truth.conversion, 0.05, 0.9)
    assert "uncalibrated" in " ".join(plan_summary(plan))


def test_plan_is_reproducible_on_any_executor() -> None:
    scenario = parse_scenario(AB).with_overrides({"traffic.visitors_per_day": 200})
    args = dict(simulations=40, max_days=6, lengths=6, truth_replications=2)
    serial = plan_test(scenario, "better", **args, execution=Execution(seed=8))
    pooled = plan_test(scenario, "better", **args, execution=Execution(seed=8, workers=2))
    assert serial.curve == pooled.curve and serial.days_needed == pooled.days_needed
    assert np.array_equal(serial.truth.conversion, pooled.truth.conversion)


def test_a_variant_without_effect_is_correct_whatever_the_rule_decides() -> None:
    scenario = parse_scenario(AB)
    plan = plan_test(
        scenario,
        "same",
        simulations=40,
        max_days=4,
        lengths=4,
        truth_replications=2,
        execution=Execution(seed=1),
    )
    assert plan.uplift == 0.0 and math.isinf(plan.frequentist_days)
    for point in plan.curve:
        assert point.prob_correct.mean == pytest.approx(point.prob_decided)


def test_first_sustained_ignores_an_early_lucky_crossing() -> None:
    assert first_sustained(np.array([0.2, 0.96, 0.9, 0.95, 0.97]), 0.95) == 3
    assert first_sustained(np.array([0.96, 0.99]), 0.95) == 0
    assert first_sustained(np.array([0.96, 0.5]), 0.95) is None


def test_cli_plan_prints_both_answers_and_writes_files(write_scenario, tmp_path: Path) -> None:
    path = write_scenario(AB)
    args = [
        "plan",
        str(path),
        "--variant",
        "better",
        "--simulations",
        "30",
        "--max-days",
        "4",
        "--truth-replications",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Bayesian rule (loss threshold calibrated" in result.output
    assert "Frequentist z-test (one-sided" in result.output
    rows = list(csv.DictReader((tmp_path / "plan.csv").open()))
    assert [int(r["days"]) for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"
    assert CliRunner().invoke(main, args).exit_code == 2  # no overwrite without --force


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "control"], "is the control"),
        (["--variant", "better", "--false-ship-target", "2"], "rate between 0 and 1, or none"),
        (["--variant", "worse"], "--variant worse: no such variant"),
        (["--variant", "better", "--dask", "somewhere"], "--dask: expected 'local'"),
    ],
)
def test_cli_plan_errors_are_one_line(write_scenario, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["plan", str(write_scenario(AB)), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_docstring_examples_run() -> None:
    import doctest

    from funnelsim import planning

    assert doctest.testmod(planning).failed == 0


def test_plan_states_the_rules_risks_at_the_length_it_needs(better_plan: PlanResult) -> None:
    """The same three numbers as ``analyze``: the same rule, prior and size, A/A tests,
    a variant worse by twice the ROPE, and one better by the true uplift."""
    needed = better_plan.days_needed
    assert needed is not None and better_plan.risks is not None
    scenario = parse_scenario(AB)
    prior = (scenario.experiment.prior.alpha, scenario.experiment.prior.beta)
    baseline = float(better_plan.truth.conversion[0])
    calibrated = calibrate_loss_threshold(
        decision_rule(scenario),
        baseline=baseline,
        visitors_per_arm=round(needed * 200 / 2),
        replications=8 * 150,
        seed=3,
    )
    again = operating_characteristics(
        calibrated,
        baseline=baseline,
        visitors_per_arm=round(needed * 200 / 2),
        effect=better_plan.uplift,
        replications=150,
        seed=3,
        prior=prior,
    )._replace(target=0.05)
    assert better_plan.risks == again
    # The fixed-size simulation agrees with the plan's day-by-day one at that length
    # (Poisson traffic, the same truth) within Monte Carlo error of both.
    point = next(p for p in better_plan.curve if p.days == needed)
    best = again.ship_best.value
    assert point.prob_ship_variant == pytest.approx(
        best, abs=4 * math.sqrt(2 * best * (1 - best) / 150)
    )
    assert again.ship_best.value > again.false_ship.value > again.ship_worse.value
    assert better_plan.to_dict()["operating_characteristics"] == operating_dict(again)
    line = plan_summary(better_plan)[-1]
    assert line.startswith(f"Risks of the Bayesian rule at {needed} days")
    assert risk_rates(again) in line
