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
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Union

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from funnelsim.fields import (
    MAX_AMOUNT,
    Amount,
    Name,
    NonNegativeAmount,
    NonNegativeFloat,
    PositiveFloat,
    Probability,
    StrictModel,
    shares_sum_to_one,
)
from funnelsim.friction import Coefficients, rate_at_reference
from funnelsim.scenario.assumptions import sets
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
from funnelsim.text import control_character
from funnelsim.uncertainty import Assumption

FloatArray = NDArray[np.float64]


MAX_SPREAD = 1e3
"""The largest sd / mean of a distribution; its smallest is 1 / MAX_SPREAD**2."""


# --------------------------------------------------------------------------- distributions


class Constant(StrictModel):
    """Always the same value."""

    dist: Literal["constant"] = "constant"
    value: NonNegativeAmount

    @property
    def mean_value(self) -> float:
        return self.value

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        return np.full(np.shape(u), self.value)


class Exponential(StrictModel):
    """Memoryless waiting or service time with the given mean."""

    dist: Literal["exponential"]
    mean: Amount

    @property
    def mean_value(self) -> float:
        return self.mean

    def ppf(self, u: FloatArray) -> FloatArray:
        """Quantile function, applied to uniforms in [0, 1)."""
        return -self.mean * np.log1p(-np.asarray(u))


class _ByMeanAndSd(StrictModel):
    """A positive distribution given by its mean and standard deviation."""

    mean: Amount
    sd: Amount

    @field_validator("sd")
    @classmethod
    def _spread(cls, sd: float, info: Any) -> float:
        mean = info.data.get("mean")
        if mean is not None and not MAX_SPREAD**-2 <= sd / mean <= MAX_SPREAD:
            raise ValueError(
                f"must be between {MAX_SPREAD**-2:g} and {MAX_SPREAD:g} times the mean "
                f"({mean:g}), got {sd:g}"
            )
        return sd

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
    low: NonNegativeAmount
    high: Amount

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

UNITS = {
    1 / 60: ("s", "sec", "secs", "second", "seconds"),
    1.0: ("min", "mins", "minute", "minutes"),
    60.0: ("h", "hr", "hrs", "hour", "hours"),
    1440.0: ("d", "day", "days"),
    10080.0: ("w", "week", "weeks"),
}
MINUTES_PER_UNIT = {name: factor for factor, names in UNITS.items() for name in names}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)\s*")
DURATION_HINT = "minutes (a number) or a duration with a unit: 90s, 30min, 4h, 2d, 1w"


def minutes(value: Any) -> Any:
    """A duration text in minutes (``"4h"`` -> 240.0); any other value as it is.

    >>> minutes("4h"), minutes("30 min"), minutes("2d"), minutes(15)
    (240.0, 30.0, 2880.0, 15)
    """
    if not isinstance(value, str):
        return value
    match = _DURATION.fullmatch(value.lower())
    factor = MINUTES_PER_UNIT.get(match[2]) if match else None
    if match is None or factor is None:
        raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
    return float(match[1]) * factor


def _durations_in_minutes(value: Any) -> Any:
    """A duration field's value with every duration text in minutes: the shorthand
    (``4h``) and the numbers of a distribution (``{dist: exponential, mean: 4h}``)."""
    if isinstance(value, dict):
        return {k: v if k == "dist" else minutes(v) for k, v in value.items()}
    return _number_is_constant(minutes(value))


Minutes = Annotated[Distribution, BeforeValidator(_durations_in_minutes)]
"""A distribution of durations in minutes; a duration may carry a unit (``4h``)."""


DISTRIBUTION_KINDS = ("constant", "exponential", "lognormal", "gamma", "uniform")


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


MAX_VISITORS_PER_DAY = 1e15
"""The engines draw a day's visitors as one Poisson count; beyond this a request is a typo
(the budget refuses far less unless --allow-large)."""


class Traffic(StrictModel):
    """Visitors arriving as a Poisson process over the test's days: at a constant rate,
    or following ``profile`` (``profile: {}`` takes the illustrative default shape)."""

    visitors_per_day: Annotated[float, Field(gt=0, le=MAX_VISITORS_PER_DAY)]
    days: Annotated[int, Field(ge=1)]
    profile: TrafficProfile | None = None
    channels: dict[Name, Channel] = Field(
        default_factory=lambda: {"direct": Channel(share=1.0)}, min_length=1
    )

    @field_validator("channels")
    @classmethod
    def _sum_to_one(cls, channels: dict[str, Channel]) -> dict[str, Channel]:
        shares_sum_to_one({k: c.share for k, c in channels.items()}, "channel")
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
            shares_sum_to_one(shares, "preference")
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
    one server on duty for an hour: it is part of the acquisition cost (CAC, LTV:CAC) and
    of the service figures' cost per lead and per customer."""

    capacity: Annotated[int, Field(ge=1, le=100_000)]
    service_min: Minutes
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
    """What slows a visitor down at a stage. What each friction does, its calibration
    and its formula are in :mod:`funnelsim.friction`."""

    form_fields: Annotated[int, Field(ge=0, le=1000)] | None = None
    free_fields: Annotated[int, Field(ge=0, le=1000)] | None = Field(
        default=None,
        description="fields of this stage's form that cost nothing; each field beyond "
        "loses visitors. Unset: `coefficients.form_fields.free_fields` (8, Baymard's "
        "achievable checkout). A short lead form may set its own, e.g. 3.",
    )
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


class RateAt(StrictModel):
    """A stage's continue rate as observed today, when answers take ``response_min``."""

    rate: Probability
    response_min: PositiveFloat


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
    rate: Probability | None = Field(
        default=None,
        description="the probability of continuing past the stage before friction, for "
        "a visitor of average intent on a 1 s page. With `friction.response_decay` it "
        "is the rate when the answer comes within `coefficients.response.reference_min` "
        "(5 min), not today's rate: to enter today's, use `rate_at`. Give `rate` or "
        "`rate_at`.",
    )
    rate_at: RateAt | None = Field(
        default=None,
        description="instead of `rate`, for a stage with `friction.response_decay`: the "
        "rate observed when answers take `response_min` minutes, e.g. `{rate: 0.55, "
        "response_min: 240}`; the rate within the reference time is implied by the "
        "response curve and shown by `funnelsim explain`.",
    )
    dwell_min: Minutes = Constant(value=0.0)
    resource: Name | None = None
    patience_min: Minutes | None = None
    response_delay_min: Minutes | None = None
    friction: Friction = Friction()
    captures_lead: bool = False
    nurture: LeadNurture | None = None
    contact: dict[Name, ContactPath] | None = Field(default=None, min_length=1)
    auto_reply: AutoReply | None = None

    @property
    def contact_options(self) -> list[str] | None:
        """The contact options offered: the paths' names, else ``friction.contact_options``."""
        return list(self.contact) if self.contact is not None else self.friction.contact_options


MIN_BETA_SHAPE = 0.05
"""The smallest alpha or beta of a Beta distribution the engine takes (the readout's
prior, ``analysis.conjugate``; below it a Beta's mass crowds into 0 and 1)."""
MAX_SBG_SHAPE = 500.0
"""The largest sbg alpha or beta: beyond alpha + beta ~ 1,000 the Gauss-Jacobi weights of
the churn quadrature overflow (``clv``)."""

BetaShape = Annotated[float, Field(ge=MIN_BETA_SHAPE, le=MAX_AMOUNT, allow_inf_nan=False)]
SbgShape = Annotated[float, Field(ge=MIN_BETA_SHAPE, le=MAX_SBG_SHAPE, allow_inf_nan=False)]


class ShiftedBetaGeometric(StrictModel):
    """Customers differ in churn: each one's monthly churn is drawn from Beta(alpha, beta)
    (Fader & Hardie 2007, "How to project customer retention", Journal of Interactive
    Marketing 21(1)). Mean churn alpha / (alpha + beta); the survivors of each month are
    ever more loyal, so aggregate retention rises with tenure."""

    alpha: SbgShape
    beta: SbgShape


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

    alpha: BetaShape = 1.0
    beta: BetaShape = 1.0


def _metric(value: str) -> str:
    if value in ("conversion", "clv_per_visitor") or re.fullmatch(r"reached:\w+", value):
        return value
    raise ValueError(f"must be conversion, clv_per_visitor or reached:STAGE, got {value!r}")


class Experiment(StrictModel):
    """How variants are compared: the traffic split of the simulated A/B test,
    replications of the whole scenario, and the Bayesian decision rule.

    ``metric`` is what the simulated test is judged on, and which variant counts as
    truly best: ``conversion`` (exact Beta-Binomial readout), ``clv_per_visitor``
    (conversion x order value x repeat purchase x churn posteriors) or
    ``reached:STAGE``, the share of visitors reaching a stage (a lead form judged on its
    leads: ``reached:demo_request``; exact Beta-Binomial readout). ``loss_threshold``
    and ``rope`` are relative to the control's value of that metric.
    ``rollout_days`` is how long the shipped variant then serves the traffic:
    ``funnelsim plan --objective profit`` prices a test over the test and that
    rollout (the population is ``traffic.days + rollout_days`` days of visitors).

    ``assumptions: uncertain`` (default) propagates every uncertain quantity of the
    scenario (``{uncertain: ...}``, see :mod:`funnelsim.uncertainty`) over ``worlds``
    quasi-random worlds and reports intervals over them at ``assumption_level``;
    ``fixed`` sets each one to its central value (a point-value run)."""

    metric: Annotated[str, AfterValidator(_metric)] = "conversion"
    split: Literal["equal"] | dict[Name, Probability] = "equal"
    replications: Annotated[int, Field(ge=1, le=100_000)] = 100
    control: Name | None = None
    prior: Prior = Prior()
    loss_threshold: Annotated[float, Field(gt=0, le=1)] = 0.005
    rope: Annotated[float, Field(gt=0, le=1)] = 0.01
    equivalence_probability: Probability = 0.95
    rollout_days: Annotated[int, Field(ge=0, le=36_500)] = 365
    assumptions: Literal["uncertain", "fixed"] = "uncertain"
    worlds: Annotated[int, Field(ge=8, le=65_536)] = 128
    assumption_level: Annotated[float, Field(gt=0, lt=1)] = 0.90


OverridePath = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]


class Question(StrictModel):
    """The question a scenario asks; ``funnelsim run`` answers it in its first lines.

    ``metric`` is the figure that answers it: the variant with the best expected value
    (the highest; for ``cac`` the lowest) is the answer. ``goal``, if given, is a value the
    metric should reach (at least; for ``cac`` at most): each variant meets it or not on
    its mean over replications (``ltv_to_cac: 10`` for "LTV:CAC above 10x")."""

    text: Annotated[str, Field(min_length=1)]
    metric: Literal[
        "conversion",
        "revenue_per_visitor",
        "clv_per_visitor",
        "clv_per_customer",
        "cac",
        "ltv_to_cac",
    ] = "conversion"
    goal: float | None = None


class Scenario(StrictModel):
    """A funnel, its economics and the variants to compare."""

    name: str
    description: str = ""
    question: Question | None = None
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
    posterior: str | None = Field(
        default=None,
        min_length=1,
        description="a NetCDF file of joint draws of the assumptions (the `posterior.nc` "
        "`funnelsim calibrate` writes; path relative to this file): each world takes one "
        "draw of every assumption it names, so their correlations are kept; each "
        "assumption's `{uncertain: ...}` spec stays its marginal (central value, "
        "`sensitivity`)",
    )

    _resolved: dict[str, Scenario] = PrivateAttr(default_factory=dict)
    _source: tuple[str, dict[Path_, int]] = PrivateAttr(default=("<scenario>", {}))
    _assumptions: dict[str, Assumption] = PrivateAttr(default_factory=dict)

    @field_validator("name", "description")
    @classmethod
    def _no_control_characters(cls, text: str, info: Any) -> str:
        found = control_character(text, allowed="\n\t" if info.field_name == "description" else "")
        if found is not None:
            raise ValueError(f"contains the control character {found}; write plain text")
        return text

    @field_validator("segments")
    @classmethod
    def _segments_sum_to_one(cls, segments: dict[str, Segment]) -> dict[str, Segment]:
        shares_sum_to_one({k: s.share for k, s in segments.items()}, "segment")
        return segments

    @property
    def control(self) -> str:
        """The variant every other is compared with."""
        if self.experiment.control is not None:
            return self.experiment.control
        return "control" if "control" in self.variants else next(iter(self.variants))

    @property
    def assumptions(self) -> list[Assumption]:
        """This scenario's uncertain quantities (a resolved variant's: those of the base
        it does not override, then its own), whatever ``experiment.assumptions`` says."""
        return list(self._assumptions.values())

    @property
    def variant_names(self) -> list[str]:
        """Variant names, control first."""
        return [self.control, *(v for v in self.variants if v != self.control)]

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def base_rate(self, stage: Stage) -> float:
        """The stage's continue rate before friction: ``rate``, or the rate within the
        reference response time that ``rate_at`` implies (:func:`friction.rate_at_reference`)."""
        if stage.rate_at is not None:
            observed = stage.rate_at
            return rate_at_reference(
                observed.rate, observed.response_min, self.coefficients.response
            )
        if stage.rate is None:
            raise ValueError(f"stage {stage.name!r} has neither rate nor rate_at")
        return stage.rate

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
        result = _validate(data, "<overrides>", {})
        result._assumptions = {
            key: a
            for key, a in self._assumptions.items()
            if not any(sets(path, a.field) for path in overrides)
        }
        result._source = self._source
        return result


# --------------------------------------------------------------------------- cross-checks


MAX_CELLS = 1_000_000
"""Stages x segments x channels x preferred payment and contact options: the engines
compile a few numbers for each (24 bytes and more), so beyond this a scenario was
generated by mistake (3,000 channels x 3,000 segments x 100 stages need ~22 GB)."""


def _cell_problem(scenario: Scenario) -> tuple[Path_, str] | None:
    """The segment x channel cells priced before anything is compiled."""
    options = [
        len({name for g in scenario.segments.values() for name in (getattr(g, kind) or {})})
        for kind in ("payment_preferences", "contact_preferences")
    ]
    counts = [
        len(scenario.stages),
        max(len(scenario.segments), 1),
        max(len(scenario.traffic.channels), 1),
        *(max(n, 1) for n in options),
    ]
    cells = math.prod(counts)
    if cells <= MAX_CELLS:
        return None
    shown = " x ".join(f"{n:,}" for n in counts)
    return ("segments",), (
        f"stages x segments x channels x payment and contact options = {shown} = "
        f"{cells:.3g} cells (~{cells * 24 / 1e9:.3g} GB to compile), more than {MAX_CELLS:,}"
    )


def _reference_problems(scenario: Scenario) -> Iterator[tuple[Path_, str]]:
    cells = _cell_problem(scenario)
    if cells is not None:
        yield cells
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
    yield from _rate_problems(scenario)
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
    reached = experiment.metric.removeprefix("reached:")
    if reached != experiment.metric and reached not in scenario.stage_names[1:]:
        yield (
            ("experiment", "metric"),
            f"reached: names a stage after the first, one of {', '.join(scenario.stage_names[1:])}"
            f"{_did_you_mean(reached, scenario.stage_names[1:])}",
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
                shares_sum_to_one(experiment.split, "split")
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


def _rate_problems(scenario: Scenario) -> Iterator[tuple[Path_, str]]:
    """Each stage states ``rate`` or ``rate_at`` (with response decay), and the implied
    rate is a probability."""
    for i, stage in enumerate(scenario.stages):
        if stage.rate is None and stage.rate_at is None:
            yield ("stages", i, "rate"), "required: the stage's continue rate (or rate_at)"
        elif stage.rate is not None and stage.rate_at is not None:
            yield ("stages", i, "rate_at"), "give rate or rate_at, not both"
        elif stage.rate_at is not None and not stage.friction.response_decay:
            yield (
                ("stages", i, "rate_at"),
                "rate_at states the rate at a response time: it needs "
                "friction.response_decay: true (otherwise write rate)",
            )
        elif stage.rate_at is not None and not 0.0 <= scenario.base_rate(stage) <= 1.0:
            yield (
                ("stages", i, "rate_at"),
                f"{stage.rate_at.rate:g} at {stage.rate_at.response_min:g} min implies a rate "
                f"of {scenario.base_rate(stage):.3g} within the reference time under the "
                "half-life model; use a lower rate or a longer half_life_min",
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
