"""Simulating one scenario: ``run`` and ``sensitivity``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from funnelsim.cli.shared import (
    COUNT,
    DIRECTORY,
    FILE,
    INPUT,
    Output,
    execution_options,
    executor_options,
    fail,
    load_with_overrides,
    make_console,
    output_options,
    progress_bar,
    traffic_options,
)
from funnelsim.execution import Execution

if TYPE_CHECKING:
    from funnelsim.scenario.schema import Scenario


@click.command()
@click.argument("scenario_file", type=INPUT)
@click.option("--replications", type=COUNT, help="Replications to run.")
@traffic_options
@execution_options
@output_options("results.json and summary.csv")
@click.option("--events", type=FILE, help="Write a per-visitor event log (first replication).")
@click.option("--orders", type=FILE, help="Write the order log of the first simulated test.")
@click.option(
    "--orders-months",
    type=click.IntRange(1, 120),
    default=12,
    help="Months the --orders log follows the customers after the test.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option("--report", "report_file", type=FILE, help="Write a self-contained HTML report.")
@click.option(
    "--assumptions",
    type=click.Choice(["uncertain", "fixed"]),
    help="uncertain: carry every {uncertain: ...} assumption into the intervals; fixed: "
    "each at its central value [default: the scenario's experiment.assumptions].",
)
def run(
    scenario_file: Path,
    replications: int | None,
    execution: Execution,
    output: Output,
    events: Path | None,
    orders: Path | None,
    orders_months: int,
    as_json: bool,
    report_file: Path | None,
    assumptions: str | None,
    **traffic: Any,
) -> None:
    """Simulate every variant of SCENARIO_FILE and compare them.

    --events writes one CSV row per visitor and stage of the first replication (with
    the order value of purchases), and a 'replied' row per lead the business answered
    (calibrate reads it); --orders the order log (customer, variant, date,
    amount) of its simulated test for analyze --transactions; --report an HTML report
    (its figures also as PNG in --out).
    """
    import funnelsim
    from funnelsim import budget, files, report, results
    from funnelsim.experiment.cost import check_cost

    scenario = load_with_overrides(
        scenario_file, seed=execution.seed, assumptions=assumptions, **traffic
    )
    named = {"--events": events, "--orders": orders, "--report": report_file}
    output.prepare(("results.json", "summary.csv"), named)
    n = replications or scenario.experiment.replications
    if not output.allow_large:  # the estimate prices the aggregate engine by its buyers
        check_cost(scenario, n, execution)
        if events is not None:
            budget.check_work(budget.event_log_work(scenario))
        if orders is not None:
            budget.check_work(budget.order_log_work(scenario, orders_months))
    with progress_bar(not (output.quiet or as_json), n, "replications") as advance:
        result = funnelsim.run(scenario, n, execution.reporting(advance))
    with files.output_batch() as written:
        if events is not None:
            funnelsim.write_event_log(scenario, events)
        if orders is not None:
            log = funnelsim.write_order_log(scenario, orders, orders_months, execution.engine)
        if output.out is not None:
            results.write_results(result, output.out)
        if report_file is not None:
            from funnelsim import html_report  # matplotlib: only for --report

            document = html_report.experiment_report(result, execution.processes)
            output.prepare(html_report.figure_names(document))
            html_report.write_report(document, report_file, output.out)
    if as_json:
        click.echo(results.results_json(result))
    elif not output.quiet:
        console = make_console()
        report.print_results(result, console)
        if result.value_of_information is not None:
            from funnelsim.tables import Cell, print_note

            print_note(Cell(result.value_of_information.describe()), console)
        output.written([p for p in written if p not in (events, orders)])
        if orders is not None:
            visitors = ",".join(f"{name}={count}" for name, count in log.visitors.items())
            click.echo(
                f"wrote {orders}: {log.describe()}; read it with: funnelsim analyze {orders} "
                f"--transactions --visitors {visitors}"
            )


SENSITIVITY_FILES = ("sensitivity.json", "sensitivity.png")


@click.command()
@click.argument("scenario_file", type=INPUT)
@click.option(
    "--variant",
    help="Analyse this variant's uplift over control, or the control's own metric "
    "[default: the best variant at the stated values].",
)
@click.option(
    "--metric",
    type=click.Choice(["conversion", "revenue_per_visitor", "clv_per_visitor"]),
    default="conversion",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=4096,
    help="Base samples N (a power of 2); N x (assumptions + 2) worlds are valued.",
)
@executor_options
@click.option("--out", type=DIRECTORY, help="Write sensitivity.json and sensitivity.png here.")
@click.option("--force", is_flag=True, help="Overwrite existing files in --out and --report.")
@click.option("--json", "as_json", is_flag=True, help="Print sensitivity.json to stdout.")
@click.option("--report", "report_file", type=FILE, help="Write a self-contained HTML report.")
@click.option(
    "--allow-large",
    is_flag=True,
    help="Run even when the estimated time or memory is beyond the limits.",
)
def sensitivity(
    scenario_file: Path,
    variant: str | None,
    metric: str,
    samples: int,
    execution: Execution,
    out: Path | None,
    force: bool,
    as_json: bool,
    report_file: Path | None,
    allow_large: bool,
) -> None:
    """Which uncertain assumption of SCENARIO_FILE the decision hangs on (Sobol indices)."""
    import json

    import funnelsim

    scenario = load_with_overrides(scenario_file, seed=execution.seed)
    if samples & (samples - 1):
        fail(f"--samples: must be a power of 2, got {samples}")
    output = Output(out, force, as_json, allow_large)
    output.prepare(SENSITIVITY_FILES, {"--report": report_file})
    result = funnelsim.sensitivity(
        scenario,
        variant,
        metric,  # type: ignore[arg-type]
        samples=samples,
        execution=execution,
        allow_large=allow_large,
    )
    document = json.dumps(result.to_dict(), indent=2, allow_nan=False)
    written = _write_sensitivity(result, scenario, document, out, report_file)
    if as_json:
        click.echo(document)
        return
    _print_sensitivity(result)
    output.written(written)


def _write_sensitivity(
    result: Any, scenario: Scenario, document: str, out: Path | None, report_file: Path | None
) -> list[Path]:
    """sensitivity.json and sensitivity.png under ``out``, the HTML report at
    ``report_file``; all or nothing."""
    from funnelsim import files, html_report

    if out is None and report_file is None:
        return []
    report = html_report.sensitivity_report(result, scenario)
    with files.output_batch() as written:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            with files.atomic_writer(out / SENSITIVITY_FILES[0]) as stream:
                stream.write(document + "\n")
            for figure in report.figures:
                files.write_bytes_atomic(out / f"{figure.name}.png", figure.png)
        if report_file is not None:
            html_report.write_report(report, report_file)
    return written


def _print_sensitivity(result: Any) -> None:
    from funnelsim.report import sensitivity_table
    from funnelsim.tables import print_table

    print_table(sensitivity_table(result), make_console())
