"""The ``funnelsim`` command line: parse options, call the library, present.

Every command is a call to the Python API (:mod:`funnelsim`) followed by its
presentation. A library error (:class:`~funnelsim.errors.FunnelsimError`) is shown
once, by the command group: one line, with the option that caused it, exit status 2.
Heavy libraries (NumPy, SciPy, PyMC, Dask) load inside the commands, so
``funnelsim --help`` stays instant.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

from funnelsim.errors import FunnelsimError
from funnelsim.execution import Execution
from funnelsim.templates import NAMES as TEMPLATE_NAMES

if TYPE_CHECKING:
    from funnelsim.results import ExperimentResult
    from funnelsim.scenario.schema import Scenario

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PIPED_WIDTH = 100  # table width when output is not a terminal
SOURCE = "funnelsim.source"  # context meta key: the input file of the running command

COUNT = click.IntRange(min=1)
POSITIVE = click.FloatRange(min=0, min_open=True)
PROBABILITY = click.FloatRange(0, 1, min_open=True, max_open=True)
DIRECTORY = click.Path(file_okay=False, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)
INPUT = click.Path(path_type=Path)
STRATEGIES = ("fixed", "peeking", "sequential", "bayes_stop", "thompson", "test_and_roll")
MODELS = ("conjugate", "funnel", "revenue")
PARAM = "PATH=START:STOP:STEP|PATH=a,b,c"

OPTIONS = {
    "param": "--param",
    "variant": "--variant",
    "dask": "--dask",
    "strategy": "--strategy",
    "visitors": "--visitors",
    "split": "--split",
}
"""Library arguments that name themselves first in an error, and the option setting each."""

OVERRIDES = {
    "force": "use --force to overwrite",
    "allow_large": "use --allow-large to run it anyway",
}
"""Errors a command-line option overrides, and the hint naming it."""


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def error_line(error: FunnelsimError, source: Path | None) -> str:
    """A library error in the command line's words: the option in place of the library
    argument, the option that overrides it, and the input file when it is about it."""
    field, text = error.field or "", str(error)
    if field in OPTIONS and text.startswith(field):
        return OPTIONS[field] + text[len(field) :]
    if field in OVERRIDES:
        text = f"{text}; {OVERRIDES[field]}"
    if source is None or error.located or text.startswith(f"{source}:"):
        return text
    return f"{source}: {text}"


class _Commands(click.Group):
    """The command group. A FunnelsimError ends with one line and exit status 2. Ctrl-C
    anywhere ends with one line and exit status 130 (not click's "Aborted!" and status
    1), also when it strikes while a library loads and surfaces as some other error (an
    extension module failing to initialise). Running out of memory (a request run with
    --allow-large) ends with one line and status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        with _noting_interrupts() as interrupted:
            try:
                return super().invoke(ctx)
            except FunnelsimError as error:
                fail(error_line(error, ctx.meta.get(SOURCE)))
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


# --------------------------------------------------------------------------- shared helpers


def _load(path: Path, **overrides: Any) -> Scenario:
    """The scenario of ``path``, with the command line's overrides (``days``,
    ``visitors_per_day``, ``seed``, ``assumptions``; None leaves a field as the file has
    it)."""
    from funnelsim.scenario.loader import load_scenario
    from funnelsim.scenario.messages import ScenarioError

    click.get_current_context().meta[SOURCE] = path
    scenario = load_scenario(path)
    fields = {
        "days": "traffic.days",
        "visitors_per_day": "traffic.visitors_per_day",
        "assumptions": "experiment.assumptions",
    }
    given = {fields.get(k, k): v for k, v in overrides.items() if v is not None}
    try:
        return scenario.with_overrides(given) if given else scenario
    except ScenarioError as error:
        message = f"{error.field}: {error.message} (with the command-line options)"
        raise FunnelsimError(message, error.field) from None


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


def _hint_nutpie(sampler: str, quiet: bool) -> None:
    """Say once, on stderr, how to get the fast sampler when ``auto`` falls back."""
    from funnelsim.analysis.models import nutpie_hint

    hint = nutpie_hint(sampler)  # type: ignore[arg-type]
    if hint is not None:
        _note(hint, quiet)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else PIPED_WIDTH)


def _note(text: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"note: {text}", err=True)


class Output(NamedTuple):
    """Where and how a command writes: the --out directory, --force, -q, --allow-large."""

    out: Path | None
    force: bool
    quiet: bool
    allow_large: bool

    def prepare(self, names: tuple[str, ...]) -> None:
        """Refuse to overwrite ``names`` in --out without --force, before any work."""
        from funnelsim import files

        if self.out is not None:
            files.prepare_output(self.out, self.force, names)

    def written(self, paths: list[Path]) -> None:
        """Say which files were written (unless quiet)."""
        if not self.quiet:
            for path in paths:
                click.echo(f"wrote {path}")


def _execution_options_with(
    engine: bool,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--seed, (--engine,) --workers, --dask given to the command as one ``execution``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_execution(
            *args: Any, seed: Any, workers: Any, dask: Any, engine: Any = "auto", **kw: Any
        ) -> None:
            from funnelsim.parallel import check_dask_address

            if dask is not None:
                check_dask_address(dask)
            command(*args, execution=Execution(seed, engine, workers, dask), **kw)

        engines = click.Choice(["auto", "simpy", "vectorized", "aggregate"])
        engine_option = click.option(
            "--engine",
            type=engines,
            default="auto",
            help="Simulation engine (auto: SimPy only where queues exist; aggregate: counts "
            "drawn directly, for very large runs without queues).",
        )
        return _options(
            with_execution,
            click.option(
                "--seed", type=click.IntRange(min=0), help="Override the scenario's seed."
            ),
            *((engine_option,) if engine else ()),
            click.option("--workers", type=COUNT, help="Local processes [default: CPU count]."),
            click.option(
                "--dask",
                metavar="local|ADDRESS",
                help="Run on Dask: 'local' (a LocalCluster) or a scheduler address "
                "(tcp://HOST:8786).",
            ),
        )

    return decorate


_execution_options = _execution_options_with(engine=True)
_executor_options = _execution_options_with(engine=False)  # no simulation engine to choose


def _output_options(written: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--out (which writes ``written``), --force, -q, --allow-large as one ``output``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_output(
            *args: Any, out: Any, force: Any, quiet: Any, allow_large: Any, **kw: Any
        ) -> None:
            command(*args, output=Output(out, force, quiet, allow_large), **kw)

        return _options(
            with_output,
            click.option("--out", type=DIRECTORY, help=f"Write {written} here."),
            click.option("--force", is_flag=True, help="Overwrite existing results."),
            click.option("-q", "--quiet", is_flag=True, help="No table or progress (for scripts)."),
            click.option(
                "--allow-large",
                is_flag=True,
                help="Run even when the estimated time or memory is beyond the limits.",
            ),
        )

    return decorate


def _traffic_options(command: Callable[..., None]) -> Callable[..., None]:
    """--days and --visitors-per-day: the scenario's traffic overridden."""
    return _options(
        command,
        click.option("--days", type=COUNT, help="Override the test length in days."),
        click.option("--visitors-per-day", type=POSITIVE, help="Override the traffic."),
    )


def _options(command: Callable[..., None], *options: Callable[..., Any]) -> Callable[..., None]:
    """``command`` with ``options`` (shown in this order in its help)."""
    for option in reversed(options):
        command = option(command)
    return command


# --------------------------------------------------------------------------- commands

SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


@click.group(cls=_Commands, context_settings=SETTINGS)
@click.version_option(package_name="funnelsim")
def main() -> None:
    """Simulate funnel changes before you spend traffic on them.

    Conversion, revenue and CLV per visitor for each variant of a scenario,
    and what an A/B test of the planned size would conclude.
    """


@main.command()
@click.argument("files", nargs=-1, required=True, type=INPUT)
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


@main.command()
@click.argument("scenario_file", type=INPUT)
@click.option("--replications", type=COUNT, help="Replications to run.")
@_traffic_options
@_execution_options
@_output_options("results.json and summary.csv")
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
    the order value of purchases); --orders the order log (customer, variant, date,
    amount) of its simulated test for analyze --transactions; --report an HTML report
    (its figures also as PNG in --out).
    """
    import funnelsim
    from funnelsim import files, html_report, report, results
    from funnelsim.experiment.cost import check_cost

    scenario = _load(scenario_file, seed=execution.seed, assumptions=assumptions, **traffic)
    output.prepare(("results.json", "summary.csv"))
    for path in (events, orders, report_file):
        if path is not None:
            files.refuse_existing(path, output.force)
    n = replications or scenario.experiment.replications
    if not output.allow_large:  # the estimate prices the aggregate engine by its buyers
        check_cost(scenario, n, execution)
    with _progress(not (output.quiet or as_json), n, "replications") as advance:
        result = funnelsim.run(scenario, n, execution.reporting(advance))
    with files.output_batch() as written:
        if events is not None:
            funnelsim.write_event_log(scenario, events)
        if orders is not None:
            log = funnelsim.write_order_log(scenario, orders, orders_months, execution.engine)
        if output.out is not None:
            results.write_results(result, output.out)
        if report_file is not None:
            document = html_report.experiment_report(result)
            output.prepare(html_report.figure_names(document))
            html_report.write_report(document, report_file, output.out)
    if as_json:
        click.echo(results.results_json(result))
    elif not output.quiet:
        report.print_results(result, _console())
        if len(result.variants) > 1:
            click.echo(_value_of_information(result))
        output.written([p for p in written if p not in (events, orders)])
        if orders is not None:
            visitors = ",".join(f"{name}={count}" for name, count in log.visitors.items())
            click.echo(
                f"wrote {orders}: {log.describe()}; read it with: funnelsim analyze {orders} "
                f"--transactions --visitors {visitors}"
            )


def _value_of_information(result: ExperimentResult) -> str:
    """``run``'s line on what the planned test is worth (profit planning's Bayes rule)."""
    from funnelsim import profit_planning

    scenario = result.scenario
    names = [v.name for v in result.variants]
    world = profit_planning.world_of(scenario, names, [v.metrics for v in result.variants])
    return profit_planning.value_of_information(scenario, world)


SENSITIVITY_FILES = ("sensitivity.json", "sensitivity.png")


@main.command()
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
@_executor_options
@click.option("--out", type=DIRECTORY, help="Write sensitivity.json and sensitivity.png here.")
@click.option("--force", is_flag=True, help="Overwrite existing files in --out and --report.")
@click.option("--json", "as_json", is_flag=True, help="Print sensitivity.json to stdout.")
@click.option("--report", "report_file", type=FILE, help="Write a self-contained HTML report.")
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
) -> None:
    """Which uncertain assumption of SCENARIO_FILE the decision hangs on (Sobol indices)."""
    import json

    import funnelsim
    from funnelsim import files

    scenario = _load(scenario_file, seed=execution.seed)
    if samples & (samples - 1):
        fail(f"--samples: must be a power of 2, got {samples}")
    output = Output(out, force, as_json, allow_large=False)
    output.prepare(SENSITIVITY_FILES)
    if report_file is not None:
        files.refuse_existing(report_file, force)
    result = funnelsim.sensitivity(
        scenario,
        variant,
        metric,  # type: ignore[arg-type]
        samples=samples,
        execution=execution,
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

    print_table(sensitivity_table(result), _console())


@main.command()
@click.argument("name")
@click.option("--template", type=click.Choice(TEMPLATE_NAMES), default="checkout")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name: str, template: str, force: bool) -> None:
    """Write a commented scenario NAME.yaml from a bundled one (funnelsim list)."""
    from funnelsim import scaffold

    path = scaffold.write_template(template, name, force)
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
@click.argument("scenario_file", type=INPUT)
def explain(scenario_file: Path) -> None:
    """Draw SCENARIO_FILE's funnel: stages, friction, expected rates, load, warnings."""
    import funnelsim

    console = _console()
    for line in funnelsim.explain(_load(scenario_file)):
        console.print(line, highlight=False, soft_wrap=True)


@main.command()
@click.option("--markdown", is_flag=True, help="The field reference in Markdown.")
@click.option("-o", "--output", type=FILE, help="Write to this file instead of stdout.")
def schema(markdown: bool, output: Path | None) -> None:
    """Print the scenario schema: JSON Schema, or the Markdown field reference."""
    from funnelsim import files, schema_doc

    text = schema_doc.markdown() if markdown else schema_doc.json_text()
    if output is None:
        click.echo(text, nl=False)
        return
    files.write_text_atomic(output, text)
    click.echo(f"wrote {output}")


@main.command()
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
@_execution_options
@_output_options("sweep.csv and sweep.png")
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

    scenario = _load(scenario_file)
    output.prepare(("sweep.csv", "sweep.png"))
    parsed = [sweeps.parse_param(text, scenario) for text in params]
    base = sweeps.only_variants(scenario, variants) if variants else scenario
    n = replications or scenario.experiment.replications
    points = sweeps.grid(parsed)
    if not output.allow_large:
        check_cost(base, n, execution, points)
    with _progress(not output.quiet, len(points) * n, "replications") as advance:
        result = sweeps.run_sweep(base, parsed, None, n, execution.reporting(advance))
    if not output.quiet:
        from funnelsim.tables import print_table

        print_table(sweeps.sweep_table(result), _console())
    if output.out is not None:
        output.written(sweeps.write_sweep(result, output.out))


def _note_conversion_only(scenario: Scenario, command: str, quiet: bool) -> None:
    """``plan`` and ``bench`` read tests on conversion (or a stage's reach), not on CLV."""
    if scenario.experiment.metric == "clv_per_visitor":
        _note(
            f"{command} judges tests on conversion; experiment.metric "
            f"({scenario.experiment.metric}) applies to funnelsim run",
            quiet,
        )


@main.command()
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
@click.option("--alpha", type=PROBABILITY, default=0.05, help="Significance level of the z-test.")
@click.option(
    "--truth-replications",
    type=COUNT,
    default=20,
    help="Engine replications estimating the true rates.",
)
@_execution_options
@_output_options("plan.csv and plan.png (and plan.json with --objective profit)")
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
    from funnelsim import planning
    from funnelsim.experiment.cost import check_cost

    scenario = _load(scenario_file)
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
    _note_conversion_only(scenario, "plan", output.quiet)
    output.prepare(("plan.csv", "plan.png"))
    if not output.allow_large:
        check_cost(scenario, truth_replications, execution)
    total = truth_replications + simulations
    with _progress(not output.quiet, total, "engine runs and simulated tests") as advance:
        result = funnelsim.plan(
            scenario,
            variant,
            target_probability,
            simulations,
            max_days=max_days,
            alpha=alpha,
            truth_replications=truth_replications,
            execution=execution.reporting(advance),
        )
    if not output.quiet:
        from funnelsim.tables import print_table

        console = _console()
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
    from funnelsim import profit_planning
    from funnelsim.experiment.cost import check_cost

    output.prepare(("plan.json", "plan.csv", "plan.png"))
    if scenario.experiment.metric != "conversion":
        _note(
            f"profit is {scenario.experiment.metric}; the ship/keep rule scored beside "
            "the Bayes rule reads conversion",
            output.quiet,
        )
    if not output.allow_large:
        check_cost(scenario, truth_replications, execution)
    rule_tests = min(options.simulations, profit_planning.RULE_SIMULATIONS)
    total = truth_replications + rule_tests
    with _progress(not output.quiet, total, "engine runs and simulated tests") as advance:
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
        console = _console()
        console.print(profit_planning.profit_plan_table(result))
        for line in profit_planning.profit_plan_summary(result):
            console.print(line)
    if output.out is not None:
        output.written(profit_planning.write_profit_plan(result, output.out))


@main.command()
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
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    help="Smallest traffic share of an arm under thompson.",
)
@_traffic_options
@click.option(
    "--truth-replications",
    type=COUNT,
    default=20,
    help="Engine replications estimating the true rates.",
)
@_execution_options
@_output_options("bench.json, bench.csv and bench.png")
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
    from funnelsim import strategies, sweeps
    from funnelsim.experiment.cost import check_cost

    scenario = _load(scenario_file, **traffic)
    _note_conversion_only(scenario, "bench", output.quiet)
    output.prepare(("bench.json", "bench.csv", "bench.png"))
    if not output.allow_large:  # the engine's truth replications; the simulated tests are counts
        check_cost(scenario, truth_replications, execution)
    sweeps.engine_for(scenario, execution.engine)
    chosen: list[Any] = [n.strip() for n in names.split(",") if n.strip()]
    chosen += [strategies.load_strategy(spec) for spec in custom]
    if not chosen:
        fail(f"{scenario_file}: no strategy to bench (--strategies or --strategy)")
    total = truth_replications + 2 * len(chosen) * replications
    with _progress(not output.quiet, total, "engine runs and simulated tests") as advance:
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

        print_table(strategies.bench_table(result), _console())
    if output.out is not None:
        output.written(strategies.write_bench(result, output.out))


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
    return _options(command, *options)


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
    type=click.Choice(MODELS),
    default="conjugate",
    help="conjugate: exact Beta-Binomial readout; funnel: PyMC stage-by-stage model (which "
    "stage changed); revenue: PyMC revenue-per-visitor model.",
)
@click.option("--variant-column", default="variant", metavar="C")
@click.option(
    "--converted-column",
    default="converted",
    metavar="C",
    help="Per-visitor rows: the conversion flag (e.g. retention_1).",
)
@click.option(
    "--visitors-column",
    default="visitors",
    metavar="C",
    help="Aggregated rows: a file with this column is read as aggregated.",
)
@click.option("--conversions-column", default="conversions", metavar="C")
@click.option(
    "--revenue-column",
    metavar="C",
    help="Order value (per visitor) or revenue sum (aggregated) [default: 'revenue'].",
)
@click.option(
    "--stage-columns",
    metavar="A,B,C",
    help="Funnel stage columns in order (flags or counts of visitors reaching them).",
)
@click.option("--sampler", type=click.Choice(["auto", "nutpie", "pymc"]), default="auto")
@click.option("--draws", type=click.IntRange(min=100), default=1000, help="Draws per chain.")
@click.option("--seed", type=click.IntRange(min=0), default=0)
@click.option("--out", type=DIRECTORY, help="Write results.json (and posterior.nc) here.")
@click.option("--force", is_flag=True, help="Overwrite existing results.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option("--report", "report_file", type=FILE, help="Write a self-contained HTML report.")
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
    help="With --transactions: visitors per variant, or an experiment CSV holding them.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    help="With --transactions: margin as a share of order value (1: CLV counts revenue).",
)
@click.option(
    "--horizon-months",
    type=COUNT,
    default=24,
    help="With --transactions: months of customer life counted in CLV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No table or progress (for scripts).")
@_readout_options
@click.pass_context
def analyze(ctx: click.Context, data_file: str, **options: Any) -> None:
    """Bayesian readout of a real experiment in DATA (CSV, Parquet or duckdb:///FILE).

    Aggregated rows (variant,visitors,conversions[,revenue], stage counts) or one row
    per visitor (variant,converted[,revenue], stage flags TRUE/FALSE, yes/no or 1/0);
    with --transactions, one row per order (customer, variant, date, amount). Per-visitor
    rows also give --sequential, --covariate, --guardrail, --ratio and --segment-column
    readouts, aggregated inside DuckDB (pip install 'funnelsim[warehouse]').
    """
    from click.core import ParameterSource

    from funnelsim import files

    ctx.meta[SOURCE] = Path(data_file)
    transactions = options.pop("transactions")
    _refuse_inapplicable(ctx, transactions)
    output = Output(options.pop("out"), options.pop("force"), options.pop("quiet"), True)
    if options["report_file"] is not None:
        files.refuse_existing(options["report_file"], output.force)
    output.prepare(("results.json", "posterior.nc"))
    output = output._replace(quiet=output.quiet or options["as_json"])
    if transactions:
        _analyze_transactions(Path(data_file), output, **options)
        return
    default_model = ctx.get_parameter_source("model") is ParameterSource.DEFAULT
    if options["metric"] == "revenue_per_visitor" and default_model:
        options["model"] = "revenue"
    _analyze_experiment(data_file, output, **options)


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
    for name in NOT_WITH_TRANSACTIONS if transactions else TRANSACTIONS_ONLY:
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT:
            where = "does not apply to" if transactions else "applies only with"
            fail(f"{flags[name]} {where} --transactions")


COLUMN_OPTIONS = (
    "variant_column",
    "converted_column",
    "visitors_column",
    "conversions_column",
    "revenue_column",
)


def _analyze_experiment(
    data_file: str,
    output: Output,
    *,
    control: str | None,
    model: str,
    stage_columns: str | None,
    sampler: str,
    draws: int,
    seed: int,
    as_json: bool,
    report_file: Path | None,
    **options: Any,
) -> None:
    """``analyze``: the readout of an experiment with the chosen model, and the
    per-visitor readouts asked for."""
    import funnelsim
    from funnelsim import html_report, report
    from funnelsim.analysis.data import ColumnMap
    from funnelsim.analysis.operating import RiskRequest, risk_line
    from funnelsim.analysis.readouts import extras_lines

    columns = {name: options[name] for name in COLUMN_OPTIONS}
    if options["metric"] not in (None, "conversion", "revenue_per_visitor"):
        columns["converted_column"] = options["metric"]  # a 0/1 column
    stages = _names(stage_columns)
    target = options["false_ship_target"]
    if model != "conjugate":
        _hint_nutpie(sampler, output.quiet)
    try:
        result = funnelsim.analyze(
            data_file,
            control,
            model,  # type: ignore[arg-type]
            **columns,
            stage_columns=stages,
            sampler=sampler,
            draws=draws,
            seed=seed,
            progress=not output.quiet and sys.stderr.isatty() and model != "conjugate",
            split=_split(options["split"]),
            request=_readout_request(options, ColumnMap(*columns.values(), stages)),
            risks=RiskRequest(target) if options["risks"] or target is not None else None,
        )
    except ValueError as error:  # the readouts' checks of what the data allow
        if isinstance(error, FunnelsimError):
            raise
        raise FunnelsimError(str(error)) from None
    for note in result.notes:
        _note(note, output.quiet)
    if as_json:
        click.echo(report.analysis.results_json(result))
    elif not output.quiet:
        report.print_analysis(result, _console())
        if result.operating is not None:
            click.echo(risk_line(result.operating))
        if result.extras is not None:
            for line in extras_lines(result.extras, options["verbose"]):
                click.echo(line)
    if output.out is not None:
        output.written(report.write_analysis(result, output.out))
    if report_file is not None:
        page = html_report.analysis_report(result)
        output.written(html_report.write_report(page, report_file, output.out))


def _split(text: str | None) -> tuple[float, ...] | None:
    """--split's planned traffic shares (None: an even split)."""
    from funnelsim.analysis.decision import parse_split

    try:
        return None if text is None else tuple(parse_split(text))
    except ValueError as error:
        raise FunnelsimError(str(error), "split") from None


def _analyze_transactions(
    data_file: Path,
    output: Output,
    *,
    control: str | None,
    visitor_spec: str | None,
    margin: float,
    horizon_months: int,
    sampler: str,
    draws: int,
    seed: int,
    as_json: bool,
    report_file: Path | None,
    **columns: Any,
) -> None:
    """``analyze --transactions``: BG/NBD per variant on an order log; CLV per visitor
    when ``visitor_spec`` gives the visitors."""
    from funnelsim import html_report, report
    from funnelsim.analysis import lifetime
    from funnelsim.analysis.data import ColumnMap
    from funnelsim.analysis.models import SamplerSettings

    names = ("variant_column", "converted_column", "visitors_column", "conversions_column")
    column_map = ColumnMap(*(columns[n] for n in names))
    _hint_nutpie(sampler, output.quiet)
    visitors = None if visitor_spec is None else lifetime.visitor_counts(visitor_spec, column_map)
    show = not output.quiet and sys.stderr.isatty()
    readout, idata = lifetime.analyze_transactions(
        data_file,
        control,
        variant=column_map.variant,
        margin=margin,
        horizon_months=horizon_months,
        visitors=visitors,
        settings=SamplerSettings(sampler, draws=draws, seed=seed, progress=show),  # type: ignore[arg-type]
    )
    if as_json:
        click.echo(lifetime.transactions_json(readout))
    elif not output.quiet:
        report.print_transactions(readout, _console())
    if output.out is not None:
        output.written(lifetime.write_transactions(readout, idata, output.out))
    if report_file is not None:
        page = html_report.transactions_report(readout, idata, str(data_file))
        output.written(html_report.write_report(page, report_file, output.out))
