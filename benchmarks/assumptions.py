"""Assumption-uncertainty benchmarks: the speed targets of issue 13, as ratios.

Usage: .venv/bin/python benchmarks/assumptions.py [--workers 2] [--samples 4096]

Targets, on scenarios/checkout.yaml with every default coefficient uncertain, each
printed as a TARGET line (``benchmarks/targets.py``):
  1. ``run`` with the assumptions uncertain costs at most 2x the same run with them
     fixed (``--assumptions fixed``: the point-value run);
  2. ``sensitivity`` with at least 4,096 base samples finishes in under 60 s on 2 cores
     (reported also as a ratio to the fixed run).

If the bundled checkout scenario carries no uncertain assumption (the calibrated
defaults' ranges not yet in), each calibrated coefficient its stages use is made
uncertain here: a beta (probabilities) or lognormal (other positive values) with its
default as mean and a 20% coefficient of variation. Timings are wall times
taken side by side in this process, so a busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import targets
import yaml
from targets import Target

from funnelsim.execution import Execution
from funnelsim.experiment import run_experiment
from funnelsim.scenario import Coefficients, Scenario, load_scenario, parse_scenario
from funnelsim.sensitivities import sensitivity

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = ROOT / "scenarios" / "checkout.yaml"
RELATIVE_SD = 0.2
COMMAND = "python benchmarks/assumptions.py"


def _uncertain(value: float, probability: bool) -> dict[str, Any]:
    kind = "beta" if probability else "lognormal"
    return {"uncertain": kind, "mean": value, "sd": value * RELATIVE_SD}


CALIBRATED_IN_CHECKOUT = (  # the calibrated coefficients checkout.yaml's stages use
    ("form_fields", "hazard_per_field"),
    ("login_wall", "required"),
    ("page_load", "max_extra"),
    ("payment", "abandon_if_missing"),
)


def every_default_uncertain(path: Path) -> Scenario:
    """The scenario of ``path``; if it has no uncertain assumption, with each calibrated
    coefficient its stages use uncertain (see the module docstring)."""
    scenario = load_scenario(path)
    if scenario.assumptions:
        return scenario
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    defaults = Coefficients()
    for group, name in CALIBRATED_IN_CHECKOUT:
        value = getattr(getattr(defaults, group), name)
        uncertain = _uncertain(value, probability=value < 1)
        data.setdefault("coefficients", {}).setdefault(group, {})[name] = uncertain
    return parse_scenario(yaml.safe_dump(data, sort_keys=False), str(path))


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (pool workers)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds and the result of ``work()``."""
    start, cpu = time.perf_counter(), _cpu_s()
    result = work()
    return time.perf_counter() - start, _cpu_s() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    uncertain = every_default_uncertain(CHECKOUT)
    fixed = uncertain.with_overrides({"experiment.assumptions": "fixed"})
    keys = [a.key for a in uncertain.assumptions]
    print(f"{len(keys)} uncertain assumptions: {', '.join(keys)}")
    fixed_s, fixed_cpu, _ = timed(
        lambda: run_experiment(fixed, None, Execution(workers=args.workers))
    )
    run_s, run_cpu, result = timed(
        lambda: run_experiment(uncertain, None, Execution(workers=args.workers))
    )
    worlds = result.assumptions.worlds if result.assumptions else 0
    targets.report(
        Target(
            "run checkout.yaml, assumptions uncertain",
            f"{run_s:.1f} s, CPU {run_cpu:.1f} s ({worlds} worlds)",
            f"{fixed_s:.1f} s, CPU {fixed_cpu:.1f} s (assumptions fixed)",
            f"{run_s / fixed_s:.2f}x",
            "<= 2x the fixed run",
            run_s <= 2 * fixed_s,
            f"wall time (and CPU of all processes) of run_experiment, 200 replications on "
            f"{args.workers} workers, "
            "with the worlds and the tests replayed per world, against --assumptions fixed",
            COMMAND,
        )
    )
    sens_s, sens_cpu, analysis = timed(
        lambda: sensitivity(
            uncertain,
            "short_form",
            base_samples=args.samples,
            execution=Execution(workers=args.workers),
        )
    )
    evaluations = args.samples * (len(analysis.assumptions) + 2)
    targets.report(
        Target(
            "sensitivity checkout.yaml --variant short_form",
            f"{sens_s:.1f} s, CPU {sens_cpu:.1f} s ({evaluations:,} worlds)",
            f"{fixed_s:.1f} s (run, assumptions fixed)",
            f"{sens_s / fixed_s:.2f}x",
            f"< 60 s on 2 cores, >= 4,096 base samples ({args.samples})",
            sens_s < 60 and args.samples >= 4096,
            f"wall time (and CPU of all processes) of the Sobol indices of "
            f"{len(analysis.assumptions)} assumptions and "
            f"the flips, on {args.workers} workers",
            COMMAND,
        )
    )
    print(repr(analysis))


if __name__ == "__main__":
    main()
