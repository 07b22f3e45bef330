"""Per-segment effects with partial pooling: true effects recovered, shrinkage shown,
and the Simpson's-paradox warning on a constructed example."""

import numpy as np
import pytest
from scipy.special import expit, logit

from funnelsim.analysis.models import SamplerSettings
from funnelsim.analysis.segments import segment_readout

SETTINGS = SamplerSettings(sampler="pymc", draws=500, tune=500, chains=2, seed=11, cores=1)
SEGMENTS = ["desktop", "mobile", "tablet", "app"]


def test_partial_pooling_recovers_each_segment_effect() -> None:
    """B helps three segments and hurts the app: every true difference lies in its
    interval at the simultaneous level 1 - 0.05 / 4 (Bonferroni: all four at once with
    probability >= 95%), and the app's interval is below zero."""
    rng = np.random.default_rng(2024)
    control_rates = np.array([0.10, 0.06, 0.08, 0.12])
    log_odds_effect = np.array([0.15, 0.20, 0.10, -0.25])
    treated_rates = expit(logit(control_rates) + log_odds_effect)
    visitors = np.full((4, 2), 20_000)
    conversions = rng.binomial(visitors, np.c_[control_rates, treated_rates])
    result = segment_readout(
        SEGMENTS, ["A", "B"], visitors, conversions, "A", SETTINGS, level=1 - 0.05 / 4
    )
    truth = treated_rates - control_rates
    for effect, true in zip(result.effects, truth, strict=True):
        assert effect.difference.low <= true <= effect.difference.high, effect
        assert 0.0 <= effect.shrinkage <= 1.0
    app = result.effects[3]
    assert app.difference.high < 0
    assert app.prob_positive < 0.01
    assert result.diagnostics.r_hat_max < 1.05
    # The aggregate is positive and the app clearly negative: the app is flagged.
    assert result.aggregate["B"] > 0
    assert [e.segment for e in result.effects if e.disagrees] == ["app"]
    assert len(result.warnings) == 1 and "segment app" in result.warnings[0]


def test_simpsons_paradox_warning_fires_on_a_constructed_example() -> None:
    """B is worse on desktop (18% vs 20%) and on mobile (4% vs 5%), but most of B's
    traffic is desktop, so all visitors together show B far better (15.2% vs 8%)."""
    visitors = np.array([[4000, 16000], [16000, 4000]])
    conversions = np.array([[800, 2880], [800, 160]])
    result = segment_readout(
        ["desktop", "mobile"], ["A", "B"], visitors, conversions, "A", SETTINGS
    )
    assert result.aggregate["B"] == pytest.approx(3040 / 20000 - 1600 / 20000)
    assert [e.disagrees for e in result.effects] == [True, True]
    assert all(w.startswith("Simpson's paradox risk: in segment") for w in result.warnings)
    assert [e.raw_difference for e in result.effects] == pytest.approx([-0.02, -0.01])
    # Pooling pulls each segment towards the common effect, never past it.
    for effect in result.effects:
        assert effect.difference.mean < 0


def test_counts_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        segment_readout(["a"], ["A", "B"], [[10, 10, 10]], [[1, 1, 1]], "A", SETTINGS)
