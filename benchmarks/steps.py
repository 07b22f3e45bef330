"""Calibration of the cost guard: the visitor-stage steps per second of an engine.

Usage: .venv/bin/python benchmarks/steps.py [--engine vectorized] [--visitors 2000000]
                                            [scenarios/checkout.yaml ...]

``funnelsim.budget.estimate`` prices a replication at
``steps / STEPS_PER_SECOND[engine] + READOUT_SECONDS`` (steps: visitors x stages x
variants), and the serial-or-pool choice of a run follows that price. This script
measures the steps per second behind it: for each scenario (by default every scenario
in ``scenarios/`` the engine can run), the CPU time (user + sys, this process) of
``replicate`` -- the engine, lifetime economics and readout of one replication -- at
the scenario's own traffic and at ``--visitors`` visitors, best of a few runs each.
The slope between the two sizes is the cost of a step; the intercept, the cost of a
replication beside its visitors (compare ``READOUT_SECONDS``). It prints both per
scenario, the estimate beside the measured time, and the constant to use: the slowest
scenario's rate, rounded down to two significant figures, so the guard errs on the
side of overpricing.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import NamedTuple

from funnelsim import budget
from funnelsim.engine.draws import replication_seeds
from funnelsim.experiment import compile_variants
from funnelsim.experiment.runner import replicate
from funnelsim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


class Calibration(NamedTuple):
    """One scenario's measured cost: steps per CPU second and the fixed part."""

    name: str
    steps_per_second: float
    fixed_seconds: float
    measured_seconds: float  # at the large size
    estimated_seconds: float  # by the current constant, at the large size


def replication_cpu_seconds(scenario: Scenario, engine: str) -> float:
    """The least CPU time of :data:`REPEATS` replications of ``scenario`` (after a warm-up)."""
    funnels = compile_variants(scenario)
    seeds = replication_seeds(1, REPEATS + 1)
    replicate(scenario, seeds[0], engine, funnels)  # imports, compiled tables
    best = math.inf
    for seed in seeds[1:]:
        start = time.process_time()
        replicate(scenario, seed, engine, funnels)
        best = min(best, time.process_time() - start)
    return best


def calibrate(path: Path, engine: str, visitors: float) -> Calibration:
    """Fit seconds = fixed + steps / rate through the scenario at two sizes."""
    small = load_scenario(path)
    days = small.traffic.days
    large = small.with_overrides({"traffic.visitors_per_day": visitors / days})
    sizes = [
        (budget.estimate(s, 1, engine), replication_cpu_seconds(s, engine)) for s in (small, large)
    ]
    (cost_small, seconds_small), (cost_large, seconds_large) = sizes
    rate = (cost_large.steps - cost_small.steps) / max(seconds_large - seconds_small, 1e-9)
    fixed = seconds_small - cost_small.steps / rate
    return Calibration(path.stem, rate, fixed, seconds_large, cost_large.seconds)


def runnable(engine: str) -> list[Path]:
    """The scenarios in ``scenarios/`` that ``engine`` can simulate."""
    paths = sorted((ROOT / "scenarios").glob("*.yaml"))
    return [
        p
        for p in paths
        if engine == "simpy"
        or not any(f.couples_visitors for f in compile_variants(load_scenario(p)))
    ]


def two_figures_down(value: float) -> float:
    """``value`` rounded down to two significant figures."""
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.floor(value / scale) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", type=Path, help="Default: every runnable one.")
    parser.add_argument("--engine", default="vectorized", choices=("vectorized", "simpy"))
    parser.add_argument("--visitors", type=float, default=2e6, help="The large size.")
    args = parser.parse_args()
    paths = args.scenarios or runnable(args.engine)
    print(
        f"steps per CPU second of the {args.engine} engine (replicate: engine, lifetime "
        f"economics, readout); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    found = []
    for path in paths:
        found.append(calibrate(path, args.engine, args.visitors))
        c = found[-1]
        over = c.estimated_seconds / c.measured_seconds
        print(
            f"  {c.name:16s} {c.steps_per_second:9.3g} steps/s, fixed "
            f"{c.fixed_seconds * 1e3:6.1f} ms; at {args.visitors:,.0f} visitors measured "
            f"{c.measured_seconds:.2f} s CPU, estimated {c.estimated_seconds:.2f} s ({over:.1f}x)"
        )
    constant = two_figures_down(min(c.steps_per_second for c in found))
    now = budget.STEPS_PER_SECOND[args.engine]
    print(
        f"STEPS_PER_SECOND[{args.engine!r}] to use: {constant:.2g} (now {now:.2g}: "
        f"{constant / now:.1f}x); READOUT_SECONDS now {budget.READOUT_SECONDS}; "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
