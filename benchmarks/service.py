"""Service-desk benchmark: the lead funnel with office hours and priorities (issue 17).

Usage: .venv/bin/python benchmarks/service.py [--replications N] [--workers N]

Runs the bundled ``lead_funnel`` template (28 days, two reps in office hours, leads
ranked by score, an auto-reply; four variants) for 100 replications on 2 local worker
processes, as ``funnelsim run`` does, and prints the wall time, the CPU time of this
process and its children, and the machine's load average, which a shared machine
inflates. Target: under 20 s on 2 cores.

A second figure isolates the engine: one replication of every variant
(``simulate_variants``, as a run calls it), CPU time of this process, today's engine
against the engine before the issue 17 speed work (:data:`BEFORE`, loaded from git by
``benchmarks/baseline.py``) on the same draws in this process, with a check that both
give identical results. Both print a TARGET line (``benchmarks/targets.py``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import time

import baseline
import targets
from targets import Target

from funnelsim import scaffold
from funnelsim.engine import simpy_engine
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.execution import Execution
from funnelsim.experiment import compile_variants, run_experiment
from funnelsim.scenario import parse_scenario

TARGET_S = 20.0
BEFORE = "1632359"
"""main before the issue 17 speed work on the SimPy engine."""


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
    targets.report(
        Target(
            f"lead funnel, office hours and priorities, {replications} replications",
            f"{wall:.1f} s",
            "-",
            "-",
            f"< {TARGET_S:.0f} s on {workers} cores",
            wall < TARGET_S,
            f"{len(result.variants)} variants x 28 days, {workers} workers, wall clock "
            f"(CPU {cpu:.1f} s, load {load:.1f} at the start)",
            "python benchmarks/service.py",
        )
    )


def engine_only(repeats: int = 5) -> None:
    """One replication of every variant, today's engine against :data:`BEFORE`."""
    scenario = parse_scenario(scaffold.template_text("lead_funnel"), "lead_funnel.yaml")
    funnels = compile_variants(scenario)
    shares = list(scenario.split_shares().values())
    traffic = scenario.traffic
    old = baseline.load("src/funnelsim/engine/simpy_engine.py", BEFORE)
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
