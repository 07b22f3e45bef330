"""The SimPy engine: visitors as processes, shared staff as SimPy resources.

Picture a B2B enquiry desk with three sales reps. Enquiries arrive at random;
each waits until a rep is free, and a prospect who waits longer than their
patience gives up. Even a lead who is answered is less likely to go on the
longer the answer took. When traffic doubles with the same three reps, queues
grow, more prospects give up and the answers come later: conversion falls.
That coupling between visitors is why this engine exists; where nothing is
shared the vectorised engine gives the same results far faster.

Every random number is drawn before the clock starts (common random numbers,
in blocks; see :mod:`funnelsim.engine.draws`), and outcomes are written into
flat arrays, not per-visitor objects, then tallied once at the end.

Only queues couple visitors, so the clock is only needed from a visitor's first queue
on. Without an event log, each visitor is walked through the stages before it (dwells
added up, decisions taken on their own draws) before the clock starts; those lost on
the way never become SimPy processes, and those who reach a queue join it from a timer
at exactly the time the clock would have reached. Stages that take no time are passed
without an event. Results are identical to running every visitor on the clock (the
sums are the same floating-point operations); with an event log, every visitor still
arrives on the clock, so rows come in time order.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np
import simpy
from numpy.typing import NDArray

from funnelsim import friction
from funnelsim.engine import schedules, service, settled
from funnelsim.engine.draws import SharedDraws, VisitorDraws
from funnelsim.engine.model import (
    NO_LOSS,
    CompiledFunnel,
    SplitTally,
    VariantRuns,
    assign_arms,
    option_names,
    plan_visitors,
    stage_values,
    visitor_cells,
)
from funnelsim.engine.outcomes import (
    REASON_INDEX,
    REASONS,
    REPLIED,
    Outcome,
    QueueStats,
    Simulation,
)
from funnelsim.engine.referral import ReferralPool, referral_pool
from funnelsim.engine.service import GAVE_UP
from funnelsim.scenario.schema import ContactPath, Resource

EVENT_COLUMNS = (
    "visitor",
    "segment",
    "channel",
    "stage",
    "entered_min",
    "left_min",
    "waited_min",
    "outcome",
    "revenue",
)


@dataclass
class EventLog:
    """Optional per-visitor, per-stage event rows (the event log of
    :func:`funnelsim.experiment.logs.write_event_log`); ``revenue`` is the order value on
    the row of a purchase (the last stage continued) and 0 on every other row.

    A lead the business answers (at a stage with a ``response_delay_min``, or served by
    a resource: a rep, a template or a bot) has one more row at that stage, outcome
    :data:`~funnelsim.engine.outcomes.REPLIED`: from the enquiry (after the stage's
    dwell) to the first answer, ``waited_min`` being the minutes the response curve
    sees (queue wait plus response delay). It is written when the engine answers, so
    its ``left_min`` may be later than rows written after it."""

    variant: str
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def write_csv(self, stream: IO[str], header: bool = True) -> None:
        writer = csv.writer(stream)
        if header:
            writer.writerow(("variant", *EVENT_COLUMNS))
        writer.writerows((self.variant, *row) for row in self.rows)


def _stage_columns(
    funnel: CompiledFunnel, shared: SharedDraws, stream: str, attribute: str
) -> list[list[float] | None]:
    """Per stage, the visitors' draws of a stage distribution as a list (None if unused;
    one list for the variants of a replication that draw the same)."""
    n_s = len(funnel.stages)
    columns: list[list[float] | None] = [None] * n_s
    for s, stage in enumerate(funnel.scenario.stages):
        if attribute == "service_min":
            resource = funnel.scenario.resources.get(stage.resource or "")
            dist = resource.service_min if resource is not None else None
        else:
            dist = getattr(stage, attribute)
        if dist is None:
            continue
        values = stage_values(shared, stream, dist, s, n_s)
        if values is not None:
            columns[s] = shared.derived(("list", stream, s, dist), values.tolist)
    return columns


class _Delayed(simpy.Process):
    """A process whose generator starts when ``start`` fires.

    ``env.process`` would start it through an Initialize event of its own, one more
    event per visitor on SimPy's heap; here the timer that brings the visitor to their
    queue resumes the generator directly, at the same time and in the same order.
    Uses SimPy's Process fields (``_generator``, ``_target``, ``_resume``) as
    ``Process.__init__`` sets them (SimPy 4).
    """

    def __init__(
        self,
        env: simpy.Environment,
        generator: Generator[simpy.Event, Any, Any],
        start: simpy.Event,
    ) -> None:
        self.env = env
        self.callbacks: list[Any] = []
        self._generator = generator
        self._target = start
        start.callbacks.append(self._resume)  # type: ignore[union-attr]


def _then_park(
    visit: Generator[simpy.Event, Any, None], parking: simpy.Event
) -> Generator[simpy.Event, Any, None]:
    """``visit``, then a wait on ``parking``, an event that never fires: SimPy schedules
    an event for every process that ends, which nobody waits on for a visitor; a
    process that never ends saves it (one event less per lead)."""
    yield from visit
    yield parking


class _Run:
    """State of one SimPy run: the environment, resources, draws and result arrays."""

    def __init__(self, funnel: CompiledFunnel, shared: SharedDraws, log: EventLog | None) -> None:
        self.funnel, self.log, self.shared = funnel, log, shared
        self.plan = plan_visitors(funnel, shared)
        self.env = simpy.Environment()
        self.parking = self.env.event()  # never fires: see _then_park
        scenario = funnel.scenario
        specs = [scenario.resources[name] for name in funnel.resources]
        self.resources = [service.make_resource(self.env, spec) for spec in specs]
        self.patience_of = [service.Patience(self.env) for _ in specs]
        self.stage_resource = funnel.stage_resource
        self.decays = [st.friction.response_decay for st in scenario.stages]
        self.delayed = [st.response_delay_min is not None for st in scenario.stages]
        self.dwell = _stage_columns(funnel, shared, "dwell", "dwell_min")
        self.service = _stage_columns(funnel, shared, "service", "service_min")
        self.patience = _stage_columns(funnel, shared, "patience", "patience_min")
        self.delay = _stage_columns(funnel, shared, "delay", "response_delay_min")
        # arrays, not lists: most visitors are settled by engine.settled and never read
        self.u, self.p = self.plan.u_continue, self.plan.p_continue
        self.friction_loss = self.plan.friction_loss
        self.segment, self.channel = self.plan.segment, self.plan.channel
        n = self.n_main = shared.n_visitors
        self.pool = referral_pool(funnel, shared)
        if self.pool is not None:
            self._add_referred_visitors(self.pool)
            n += self.pool.size
        self.exit_stage = [len(funnel.stages)] * n
        self.reason = [NO_LOSS] * n
        n_q = len(self.resources)
        self.arrivals, self.served, self.abandoned = [0] * n_q, [0] * n_q, [0] * n_q
        self.wait_sum, self.wait_sq, self.wait_max, self.busy = (
            [0.0] * n_q,
            [0.0] * n_q,
            [0.0] * n_q,
            [0.0] * n_q,
        )
        self._open_service_desks(specs)
        arrivals = self._arrival_times(shared)
        if log is None:
            self._schedule_queues(arrivals)
        else:
            self.env.process(self._source(arrivals))

    def _arrival_times(self, shared: SharedDraws) -> list[float]:
        """Arrival times in minutes: constant rate, or bent to the traffic profile."""
        times = shared.derived(("arrival times",), lambda: shared.draws.arrival_times().tolist())
        traffic = self.funnel.scenario.traffic
        if traffic.profile is None:
            return times
        profile, days = traffic.profile, traffic.days
        return shared.derived(
            (
                "profiled arrival times",
                tuple(profile.hour_weights),
                tuple(profile.day_weights),
                days,
            ),
            lambda: schedules.profiled_times(np.asarray(times), profile, days).tolist(),
        )

    def _open_service_desks(self, specs: list[Resource]) -> None:
        """Rotas, service logs and priority bands of the resources, and each stage's
        automatic reply and contact paths (engine.service)."""
        horizon_hours = self.funnel.scenario.traffic.days * 24
        rotas = [schedules.rota(spec.schedule, spec.capacity) for spec in specs]
        self.logs = [
            service.ResourceLog(
                name, week, len(spec.priority.bands) + 1, spec.cost_per_hour, horizon_hours
            )
            for name, spec, week in zip(self.funnel.resources, specs, rotas, strict=True)
        ]
        scheduled = [r for r, spec in enumerate(specs) if spec.schedule is not None]
        if scheduled:
            self.env.process(
                schedules.run_rotas(
                    self.env,
                    [self.resources[r] for r in scheduled],  # type: ignore[misc]
                    [rotas[r] for r in scheduled],
                )
            )
        n = len(self.exit_stage)
        stages = self.funnel.scenario.stages
        self.auto_reply = [stage.auto_reply for stage in stages]
        self.response = [
            service.slowed_decay(self.funnel.response, stage.auto_reply) for stage in stages
        ]
        self.auto_answered = [self._auto_answered(s) for s in range(len(stages))]
        self.paths = [self._contact_paths(s) for s in range(len(stages))]
        self.bands = [self._bands(r, spec) for r, spec in enumerate(specs)]
        self.lead_band = [np.full(n, service.NOT_A_LEAD, np.int64) for _ in specs]

    def _populations(self) -> list[tuple[CompiledFunnel, SharedDraws]]:
        """The scheduled visitors, then the referred ones (their own draws)."""
        main = [(self.funnel, self.shared)]
        return main if self.pool is None else [*main, (self.pool.funnel, self.pool.shared)]

    def _auto_answered(self, s: int) -> list[bool] | None:
        """Per visitor, whether stage ``s``'s templates answer them without a rep."""
        reply = self.auto_reply[s]
        if reply is None:
            return None
        n_s = len(self.auto_reply)
        return np.concatenate(
            [
                shared.uniforms("auto_reply", n_s)[:, s] < reply.answers_share
                for _, shared in self._populations()
            ]
        ).tolist()  # type: ignore[no-any-return]

    def _contact_paths(self, s: int) -> list[ContactPath] | None:
        """Per visitor, the contact path they take at stage ``s``: their preferred option,
        else the stage's first path."""
        contact = self.funnel.scenario.stages[s].contact
        if contact is None:
            return None
        names = option_names(self.funnel.scenario, "contact")
        paths = [contact.get(name, next(iter(contact.values()))) for name in names]
        preferred = np.concatenate(
            [
                visitor_cells(funnel, shared).cell % len(names)
                for funnel, shared in self._populations()
            ]
        )
        return [paths[k] for k in preferred.tolist()]

    def _bands(self, r: int, spec: Resource) -> list[int]:
        """Each visitor's priority band at resource ``r``, from their chance to buy from
        its first stage on (score) or their order value (deal size)."""
        first = self.stage_resource.index(r)
        plans = [self.plan] if self.pool is None else [self.plan, self.pool.plan]
        score = np.concatenate([plan.p_continue[:, first:].prod(axis=1) for plan in plans])
        order_value = np.concatenate([plan.order_value for plan in plans])
        bands = service.lead_bands(spec.priority, score, order_value)
        return bands.tolist()  # type: ignore[no-any-return]

    def _add_referred_visitors(self, pool: ReferralPool) -> None:
        """Append the pool's visitors (indices from ``n_main`` on) to the per-visitor lists."""
        plan = pool.plan
        self.u = np.vstack([self.u, plan.u_continue])
        self.p = np.vstack([self.p, plan.p_continue])
        self.friction_loss = np.vstack([self.friction_loss, plan.friction_loss])
        self.segment = np.concatenate([self.segment, plan.segment])
        self.channel = np.concatenate([self.channel, plan.channel])
        for columns, stream, attribute in (
            (self.dwell, "dwell", "dwell_min"),
            (self.service, "service", "service_min"),
            (self.patience, "patience", "patience_min"),
            (self.delay, "delay", "response_delay_min"),
        ):
            extra = _stage_columns(pool.funnel, pool.shared, stream, attribute)
            for s, values in enumerate(extra):
                if values is not None and columns[s] is not None:
                    columns[s] = columns[s] + values

    def _advocate(self, i: int, pool: ReferralPool) -> Generator[simpy.Event, Any, None]:
        """Buyer ``i`` refers visitors while active and the test runs (engine.referral)."""
        env = self.env
        until = min(pool.horizon_min, env.now + pool.active_min(self.segment[i], self.channel[i]))
        while True:
            gap = pool.gap_min()
            if env.now + gap > until:
                return
            yield env.timeout(gap)
            j = pool.next_visitor()
            if j is None:
                return
            self._arrive(self.n_main + j)

    def _source(self, arrivals: list[float]) -> Generator[simpy.Event, Any, None]:
        """Every visitor arrives on the clock (the event log records each one in order)."""
        env, arrive = self.env, self._arrive
        now = 0.0
        for i, t in enumerate(arrivals):
            yield env.timeout(t - now)
            now = t
            arrive(i)

    def _schedule_queues(self, arrivals: list[float]) -> None:
        """Without an event log: walk each visitor up to their first queue before the
        clock starts (nothing before a queue depends on other visitors) and start the
        clock's part there. Times are summed as the clock would (``now + delay``), and
        timers set at time 0 fire at exactly those times. Only the visitors NumPy did not
        settle are walked, from the first stage that takes time (they passed the ones
        before it, which take none)."""
        env, pool, n_s = self.env, self.pool, len(self.dwell)
        timed = settled.first_timed_stage(self.stage_resource, self.dwell)
        walkers = np.flatnonzero(~self._settle_early_losses(timed))
        # arrival on the clock: previous time + gap, as _source's timeouts advance it
        clock = np.cumsum(np.diff(np.asarray(arrivals), prepend=0.0))
        for i, now in zip(walkers.tolist(), clock[walkers].tolist(), strict=True):
            joined = self._walk_to_queue(i, now, timed)
            if joined is None:
                continue
            s, at = joined
            if s < n_s:
                visit = self._visit(i, s, queued=True)
                _Delayed(env, _then_park(visit, self.parking), env.timeout(at))
            elif pool is not None:
                _Delayed(env, self._advocate(i, pool), env.timeout(at))

    def _settle_early_losses(self, timed: int) -> NDArray[np.bool_]:
        """Per visitor, lost before stage ``timed``, the first that takes time: those
        losses are settled here with NumPy (engine.settled), the others walk."""
        delay = [np.asarray(d)[: self.n_main] if d is not None else None for d in self.delay]
        exit_stage, reason = settled.settled_losses(
            self.plan, delay, self.decays, self.response, timed
        )
        lost = exit_stage != settled.NOT_SETTLED
        n_stages = len(self.funnel.stages)
        self.exit_stage[: self.n_main] = np.where(lost, exit_stage, n_stages).tolist()
        self.reason[: self.n_main] = np.where(lost, reason, NO_LOSS).tolist()
        return np.asarray(lost)

    def _walk_to_queue(self, i: int, now: float, start: int) -> tuple[int, float] | None:
        """Visitor ``i``, at stage ``start`` at ``now``, through dwells and decisions up to
        the first stage with a queue: (that stage, when they join its queue),
        (``len(stages)``, when done) if none comes, or None if lost on the way."""
        dwell, resource = self.dwell, self.stage_resource
        friction_loss = self.friction_loss[i]
        for s in range(start, len(dwell)):
            column = dwell[s]
            if column is not None and column[i] > 0.0:
                now += column[i]
            if friction_loss[s] != NO_LOSS:
                self._lose(i, s, friction_loss[s], now, 0.0)
                return None
            if resource[s] is not None:
                return s, now
            if not self._continues(i, s, now, 0.0):
                return None
        return len(dwell), now

    def _arrive(self, i: int) -> None:
        """Visitor ``i`` arrives now: instant stages at once, a process from the first
        stage that takes time (none for a visitor lost or done before one)."""
        s = self._instant_stages(i, 0)
        if s is not None and (s < len(self.dwell) or self.pool is not None):
            self.env.process(self._visit(i, s))

    def _lose(self, i: int, s: int, reason: int, entered: float, waited: float) -> None:
        self.exit_stage[i], self.reason[i] = s, reason
        if self.log is not None:
            self._record(i, s, entered, waited, f"lost:{REASONS[reason]}")

    def _record(self, i: int, s: int, entered: float, waited: float, outcome: str) -> None:
        if self.log is not None:
            funnel = self.funnel
            bought = outcome == "continued" and s == len(funnel.stages) - 1
            revenue = round(self._order_value(i), 2) if bought else 0.0
            self.log.rows.append(
                (
                    i,
                    funnel.segments[self.segment[i]],
                    funnel.channels[self.channel[i]],
                    funnel.stages[s],
                    round(entered, 3),
                    round(self.env.now, 3),
                    round(waited, 3),
                    outcome,
                    revenue,
                )
            )

    def _reply(self, i: int, s: int, asked: float, response_min: float) -> None:
        """Log the business's first answer to lead ``i`` at stage ``s``, ``response_min``
        minutes after the enquiry at ``asked``."""
        if self.log is not None:
            funnel = self.funnel
            self.log.rows.append(
                (
                    i,
                    funnel.segments[self.segment[i]],
                    funnel.channels[self.channel[i]],
                    funnel.stages[s],
                    round(asked, 3),
                    round(asked + response_min, 3),
                    round(response_min, 3),
                    REPLIED,
                    0.0,
                )
            )

    def _order_value(self, i: int) -> float:
        """Visitor ``i``'s order value (a referred visitor's from the referral pool)."""
        if i < self.n_main or self.pool is None:
            return float(self.plan.order_value[i])
        return float(self.pool.plan.order_value[i - self.n_main])

    def _instant_stages(self, i: int, s: int) -> int | None:
        """Visitor ``i`` through stages ``s, s + 1, ...`` that take no time (no dwell, no
        queue): the first stage that does, ``len(stages)`` after the last, or None if lost."""
        now, dwell, resource = self.env.now, self.dwell, self.stage_resource
        friction_loss = self.friction_loss[i]
        while s < len(dwell):
            column = dwell[s]
            if resource[s] is not None or (column is not None and column[i] > 0.0):
                return s
            if friction_loss[s] != NO_LOSS:
                self._lose(i, s, friction_loss[s], now, 0.0)
                return None
            if not self._continues(i, s, now, 0.0):
                return None
            s += 1
        return s

    def _continues(
        self, i: int, s: int, entered: float, waited: float, factor: float | None = None
    ) -> bool:
        """After any dwell and queue: does visitor ``i`` go on past stage ``s``? ``factor``:
        answered at once without a rep (a template or a bot), times its chance."""
        u, p, delay = self.u[i][s], self.p[i][s], self.delay[s]
        if factor is not None:
            p, delay = p * factor, None
        elif self.log is not None and self.delayed[s] and self.stage_resource[s] is None:
            self._reply(i, s, self.env.now, delay[i] if delay is not None else 0.0)
        if u >= p:
            self._lose(i, s, REASON_INDEX["rate"], entered, waited)
            return False
        if self.decays[s]:
            response_min = waited + (delay[i] if delay is not None else 0.0)
            if u >= friction.response_continue_one(p, response_min, self.response[s]):
                self._lose(i, s, REASON_INDEX["response"], entered, waited)
                return False
        if self.log is not None:
            self._record(i, s, entered, waited, "continued")
        return True

    def _visit(self, i: int, s: int, queued: bool = False) -> Generator[simpy.Event, Any, None]:
        """Visitor ``i`` from stage ``s`` (one that takes time) to the end or a loss;
        ``queued``: already past the dwell and friction of stage ``s``, at its queue."""
        env, n_s = self.env, len(self.dwell)
        friction_loss = self.friction_loss[i]
        step: int | None = s
        while step is not None and step < n_s:
            s, entered = step, env.now
            dwell = self.dwell[s]
            if not queued:
                if dwell is not None and dwell[i] > 0.0:
                    yield env.timeout(dwell[i])
                if friction_loss[s] != NO_LOSS:
                    self._lose(i, s, friction_loss[s], entered, 0.0)
                    return
            queued = False
            waited, factor = 0.0, None
            r = self.stage_resource[s]
            if r is not None:
                answer = yield from self._answer(i, s, r)
                if isinstance(answer, int):
                    self._lose(i, s, answer, entered, env.now - entered)
                    return
                waited, factor = answer
            if not self._continues(i, s, entered, waited, factor):
                return
            step = self._instant_stages(i, s + 1)
        if step is not None and self.pool is not None:
            env.process(self._advocate(i, self.pool))

    def _answer(
        self, i: int, s: int, r: int
    ) -> Generator[simpy.Event, Any, tuple[float, float | None] | int]:
        """How lead ``i`` is answered at stage ``s`` (engine.service): declined, answered at
        once by a template or a bot (wait 0 and the factor on its chance to continue), not
        answered on a call, or by a rep after a wait (factor None). A loss is its reason."""
        log = self.logs[r]
        self.lead_band[r][i] = band = self.bands[r][i]
        if band == service.DECLINED:
            log.declined += 1
            return REASON_INDEX["declined"]
        reply = self.auto_reply[s]
        if reply is not None:
            log.automation_cost += reply.cost_per_lead
            if self.auto_answered[s][i]:
                log.automatic(self.env.now, 0.0)
                self._reply(i, s, self.env.now, 0.0)
                return 0.0, 1.0
        paths = self.paths[s]
        if paths is not None:
            path = paths[i]
            if path.bot is not None and not log.rota.in_office_hours(int(self.env.now // 60)):
                log.automatic(self.env.now, path.bot.cost_per_lead)
                self._reply(i, s, self.env.now, 0.0)
                return 0.0, path.bot.quality
            if path.answer == "at_once" and not service.free_now(self.resources[r]):
                log.unanswered += 1
                return REASON_INDEX["unanswered"]
        waited = yield from self._queue(i, s, r, band)
        return REASON_INDEX["queue"] if waited is None else (waited, None)

    def _queue(
        self, i: int, s: int, r: int, band: int
    ) -> Generator[simpy.Event, Any, float | None]:
        """Wait for resource ``r`` and be served; the wait, or None if patience ran out.

        A service preempted by a higher band queues again for the minutes left."""
        env, log = self.env, self.logs[r]
        self.arrivals[r] += 1
        start = env.now
        service = self.service[s]  # None: a service time of 0 (stage_draws drops it)
        minutes = 0.0 if service is None else service[i]
        with self.resources[r].ask(band) as request:
            if not request.triggered:  # not served at once: wait (the patience allows)
                patience = self.patience[s]
                if patience is not None:
                    self.patience_of[r].wait(request, patience[i])
                if (yield request) is GAVE_UP:
                    self.abandoned[r] += 1
                    log.lost_waiting += 1
                    return None
            waited = env.now - start
            delay = self.delay[s]
            response_min = waited + (delay[i] if delay is not None else 0.0)
            log.answered(waited, band, env.now, response_min)
            self._reply(i, s, start, response_min)
            left = yield from self._serve(r, minutes)
        while left > 0.0:
            with self.resources[r].ask(band) as request:
                yield request
                left = yield from self._serve(r, left)
        self.served[r] += 1
        self.wait_sum[r] += waited
        self.wait_sq[r] += waited * waited
        self.wait_max[r] = max(self.wait_max[r], waited)
        self.busy[r] += minutes
        return waited

    def _serve(self, r: int, minutes: float) -> Generator[simpy.Event, Any, float]:
        """Serve for ``minutes``; the minutes left if a higher band preempted the service."""
        env, started = self.env, self.env.now
        try:
            yield env.timeout(minutes)
            left = 0.0
        except simpy.Interrupt:
            left = minutes - (env.now - started)
        self.logs[r].busy(started, minutes - left)
        return left

    def end_parked_visits(self) -> None:
        """After the run: drop the visitor processes parked on ``parking``; each holds the
        run in a reference cycle that the garbage collector would have to walk."""
        self.parking.callbacks.clear()  # type: ignore[union-attr]

    def result(self) -> Simulation:
        """The tally of everybody who came (referred visitors included); ``converted`` and
        ``revenue`` cover the scheduled visitors only (the A/B split assigns them)."""
        funnel, plan = self.funnel, self.plan
        came = self.n_main
        order_value = plan.order_value
        if self.pool is not None:
            came += self.pool.arrived
            order_value = np.concatenate([order_value, self.pool.plan.order_value])
        exit_stage = np.array(self.exit_stage[:came], np.int64)
        reason = np.array(self.reason[:came], np.int8)
        bought = exit_stage == len(funnel.stages)
        paid = np.where(bought, order_value[:came], 0.0)
        queues = QueueStats(
            funnel.resources,
            np.array(self.arrivals, np.int64),
            np.array(self.served, np.int64),
            np.array(self.abandoned, np.int64),
            np.array(self.wait_sum),
            np.array(self.wait_sq),
            np.array(self.wait_max),
            np.array(self.busy),
        )
        outcome = Outcome.from_visitors(
            funnel.stages,
            funnel.segments,
            funnel.channels,
            self.segment[:came],
            self.channel[:came],
            exit_stage,
            reason,
            paid,
            queues,
        )
        horizon_hours = self.funnel.scenario.traffic.days * 24
        outcome = replace(
            outcome,
            service={
                log.name: service.service_metrics(log, bands[:came], bought, horizon_hours)
                for log, bands in zip(self.logs, self.lead_band, strict=True)
            },
        )
        n = self.n_main
        return Simulation(outcome, bought[:n], paid[:n], "simpy")


def simulate(
    funnel: CompiledFunnel,
    draws: VisitorDraws,
    log: EventLog | None = None,
    shared: SharedDraws | None = None,
) -> Simulation:
    """Simulate one variant on one replication's visitors with SimPy.

    ``shared`` lets variants of one replication reuse the draws they have in common.
    """
    with _cyclic_gc_paused():
        run = _Run(funnel, SharedDraws(draws) if shared is None else shared, log)
        run.env.run()
        run.end_parked_visits()
        return run.result()


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one run.

    A run creates a timer, a generator and a process per queued visitor, all alive at
    once; every 700 allocations the collector would walk them again, a sixth of a run's
    time, to find nothing it may free before the run ends. Reference counting still
    frees what is dropped; the cycles a run leaves are collected after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def simulate_variants(
    funnels: Sequence[CompiledFunnel], draws: VisitorDraws, shares: Sequence[float]
) -> VariantRuns:
    """Every variant on one replication's visitors, plus the A/B test split by ``shares``."""
    shared = SharedDraws(draws)
    arm = assign_arms(shared, shares)
    tally = SplitTally(len(funnels))
    tally.add_visitors(arm)
    outcomes = []
    for v, funnel in enumerate(funnels):
        sim = simulate(funnel, draws, shared=shared)
        outcomes.append(sim.outcome)
        tally.add_buyers(arm, v, sim.converted)
    return tally.runs(outcomes, "simpy")
