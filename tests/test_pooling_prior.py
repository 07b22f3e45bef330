"""The funnel model's pooling prior, checked by prior predictive simulation: the
simulated stage log-odds have the prior's analytic moments, the tail probabilities the
readout uses agree with the simulation, and the stage differences of the public
marketing funnel that the prior doubts are named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA
from funnelsim.analysis import pooling_prior as prior
from funnelsim.analysis.api import analyze, results_dict
from funnelsim.analysis.data import ColumnMap, experiment_from_counts, read_experiment

DRAWS = 200_000
MARKETING = SHARED_DATA / "marketing_ab_funnel.csv"


def test_log_odds_ratio_has_the_priors_analytic_moments() -> None:
    logits = prior.prior_draws(n_variants=2, draws=DRAWS, seed=1)
    d = logits[:, 1] - logits[:, 0]
    second, fourth = prior.difference_moments()
    assert abs(d.mean()) < 4 * math.sqrt(second / DRAWS)
    # SE of the mean of d^2: sqrt((E d^4 - (E d^2)^2) / n)
    assert (d**2).mean() == pytest.approx(second, abs=4 * math.sqrt((fourth - second**2) / DRAWS))


def test_stage_log_odds_have_the_priors_marginal_variance() -> None:
    logits = prior.prior_draws(n_variants=3, draws=DRAWS, seed=2)[:, 0]
    s2 = prior.STAGE_MEAN_SD**2
    variance = s2 + prior.tau_moment(2)
    fourth = 3 * s2**2 + 6 * s2 * prior.tau_moment(2) + 3 * prior.tau_moment(4)
    assert (logits**2).mean() == pytest.approx(
        variance, abs=4 * math.sqrt((fourth - variance**2) / DRAWS)
    )


@pytest.mark.parametrize("difference", [0.1, 0.3, 0.6, 1.0])
def test_tail_probability_matches_the_simulation(difference: float) -> None:
    logits = prior.prior_draws(n_variants=2, draws=DRAWS, seed=3)
    share = float((np.abs(logits[:, 1] - logits[:, 0]) >= difference).mean())
    expected = prior.tail_probability(difference)
    assert share == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / DRAWS))


def test_implied_changes_are_quantiles_of_the_prior() -> None:
    """At a 50% control the relative change is ``tanh(|d| / 2)``, monotone in ``|d|``:
    the simulated quantiles must carry the analytic tail probabilities."""
    draws = 100_000
    (half,) = prior.implied_changes((0.5,), draws=draws, seed=4)
    for change, tail in ((half.median, 0.5), (half.q90, 0.1), (half.q99, 0.01)):
        found = prior.tail_probability(2 * math.atanh(change))
        assert found == pytest.approx(tail, abs=4 * math.sqrt(tail * (1 - tail) / draws))
    changes = prior.implied_changes((0.1, 0.5, 0.9), draws=draws, seed=4)
    assert [c.median for c in changes] == sorted((c.median for c in changes), reverse=True)


def test_documented_implied_changes_are_what_the_function_gives() -> None:
    text = (ROOT / "docs" / "modelling.md").read_text(encoding="utf-8")
    for found in prior.implied_changes():
        row = f"| {found.base_rate:.0%} | {found.median:.1%} | {found.q90:.1%} | {found.q99:.1%} |"
        assert row in text


def test_a_small_difference_passes_and_a_large_one_is_doubted() -> None:
    checks = prior.check_stages(
        ("cart", "pay"),
        ("a", "b"),
        [[10_000, 5_000], [10_000, 5_000]],
        [[5_000, 2_500], [5_100, 4_500]],
        "a",
    )
    cart, pay = checks
    assert not cart.doubted and cart.prior_probability > 0.5
    assert pay.doubted and pay.log_odds_ratio == pytest.approx(
        math.log(4500.5 / 500.5) - math.log(2500.5 / 2500.5)
    )
    assert "b at pay" in prior.doubt_message(checks) and "cart" not in prior.doubt_message(checks)
    assert prior.doubt_message(checks[:1]) is None


@pytest.mark.skipif(not MARKETING.exists(), reason="../shared/data/marketing_ab_funnel.csv absent")
def test_marketing_funnel_stage_differences_conflict_with_the_prior() -> None:
    from funnelsim.analysis.models import funnel_counts

    stages = ("step1", "step2", "step3", "step4", "step5")
    data = read_experiment(MARKETING, ColumnMap(variant="test group", stages=stages))
    counts = funnel_counts(data)
    checks = prior.check_stages(counts.stages, data.variants, counts.reached, counts.continued, "a")
    assert [c.doubted for c in checks] == [False, True, True, True, True]


def test_funnel_readout_states_the_check_in_json_and_stage_table() -> None:
    from funnelsim import report

    data = experiment_from_counts(
        ["a", "b"], [4_000, 4_000], [400, 400], ["cart"], [[2_000], [3_600]]
    )
    result = analyze(data, "a", "funnel", draws=150, tune=150, chains=2, seed=1)
    block = results_dict(result)["pooling_prior_check"]
    cart = next(s for s in block["stages"] if s["stage"] == "cart")
    assert cart["doubted"] and cart["prior_probability"] == prior.tail_probability(
        cart["log_odds_ratio"]
    )
    assert block["message"].startswith("Prior predictive check")
    table = report.stage_table(result)
    assert table.notes[0].text == block["message"]
