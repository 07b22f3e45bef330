"""The readouts ``analyze`` adds on per-visitor data: safe peeking, CUPED, guardrails,
ratio metrics and segments, each from aggregates the data's own engine computes.

:func:`extra_readouts` takes the source (a per-visitor CSV or Parquet file, a
``duckdb:///`` database table or a DataFrame, see :mod:`funnelsim.analysis.sources`) and
a :class:`ReadoutRequest`, and runs only what was asked for; :func:`extras_dict` is its
part of ``results.json``; :mod:`funnelsim.analysis.readout_tables` shows them. Each
block states its method and level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from funnelsim.analysis.cuped import CupedReadout, Estimate, cuped
from funnelsim.analysis.data import DataError
from funnelsim.analysis.guardrails import MetricSpec, MetricsReadout, metrics_readout
from funnelsim.analysis.ratio import RatioPosterior, RatioReadout, ratio_posterior, ratio_readout
from funnelsim.analysis.sequential import SequentialReadout, sequential_readout
from funnelsim.analysis.sources import column_names, grouped_moments, read_looks, read_moments
from funnelsim.numbers import finite_or_none

SEQUENTIAL_METHOD = (
    "mixture SPRT (Johari et al. 2017): always-valid p-values and normal-mixture "
    "confidence sequences (Howard et al. 2021), plug-in variances (asymptotic), "
    "Bonferroni over variants"
)
CUPED_METHOD = (
    "CUPED regression adjustment (Deng et al. 2013), pooled within-arm slope; "
    "normal-approximation confidence intervals"
)
METRICS_METHOD = (
    "z-tests with Benjamini-Hochberg q-values over all metrics and variants; P(harm) "
    "from the large-sample posterior of the relative change under a flat prior"
)
RATIO_METHOD = "delta method with the visitor as unit; normal-approximation intervals"


class ReadoutRequest(NamedTuple):
    """What to read besides the Bayesian readout.

    Attributes:
        arm: Variant column.
        metric: Primary per-visitor column (the conversion flag or revenue).
        revenue: Revenue column, when the data have one.
        look: Look column (a date) for the sequential readout, or None.
        covariates: Pre-experiment columns for CUPED.
        guardrails: Guardrail metrics: ``column`` or ``column:threshold`` (relative harm
            tolerated, default 0.01); a leading ``-`` marks lower-is-better.
        secondary: Secondary metrics, reported with false-discovery control.
        ratios: ``(numerator, denominator)`` column pairs.
        segment: Segment column for the hierarchical per-segment readout, or None.
        table: Table name of a ``duckdb:///`` source.
        planned_visitors: Control-plus-variant visitors the sequential test was planned
            for (None: the last look's).
    """

    arm: str = "variant"
    metric: str = "converted"
    revenue: str | None = None
    look: str | None = None
    covariates: tuple[str, ...] = ()
    guardrails: tuple[str, ...] = ()
    secondary: tuple[str, ...] = ()
    ratios: tuple[tuple[str, str], ...] = ()
    segment: str | None = None
    table: str | None = None
    planned_visitors: float | None = None

    def wanted(self) -> bool:
        """True when any extra readout is asked for."""
        return bool(
            self.look
            or self.covariates
            or self.guardrails
            or self.secondary
            or self.ratios
            or self.segment
        )


class ExtraReadouts(NamedTuple):
    """The extra readouts that were asked for (None or empty otherwise)."""

    sequential: tuple[SequentialReadout, ...] = ()
    cuped: CupedReadout | None = None
    metrics: MetricsReadout | None = None
    ratios: tuple[RatioReadout, ...] = ()
    ratio_posteriors: tuple[RatioPosterior, ...] = ()
    segments: Any = None  # funnelsim.analysis.segments.SegmentReadout (imports PyMC)
    bayesian_cuped: Any = None  # funnelsim.analysis.bayes_cuped.BayesianCuped (PyMC)


def parse_metric(text: str, role: str) -> MetricSpec:
    """``column``, ``column:threshold`` or ``-column[:threshold]`` (lower is better).

    >>> parse_metric("-refunds:0.05", "guardrail")
    MetricSpec(column='refunds', role='guardrail', higher_is_better=False, threshold=0.05)
    """
    name, _, threshold = text.strip().partition(":")
    lower = name.startswith("-")
    name = name.removeprefix("-")
    try:
        value = float(threshold) if threshold else 0.01
    except ValueError:
        raise DataError(f"metric {text!r}: the threshold after ':' must be a number") from None
    if not name or not 0 < value < 1:
        raise DataError(f"metric {text!r}: give column[:threshold], threshold in (0, 1)")
    return MetricSpec(name, role, not lower, value)  # type: ignore[arg-type]


def _columns(request: ReadoutRequest, specs: Sequence[MetricSpec]) -> list[str]:
    wanted = [request.metric, *request.covariates, *(s.column for s in specs)]
    wanted += [c for pair in request.ratios for c in pair]
    return list(dict.fromkeys(wanted))


def _sequential(
    source: Any, request: ReadoutRequest, control: str
) -> tuple[SequentialReadout, ...]:
    assert request.look is not None
    metrics = [request.metric] + ([request.revenue] if request.revenue else [])
    metrics = list(dict.fromkeys(metrics))
    labels, looks = read_looks(source, request.arm, request.look, metrics, request.table)
    return tuple(
        sequential_readout(
            looks, labels, column, control, planned_visitors=request.planned_visitors
        )
        for column in metrics
    )


def _segments(source: Any, request: ReadoutRequest, control: str, settings: Any) -> Any:
    from funnelsim.analysis.segments import segment_readout

    assert request.segment is not None
    grouped = grouped_moments(
        source, [request.segment, request.arm], [request.metric], request.table
    )
    segments = sorted({key[0] for key in grouped.keys})
    arms = sorted({key[1] for key in grouped.keys})
    visitors = np.zeros((len(segments), len(arms)))
    conversions = np.zeros_like(visitors)
    for (segment, arm), n, sums in zip(grouped.keys, grouped.count, grouped.sums, strict=True):
        visitors[segments.index(segment), arms.index(arm)] = n
        conversions[segments.index(segment), arms.index(arm)] = sums[0]
    return segment_readout(segments, arms, visitors, conversions, control, settings)


def extra_readouts(
    source: Any,
    control: str,
    request: ReadoutRequest,
    settings: Any = None,
    bayesian: bool = False,
) -> ExtraReadouts:
    """Run the readouts ``request`` asks for on ``source`` (see the module docstring).

    ``settings`` are the sampler settings of the PyMC readouts
    (:class:`funnelsim.analysis.models.SamplerSettings`; None: the defaults): the
    segment model uses them, and with ``bayesian`` (a PyMC model was asked for) CUPED
    is also fitted the Bayesian way.
    """
    if (
        request.revenue is None
        and request.look
        and "revenue" in column_names(source, request.table)
    ):
        request = request._replace(revenue="revenue")  # as the CSV reader does
    specs = [parse_metric(text, "guardrail") for text in request.guardrails]
    specs += [parse_metric(text, "secondary") for text in request.secondary]
    needs_moments = request.covariates or specs or request.ratios
    moments = (
        read_moments(source, request.arm, _columns(request, specs), request.table)
        if needs_moments
        else None
    )
    if moments is not None and control not in moments.arms:
        raise DataError(f"control {control!r} is not one of {', '.join(moments.arms)}")
    metrics = None
    if moments is not None and specs:
        primary = MetricSpec(request.metric, "primary")
        metrics = metrics_readout(moments, [primary, *specs], control)
    if settings is None and (request.segment or bayesian):
        from funnelsim.analysis.models import DEFAULT_SETTINGS

        settings = DEFAULT_SETTINGS
    pairs = request.ratios if moments is not None else ()
    return ExtraReadouts(
        sequential=_sequential(source, request, control) if request.look else (),
        cuped=cuped(moments, request.metric, request.covariates, control)
        if moments is not None and request.covariates
        else None,
        metrics=metrics,
        ratios=tuple(ratio_readout(moments, n, d, control) for n, d in pairs),
        ratio_posteriors=tuple(ratio_posterior(moments, n, d, control) for n, d in pairs),
        segments=_segments(source, request, control, settings) if request.segment else None,
        bayesian_cuped=_bayesian_cuped(moments, request, control, settings) if bayesian else None,
    )


def _bayesian_cuped(moments: Any, request: ReadoutRequest, control: str, settings: Any) -> Any:
    if moments is None or not request.covariates:
        return None
    from funnelsim.analysis.bayes_cuped import bayesian_cuped

    return bayesian_cuped(moments, request.metric, request.covariates, control, settings)


# --------------------------------------------------------------------------- JSON


def _estimate(value: Estimate) -> dict[str, float | None]:
    return {key: finite_or_none(v) for key, v in value._asdict().items()}


def _sequential_dict(found: SequentialReadout) -> dict[str, Any]:
    return {
        "method": SEQUENTIAL_METHOD,
        "alpha": found.alpha,
        "planned_visitors": found.planned_visitors,
        "stop_look": found.stop_look,
        "message": found.message,
        "looks": [
            {
                key: finite_or_none(v) if isinstance(v, float) else v
                for key, v in row._asdict().items()
            }
            for row in found.looks
        ],
    }


def _cuped_dict(found: CupedReadout) -> dict[str, Any]:
    return {
        "method": CUPED_METHOD,
        "metric": found.metric,
        "covariates": list(found.covariates),
        "level": found.level,
        "theta": list(found.theta),
        "variants": {
            e.variant: {
                "difference": _estimate(e.difference),
                "uplift": _estimate(e.uplift),
                "unadjusted_difference": _estimate(e.unadjusted_difference),
                "unadjusted_uplift": _estimate(e.unadjusted_uplift),
                "variance_reduction": finite_or_none(e.variance_reduction),
            }
            for e in found.effects
        },
    }


def _interval(values: tuple[float, float, float]) -> dict[str, float | None]:
    """A (mean, low, high) triple as JSON, NaN as null."""
    return dict(zip(("mean", "low", "high"), map(finite_or_none, values), strict=True))


def _bayesian_cuped_dict(found: Any) -> dict[str, Any]:
    from funnelsim.analysis.models import diagnostics_dict

    return {
        "method": "PyMC linear model y ~ arm + covariates on the same aggregates; "
        f"{found.level:.0%} credible intervals",
        "variants": {
            e.variant: {"difference": _interval(e.difference), "uplift": _interval(e.uplift)}
            for e in found.effects
        },
        "diagnostics": diagnostics_dict(found.diagnostics),
    }


def _metrics_dict(found: MetricsReadout) -> dict[str, Any]:
    return {
        "method": METRICS_METHOD,
        "level": found.level,
        "fdr": found.fdr,
        "max_harm_probability": found.max_harm_probability,
        "effects": [
            {
                **{
                    k: finite_or_none(v) if isinstance(v, float) else v
                    for k, v in e._asdict().items()
                },
                "uplift": _estimate(e.uplift),
            }
            for e in found.effects
        ],
    }


def _ratio_posterior_dict(found: RatioPosterior) -> dict[str, Any]:
    return {
        "method": "large-sample posterior of each arm's means under a flat prior, "
        f"{found.draws} Monte Carlo draws; {found.level:.0%} credible intervals",
        "ratios": {a: _interval(r) for a, r in zip(found.arms, found.ratios, strict=True)},
        "uplift_vs_control": {
            a: _interval(u) for a, u in zip(found.arms, found.uplifts, strict=True)
        },
        "prob_beats_control": dict(zip(found.arms, found.prob_beats_control, strict=True)),
    }


def _ratio_dict(found: RatioReadout) -> dict[str, Any]:
    return {
        "method": RATIO_METHOD,
        "numerator": found.numerator,
        "denominator": found.denominator,
        "level": found.level,
        "ratios": {arm: _estimate(r) for arm, r in zip(found.arms, found.ratios, strict=True)},
        "variants": {
            e.variant: {
                "difference": _estimate(e.difference),
                "uplift": _estimate(e.uplift),
                "denominator_change": finite_or_none(e.denominator_change),
                "denominator_p_value": finite_or_none(e.denominator_p_value),
                "denominator_mismatch": e.denominator_mismatch,
            }
            for e in found.effects
        },
    }


def _segments_dict(found: Any) -> dict[str, Any]:
    from funnelsim.analysis.models import diagnostics_dict

    return {
        "method": "hierarchical Binomial model, partial pooling of the log-odds effects; "
        f"{found.level:.0%} credible intervals",
        "aggregate_difference": found.aggregate,
        "across_segments": {k: v._asdict() for k, v in found.across_segments.items()},
        "effects": [{**e._asdict(), "difference": e.difference._asdict()} for e in found.effects],
        "warnings": list(found.warnings),
        "diagnostics": diagnostics_dict(found.diagnostics),
    }


def extras_dict(found: ExtraReadouts) -> dict[str, Any]:
    """The ``results.json`` blocks of the readouts that ran, by name."""
    blocks: dict[str, Any] = {}
    if found.sequential:
        blocks["sequential"] = {s.metric: _sequential_dict(s) for s in found.sequential}
    if found.cuped is not None:
        blocks["cuped"] = _cuped_dict(found.cuped)
        if found.bayesian_cuped is not None:
            blocks["cuped"]["bayesian"] = _bayesian_cuped_dict(found.bayesian_cuped)
    if found.metrics is not None:
        blocks["metrics"] = _metrics_dict(found.metrics)
    if found.ratios:
        blocks["ratios"] = [
            {**_ratio_dict(r), "bayesian": _ratio_posterior_dict(p)}
            for r, p in zip(found.ratios, found.ratio_posteriors, strict=True)
        ]
    if found.segments is not None:
        blocks["segments"] = _segments_dict(found.segments)
    return blocks
