"""Service-desk benchmark: the lead funnel with office hours and priorities (issue 17).

Usage: .venv/bin/python benchmarks/service.py [--replications N] [--workers N]

Runs the bundled ``lead_funnel`` template (28 days, two reps in office hours, leads
ranked by score, an auto-reply; four variants) for 100 replications on 2 local worker
processes, as ``funnelsim run`` does (its 32 simulated worlds of the uncertain
assumptions included), and prints the wall time, the CPU time (user + sys) of this
process and its workers, and the machine's load average at the start and the end,
which a shared machine inflates. Targets: under 20 s wall on 2 cores, and under 10 s
of CPU so that it holds with margin.

A second figure isolates the engine: one replication of every variant
(``simulate_variants``, as a run calls it), CPU time of this process, today's engine
against the engine before the service speed work (:data:`BEFORE`: its SimPy engine,
service desks and schedules, loaded from git by ``benchmarks/baseline.py``) on the
same draws in this process, with a check that both give identical results. Every
figure prints a TARGET line (``benchmarks/targets.py``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import time
import types

import baseline
import targets
from targets import Target

from funnelsim import scaffold
from funnelsim.engine import service, simpy_engine
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.execution import Execution
from funnelsim.experiment import compile_variants, run_experiment
from funnelsim.scenario import parse_scenario

TARGET_S = 20.0
TARGET_CPU_S = 10.0
BEFORE = "0a578db"
"""main before the service speed work (fewer SimPy events per lead)."""
ENGINE_MODULES = ("simpy_engine", "service", "schedules")


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def full_run(replications: int, workers: int) -> None:
    """``run_experiment`` on the template, as ``funnelsim run --workers`` would."""
    scenario = parse_scenario(scaffold.template_text("lead_funnel"), "lead_funnel.yaml")
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), _cpu_s()
    result = run_experiment(scenario, replications, Execution(workers=workers))
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    loads = f"load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    name = f"lead funnel, office hours and priorities, {replications} replications"
    worlds = result.assumptions.worlds if result.assumptions is not None else 0
    includes = f"{len(result.variants)} variants x 28 days and {worlds} simulated worlds"
    targets.report(
        Target(
            name,
            f"{wall:.1f} s",
            "-",
            "-",
            f"< {TARGET_S:.0f} s on {workers} cores",
            wall < TARGET_S,
            f"{includes}, {workers} workers, wall clock (CPU {cpu:.1f} s, {loads})",
            "python benchmarks/service.py",
        )
    )
    targets.report(
        Target(
            f"{name}, CPU",
            f"{cpu:.1f} s",
            "-",
            "-",
            f"< {TARGET_CPU_S:.0f} s",
            cpu < TARGET_CPU_S,
            f"{includes}, user + sys of this process and its {workers} workers ({loads})",
            "python benchmarks/service.py",
        )
    )


def _engine_before() -> types.ModuleType:
    """The SimPy engine at :data:`BEFORE` with that commit's service desks and schedules
    (their results in today's classes, so that both pickle alike)."""
    modules = {
        name: baseline.load(f"src/funnelsim/engine/{name}.py", BEFORE) for name in ENGINE_MODULES
    }
    modules["service"].WaitSample = service.WaitSample  # the same record, today's class
    engine = modules["simpy_engine"]
    engine.service, engine.schedules = modules["service"], modules["schedules"]
    return engine


def engine_only(repeats: int = 5) -> None:
    """One replication of every variant, today's engine against :data:`BEFORE`."""
    scenario = parse_scenario(scaffold.template_text("lead_funnel"), "lead_funnel.yaml")
    funnels = compile_variants(scenario)
    shares = list(scenario.split_shares().values())
    traffic = scenario.traffic
    old = _engine_before()
    best = {"now": float("inf"), "before": float("inf")}
    identical = True
    for seed in replication_seeds(1, repeats):
        draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
        runs = {}
        for name, module in (("before", old), ("now", simpy_engine)):
            start = time.process_time()
            runs[name] = module.simulate_variants(funnels, draws, shares)
            best[name] = min(best[name], time.process_time() - start)
        identical &= pickle.dumps(runs["now"]) == pickle.dumps(runs["before"])
    targets.report(
        Target(
            "lead funnel, one replication in the SimPy engine",
            f"{best['now'] * 1000:.0f} ms",
            f"{best['before'] * 1000:.0f} ms",
            f"x{best['before'] / best['now']:.2f}",
            "-",
            None,
            f"{len(funnels)} variants, {draws.n_visitors:,} visitors; CPU time, best of "
            f"{repeats} replications, before: {BEFORE}; identical results: {identical}",
            "python benchmarks/service.py",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    engine_only()
    full_run(args.replications, args.workers)


if __name__ == "__main__":
    main()
