"""Profit planning of a scenario: the certain world, a plugged-in world sampler, plan.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import MINIMAL, run_in_new_process
from funnelsim.analysis.testroll import (
    TwoArmPrior,
    expected_profit,
    no_test_profit,
    symmetric_optimal_visitors,
)
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.experiment import Interval, run_experiment
from funnelsim.profit_planning import (
    FIXED,
    NO_UNCERTAINTY,
    ProfitPlan,
    ScenarioWorld,
    assumption_sampler,
    day_grid,
    plan_profit,
    population_of,
    profit_plan_summary,
    roll_for_bench,
    scenario_world,
    value_of_information,
    write_profit_plan,
)
from funnelsim.propagation import value_worlds
from funnelsim.scenario import Scenario, parse_scenario
from funnelsim.strategies import TestAndRoll, Truth, engine_truth, run_bench

# the checkout stage's rate 0.4 -> 0.5 lifts conversion from 20% to 25%; an order is 50
AB = MINIMAL + (
    "  margin: 0.4\nvariants:\n  control: {}\n  better: {stages.checkout.rate: 0.5}\n"
    "experiment: {rollout_days: 30}\n"
)


def scenario(text: str = AB) -> Scenario:
    return parse_scenario(text, "ab.yaml")


def quick_plan(sc: Scenario, **options: object) -> ProfitPlan:
    settings: dict[str, object] = {
        "simulations": 200,
        "rule_simulations": 40,
        "truth_replications": 2,
        "lengths": 8,
    }
    settings.update(options)
    return plan_profit(sc, **settings)  # type: ignore[arg-type]


def test_population_is_the_test_and_the_rollout() -> None:
    assert population_of(scenario()) == (2 + 30) * 1000
    assert population_of(scenario(), 5000) == 5000
    assert population_of(parse_scenario(MINIMAL, "m.yaml")) == (2 + 365) * 1000


def test_a_certain_world_plans_no_test() -> None:
    """One world: ship its best variant now. Profit = population x margin x revenue per
    visitor of that variant, EVPI 0, and every test length costs."""
    plan = quick_plan(scenario())
    profit = plan.world.profit_per_visitor
    assert profit == pytest.approx(0.4 * 50 * plan.world.conversion)
    assert plan.optimal_days == 0 and plan.ship_now == "better"
    assert plan.curve.ship_now_profit.mean == pytest.approx(32_000 * profit[1])
    assert plan.curve.evpi.mean == 0
    assert all(p.evsi.mean < 0 for p in plan.curve.curve[1:])
    assert any(NO_UNCERTAINTY in line.lower() for line in profit_plan_summary(plan))
    assert plan.planned_days in plan.days


def test_an_uncertain_world_sampler_plugs_in() -> None:
    """Worlds in which the variant's advantage is unsure (sd larger than the gap): a test
    pays, EVPI is positive, and the summary does not claim certainty."""
    gap_unsure = np.array([[0.0, 0.0]])

    def worlds(n: int, rng: np.random.Generator) -> np.ndarray:
        return 4.0 + gap_unsure + rng.normal(0, 0.3, (n, 2))

    plan = quick_plan(scenario(), worlds=worlds, simulations=2000, max_days=10)
    assert plan.uncertain_assumptions and plan.curve.evpi.low > 0
    assert plan.optimal_days > 0
    assert plan.curve.curve[plan.curve.optimal].evsi.low > 0
    assert not any(NO_UNCERTAINTY in line.lower() for line in profit_plan_summary(plan))


def test_clv_metric_prices_clv_per_visitor() -> None:
    """Judged on CLV, a visitor's profit is CLV per visitor (margin included): with
    repeat purchases it exceeds the margin on the first order."""
    repeats = AB.replace("variants:", "  retention: {repeat_per_month: 0.2}\nvariants:")
    on_clv = quick_plan(
        scenario(repeats.replace("experiment: {", "experiment: {metric: clv_per_visitor, "))
    )
    on_revenue = quick_plan(scenario(repeats))
    assert np.all(on_clv.world.profit_per_visitor > 1.5 * on_revenue.world.profit_per_visitor)


def test_plan_json_has_the_issue_shape(tmp_path: Path) -> None:
    plan = quick_plan(scenario())
    write_profit_plan(plan, tmp_path)
    document = json.loads((tmp_path / "plan.json").read_text())
    interval = {"mean", "low", "high"}
    assert document["objective"] == "profit" and document["population"] == 32_000
    assert set(document["optimal"]) == {"days", "visitors_per_arm", "expected_profit"}
    assert set(document["optimal"]["expected_profit"]) == interval
    assert isinstance(document["evpi"], float)
    assert document["ship_now"]["variant"] == "better"
    assert set(document["ship_now"]["expected_profit"]) == interval
    for point in document["curve"]:
        assert {"days", "visitors_per_arm", "expected_profit", "evsi"} <= set(point)
        assert point["visitors_per_arm"] == point["days"] * 500
    assert (tmp_path / "plan.png").stat().st_size > 0
    assert (tmp_path / "plan.csv").read_text().startswith("days,visitors_control")


def test_unequal_split_gives_visitors_per_variant() -> None:
    text = AB.replace("experiment: {", "experiment: {split: {control: 0.25, better: 0.75}, ")
    plan = quick_plan(scenario(text))
    point = plan.to_dict()["curve"][1]
    assert point["visitors_per_arm"] == {
        "control": 250 * point["days"],
        "better": 750 * point["days"],
    }


def test_day_grid_has_the_asked_lengths() -> None:
    assert len(day_grid(134, 30, [])) == 30
    assert day_grid(3, 30, [7]) == [0, 1, 2, 3]


def test_test_and_roll_strategy_tests_then_ships_the_posterior_best() -> None:
    truth = Truth(
        ("a", "b"), np.array([0.10, 0.12]), np.array([5.0, 6.0]), np.array([0.5, 0.5]), 1000, 14
    )
    short_test = TestAndRoll(3, 0)
    short_test.name = "three_days"
    no_test, three_days = run_bench(
        truth, [TestAndRoll(0, 1), short_test], 40, Execution(seed=1)
    ).scores
    assert no_test.metrics["days_to_decision"] == (0.0, 0.0, 0.0)
    assert no_test.metrics["regret_conversions"] == (0.0, 0.0, 0.0)
    assert no_test.metrics["false_positive_rate"].mean == 1.0  # ships b on the A/A test too
    assert three_days.metrics["days_to_decision"] == (3.0, 3.0, 3.0)
    assert three_days.metrics["prob_correct"].mean > 0.5


def test_bench_plays_test_and_roll_at_the_profit_plans_length(write_scenario) -> None:
    """One certain world: the profit plan's length is 0, so test_and_roll ships the best
    variant without a test and loses nothing."""
    args = ["bench", str(write_scenario(AB)), "--strategies", "fixed,test_and_roll"]
    args += ["--replications", "20", "--truth-replications", "2", "--workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if "test_and_roll" in line)
    # days and conversions lost: 0.0, with the interval [0.0, 0.0] on the line below
    assert lines[at].split()[3:4] == ["0.0"] and lines[at + 1].count("[0.0, 0.0]") == 2


def test_cli_plan_profit_writes_plan_json(write_scenario, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["plan", str(write_scenario(AB)), "--objective", "profit", "--simulations", "50"]
    args += ["--truth-replications", "2", "--workers", "1", "--population", "20000"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Profit-maximising test: 0 days" in result.output
    assert NO_UNCERTAINTY in result.output.lower()
    document = json.loads((out / "plan.json").read_text())
    assert document["population"] == 20_000 and document["optimal"]["days"] == 0
    again = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert again.exit_code == 2 and "use --force" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --variant"),
        (["--variant", "better", "--population", "10"], "--population applies to"),
        (["--objective", "profit", "--variant", "nope"], "nope"),
        (["--objective", "profit", "--population", "10"], "less than a day of traffic"),
    ],
)
def test_cli_plan_profit_errors_are_one_line(write_scenario, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["plan", str(write_scenario(AB)), "--workers", "1", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def voi_paragraph(output: str) -> str:
    """The value-of-information line of ``run``'s output, its wrapped lines joined."""
    start = output.index("Value of information")
    return " ".join(output[start : output.index("profit).", start) + 8].split())


def test_cli_run_prints_the_value_of_information(write_scenario) -> None:
    result = CliRunner().invoke(
        main, ["run", str(write_scenario(AB)), "--replications", "3", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert max(len(row) for row in result.output.splitlines()) <= 100  # wrapped when piped
    line = voi_paragraph(result.output)
    assert NO_UNCERTAINTY in line and "a 2-day test costs" in line and FIXED not in line
    assert (
        "shipping better now" in line and "best test length on these simulations is 0 days" in line
    )
    assert "Monte Carlo" not in line  # one world: every simulated test costs the same


def test_run_states_the_monte_carlo_interval_of_the_tests_worth(write_scenario) -> None:
    """Over uncertain worlds the simulated tests' worth varies: the line gives its 95%
    Monte Carlo interval and the number of simulated tests behind it."""
    path = write_scenario(UNCERTAIN.replace("worlds: 2048", "worlds: 64"))
    args = ["run", str(path), "--replications", "3", "--workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = voi_paragraph(result.output)
    assert "95% Monte Carlo interval" in line and "over 200 simulated tests" in line


# Each arm's conversion: 0.5 x an uncertain checkout rate, independently per arm (the
# variant overrides it with its own uncertain value): normal(0.2, 0.02) in effect. An
# order is worth 1, so profit counts conversions. 100,000 visitors in all.
UNCERTAIN = """\
name: uncertain
seed: 1
traffic: {visitors_per_day: 1000, days: 10}
stages:
  - name: landing
    rate: 0.5
  - name: checkout
    rate: {uncertain: normal, mean: 0.4, sd: 0.04}
value:
  order_value: {dist: constant, value: 1}
variants:
  control: {}
  better: {stages.checkout.rate: {uncertain: normal, mean: 0.4, sd: 0.04}}
experiment: {rollout_days: 90, worlds: 2048}
"""
CONVERSION, PRIOR_SD, POPULATION = 0.2, 0.02, 100_000


def test_plan_draws_its_worlds_from_runs_worlds() -> None:
    """One source of worlds: the plan's are the run's (same seed, same values), and every
    simulated test plays in one of them."""
    sc = scenario(UNCERTAIN.replace("worlds: 2048", "worlds: 64"))
    run = run_experiment(sc, replications=2)
    assert run.assumptions is not None and run.assumptions.values is not None
    valued = value_worlds(sc, 2, sc.seed)
    assert valued is not None
    np.testing.assert_array_equal(valued.values, run.assumptions.values.values)
    draws = assumption_sampler(sc, valued)(500, np.random.default_rng(0))
    assert draws.conversion is not None
    known = {tuple(row) for row in valued.metric("conversion")}
    assert all(tuple(row) in known for row in draws.conversion)
    assert draws.profit == pytest.approx(draws.conversion)  # order value 1, margin 1
    plan = quick_plan(sc)
    assert plan.uncertain_assumptions and plan.assumption_worlds == 64
    paired = quick_plan(sc, variant="better")  # the pair keeps the assumptions
    assert paired.uncertain_assumptions and paired.assumption_worlds == 64


def within_3_se(value: float, interval: Interval) -> bool:
    """Within 3 standard errors of the mean (a 95% interval is +-1.96 of them)."""
    return abs(value - interval.mean) <= 3 * (interval.high - interval.low) / (2 * 1.96)


def test_uncertain_effects_plan_a_test_that_matches_test_and_roll() -> None:
    """Bernoulli responses with a normal prior on each arm's rate, through the scenario's
    own worlds: the value of each test length's information (paired on the worlds, so
    free of the level's noise) is Feit & Berman's closed form within 3 Monte Carlo
    standard errors, and inside the 95% interval at the simulated optimum; the closed
    form's own optimum earns no more than that interval's half-width above it; EVPI is
    N sigma / sqrt(pi) within 3 standard errors; the summary claims no certainty."""
    plan = quick_plan(
        scenario(UNCERTAIN), simulations=4000, rule_simulations=10, lengths=16, max_days=40
    )
    prior = TwoArmPrior.symmetric(CONVERSION, PRIOR_SD, math.sqrt(CONVERSION * (1 - CONVERSION)))
    now = no_test_profit(POPULATION, prior)

    def closed_form_evsi(visitors: tuple[float, float]) -> float:
        return expected_profit(visitors, POPULATION, prior).total - now

    assert plan.curve.population == POPULATION and plan.optimal_days > 0
    assert all(within_3_se(closed_form_evsi(p.visitors), p.evsi) for p in plan.curve.curve)
    found = plan.curve.curve[plan.curve.optimal]
    at_found = closed_form_evsi(found.visitors)
    assert found.evsi.low <= at_found <= found.evsi.high and found.evsi.low > 0
    best = symmetric_optimal_visitors(POPULATION, PRIOR_SD, prior.response_sd[0])
    assert closed_form_evsi((best, best)) - at_found < found.evsi.high - found.evsi.mean
    assert within_3_se(POPULATION * PRIOR_SD / math.sqrt(math.pi), plan.curve.evpi)
    assert plan.curve.evpi.low > 0 and plan.note == ""


def test_fixed_assumptions_plan_no_test_and_say_why(write_scenario) -> None:
    path = write_scenario(UNCERTAIN.replace("worlds: 2048", "worlds: 64"))
    args = ["plan", str(path), "--objective", "profit", "--simulations", "100"]
    args += ["--truth-replications", "2", "--workers", "1", "--assumptions", "fixed"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Profit-maximising test: 0 days" in text
    assert f"Note: {NO_UNCERTAINTY}{FIXED}." in text
    assert "expected value of perfect information $0 (0.0 conversions)" in text


def test_uncertain_levels_with_a_sure_winner_say_so() -> None:
    """Worlds disagree on the level, never on the winner: no test pays, and the plan
    says why without claiming the assumptions are certain."""

    def worlds(n: int, rng: np.random.Generator) -> np.ndarray:
        return 4.0 + np.array([0.0, 0.5]) + rng.normal(0, 0.3, (n, 1))

    plan = quick_plan(scenario(), worlds=worlds)
    assert plan.optimal_days == 0 and plan.curve.evpi.mean == 0
    summary = " ".join(profit_plan_summary(plan))
    assert "Note: better is best in every simulated world: the test buys nothing." in summary
    assert NO_UNCERTAINTY not in summary.lower()


def test_run_line_with_uncertain_worlds_prices_the_test() -> None:
    """The value-of-information line takes a world sampler: worlds that disagree about
    the winner make the planned test worth something."""
    sc = scenario()
    world = ScenarioWorld(("control", "better"), np.array([0.2, 0.2]), np.array([4.0, 4.0]))

    def worlds(n: int, rng: np.random.Generator) -> np.ndarray:
        return 4.0 + rng.normal(0, 0.3, (n, 2))

    line = value_of_information(sc, world, worlds, simulations=2000).describe()
    assert "a 2-day test is worth" in line and NO_UNCERTAINTY not in line
    assert value_of_information(sc, world).describe().count(NO_UNCERTAINTY) == 1


def test_run_line_leaves_scipy_stats_unloaded(write_scenario) -> None:
    """``funnelsim run --assumptions fixed`` starts without scipy.stats (its start-up
    budget); printing the value of information must not bring it in."""
    args = ["run", str(write_scenario(AB)), "--replications", "2", "--workers", "1"]
    out, loaded_scipy_stats = run_in_new_process(*args, "--assumptions", "fixed")
    assert "Value of information" in out and not loaded_scipy_stats


def test_the_plan_and_the_bench_read_the_same_engine_estimates() -> None:
    """One helper (sweeps.variant_means) estimates every variant's rates for the profit
    plan's world and for the bench's truth: the same seed gives the same numbers."""
    sc = scenario()
    world = scenario_world(sc, 3)
    truth = engine_truth(sc, 3)
    assert world.names == truth.names
    np.testing.assert_array_equal(world.conversion, truth.conversion)
    np.testing.assert_array_equal(world.profit_per_visitor, 0.4 * truth.revenue_per_visitor)


def test_test_and_roll_plans_its_length_over_the_worlds() -> None:
    """The bench's test_and_roll plans before it knows the truth: over the scenario's
    worlds (the arms' rates unsure) it tests; with the assumptions fixed it does not."""
    sc = scenario(UNCERTAIN.replace("worlds: 2048", "worlds: 64"))
    truth = engine_truth(sc, 2)
    tested = roll_for_bench(["test_and_roll"], truth, sc, seed=1)
    fixed = sc.with_overrides({"experiment.assumptions": "fixed"})
    untested = roll_for_bench(["test_and_roll"], truth, fixed, seed=1)
    assert tested is not None and tested[0] > 0
    assert untested is not None and untested[0] == 0
    assert roll_for_bench(["fixed"], truth, sc, seed=1) is None
