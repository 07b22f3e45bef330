"""Possible worlds: every uncertain assumption of a scenario set to one value.

A scenario's uncertain quantities (``{uncertain: ...}``, see
:mod:`funnelsim.uncertainty`) are what we do not know. A *world* fixes each of them;
in a world the scenario is an ordinary point-value scenario, and every variant of
that world sees the same values (a variant that overrides an assumption with its
own uncertain value has its own, independent coordinate).

What a variant is worth in a world is computed exactly where the funnel allows it:
without queues or referrals a visitor's fate depends only on their cell (segment,
channel, preferred options), so conversion, revenue and CLV per visitor are sums
over cells of the cell's share x the product of its stages' continue probabilities
(the aggregate engine's :func:`~funnelsim.engine.aggregate.continue_probabilities`)
x the expected order value and lifetime value (:func:`funnelsim.clv.expected_clv`).
No replication noise enters a world's value. Funnels with queues or referrals have
no such closed form; there a world's value is simulated on one replication of
common random numbers (the same visitors in every world), so it carries that noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from funnelsim import clv
from funnelsim.engine import simpy_engine
from funnelsim.engine.aggregate import continue_probabilities
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.engine.model import CompiledFunnel, compile_funnel
from funnelsim.scaffold import uses_coefficient
from funnelsim.scenario import Scenario
from funnelsim.uncertainty import Assumption, draw_values

FloatArray = NDArray[np.float64]
WORLD_METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor")
REPLICATIONS_PER_WORLD = 1  # where a world must be simulated (queues, referrals): same visitors


def _acts(scenario: Scenario, assumption: Assumption) -> bool:
    """False for a calibrated default's range whose coefficient no variant's stage uses
    (a response slope without response decay): it cannot change anything."""
    if not assumption.default:
        return True
    _, group, field = assumption.field.split(".")
    return any(uses_coefficient(scenario.variant(v), group, field) for v in scenario.variant_names)


def scenario_assumptions(scenario: Scenario) -> list[Assumption]:
    """Every uncertain assumption of ``scenario``'s variants that can act on it, each key
    once (the control's first); none when ``experiment.assumptions`` is ``fixed``."""
    if scenario.experiment.assumptions == "fixed":
        return []
    keyed: dict[str, Assumption] = {}
    for name in scenario.variant_names:
        for assumption in scenario.variant(name).assumptions:
            keyed.setdefault(assumption.key, assumption)
    return [a for a in keyed.values() if _acts(scenario, a)]


@dataclass(frozen=True)
class Worlds:
    """Values of every assumption (columns) in each of a set of worlds (rows)."""

    assumptions: tuple[Assumption, ...]
    values: FloatArray  # (worlds, assumptions)

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.assumptions]

    def __len__(self) -> int:
        return len(self.values)

    def world(self, index: int) -> dict[str, float]:
        """Each assumption's value in world ``index``, by key."""
        return dict(zip(self.keys, self.values[index].tolist(), strict=True))


@dataclass(frozen=True)
class WorldValues:
    """What every variant is worth in each of a set of worlds.

    Attributes:
        worlds: The worlds (each assumption's value in each).
        values: (worlds, variants, WORLD_METRICS), control first.
        simulated: Whether the values were simulated on one replication each (queues,
            referrals) rather than computed exactly.
    """

    worlds: Worlds
    values: FloatArray
    simulated: bool

    def metric(self, name: str) -> FloatArray:
        """(worlds, variants): every variant's ``name`` (one of WORLD_METRICS) per world."""
        return np.asarray(self.values[:, :, WORLD_METRICS.index(name)])


def sample_worlds(scenario: Scenario, n: int, seed: int) -> Worlds:
    """``n`` quasi-random worlds (randomised Halton points through each assumption's
    inverse CDF) of ``scenario``'s uncertain assumptions, reproducible from ``seed``.

    >>> from funnelsim.scenario import parse_scenario
    >>> s = parse_scenario("name: x\\ntraffic: {visitors_per_day: 10, days: 1}\\n"
    ...     "stages: [{name: buy, rate: {uncertain: uniform, low: 0.1, high: 0.3}}]\\n"
    ...     "value: {order_value: 50}")
    >>> worlds = sample_worlds(s, 8, seed=1)
    >>> worlds.keys, worlds.values.shape
    (['stages.buy.rate'], (8, 1))
    """
    assumptions = scenario_assumptions(scenario)
    return Worlds(tuple(assumptions), draw_values(assumptions, n, seed))


def central_world(scenario: Scenario) -> dict[str, float]:
    """Every assumption at its central value: the world "if the stated values hold"."""
    return {a.key: a.central for a in scenario_assumptions(scenario)}


# --------------------------------------------------------------------------- realising


Updates = dict[str, "Updates | float"]


def _update_tree(fields: Mapping[str, float]) -> Updates:
    """``{"a.b.c": 1.0, "a.b.d": 2.0}`` as ``{"a": {"b": {"c": 1.0, "d": 2.0}}}``."""
    tree: Updates = {}
    for dotted, value in fields.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = value
    return tree


def _apply(node: Any, updates: Updates | float) -> Any:
    """A copy of ``node`` with the values of ``updates`` set, each model on the way copied
    once (no validation: world values lie in their field's valid range by construction)."""
    if not isinstance(updates, dict):
        return updates
    if isinstance(node, BaseModel):
        return node.model_copy(
            update={key: _apply(getattr(node, key), sub) for key, sub in updates.items()}
        )
    if isinstance(node, dict):
        return {**node, **{key: _apply(node[key], sub) for key, sub in updates.items()}}
    return [_apply(item, updates[item.name]) if item.name in updates else item for item in node]


def realise(variant: Scenario, world: Mapping[str, float]) -> Scenario:
    """A resolved variant with each of its assumptions set to its value in ``world``."""
    fields = {a.field: world[a.key] for a in variant.assumptions if a.key in world}
    return _apply(variant, _update_tree(fields)) if fields else variant  # type: ignore[no-any-return]


def world_funnels(scenario: Scenario, world: Mapping[str, float]) -> list[CompiledFunnel]:
    """Every variant of ``scenario`` in ``world``, compiled, control first."""
    return [compile_funnel(realise(scenario.variant(v), world)) for v in scenario.variant_names]


# --------------------------------------------------------------------------- values


def _cell_values(funnel: CompiledFunnel) -> tuple[FloatArray, FloatArray]:
    """(segments, channels): the expected first order and lifetime value of a customer
    (computed once per distinct retention and order value, most funnels have one)."""
    scenario = funnel.scenario
    registered = clv.registration_share(scenario)
    n_g, n_c = funnel.cell_shape[:2]
    first, lifetime = np.zeros((n_g, n_c)), np.zeros((n_g, n_c))
    known: dict[tuple[int, int], tuple[float, float]] = {}
    for g, c in np.ndindex(n_g, n_c):
        segment, channel = funnel.segments[g], funnel.channels[c]
        retention, order_value = clv.customer_terms(scenario, segment, channel)
        key = (id(retention), id(order_value))
        if key not in known:
            mean = order_value.mean_value
            known[key] = (
                mean,
                sum(
                    weight
                    * clv.expected_clv(clv.lifetime_model(scenario, segment, channel, flag), mean)
                    for flag, weight in ((False, 1.0 - registered), (True, registered))
                    if weight > 0
                ),
            )
        first[g, c], lifetime[g, c] = known[key]
    return first, lifetime


def _per_visitor(
    buyers: FloatArray, funnel: CompiledFunnel, values: bool = True
) -> tuple[float, float, float]:
    """Conversion, revenue and CLV per visitor from buyers per visitor by (segment,
    channel); NaN revenue and CLV unless ``values``."""
    if not values:
        return float(buyers.sum()), math.nan, math.nan
    first, lifetime = _cell_values(funnel)
    return float(buyers.sum()), float((buyers * first).sum()), float((buyers * lifetime).sum())


def expected_metrics(funnel: CompiledFunnel, values: bool = True) -> tuple[float, float, float]:
    """Exact expected conversion, revenue and CLV per visitor of an uncoupled funnel
    (no queues, no referrals): sums over cells, see the module docstring. Without
    ``values`` only conversion is computed (revenue and CLV are NaN)."""
    buy = continue_probabilities(funnel).prod(axis=0)
    n_g, n_c = funnel.cell_shape[:2]
    buyers = (funnel.cell_probabilities * buy).reshape(n_g, n_c, -1).sum(axis=2)
    return _per_visitor(buyers, funnel, values)


def _simulated_metrics(scenario: Scenario, funnels: list[CompiledFunnel], seed: int) -> FloatArray:
    """(variants, WORLD_METRICS) of coupled funnels (queues, referrals), simulated by SimPy:
    buyers per visitor by (segment, channel) over a few replications on common random
    numbers, valued at each cell's expected order and lifetime value."""
    traffic = scenario.traffic
    buyers = np.zeros((len(funnels), *funnels[0].cell_shape[:2]))
    visitors = np.zeros(len(funnels))
    shares = [1.0 / len(funnels)] * len(funnels)
    for rep in replication_seeds(seed, REPLICATIONS_PER_WORLD):
        draws = VisitorDraws(rep, traffic.visitors_per_day, traffic.days)
        outcomes = simpy_engine.simulate_variants(funnels, draws, shares).outcomes
        for v, outcome in enumerate(outcomes):
            buyers[v] += outcome.reached[-1]
            visitors[v] += outcome.visitors
    return np.array(
        [
            _per_visitor(b / max(n, 1.0), f)
            for b, n, f in zip(buyers, visitors, funnels, strict=True)
        ]
    )


def world_metrics(
    scenario: Scenario, world: Mapping[str, float], seed: int = 0, values: bool = True
) -> FloatArray:
    """(variants, WORLD_METRICS): what each variant is worth in ``world``, control first.
    Exact for uncoupled funnels; otherwise simulated on visitors seeded by ``seed``
    (the same visitors in every world). Without ``values``, conversion only."""
    funnels = world_funnels(scenario, world)
    if any(f.couples_visitors for f in funnels):
        return _simulated_metrics(scenario, funnels, seed)
    return np.array([expected_metrics(f, values) for f in funnels])
