"""Operating characteristics of the decision rule, and its calibration to a target A/A
false-ship rate."""

import html
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binom, norm

from funnelsim.analysis.api import analyze, experiment_from_counts, results_dict
from funnelsim.analysis.decision import DecisionRule
from funnelsim.analysis.operating import (
    RiskRequest,
    calibrate_loss_threshold,
    operating_characteristics,
    risk_line,
    ship_rate,
    stated_risks,
    wilson,
)
from funnelsim.cli.readouts import analyze as analyze_command

BASELINE, VISITORS = 0.05, 4000


def _tolerance(rate: float, trials: int) -> float:
    return 4 * math.sqrt(rate * (1 - rate) / trials)


def test_a_rule_that_ships_any_leader_ships_half_of_the_non_ties() -> None:
    """With an unbounded loss threshold and too few visitors to stop for equivalence,
    the rule ships B exactly when B has more conversions: (1 - P(tie)) / 2."""
    rule = DecisionRule(loss_threshold=1e6)
    pmf = binom.pmf(np.arange(201), 200, 0.1)
    exact = (1 - float((pmf**2).sum())) / 2
    measured = ship_rate(rule, 0.1, 0.0, 200, replications=4000, seed=1)
    assert measured.value == pytest.approx(exact, abs=_tolerance(exact, 4000))


def test_default_rule_ships_identical_arms_too_often_and_calibration_fixes_it() -> None:
    default = operating_characteristics(
        baseline=BASELINE, visitors_per_arm=VISITORS, effect=0.15, replications=2000, seed=2
    )
    assert default.false_ship.low > 0.05  # the audit's finding, at this size
    calibrated = calibrate_loss_threshold(
        baseline=BASELINE, visitors_per_arm=VISITORS, target=0.05, replications=4000, seed=3
    )
    assert calibrated.loss_threshold < default.rule.loss_threshold
    fresh = operating_characteristics(
        calibrated, baseline=BASELINE, visitors_per_arm=VISITORS, effect=0.15, seed=4
    )
    assert fresh.false_ship.value <= 0.05 + _tolerance(0.05, fresh.replications)
    assert fresh.ship_worse.value <= fresh.false_ship.value
    # At equal A/A risk the calibrated rule finds a 15% lift at least as often as the
    # two-sided z-test at 5% (its analytic power), within Monte Carlo error.
    lift = BASELINE * 0.15
    se = math.sqrt((BASELINE * (1 - BASELINE) + BASELINE * 1.15 * (1 - BASELINE * 1.15)) / VISITORS)
    z_power = float(norm.sf(norm.ppf(0.975) - lift / se))
    assert fresh.ship_best.value >= z_power - _tolerance(z_power, fresh.replications)


def test_calibration_keeps_a_rule_that_already_meets_the_target() -> None:
    strict = DecisionRule(loss_threshold=1e-9)
    assert calibrate_loss_threshold(
        strict, baseline=0.1, visitors_per_arm=500, replications=200
    ).loss_threshold == pytest.approx(
        calibrate_loss_threshold(
            baseline=0.1, visitors_per_arm=500, replications=200
        ).loss_threshold
    )


def test_wilson_interval_matches_the_closed_form() -> None:
    rate = wilson(0, 100)
    assert rate.low == pytest.approx(0.0, abs=1e-12)
    z = norm.ppf(0.975)
    assert rate.high == pytest.approx(z**2 / (100 + z**2), rel=1e-9)


def test_worse_variant_must_be_outside_the_rope() -> None:
    with pytest.raises(ValueError, match="must exceed the ROPE"):
        operating_characteristics(baseline=0.1, visitors_per_arm=100, effect=0.1, worse_by=0.005)


def test_analyze_states_the_risks_of_its_calibrated_rule() -> None:
    visitors, conversions = [3000, 3000], [300, 345]
    data = experiment_from_counts(["A", "B"], visitors, conversions)
    result = analyze(data, risks=RiskRequest(target=0.05, replications=400))
    found = result.operating
    assert found is not None and found.visitors_per_arm == 3000 and found.baseline == 0.1
    assert result.rule == found.rule != DecisionRule()  # the decision used the calibrated rule
    assert found.false_ship.value <= 0.05 + _tolerance(0.05, 400)
    document = results_dict(result)["operating_characteristics"]
    assert document["false_ship"] == found.false_ship._asdict()
    assert document["loss_threshold"] == found.rule.loss_threshold
    assert risk_line(found).startswith(
        f"Risks of this rule (loss threshold {found.rule.loss_threshold:.2%} of the control's "
        "rate, calibrated to 5% under A/A) at 3,000 visitors"
    )


def _flat(text: str) -> str:
    """Text with its line wrapping undone (the terminal wraps long notes)."""
    return " ".join(text.split())


def test_analyze_states_the_default_rules_risks_in_terminal_json_and_report(
    tmp_path: Path,
) -> None:
    """Without any option, the readout states P(ship) under A/A, for a worse and for a
    better variant, and the terminal, results.json and the HTML report carry the same
    simulation (the rule's own risks at the data's size and control rate, seed 0)."""
    data = tmp_path / "ab.csv"
    data.write_text("variant,visitors,conversions\na,10000,1000\nb,10000,1060\n")
    out, page = tmp_path / "out", tmp_path / "report.html"
    result = CliRunner().invoke(
        analyze_command, [str(data), "--out", str(out), "--report", str(page)]
    )
    assert result.exit_code == 0, result.output
    rule, expected = stated_risks(DecisionRule(), RiskRequest(0.05), 0.1, 10_000, seed=0)
    assert expected is not None and expected.rule == rule
    line = risk_line(expected)
    assert line in _flat(result.stdout)
    assert line in _flat(html.unescape(page.read_text()))
    document = json.loads((out / "results.json").read_text())["operating_characteristics"]
    assert document["false_ship"] == expected.false_ship._asdict()
    assert document["ship_worse"] == expected.ship_worse._asdict()
    assert document["ship_best"] == expected.ship_best._asdict()
    assert document["calibrated_to"] == 0.05


def test_the_library_states_the_same_risks_as_the_command_by_default(tmp_path: Path) -> None:
    """``funnelsim.analyze`` without ``risks`` calibrates and states the risks as the
    command does; ``risks=None`` reads the rule as given."""
    import funnelsim

    data = tmp_path / "ab.csv"
    data.write_text(AB_10K)
    command = CliRunner().invoke(analyze_command, [str(data), "--json"])
    assert command.exit_code == 0, command.output
    expected = json.loads(command.stdout)["operating_characteristics"]
    result = funnelsim.analyze(data)
    assert results_dict(result)["operating_characteristics"] == expected
    assert expected["calibrated_to"] == 0.05
    plain = funnelsim.analyze(data, risks=None)
    assert plain.operating is None and plain.rule == DecisionRule()


def test_no_risks_skips_the_simulation(tmp_path: Path) -> None:
    data = tmp_path / "ab.csv"
    data.write_text("variant,visitors,conversions\na,10000,1000\nb,10000,1060\n")
    result = CliRunner().invoke(analyze_command, [str(data), "--no-risks", "--json"])
    assert result.exit_code == 0, result.output
    assert "operating_characteristics" not in json.loads(result.stdout)


AB_10K = "variant,visitors,conversions\na,10000,1000\nb,10000,1060\n"


def _rule_of(tmp_path: Path, *options: str) -> dict[str, float]:
    data = tmp_path / "ab.csv"
    data.write_text(AB_10K)
    result = CliRunner().invoke(analyze_command, [str(data), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["rule"]


def test_the_default_rule_ships_an_aa_test_at_most_5_percent_of_the_time(
    tmp_path: Path,
) -> None:
    """The default threshold is calibrated at the data's size: a fresh simulation of
    2,000 A/A tests (independent of the 1,000 it was calibrated on) ships at most 5%
    within the Monte Carlo error of both."""
    rule = DecisionRule(**_rule_of(tmp_path))
    assert rule.loss_threshold < DecisionRule().loss_threshold
    fresh = ship_rate(rule, 0.1, 0.0, 10_000, replications=2000, seed=7)
    se = math.sqrt(0.05 * 0.95 * (1 / 1000 + 1 / 2000))
    assert fresh.value <= 0.05 + 3 * se
    uncalibrated = ship_rate(DecisionRule(), 0.1, 0.0, 10_000, replications=2000, seed=7)
    assert uncalibrated.low > 0.05 + 3 * se  # what the calibration changes


def test_false_ship_target_none_keeps_the_expected_loss_rule(tmp_path: Path) -> None:
    assert _rule_of(tmp_path, "--false-ship-target", "none") == DecisionRule()._asdict()
    assert (
        _rule_of(tmp_path, "--false-ship-target", "0.01")["loss_threshold"]
        < (_rule_of(tmp_path)["loss_threshold"])
    )


@pytest.mark.parametrize("text", ["0", "1.5", "often"])
def test_a_bad_false_ship_target_is_one_line(tmp_path: Path, text: str) -> None:
    data = tmp_path / "ab.csv"
    data.write_text(AB_10K)
    result = CliRunner().invoke(analyze_command, [str(data), "--false-ship-target", text])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: --false-ship-target {text!r}: give a rate between 0 and 1, or none\n"
    )
