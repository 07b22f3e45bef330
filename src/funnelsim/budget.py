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

from funnelsim.scenario.schema import Scenario

STEPS_PER_SECOND = {"vectorized": 3e6, "simpy": 1e5}
"""Visitor-stage steps per second and core of the per-visitor engines, readout included.
Measured with ``replicate`` on ``checkout.yaml`` at 20,000 visitors/day (vectorized:
3.2e6) and ``lead_response.yaml`` at 1,000 visitors/day (SimPy: 9.1e4)."""
BUYERS_PER_SECOND = 3e6
"""Buyer-variants per second and core of the aggregate engine, whose cost grows with the
buyers (their order values and lifetimes), not the visitors: 1.4e7 buyer-variants took
3.9 s on ``checkout.yaml`` at 100 million visitors (1 GB peak)."""
BYTES_PER_VISITOR_VARIANT = {"vectorized": 48.0, "simpy": 300.0}
"""Peak memory of one replication per visitor and variant (``tracemalloc`` peak on the
runs above: 43 and 265 bytes)."""
BYTES_PER_BUYER_VARIANT = 80.0
"""The aggregate engine's peak memory per buyer and variant (74 bytes measured)."""
READOUT_SECONDS = (0.004, 0.0015)
"""What a replication costs beside its visitors (readout, lifetime, summary): fixed part
and part per variant, in seconds (7 ms with 2 variants, 34 ms with 20, measured)."""
BYTES_PER_REPLICATION = 4096.0
"""What a finished replication keeps in memory until the summary (its pickled size)."""
BYTES_PER_PROCESS = 100e6
"""A worker process with the libraries loaded (114 MB peak RSS after one replication of
a small scenario; forked workers share part of it)."""
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
    """

    replications: float
    visitors: float
    steps: float
    memory_bytes: float
    seconds: float


def physical_memory_bytes() -> float:
    """Physical memory of this machine (infinite where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


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
    if engine == "aggregate":
        per_replication_s = buyers * len(variants) / BUYERS_PER_SECOND
        per_replication_bytes = buyers * len(variants) * BYTES_PER_BUYER_VARIANT
    else:
        per_replication_s = visitors * stages * len(variants) / STEPS_PER_SECOND[engine]
        per_replication_bytes = visitors * len(variants) * BYTES_PER_VISITOR_VARIANT[engine]
    fixed, per_variant = READOUT_SECONDS
    seconds = total_replications * (per_replication_s + fixed + per_variant * len(variants))
    processes = parallel if parallel > 1 else 0.0  # workers beside this process
    memory = (
        parallel * per_replication_bytes
        + processes * BYTES_PER_PROCESS
        + total_replications * BYTES_PER_REPLICATION
    )
    cores = min(parallel, float(os.cpu_count() or 1))  # workers beyond the cores queue up
    return Cost(total_replications, visitors, steps, memory, seconds / cores)


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
    return (
        f"{cost.replications:,.0f} replication(s) of {cost.visitors:.3g} visitors, "
        f"{cost.steps:.3g} visitor-stage steps, ~{format_bytes(cost.memory_bytes)}, "
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
