"""Studies over many simulated experiments: ``sweep``, ``plan`` and ``bench``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from funnelsim.cli.shared import (
    COUNT,
    INPUT,
    PARAM,
    PROBABILITY,
    STRATEGIES,
    FiniteFloatRange,
    Output,
    execution_options,
    fail,
    load_with_overrides,
    make_console,
    note,
    output_options,
    progress_bar,
    rate_or_none,
    traffic_options,
)
from funnelsim.execution import Execution

if TYPE_CHECKING:
    from funnelsim.scenario.schema import Scenario


@click.command()
@click.argument("scenario_file", type=INPUT)
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    metavar=PARAM,
    help="A dotted scenario path and its values (range ends included); repeat for a grid.",
)
@click.option("--variant", "variants", multiple=True, help="Sweep only this variant (repeatable).")
@click.option("--replications", type=COUNT, help="Replications per grid point.")
@execution_options
@output_options("sweep.csv and sweep.png")
def sweep(
    scenario_file: Path,
    params: tuple[str, ...],
    variants: tuple[str, ...],
    replications: int | None,
    execution: Execution,
    output: Output,
) -> None:
    """Run SCENARIO_FILE over a grid of parameter values.

    Prints conversion, revenue and CLV per visitor at every point with 95% intervals;
    with --out writes sweep.csv and sweep.png (curves for one parameter, heat maps for
    two). Every point reuses the same replication seeds (common random numbers).

    \b
    Example:
      funnelsim sweep scenarios/checkout.yaml --variant control \\
        --param stages.checkout.friction.form_fields=3:20:1
    """
    from funnelsim import sweeps
    from funnelsim.experiment.cost import check_cost

    scenario = load_with_overrides(scenario_file)
    output.prepare(("sweep.csv", "sweep.png"))
    parsed = [sweeps.parse_param(text, scenario) for text in params]
    base = sweeps.only_variants(scenario, variants) if variants else scenario
    n = replications or scenario.experiment.replications
    points = sweeps.grid(parsed)
    if not output.allow_large:
        check_cost(base, n, execution, points)
    with progress_bar(not output.quiet, len(points) * n, "replications") as advance:
        result = sweeps.run_sweep(base, parsed, None, n, execution.reporting(advance))
    if not output.quiet:
        from funnelsim.tables import print_table

        print_table(sweeps.sweep_table(result), make_console())
    if output.out is not None:
        output.written(sweeps.write_sweep(result, output.out))


def _note_conversion_only(scenario: Scenario, command: str, quiet: bool) -> None:
    """``plan`` and ``bench`` read tests on conversion (or a stage's reach), not on CLV."""
    if scenario.experiment.metric == "clv_per_visitor":
        note(
            f"{command} judges tests on conversion; experiment.metric "
            f"({scenario.experiment.metric}) applies to funnelsim run",
            quiet,
        )


@click.command()
@click.argument("scenario_file", type=INPUT)
@click.option(
    "--objective",
    type=click.Choice(["decision", "profit"]),
    default="decision",
    help="decision: how long until the decision is right with the target probability; "
    "profit: the test length that maximises the expected profit of test and rollout.",
)
@click.option(
    "--variant",
    help="The variant to test against the control (required for --objective decision; "
    "profit plans every variant by default).",
)
@click.option(
    "--population",
    type=COUNT,
    help="--objective profit: visitors in all, test included [default: traffic.days + "
    "experiment.rollout_days of the scenario's traffic].",
)
@click.option(
    "--target-probability",
    type=PROBABILITY,
    default=0.95,
    help="Wanted probability of a correct decision (and the z-test's power).",
)
@click.option(
    "--simulations",
    type=click.IntRange(min=10),
    help="Simulated tests read at every length [default: 400; 1000 with --objective "
    "profit, of which the ship/keep rule reads the first 300].",
)
@click.option(
    "--max-days",
    type=click.IntRange(1, 3650),
    help="Longest test length read [default: twice the z-test's length].",
)
@click.option(
    "--alpha",
    type=PROBABILITY,
    default=0.05,
    help="Significance level of the two-sided z-test, with --false-ship-target none "
    "(--objective profit: of its power-based length).",
)
@click.option(
    "--false-ship-target",
    metavar="RATE|none",
    default="0.05",
    show_default=True,
    help="Calibrate the rule's loss threshold at each length to P(ship | A/A) <= RATE, as "
    "analyze does, and compare it with the one-sided z-test of the same risk; none: the "
    "uncalibrated rule beside the two-sided z-test at --alpha.",
)
@click.option(
    "--truth-replications",
    type=COUNT,
    default=20,
    help="Engine replications estimating the true rates.",
)
@click.option(
    "--assumptions",
    type=click.Choice(["uncertain", "fixed"]),
    help="--objective profit: uncertain: each simulated test plays in one of run's worlds "
    "of the {uncertain: ...} assumptions; fixed: one world, each at its central value "
    "[default: the scenario's experiment.assumptions].",
)
@execution_options
@output_options("plan.csv and plan.png (and plan.json with --objective profit)")
def plan(
    scenario_file: Path,
    objective: str,
    variant: str | None,
    population: int | None,
    target_probability: float,
    simulations: int | None,
    max_days: int | None,
    alpha: float,
    false_ship_target: str,
    truth_replications: int,
    assumptions: str | None,
    execution: Execution,
    output: Output,
) -> None:
    """How long an A/B test of VARIANT against the control must run.

    Simulates the test many times at increasing lengths, reads each with the Bayesian
    decision rule of the analysis module, and prints the probability of a correct
    decision against the length, the length that reaches the target, and the
    frequentist two-proportion sample size beside it. With --out writes plan.csv and
    plan.png.

    With --objective profit: the expected profit of test and rollout to the population
    at each length (Bayes rule, and the ship/keep rule beside it), the profit-maximising
    length, the power-based one, shipping now and perfect information, EVPI and EVSI.
    With --out writes plan.json, plan.csv and plan.png.
    """
    import funnelsim
    from funnelsim import budget, planning
    from funnelsim.experiment.cost import check_cost

    scenario = load_with_overrides(scenario_file, assumptions=assumptions)
    if objective == "profit":
        profit = _ProfitOptions(
            variant, population, simulations or 1000, max_days, alpha, target_probability
        )
        _plan_profit(scenario, profit, truth_replications, execution, output)
        return
    if variant is None:
        fail(f"{scenario_file}: --objective decision needs --variant (the variant to test)")
    if population is not None:
        fail("--population applies to --objective profit")
    simulations = simulations or 400
    target = rate_or_none(false_ship_target, "--false-ship-target")
    _note_conversion_only(scenario, "plan", output.quiet)
    output.prepare(("plan.csv", "plan.png"))
    if not output.allow_large:
        check_cost(scenario, truth_replications, execution)
        budget.check_work(budget.plan_work(simulations))
    total = truth_replications + simulations
    with progress_bar(not output.quiet, total, "engine runs and simulated tests") as advance:
        result = funnelsim.plan(
            scenario,
            variant,
            target_probability,
            simulations,
            max_days=max_days,
            alpha=alpha,
            truth_replications=truth_replications,
            execution=execution.reporting(advance),
            false_ship_target=target,
        )
    if not output.quiet:
        from funnelsim.tables import print_table

        console = make_console()
        print_table(planning.plan_table(result), console)
        for line in planning.plan_summary(result):
            console.print(line)
    if output.out is not None:
        output.written(planning.write_plan(result, output.out))


class _ProfitOptions(NamedTuple):
    variant: str | None
    population: int | None
    simulations: int
    max_days: int | None
    alpha: float
    power: float


def _plan_profit(
    scenario: Scenario,
    options: _ProfitOptions,
    truth_replications: int,
    execution: Execution,
    output: Output,
) -> None:
    """``plan --objective profit``: the profit curve, its table, summary and files."""
    from funnelsim import budget, profit_planning
    from funnelsim.experiment.cost import check_cost
    from funnelsim.tables import print_table

    output.prepare(("plan.json", "plan.csv", "plan.png"))
    if scenario.experiment.metric != "conversion":
        note(
            f"profit is {scenario.experiment.metric}; the ship/keep rule scored beside "
            "the Bayes rule reads conversion",
            output.quiet,
        )
    if not output.allow_large:
        check_cost(scenario, truth_replications, execution)
        budget.check_work(budget.plan_work(options.simulations))
    rule_tests = min(options.simulations, profit_planning.RULE_SIMULATIONS)
    total = truth_replications + rule_tests
    with progress_bar(not output.quiet, total, "engine runs and simulated tests") as advance:
        result = profit_planning.plan_profit(
            scenario,
            options.population,
            options.variant,
            max_days=options.max_days,
            simulations=options.simulations,
            rule_simulations=rule_tests,
            alpha=options.alpha,
            power=options.power,
            truth_replications=truth_replications,
            execution=execution.reporting(advance),
        )
    if not output.quiet:
        print_table(profit_planning.profit_plan_table(result), make_console())
    if output.out is not None:
        output.written(profit_planning.write_profit_plan(result, output.out))


@click.command()
@click.argument("scenario_file", type=INPUT)
@click.option(
    "--strategies",
    "names",
    default=",".join(STRATEGIES),
    help="Built-in strategies, comma-separated ('' for none); test_and_roll runs the "
    "profit-maximising test length over the bench's days.",
)
@click.option(
    "--strategy",
    "custom",
    multiple=True,
    metavar="MODULE:CLASS",
    help="Also a strategy of your own: a funnelsim.strategies.Strategy subclass (repeatable).",
)
@click.option(
    "--replications",
    type=COUNT,
    default=500,
    help="Simulated tests per strategy (each on the A/A and on the A/B truth).",
)
@click.option("--alpha", type=PROBABILITY, default=0.05, help="Significance of fixed, peeking.")
@click.option(
    "--min-share",
    type=FiniteFloatRange(0, 1, max_open=True),
    default=0.1,
    help="Smallest traffic share of an arm under thompson.",
)
@traffic_options
@click.option(
    "--truth-replications",
    type=COUNT,
    default=20,
    help="Engine replications estimating the true rates.",
)
@execution_options
@output_options("bench.json, bench.csv and bench.png")
def bench(
    scenario_file: Path,
    names: str,
    custom: tuple[str, ...],
    replications: int,
    alpha: float,
    min_share: float,
    truth_replications: int,
    execution: Execution,
    output: Output,
    **traffic: Any,
) -> None:
    """Score decision strategies on simulated tests of SCENARIO_FILE.

    The engine estimates every variant's true conversion and revenue per visitor; each
    strategy then plays many simulated tests (daily counts) of the scenario and of its
    A/A version. Prints the false-positive rate, P(ships the truly best), days and
    visitors to decision and regret, with 95% intervals; with --out writes bench.json,
    bench.csv and bench.png.
    """
    import funnelsim
    from funnelsim import budget, strategies, sweeps
    from funnelsim.experiment.cost import check_cost

    scenario = load_with_overrides(scenario_file, **traffic)
    _note_conversion_only(scenario, "bench", output.quiet)
    output.prepare(("bench.json", "bench.csv", "bench.png"))
    sweeps.engine_for(scenario, execution.engine)
    chosen: list[Any] = [n.strip() for n in names.split(",") if n.strip()]
    chosen += [strategies.load_strategy(spec) for spec in custom]
    if not chosen:
        fail(f"{scenario_file}: no strategy to bench (--strategies or --strategy)")
    if not output.allow_large:  # the engine's truth replications, then the simulated tests
        check_cost(scenario, truth_replications, execution)
        days = scenario.traffic.days
        budget.check_work(budget.bench_work(scenario, len(chosen), replications, days))
    total = truth_replications + 2 * len(chosen) * replications
    with progress_bar(not output.quiet, total, "engine runs and simulated tests") as advance:
        result = funnelsim.bench(
            scenario,
            chosen,
            replications,
            alpha=alpha,
            min_share=min_share,
            truth_replications=truth_replications,
            execution=execution.reporting(advance),
        )
    if not output.quiet:
        from funnelsim.tables import print_table

        print_table(strategies.bench_table(result), make_console())
    if output.out is not None:
        output.written(strategies.write_bench(result, output.out))
