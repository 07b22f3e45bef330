"""Figures of a funnel experiment: where visitors go, what a test would believe, what it costs.

Think of the wall of a growth team's meeting room. On it hangs a funnel drawn
as shrinking bars, landing page at the top and buyers at the bottom, with a
note beside each step saying why people left there: the page was slow, the
form too long, the login wall. Next to it, a curve per variant showing how
much better the variant *might* be, with a grey band around zero for "too
small to matter" (the region of practical equivalence, ROPE). Below, the
money: what a customer brought in over their life against what it cost to win
them, per channel. This module draws those pictures.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the Agg
canvas (no window, no display needed, nothing global touched), and
:func:`funnelsim.files.png_bytes` turns it into a PNG. Densities of posterior draws are
binned Gaussian kernel estimates (:func:`density`), MCMC traces with ``arviz.plot_trace``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from matplotlib import MatplotlibDeprecationWarning, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from numpy.typing import NDArray

from funnelsim import friction

if TYPE_CHECKING:
    from arviz import InferenceData

    from funnelsim.intervals import Interval
    from funnelsim.results import VariantSummary

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

REASON_LABELS = {
    **{reason: friction.LOSS_LABELS[reason] for reason in friction.FRICTION_REASONS},
    "rate": "did not continue",
    "response": friction.LOSS_LABELS["response"],
    "queue": "gave up waiting",
    "declined": "declined (low priority)",
    "unanswered": "call not answered",
}
REASON_COLORS = {
    "page_load": "#d62728",
    "form_fields": "#ff7f0e",
    "login_wall": "#9467bd",
    "payment": "#8c564b",
    "contact": "#e377c2",
    "rate": "#c7c7c7",
    "response": "#bcbd22",
    "queue": "#17becf",
    "declined": "#7f7f7f",
    "unanswered": "#aec7e8",
}
LTV_CAC_TARGET = 3.0
"""The 3:1 LTV:CAC rule of thumb of SaaS and e-commerce finance (e.g. Skok, "SaaS
Metrics 2.0", For Entrepreneurs, 2013); 1:1 is break-even."""
STYLE: dict[Any, Any] = {  # keys are matplotlib rcParams
    "font.size": 9,
    "axes.titlesize": 10,
    # titles on the top edge: no axes here has ticks or labels above it, so matplotlib's
    # search for them (about a tenth of the time a figure takes to draw) would find nothing
    "axes.titley": 1.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "legend.frameon": False,
}


def variant_color(index: int) -> str:
    """The colour of the ``index``-th variant (control first), the same in every figure."""
    palette = (
        "#4c4c4c",
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#17becf",
        "#bcbd22",
        "#d62728",
    )
    return palette[index % len(palette)]


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure on its own Agg canvas, independent of pyplot's global state."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


@contextmanager
def _quiet_arviz() -> Iterator[None]:
    """Silence ArviZ's own use of a matplotlib helper deprecated in 3.11."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        yield


# --------------------------------------------------------------------------- funnels


class FunnelData(NamedTuple):
    """One variant's funnel: visitors reaching each stage, and who was lost where and why.

    Attributes:
        variant: Variant name.
        stages: Stage names, in order.
        reached: Visitors reaching each stage, then the buyers (``len(stages) + 1`` values).
        lost: Per stage, visitors lost there by reason (keys of :data:`REASON_LABELS`).
    """

    variant: str
    stages: tuple[str, ...]
    reached: tuple[float, ...]
    lost: Mapping[str, Mapping[str, float]]


def funnel_data(summary: VariantSummary, stages: Sequence[str]) -> FunnelData:
    """Visitors per stage from a variant's mean visitors and stage continue rates.

    >>> from types import SimpleNamespace  # stands in for a VariantSummary
    >>> s = SimpleNamespace(name="control", visitors=1000.0, lost_by_reason={},
    ...                     stage_rates={"landing": 0.5, "checkout": 0.2})
    >>> funnel_data(s, ["landing", "checkout"]).reached
    (1000.0, 500.0, 100.0)
    """
    rates = np.nan_to_num([summary.stage_rates[name] for name in stages])  # NaN: none came
    reached = summary.visitors * np.concatenate([[1.0], np.cumprod(rates)])
    return FunnelData(
        summary.name, tuple(stages), tuple(float(v) for v in reached), summary.lost_by_reason
    )


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def funnel_figure(funnel: FunnelData, scale: float | None = None) -> Figure:
    """The funnel as shrinking bars, with the losses at each stage split by reason.

    Left: visitors reaching each stage (and buyers), centred like a drawn funnel,
    labelled with the count and the share of all visitors; between bars, the share
    who dropped off. Right: the share of each stage's visitors lost there, stacked
    by reason, so friction at a late, small stage is as visible as at the first.
    ``scale`` fixes the widest bar (use the largest first-stage count across
    variants so their funnels compare at a glance).
    """
    labels = [*funnel.stages, "buyers"]
    rows = np.arange(len(labels), dtype=np.int64)
    reached = np.asarray(funnel.reached)
    top = scale or float(reached[0]) or 1.0
    with rc_context(STYLE):
        figure = new_figure(9.0, 0.55 * len(labels) + 1.3)
        bars, losses = figure.subplots(1, 2, width_ratios=(1.25, 1.0))
        _draw_funnel(bars, rows, labels, reached, top)
        _draw_losses(losses, rows, funnel)
        losses.set_ylim(bars.get_ylim())  # the rows of the bars; their labels say it once
        losses.yaxis.set_visible(False)
        figure.suptitle(
            f"{funnel.variant}: visitors per stage and where they were lost",
            fontsize=11,
            x=0.02,
            ha="left",
        )
    return figure


def _draw_funnel(
    ax: Axes, rows: IntArray, labels: list[str], reached: FloatArray, top: float
) -> None:
    share = reached / reached[0] if reached[0] > 0 else np.zeros_like(reached)
    colors = ["#6baed6"] * (len(labels) - 1) + ["#2ca02c"]
    ax.barh(rows, reached, left=(top - reached) / 2, color=colors, height=0.72)
    for row, count, fraction in zip(rows, reached, share, strict=True):
        ax.text(
            top / 2,
            row,
            f"{_count(count)}  ({fraction:.1%})",
            ha="center",
            va="center",
            fontsize=8.5,
            color="black",
        )
    for row in rows[:-1]:
        if reached[row] > 0:
            drop = 1.0 - reached[row + 1] / reached[row]
            ax.text(
                top * 0.99,
                row + 0.5,
                f"-{drop:.1%}",
                ha="right",
                va="center",
                fontsize=7.5,
                color="#b22222",
            )
    ax.set_yticks(rows, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, top)
    ax.set_xticks([])
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.set_title("visitors reaching each stage (share of all); red: dropped off", loc="left")


def _draw_losses(ax: Axes, rows: IntArray, funnel: FunnelData) -> None:
    reached = np.asarray(funnel.reached)
    left = np.zeros(len(rows))
    for reason, label in REASON_LABELS.items():
        counts = np.array(
            [funnel.lost.get(stage, {}).get(reason, 0.0) for stage in funnel.stages] + [0.0]
        )
        if counts.sum() <= 0:
            continue
        share = np.divide(counts, reached, out=np.zeros_like(counts), where=reached > 0)
        ax.barh(rows, share, left=left, color=REASON_COLORS[reason], height=0.72, label=label)
        left += share
    for row, total in zip(rows[:-1], left[:-1], strict=True):
        if total > 0:
            ax.text(total + 0.01, row, f"{total:.0%}", va="center", fontsize=7.5)
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_title("share of the stage's visitors lost there, by reason", loc="left")
    if left.sum() > 0:
        ax.legend(loc="lower right", fontsize=7.5)


# --------------------------------------------------------------------------- posteriors


def error_extents(mean: FloatArray, low: FloatArray, high: FloatArray) -> FloatArray:
    """Error-bar lengths below and above each mean, shaped ``(2, n)``; never negative, so
    a degenerate interval (a rate of 0% or 100%, bounds a rounding error past the mean)
    draws as a point instead of failing.

    >>> error_extents(np.array([1.0]), np.array([1.0 + 1e-18]), np.array([1.5])).tolist()
    [[0.0], [0.5]]
    """
    return np.clip(np.vstack([mean - low, high - mean]), 0.0, None)


def density(draws: FloatArray, points: int = 512) -> tuple[FloatArray, FloatArray]:
    """Gaussian kernel density of ``draws`` on ``points`` grid points spanning their range.

    Binned estimate (Wand 1994, "Fast computation of multivariate kernel estimators",
    J. Comput. Graph. Stat. 3(4)): a histogram smoothed by a Gaussian filter, reflected at
    the ends of the range; bandwidth by Silverman's rule of thumb (Silverman 1986,
    "Density Estimation for Statistics and Data Analysis", eq. 3.31). The heights
    integrate to 1 over the grid.

    >>> grid, height = density(np.random.default_rng(1).normal(size=20_000))
    >>> round(float(np.sum(height) * (grid[1] - grid[0])), 9)
    1.0
    """
    from scipy.ndimage import gaussian_filter1d  # far lighter to import than scipy.stats

    counts, edges = np.histogram(draws, bins=points)
    width = edges[1] - edges[0]
    quartiles = np.percentile(draws, [25, 75])
    spread = min(float(np.std(draws)), float(quartiles[1] - quartiles[0]) / 1.34)
    bandwidth = 0.9 * (spread or float(np.std(draws))) * draws.size**-0.2
    smoothed = gaussian_filter1d(counts.astype(float), bandwidth / width, mode="reflect")
    return (edges[:-1] + edges[1:]) / 2, smoothed / (draws.size * width)


def _draw_rope(ax: Axes, rope: float | None) -> None:
    """The zero line of an uplift axis (in percent), with the ROPE band around it."""
    if rope is not None:
        ax.axvspan(
            -rope * 100,
            rope * 100,
            color="#dddddd",
            zorder=0,
            label=f"ROPE ±{rope:.1%}: practically equal",
        )
    ax.axvline(0.0, color="#555555", linewidth=0.8)


def uplift_figure(
    metric: str,
    draws: Mapping[str, FloatArray],
    rope: float,
    decisions: Mapping[str, str],
    truth: Mapping[str, Interval] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Posterior densities of each variant's relative uplift over control, with the ROPE.

    ``draws`` maps a variant to posterior draws of its relative uplift (0.05 = +5%);
    ``rope`` is the half-width of the region of practical equivalence; ``decisions``
    gives the decision per variant (``ship``, ``stop``, ``keep_testing``) shown in the
    legend with P(uplift > 0). ``truth`` (optional) marks the model's expected uplift
    per variant with a dashed line, so a reader sees how far one test can stray.
    """
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.4)
        ax = figure.subplots()
        _draw_rope(ax, rope)
        for i, (variant, values) in enumerate(draws.items()):
            color = (colors or {}).get(variant, variant_color(i + 1))
            percent = np.asarray(values, dtype=float) * 100
            percent = percent[np.isfinite(percent)]
            decision = decisions.get(variant, "")
            label = f"{variant}: P(uplift>0) {np.mean(percent > 0):.0%}" + (
                f", {decision.replace('_', ' ')}" if decision else ""
            )
            if percent.size > 1 and np.ptp(percent) > 0:
                grid, height = density(percent)
                ax.plot(grid, height, color=color, linewidth=1.5)
                ax.fill_between(grid, height, color=color, alpha=0.18, linewidth=0, label=label)
            if truth and variant in truth and math.isfinite(truth[variant].mean):
                ax.axvline(truth[variant].mean * 100, color=color, linestyle="--", linewidth=1.0)
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.tick_params(labelsize=8)
        ax.set_xlabel(f"relative uplift in {metric} vs control")
        ax.set_ylim(bottom=0.0)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_title(
            f"Posterior of the uplift in {metric}"
            + ("  (dashed: the model's expected uplift)" if truth else ""),
            loc="left",
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5)
    return figure


def uplift_interval_figure(
    metric: str,
    intervals: Mapping[str, tuple[float, float, float]],
    rope: float | None,
    prob_beats: Mapping[str, float],
) -> Figure:
    """Posterior mean and credible interval of each variant's relative uplift, with the ROPE
    (none when ``rope`` is None: a readout without a decision rule).

    For readouts that summarise a posterior by its interval (``intervals[variant]`` is
    ``(mean, low, high)`` of the relative uplift); ``prob_beats`` is P(better than control).
    """
    with rc_context(STYLE):
        figure = new_figure(8.0, 0.5 * len(intervals) + 1.4)
        ax = figure.subplots()
        _draw_rope(ax, rope)
        for row, (variant, (mean, low, high)) in enumerate(intervals.items()):
            color = variant_color(row + 1)
            ax.errorbar(
                [mean * 100],
                [row],
                xerr=error_extents(np.array([mean]), np.array([low]), np.array([high])) * 100,
                fmt="o",
                color=color,
                capsize=4,
                linewidth=1.6,
            )
            if variant in prob_beats:
                ax.text(
                    high * 100,
                    row,
                    f"  P(better) {prob_beats[variant]:.0%}",
                    va="center",
                    fontsize=8,
                    color=color,
                )
        ax.set_yticks(range(len(intervals)), list(intervals))
        ax.set_ylim(len(intervals) - 0.4, -0.6)
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_xlabel(f"relative uplift in {metric} vs control (posterior mean, 95% interval)")
        ax.set_title(f"Posterior of the uplift in {metric}", loc="left")
        if rope is not None:
            ax.legend(loc="lower right", fontsize=7.5)
        ax.margins(x=0.25)
    return figure


class SequenceSeries(NamedTuple):
    """One variant's always-valid readout over the looks: the difference from the control
    and its confidence sequence (one value per look)."""

    difference: FloatArray
    low: FloatArray
    high: FloatArray


def _finite(values: FloatArray) -> FloatArray:
    """``values`` with infinities as NaN, which matplotlib leaves as gaps."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def confidence_sequence_figure(
    metric: str,
    looks: Sequence[str],
    series: Mapping[str, SequenceSeries],
    level: float,
    stop_look: str | None = None,
    scale: float = 1.0,
    unit: str = "",
) -> Figure:
    """Each variant's difference from the control look by look, inside its always-valid
    confidence sequence: the test may stop at the first look whose band leaves zero.

    Values are multiplied by ``scale`` (100 for rates, read in percentage points, the
    ``unit``); bounds that are not finite yet (no variance at an early look) are gaps.
    """
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.2)
        ax = figure.subplots()
        x = np.arange(len(looks))
        ax.axhline(0.0, color="#555555", linewidth=0.8)
        for i, (variant, found) in enumerate(series.items()):
            color = variant_color(i + 1)
            ax.fill_between(
                x,
                _finite(found.low) * scale,
                _finite(found.high) * scale,
                color=color,
                alpha=0.18,
                linewidth=0,
            )
            ax.plot(
                x,
                _finite(found.difference) * scale,
                color=color,
                marker="o",
                markersize=3,
                linewidth=1.2,
                label=variant,
            )
        if stop_look is not None and stop_look in looks:
            ax.axvline(
                list(looks).index(stop_look),
                color="#2ca02c",
                linestyle="--",
                linewidth=1.0,
                label=f"may stop: {stop_look}",
            )
        ticks = x[:: max(1, math.ceil(len(looks) / 8))]
        ax.set_xticks(ticks, [looks[t] for t in ticks], fontsize=7.5)
        ax.set_xlabel("look")
        ax.set_ylabel(f"difference in {metric}" + (f" ({unit})" if unit else ""))
        ax.set_title(
            f"Difference from the control in {metric}, always-valid {level:.0%} "
            "confidence sequence",
            loc="left",
        )
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def interval_rows_figure(
    title: str,
    xlabel: str,
    series: Mapping[str, Mapping[str, tuple[float, float, float]]],
    percent: bool = True,
) -> Figure:
    """Estimates with their intervals, one row per label and one marker per series
    (``series[name][row] = (mean, low, high)``; e.g. the adjusted and the unadjusted
    uplift of each variant). Rows with no finite mean are left out of the drawing;
    ``percent`` reads the values as shares (0.05 is 5%)."""
    rows = list(dict.fromkeys(row for found in series.values() for row in found))
    scale = 100.0 if percent else 1.0
    step = 0.7 / max(len(series), 1)
    with rc_context(STYLE):
        figure = new_figure(8.0, 0.45 * max(len(rows), 1) * max(len(series), 1) ** 0.5 + 1.5)
        ax = figure.subplots()
        ax.axvline(0.0, color="#555555", linewidth=0.8)
        for s, (name, found) in enumerate(series.items()):
            offset = (s - (len(series) - 1) / 2) * step
            kept = [(r, v) for r, v in found.items() if math.isfinite(v[0])]
            if not kept:
                continue
            mean, low, high = (np.array([v[i] for _, v in kept]) for i in range(3))
            low, high = (
                np.where(np.isfinite(low), low, mean),
                np.where(np.isfinite(high), high, mean),
            )
            ax.errorbar(
                mean * scale,
                [rows.index(r) + offset for r, _ in kept],
                xerr=error_extents(mean, low, high) * scale,
                fmt="o",
                color=variant_color(s + 1),
                capsize=3,
                linewidth=1.4,
                label=name,
            )
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        if percent:
            ax.xaxis.set_major_formatter(PercentFormatter(decimals=1))
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        if len(series) > 1:
            ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.margins(x=0.15)
    return figure


# --------------------------------------------------------------------------- economics


def ltv_cac_figure(ratios: Mapping[str, Mapping[str, float]], variants: Sequence[str]) -> Figure:
    """LTV:CAC per channel (groups) and variant (bars), with break-even and the 3:1 target.

    ``ratios[channel][variant]`` is CLV per customer over acquisition cost per customer;
    channels that cost nothing (infinite ratio) are labelled "no spend".
    """
    channels = list(ratios)
    width = 0.8 / max(len(variants), 1)
    finite = [v for c in channels for v in ratios[c].values() if math.isfinite(v)]
    ceiling = max([*finite, LTV_CAC_TARGET]) * 1.15
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.4)
        ax = figure.subplots()
        x = np.arange(len(channels))
        for i, variant in enumerate(variants):
            values = np.array([ratios[c].get(variant, math.nan) for c in channels])
            shown = np.where(np.isfinite(values), values, 0.0)
            positions = x - 0.4 + width * (i + 0.5)
            ax.bar(positions, shown, width=width * 0.95, color=variant_color(i), label=variant)
            for pos, value in zip(positions, values, strict=True):
                text = f"{value:.1f}" if math.isfinite(value) else "no spend"
                ax.text(
                    pos,
                    (value if math.isfinite(value) else 0) + ceiling * 0.01,
                    text,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90 if len(variants) > 3 else 0,
                )
        ax.axhline(1.0, color="#b22222", linewidth=0.8, linestyle=":", label="break-even (1:1)")
        ax.axhline(
            LTV_CAC_TARGET, color="#2ca02c", linewidth=0.8, linestyle="--", label="3:1 target"
        )
        ax.set_xticks(x, channels)
        ax.set_ylim(0, ceiling * 1.1)
        ax.set_ylabel("LTV : CAC")
        ax.set_title("Lifetime value per customer over acquisition cost, per channel", loc="left")
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


# --------------------------------------------------------------------------- diagnostics


def running_mean_figure(
    series: Mapping[str, FloatArray], metric: str, percent: bool = True
) -> Figure:
    """Mean of a metric over the first k replications, with a 95% band (±1.96 SE).

    Flat lines with narrow, separated bands say the replications were enough to
    rank the variants; crossing bands say run more.
    """
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.0)
        ax = figure.subplots()
        for i, (variant, values) in enumerate(series.items()):
            values = np.asarray(values, dtype=float)
            k = np.arange(1, values.size + 1)
            mean = np.cumsum(values) / k
            square = np.cumsum(values**2) / k
            sd = np.sqrt(np.maximum(square - mean**2, 0.0) * k / np.maximum(k - 1, 1))
            half = 1.96 * sd / np.sqrt(k)
            color = variant_color(i)
            ax.plot(k, mean, color=color, label=variant, linewidth=1.2)
            ax.fill_between(
                k[1:], (mean - half)[1:], (mean + half)[1:], color=color, alpha=0.15, linewidth=0
            )
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("replications")
        ax.set_ylabel(metric)
        ax.set_title(f"Running mean of {metric} over replications (95% band)", loc="left")
        ax.legend(fontsize=7.5, ncols=min(len(series), 4))
    return figure


def repeat_purchases_figure(curves: Mapping[str, FloatArray]) -> Figure:
    """Expected repeat purchases of a new customer against months since the first order,
    per variant: posterior median with its credible band (``curves[variant]`` holds the
    median, lower and upper bound rows for months 0, 1, 2, ...)."""
    with rc_context(STYLE):
        figure = new_figure(8.0, 3.2)
        ax = figure.subplots()
        for i, (variant, (median, low, high)) in enumerate(curves.items()):
            months = np.arange(median.size)
            color = variant_color(i)
            ax.plot(months, median, color=color, label=variant, linewidth=1.4)
            ax.fill_between(months, low, high, color=color, alpha=0.18, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("months since the first order")
        ax.set_ylabel("expected repeat purchases")
        ax.set_title("Repeat purchases of a new customer (BG/NBD, median and band)", loc="left")
        ax.legend(fontsize=7.5, ncols=min(len(curves), 4))
    return figure


def trace_figure(idata: InferenceData, var_names: Sequence[str]) -> Figure:
    """ArviZ trace plot (density and chain trace per variable) of an MCMC posterior."""
    import arviz as az

    with rc_context(STYLE):
        figure = new_figure(9.0, 1.9 * len(var_names) + 0.4)
        axes = figure.subplots(len(var_names), 2, squeeze=False)
        with _quiet_arviz():
            az.plot_trace(
                idata,
                var_names=list(var_names),
                axes=axes,
                compact=True,
                backend_kwargs={"layout": None},
            )
        for row, name in enumerate(var_names):
            for ax, what in zip(axes[row], ("density per chain", "draws per chain"), strict=True):
                ax.set_title("")
                ax.set_title(f"{name}: {what}", loc="left", fontsize=8.5, pad=3)
        figure.get_layout_engine().set(h_pad=0.12)
        figure.suptitle(
            "MCMC traces: chains should overlap like hairy caterpillars",
            fontsize=10,
            x=0.02,
            ha="left",
        )
    return figure


# --------------------------------------------------------------------------- service

WEEKDAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def utilisation_heatmap(utilisation_by_hour: Sequence[float | None], title: str) -> Figure:
    """Utilisation per hour of the week (days as rows, clock hours as columns); hours with
    nobody on duty are blank."""
    values = np.array([np.nan if u is None else u for u in utilisation_by_hour], dtype=float)
    with rc_context(STYLE):
        figure = new_figure(8.0, 2.6)
        ax = figure.subplots()
        image = ax.imshow(values.reshape(7, 24), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_yticks(range(7), WEEKDAY_LABELS)
        ax.set_xticks(range(0, 24, 3))
        ax.set_xlabel("hour of the day (simulation clock, UTC)")
        ax.set_title(title)
        figure.colorbar(image, ax=ax, format=PercentFormatter(1.0), label="utilisation")
    return figure


# --------------------------------------------------------------------------- sensitivity


def sensitivity_figure(
    names: Sequence[str],
    first: Sequence[tuple[float, float, float]],
    total: Sequence[tuple[float, float, float]],
    title: str,
) -> Figure:
    """Tornado of Sobol indices: per assumption (largest total first, at the top) its
    total index and, narrower, its first-order index, each with its bootstrap interval
    as ``(mean, low, high)``."""
    figure = new_figure(7.0, 1.0 + 0.38 * len(names))
    ax = figure.add_subplot()
    rows = np.arange(len(names))[::-1]
    for offset, height, values, color, label in (
        (0.0, 0.7, total, "#1f77b4", "total"),
        (0.0, 0.3, first, "#ff7f0e", "first-order"),
    ):
        means = np.array([v[0] for v in values])
        errors = np.array([[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]])
        ax.barh(rows + offset, means, height=height, color=color, label=label)
        ax.errorbar(means, rows, xerr=np.maximum(errors, 0.0), fmt="none", ecolor="#333333", lw=0.8)
    ax.set_yticks(rows, list(names))
    ax.set_xlim(0.0, max(1.05, *(v[2] + 0.02 for v in total)))
    ax.set_xlabel("share of the variance (Sobol index, bootstrap interval)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return figure
