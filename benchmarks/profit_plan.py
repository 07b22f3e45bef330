"""Speed of ``funnelsim plan --objective profit`` on checkout (4 variants, 30 lengths).

Times :func:`funnelsim.profit_planning.plan_profit` as the CLI calls it (20 engine
replications for the world, 1,000 simulated tests per length under the Bayes rule, the
ship/keep rule on the first 300) on 2 workers, once with the scenario's single world
and once with an uncertain world sampler (every variant's profit per visitor drawn
with a 10% standard deviation), and prints each against the 30 s target. The parts:
the engine's world, the Bayes-rule curve (NumPy) and the ship/keep rule (one exact
Beta readout per simulated test and length).

Run from the repository root: ``PYTHONPATH=src python benchmarks/profit_plan.py``.
"""

import time
from pathlib import Path

import numpy as np

from funnelsim.execution import Execution
from funnelsim.preposterior import BernoulliResponses, profit_curve
from funnelsim.profit_planning import fixed_world, plan_profit, scenario_world
from funnelsim.scenario import load_scenario

CHECKOUT = Path(__file__).resolve().parents[1] / "scenarios" / "checkout.yaml"
WORKERS = 2
TARGET_S = 30.0


def timed(label: str, work):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = work()
    print(f"{label:<52} {time.perf_counter() - start:6.1f} s")
    return result


def main() -> None:
    scenario = load_scenario(CHECKOUT)
    world = timed(
        "engine world (20 replications)",
        lambda: scenario_world(scenario, execution=Execution(workers=WORKERS)),
    )
    values = world.conversion * world.value_per_conversion

    def uncertain(n: int, rng: np.random.Generator) -> np.ndarray:
        return values * (1 + 0.1 * rng.standard_normal((n, values.size)))

    responses = BernoulliResponses(tuple(world.value_per_conversion))
    visitors = np.arange(30) * 1000
    timed(
        "Bayes-rule curve only (1,000 tests x 30 lengths)",
        lambda: profit_curve(fixed_world(world), responses, visitors, 758_000, 1000),
    )
    for label, sampler in (("single world", None), ("uncertain worlds (10% sd)", uncertain)):
        start = time.perf_counter()
        plan = plan_profit(scenario, execution=Execution(workers=WORKERS), worlds=sampler)
        elapsed = time.perf_counter() - start
        verdict = "ok" if elapsed < TARGET_S else "OVER"
        print(
            f"plan_profit, {label}: {len(plan.days)} lengths, 4 variants: {elapsed:.1f} s "
            f"(target < {TARGET_S:.0f} s on {WORKERS} workers: {verdict}); best "
            f"{plan.optimal_days} days, EVPI {plan.curve.evpi.mean:,.0f} {plan.currency}"
        )


if __name__ == "__main__":
    main()
