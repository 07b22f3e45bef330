"""Bayesian CUPED agrees with the frequentist regression adjustment."""

import math

import numpy as np
import pytest

from funnelsim.analysis.bayes_cuped import bayesian_cuped
from funnelsim.analysis.cuped import cuped
from funnelsim.analysis.models import SamplerSettings
from funnelsim.analysis.moments import moments_from_values

SETTINGS = SamplerSettings(sampler="pymc", draws=500, tune=500, chains=2, seed=3, cores=1)


def test_bayesian_and_frequentist_adjusted_estimates_agree() -> None:
    rng = np.random.default_rng(13)
    n = 5000
    arm = np.repeat(["control", "b"], n)
    pre = rng.gamma(2.0, 10.0, 2 * n)
    y = 5 + 0.7 * pre + rng.normal(0, 8, 2 * n) + np.where(arm == "b", 1.0, 0.0)
    m = moments_from_values(arm, np.c_[y, pre], ["revenue", "pre_revenue"])
    frequentist = cuped(m, "revenue", ["pre_revenue"], "control").effects[0]
    bayes = bayesian_cuped(m, "revenue", ["pre_revenue"], "control", SETTINGS)
    effect = bayes.effects[0]
    draws = SETTINGS.draws * SETTINGS.chains
    # Posterior mean vs ANCOVA estimate: within 4 Monte Carlo standard errors (the
    # effective sample size is at least a quarter of the draws here) plus the prior's
    # pull, negligible at 10 sd.
    mc_se = effect.difference_sd / math.sqrt(draws / 4)
    assert effect.difference[0] == pytest.approx(frequentist.difference.value, abs=4 * mc_se)
    # Equal spreads in both arms: the homoscedastic posterior sd equals CUPED's SE to
    # within the Monte Carlo error of an sd estimate (about 1 / sqrt(2 ESS)).
    assert effect.difference_sd == pytest.approx(
        frequentist.difference.se, rel=4 / math.sqrt(draws / 2)
    )
    assert effect.uplift[1] < frequentist.uplift.value < effect.uplift[2]
    assert bayes.diagnostics.divergences == 0
