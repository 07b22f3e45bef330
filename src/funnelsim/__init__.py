"""funnelsim: simulate funnel changes, read experiments the Bayesian way.

Everything the command line does is one call here, so a notebook can do it too:

>>> import funnelsim
>>> scenario = funnelsim.load_scenario("scenarios/checkout.yaml")  # doctest: +SKIP
>>> result = funnelsim.run(scenario, replications=20)  # doctest: +SKIP
>>> result.to_frame()["conversion_mean"]  # doctest: +SKIP

Nothing heavy is imported with the package (so ``funnelsim --help`` starts at
once): the scenario schema, the simulation, the analysis and their
dependencies load on first use.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from funnelsim.errors import FunnelsimError
from funnelsim.execution import SERIAL, EngineName, Execution

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from funnelsim.analysis.api import AnalysisResult
    from funnelsim.analysis.lifetime import TransactionReadout
    from funnelsim.budget import Cost
    from funnelsim.calibration.fit import Calibration
    from funnelsim.calibration.sbc import SBCResult
    from funnelsim.orders import OrderLog
    from funnelsim.planning import PlanResult
    from funnelsim.results import ExperimentResult
    from funnelsim.scenario.loader import load_scenario, parse_scenario
    from funnelsim.scenario.messages import ScenarioError
    from funnelsim.scenario.schema import Scenario
    from funnelsim.sensitivities import Metric, SensitivityResult
    from funnelsim.strategies import BenchResult
    from funnelsim.sweeps import SweepResult
    from funnelsim.worlds import Worlds

_LAZY = {
    "AnalysisResult": "funnelsim.analysis.api",
    "BenchResult": "funnelsim.strategies",
    "Cost": "funnelsim.budget",
    "ExperimentResult": "funnelsim.results",
    "OrderLog": "funnelsim.orders",
    "PlanResult": "funnelsim.planning",
    "Scenario": "funnelsim.scenario.schema",
    "ScenarioError": "funnelsim.scenario.messages",
    "SweepResult": "funnelsim.sweeps",
    "TransactionReadout": "funnelsim.analysis.lifetime",
    "load_scenario": "funnelsim.scenario.loader",
    "parse_scenario": "funnelsim.scenario.loader",
}
"""Public names defined in modules that import NumPy or pydantic: loaded on first use."""

__all__ = [
    "AnalysisResult",
    "BenchResult",
    "Cost",
    "Execution",
    "ExperimentResult",
    "FunnelsimError",
    "OrderLog",
    "PlanResult",
    "Scenario",
    "ScenarioError",
    "SweepResult",
    "TransactionReadout",
    "analyze",
    "analyze_orders",
    "bench",
    "calibrate",
    "calibration_sbc",
    "estimate_cost",
    "explain",
    "load_scenario",
    "parse_scenario",
    "plan",
    "run",
    "sample_worlds",
    "sensitivity",
    "sweep",
    "write_event_log",
    "write_order_log",
]


def __getattr__(name: str) -> Any:
    """The public names of :data:`_LAZY`, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'funnelsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (what ``dir(funnelsim)`` and tab completion show)."""
    return sorted(__all__)


def _scenario(scenario: Scenario | str | Path) -> Scenario:
    from funnelsim.scenario.loader import load_scenario
    from funnelsim.scenario.schema import Scenario

    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def run(
    scenario: Scenario | str | Path,
    replications: int | None = None,
    execution: Execution = SERIAL,
) -> ExperimentResult:
    """Simulate every variant of a scenario over replications and compare them.

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        replications: Replications to run (default: the scenario's ``experiment.replications``).
        execution: Seed (overrides the scenario's), engine, local workers or Dask, and a
            progress callback (replications finished); results depend on the seed and
            the engine only. Default: the scenario's seed, in this process.

    Returns:
        An :class:`~funnelsim.results.ExperimentResult`: per variant the expected
        conversion, revenue and CLV per visitor with intervals and uplifts over control,
        what a simulated A/B test of the planned size would decide, and what that test
        is worth against shipping the best variant now (``value_of_information``). It prints
        readably and converts with ``to_dict()`` (the ``results.json`` document) and
        ``to_frame()`` (a pandas DataFrame, one row per variant).

    >>> result = funnelsim.run("scenarios/checkout.yaml", 20, Execution(seed=1))  # doctest: +SKIP
    """
    import dataclasses

    from funnelsim.experiment.runner import run_experiment
    from funnelsim.profit_planning import run_value_of_information

    result = run_experiment(_scenario(scenario), replications, execution)
    if len(result.variants) < 2:
        return result
    worth = run_value_of_information(result)
    return dataclasses.replace(result, value_of_information=worth)


def analyze(
    data: str | Path | Any,
    control: str | None = None,
    model: Literal["conjugate", "funnel", "revenue"] = "conjugate",
    *,
    variant_column: str = "variant",
    converted_column: str = "converted",
    visitors_column: str = "visitors",
    conversions_column: str = "conversions",
    revenue_column: str | None = None,
    stage_columns: Sequence[str] = (),
    **options: Any,
) -> AnalysisResult:
    """Bayesian readout of an experiment: a CSV file, a DataFrame (pandas, polars, or any
    other that narwhals reads) or counts from
    :func:`funnelsim.analysis.data.experiment_from_counts`.

    Args:
        data: The experiment: aggregated rows (variant, visitors, conversions[, revenue],
            stage counts) or one row per visitor (variant, converted[, revenue], stage
            flags); see ``funnelsim analyze --help``.
        control: Control variant (default: the first).
        model: ``conjugate`` (exact Beta-Binomial), ``funnel`` (PyMC, which stage changed)
            or ``revenue`` (PyMC, revenue per visitor).
        variant_column, converted_column, visitors_column, conversions_column: Column
            names; data with a ``visitors_column`` are read as aggregated rows.
        revenue_column: Order value (per visitor) or revenue sum (aggregated); default:
            a column named ``revenue`` when there is one.
        stage_columns: Funnel stage columns in order.
        options: Passed to :func:`funnelsim.analysis.api.analyze` (``sampler``,
            ``draws``, ``seed``, ``rule``, ...).

    Returns:
        An :class:`~funnelsim.analysis.api.AnalysisResult`: per variant the posterior,
        P(best), P(beats control) (none for the control), expected loss and uplift, the
        decision, and the sampler diagnostics with ``reliable``.

    >>> result = funnelsim.analyze("ab.csv", variant_column="test group")  # doctest: +SKIP
    """
    from funnelsim.analysis.api import analyze as analyze_experiment
    from funnelsim.analysis.data import ColumnMap

    columns = ColumnMap(
        variant_column,
        converted_column,
        visitors_column,
        conversions_column,
        revenue_column,
        tuple(stage_columns),
    )
    return analyze_experiment(data, control, model, columns=columns, **options)


def analyze_orders(
    path: str | Path,
    control: str | None = None,
    visitors: dict[str, int] | None = None,
    *,
    margin: float = 1.0,
    horizon_months: int = 24,
    sampler: Literal["auto", "pymc", "nutpie"] = "auto",
    draws: int = 1000,
    seed: int = 0,
) -> TransactionReadout:
    """Repeat purchase, churn and CLV per variant from an order log (BG/NBD in PyMC).

    Args:
        path: CSV with one row per order: ``customer``, ``variant``, ``date``, ``amount``.
        control: Control variant (default: the first in the file).
        visitors: Visitors per variant behind the customers; with them the readout also
            gives conversion and CLV per visitor, its uplift, P(beats control) and P(best).
        margin: Margin as a share of order value (1: CLV counts revenue).
        horizon_months: Months of customer life counted in CLV.
        sampler, draws, seed: NUTS sampler, draws per chain (4 chains) and seed.

    Returns:
        A :class:`~funnelsim.analysis.lifetime.TransactionReadout`, control first; it
        converts with ``to_dict()`` (the ``results.json`` document) and ``to_frame()``.

    >>> visitors = {"a": 9000, "b": 9100}
    >>> readout = funnelsim.analyze_orders("orders.csv", visitors=visitors)  # doctest: +SKIP
    """
    from funnelsim.analysis.lifetime import analyze_transactions
    from funnelsim.analysis.models import SamplerSettings

    settings = SamplerSettings(sampler, draws=draws, seed=seed)
    return analyze_transactions(
        path,
        control,
        margin=margin,
        horizon_months=horizon_months,
        visitors=visitors,
        settings=settings,
    )[0]


def sweep(
    scenario: Scenario | str | Path,
    params: dict[str, Sequence[Any] | str],
    variants: Sequence[str] | None = None,
    replications: int | None = None,
    execution: Execution = SERIAL,
) -> SweepResult:
    """Run a scenario over a grid of parameter values (every combination).

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        params: Dotted scenario path to its values: a sequence (``range(3, 21)``) or the
            command line's text form (``"3:20:1"`` inclusive, or ``"a,b,c"``).
        variants: Variants to run at every point (default: all).
        replications: Replications per point (default: the scenario's).
        execution: As for :func:`run` (progress counts replications of every point).

    Returns:
        A :class:`~funnelsim.sweeps.SweepResult`: per point and variant the mean and
        95% interval of conversion, revenue and CLV per visitor.

    >>> result = funnelsim.sweep("scenarios/checkout.yaml",  # doctest: +SKIP
    ...                          {"stages.checkout.friction.form_fields": range(3, 21)})
    """
    from funnelsim.sweeps import Param, check_param, parse_param, run_sweep

    base = _scenario(scenario)
    grid = [
        parse_param(f"{path}={values}", base)
        if isinstance(values, str)
        else check_param(Param(path, tuple(values)), base)
        for path, values in params.items()
    ]
    return run_sweep(base, grid, variants, replications, execution)


def bench(
    scenario: Scenario | str | Path,
    strategies: Sequence[Any] = ("fixed", "peeking", "bayes_stop", "thompson", "test_and_roll"),
    replications: int = 500,
    *,
    alpha: float = 0.05,
    min_share: float = 0.1,
    truth_replications: int = 20,
    execution: Execution = SERIAL,
) -> BenchResult:
    """Score decision strategies on simulated A/A and A/B tests of a scenario.

    The funnel engine first estimates every variant's true conversion and revenue per
    visitor (``truth_replications`` runs); each strategy then plays ``replications``
    simulated tests of the scenario and of its A/A version.

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        strategies: Built-in strategies by name: ``fixed`` (fixed horizon), ``peeking``
            (a significance test at every look), ``bayes_stop`` (expected-loss early
            stop with the scenario's decision rule), ``thompson`` (Thompson-sampling
            bandit), ``test_and_roll`` (a fixed test of the profit-maximising length,
            possibly none); or :class:`~funnelsim.strategies.Strategy` objects of your own.
        alpha: Significance level of the frequentist strategies.
        min_share: Smallest traffic share of an arm under Thompson sampling.
        execution: As for :func:`run` (progress counts engine runs and simulated tests).

    Returns:
        A :class:`~funnelsim.strategies.BenchResult`: per strategy the false-positive
        rate, P(ships the truly best), time and visitors to a decision and regret.
    """
    from funnelsim.experiment.readout import decision_rule
    from funnelsim.profit_planning import roll_for_bench
    from funnelsim.strategies import built_in_strategies, check_built_in, engine_truth, run_bench

    base = _scenario(scenario)
    prior = base.experiment.prior
    names = [s for s in strategies if isinstance(s, str)]
    check_built_in(names)
    execution = replace(execution, seed=execution.seed_or(base.seed))
    truth = engine_truth(base, truth_replications, execution)
    chosen = built_in_strategies(
        names,
        alpha,
        decision_rule(base),
        (prior.alpha, prior.beta),
        min_share,
        roll_for_bench(names, truth, base, execution.seed_or(base.seed)),
    )
    chosen += [s for s in strategies if not isinstance(s, str)]
    return run_bench(truth, chosen, replications, execution, base.name, base.currency)


def plan(
    scenario: Scenario | str | Path,
    variant: str,
    target_probability: float = 0.95,
    simulations: int = 400,
    *,
    max_days: int | None = None,
    alpha: float = 0.05,
    truth_replications: int = 20,
    execution: Execution = SERIAL,
    false_ship_target: float | None = 0.05,
) -> PlanResult:
    """How long an A/B test of ``variant`` against the control must run.

    Simulates the test ``simulations`` times at increasing lengths, reads each with the
    scenario's Bayesian decision rule, and finds the length from which the probability
    of a correct decision stays at ``target_probability``; the frequentist
    two-proportion sample size (significance ``alpha``) is given beside it.

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        variant: The variant to test against the control.
        target_probability: Wanted probability of a correct decision (and the z-test's power).
        simulations: Simulated tests read at every length.
        max_days: Longest test length read (default: twice the z-test's length).
        alpha: Significance level of the two-sided z-test (used when
            ``false_ship_target`` is None).
        truth_replications: Engine replications estimating the true rates.
        execution: As for :func:`run` (progress counts engine runs and simulated tests).
        false_ship_target: Calibrate the rule's loss threshold at each length to this
            A/A false-ship rate (as :func:`analyze`) and compare it with the one-sided
            z-test of the same risk; None reads the scenario's rule as given.

    Returns:
        A :class:`~funnelsim.planning.PlanResult`: the curve of P(correct decision)
        against days and ``days_needed`` (None when ``max_days`` is too short).

    >>> funnelsim.plan("scenarios/checkout.yaml", "guest_checkout").days_needed  # doctest: +SKIP
    """
    from funnelsim.planning import plan_test

    return plan_test(
        _scenario(scenario),
        variant,
        target_probability,
        simulations,
        max_days,
        alpha=alpha,
        truth_replications=truth_replications,
        execution=execution,
        false_ship_target=false_ship_target,
    )


def sensitivity(
    scenario: Scenario | str | Path,
    variant: str | None = None,
    metric: Metric = "conversion",
    *,
    samples: int = 4096,
    execution: Execution = SERIAL,
    allow_large: bool = False,
) -> SensitivityResult:
    """Which uncertain assumption a variant's uplift over control hangs on.

    Sobol first-order and total indices (SALib, bootstrap intervals) of ``variant``'s
    relative uplift in ``metric`` over control, or of the control's ``metric`` when
    ``variant`` is the control, over the scenario's ``{uncertain: ...}`` assumptions;
    and, for the leading ones, the value at which the best variant changes.

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        variant: Default: the best variant when every assumption holds its central value.
        metric: ``conversion``, ``revenue_per_visitor`` or ``clv_per_visitor``.
        samples: Base samples N, a power of 2: N x (assumptions + 2) worlds are valued.
        execution: Seed (overrides the scenario's), local workers or Dask, and a
            progress callback, as for :func:`run`; results depend on the seed only.
        allow_large: Run even when the estimated time or memory of the worlds is beyond
            the limits (otherwise refused with the estimate, before any work).

    Returns:
        A :class:`~funnelsim.sensitivities.SensitivityResult`: ``repr`` is a ranked
        table, ``to_dict()`` the ``sensitivity.json`` document, ``to_frame()`` a DataFrame.
    """
    from funnelsim.sensitivities import sensitivity as analyse

    return analyse(_scenario(scenario), variant, metric, samples, execution, allow_large)


def sample_worlds(scenario: Scenario | str | Path, n: int, seed: int = 0) -> Worlds:
    """``n`` quasi-random worlds of the scenario's uncertain assumptions (randomised Halton
    points through each one's inverse CDF): ``.values`` is ``(n, assumptions)``, ``.keys``
    names the columns, ``.world(i)`` is world i by key. Value a world's variants with
    :func:`funnelsim.worlds.world_metrics`."""
    from funnelsim.worlds import sample_worlds as draw

    return draw(_scenario(scenario), n, seed)


def explain(scenario: Scenario | str | Path) -> list[str]:
    """The funnel of every variant as a person would draw it: stages, friction, expected
    rates before any randomness, load on shared resources and warnings (rich-markup
    lines, as ``funnelsim explain`` prints them)."""
    from funnelsim.scaffold import explain_lines

    return explain_lines(_scenario(scenario))


def estimate_cost(
    scenario: Scenario | str | Path,
    replications: int | None = None,
    execution: Execution = SERIAL,
) -> Cost:
    """What a run of ``scenario`` would cost (replications, visitors, visitor-stage steps,
    memory, seconds), estimated before it starts with the engine it would use."""
    from funnelsim.experiment.cost import estimate_cost as estimate

    base = _scenario(scenario)
    return estimate(base, replications or base.experiment.replications, execution)


def write_event_log(scenario: Scenario | str | Path, path: str | Path) -> Path:
    """Write the first replication's per-visitor, per-stage events of every variant to
    the CSV file ``path`` (variant, visitor, segment, channel, stage, entered_min,
    left_min, waited_min, outcome, revenue: the order value on a purchase's row); a lead
    the business answers has one more row at that stage, outcome ``replied``, from the
    enquiry to the first answer (``waited_min``: queue wait plus response delay)."""
    from funnelsim.experiment.logs import write_event_log as write

    return write(_scenario(scenario), Path(path))


def write_order_log(
    scenario: Scenario | str | Path,
    path: str | Path,
    months: int = 12,
    engine: EngineName = "auto",
) -> OrderLog:
    """Write the order log (customer, variant, date, amount) of the first replication's
    simulated test (simulated by ``engine``), followed ``months`` months after it, to
    the CSV file ``path``; read it back with :func:`analyze_orders`."""
    from funnelsim.experiment.logs import write_order_log as write

    return write(_scenario(scenario), Path(path), months, engine)


def calibrate(
    scenario: str | Path,
    data: str | Path,
    *,
    stage_columns: Sequence[str] | None = None,
    by: Sequence[str] = (),
    stage_map: Mapping[str, str] | None = None,
    arm: tuple[str, str] | None = None,
    experiments: Sequence[str | Path] = (),
    draws: int = 1000,
    chains: int = 4,
    seed: int = 0,
    sampler: str = "auto",
) -> Calibration:
    """Narrow a scenario file's uncertain assumptions with a team's own data.

    Args:
        scenario: Path of a scenario file whose stage rates to calibrate are written
            ``{uncertain: ...}`` (those specs are the priors).
        data: An analytics funnel export (one column per stage, the converted column
            last), an event log (with ``stage_map``) or per-visitor flags (with ``arm``).
        stage_columns: Stage columns in funnel order (converted last), matched to the
            scenario's stages by position; default: by name.
        by: Breakdown columns besides ``segment`` and ``channel``.
        stage_map: Event to stage (one event to ``"converted"``) for an event log; an
            event to ``"replied"`` (``"replied:STAGE"``) is the business's first reply
            to a lead at a stage with a response delay.
        arm: ``(column, value)`` selecting one arm of per-visitor flags.
        experiments: YAML files of past experiments, each arm tied to the variant or
            overrides it ran (:mod:`funnelsim.calibration.experiments`).
        draws, chains, seed, sampler: NUTS settings (warm-up as long as ``draws``).

    Returns:
        A :class:`~funnelsim.calibration.fit.Calibration`: ``repr`` compares prior and
        posterior, ``to_dict()`` is ``calibration.json``, ``to_frame()`` a DataFrame,
        ``calibrated_yaml`` the scenario with the posterior specs, ``idata`` the draws.
    """
    from funnelsim.analysis.models import SamplerSettings
    from funnelsim.calibration.api import calibrate_file, delayed_stages, read_counts

    counts = read_counts(data, stage_columns, by, stage_map, arm, delayed_stages(scenario))
    settings = SamplerSettings(
        sampler=sampler,  # type: ignore[arg-type]
        draws=draws,
        tune=draws,
        chains=chains,
        seed=seed,
    )
    return calibrate_file(
        scenario, counts, settings, stage_columns is not None, experiments=experiments
    )


def calibration_sbc(
    scenario: str | Path,
    data: str | Path,
    fits: int = 100,
    *,
    stage_columns: Sequence[str] | None = None,
    by: Sequence[str] = (),
    stage_map: Mapping[str, str] | None = None,
    arm: tuple[str, str] | None = None,
    experiments: Sequence[str | Path] = (),
    draws: int = 1000,
    chains: int = 4,
    seed: int = 0,
    sampler: str = "auto",
    execution: Execution = SERIAL,
) -> SBCResult:
    """Simulation-based calibration of :func:`calibrate` on data shaped as ``data``.

    ``fits`` fits, each of counts the aggregate engine simulates at true values drawn
    from the priors;
    the arguments as for :func:`calibrate`, the fits on ``execution``'s executor (local
    processes or Dask) with the same numbers on any.

    Returns:
        A :class:`~funnelsim.calibration.sbc.SBCResult`: the truths' ranks among the
        posterior draws, their uniformity test and the intervals' coverage; ``repr``
        summarises, ``to_dict()`` is ``sbc.json``.
    """
    from funnelsim.analysis.models import SamplerSettings
    from funnelsim.calibration.api import delayed_stages, read_counts, sbc_file

    counts = read_counts(data, stage_columns, by, stage_map, arm, delayed_stages(scenario))
    settings = SamplerSettings(sampler=sampler, draws=draws, tune=draws, chains=chains, seed=seed)  # type: ignore[arg-type]
    by_position = stage_columns is not None
    return sbc_file(scenario, counts, fits, settings, by_position, experiments, execution)
