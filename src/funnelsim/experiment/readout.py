"""The Bayesian readout of a replication's simulated split test.

An adapter from a replication's counts (or posterior draws of CLV per visitor) to
the decision rule of :mod:`funnelsim.analysis.decision`, keeping only what a
replication reports; and the tally of how simulated tests ended, each against its
truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim.analysis import conjugate
from funnelsim.analysis.decision import DecisionRule, decide, decide_on_draws, not_enough_data
from funnelsim.formatting import small_money
from funnelsim.scenario.schema import Scenario

FloatArray = NDArray[np.float64]


def decision_rule(scenario: Scenario) -> DecisionRule:
    """The scenario's Bayesian decision rule (``experiment`` section)."""
    experiment = scenario.experiment
    return DecisionRule(
        loss_threshold=experiment.loss_threshold,
        rope=experiment.rope,
        equivalence_probability=experiment.equivalence_probability,
    )


class SplitReadout(NamedTuple):
    """What a replication keeps of the Bayesian readout of its simulated test."""

    prob_best: FloatArray
    prob_beats_control: FloatArray
    expected_loss: FloatArray
    decision: str
    shipped: str | None


def split_readout(
    scenario: Scenario, visitors: NDArray[np.int64], conversions: NDArray[np.int64]
) -> SplitReadout:
    """P(best), P(beats control), expected loss and decision of the simulated test.

    The same exact computations and rule as :func:`funnelsim.analysis.decision.readout`,
    without the Monte Carlo uplift interval and the credible intervals a replication
    does not keep (the uplift interval alone cost most of a replication).
    """
    experiment = scenario.experiment
    names = scenario.variant_names
    ref = names.index(scenario.control)
    post = conjugate.beta_posteriors(
        visitors, conversions, experiment.prior.alpha, experiment.prior.beta
    )
    exact = conjugate.exact_readout(post, ref)
    loss = exact.expected_loss
    if not_enough_data(names, visitors, conversions, ref) is not None:
        action, shipped = "keep_testing", None  # as readout: no decision on no data
    else:
        decision = decide(post, ref, decision_rule(scenario), names, loss)
        action, shipped = decision.action, decision.variant
    return SplitReadout(exact.prob_best, exact.prob_beats, loss, action, shipped)


def judged_stage(scenario: Scenario) -> int | None:
    """The index of the stage whose reach the test is judged on (``reached:STAGE``)."""
    metric = scenario.experiment.metric
    if not metric.startswith("reached:"):
        return None
    return scenario.stage_names.index(metric.removeprefix("reached:"))


def reached_in_test(
    visitors: NDArray[np.int64],
    reached: NDArray[np.int64],
    test_visitors: NDArray[np.int64],
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Per arm, the test's visitors who reach the judged stage: of a variant's
    ``visitors`` (``reached`` of whom reach it), the arm's ``test_visitors`` are a random
    subset, so their count reaching it is hypergeometric (the split ignores outcomes)."""
    return np.array(
        [
            rng.hypergeometric(k, n - k, t) if t > 0 else 0
            for n, k, t in zip(
                visitors.tolist(), reached.tolist(), test_visitors.tolist(), strict=True
            )
        ],
        dtype=np.int64,
    )


def draws_readout(scenario: Scenario, samples: FloatArray, metric: str) -> SplitReadout:
    """P(best), P(beats control), expected loss and decision of the simulated test from
    joint posterior draws of ``metric`` shaped ``(variants, draws)``, control first."""
    names = scenario.variant_names
    draws = samples.T
    loss = conjugate.expected_loss_draws(draws)
    decision = decide_on_draws(
        names,
        0,
        draws,
        decision_rule(scenario),
        loss,
        describe=lambda value: small_money(value, scenario.currency),
        metric=metric,
    )
    return SplitReadout(
        conjugate.prob_best_draws(draws),
        conjugate.prob_beats_draws(draws, 0),
        loss,
        decision.action,
        decision.variant,
    )


class Truth(NamedTuple):
    """What a simulated test should have concluded: the truly best variant (by the mean
    of the judged metric), and whether its uplift over control lies within the ROPE."""

    best: str
    equivalent: bool


def truth(scenario: Scenario, judged: FloatArray) -> Truth:
    """The :class:`Truth` of ``judged``, the variants' values (control first)."""
    best = int(np.argmax(np.nan_to_num(judged, nan=-np.inf)))
    best_uplift = judged[best] / judged[0] - 1.0 if judged[0] > 0 else math.inf
    return Truth(scenario.variant_names[best], abs(best_uplift) < scenario.experiment.rope)


def tally_tests(
    decisions: Sequence[tuple[str, str | None]], truths: Sequence[Truth]
) -> dict[str, float]:
    """How simulated tests ended, each judged against its own truth: shipped the truly
    best variant, shipped another, stopped for equivalence, or kept testing; ``right``
    counts shipping the best, or stopping when the best is equivalent to control."""
    outcomes = {"ship_best": 0.0, "ship_other": 0.0, "stop": 0.0, "keep_testing": 0.0, "right": 0.0}
    for (decision, shipped), true in zip(decisions, truths, strict=True):
        if decision == "ship":
            key = "ship_best" if shipped == true.best else "ship_other"
        else:
            key = decision
        outcomes[key] += 1
        outcomes["right"] += key == "ship_best" or (true.equivalent and key == "stop")
    return {k: v / len(decisions) for k, v in outcomes.items()}
