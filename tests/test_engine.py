"""Engines: analytic conversion, Erlang-A queues, congestion, CRN and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from conftest import MINIMAL, SCENARIOS
from funnelsim.engine import simpy_engine, vectorized
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.engine.model import compile_funnel
from funnelsim.engine.outcomes import REASON_INDEX
from funnelsim.queueing import erlang_a_abandonment
from funnelsim.scenario import load_scenario, parse_scenario


def _simulate(scenario, engine, seed=0, replication=0):
    seeds = replication_seeds(seed, replication + 1)
    draws = VisitorDraws(
        seeds[replication], scenario.traffic.visitors_per_day, scenario.traffic.days
    )
    module = simpy_engine if engine == "simpy" else vectorized
    return module.simulate(compile_funnel(scenario), draws)


@pytest.mark.parametrize("engine", ["vectorized", "simpy"])
def test_conversion_is_product_of_stage_rates(engine):
    text = MINIMAL.replace("visitors_per_day: 1000", "visitors_per_day: 20000")
    text = text.replace("  - name: checkout", "  - name: cart\n    rate: 0.7\n  - name: checkout")
    scenario = parse_scenario(text)
    outcome = _simulate(scenario, engine).outcome
    expected = 0.5 * 0.7 * 0.4
    se = math.sqrt(expected * (1 - expected) / outcome.visitors)
    assert abs(outcome.conversion - expected) < 4 * se
    assert outcome.visitors > 35_000


def test_engines_agree_visitor_by_visitor_without_queues():
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    for name in scenario.variant_names:
        funnel = compile_funnel(scenario.variant(name))
        a = _simulate(funnel.scenario, "vectorized", seed=3)
        b = _simulate(funnel.scenario, "simpy", seed=3)
        np.testing.assert_array_equal(a.converted, b.converted)
        np.testing.assert_array_equal(a.outcome.lost, b.outcome.lost)
        np.testing.assert_allclose(a.revenue, b.revenue)


def test_variants_played_together_match_each_played_alone_and_simpy():
    """simulate_variants shares the stages where variants agree, the draws and the buyers'
    order values: each variant's tally equals its own run, and SimPy's, visitor by visitor
    (the test's arms too)."""
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides(
        {"traffic.visitors_per_day": 500}
    )
    funnels = [compile_funnel(scenario.variant(name)) for name in scenario.variant_names]
    draws = VisitorDraws(replication_seeds(8, 1)[0], 500, scenario.traffic.days)
    shares = [0.25] * 4
    together = vectorized.simulate_variants(funnels, draws, shares)
    simpy_runs = simpy_engine.simulate_variants(funnels, draws, shares)
    for funnel, mine, theirs in zip(funnels, together.outcomes, simpy_runs.outcomes, strict=True):
        alone = vectorized.simulate(funnel, draws).outcome
        for outcome in (alone, theirs):
            np.testing.assert_array_equal(mine.reached, outcome.reached)
            np.testing.assert_array_equal(mine.lost, outcome.lost)
            np.testing.assert_allclose(mine.revenue, outcome.revenue)
    np.testing.assert_array_equal(together.test_visitors, simpy_runs.test_visitors)
    np.testing.assert_array_equal(together.test_conversions, simpy_runs.test_conversions)
    assert together.test_conversions.sum() > 0


CONTACT = """\
name: contact options
seed: 2
traffic:
  visitors_per_day: 3000
  days: 1
  channels: {search: {share: 0.7}, social: {share: 0.3, intent: 0.8}}
segments:
  mobile: {share: 0.5, page_load_s: 3.0}
  desktop: {share: 0.5, page_load_s: 1.2}
stages:
  - {name: landing, rate: 0.9, friction: {page_load: true}}
  - name: enquiry
    rate: 0.8
    response_delay_min: {dist: exponential, mean: 20}
    friction: {response_decay: true, contact_options: [email], form_fields: 16}
  - {name: order, rate: 0.7, friction: {login_wall: required, payment_methods: [card]}}
value:
  order_value: {dist: lognormal, mean: 40, sd: 20}
"""


def test_engines_agree_visitor_by_visitor_where_contact_options_matter():
    """Shared preferences (one cell table for all segments) with contact options offered, a
    response delay and several frictions at one stage: the vectorized engine draws the
    contact option and agrees with SimPy visitor by visitor."""
    scenario = parse_scenario(CONTACT)
    a = _simulate(scenario, "vectorized", seed=4)
    b = _simulate(scenario, "simpy", seed=4)
    np.testing.assert_array_equal(a.converted, b.converted)
    np.testing.assert_array_equal(a.outcome.lost, b.outcome.lost)
    np.testing.assert_allclose(a.revenue, b.revenue)
    lost = a.outcome.lost_by_reason()
    for stage, reason in [
        (0, "page_load"),
        (1, "form_fields"),
        (1, "contact"),
        (1, "response"),
        (2, "login_wall"),
        (2, "payment"),
    ]:
        assert lost[stage, REASON_INDEX[reason]] > 0, (stage, reason)


ERLANG_A = """\
name: desk
traffic: {visitors_per_day: 720, days: 2}
resources:
  agents: {capacity: 2, service_min: {dist: exponential, mean: 5}}
stages:
  - name: desk
    rate: 1.0
    resource: agents
    patience_min: {dist: exponential, mean: 10}
value:
  order_value: 10
"""


def test_single_stage_queue_matches_erlang_a():
    scenario = parse_scenario(ERLANG_A)
    funnel = compile_funnel(scenario)
    seeds = replication_seeds(2024, 20)
    shares = []
    for seed in seeds:
        draws = VisitorDraws(seed, 720, 2)
        queues = simpy_engine.simulate(funnel, draws).outcome.queues
        shares.append(queues.abandoned[0] / queues.arrivals[0])
    expected = erlang_a_abandonment(0.5, 0.2, 0.1, servers=2)
    mean, se = np.mean(shares), np.std(shares, ddof=1) / math.sqrt(len(shares))
    t = stats.t.ppf(0.9995, len(shares) - 1)
    assert abs(mean - expected) < t * se, (mean, expected, se)
    assert 0.2 < expected < 0.6


CONGESTED = """\
name: congested
traffic: {visitors_per_day: 60, days: 7}
resources:
  reps: {capacity: 2, service_min: {dist: exponential, mean: 30}}
stages:
  - name: call
    rate: 0.6
    resource: reps
    patience_min: {dist: exponential, mean: 60}
    friction: {response_decay: true}
value:
  order_value: 100
"""


def test_doubling_traffic_with_same_staff_lowers_conversion():
    base = parse_scenario(CONGESTED)
    doubled = base.with_overrides({"traffic.visitors_per_day": 120})
    seeds = replication_seeds(5, 30)
    conv = {}
    for label, scenario in (("base", base), ("doubled", doubled)):
        funnel = compile_funnel(scenario)
        conv[label] = np.array(
            [
                simpy_engine.simulate(
                    funnel, VisitorDraws(s, scenario.traffic.visitors_per_day, 7)
                ).outcome.conversion
                for s in seeds
            ]
        )
    diff = conv["base"].mean() - conv["doubled"].mean()
    se = math.sqrt(conv["base"].var(ddof=1) / 30 + conv["doubled"].var(ddof=1) / 30)
    assert diff > 4 * se > 0


def test_common_random_numbers_narrow_the_uplift_interval():
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides({"traffic.days": 3})
    control = compile_funnel(scenario.variant("control"))
    short = compile_funnel(scenario.variant("short_form"))
    seeds = replication_seeds(99, 60)
    crn, independent = [], []
    for r in range(0, 60, 2):
        draws_a = VisitorDraws(seeds[r], 2000, 3)
        draws_b = VisitorDraws(seeds[r + 1], 2000, 3)
        base = vectorized.simulate(control, draws_a).outcome.conversion
        crn.append(vectorized.simulate(short, draws_a).outcome.conversion / base - 1)
        independent.append(vectorized.simulate(short, draws_b).outcome.conversion / base - 1)
    # F-test of equal variances, one-sided: CRN must be far narrower.
    ratio = np.var(independent, ddof=1) / np.var(crn, ddof=1)
    assert ratio > stats.f.ppf(0.999, 29, 29)
    assert np.var(crn, ddof=1) < np.var(independent, ddof=1) / 4
