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

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.random import SeedSequence
from numpy.typing import NDArray

from funnelsim import clv
from funnelsim.analysis.decision import DecisionRule, readout
from funnelsim.engine import simpy_engine, vectorized
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.engine.model import CompiledFunnel, compile_funnel
from funnelsim.engine.outcomes import REASONS, Outcome, Simulation
from funnelsim.scenario import Scenario

EngineName = Literal["auto", "simpy", "vectorized"]
FloatArray = NDArray[np.float64]
METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor")
DECISIONS = ("ship", "stop", "keep_testing")


def choose_engine(funnels: Iterable[CompiledFunnel], engine: EngineName = "auto") -> str:
    """The engine to use: SimPy where any variant shares a resource, else NumPy."""
    shared = any(f.has_shared_resources for f in funnels)
    if engine == "vectorized" and shared:
        raise ValueError("the vectorized engine cannot simulate shared resources (queues)")
    if engine == "auto":
        return "simpy" if shared else "vectorized"
    return engine


def simulate_variant(funnel: CompiledFunnel, draws: VisitorDraws, engine: str) -> Simulation:
    """One variant on one replication's visitors."""
    if engine == "simpy":
        return simpy_engine.simulate(funnel, draws)
    return vectorized.simulate(funnel, draws)


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
    test_visitors: NDArray[np.int64]
    test_conversions: NDArray[np.int64]
    prob_best: FloatArray
    prob_beats_control: FloatArray
    expected_loss: FloatArray
    decision: str
    shipped: str | None


def _clv_per_visitor(outcome: Outcome, scenario: Scenario) -> float:
    if outcome.visitors == 0:
        return 0.0
    first_orders = float(outcome.revenue.sum())
    value = clv.clv_per_customer(0.0, scenario.value) * outcome.buyers
    return (value + scenario.value.margin * first_orders) / outcome.visitors


def _split_test(
    sims: Sequence[Simulation], shares: Sequence[float], draws: VisitorDraws
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Assign each visitor to one arm; count visitors and buyers per arm."""
    arm = np.searchsorted(np.cumsum(shares)[:-1], draws.uniforms("assign"), side="right")
    visitors = np.bincount(arm, minlength=len(sims))
    conversions = np.array([int(sim.converted[arm == v].sum()) for v, sim in enumerate(sims)])
    return visitors.astype(np.int64), conversions.astype(np.int64)


def replicate(scenario: Scenario, seed: SeedSequence, engine: EngineName = "auto") -> Replication:
    """Simulate every variant of ``scenario`` on one replication's visitors."""
    names = scenario.variant_names
    variants = [scenario.variant(v) for v in names]
    funnels = [compile_funnel(v) for v in variants]
    chosen = choose_engine(funnels, engine)
    traffic = scenario.traffic
    draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
    sims = [simulate_variant(f, draws, chosen) for f in funnels]
    outcomes = [s.outcome for s in sims]
    shares = list(scenario.split_shares().values())
    test_visitors, test_conversions = _split_test(sims, shares, draws)
    rule = DecisionRule(
        loss_threshold=scenario.experiment.loss_threshold,
        rope=scenario.experiment.rope,
        equivalence_probability=scenario.experiment.equivalence_probability,
    )
    prior = scenario.experiment.prior
    test = readout(names, test_visitors, test_conversions, scenario.control, rule,
                   prior_alpha=prior.alpha, prior_beta=prior.beta)
    return Replication(
        visitors=np.array([o.visitors for o in outcomes]),
        conversion=np.array([o.conversion for o in outcomes]),
        revenue_per_visitor=np.array([o.revenue_per_visitor for o in outcomes]),
        clv_per_visitor=np.array([_clv_per_visitor(o, v) for o, v in zip(outcomes, variants)]),
        bounce_rate=np.array([o.bounce_rate for o in outcomes]),
        stage_rates=np.array([o.stage_rates() for o in outcomes]),
        lost=np.array([o.lost_by_reason() for o in outcomes]),
        queue_abandonment=np.array([o.queues.abandonment for o in outcomes]),
        queue_wait_min=np.array([o.queues.mean_wait_min for o in outcomes]),
        test_visitors=test_visitors,
        test_conversions=test_conversions,
        prob_best=np.array([r.prob_best for r in test.variants]),
        prob_beats_control=np.array([r.prob_beats_control for r in test.variants]),
        expected_loss=np.array([r.expected_loss for r in test.variants]),
        decision=test.decision.action,
        shipped=test.decision.variant,
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
    half = float(stats.t.ppf(0.5 + level / 2, finite.size - 1) * finite.std(ddof=1)
                 / math.sqrt(finite.size))
    return Interval(mean, mean - half, mean + half)


def relative_uplift(variant: FloatArray, control: FloatArray) -> FloatArray:
    """Per-replication relative change variant / control - 1 (NaN where control is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(control > 0, variant / control - 1.0, np.nan)


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


def _variant_decisions(reps: Sequence[Replication], name: str) -> dict[str, float]:
    counts = dict.fromkeys(DECISIONS, 0)
    for rep in reps:
        if rep.decision == "ship" and rep.shipped == name:
            counts["ship"] += 1
        elif rep.decision == "keep_testing":
            counts["keep_testing"] += 1
        else:
            counts["stop"] += 1
    return {k: v / len(reps) for k, v in counts.items()}


def _largest_stage_change(rates: FloatArray, control: FloatArray, stages: Sequence[str]
                          ) -> tuple[str, float] | None:
    change = relative_uplift(rates, control)
    size = np.where(np.isfinite(change), np.abs(change), -1.0)
    best = int(np.argmax(size))
    return (stages[best], float(change[best])) if size[best] > 1e-12 else None


def summarise(scenario: Scenario, engine: str, reps: list[Replication]) -> ExperimentResult:
    """Means and intervals over replications, per variant and for the simulated test."""
    names, stages = scenario.variant_names, scenario.stage_names
    series = {m: np.array([getattr(r, m) for r in reps]) for m in METRICS}
    stage_rates = np.array([r.stage_rates for r in reps]).mean(axis=0)
    lost = np.array([r.lost for r in reps]).mean(axis=0)
    visitors = np.array([r.visitors for r in reps]).mean(axis=0)
    bounce = np.array([r.bounce_rate for r in reps])
    summaries = []
    for v, name in enumerate(names):
        is_control = v == 0
        summaries.append(VariantSummary(
            name=name,
            visitors=float(visitors[v]),
            metrics={m: mean_interval(series[m][:, v]) for m in METRICS},
            uplift=None if is_control else {
                m: mean_interval(relative_uplift(series[m][:, v], series[m][:, 0]))
                for m in METRICS
            },
            bounce_rate=mean_interval(bounce[:, v]),
            stage_rates=dict(zip(stages, stage_rates[v].tolist())),
            lost_by_reason={
                stage: {reason: float(lost[v, s, r]) for r, reason in enumerate(REASONS)
                        if lost[v, s, r] > 0}
                for s, stage in enumerate(stages)
            },
            largest_stage_change=None if is_control else _largest_stage_change(
                stage_rates[v], stage_rates[0], stages),
            prob_best=float(np.mean([r.prob_best[v] for r in reps])),
            prob_beats_control=float(np.mean([r.prob_beats_control[v] for r in reps])),
            expected_loss=float(np.mean([r.expected_loss[v] for r in reps])),
            decision_rates=_variant_decisions(reps, name),
        ))
    true_best = names[int(np.argmax(series["conversion"].mean(axis=0)))]
    return ExperimentResult(scenario, engine, reps, summaries, true_best,
                            _test_outcomes(reps, scenario, true_best))


def _test_outcomes(reps: Sequence[Replication], scenario: Scenario, true_best: str
                   ) -> dict[str, float]:
    """How the simulated tests ended: shipped the truly best variant, shipped another,
    stopped for equivalence, or kept testing."""
    conversion = np.array([r.conversion for r in reps]).mean(axis=0)
    best_uplift = conversion.max() / conversion[0] - 1.0 if conversion[0] > 0 else math.inf
    equivalent = abs(best_uplift) < scenario.experiment.rope
    outcomes = {"ship_best": 0.0, "ship_other": 0.0, "stop": 0.0, "keep_testing": 0.0,
                "right": 0.0}
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


def _replicate_batch(scenario: Scenario, seeds: list[SeedSequence], engine: EngineName
                     ) -> list[Replication]:
    return [replicate(scenario, seed, engine) for seed in seeds]


def _batches(seeds: list[SeedSequence], size: int) -> list[list[SeedSequence]]:
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def run_experiment(
    scenario: Scenario,
    replications: int | None = None,
    seed: int | None = None,
    engine: EngineName = "auto",
    workers: int = 1,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Run every variant of ``scenario`` over replications and summarise.

    The same scenario and seed give identical results whatever ``workers`` is:
    replication r always uses the r-th child of ``SeedSequence(seed)``.
    """
    n = replications or scenario.experiment.replications
    seeds = replication_seeds(scenario.seed if seed is None else seed, n)
    chosen = choose_engine([compile_funnel(scenario.variant(v)) for v in scenario.variant_names],
                           engine)
    batches = _batches(seeds, max(1, math.ceil(n / (8 * workers))))
    reps: list[Replication] = []
    if workers <= 1 or len(batches) == 1:
        for batch in batches:
            reps.extend(_replicate_batch(scenario, batch, chosen))  # type: ignore[arg-type]
            if progress:
                progress(len(batch))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_replicate_batch, scenario, b, chosen) for b in batches]
            for future in futures:
                batch = future.result()
                reps.extend(batch)
                if progress:
                    progress(len(batch))
    return summarise(scenario, chosen, reps)
