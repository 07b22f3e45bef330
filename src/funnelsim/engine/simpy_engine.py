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
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any

import numpy as np
import simpy

from funnelsim import friction
from funnelsim.engine.draws import SharedDraws, VisitorDraws
from funnelsim.engine.model import (
    NO_LOSS,
    CompiledFunnel,
    SplitTally,
    VariantRuns,
    assign_arms,
    plan_visitors,
    stage_values,
)
from funnelsim.engine.outcomes import REASON_INDEX, REASONS, Outcome, QueueStats, Simulation
from funnelsim.engine.referral import ReferralPool, referral_pool

EVENT_COLUMNS = (
    "visitor",
    "segment",
    "channel",
    "stage",
    "entered_min",
    "left_min",
    "waited_min",
    "outcome",
)


@dataclass
class EventLog:
    """Optional per-visitor, per-stage event rows (for ``--events FILE.csv``)."""

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
    """Per stage, the visitors' draws of a stage distribution as a list (None if unused)."""
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
        columns[s] = values.tolist() if values is not None else None
    return columns


GAVE_UP = object()


def _give_up(request: simpy.Event, _deadline: simpy.Event) -> None:
    """At the end of a visitor's patience: leave the queue unless already served.

    A timer callback rather than ``request | timeout``: the same behaviour without a
    condition event per queued visitor (a large share of a queue's cost in SimPy).
    """
    if not request.triggered:
        request.cancel()  # type: ignore[attr-defined]
        request.succeed(GAVE_UP)


class _Run:
    """State of one SimPy run: the environment, resources, draws and result arrays."""

    def __init__(self, funnel: CompiledFunnel, shared: SharedDraws, log: EventLog | None) -> None:
        self.funnel, self.log = funnel, log
        self.plan = plan_visitors(funnel, shared)
        self.env = simpy.Environment()
        scenario = funnel.scenario
        self.resources = [
            simpy.Resource(self.env, scenario.resources[name].capacity) for name in funnel.resources
        ]
        self.stage_resource = funnel.stage_resource
        self.decays = [st.friction.response_decay for st in scenario.stages]
        self.dwell = _stage_columns(funnel, shared, "dwell", "dwell_min")
        self.service = _stage_columns(funnel, shared, "service", "service_min")
        self.patience = _stage_columns(funnel, shared, "patience", "patience_min")
        self.delay = _stage_columns(funnel, shared, "delay", "response_delay_min")
        self.u = self.plan.u_continue.tolist()
        self.p = self.plan.p_continue.tolist()
        self.friction_loss = self.plan.friction_loss.tolist()
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
        arrivals = shared.derived(("arrival times",), lambda: shared.draws.arrival_times().tolist())
        if log is None:
            self._schedule_queues(arrivals)
        else:
            self.env.process(self._source(arrivals))

    def _add_referred_visitors(self, pool: ReferralPool) -> None:
        """Append the pool's visitors (indices from ``n_main`` on) to the per-visitor lists."""
        plan = pool.plan
        self.u += plan.u_continue.tolist()
        self.p += plan.p_continue.tolist()
        self.friction_loss += plan.friction_loss.tolist()
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
        timers set at time 0 fire at exactly those times."""
        env, pool, n_s = self.env, self.pool, len(self.dwell)
        now = previous = 0.0
        for i, t in enumerate(arrivals):
            now += t - previous  # as _source's timeouts advance the clock
            previous = t
            joined = self._walk_to_queue(i, now)
            if joined is None:
                continue
            s, at = joined
            if s < n_s:
                env.timeout(at).callbacks.append(partial(self._join, i, s))
            elif pool is not None:
                env.timeout(at).callbacks.append(partial(self._start_advocate, i, pool))

    def _walk_to_queue(self, i: int, now: float) -> tuple[int, float] | None:
        """Visitor ``i``, arriving at ``now``, through dwells and decisions up to the first
        stage with a queue: (that stage, when they join its queue), (``len(stages)``,
        when done) if none comes, or None if lost on the way."""
        dwell, resource = self.dwell, self.stage_resource
        friction_loss = self.friction_loss[i]
        for s, column in enumerate(dwell):
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

    def _join(self, i: int, s: int, _timer: simpy.Event) -> None:
        self.env.process(self._visit(i, s, queued=True))

    def _start_advocate(self, i: int, pool: ReferralPool, _timer: simpy.Event) -> None:
        self.env.process(self._advocate(i, pool))

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
                )
            )

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

    def _continues(self, i: int, s: int, entered: float, waited: float) -> bool:
        """After any dwell and queue: does visitor ``i`` go on past stage ``s``?"""
        u, p = self.u[i][s], self.p[i][s]
        if u >= p:
            self._lose(i, s, REASON_INDEX["rate"], entered, waited)
            return False
        if self.decays[s]:
            delay = self.delay[s]
            response_min = waited + (delay[i] if delay is not None else 0.0)
            if u >= float(friction.response_continue(p, response_min, self.funnel.response)):
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
            waited = 0.0
            r = self.stage_resource[s]
            if r is not None:
                outcome = yield from self._queue(i, s, r)
                if outcome is None:
                    self._lose(i, s, REASON_INDEX["queue"], entered, env.now - entered)
                    return
                waited = outcome
            if not self._continues(i, s, entered, waited):
                return
            step = self._instant_stages(i, s + 1)
        if step is not None and self.pool is not None:
            env.process(self._advocate(i, self.pool))

    def _queue(self, i: int, s: int, r: int) -> Generator[simpy.Event, Any, float | None]:
        """Wait for resource ``r`` and be served; the wait, or None if patience ran out."""
        env, resource = self.env, self.resources[r]
        self.arrivals[r] += 1
        start = env.now
        with resource.request() as request:
            patience = self.patience[s]
            if patience is not None:
                env.timeout(patience[i]).callbacks.append(partial(_give_up, request))
            if (yield request) is GAVE_UP:
                self.abandoned[r] += 1
                return None
            waited = env.now - start
            service = self.service[s]
            assert service is not None
            yield env.timeout(service[i])
        self.served[r] += 1
        self.wait_sum[r] += waited
        self.wait_sq[r] += waited * waited
        self.wait_max[r] = max(self.wait_max[r], waited)
        self.busy[r] += service[i]
        return waited

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
    run = _Run(funnel, SharedDraws(draws) if shared is None else shared, log)
    run.env.run()
    return run.result()


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
