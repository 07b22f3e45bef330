"""bench's ``sequential`` strategy: daily looks with an always-valid false-positive rate,
power and days to decision beside the fixed-horizon test."""

import math

import numpy as np

from funnelsim.execution import Execution
from funnelsim.strategies import (
    FixedHorizon,
    Look,
    Peeking,
    SequentialTest,
    Truth,
    built_in_strategies,
    run_bench,
)

REPLICATIONS = 600
TRUTH = Truth(
    ("control", "b"),
    np.array([0.10, 0.115]),
    np.array([5.0, 5.75]),
    np.array([0.5, 0.5]),
    visitors_per_day=1000,
    days=28,
)


def test_sequential_keeps_alpha_under_daily_looks_and_decides_early() -> None:
    result = run_bench(
        TRUTH, [FixedHorizon(), Peeking(), SequentialTest()], REPLICATIONS, Execution(seed=16)
    )
    fixed, peeking, sequential = (s.metrics for s in result.scores)
    se = math.sqrt(0.05 * 0.95 / REPLICATIONS)
    assert sequential["false_positive_rate"].mean <= 0.05 + 4 * se
    assert peeking["false_positive_rate"].mean > 0.05 + 4 * se
    # A 15% lift at 14,000 visitors per arm: both tests find it most of the time; the
    # sequential test stops earlier on average, paying some power for the option.
    assert sequential["prob_correct"].mean > 0.6
    assert sequential["days_to_decision"].mean < fixed["days_to_decision"].mean == 28


def test_sequential_claims_nothing_on_the_first_day_or_without_evidence() -> None:
    look = Look(0, 28, 0, np.zeros(2, np.int64), np.zeros(2, np.int64), np.full(2, 0.5))
    assert SequentialTest().decide(look) is None
    even = look._replace(
        day=28, visitors=np.array([14_000, 14_000]), conversions=np.array([1400, 1410])
    )
    assert SequentialTest().decide(even) == (0, False)


def test_sequential_is_a_built_in_strategy() -> None:
    (strategy,) = built_in_strategies(["sequential"], alpha=0.01)
    assert isinstance(strategy, SequentialTest) and strategy.alpha == 0.01
