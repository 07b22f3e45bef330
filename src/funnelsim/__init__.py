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

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from funnelsim.analysis.api import AnalysisResult
    from funnelsim.analysis.lifetime import TransactionReadout
    from funnelsim.experiment.engines import EngineName
    from funnelsim.results import ExperimentResult
    from funnelsim.scenario.loader import load_scenario, parse_scenario
    from funnelsim.scenario.messages import ScenarioError
    from funnelsim.scenario.schema import Scenario
    from funnelsim.sensitivities import Metric, SensitivityResult
    from funnelsim.strategies import BenchResult
    from funnelsim.sweeps import SweepResult
    from funnelsim.worlds import Worlds

_SCENARIO_NAMES = ("Scenario", "ScenarioError", "load_scenario", "parse_scenario")


__all__ = [
    "Scenario",
    "ScenarioError",
    "analyze",
    "analyze_orders",
    "bench",
    "load_scenario",
    "parse_scenario",
    "run",
    "sample_worlds",
    "sensitivity",
    "sweep",
]


def __getattr__(name: str) -> Any:
    """The scenario schema's public names, imported on first use (NumPy, pydantic)."""
    if name in _SCENARIO_NAMES:
        from funnelsim import scenario

        return getattr(scenario, name)
    raise AttributeError(f"module 'funnelsim' has no attribute {name!r}")


def _scenario(scenario: Scenario | str | Path) -> Scenario:
    from funnelsim.scenario.loader import load_scenario
    from funnelsim.scenario.schema import Scenario

    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def run(
    scenario: Scenario | str | Path,
    replications: int | None = None,
    *,
    seed: int | None = None,
    engine: EngineName = "auto",
    workers: int = 1,
    dask: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExperimentResult:
    """Simulate every variant of a scenario over replications and compare them.

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        replications: Replications to run (default: the scenario's ``experiment.replications``).
        seed: Overrides the scenario's seed; the same seed gives the same result.
        engine: ``auto`` uses SimPy only where visitors share a resource (queues);
            ``aggregate`` draws counts directly (no queues; fastest for huge runs).
        workers: Local processes; results do not depend on it.
        dask: ``"local"`` for a Dask LocalCluster or a scheduler address
            (``tcp://HOST:8786``); results do not depend on it either.
        progress: Called with the number of replications finished since the last call.

    Returns:
        An :class:`~funnelsim.results.ExperimentResult`: per variant the expected
        conversion, revenue and CLV per visitor with intervals and uplifts over control,
        and what a simulated A/B test of the planned size would decide. It prints
        readably and converts with ``to_dict()`` (the ``results.json`` document) and
        ``to_frame()`` (a pandas DataFrame, one row per variant).
    """
    from funnelsim.experiment.runner import run_experiment

    return run_experiment(_scenario(scenario), replications, seed, engine, workers, progress, dask)


def analyze(
    data: str | Path | Any,
    control: str | None = None,
    model: Literal["conjugate", "funnel", "revenue"] = "conjugate",
    **options: Any,
) -> AnalysisResult:
    """Bayesian readout of an experiment: a CSV path, or counts from
    :func:`funnelsim.analysis.data.experiment_from_counts`.

    Args:
        data: The experiment (see ``funnelsim analyze --help`` for the CSV shapes).
        control: Control variant (default: the first).
        model: ``conjugate`` (exact Beta-Binomial), ``funnel`` (PyMC, which stage changed)
            or ``revenue`` (PyMC, revenue per visitor).
        options: Passed to :func:`funnelsim.analysis.api.analyze` (``columns``,
            ``sampler``, ``draws``, ``seed``, ...).

    Returns:
        An :class:`~funnelsim.analysis.api.AnalysisResult`: per variant the posterior,
        P(best), P(beats control), expected loss and uplift, the decision, and the
        sampler diagnostics with ``reliable``.

    >>> result = funnelsim.analyze("experiment.csv", control="a")  # doctest: +SKIP
    """
    from funnelsim.analysis.api import analyze as analyze_experiment

    return analyze_experiment(data, control, model, **options)


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
    *,
    seed: int | None = None,
    engine: EngineName = "auto",
    workers: int = 1,
    dask: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Run a scenario over a grid of parameter values (every combination).

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        params: Dotted scenario path to its values: a sequence (``range(3, 21)``) or the
            command line's text form (``"3:20:1"`` inclusive, or ``"a,b,c"``).
        variants: Variants to run at every point (default: all).
        replications, seed, engine, workers, progress: As for :func:`run`.
        dask: As for :func:`bench`.

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
    return run_sweep(base, grid, variants, replications, seed, engine, workers, dask, progress)


def bench(
    scenario: Scenario | str | Path,
    strategies: Sequence[str] = ("fixed", "peeking", "bayes_stop", "thompson", "test_and_roll"),
    replications: int = 500,
    *,
    alpha: float = 0.05,
    min_share: float = 0.1,
    truth_replications: int = 20,
    seed: int | None = None,
    engine: EngineName = "auto",
    workers: int = 1,
    dask: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Score decision strategies on simulated A/A and A/B tests of a scenario.

    The funnel engine first estimates every variant's true conversion and revenue per
    visitor (``truth_replications`` runs); each strategy then plays ``replications``
    simulated tests of the scenario and of its A/A version.

    Args:
        scenario: A :class:`Scenario` or the path of a scenario file.
        strategies: Built-in strategies: ``fixed`` (fixed horizon), ``peeking`` (a
            significance test at every look), ``bayes_stop`` (expected-loss early stop
            with the scenario's decision rule), ``thompson`` (Thompson-sampling bandit),
            ``test_and_roll`` (a fixed test of the profit-maximising length, possibly none).
        alpha: Significance level of the frequentist strategies.
        min_share: Smallest traffic share of an arm under Thompson sampling.
        seed, engine, workers, progress: As for :func:`run`.
        dask: ``"local"`` for a Dask LocalCluster or a scheduler address
            (``tcp://HOST:8786``); None runs on local processes.

    Returns:
        A :class:`~funnelsim.strategies.BenchResult`: per strategy the false-positive
        rate, P(ships the truly best), time and visitors to a decision and regret.
    """
    from funnelsim.experiment.readout import decision_rule
    from funnelsim.profit_planning import roll_for_bench
    from funnelsim.strategies import built_in_strategies, check_built_in, engine_truth, run_bench

    base = _scenario(scenario)
    prior = base.experiment.prior
    check_built_in(strategies)
    seed = base.seed if seed is None else seed
    truth = engine_truth(base, truth_replications, seed, engine, workers, dask, progress)
    chosen = built_in_strategies(
        list(strategies),
        alpha,
        decision_rule(base),
        (prior.alpha, prior.beta),
        min_share,
        roll_for_bench(strategies, truth, base.value.margin, seed),
    )
    return run_bench(
        truth, chosen, replications, seed, workers, dask, progress, base.name, base.currency
    )


def sensitivity(
    scenario: Scenario | str | Path,
    variant: str | None = None,
    metric: Metric = "conversion",
    *,
    samples: int = 4096,
    seed: int | None = None,
    workers: int = 1,
    dask: str | None = None,
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
        seed: Overrides the scenario's seed.
        workers: Local processes; results do not depend on it.
        dask: ``"local"`` or a scheduler address, as for :func:`run`.

    Returns:
        A :class:`~funnelsim.sensitivities.SensitivityResult`: ``repr`` is a ranked
        table, ``to_dict()`` the ``sensitivity.json`` document, ``to_frame()`` a DataFrame.
    """
    from funnelsim.sensitivities import sensitivity as analyse

    return analyse(_scenario(scenario), variant, metric, samples, seed, workers, dask)


def sample_worlds(scenario: Scenario | str | Path, n: int, seed: int = 0) -> Worlds:
    """``n`` quasi-random worlds of the scenario's uncertain assumptions (scrambled Sobol
    points through each one's inverse CDF): ``.values`` is ``(n, assumptions)``, ``.keys``
    names the columns, ``.world(i)`` is world i by key. Value a world's variants with
    :func:`funnelsim.worlds.world_metrics`."""
    from funnelsim.worlds import sample_worlds as draw

    return draw(_scenario(scenario), n, seed)
