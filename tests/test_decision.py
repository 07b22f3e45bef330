"""Tests of the readout, the ship / stop / keep-testing rule and the sample ratio check."""

import math

import numpy as np
import pytest
from scipy.stats import chi2 as chi2_distribution

from funnelsim.analysis.conjugate import (
    RevenueStats,
    beta_posteriors,
    credible_interval,
    expected_loss,
    expected_loss_draws,
    posterior_mean,
    prob_beats,
    prob_best,
    prob_best_draws,
    prob_in_rope,
    revenue_per_visitor_draws,
)
from funnelsim.analysis.decision import (
    RATE_LEVEL,
    DecisionRule,
    decide_on_draws,
    readout,
    revenue_readout,
    sample_ratio_mismatch,
)


def _assert_all_finite(result: tuple) -> None:
    for item in result:
        values = [v for v in item if isinstance(v, float)]
        assert values
        assert all(math.isfinite(v) for v in values), item


def test_clear_winner_ships() -> None:
    result = readout(["A", "B"], [10_000, 10_000], [1000, 1200], control="A")
    assert result.decision.action == "ship"
    assert result.decision.variant == "B"
    assert result.decision.reason.startswith("Ship B:")
    assert result.variants[1].prob_best > 0.999


def test_clearly_best_control_is_kept() -> None:
    result = readout(["A", "B"], [10_000, 10_000], [1200, 1000], control="A")
    assert result.decision == result.decision._replace(action="ship", variant="A")
    assert result.decision.reason.startswith("Keep A:")


def test_ship_threshold_is_relative_to_the_control_mean() -> None:
    """The loss rule switches exactly at loss_threshold * control posterior mean."""
    names, visitors, conversions = ["A", "B"], [3000, 3000], [300, 330]
    post = beta_posteriors(visitors, conversions)
    ratio = expected_loss(post).min() / posterior_mean(post)[0]
    above = DecisionRule(loss_threshold=ratio * 1.001)
    below = DecisionRule(loss_threshold=ratio * 0.999)
    assert readout(names, visitors, conversions, "A", above).decision.action == "ship"
    assert readout(names, visitors, conversions, "A", below).decision.action == "keep_testing"


def test_identical_huge_samples_stop_on_equivalence() -> None:
    """Ten million visitors per arm and equal conversions: P(|uplift| < 1%) is about 1,
    so the rule stops (no practical difference) whatever the loss threshold: equivalence
    is checked before the expected loss."""
    visitors, conversions = [10**7] * 3, [10**6] * 3
    for rule in (DecisionRule(loss_threshold=1e-4), DecisionRule()):
        result = readout(["A", "B", "C"], visitors, conversions, control="A", rule=rule)
        assert result.decision.action == "stop"
        assert result.decision.variant is None
        assert all(v.prob_in_rope > 0.95 for v in result.variants)


def test_tiny_samples_keep_testing() -> None:
    result = readout(["A", "B"], [20, 20], [2, 3], control="A")
    assert result.decision.action == "keep_testing"
    assert result.decision.variant is None
    assert "Keep testing" in result.decision.reason


@pytest.mark.parametrize(
    ("visitors", "conversions", "action", "variant"),
    [
        ([10_000, 10_000], [1000, 1200], "ship", "B"),
        ([10_000, 10_000], [1200, 1000], "ship", "A"),
        ([10**7, 10**7], [10**6, 10**6], "stop", None),
        ([20, 20], [2, 3], "keep_testing", None),
    ],
)
def test_rule_on_draws_agrees_with_the_exact_rule(
    visitors: list[int], conversions: list[int], action: str, variant: str | None
) -> None:
    """Beta posterior draws read by the draw-based rule give the exact rule's decision
    (cases far from the thresholds, so 100,000 draws cannot flip them)."""
    exact = readout(["A", "B"], visitors, conversions, control="A").decision
    post = beta_posteriors(visitors, conversions)
    draws = np.random.default_rng(3).beta(post.alpha, post.beta, (100_000, 2))
    sampled = decide_on_draws(["A", "B"], 0, draws, DecisionRule())
    assert (exact.action, exact.variant) == (sampled.action, sampled.variant) == (action, variant)


def test_single_variant_has_nothing_to_compare() -> None:
    result = readout(["A"], [500], [40], control="A")
    assert result.decision.action == "keep_testing"
    assert "only variant" in result.decision.reason
    only = result.variants[0]
    assert (only.prob_best, only.prob_beats_control, only.prob_in_rope) == (1.0, 0.5, 1.0)
    assert only.expected_loss == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("visitors", "conversions"),
    [
        ([0, 1000], [0, 100]),  # control without visitors
        ([1000, 0], [100, 0]),  # variant without visitors
        ([0, 0], [0, 0]),  # nobody at all
        ([1000, 1000], [0, 0]),  # no conversions
        ([1000, 1000], [1000, 1000]),  # everybody converts
        ([10**6, 5], [0, 5]),  # extremes together
    ],
)
def test_degenerate_counts_give_finite_readouts(
    visitors: list[int], conversions: list[int]
) -> None:
    result = readout(["A", "B"], visitors, conversions, control="A")
    if result.decision.reason.startswith("Not enough data"):
        # The relative uplift has no mean (empty arm, control without conversions): NaN
        # there, JSON null; every other field stays finite.
        assert result.decision.action == "keep_testing"
        uplift = {"uplift_mean", "uplift_low", "uplift_high", "uplift_median"}
        _assert_all_finite(
            tuple(
                tuple(value for key, value in v._asdict().items() if key not in uplift)
                for v in result.variants
            )
        )
    else:
        _assert_all_finite(result.variants)
    assert math.isfinite(result.srm.chi2)
    assert math.isfinite(result.srm.p_value)
    assert "nan" not in result.decision.reason
    assert "inf" not in result.decision.reason


def test_readout_fields_match_the_conjugate_functions() -> None:
    names, visitors, conversions = ["A", "B", "C"], [4000, 4100, 3900], [400, 452, 380]
    rule = DecisionRule()
    result = readout(names, visitors, conversions, control="B", rule=rule)
    post = beta_posteriors(visitors, conversions)
    low, high = credible_interval(post, RATE_LEVEL)
    assert RATE_LEVEL == 0.95  # the same level as every other interval shown
    columns = {
        "conversion_mean": posterior_mean(post),
        "conversion_low": low,
        "conversion_high": high,
        "prob_best": prob_best(post),
        "prob_beats_control": prob_beats(post, 1),
        "expected_loss": expected_loss(post),
        "prob_in_rope": prob_in_rope(post, 1, rule.rope),
    }
    for field, want in columns.items():
        got = [getattr(v, field) for v in result.variants]
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=field)
    assert [v.name for v in result.variants] == names
    assert result.control == "B"
    control = result.variants[1]
    assert control.uplift_mean == control.uplift_low == control.uplift_high == 0.0


@pytest.mark.parametrize(
    ("names", "control", "match"),
    [
        (["A", "B"], "C", "not one of"),
        (["A", "A"], "A", "unique"),
        (["A"], "A", "expected 2 names"),
    ],
)
def test_readout_rejects_bad_names(names: list[str], control: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        readout(names, [10, 10], [1, 2], control=control)


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        (DecisionRule(loss_threshold=0.0), "loss_threshold"),
        (DecisionRule(rope=1.5), "rope"),
        (DecisionRule(equivalence_probability=1.0), "equivalence_probability"),
    ],
)
def test_readout_rejects_bad_rule(rule: DecisionRule, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        readout(["A", "B"], [10, 10], [1, 2], control="A", rule=rule)


def test_srm_matches_the_hand_computed_chi_square() -> None:
    observed, expected = np.array([10_000, 10_300]), np.array([10_150, 10_150])
    chi2 = float(((observed - expected) ** 2 / expected).sum())  # 2 * 150**2 / 10150
    p_value = float(chi2_distribution.sf(chi2, df=1))
    check = sample_ratio_mismatch(observed, [0.5, 0.5], alpha=0.05)
    assert check.chi2 == pytest.approx(chi2, rel=1e-12)
    assert check.p_value == pytest.approx(p_value, rel=1e-10)
    assert 0.001 < p_value < 0.05
    assert check.mismatch
    assert check.message.startswith("Sample ratio mismatch")
    assert not sample_ratio_mismatch(observed, [0.5, 0.5]).mismatch  # default alpha 0.001


def test_srm_with_unequal_design_shares() -> None:
    check = sample_ratio_mismatch([8000, 2000], [0.8, 0.2])
    assert check.chi2 == 0.0
    assert check.p_value == pytest.approx(1.0)
    assert not check.mismatch
    assert sample_ratio_mismatch([8000, 2000]).mismatch  # against an even split


def test_srm_without_traffic_or_with_one_variant_is_not_testable() -> None:
    for visitors in ([0, 0], [100]):
        check = sample_ratio_mismatch(visitors)
        assert (check.chi2, check.p_value, check.mismatch) == (0.0, 1.0, False)


@pytest.mark.parametrize(
    ("visitors", "shares", "alpha", "match"),
    [
        ([10, -1], None, 0.001, "non-negative"),
        ([10, 10], [1.0], 0.001, "one entry per variant"),
        ([10, 10], [1.0, 0.0], 0.001, "positive"),
        ([10, 10], None, 1.5, "alpha"),
    ],
)
def test_srm_rejects_bad_arguments(
    visitors: list[int], shares: list[float] | None, alpha: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        sample_ratio_mismatch(visitors, shares, alpha)


def test_readout_warns_about_sample_ratio_mismatch() -> None:
    result = readout(["A", "B"], [10_000, 12_000], [1000, 1400], control="A")
    assert result.srm.mismatch
    assert result.decision.action == "keep_testing"
    assert result.decision.reason.startswith("Decision withheld: Sample ratio mismatch")
    designed = readout(
        ["A", "B"], [10_000, 12_000], [1000, 1400], control="A", expected_shares=[10, 12]
    )
    assert not designed.srm.mismatch


def test_revenue_readout_matches_the_draw_summaries() -> None:
    stats = RevenueStats([5000, 5000], [500, 560], [25_000.0, 30_000.0], [1.5e6, 1.9e6])
    result = revenue_readout(["A", "B"], stats, control="A", draws=20_000, seed=4)
    draws = revenue_per_visitor_draws(stats, draws=20_000, seed=4)
    np.testing.assert_allclose([r.rpv_mean for r in result], draws.mean(axis=0))
    np.testing.assert_allclose([r.prob_best for r in result], prob_best_draws(draws))
    np.testing.assert_allclose([r.expected_loss for r in result], expected_loss_draws(draws))
    control, variant = result
    assert control.prob_beats_control == 0.5
    assert control.uplift_mean == control.uplift_low == control.uplift_high == 0.0
    assert control.rpv_low < control.rpv_mean < control.rpv_high
    assert variant.prob_best > 0.99
    assert variant.uplift_low > 0


@pytest.mark.parametrize(
    "stats",
    [
        RevenueStats([100, 100], [0, 1], [0.0, 50.0], [0.0, 2500.0]),  # 0 and 1 converters
        RevenueStats([100, 0], [0, 0], [0.0, 0.0], [0.0, 0.0]),  # no revenue at all
        RevenueStats([0, 100], [0, 100], [0.0, 1000.0], [0.0, 10_000.0]),  # identical orders
    ],
)
def test_revenue_readout_is_finite_for_degenerate_inputs(stats: RevenueStats) -> None:
    _assert_all_finite(revenue_readout(["A", "B"], stats, control="A", draws=2000))
