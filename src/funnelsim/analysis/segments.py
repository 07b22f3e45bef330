"""Per-segment effects with partial pooling, and the Simpson's-paradox warning.

"Did the new checkout work on mobile?" Reading each segment on its own exaggerates:
the segment with the most extreme effect is usually the one with the fewest visitors.
A hierarchical model lets segments borrow strength from each other. With ``n[s, v]``
visitors and ``k[s, v]`` conversions of variant ``v`` in segment ``s``::

    k[s, v] ~ Binomial(n[s, v], p[s, v])
    logit p[s, v] = a[s] + d[s, v],             d[s, control] = 0
    a[s] ~ Normal(logit of the overall rate, 1.5)
    d[s, v] = mu[v] + tau[v] z[s, v],  z ~ Normal(0, 1)     (non-centred)
    mu[v] ~ Normal(0, 0.5),  tau[v] ~ HalfNormal(0.3)

so each segment's effect ``d[s, v]`` is shrunk towards the variant's common effect
``mu[v]`` as far as the data allow (a segment's baseline ``a[s]`` is not pooled: segments
differ in how well they convert, and that is not the question). The readout reports
each segment's conversion difference ``p[s, v] - p[s, control]`` beside its raw
(unpooled) difference and the share by which pooling shrank it, the effect across all
segments (segment-weighted), and warns when a segment clearly moves the opposite way to
the aggregate difference: a sign a team reading only the total would get wrong
(Simpson's paradox, when the traffic mix differs between arms).

References:
    Gelman, A. et al. (2013), Bayesian Data Analysis, 3rd ed., ch. 5 (hierarchical
    models, partial pooling).
    Simpson, E. H. (1951), "The interpretation of interaction in contingency tables",
    JRSS B 13(2).
    Betancourt, M. & Girolami, M. (2015), "Hamiltonian Monte Carlo for Hierarchical
    Models" (the non-centred form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pymc as pm
from scipy.special import logit

from funnelsim.analysis.models import (
    DEFAULT_SETTINGS,
    Diagnostics,
    SamplerSettings,
    sample,
)

FloatArray = npt.NDArray[np.float64]

BASELINE_SD = 1.5
"""Prior sd of a segment's baseline log-odds around the overall rate."""
EFFECT_SD = 0.5
"""Prior sd of a variant's common effect on the log-odds (a factor of 2.7 either way)."""
SPREAD_SD = 0.3
"""Scale of the half-normal prior of the between-segment sd of the effect."""


class Summary(NamedTuple):
    """Posterior mean and equal-tailed interval."""

    mean: float
    low: float
    high: float


class SegmentEffect(NamedTuple):
    """One variant against the control in one segment.

    Attributes:
        segment: Segment name.
        variant: Variant name.
        visitors: Visitors of the variant in the segment.
        control_visitors: Visitors of the control in the segment.
        raw_difference: Conversion difference of the segment read alone (no pooling).
        difference: Posterior of the conversion difference with partial pooling.
        shrinkage: Share of the raw deviation from the common effect removed by pooling
            (0: none, 1: fully pooled).
        prob_positive: Posterior probability that the variant converts better here.
        disagrees: The segment's interval lies on the other side of zero from the
            aggregate difference.
    """

    segment: str
    variant: str
    visitors: float
    control_visitors: float
    raw_difference: float
    difference: Summary
    shrinkage: float
    prob_positive: float
    disagrees: bool


class SegmentReadout(NamedTuple):
    """Per-segment effects beside the pooled ones.

    Attributes:
        control: Control variant.
        level: Level of the credible intervals.
        effects: One entry per segment and non-control variant.
        aggregate: Per non-control variant, the raw difference of all visitors together.
        across_segments: Per non-control variant, the posterior of the segment-weighted
            conversion difference (weights: each segment's share of all visitors).
        warnings: One sentence per segment that disagrees with the aggregate.
        diagnostics: Sampler diagnostics.
    """

    control: str
    level: float
    effects: tuple[SegmentEffect, ...]
    aggregate: dict[str, float]
    across_segments: dict[str, Summary]
    warnings: tuple[str, ...]
    diagnostics: Diagnostics


def _check_counts(visitors: FloatArray, conversions: FloatArray, shape: tuple[int, int]) -> None:
    if visitors.shape != shape or conversions.shape != shape:
        raise ValueError(f"visitors and conversions must have shape (segments, variants) {shape}")
    if np.any(visitors < 0) or np.any(conversions < 0) or np.any(conversions > visitors):
        raise ValueError("counts must satisfy 0 <= conversions <= visitors")


def segment_model(
    segments: Sequence[str],
    variants: Sequence[str],
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    control: str,
) -> pm.Model:
    """The hierarchical model of the module docstring, with ``rate`` and ``difference``
    (``rate - control rate``) as deterministic ``(segment, variant)`` quantities."""
    n = np.asarray(visitors, dtype=np.float64)
    k = np.asarray(conversions, dtype=np.float64)
    _check_counts(n, k, (len(segments), len(variants)))
    ref = list(variants).index(control)
    treated = [v for v in variants if v != control]
    overall = (k.sum() + 0.5) / (n.sum() + 1.0)
    coords = {"segment": list(segments), "variant": list(variants), "treatment": treated}
    with pm.Model(coords=coords) as model:
        baseline = pm.Normal("baseline", float(logit(overall)), BASELINE_SD, dims="segment")
        common = pm.Normal("common_effect", 0.0, EFFECT_SD, dims="treatment")
        spread = pm.HalfNormal("effect_spread", SPREAD_SD, dims="treatment")
        offset = pm.Normal("offset", 0.0, 1.0, dims=("segment", "treatment"))
        effect = common + spread * offset
        columns = [effect[:, treated.index(v)] if v != control else 0 * baseline for v in variants]
        log_odds = baseline[:, None] + pm.math.stack(columns, axis=1)
        rate = pm.Deterministic("rate", pm.math.sigmoid(log_odds), dims=("segment", "variant"))
        pm.Deterministic("difference", rate - rate[:, ref : ref + 1], dims=("segment", "variant"))
        pm.Binomial("converted", n=n, p=rate, observed=k, dims=("segment", "variant"))
    return model


def _summary(draws: FloatArray, level: float) -> Summary:
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Summary(float(draws.mean()), float(low), float(high))


def segment_readout(
    segments: Sequence[str],
    variants: Sequence[str],
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    control: str,
    settings: SamplerSettings = DEFAULT_SETTINGS,
    level: float = 0.95,
) -> SegmentReadout:
    """Fit :func:`segment_model` and read each segment's effect against the aggregate.

    Args:
        segments: Segment names (rows of the counts).
        variants: Variant names (columns).
        visitors: Visitors, shape ``(segments, variants)``.
        conversions: Conversions, same shape.
        control: Control variant.
        settings: Sampler settings (:func:`funnelsim.analysis.models.sample`).
        level: Level of the credible intervals.
    """
    n = np.asarray(visitors, dtype=np.float64)
    k = np.asarray(conversions, dtype=np.float64)
    fit = sample(segment_model(segments, variants, n, k, control), settings)
    draws = fit.idata["posterior"]["difference"].values
    draws = draws.reshape(-1, *draws.shape[2:])  # (draws, segment, variant)
    ref = list(variants).index(control)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = k / n - (k[:, ref] / n[:, ref])[:, None]
        totals = k.sum(axis=0) / n.sum(axis=0)
    weights = n.sum(axis=1) / n.sum()
    effects, warnings = [], []
    aggregate, across = {}, {}
    for v, name in enumerate(variants):
        if v == ref:
            continue
        aggregate[name] = float(totals[v] - totals[ref])
        weighted = draws[:, :, v] @ weights
        across[name] = _summary(weighted, level)
        for s, segment in enumerate(segments):
            own = _summary(draws[:, s, v], level)
            centre = across[name].mean
            deviation = raw[s, v] - centre
            shrinkage = 1 - (own.mean - centre) / deviation if deviation != 0 else 0.0
            disagrees = bool(
                (aggregate[name] > 0 and own.high < 0) or (aggregate[name] < 0 and own.low > 0)
            )
            effects.append(
                SegmentEffect(
                    segment,
                    name,
                    float(n[s, v]),
                    float(n[s, ref]),
                    float(raw[s, v]),
                    own,
                    float(np.clip(shrinkage, 0.0, 1.0)),
                    float((draws[:, s, v] > 0).mean()),
                    disagrees,
                )
            )
            if disagrees:
                warnings.append(
                    f"Simpson's paradox risk: in segment {segment}, {name} moves conversion "
                    f"by {own.mean:+.2%} [{own.low:+.2%}, {own.high:+.2%}] while all "
                    f"visitors together show {aggregate[name]:+.2%}; read the segments, "
                    "not the total."
                )
    return SegmentReadout(
        control, level, tuple(effects), aggregate, across, tuple(warnings), fit.diagnostics
    )
