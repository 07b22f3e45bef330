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
"""

from __future__ import annotations

import csv
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import simpy

from funnelsim import friction
from funnelsim.engine.draws import VisitorDraws
from funnelsim.engine.model import NO_LOSS, CompiledFunnel, plan_visitors, stage_draws
from funnelsim.engine.outcomes import REASON_INDEX, REASONS, Outcome, QueueStats, Simulation

EVENT_COLUMNS = (
    "visitor", "segment", "channel", "stage", "entered_min", "left_min", "waited_min", "outcome",
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
    funnel: CompiledFunnel, draws: VisitorDraws, stream: str, attribute: str
) -> list[list[float] | None]:
    """Per stage, the visitors' draws of a stage distribution as a list (None if unused)."""
    n_s = len(funnel.stages)
    columns: list[list[float] | None] = [None] * n_s
    uniforms = None
    for s, stage in enumerate(funnel.scenario.stages):
        if attribute == "service_min":
            resource = funnel.scenario.resources.get(stage.resource or "")
            dist = resource.service_min if resource is not None else None
        else:
            dist = getattr(stage, attribute)
        if dist is None:
            continue
        if uniforms is None:
            uniforms = draws.uniforms(stream, width=n_s)
        values = stage_draws(dist, uniforms[:, s])
        columns[s] = values.tolist() if values is not None else None
    return columns


class _Run:
    """State of one SimPy run: the environment, resources, draws and result arrays."""

    def __init__(self, funnel: CompiledFunnel, draws: VisitorDraws, log: EventLog | None) -> None:
        self.funnel, self.log = funnel, log
        self.plan = plan_visitors(funnel, draws)
        self.env = simpy.Environment()
        scenario = funnel.scenario
        self.resources = [
            simpy.Resource(self.env, scenario.resources[name].capacity) for name in funnel.resources
        ]
        self.stage_resource = funnel.stage_resource
        self.decays = [st.friction.response_decay for st in scenario.stages]
        self.dwell = _stage_columns(funnel, draws, "dwell", "dwell_min")
        self.service = _stage_columns(funnel, draws, "service", "service_min")
        self.patience = _stage_columns(funnel, draws, "patience", "patience_min")
        self.delay = _stage_columns(funnel, draws, "delay", "response_delay_min")
        self.u = self.plan.u_continue.tolist()
        self.p = self.plan.p_continue.tolist()
        self.friction_loss = self.plan.friction_loss.tolist()
        n = draws.n_visitors
        self.exit_stage = [len(funnel.stages)] * n
        self.reason = [NO_LOSS] * n
        n_q = len(self.resources)
        self.arrivals, self.served, self.abandoned = [0] * n_q, [0] * n_q, [0] * n_q
        self.wait_sum, self.wait_sq, self.wait_max, self.busy = (
            [0.0] * n_q, [0.0] * n_q, [0.0] * n_q, [0.0] * n_q)
        self.env.process(self._source(draws.arrival_times().tolist()))

    def _source(self, arrivals: list[float]) -> Generator[simpy.Event, Any, None]:
        now = 0.0
        for i, t in enumerate(arrivals):
            yield self.env.timeout(t - now)
            now = t
            self.env.process(self._visit(i))

    def _lose(self, i: int, s: int, reason: int, entered: float, waited: float) -> None:
        self.exit_stage[i], self.reason[i] = s, reason
        self._record(i, s, entered, waited, f"lost:{REASONS[reason]}")

    def _record(self, i: int, s: int, entered: float, waited: float, outcome: str) -> None:
        if self.log is not None:
            funnel, plan = self.funnel, self.plan
            self.log.rows.append((
                i, funnel.segments[plan.segment[i]], funnel.channels[plan.channel[i]],
                funnel.stages[s], round(entered, 3), round(self.env.now, 3), round(waited, 3),
                outcome,
            ))

    def _visit(self, i: int) -> Generator[simpy.Event, Any, None]:
        env = self.env
        for s in range(len(self.funnel.stages)):
            entered = env.now
            dwell = self.dwell[s]
            if dwell is not None and dwell[i] > 0.0:
                yield env.timeout(dwell[i])
            if self.friction_loss[i][s] != NO_LOSS:
                self._lose(i, s, self.friction_loss[i][s], entered, 0.0)
                return
            waited = 0.0
            r = self.stage_resource[s]
            if r is not None:
                outcome = yield from self._queue(i, s, r)
                if outcome is None:
                    self._lose(i, s, REASON_INDEX["queue"], entered, env.now - entered)
                    return
                waited = outcome
            u, p = self.u[i][s], self.p[i][s]
            if u >= p:
                self._lose(i, s, REASON_INDEX["rate"], entered, waited)
                return
            if self.decays[s]:
                delay = self.delay[s]
                response_min = waited + (delay[i] if delay is not None else 0.0)
                if u >= float(friction.response_continue(p, response_min, self.funnel.response)):
                    self._lose(i, s, REASON_INDEX["response"], entered, waited)
                    return
            self._record(i, s, entered, waited, "continued")

    def _queue(self, i: int, s: int, r: int) -> Generator[simpy.Event, Any, float | None]:
        """Wait for resource ``r`` and be served; the wait, or None if patience ran out."""
        env, resource = self.env, self.resources[r]
        self.arrivals[r] += 1
        start = env.now
        with resource.request() as request:
            patience = self.patience[s]
            if patience is None:
                yield request
            else:
                result = yield request | env.timeout(patience[i])
                if request not in result:
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
        funnel, plan = self.funnel, self.plan
        exit_stage = np.array(self.exit_stage, np.int64)
        reason = np.array(self.reason, np.int8)
        bought = exit_stage == len(funnel.stages)
        paid = np.where(bought, plan.order_value, 0.0)
        queues = QueueStats(
            funnel.resources,
            np.array(self.arrivals, np.int64), np.array(self.served, np.int64),
            np.array(self.abandoned, np.int64), np.array(self.wait_sum),
            np.array(self.wait_sq), np.array(self.wait_max), np.array(self.busy),
        )
        outcome = Outcome.from_visitors(
            funnel.stages, funnel.segments, funnel.channels,
            plan.segment, plan.channel, exit_stage, reason, paid, queues)
        return Simulation(outcome, bought, paid, "simpy")


def simulate(
    funnel: CompiledFunnel, draws: VisitorDraws, log: EventLog | None = None
) -> Simulation:
    """Simulate one variant on one replication's visitors with SimPy."""
    run = _Run(funnel, draws, log)
    run.env.run()
    return run.result()
