"""The calibration model: a scenario's uncertain assumptions updated by observed counts.

Parameters are the uncertain assumptions that enter the continue probabilities: the
stage rates ``stages.<name>.rate`` and the friction :data:`COEFFICIENTS` some stage
uses (their ``uncertain:`` specs, or the documented ranges of defaults, are the
priors), shared by every data set (the team's funnel, past experiments' arms). Every
other assumption keeps its spec (:func:`funnelsim.calibration.fit.not_fitted_reason`
says why); those inside the continue probabilities (intents, shares, load times) are
held at their central values while fitting.

A visitor of cell (segment ``g``, channel ``c``) continues from stage ``s`` with the
probability the engines use (:func:`continue_probabilities`, written once for NumPy
and PyTensor): the base rate with its odds scaled by the cell's intent (times the
share a lead-nurture programme makes sales-ready), its bounce multiplied by the
segment's page-load multiplier (capped at everybody) on stages with ``page_load``
friction, times the form-field and login-wall factors and the payment/contact factor
of the visitor's preferred options. Where answers go cold (``friction.response_decay``)
a lead answered after ``t`` minutes continues with
:func:`funnelsim.friction.response_continue` of that probability
(:func:`response_continue`); without the lead's reply time, with its average over
the stage's response delay (Gauss-Legendre over the delay's quantiles, as
:func:`funnelsim.friction.mean_response_continue`). Without a resource the engines
answer every lead, after its drawn delay: no patience, office hours or unanswered
leads come in, so a lead the log shows unanswered is one whose reply time is unknown.

An observed breakdown cell (a row of
:class:`~funnelsim.calibration.readers.StageCounts`) mixes the scenario cells it
covers, weighted by their shares and by who survived the earlier stages; of the
visitors reaching stage ``s`` a Binomial number continues with that mixed probability
(a Poisson-binomial is narrower than this Binomial, so the likelihood is slightly
conservative when one observed cell mixes several scenario cells).

With an event log, the uncertain parameters of a stage's ``dwell_min`` (exponential,
lognormal or gamma, :class:`StageDwell`) are fitted too: each timed visitor's minutes
to the next stage are a draw of that distribution. Its replies do the same for an
exponential or lognormal ``response_delay_min``, and the answered leads of a stage
where answers go cold (:class:`TimedLeads`, grouped by cell and reply time) give a
Binomial likelihood each for the stage's rate and the response slope (half-life),
in place of their part of the stage's counts.

Refused, with the stage named: stages waiting for a resource (a queue: their rate has
no closed form) and stages whose rate is given as ``rate_at``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim import clv, friction
from funnelsim.calibration.readers import StageCounts
from funnelsim.engine.model import CompiledFunnel, compile_funnel, option_names
from funnelsim.errors import FunnelsimError
from funnelsim.uncertainty import Assumption, UncertainQuantity

if TYPE_CHECKING:
    import pymc as pm

    from funnelsim.scenario import Scenario
    from funnelsim.scenario.schema import Distribution, Stage

FloatArray = npt.NDArray[np.float64]
BREAKDOWN_FIELDS = {"segment": "segments", "channel": "channels"}


class CalibrationError(FunnelsimError):
    """A scenario or data set that cannot be calibrated, in one line."""


class DataCalibrationError(CalibrationError):
    """A :class:`CalibrationError` whose message starts with the data file it is about."""

    located = True


COEFFICIENTS = (
    "coefficients.page_load.max_extra",
    "coefficients.form_fields.hazard_per_field",
    "coefficients.login_wall.required",
    "coefficients.login_wall.optional",
    "coefficients.payment.abandon_if_missing",
    "coefficients.contact.abandon_if_missing",
    "coefficients.response.slope",
    "coefficients.response.half_life_min",
)
"""The friction coefficients in the continue probabilities, in the order of their slots."""


@dataclass(frozen=True)
class FunnelTerms:
    """A funnel's continue probabilities as a function of its values (the stage rates,
    then the :data:`COEFFICIENTS`), and what is fixed.

    Attributes:
        stages, segments, channels: Their names.
        values: (S + K,) the stage rates then the coefficients, as the scenario sets them.
        intent: (G, C) odds ratio of each segment x channel cell.
        slowness: (S, G) the Hill part of the page-load bounce multiplier at the
            segment's load time (multiplier = 1 + max_extra x slowness), 0 on stages
            without ``page_load``.
        extra_fields: (S,) form fields beyond the free ones.
        login_required, login_optional: (S,) 1 where the stage has that login wall.
        payment_missing, contact_missing: (S, G) share of the segment whose preferred
            option the stage does not offer.
        shares: (G, C) share of visitors in each cell.
        assumptions: The scenario's uncertain assumptions (a variant's: its own too).
        ready: (S,) share of leads a nurture programme makes sales-ready (1 without).
        decays: (S,) 1 where answers go cold (``friction.response_decay``).
        delays: (S,) each stage's response delay (None without).
        delay_minutes: (S, Q) the response delay's quantiles at the Gauss-Legendre
            nodes of :func:`funnelsim.friction.quadrature` (0 without a delay: an answer
            within the reference time).
        response_model, reference_min: ``coefficients.response``'s curve and reference.
    """

    stages: tuple[str, ...]
    segments: tuple[str, ...]
    channels: tuple[str, ...]
    values: FloatArray
    intent: FloatArray
    slowness: FloatArray
    extra_fields: FloatArray
    login_required: FloatArray
    login_optional: FloatArray
    payment_missing: FloatArray
    contact_missing: FloatArray
    shares: FloatArray
    assumptions: tuple[Assumption, ...]
    ready: FloatArray
    decays: FloatArray
    delays: tuple[Distribution | None, ...]
    delay_minutes: FloatArray
    response_model: str
    reference_min: float

    @property
    def slots(self) -> dict[str, int]:
        """The field each value sets (``stages.cart.rate``, a coefficient's path)."""
        rates = (f"stages.{name}.rate" for name in self.stages)
        return {field: slot for slot, field in enumerate((*rates, *COEFFICIENTS))}

    def uses(self, slot: int) -> bool:
        """True when the value at ``slot`` changes some continue probability."""
        if slot < len(self.stages):
            return True
        decaying = bool(np.any(self.decays > 0))
        return (
            bool(np.any(self.slowness > 0)),
            bool(np.any(self.extra_fields > 0)),
            bool(np.any(self.login_required > 0)),
            bool(np.any(self.login_optional > 0)),
            bool(np.any(self.payment_missing > 0)),
            bool(np.any(self.contact_missing > 0)),
            decaying and self.response_model == "log_odds",
            decaying and self.response_model == "half_life",
        )[slot - len(self.stages)]

    def fitted(self) -> tuple[tuple[int, Assumption], ...]:
        """The slots the data inform, with the assumption that sets each: a stage rate,
        or a coefficient some stage uses (a variant's own assumption where it has one)."""
        slots = self.slots
        return tuple(
            (slots[a.field], a)
            for a in self.assumptions
            if a.field in slots and self.uses(slots[a.field])
        )


def response_continue(
    probability: Any, minutes: Any, values: Any, terms: FunnelTerms, xp: ModuleType = np
) -> Any:
    """:func:`funnelsim.friction.response_continue` in NumPy or ``pytensor.tensor``: the
    continue probability of a lead answered after ``minutes``, with the slope (or
    half-life) from the :data:`COEFFICIENTS` slots of ``values``."""
    n = len(terms.stages) + COEFFICIENTS.index("coefficients.response.slope")
    slope, half_life = values[n], values[n + 1]
    t = xp.maximum(minutes, terms.reference_min)
    if terms.response_model == "log_odds":
        k = (t / terms.reference_min) ** -slope
        return probability * k / (1.0 - probability + probability * k)
    return probability * 0.5 ** ((t - terms.reference_min) / half_life)


def option_points(values: Any, terms: FunnelTerms, xp: ModuleType = np) -> list[Any]:
    """The (S, G, C) continue probabilities before any late answer, for a visitor who
    finds both preferred options, misses the payment method, misses the contact option,
    misses both (weights :func:`option_weights`). Each friction as
    :mod:`funnelsim.friction` computes it: the bounce ``1 - rate`` (after intent and any
    nurture) times the page-load multiplier, capped at 1; the form's ``(1 - hazard)^extra
    fields``; one minus the login wall's hazard; one minus the abandonment of a missing
    option."""
    n = len(terms.stages)
    rate = xp.reshape(values[:n], (-1, 1, 1))
    max_extra, hazard, required, optional, payment, contact = (values[n + k] for k in range(6))
    scaled = rate * terms.intent / (1.0 - rate + rate * terms.intent)
    scaled = scaled * xp.reshape(terms.ready, (-1, 1, 1))
    bounce = 1.0 + max_extra * terms.slowness
    kept = 1.0 - xp.minimum(bounce[:, :, None] * (1.0 - scaled), 1.0)
    stage_factor = (1.0 - hazard) ** terms.extra_fields * (
        1.0 - required * terms.login_required - optional * terms.login_optional
    )
    found = kept * xp.reshape(stage_factor, (-1, 1, 1))
    both = found * (1.0 - payment) * (1.0 - contact)
    return [found, found * (1.0 - payment), found * (1.0 - contact), both]


def option_weights(terms: FunnelTerms) -> FloatArray:
    """(4, S, G, 1): the share of each segment at each of :func:`option_points`."""
    pay, con = terms.payment_missing, terms.contact_missing
    shares = [(1 - pay) * (1 - con), pay * (1 - con), (1 - pay) * con, pay * con]
    return np.stack(shares)[..., None]


def continue_probabilities(
    values: Any, terms: FunnelTerms, xp: ModuleType = np, delay_minutes: Any = None
) -> Any:
    """(S, G, C) continue probabilities from the (S + K,) values (rates, then the
    :data:`COEFFICIENTS`); ``xp`` is NumPy or ``pytensor.tensor`` (the same expression
    in both). The :func:`option_points` averaged over the segment's preferences; where
    answers go cold, each point's :func:`response_continue` averaged over the response
    delay (``delay_minutes``, (S, Q) quantiles; default ``terms.delay_minutes``) by
    Gauss-Legendre quadrature, as :func:`funnelsim.friction.mean_response_continue`."""
    _, weights = friction.quadrature()
    delays = terms.delay_minutes if delay_minutes is None else delay_minutes
    minutes = xp.reshape(delays, (len(terms.stages), 1, 1, -1))
    decays = terms.decays[:, None, None] > 0
    total: Any = 0.0
    for point, share in zip(option_points(values, terms, xp), option_weights(terms), strict=True):
        curve = response_continue(point[..., None], minutes, values, terms, xp)
        late = xp.minimum(xp.sum(curve * weights, axis=-1), point)
        total = total + share * xp.where(decays, late, point)
    return total


def lead_continue(
    values: Any, terms: FunnelTerms, stage: int, mix: Any, minutes: Any, xp: ModuleType = np
) -> Any:
    """(L,): the continue probability at ``stage`` of leads answered after ``minutes``
    (L,), each of a cell mix ``mix`` (L, G*C) of who reached the stage: the engine's
    :func:`response_continue` at each :func:`option_points` of each cell, averaged."""
    total: Any = 0.0
    for point, share in zip(option_points(values, terms, xp), option_weights(terms), strict=True):
        p = xp.reshape(point[stage], (1, -1))
        weight = np.broadcast_to(share[stage], terms.shares.shape).reshape(1, -1)
        total = total + weight * response_continue(p, minutes[:, None], values, terms, xp)
    return xp.sum(total * mix, axis=1)


def expected_continue(probabilities: Any, weights: Any, xp: ModuleType = np) -> Any:
    """(rows, S): for each observed cell (``weights``: its share of each scenario cell,
    shape (rows, G*C)), the share of visitors reaching stage ``s`` who continue."""
    flat = xp.reshape(probabilities, (probabilities.shape[0], -1))
    survived = xp.cumprod(flat, axis=0)
    before = xp.concatenate([xp.ones_like(flat[:1]), survived[:-1]], axis=0)
    return xp.dot(weights, survived.T) / xp.dot(weights, before.T)


def refuse_uncalibratable(scenario: Scenario) -> None:
    """Raise :class:`CalibrationError` naming the first stage without a closed-form rate
    (a queue) or whose rate is given as ``rate_at`` (implied through the response curve)."""
    for stage in scenario.stages:
        if stage.resource is not None:
            raise CalibrationError(
                f"stage {stage.name!r} waits for resource {stage.resource!r} (a queue): its "
                "rate has no closed form, and calibrate fits funnels without queues only"
            )
        if stage.rate_at is not None:
            raise CalibrationError(
                f"stage {stage.name!r} gives rate_at: calibrate fits the stage's rate "
                "within the reference response time; write it as rate (funnelsim explain "
                "shows the one rate_at implies)"
            )


def mean_cell_continue(funnel: CompiledFunnel) -> FloatArray:
    """(S, G, C): the engine's continue probabilities averaged over each segment's
    preferred payment and contact options."""
    n_g, n_c, n_p, n_k = funnel.cell_shape
    cells = funnel.cell_continue.reshape(len(funnel.stages), n_g, n_c, n_p, n_k)
    payment = np.diff(funnel.payment_cdf, axis=1, prepend=0.0)
    contact = np.diff(funnel.contact_cdf, axis=1, prepend=0.0)
    return np.asarray(np.einsum("sgcpk,gp,gk->sgc", cells, payment, contact))


def _missing(funnel: CompiledFunnel, kind: str) -> FloatArray:
    """(S, G): share of each segment whose preferred ``kind`` option a stage lacks."""
    preference = np.diff(getattr(funnel, f"{kind}_cdf"), axis=1, prepend=0.0)
    options = option_names(funnel.scenario, kind)
    missing = np.zeros((len(funnel.stages), len(preference)))
    for s, stage in enumerate(funnel.scenario.stages):
        offered = stage.friction.payment_methods if kind == "payment" else stage.contact_options
        if offered is not None:
            lacking = np.array([option not in offered for option in options])
            missing[s] = preference @ lacking
    return missing


def control_of(scenario: Scenario) -> Scenario:
    """The scenario as its control variant sees it."""
    return scenario.variant(scenario.variant_names[0])


def funnel_terms(scenario: Scenario) -> FunnelTerms:
    """The continue-probability terms of a resolved scenario (one variant, such as
    :func:`control_of`'s) and its uncertain assumptions."""
    refuse_uncalibratable(scenario)
    funnel = compile_funnel(scenario)
    coef = scenario.coefficients
    load_s = np.array([g.page_load_s for g in scenario.segments.values()])
    hill = friction.bounce_multiplier(load_s, coef.page_load.model_copy(update={"max_extra": 1.0}))
    stages = scenario.stages
    free = [
        coef.form_fields.free_fields if st.friction.free_fields is None else st.friction.free_fields
        for st in stages
    ]
    nodes, _ = friction.quadrature()
    delays = tuple(st.response_delay_min for st in stages)
    segment_shares = np.diff(funnel.segment_cdf, prepend=0.0)
    channel_shares = np.diff(funnel.channel_cdf, prepend=0.0)
    values = [scenario.base_rate(st) for st in stages] + [
        float(getattr(getattr(coef, path.split(".")[1]), path.split(".")[2]))
        for path in COEFFICIENTS
    ]
    return FunnelTerms(
        stages=funnel.stages,
        segments=funnel.segments,
        channels=funnel.channels,
        values=np.array(values, dtype=float),
        intent=np.array(
            [
                [g.intent * c.intent for c in scenario.traffic.channels.values()]
                for g in scenario.segments.values()
            ]
        ),
        slowness=np.array([(hill - 1.0) * st.friction.page_load for st in stages]),
        extra_fields=np.array(
            [
                max(0, (st.friction.form_fields or 0) - f) if st.friction.form_fields else 0
                for st, f in zip(stages, free, strict=True)
            ],
            dtype=float,
        ),
        login_required=np.array(
            [st.friction.login_wall == "required" for st in stages], dtype=float
        ),
        login_optional=np.array(
            [st.friction.login_wall == "optional" for st in stages], dtype=float
        ),
        payment_missing=_missing(funnel, "payment"),
        contact_missing=_missing(funnel, "contact"),
        shares=segment_shares[:, None] * channel_shares[None, :],
        assumptions=tuple(scenario.assumptions),
        ready=np.array(
            [
                1.0
                if st.nurture is None
                else clv.lead_ready_share(st.nurture.ready_per_message, st.nurture.max_messages)
                for st in stages
            ]
        ),
        decays=np.array([st.friction.response_decay for st in stages], dtype=float),
        delays=delays,
        delay_minutes=np.array(
            [np.zeros_like(nodes) if d is None else d.ppf(nodes) for d in delays]
        ),
        response_model=coef.response.model,
        reference_min=coef.response.reference_min,
    )


def cell_weights(terms: FunnelTerms, counts: StageCounts) -> FloatArray:
    """(rows, G*C): each observed cell's share of the scenario's cells (breakdown
    columns ``segment`` and ``channel`` select them; other breakdowns mix them all)."""
    names = {"segment": terms.segments, "channel": terms.channels}
    weights = np.empty((len(counts.cells), terms.shares.size))
    for row, cell in enumerate(counts.cells):
        mask = np.ones(terms.shares.shape, dtype=bool)
        for column, value in zip(counts.breakdown, cell, strict=True):
            if column not in names:
                continue
            if value not in names[column]:
                known = ", ".join(names[column])
                raise DataCalibrationError(
                    f"{counts.source}: {column} {value!r} is not in the scenario ({known})"
                )
            position = names[column].index(value)
            selector = (position, slice(None)) if column == "segment" else (slice(None), position)
            keep = np.zeros_like(mask)
            keep[selector] = True
            mask &= keep
        weights[row] = np.where(mask, terms.shares, 0.0).reshape(-1)
        if weights[row].sum() <= 0:
            raise DataCalibrationError(
                f"{counts.source}: cell {cell} has no visitors in the scenario"
            )
    return weights


def match_stages(terms: FunnelTerms, counts: StageCounts, by_position: bool) -> None:
    """Check that the data's stages are the scenario's (by name, or by position when
    the columns were named explicitly)."""
    if len(counts.stages) != len(terms.stages):
        raise DataCalibrationError(
            f"{counts.source}: {len(counts.stages)} stage columns before the converted one "
            f"({', '.join(counts.stages)}), but the scenario has {len(terms.stages)} stages "
            f"({', '.join(terms.stages)})"
        )
    if not by_position and counts.stages != terms.stages:
        raise DataCalibrationError(
            f"{counts.source}: stage columns {', '.join(counts.stages)} are not the scenario's "
            f"stages {', '.join(terms.stages)}; name the columns in funnel order with "
            "--stage-columns (the converted column last)"
        )


def prior(name: str, spec: UncertainQuantity, low: float, high: float) -> pm.Distribution:
    """The PyMC random variable of an uncertain spec, within the field's range."""
    import pymc as pm

    kind = spec.uncertain  # type: ignore[attr-defined]
    if kind == "uniform":
        return pm.Uniform(name, lower=spec.low, upper=spec.high)  # type: ignore[attr-defined]
    if kind == "normal":
        return pm.TruncatedNormal(
            name,
            mu=spec.mean,  # type: ignore[attr-defined]
            sigma=spec.sd,  # type: ignore[attr-defined]
            lower=low if math.isfinite(low) else None,
            upper=high if math.isfinite(high) else None,
        )
    if kind == "beta":
        alpha, beta = spec.shape  # type: ignore[attr-defined]
        return pm.Beta(name, alpha=alpha, beta=beta)
    if kind == "lognormal":
        sigma2 = math.log1p((spec.sd / spec.mean) ** 2)  # type: ignore[attr-defined]
        mu = math.log(spec.mean) - sigma2 / 2  # type: ignore[attr-defined]
        return pm.LogNormal(name, mu=mu, sigma=math.sqrt(sigma2))
    return pm.Triangular(name, lower=spec.low, c=spec.mode, upper=spec.high)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Observed:
    """One data set of a calibration: counts of a funnel described by ``terms``.

    Attributes:
        label: Its name in the model (``data``, or the experiment arm's).
        terms: The funnel the visitors went through (the control, or a past arm's).
        counts: What they did.
        scenario: That funnel as a resolved scenario (a variant's, or with an arm's
            overrides), which the engine simulates in simulation-based calibration.
    """

    label: str
    terms: FunnelTerms
    counts: StageCounts
    scenario: Scenario


DWELL_FAMILIES = ("exponential", "lognormal", "gamma")
"""Dwell distributions whose parameters an event log's times between stages fit."""
RESPONSE_DELAY_FAMILIES = ("exponential", "lognormal")
"""Response delays whose parameters an event log's reply times fit: those whose quantile
function PyTensor differentiates (the delay's average enters the unanswered leads'
continue probability; a gamma's inverse incomplete gamma has no gradient in its shape)."""


@dataclass(frozen=True)
class StageDwell:
    """A stage's dwell time (or response delay) and the times an event log observed.

    Attributes:
        stage: The stage's name.
        family: Its distribution, one of :data:`DWELL_FAMILIES`.
        parameters: ``mean`` (and ``sd``): the uncertain assumption that sets it, or
            its value.
        minutes: Each timed visitor's positive minutes from first reaching the stage to
            first reaching the next (the engines' dwell: no queue comes between), or
            each answered lead's minutes to the first reply.
        field: ``dwell_min`` or ``response_delay_min``.
    """

    stage: str
    family: str
    parameters: dict[str, Assumption | float]
    minutes: FloatArray
    field: str = "dwell_min"

    def fitted(self) -> tuple[Assumption, ...]:
        """The uncertain parameters the times inform."""
        return tuple(p for p in self.parameters.values() if isinstance(p, Assumption))


def stage_dwells(scenario: Scenario, counts: StageCounts) -> tuple[StageDwell, ...]:
    """The dwells of a resolved scenario that an event log's ``counts`` time, and the
    response delays its replies time: every stage whose ``dwell_min`` is of
    :data:`DWELL_FAMILIES` (``response_delay_min`` of :data:`RESPONSE_DELAY_FAMILIES`)
    with an uncertain parameter and at least one visitor (lead) timed (stages matched
    by position)."""
    found = []
    if counts.times is not None:
        for stage, minutes in zip(scenario.stages, counts.times.minutes, strict=False):
            found.append(_timed(scenario, stage, "dwell_min", minutes, DWELL_FAMILIES))
    for replies in counts.replies:
        position = counts.stages.index(replies.stage)
        if position >= len(scenario.stages):  # stages that do not match: refused later
            continue
        stage = scenario.stages[position]
        if stage.response_delay_min is not None:
            minutes = replies.minutes[np.isfinite(replies.minutes)]
            found.append(
                _timed(scenario, stage, "response_delay_min", minutes, RESPONSE_DELAY_FAMILIES)
            )
    return tuple(dwell for dwell in found if dwell is not None)


def _timed(
    scenario: Scenario, stage: Stage, field: str, minutes: FloatArray, families: Sequence[str]
) -> StageDwell | None:
    """The stage's ``field`` distribution timed by ``minutes``, if it has an uncertain
    parameter, is of ``families`` and some minutes are positive."""
    prefix = f"stages.{stage.name}.{field}."
    uncertain = {
        a.field.removeprefix(prefix): a for a in scenario.assumptions if a.field.startswith(prefix)
    }
    dist = getattr(stage, field)
    timed = minutes[minutes > 0]
    if not uncertain or dist.dist not in families or not len(timed):
        return None
    names = ("mean",) if dist.dist == "exponential" else ("mean", "sd")
    parameters = {name: uncertain.get(name, float(getattr(dist, name))) for name in names}
    return StageDwell(stage.name, dist.dist, parameters, timed, field)


@dataclass(frozen=True)
class TimedLeads:
    """The answered leads of a stage where answers go cold, grouped by observed cell and
    minutes to the reply (sufficient statistics of their Bernoulli outcomes).

    Attributes:
        stage, position: The stage's name and index.
        row: (groups,) the observed cell of each group.
        minutes: (groups,) minutes to the reply.
        leads, continued: (groups,) leads of each group and those who went on.
    """

    stage: str
    position: int
    row: npt.NDArray[np.int64]
    minutes: FloatArray
    leads: FloatArray
    continued: FloatArray


def timed_leads(
    scenario: Scenario, counts: StageCounts, terms: FunnelTerms
) -> tuple[TimedLeads, ...]:
    """The answered leads of every stage of a resolved scenario (its :func:`funnel_terms`
    ``terms``) with ``friction.response_decay`` that an event log's replies time, except
    on stages whose
    other friction loses leads before the answer (:func:`lost_before_reply`): there the
    engines answer only the leads that friction kept, so the stage's counts (through the
    delay average) inform its rate and slope instead."""
    found = []
    for replies in counts.replies:
        position = counts.stages.index(replies.stage)
        answered = np.isfinite(replies.minutes)
        if not scenario.stages[position].friction.response_decay or not answered.any():
            continue
        if lost_before_reply(terms, position):
            continue
        keys = np.column_stack([replies.cell[answered], replies.minutes[answered]])
        groups, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        went_on = replies.continued[answered].astype(float)
        found.append(
            TimedLeads(
                replies.stage,
                position,
                groups[:, 0].astype(np.int64),
                groups[:, 1],
                np.bincount(inverse, minlength=len(groups)).astype(float),
                np.bincount(inverse, weights=went_on, minlength=len(groups)),
            )
        )
    return tuple(found)


def lost_before_reply(terms: FunnelTerms, stage: int) -> bool:
    """Whether friction other than late answers (slow pages, form fields, a login wall, a
    missing payment or contact option) loses some leads at ``stage`` before the business
    answers: the engines answer only those it keeps, so an answered lead's chance to go on
    is the response curve divided by the share kept, a share no reply time informs."""
    return bool(
        np.any(terms.slowness[stage] > 0)
        or terms.extra_fields[stage] > 0
        or terms.login_required[stage] > 0
        or terms.login_optional[stage] > 0
        or np.any(terms.payment_missing[stage] > 0)
        or np.any(terms.contact_missing[stage] > 0)
    )


def fitted_assumptions(observed: Sequence[Observed]) -> dict[str, Assumption]:
    """Every assumption some data set informs, by key, in order of first use."""
    found: dict[str, Assumption] = {}
    for data in observed:
        for _, assumption in data.terms.fitted():
            found.setdefault(assumption.key, assumption)
    return found


def observed_data(
    scenario: Scenario,
    counts: StageCounts,
    by_position: bool,
    experiments: Sequence[Observed],
    dwells: Sequence[StageDwell] = (),
) -> list[Observed]:
    """The team's counts of the control (``data``) then the past experiments' arms.

    Raises:
        CalibrationError: stages that do not match, or no uncertain assumption to fit
            (in the continue probabilities, or among the timed ``dwells``).
    """
    control = control_of(scenario)
    terms = funnel_terms(control)
    match_stages(terms, counts, by_position)
    observed = [Observed("data", terms, counts, control), *experiments]
    if not fitted_assumptions(observed) and not dwells:
        raise CalibrationError(
            f"{scenario.name}: no uncertain assumption enters the continue probabilities; "
            "write the rates to calibrate as {uncertain: ...} (for example rate: "
            "{uncertain: beta, mean: 0.5, sd: 0.2})"
        )
    return observed


def calibration_model(
    observed: Sequence[Observed],
    dwells: Sequence[StageDwell] = (),
    leads: Sequence[TimedLeads] = (),
) -> pm.Model:
    """Priors from the uncertain assumptions the data inform (shared by every data set),
    Binomial transitions per observed cell of each data set (``continue`` and
    ``transitions`` for the first, suffixed ``[label]`` for the others; the counts are
    data containers ``reached`` and ``continued``, so one compiled model serves other
    counts of the same shape), each timed dwell's (response delay's) minutes
    (``dwell_min[stage]``, ``response_delay_min[stage]``) drawn from its distribution,
    and the first data set's answered ``leads`` (``answered[stage]``) continuing with the
    probability of their reply time, out of the stage's transitions."""
    import pymc as pm
    import pytensor.tensor as pt

    coords: dict[str, list[str]] = {"stage": list(observed[0].terms.stages)}
    for data in observed:
        coords[_cell_dim(data.label)] = [" / ".join(c) or "all" for c in data.counts.cells]
    with pm.Model(coords=coords) as model:
        parameters = {
            key: prior(key, a.spec, a.bounds.low, a.bounds.high)
            for key, a in {**fitted_assumptions(observed), **fitted_dwells(dwells)}.items()
        }
        for dwell in dwells:
            _dwell_likelihood(dwell, parameters)
        for data in observed:
            values: list[Any] = [pt.as_tensor_variable(v) for v in data.terms.values]
            for slot, assumption in data.terms.fitted():
                values[slot] = parameters[assumption.key]
            stacked = pt.stack(values)
            delays = _delay_minutes(data.terms, observed[0].terms, dwells, parameters)
            probabilities = continue_probabilities(stacked, data.terms, pt, delays)
            weights = cell_weights(data.terms, data.counts)
            trials, successes = data.counts.transitions()
            if data.label == "data":
                trials, successes = _untimed(trials, successes, leads)
                for group in leads:
                    _leads_likelihood(group, stacked, data.terms, probabilities, weights)
            suffix = "" if data.label == "data" else f"[{data.label}]"
            dims = (_cell_dim(data.label), "stage")
            expected = pm.Deterministic(
                f"continue{suffix}", expected_continue(probabilities, weights, pt), dims=dims
            )
            pm.Binomial(
                f"transitions{suffix}",
                n=pm.Data(f"reached{suffix}", trials, dims=dims),
                p=pt.clip(expected, 0.0, 1.0),
                observed=pm.Data(f"continued{suffix}", successes, dims=dims),
                dims=dims,
            )
    return model


def _untimed(
    trials: FloatArray, successes: FloatArray, leads: Sequence[TimedLeads]
) -> tuple[FloatArray, FloatArray]:
    """The transitions without the answered leads, whom their reply times explain."""
    trials, successes = trials.copy(), successes.copy()
    for group in leads:
        np.subtract.at(trials[:, group.position], group.row, group.leads)
        np.subtract.at(successes[:, group.position], group.row, group.continued)
    return trials, successes


def _leads_likelihood(
    group: TimedLeads, values: Any, terms: FunnelTerms, probabilities: Any, weights: FloatArray
) -> None:
    """Binomial continues of the answered leads grouped by cell and reply minutes, each
    group a mix of the scenario cells by who reached the stage."""
    import pymc as pm
    import pytensor.tensor as pt

    flat = pt.reshape(probabilities, (probabilities.shape[0], -1))
    before = pt.prod(flat[: group.position], axis=0)
    reaching = weights * before[None, :]
    mix = (reaching / pt.sum(reaching, axis=1, keepdims=True))[group.row]
    p = lead_continue(values, terms, group.position, mix, pt.as_tensor_variable(group.minutes), pt)
    pm.Binomial(
        f"answered[{group.stage}]",
        n=group.leads,
        p=pt.clip(p, 0.0, 1.0),
        observed=group.continued,
    )


def delay_quantiles(family: str, mean: Any, sd: Any, u: FloatArray) -> Any:
    """The PyTensor quantiles at ``u`` of an exponential or lognormal delay with this
    mean (and sd), as the scenario's distributions' ``ppf`` computes them."""
    import pytensor.tensor as pt

    mean = pt.cast(mean, "float64")  # a Python float would be a float32 constant
    if family == "exponential":
        return -mean * pt.log1p(-u)
    sd = pt.cast(sd, "float64")
    sigma2 = pt.log1p((sd / mean) ** 2)
    mu = pt.log(mean) - sigma2 / 2
    return pt.exp(mu + pt.sqrt(sigma2) * math.sqrt(2.0) * pt.erfinv(2.0 * u - 1.0))


def _delay_minutes(
    terms: FunnelTerms,
    control: FunnelTerms,
    dwells: Sequence[StageDwell],
    parameters: dict[str, Any],
) -> Any:
    """(S, Q) response delay quantiles: symbolic for a delay whose parameters the reply
    times fit (where this funnel's delay is the control's), else the fixed ones."""
    import pytensor.tensor as pt

    nodes, _ = friction.quadrature()
    rows: list[Any] = list(terms.delay_minutes)
    fitted = {d.stage: d for d in dwells if d.field == "response_delay_min"}
    for s, name in enumerate(terms.stages):
        dwell = fitted.get(name)
        if dwell is None or terms.delays[s] != control.delays[s]:
            continue
        value = {
            key: parameters[p.key] if isinstance(p, Assumption) else p
            for key, p in dwell.parameters.items()
        }
        rows[s] = delay_quantiles(dwell.family, value["mean"], value.get("sd"), nodes)
    return pt.stack([pt.as_tensor_variable(row) for row in rows])


def _cell_dim(label: str) -> str:
    return "cell" if label == "data" else f"cell[{label}]"


def fitted_dwells(dwells: Sequence[StageDwell]) -> dict[str, Assumption]:
    """Every uncertain dwell parameter the times inform, by key."""
    return {a.key: a for dwell in dwells for a in dwell.fitted()}


def _dwell_likelihood(dwell: StageDwell, parameters: dict[str, Any]) -> None:
    """The timed minutes of ``dwell`` as draws of its family, by mean (and sd) as the
    engines read them (a lognormal's mu and sigma from its mean and sd, as
    :class:`~funnelsim.scenario.schema.LogNormal` computes them)."""
    import pymc as pm
    import pytensor.tensor as pt

    value = {
        name: parameters[p.key] if isinstance(p, Assumption) else p
        for name, p in dwell.parameters.items()
    }
    name = f"{dwell.field}[{dwell.stage}]"
    if dwell.family == "exponential":
        pm.Exponential(name, scale=value["mean"], observed=dwell.minutes)
    elif dwell.family == "gamma":
        pm.Gamma(name, mu=value["mean"], sigma=value["sd"], observed=dwell.minutes)
    else:
        sigma2 = pt.log1p((value["sd"] / value["mean"]) ** 2)
        mu = pt.log(value["mean"]) - sigma2 / 2
        pm.LogNormal(name, mu=mu, sigma=pt.sqrt(sigma2), observed=dwell.minutes)
