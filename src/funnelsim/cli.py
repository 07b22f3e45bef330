"""The ``funnelsim`` command line: parse options, call the library, present.

Heavy libraries (SciPy, PyMC, ArviZ, Dask) are imported inside the commands
that need them, so ``funnelsim --help`` stays instant.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

if TYPE_CHECKING:
    from funnelsim.orders import OrderLog
    from funnelsim.results import ExperimentResult
    from funnelsim.scenario.schema import Scenario

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PIPED_WIDTH = 100  # table width when output is not a terminal


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _load(path: Path) -> Scenario:
    from funnelsim.scenario.loader import load_scenario
    from funnelsim.scenario.messages import ScenarioError

    try:
        return load_scenario(path)
    except ScenarioError as error:
        fail(str(error))


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with time remaining on a terminal; a no-op when disabled or
    when stderr is not a terminal (logs and pipes get no bar and no stray lines)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else PIPED_WIDTH)


class _Commands(click.Group):
    """The command group. Ctrl-C anywhere ends with one line and exit status 130 (not
    click's "Aborted!" and status 1), also when it strikes while a library loads and
    surfaces as some other error (an extension module failing to initialise). Running
    out of memory (a request run with --allow-large) ends with one line and status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        with _noting_interrupts() as interrupted:
            try:
                return super().invoke(ctx)
            except MemoryError:
                fail(
                    "out of memory: ask for fewer visitors, replications or workers "
                    "(without --allow-large a request is priced before it starts)"
                )
            except Exception:
                if not interrupted:
                    raise
            except KeyboardInterrupt:
                pass
        click.echo("interrupted: stopped; no file was left half-written", err=True)
        sys.exit(EXIT_INTERRUPTED)


@contextmanager
def _noting_interrupts() -> Iterator[list[int]]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also noted in the yielded list."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def note(signum: int, _frame: object) -> None:
        noted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="funnelsim")
def main() -> None:
    """Simulate funnel changes before you spend traffic on them.

    Conversion, revenue and CLV per visitor for each variant of a scenario,
    and what an A/B test of the planned size would conclude.
    """


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario files; print a one-line summary per file."""
    from funnelsim.experiment.engines import choose_engine, compile_variants
    from funnelsim.scenario.loader import load_scenario
    from funnelsim.scenario.messages import ScenarioError

    failed = False
    for path in files:
        try:
            scenario = load_scenario(path)
        except ScenarioError as error:
            click.echo(str(error), err=True)
            failed = True
            continue
        engine = choose_engine(compile_variants(scenario))
        click.echo(
            f"{path}: ok: {scenario.name!r}, {len(scenario.stages)} stages, "
            f"{len(scenario.variants)} variants ({', '.join(scenario.variant_names)}), "
            f"{scenario.traffic.visitors_per_day:g} visitors/day x {scenario.traffic.days} days, "
            f"engine {engine}"
        )
    if failed:
        sys.exit(EXIT_USAGE)


def _with_cli_overrides(
    file: Path,
    days: int | None,
    visitors_per_day: float | None,
    seed: int | None,
    assumptions: str | None = None,
) -> Scenario:
    """The scenario of ``file`` with the command line's overrides (exit 2 if they break it)."""
    from funnelsim.scenario.messages import ScenarioError

    scenario = _load(file)

    overrides: dict[str, Any] = {}
    if days is not None:
        overrides["traffic.days"] = days
    if visitors_per_day is not None:
        overrides["traffic.visitors_per_day"] = visitors_per_day
    if seed is not None:
        overrides["seed"] = seed
    if assumptions is not None:
        overrides["experiment.assumptions"] = assumptions
    try:
        return scenario.with_overrides(overrides) if overrides else scenario
    except ScenarioError as error:
        fail(f"{file}: {error.field}: {error.message} (with the command-line options)")


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option("--seed", type=click.IntRange(min=0), help="Override the scenario's seed.")
@click.option("--replications", type=click.IntRange(min=1), help="Replications to run.")
@click.option("--days", type=click.IntRange(min=1), help="Override the test length in days.")
@click.option(
    "--visitors-per-day", type=click.FloatRange(min=0, min_open=True), help="Override the traffic."
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "simpy", "vectorized", "aggregate"]),
    default="auto",
    show_default=True,
    help="Simulation engine (auto: SimPy only where queues exist; aggregate: counts "
    "drawn directly, for very large runs without queues).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local processes (or Dask LocalCluster workers) for replications [default: CPU count].",
)
@click.option(
    "--dask",
    metavar="local|ADDRESS",
    help="Run the replications on Dask: 'local' (a LocalCluster) or a scheduler "
    "address (tcp://HOST:8786).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write results.json and summary.csv here.",
)
@click.option("--force", is_flag=True, help="Overwrite existing results in --out.")
@click.option(
    "--events",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a per-visitor event log (first replication) as CSV.",
)
@click.option(
    "--orders",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the order log (customer, variant, date, amount) of the first replication's "
    "simulated test as CSV, for analyze --transactions.",
)
@click.option(
    "--orders-months",
    type=click.IntRange(min=1, max=120),
    default=12,
    show_default=True,
    help="Months the --orders log follows the customers after the test.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report (its figures also as PNG in --out).",
)
@click.option("-q", "--quiet", is_flag=True, help="No table or progress (for scripts).")
@click.option(
    "--allow-large",
    is_flag=True,
    help="Run even when the estimated time or memory is beyond the limits.",
)
@click.option(
    "--assumptions",
    type=click.Choice(["uncertain", "fixed"]),
    help="uncertain: carry every {uncertain: ...} assumption into the intervals; fixed: "
    "each at its central value [default: the scenario's experiment.assumptions].",
)
def run(
    scenario_file: Path,
    seed: int | None,
    replications: int | None,
    days: int | None,
    visitors_per_day: float | None,
    engine: str,
    workers: int | None,
    dask: str | None,
    out: Path | None,
    force: bool,
    events: Path | None,
    orders: Path | None,
    orders_months: int,
    as_json: bool,
    report_file: Path | None,
    quiet: bool,
    allow_large: bool,
    assumptions: str | None,
) -> None:
    """Simulate every variant of SCENARIO_FILE and compare them."""
    from funnelsim import files, report, results
    from funnelsim.experiment.runner import run_experiment
    from funnelsim.parallel import ExecutorError, check_dask_address
    from funnelsim.scenario.messages import ScenarioError

    scenario = _with_cli_overrides(scenario_file, days, visitors_per_day, seed, assumptions)
    try:
        if dask is not None:
            check_dask_address(dask)
    except ExecutorError as error:
        fail(str(error))
    try:
        if out is not None:
            files.prepare_output(out, force, ("results.json", "summary.csv"))
        for path in (events, orders):
            if path is not None and path.exists() and not force:
                fail(f"{path}: exists; use --force to overwrite")
        if report_file is not None and report_file.exists() and not force:
            fail(f"{report_file}: exists; use --force to overwrite")
    except files.OutputExistsError as error:
        fail(str(error))
    n = replications or scenario.experiment.replications
    workers = workers or os.cpu_count() or 1
    if not allow_large:  # the estimate prices the aggregate engine by its buyers
        _check_cost(scenario_file, scenario, n, engine, workers)
    placed: list[Path] = []
    try:
        with _progress(not (quiet or as_json), n, "replications") as advance:
            result = run_experiment(
                scenario,
                n,
                engine=engine,  # type: ignore[arg-type]
                workers=workers,
                progress=advance,
                dask=dask,
            )
        with files.output_batch() as placed:
            if events is not None:
                _write_events(scenario, events)
            log = None if orders is None else _write_orders(scenario, orders, orders_months, engine)
            written = results.write_results(result, out) if out is not None else []
            if report_file is not None:
                written += _write_html_report(result, report_file, out, force)
    except KeyboardInterrupt:
        done = f"after writing {', '.join(map(str, placed))}" if placed else "no results written"
        click.echo(f"interrupted: stopped cleanly, {done}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ExecutorError as error:
        fail(str(error))
    except ScenarioError as error:  # located already (an engine refusing a field)
        fail(str(error))
    except ValueError as error:
        fail(f"{scenario_file}: {error}")
    if as_json:
        click.echo(results.results_json(result))
    elif not quiet:
        report.print_results(result, _console())
        if len(result.variants) > 1:
            click.echo(_value_of_information(result))
        for path in written:
            click.echo(f"wrote {path}")
        if orders is not None and log is not None:
            _echo_order_log(orders, log)


def _value_of_information(result: ExperimentResult) -> str:
    """``run``'s line on what the planned test is worth (profit planning's Bayes rule)."""
    from funnelsim import profit_planning

    scenario = result.scenario
    names = [v.name for v in result.variants]
    world = profit_planning.world_of(scenario, names, [v.metrics for v in result.variants])
    return profit_planning.value_of_information(scenario, world)


def _check_cost(
    file: Path,
    scenario: Scenario,
    replications: int,
    engine: str,
    workers: int,
    points: list[dict[str, Any]] | None = None,
) -> None:
    """Refuse (exit 2) a request whose estimated time or memory is beyond the limits;
    ``points`` are the grid points of a sweep."""
    from funnelsim import budget
    from funnelsim.engine.model import compile_funnel
    from funnelsim.experiment.engines import choose_engine
    from funnelsim.scenario.messages import ScenarioError

    try:
        chosen = choose_engine(
            [compile_funnel(scenario.variant(v)) for v in scenario.variant_names], engine
        )  # type: ignore[arg-type]
        cost = (
            budget.estimate(scenario, replications, chosen, workers)
            if points is None
            else budget.estimate_sweep(scenario, points, replications, chosen, workers)
        )
    except ScenarioError as error:
        fail(str(error))
    except ValueError as error:
        fail(f"{file}: {error}")
    problem = budget.refusal(cost)
    if problem:
        fail(
            f"{file}: too large: {budget.describe(cost)} on {workers} worker(s); {problem}; "
            "use --allow-large to run it anyway"
        )


def _write_html_report(
    result: ExperimentResult, path: Path, out: Path | None, force: bool
) -> list[Path]:
    from funnelsim import files, html_report

    document = html_report.experiment_report(result)
    if out is not None:
        try:
            files.prepare_output(out, force, html_report.figure_names(document))
        except files.OutputExistsError as error:
            fail(str(error))
    return html_report.write_report(document, path, out)


def _write_events(scenario: Scenario, path: Path) -> None:
    from funnelsim.engine import simpy_engine
    from funnelsim.engine.draws import VisitorDraws, replication_seeds
    from funnelsim.engine.model import compile_funnel
    from funnelsim.files import atomic_writer

    seed = replication_seeds(scenario.seed, 1)[0]
    draws = VisitorDraws(seed, scenario.traffic.visitors_per_day, scenario.traffic.days)
    with atomic_writer(path) as stream:
        for i, name in enumerate(scenario.variant_names):
            log = simpy_engine.EventLog(name)
            simpy_engine.simulate(compile_funnel(scenario.variant(name)), draws, log)
            log.write_csv(stream, header=i == 0)


def _write_orders(scenario: Scenario, path: Path, months: int, engine: str) -> OrderLog:
    from funnelsim.files import atomic_writer
    from funnelsim.orders import simulate_order_log

    log = simulate_order_log(scenario, months, engine)  # type: ignore[arg-type]
    with atomic_writer(path) as stream:
        log.write_csv(stream)
    return log


def _echo_order_log(path: Path, log: OrderLog) -> None:
    """Where the order log went, and the command that reads it."""
    visitors = ",".join(f"{name}={count}" for name, count in log.visitors.items())
    click.echo(
        f"wrote {path}: {len(log.customer):,} orders of {sum(log.customers.values()):,} "
        f"customers over {log.last_day + 1} days; read it with: funnelsim analyze {path} "
        f"--transactions --visitors {visitors}"
    )


SENSITIVITY_FILES = ("sensitivity.json", "sensitivity.png")


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option(
    "--variant",
    help="Analyse this variant's uplift over control, or the control's own metric "
    "[default: the best variant at the stated values].",
)
@click.option(
    "--metric",
    type=click.Choice(["conversion", "revenue_per_visitor", "clv_per_visitor"]),
    default="conversion",
    show_default=True,
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=4096,
    show_default=True,
    help="Base samples N (a power of 2); N x (assumptions + 2) worlds are valued.",
)
@click.option("--seed", type=click.IntRange(min=0), help="Override the scenario's seed.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local processes (or Dask LocalCluster workers) [default: CPU count].",
)
@click.option("--dask", metavar="local|ADDRESS", help="Value the worlds on Dask.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write sensitivity.json and sensitivity.png here.",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report with the ranked table and the chart.",
)
@click.option("--force", is_flag=True, help="Overwrite existing files in --out and --report.")
@click.option("--json", "as_json", is_flag=True, help="Print sensitivity.json to stdout.")
def sensitivity(
    scenario_file: Path,
    variant: str | None,
    metric: str,
    samples: int,
    seed: int | None,
    workers: int | None,
    dask: str | None,
    out: Path | None,
    report_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Which uncertain assumption of SCENARIO_FILE the decision hangs on (Sobol indices)."""
    import json

    from funnelsim import files
    from funnelsim.parallel import ExecutorError, check_dask_address
    from funnelsim.sensitivities import sensitivity as analyse

    scenario = _load(scenario_file)
    if variant is not None and variant not in scenario.variants:
        fail(f"--variant: no variant {variant!r}; variants: {', '.join(scenario.variant_names)}")
    if samples & (samples - 1):
        fail(f"--samples: must be a power of 2, got {samples}")
    try:
        if dask is not None:
            check_dask_address(dask)
        if out is not None:
            files.prepare_output(out, force, SENSITIVITY_FILES)
        if report_file is not None and report_file.exists() and not force:
            fail(f"{report_file}: exists; use --force to overwrite")
    except (ExecutorError, files.OutputExistsError) as error:
        fail(str(error))
    try:
        result = analyse(
            scenario,
            variant,
            metric,  # type: ignore[arg-type]
            samples,
            seed,
            workers or os.cpu_count() or 1,
            dask,
        )
    except ExecutorError as error:
        fail(str(error))
    except ValueError as error:
        fail(f"{scenario_file}: {error}")
    document = json.dumps(result.to_dict(), indent=2, allow_nan=False)
    written = _write_sensitivity(result, scenario, document, out, report_file)
    if as_json:
        click.echo(document)
        return
    _print_sensitivity(result)
    for path in written:
        click.echo(f"wrote {path}")


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

    print_table(sensitivity_table(result), _console())


TEMPLATE_NAMES = (  # funnelsim.scaffold.TEMPLATES
    "checkout",
    "leads",
    "rean",
    "page_speed",
    "purchase_path",
    "local_business",
    "sales_funnel",
    "lead_funnel",
)


@main.command()
@click.argument("name")
@click.option(
    "--template",
    type=click.Choice(TEMPLATE_NAMES),
    default="checkout",
    show_default=True,
    help="The bundled scenario to start from.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name: str, template: str, force: bool) -> None:
    """Write a commented scenario NAME.yaml to start from."""
    from funnelsim import scaffold
    from funnelsim.files import atomic_writer

    path = scaffold.init_path(name)
    if path.exists() and not force:
        fail(f"{path}: exists; use --force to overwrite")
    text = scaffold.scenario_from_template(template, path.stem)
    try:
        with atomic_writer(path) as stream:
            stream.write(text)
    except OSError as error:
        fail(f"{path}: cannot write: {error.strerror}")
    click.echo(f"wrote {path} from the {template} template; next: funnelsim explain {path}")


@main.command(name="list")
def list_scenarios() -> None:
    """List the bundled scenarios, one line each."""
    from funnelsim import scaffold

    infos = scaffold.templates()
    width = max(len(t.name) for t in infos)
    for info in infos:
        click.echo(
            f"{info.name:<{width}}  {info.stages} stages, {info.variants} variants  {info.summary}"
        )
    click.echo("\nStart from one: funnelsim init NAME --template TEMPLATE")


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
def explain(scenario_file: Path) -> None:
    """Draw SCENARIO_FILE's funnel: stages, friction, expected rates, load, warnings."""
    from funnelsim import scaffold

    console = _console()
    for line in scaffold.explain_lines(_load(scenario_file)):
        console.print(line, highlight=False, soft_wrap=True)


@main.command()
@click.option(
    "--markdown", is_flag=True, help="The field reference in Markdown (docs/scenario-reference.md)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
def schema(markdown: bool, output: Path | None) -> None:
    """Print the scenario schema: JSON Schema, or the Markdown field reference."""
    import json

    from funnelsim import schema_doc
    from funnelsim.files import atomic_writer

    text = (
        schema_doc.markdown() if markdown else json.dumps(schema_doc.json_schema(), indent=2) + "\n"
    )
    if output is None:
        click.echo(text, nl=False)
        return
    with atomic_writer(output) as stream:
        stream.write(text)
    click.echo(f"wrote {output}")


# --------------------------------------------------------------------------- experiment science


def _science_options(command: Callable[..., None]) -> Callable[..., None]:
    """Options shared by ``sweep``, ``plan`` and ``bench``: seed, engine, executor, output."""
    options = [
        click.option("--seed", type=click.IntRange(min=0), help="Override the scenario's seed."),
        click.option(
            "--engine",
            type=click.Choice(["auto", "simpy", "vectorized", "aggregate"]),
            default="auto",
            show_default=True,
            help="Simulation engine.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="Local processes (or Dask LocalCluster workers) [default: CPU count].",
        ),
        click.option(
            "--dask",
            metavar="local|ADDRESS",
            help="Run on Dask: 'local' (a LocalCluster) or a scheduler address (tcp://HOST:8786).",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            help="Write the CSV and PNG here.",
        ),
        click.option("--force", is_flag=True, help="Overwrite existing results in --out."),
        click.option("-q", "--quiet", is_flag=True, help="No table or progress."),
        click.option(
            "--allow-large",
            is_flag=True,
            help="Run even when the estimated time or memory is beyond the limits.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _note_conversion_only(scenario: Scenario, command: str, quiet: bool) -> None:
    """``plan`` and ``bench`` read tests on conversion whatever ``experiment.metric`` says."""
    if scenario.experiment.metric != "conversion" and not quiet:
        click.echo(
            f"note: {command} judges tests on conversion; experiment.metric "
            f"({scenario.experiment.metric}) applies to funnelsim run",
            err=True,
        )


def _prepare_out(out: Path | None, force: bool, names: tuple[str, ...]) -> None:
    from funnelsim import files

    if out is not None:
        try:
            files.prepare_output(out, force, names)
        except files.OutputExistsError as error:
            fail(str(error))


@contextmanager
def _science_errors(scenario_file: Path, dask: str | None) -> Iterator[None]:
    """Check the Dask address first; turn the errors a user can fix into one line and
    exit status 2."""
    from funnelsim.parallel import ExecutorError, check_dask_address
    from funnelsim.strategies import StrategyError
    from funnelsim.sweeps import SweepError

    try:
        if dask is not None:
            check_dask_address(dask)
        yield
    except (SweepError, StrategyError, ExecutorError) as error:
        fail(f"{scenario_file}: {error}")


def _echo_written(paths: list[Path], quiet: bool) -> None:
    if not quiet:
        for path in paths:
            click.echo(f"wrote {path}")


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    metavar="PATH=START:STOP:STEP|PATH=a,b,c",
    help="A dotted scenario path and its values (both ends of a range included); "
    "repeat for a grid.",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    help="Sweep only this variant (repeatable) [default: every variant].",
)
@click.option(
    "--replications",
    type=click.IntRange(min=1),
    help="Replications per grid point [default: the scenario's].",
)
@_science_options
def sweep(
    scenario_file: Path,
    params: tuple[str, ...],
    variants: tuple[str, ...],
    replications: int | None,
    seed: int | None,
    engine: str,
    workers: int | None,
    dask: str | None,
    out: Path | None,
    force: bool,
    quiet: bool,
    allow_large: bool,
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
    from funnelsim import sweeps as sweeping

    scenario = _load(scenario_file)
    _prepare_out(out, force, ("sweep.csv", "sweep.png"))
    with _science_errors(scenario_file, dask):
        parsed = [sweeping.parse_param(text, scenario) for text in params]
        base = sweeping.only_variants(scenario, variants) if variants else scenario
        n = replications or scenario.experiment.replications
        points = sweeping.grid(parsed)
        if not allow_large:
            _check_cost(scenario_file, base, n, engine, workers or os.cpu_count() or 1, points)
        total = len(points) * n
        with _progress(not quiet, total, "replications") as advance:
            result = sweeping.run_sweep(
                base,
                parsed,
                None,
                n,
                seed,
                engine,  # type: ignore[arg-type]
                workers or os.cpu_count() or 1,
                dask,
                advance,
            )
    if not quiet:
        from funnelsim.tables import print_table

        print_table(sweeping.sweep_table(result), _console())
    if out is not None:
        _echo_written(sweeping.write_sweep(result, out), quiet)


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option(
    "--objective",
    type=click.Choice(["decision", "profit"]),
    default="decision",
    show_default=True,
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
    type=click.IntRange(min=1),
    help="--objective profit: visitors in all, test included [default: traffic.days + "
    "experiment.rollout_days of the scenario's traffic].",
)
@click.option(
    "--target-probability",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
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
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level of the z-test.",
)
@click.option(
    "--truth-replications",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Engine replications estimating the true rates.",
)
@_science_options
def plan(
    scenario_file: Path,
    objective: str,
    variant: str | None,
    population: int | None,
    target_probability: float,
    simulations: int | None,
    max_days: int | None,
    alpha: float,
    truth_replications: int,
    seed: int | None,
    engine: str,
    workers: int | None,
    dask: str | None,
    out: Path | None,
    force: bool,
    quiet: bool,
    allow_large: bool,
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
    from funnelsim import planning

    scenario = _load(scenario_file)
    if objective == "profit":
        options = _ProfitOptions(
            variant, population, simulations or 1000, max_days, alpha, target_probability
        )
        runner = _Runner(truth_replications, seed, engine, workers, dask, allow_large)
        _plan_profit(scenario_file, scenario, options, runner, out, force, quiet)
        return
    if variant is None:
        fail(f"{scenario_file}: --objective decision needs --variant (the variant to test)")
    if population is not None:
        fail("--population applies to --objective profit")
    simulations = simulations or 400
    _note_conversion_only(scenario, "plan", quiet)
    _prepare_out(out, force, ("plan.csv", "plan.png"))
    if not allow_large:
        _check_cost(
            scenario_file, scenario, truth_replications, engine, workers or os.cpu_count() or 1
        )
    total = truth_replications + simulations
    with _science_errors(scenario_file, dask):
        planning.pair_scenario(scenario, variant)
        with _progress(not quiet, total, "simulations") as advance:
            result = planning.plan_test(
                scenario,
                variant,
                target_probability,
                simulations,
                max_days,
                alpha=alpha,
                truth_replications=truth_replications,
                seed=seed,
                engine=engine,  # type: ignore[arg-type]
                workers=workers or os.cpu_count() or 1,
                dask=dask,
                progress=advance,
            )
    if not quiet:
        from funnelsim.tables import print_table

        console = _console()
        print_table(planning.plan_table(result), console)
        for line in planning.plan_summary(result):
            console.print(line)
    if out is not None:
        _echo_written(planning.write_plan(result, out), quiet)


class _ProfitOptions(NamedTuple):
    variant: str | None
    population: int | None
    simulations: int
    max_days: int | None
    alpha: float
    power: float


class _Runner(NamedTuple):
    truth_replications: int
    seed: int | None
    engine: str
    workers: int | None
    dask: str | None
    allow_large: bool


def _plan_profit(
    scenario_file: Path,
    scenario: Scenario,
    options: _ProfitOptions,
    runner: _Runner,
    out: Path | None,
    force: bool,
    quiet: bool,
) -> None:
    """``plan --objective profit``: the profit curve, its table, summary and files."""
    from funnelsim import profit_planning

    _prepare_out(out, force, ("plan.json", "plan.csv", "plan.png"))
    if scenario.experiment.metric != "conversion" and not quiet:
        click.echo(
            f"note: profit is {scenario.experiment.metric}; the ship/keep rule scored beside "
            "the Bayes rule reads conversion",
            err=True,
        )
    workers = runner.workers or os.cpu_count() or 1
    if not runner.allow_large:
        _check_cost(scenario_file, scenario, runner.truth_replications, runner.engine, workers)
    rule_tests = min(options.simulations, profit_planning.RULE_SIMULATIONS)
    with _science_errors(scenario_file, runner.dask):
        total = runner.truth_replications + rule_tests
        with _progress(not quiet, total, "simulations") as advance:
            result = profit_planning.plan_profit(
                scenario,
                options.population,
                options.variant,
                max_days=options.max_days,
                simulations=options.simulations,
                rule_simulations=rule_tests,
                alpha=options.alpha,
                power=options.power,
                truth_replications=runner.truth_replications,
                seed=runner.seed,
                engine=runner.engine,  # type: ignore[arg-type]
                workers=workers,
                dask=runner.dask,
                progress=advance,
            )
    if not quiet:
        console = _console()
        console.print(profit_planning.profit_plan_table(result))
        for line in profit_planning.profit_plan_summary(result):
            console.print(line)
    if out is not None:
        _echo_written(profit_planning.write_profit_plan(result, out), quiet)


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option(
    "--strategies",
    "names",
    default="fixed,peeking,sequential,bayes_stop,thompson,test_and_roll",
    show_default=True,
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
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Simulated tests per strategy (each on the A/A and on the A/B truth).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level of fixed and peeking.",
)
@click.option(
    "--min-share",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Smallest traffic share of an arm under thompson.",
)
@click.option("--days", type=click.IntRange(min=1), help="Override the test length in days.")
@click.option(
    "--visitors-per-day", type=click.FloatRange(min=0, min_open=True), help="Override the traffic."
)
@click.option(
    "--truth-replications",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Engine replications estimating the true rates.",
)
@_science_options
def bench(
    scenario_file: Path,
    names: str,
    custom: tuple[str, ...],
    replications: int,
    alpha: float,
    min_share: float,
    days: int | None,
    visitors_per_day: float | None,
    truth_replications: int,
    seed: int | None,
    engine: str,
    workers: int | None,
    dask: str | None,
    out: Path | None,
    force: bool,
    quiet: bool,
    allow_large: bool,
) -> None:
    """Score decision strategies on simulated tests of SCENARIO_FILE.

    The engine estimates every variant's true conversion and revenue per visitor; each
    strategy then plays many simulated tests (daily counts) of the scenario and of its
    A/A version. Prints the false-positive rate, P(ships the truly best), days and
    visitors to decision and regret, with 95% intervals; with --out writes bench.json,
    bench.csv and bench.png.
    """
    from funnelsim import strategies as strats
    from funnelsim import sweeps as sweeping
    from funnelsim.experiment.readout import decision_rule
    from funnelsim.profit_planning import roll_for_bench

    scenario = _with_cli_overrides(scenario_file, days, visitors_per_day, None)
    _note_conversion_only(scenario, "bench", quiet)
    _prepare_out(out, force, ("bench.json", "bench.csv", "bench.png"))
    if not allow_large:  # the engine's truth replications; the simulated tests are counts
        _check_cost(
            scenario_file, scenario, truth_replications, engine, workers or os.cpu_count() or 1
        )
    experiment = scenario.experiment
    with _science_errors(scenario_file, dask):
        sweeping.engine_for(scenario, engine)  # type: ignore[arg-type]
        built_in = [n.strip() for n in names.split(",") if n.strip()]
        strats.check_built_in(built_in)
        custom_strategies = [strats.load_strategy(spec) for spec in custom]
        if not built_in + custom_strategies:
            raise strats.StrategyError("no strategy to bench (--strategies or --strategy)")
        seed = scenario.seed if seed is None else seed
        workers = workers or os.cpu_count() or 1
        total = truth_replications + 2 * (len(built_in) + len(custom)) * replications
        with _progress(not quiet, total, "simulations") as advance:
            truth = strats.engine_truth(
                scenario,
                truth_replications,
                seed,
                engine,  # type: ignore[arg-type]
                workers,
                dask,
                advance,
            )
            chosen = strats.built_in_strategies(
                built_in,
                alpha,
                decision_rule(scenario),
                (experiment.prior.alpha, experiment.prior.beta),
                min_share,
                roll_for_bench(built_in, truth, scenario.value.margin, seed),
            )
            result = strats.run_bench(
                truth,
                chosen + custom_strategies,
                replications,
                seed,
                workers,
                dask,
                advance,
                scenario.name,
                scenario.currency,
            )
    if not quiet:
        from funnelsim.tables import print_table

        print_table(strats.bench_table(result), _console())
    if out is not None:
        _echo_written(strats.write_bench(result, out), quiet)


def _readout_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The per-visitor readouts of ``analyze`` (issue 16): each option feeds
    :class:`funnelsim.analysis.readouts.ReadoutRequest`."""
    options = [
        click.option(
            "--metric",
            metavar="M",
            help="Primary metric: conversion, revenue_per_visitor (decided by the revenue "
            "model) or a 0/1 column.",
        ),
        click.option("--split", metavar="90,10", help="Planned traffic shares (SRM check)."),
        click.option("--sequential", is_flag=True, help="Always-valid look-by-look readout."),
        click.option(
            "--look-column",
            default="date",
            show_default=True,
            metavar="C",
            help="With --sequential: the date (or look number) of each row.",
        ),
        click.option(
            "--planned-visitors",
            type=click.FloatRange(min=1),
            help="With --sequential: control-plus-variant visitors planned [default: all].",
        ),
        click.option("--covariate", metavar="A,B", help="Pre-experiment columns (CUPED)."),
        click.option(
            "--guardrail",
            metavar="A,B",
            help="Guardrail columns, each COLUMN[:THRESHOLD] (-COLUMN: lower is better).",
        ),
        click.option("--secondary", metavar="A,B", help="Secondary metric columns."),
        click.option("--ratio", metavar="NUM/DEN,...", help="Ratio metrics (delta method)."),
        click.option("--segment-column", metavar="C", help="Per-segment effects (PyMC)."),
        click.option("--table", metavar="T", help="Table of a duckdb:///FILE source."),
        click.option(
            "--risks",
            is_flag=True,
            help="State the rule's P(ship) under A/A, for a worse and a better variant at "
            "this size (simulated).",
        ),
        click.option(
            "--false-ship-target",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            help="Calibrate the loss threshold to this A/A false-ship rate (implies --risks).",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Details of each readout."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _readout_request(options: dict[str, Any], columns: Any) -> Any:
    """The :class:`~funnelsim.analysis.readouts.ReadoutRequest` of the command line."""
    from funnelsim.analysis.readouts import ReadoutRequest

    ratios = []
    for text in _names(options["ratio"]):
        numerator, slash, denominator = text.partition("/")
        if not (slash and numerator and denominator):
            fail(f"--ratio {text!r}: give NUMERATOR/DENOMINATOR, e.g. revenue/orders")
        ratios.append((numerator, denominator))
    metric = columns.converted
    if options["metric"] == "revenue_per_visitor":
        metric = columns.revenue or "revenue"
    return ReadoutRequest(
        arm=columns.variant,
        metric=metric,
        revenue=columns.revenue,
        look=options["look_column"] if options["sequential"] else None,
        covariates=_names(options["covariate"]),
        guardrails=_names(options["guardrail"]),
        secondary=_names(options["secondary"]),
        ratios=tuple(ratios),
        segment=options["segment_column"],
        table=options["table"],
        planned_visitors=options["planned_visitors"],
    )


@main.command()
@click.argument("data_file", metavar="DATA", type=click.Path(dir_okay=False))
@click.option("--control", help="Control variant [default: the first in the file].")
@click.option(
    "--model",
    type=click.Choice(["conjugate", "funnel", "revenue"]),
    default="conjugate",
    show_default=True,
    help="conjugate: exact Beta-Binomial readout; funnel: PyMC stage-by-stage model "
    "(which stage changed); revenue: PyMC revenue-per-visitor model.",
)
@click.option("--variant-column", default="variant", show_default=True, metavar="C")
@click.option(
    "--converted-column",
    default="converted",
    show_default=True,
    metavar="C",
    help="Per-visitor rows: the conversion flag (e.g. retention_1).",
)
@click.option(
    "--visitors-column",
    default="visitors",
    show_default=True,
    metavar="C",
    help="Aggregated rows: a file with this column is read as aggregated.",
)
@click.option("--conversions-column", default="conversions", show_default=True, metavar="C")
@click.option(
    "--revenue-column",
    metavar="C",
    help="Order value (per visitor) or revenue sum (aggregated) [default: 'revenue' if present].",
)
@click.option(
    "--stage-columns",
    metavar="A,B,C",
    help="Funnel stage columns in order (flags or counts of visitors reaching them).",
)
@click.option(
    "--sampler",
    type=click.Choice(["auto", "nutpie", "pymc"]),
    default="auto",
    show_default=True,
    help="NUTS sampler of the PyMC models (auto: nutpie if installed).",
)
@click.option(
    "--draws",
    type=click.IntRange(min=100),
    default=1000,
    show_default=True,
    help="Posterior draws per chain (PyMC models).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write results.json (and posterior.nc for the PyMC models) here.",
)
@click.option("--force", is_flag=True, help="Overwrite existing results in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report here (figures also as PNG in --out).",
)
@click.option(
    "--transactions",
    is_flag=True,
    help="DATA is an order log (customer, variant, date, amount): estimate "
    "repeat purchase, churn and CLV per customer per variant (BG/NBD).",
)
@click.option(
    "--visitors",
    "visitor_spec",
    metavar="A=N,B=M|FILE",
    help="With --transactions: visitors per variant, or an experiment CSV holding "
    "them, to read CLV per visitor and P(beats control) on it.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=1.0,
    show_default=True,
    help="With --transactions: margin as a share of order value (1: CLV counts revenue).",
)
@click.option(
    "--horizon-months",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="With --transactions: months of customer life counted in CLV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No table or progress (for scripts).")
@_readout_options
@click.pass_context
def analyze(
    ctx: click.Context,
    data_file: str,
    control: str | None,
    model: str,
    variant_column: str,
    converted_column: str,
    visitors_column: str,
    conversions_column: str,
    revenue_column: str | None,
    stage_columns: str | None,
    sampler: str,
    draws: int,
    seed: int,
    out: Path | None,
    force: bool,
    as_json: bool,
    report_file: Path | None,
    transactions: bool,
    visitor_spec: str | None,
    margin: float,
    horizon_months: int,
    quiet: bool,
    **readout_options: Any,
) -> None:
    """Bayesian readout of a real experiment in DATA (CSV, Parquet or duckdb:///FILE).

    Aggregated rows (variant,visitors,conversions[,revenue], stage counts) or one row
    per visitor (variant,converted[,revenue], stage flags TRUE/FALSE, yes/no or 1/0);
    with --transactions, one row per order (customer, variant, date, amount). Per-visitor
    rows also give --sequential, --covariate, --guardrail, --ratio and --segment-column
    readouts, aggregated inside DuckDB (pip install 'funnelsim[warehouse]').
    """
    from funnelsim import report
    from funnelsim.analysis.api import analyze as analyze_experiment
    from funnelsim.analysis.data import ColumnMap
    from funnelsim.analysis.decision import parse_split
    from funnelsim.analysis.operating import RiskRequest, risk_line
    from funnelsim.analysis.readouts import extras_lines

    _refuse_inapplicable(ctx, transactions)
    if report_file is not None and report_file.exists() and not force:
        fail(f"{report_file}: exists; use --force to overwrite")
    stages = tuple(s.strip() for s in (stage_columns or "").split(",") if s.strip())
    metric = readout_options["metric"]
    if metric == "revenue_per_visitor" and ctx.get_parameter_source("model").name == "DEFAULT":
        model = "revenue"
    columns = ColumnMap(
        variant_column,
        metric if metric not in (None, "conversion", "revenue_per_visitor") else converted_column,
        visitors_column,
        conversions_column,
        revenue_column,
        stages,
    )
    request = _readout_request(readout_options, columns)
    split_text = readout_options["split"]
    if transactions:
        _analyze_transactions(
            Path(data_file),
            control,
            columns,
            visitor_spec,
            (margin, horizon_months),
            (sampler, draws, seed),
            (out, report_file, force),
            as_json,
            quiet,
        )
        return
    _prepare_out(out, force, ("results.json", "posterior.nc"))
    show = not (quiet or as_json) and sys.stderr.isatty() and model != "conjugate"
    if model != "conjugate":
        _hint_nutpie(sampler, quiet)
    try:
        split = None if split_text is None else parse_split(split_text)
        target = readout_options["false_ship_target"]
        risks = RiskRequest(target) if readout_options["risks"] or target is not None else None
        result = analyze_experiment(
            data_file,
            control,
            model,  # type: ignore[arg-type]
            columns=columns,
            sampler=sampler,  # type: ignore[arg-type]
            draws=draws,
            seed=seed,
            progress=show,
            split=split,
            request=request,
            risks=risks,
        )
    except ValueError as error:
        fail(str(error))
    if as_json:
        click.echo(report.analysis.results_json(result))
    elif not quiet:
        report.print_analysis(result, _console())
        if result.operating is not None:
            click.echo(risk_line(result.operating))
        if result.extras is not None:
            for line in extras_lines(result.extras, readout_options["verbose"]):
                click.echo(line)
    if out is not None:
        _echo_written(report.write_analysis(result, out), quiet or as_json)
    if report_file is not None:
        _echo_written(_analysis_report(result, report_file, out), quiet or as_json)


def _hint_nutpie(sampler: str, quiet: bool) -> None:
    """Say once, on stderr, how to get the fast sampler when ``auto`` falls back."""
    from funnelsim.analysis.models import nutpie_hint

    hint = nutpie_hint(sampler)  # type: ignore[arg-type]
    if hint is not None and not quiet:
        click.echo(f"note: {hint}", err=True)


def _analysis_report(result: Any, path: Path, png_dir: Path | None) -> list[Path]:
    """The HTML report of an analysis: the fitted model's readout, as in the terminal."""
    from funnelsim import html_report

    return html_report.write_report(html_report.analysis_report(result), path, png_dir)


TRANSACTIONS_ONLY = ("visitor_spec", "margin", "horizon_months")
NOT_WITH_TRANSACTIONS = (
    "model",
    "stage_columns",
    "revenue_column",
    "metric",
    "split",
    "sequential",
    "covariate",
    "guardrail",
    "secondary",
    "ratio",
    "segment_column",
    "table",
)


def _refuse_inapplicable(ctx: click.Context, transactions: bool) -> None:
    """One line when an option given on the command line does not apply to this readout."""
    from click.core import ParameterSource

    flags = {param.name: param.opts[-1] for param in ctx.command.params}
    names = NOT_WITH_TRANSACTIONS if transactions else TRANSACTIONS_ONLY
    for name in names:
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT:
            fail(
                f"{flags[name]} does not apply to --transactions"
                if transactions
                else f"{flags[name]} applies only with --transactions"
            )


def _analyze_transactions(
    data_file: Path,
    control: str | None,
    columns: Any,
    visitor_spec: str | None,
    economics: tuple[float, int],
    sampling: tuple[str, int, int],
    outputs: tuple[Path | None, Path | None, bool],
    as_json: bool,
    quiet: bool,
) -> None:
    """``analyze --transactions``: BG/NBD per variant on an order log; CLV per visitor
    when ``visitor_spec`` gives the visitors. ``economics``: margin and horizon in months;
    ``sampling``: sampler, draws per chain and seed; ``outputs``: the --out directory,
    the --report file and --force."""
    import json

    from funnelsim import files, report
    from funnelsim.analysis.data import DataError
    from funnelsim.analysis.lifetime import analyze_transactions, transactions_dict, visitor_counts
    from funnelsim.analysis.models import SamplerSettings

    (margin, horizon_months), (sampler, draws, seed) = economics, sampling
    out, report_file, force = outputs
    _prepare_out(out, force, ("results.json", "posterior.nc"))
    show = not (quiet or as_json) and sys.stderr.isatty()
    _hint_nutpie(sampler, quiet)
    try:
        visitors = None if visitor_spec is None else visitor_counts(visitor_spec, columns)
        readout, idata = analyze_transactions(
            data_file,
            control,
            variant=columns.variant,
            margin=margin,
            horizon_months=horizon_months,
            visitors=visitors,
            settings=SamplerSettings(sampler, draws=draws, seed=seed, progress=show),  # type: ignore[arg-type]
        )
    except (DataError, ValueError) as error:
        fail(str(error))
    document = transactions_dict(readout)
    if as_json:
        click.echo(json.dumps(document, indent=2, allow_nan=False))
    elif not quiet:
        report.print_transactions(readout, _console())
    if out is not None:
        with files.output_batch() as written:
            with files.atomic_writer(out / "results.json") as stream:
                json.dump(document, stream, indent=2, allow_nan=False)
            files.write_bytes_atomic(out / "posterior.nc", files.netcdf_bytes(idata))
        _echo_written(written, quiet or as_json)
    if report_file is not None:
        from funnelsim import html_report

        page = html_report.transactions_report(readout, idata, str(data_file))
        _echo_written(html_report.write_report(page, report_file, out), quiet or as_json)
