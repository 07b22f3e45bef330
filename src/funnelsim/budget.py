"""What a request will cost, estimated before it starts, and refusing absurd ones.

A simulation's work is a product, like a printing job priced before the press
runs: visitors per replication x stages x variants x replications (x the points
of a sweep). A typo in a scenario (``visitors_per_day: 2000000000`` instead of
``2000``) or an extra zero on ``--replications`` turns a one-minute run into
days of computing or an out-of-memory crash half way through. So every command
that simulates prices its request first with :func:`estimate` and, when
:func:`refusal` finds it beyond the limits, stops before doing any work and
says what the request would cost and which option runs it anyway.

The figures are deliberately rough: throughput and memory per visitor were
measured on a 2-core development machine (``benchmarks`` measure them
properly), and are upper bounds for engines that aggregate instead of walking
every visitor. They serve to tell 1 minute from 1 week, not 1 minute from 2.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from funnelsim.errors import FunnelsimError
from funnelsim.scenario.schema import Scenario

MINUTES_PER_DAY = 1440.0

STEPS_PER_SECOND = {"vectorized": 3e7, "simpy": 1e5}
"""Visitor-stage steps per CPU second of the per-visitor engines, lifetime economics
included (the readout and the rest of a replication are :data:`READOUT_SECONDS`).
``benchmarks/steps.py`` measures the vectorized engine's from ``replicate`` at two sizes
of every scenario it can run and prints the constant to use: the slowest scenario's
rate (3.1e7 to 3.7e7 for ``purchase_path.yaml``, whose gamma order values cost most,
1.8e8 to 2e8 for ``checkout.yaml``, at a load average of 11 to 15 on 2 cores). SimPy:
9.1e4 with ``replicate`` on ``lead_response.yaml`` at 1,000 visitors/day."""
BUYERS_PER_SECOND = 5e7
"""Buyer-variants per second and core of the aggregate engine, whose cost grows with the
buyers whose order values have no closed-form sum (they are drawn), not with the visitors
(lifetimes are drawn by cohort): 1.3e7 and 1.3e8 buyer-variants took 0.19 s and 1.2 s
of CPU on ``checkout.yaml`` (log-normal order values) at 10^8 and 10^9 visitors."""
BYTES_PER_VISITOR_VARIANT = {"vectorized": 48.0, "simpy": 300.0}
"""Peak memory of one replication per visitor and variant (``tracemalloc`` peak on the
runs above: 43 and 265 bytes)."""
AGGREGATE_REPLICATION_BYTES = 20e6
"""The aggregate engine's peak memory per replication, whatever the traffic: order values
are drawn 2^20 at a time (``tracemalloc`` peak 17 MB at 10^9 visitors of checkout.yaml)."""
READOUT_SECONDS = (0.004, 0.0015)
"""What a replication costs beside its visitors (readout, lifetime, summary): fixed part
and part per variant, in seconds (7 ms with 2 variants, 34 ms with 20, measured)."""
BYTES_PER_REPLICATION = 4096.0
"""What a finished replication keeps in memory until the summary (its pickled size)."""
BYTES_PER_PROCESS = 100e6
"""A worker process with the libraries loaded (114 MB peak RSS after one replication of
a small scenario; forked workers share part of it)."""
SIMPY_EVENTS_PER_QUEUED_VISITOR = 3.0
"""SimPy events of a visitor at a queue beside its stage steps: the join, the request
granted after a wait, the end of service (patience: one timer per queue, see
:class:`funnelsim.engine.service.Patience`)."""
QUEUE_ENTRY_SECONDS = {"sorted": 2e-10, "patience": 1.8e-8}
"""What each visitor already waiting adds to an arrival at a SimPy queue, in seconds: a
visitor who leaves a queue out of impatience is found by a scan of it (list removal); a
priority or scheduled queue inserts each request in order (a bisection and a shift of
the entries behind it: 0.31 s and 1.5 s for 1,000 and 4,000 visitors/day at a one-desk
priority queue, measured, where re-sorting it on every request took 13 s at 1,000); a
first-come queue nobody leaves costs nothing per entry. This is why the cost of an
overloaded queue with impatient visitors grows with the square of the traffic."""
BYTES_PER_WAITING_VISITOR = 2000.0
"""A visitor waiting in a SimPy queue: its process, request and timers."""
MAX_REPLICATIONS = 100_000
"""More replications than this (x sweep points) are refused unless allowed: the Monte
Carlo error of a mean is already below 0.3% of a standard deviation at this count."""
MAX_SECONDS = 6 * 3600.0
"""Requests estimated to take longer than this are refused unless allowed."""
MEMORY_SHARE = 0.8
"""Requests estimated to need more than this share of physical memory are refused."""


class Cost(NamedTuple):
    """The estimated price of a request.

    Attributes:
        replications: Replications in total (x the points of a sweep).
        visitors: Expected visitors per replication.
        steps: Visitor-stage steps in total (visitors x stages x variants x replications
            x runs).
        memory_bytes: Peak memory of the replications running at the same time.
        seconds: Rough wall time on the given workers.
        events: SimPy events in total (0 for the other engines): the steps, each
            queued visitor's events and the rota's openings and closings.
        queue: The longest mean queue length expected at a SimPy resource.
    """

    replications: float
    visitors: float
    steps: float
    memory_bytes: float
    seconds: float
    events: float = 0.0
    queue: float = 0.0


def physical_memory_bytes() -> float:
    """The memory this process may use: the machine's physical memory, or less where an
    address-space limit (``ulimit -v``) or a container's memory limit (cgroup v2
    ``memory.max``) says so; infinite where nothing says."""
    limits = [_sysconf_memory(), _cgroup_memory()]
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(float(soft))
    except (ImportError, ValueError, OSError):
        pass
    return min(limits)


def _sysconf_memory() -> float:
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def _cgroup_memory() -> float:
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as stream:
            text = stream.read(64).strip()
    except OSError:
        return math.inf
    return float(text) if text.isdigit() else math.inf


class TooLargeError(FunnelsimError):
    """A request whose estimated time or memory is beyond the limits (``field``: the
    setting that runs it anyway, ``allow_large``)."""


class Work(NamedTuple):
    """The estimated price of a request that is not a run of replications: what is
    asked (in words), its peak memory and its time."""

    what: str
    memory_bytes: float
    seconds: float


def check_work(work: Work) -> Work:
    """``work`` if it is within the limits of :func:`refusal`, else TooLargeError with
    the estimate."""
    problem = refusal(Cost(0.0, 0.0, 0.0, work.memory_bytes, work.seconds))
    if problem:
        raise TooLargeError(
            f"too large: {work.what}, ~{format_bytes(work.memory_bytes)}, "
            f"~{format_seconds(work.seconds)}; {problem}",
            "allow_large",
        )
    return work


def estimate(
    scenario: Scenario, replications: int, engine: str, workers: int = 1, runs: int = 1
) -> Cost:
    """Estimate the cost of ``runs`` x ``replications`` replications of ``scenario``.

    ``engine`` is the engine that will run (``"simpy"``, ``"vectorized"`` or
    ``"aggregate"``); ``runs`` counts the points of a sweep or the repetitions of a
    benchmark. ``steps`` counts visitor-stage steps whatever the engine (the size of the
    request); time and memory follow the engine.

    >>> from funnelsim.scenario import parse_scenario
    >>> text = ("name: x\\ntraffic: {visitors_per_day: 1000, days: 10}\\n"
    ...         "stages: [{name: a, rate: 0.5}, {name: b, rate: 0.5}]\\n"
    ...         "value: {order_value: 10}\\n")
    >>> estimate(parse_scenario(text), 100, "vectorized").steps
    2000000.0
    """
    variants = [scenario.variant(name) for name in scenario.variants]
    stages = max(len(v.stages) for v in variants)
    visitors = scenario.traffic.visitors_per_day * scenario.traffic.days
    # The product of the base rates guides the buyers (friction lowers it, intent may raise).
    buyers = visitors * max(math.prod(v.base_rate(stage) for stage in v.stages) for v in variants)
    total_replications = float(replications) * runs
    steps = visitors * stages * len(variants) * total_replications
    parallel = max(1.0, min(float(workers), total_replications))
    events, queue = 0.0, 0.0
    if engine == "aggregate":
        per_replication_s = buyers * len(variants) / BUYERS_PER_SECOND
        per_replication_bytes = AGGREGATE_REPLICATION_BYTES
    else:
        per_replication_s = visitors * stages * len(variants) / STEPS_PER_SECOND[engine]
        per_replication_bytes = visitors * len(variants) * BYTES_PER_VISITOR_VARIANT[engine]
    if engine == "simpy":
        loads = [load for v in variants for load in queue_loads(v)]
        queue = max((load.waiting for load in loads), default=0.0)
        extra_events = sum(load.events for load in loads)
        events = (visitors * stages * len(variants) + extra_events) * total_replications
        per_replication_s += extra_events / STEPS_PER_SECOND["simpy"]
        per_replication_s += sum(load.scan_seconds for load in loads)
        per_replication_bytes += 2 * sum(load.waiting for load in loads) * BYTES_PER_WAITING_VISITOR
    fixed, per_variant = READOUT_SECONDS
    seconds = total_replications * (per_replication_s + fixed + per_variant * len(variants))
    processes = parallel if parallel > 1 else 0.0  # workers beside this process
    memory = (
        parallel * per_replication_bytes
        + processes * BYTES_PER_PROCESS
        + total_replications * BYTES_PER_REPLICATION
    )
    cores = min(parallel, float(os.cpu_count() or 1))  # workers beyond the cores queue up
    return Cost(total_replications, visitors, steps, memory, seconds / cores, events, queue)


class QueueLoad(NamedTuple):
    """What one stage's queue costs a SimPy replication of one variant.

    Attributes:
        arrivals: Visitors expected at the queue.
        waiting: Mean queue length over the test (from the offered load).
        events: SimPy events beside the stage steps (queued visitors, rota changes).
        scan_seconds: Time spent scanning the queue (grows with arrivals x waiting).
    """

    arrivals: float
    waiting: float
    events: float
    scan_seconds: float


def queue_loads(scenario: Scenario) -> list[QueueLoad]:
    """The load of every stage's queue, from the offered load of the visitors expected
    there (the product of the base rates before it) on the resource's mean capacity.

    Mean waiting: an overloaded queue grows at arrivals minus services per minute, so
    it holds half its final length on average; a stable one holds about
    rho^sqrt(2(c+1)) / (1 - rho) (Sakasegawa's M/M/c approximation); closed hours add
    the arrivals of half a closure; impatient visitors cap it at arrivals x patience
    (Little's law).

    >>> from funnelsim.scenario import parse_scenario
    >>> text = ("name: x\\ntraffic: {visitors_per_day: 1440, days: 10}\\n"
    ...         "resources: {desk: {capacity: 1, service_min: 2}}\\n"
    ...         "stages: [{name: a, rate: 0.5, resource: desk}]\\n"
    ...         "value: {order_value: 10}\\n")
    >>> load = queue_loads(parse_scenario(text))[0]
    >>> load.arrivals, round(load.waiting)  # one a minute, served in two: +0.5/min
    (14400.0, 3600)
    """
    from funnelsim.engine.schedules import HOURS_PER_WEEK, rota

    horizon = scenario.traffic.days * MINUTES_PER_DAY
    visitors = scenario.traffic.visitors_per_day * scenario.traffic.days
    reach, loads = 1.0, []
    for stage in scenario.stages:
        spec = scenario.resources.get(stage.resource or "")
        if spec is not None:
            week = rota(spec.schedule, spec.capacity)
            arrivals = visitors * reach
            rate = arrivals / horizon
            service = max(spec.service_min.mean_value, 1e-9)
            capacity = max(float(week.weekly.mean()), 1e-9)
            patience = None if stage.patience_min is None else stage.patience_min.mean_value
            closed = float((week.weekly == 0).sum()) / HOURS_PER_WEEK
            changes = float((week.weekly != week.weekly[np.r_[1:HOURS_PER_WEEK, 0]]).sum())
            waiting = _mean_waiting(rate, service, capacity, horizon, patience, closed)
            sorted_queue = spec.schedule is not None or spec.priority.by != "fifo"
            kind = "patience" if patience else "sorted" if sorted_queue else None
            scan = arrivals * waiting * QUEUE_ENTRY_SECONDS[kind] if kind else 0.0
            rota_events = changes * horizon / (HOURS_PER_WEEK * 60) + 2 * arrivals * closed
            events = arrivals * SIMPY_EVENTS_PER_QUEUED_VISITOR + rota_events
            loads.append(QueueLoad(arrivals, waiting, events, scan))
        reach *= scenario.base_rate(stage)
    return loads


def _mean_waiting(
    rate: float,
    service: float,
    capacity: float,
    horizon: float,
    patience: float | None,
    closed: float,
) -> float:
    """Mean queue length (see :func:`queue_loads`); ``rate`` per minute, ``closed`` the
    share of the week nobody is on duty."""
    rho = rate * service / capacity
    growth = max(rate - capacity / service, 0.0)
    if rho < 1.0:
        waiting = min(rho ** math.sqrt(2.0 * (capacity + 1.0)) / (1.0 - rho), rate * horizon)
    else:
        waiting = growth * horizon / 2.0
    waiting += rate * closed * MINUTES_PER_DAY / 2.0  # a night's arrivals, on average half
    if patience is not None:
        waiting = min(waiting, rate * patience)
    return min(waiting, rate * horizon)


def estimate_sweep(
    scenario: Scenario,
    points: Sequence[Mapping[str, Any]],
    replications: int,
    engine: str,
    workers: int = 1,
) -> Cost:
    """An upper bound of a sweep's cost: every grid point (dotted-path overrides, as
    :func:`funnelsim.sweeps.grid` gives them) priced as the one with the most traffic."""
    traffic = scenario.traffic

    def visitors(point: Mapping[str, Any]) -> float:
        return float(point.get("traffic.visitors_per_day", traffic.visitors_per_day)) * float(
            point.get("traffic.days", traffic.days)
        )

    heaviest = scenario.with_overrides(max(points, key=visitors)) if points else scenario
    return estimate(heaviest, replications, engine, workers, runs=max(len(points), 1))


BENCH_SECONDS_PER_TEST_DAY = 2e-4
"""One simulated test of one strategy for one day of ``bench`` (35 ms per replication
of six strategies, each on the A/A and the A/B truth, over ``checkout.yaml``'s 14 days,
measured)."""
PLAN_SECONDS_PER_TEST = 0.02
"""One simulated test of ``plan``, read at every length (18 ms on ``checkout.yaml``,
measured)."""
BYTES_PER_TEST = 2000.0
"""What a finished simulated test keeps until the scores (its outcome object)."""
BYTES_PER_EVENT_ROW = 250.0
"""An event-log row held in memory (a tuple of nine values) until it is written."""
BYTES_PER_ORDER = 64.0
"""An order of a simulated order log (customer, variant, day and amount arrays)."""
ROWS_PER_SECOND = 3e5
"""CSV rows written per second."""


def bench_work(scenario: Scenario, strategies: int, replications: int, days: int) -> Work:
    """The price of ``bench``: each strategy plays ``replications`` A/A and A/B tests of
    ``days`` days (the engine's truth replications are priced by :func:`estimate`)."""
    tests = 2.0 * strategies * replications
    return Work(
        f"{tests:,.0f} simulated tests of {days} days ({strategies} strategies)",
        tests * BYTES_PER_TEST,
        tests * days * BENCH_SECONDS_PER_TEST_DAY,
    )


def plan_work(simulations: int) -> Work:
    """The price of ``plan``'s ``simulations`` simulated tests."""
    return Work(
        f"{simulations:,} simulated tests",
        simulations * BYTES_PER_TEST,
        simulations * PLAN_SECONDS_PER_TEST,
    )


def event_log_work(scenario: Scenario) -> Work:
    """The price of an event log (``run --events``): up to a row per visitor, stage and
    variant, and one more per reply where a stage answers leads (a response delay or a
    resource), every visitor walked on the SimPy clock, one variant's rows held at a time."""
    visitors = scenario.traffic.visitors_per_day * scenario.traffic.days
    answered = sum(
        stage.response_delay_min is not None or stage.resource is not None
        for stage in scenario.stages
    )
    steps = visitors * len(scenario.stages)
    rows = steps + visitors * answered
    variants = len(scenario.variants)
    return Work(
        f"an event log of up to {rows * variants:.3g} rows",
        rows * BYTES_PER_EVENT_ROW + visitors * BYTES_PER_VISITOR_VARIANT["simpy"],
        variants * (steps / STEPS_PER_SECOND["simpy"] + rows / ROWS_PER_SECOND),
    )


def order_log_work(scenario: Scenario, months: int) -> Work:
    """The price of an order log (``run --orders``): every buyer's first order and the
    repeat orders of ``months`` months at the highest ``repeat_per_month`` the scenario
    has (base, channel or segment retention)."""
    variants = [scenario.variant(name) for name in scenario.variants]
    visitors = scenario.traffic.visitors_per_day * scenario.traffic.days
    conversion = max(math.prod(v.base_rate(stage) for stage in v.stages) for v in variants)
    retentions = [
        scenario.value.retention,
        *(c.retention for c in scenario.traffic.channels.values()),
        *(g.retention for g in scenario.segments.values()),
    ]
    repeat = max((r.repeat_per_month for r in retentions if r is not None), default=0.0)
    orders = visitors * conversion * len(variants) * (1.0 + repeat * months)
    return Work(
        f"an order log of about {orders:.3g} orders",
        orders * BYTES_PER_ORDER,
        orders / ROWS_PER_SECOND,
    )


CONJUGATE_DRAWS = 200_000
"""Joint posterior draws of the conjugate readout (``analysis.conjugate``'s default)."""
BYTES_PER_DRAW_VALUE = 24.0
"""A posterior draw of one quantity kept with its copies (draws, uplifts, comparisons)."""
SECONDS_PER_DRAW_VALUE = {"conjugate": 1e-7, "pymc": 2e-5}
"""Time per drawn value: a Beta draw and its comparisons; an MCMC draw of one variable
(gradient evaluations included). Rough, measured on the bundled data."""


def analysis_work(
    variants: int, stages: int, model: str, draws: int, tune: int, chains: int
) -> Work:
    """The price of ``analyze``: the conjugate readout's joint draws of every variant's
    rates, or a PyMC model's chains x draws (tuning included) of a few variables per
    variant and stage."""
    if model == "conjugate":
        values = float(CONJUGATE_DRAWS) * variants * (stages + 1)
        seconds = values * SECONDS_PER_DRAW_VALUE["conjugate"]
        what = f"{variants:,} variants x {CONJUGATE_DRAWS:,} posterior draws"
    else:
        variables = variants * (stages + 2)
        values = float(chains) * draws * variables
        seconds = float(chains) * (draws + tune) * variables * SECONDS_PER_DRAW_VALUE["pymc"]
        what = f"{chains} chains x {draws:,} draws of {variables:,} variables"
    return Work(what, values * BYTES_PER_DRAW_VALUE, seconds)


SECONDS_PER_WORLD = 1e-3
"""CPU time to value one world of a variant pair exactly (about 0.5 ms measured on the
checkout scenario's pair, doubled for larger funnels)."""
BYTES_PER_WORLD_VALUE = 32.0
"""A world's drawn value or metric, with the copies the Sobol estimator and its
bootstrap keep."""
BGNBD_PARAMETERS = 4
"""The BG/NBD model's parameters per variant (r, alpha, a, b)."""


def sensitivity_work(base_samples: int, assumptions: int) -> Work:
    """The price of ``sensitivity``: ``base_samples x (assumptions + 2)`` worlds, each
    valued exactly (its drawn assumptions and metrics kept for the Sobol estimator)."""
    worlds = float(base_samples) * (assumptions + 2)
    return Work(
        f"{worlds:,.0f} worlds ({base_samples:,} base samples x {assumptions + 2})",
        worlds * (assumptions + 4) * BYTES_PER_WORLD_VALUE,
        worlds * SECONDS_PER_WORLD,
    )


def transactions_work(variants: int, draws: int, tune: int, chains: int) -> Work:
    """The price of ``analyze --transactions``: the BG/NBD fit's chains x draws (tuning
    included) of its parameters per variant."""
    variables = variants * BGNBD_PARAMETERS
    return Work(
        f"{chains} chains x {draws:,} draws of {variables:,} BG/NBD parameters",
        float(chains) * draws * variables * BYTES_PER_DRAW_VALUE,
        float(chains) * (draws + tune) * variables * SECONDS_PER_DRAW_VALUE["pymc"],
    )


def refusal(
    cost: Cost, max_seconds: float = MAX_SECONDS, max_memory_bytes: float | None = None
) -> str | None:
    """Why a request of this cost should not start, or None when it may.

    >>> refusal(Cost(1, 1e12, 4e12, 1e14, 1e6), max_memory_bytes=16e9)
    'memory over the 16 GB limit'
    >>> refusal(Cost(1e6, 10, 4e7, 4e9, 3000.0))
    'more than 100,000 replications'
    >>> refusal(Cost(1000, 1e3, 4e6, 1e6, 2.0)) is None
    True
    """
    memory_limit = (
        MEMORY_SHARE * physical_memory_bytes() if max_memory_bytes is None else max_memory_bytes
    )
    if cost.memory_bytes > memory_limit:
        return f"memory over the {format_bytes(memory_limit)} limit"
    if cost.seconds > max_seconds:
        return f"time over the {format_seconds(max_seconds)} limit"
    if cost.replications > MAX_REPLICATIONS:
        return f"more than {MAX_REPLICATIONS:,} replications"
    return None


def describe(cost: Cost) -> str:
    """The cost in one phrase.

    >>> describe(Cost(1, 2e12, 8e12, 1.9e14, 2.7e6))
    '1 replication(s) of 2e+12 visitors, 8e+12 visitor-stage steps, ~190 TB, ~31.2 days'
    """
    queues = (
        f", {cost.events:.3g} SimPy events (about {cost.queue:,.0f} waiting in a queue)"
        if cost.events
        else ""
    )
    return (
        f"{cost.replications:,.0f} replication(s) of {cost.visitors:.3g} visitors, "
        f"{cost.steps:.3g} visitor-stage steps{queues}, ~{format_bytes(cost.memory_bytes)}, "
        f"~{format_seconds(cost.seconds)}"
    )


def format_bytes(size: float) -> str:
    """``1.5e9`` -> ``'1.5 GB'`` (decimal units up to PB)."""
    if not math.isfinite(size):
        return "more bytes than a float counts"
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    power = min(int(math.log10(size)) // 3, len(units) - 1) if size >= 1 else 0
    return f"{size / 1000**power:.3g} {units[power]}"


def format_seconds(seconds: float) -> str:
    """``5400`` -> ``'1.5 h'``; seconds, minutes, hours or days.

    >>> format_seconds(2.7e8)
    '3,125 days'
    """
    for unit, length in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= length:
            value = seconds / length
            return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{seconds:.2g} s"
