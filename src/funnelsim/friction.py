"""Friction: what makes a visitor give up at a stage, one small model each, in one place.

Picture a shopper at a checkout. The page takes four seconds to appear on the
phone and some leave before it does (*page load*). The form asks for fourteen
fields when eight would do (*form fields*). It insists on an account first
(*login wall*). Their favourite wallet is not offered (*payment methods*); a
prospect wants to write but only a phone number is given (*contact options*).
A lead who asked for a quote hears back after four hours and has already
signed elsewhere (*response delay*).

Each model turns one such circumstance into a factor on the probability of
continuing. This module holds all of it, friction by friction: the coefficients
(pydantic models, the ``coefficients`` section of a scenario) with the published
figures they are calibrated on, the uncertain range those figures allow, and the
formula. The figures, their sources and every derivation are in
``docs/calibration.md``. They are correlations from vendor studies and surveys,
not causal effects: every coefficient can be overridden in a scenario.

Frictions combine as competing hazards: P(continue) = rate x prod_i f_i. The
engines test them in the order of :class:`FrictionFactors` and count a visitor
stopped by several as lost to the first (``FRICTION_REASONS``); a late answer
(response delay) is decided after the base rate.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, Field, field_validator

from funnelsim.fields import (
    Name,
    NonNegativeFloat,
    PositiveFloat,
    Probability,
    StrictModel,
    shares_sum_to_one,
)

FloatArray = NDArray[np.float64]
QUADRATURE_NODES = 128  # Gauss-Legendre nodes over the quantiles of a response delay


class Quantiles(Protocol):
    """A distribution given by its quantile function (every scenario ``Distribution``)."""

    def ppf(self, u: FloatArray) -> FloatArray: ...


# --------------------------------------------------------------------------- ranges


class DefaultRange(NamedTuple):
    """What a calibrated default could plausibly be, given its sources.

    ``spec`` is an uncertain quantity in the scenario file's own shape
    (``{uncertain: triangular, low, mode, high}``, mode at the default, so its
    central value is the default); ``derivation`` says where the bounds come from.
    """

    path: str
    spec: dict[str, Any]
    derivation: str

    def describe(self) -> str:
        """``triangular(low 0.0144, mode 0.0401, high 0.06)``."""
        inner = ", ".join(f"{k} {v:g}" for k, v in self.spec.items() if k != "uncertain")
        return f"{self.spec['uncertain']}({inner})"


def calibrated(default: float, low: float, high: float, derivation: str) -> Any:
    """A coefficient field: its default and the triangular range its sources allow."""
    if not low < default < high:
        raise ValueError(f"range ({low:g}, {high:g}) must hold the default {default:g}")
    spec = {"uncertain": "triangular", "low": low, "mode": default, "high": high}
    return Field(default, json_schema_extra={"uncertain_default": spec, "derivation": derivation})


def field_range(model: type[BaseModel], name: str, path: str) -> DefaultRange | None:
    """The documented range of field ``name`` of ``model`` (None if it has none)."""
    extra = model.model_fields[name].json_schema_extra
    if not isinstance(extra, dict) or "uncertain_default" not in extra:
        return None
    spec = extra["uncertain_default"]
    return DefaultRange(
        path, dict(spec) if isinstance(spec, dict) else {}, str(extra["derivation"])
    )


def default_ranges(
    model: type[BaseModel] | None = None, prefix: str = "coefficients"
) -> dict[str, DefaultRange]:
    """Every calibrated default with its range, by dotted path (``coefficients.x.y``).

    >>> default_ranges()["coefficients.response.slope"].describe()
    'triangular(low 1.29, mode 1.5, high 1.7)'
    """
    model = model or Coefficients
    found: dict[str, DefaultRange] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}"
        child = info.annotation
        if isinstance(child, type) and issubclass(child, BaseModel):
            found |= default_ranges(child, path)
        elif (calibrated_range := field_range(model, name, path)) is not None:
            found[path] = calibrated_range
    return found


# --------------------------------------------------------------------------- odds


def scale_odds(probability: ArrayLike, odds_ratio: ArrayLike) -> FloatArray:
    """Multiply the odds of ``probability`` by ``odds_ratio`` (exact at 0 and 1).

    >>> float(scale_odds(0.5, 3.0))
    0.75
    """
    p = np.asarray(probability, dtype=float)
    k = np.asarray(odds_ratio, dtype=float)
    return np.asarray(p * k / (1.0 - p + p * k))


# --------------------------------------------------------------------------- form fields


class FormFieldCoefficients(StrictModel):
    """Competing-hazard model of form length: P(complete) = (1 - h)^max(0, fields - free).

    Calibrated on Baymard Institute (2024): "too long / complicated checkout" is
    given by about 18% of US abandoners, average cart abandonment is 70.22%
    (Baymard, 2025), the average checkout has 11.3 fields and about 8 are
    achievable. So 3.3 avoidable fields lose 0.18 x 0.7022 = 12.6% of
    checkout visitors: h = 1 - (1 - 0.126)^(1/3.3) = 0.0401 (docs/calibration.md).
    A stage's ``friction.free_fields`` overrides ``free_fields`` for that stage.
    """

    hazard_per_field: Probability = calibrated(
        0.0401,
        0.0144,
        0.0600,
        "low: half of 17% of abandoners at 55% abandonment (a stated reason is not "
        "always the cause); high: 22% at 84%; each over the average checkout's 3.3 "
        "avoidable fields (Baymard 2024-2025)",
    )
    free_fields: Annotated[int, Field(ge=0)] = 8


def form_fields_factor(
    fields: int | None, coef: FormFieldCoefficients, free_fields: int | None = None
) -> float:
    """Probability of getting through a form of ``fields`` fields: (1 - h)^(fields - free).

    Fields up to ``free_fields`` (the stage's own, else the coefficient's) cost
    nothing; each one beyond is a hazard h.

    >>> round(form_fields_factor(12, FormFieldCoefficients()), 4)
    0.849
    >>> round(form_fields_factor(9, FormFieldCoefficients(), free_fields=4), 4)
    0.8149
    """
    if fields is None:
        return 1.0
    free = coef.free_fields if free_fields is None else free_fields
    return float((1.0 - coef.hazard_per_field) ** max(0, fields - free))


# --------------------------------------------------------------------------- login wall


class LoginWallCoefficients(StrictModel):
    """Probability that a login wall alone makes a checkout visitor leave.

    Forced account creation is given by 19% of US abandoners (Baymard Institute,
    checkout usability survey, 2024) at 70.22% abandonment (Baymard, 2025):
    0.19 x 0.7022 = 0.133. Abandoners may give several reasons, so an
    independent hazard h is cited by h / abandonment of them. An optional login
    (guest checkout) removes the forced account; its default hazard is 0 (set it
    if your optional login nags).

    Buyers behind a required login are registered; behind an optional one a share
    ``optional_registers`` of them registers. Registered customers' repeat rate and
    churn are multiplied by the ``registered_*`` factors. No published figure
    supports these, so the defaults are neutral (no effect): set them from your
    own cohort data (registered versus guest buyers).
    """

    required: Probability = calibrated(
        0.1334,
        0.0495,
        0.2184,
        "low: half of 18% of abandoners at 55% abandonment; high: 26% (the 2021-23 "
        "surveys) at 84% (Baymard)",
    )
    optional: Probability = 0.0
    optional_registers: Probability = 0.0
    registered_repeat_multiplier: NonNegativeFloat = 1.0
    registered_churn_multiplier: NonNegativeFloat = 1.0


def login_wall_factor(wall: str, coef: LoginWallCoefficients) -> float:
    """Probability of accepting a login wall: ``none`` 1, else 1 minus its hazard.

    >>> round(login_wall_factor("required", LoginWallCoefficients()), 4)
    0.8666
    """
    if wall == "none":
        return 1.0
    return 1.0 - (coef.required if wall == "required" else coef.optional)


# --------------------------------------------------------------------------- page load


class PageLoadCoefficients(StrictModel):
    """Bounce multiplier m(t) = 1 + A (t - t0)^n / (K^n + (t - t0)^n) for t > t0.

    Fitted (least squares) to Google / SOASTA (Think with Google, 2017): bounce
    probability +32% from 1 s to 3 s, +90% to 5 s, +106% to 6 s, +113% to 7 s,
    +123% to 10 s. The fit reproduces all five ratios within 0.01. The study
    measured the bounce on mobile landing pages, so the curve multiplies the
    bounce of one stage, the page a visitor lands on.
    """

    reference_s: NonNegativeFloat = 1.0
    max_extra: NonNegativeFloat = calibrated(
        1.2807,
        0.64,
        2.2,
        "low: half the fitted extra bounce (the figures compare slower and faster "
        "sites, which differ in more than speed); high: the extra bounce at which 1 -> "
        "3 s costs a 40%-bounce landing page Akamai's desktop -36.5% conversion (2017)",
    )
    half_s: PositiveFloat = 2.9405
    steepness: PositiveFloat = 2.8632


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


# --------------------------------------------------------------------------- payment and contact


class OptionCoefficients(StrictModel):
    """Visitors prefer one option (payment method, contact channel); if it is missing
    a share of them leave, the rest use what is offered."""

    abandon_if_missing: Probability
    preferences: dict[Name, Probability]

    @field_validator("preferences")
    @classmethod
    def _sum_to_one(cls, shares: dict[str, float]) -> dict[str, float]:
        shares_sum_to_one(shares, "preference")
        return shares


class PaymentCoefficients(OptionCoefficients):
    """Payment-method friction, jointly calibrated on two figures.

    Baymard Institute (2024): 9% of abandoners cite too few payment methods, so
    a typical card + PayPal checkout loses 0.09 x 0.7022 = 6.3% of visitors.
    Stripe (2025, holdback test over 50+ methods): showing one more relevant
    method raises conversion 7.4%, a loss of 6.9% without it. With 8.5% of
    visitors preferring a wallet and 75% of them leaving when it is missing,
    the model loses 6.4% at card + PayPal (between the two) and adding the
    wallet raises conversion 6.8%. The split between preference share and
    abandonment is not identified by the data: override both with your own
    analytics.
    """

    abandon_if_missing: Probability = calibrated(
        0.75,
        0.58,
        0.89,
        "Baymard's 9% of abandoners at 55% and at 84% abandonment, over the 8.5% "
        "preferring a wallet; Stripe's holdback test (0.81) lies inside",
    )
    preferences: dict[Name, Probability] = Field(
        default_factory=lambda: {"card": 0.70, "paypal": 0.215, "wallet": 0.085}
    )


class ContactCoefficients(OptionCoefficients):
    """Contact-option friction (e.g. phone only). No published figure supports it:
    the abandonment reuses the payment calibration by analogy and the preference
    shares are illustrative. Set both from your own data."""

    abandon_if_missing: Probability = calibrated(
        0.75,
        0.25,
        1.0,
        "no published figure: the payment default by analogy, from a quarter to all "
        "of those missing their channel leaving",
    )
    preferences: dict[Name, Probability] = Field(
        default_factory=lambda: {"phone": 0.35, "email": 0.40, "chat": 0.25}
    )


def option_options(
    preferences: dict[str, float], offered: list[str] | None, coef: OptionCoefficients
) -> tuple[list[str], FloatArray]:
    """Per preferred option: the probability of continuing when it is (not) offered.

    A visitor whose preferred option is missing leaves with ``abandon_if_missing``;
    with no list of offered options there is no friction.

    >>> option_options({"card": 0.9, "wallet": 0.1}, ["card"], PaymentCoefficients())
    (['card', 'wallet'], array([1.  , 0.25]))
    """
    names = list(preferences)
    if offered is None:
        return names, np.ones(len(names))
    keep = 1.0 - coef.abandon_if_missing
    return names, np.array([1.0 if name in offered else keep for name in names])


# --------------------------------------------------------------------------- response delay


class ResponseCoefficients(StrictModel):
    """How an enquiry goes cold while it waits for an answer.

    ``log_odds`` (default): logit p(t) = logit p(t_ref) - slope ln(t / t_ref)
    for t > t_ref. The slope 1.5 lies between the MIT / InsideSales.com study
    (2007: odds of qualifying 21x higher at 5 than at 30 minutes, slope 1.70)
    and Oldroyd, McElheran & Elkington (HBR, 2011: 60x more likely within 1 h
    than after 24 h, slope 1.29); each study alone is reproduced by its own
    slope. ``half_life`` is the simpler exponential option
    p(t) = p(t_ref) 2^(-(t - t_ref)/half_life); it fits both studies worse.
    A stage's ``rate`` is its continue rate when answered within ``reference_min``.
    """

    model: Literal["log_odds", "half_life"] = "log_odds"
    slope: NonNegativeFloat = calibrated(
        1.5,
        1.29,
        1.70,
        "the slopes that reproduce each study: HBR 2011 (60x, 1 h vs 24 h) and MIT / "
        "InsideSales 2007 (21x, 5 vs 30 min)",
    )
    reference_min: PositiveFloat = 5.0
    half_life_min: PositiveFloat = calibrated(
        60.0,
        5.7,
        234.0,
        "the half-lives each study implies for a rare outcome: MIT (21x in 25 min) "
        "and HBR (60x in 23 h)",
    )


def response_continue(
    probability: ArrayLike, response_min: ArrayLike, coef: ResponseCoefficients
) -> FloatArray:
    """Continue probability of an enquiry answered after ``response_min`` minutes.

    ``probability`` applies to an answer within the reference time (5 min by
    default). Log-time odds decay by default; an exponential half-life optionally.

    >>> round(float(response_continue(0.5, 30.0, ResponseCoefficients())), 4)  # odds / 6^1.5
    0.0637
    """
    t = np.maximum(np.asarray(response_min, dtype=float), coef.reference_min)
    p = np.asarray(probability, dtype=float)
    if coef.model == "log_odds":
        return scale_odds(p, (t / coef.reference_min) ** -coef.slope)
    return np.asarray(p * 0.5 ** ((t - coef.reference_min) / coef.half_life_min))


def response_continue_one(
    probability: float, response_min: float, coef: ResponseCoefficients
) -> float:
    """:func:`response_continue` of one enquiry, in plain floats (the same operations, the
    same result; a simulation calls it once per answered lead).

    >>> round(response_continue_one(0.5, 30.0, ResponseCoefficients()), 4)
    0.0637
    """
    t = max(response_min, coef.reference_min)
    if coef.model == "log_odds":
        k = (t / coef.reference_min) ** -coef.slope
        return probability * k / (1.0 - probability + probability * k)
    return probability * 0.5 ** ((t - coef.reference_min) / coef.half_life_min)


def rate_at_reference(rate: float, response_min: float, coef: ResponseCoefficients) -> float:
    """The continue rate within the reference time that gives ``rate`` when answers
    take ``response_min`` minutes: the inverse of :func:`response_continue`.

    >>> coef = ResponseCoefficients()
    >>> implied = rate_at_reference(0.0637, 30.0, coef)
    >>> round(implied, 3), round(float(response_continue(implied, 30.0, coef)), 4)
    (0.5, 0.0637)
    """
    t = max(response_min, coef.reference_min)
    if coef.model == "log_odds":
        return float(scale_odds(rate, (t / coef.reference_min) ** coef.slope))
    return rate / 0.5 ** ((t - coef.reference_min) / coef.half_life_min)


@cache
def quadrature() -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on (0, 1): the quantile levels at which a response
    delay is averaged (:func:`mean_response_continue`)."""
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    return (nodes + 1.0) / 2.0, weights / 2.0


def mean_response_continue(
    probability: ArrayLike, delay: Quantiles | None, coef: ResponseCoefficients
) -> FloatArray:
    """E[response_continue(probability, D)] over a response delay D (minutes).

    The expectation is an integral over D's quantiles, computed by Gauss-Legendre
    quadrature; no delay distribution means an answer within the reference time.

    >>> from funnelsim.scenario import Constant
    >>> round(float(mean_response_continue(0.5, Constant(value=30.0), ResponseCoefficients())), 4)
    0.0637
    """
    p = np.asarray(probability, dtype=float)
    if delay is None:
        return np.asarray(response_continue(p, 0.0, coef))
    nodes, weights = quadrature()
    curve = response_continue(p[..., None], delay.ppf(nodes), coef)
    return np.minimum(np.asarray(curve @ weights), p)


# --------------------------------------------------------------------------- all of them


class Coefficients(StrictModel):
    """Every behavioural coefficient of the friction models; each is overridable."""

    form_fields: FormFieldCoefficients = FormFieldCoefficients()
    login_wall: LoginWallCoefficients = LoginWallCoefficients()
    page_load: PageLoadCoefficients = PageLoadCoefficients()
    payment: PaymentCoefficients = PaymentCoefficients()
    contact: ContactCoefficients = ContactCoefficients()
    response: ResponseCoefficients = ResponseCoefficients()


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

LABELS = {
    "page_load": "slow pages",
    "form_fields": "form fields",
    "login_wall": "login wall",
    "payment": "payment methods",
    "contact": "contact options",
    "response": "response delay",
}
"""What each friction is called where it is described (``explain``)."""

LOSS_LABELS = {
    "page_load": "slow pages",
    "form_fields": "long form",
    "login_wall": "login wall",
    "payment": "payment method missing",
    "contact": "contact option missing",
    "response": "answer came too late",
}
"""Why a visitor was lost to each friction (charts of losses by reason)."""
