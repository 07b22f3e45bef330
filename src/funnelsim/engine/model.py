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

The thresholds depend on a visitor only through their *cell*: segment x
channel x preferred payment method x preferred contact option. A funnel
therefore stores one row of thresholds per cell and stage, and a visitor's
thresholds are a look-up of their cell's row, however many visitors there are.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import clv, friction
from funnelsim.engine.draws import SharedDraws
from funnelsim.engine.outcomes import Outcome
from funnelsim.friction import FRICTION_REASONS, FrictionFactors, ResponseCoefficients
from funnelsim.scenario.messages import ScenarioError
from funnelsim.scenario.schema import Constant, Distribution, Scenario, Stage

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
NO_LOSS = -1


class StagePlan(NamedTuple):
    """One stage of a compiled funnel as the NumPy engine plays it."""

    key: Hashable  # what decides the stage for the visitors reaching it
    thresholds: FloatArray  # (cells, frictions): the nested friction thresholds
    active: IntArray  # the frictions that lower some cell's threshold


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
    friction: FrictionFactors  # each friction's factor, broadcasting over (S, G, C, P, K)
    payment_cdf: FloatArray  # (G, P) preferred payment method
    contact_cdf: FloatArray  # (G, K) preferred contact option
    resources: tuple[str, ...]
    stage_resource: tuple[int | None, ...]

    @property
    def has_shared_resources(self) -> bool:
        """True when a queue couples one visitor to another (SimPy needed)."""
        return any(r is not None for r in self.stage_resource)

    @property
    def couples_visitors(self) -> bool:
        """True when one visitor's fate depends on others': queues, or customers
        referring new visitors (only the SimPy engine can simulate either)."""
        return self.has_shared_resources or self.scenario.value.referral.per_customer_per_month > 0

    @property
    def response(self) -> ResponseCoefficients:
        return self.scenario.coefficients.response

    def stage(self, index: int) -> Stage:
        return self.scenario.stages[index]

    @property
    def cell_shape(self) -> tuple[int, int, int, int]:
        """(segments, channels, payment options, contact options): the cells of visitors."""
        _, n_g, n_c = self.base.shape
        return n_g, n_c, self.payment_cdf.shape[1], self.contact_cdf.shape[1]

    @cached_property
    def cell_thresholds(self) -> FloatArray:
        """(S, cells, friction reasons): the nested friction thresholds of each cell."""
        shape = (len(self.stages), *self.cell_shape)
        thresholds = np.empty((*shape, len(FRICTION_REASONS)))
        running: FloatArray | float = 1.0
        for i, factor in enumerate(self.friction):  # the running product, broadcast
            running = running * factor
            thresholds[..., i] = running
        return thresholds.reshape(shape[0], -1, len(FRICTION_REASONS))

    @cached_property
    def cell_continue(self) -> FloatArray:
        """(S, cells): friction x rate, the continue probability before any response delay."""
        base = np.broadcast_to(self.base[:, :, :, None, None], (len(self.stages), *self.cell_shape))
        return self.cell_thresholds[..., -1] * base.reshape(len(self.stages), -1)

    @cached_property
    def stage_plans(self) -> tuple[StagePlan, ...]:
        """Each stage's key (its thresholds and rates by cell and, where answers go cold,
        the response delay and its coefficients) and its active frictions: a friction
        whose factor is 1 for every cell stops nobody, so it is not compared. Prepared
        once per compiled funnel, for every block of every replication it plays."""
        plans = []
        for s, stage in enumerate(self.scenario.stages):
            thresholds = self.cell_thresholds[s]
            previous = np.concatenate([np.ones((len(thresholds), 1)), thresholds[:, :-1]], axis=1)
            decay = (
                (stage.response_delay_min, self.response) if stage.friction.response_decay else None
            )
            key = (thresholds.tobytes(), self.cell_continue[s].tobytes(), decay)
            active = np.flatnonzero((thresholds != previous).any(axis=0))
            plans.append(StagePlan(key, thresholds, active))
        return tuple(plans)

    @cached_property
    def order_value_dists(self) -> tuple[tuple[Distribution, ...], ...]:
        """Per segment and channel, the order-value distribution of its buyers: the
        channel's own, else the segment's, else ``value.order_value`` (clv.customer_terms)."""
        return tuple(
            tuple(clv.customer_terms(self.scenario, g, c)[1] for c in self.channels)
            for g in self.segments
        )

    @cached_property
    def cell_probabilities(self) -> FloatArray:
        """(cells,): the share of visitors in each cell."""
        cdfs = (self.segment_cdf, self.channel_cdf, self.payment_cdf, self.contact_cdf)
        return _cell_shares(*(_frozen(cdf) for cdf in cdfs))


Frozen = tuple[float, ...] | tuple[tuple[float, ...], ...]


def _frozen(array: FloatArray) -> Frozen:
    """A small array as nested tuples: a key of the memoised tables below."""
    return tuple(array.tolist()) if array.ndim == 1 else tuple(map(tuple, array.tolist()))


@lru_cache(maxsize=256)
def _cell_shares(
    segment_cdf: Frozen, channel_cdf: Frozen, payment_cdf: Frozen, contact_cdf: Frozen
) -> FloatArray:
    """(cells,): the joint share of each cell from the four CDFs (memoised: funnels of
    many worlds of one scenario share them; the array is read-only)."""
    segment = np.diff(segment_cdf, prepend=0.0)
    channel = np.diff(channel_cdf, prepend=0.0)
    payment = np.diff(payment_cdf, axis=1, prepend=0.0)
    contact = np.diff(contact_cdf, axis=1, prepend=0.0)
    joint = (
        segment[:, None, None, None]
        * channel[None, :, None, None]
        * payment[:, None, :, None]
        * contact[:, None, None, :]
    ).reshape(-1)
    joint.setflags(write=False)
    return joint


class EngineRefusedError(ScenarioError, ValueError):
    """An engine asked to simulate what only SimPy can (located at the field that needs it)."""


def _coupling_field(funnel: CompiledFunnel) -> tuple[str | int, ...]:
    """The first field that couples visitors: a stage's resource, else the referral rate."""
    for s, r in enumerate(funnel.stage_resource):
        if r is not None:
            return ("stages", s, "resource")
    return ("value", "referral", "per_customer_per_month")


def refuse_coupled_visitors(funnels: Sequence[CompiledFunnel], engine: str) -> None:
    """Raise :class:`EngineRefusedError` when ``engine`` (not SimPy) is asked to simulate coupled
    visitors: shared resources with their schedules and priorities, or referrals."""
    for funnel in funnels:
        if funnel.couples_visitors:
            error = funnel.scenario.error_at(
                _coupling_field(funnel),
                f"the {engine} engine cannot simulate shared resources (queues, office "
                "hours, priorities) or referred visitors (value.referral); use "
                "--engine simpy or auto",
            )
            raise EngineRefusedError(error.file, error.line, error.field, error.message)


def _cdf(shares: list[float]) -> FloatArray:
    cdf = np.cumsum(shares)
    cdf[-1] = 1.0
    return np.asarray(cdf)


def _preferences(scenario: Scenario, kind: str) -> list[dict[str, float]]:
    coef = getattr(scenario.coefficients, kind)
    return [
        getattr(seg, f"{kind}_preferences") or coef.preferences
        for seg in scenario.segments.values()
    ]


def option_names(scenario: Scenario, kind: str) -> list[str]:
    """The options (payment methods or contact options) any segment prefers, in the order
    of a visitor cell's option index."""
    return list(dict.fromkeys(name for prefs in _preferences(scenario, kind) for name in prefs))


@lru_cache(maxsize=256)
def _preference_cdf(
    per_segment: tuple[tuple[tuple[str, float], ...], ...],
) -> tuple[tuple[str, ...], FloatArray]:
    """The options any segment prefers, and each segment's preference CDF over them
    (G, options), from each segment's (option, share) pairs (memoised; read-only)."""
    options = tuple(dict.fromkeys(name for prefs in per_segment for name, _ in prefs))
    cdf = np.array([_cdf([dict(prefs).get(o, 0.0) for o in options]) for prefs in per_segment])
    cdf.setflags(write=False)
    return options, cdf


def _option_tables(scenario: Scenario, kind: str) -> tuple[FloatArray, FloatArray]:
    """Per stage, the continue factor for each preferred option (S, options), and the
    per-segment preference CDF over the union of options (G, options)."""
    coef = getattr(scenario.coefficients, kind)
    per_segment = tuple(tuple(prefs.items()) for prefs in _preferences(scenario, kind))
    options, cdf = _preference_cdf(per_segment)
    factors = np.ones((len(scenario.stages), len(options)))
    for s, stage in enumerate(scenario.stages):
        offered = stage.friction.payment_methods if kind == "payment" else stage.contact_options
        _, factors[s] = friction.option_options(dict.fromkeys(options, 0.0), offered, coef)
    return factors, cdf


def compile_funnel(scenario: Scenario) -> CompiledFunnel:
    """Turn a (variant-resolved) scenario into the arrays the engines use."""
    coef = scenario.coefficients
    segments, channels = scenario.segments, scenario.traffic.channels
    intent = np.array([[g.intent * c.intent for c in channels.values()] for g in segments.values()])
    load_s = np.array([g.page_load_s for g in segments.values()])
    n_s = len(scenario.stages)
    base = np.empty((n_s, len(segments), len(channels)))
    page_load = np.ones((n_s, len(segments), len(channels)))
    form_fields, login_wall = np.ones(n_s), np.ones(n_s)
    for s, stage in enumerate(scenario.stages):
        base[s] = friction.scale_odds(scenario.base_rate(stage), intent)
        if stage.nurture is not None:  # only leads that become sales-ready go on
            base[s] *= clv.lead_ready_share(
                stage.nurture.ready_per_message, stage.nurture.max_messages
            )
        if stage.friction.page_load:
            page_load[s] = friction.page_load_factor(base[s], load_s[:, None], coef.page_load)
        form_fields[s] = friction.form_fields_factor(
            stage.friction.form_fields, coef.form_fields, stage.friction.free_fields
        )
        login_wall[s] = friction.login_wall_factor(stage.friction.login_wall, coef.login_wall)
    payment, payment_cdf = _option_tables(scenario, "payment")
    contact, contact_cdf = _option_tables(scenario, "contact")
    stage_only = (n_s, 1, 1, 1, 1)
    resources = tuple(scenario.resources)
    return CompiledFunnel(
        scenario=scenario,
        stages=tuple(scenario.stage_names),
        segments=tuple(segments),
        channels=tuple(channels),
        segment_cdf=_cdf([g.share for g in segments.values()]),
        channel_cdf=_cdf([c.share for c in channels.values()]),
        base=base,
        friction=friction.FrictionFactors(
            page_load=page_load[..., None, None],
            form_fields=form_fields.reshape(stage_only),
            login_wall=login_wall.reshape(stage_only),
            payment=payment[:, None, None, :, None],
            contact=contact[:, None, None, None, :],
        ),
        payment_cdf=payment_cdf,
        contact_cdf=contact_cdf,
        resources=resources,
        stage_resource=tuple(
            resources.index(st.resource) if st.resource is not None else None
            for st in scenario.stages
        ),
    )


def count_below(edges: FloatArray, u: FloatArray) -> IntArray:
    """How many ``edges`` are <= each uniform (``searchsorted(side="right")``); for the
    few edges of shares, one comparison per edge, counted in bytes, is several times
    faster."""
    if len(edges) > 16:
        return np.searchsorted(edges, u, side="right").astype(np.int64)
    count = np.zeros(u.shape, np.uint8)
    for edge in edges:
        count += u >= edge
    return count.astype(np.int64)


def _categorical(cdf: FloatArray, u: FloatArray) -> IntArray:
    return count_below(cdf[:-1], u)  # the last edge is 1.0: no uniform reaches it


def _per_segment_categorical(cdfs: FloatArray, segment: IntArray, u: FloatArray) -> IntArray:
    if len(cdfs) == 1 or (cdfs == cdfs[0]).all():
        return _categorical(cdfs[0], u)
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


class VisitorCells(NamedTuple):
    """Each visitor's segment, channel and cell (index into the funnel's cell tables)."""

    segment: IntArray
    channel: IntArray
    cell: IntArray


def visitor_cells(funnel: CompiledFunnel, shared: SharedDraws) -> VisitorCells:
    """Draw each visitor's segment, channel and preferences (shared by variants that agree)."""
    segment_cdf, channel_cdf = funnel.segment_cdf, funnel.channel_cdf
    payment_cdf, contact_cdf = funnel.payment_cdf, funnel.contact_cdf

    def draw() -> VisitorCells:
        segment = shared.derived(
            ("segment", segment_cdf.tobytes()),
            lambda: _categorical(segment_cdf, shared.uniforms("segment")),
        )
        channel = shared.derived(
            ("channel", channel_cdf.tobytes()),
            lambda: _categorical(channel_cdf, shared.uniforms("channel")),
        )
        pay = _per_segment_categorical(payment_cdf, segment, shared.uniforms("payment"))
        contact = _per_segment_categorical(contact_cdf, segment, shared.uniforms("contact"))
        _, n_c, n_p, n_k = funnel.cell_shape
        return VisitorCells(
            segment, channel, ((segment * n_c + channel) * n_p + pay) * n_k + contact
        )

    return shared.derived(("cells", *cells_key(funnel)), draw)


def cells_key(funnel: CompiledFunnel) -> tuple[bytes, ...]:
    """What decides the visitors' cells: the segment, channel and preference CDFs."""
    cdfs = (funnel.segment_cdf, funnel.channel_cdf, funnel.payment_cdf, funnel.contact_cdf)
    return tuple(cdf.tobytes() for cdf in cdfs)


def stage_values(
    shared: SharedDraws, stream: str, dist: Distribution | None, stage: int, n_stages: int
) -> FloatArray | None:
    """Per visitor, a stage distribution's draw from ``stream`` (None if unused)."""
    return shared.derived(
        ("values", stream, stage, dist),
        lambda: stage_draws(dist, shared.uniforms(stream, n_stages)[:, stage]),
    )


def order_values_for(
    funnel: CompiledFunnel, u: FloatArray, segment: IntArray, channel: IntArray
) -> FloatArray:
    """Order values from uniforms ``u`` for visitors of these segments and channels."""
    dists = funnel.order_value_dists
    if len({d for row in dists for d in row}) == 1:
        return dists[0][0].ppf(u)
    values = np.empty(len(u))
    for (g, c), dist in np.ndenumerate(np.array(dists, dtype=object)):
        mine = (segment == g) & (channel == c)
        values[mine] = dist.ppf(u[mine])
    return values


def order_values(funnel: CompiledFunnel, shared: SharedDraws) -> FloatArray:
    """Every visitor's order value if they buy."""
    dists = funnel.order_value_dists
    if len({d for row in dists for d in row}) == 1:
        return shared.derived(
            ("order", dists[0][0]), lambda: dists[0][0].ppf(shared.uniforms("order"))
        )
    cells = visitor_cells(funnel, shared)
    return shared.derived(
        ("order", dists, funnel.segment_cdf.tobytes(), funnel.channel_cdf.tobytes()),
        lambda: order_values_for(funnel, shared.uniforms("order"), cells.segment, cells.channel),
    )


@dataclass(frozen=True)
class VisitorPlan:
    """What the engines need per visitor (rows) and stage (columns) for a block."""

    segment: IntArray
    channel: IntArray
    u_continue: FloatArray  # (n, S)
    friction_loss: NDArray[np.int8]  # (n, S): reason index, or NO_LOSS
    p_continue: FloatArray  # (n, S): friction x rate, before any response delay
    order_value: FloatArray  # (n,): value of the order if the visitor buys


def plan_visitors(funnel: CompiledFunnel, shared: SharedDraws) -> VisitorPlan:
    """Look up each visitor's thresholds from their cell; decide friction losses (once
    for the variants of a replication whose cells, thresholds and rates agree)."""
    n_s = len(funnel.stages)
    cells = visitor_cells(funnel, shared)
    u = shared.uniforms("continue", n_s)

    def decide() -> tuple[NDArray[np.int8], FloatArray]:
        thresholds = funnel.cell_thresholds[:, cells.cell]  # (S, n, reasons)
        crossed = (u.T[..., None] >= thresholds).sum(axis=2)
        loss = np.where(crossed > 0, len(FRICTION_REASONS) - crossed, NO_LOSS).astype(np.int8)
        return loss.T, funnel.cell_continue[:, cells.cell].T

    tables = (funnel.cell_thresholds, funnel.cell_continue)
    key = ("plan", *cells_key(funnel), *((t.shape, t.tobytes()) for t in tables))
    friction_loss, p_continue = shared.derived(key, decide)
    return VisitorPlan(
        segment=cells.segment,
        channel=cells.channel,
        u_continue=u,
        friction_loss=friction_loss,
        p_continue=p_continue,
        order_value=order_values(funnel, shared),
    )


def outcome_from_cells(
    funnel: CompiledFunnel,
    reached: IntArray,
    lost: IntArray,
    revenue: FloatArray,
    revenue_sq: FloatArray,
) -> Outcome:
    """An Outcome from counts by cell: ``reached`` (S + 1, cells), ``lost``
    (S, reasons, cells); revenue sums are already by (segment, channel)."""
    n_g, n_c = funnel.cell_shape[:2]

    def by_segment_channel(counts: IntArray) -> IntArray:
        return np.asarray(counts.reshape(*counts.shape[:-1], n_g, n_c, -1).sum(axis=-1))

    return Outcome(
        funnel.stages,
        funnel.segments,
        funnel.channels,
        by_segment_channel(reached),
        by_segment_channel(lost),
        revenue.reshape(n_g, n_c),
        revenue_sq.reshape(n_g, n_c),
    )


# --------------------------------------------------------------------------- all variants


class VariantRuns(NamedTuple):
    """Every variant of a scenario played on one replication's visitors (control first).

    ``outcomes`` are the full-traffic tallies; ``test_visitors`` and
    ``test_conversions`` count, per variant, the visitors the simulated A/B test
    assigned to it and how many of them bought.
    """

    outcomes: list[Outcome]
    test_visitors: IntArray
    test_conversions: IntArray
    engine: str


def assign_arms(shared: SharedDraws, shares: Sequence[float]) -> IntArray:
    """The variant each visitor sees in the simulated A/B test (``assign`` stream)."""
    return count_below(np.cumsum(shares)[:-1], shared.uniforms("assign"))


class SplitTally:
    """Running per-variant totals of the simulated A/B test, block by block."""

    def __init__(self, n_variants: int) -> None:
        self.visitors = np.zeros(n_variants, np.int64)
        self.conversions = np.zeros(n_variants, np.int64)

    def add_visitors(self, arm: IntArray) -> None:
        """Count a block's visitors by the variant they were assigned to."""
        self.add_arm_sizes(np.bincount(arm, minlength=len(self.visitors)))

    def add_arm_sizes(self, sizes: IntArray) -> None:
        """Count a block's visitors, given how many the test assigned to each variant."""
        self.visitors += sizes

    def add_buyers(self, arm: IntArray, variant: int, buyers: IntArray | NDArray[np.bool_]) -> None:
        """Add the buyers of ``variant`` (full traffic; indices or a mask) whom the test
        assigned to it."""
        self.add_buyer_arms(arm[buyers], variant)

    def add_buyer_arms(self, arms: IntArray, variant: int) -> None:
        """Add the buyers of ``variant`` (full traffic) whose test arms are ``arms``: those
        the test assigned to it count."""
        self.conversions[variant] += np.count_nonzero(arms == variant)

    def runs(self, outcomes: list[Outcome], engine: str) -> VariantRuns:
        return VariantRuns(outcomes, self.visitors, self.conversions, engine)
