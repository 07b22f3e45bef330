"""Friction: what makes a visitor give up at a stage, one small model each.

Picture a shopper at a checkout. The page takes four seconds to appear on the
phone and some leave before it does (*page load*). The form asks for fourteen
fields when eight would do (*form fields*). It insists on an account first
(*login wall*). Their favourite wallet is not offered (*payment methods*); a
prospect wants to write but only a phone number is given (*contact options*).
A lead who asked for a quote hears back after four hours and has already
signed elsewhere (*response delay*).

Each model turns one such circumstance into a factor on the probability of
continuing, with defaults calibrated on published figures (the coefficient
models in :mod:`funnelsim.scenario` cite them). The figures are correlations
from vendor studies and surveys, not causal effects: every coefficient can be
overridden in a scenario's ``coefficients`` section. Factors multiply
(competing hazards): P(continue) = rate x prod_i (1 - h_i).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from funnelsim.scenario.schema import (
    Distribution,
    FormFieldCoefficients,
    LoginWallCoefficients,
    OptionCoefficients,
    PageLoadCoefficients,
    ResponseCoefficients,
)

FloatArray = NDArray[np.float64]
QUADRATURE_NODES = 128  # Gauss-Legendre nodes over the quantiles of a response delay


class FrictionFactors(NamedTuple):
    """Each friction's factor on the continue probability, by stage and kind of visitor.

    Every array broadcasts over (stage, segment, channel, preferred payment method,
    preferred contact option). The field order is the order in which the engines
    test the frictions (the nested thresholds of :mod:`funnelsim.engine.model`):
    a visitor stopped by several is counted lost to the first.
    """

    page_load: FloatArray  # (S, G, C, 1, 1): the segment's load time, the cell's rate
    form_fields: FloatArray  # (S, 1, 1, 1, 1)
    login_wall: FloatArray  # (S, 1, 1, 1, 1)
    payment: FloatArray  # (S, 1, 1, P, 1): by the visitor's preferred payment method
    contact: FloatArray  # (S, 1, 1, 1, K): by the visitor's preferred contact option


FRICTION_REASONS: tuple[str, ...] = FrictionFactors._fields


def scale_odds(probability: ArrayLike, odds_ratio: ArrayLike) -> FloatArray:
    """Multiply the odds of ``probability`` by ``odds_ratio`` (exact at 0 and 1).

    >>> float(scale_odds(0.5, 3.0))
    0.75
    """
    p = np.asarray(probability, dtype=float)
    k = np.asarray(odds_ratio, dtype=float)
    return np.asarray(p * k / (1.0 - p + p * k))


def form_fields_factor(fields: int | None, coef: FormFieldCoefficients) -> float:
    """Probability of getting through a form of ``fields`` fields: (1 - h)^(fields - free).

    Fields up to ``free_fields`` cost nothing; each one beyond is a hazard h.

    >>> round(form_fields_factor(12, FormFieldCoefficients()), 4)
    0.849
    """
    if fields is None:
        return 1.0
    extra = max(0, fields - coef.free_fields)
    return float((1.0 - coef.hazard_per_field) ** extra)


def login_wall_factor(wall: str, coef: LoginWallCoefficients) -> float:
    """Probability of accepting a login wall: ``none`` 1, else 1 minus its hazard.

    >>> round(login_wall_factor("required", LoginWallCoefficients()), 4)
    0.8666
    """
    if wall == "none":
        return 1.0
    return 1.0 - (coef.required if wall == "required" else coef.optional)


def bounce_multiplier(load_s: ArrayLike, coef: PageLoadCoefficients) -> FloatArray:
    """How much more likely a bounce is at ``load_s`` seconds than at the reference time.

    A saturating Hill curve in the delay beyond the reference (1 s by default),
    fitted to Google / SOASTA (2017). Never below 1.

    >>> [round(float(bounce_multiplier(t, PageLoadCoefficients())), 2) for t in (1, 3, 10)]
    [1.0, 1.32, 2.23]
    """
    delay = np.maximum(np.asarray(load_s, dtype=float) - coef.reference_s, 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        inverse_ratio = (coef.half_s / delay) ** coef.steepness  # inf at no delay
    return np.asarray(1.0 + coef.max_extra / (1.0 + inverse_ratio))


def page_load_factor(rate: ArrayLike, load_s: ArrayLike, coef: PageLoadCoefficients) -> FloatArray:
    """Factor on ``rate`` (the continue probability at the reference load time).

    Google / SOASTA report a ratio of bounce probabilities, so the bounce
    1 - rate is multiplied by m(t): P(continue) = 1 - min(1, m (1 - rate)). The
    ratio holds exactly wherever m (1 - rate) <= 1; beyond that everybody leaves
    (a page bouncing 45% at 1 s at most can more than double). Returns
    P(continue) / rate, the factor that friction multiplies onto ``rate``.

    >>> round(float(page_load_factor(0.6, 3.0, PageLoadCoefficients())), 4)  # bounce 0.4 x 1.319
    0.7873
    """
    p = np.asarray(rate, dtype=float)
    bounce = np.minimum(bounce_multiplier(load_s, coef) * (1.0 - p), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(p > 0, (1.0 - bounce) / p, 1.0)
    return np.asarray(factor)


def option_options(
    preferences: dict[str, float], offered: list[str] | None, coef: OptionCoefficients
) -> tuple[list[str], FloatArray]:
    """Per preferred option: the probability of continuing when it is (not) offered.

    A visitor whose preferred option is missing leaves with ``abandon_if_missing``;
    with no list of offered options there is no friction.

    >>> from funnelsim.scenario import PaymentCoefficients
    >>> option_options({"card": 0.9, "wallet": 0.1}, ["card"], PaymentCoefficients())
    (['card', 'wallet'], array([1.  , 0.25]))
    """
    names = list(preferences)
    if offered is None:
        return names, np.ones(len(names))
    keep = 1.0 - coef.abandon_if_missing
    return names, np.array([1.0 if name in offered else keep for name in names])


def response_continue(
    probability: ArrayLike, response_min: ArrayLike, coef: ResponseCoefficients
) -> FloatArray:
    """Continue probability of an enquiry answered after ``response_min`` minutes.

    ``probability`` applies to an answer within the reference time (5 min by
    default). Log-time odds decay by default; an exponential half-life optionally.

    >>> from funnelsim.scenario import ResponseCoefficients as R
    >>> round(float(response_continue(0.5, 30.0, R())), 4)  # odds / 6^1.5
    0.0637
    """
    t = np.maximum(np.asarray(response_min, dtype=float), coef.reference_min)
    p = np.asarray(probability, dtype=float)
    if coef.model == "log_odds":
        return scale_odds(p, (t / coef.reference_min) ** -coef.slope)
    return np.asarray(p * 0.5 ** ((t - coef.reference_min) / coef.half_life_min))


@cache
def _quadrature() -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on (0, 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    return (nodes + 1.0) / 2.0, weights / 2.0


def mean_response_continue(
    probability: ArrayLike, delay: Distribution | None, coef: ResponseCoefficients
) -> FloatArray:
    """E[response_continue(probability, D)] over a response delay D (minutes).

    The expectation is an integral over D's quantiles, computed by Gauss-Legendre
    quadrature; no delay distribution means an answer within the reference time.

    >>> from funnelsim.scenario import Constant, ResponseCoefficients as R
    >>> round(float(mean_response_continue(0.5, Constant(value=30.0), R())), 4)
    0.0637
    """
    p = np.asarray(probability, dtype=float)
    if delay is None:
        return np.asarray(response_continue(p, 0.0, coef))
    nodes, weights = _quadrature()
    curve = response_continue(p[..., None], delay.ppf(nodes), coef)
    return np.minimum(np.asarray(curve @ weights), p)
