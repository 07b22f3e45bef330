"""The decision rule on many two-arm conversion experiments at once.

Plans, risk statements and benchmarks read thousands of simulated two-arm experiments
with the rule of :func:`funnelsim.analysis.decision.decide`. Calling it once per
experiment costs a quadrature each (milliseconds); here the same quantities are computed
for a whole batch in array operations, with the same guarantees: the expected losses are
deterministic one-dimensional integrals (to about 1e-12 of :func:`expected_loss`) and the
equivalence (ROPE) probability is settled by the cheap bound of
:func:`rope_probability_bound`, computed exactly only for the rare experiments the bound
cannot settle.

For two independent Beta posteriors ``X`` (control) and ``Y`` (variant), ``(X - Y)+``
is the length of ``{u : Y < u <= X}``, so the loss of shipping the variant is
``E[(X - Y)+] = integral of F_Y(u) (1 - F_X(u)) du`` and the loss of keeping the
control is the same integral with the arms swapped. Both are evaluated with composite
Gauss-Legendre quadrature in logit coordinates (which tame the endpoint singularities of
Beta densities with a shape below 1), on panels whose edges are quantiles of both
posteriors; the CDFs come from integrating the densities on the same panels, as in
:mod:`funnelsim.analysis.conjugate`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from funnelsim.analysis.conjugate import (
    _GL_NODES,
    _GL_PARTIAL,
    _GL_WEIGHTS,
    BetaPosterior,
    beta_posteriors,
    prob_in_rope,
    rope_probability_bound,
)
from funnelsim.analysis.decision import DecisionRule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

KEEP_TESTING, SHIP_CONTROL, SHIP_VARIANT, STOP = range(4)
"""Codes of :func:`two_arm_decisions` (also the order of ``planning.OUTCOMES``)."""

_TAILS = np.array([1e-13, 1e-8, 1e-5, 2e-3, 0.03, 0.2])
_LEVELS = np.concatenate([_TAILS, [0.5], 1 - _TAILS[::-1]])
"""Quantile levels of each posterior that become panel edges (no panel in the middle
is wider than about one posterior standard deviation)."""


def _logit_knots(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """Sorted panel edges in logit coordinates, shape ``(experiments, 2 * levels)``."""
    from scipy import special

    x = special.betaincinv(alpha[..., None], beta[..., None], _LEVELS)
    tiny = np.finfo(float).tiny
    t = special.logit(np.clip(x, tiny, 1 - np.finfo(float).eps))
    return np.sort(t.reshape(alpha.shape[0], -1), axis=1)


def _densities(
    t: FloatArray, alpha: FloatArray, beta: FloatArray, weights: FloatArray
) -> FloatArray:
    """Each arm's density in logit coordinates at nodes ``t`` (experiments, nodes),
    normalised to integrate to one on the panels: shape (experiments, 2, nodes)."""
    log_x = -np.logaddexp(0.0, -t)  # log(x), x = expit(t)
    log_1mx = -np.logaddexp(0.0, t)  # log(1 - x)
    log_f = alpha[..., None] * log_x[:, None, :] + beta[..., None] * log_1mx[:, None, :]
    density = np.exp(log_f - log_f.max(axis=2, keepdims=True))
    return density / np.einsum("en,ean->ea", weights, density)[..., None]


def _cdfs(density: FloatArray, half: FloatArray) -> FloatArray:
    """CDFs at the nodes by integrating ``density`` panel by panel (spectral within a
    panel, Gauss-Legendre for whole panels), clipped to [0, 1]."""
    experiments, arms, _ = density.shape
    order = _GL_NODES.size
    panels = density.reshape(experiments, arms, -1, order) * half[:, None, :, None]
    totals = np.einsum("j,eapj->eap", _GL_WEIGHTS, panels)
    before = np.cumsum(totals, axis=2) - totals
    within = np.einsum("kj,eapj->eapk", _GL_PARTIAL, panels)
    return np.clip((before[..., None] + within).reshape(density.shape), 0.0, 1.0)


def two_arm_losses(alpha: npt.ArrayLike, beta: npt.ArrayLike) -> FloatArray:
    """Expected losses ``(E[(Y - X)+], E[(X - Y)+])`` of keeping the control ``X`` and of
    shipping the variant ``Y``, for every experiment: shape ``(experiments, 2)``.

    ``alpha`` and ``beta`` are the Beta posteriors' parameters, shape
    ``(experiments, 2)`` (control first). Agrees with :func:`expected_loss` row by row.

    >>> from funnelsim.analysis.conjugate import expected_loss
    >>> post = beta_posteriors([1000, 1000], [100, 120])
    >>> loss = two_arm_losses(post.alpha[None], post.beta[None])[0]
    >>> bool(np.allclose(loss, expected_loss(post), rtol=0, atol=1e-12))
    True
    """
    a = np.atleast_2d(np.asarray(alpha, dtype=float))
    b = np.atleast_2d(np.asarray(beta, dtype=float))
    knots = _logit_knots(a, b)
    half = np.diff(knots, axis=1) / 2
    t = ((knots[:, :-1] + half)[..., None] + half[..., None] * _GL_NODES).reshape(len(a), -1)
    x = 1 / (1 + np.exp(-t))
    weights = (half[..., None] * _GL_WEIGHTS).reshape(t.shape)
    cdf = _cdfs(_densities(t, a, b, weights), half)
    dx = weights * x * (1 - x)  # du = x (1 - x) dt
    keep_control = np.einsum("en,en->e", dx, cdf[:, 0] * (1 - cdf[:, 1]))
    ship_variant = np.einsum("en,en->e", dx, cdf[:, 1] * (1 - cdf[:, 0]))
    return np.stack([keep_control, ship_variant], axis=1)


def _stops(alpha: FloatArray, beta: FloatArray, rule: DecisionRule) -> npt.NDArray[np.bool_]:
    """Experiments whose variant is practically equivalent to the control (rule.rope with
    probability at least rule.equivalence_probability), as :func:`decide` judges it."""
    bound = rope_probability_bound(BetaPosterior(alpha.ravel(), beta.ravel()), rule.rope)
    ceiling = bound.reshape(alpha.shape).min(axis=1)
    stops = np.zeros(len(alpha), dtype=np.bool_)
    for row in np.flatnonzero(ceiling >= rule.equivalence_probability):
        inside = prob_in_rope(BetaPosterior(alpha[row], beta[row]), 0, rule.rope)[1]
        stops[row] = inside >= rule.equivalence_probability
    return stops


def _read(
    visitors: npt.ArrayLike, conversions: npt.ArrayLike, prior: tuple[float, float]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Every experiment's Beta parameters, both expected losses and the control's
    posterior mean (what the rule reads), from ``(experiments, 2)`` counts."""
    n = np.atleast_2d(np.asarray(visitors, dtype=float))
    x = np.atleast_2d(np.asarray(conversions, dtype=float))
    post = beta_posteriors(n.ravel(), x.ravel(), *prior)
    alpha, beta = post.alpha.reshape(n.shape), post.beta.reshape(n.shape)
    control_mean = alpha[:, 0] / (alpha[:, 0] + beta[:, 0])
    return alpha, beta, two_arm_losses(alpha, beta), control_mean


def two_arm_decisions(
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    rule: DecisionRule,
    prior: tuple[float, float] = (1.0, 1.0),
) -> IntArray:
    """The rule of :func:`decide` (control first) on every experiment, as codes
    :data:`KEEP_TESTING`, :data:`SHIP_CONTROL`, :data:`SHIP_VARIANT` or :data:`STOP`.

    ``visitors`` and ``conversions`` have shape ``(experiments, 2)``.

    >>> two_arm_decisions([[10000, 10000], [100, 100]], [[1000, 1200], [10, 11]],
    ...                   DecisionRule()).tolist()
    [2, 0]
    """
    alpha, beta, loss, control_mean = _read(visitors, conversions, prior)
    best = np.argmin(loss, axis=1)
    ships = loss[np.arange(len(best)), best] < rule.loss_threshold * control_mean
    codes = np.where(ships, np.where(best == 0, SHIP_CONTROL, SHIP_VARIANT), KEEP_TESTING)
    return np.where(_stops(alpha, beta, rule), STOP, codes).astype(np.int64)


def variant_loss_ratios(
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    rule: DecisionRule,
    prior: tuple[float, float] = (1.0, 1.0),
) -> FloatArray:
    """Per experiment, the variant's expected loss over the control's posterior mean when
    the rule would ship the variant at some loss threshold (it does not stop for
    equivalence and the variant has the smaller loss), else infinity: the rule ships the
    variant exactly when this ratio is below its threshold."""
    alpha, beta, loss, control_mean = _read(visitors, conversions, prior)
    eligible = (loss[:, 1] < loss[:, 0]) & ~_stops(alpha, beta, rule)
    return np.where(eligible, loss[:, 1] / control_mean, np.inf)
