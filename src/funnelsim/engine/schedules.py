"""Office hours and traffic rhythms on the simulation clock.

A small sales team answers enquiries from 9 to 5 on weekdays; the website takes
them around the clock. An enquiry sent on Friday evening waits for Monday
morning. This module turns a resource's weekly :class:`~funnelsim.scenario.Schedule`
into capacity per clock hour (time zone and holidays applied), runs the rota that
opens and closes the resource during a SimPy run, and bends the constant-rate
arrival times into a daily and weekly traffic profile.

The clock starts on a Monday at 00:00 UTC; hour ``h`` of the run is hour ``h % 168``
of the week.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import simpy
from numpy.typing import NDArray

from funnelsim.scenario.schema import WEEKDAYS, Schedule, TrafficProfile

HOURS_PER_WEEK = 168
MINUTES_PER_HOUR = 60.0
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Rota:
    """A schedule on the clock: servers per hour of the week, office hours, holidays."""

    weekly: IntArray  # (168,): servers on duty per clock hour of the week
    office: NDArray[np.bool_]  # (168,): an office (not on-call) shift covers the hour
    holiday_hours: frozenset[int]  # clock hours (since the start) nobody is on duty

    def capacity_at(self, hour: int) -> int:
        """Servers on duty in clock hour ``hour`` since the start."""
        return 0 if hour in self.holiday_hours else int(self.weekly[hour % HOURS_PER_WEEK])

    def in_office_hours(self, hour: int) -> bool:
        """Whether an office shift covers clock hour ``hour`` since the start."""
        return hour not in self.holiday_hours and bool(self.office[hour % HOURS_PER_WEEK])

    def next_change(self, hour: int) -> int | None:
        """The first clock hour after ``hour`` whose capacity differs (None: never)."""
        changes, settled, weekly_gap = self._changes
        k = bisect.bisect_right(changes, hour)
        if k < len(changes):
            return changes[k]
        later = max(hour, settled)
        gap = int(weekly_gap[later % HOURS_PER_WEEK])
        return later + gap if gap else None

    @functools.cached_property
    def _changes(self) -> tuple[list[int], int, IntArray]:
        """The hours the capacity changes up to ``settled`` (past every holiday, from
        where the week repeats), and per hour of the week the hours to the weekly
        pattern's next change (0: it never changes)."""
        settled = max(self.holiday_hours, default=0) + 2 * HOURS_PER_WEEK
        capacity = [self.capacity_at(hour) for hour in range(settled + 1)]
        changes = [h for h in range(1, settled + 1) if capacity[h] != capacity[h - 1]]
        weekly = self.weekly
        changed = np.flatnonzero(weekly != np.roll(weekly, 1))  # hours of the week
        gap = np.zeros(HOURS_PER_WEEK, np.int64)
        if changed.size:
            hours = np.arange(HOURS_PER_WEEK)
            ahead = (changed[None, :] - hours[:, None] - 1) % HOURS_PER_WEEK + 1
            gap = ahead.min(axis=1)
        return changes, settled, gap

    def server_minutes(self, horizon_hours: int) -> FloatArray:
        """(168,): server-minutes on duty per hour of the week over the first hours."""
        hours = np.arange(horizon_hours)
        servers = self.weekly[hours % HOURS_PER_WEEK]
        servers[np.isin(hours, list(self.holiday_hours))] = 0
        counts = np.bincount(hours % HOURS_PER_WEEK, servers, minlength=HOURS_PER_WEEK)
        return np.asarray(counts * MINUTES_PER_HOUR)


def rota(schedule: Schedule | None, capacity: int) -> Rota:
    """The clock-hour rota of a schedule; without one, ``capacity`` servers all week.

    >>> from funnelsim.scenario.schema import Schedule
    >>> week = rota(Schedule.model_validate(
    ...     {"shifts": [{"days": ["mon"], "from_h": 9, "to_h": 17, "capacity": 2}],
    ...      "utc_offset_h": 1}), 2)
    >>> [int(week.weekly[h]) for h in (7, 8, 15, 16)]
    [0, 2, 2, 0]
    """
    if schedule is None:
        weekly = np.full(HOURS_PER_WEEK, capacity, np.int64)
        return Rota(weekly, np.ones(HOURS_PER_WEEK, bool), frozenset())
    weekly = np.zeros(HOURS_PER_WEEK, np.int64)
    office = np.zeros(HOURS_PER_WEEK, bool)
    offset = schedule.utc_offset_h
    for shift in schedule.shifts:
        for day in shift.days:
            local = WEEKDAYS.index(day) * 24 + np.arange(shift.from_h, shift.to_h)
            clock = (local - offset) % HOURS_PER_WEEK
            weekly[clock] += shift.capacity
            office[clock] |= not shift.on_call
    holidays = frozenset(
        hour
        for day in schedule.holidays
        for hour in range(day * 24 - offset, (day + 1) * 24 - offset)
        if hour >= 0
    )
    return Rota(weekly, office, holidays)


class Staffed(Protocol):
    """A SimPy resource whose number of servers on duty can change (engine.service)."""

    queue: Sequence[Any]
    users: Sequence[Any]

    def set_capacity(self, capacity: int) -> None: ...


def run_rotas(
    env: simpy.Environment, resources: Sequence[Staffed], rotas: Sequence[Rota]
) -> Generator[simpy.Event, Any, None]:
    """Open and close every scheduled resource hour by hour.

    Stops once the capacities never change again, or once nothing else is scheduled and
    nobody waits (visitors still to come always have an event in SimPy's queue). While
    no opening could let a waiting lead in (nobody waits, or every server the rota ever
    has is busy), the changes before the next event do nothing and are skipped: a
    service of years is one event, not a rota turning for years.
    """
    peaks = [int(week.weekly.max()) for week in rotas]
    hour = 0
    while True:
        for resource, week in zip(resources, rotas, strict=True):
            resource.set_capacity(week.capacity_at(hour))
        changes = [c for c in (week.next_change(hour) for week in rotas) if c is not None]
        if not changes:
            return
        later = min(changes)
        busy = zip(resources, peaks, strict=True)
        idle = all(not r.queue or len(r.users) >= peak for r, peak in busy)
        if idle and math.isfinite(env.peek()):
            later = max(later, int(env.peek() // MINUTES_PER_HOUR))
        yield env.timeout(max(later * MINUTES_PER_HOUR - env.now, 0.0))
        hour = later
        if env.peek() == float("inf") and not any(r.queue for r in resources):
            return


def profiled_times(uniform_times: FloatArray, profile: TrafficProfile, days: int) -> FloatArray:
    """Arrival times of a constant-rate process, bent to follow ``profile``.

    The inverse of the profile's cumulative intensity (piecewise constant per clock
    hour) maps each time; being increasing, it keeps the order of arrivals and so the
    coupling of common random numbers.
    """
    hours = np.arange(days * 24)
    weights = (
        np.asarray(profile.hour_weights)[hours % 24]
        * np.asarray(profile.day_weights)[(hours // 24) % 7]
    )
    horizon = days * 24 * MINUTES_PER_HOUR
    cumulative = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * horizon
    edges = np.arange(days * 24 + 1) * MINUTES_PER_HOUR
    return np.asarray(np.interp(uniform_times, cumulative, edges))
