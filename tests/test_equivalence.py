"""Engines agree in distribution: vectorized vs SimPy, vectorized vs aggregate, and the
replication readout vs the full Bayesian readout.

Two engines given *independent* seeds must produce outcome distributions that cannot be
told apart: for every metric, the difference of the replication means stays within
4 standard errors (SE = sqrt(var_a / n_a + var_b / n_b), two-sided p ~ 6e-5), and a
two-sample Kolmogorov-Smirnov test of conversion does not reject at the 0.1% level.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.random import SeedSequence
from scipy import stats

from funnelsim import clv
from funnelsim.analysis.decision import DecisionRule, readout
from funnelsim.engine import aggregate, simpy_engine, vectorized
from funnelsim.engine.draws import VisitorDraws
from funnelsim.engine.model import VariantRuns, compile_funnel
from funnelsim.execution import Execution
from funnelsim.experiment import compile_variants, run_experiment, split_readout
from funnelsim.experiment.runner import replicate
from funnelsim.scenario import ScenarioError, parse_scenario

# Every per-visitor feature the engines share, but no queue: two segments (one with its
# own payment preferences), two channels, page load, contact options, a response delay
# with decay, form fields, login wall and payment methods; two variants.
EVERYTHING = """\
name: everything but queues
seed: 3
traffic:
  visitors_per_day: 2000
  days: 2
  channels:
    search: {share: 0.6}
    social: {share: 0.4, intent: 0.7}
segments:
  mobile: {share: 0.6, page_load_s: 4.0}
  desktop: {share: 0.4, page_load_s: 1.5, payment_preferences: {card: 0.8, paypal: 0.2}}
stages:
  - name: landing
    rate: 0.8
    dwell_min: {dist: exponential, mean: 0.5}
    friction: {page_load: true}
  - name: enquiry
    rate: 0.8
    response_delay_min: {dist: exponential, mean: 10}
    friction: {response_decay: true, contact_options: [email, chat]}
  - name: checkout
    rate: 0.8
    friction: {form_fields: 12, login_wall: required, payment_methods: [card]}
value:
  order_value: {dist: gamma, mean: 50, sd: 20}
variants:
  control: {}
  guest: {stages.checkout.friction.login_wall: none}
"""
REPLICATIONS = 30
SHARES = (0.5, 0.5)


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(EVERYTHING)


def _runs(module, scenario, seed: int, replications: int = REPLICATIONS) -> list[VariantRuns]:
    funnels = compile_variants(scenario)
    traffic = scenario.traffic
    return [
        module.simulate_variants(
            funnels, VisitorDraws(s, traffic.visitors_per_day, traffic.days), SHARES
        )
        for s in SeedSequence(seed).spawn(replications)
    ]


def _metrics(runs: list[VariantRuns]) -> dict[str, np.ndarray]:
    """Per metric, a (replications, variants) array."""
    out = {
        "conversion": [[o.conversion for o in r.outcomes] for r in runs],
        "revenue_per_visitor": [[o.revenue_per_visitor for o in r.outcomes] for r in runs],
        "bounce_rate": [[o.bounce_rate for o in r.outcomes] for r in runs],
        "test_conversion": [r.test_conversions / r.test_visitors for r in runs],
    }
    reasons = np.array(
        [[o.lost_by_reason().sum(axis=0) / o.visitors for o in r.outcomes] for r in runs]
    )  # (replications, variants, reasons)
    for k in np.flatnonzero(reasons.sum(axis=(0, 1))):
        out[f"lost_share_{k}"] = reasons[..., k]
    return {name: np.asarray(values, dtype=float) for name, values in out.items()}


def _assert_same_distribution(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        se = np.sqrt(x.var(axis=0, ddof=1) / len(x) + y.var(axis=0, ddof=1) / len(y))
        diff = np.abs(x.mean(axis=0) - y.mean(axis=0))
        assert (diff <= 4 * se).all(), (name, x.mean(axis=0), y.mean(axis=0), se)
    for v in range(a["conversion"].shape[1]):
        p = stats.ks_2samp(a["conversion"][:, v], b["conversion"][:, v]).pvalue
        assert p > 0.001, (v, p)


def test_vectorized_and_simpy_agree_in_distribution(scenario):
    _assert_same_distribution(
        _metrics(_runs(vectorized, scenario, 101)), _metrics(_runs(simpy_engine, scenario, 202))
    )


def test_vectorized_and_aggregate_agree_in_distribution(scenario):
    _assert_same_distribution(
        _metrics(_runs(vectorized, scenario, 303)), _metrics(_runs(aggregate, scenario, 404))
    )


def test_vectorized_and_simpy_agree_visitor_by_visitor(scenario):
    draws = VisitorDraws(SeedSequence(9), 2000, 2)
    for funnel in compile_variants(scenario):
        a, b = vectorized.simulate(funnel, draws), simpy_engine.simulate(funnel, draws)
        np.testing.assert_array_equal(a.converted, b.converted)
        np.testing.assert_array_equal(a.outcome.reached, b.outcome.reached)
        np.testing.assert_array_equal(a.outcome.lost, b.outcome.lost)
        np.testing.assert_allclose(a.revenue, b.revenue)


def test_aggregate_conversion_matches_the_exact_expectation(scenario):
    # Expected conversion = sum over cells of P(cell) x prod over stages of P(continue).
    runs = _runs(aggregate, scenario, 505, replications=200)
    conversion = np.array([[o.conversion for o in r.outcomes] for r in runs])
    for v, funnel in enumerate(compile_variants(scenario)):
        chance = aggregate.outcome_probabilities(funnel)[..., -1].prod(axis=0)
        exact = float(funnel.cell_probabilities @ chance)
        se = conversion[:, v].std(ddof=1) / math.sqrt(len(conversion))
        assert abs(conversion[:, v].mean() - exact) < 4 * se, (v, exact)


def test_aggregate_closed_form_order_value_sums(scenario):
    # Over 20,000 buyers per cell the gamma sums come from their closed form; per buyer,
    # revenue has mean 50 and revenue squared mean sd^2 + mean^2 = 2,900.
    big = scenario.with_overrides({"traffic.visitors_per_day": 2_500_000})
    funnel = compile_funnel(big.variant("control"))
    ratios = []
    for seed in SeedSequence(606).spawn(40):
        outcome = aggregate.simulate(funnel, VisitorDraws(seed, 2_500_000, 2))
        assert outcome.reached[-1].min() > aggregate.EXACT_SUM_LIMIT
        ratios.append(
            (outcome.revenue.sum() / outcome.buyers, outcome.revenue_sq.sum() / outcome.buyers)
        )
    ratios = np.array(ratios)
    se = ratios.std(axis=0, ddof=1) / math.sqrt(len(ratios))
    assert abs(ratios[:, 0].mean() - 50.0) < 4 * se[0]
    assert abs(ratios[:, 1].mean() - 2900.0) < 4 * se[1]


def test_aggregate_engine_runs_experiments_and_refuses_queues(scenario):
    result = run_experiment(scenario, 3, Execution(engine="aggregate"))
    assert result.engine == "aggregate"
    assert all(r.visitors[0] == r.test_visitors.sum() for r in result.replications)
    queue = parse_scenario(
        EVERYTHING.replace(
            "stages:\n", "resources:\n  desk: {capacity: 1, service_min: 5}\nstages:\n", 1
        ).replace(
            "    rate: 0.8\n    response_delay_min",
            "    rate: 0.8\n    resource: desk\n    response_delay_min",
        )
    )
    with pytest.raises(ValueError, match="aggregate engine cannot simulate shared"):
        run_experiment(queue, 1, Execution(engine="aggregate"))


@pytest.mark.parametrize(
    ("visitors", "conversions"),
    [
        ([4000, 4000], [400, 460]),
        ([4000, 4000], [400, 401]),
        ([100, 100], [0, 100]),
    ],
)
def test_replication_readout_equals_the_full_readout(scenario, visitors, conversions):
    visitors, conversions = np.array(visitors), np.array(conversions)
    lean = split_readout(scenario, visitors, conversions)
    rule = scenario.experiment
    full = readout(
        scenario.variant_names,
        visitors,
        conversions,
        scenario.control,
        DecisionRule(rule.loss_threshold, rule.rope, rule.equivalence_probability),
        prior_alpha=rule.prior.alpha,
        prior_beta=rule.prior.beta,
    )
    np.testing.assert_allclose(lean.prob_best, [v.prob_best for v in full.variants])
    np.testing.assert_allclose(
        lean.prob_beats_control, [v.prob_beats_control for v in full.variants]
    )
    np.testing.assert_allclose(lean.expected_loss, [v.expected_loss for v in full.variants])
    assert (lean.decision, lean.shipped) == (full.decision.action, full.decision.variant)


# --------------------------------------------------------------------------- lifetimes

# Lifetime economics of every kind the cohort path handles: constant and sbg churn,
# fixed and Poisson repeat orders, registered customers (an optional login wall) with
# their own multipliers, nurture, gamma order values (closed-form sums) and log-normal
# ones (drawn); two variants sharing some cells' lifetime models and not others.
LIFETIMES = """\
name: lifetimes
seed: 4
traffic:
  visitors_per_day: 2000
  days: 2
  channels:
    search: {share: 0.6}
    social:
      share: 0.4
      retention: {repeat_per_month: 0.3, churn: sbg, sbg: {alpha: 0.8, beta: 4.0}}
segments:
  mobile: {share: 0.6, order_value: {dist: gamma, mean: 50, sd: 20}}
  desktop: {share: 0.4}
stages:
  - name: landing
    rate: 0.5
  - name: checkout
    rate: 0.6
    friction: {login_wall: optional}
value:
  order_value: {dist: lognormal, mean: 60, sd: 30}
  margin: 0.4
  retention: {repeat_per_month: 0.2, churn_per_month: 0.1, repeat_orders: fixed}
  horizon_months: 12
  nurture: {messages_per_month: 2, repeat_lift_per_message: 0.1, cost_per_message: 0.05}
coefficients:
  login_wall:
    optional_registers: 0.4
    registered_repeat_multiplier: 1.5
    registered_churn_multiplier: 0.6
variants:
  control: {}
  required: {stages.checkout.friction.login_wall: required}
experiment: {metric: clv_per_visitor}
"""
LIFETIME_REPLICATIONS = 80


def _economics(engine: str, scenario, seed: int) -> dict[str, np.ndarray]:
    """Per lifetime metric, a (replications, columns) array of replicate's economics."""
    reps = [replicate(scenario, s, engine) for s in SeedSequence(seed).spawn(LIFETIME_REPLICATIONS)]
    econ = [r.economics for r in reps]
    return {
        "revenue_per_visitor": np.array([r.revenue_per_visitor for r in reps]),
        "clv_per_visitor": np.array([e.clv_per_visitor for e in econ]),
        "clv_per_customer": np.array([e.clv_per_customer for e in econ]),
        "channel_clv_per_customer": np.array(
            [(e.channel_clv / e.channel_customers).ravel() for e in econ]
        ),
        "test_clv_mean": np.array([e.test_clv.mean for e in econ]),
        "test_clv_low": np.array([e.test_clv.low for e in econ]),
        "test_clv_width": np.array([e.test_clv.high - e.test_clv.low for e in econ]),
        "test_beats_control": np.array([e.test_clv.prob_beats_control[1:] for e in econ]),
    }


def _assert_same_spread(x: np.ndarray, y: np.ndarray, name: str) -> None:
    """Replication variances agree: |log(var_x / var_y)| within 4 SE, the SE of a log
    sample variance being sqrt((kurtosis - 1) / n) (delta method)."""
    for column in range(x.shape[1]):
        a, b = x[:, column], y[:, column]
        se = math.sqrt(sum((stats.kurtosis(v, fisher=False) - 1.0) / len(v) for v in (a, b)))
        ratio = a.var(ddof=1) / b.var(ddof=1)
        assert abs(math.log(ratio)) < 4 * se, (name, column, ratio, se)


def test_vectorized_and_aggregate_lifetime_economics_agree_in_distribution():
    """Every metric of one variant has the same mean and spread on both engines. The
    engines pair variants differently (the vectorised engine's variants and test arms
    share customers' lifetime uniforms slot by slot, the aggregate engine's share cohorts
    only where the variants' customers live alike), so a comparison of two arms (P(beats
    control)) must agree in mean only."""
    scenario = parse_scenario(LIFETIMES)
    a, b = _economics("vectorized", scenario, 707), _economics("aggregate", scenario, 808)
    for name in a:
        x, y = a[name], b[name]
        se = np.sqrt(x.var(axis=0, ddof=1) / len(x) + y.var(axis=0, ddof=1) / len(y))
        diff = np.abs(x.mean(axis=0) - y.mean(axis=0))
        assert (diff <= 4 * se).all(), (name, x.mean(axis=0), y.mean(axis=0), se)
        if name != "test_beats_control":
            _assert_same_spread(x, y, name)
    for v in range(2):
        p = stats.ks_2samp(a["clv_per_visitor"][:, v], b["clv_per_visitor"][:, v]).pvalue
        assert p > 0.001, (v, p)


def _expected_clv_per_customer(scenario, cell_buyers: np.ndarray) -> float:
    """The closed-form CLV (clv.expected_clv) of a customer, averaged over the cells'
    buyers and the registered share, the first order at its distribution's mean."""
    share = clv.registration_share(scenario)
    total = 0.0
    for (g, segment), (c, channel) in itertools.product(
        enumerate(scenario.segments), enumerate(scenario.traffic.channels)
    ):
        _, order_value = clv.customer_terms(scenario, segment, channel)
        value = [
            clv.expected_clv(
                clv.lifetime_model(scenario, segment, channel, flag), order_value.mean_value
            )
            for flag in (False, True)
        ]
        total += cell_buyers[g, c] * ((1.0 - share) * value[0] + share * value[1])
    return total / cell_buyers.sum()


def test_aggregate_clv_matches_the_closed_form():
    # A million visitors a replication: hundreds of thousands of customers, whose mean CLV
    # must sit within 4 SE of the closed form at the cells' expected buyers.
    scenario = parse_scenario(LIFETIMES).with_overrides({"traffic.visitors_per_day": 500_000})
    reps = [replicate(scenario, s, "aggregate") for s in SeedSequence(909).spawn(40)]
    for v, funnel in enumerate(compile_variants(scenario)):
        chance = aggregate.continue_probabilities(funnel).prod(axis=0) * funnel.cell_probabilities
        n_g, n_c = len(scenario.segments), len(scenario.traffic.channels)
        buyers = chance.reshape(n_g, n_c, -1).sum(axis=2)
        exact = _expected_clv_per_customer(funnel.scenario, buyers)
        values = np.array([r.economics.clv_per_customer[v] for r in reps])
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - exact) < 4 * se, (v, values.mean(), exact, se)
        assert 4 * se < 0.002 * exact, "the test is too weak to tell the model apart"


def test_aggregate_lifetime_economics_repeat_with_the_seed():
    scenario = parse_scenario(LIFETIMES).with_overrides({"traffic.visitors_per_day": 5e6})
    seed = SeedSequence(11)
    first, again = replicate(scenario, seed, "aggregate"), replicate(scenario, seed, "aggregate")
    for name in ("clv_per_visitor", "channel_clv", "channel_payback_months"):
        np.testing.assert_array_equal(
            getattr(first.economics, name), getattr(again.economics, name)
        )
    np.testing.assert_array_equal(first.economics.test_clv.mean, again.economics.test_clv.mean)


def test_aggregate_refuses_more_customers_than_its_test_can_follow():
    # Every visitor buys (gamma order values: their sums are one draw a cell): over a
    # billion customers a variant, refused at the traffic field's line.
    text = (
        LIFETIMES.replace("rate: 0.5", "rate: 1.0")
        .replace("rate: 0.6", "rate: 1.0")
        .replace("dist: lognormal", "dist: gamma")
    )
    huge = parse_scenario(text).with_overrides({"traffic.visitors_per_day": 6e8})
    with pytest.raises(ScenarioError, match=r"traffic.visitors_per_day.*more than the 999,999,999"):
        replicate(huge, SeedSequence(1), "aggregate")
