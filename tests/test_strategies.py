"""Decision strategies: false positives against theory, the Bayesian rule, regret, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import MINIMAL
from funnelsim.analysis.conjugate import (
    beta_posteriors,
    expected_loss,
    posterior_mean,
    prob_best,
    prob_in_rope,
    rope_probability_bound,
)
from funnelsim.analysis.decision import DecisionRule, decide, readout
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.strategies import (
    BENCH_METRICS,
    BayesianStop,
    Decision,
    FixedHorizon,
    Look,
    Peeking,
    Strategy,
    StrategyError,
    ThompsonSampling,
    Truth,
    a_a_truth,
    built_in_strategies,
    load_strategy,
    run_bench,
    run_trials,
    trial_seeds,
    z_statistics,
)

REPLICATIONS = 4000


def _truth(
    days: int, rates: tuple[float, ...] = (0.1, 0.1), visitors_per_day: float = 2000.0
) -> Truth:
    arms = len(rates)
    return Truth(
        tuple(f"arm{i}" for i in range(arms)),
        np.array(rates),
        50 * np.array(rates),
        np.full(arms, 1 / arms),
        visitors_per_day,
        days,
    )


def _false_positive_rate(strategy: Strategy, days: int) -> float:
    outcomes = run_trials(strategy, _truth(days), trial_seeds(2024, 0, REPLICATIONS))
    return float(np.mean([t.claims_difference for t in outcomes]))


def _tolerance(rate: float) -> float:
    """Four binomial standard errors of a rate estimated from REPLICATIONS tests, plus
    0.005 for what binomial (not normal) data and Poisson daily traffic change in the
    z-test's true level (about 1000 visitors and 100 conversions per arm and day)."""
    return 4 * math.sqrt(rate * (1 - rate) / REPLICATIONS) + 0.005


def test_fixed_horizon_a_a_false_positive_rate_is_alpha() -> None:
    rate = _false_positive_rate(FixedHorizon(alpha=0.05), days=3)
    assert abs(rate - 0.05) < _tolerance(0.05)


@pytest.mark.parametrize(("looks", "published"), [(5, 0.142), (20, 0.248)])
def test_peeking_inflates_false_positives_as_published(looks: int, published: float) -> None:
    """Armitage, McPherson & Rowe (1969): two-sided z-test at alpha 0.05 looked at after
    each of K equally spaced batches: 14.2% for K = 5, 24.8% for K = 20 (normal data)."""
    rate = _false_positive_rate(Peeking(alpha=0.05), days=looks)
    assert abs(rate - published) < _tolerance(published)


def test_z_statistic_matches_the_textbook_value() -> None:
    # pooled p = 0.115, se = sqrt(0.115 * 0.885 * 2 / 1000) = 0.014267; z = 0.03 / se
    z = z_statistics(np.array([1000, 1000]), np.array([100, 130]), control=0)
    assert z[1] == pytest.approx(0.03 / math.sqrt(0.115 * 0.885 * 2 / 1000))
    assert z[0] == 0.0


# --------------------------------------------------------------------------- Bayesian rule


def _look(visitors: list[int], conversions: list[int]) -> Look:
    arms = len(visitors)
    return Look(1, 1, 0, np.array(visitors), np.array(conversions), np.full(arms, 1 / arms))


CASES = [
    ([1000, 1000], [100, 100]),
    ([1000, 1000], [100, 130]),
    ([20000, 20000], [600, 690]),
    ([5000, 5000], [150, 152]),
    ([10**7, 10**7], [10**6, 10**6 + 300]),
    ([3000, 3000, 3000], [90, 120, 95]),
    ([50, 60], [0, 1]),
]


@pytest.mark.parametrize("rule", [DecisionRule(), DecisionRule(loss_threshold=1e-4)])
@pytest.mark.parametrize(("visitors", "conversions"), CASES)
def test_decide_with_its_rope_shortcut_follows_the_rule_exactly(
    rule: DecisionRule, visitors: list[int], conversions: list[int]
) -> None:
    """The rule spelled out on exact quantities: equivalence, then expected loss."""
    post = beta_posteriors(visitors, conversions)
    in_rope = np.delete(prob_in_rope(post, 0, rule.rope), 0)
    loss = expected_loss(post)
    best = int(np.argmin(loss))
    if np.all(in_rope >= rule.equivalence_probability):
        expected = ("stop", None)
    elif loss[best] < rule.loss_threshold * posterior_mean(post)[0]:
        expected = ("ship", best)
    else:
        expected = ("keep_testing", None)
    verdict = decide(post, 0, rule)
    assert (verdict.action, verdict.index) == expected
    assert (
        readout(
            [f"v{i}" for i in range(len(visitors))], visitors, conversions, "v0", rule
        ).decision.action
        == expected[0]
    )


def test_the_rope_bound_never_falls_below_the_exact_probability() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = rng.integers(10, 10**7, 2)
        x = (n * rng.uniform(0.001, 0.5, 2)).astype(int)
        post = beta_posteriors(n, x)
        exact = prob_in_rope(post, 0, 0.01)[1]
        bound = rope_probability_bound(post, 0.01)
        assert min(bound) >= exact - 1e-9


def test_bayesian_stop_ships_a_clear_winner_early() -> None:
    outcomes = run_trials(BayesianStop(), _truth(14, (0.10, 0.13)), trial_seeds(1, 1, 50))
    assert all(t.choice == 1 and t.claims_difference for t in outcomes)
    assert np.mean([t.days for t in outcomes]) < 3


# --------------------------------------------------------------------------- Thompson


def test_thompson_splits_by_probability_of_being_best_with_a_floor() -> None:
    strategy = ThompsonSampling(min_share=0.1)
    look = _look([2000, 2000, 2000], [200, 230, 190])._replace(day=1)
    best = prob_best(beta_posteriors(look.visitors, look.conversions))
    shares = strategy.allocate(look)
    assert shares == pytest.approx(0.1 + 0.7 * best)
    assert shares.sum() == pytest.approx(1.0) and shares.min() >= 0.1
    assert np.array_equal(strategy.allocate(look._replace(day=0)), look.shares)
    with pytest.raises(StrategyError, match="more than 1/3 arms"):
        ThompsonSampling(min_share=0.4).allocate(look)


def test_thompson_loses_fewer_conversions_than_an_even_split() -> None:
    truth = _truth(14, (0.10, 0.13), visitors_per_day=400)
    result = run_bench(
        truth, [FixedHorizon(), ThompsonSampling(stop_probability=0.999)], 60, Execution(seed=3)
    )
    fixed, thompson = (s.metrics["regret_conversions"] for s in result.scores)
    assert thompson.high < fixed.low


# --------------------------------------------------------------------------- regret


class WorstArm(Strategy):
    """Sends everyone to arm 1 and never decides (so the control is shipped at the end)."""

    name = "worst"

    def allocate(self, look: Look) -> np.ndarray:
        return np.array([0.0, 1.0])

    def decide(self, look: Look) -> Decision | None:
        return None


def test_regret_counts_every_visitor_sent_to_a_worse_arm() -> None:
    truth = _truth(5, (0.10, 0.08))
    for outcome in run_trials(WorstArm(), truth, trial_seeds(5, 1, 20)):
        assert outcome.days == 5 and outcome.choice == 0 and not outcome.claims_difference
        assert outcome.regret_conversions == pytest.approx(outcome.visitors * 0.02)
        assert outcome.regret_revenue == pytest.approx(outcome.visitors * 50 * 0.02)


def test_regret_after_a_decision_uses_the_shipped_arm_for_the_rest_of_the_horizon() -> None:
    class ShipWorseOnDayOne(WorstArm):
        def decide(self, look: Look) -> Decision | None:
            return Decision(1, True)

    truth = _truth(10, (0.10, 0.08), visitors_per_day=1000)
    for outcome in run_trials(ShipWorseOnDayOne(), truth, trial_seeds(5, 1, 5)):
        assert outcome.days == 1 and outcome.choice == 1
        # day 1: every visitor on the worse arm; days 2-10: 1000 expected visitors a day
        assert outcome.regret_conversions == pytest.approx((outcome.visitors + 9 * 1000) * 0.02)


# --------------------------------------------------------------------------- the bench


def test_bench_scores_and_executors_agree() -> None:
    truth = _truth(4, (0.10, 0.11, 0.12), visitors_per_day=600)
    strategies = built_in_strategies(["fixed", "peeking", "bayes_stop", "thompson"])
    serial = run_bench(truth, strategies, 30, Execution(seed=11, workers=1))
    pooled = run_bench(truth, strategies, 30, Execution(seed=11, workers=2))
    assert serial == pooled
    assert serial.true_best == "arm2"
    for score in serial.scores:
        assert set(score.metrics) == set(BENCH_METRICS)
        for interval in score.metrics.values():
            assert interval.low <= interval.mean <= interval.high


def test_a_a_truth_copies_the_control() -> None:
    same = a_a_truth(_truth(3, (0.1, 0.2, 0.3)))
    assert np.all(same.conversion == 0.1) and np.all(same.revenue_per_visitor == 5.0)


def test_load_strategy_errors_are_one_line() -> None:
    for spec, message in [
        ("nocolon", "expected module:Class"),
        ("no_such_module_xyz:A", "cannot import"),
        ("funnelsim.strategies:Look", "not a subclass"),
        ("funnelsim.strategies:Strategy", "cannot create it"),
    ]:
        with pytest.raises(StrategyError, match=message):
            load_strategy(spec)


# --------------------------------------------------------------------------- CLI

AB = MINIMAL + "variants:\n  control: {}\n  better: {stages.checkout.rate: 0.5}\n"
CUSTOM = '''
import numpy as np
from funnelsim.strategies import Decision, Strategy


class AlwaysControl(Strategy):
    """Never changes anything: no false positives, no power."""

    def decide(self, look):
        return Decision(look.control, False) if look.day >= look.days else None
'''


def test_cli_bench_with_a_researchers_strategy(
    write_scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_strategies_for_bench.py").write_text(CUSTOM)
    out = tmp_path / "out"
    args = [
        "bench",
        str(write_scenario(AB)),
        "--strategies",
        "fixed,thompson",
        "--strategy",
        "my_strategies_for_bench:AlwaysControl",
        "--replications",
        "20",
        "--truth-replications",
        "2",
        "--days",
        "3",
        "--workers",
        "1",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "AlwaysControl" in result.output and "truly best: better" in result.output
    document = json.loads((out / "bench.json").read_text())
    assert set(document["strategies"]) == {"fixed", "thompson", "AlwaysControl"}
    always = document["strategies"]["AlwaysControl"]
    assert always["false_positive_rate"] == {
        "mean": 0.0,
        "low": 0.0,
        "high": pytest.approx(0.161, abs=0.001),
    }  # Wilson upper bound for 0 of 20
    assert always["prob_correct"]["mean"] == 0.0 and always["days_to_decision"]["mean"] == 3
    assert (out / "bench.csv").exists() and (out / "bench.png").stat().st_size > 1000
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "use --force" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "fixed,guess"], "unknown strategy 'guess'"),
        (["--strategies", ""], "no strategy to bench"),
        (["--strategy", "nowhere_xyz:S"], "cannot import nowhere_xyz"),
        (["--min-share", "0.6"], "min share 0.6 is more than 1/2 arms"),
    ],
)
def test_cli_bench_errors_are_one_line(write_scenario, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(write_scenario(AB)),
            "--replications",
            "2",
            "--truth-replications",
            "1",
            "--workers",
            "1",
            *args,
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_docstring_examples_run() -> None:
    import doctest

    from funnelsim import strategies

    assert doctest.testmod(strategies).failed == 0
