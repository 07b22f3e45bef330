"""Read a finished experiment and decide: :func:`analyze`, and its ``results.json``.

A growth team has run a test and exported it: visitors and conversions per variant, or
one row per visitor with flags for the steps of the funnel. ``analyze`` is the one call
from that file (or from counts in a notebook) to a readout a team can act on: each
variant's conversion with its credible interval, the probability that it beats the
control and that it is the best, the expected loss of shipping it, the relative uplift,
and a ship / stop / keep-testing decision. Three models answer at three depths:

- ``"conjugate"``: the exact Beta-Binomial readout of :mod:`funnelsim.analysis.decision`
  (instant; revenue per visitor is added when per-visitor revenue rows allow it);
- ``"funnel"``: the PyMC funnel model, which also says *which stage* each variant
  changed, with a posterior per stage;
- ``"revenue"``: the PyMC revenue model, which decides on revenue per visitor.

The PyMC models carry convergence diagnostics; a fit that fails them is marked
unreliable in the result and in the JSON. PyMC is imported only when one of them runs.

Example:
    >>> result = analyze(experiment_from_counts(["A", "B"], [10000, 10000], [1000, 1200]))
    >>> result.decision.action, result.decision.variant
    ('ship', 'B')
    >>> round(results_dict(result)["variants"]["B"]["prob_beats_control"], 4)
    1.0
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from funnelsim import budget
from funnelsim.analysis.conjugate import (
    RevenueStats,
    expected_loss_draws,
    prob_beats_draws,
    prob_best_draws,
    uplift_interval_draws,
)
from funnelsim.analysis.data import (
    DEFAULT_COLUMNS,
    FRAME_SOURCE,
    ColumnMap,
    DataError,
    ExperimentData,
    OrderStats,
    experiment_from_counts,
    read_experiment,
)
from funnelsim.analysis.decision import (
    DEFAULT_RULE,
    RATE_LEVEL,
    UPLIFT_LEVEL,
    Decision,
    DecisionRule,
    SampleRatioCheck,
    decide_on_draws,
    readout,
    revenue_readout,
    sample_ratio_mismatch,
    withhold_on_mismatch,
)
from funnelsim.analysis.guardrails import guard
from funnelsim.analysis.operating import (
    DEFAULT_RISKS,
    OperatingCharacteristics,
    RiskRequest,
    operating_dict,
    stated_risks,
)
from funnelsim.analysis.pooling_prior import (
    DOUBT_PROBABILITY,
    StageCheck,
    check_stages,
    doubt_message,
)
from funnelsim.analysis.readouts import (
    CUPED_METHOD,
    ExtraReadouts,
    ReadoutRequest,
    extra_readouts,
    extras_dict,
)
from funnelsim.errors import ArgumentError
from funnelsim.formatting import decision_words, points
from funnelsim.numbers import finite_or_none
from funnelsim.result_mixin import Result

if TYPE_CHECKING:
    import arviz as az

    from funnelsim.analysis.models import Diagnostics, ModelFit

__all__ = [
    "AnalysisResult",
    "PosteriorInterval",
    "StageEffect",
    "VariantResult",
    "analyze",
    "experiment_from_counts",
    "results_dict",
    "results_json",
]

ModelName = Literal["conjugate", "funnel", "revenue"]
Metric = Literal["conversion", "revenue_per_visitor"]
MODELS: tuple[ModelName, ...] = ("conjugate", "funnel", "revenue")
FloatArray = npt.NDArray[np.float64]


class PosteriorInterval(NamedTuple):
    """Posterior mean and equal-tailed credible interval of one quantity."""

    mean: float
    low: float
    high: float


class StageEffect(NamedTuple):
    """What a variant did at one stage of the funnel (funnel model).

    Attributes:
        stage: Stage name (the share of visitors reaching it who continue).
        rate: Posterior of the stage's continue rate (95% interval).
        change: Relative change of the rate vs the control (95% interval).
        prob_increase: Posterior probability that the rate is above the control's.
    """

    stage: str
    rate: PosteriorInterval
    change: PosteriorInterval
    prob_increase: float


class VariantResult(NamedTuple):
    """Readout of one variant. The decision fields refer to the result's ``metric``.

    Attributes:
        name: Variant name.
        visitors: Visitors in the variant.
        conversions: Converting visitors.
        conversion: Posterior of the conversion rate (95% interval).
        prob_best: Probability of the highest ``metric``.
        prob_beats_control: Probability of a higher ``metric`` than the control (0.5 for
            the control itself).
        expected_loss: ``E[max over variants - this variant]`` of ``metric``: in rate
            units for conversion (0.001 is 0.1 percentage points), in currency per
            visitor for revenue.
        uplift: Relative uplift of ``metric`` over the control (95% interval; zero for
            the control).
        revenue_per_visitor: Posterior of revenue per visitor (95%), when known.
        stages: Per-stage effects (funnel model), in funnel order.
        changed_stage: The stage whose change vs the control is most certain, by the
            ratio of the posterior mean to the sd of the rate difference (funnel model,
            non-control variants).
        uplift_median: Posterior median of the uplift where its mean does not exist
            (control without conversions; ``uplift.mean`` is then NaN), else None.
    """

    name: str
    visitors: float
    conversions: float
    conversion: PosteriorInterval
    prob_best: float
    prob_beats_control: float
    expected_loss: float
    uplift: PosteriorInterval
    revenue_per_visitor: PosteriorInterval | None = None
    stages: tuple[StageEffect, ...] = ()
    changed_stage: StageEffect | None = None
    uplift_median: float | None = None


@dataclass(frozen=True, repr=False)
class AnalysisResult(Result):
    """Everything :func:`analyze` found.

    Attributes:
        source: Where the data came from.
        model: ``"conjugate"``, ``"funnel"`` or ``"revenue"``.
        metric: What the decision is about: ``"conversion"`` or ``"revenue_per_visitor"``.
        conversion_name: The conversion column of the data (e.g. ``retention_1``).
        control: Control variant.
        variants: Per-variant readouts, in the data's order.
        decision: Ship / stop / keep-testing decision.
        sample_ratio: Sample ratio mismatch check of the visitor split.
        rule: The decision rule applied.
        reliable: False when the sampler's diagnostics failed (always True for the
            exact conjugate readout).
        diagnostics: Sampler diagnostics (PyMC models), else None.
        posterior: ArviZ InferenceData of the PyMC models, else None.
        extras: The sequential, CUPED, guardrail, ratio and segment readouts asked for.
        planned_shares: The planned traffic split the sample ratio check used (None:
            an even split).
        operating: The rule's simulated operating characteristics at this size
            (``risks``), else None.
        notes: What of the data the model read or left aside (stage columns, revenue).
        stage_checks: Funnel model: each observed stage difference read against the
            pooling prior (:func:`funnelsim.analysis.pooling_prior.check_stages`).
    """

    source: str
    model: ModelName
    metric: Metric
    conversion_name: str
    control: str
    variants: tuple[VariantResult, ...]
    decision: Decision
    sample_ratio: SampleRatioCheck
    rule: DecisionRule
    reliable: bool
    diagnostics: Diagnostics | None = None
    posterior: az.InferenceData | None = None
    extras: ExtraReadouts | None = None
    planned_shares: tuple[float, ...] | None = None
    operating: OperatingCharacteristics | None = None
    notes: tuple[str, ...] = ()
    stage_checks: tuple[StageCheck, ...] = ()

    frame_index: ClassVar[str | None] = "variant"

    def headline(self) -> str:
        return (
            f"{self.source!r}, {self.model} model: "
            f"{', '.join(v.name for v in self.variants)}; decision {self.decision.action}"
            f"{' ' + self.decision.variant if self.decision.variant else ''}; "
            f"{'reliable' if self.reliable else 'UNRELIABLE'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document."""
        return results_dict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One row per variant: its ``results.json`` entry."""
        return [
            {"variant": name, **entry} for name, entry in results_dict(self)["variants"].items()
        ]


def analyze(
    data: ExperimentData | str | PathLike[str],
    control: str | None = None,
    model: ModelName = "conjugate",
    *,
    columns: ColumnMap = DEFAULT_COLUMNS,
    rule: DecisionRule = DEFAULT_RULE,
    sampler: Literal["auto", "pymc", "nutpie"] = "auto",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    progress: bool = False,
    split: Sequence[float] | None = None,
    request: ReadoutRequest | None = None,
    risks: RiskRequest | Literal["auto"] | None = "auto",
    allow_large: bool = False,
) -> AnalysisResult:
    """Bayesian readout and decision for an experiment.

    Args:
        data: Aggregates (see :func:`experiment_from_counts`), a CSV path (read with
            :func:`funnelsim.analysis.data.read_experiment` and ``columns``), or
            per-visitor rows where they live: a Parquet file, ``duckdb:///FILE`` (with
            ``request.table``) or a DataFrame, aggregated by their own engine
            (:mod:`funnelsim.analysis.sources`).
        control: Control variant; None takes the first variant in the data.
        model: ``"conjugate"`` (exact), ``"funnel"`` or ``"revenue"`` (PyMC).
        columns: Column names of a CSV ``data``.
        rule: Decision thresholds.
        sampler: NUTS implementation for the PyMC models (``"auto"``: nutpie when
            installed).
        draws: Kept draws per chain (PyMC models).
        tune: Warm-up draws per chain (PyMC models).
        chains: Chains (PyMC models).
        seed: Random seed; fixes the Monte Carlo and MCMC draws.
        progress: Show the sampler's progress bar on stderr.
        split: Planned traffic shares per variant for the sample ratio check (None: an
            even split); a clear mismatch withholds the decision.
        request: Extra readouts on per-visitor rows (sequential, CUPED, guardrails,
            ratios, segments); a blocking guardrail turns a ship into keep testing.
        risks: Calibrate the rule's loss threshold to ``risks.target`` (when set) and
            state its operating characteristics at this size (when ``risks.measure``),
            by simulation. ``"auto"``, as the command line: :data:`DEFAULT_RISKS`
            (calibrated to P(ship | A/A) <= 5%, risks stated) for a conversion decision,
            None (the rule as given) for the revenue model, whose decision is on revenue.
        allow_large: Run even when the estimated memory or time of the draws is beyond
            the limits of :func:`funnelsim.budget.refusal` (else TooLargeError).

    Raises:
        funnelsim.analysis.data.DataError: a problem in the CSV file.
        ValueError: a problem with the arguments (unknown control, fewer than two
            variants, a revenue model without revenue data).

    References:
        See :func:`funnelsim.analysis.decision.readout` (decision rule) and
        :mod:`funnelsim.analysis.models` (models and diagnostics).
    """
    experiment = _experiment(data, columns, request)
    control = _check_arguments(experiment, control, model)
    if not allow_large:
        variants, stages = len(experiment.variants), len(experiment.stages)
        budget.check_work(budget.analysis_work(variants, stages, model, draws, tune, chains))
    shares = None if split is None else _check_split(split, experiment)
    operating = None
    if risks == "auto":
        risks = None if model == "revenue" else DEFAULT_RISKS
    if risks is not None:
        rule, operating = _risks(experiment, control, rule, risks, seed)
    settings = None
    if model != "conjugate" or (request is not None and request.segment):
        from funnelsim.analysis import models

        settings = models.SamplerSettings(
            sampler=sampler, draws=draws, tune=tune, chains=chains, seed=seed, progress=progress
        )
    if model == "conjugate":
        result = _conjugate(experiment, control, rule, seed, shares)
    else:
        from funnelsim.analysis import models

        if model == "funnel":
            fit = models.sample(models.funnel_model(experiment, control), settings)
            result = _funnel(experiment, control, rule, fit, shares)
        else:
            fit = models.sample(models.revenue_model(experiment, control), settings)
            result = _revenue(experiment, control, rule, fit, shares)
    result = replace(result, operating=operating)
    if request is None or not request.wanted() or isinstance(data, ExperimentData):
        return result
    extras = extra_readouts(data, control, request, settings, bayesian=model != "conjugate")
    decision = result.decision if extras.metrics is None else guard(result.decision, extras.metrics)
    return replace(result, extras=extras, decision=decision)


def _risks(
    data: ExperimentData, control: str, rule: DecisionRule, risks: RiskRequest, seed: int
) -> tuple[DecisionRule, OperatingCharacteristics | None]:
    """The (calibrated) rule and its operating characteristics at the mean visitors per
    arm and the control's observed rate; the rule as given when that rate is 0 or 1
    (nothing to simulate around)."""
    ref = data.variants.index(control)
    baseline = float(data.conversions[ref] / max(data.visitors[ref], 1))
    if not 0 < baseline < 1:
        return rule, None
    visitors = round(float(data.visitors.mean()))
    return stated_risks(rule, risks, baseline, visitors, seed)


def _is_warehouse(data: object, columns: ColumnMap) -> bool:
    """Parquet, ``duckdb:///`` or a DataFrame of per-visitor rows without stage columns:
    aggregated by its own engine. Aggregated frames (a visitors column) and stage
    columns are read row by row, as a CSV file is."""
    if isinstance(data, str | PathLike):
        text = str(data)
        return text.startswith("duckdb:///") or text.lower().endswith(".parquet")
    from funnelsim.analysis.sources import column_names

    return not columns.stages and columns.visitors not in column_names(data)


def _experiment(data: object, columns: ColumnMap, request: ReadoutRequest | None) -> ExperimentData:
    if isinstance(data, ExperimentData):
        return data
    if request is not None and request.table and not str(data).startswith("duckdb:///"):
        raise DataError(f"{data}: a table name applies to duckdb:///FILE sources only")
    if not _is_warehouse(data, columns):
        return read_experiment(data, columns)  # type: ignore[arg-type]
    from funnelsim.analysis.sources import column_names, read_moments

    table = None if request is None else request.table
    revenue = columns.revenue
    if revenue is None and "revenue" in column_names(data, table):
        revenue = "revenue"  # as the CSV reader does
    wanted = [columns.converted] + ([revenue] if revenue else [])
    moments = read_moments(data, columns.variant, wanted, table)
    conversions = moments.sums[:, 0]
    orders = None
    if revenue:
        orders = OrderStats(conversions, moments.sums[:, 1], moments.cross[:, 1, 1])
    source = str(data) if isinstance(data, str | PathLike) else FRAME_SOURCE
    return ExperimentData(
        moments.arms,
        moments.count,
        conversions,
        (),
        np.zeros((len(moments.arms), 0)),
        orders,
        columns.converted,
        "per_visitor",
        source if table is None else f"{source}, table {table}",
    )


def _check_split(split: Sequence[float], data: ExperimentData) -> tuple[float, ...]:
    if len(split) != len(data.variants):
        raise DataError(
            f"split: {len(split)} shares for {len(data.variants)} variants "
            f"({', '.join(data.variants)})"
        )
    total = float(sum(split))
    return tuple(float(s) / total for s in split)


def _check_arguments(data: ExperimentData, control: str | None, model: str) -> str:
    if model not in MODELS:
        raise ArgumentError(f"model must be one of {', '.join(MODELS)}, got {model!r}", "model")
    if len(data.variants) < 2:
        raise DataError(
            f"{data.source}: only one variant ({data.variants[0]!r}); "
            "an experiment needs at least two"
        )
    if model == "revenue" and data.orders is None:
        raise DataError(f"{data.source}: the revenue model needs a revenue column", "revenue")
    if control is None:
        return data.variants[0]
    if control not in data.variants:
        raise DataError(
            f"{data.source}: control {control!r} is not one of the variants "
            f"({', '.join(data.variants)})",
            "control",
        )
    return control


# --------------------------------------------------------------------------- conjugate


def _conjugate(
    data: ExperimentData,
    control: str,
    rule: DecisionRule,
    seed: int,
    shares: tuple[float, ...] | None = None,
) -> AnalysisResult:
    """Exact readout; revenue per visitor when per-visitor revenue statistics exist."""
    names = list(data.variants)
    exact = readout(names, data.visitors, data.conversions, control, rule, expected_shares=shares)
    revenue: list[PosteriorInterval | None] = [None] * len(names)
    orders = data.orders
    if orders is not None and orders.total_sq is not None:
        stats = RevenueStats(data.visitors, data.conversions, orders.total, orders.total_sq)
        revenue = [
            PosteriorInterval(r.rpv_mean, r.rpv_low, r.rpv_high)
            for r in revenue_readout(names, stats, control, seed=seed)
        ]
    variants = tuple(
        VariantResult(
            name=v.name,
            visitors=v.visitors,
            conversions=v.conversions,
            conversion=PosteriorInterval(v.conversion_mean, v.conversion_low, v.conversion_high),
            prob_best=v.prob_best,
            prob_beats_control=v.prob_beats_control,
            expected_loss=v.expected_loss,
            uplift=PosteriorInterval(v.uplift_mean, v.uplift_low, v.uplift_high),
            revenue_per_visitor=rpv,
            uplift_median=v.uplift_median if np.isnan(v.uplift_mean) else None,
        )
        for v, rpv in zip(exact.variants, revenue, strict=True)
    )
    return AnalysisResult(
        data.source,
        "conjugate",
        "conversion",
        data.metric,
        control,
        variants,
        exact.decision,
        exact.srm,
        rule,
        reliable=True,
        planned_shares=shares,
        notes=_conjugate_notes(data),
    )


def _conjugate_notes(data: ExperimentData) -> tuple[str, ...]:
    """What the exact readout of ``data`` uses beside conversion, and what it leaves."""
    notes = []
    if data.stages:
        notes.append(
            f"the conjugate model reads conversion only; the stage columns "
            f"({', '.join(data.stages)}) are checked, not modelled: the funnel model "
            "reads them stage by stage"
        )
    if data.orders is not None and data.orders.total_sq is None:
        notes.append(
            "revenue sums without per-visitor rows give the conjugate readout no revenue "
            "per visitor: the revenue model reads them"
        )
    elif data.orders is not None:
        notes.append("revenue per visitor is read from the per-visitor revenue column")
    return tuple(notes)


# --------------------------------------------------------------------------- draws


class _DrawSummary(NamedTuple):
    interval: list[PosteriorInterval]
    prob_best: FloatArray
    prob_beats: FloatArray
    loss: FloatArray
    uplift: list[PosteriorInterval]
    decision: Decision


def _intervals(draws: FloatArray, level: float) -> list[PosteriorInterval]:
    """Mean and equal-tailed interval of each column (or trailing entry) of ``draws``."""
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
    mean = draws.mean(axis=0)
    return [
        PosteriorInterval(float(m), float(lo), float(hi))
        for m, lo, hi in zip(mean.ravel(), low.ravel(), high.ravel(), strict=True)
    ]


def _flat_draws(fit: ModelFit, name: str) -> FloatArray:
    """Posterior draws of ``name`` with chains and draws stacked on the first axis."""
    values = np.asarray(fit.idata["posterior"][name].values, dtype=np.float64)
    return values.reshape(-1, *values.shape[2:])


def _summarise_draws(
    names: Sequence[str],
    ref: int,
    draws: FloatArray,
    rule: DecisionRule,
    describe: Callable[[float], str],
    what: str,
) -> _DrawSummary:
    """The readout of :func:`funnelsim.analysis.decision.readout`, from joint draws."""
    loss = expected_loss_draws(draws)
    uplift = uplift_interval_draws(draws, ref, UPLIFT_LEVEL)
    interval = _intervals(draws, RATE_LEVEL)
    decision = decide_on_draws(names, ref, draws, rule, loss, describe=describe, metric=what)
    return _DrawSummary(
        interval,
        prob_best_draws(draws),
        prob_beats_draws(draws, ref),
        loss,
        [
            PosteriorInterval(float(m), float(lo), float(hi))
            for m, lo, hi in zip(uplift.mean, uplift.low, uplift.high, strict=True)
        ],
        decision,
    )


def _per_visitor(value: float) -> str:
    return f"{value:.3g} per visitor"


# --------------------------------------------------------------------------- funnel


def _stage_effects(
    stages: Sequence[str], rates: FloatArray, ref: int, variant: int
) -> tuple[tuple[StageEffect, ...], StageEffect | None]:
    """Per-stage posterior of a variant's rates and their change vs the control, and the
    stage changed most surely: the largest ``|mean| / sd`` of the rate difference."""
    own, base = rates[:, variant, :], rates[:, ref, :]
    change = np.divide(own, base, out=np.ones_like(own), where=base > 0) - 1
    increase = (own > base).mean(axis=0) if variant != ref else np.full(len(stages), 0.5)
    effects = tuple(
        StageEffect(stage, rate, delta, float(p))
        for stage, rate, delta, p in zip(
            stages,
            _intervals(own, RATE_LEVEL),
            _intervals(change, UPLIFT_LEVEL),
            increase,
            strict=True,
        )
    )
    if variant == ref:
        return effects, None
    difference = own - base
    spread = difference.std(axis=0)
    certainty = np.divide(
        np.abs(difference.mean(axis=0)), spread, out=np.zeros(len(stages)), where=spread > 0
    )
    return effects, effects[int(np.argmax(certainty))]


def _funnel(
    data: ExperimentData,
    control: str,
    rule: DecisionRule,
    fit: ModelFit,
    shares: tuple[float, ...] | None = None,
) -> AnalysisResult:
    names, ref = list(data.variants), data.variants.index(control)
    stages = [str(s) for s in fit.idata["posterior"]["stage"].values]
    summary = _summarise_draws(
        names, ref, _flat_draws(fit, "conversion"), rule, points, "conversion rate"
    )
    rates = _flat_draws(fit, "stage_rate")
    variants = []
    for i, name in enumerate(names):
        effects, changed = _stage_effects(stages, rates, ref, i)
        variants.append(
            VariantResult(
                name,
                float(data.visitors[i]),
                float(data.conversions[i]),
                summary.interval[i],
                float(summary.prob_best[i]),
                float(summary.prob_beats[i]),
                float(summary.loss[i]),
                summary.uplift[i],
                stages=effects,
                changed_stage=changed,
            )
        )
    result = _fitted_result(
        data, "funnel", "conversion", control, tuple(variants), summary.decision, rule, fit, shares
    )
    from funnelsim.analysis.models import funnel_counts

    counts = funnel_counts(data)
    checks = check_stages(counts.stages, data.variants, counts.reached, counts.continued, control)
    return replace(result, stage_checks=checks)


def _fitted_result(
    data: ExperimentData,
    model: ModelName,
    metric: Metric,
    control: str,
    variants: tuple[VariantResult, ...],
    decision: Decision,
    rule: DecisionRule,
    fit: ModelFit,
    shares: tuple[float, ...] | None = None,
) -> AnalysisResult:
    srm = sample_ratio_mismatch(data.visitors, shares)
    diagnostics = fit.diagnostics
    if not diagnostics.reliable:
        decision = decision._replace(
            reason=f"{decision.reason} Unreliable: {'; '.join(diagnostics.problems)}."
        )
    return AnalysisResult(
        data.source,
        model,
        metric,
        data.metric,
        control,
        variants,
        withhold_on_mismatch(decision, srm),
        srm,
        rule,
        diagnostics.reliable,
        diagnostics,
        fit.idata,
        planned_shares=shares,
    )


# --------------------------------------------------------------------------- revenue


def _revenue(
    data: ExperimentData,
    control: str,
    rule: DecisionRule,
    fit: ModelFit,
    shares: tuple[float, ...] | None = None,
) -> AnalysisResult:
    names, ref = list(data.variants), data.variants.index(control)
    summary = _summarise_draws(
        names,
        ref,
        _flat_draws(fit, "revenue_per_visitor"),
        rule,
        _per_visitor,
        "revenue per visitor",
    )
    conversion = _intervals(_flat_draws(fit, "conversion"), RATE_LEVEL)
    variants = tuple(
        VariantResult(
            name,
            float(data.visitors[i]),
            float(data.conversions[i]),
            conversion[i],
            float(summary.prob_best[i]),
            float(summary.prob_beats[i]),
            float(summary.loss[i]),
            summary.uplift[i],
            revenue_per_visitor=summary.interval[i],
        )
        for i, name in enumerate(names)
    )
    return _fitted_result(
        data,
        "revenue",
        "revenue_per_visitor",
        control,
        variants,
        summary.decision,
        rule,
        fit,
        shares,
    )


# --------------------------------------------------------------------------- JSON


def _interval_dict(interval: PosteriorInterval) -> dict[str, float | None]:
    return {key: finite_or_none(value) for key, value in interval._asdict().items()}


def _stage_dict(effect: StageEffect) -> dict[str, Any]:
    return {
        "rate": _interval_dict(effect.rate),
        "change_vs_control": _interval_dict(effect.change),
        "prob_increase": finite_or_none(effect.prob_increase),
    }


def _variant_dict(variant: VariantResult, control: bool) -> dict[str, Any]:
    """A variant's entry; the control's P(beats control) is null (no comparison)."""
    entry: dict[str, Any] = {
        "visitors": int(variant.visitors),
        "conversions": int(variant.conversions),
        "conversion": _interval_dict(variant.conversion),
        "prob_best": finite_or_none(variant.prob_best),
        "prob_beats_control": None if control else finite_or_none(variant.prob_beats_control),
        "expected_loss": finite_or_none(variant.expected_loss),
        "uplift_vs_control": _interval_dict(variant.uplift),
    }
    if variant.uplift_median is not None:
        entry["uplift_vs_control"]["median"] = finite_or_none(variant.uplift_median)
    if variant.revenue_per_visitor is not None:
        entry["revenue_per_visitor"] = _interval_dict(variant.revenue_per_visitor)
    if variant.stages:
        entry["stages"] = {effect.stage: _stage_dict(effect) for effect in variant.stages}
        changed = variant.changed_stage
        entry["changed_stage"] = (
            None if changed is None else {"stage": changed.stage, **_stage_dict(changed)}
        )
    return entry


def _diagnostics_dict(result: AnalysisResult) -> dict[str, Any]:
    found = result.diagnostics
    if found is None:
        return {"reliable": True, "method": "exact Beta-Binomial posterior"}
    from funnelsim.analysis.models import diagnostics_dict

    return diagnostics_dict(found)


def results_dict(result: AnalysisResult) -> dict[str, Any]:
    """The ``results.json`` document of an analysis.

    ``variants.<name>`` holds ``conversion`` ``{mean, low, high}`` (95%), ``prob_best``,
    ``prob_beats_control`` (null for the control), ``expected_loss`` and
    ``uplift_vs_control`` ``{mean, low, high}`` (95%, relative), all about ``metric``;
    plus ``revenue_per_visitor`` when known and ``stages`` / ``changed_stage`` for the
    funnel model. ``decision``,
    ``sample_ratio``, ``rule`` and ``diagnostics`` (with ``reliable``) follow. No NaN or
    infinity appears.
    """
    srm = result.sample_ratio
    document = {
        "source": result.source,
        "model": result.model,
        "metric": result.metric,
        "conversion_column": result.conversion_name,
        "control": result.control,
        "variants": {v.name: _variant_dict(v, v.name == result.control) for v in result.variants},
        "decision": {
            **result.decision._asdict(),
            "words": decision_words(
                result.decision.action, result.decision.variant, result.control
            ),
        },
        "sample_ratio": {
            "chi2": finite_or_none(srm.chi2),
            "p_value": finite_or_none(srm.p_value),
            "mismatch": srm.mismatch,
            "message": srm.message,
            "planned_shares": None
            if result.planned_shares is None
            else list(result.planned_shares),
        },
        "rule": result.rule._asdict(),
        "diagnostics": _diagnostics_dict(result),
    }
    if result.operating is not None:
        document["operating_characteristics"] = operating_dict(result.operating)
    if result.stage_checks:
        document["pooling_prior_check"] = _pooling_check_dict(result.stage_checks)
    if result.extras is not None:
        document.update(extras_dict(result.extras))
        _adjusted_uplifts(document, result.extras)
    return document


def _pooling_check_dict(checks: tuple[StageCheck, ...]) -> dict[str, Any]:
    return {
        "method": "prior predictive: P(|log odds ratio| >= observed) between two variants "
        "under the pooling prior (Gauss-Hermite quadrature over its scale); observed "
        "log odds ratios with 0.5 added to each count",
        "doubt_probability": DOUBT_PROBABILITY,
        "stages": [check._asdict() for check in checks],
        "message": doubt_message(checks),
    }


def _adjusted_uplifts(document: dict[str, Any], extras: ExtraReadouts) -> None:
    """With CUPED, ``uplift_vs_control`` holds the adjusted uplift of the CUPED metric
    and ``uplift_vs_control_unadjusted`` the readout's own."""
    if extras.cuped is None:
        return
    level = f"{extras.cuped.level:.0%} confidence interval"
    for effect in extras.cuped.effects:
        entry = document["variants"][effect.variant]
        entry["uplift_vs_control_unadjusted"] = entry["uplift_vs_control"]
        entry["uplift_vs_control"] = {
            "mean": finite_or_none(effect.uplift.value),
            "low": finite_or_none(effect.uplift.low),
            "high": finite_or_none(effect.uplift.high),
            "metric": extras.cuped.metric,
            "method": f"{CUPED_METHOD}; {level}",
        }


def results_json(result: AnalysisResult) -> str:
    """:func:`results_dict` as indented JSON text (strict: no NaN or infinity)."""
    return json.dumps(results_dict(result), indent=2, allow_nan=False)
