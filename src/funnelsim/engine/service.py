"""The service desk of a SimPy run: who is on duty, who is answered first, what it cost.

A team of two answers enquiries. It can answer in order of arrival, or first the
leads most likely to buy (or with the largest deals), and it can decline the least
promising ones outright. This module builds the SimPy resources for that
(:class:`ScheduledResource` opens and closes with the rota of
:mod:`funnelsim.engine.schedules`; priority bands use SimPy's
``PriorityResource`` / ``PreemptiveResource``), sorts each lead into a priority band
before the run, and records per resource the waits, answers and staff time that
:func:`service_metrics` turns into the figures of ``results.json``.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import simpy
from numpy.typing import NDArray

from funnelsim.engine.schedules import HOURS_PER_WEEK, MINUTES_PER_HOUR, Rota
from funnelsim.friction import ResponseCoefficients
from funnelsim.scenario.schema import AutoReply, Priority, Resource

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
DECLINED = -1  # band of a lead declined on arrival
NOT_A_LEAD = -2  # band of a visitor who never came to the resource
ANSWERED_WITHIN_MIN = {"5min": 5.0, "1h": 60.0}
WAIT_QUANTILES = {"p50": 0.5, "p90": 0.9}


class _ReleasedAtOnce:
    """Mixin: a server released (leaving a ``with request`` block) is handed to the next
    waiting request at once, without SimPy's Release event, which would do the same a
    step later at the same time: one event less per service. Only a request made at
    that very instant (a continuous time: never in practice) could tell the two apart."""

    users: list[Any]

    def release(self, request: Any) -> None:
        if request in self.users:
            self.users.remove(request)
        self._trigger_put(None)  # type: ignore[attr-defined]


class GrantedAtOnce:
    """A server taken by a request that finds one free: the ``with`` block of a SimPy
    request without its event (which would be processed a step later at the same time
    and resume nobody: the lead is served at once)."""

    triggered = True

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        resource.users.append(self)

    def __enter__(self) -> GrantedAtOnce:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not GeneratorExit:  # as SimPy: not when a run ends mid-service
            self.resource.release(self)


GAVE_UP = object()
"""The value of a request withdrawn when the lead's patience ran out."""


class Patience:
    """The patience of the leads waiting at one resource, kept on one timer.

    A timer per waiting lead would fire for every one of them, most long after the lead
    was served. Here the deadlines wait in a heap and a timer is set only for the
    earliest one of a lead still waiting (again when a lead with an earlier deadline
    comes): a lead still waiting at its deadline gives up then (its request withdrawn
    and triggered with :data:`GAVE_UP`), as with a timer of its own.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.deadlines: list[tuple[float, int, Any]] = []  # (deadline, order, request)
        self.timers: list[float] = []  # when the timers set fire
        self.order = 0

    def wait(self, request: Any, patience: float) -> None:
        """``request``'s lead waits ``patience`` minutes at most from now."""
        deadline = self.env.now + patience
        heapq.heappush(self.deadlines, (deadline, self.order, request))
        self.order += 1
        if not self.timers or deadline < self.timers[0]:
            self._set_timer(deadline)

    def _set_timer(self, deadline: float) -> None:
        heapq.heappush(self.timers, deadline)
        self.env.timeout(deadline - self.env.now).callbacks.append(self._expire)

    def _expire(self, _timer: simpy.Event) -> None:
        """A timer fires: the leads whose deadline has come give up; the timer for the
        next lead still waiting is set unless an earlier one is."""
        heapq.heappop(self.timers)
        now, deadlines = self.env.now, self.deadlines
        while deadlines and (deadlines[0][0] <= now or deadlines[0][2].triggered):
            request = heapq.heappop(deadlines)[2]
            if not request.triggered:
                request.cancel()
                request.succeed(GAVE_UP)
        if deadlines and (not self.timers or deadlines[0][0] < self.timers[0]):
            self._set_timer(deadlines[0][0])  # a timer set at d - now fires at d


class _Staffing:
    """Mixin: the number of servers on duty changes with the rota; a lead already being
    served when a shift ends is finished first (nobody is sent home mid-call)."""

    _capacity: int
    users: list[Any]

    def set_capacity(self, capacity: int) -> None:
        opened = capacity - self._capacity
        self._capacity = capacity
        for _ in range(max(opened, 0)):
            self._trigger_put(None)  # type: ignore[attr-defined]

    def _do_put(self, event: Any) -> Any:
        if self._capacity == 0 or len(self.users) > self._capacity:
            return None  # nobody on duty, or reps still finishing after a shift: no preemption
        return super()._do_put(event)  # type: ignore[misc]


class InsortedQueue(simpy.resources.resource.SortedQueue):
    """SimPy's queue of requests by key, kept sorted by inserting each new request
    after those with an equal key (the position SimPy's stable re-sort of the whole
    queue on every request gives it, at a fraction of the cost for long queues)."""

    def append(self, item: Any) -> None:
        if self.maxlen is not None and len(self) >= self.maxlen:
            raise RuntimeError("Cannot append event. Queue is full.")
        bisect.insort_right(self, item, key=_request_key)


def _request_key(request: Any) -> Any:
    return request.key


class FifoResource(_ReleasedAtOnce, simpy.Resource):
    """A first-come first-served resource with a fixed number of servers."""

    def ask(self, band: int) -> simpy.Event | GrantedAtOnce:
        """A request for a server (first come, first served: ``band`` plays no part)."""
        return GrantedAtOnce(self) if free_now(self) else self.request()


class ScheduledResource(_ReleasedAtOnce, _Staffing, simpy.PriorityResource):
    """A priority resource whose servers come and go with a rota."""

    PutQueue = InsortedQueue

    def ask(self, band: int) -> simpy.Event | GrantedAtOnce:
        """A request for a server, before those of later bands."""
        return GrantedAtOnce(self) if free_now(self) else self.request(priority=band)


class ScheduledPreemptiveResource(_ReleasedAtOnce, _Staffing, simpy.PreemptiveResource):
    """A preemptive priority resource whose servers come and go with a rota."""

    PutQueue = InsortedQueue

    def ask(self, band: int) -> simpy.Event:
        """A request for a server that interrupts the service of a later band."""
        return self.request(priority=band, preempt=True)


ServiceDesk = FifoResource | ScheduledResource | ScheduledPreemptiveResource


def make_resource(env: simpy.Environment, spec: Resource) -> ServiceDesk:
    """The SimPy resource for ``spec``: plain first-come first-served when it has neither
    schedule nor priority, else one that takes a band as priority and follows a rota."""
    if spec.priority.preemptive:
        return ScheduledPreemptiveResource(env, spec.capacity)
    if spec.schedule is None and spec.priority.by == "fifo":
        return FifoResource(env, spec.capacity)
    return ScheduledResource(env, spec.capacity)


def free_now(resource: simpy.Resource) -> bool:
    """Whether a rep on duty is free this moment (nobody waiting before the caller)."""
    return resource.count < resource.capacity and not resource.queue


def slowed_decay(coef: ResponseCoefficients, reply: AutoReply | None) -> ResponseCoefficients:
    """The response decay of a stage: slowed by its automatic reply's ``decay_factor``."""
    if reply is None:
        return coef
    factor = reply.decay_factor
    return coef.model_copy(
        update={"slope": coef.slope * factor, "half_life_min": coef.half_life_min / factor}
    )


def lead_bands(priority: Priority, score: FloatArray, deal_size: FloatArray) -> IntArray:
    """Each lead's priority band (0 first) by score or deal size; DECLINED below the floor.

    >>> from funnelsim.scenario.schema import Priority
    >>> p = Priority(by="score", bands=[0.5, 0.2], decline_below=0.1)
    >>> lead_bands(p, np.array([0.7, 0.3, 0.15, 0.05]), np.zeros(4)).tolist()
    [0, 1, 2, -1]
    """
    if priority.by == "fifo":
        return np.zeros(len(score), np.int64)
    key = score if priority.by == "score" else deal_size
    cuts = np.asarray(priority.bands, dtype=float)
    bands = (key[:, None] < cuts[None, :]).sum(axis=1).astype(np.int64)
    return np.where(key < priority.decline_below, DECLINED, bands)


@dataclass
class ResourceLog:
    """What one resource saw in one run (waits in minutes, clock hours of answers)."""

    name: str
    rota: Rota
    n_bands: int
    cost_per_hour: float
    horizon_hours: int
    waits: list[float] = field(default_factory=list)
    responses: list[float] = field(default_factory=list)  # wait + the stage's response delay
    wait_bands: list[int] = field(default_factory=list)
    answered_out_of_hours: int = 0
    answered_automatically: int = 0  # by templates, or by a bot out of hours
    lost_waiting: int = 0
    declined: int = 0
    unanswered: int = 0  # called (phone, live chat) when no rep was free
    automation_cost: float = 0.0
    busy_by_hour: FloatArray = field(default_factory=lambda: np.zeros(HOURS_PER_WEEK))

    def answered(self, waited: float, band: int, now: float, response_min: float) -> None:
        """Record a lead served at ``now`` after ``waited`` minutes in the queue, answered
        after ``response_min`` (the wait plus the stage's response delay)."""
        self.waits.append(waited)
        self.responses.append(response_min)
        self.wait_bands.append(band)
        self.answered_out_of_hours += not self.rota.in_office_hours(int(now // MINUTES_PER_HOUR))

    def automatic(self, now: float, cost: float) -> None:
        """Record a lead answered at ``now`` without a rep (template or bot)."""
        self.responses.append(0.0)
        self.answered_automatically += 1
        self.answered_out_of_hours += not self.rota.in_office_hours(int(now // MINUTES_PER_HOUR))
        self.automation_cost += cost

    def busy(self, start: float, minutes: float) -> None:
        """Record ``minutes`` of service begun at ``start`` (counted in the hour it began;
        service begun after the test's horizon is not counted)."""
        hour = int(start // MINUTES_PER_HOUR)
        if hour < self.horizon_hours:
            self.busy_by_hour[hour % HOURS_PER_WEEK] += minutes


class WaitSample(NamedTuple):
    """The queue waits (minutes) of the leads a rep served, and each one's band."""

    waits: FloatArray
    bands: IntArray
    n_bands: int


def _wait_figures(waits: FloatArray) -> dict[str, float]:
    if len(waits) == 0:
        return {"mean": float("nan"), **{q: float("nan") for q in WAIT_QUANTILES}}
    quantiles = np.quantile(waits, list(WAIT_QUANTILES.values())).tolist()
    return {"mean": float(waits.mean()), **dict(zip(WAIT_QUANTILES, quantiles, strict=True))}


def wait_figures(sample: WaitSample) -> dict[str, Any]:
    """Mean, median and 90th percentile of the waits, overall and per priority band.

    >>> sample = WaitSample(np.array([0.0, 1.0, 2.0, 9.0]), np.array([0, 0, 1, 1]), 2)
    >>> figures = wait_figures(sample)
    >>> figures["mean"], figures["p50"], figures["by_band"]["1"]["mean"]
    (3.0, 1.5, 5.5)
    """
    return {
        **_wait_figures(sample.waits),
        "by_band": {
            str(b): _wait_figures(sample.waits[sample.bands == b]) for b in range(sample.n_bands)
        },
    }


def _share(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def service_metrics(
    log: ResourceLog, lead_band: IntArray, bought: NDArray[np.bool_], horizon_hours: int
) -> dict[str, Any]:
    """One run's service figures of a resource, ready for ``results.json``.

    ``lead_band`` holds, per visitor, the band they queued in (NOT_A_LEAD: never came to
    this resource; DECLINED: declined). ``wait_min`` is the time in the queue of the leads a
    rep served (``wait_sample``: those waits, for :func:`summarise_runs`);
    ``answered_within`` counts, among every lead that came, those answered (queue wait
    plus the stage's response delay; at once by a template or a bot) within 5 minutes
    and 1 hour.
    """
    came = lead_band != NOT_A_LEAD
    leads = int(came.sum())
    sample = WaitSample(np.asarray(log.waits), np.asarray(log.wait_bands, np.int64), log.n_bands)
    responses = np.asarray(log.responses)
    staffed = log.rota.server_minutes(horizon_hours)
    staff_cost = float(staffed.sum()) / MINUTES_PER_HOUR * log.cost_per_hour
    answered = len(log.responses)
    customers = int((came & bought).sum())
    return {
        "leads": leads,
        "answered": answered,
        "answered_automatically": log.answered_automatically,
        "lost_waiting": log.lost_waiting,
        "declined": log.declined,
        "unanswered": log.unanswered,
        "wait_min": wait_figures(sample),
        "wait_sample": sample,
        "answered_within": {
            label: _share(float((responses <= limit).sum()), leads)
            for label, limit in ANSWERED_WITHIN_MIN.items()
        },
        "answered_out_of_hours": _share(log.answered_out_of_hours, answered),
        "lead_to_customer_by_band": {
            str(b): _share(float((bought & (lead_band == b)).sum()), float((lead_band == b).sum()))
            for b in range(log.n_bands)
        },
        "utilisation_by_hour_of_week": np.divide(
            log.busy_by_hour,
            staffed,
            out=np.full(HOURS_PER_WEEK, np.nan),
            where=staffed > 0,
        ).tolist(),
        "staff_cost": staff_cost,
        "automation_cost": log.automation_cost,
        "service_cost_per_lead": _share(staff_cost + log.automation_cost, leads),
        "service_cost_per_customer": _share(staff_cost + log.automation_cost, customers),
    }


def summarise_runs(runs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per resource, the service figures over replications: the waits of every served
    lead pooled over the replications (their mean and quantiles, overall and per band:
    a mean of each replication's quantile would estimate another quantity), every other
    figure the mean of its values (:func:`mean_over_runs`). No ``wait_sample`` is kept."""
    summary = {}
    for name in runs[0]:
        samples = [run[name]["wait_sample"] for run in runs]
        pooled_keys = ("wait_sample", "wait_min")
        figures = [{k: v for k, v in run[name].items() if k not in pooled_keys} for run in runs]
        pooled = WaitSample(
            np.concatenate([s.waits for s in samples]),
            np.concatenate([s.bands for s in samples]),
            samples[0].n_bands,
        )
        summary[name] = {**mean_over_runs(figures), "wait_min": wait_figures(pooled)}
    return summary


def mean_over_runs(runs: Sequence[Any]) -> Any:
    """Element-wise mean of nested figures over replications (NaN ignored; a figure that is
    NaN in every run stays NaN)."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: mean_over_runs([run[key] for run in runs]) for key in first}
    values = np.asarray(runs, dtype=float)
    with np.errstate(all="ignore"):
        counts = np.sum(~np.isnan(values), axis=0)
        means = np.divide(
            np.nansum(values, axis=0), counts, out=np.full(counts.shape, np.nan), where=counts > 0
        )
    return means.tolist() if isinstance(first, list) else float(means)
