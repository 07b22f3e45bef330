"""Past experiments as calibration data: a "12 vs 8 fields" test informs the form-field
coefficient, a past A/B of a variant informs that variant's own effect assumption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from funnelsim.calibration.model import (
    FunnelTerms,
    continue_probabilities,
    control_of,
    funnel_terms,
)
from funnelsim.cli import main
from funnelsim.scenario import Scenario, load_scenario, parse_scenario

PAST_TESTS = """name: past tests
seed: 1
traffic: {visitors_per_day: 3000, days: 1}
stages:
  - name: product
    rate: {uncertain: beta, mean: 0.4, sd: 0.15}
  - name: checkout
    rate: {uncertain: beta, mean: 0.7, sd: 0.15}
    friction: {form_fields: 12}
value: {order_value: 50}
variants:
  control: {}
  new_copy: {stages.product.rate: {uncertain: beta, mean: 0.4, sd: 0.15}}
"""
HAZARD = "coefficients.form_fields.hazard_per_field"
EFFECT = "variants.new_copy.stages.product.rate"
TRUTH = {
    "stages.product.rate": 0.35,
    "stages.checkout.rate": 0.8,
    HAZARD: 0.052,
    EFFECT: 0.42,
}
FIELDS_TEST = """data: fields_test.csv
arm_column: arm
arms:
  long: control                                       # 12 fields, as the scenario
  short: {stages.checkout.friction.form_fields: 8}    # the fields beyond 8 removed
"""
COPY_TEST = """data: copy_test.csv
arm_column: group
per_visitor: true
stage_columns: [product, checkout, purchased]
arms: {a: control, b: new_copy}
"""


def _reached(terms: FunnelTerms, top: int, rng: np.random.Generator) -> list[int]:
    """Visitors reaching each stage and converting, at the true values (one cell)."""
    values = terms.values.copy()
    for slot, assumption in terms.fitted():
        values[slot] = TRUTH[assumption.key]
    p = continue_probabilities(values, terms)
    reached = [top]
    for s in range(len(terms.stages)):
        reached.append(int(rng.binomial(reached[-1], p[s, 0, 0])))
    return reached


def _write_data(folder: Path, scenario: Scenario) -> None:
    rng = np.random.default_rng(5)
    control = funnel_terms(control_of(scenario))
    counts = "product,checkout,purchase\n" + ",".join(map(str, _reached(control, 20000, rng)))
    (folder / "counts.csv").write_text(counts + "\n", encoding="utf-8")
    short = funnel_terms(
        control_of(scenario.with_overrides({"stages.checkout.friction.form_fields": 8}))
    )
    rows = ["arm,product,checkout,purchase"]
    for arm, terms in (("long", control), ("short", short)):
        for _day in range(2):  # two rows per arm, summed
            rows.append(",".join([arm, *map(str, _reached(terms, 25000, rng))]))
    (folder / "fields_test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    visitors = ["group,product,checkout,purchased"]
    new_copy = funnel_terms(scenario.variant("new_copy"))
    for group, terms in (("a", control), ("b", new_copy)):
        product, checkout, purchased = _reached(terms, 8000, rng)
        flags = [(1, 1, 1)] * purchased + [(1, 1, 0)] * (checkout - purchased)
        flags += [(1, 0, 0)] * (product - checkout)
        visitors += [f"{group},{a},{b},{c}" for a, b, c in flags]
    (folder / "copy_test.csv").write_text("\n".join(visitors) + "\n", encoding="utf-8")
    (folder / "fields_test.yaml").write_text(FIELDS_TEST, encoding="utf-8")
    (folder / "copy_test.yaml").write_text(COPY_TEST, encoding="utf-8")
    (folder / "past.yaml").write_text(PAST_TESTS, encoding="utf-8")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``funnelsim calibrate`` with both past experiments: the output folder."""
    folder = tmp_path_factory.mktemp("experiments")
    _write_data(folder, parse_scenario(PAST_TESTS))
    out = folder / "out"
    args = ["calibrate", str(folder / "past.yaml"), "--data", str(folder / "counts.csv")]
    args += ["--experiments", str(folder / "fields_test.yaml")]
    args += ["--experiments", str(folder / "copy_test.yaml")]
    args += ["--out", str(out), "--draws", "400", "--chains", "2", "--seed", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def _covers(update: dict[str, float], truth: float) -> bool:
    """The truth within 4 posterior sd of the posterior mean: a calibrated posterior
    misses it with probability below 1e-4 (the 90% interval, tested over many fits by
    the simulation-based calibration, misses it 10% of the time)."""
    return abs(update["posterior_mean"] - truth) < 4 * update["posterior_sd"]


def test_a_past_form_test_informs_the_form_field_coefficient(calibrated: Path) -> None:
    report = json.loads((calibrated / "calibration.json").read_text())
    assert report["diagnostics"]["divergences"] == 0
    hazard = report["assumptions"][HAZARD]
    assert _covers(hazard, TRUTH[HAZARD]), hazard
    assert hazard["posterior_sd"] < hazard["prior_sd"] / 3
    for key in ("stages.product.rate", "stages.checkout.rate"):
        assert _covers(report["assumptions"][key], TRUTH[key]), key


def test_a_past_ab_test_informs_the_variants_effect(calibrated: Path) -> None:
    report = json.loads((calibrated / "calibration.json").read_text())
    effect = report["assumptions"][EFFECT]
    assert _covers(effect, TRUTH[EFFECT]), effect
    assert effect["narrowed"] > 0.8
    # load_scenario: calibrated.yaml names posterior.nc beside it
    scenario = load_scenario(calibrated / "calibrated.yaml")
    specs = {a.key: a.spec for a in scenario.variant("new_copy").assumptions}
    assert specs[EFFECT].mean == pytest.approx(effect["posterior_mean"], rel=1e-5)
    assert specs[HAZARD].mean == pytest.approx(
        report["assumptions"][HAZARD]["posterior_mean"], rel=1e-5
    )


def test_every_arm_gets_a_posterior_predictive_check(calibrated: Path) -> None:
    report = json.loads((calibrated / "calibration.json").read_text())
    checks = report["experiments_posterior_predictive"]
    assert sorted(checks) == ["copy_test:a", "copy_test:b", "fields_test:long", "fields_test:short"]
    assert checks["fields_test:long"][0]["observed"] == 50000
    # 4 arms x 2 replicated counts at 90%: 3 or more outside has probability 4%
    outside = [row for rows in checks.values() for row in rows if row["outside"]]
    assert len(outside) <= 2, outside


def test_an_arm_naming_no_variant_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    _write_data(tmp_path, parse_scenario(PAST_TESTS))
    (tmp_path / "bad.yaml").write_text(FIELDS_TEST.replace("long: control", "long: contrl"))
    args = ["calibrate", str(tmp_path / "past.yaml"), "--data", str(tmp_path / "counts.csv")]
    args += ["--experiments", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {tmp_path / 'bad.yaml'}:3: arms.long: no variant 'contrl' in the scenario "
        "(control, new_copy)"
    )
    assert not (tmp_path / "out").exists()
