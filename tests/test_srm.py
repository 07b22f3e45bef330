"""The planned split is an input to the sample ratio check; a clear mismatch withholds
the decision; "not enough data" instead of prior-only uplifts."""

import numpy as np
import pytest
from scipy.stats import chisquare

from funnelsim.analysis.api import analyze, experiment_from_counts, results_dict
from funnelsim.analysis.conjugate import beta_posteriors, uplift_interval
from funnelsim.analysis.decision import parse_split, readout, sample_ratio_mismatch


def test_ten_thousand_vs_ten_thousand_five_hundred_gives_scipys_p_value() -> None:
    check = sample_ratio_mismatch([10_000, 10_500], parse_split("50,50"))
    expected = chisquare([10_000, 10_500])
    assert check.chi2 == expected.statistic
    assert check.p_value == expected.pvalue
    assert check.mismatch  # p = 0.00046 < 0.001


def test_a_planned_ninety_ten_split_is_not_a_mismatch() -> None:
    visitors, conversions = [90_130, 9_870], [9_000, 1_050]
    planned = readout(["A", "B"], visitors, conversions, "A", expected_shares=parse_split("90,10"))
    assert not planned.srm.mismatch
    assert planned.srm.p_value == pytest.approx(chisquare(visitors, [90_000, 10_000]).pvalue)
    assert planned.decision.action == "ship"
    even = readout(["A", "B"], visitors, conversions, "A")
    assert even.srm.p_value == 0.0
    assert even.decision.action == "keep_testing"
    assert even.decision.variant is None
    assert even.decision.reason.startswith("Decision withheld: Sample ratio mismatch")
    assert "Ship B" in even.decision.reason  # what the rule alone would have said


@pytest.mark.parametrize(
    ("text", "variants", "match"),
    [("90;10", 2, "one positive number"), ("90,0", 2, "positive"), ("50,50,0.5", 2, "3 shares")],
)
def test_bad_splits_are_one_readable_sentence(text: str, variants: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_split(text, variants)


def test_variant_without_visitors_gets_not_enough_data() -> None:
    result = readout(["A", "B"], [1000, 0], [100, 0], "A")
    assert result.decision.action == "keep_testing"
    assert result.decision.reason == "Not enough data: B has no visitors yet."
    assert np.isnan(result.variants[1].uplift_mean)  # no prior-only uplift is reported


def test_control_without_conversions_reports_median_not_mean() -> None:
    result = readout(["A", "B"], [200, 200], [0, 3], "A")
    assert result.decision.reason.startswith("Not enough data: the control A has no conversions")
    b = result.variants[1]
    assert np.isnan(b.uplift_mean)
    # Median of p_B / p_A - 1 with p_A ~ Beta(1, 201), p_B ~ Beta(4, 198), by Monte Carlo
    # with an independent generator: median of a ratio is the ratio's 50% quantile.
    rng = np.random.default_rng(99)
    ratio = rng.beta(4, 198, 400_000) / rng.beta(1, 201, 400_000) - 1
    low, median, high = np.quantile(ratio, [0.025, 0.5, 0.975])
    assert b.uplift_median == pytest.approx(median, rel=0.02)
    assert b.uplift_low == pytest.approx(low, rel=0.02)
    assert b.uplift_high == pytest.approx(high, rel=0.05)


def test_uplift_mean_exists_once_the_control_converts() -> None:
    summary = uplift_interval(beta_posteriors([200, 200], [1, 3]), 0)
    assert np.isfinite(summary.mean).all()
    assert summary.median is not None


def test_results_json_reports_the_median_where_the_mean_does_not_exist() -> None:
    result = analyze(experiment_from_counts(["A", "B"], [200, 200], [0, 3]))
    uplift = results_dict(result)["variants"]["B"]["uplift_vs_control"]
    assert uplift["mean"] is None
    assert uplift["median"] == pytest.approx(result.variants[1].uplift_median)
    assert uplift["low"] < uplift["median"] < uplift["high"]
    assert result.decision.reason.startswith("Not enough data")
