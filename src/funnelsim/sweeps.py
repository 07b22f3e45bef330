"""Parameter sweeps: run a scenario over a grid of settings and watch the metrics respond.

Think of a sound engineer turning one knob on the mixing desk a notch at a
time and listening after each notch. A sweep turns a knob of the scenario (the
number of checkout form fields, the number of sales reps, a page's load time)
through a range, runs the scenario's replications at every setting, and draws
conversion, revenue and CLV per visitor against the knob with their 95%
intervals. Two knobs turned together give a map (a heat map of the metric).

A knob is any dotted path a variant could override (``stages.checkout.friction.
form_fields``), given as a range ``PATH=START:STOP:STEP`` (both ends included)
or a list ``PATH=a,b,c`` (each value read as YAML: ``3``, ``0.5``, ``optional``).
The sweep changes the *base* scenario; each variant then applies its own
overrides on top, exactly as in ``funnelsim run``, so a variant that sets the
swept path itself stays where it is and shows where it wins and where it loses.

Every grid point uses the same replication seeds (the r-th child of
``SeedSequence(seed)``), so neighbouring points are compared on the same
simulated visitors (common random numbers): a knob with no effect gives
identical numbers, a friction gives a curve that never rises as it grows, and
a point equals ``funnelsim run`` with the same overrides and seed. Each
(grid point, batch of replications) is one pure task, so the result is the
same on one process, a local pool or a Dask cluster.
"""

from __future__ import annotations

import itertools
import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import yaml
from numpy.random import SeedSequence
from numpy.typing import NDArray

from funnelsim import formatting as fmt
from funnelsim.engine.draws import replication_seeds
from funnelsim.errors import FunnelsimError
from funnelsim.execution import SERIAL, Execution
from funnelsim.experiment.engines import EngineName, choose_engine, compile_variants
from funnelsim.experiment.runner import replicate, run_experiment
from funnelsim.files import write_csv, write_png
from funnelsim.intervals import Interval, mean_interval
from funnelsim.parallel import map_batches
from funnelsim.result_mixin import Result
from funnelsim.scenario.loader import parse_value
from funnelsim.scenario.messages import ScenarioError
from funnelsim.scenario.schema import Scenario
from funnelsim.scenario.variants import check_override_path
from funnelsim.tables import Cell, Column, Row, Table, label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = NDArray[np.float64]
METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor")
"""What a sweep reports per grid point and variant (attributes of a replication)."""
MAX_RUNS = 100_000
"""Most (grid point x variant x replication) simulations one sweep may ask for."""
METRIC_LABELS = {
    "conversion": "conversion",
    "revenue_per_visitor": "revenue per visitor",
    "clv_per_visitor": "CLV per visitor",
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^({_NUMBER}):({_NUMBER})(?::({_NUMBER}))?$")


class SweepError(FunnelsimError, ValueError):
    """A sweep request a user can fix (one line; ``field`` names the argument at fault)."""


class Param(NamedTuple):
    """One swept knob: a dotted scenario path and the values it takes, in order."""

    path: str
    values: tuple[Any, ...]


# --------------------------------------------------------------------------- the grid


def _is_integer(text: str) -> bool:
    return re.fullmatch(r"[-+]?\d+", text) is not None


def _decimals(text: str) -> int:
    mantissa, _, exponent = text.lower().partition("e")
    places = len(mantissa.partition(".")[2])
    return max(0, places - int(exponent or 0))


def range_values(start: str, stop: str, step: str) -> tuple[int | float, ...]:
    """The values of ``START:STOP:STEP``, both ends included; integers stay integers.

    >>> range_values("3", "9", "3")
    (3, 6, 9)
    >>> range_values("0.1", "0.5", "0.2")
    (0.1, 0.3, 0.5)
    """
    low, high, width = float(start), float(stop), float(step)
    if not all(map(math.isfinite, (low, high, width))):
        raise SweepError("start, stop and step must be finite numbers")
    if not width > 0:
        raise SweepError(f"step must be positive, got {step}")
    if high < low:
        raise SweepError(f"stop {stop} is below start {start}")
    count = math.floor((high - low) / width + 1e-9) + 1
    if count > MAX_RUNS:
        raise SweepError(f"{count} values is too many (at most {MAX_RUNS})")
    if _is_integer(start) and _is_integer(step):
        return tuple(int(start) + i * int(step) for i in range(count))
    places = max(_decimals(start), _decimals(step))
    return tuple(round(low + i * width, places) for i in range(count))


_SHORT = reprlib.Repr()  # shows a value of any size (an alias bomb too) in a short line
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 2, 4, 4, 60


def _cut(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters: an error line stays short whatever was typed."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _list_values(text: str) -> tuple[Any, ...]:
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise SweepError("empty value in the list")
    try:
        return tuple(parse_value(item) for item in items)
    except yaml.YAMLError as error:
        raise SweepError(f"cannot read a value: {str(error).splitlines()[0]}") from None


def parse_param(text: str, scenario: Scenario) -> Param:
    """Parse ``PATH=START:STOP:STEP`` or ``PATH=a,b,c`` and check it against ``scenario``.

    The path must be settable (as a variant override would be) and every value valid
    there; otherwise :class:`SweepError` says why in one line.
    """
    path, equals, spec = (part.strip() for part in text.partition("="))
    if not equals or not path or not spec:
        raise SweepError(
            f"param {_cut(text)!r}: expected PATH=START:STOP:STEP or PATH=a,b,c", "param"
        )
    _check_path(scenario, path)
    try:
        match = _RANGE.match(spec)
        values = range_values(match[1], match[2], match[3] or "1") if match else _list_values(spec)
    except SweepError as error:
        raise SweepError(f"param {_cut(path)}={_cut(spec)}: {error}", "param") from None
    return check_param(Param(path, values), scenario)


def _check_path(scenario: Scenario, path: str) -> None:
    problem = check_override_path(scenario, path)
    if problem:
        raise SweepError(f"param {_cut(path)}: {problem}", "param")


def check_param(param: Param, scenario: Scenario) -> Param:
    """Check that ``param``'s path is settable and every value valid there."""
    _check_path(scenario, param.path)
    if not param.values:
        raise SweepError(f"param {param.path}: no values", "param")
    for value in param.values:
        try:
            scenario.with_overrides({param.path: value})
        except ScenarioError as error:
            raise SweepError(
                f"param {_cut(param.path)}={_SHORT.repr(value)}: {_cut(error.message, 200)}",
                "param",
            ) from None
    return param


def grid(params: Sequence[Param]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, the last parameter varying fastest.

    >>> grid([Param("a", (1, 2)), Param("b", ("x", "y"))])
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    points = math.prod(len(p.values) for p in params)
    if points > MAX_RUNS:  # priced before it is built
        raise SweepError(f"{points:,} grid points is more than {MAX_RUNS:,}; narrow the grid")
    paths = [p.path for p in params]
    return [
        dict(zip(paths, combo, strict=True))
        for combo in itertools.product(*(p.values for p in params))
    ]


def only_variants(scenario: Scenario, names: Sequence[str]) -> Scenario:
    """``scenario`` keeping only the named variants (the first named is the control; a
    custom split is renormalised over them) and its uncertain assumptions."""
    unknown = [n for n in names if n not in scenario.variants]
    if unknown:
        raise SweepError(
            f"variant {unknown[0]}: no such variant "
            f"(variants: {', '.join(scenario.variant_names)})",
            "variant",
        )
    kept = list(dict.fromkeys(names))
    split = scenario.experiment.split
    data = scenario.model_dump(mode="python")
    data["variants"] = {n: scenario.variants[n] for n in kept}
    data["experiment"].update(
        control=kept[0],
        split=split
        if split == "equal"
        else {n: split[n] / sum(split[k] for k in kept) for n in kept},
    )
    kept_scenario = Scenario.model_validate(data)
    kept_scenario._assumptions = dict(scenario._assumptions)
    kept_scenario._source = scenario._source
    kept_scenario._resolved = {n: scenario.variant(n) for n in kept}
    return kept_scenario


# --------------------------------------------------------------------------- running


class SweepPoint(NamedTuple):
    """The metrics of one variant at one grid point, each a mean with its 95% interval."""

    values: dict[str, Any]
    variant: str
    metrics: dict[str, Interval]


@dataclass(frozen=True, repr=False)
class SweepResult(Result):
    """A finished sweep: the grid, the settings it ran with, and one row per point x variant."""

    scenario: str
    currency: str
    params: tuple[Param, ...]
    variants: tuple[str, ...]
    replications: int
    seed: int
    engine: str
    points: tuple[SweepPoint, ...]

    def headline(self) -> str:
        grid = " x ".join(f"{p.path} ({len(p.values)} values)" for p in self.params)
        return (
            f"{self.scenario!r}: {grid}; variants {', '.join(self.variants)}; "
            f"{self.replications} replications per point, {self.engine} engine"
        )

    def to_dict(self) -> dict[str, Any]:
        """The sweep as plain data: settings and one row per point x variant."""
        return {
            "scenario": self.scenario,
            "params": {p.path: list(p.values) for p in self.params},
            "replications": self.replications,
            "seed": self.seed,
            "engine": self.engine,
            "rows": sweep_rows(self),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per grid point and variant: the columns of ``sweep.csv``."""
        return sweep_rows(self)


def point_metrics(scenario: Scenario, seed: SeedSequence, engine: EngineName) -> FloatArray:
    """One replication of one grid point: the :data:`METRICS` per variant, shape
    (variants, len(METRICS))."""
    rep = replicate(scenario, seed, engine)
    return np.array([getattr(rep, m) for m in METRICS]).T


def _metrics_batch(
    items: list[tuple[int, SeedSequence]], scenarios: tuple[Scenario, ...], engine: EngineName
) -> list[FloatArray]:
    """The pure task of a sweep: (grid point, replication seed) pairs, one result each."""
    return [point_metrics(scenarios[p], seed, engine) for p, seed in items]


def _point_scenario(scenario: Scenario, values: dict[str, Any]) -> Scenario:
    try:
        point = scenario.with_overrides(values) if values else scenario
        for name in point.variant_names:
            point.variant(name)
    except ScenarioError as error:
        at = ", ".join(f"{k}={v}" for k, v in values.items())
        raise SweepError(f"at {at}: {error.field}: {error.message}") from None
    return point


def engine_for(scenario: Scenario, engine: EngineName) -> str:
    """The engine that will simulate ``scenario``'s variants (SweepError if it cannot)."""
    try:
        return choose_engine(compile_variants(scenario), engine)
    except ValueError as error:
        raise SweepError(str(error), "engine") from None


def run_sweep(
    scenario: Scenario,
    params: Sequence[Param],
    variants: Sequence[str] | None = None,
    replications: int | None = None,
    execution: Execution = SERIAL,
) -> SweepResult:
    """Run ``scenario`` at every point of the grid of ``params`` and summarise.

    ``variants`` (default: all, control first) are simulated at every point;
    ``replications`` defaults to the scenario's. ``execution`` chooses seed, engine and
    executor; its ``progress`` is called with the number of replications finished
    (``len(grid) x replications`` in all). The same inputs give identical results
    whatever the executor.
    """
    paths = [p.path for p in params]
    if len(set(paths)) != len(paths):
        raise SweepError(f"param: a path is given twice ({', '.join(paths)})", "param")
    base = only_variants(scenario, variants) if variants else scenario
    n = replications or base.experiment.replications
    points = grid(params)
    names = base.variant_names
    if len(points) * len(names) * n > MAX_RUNS:
        raise SweepError(
            f"{len(points)} points x {len(names)} variants x {n} replications "
            f"is more than {MAX_RUNS} simulations; narrow the grid"
        )
    scenarios = tuple(_point_scenario(base, values) for values in points)
    engines = sorted({engine_for(s, execution.engine) for s in scenarios})
    seed = execution.seed_or(base.seed)
    seeds = replication_seeds(seed, n)
    items = [(p, s) for p in range(len(points)) for s in seeds]
    task = partial(_metrics_batch, scenarios=scenarios, engine=execution.engine)
    metrics = np.array(
        map_batches(task, items, execution.processes, execution.dask, execution.progress)
    )
    metrics = metrics.reshape(len(points), n, len(names), len(METRICS))
    rows = [
        SweepPoint(
            values, name, {m: mean_interval(metrics[p, :, v, k]) for k, m in enumerate(METRICS)}
        )
        for p, values in enumerate(points)
        for v, name in enumerate(names)
    ]
    return SweepResult(
        base.name,
        base.currency,
        tuple(params),
        tuple(names),
        n,
        seed,
        ",".join(engines),
        tuple(rows),
    )


# --------------------------------------------------------------------------- output


def variant_means(
    scenario: Scenario,
    metrics: Sequence[str],
    replications: int = 20,
    execution: Execution = SERIAL,
) -> dict[str, FloatArray]:
    """Each variant's mean of each of ``metrics`` (control first) over ``replications``
    full-traffic engine runs, as ``funnelsim run`` reports them: a sweep without
    parameters when :data:`METRICS` cover them, else the run itself (a stage's reach,
    ``reached:STAGE``, only the run summarises)."""
    if set(metrics) <= set(METRICS):
        swept = run_sweep(scenario, [], None, replications, execution)
        return {m: np.array([p.metrics[m].mean for p in swept.points]) for m in metrics}
    run = run_experiment(scenario, replications, execution)
    return {m: np.array([s.metrics[m].mean for s in run.variants]) for m in metrics}


def sweep_rows(result: SweepResult) -> list[dict[str, Any]]:
    """One flat row per grid point and variant, for ``sweep.csv``."""
    rows = []
    for point in result.points:
        row: dict[str, Any] = {**point.values, "variant": point.variant}
        for m in METRICS:
            row.update({f"{m}_{k}": v for k, v in point.metrics[m]._asdict().items()})
        rows.append(row)
    return rows


def write_sweep(result: SweepResult, out: Path) -> list[Path]:
    """Write ``sweep.csv`` and, for one or two parameters, ``sweep.png`` under ``out``."""
    written = [out / "sweep.csv"]
    write_csv(sweep_rows(result), written[0])
    if len(result.params) in (1, 2):
        written.append(out / "sweep.png")
        write_png(sweep_figure(result), written[1])
    return written


def _is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _axis_positions(values: Sequence[Any]) -> tuple[FloatArray, list[str] | None]:
    """Numeric values on a numeric axis; anything else at 0, 1, 2 ... with labels."""
    if _is_numeric(values):
        return np.asarray(values, dtype=float), None
    return np.arange(len(values), dtype=float), [str(v) for v in values]


def _metric_table(result: SweepResult, variant: str, metric: str, field: str) -> FloatArray:
    return np.array(
        [getattr(p.metrics[metric], field) for p in result.points if p.variant == variant]
    )


def sweep_figure(result: SweepResult) -> Figure:
    """Metrics against one parameter (lines with 95% bands, one per variant), or a heat
    map of each metric's mean over two parameters (one row of maps per variant)."""
    from matplotlib import rc_context

    from funnelsim.plots import STYLE

    with rc_context(STYLE):
        if len(result.params) == 1:
            return _curve_figure(result)
        return _heatmap_figure(result)


def _curve_figure(result: SweepResult) -> Figure:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    from funnelsim.plots import new_figure, variant_color

    param = result.params[0]
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in param.values)
    x, labels = _axis_positions(param.values)
    figure = new_figure(4.0 * len(METRICS), 3.4)
    axes = figure.subplots(1, len(METRICS))
    for ax, metric in zip(axes, METRICS, strict=True):
        for v, variant in enumerate(result.variants):
            mean, low, high = (
                _metric_table(result, variant, metric, f) for f in ("mean", "low", "high")
            )
            color = variant_color(v)
            ax.plot(x, mean, marker="o", markersize=3, color=color, label=variant)
            ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
        if labels:
            ax.set_xticks(x, labels)
        elif integers:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric == "conversion":
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        else:
            ax.set_ylabel(result.currency)
        ax.set_xlabel(param.path)
        ax.set_title(METRIC_LABELS[metric], loc="left")
    axes[0].legend(fontsize=7.5)
    figure.suptitle(
        f"{result.scenario}: sweep of {param.path} "
        f"({result.replications} replications per point, 95% bands)",
        x=0.02,
        ha="left",
        fontsize=10,
    )
    return figure


def _heatmap_figure(result: SweepResult) -> Figure:
    from funnelsim.plots import new_figure

    first, second = result.params
    x, x_labels = _axis_positions(second.values)
    y, y_labels = _axis_positions(first.values)
    rows = len(result.variants)
    figure = new_figure(4.2 * len(METRICS), 3.2 * rows)
    axes = figure.subplots(rows, len(METRICS), squeeze=False)
    for r, variant in enumerate(result.variants):
        for c, metric in enumerate(METRICS):
            ax = axes[r, c]
            means = _metric_table(result, variant, metric, "mean").reshape(len(y), len(x))
            image = ax.pcolormesh(
                np.arange(len(x) + 1) - 0.5,
                np.arange(len(y) + 1) - 0.5,
                means * (100 if metric == "conversion" else 1),
                cmap="viridis",
                shading="flat",
            )
            bar = figure.colorbar(image, ax=ax)
            bar.set_label("%" if metric == "conversion" else result.currency)
            ax.set_xticks(np.arange(len(x)), x_labels or [f"{v:g}" for v in x])
            ax.set_yticks(np.arange(len(y)), y_labels or [f"{v:g}" for v in y])
            ax.set_xlabel(second.path)
            ax.set_ylabel(first.path)
            ax.set_title(f"{variant}: {METRIC_LABELS[metric]}", loc="left")
    figure.suptitle(
        f"{result.scenario}: mean over {result.replications} replications per point",
        x=0.02,
        ha="left",
        fontsize=10,
    )
    return figure


def sweep_table(result: SweepResult) -> Table:
    """One row per grid point and variant, metrics with their 95% intervals below."""
    rows = []
    for point in result.points:
        cells = [Cell(str(v)) for v in point.values.values()] + [Cell(point.variant)]
        for metric in METRICS:
            mean, low, high = point.metrics[metric]
            if metric == "conversion":
                show = partial(fmt.percent, digits=2 if mean >= 0.01 else 3)
            else:
                show = partial(fmt.money, currency=result.currency)
            cells.append(Cell(show(mean), fmt.bounds(low, high, show)))
        rows.append(Row(tuple(cells)))
    return Table(
        f"Sweep of {result.scenario} ({result.replications} replications per "
        f"point, {result.engine} engine)",
        (
            *(label(param.path.rsplit(".", 1)[-1]) for param in result.params),
            label("variant"),
            *(Column(METRIC_LABELS[metric]) for metric in METRICS),
        ),
        tuple(rows),
        caption="Mean over replications with its 95% interval below (Monte Carlo). "
        + "; ".join(
            f"{p.path.rsplit('.', 1)[-1]}: {p.path}" for p in result.params if "." in p.path
        )
        + ".",
    )
