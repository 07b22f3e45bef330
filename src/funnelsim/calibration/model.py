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
and PyTensor): the base rate with its odds scaled by the cell's intent, its bounce
multiplied by the segment's page-load multiplier (capped at everybody) on stages with
``page_load`` friction, times the form-field and login-wall factors and the expected
payment/contact factor over the segment's preferences. An observed breakdown cell (a
row of :class:`~funnelsim.calibration.readers.StageCounts`) mixes the scenario cells it
covers, weighted by their shares and by who survived the earlier stages; of the
visitors reaching stage ``s`` a Binomial number continues with that mixed probability
(a Poisson-binomial is narrower than this Binomial, so the likelihood is slightly
conservative when one observed cell mixes several scenario cells).

With an event log, the uncertain parameters of a stage's ``dwell_min`` (exponential,
lognormal or gamma, :class:`StageDwell`) are fitted too: each timed visitor's minutes
to the next stage are a draw of that distribution.

Refused, with the stage named: stages waiting for a resource (a queue: their rate has
no closed form), stages with a response delay and lead-nurture stages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim import friction
from funnelsim.calibration.readers import StageCounts
from funnelsim.engine.model import CompiledFunnel, compile_funnel, option_names
from funnelsim.errors import FunnelsimError
from funnelsim.uncertainty import Assumption, UncertainQuantity

if TYPE_CHECKING:
    import pymc as pm

    from funnelsim.scenario import Scenario

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

    @property
    def slots(self) -> dict[str, int]:
        """The field each value sets (``stages.cart.rate``, a coefficient's path)."""
        rates = (f"stages.{name}.rate" for name in self.stages)
        return {field: slot for slot, field in enumerate((*rates, *COEFFICIENTS))}

    def uses(self, slot: int) -> bool:
        """True when the value at ``slot`` changes some continue probability."""
        if slot < len(self.stages):
            return True
        used = (
            self.slowness,
            self.extra_fields,
            self.login_required,
            self.login_optional,
            self.payment_missing,
            self.contact_missing,
        )[slot - len(self.stages)]
        return bool(np.any(used > 0))

    def fitted(self) -> tuple[tuple[int, Assumption], ...]:
        """The slots the data inform, with the assumption that sets each: a stage rate,
        or a coefficient some stage uses (a variant's own assumption where it has one)."""
        slots = self.slots
        return tuple(
            (slots[a.field], a)
            for a in self.assumptions
            if a.field in slots and self.uses(slots[a.field])
        )


def continue_probabilities(values: Any, terms: FunnelTerms, xp: ModuleType = np) -> Any:
    """(S, G, C) continue probabilities from the (S + K,) values (rates, then the
    :data:`COEFFICIENTS`); ``xp`` is NumPy or ``pytensor.tensor`` (the same expression
    in both). Each friction as :mod:`funnelsim.friction` computes it: the bounce
    ``1 - rate`` (after intent) times the page-load multiplier, capped at 1; the form's
    ``(1 - hazard)^extra fields``; one minus the login wall's hazard; one minus the
    abandonment times the share missing their payment method and contact option."""
    n = len(terms.stages)
    rate = xp.reshape(values[:n], (-1, 1, 1))
    max_extra, hazard, required, optional, payment, contact = (
        values[n + k] for k in range(len(COEFFICIENTS))
    )
    scaled = rate * terms.intent / (1.0 - rate + rate * terms.intent)
    bounce = 1.0 + max_extra * terms.slowness
    kept = 1.0 - xp.minimum(bounce[:, :, None] * (1.0 - scaled), 1.0)
    stage_factor = (1.0 - hazard) ** terms.extra_fields * (
        1.0 - required * terms.login_required - optional * terms.login_optional
    )
    options = (1.0 - payment * terms.payment_missing) * (1.0 - contact * terms.contact_missing)
    return kept * xp.reshape(stage_factor, (-1, 1, 1)) * options[:, :, None]


def expected_continue(probabilities: Any, weights: Any, xp: ModuleType = np) -> Any:
    """(rows, S): for each observed cell (``weights``: its share of each scenario cell,
    shape (rows, G*C)), the share of visitors reaching stage ``s`` who continue."""
    flat = xp.reshape(probabilities, (probabilities.shape[0], -1))
    survived = xp.cumprod(flat, axis=0)
    before = xp.concatenate([xp.ones_like(flat[:1]), survived[:-1]], axis=0)
    return xp.dot(weights, survived.T) / xp.dot(weights, before.T)


def refuse_uncalibratable(scenario: Scenario) -> None:
    """Raise :class:`CalibrationError` naming the first stage without a closed-form rate."""
    for stage in scenario.stages:
        if stage.resource is not None:
            raise CalibrationError(
                f"stage {stage.name!r} waits for resource {stage.resource!r} (a queue): its "
                "rate has no closed form, and calibrate fits funnels without queues only"
            )
        if stage.response_delay_min is not None or stage.nurture is not None:
            what = "a response delay" if stage.nurture is None else "lead nurture"
            raise CalibrationError(
                f"stage {stage.name!r} has {what}: calibrate does not model it yet; "
                "calibrate a copy of the scenario without it"
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


@dataclass(frozen=True)
class StageDwell:
    """A stage's dwell time and the times an event log observed for it.

    Attributes:
        stage: The stage's name.
        family: Its distribution, one of :data:`DWELL_FAMILIES`.
        parameters: ``mean`` (and ``sd``): the uncertain assumption that sets it, or
            its value.
        minutes: Each timed visitor's positive minutes from first reaching the stage to
            first reaching the next (the engines' dwell: no queue comes between).
    """

    stage: str
    family: str
    parameters: dict[str, Assumption | float]
    minutes: FloatArray

    def fitted(self) -> tuple[Assumption, ...]:
        """The uncertain parameters the times inform."""
        return tuple(p for p in self.parameters.values() if isinstance(p, Assumption))


def stage_dwells(scenario: Scenario, counts: StageCounts) -> tuple[StageDwell, ...]:
    """The dwells of a resolved scenario that an event log's ``counts`` time: every stage
    whose ``dwell_min`` is of :data:`DWELL_FAMILIES` with an uncertain parameter and at
    least one visitor timed (stages matched by position)."""
    if counts.times is None:
        return ()
    found = []
    for stage, minutes in zip(scenario.stages, counts.times.minutes, strict=False):
        prefix = f"stages.{stage.name}.dwell_min."
        uncertain = {
            a.field.removeprefix(prefix): a
            for a in scenario.assumptions
            if a.field.startswith(prefix)
        }
        dwell = stage.dwell_min
        timed = minutes[minutes > 0]
        if not uncertain or dwell.dist not in DWELL_FAMILIES or not len(timed):
            continue
        names = ("mean",) if dwell.dist == "exponential" else ("mean", "sd")
        parameters = {name: uncertain.get(name, float(getattr(dwell, name))) for name in names}
        found.append(StageDwell(stage.name, dwell.dist, parameters, timed))
    return tuple(found)


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


def calibration_model(observed: Sequence[Observed], dwells: Sequence[StageDwell] = ()) -> pm.Model:
    """Priors from the uncertain assumptions the data inform (shared by every data set),
    Binomial transitions per observed cell of each data set (``continue`` and
    ``transitions`` for the first, suffixed ``[label]`` for the others; the counts are
    data containers ``reached`` and ``continued``, so one compiled model serves other
    counts of the same shape), and each timed dwell's minutes (``dwell_min[stage]``)
    drawn from its distribution."""
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
            probabilities = continue_probabilities(pt.stack(values), data.terms, pt)
            weights = cell_weights(data.terms, data.counts)
            trials, successes = data.counts.transitions()
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
    name = f"dwell_min[{dwell.stage}]"
    if dwell.family == "exponential":
        pm.Exponential(name, scale=value["mean"], observed=dwell.minutes)
    elif dwell.family == "gamma":
        pm.Gamma(name, mu=value["mean"], sigma=value["sd"], observed=dwell.minutes)
    else:
        sigma2 = pt.log1p((value["sd"] / value["mean"]) ** 2)
        mu = pt.log(value["mean"]) - sigma2 / 2
        pm.LogNormal(name, mu=mu, sigma=pt.sqrt(sigma2), observed=dwell.minutes)
