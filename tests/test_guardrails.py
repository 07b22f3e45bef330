"""Guardrails block a ship and name the metric; the probability of harm agrees with an
independent Beta posterior; Benjamini-Hochberg keeps the false discovery rate."""

import math

import numpy as np
import pytest

from funnelsim.analysis.decision import readout
from funnelsim.analysis.guardrails import MetricSpec, guard, metrics_readout
from funnelsim.analysis.moments import moments_from_values


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
