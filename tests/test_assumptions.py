"""Uncertain assumptions in scenario files, worlds, and what ``run`` reports over them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.experiment import run_experiment
from funnelsim.experiment.readout import Truth, tally_tests
from funnelsim.results import results_dict
from funnelsim.scenario import ScenarioError, parse_scenario
from funnelsim.worlds import (
    central_world,
    expected_metrics,
    realise,
    sample_worlds,
    scenario_assumptions,
    world_funnels,
    world_metrics,
)

BASE = """\
name: uncertain
seed: 3
traffic:
  visitors_per_day: 3000
  days: 7
  channels:
    organic: {share: 0.7}
    paid: {share: 0.3, intent: 1.2}
segments:
  mobile: {share: 0.6, page_load_s: 3.0}
  desktop: {share: 0.4, page_load_s: 1.5}
stages:
  - name: landing
    rate: {uncertain: beta, mean: 0.55, sd: 0.05}
    friction: {page_load: true}
  - name: checkout
    rate: 0.5
    friction: {form_fields: 12, login_wall: required}
value:
  order_value: {dist: lognormal, mean: {uncertain: normal, mean: 60, sd: 6}, sd: 30}
  margin: 0.3
  retention: {repeat_per_month: 0.1, churn_per_month: 0.1}
coefficients:
  form_fields:
    hazard_per_field: {uncertain: triangular, low: 0.015, mode: 0.04, high: 0.07}
variants:
  control: {}
  short_form: {stages.checkout.friction.form_fields: 8}
  guest: {stages.checkout.friction.login_wall: optional}
  cheap_form:
    stages.checkout.friction.form_fields: 8
    coefficients.form_fields.hazard_per_field: {uncertain: uniform, low: 0.0, high: 0.02}
experiment: {replications: 30, worlds: 64}
"""
HAZARD = "coefficients.form_fields.hazard_per_field"


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    return caught.value


# --------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{uncertain: beta, mean: 0.55, sd: 0.05}",
            "{uncertain: weibull, mean: 0.55, sd: 0.05}",
            "s.yaml:14: stages[0].rate: unknown uncertain 'weibull' (one of uniform, normal,",
        ),
        (
            "{uncertain: beta, mean: 0.55, sd: 0.05}",
            "{uncertain: uniform, low: 0.5, high: 1.5}",
            "s.yaml:14: stages[0].rate: uniform(low 0.5, high 1.5) reaches outside the valid "
            "range (between 0 and 1)",
        ),
        (
            "{uncertain: beta, mean: 0.55, sd: 0.05}",
            "{uncertain: beta, mean: 0.55}",
            "s.yaml:14: stages[0].rate: uncertain quantity needs 'sd'",
        ),
        (
            "form_fields: 12,",
            "form_fields: {uncertain: uniform, low: 8, high: 12},",
            "s.yaml:18: stages[1].friction.form_fields: cannot be uncertain: only a "
            "real-valued model quantity can",
        ),
        (
            "{dist: lognormal, mean: {uncertain: normal, mean: 60, sd: 6}, sd: 30}",
            "{uncertain: normal, mean: 60, sd: 6}",
            "s.yaml:20: value.order_value: cannot be uncertain: only a real-valued model "
            "quantity can (a distribution's parameters can: {dist: constant, value: "
            "{uncertain: ...}})",
        ),
        (
            "organic: {share: 0.7}",
            "organic: {share: {uncertain: uniform, low: 0.6, high: 0.8}}",
            "s.yaml:7: traffic.channels.organic.share: cannot be uncertain: shares must sum to 1",
        ),
        (
            "{uncertain: uniform, low: 0.0, high: 0.02}",
            "{uncertain: uniform, low: 0.0, high: 2}",
            "s.yaml:32: variants.cheap_form: coefficients.form_fields.hazard_per_field: "
            "uniform(low 0, high 2) reaches outside the valid range (between 0 and 1)",
        ),
        (
            "experiment: {replications: 30, worlds: 64}",
            "experiment: {replications: 30, rope: {uncertain: uniform, low: 0.01, high: 0.02}}",
            "s.yaml:33: experiment.rope: cannot be uncertain: the experiment's settings are not "
            "assumptions",
        ),
    ],
)
def test_mistakes_in_uncertain_quantities_name_file_line_and_field(
    old: str, new: str, expected: str
) -> None:
    assert old in BASE
    assert str(error_of(BASE.replace(old, new, 1))).startswith(expected)


def test_the_cli_reports_them_in_one_line_with_exit_2(write_scenario) -> None:
    path = write_scenario(BASE.replace("sd: 0.05}", "sd: 0.9}"))
    result = CliRunner().invoke(main, ["run", str(path), "-q"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {path}:14: stages[0].rate: sd must be below sqrt(mean (1 - mean)) = 0.4975 "
        "for a beta, got 0.9"
    ]


def test_assumptions_are_central_in_the_scenario_and_listed_by_key() -> None:
    scenario = parse_scenario(BASE)
    assert scenario.stages[0].rate == 0.55
    assert scenario.coefficients.form_fields.hazard_per_field == 0.04
    keys = [a.key for a in scenario.assumptions]
    assert keys[:3] == ["stages.landing.rate", "value.order_value.mean", HAZARD]
    # then the ranges of the calibrated defaults the file leaves to their default
    assert all(a.default for a in scenario.assumptions[3:])
    assert "coefficients.login_wall.required" in keys[3:] and HAZARD not in keys[3:]
    assert [a.key for a in scenario_assumptions(scenario)] == [
        *keys[:3],
        "coefficients.login_wall.required",  # the defaults acting on some variant
        "coefficients.page_load.max_extra",
        f"variants.cheap_form.{HAZARD}",
    ]
    own = scenario.variant("cheap_form").assumptions
    assert [a.key for a in own][-1] == f"variants.cheap_form.{HAZARD}"
    assert own[-1].field == HAZARD


def test_a_variant_shares_the_worlds_draw_unless_it_brings_its_own() -> None:
    scenario = parse_scenario(BASE)
    worlds = sample_worlds(scenario, 16, seed=2)
    assert worlds.keys[-1] == f"variants.cheap_form.{HAZARD}"
    for i in range(len(worlds)):
        world = worlds.world(i)
        short = realise(scenario.variant("short_form"), world)
        cheap = realise(scenario.variant("cheap_form"), world)
        control = realise(scenario.variant("control"), world)
        assert short.coefficients.form_fields.hazard_per_field == world[HAZARD]
        assert control.stages[0].rate == short.stages[0].rate == world["stages.landing.rate"]
        assert (
            cheap.coefficients.form_fields.hazard_per_field
            == world[f"variants.cheap_form.{HAZARD}"]
        )
    own = worlds.values[:, -1]
    assert own.min() >= 0.0 and own.max() <= 0.02
    assert not np.allclose(own, worlds.values[:, 2])  # drawn independently of the base's


def test_exact_world_values_agree_with_the_simulation() -> None:
    scenario = parse_scenario(BASE)
    result = run_experiment(scenario, 60, Execution(seed=5))
    funnels = world_funnels(scenario, central_world(scenario))
    for summary, funnel in zip(result.variants, funnels, strict=True):
        for metric, exact in zip(
            ("conversion", "revenue_per_visitor", "clv_per_visitor"),
            expected_metrics(funnel),
            strict=True,
        ):
            interval = summary.metrics[metric]
            half = interval.high - interval.mean  # t-interval: about 2 standard errors
            assert abs(interval.mean - exact) < 2.5 * half, (summary.name, metric)


# --------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def uncertain_run():
    return run_experiment(parse_scenario(BASE))


def test_run_reports_uplifts_over_worlds(uncertain_run) -> None:
    effects = uncertain_run.assumptions
    assert effects is not None and effects.worlds == 64 and effects.level == 0.9
    scenario = uncertain_run.scenario
    worlds = sample_worlds(scenario, 64, scenario.seed)
    values = np.array([world_metrics(scenario, worlds.world(i)) for i in range(len(worlds))])
    uplift = values[:, 1, 0] / values[:, 0, 0] - 1
    short = effects.effects["short_form"]["conversion"]
    assert short.prob_beats_control == 1.0  # four fewer fields never hurt
    assert short.prob_best == pytest.approx(np.mean(values[:, :, 0].argmax(axis=1) == 1))
    monte_carlo = next(s for s in uncertain_run.variants if s.name == "short_form").uplift
    assert short.central == monte_carlo["conversion"].mean
    assert short.low < monte_carlo["conversion"].low and short.high > monte_carlo["conversion"].high
    assert short.high - short.low == pytest.approx(
        (monte_carlo["conversion"].high - monte_carlo["conversion"].low)
        + np.quantile(uplift, 0.95)
        - np.quantile(uplift, 0.05)
    )
    assert next(iter(short.drivers)) == HAZARD and short.drivers[HAZARD] > 0.8


def test_results_json_keeps_the_monte_carlo_interval(uncertain_run) -> None:
    document = json.loads(json.dumps(results_dict(uncertain_run)))
    uplift = document["variants"]["short_form"]["uplift_vs_control"]["conversion"]
    assert uplift["interval"] == "assumptions and Monte Carlo" and uplift["level"] == 0.9
    assert uplift["monte_carlo"]["level"] == 0.95
    assert uplift["monte_carlo"]["mean"] == uplift["mean"]
    assert (
        uplift["low"]
        < uplift["monte_carlo"]["low"]
        < uplift["monte_carlo"]["high"]
        < uplift["high"]
    )
    assert set(uplift) >= {"prob_beats_control", "prob_best", "drivers"}
    assert document["assumptions"]["worlds"] == 64


def test_an_uplift_no_uncertain_input_enters_keeps_the_monte_carlo_interval() -> None:
    # Only the landing rate and the page-load curve are uncertain (the file sets the
    # login wall's hazard): a shorter form or a guest checkout scales every cell's
    # checkout alike, so both cancel in the uplift and every world agrees.
    text = (
        BASE.replace("coefficients:\n", "coefficients:\n  login_wall: {required: 0.1334}\n")
        .replace("{uncertain: normal, mean: 60, sd: 6}", "60")
        .replace("{uncertain: triangular, low: 0.015, mode: 0.04, high: 0.07}", "0.04")
        .replace("{uncertain: uniform, low: 0.0, high: 0.02}", "0.01")
    )
    result = run_experiment(parse_scenario(text))
    assert result.assumptions is not None
    for name in ("short_form", "guest"):
        effect = result.assumptions.effects[name]["conversion"]
        # equal up to rounding: the worlds' uplifts differ from the central one by ~1e-16
        assert (effect.central, effect.low, effect.high) == pytest.approx(
            tuple(effect.monte_carlo), rel=0, abs=1e-12
        )
        assert effect.drivers == {}


def test_fixed_assumptions_give_the_point_value_run(write_scenario, uncertain_run) -> None:
    fixed = run_experiment(
        parse_scenario(BASE.replace("worlds: 64}", "worlds: 64, assumptions: fixed}"))
    )
    assert fixed.assumptions is None
    document = results_dict(fixed)
    uplift = document["variants"]["short_form"]["uplift_vs_control"]["conversion"]
    assert uplift["interval"] == "monte_carlo"
    assert {k: uplift[k] for k in ("mean", "low", "high")} == {
        k: uplift["monte_carlo"][k] for k in ("mean", "low", "high")
    }
    # the replications are the same: they always run at the central values
    central = results_dict(uncertain_run)["variants"]["short_form"]["uplift_vs_control"]
    assert central["conversion"]["monte_carlo"] == uplift["monte_carlo"]
    path = write_scenario(BASE)
    out = CliRunner().invoke(main, ["run", str(path), "--assumptions", "fixed", "--json"])
    assert out.exit_code == 0, out.output
    assert (
        json.loads(out.output)["variants"]["short_form"]["uplift_vs_control"]
        == (document["variants"]["short_form"]["uplift_vs_control"])
    )


def test_same_seed_same_worlds_serial_and_pool(uncertain_run) -> None:
    pooled = run_experiment(parse_scenario(BASE), None, Execution(workers=2))
    assert results_dict(pooled) == results_dict(uncertain_run)


def test_the_run_prints_the_plain_words(write_scenario) -> None:
    path = write_scenario(BASE)
    result = CliRunner().invoke(main, ["run", str(path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())  # the words wrap at the terminal's width
    effect = run_experiment(parse_scenario(BASE)).assumptions.effects["short_form"]
    words = effect["conversion"].describe(0.9)
    assert "\nshort_form: " in result.output and f"short_form: {words}" in printed
    assert f"of that spread is {HAZARD}" in words and "over what we do not know (90%)" in words
    assert math.isfinite(effect["conversion"].low)


# --------------------------------------------------------------------------- sensitivity CLI


def test_sensitivity_writes_its_files_and_refuses_to_overwrite(write_scenario, tmp_path) -> None:
    path = write_scenario(BASE)
    out = tmp_path / "out"
    args = ["sensitivity", str(path), "--variant", "short_form", "--samples", "64"]
    report = tmp_path / "sensitivity.html"
    first = CliRunner().invoke(
        main, [*args, "--workers", "1", "--out", str(out), "--report", str(report)]
    )
    assert first.exit_code == 0, first.output
    page = report.read_text(encoding="utf-8")
    assert "What the decision hangs on" in page and HAZARD in page and "data:image/png" in page
    document = json.loads((out / "sensitivity.json").read_text())
    assert list(document)[:4] == ["metric", "variant", "indices", "flips"]
    assert next(iter(document["indices"])) == HAZARD
    assert (out / "sensitivity.png").read_bytes().startswith(b"\x89PNG")
    again = CliRunner().invoke(main, [*args, "--workers", "1", "--out", str(out)])
    assert again.exit_code == 2 and "use --force" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "nope"], "error: --variant: no variant 'nope'; variants: control,"),
        (["--samples", "100"], "error: --samples: must be a power of 2, got 100"),
    ],
)
def test_sensitivity_usage_errors(write_scenario, args: list[str], message: str) -> None:
    path = write_scenario(BASE)
    result = CliRunner().invoke(main, ["sensitivity", str(path), *args])
    assert result.exit_code == 2
    assert result.output.startswith(message)


# --------------------------------------------------------------------------- A/B truth per world


def test_tests_judge_each_against_its_own_worlds_truth() -> None:
    truths = [Truth("a", False), Truth("b", False), Truth("b", True), Truth("a", True)]
    decisions = [("ship", "a"), ("ship", "a"), ("stop", None), ("keep_testing", None)]
    assert tally_tests(decisions, truths) == {
        "ship_best": 0.25,
        "ship_other": 0.25,
        "stop": 0.25,
        "keep_testing": 0.25,
        "right": 0.5,  # the first ships its world's best, the third stops on an equivalent
    }


def test_world_tests_are_the_aggregate_engines_tests_where_no_assumption_moves_them() -> None:
    # Only the order value is uncertain (the file sets the calibrated coefficients): no
    # world changes who buys, so each world's test is the aggregate engine's test of the
    # same replication, decision for decision.
    pinned = "coefficients:\n  login_wall: {required: 0.1334}\n  page_load: {max_extra: 1.2}\n"
    text = (
        BASE.replace("coefficients:\n", pinned)
        .replace("{uncertain: beta, mean: 0.55, sd: 0.05}", "0.55")
        .replace("{uncertain: triangular, low: 0.015, mode: 0.04, high: 0.07}", "0.04")
        .replace("{uncertain: uniform, low: 0.0, high: 0.02}", "0.01")
    )
    result = run_experiment(parse_scenario(text), None, Execution(engine="aggregate"))
    assert [a for a in result.assumptions.assumptions] == ["value.order_value.mean"]
    assert result.test_outcomes_over_worlds == result.test_outcomes


def test_world_tests_need_a_conversion_readout(uncertain_run) -> None:
    assert uncertain_run.test_outcomes_over_worlds is not None
    on_clv = run_experiment(
        parse_scenario(BASE.replace("worlds: 64}", "worlds: 64, metric: clv_per_visitor}")),
        replications=4,
    )
    assert on_clv.assumptions is not None and on_clv.test_outcomes_over_worlds is None


# --------------------------------------------------------------------------- queues


QUEUE = """\
name: queue
seed: 2
traffic: {visitors_per_day: 200, days: 3}
resources:
  reps: {capacity: 1, service_min: {dist: exponential, mean: {uncertain: uniform, low: 4, high: 8}}}
stages:
  - {name: enquiry, rate: 0.3}
  - name: call
    rate: 0.5
    resource: reps
    patience_min: {dist: exponential, mean: 30}
value:
  order_value: {dist: lognormal, mean: {uncertain: normal, mean: 100, sd: 10}, sd: 40}
variants:
  control: {}
  two_reps: {resources.reps.capacity: 2}
experiment: {replications: 6}
"""


def test_queues_are_simulated_per_world_on_the_same_visitors() -> None:
    result = run_experiment(parse_scenario(QUEUE))
    effects = result.assumptions
    assert effects is not None and effects.simulated
    assert effects.worlds == 8  # the run has 6 replications: at least 8 worlds, at most 32
    assert result.test_outcomes_over_worlds is None  # no exact buy chance behind a queue
    # a second rep always helps; a simulated world's noise is not apportioned to the
    # assumptions
    conversion = effects.effects["two_reps"]["conversion"]
    assert conversion.prob_beats_control == 1.0
    assert conversion.drivers == {}
    fixed_service = QUEUE.replace("{uncertain: uniform, low: 4, high: 8}", "6")
    only_value = run_experiment(parse_scenario(fixed_service)).assumptions
    # every world meets the same visitors, so a conversion no assumption moves keeps
    # the Monte Carlo interval
    effect = only_value.effects["two_reps"]["conversion"]
    assert (effect.central, effect.low, effect.high) == pytest.approx(
        tuple(effect.monte_carlo), rel=0, abs=1e-12
    )


def test_the_html_report_shows_the_uplifts_over_what_we_do_not_know(uncertain_run) -> None:
    from funnelsim.html_report import experiment_report, render_html

    page = render_html(experiment_report(uncertain_run))
    assert "Over what we do not know" in page
    assert "90% interval over 64 worlds" in page and f"{HAZARD} " in page


def test_the_frame_has_the_bounds_over_assumptions(uncertain_run) -> None:
    frame = uncertain_run.to_frame()
    effect = uncertain_run.assumptions.effects["short_form"]["conversion"]
    row = frame.loc["short_form"]
    assert (
        row["uplift_conversion_assumptions_low"],
        row["uplift_conversion_assumptions_high"],
    ) == (
        effect.low,
        effect.high,
    )
    assert row["prob_beats_control_worlds"] == effect.prob_beats_control
    assert (
        frame.loc["control", "prob_best_worlds"]
        == (uncertain_run.assumptions.prob_best["control"]["conversion"])
    )


def test_the_plain_words_follow_the_judged_metric() -> None:
    from funnelsim.report import assumption_lines

    on_clv = BASE.replace("worlds: 64}", "worlds: 64, metric: clv_per_visitor}")
    effects = run_experiment(parse_scenario(on_clv), 4).assumptions
    lines = assumption_lines(effects, "clv_per_visitor")
    short = effects.effects["short_form"]["clv_per_visitor"]
    assert f"short_form (CLV per visitor): {short.describe(0.9)}" in lines


def test_the_words_name_a_source_only_for_a_spread_beyond_the_monte_carlo_error() -> None:
    from funnelsim.results import Effect

    drivers = {HAZARD: 0.82}
    wide = Effect(0.18, 0.06, 0.29, (0.18, 0.177, 0.181), 1.0, 0.6, drivers, spread=0.22)
    assert wide.describe(0.9) == (
        f"+18% if the stated values hold; +6% to +29% over what we do not know (90%); "
        f"82% of that spread is {HAZARD}"
    )
    narrow = Effect(0.06, 0.059, 0.061, (0.06, 0.0595, 0.0605), 1.0, 0.0, drivers, spread=0.0005)
    assert narrow.describe(0.9).endswith(
        "; the assumptions move it less than the Monte Carlo error"
    )


@pytest.mark.parametrize("worlds", [64, 101, 256])
def test_driver_shares_are_salibs_rbd_fast(worlds: int) -> None:
    """run's RBD-FAST shares (NumPy's FFT) equal SALib's S1 on the same points, for an
    even and an odd number of worlds, and are NaN where the output does not vary."""
    from SALib.analyze import rbd_fast

    from funnelsim.propagation import first_order_share

    x = np.random.default_rng(worlds).random((worlds, 3))
    y = np.exp(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.1 * x[:, 0] * x[:, 2]
    problem = {"num_vars": 3, "names": ["a", "b", "c"], "bounds": [[0.0, 1.0]] * 3}
    salib = rbd_fast.analyze(problem, x, y, M=6, num_resamples=2, seed=1)["S1"]
    ours = [first_order_share(x[:, j], y, 6) for j in range(3)]
    np.testing.assert_allclose(ours, salib, rtol=0, atol=1e-12)
    assert np.isnan(first_order_share(x[:, 0], np.ones(worlds), 6))


def _conversion_uplifts(scenario, worlds) -> np.ndarray:
    """(worlds, variants): each variant's conversion uplift over control per world."""
    values = np.array(
        [world_metrics(scenario, worlds.world(i), 0)[:, 0] for i in range(len(worlds))]
    )
    return values / values[:, :1] - 1.0


def test_halton_worlds_agree_with_independent_worlds_within_their_monte_carlo_error() -> None:
    """checkout.yaml's 128 randomised Halton worlds (what ``run`` shows) against 2,048
    independent uniform worlds: at each variant's 5% and 95% quantile of the conversion
    uplift (the ends of its 90% interval over assumptions) the reference's CDF is the
    level, and each P(best) is the reference's, within 4 standard errors of the two
    estimates (a share's binomial error; a quantile's, on the CDF scale, is the same)."""
    from conftest import SCENARIOS
    from funnelsim.scenario import load_scenario
    from funnelsim.uncertainty import values_at
    from funnelsim.worlds import Worlds

    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    halton = sample_worlds(scenario, scenario.experiment.worlds, scenario.seed)
    points = np.random.default_rng(1).random((2048, len(halton.assumptions)))
    independent = Worlds(halton.assumptions, values_at(halton.assumptions, points))
    shown, reference = (
        _conversion_uplifts(scenario, halton),
        _conversion_uplifts(scenario, independent),
    )
    n, m = len(shown), len(reference)
    for level in (0.05, 0.95):
        se = math.sqrt(level * (1 - level) * (1 / n + 1 / m))
        for variant in range(1, shown.shape[1]):
            at = np.quantile(shown[:, variant], level)
            assert abs(np.mean(reference[:, variant] <= at) - level) < 4 * se
    for variant in range(shown.shape[1]):
        share, expected = (np.mean(np.argmax(u, axis=1) == variant) for u in (shown, reference))
        se = math.sqrt(max(expected * (1 - expected), 1 / m) * (1 / n + 1 / m))
        assert abs(share - expected) < 4 * se
