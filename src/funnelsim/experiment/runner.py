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

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import NDArray

from funnelsim import clv, parallel
from funnelsim.engine import aggregate, service
from funnelsim.engine.draws import MINUTES_PER_DAY, VisitorDraws, replication_seeds
from funnelsim.engine.model import CompiledFunnel
from funnelsim.engine.outcomes import REASONS, Outcome
from funnelsim.execution import SERIAL, Execution
from funnelsim.experiment.economics import lifetime_economics
from funnelsim.experiment.engines import (
    EngineName,
    choose_engine,
    compile_variants,
    simulate_variants,
)
from funnelsim.experiment.readout import (
    Truth,
    draws_readout,
    judged_stage,
    reached_in_test,
    split_readout,
    tally_tests,
    truth,
)
from funnelsim.intervals import mean_interval, relative_uplift
from funnelsim.propagation import propagate
from funnelsim.results import (
    ECONOMICS,
    METRICS,
    AssumptionEffects,
    ChannelEconomics,
    CLVTest,
    ExperimentResult,
    LeadQuality,
    Replication,
    VariantSummary,
)
from funnelsim.scenario.schema import Scenario
from funnelsim.worlds import WORLD_METRICS, Worlds, sample_worlds, world_funnels

FloatArray = NDArray[np.float64]
DECISIONS = ("ship", "reject", "stop", "keep_testing")  # of one variant, in one test
WorldTest = tuple[tuple[str, str | None], Truth]  # a test's (decision, shipped), its world's truth


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


def _utilisation(outcome: Outcome, scenario: Scenario) -> FloatArray:
    """Busy time over available time, per resource, over the test's days."""
    capacity = np.array([scenario.resources[r].capacity for r in outcome.queues.names])
    available = capacity * scenario.traffic.days * MINUTES_PER_DAY
    return np.asarray(outcome.queues.busy_min / available) if len(capacity) else np.zeros(0)


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
        variants, outcomes, draws, test_visitors, test_conversions, runs.engine == "aggregate"
    )
    visitors = np.array([o.visitors for o in outcomes])
    stage = judged_stage(scenario)
    if stage is not None:
        reached = np.array([o.reached[stage].sum() for o in outcomes])
        counts = reached_in_test(visitors, reached, test_visitors, draws.generator("test_reach", 0))
        test = split_readout(scenario, test_visitors, counts)
    elif scenario.experiment.metric == "conversion":
        test = split_readout(scenario, test_visitors, test_conversions)
    else:
        test = draws_readout(scenario, clv_draws, "CLV per visitor")
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
        service=tuple(
            _service_figures(o, float(spend.sum()))
            for o, spend in zip(outcomes, economics.channel_spend, strict=True)
        ),
    )


def _service_figures(outcome: Outcome, spend: float) -> dict[str, dict[str, Any]]:
    """Per resource, the SimPy engine's service figures (engine.service) with the full cost,
    traffic spend plus every resource's staff and automation cost, per lead and per
    customer."""
    cost = spend + sum(f["staff_cost"] + f["automation_cost"] for f in outcome.service.values())
    return {
        name: {
            **figures,
            "cost_per_lead": clv.ratio(cost, figures["leads"]),
            "cost_per_customer": clv.ratio(cost, outcome.buyers),
        }
        for name, figures in outcome.service.items()
    }


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
        service_cost = float(np.mean([e.channel_service_cost[v, c] for e in econ]))
        customers = float(np.mean([e.channel_customers[v, c] for e in econ]))
        visitors = float(np.mean([e.channel_visitors[v, c] for e in econ]))
        value = float(np.mean([e.channel_clv[v, c] for e in econ]))
        per_customer = clv.ratio(value, customers)
        cac = clv.ratio(spend + service_cost, customers)
        result[name] = ChannelEconomics(
            visitors=visitors,
            spend=spend,
            service_cost=service_cost,
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


def reach_rates(reps: Sequence[Replication], stage: int) -> FloatArray:
    """Per replication and variant, the share of visitors reaching ``stage``: the product
    of the continue rates before it (a stage nobody reached passes nobody on)."""
    rates = np.nan_to_num(np.array([r.stage_rates[:, :stage] for r in reps]), nan=0.0)
    return np.asarray(rates.prod(axis=2))


def summarise(scenario: Scenario, engine: str, reps: list[Replication]) -> ExperimentResult:
    """Means and intervals over replications, per variant and for the simulated test."""
    names, stages = scenario.variant_names, scenario.stage_names
    series = {
        m: np.array([getattr(r.economics if m in ECONOMICS else r, m) for r in reps])
        for m in METRICS
    }
    stage = judged_stage(scenario)
    judged_metrics = METRICS if stage is None else (*METRICS, scenario.experiment.metric)
    if stage is not None:
        series[scenario.experiment.metric] = reach_rates(reps, stage)
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
                metrics={m: mean_interval(series[m][:, v]) for m in judged_metrics},
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
                service=_service_summary(reps, v),
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


def _service_summary(reps: Sequence[Replication], v: int) -> dict[str, dict[str, Any]]:
    """Per resource, the service figures over replications (engine.service.summarise_runs:
    waits pooled, the other figures averaged)."""
    runs = [r.service[v] for r in reps if r.service]
    return service.summarise_runs(runs) if runs and runs[0] else {}


def _test_outcomes(
    reps: Sequence[Replication], scenario: Scenario, judged: FloatArray
) -> dict[str, float]:
    """How the replications' simulated tests ended, judged against ``judged``'s truth."""
    true = truth(scenario, judged)
    return tally_tests([(r.decision, r.shipped) for r in reps], [true] * len(reps))


def _replicate_batch(
    scenario: Scenario, engine: EngineName, seeds: list[SeedSequence]
) -> list[Replication]:
    funnels = compile_variants(scenario)
    return [replicate(scenario, seed, engine, funnels) for seed in seeds]


def run_experiment(
    scenario: Scenario, replications: int | None = None, execution: Execution = SERIAL
) -> ExperimentResult:
    """Run every variant of ``scenario`` over replications and summarise.

    Replications run in this process (``workers`` 1), on local processes or on Dask,
    as ``execution`` says (see :mod:`funnelsim.parallel`); with ``workers`` unset (every
    CPU), on local processes only when the first replications, timed here, say they pay
    for starting them (:func:`~funnelsim.parallel.map_measured`). The same scenario and seed
    give identical results whatever the executor: replication r always uses the r-th
    child of ``SeedSequence(seed)``.
    """
    n = replications or scenario.experiment.replications
    seeds = replication_seeds(execution.seed_or(scenario.seed), n)
    chosen = choose_engine(compile_variants(scenario), execution.engine)
    work = functools.partial(_replicate_batch, scenario, chosen)
    if execution.workers is None and execution.dask is None:  # every CPU, if they pay
        reps = parallel.map_measured(work, seeds, execution.processes, execution.progress)
    else:
        workers = min(execution.processes, n)
        reps = parallel.map_batches(work, seeds, workers, execution.dask, execution.progress)
    result = summarise(scenario, chosen, reps)
    seed = execution.seed_or(scenario.seed)
    effects = _over_assumptions(result, seed, execution)
    if effects is None:
        return result
    worlds = sample_worlds(scenario, n, seed)
    tests = world_tests(scenario, seeds, worlds, execution)
    return dataclasses.replace(result, assumptions=effects, test_outcomes_over_worlds=tests)


def _over_assumptions(
    result: ExperimentResult, seed: int, execution: Execution
) -> AssumptionEffects | None:
    """The run's effects over worlds of its uncertain assumptions (None without any)."""
    monte_carlo = {
        s.name: {m: tuple(s.uplift[m]) for m in WORLD_METRICS}
        for s in result.variants
        if s.uplift is not None
    }
    return propagate(
        result.scenario,
        monte_carlo,
        len(result.replications),
        seed,
        execution.processes,
        execution.dask,
    )


def world_tests(
    scenario: Scenario,
    seeds: Sequence[SeedSequence],
    worlds: Worlds,
    execution: Execution = SERIAL,
) -> dict[str, float] | None:
    """The simulated A/B test with its truth drawn per world: test r plays in world r.

    Its visitors are split over the arms and each arm's buyers drawn from its variant's
    exact chance of buying in each cell of that world (as the aggregate engine draws
    them), read by the scenario's Bayesian rule, and judged against that world's truly
    best variant (:func:`~funnelsim.experiment.readout.tally_tests`). None where this
    does not apply: queues or referrals, or a test judged on CLV, whose readout needs
    simulated customers. The tests run on up to ``execution``'s local processes where the
    first ones, timed here, say the pool pays (in this process beside Dask: a second
    cluster would cost more than the tests).
    """
    if scenario.experiment.metric != "conversion":
        return None
    work = functools.partial(_world_test_batch, scenario)
    items = [(seed, worlds.world(i)) for i, seed in enumerate(seeds)]
    workers = 1 if execution.dask is not None else execution.processes
    tests = parallel.map_measured(work, items, workers)
    done = [test for test in tests if test is not None]
    if len(done) < len(tests):
        return None
    return tally_tests([decision for decision, _ in done], [true for _, true in done])


def _world_test_batch(
    scenario: Scenario, items: list[tuple[SeedSequence, dict[str, float]]]
) -> list[WorldTest | None]:
    """Each (seed, world)'s test decision and that world's truth; None where the world's
    funnels couple visitors (queues, referrals)."""
    return [_world_test(scenario, seed, world) for seed, world in items]


def _world_test(
    scenario: Scenario, seed: SeedSequence, world: dict[str, float]
) -> WorldTest | None:
    traffic, shares = scenario.traffic, list(scenario.split_shares().values())
    funnels = world_funnels(scenario, world)
    if any(f.couples_visitors for f in funnels):
        return None
    chance = [aggregate.continue_probabilities(f).prod(axis=0) for f in funnels]
    draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
    visitors, buyers = aggregate.split_test(funnels, chance, shares, draws)
    test = split_readout(scenario, visitors, buyers)
    conversion = [float(f.cell_probabilities @ c) for f, c in zip(funnels, chance, strict=True)]
    return (test.decision, test.shipped), truth(scenario, np.array(conversion))
