"""The batch two-arm rule equals the one-experiment rule of ``decide``."""

from __future__ import annotations

import numpy as np
import pytest

from funnelsim.analysis.conjugate import beta_posteriors, expected_loss, posterior_mean
from funnelsim.analysis.decision import DecisionRule, decide
from funnelsim.analysis.two_arm import (
    KEEP_TESTING,
    SHIP_CONTROL,
    SHIP_VARIANT,
    STOP,
    two_arm_decisions,
    two_arm_losses,
    variant_loss_ratios,
)

CODES = {("keep_testing", None): KEEP_TESTING, ("stop", None): STOP}


def _experiments(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-arm counts from 0 to millions of visitors, rates near 0, middling and near 1."""
    rng = np.random.default_rng(seed)
    visitors = rng.integers(0, 10 ** rng.integers(1, 7, (count, 1)), (count, 2))
    rates = rng.choice([0.001, 0.03, 0.3, 0.97], (count, 1)) * rng.uniform(0.9, 1.1, (count, 2))
    return visitors, rng.binomial(visitors, np.clip(rates, 0, 1))


@pytest.mark.parametrize("prior", [(1.0, 1.0), (0.5, 0.5)])
def test_losses_match_the_exact_quadrature(prior: tuple[float, float]) -> None:
    visitors, conversions = _experiments(300, seed=3)
    posts = [beta_posteriors(n, x, *prior) for n, x in zip(visitors, conversions, strict=True)]
    batch = two_arm_losses([p.alpha for p in posts], [p.beta for p in posts])
    exact = np.array([expected_loss(p) for p in posts])
    # Both are quadratures accurate to about 1e-9 absolute (conjugate.prob_best's tests).
    np.testing.assert_allclose(batch, exact, rtol=1e-7, atol=1e-8)


def _decide_code(n: np.ndarray, x: np.ndarray, rule: DecisionRule) -> int:
    verdict = decide(beta_posteriors(n, x), 0, rule)
    if verdict.index is None:
        return CODES[(verdict.action, None)]
    return SHIP_CONTROL if verdict.index == 0 else SHIP_VARIANT


@pytest.mark.parametrize(
    "rule",
    [DecisionRule(), DecisionRule(loss_threshold=0.0005), DecisionRule(rope=0.2)],
)
def test_decisions_match_decide(rule: DecisionRule) -> None:
    visitors, conversions = _experiments(400, seed=11)
    batch = two_arm_decisions(visitors, conversions, rule)
    single = [_decide_code(n, x, rule) for n, x in zip(visitors, conversions, strict=True)]
    assert batch.tolist() == single
    assert {KEEP_TESTING, SHIP_VARIANT, SHIP_CONTROL} <= set(single)
    if rule.rope == 0.2:
        assert STOP in single


def test_loss_ratio_ships_exactly_below_the_threshold() -> None:
    visitors, conversions = _experiments(300, seed=5)
    rule = DecisionRule()
    ratios = variant_loss_ratios(visitors, conversions, rule)
    ships = two_arm_decisions(visitors, conversions, rule) == SHIP_VARIANT
    assert np.array_equal(ratios < rule.loss_threshold, ships)
    finite = np.isfinite(ratios)
    posts = [
        beta_posteriors(n, x) for n, x in zip(visitors[finite], conversions[finite], strict=True)
    ]
    exact = [expected_loss(p)[1] / posterior_mean(p)[0] for p in posts]
    np.testing.assert_allclose(ratios[finite], exact, rtol=1e-6, atol=1e-10)
