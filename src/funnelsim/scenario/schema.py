"""The scenario schema: a funnel, its economics and the variants to compare.

A scenario is a complete, reviewable hypothesis about a funnel, like the
drawing a growth team puts on a whiteboard: where visitors come from, who they
are, the stages they walk through, what slows them down at each stage, what a
customer is worth, and the variants to compare. Variants are *overrides by
dotted path* on the base scenario (``stages.checkout.friction.form_fields: 6``),
so a reviewer sees exactly what each variant changes.

Every number has its unit in its name (``_s``, ``_min``, ``_per_month``) or a
documented default; defaults that model human behaviour cite their source (see
the ``Coefficients`` models). Loading is in :mod:`funnelsim.scenario.loader`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Union

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from funnelsim.scenario.messages import (
    Path_,
    ScenarioError,
    _data_path,
    _did_you_mean,
    _dotted,
    _LineMap,
    _message,
)
from funnelsim.scenario.variants import _resolve_variant, _set_path, check_override_path

SHARE_TOLERANCE = 1e-6

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------- field types


def _probability(value: float) -> float:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"must be between 0 and 1, got {value:g}")
    return value


def _shares_sum_to_one(shares: Mapping[str, float], what: str) -> None:
    total = math.fsum(shares.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValueError(f"{what} shares must sum to 1, got {total:g}")


Probability = Annotated[float, AfterValidator(_probability)]


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class StrictModel(BaseModel):
    """Base of every scenario model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- distributions


class Constant(StrictModel):
    """Always the same value."""

    dist: Literal["constant"] = "constant"
    value: NonNegativeFloat

    @property
    def mean_value(self) -> float:
        return self.value

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        return np.full(np.shape(u), self.value)


class Exponential(StrictModel):
    """Memoryless waiting or service time with the given mean."""

    dist: Literal["exponential"]
    mean: PositiveFloat

    @property
    def mean_value(self) -> float:
        return self.mean

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        return -self.mean * np.log1p(-np.asarray(u))


class _ByMeanAndSd(StrictModel):
    """A positive distribution given by its mean and standard deviation."""

    mean: PositiveFloat
    sd: PositiveFloat

    @property
    def mean_value(self) -> float:
        return self.mean


class LogNormal(_ByMeanAndSd):
    """Right-skewed positive quantity (order values, service times), by its mean and sd."""

    dist: Literal["lognormal"]

    @property
    def log_params(self) -> tuple[float, float]:
        """(mu, sigma) of the underlying normal distribution."""
        sigma2 = math.log1p((self.sd / self.mean) ** 2)
        return math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2)

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        from scipy.special import ndtri

        mu, sigma = self.log_params
        return np.exp(mu + sigma * ndtri(np.asarray(u)))


class Gamma(_ByMeanAndSd):
    """Positive quantity with a lighter tail than the lognormal, by its mean and sd."""

    dist: Literal["gamma"]

    @property
    def shape_scale(self) -> tuple[float, float]:
        """(shape, scale) parameters."""
        return (self.mean / self.sd) ** 2, self.sd**2 / self.mean

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        from scipy.special import gammaincinv

        shape, scale = self.shape_scale
        return np.asarray(gammaincinv(shape, np.asarray(u)) * scale, dtype=float)


class Uniform(StrictModel):
    """Any value between low and high, equally likely."""

    dist: Literal["uniform"]
    low: NonNegativeFloat
    high: PositiveFloat

    @field_validator("high")
    @classmethod
    def _above_low(cls, high: float, info: Any) -> float:
        low = info.data.get("low")
        if low is not None and high <= low:
            raise ValueError(f"must be greater than low ({low:g}), got {high:g}")
        return high

    @property
    def mean_value(self) -> float:
        return (self.low + self.high) / 2

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        return self.low + (self.high - self.low) * np.asarray(u)


def _number_is_constant(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


Distribution = Annotated[
    Union[Constant, Exponential, LogNormal, Gamma, Uniform],  # noqa: UP007 (discriminated)
    Field(discriminator="dist"),
    BeforeValidator(_number_is_constant),
]


DISTRIBUTION_KINDS = ("constant", "exponential", "lognormal", "gamma", "uniform")


# --------------------------------------------------------------------------- coefficients


class FormFieldCoefficients(StrictModel):
    """Competing-hazard model of form length: P(complete) = (1 - h)^max(0, fields - free).

    Calibrated on Baymard Institute (2024): "too long / complicated checkout" is
    given by about 18% of US abandoners, average cart abandonment is 70.22%
    (Baymard, 2025), the average checkout has 11.3 fields and about 8 are
    achievable. So 3.3 avoidable fields lose 0.18 x 0.7022 = 12.6% of
    checkout visitors: h = 1 - (1 - 0.126)^(1/3.3) = 0.0401.
    """

    hazard_per_field: Probability = 0.0401
    free_fields: Annotated[int, Field(ge=0)] = 8


class LoginWallCoefficients(StrictModel):
    """Probability that a login wall alone makes a checkout visitor leave.

    Forced account creation is given by 19% of US abandoners (Baymard Institute,
    checkout usability survey, 2024) at 70.22% abandonment (Baymard, 2025):
    0.19 x 0.7022 = 0.133. An optional login (guest checkout) removes the forced
    account; its default hazard is 0 (set it if your optional login nags).

    Buyers behind a required login are registered; behind an optional one a share
    ``optional_registers`` of them registers. Registered customers' repeat rate and
    churn are multiplied by the ``registered_*`` factors. No published figure is in
    CALIBRATION.md for these, so the defaults are neutral (no effect): set them from
    your own cohort data (registered versus guest buyers).
    """

    required: Probability = 0.1334
    optional: Probability = 0.0
    optional_registers: Probability = 0.0
    registered_repeat_multiplier: NonNegativeFloat = 1.0
    registered_churn_multiplier: NonNegativeFloat = 1.0


class PageLoadCoefficients(StrictModel):
    """Bounce multiplier m(t) = 1 + A (t - t0)^n / (K^n + (t - t0)^n) for t > t0.

    Fitted (least squares) to Google / SOASTA (Think with Google, 2017): bounce
    probability +32% from 1 s to 3 s, +90% to 5 s, +106% to 6 s, +113% to 7 s,
    +123% to 10 s. The fit reproduces all five points within 0.02.
    """

    reference_s: NonNegativeFloat = 1.0
    max_extra: NonNegativeFloat = 1.2807
    half_s: PositiveFloat = 2.9405
    steepness: PositiveFloat = 2.8632


class OptionCoefficients(StrictModel):
    """Visitors prefer one option (payment method, contact channel); if it is missing
    a share of them leave, the rest use what is offered."""

    abandon_if_missing: Probability
    preferences: dict[Name, Probability]

    @field_validator("preferences")
    @classmethod
    def _sum_to_one(cls, shares: dict[str, float]) -> dict[str, float]:
        _shares_sum_to_one(shares, "preference")
        return shares


class PaymentCoefficients(OptionCoefficients):
    """Payment-method friction, jointly calibrated on two figures.

    Baymard Institute (2024): 9% of abandoners cite too few payment methods, so
    a typical card + PayPal checkout loses 0.09 x 0.7022 = 6.3% of visitors.
    Stripe (2025, holdback test over 50+ methods): showing one more relevant
    method raises conversion 7.4%. With 8.5% of visitors preferring a wallet
    and 75% of them leaving when it is missing, the model loses 6.4% at card +
    PayPal and adding the wallet raises conversion 6.8%. The split between
    preference share and abandonment is not identified by the data: override
    both with your own analytics.
    """

    abandon_if_missing: Probability = 0.75
    preferences: dict[Name, Probability] = Field(
        default_factory=lambda: {"card": 0.70, "paypal": 0.215, "wallet": 0.085}
    )


class ContactCoefficients(OptionCoefficients):
    """Contact-option friction (e.g. phone only). No published figure is in
    CALIBRATION.md: the abandonment reuses the payment calibration by analogy
    and the preference shares are illustrative. Set both from your own data."""

    abandon_if_missing: Probability = 0.75
    preferences: dict[Name, Probability] = Field(
        default_factory=lambda: {"phone": 0.35, "email": 0.40, "chat": 0.25}
    )


class ResponseCoefficients(StrictModel):
    """How an enquiry goes cold while it waits for an answer.

    ``log_odds`` (default): logit p(t) = logit p(t_ref) - slope ln(t / t_ref)
    for t > t_ref. The slope 1.5 lies between the MIT / InsideSales.com study
    (2007: odds of qualifying 21x higher at 5 than at 30 minutes, slope 1.70)
    and Oldroyd, McElheran & Elkington (HBR, 2011: 60x more likely within 1 h
    than after 24 h, slope 1.29). ``half_life`` is the simpler exponential
    option p(t) = p(t_ref) 2^(-(t - t_ref)/half_life); it fits both studies
    worse (CALIBRATION.md).
    """

    model: Literal["log_odds", "half_life"] = "log_odds"
    slope: NonNegativeFloat = 1.5
    reference_min: PositiveFloat = 5.0
    half_life_min: PositiveFloat = 60.0


class Coefficients(StrictModel):
    """Every behavioural coefficient of the friction models; each is overridable."""

    form_fields: FormFieldCoefficients = FormFieldCoefficients()
    login_wall: LoginWallCoefficients = LoginWallCoefficients()
    page_load: PageLoadCoefficients = PageLoadCoefficients()
    payment: PaymentCoefficients = PaymentCoefficients()
    contact: ContactCoefficients = ContactCoefficients()
    response: ResponseCoefficients = ResponseCoefficients()


# --------------------------------------------------------------------------- the funnel


class Channel(StrictModel):
    """A traffic source: its share of visitors, what a visit costs, and the intent it brings.

    ``intent`` multiplies the odds of continuing at every stage (1 = average).
    ``retention`` and ``order_value``, when given, replace ``value``'s for the
    customers this channel brings (and a segment's own; see ``funnelsim.clv``).
    """

    share: Probability
    cost_per_visit: NonNegativeFloat = 0.0
    intent: PositiveFloat = 1.0
    retention: Retention | None = None
    order_value: Distribution | None = None


# Illustrative shapes, not from a cited source: quiet at night, a morning rise, a lunch
# dip and an evening peak (clock hours); weekends at 80% of a weekday.
ILLUSTRATIVE_HOUR_WEIGHTS = (
    *(0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.1, 1.2, 1.2),
    *(1.1, 1.1, 1.2, 1.2, 1.2, 1.2, 1.3, 1.5, 1.6, 1.4, 1.0, 0.6),
)
ILLUSTRATIVE_DAY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.8)


def _some_weight(weights: list[float]) -> list[float]:
    if math.fsum(weights) <= 0:
        raise ValueError("at least one weight must be positive")
    return weights


Weights = Annotated[list[NonNegativeFloat], AfterValidator(_some_weight)]


class TrafficProfile(StrictModel):
    """When visitors come: relative weights per clock hour of the day (24, from 00:00
    UTC) and per day of the week (7, Monday first). The defaults are an illustrative
    shape, not a published one (quiet nights, evening peak, weekends at 80% of a
    weekday): replace them with your analytics' sessions by hour and weekday."""

    hour_weights: Annotated[Weights, Field(min_length=24, max_length=24)] = Field(
        default_factory=lambda: list(ILLUSTRATIVE_HOUR_WEIGHTS)
    )
    day_weights: Annotated[Weights, Field(min_length=7, max_length=7)] = Field(
        default_factory=lambda: list(ILLUSTRATIVE_DAY_WEIGHTS)
    )


class Traffic(StrictModel):
    """Visitors arriving as a Poisson process over the test's days: at a constant rate,
    or following ``profile`` (``profile: {}`` takes the illustrative default shape)."""

    visitors_per_day: PositiveFloat
    days: Annotated[int, Field(ge=1)]
    profile: TrafficProfile | None = None
    channels: dict[Name, Channel] = Field(
        default_factory=lambda: {"direct": Channel(share=1.0)}, min_length=1
    )

    @field_validator("channels")
    @classmethod
    def _sum_to_one(cls, channels: dict[str, Channel]) -> dict[str, Channel]:
        _shares_sum_to_one({k: c.share for k, c in channels.items()}, "channel")
        return channels

    @field_validator("days")
    @classmethod
    def _someone_arrives(cls, days: int, info: Any) -> int:
        per_day = info.data.get("visitors_per_day")
        if per_day is not None and per_day * days < 1:
            raise ValueError(
                f"{per_day:g} visitors/day x {days} days expects "
                f"{per_day * days:.2g} visitors in all; at least 1 is needed"
            )
        return days


class Segment(StrictModel):
    """A kind of visitor (device, market) with its own conditions."""

    share: Probability
    page_load_s: NonNegativeFloat = 1.0
    intent: PositiveFloat = 1.0
    payment_preferences: dict[Name, Probability] | None = None
    contact_preferences: dict[Name, Probability] | None = None
    retention: Retention | None = None
    order_value: Distribution | None = None

    @field_validator("payment_preferences", "contact_preferences")
    @classmethod
    def _sum_to_one(cls, shares: dict[str, float] | None) -> dict[str, float] | None:
        if shares is not None:
            _shares_sum_to_one(shares, "preference")
        return shares


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Shift(StrictModel):
    """Staff on duty: ``capacity`` servers on ``days`` from ``from_h`` to ``to_h`` (whole
    hours of the team's local time; ``to_h: 24`` is midnight). ``on_call`` marks a shift
    outside office hours (an on-call rep at night): answers given then count as
    answered out of hours."""

    days: list[Weekday] = Field(min_length=1, max_length=7)
    from_h: Annotated[int, Field(ge=0, le=23)]
    to_h: Annotated[int, Field(ge=1, le=24)]
    capacity: Annotated[int, Field(ge=1, le=100_000)]
    on_call: bool = False

    @field_validator("to_h")
    @classmethod
    def _after_start(cls, to_h: int, info: Any) -> int:
        from_h = info.data.get("from_h")
        if from_h is not None and to_h <= from_h:
            raise ValueError(f"must be after from_h ({from_h}), got {to_h}")
        return to_h


class Schedule(StrictModel):
    """A resource's weekly timetable: outside every shift nobody is there and leads wait.

    The simulation clock starts on a Monday at 00:00 UTC. ``utc_offset_h`` is the team's
    time zone (1 for Berlin in winter: a shift from 9 to 17 local time covers 8 to 16 on
    the clock). The capacity in an hour is the sum of the shifts covering it, at most the
    resource's ``capacity``. ``holidays`` are local days since the start (0 = the first
    Monday) with nobody on duty. A rep busy when a shift ends finishes the lead first.
    """

    shifts: list[Shift] = Field(min_length=1, max_length=100)
    utc_offset_h: Annotated[int, Field(ge=-12, le=14)] = 0
    holidays: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(
        default_factory=list, max_length=1000
    )


class Priority(StrictModel):
    """Who a resource answers first.

    ``by``: ``fifo`` (order of arrival), ``score`` (the lead's chance to buy from this
    stage on, given their segment and channel: the funnel's own model used as an ideal
    lead score) or ``deal_size`` (the order value the lead would place). ``bands`` are
    descending cut points that split leads into priority bands: band 0 (at or above the
    first cut) is served first; within a band, first come first served. Service is
    non-preemptive unless ``preemptive``: then a lead of a higher band interrupts a
    lower band's service, which resumes later. Leads below ``decline_below`` (same unit as
    ``by``) are declined on arrival: lost (reason ``declined``), no staff time spent.
    """

    by: Literal["fifo", "score", "deal_size"] = "fifo"
    bands: list[NonNegativeFloat] = Field(default_factory=list, max_length=20)
    preemptive: bool = False
    decline_below: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _bands_need_a_key(self) -> Priority:
        if self.by == "fifo" and (self.bands or self.decline_below > 0):
            raise ValueError("bands and decline_below need by: score or deal_size")
        if any(a <= b for a, b in zip(self.bands, self.bands[1:], strict=False)):
            raise ValueError("bands must be strictly descending cut points")
        return self


class Resource(StrictModel):
    """People or machines that stages share: ``capacity`` servers, each serving one
    visitor at a time for a service time drawn from ``service_min``. Without a
    ``schedule`` every server is there around the clock. ``cost_per_hour`` is the cost of
    one server on duty for an hour (service metrics: cost per lead and per customer)."""

    capacity: Annotated[int, Field(ge=1, le=100_000)]
    service_min: Distribution
    schedule: Schedule | None = None
    priority: Priority = Priority()
    cost_per_hour: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _shifts_within_capacity(self) -> Resource:
        if self.schedule is None:
            return self
        staffed = dict.fromkeys(range(7 * 24), 0)
        for shift in self.schedule.shifts:
            for day in shift.days:
                for hour in range(shift.from_h, shift.to_h):
                    staffed[WEEKDAYS.index(day) * 24 + hour] += shift.capacity
        peak = max(staffed.values())
        if peak > self.capacity:
            raise ValueError(
                f"shifts put {peak} servers on duty at once, more than capacity ({self.capacity})"
            )
        return self


class Friction(StrictModel):
    """What slows a visitor down at a stage (see ``friction.py`` for each model)."""

    form_fields: Annotated[int, Field(ge=0, le=1000)] | None = None
    login_wall: Literal["none", "optional", "required"] = "none"
    page_load: bool = False
    payment_methods: list[Name] | None = Field(default=None, min_length=1)
    contact_options: list[Name] | None = Field(default=None, min_length=1)
    response_decay: bool = False


class LeadNurture(StrictModel):
    """Marketing automation working on a lead until it is sales-ready.

    A message goes out every ``interval_days``; after each one the lead becomes
    sales-ready with probability ``ready_per_message``. A lead still not ready after
    ``max_messages`` is dropped. There are no defaults: the cadence and its effect
    are the scenario's hypothesis.
    """

    interval_days: PositiveFloat
    ready_per_message: Probability
    max_messages: Annotated[int, Field(ge=1, le=1000)]
    cost_per_message: NonNegativeFloat = 0.0


class AutoReply(StrictModel):
    """An instant automatic acknowledgement ("we will call you back by 10 am tomorrow")
    sent to every lead that reaches the stage's resource.

    A lead who has been told when to expect an answer goes cold more slowly: the
    response decay's slope is multiplied by ``decay_factor`` (its half-life divided by
    it). The default 0.5 is illustrative, not published (CALIBRATION.md has no figure);
    a plausible range is 0.3 to 0.8: sweep it. ``answers_share`` of the enquiries are
    answered completely by templates or price lists sent automatically: those leads
    continue as if answered at once, without a rep. ``cost_per_lead`` is the automation's
    cost per lead it replies to.
    """

    decay_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    answers_share: Probability = 0.0
    cost_per_lead: NonNegativeFloat = 0.0


class Bot(StrictModel):
    """A chat bot answering out of hours (see ContactPath)."""

    quality: Probability = 0.5
    cost_per_lead: NonNegativeFloat = 0.0


class ContactPath(StrictModel):
    """How a lead who contacts the team this way is answered.

    ``answer: queued`` (e-mail, form): the lead waits in the resource's queue.
    ``answer: at_once`` (phone, live chat): a rep on duty must be free the moment the
    lead calls, otherwise the lead is lost (reason ``unanswered``). With ``bot`` set, a
    bot answers at once whenever no office shift is on duty (out of hours); the lead then
    continues with its stage probability times ``bot.quality`` (illustrative default
    0.5: no published figure; a plausible range is 0.3 to 0.9).
    """

    answer: Literal["queued", "at_once"] = "queued"
    bot: Bot | None = None


class Stage(StrictModel):
    """One step of the funnel. ``rate`` is the probability of continuing before friction.

    ``captures_lead`` marks the stage where a visitor becomes a lead (gives an
    e-mail address): lead quality is measured from there. ``nurture`` makes the
    stage a lead-nurture programme: only leads that become sales-ready continue.
    ``contact`` makes each contact option a path to the stage's resource (its keys are
    the options offered: a visitor whose preferred option is missing leaves as
    ``coefficients.contact`` says, or takes the first path). ``auto_reply`` sends an
    automatic acknowledgement. Both need a ``resource``.
    """

    name: Name
    rate: Probability
    dwell_min: Distribution = Constant(value=0.0)
    resource: Name | None = None
    patience_min: Distribution | None = None
    response_delay_min: Distribution | None = None
    friction: Friction = Friction()
    captures_lead: bool = False
    nurture: LeadNurture | None = None
    contact: dict[Name, ContactPath] | None = Field(default=None, min_length=1)
    auto_reply: AutoReply | None = None

    @property
    def contact_options(self) -> list[str] | None:
        """The contact options offered: the paths' names, else ``friction.contact_options``."""
        return list(self.contact) if self.contact is not None else self.friction.contact_options


class ShiftedBetaGeometric(StrictModel):
    """Customers differ in churn: each one's monthly churn is drawn from Beta(alpha, beta)
    (Fader & Hardie 2007, "How to project customer retention", Journal of Interactive
    Marketing 21(1)). Mean churn alpha / (alpha + beta); the survivors of each month are
    ever more loyal, so aggregate retention rises with tenure."""

    alpha: PositiveFloat
    beta: PositiveFloat


class Retention(StrictModel):
    """After the first order: repeat orders per active month and churn per month.

    ``churn: constant`` (default): every customer leaves with ``churn_per_month``
    each month. ``churn: sbg``: heterogeneous churn from the ``sbg`` parameters
    (``churn_per_month`` is then unused). ``repeat_orders: poisson`` draws each
    active month's orders with mean ``repeat_per_month``; ``fixed`` places exactly
    that many (a subscription: 1 per month).
    """

    repeat_per_month: NonNegativeFloat = 0.0
    churn_per_month: Probability = 0.1
    churn: Literal["constant", "sbg"] = "constant"
    sbg: ShiftedBetaGeometric | None = None
    repeat_orders: Literal["poisson", "fixed"] = "poisson"

    @model_validator(mode="after")
    def _sbg_needs_parameters(self) -> Retention:
        if self.churn == "sbg" and self.sbg is None:
            raise ValueError("churn: sbg needs sbg: {alpha: ..., beta: ...}")
        return self


class Nurture(StrictModel):
    """A programme of messages (e-mail, automation) to active customers.

    Each message a month raises the repeat rate by ``repeat_lift_per_message``
    (relative), up to ``max_repeat_lift``; every message costs ``cost_per_message``.
    No defaults for the effect: it is the scenario's hypothesis (measure it with a
    holdout group).
    """

    messages_per_month: NonNegativeFloat
    repeat_lift_per_message: NonNegativeFloat
    max_repeat_lift: NonNegativeFloat | None = None
    cost_per_message: NonNegativeFloat = 0.0


class Referral(StrictModel):
    """Active customers bring new visitors at this rate, arriving through ``channel``
    (which must be one of the traffic channels; its share may be 0)."""

    per_customer_per_month: NonNegativeFloat = 0.0
    channel: Name = "referral"


class Value(StrictModel):
    """What a customer is worth: order value, margin, repeat purchases, horizon, discounting."""

    order_value: Distribution
    margin: Probability = 1.0
    retention: Retention = Retention()
    nurture: Nurture | None = None
    referral: Referral = Referral()
    horizon_months: Annotated[int, Field(ge=0, le=600)] = 24
    discount_rate_annual: Annotated[float, Field(ge=0, le=10)] = 0.10


class Prior(StrictModel):
    """Beta prior of every conversion rate in the Bayesian readout."""

    alpha: PositiveFloat = 1.0
    beta: PositiveFloat = 1.0


class Experiment(StrictModel):
    """How variants are compared: the traffic split of the simulated A/B test,
    replications of the whole scenario, and the Bayesian decision rule.

    ``metric`` is what the simulated test is judged on, and which variant counts as
    truly best: ``conversion`` (exact Beta-Binomial readout) or ``clv_per_visitor``
    (conversion x order value x repeat purchase x churn posteriors). ``loss_threshold``
    and ``rope`` are relative to the control's value of that metric.
    ``rollout_days`` is how long the shipped variant then serves the traffic:
    ``funnelsim plan --objective profit`` prices a test over the test and that
    rollout (the population is ``traffic.days + rollout_days`` days of visitors)."""

    metric: Literal["conversion", "clv_per_visitor"] = "conversion"
    split: Literal["equal"] | dict[Name, Probability] = "equal"
    replications: Annotated[int, Field(ge=1, le=100_000)] = 100
    control: Name | None = None
    prior: Prior = Prior()
    loss_threshold: Annotated[float, Field(gt=0, le=1)] = 0.005
    rope: Annotated[float, Field(gt=0, le=1)] = 0.01
    equivalence_probability: Probability = 0.95
    rollout_days: Annotated[int, Field(ge=0, le=36_500)] = 365


OverridePath = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]


class Scenario(StrictModel):
    """A funnel, its economics and the variants to compare."""

    name: str
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    currency: Annotated[str, Field(max_length=8)] = "USD"
    traffic: Traffic
    segments: dict[Name, Segment] = Field(
        default_factory=lambda: {"all": Segment(share=1.0)}, min_length=1
    )
    resources: dict[Name, Resource] = Field(default_factory=dict)
    stages: list[Stage] = Field(min_length=1, max_length=100)
    value: Value
    coefficients: Coefficients = Coefficients()
    variants: dict[Name, dict[OverridePath, Any]] = Field(
        default_factory=lambda: {"control": {}}, min_length=1, max_length=50
    )
    experiment: Experiment = Experiment()

    _resolved: dict[str, Scenario] = PrivateAttr(default_factory=dict)
    _source: tuple[str, dict[Path_, int]] = PrivateAttr(default=("<scenario>", {}))

    @field_validator("segments")
    @classmethod
    def _segments_sum_to_one(cls, segments: dict[str, Segment]) -> dict[str, Segment]:
        _shares_sum_to_one({k: s.share for k, s in segments.items()}, "segment")
        return segments

    @property
    def control(self) -> str:
        """The variant every other is compared with."""
        if self.experiment.control is not None:
            return self.experiment.control
        return "control" if "control" in self.variants else next(iter(self.variants))

    @property
    def variant_names(self) -> list[str]:
        """Variant names, control first."""
        return [self.control, *(v for v in self.variants if v != self.control)]

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def split_shares(self) -> dict[str, float]:
        """Share of test traffic per variant, control first."""
        split = self.experiment.split
        names = self.variant_names
        if split == "equal":
            return {v: 1.0 / len(names) for v in names}
        return {v: split[v] for v in names}

    def variant(self, name: str) -> Scenario:
        """The scenario as variant ``name`` changes it."""
        if name not in self._resolved:
            if name not in self.variants:
                raise KeyError(f"no variant {name!r}; variants: {', '.join(self.variants)}")
            self._resolved[name] = _resolve_variant(self, name, *self._source, _validate)
        return self._resolved[name]

    def error_at(self, path: Path_, message: str) -> ScenarioError:
        """A :class:`ScenarioError` about the field at ``path``, located in the file this
        scenario was read from (for problems found after loading, such as an engine that
        cannot simulate a field)."""
        file, lines = self._source
        line_map = _LineMap()
        line_map.lines = lines
        return ScenarioError(file, line_map.line_of(path), _dotted(path), message)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """A copy with dotted-path overrides applied to the base and every variant kept."""
        data = self.model_dump(mode="python")
        for path, value in overrides.items():
            problem = check_override_path(self, path)
            if problem:
                raise ScenarioError("<overrides>", None, path, problem)
            _set_path(data, self, path, value)
        scenario = _validate(data, "<overrides>", {})
        scenario._source = self._source
        return scenario


# --------------------------------------------------------------------------- cross-checks


def _reference_problems(scenario: Scenario) -> Iterator[tuple[Path_, str]]:
    names = [s.name for s in scenario.stages]
    for i, name in enumerate(names):
        if name in names[:i]:
            yield ("stages", i, "name"), f"stage name {name!r} is used twice"
    for i, stage in enumerate(scenario.stages):
        if stage.resource is not None and stage.resource not in scenario.resources:
            known = ", ".join(scenario.resources) or "none defined"
            yield (
                ("stages", i, "resource"),
                (
                    f"unknown resource {stage.resource!r}"
                    f"{_did_you_mean(stage.resource, scenario.resources)}"
                    f" (resources: {known})"
                ),
            )
        if stage.patience_min is not None and stage.resource is None:
            yield ("stages", i, "patience_min"), "patience needs a resource to wait for"
        for needs_resource in ("contact", "auto_reply"):
            if getattr(stage, needs_resource) is not None and stage.resource is None:
                yield ("stages", i, needs_resource), f"{needs_resource} needs a resource"
        if stage.contact is not None and stage.friction.contact_options is not None:
            yield (
                ("stages", i, "friction", "contact_options"),
                "give the contact options once: the keys of contact list them",
            )
        if (
            stage.friction.response_decay
            and stage.resource is None
            and (stage.response_delay_min is None)
        ):
            yield (
                ("stages", i, "friction", "response_decay"),
                ("response decay needs a resource or a response_delay_min to wait for"),
            )
    yield from _page_load_problems(scenario.stages)
    referral = scenario.value.referral
    if referral.per_customer_per_month > 0 and referral.channel not in scenario.traffic.channels:
        yield (
            ("value", "referral", "channel"),
            (
                f"referral channel {referral.channel!r} is not a traffic channel "
                f"(add it under traffic.channels, share 0 is allowed)"
            ),
        )
    experiment = scenario.experiment
    if experiment.control is not None and experiment.control not in scenario.variants:
        yield (
            ("experiment", "control"),
            (
                f"unknown variant {experiment.control!r}"
                f"{_did_you_mean(experiment.control, scenario.variants)}"
            ),
        )
    if isinstance(experiment.split, dict):
        if set(experiment.split) != set(scenario.variants):
            yield (
                ("experiment", "split"),
                (
                    f"split must name every variant ({', '.join(scenario.variants)}), "
                    f"got {', '.join(experiment.split)}"
                ),
            )
        else:
            try:
                _shares_sum_to_one(experiment.split, "split")
            except ValueError as error:
                yield ("experiment", "split"), str(error)


def _page_load_problems(stages: list[Stage]) -> Iterator[tuple[Path_, str]]:
    """The page-load curve is a bounce on the page a visitor lands on: one stage only."""
    loading = [i for i, stage in enumerate(stages) if stage.friction.page_load]
    for i in loading[1:]:
        yield (
            ("stages", i, "friction", "page_load"),
            (
                f"page_load is already set on stage {stages[loading[0]].name!r}: the "
                "Google / SOASTA curve is the bounce on the page a visitor lands on, once "
                "per visit, so set it on that one stage only"
            ),
        )


def _validate(data: Any, file: str, lines: _LineMap | dict[Path_, int]) -> Scenario:
    line_map = lines if isinstance(lines, _LineMap) else _LineMap()
    if not isinstance(data, dict):
        raise ScenarioError(file, 1, "", "a scenario must be a mapping of fields")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        keep_last = error["type"] in ("missing", "extra_forbidden")
        path = _data_path(tuple(error["loc"]), data, keep_last)
        raise ScenarioError(
            file,
            line_map.line_of(path),
            _dotted(path),
            _message(error, path, Scenario, DISTRIBUTION_KINDS),
        ) from None
    for path, problem in _reference_problems(scenario):
        raise ScenarioError(file, line_map.line_of(path), _dotted(path), problem)
    return scenario
