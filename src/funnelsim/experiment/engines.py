"""Which engine simulates a scenario, and its variants compiled once.

:func:`compile_variants` compiles every variant of a scenario once and keeps the
result for the scenario object: choosing the engine, the replications of a run in
this process and the order log all reuse the same compiled funnels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from funnelsim.engine import aggregate, simpy_engine, vectorized
from funnelsim.engine.draws import VisitorDraws
from funnelsim.engine.model import (
    CompiledFunnel,
    VariantRuns,
    compile_funnel,
    refuse_coupled_visitors,
)
from funnelsim.execution import EngineName as EngineName  # re-exported
from funnelsim.scenario.schema import Scenario

COMPILED_SCENARIOS = 8  # scenario objects whose compiled variants are kept

_COMPILED: deque[tuple[Scenario, tuple[CompiledFunnel, ...]]] = deque(maxlen=COMPILED_SCENARIOS)


def choose_engine(funnels: Iterable[CompiledFunnel], engine: EngineName = "auto") -> str:
    """The engine to use: SimPy where any variant shares a resource or feeds referred
    visitors back (see :mod:`funnelsim.engine.referral`), else NumPy.

    ``aggregate`` (counts drawn directly, see :mod:`funnelsim.engine.aggregate`) is
    never chosen automatically: it is for runs where only counts matter and visitors
    are too many to simulate one by one.
    """
    funnels = list(funnels)
    if engine in ("vectorized", "aggregate"):
        refuse_coupled_visitors(funnels, engine)
    if engine == "auto":
        return "simpy" if any(f.couples_visitors for f in funnels) else "vectorized"
    return engine


ENGINES = {"simpy": simpy_engine, "vectorized": vectorized, "aggregate": aggregate}


def simulate_variants(
    funnels: Sequence[CompiledFunnel], draws: VisitorDraws, engine: str, shares: Sequence[float]
) -> VariantRuns:
    """Every variant on one replication's visitors, and the A/B test split by ``shares``."""
    return ENGINES[engine].simulate_variants(funnels, draws, shares)  # type: ignore[no-any-return]


def compile_variants(scenario: Scenario) -> list[CompiledFunnel]:
    """Every variant of ``scenario`` compiled, control first.

    Compiled once per scenario object (like its resolved variants, see
    :meth:`~funnelsim.scenario.Scenario.variant`) and reused by later calls.
    """
    for cached, funnels in tuple(_COMPILED):  # a snapshot: Dask workers may run threads
        if cached is scenario:
            return list(funnels)
    compiled = tuple(compile_funnel(scenario.variant(v)) for v in scenario.variant_names)
    _COMPILED.append((scenario, compiled))
    return list(compiled)
