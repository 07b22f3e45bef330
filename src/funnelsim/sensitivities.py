"""Which assumption drives the decision: global sensitivity of a variant's uplift.

``funnelsim sensitivity`` asks, of a scenario whose assumptions are uncertain
(``{uncertain: ...}``), how much of the spread of a variant's uplift over control
(or, for the control, of its metric) each assumption explains. Sobol first-order
indices say how much an assumption explains alone, total indices how much it
explains with all its interactions; both come with bootstrap intervals
(:mod:`funnelsim.sobol`, through SALib). Every world is valued exactly where the
funnel allows (:mod:`funnelsim.worlds`), so the indices carry no replication noise.

Sobol indices apportion variance between *independent* inputs. A calibrated
scenario's assumptions are drawn jointly from its posterior by ``run``
(:class:`~funnelsim.uncertainty.JointDraws`); here each is varied over its marginal
spec alone, independently of the others, and the result says so with the strongest
correlation the joint draws have (:func:`independence_note`).

"What flips the decision" moves each leading assumption across its range, the
others at their central values, and reports where the best variant (by the same
metric) stops being the one it is at the central values, if it ever does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from funnelsim import budget, parallel
from funnelsim.errors import ArgumentError
from funnelsim.execution import SERIAL, Execution
from funnelsim.scenario import Scenario
from funnelsim.sobol import SobolIndices, analyze, saltelli_points
from funnelsim.uncertainty import Assumption, values_at
from funnelsim.worlds import (
    WORLD_METRICS,
    central_world,
    scenario_assumptions,
    world_funnels,
    world_metrics,
)

if TYPE_CHECKING:
    import pandas

FloatArray = NDArray[np.float64]
Metric = Literal["conversion", "revenue_per_visitor", "clv_per_visitor"]
DEFAULT_BASE_SAMPLES = 4096
LEADING = 3  # assumptions whose decision flips are searched
LEADING_MIN_TOTAL = 0.01  # ... if they explain at least this share of the variance
FLIP_GRID = 41  # quantiles of an assumption's range tried when looking for a flip
FLIP_TAIL = 0.005  # the range searched runs from this quantile to 1 - this


@dataclass(frozen=True)
class Flip:
    """Where, moving one assumption across its range (others central), the best variant
    changes; ``value`` is None when it never does inside the range searched."""

    assumption: str
    best: str  # at the central values
    value: float | None = None
    quantile: float | None = None
    becomes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "assumption": self.assumption,
            "best_at_central": self.best,
            "value": self.value,
            "quantile": self.quantile,
            "becomes": self.becomes,
        }

    def describe(self) -> str:
        if self.value is None:
            return f"{self.assumption}: {self.best} stays best across its range"
        return (
            f"{self.assumption}: {self.becomes} becomes best instead of {self.best} "
            f"at {self.value:.4g} (quantile {self.quantile:.0%} of its range)"
        )


@dataclass(frozen=True)
class SensitivityResult:
    """Sobol indices of one quantity over a scenario's uncertain assumptions."""

    scenario: str
    metric: str
    variant: str
    control: str
    assumptions: tuple[Assumption, ...]
    indices: SobolIndices
    flips: tuple[Flip, ...]
    base_samples: int
    central: float  # the quantity at the central values
    note: str = ""  # why the indices treat jointly drawn assumptions as independent

    @property
    def quantity(self) -> str:
        """What the indices apportion, in words."""
        if self.variant == self.control:
            return f"{self.metric} of {self.variant}"
        return f"uplift in {self.metric} of {self.variant} over {self.control}"

    def __repr__(self) -> str:
        lines = [
            f"SensitivityResult({self.scenario!r}: {self.quantity}, "
            f"{self.base_samples} base samples, bootstrap {self.indices.level:.0%} intervals)"
        ]
        for name in self.indices.ranked():
            first, total = self.indices.of(name)
            lines.append(
                f"  {name}: total {total.mean:.3f} [{total.low:.3f}, {total.high:.3f}], "
                f"first {first.mean:.3f} [{first.low:.3f}, {first.high:.3f}]"
            )
        lines += [f"  flip: {flip.describe()}" for flip in self.flips]
        lines += [f"  note: {self.note}"] if self.note else []
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The ``sensitivity.json`` document."""
        return {
            "metric": self.metric,
            "variant": self.variant,
            "indices": {
                name: {
                    "first": self.indices.of(name)[0].to_dict(),
                    "total": self.indices.of(name)[1].to_dict(),
                }
                for name in self.indices.ranked()
            },
            "flips": [flip.to_dict() for flip in self.flips],
            "interval": {"kind": "bootstrap", "level": self.indices.level},
            "base_samples": self.base_samples,
            "note": self.note,
        }

    def to_frame(self) -> pandas.DataFrame:
        """One row per assumption, the largest total index first."""
        import pandas as pd

        rows = []
        for name in self.indices.ranked():
            first, total = self.indices.of(name)
            rows.append(
                {
                    "assumption": name,
                    "total": total.mean,
                    "total_low": total.low,
                    "total_high": total.high,
                    "first": first.mean,
                    "first_low": first.low,
                    "first_high": first.high,
                }
            )
        return pd.DataFrame(rows).set_index("assumption")


# --------------------------------------------------------------------------- valuing worlds


def _quantity(values: FloatArray, variant: int, metric: int) -> float:
    """The analysed quantity from a world's (variants, metrics) values: the variant's
    relative uplift over control (row 0), or row 0's metric when ``variant`` is 0."""
    if variant == 0:
        return float(values[0, metric])
    return float(values[variant, metric] / values[0, metric] - 1.0)


def _value_batch(
    scenario: Scenario,
    assumptions: Sequence[Assumption],
    variant: int,
    metric: int,
    points: list[FloatArray],
) -> list[float]:
    """The quantity in the world at each unit-cube point of the batch."""
    keys = [a.key for a in assumptions]
    values = values_at(assumptions, np.array(points))
    return [
        _quantity(
            world_metrics(scenario, dict(zip(keys, row, strict=True)), values=metric > 0),
            variant,
            metric,
        )
        for row in values.tolist()
    ]


def _pair(scenario: Scenario, variant: str) -> Scenario:
    """``scenario`` with only its control and ``variant`` (the control alone if they agree)."""
    keep = dict.fromkeys([scenario.control, variant])
    data = scenario.model_dump(mode="python")
    data["variants"] = {name: scenario.variants[name] for name in keep}
    data["experiment"]["split"] = "equal"
    pair = Scenario.model_validate(data)
    pair._assumptions = dict(scenario._assumptions)
    pair._resolved = {name: scenario.variant(name) for name in keep}
    return pair


# --------------------------------------------------------------------------- flips


def _best(values: FloatArray, metric: int) -> int:
    return int(np.argmax(values[:, metric]))


def _first_change(winners: list[int], start: int, best: int) -> tuple[int, int] | None:
    """Moving out from grid point ``start`` both ways, the nearest pair of neighbouring
    points (inside, outside) where the winner stops being ``best``."""
    steps = []
    for direction in (-1, 1):
        i = start
        while 0 <= i + direction < len(winners):
            if winners[i + direction] != best:
                steps.append((abs(i + direction - start), i, i + direction))
                break
            i += direction
    return min(steps)[1:] if steps else None


def _flip(scenario: Scenario, assumption: Assumption, metric: int, best: int) -> Flip:
    """Move ``assumption`` across its range, the rest central; where does the best change?

    The range (quantiles FLIP_TAIL to 1 - FLIP_TAIL) is scanned on a grid; the change
    nearest the central value is then located exactly (Brent's method on the difference
    between the two variants' values)."""
    from scipy.optimize import brentq

    names = scenario.variant_names
    world = central_world(scenario)

    def values_at_value(x: float) -> FloatArray:
        world[assumption.key] = x
        return world_metrics(scenario, world)

    quantiles = np.linspace(FLIP_TAIL, 1.0 - FLIP_TAIL, FLIP_GRID)
    grid = assumption.values(quantiles)
    winners = [_best(values_at_value(float(x)), metric) for x in grid]
    start = int(np.argmin(np.abs(grid - assumption.central)))
    if winners[start] != best:  # the central value sits between two grid points
        winners[start] = best
    change = _first_change(winners, start, best)
    if change is None:
        return Flip(assumption.key, names[best])
    inside, outside = change
    other = winners[outside]

    def gap(x: float) -> float:
        values = values_at_value(x)
        return float(values[best, metric] - values[other, metric])

    value = float(brentq(gap, float(grid[inside]), float(grid[outside]), xtol=1e-12))
    cdf = assumption.spec.distribution(assumption.bounds).cdf(value)
    return Flip(assumption.key, names[best], value, float(cdf), names[other])


# --------------------------------------------------------------------------- the analysis


def sensitivity(
    scenario: Scenario,
    variant: str | None = None,
    metric: Metric = "conversion",
    base_samples: int = DEFAULT_BASE_SAMPLES,
    execution: Execution = SERIAL,
    allow_large: bool = False,
) -> SensitivityResult:
    """Sobol indices of ``variant``'s uplift in ``metric`` over control (of the control's
    ``metric`` when ``variant`` is the control) over the scenario's uncertain assumptions.

    ``variant`` defaults to the best variant at the central values. Funnels with queues
    or referrals are refused (ArgumentError): their worlds have no exact value. The
    ``base_samples x (assumptions + 2)`` worlds (a power of 2 base) are valued here
    in this process, on local processes or on Dask (``execution``; its seed overrides the
    scenario's, its engine is unused); the numbers do not depend on which. Without
    ``allow_large`` a request beyond the limits is refused with its estimate
    (:class:`~funnelsim.budget.TooLargeError`) before any world is valued.
    """
    names = scenario.variant_names
    metric_index = WORLD_METRICS.index(metric)
    if any(f.couples_visitors for f in world_funnels(scenario, central_world(scenario))):
        raise ArgumentError(
            "queues or referrals: each world would need its own simulation, too many for "
            "Sobol indices; `funnelsim run` gives the intervals over assumptions"
        )
    central = world_metrics(scenario, central_world(scenario))
    best = _best(central, metric_index)
    chosen = names[best] if variant is None else variant
    if chosen not in names:
        raise ArgumentError(
            f"variant: no variant {chosen!r}; variants: {', '.join(names)}", "variant"
        )
    pair = _pair(scenario, chosen)
    assumptions = scenario_assumptions(pair)
    if not assumptions:
        fixed = scenario.experiment.assumptions == "fixed"
        raise ArgumentError(
            "no uncertain assumption: "
            + ("experiment.assumptions is fixed" if fixed else "write one as {uncertain: ...}")
        )
    if not allow_large:
        budget.check_work(budget.sensitivity_work(base_samples, len(assumptions)))
    seed = execution.seed_or(scenario.seed)
    points = saltelli_points(len(assumptions), base_samples, seed)
    work = functools.partial(
        _value_batch, pair, assumptions, len(pair.variant_names) - 1, metric_index
    )
    outputs = parallel.map_batches(
        work, list(points), execution.processes, execution.dask, execution.progress
    )
    indices = analyze([a.key for a in assumptions], np.array(outputs), seed)
    leading = [next(a for a in assumptions if a.key == key) for key in indices.ranked()]
    flips = tuple(
        _flip(scenario, a, metric_index, best)
        for a in leading[:LEADING]
        if indices.of(a.key)[1].mean >= LEADING_MIN_TOTAL
    )
    return SensitivityResult(
        scenario=scenario.name,
        metric=metric,
        variant=chosen,
        control=scenario.control,
        assumptions=tuple(assumptions),
        indices=indices,
        flips=flips,
        base_samples=base_samples,
        central=_quantity(central, names.index(chosen), metric_index),
        note=independence_note(assumptions),
    )


def independence_note(assumptions: Sequence[Assumption]) -> str:
    """Why the indices treat the assumptions with joint draws (a posterior) as
    independent, with the strongest correlation of those draws; "" when none has any."""
    joints = {id(a.joint): a.joint for a in assumptions if a.joint is not None}
    if not joints:
        return ""
    notes = []
    for joint in joints.values():
        keys = [a.key for a in assumptions if a.joint is joint]
        note = f"{len(keys)} assumption(s) jointly drawn from {joint.source}"
        if len(keys) > 1:
            columns = np.column_stack([joint.column(k) for k in keys])
            with np.errstate(divide="ignore", invalid="ignore"):
                correlation = np.nan_to_num(np.corrcoef(columns, rowvar=False))
            np.fill_diagonal(correlation, 0.0)
            i, j = np.unravel_index(np.argmax(np.abs(correlation)), correlation.shape)
            note += f" (strongest correlation {correlation[i, j]:+.2f}: {keys[i]}, {keys[j]})"
        notes.append(note)
    return (
        "Sobol indices need independent inputs: each assumption varied over its marginal "
        f"spec alone, the joint draws' correlations left out; {'; '.join(notes)}."
    )
