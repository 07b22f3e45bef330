"""Speed of ``funnelsim plan --objective profit`` on checkout (4 variants, 30 lengths).

Usage: .venv/bin/python benchmarks/profit_plan.py [--workers 2]

Times :func:`funnelsim.profit_planning.plan_profit` as the CLI calls it (20 engine
replications for the engine's estimate, the scenario's worlds of its uncertain
assumptions, 1,000 simulated tests per length under the Bayes rule, the ship/keep
rule on the first 300) and prints it as a TARGET line (``benchmarks/targets.py``)
against issue 15's goal: under 30 s on 2 cores. The parts are printed below it: the
engine's estimate, the worlds, and the curve with both rules.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import targets
from targets import Target

from funnelsim.execution import Execution
from funnelsim.profit_planning import plan_profit, scenario_world
from funnelsim.propagation import value_worlds
from funnelsim.scenario import load_scenario

CHECKOUT = Path(__file__).resolve().parents[1] / "scenarios" / "checkout.yaml"
TARGET_S = 30.0
TRUTH_REPLICATIONS = 20
COMMAND = "python benchmarks/profit_plan.py"


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds and the result of ``work()``."""
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    scenario = load_scenario(CHECKOUT)
    execution = Execution(workers=args.workers)
    whole, plan = timed(lambda: plan_profit(scenario, execution=execution))
    targets.report(
        Target(
            "plan checkout.yaml --objective profit",
            f"{whole:.1f} s",
            "-",
            "-",
            f"< {TARGET_S:.0f} s on 2 cores",
            whole < TARGET_S,
            f"wall time of plan_profit: {len(plan.days)} lengths, 4 variants, "
            f"{plan.curve.simulations:,} simulated tests in {plan.assumption_worlds} worlds, "
            f"the ship/keep rule on {plan.curve.rule_simulations}, on {args.workers} workers",
            COMMAND,
        )
    )
    engine_s, _ = timed(lambda: scenario_world(scenario, TRUTH_REPLICATIONS, execution))
    worlds_s, _ = timed(lambda: value_worlds(scenario, TRUTH_REPLICATIONS, scenario.seed))
    print(
        f"parts: engine estimate {engine_s:.1f} s, worlds {worlds_s:.1f} s, curve and rules "
        f"{whole - engine_s - worlds_s:.1f} s; best {plan.optimal_days} days, "
        f"EVPI {plan.curve.evpi.mean:,.0f} {plan.currency}"
    )


if __name__ == "__main__":
    main()
