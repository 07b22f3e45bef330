"""The funnel both engines simulate, compiled from a scenario into arrays.

A visitor with channel c and segment g continues past stage s when its
``continue`` uniform u falls below the stage's probability. Friction factors
and the base rate are laid out as nested thresholds, so one uniform decides
both *whether* and *why* a visitor is lost:

    u >= T_page_load                 -> lost to slow pages
    T_page_load > u >= T_form_fields -> lost to the form, ... and so on
    u >= friction x rate             -> lost at the stage's base rate
    u >= response(friction x rate)   -> the answer came too late

Friction losses happen on entering the stage (before any queue); the base
rate and the response delay decide after the visitor is served. Because the
thresholds only move, never reshuffle, a variant that removes friction keeps
every visitor who continued before (common random numbers couple monotonely).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from funnelsim import friction
from funnelsim.engine.draws import VisitorDraws
from funnelsim.engine.outcomes import FRICTION_REASONS, REASON_INDEX
from funnelsim.scenario import Constant, Distribution, ResponseCoefficients, Scenario, Stage

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
NO_LOSS = -1


@dataclass(frozen=True)
class CompiledFunnel:
    """A scenario variant as arrays: probabilities by stage x segment x channel."""

    scenario: Scenario
    stages: tuple[str, ...]
    segments: tuple[str, ...]
    channels: tuple[str, ...]
    segment_cdf: FloatArray
    channel_cdf: FloatArray
    base: FloatArray  # (S, G, C) continue probability after intent, before friction
    fixed_friction: FloatArray  # (S, G, C, 3) page_load, form_fields, login_wall factors
    payment: FloatArray  # (S, G, P) factor by the visitor's preferred payment method
    payment_cdf: FloatArray  # (G, P)
    contact: FloatArray  # (S, G, K)
    contact_cdf: FloatArray  # (G, K)
    resources: tuple[str, ...]
    stage_resource: tuple[int | None, ...]

    @property
    def has_shared_resources(self) -> bool:
        """True when a queue couples one visitor to another (SimPy needed)."""
        return any(r is not None for r in self.stage_resource)

    @property
    def response(self) -> ResponseCoefficients:
        return self.scenario.coefficients.response

    def stage(self, index: int) -> Stage:
        return self.scenario.stages[index]


def _cdf(shares: list[float]) -> FloatArray:
    cdf = np.cumsum(shares)
    cdf[-1] = 1.0
    return np.asarray(cdf)


def _option_tables(
    scenario: Scenario, kind: str
) -> tuple[FloatArray, FloatArray]:
    """Per stage and segment, the continue factor for each preferred option, and the
    per-segment preference CDF over the union of options."""
    coef = getattr(scenario.coefficients, kind)
    per_segment = [
        getattr(seg, f"{kind}_preferences") or coef.preferences
        for seg in scenario.segments.values()
    ]
    options = list(dict.fromkeys(name for prefs in per_segment for name in prefs))
    cdf = np.array([_cdf([prefs.get(o, 0.0) for o in options]) for prefs in per_segment])
    offered_key = "payment_methods" if kind == "payment" else "contact_options"
    factors = np.ones((len(scenario.stages), len(per_segment), len(options)))
    for s, stage in enumerate(scenario.stages):
        offered = getattr(stage.friction, offered_key)
        _, factor = friction.option_options(dict.fromkeys(options, 0.0), offered, coef)
        factors[s] = factor
    return factors, cdf


def compile_funnel(scenario: Scenario) -> CompiledFunnel:
    """Turn a (variant-resolved) scenario into the arrays the engines use."""
    coef = scenario.coefficients
    segments, channels = scenario.segments, scenario.traffic.channels
    intent = np.array([[g.intent * c.intent for c in channels.values()] for g in segments.values()])
    load_s = np.array([g.page_load_s for g in segments.values()])
    n_s = len(scenario.stages)
    base = np.empty((n_s, len(segments), len(channels)))
    fixed = np.ones((n_s, len(segments), len(channels), 3))
    for s, stage in enumerate(scenario.stages):
        base[s] = friction.scale_odds(stage.rate, intent)
        if stage.friction.page_load:
            fixed[s, ..., 0] = friction.page_load_factor(base[s], load_s[:, None], coef.page_load)
        fixed[s, ..., 1] = friction.form_fields_factor(stage.friction.form_fields, coef.form_fields)
        fixed[s, ..., 2] = friction.login_wall_factor(stage.friction.login_wall, coef.login_wall)
    payment, payment_cdf = _option_tables(scenario, "payment")
    contact, contact_cdf = _option_tables(scenario, "contact")
    resources = tuple(scenario.resources)
    return CompiledFunnel(
        scenario=scenario,
        stages=tuple(scenario.stage_names),
        segments=tuple(segments),
        channels=tuple(channels),
        segment_cdf=_cdf([g.share for g in segments.values()]),
        channel_cdf=_cdf([c.share for c in channels.values()]),
        base=base,
        fixed_friction=fixed,
        payment=payment,
        payment_cdf=payment_cdf,
        contact=contact,
        contact_cdf=contact_cdf,
        resources=resources,
        stage_resource=tuple(
            resources.index(st.resource) if st.resource is not None else None
            for st in scenario.stages
        ),
    )


def _categorical(cdf: FloatArray, u: FloatArray) -> IntArray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int64)


def _per_segment_categorical(cdfs: FloatArray, segment: IntArray, u: FloatArray) -> IntArray:
    choice = np.empty(len(u), np.int64)
    for g in range(len(cdfs)):
        mask = segment == g
        choice[mask] = _categorical(cdfs[g], u[mask])
    return choice


def stage_draws(dist: Distribution | None, u: FloatArray) -> FloatArray | None:
    """Transform uniforms through a distribution; None for no (or a zero) distribution."""
    if dist is None or (isinstance(dist, Constant) and dist.value == 0.0):
        return None
    return dist.ppf(u)


@dataclass(frozen=True)
class VisitorPlan:
    """What the engines need per visitor (rows) and stage (columns) for a block."""

    segment: IntArray
    channel: IntArray
    u_continue: FloatArray  # (n, S)
    friction_loss: NDArray[np.int8]  # (n, S): reason index, or NO_LOSS
    p_continue: FloatArray  # (n, S): friction x rate, before any response delay
    order_value: FloatArray  # (n,): value of the order if the visitor buys


def plan_visitors(
    funnel: CompiledFunnel, draws: VisitorDraws, start: int = 0, stop: int | None = None
) -> VisitorPlan:
    """Draw each visitor's channel, segment and preferences; lay out its thresholds."""
    stop = draws.n_visitors if stop is None else stop
    n_s = len(funnel.stages)
    segment = _categorical(funnel.segment_cdf, draws.uniforms("segment", start, stop))
    channel = _categorical(funnel.channel_cdf, draws.uniforms("channel", start, stop))
    pay = _per_segment_categorical(
        funnel.payment_cdf, segment, draws.uniforms("payment", start, stop))
    contact = _per_segment_categorical(
        funnel.contact_cdf, segment, draws.uniforms("contact", start, stop))
    factors = np.empty((stop - start, n_s, len(FRICTION_REASONS)))
    factors[..., :3] = funnel.fixed_friction[:, segment, channel].transpose(1, 0, 2)
    factors[..., 3] = funnel.payment[:, segment, pay].T
    factors[..., 4] = funnel.contact[:, segment, contact].T
    thresholds = np.cumprod(factors, axis=2)
    u = draws.uniforms("continue", start, stop, n_s)
    crossed = (u[..., None] >= thresholds).sum(axis=2)
    friction_loss = np.where(
        crossed > 0, len(FRICTION_REASONS) - crossed, NO_LOSS
    ).astype(np.int8)
    order_value = funnel.scenario.value.order_value.ppf(draws.uniforms("order", start, stop))
    return VisitorPlan(
        segment=segment,
        channel=channel,
        u_continue=u,
        friction_loss=friction_loss,
        p_continue=thresholds[..., -1] * funnel.base[:, segment, channel].T,
        order_value=order_value,
    )


def decide_after_service(
    u: FloatArray, p_continue: FloatArray, response_min: FloatArray | None,
    coef: ResponseCoefficients,
) -> NDArray[np.int8]:
    """Reason a served visitor is lost (``rate`` or ``response``), or NO_LOSS."""
    reason = np.where(u >= p_continue, REASON_INDEX["rate"], NO_LOSS)
    if response_min is not None:
        p = friction.response_continue(p_continue, response_min, coef)
        reason = np.where((reason == NO_LOSS) & (u >= p), REASON_INDEX["response"], reason)
    return reason.astype(np.int8)
