"""Guardrails block a ship and name the metric; the probability of harm agrees with an
independent Beta posterior; Benjamini-Hochberg keeps the false discovery rate."""

import csv
import math

import numpy as np
import pytest
from scipy.stats import ttest_ind

from conftest import SHARED_DATA
from funnelsim.analysis.decision import Decision, readout
from funnelsim.analysis.guardrails import MetricSpec, guard, metrics_readout
from funnelsim.analysis.moments import moments_from_values
from funnelsim.analysis.sources import read_moments


def _experiment(seed: int, n: int = 20_000):
    """B converts better (10% -> 12%) but retains worse (40% -> 37%); pages unchanged."""
    rng = np.random.default_rng(seed)
    arm = np.repeat(["A", "B"], n)
    bought = rng.random(2 * n) < np.where(arm == "B", 0.12, 0.10)
    retained = rng.random(2 * n) < np.where(arm == "B", 0.37, 0.40)
    pages = rng.poisson(5.0, 2 * n)
    return arm, np.c_[bought, retained, pages].astype(float)


SPECS = [
    MetricSpec("bought", "primary"),
    MetricSpec("retained", "guardrail", threshold=0.02),
    MetricSpec("pages", "guardrail", threshold=0.05),
]


def test_guardrail_blocks_the_ship_and_names_the_metric() -> None:
    arm, values = _experiment(1)
    m = moments_from_values(arm, values, ["bought", "retained", "pages"])
    primary = readout(["A", "B"], m.count, m.sums[:, 0], "A")
    assert (primary.decision.action, primary.decision.variant) == ("ship", "B")
    metrics = metrics_readout(m, SPECS, "A")
    decision = guard(primary.decision, metrics)
    assert decision.action == "keep_testing"
    assert decision.reason.startswith("Ship of B blocked by guardrail retained (P(harm")
    assert "pages" not in decision.reason.split(":")[0]
    pages = next(e for e in metrics.effects if e.metric == "pages")
    assert not pages.blocks


def test_keeping_the_control_is_never_blocked() -> None:
    arm, values = _experiment(2)
    m = moments_from_values(arm, values, ["bought", "retained", "pages"])
    metrics = metrics_readout(m, SPECS, "A")
    keep = readout(["A", "B"], [20_000, 20_000], [2400, 2000], "A").decision
    assert keep.variant == "A"
    assert guard(keep, metrics) == keep


def test_harm_probability_agrees_with_an_independent_beta_posterior() -> None:
    arm, values = _experiment(3)
    m = moments_from_values(arm, values, ["bought", "retained", "pages"])
    effect = next(e for e in metrics_readout(m, SPECS, "A").effects if e.metric == "retained")
    n, k = m.count, m.sums[:, 1]
    rng = np.random.default_rng(4)
    draws = 400_000
    ratio = rng.beta(k[1] + 1, n[1] - k[1] + 1, draws) / rng.beta(k[0] + 1, n[0] - k[0] + 1, draws)
    monte_carlo = float((ratio - 1 < -0.02).mean())
    # Normal approximation vs exact Beta at 20,000 visitors: agree to 0.01, plus 4 MC SE.
    se = math.sqrt(monte_carlo * (1 - monte_carlo) / draws)
    assert effect.prob_harm == pytest.approx(monte_carlo, abs=0.01 + 4 * se)


def test_lower_is_better_metric_is_harmed_by_a_rise() -> None:
    rng = np.random.default_rng(5)
    arm = np.repeat(["A", "B"], 10_000)
    refunds = rng.random(20_000) < np.where(arm == "B", 0.06, 0.04)
    m = moments_from_values(arm, refunds.astype(float), ["refunded"])
    spec = MetricSpec("refunded", "guardrail", higher_is_better=False, threshold=0.05)
    effect = metrics_readout(m, [spec], "A").effects[0]
    assert effect.prob_harm > 0.99
    assert effect.blocks


def test_benjamini_hochberg_controls_the_false_discovery_rate() -> None:
    """Ten metrics, two with real effects, 400 readouts: the mean share of false
    discoveries among discoveries stays at or below 5% (within 4 binomial SE)."""
    rng = np.random.default_rng(6)
    readouts, n, metrics = 400, 2000, 10
    arm = np.repeat(["A", "B"], n)
    shift = np.where(np.arange(metrics) < 2, 0.2, 0.0)
    specs = [MetricSpec(f"m{i}") for i in range(metrics)]
    false_share, discoveries = [], 0
    for _ in range(readouts):
        values = rng.normal(0, 1, (2 * n, metrics)) + 10 + np.outer(arm == "B", shift)
        m = moments_from_values(arm, values, [s.column for s in specs])
        found = metrics_readout(m, specs, "A").significant()
        discoveries += len(found)
        false_share.append(sum(e.metric not in ("m0", "m1") for e in found) / max(len(found), 1))
    assert discoveries >= 2 * readouts * 0.9  # the real effects are found
    assert np.mean(false_share) <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / readouts)


COOKIE_CATS = SHARED_DATA / "cookie_cats.csv"


@pytest.mark.skipif(not COOKIE_CATS.exists(), reason="../shared/data/cookie_cats.csv absent")
def test_cookie_cats_retention_7_with_two_guardrails_in_one_call() -> None:
    """Cookie Cats (gate_30 control, gate_40 variant): retention_7 primary, retention_1 and
    sum_gamerounds guardrails, read by DuckDB in one call; every number is checked against
    an independent pass of Python's csv module and scipy's Welch t-test."""
    pytest.importorskip("duckdb")
    specs = [
        MetricSpec("retention_7", "primary"),
        MetricSpec("retention_1", "guardrail"),
        MetricSpec("sum_gamerounds", "guardrail", threshold=0.05),
    ]
    moments = read_moments(str(COOKIE_CATS), "version", [s.column for s in specs])
    result = metrics_readout(moments, specs, "gate_30")
    columns: dict[str, dict[str, list[float]]] = {s.column: {} for s in specs}
    with COOKIE_CATS.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for spec in specs:
                value = row[spec.column]
                number = {"TRUE": 1.0, "FALSE": 0.0}.get(value)
                number = float(value) if number is None else number
                columns[spec.column].setdefault(row["version"], []).append(number)
    assert moments.count.tolist() == [len(columns["retention_1"][g]) for g in moments.arms]
    assert moments.count.tolist() == [44_700, 45_489]  # the published group sizes
    for effect in result.effects:
        control, variant = columns[effect.metric]["gate_30"], columns[effect.metric]["gate_40"]
        assert effect.control_mean == pytest.approx(math.fsum(control) / len(control), rel=1e-12)
        assert effect.variant_mean == pytest.approx(math.fsum(variant) / len(variant), rel=1e-12)
        assert effect.uplift.value == pytest.approx(
            effect.variant_mean / effect.control_mean - 1, rel=1e-12
        )
        welch = ttest_ind(variant, control, equal_var=False)
        assert effect.p_value == pytest.approx(welch.pvalue, rel=1e-3)  # t with 90k df ~ normal
    retention_1 = result.effects[1]
    assert retention_1.control_mean == pytest.approx(0.4482, abs=5e-5)  # published 44.8%
    assert retention_1.variant_mean == pytest.approx(0.4423, abs=5e-5)  # published 44.2%
    # gate_40 loses 1.3% of day-1 retention: P(a loss beyond 1%) is about 0.7 -> it blocks.
    assert retention_1.blocks and retention_1.prob_harm > 0.5
    ship = guard(Decision("ship", "gate_40", "Ship gate_40: test.", 1), result)
    assert ship.action == "keep_testing" and "guardrail retention_1" in ship.reason
