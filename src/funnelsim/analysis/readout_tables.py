"""The tables of the per-visitor readouts ``analyze`` adds (sequential, CUPED, metrics
with guardrails, ratio metrics, segments), built once as :class:`funnelsim.tables.Table`
models: the terminal and the HTML report show the same cells.

:func:`extras_tables` gives them in the order of the readout. The terminal shows the
last look of a sequential test (and the look where it stopped) and leaves out the
primary metric's row of the metrics table, which the decision table already shows;
with ``every_row`` (``--verbose``, and always in the report) every row is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from funnelsim import formatting as fmt
from funnelsim.analysis.readouts import ExtraReadouts
from funnelsim.tables import EMPTY, Cell, Column, Row, Table, label, text

if TYPE_CHECKING:
    from funnelsim.analysis.cuped import CupedReadout, Estimate
    from funnelsim.analysis.guardrails import MetricEffect, MetricsReadout
    from funnelsim.analysis.ratio import RatioEffect, RatioPosterior, RatioReadout
    from funnelsim.analysis.sequential import SequentialLook, SequentialReadout


def fit_note(found: Any) -> Cell:
    """One line on a NUTS fit's diagnostics (:class:`funnelsim.analysis.models.Diagnostics`),
    saying whether it can be trusted."""
    verdict = "reliable" if found.reliable else f"UNRELIABLE: {'; '.join(found.problems)}"
    return Cell(
        f"{found.sampler} NUTS, {found.chains} chains x {found.draws:,} draws in "
        f"{found.seconds:.1f} s: max r_hat {found.r_hat_max:.3f}, min ESS "
        f"{found.ess_bulk_min:,.0f} bulk / {found.ess_tail_min:,.0f} tail, "
        f"{found.divergences} divergences: {verdict}.",
        tone="good" if found.reliable else "bad",
    )


def _uplift(mean: float, low: float, high: float) -> Cell:
    """A relative change with its interval below."""
    return Cell(fmt.uplift(mean, low, high), fmt.uplift_bounds(mean, low, high))


def _estimate_uplift(value: Estimate) -> Cell:
    return _uplift(value.value, value.low, value.high)


def _visitors(variant: float, control: float) -> Cell:
    return Cell(fmt.count(variant), f"control {fmt.count(control)}")


# --------------------------------------------------------------------------- sequential


def _shown_looks(found: SequentialReadout, every_row: bool) -> list[SequentialLook]:
    """Every look, or the last look and the one where the test stopped."""
    if every_row:
        return list(found.looks)
    last = found.looks[-1].look
    return [row for row in found.looks if row.look in (found.stop_look, last)]


def _difference_format(rate: bool) -> Callable[[float], str]:
    """Differences of rates in signed percentage points, of other metrics in their unit."""
    return (lambda value: fmt.points(value, signed=True)) if rate else fmt.difference


def _difference(value: float, low: float, high: float, rate: bool) -> Cell:
    show = _difference_format(rate)
    return Cell(show(value), fmt.bounds(low, high, show))


def sequential_table(found: SequentialReadout, every_row: bool = True, rate: bool = False) -> Table:
    """Look by look: each variant's difference from the control with its always-valid
    confidence sequence, and the always-valid p-value (``rate``: the metric is a 0/1
    flag, its differences in percentage points)."""
    rows = tuple(
        Row(
            (
                Cell(row.look),
                Cell(row.variant),
                _visitors(row.visitors, row.control_visitors),
                _difference(row.difference, row.low, row.high, rate),
                Cell(fmt.p_value(row.p_value)),
                Cell("differs", tone="good" if row.difference > 0 else "bad")
                if row.significant
                else EMPTY,
            ),
            highlight=row.look == found.stop_look,
        )
        for row in _shown_looks(found, every_row)
    )
    shown = "every look" if every_row else "the last look and the look it stopped at"
    return Table(
        f"Safe peeking on {found.metric}: always-valid {fmt.level(1 - found.alpha)} "
        "confidence sequences",
        (
            label("look"),
            label("variant"),
            Column("visitors"),
            Column("difference"),
            Column("always-valid p"),
            text("verdict"),
        ),
        rows,
        caption="Mixture SPRT and normal-mixture confidence sequences, "
        f"{fmt.level(1 - found.alpha)} over all looks and variants (Bonferroni), tuned for "
        f"{fmt.count(found.planned_visitors)} visitors; {shown}.",
        notes=(Cell(found.message, tone="good" if found.stop_look else "pending"),),
    )


# --------------------------------------------------------------------------- CUPED


def cuped_table(found: CupedReadout, bayesian: Any = None, rate: bool = False) -> Table:
    """Per variant: the regression-adjusted uplift beside the unadjusted one and the
    variance removed; with ``bayesian`` (:class:`~funnelsim.analysis.bayes_cuped.
    BayesianCuped`) also the posterior of the adjusted uplift."""
    posterior = {e.variant: e for e in bayesian.effects} if bayesian is not None else {}
    header = [label("variant"), Column("adjusted uplift"), Column("unadjusted uplift")]
    header += [Column("variance removed"), Column("adjusted difference")]
    header += [Column("posterior uplift")] if bayesian is not None else []
    rows = []
    for e in found.effects:
        d = e.difference
        cells = [
            Cell(e.variant),
            _estimate_uplift(e.uplift),
            _estimate_uplift(e.unadjusted_uplift),
            Cell(fmt.percent(e.variance_reduction, digits=1)),
            _difference(d.value, d.low, d.high, rate),
        ]
        if bayesian is not None:
            cells.append(_uplift(*posterior[e.variant].uplift))
        rows.append(Row(tuple(cells)))
    caption = (
        f"CUPED regression adjustment (Deng et al. 2013), {fmt.level(found.level)} "
        "normal-approximation confidence interval below each value; variance removed: "
        "share of the unadjusted variance of the difference."
    )
    notes: tuple[Cell, ...] = ()
    if bayesian is not None:
        caption += (
            f" Posterior: PyMC linear model y ~ arm + covariates, "
            f"{fmt.level(bayesian.level)} credible interval."
        )
        notes = (fit_note(bayesian.diagnostics),)
    return Table(
        f"Variance reduction (CUPED) on {found.metric}, adjusted for {', '.join(found.covariates)}",
        tuple(header),
        tuple(rows),
        caption=caption,
        notes=notes,
    )


# --------------------------------------------------------------------------- metrics


def _verdict(effect: MetricEffect, fdr: float) -> Cell:
    if effect.role == "guardrail":
        return Cell("blocks ship", tone="bad") if effect.blocks else Cell("passes", tone="good")
    if effect.q_value <= fdr:
        return Cell("discovered", tone="good" if effect.uplift.value > 0 else "bad")
    return EMPTY


def metrics_table(found: MetricsReadout, every_row: bool = True) -> Table:
    """Per metric and variant: the means, the relative change with its interval, the
    q-value (and p-value), and for guardrails the probability of harm beyond the
    threshold and the verdict."""
    shown = [e for e in found.effects if every_row or e.role != "primary"]
    rows = tuple(
        Row(
            (
                Cell(e.metric, e.role),
                Cell(e.variant),
                Cell(fmt.number(e.variant_mean), f"control {fmt.number(e.control_mean)}"),
                _estimate_uplift(e.uplift),
                Cell(fmt.p_value(e.q_value), f"p {fmt.p_value(e.p_value)}"),
                Cell(fmt.percent(e.prob_harm, digits=1)) if e.role == "guardrail" else EMPTY,
                _verdict(e, found.fdr),
            )
        )
        for e in shown
    )
    return Table(
        "Metrics and guardrails",
        (
            label("metric"),
            label("variant"),
            Column("mean per visitor"),
            Column("change"),
            Column("q (BH)"),
            Column("P(harm)"),
            text("verdict"),
        ),
        rows,
        caption=f"z-tests, {fmt.level(found.level)} normal-approximation confidence "
        f"interval below each change; Benjamini-Hochberg q over all metrics and variants, "
        f"discovered at q <= {found.fdr:g}; P(harm): large-sample posterior (flat prior) "
        f"of harm beyond the guardrail's threshold, which blocks a ship above "
        f"{fmt.percent(found.max_harm_probability, digits=0)}.",
    )


# --------------------------------------------------------------------------- ratios


def _denominator(effect: RatioEffect) -> Cell:
    """The change of the denominator per visitor; a clear change makes the ratios compare
    different populations."""
    words = "differs" if effect.denominator_mismatch else "comparable"
    return Cell(
        fmt.percent(effect.denominator_change, digits=1, signed=True),
        f"p {fmt.p_value(effect.denominator_p_value)}, {words}",
        tone="bad" if effect.denominator_mismatch else "",
    )


def ratio_table(found: RatioReadout, posterior: RatioPosterior) -> Table:
    """Per arm, control first: the ratio with its delta-method interval, its uplift (delta
    method and posterior), P(beats control), and whether the denominator per visitor
    moved."""
    effects = {e.variant: e for e in found.effects}
    estimates = dict(zip(found.arms, found.ratios, strict=True))
    pairs = zip(posterior.uplifts, posterior.prob_beats_control, strict=True)
    bayes = dict(zip(posterior.arms, pairs, strict=True))
    rows = [
        Row(
            (
                Cell(found.control if found.control == "control" else f"{found.control} (control)"),
                _number_interval(estimates[found.control]),
                EMPTY,
                EMPTY,
                EMPTY,
                EMPTY,
            )
        )
    ]
    for arm, effect in effects.items():
        uplift, beats = bayes[arm]
        rows.append(
            Row(
                (
                    Cell(arm),
                    _number_interval(estimates[arm]),
                    _estimate_uplift(effect.uplift),
                    _uplift(*uplift),
                    Cell(fmt.percent(beats, digits=1)),
                    _denominator(effect),
                )
            )
        )
    return Table(
        f"Ratio {found.numerator}/{found.denominator}",
        (
            label("variant"),
            Column("ratio"),
            Column("uplift"),
            Column("posterior uplift"),
            Column("P(beats control)"),
            Column(f"{found.denominator} per visitor"),
        ),
        tuple(rows),
        caption=f"Delta method, visitor as unit, {fmt.level(found.level)} normal-"
        f"approximation confidence interval below; posterior: flat prior on each arm's "
        f"means, {posterior.draws:,} Monte Carlo draws, {fmt.level(posterior.level)} "
        f"credible interval. When {found.denominator} per visitor differ, the ratios "
        "compare populations the variant itself changed.",
    )


def _number_interval(value: Estimate) -> Cell:
    return Cell(fmt.number(value.value), fmt.bounds(value.low, value.high, fmt.number))


# --------------------------------------------------------------------------- segments


def segment_table(found: Any) -> Table:
    """Per segment and variant (:class:`~funnelsim.analysis.segments.SegmentReadout`):
    the difference read alone and with partial pooling, the shrinkage, and whether the
    segment moves against all visitors together; then all segments together."""
    rows = [
        Row(
            (
                Cell(e.segment),
                Cell(e.variant),
                _visitors(e.visitors, e.control_visitors),
                Cell(
                    fmt.points(e.raw_difference, signed=True),
                    f"shrunk {fmt.percent(e.shrinkage, digits=0)}",
                ),
                _points_interval(e.difference),
                Cell(
                    fmt.percent(e.prob_positive, digits=1),
                    "against the total" if e.disagrees else "",
                    tone="bad" if e.disagrees else "",
                ),
            )
        )
        for e in found.effects
    ]
    rows += [
        Row(
            (
                Cell("all segments"),
                Cell(variant),
                EMPTY,
                Cell(fmt.points(found.aggregate[variant], signed=True)),
                _points_interval(summary),
                EMPTY,
            ),
            highlight=True,
        )
        for variant, summary in found.across_segments.items()
    ]
    warnings = tuple(Cell(w, tone="bad") for w in found.warnings) or (
        Cell("No segment moves against the total."),
    )
    return Table(
        f"Segments: conversion difference vs {found.control}, partial pooling",
        (
            label("segment"),
            label("variant"),
            Column("visitors"),
            Column("alone"),
            Column("partial pooling"),
            Column("P(better)"),
        ),
        tuple(rows),
        caption="Hierarchical Binomial model, partial pooling of the log-odds effects; "
        f"posterior mean, {fmt.level(found.level)} credible interval below; alone: the "
        "segment's raw difference, and the share of its distance from the common effect "
        "that pooling removes; all segments: all visitors' raw difference and the "
        "visitor-weighted posterior.",
        notes=(*warnings, fit_note(found.diagnostics)),
    )


def _points_interval(summary: Any) -> Cell:
    return Cell(
        fmt.points(summary.mean, signed=True),
        fmt.bounds(summary.low, summary.high, lambda v: fmt.points(v, signed=True)),
    )


def extras_tables(
    found: ExtraReadouts, every_row: bool = False, rate_column: str | None = None
) -> list[Table]:
    """The tables of the readouts that ran, in the readout's order; differences of
    ``rate_column`` (the conversion flag) read in percentage points."""
    tables = [sequential_table(s, every_row, s.metric == rate_column) for s in found.sequential]
    if found.cuped is not None:
        rate = found.cuped.metric == rate_column
        tables.append(cuped_table(found.cuped, found.bayesian_cuped, rate))
    if found.metrics is not None:
        tables.append(metrics_table(found.metrics, every_row))
    tables += [ratio_table(r, p) for r, p in zip(found.ratios, found.ratio_posteriors, strict=True)]
    if found.segments is not None:
        tables.append(segment_table(found.segments))
    return tables
