"""A request priced with the engine that would run it, and refused beyond the limits.

:mod:`funnelsim.budget` prices a request for a given engine; this module chooses the
engine as the run would (the variants compiled once, :func:`compile_variants`) and
raises :class:`TooLargeError` for a request that should not start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from funnelsim import budget
from funnelsim.budget import TooLargeError
from funnelsim.execution import SERIAL, Execution
from funnelsim.experiment.engines import choose_engine, compile_variants
from funnelsim.scenario.schema import Scenario


def estimate_cost(
    scenario: Scenario,
    replications: int,
    execution: Execution = SERIAL,
    points: Sequence[Mapping[str, Any]] | None = None,
) -> budget.Cost:
    """The estimated cost of ``replications`` replications of ``scenario`` on the engine
    ``execution`` chooses, at every grid point of a sweep when ``points`` are given."""
    engine = choose_engine(compile_variants(scenario), execution.engine)
    workers = execution.processes
    if points is None:
        return budget.estimate(scenario, replications, engine, workers)
    return budget.estimate_sweep(scenario, points, replications, engine, workers)


def check_cost(
    scenario: Scenario,
    replications: int,
    execution: Execution = SERIAL,
    points: Sequence[Mapping[str, Any]] | None = None,
) -> budget.Cost:
    """The estimated cost (see :func:`estimate_cost`); TooLargeError if it is beyond the
    limits of :func:`funnelsim.budget.refusal`."""
    cost = estimate_cost(scenario, replications, execution, points)
    problem = budget.refusal(cost)
    if problem:
        raise TooLargeError(
            f"too large: {budget.describe(cost)} on {execution.processes} worker(s); {problem}",
            "allow_large",
        )
    return cost
