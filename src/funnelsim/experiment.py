"""Variants x replications with common random numbers, and the simulated A/B test.

Each replication deals one set of visitors (see :mod:`funnelsim.engine.draws`)
and plays every variant on it, so variants differ only where they change the
funnel. That gives two answers:

* **Expected effect** (ground truth of the model): per variant, the mean over
  replications of conversion, revenue and CLV per visitor with a 95% interval
  for that mean, and the paired relative uplift over control.
* **What a real test would conclude**: the same visitors are split among the
  variants as the scenario's experiment says (each visitor sees one variant),
  and the Bayesian readout reads the test as it would read real data. Over
  replications: how often it ships, stops or keeps testing, and how often it
  ships the truly best variant.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import NDArray

from funnelsim import clv, parallel
from funnelsim.analysis import conjugate, lifetime
from funnelsim.analysis.decision import DecisionRule, decide, decide_on_draws
from funnelsim.engine import aggregate, simpy_engine, vectorized
from funnelsim.engine.draws import MINUTES_PER_DAY, VisitorDraws, replication_seeds
from funnelsim.engine.model import (
    CompiledFunnel,
    VariantRuns,
    compile_funnel,
    refuse_coupled_visitors,
)
from funnelsim.engine.outcomes import REASONS, Outcome
from funnelsim.scenario import Scenario

if TYPE_CHECKING:
    import pandas

EngineName = Literal["auto", "simpy", "vectorized", "aggregate"]
FloatArray = NDArray[np.float64]
ECONOMICS = ("clv_per_customer", "cac", "ltv_to_cac")
METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor", *ECONOMICS)
# Uniforms per customer slot: the 3 of clv.customer_value, then for the simulated test
# a sample key (which customers an arm wins) and the first order's value.
LIFETIME_COLUMNS = 5
READOUT_DRAWS = 2000  # Monte Carlo sd of a P(beats control) at most 0.011
DECISIONS = ("ship", "reject", "stop", "keep_testing")  # of one variant, in one test


def choose_engine(funnels: Iterable[CompiledFunnel], engine: EngineName = "auto") -> str:
    """The engine to use: SimPy where any variant shares a resource or feeds referred
    visitors back (see :mod:`funnelsim.engine.referral`), else NumPy.

    ``aggregate`` (counts drawn directly, see :mod:`funnelsim.engine.aggregate`) is
    never chosen automatically: it is for runs where only counts matter and visitors
    are too many to simulate one by one.
    """
    funnels = list(funnels)
    if engine in ("vectorized", "aggregate"):
        refuse_coupled_visitors(funnels, engine)
    if engine == "auto":
        return "simpy" if any(f.couples_visitors for f in funnels) else "vectorized"
    return engine


ENGINES = {"simpy": simpy_engine, "vectorized": vectorized, "aggregate": aggregate}


def simulate_variants(
    funnels: Sequence[CompiledFunnel], draws: VisitorDraws, engine: str, shares: Sequence[float]
) -> VariantRuns:
    """Every variant on one replication's visitors, and the A/B test split by ``shares``."""
    return ENGINES[engine].simulate_variants(funnels, draws, shares)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Replication:
    """One replication: per variant (rows, control first) the full-traffic outcome and
    the readout of the simulated split test."""

    visitors: NDArray[np.int64]
    conversion: FloatArray
    revenue_per_visitor: FloatArray
    clv_per_visitor: FloatArray
    bounce_rate: FloatArray
    stage_rates: FloatArray  # (variants, stages)
    lost: NDArray[np.int64]  # (variants, stages, reasons)
    queue_abandonment: FloatArray  # (variants, resources)
    queue_wait_min: FloatArray  # (variants, resources)
    queue_utilisation: FloatArray  # (variants, resources)
    test_visitors: NDArray[np.int64]
    test_conversions: NDArray[np.int64]
    prob_best: FloatArray
    prob_beats_control: FloatArray
    expected_loss: FloatArray
    decision: str
    shipped: str | None
    economics: Economics


@dataclass(frozen=True)
class Economics:
    """Lifetime value and acquisition economics of one replication, per variant (rows)."""

    clv_per_visitor: FloatArray
    clv_per_customer: FloatArray
    cac: FloatArray
    ltv_to_cac: FloatArray
    payback_months: FloatArray
    channel_visitors: FloatArray  # (variants, channels)
    channel_spend: FloatArray  # (variants, channels)
    channel_customers: FloatArray  # (variants, channels)
    channel_clv: FloatArray  # (variants, channels): CLV of all the channel's customers
    channel_payback_months: FloatArray  # (variants, channels)
    leads: FloatArray  # NaN without a stage that captures leads
    lead_to_customer_days: FloatArray
    referrals_per_customer: FloatArray  # expected visitors referred over the horizon
    test_clv: lifetime.CLVReadout  # the simulated test's readout of CLV per visitor


def _lifetime_uniforms(outcomes: Sequence[Outcome], draws: VisitorDraws) -> list[FloatArray]:
    """Per (segment, channel) cell, one row of uniforms per customer slot, enough for the
    variant that wins the most customers there; every variant reads the same rows."""
    most = np.max([o.reached[-1].reshape(-1) for o in outcomes], axis=0)
    return [
        draws.generator("lifetime", j).random((int(n), LIFETIME_COLUMNS))
        for j, n in enumerate(most)
    ]


def _value_terms(scenario: Scenario) -> lifetime.ValueTerms:
    value, nurture = scenario.value, scenario.value.nurture
    cost = nurture.messages_per_month * nurture.cost_per_message if nurture else 0.0
    return lifetime.ValueTerms(
        value.margin,
        value.horizon_months,
        clv.monthly_discount_rate(value.discount_rate_annual),
        cost,
    )


def _first_orders(scenario: Scenario, cell: int, u: FloatArray) -> FloatArray:
    segment, channel = divmod(cell, len(scenario.traffic.channels))
    _, order_value = clv.customer_terms(
        scenario, list(scenario.segments)[segment], list(scenario.traffic.channels)[channel]
    )
    return order_value.ppf(u)


def _test_arms(
    variants: Sequence[Scenario],
    outcomes: Sequence[Outcome],
    values: Sequence[clv.CustomerValue],
    uniforms: Sequence[FloatArray],
    test_visitors: NDArray[np.int64],
    test_conversions: NDArray[np.int64],
    rng: np.random.Generator,
) -> list[lifetime.ArmCustomers]:
    """What each arm of the simulated test sees of the customers it won, followed over
    the horizon.

    Assignment is independent of everything else, so an arm's customers are a uniform
    random subset of its variant's customers (those with the smallest sample keys);
    their first orders are drawn from their cell's order-value distribution, and their
    repeat orders given their lifetimes (one Poisson draw for the arm's total).
    """
    arms = []
    for v, (scenario, outcome, value) in enumerate(zip(variants, outcomes, values, strict=True)):
        per_cell = outcome.reached[-1].reshape(-1)
        keys = np.concatenate([u[:n, 3] for u, n in zip(uniforms, per_cell, strict=True)])
        first = np.concatenate(
            [
                _first_orders(scenario, j, u[:n, 4])
                for j, (u, n) in enumerate(zip(uniforms, per_cell, strict=True))
            ]
        )
        chosen = np.argsort(keys)[: int(test_conversions[v])]
        lives, paid = value.lifetimes, first[chosen]
        arms.append(
            lifetime.ArmCustomers(
                visitors=int(test_visitors[v]),
                customers=int(chosen.size),
                revenue_sum=float(paid.sum()),
                revenue_sum_sq=float((paid**2).sum()),
                repeat_orders=float(
                    rng.poisson(lives.order_variance[chosen].sum())
                    + (lives.repeat_orders - lives.order_variance)[chosen].sum()
                ),
                active_months=float(lives.active_months[chosen].sum()),
                churned=int(lives.churned[chosen].sum()),
            )
        )
    return arms


def _per_visitor_rates(
    values: Sequence[float] | FloatArray, visitors: NDArray[np.int64]
) -> FloatArray:
    """A replication's per-visitor metrics, NaN where a variant had no visitors: a rate of
    nobody is undefined, and means over replications leave it out."""
    return np.where(visitors > 0, np.asarray(values, dtype=float), np.nan)


def defined_means(values: FloatArray) -> FloatArray:
    """Column means of the finite values (NaN for a column without any), quietly.

    >>> defined_means(np.array([[0.2, np.nan], [0.4, np.nan]]))
    array([0.3, nan])
    """
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    sums = np.where(finite, values, 0.0).sum(axis=0)
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def _per_visitor(total: float, outcome: Outcome) -> float:
    return total / outcome.visitors if outcome.visitors else 0.0


def _spend_by_channel(scenario: Scenario, outcome: Outcome) -> FloatArray:
    """Acquisition spend per channel: paid visits, plus messages to nurtured leads."""
    cost = np.array([c.cost_per_visit for c in scenario.traffic.channels.values()])
    spend = outcome.reached[0].sum(axis=0) * cost
    for s, stage in enumerate(scenario.stages):
        if stage.nurture is not None:
            n = stage.nurture
            messages = clv.lead_messages(n.ready_per_message, n.max_messages)
            spend = spend + outcome.reached[s].sum(axis=0) * messages * n.cost_per_message
    return np.asarray(spend, dtype=float)


def _lead_quality(scenario: Scenario, outcome: Outcome) -> tuple[float, float]:
    """Leads won, and the expected days from lead to customer (NaN, NaN without a stage
    that captures leads).

    The days add, over the stages after the lead stage, the mean dwell, the expected
    time a nurtured lead takes to become sales-ready, the mean response delay, and the
    mean queue wait plus service time: means over everybody who got there, an
    approximation of the time of those who went on to buy.
    """
    lead_stage = next((s for s, st in enumerate(scenario.stages) if st.captures_lead), None)
    if lead_stage is None:
        return math.nan, math.nan
    waits = dict(zip(outcome.queues.names, outcome.queues.mean_wait_min.tolist(), strict=True))
    minutes, days = 0.0, 0.0
    for stage in scenario.stages[lead_stage + 1 :]:
        minutes += stage.dwell_min.mean_value
        if stage.response_delay_min is not None:
            minutes += stage.response_delay_min.mean_value
        if stage.resource is not None:
            service = scenario.resources[stage.resource].service_min.mean_value
            minutes += waits.get(stage.resource, 0.0) + service
        if stage.nurture is not None:
            n = stage.nurture
            days += clv.lead_days_to_ready(n.interval_days, n.ready_per_message, n.max_messages)
    return float(outcome.reached[lead_stage + 1].sum()), days + minutes / MINUTES_PER_DAY


def lifetime_economics(
    variants: Sequence[Scenario],
    outcomes: Sequence[Outcome],
    draws: VisitorDraws,
    test_visitors: NDArray[np.int64],
    test_conversions: NDArray[np.int64],
) -> tuple[Economics, FloatArray]:
    """Customers' simulated lifetimes, acquisition economics per variant and channel, and
    the simulated test's Bayesian readout of CLV per visitor, for one replication; with
    the posterior draws of that readout, ``(variants, draws)``, control first."""
    uniforms = _lifetime_uniforms(outcomes, draws)
    values = [
        clv.customer_value(v, o.reached[-1], o.revenue, [u[:, :3] for u in uniforms])
        for v, o in zip(variants, outcomes, strict=True)
    ]
    prior = variants[0].experiment.prior
    test_clv_draws = lifetime.clv_draws(
        _test_arms(
            variants,
            outcomes,
            values,
            uniforms,
            test_visitors,
            test_conversions,
            draws.generator("readout", 1),
        ),
        [_value_terms(v) for v in variants],
        draws.generator("readout", 0),
        READOUT_DRAWS,
        (prior.alpha, prior.beta),
    )
    rows: dict[str, list[object]] = {name: [] for name in Economics.__dataclass_fields__}
    for scenario, outcome, value in zip(variants, outcomes, values, strict=True):
        spend = _spend_by_channel(scenario, outcome)
        customers = value.customers.astype(float)
        cac = clv.ratio(float(spend.sum()), float(customers.sum()))
        per_customer = clv.ratio(float(value.clv.sum()), float(customers.sum()))
        with np.errstate(divide="ignore", invalid="ignore"):
            curves = value.cumulative_margin / customers[:, None]
            channel_cac = spend / customers
        leads, days = _lead_quality(scenario, outcome)
        rows["clv_per_visitor"].append(_per_visitor(float(value.clv.sum()), outcome))
        rows["clv_per_customer"].append(per_customer)
        rows["cac"].append(cac)
        rows["ltv_to_cac"].append(clv.ratio(per_customer, cac))
        rows["payback_months"].append(
            clv.payback_months(value.cumulative_margin.sum(axis=0) / max(customers.sum(), 1.0), cac)
        )
        rows["channel_visitors"].append(outcome.reached[0].sum(axis=0).astype(float))
        rows["channel_spend"].append(spend)
        rows["channel_customers"].append(customers)
        rows["channel_clv"].append(value.clv)
        rows["channel_payback_months"].append(
            [clv.payback_months(curve, c) for curve, c in zip(curves, channel_cac, strict=True)]
        )
        rows["leads"].append(leads)
        rows["lead_to_customer_days"].append(days)
        rows["referrals_per_customer"].append(
            clv.ratio(float(value.lifetimes.referrals.sum()), float(customers.sum()))
        )
    arrays = {k: np.array(v, dtype=float) for k, v in rows.items() if k != "test_clv"}
    return Economics(**arrays, test_clv=lifetime.summarise_draws(test_clv_draws, 0)), test_clv_draws


def _utilisation(outcome: Outcome, scenario: Scenario) -> FloatArray:
    """Busy time over available time, per resource, over the test's days."""
    capacity = np.array([scenario.resources[r].capacity for r in outcome.queues.names])
    available = capacity * scenario.traffic.days * MINUTES_PER_DAY
    return np.asarray(outcome.queues.busy_min / available) if len(capacity) else np.zeros(0)


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
    loss = conjugate.expected_loss(post)
    decision = decide(post, ref, decision_rule(scenario), names, loss)
    return SplitReadout(
        conjugate.prob_best(post),
        conjugate.prob_beats(post, ref),
        loss,
        decision.action,
        decision.variant,
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
        describe=lambda value: f"{value:,.4f} {scenario.currency}",
        metric=metric,
    )
    return SplitReadout(
        conjugate.prob_best_draws(draws),
        conjugate.prob_beats_draws(draws, 0),
        loss,
        decision.action,
        decision.variant,
    )


def compile_variants(scenario: Scenario) -> list[CompiledFunnel]:
    """Every variant of ``scenario`` compiled, control first."""
    return [compile_funnel(scenario.variant(v)) for v in scenario.variant_names]


def replicate(
    scenario: Scenario,
    seed: SeedSequence,
    engine: EngineName = "auto",
    funnels: Sequence[CompiledFunnel] | None = None,
) -> Replication:
    """Simulate every variant of ``scenario`` on one replication's visitors.

    ``funnels`` (from :func:`compile_variants`) saves compiling the variants again
    when many replications of one scenario run in a row.
    """
    funnels = compile_variants(scenario) if funnels is None else funnels
    variants = [f.scenario for f in funnels]
    chosen = choose_engine(funnels, engine)
    traffic = scenario.traffic
    draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
    runs = simulate_variants(funnels, draws, chosen, list(scenario.split_shares().values()))
    outcomes, test_visitors, test_conversions = (
        runs.outcomes,
        runs.test_visitors,
        runs.test_conversions,
    )
    economics, clv_draws = lifetime_economics(
        variants, outcomes, draws, test_visitors, test_conversions
    )
    test = (
        split_readout(scenario, test_visitors, test_conversions)
        if scenario.experiment.metric == "conversion"
        else draws_readout(scenario, clv_draws, "CLV per visitor")
    )
    visitors = np.array([o.visitors for o in outcomes])
    return Replication(
        visitors=visitors,
        conversion=_per_visitor_rates([o.conversion for o in outcomes], visitors),
        revenue_per_visitor=_per_visitor_rates([o.revenue_per_visitor for o in outcomes], visitors),
        clv_per_visitor=_per_visitor_rates(economics.clv_per_visitor, visitors),
        bounce_rate=_per_visitor_rates([o.bounce_rate for o in outcomes], visitors),
        stage_rates=np.array([o.stage_rates() for o in outcomes]),
        lost=np.array([o.lost_by_reason() for o in outcomes]),
        queue_abandonment=np.array([o.queues.abandonment for o in outcomes]),
        queue_wait_min=np.array([o.queues.mean_wait_min for o in outcomes]),
        queue_utilisation=np.array(
            [_utilisation(o, v) for o, v in zip(outcomes, variants, strict=True)]
        ),
        test_visitors=test_visitors,
        test_conversions=test_conversions,
        prob_best=test.prob_best,
        prob_beats_control=test.prob_beats_control,
        expected_loss=test.expected_loss,
        decision=test.decision,
        shipped=test.shipped,
        economics=economics,
    )


# --------------------------------------------------------------------------- summaries


class Interval(NamedTuple):
    """A mean with the bounds of its interval."""

    mean: float
    low: float
    high: float


def mean_interval(values: FloatArray, level: float = 0.95) -> Interval:
    """Mean of replication values with a t-interval for the mean (NaNs dropped)."""
    from scipy import stats

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(finite.mean())
    if finite.size < 2:
        return Interval(mean, mean, mean)
    half = float(
        stats.t.ppf(0.5 + level / 2, finite.size - 1) * finite.std(ddof=1) / math.sqrt(finite.size)
    )
    return Interval(mean, mean - half, mean + half)


def relative_uplift(variant: FloatArray, control: FloatArray) -> FloatArray:
    """Per-replication relative change variant / control - 1 (NaN where control is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(control > 0, variant / control - 1.0, np.nan)


class ChannelEconomics(NamedTuple):
    """Acquisition economics of one channel for one variant (means over replications).

    ``cac``, ``clv_per_customer``, ``clv_per_visitor`` and ``ltv_to_cac`` are ratios of
    the means; ``ltv_to_cac`` is inf for a channel that costs nothing; ``payback_months``
    is the median over replications (inf: not within the horizon).
    """

    visitors: float
    spend: float
    customers: float
    cac: float
    clv_per_customer: float
    clv_per_visitor: float
    ltv_to_cac: float
    payback_months: float


class LeadQuality(NamedTuple):
    """Leads won per replication, the share who became customers, and the expected days
    from lead to customer (means over replications)."""

    leads: float
    lead_to_customer: float
    days_to_customer: float


class CLVTest(NamedTuple):
    """The simulated test's readout of CLV per visitor, averaged over replications:
    posterior mean and credible bounds, P(beats control), P(best)."""

    mean: float
    low: float
    high: float
    prob_beats_control: float
    prob_best: float


def _median(values: Sequence[float]) -> float:
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    return float(np.median(finite)) if finite.size else math.nan


def _channel_summary(
    scenario: Scenario, reps: Sequence[Replication], v: int
) -> dict[str, ChannelEconomics]:
    econ = [r.economics for r in reps]
    result = {}
    for c, name in enumerate(scenario.traffic.channels):
        spend = float(np.mean([e.channel_spend[v, c] for e in econ]))
        customers = float(np.mean([e.channel_customers[v, c] for e in econ]))
        visitors = float(np.mean([e.channel_visitors[v, c] for e in econ]))
        value = float(np.mean([e.channel_clv[v, c] for e in econ]))
        per_customer = clv.ratio(value, customers)
        cac = clv.ratio(spend, customers)
        result[name] = ChannelEconomics(
            visitors=visitors,
            spend=spend,
            customers=customers,
            cac=cac,
            clv_per_customer=per_customer,
            clv_per_visitor=clv.ratio(value, visitors),
            ltv_to_cac=clv.ratio(per_customer, cac),
            payback_months=_median([e.channel_payback_months[v, c] for e in econ]),
        )
    return result


def _lead_summary(reps: Sequence[Replication], v: int) -> LeadQuality | None:
    leads = np.array([r.economics.leads[v] for r in reps])
    if np.isnan(leads).all():
        return None
    customers = np.array([r.economics.channel_customers[v].sum() for r in reps])
    return LeadQuality(
        leads=float(leads.mean()),
        lead_to_customer=clv.ratio(float(customers.mean()), float(leads.mean())),
        days_to_customer=float(np.nanmean([r.economics.lead_to_customer_days[v] for r in reps])),
    )


def _clv_test_summary(reps: Sequence[Replication], v: int) -> CLVTest:
    tests = [r.economics.test_clv for r in reps]
    return CLVTest(
        *(
            float(np.mean([getattr(t, f)[v] for t in tests]))
            for f in ("mean", "low", "high", "prob_beats_control", "prob_best")
        )
    )


@dataclass(frozen=True)
class VariantSummary:
    """One variant's results over all replications."""

    name: str
    visitors: float
    metrics: dict[str, Interval]
    uplift: dict[str, Interval] | None
    bounce_rate: Interval
    stage_rates: dict[str, float]
    lost_by_reason: dict[str, dict[str, float]]
    largest_stage_change: tuple[str, float] | None
    prob_best: float
    prob_beats_control: float
    expected_loss: float
    decision_rates: dict[str, float]
    queues: dict[str, dict[str, float]]
    payback_months: float = math.nan
    referrals_per_customer: float = math.nan
    channels: dict[str, ChannelEconomics] = field(default_factory=dict)
    leads: LeadQuality | None = None
    clv_test: CLVTest | None = None

    @property
    def decision(self) -> str:
        """The most frequent decision about this variant across simulated tests."""
        return max(self.decision_rates, key=lambda k: self.decision_rates[k])


@dataclass(frozen=True)
class ExperimentResult:
    """Everything ``funnelsim run`` reports."""

    scenario: Scenario
    engine: str
    replications: list[Replication]
    variants: list[VariantSummary]
    true_best: str
    test_outcomes: dict[str, float]

    @property
    def control(self) -> str:
        return self.scenario.control

    def __repr__(self) -> str:
        """A few readable lines: the run, then each variant's headline figures."""
        lines = [
            f"ExperimentResult({self.scenario.name!r}: {len(self.replications)} "
            f"replications, {self.engine} engine, truly best {self.true_best!r})"
        ]
        width = max(len(s.name) for s in self.variants)
        for s in self.variants:
            uplift = f" ({s.uplift['conversion'].mean:+.1%})" if s.uplift else " (control)"
            lines.append(
                f"  {s.name:<{width}}  conversion {s.metrics['conversion'].mean:.2%}{uplift}, "
                f"CLV/visitor {s.metrics['clv_per_visitor'].mean:,.2f} {self.scenario.currency}, "
                f"test decision {s.decision} ({s.decision_rates[s.decision]:.0%})"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document as a dictionary (see :mod:`funnelsim.report`)."""
        from funnelsim.report import results_dict

        return results_dict(self)

    def to_frame(self) -> pandas.DataFrame:
        """One row per variant, indexed by name, with the columns of ``summary.csv``."""
        import pandas as pd

        from funnelsim.report import summary_rows

        return pd.DataFrame(summary_rows(self)).set_index("variant")


def _variant_decisions(reps: Sequence[Replication], name: str) -> dict[str, float]:
    """Share of simulated tests that shipped this variant, shipped another one (reject),
    stopped for practical equivalence, or kept testing."""
    counts = dict.fromkeys(DECISIONS, 0)
    for rep in reps:
        if rep.decision == "ship":
            counts["ship" if rep.shipped == name else "reject"] += 1
        else:
            counts[rep.decision] += 1
    return {k: v / len(reps) for k, v in counts.items()}


def _largest_stage_change(
    rates: FloatArray, control: FloatArray, stages: Sequence[str]
) -> tuple[str, float] | None:
    change = relative_uplift(rates, control)
    size = np.where(np.isfinite(change), np.abs(change), -1.0)
    best = int(np.argmax(size))
    return (stages[best], float(change[best])) if size[best] > 1e-12 else None


def summarise(scenario: Scenario, engine: str, reps: list[Replication]) -> ExperimentResult:
    """Means and intervals over replications, per variant and for the simulated test."""
    names, stages = scenario.variant_names, scenario.stage_names
    series = {
        m: np.array([getattr(r.economics if m in ECONOMICS else r, m) for r in reps])
        for m in METRICS
    }
    stage_rates = defined_means(np.array([r.stage_rates for r in reps]))
    lost = np.array([r.lost for r in reps]).mean(axis=0)
    visitors = np.array([r.visitors for r in reps]).mean(axis=0)
    bounce = np.array([r.bounce_rate for r in reps])
    summaries = []
    for v, name in enumerate(names):
        is_control = v == 0
        summaries.append(
            VariantSummary(
                name=name,
                visitors=float(visitors[v]),
                metrics={m: mean_interval(series[m][:, v]) for m in METRICS},
                uplift=None
                if is_control
                else {
                    m: mean_interval(relative_uplift(series[m][:, v], series[m][:, 0]))
                    for m in METRICS
                },
                bounce_rate=mean_interval(bounce[:, v]),
                stage_rates=dict(zip(stages, stage_rates[v].tolist(), strict=True)),
                lost_by_reason={
                    stage: {
                        reason: float(lost[v, s, r])
                        for r, reason in enumerate(REASONS)
                        if lost[v, s, r] > 0
                    }
                    for s, stage in enumerate(stages)
                },
                largest_stage_change=None
                if is_control
                else _largest_stage_change(stage_rates[v], stage_rates[0], stages),
                prob_best=float(np.mean([r.prob_best[v] for r in reps])),
                prob_beats_control=float(np.mean([r.prob_beats_control[v] for r in reps])),
                expected_loss=float(np.mean([r.expected_loss[v] for r in reps])),
                decision_rates=_variant_decisions(reps, name),
                queues=_queue_summary(scenario, reps, v),
                payback_months=_median([r.economics.payback_months[v] for r in reps]),
                referrals_per_customer=mean_interval(
                    np.array([r.economics.referrals_per_customer[v] for r in reps])
                ).mean,
                channels=_channel_summary(scenario, reps, v),
                leads=_lead_summary(reps, v),
                clv_test=_clv_test_summary(reps, v),
            )
        )
    judged = defined_means(series[scenario.experiment.metric])
    true_best = names[int(np.argmax(np.nan_to_num(judged, nan=-np.inf)))]  # control if no one came
    return ExperimentResult(
        scenario, engine, reps, summaries, true_best, _test_outcomes(reps, scenario, judged)
    )


def _queue_summary(
    scenario: Scenario, reps: Sequence[Replication], v: int
) -> dict[str, dict[str, float]]:
    """Per resource: mean utilisation, mean wait of those served, share who gave up."""
    return {
        name: {
            "utilisation": float(np.mean([r.queue_utilisation[v, q] for r in reps])),
            "mean_wait_min": float(np.mean([r.queue_wait_min[v, q] for r in reps])),
            "abandonment": float(np.mean([r.queue_abandonment[v, q] for r in reps])),
        }
        for q, name in enumerate(scenario.resources)
    }


def _test_outcomes(
    reps: Sequence[Replication], scenario: Scenario, judged: FloatArray
) -> dict[str, float]:
    """How the simulated tests ended: shipped the truly best variant (by the mean
    ``judged`` metric), shipped another, stopped for equivalence, or kept testing."""
    best = int(np.argmax(np.nan_to_num(judged, nan=-np.inf)))
    true_best = scenario.variant_names[best]
    best_uplift = judged[best] / judged[0] - 1.0 if judged[0] > 0 else math.inf
    equivalent = abs(best_uplift) < scenario.experiment.rope
    outcomes = {"ship_best": 0.0, "ship_other": 0.0, "stop": 0.0, "keep_testing": 0.0, "right": 0.0}
    for rep in reps:
        if rep.decision == "ship":
            key = "ship_best" if rep.shipped == true_best else "ship_other"
        else:
            key = rep.decision
        outcomes[key] += 1
        outcomes["right"] += key == "ship_best" or (equivalent and key == "stop")
    return {k: v / len(reps) for k, v in outcomes.items()}


# --------------------------------------------------------------------------- running


Progress = Callable[[int], None]


def _replicate_batch(
    scenario: Scenario, engine: EngineName, seeds: list[SeedSequence]
) -> list[Replication]:
    funnels = compile_variants(scenario)
    return [replicate(scenario, seed, engine, funnels) for seed in seeds]


def run_experiment(
    scenario: Scenario,
    replications: int | None = None,
    seed: int | None = None,
    engine: EngineName = "auto",
    workers: int = 1,
    progress: Progress | None = None,
    dask: Any = None,
) -> ExperimentResult:
    """Run every variant of ``scenario`` over replications and summarise.

    Replications run in this process (``workers`` 1), on ``workers`` local processes,
    or on Dask: ``dask="local"`` (a LocalCluster of ``workers`` processes), a scheduler
    address such as ``"tcp://10.0.0.5:8786"``, or a ``distributed.Client`` (see
    :mod:`funnelsim.parallel`). The same scenario and seed give identical results
    whatever the executor: replication r always uses the r-th child of
    ``SeedSequence(seed)``.
    """
    n = replications or scenario.experiment.replications
    seeds = replication_seeds(scenario.seed if seed is None else seed, n)
    chosen = choose_engine(compile_variants(scenario), engine)
    work = functools.partial(_replicate_batch, scenario, chosen)
    reps = parallel.map_batches(
        work,
        seeds,
        workers=min(workers, n),  # a process per job at most
        dask=dask,
        progress=progress,
    )
    return summarise(scenario, chosen, reps)
