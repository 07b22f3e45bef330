"""The ``funnelsim`` command line: parse options, call the library, present.

Heavy libraries (SciPy, PyMC, ArviZ, Dask) are imported inside the commands
that need them, so ``funnelsim --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from funnelsim.scenario import Scenario

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PIPED_WIDTH = 140  # table width when output is not a terminal


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _load(path: Path) -> Scenario:
    from funnelsim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as error:
        fail(str(error))


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with time remaining; a no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False,
                   width=None if stream.isatty() else PIPED_WIDTH)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from funnelsim.scenario import ScenarioError, load_scenario

    failed = False
    for path in files:
        try:
            scenario = load_scenario(path)
        except ScenarioError as error:
            click.echo(str(error), err=True)
            failed = True
            continue
        engine = "simpy" if scenario.resources else "vectorized"
        click.echo(
            f"{path}: ok: {scenario.name!r}, {len(scenario.stages)} stages, "
            f"{len(scenario.variants)} variants ({', '.join(scenario.variant_names)}), "
            f"{scenario.traffic.visitors_per_day:g} visitors/day x {scenario.traffic.days} days, "
            f"engine {engine}"
        )
    if failed:
        sys.exit(EXIT_USAGE)


def _with_cli_overrides(scenario: Scenario, days: int | None, visitors_per_day: float | None,
                        seed: int | None) -> Scenario:
    from funnelsim.scenario import ScenarioError

    overrides: dict[str, Any] = {}
    if days is not None:
        overrides["traffic.days"] = days
    if visitors_per_day is not None:
        overrides["traffic.visitors_per_day"] = visitors_per_day
    if seed is not None:
        overrides["seed"] = seed
    try:
        return scenario.with_overrides(overrides) if overrides else scenario
    except ScenarioError as error:
        fail(str(error))


@main.command()
@click.argument("scenario_file", type=click.Path(path_type=Path))
@click.option("--seed", type=click.IntRange(min=0), help="Override the scenario's seed.")
@click.option("--replications", type=click.IntRange(1, 100_000), help="Replications to run.")
@click.option("--days", type=click.IntRange(min=1), help="Override the test length in days.")
@click.option("--visitors-per-day", type=click.FloatRange(min=0, min_open=True),
              help="Override the traffic.")
@click.option("--engine", type=click.Choice(["auto", "simpy", "vectorized"]), default="auto",
              show_default=True, help="Simulation engine (auto: SimPy only where queues exist).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local processes for replications [default: CPU count].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write results.json and summary.csv here.")
@click.option("--force", is_flag=True, help="Overwrite existing results in --out.")
@click.option("--events", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a per-visitor event log (first replication) as CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No table or progress (for scripts).")
def run(scenario_file: Path, seed: int | None, replications: int | None, days: int | None,
        visitors_per_day: float | None, engine: str, workers: int | None, out: Path | None,
        force: bool, events: Path | None, as_json: bool, quiet: bool) -> None:
    """Simulate every variant of SCENARIO_FILE and compare them."""
    from funnelsim import report
    from funnelsim.experiment import run_experiment

    scenario = _with_cli_overrides(_load(scenario_file), days, visitors_per_day, seed)
    try:
        if out is not None:
            report.prepare_output(out, force, ("results.json", "summary.csv"))
        if events is not None and events.exists() and not force:
            fail(f"{events}: exists; use --force to overwrite")
    except report.OutputExistsError as error:
        fail(str(error))
    n = replications or scenario.experiment.replications
    try:
        with _progress(not (quiet or as_json), n, "replications") as advance:
            result = run_experiment(scenario, n, engine=engine,  # type: ignore[arg-type]
                                    workers=workers or os.cpu_count() or 1, progress=advance)
        if events is not None:
            _write_events(scenario, events)
        written = report.write_results(result, out) if out is not None else []
    except KeyboardInterrupt:
        click.echo("interrupted: stopped cleanly, no results written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ValueError as error:
        fail(f"{scenario_file}: {error}")
    if as_json:
        click.echo(report.results_json(result))
    elif not quiet:
        report.print_results(result, _console())
        for path in written:
            click.echo(f"wrote {path}")


def _write_events(scenario: Scenario, path: Path) -> None:
    from funnelsim.engine import simpy_engine
    from funnelsim.engine.draws import VisitorDraws, replication_seeds
    from funnelsim.engine.model import compile_funnel
    from funnelsim.report import atomic_writer

    seed = replication_seeds(scenario.seed, 1)[0]
    draws = VisitorDraws(seed, scenario.traffic.visitors_per_day, scenario.traffic.days)
    with atomic_writer(path) as stream:
        for i, name in enumerate(scenario.variant_names):
            log = simpy_engine.EventLog(name)
            simpy_engine.simulate(compile_funnel(scenario.variant(name)), draws, log)
            log.write_csv(stream, header=i == 0)
