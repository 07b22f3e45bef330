"""What every command shares: exit codes, option types and decorators (execution,
output, traffic), the scenario loader with overrides, the console, notes and the
progress bar."""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

from funnelsim.cli.interrupts import raise_if_interrupted
from funnelsim.errors import FunnelsimError
from funnelsim.execution import Execution

if TYPE_CHECKING:
    from funnelsim.scenario.schema import Scenario


EXIT_USAGE = 2


PIPED_WIDTH = 100  # table width when output is not a terminal and COLUMNS is unset


SOURCE = "funnelsim.source"  # context meta key: the input file of the running command


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` whose values are finite numbers (click's lets NaN
    through every bound, and infinity through an open one)."""

    name = "float range"  # as click shows FloatRange in --help

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


COUNT = click.IntRange(min=1)


POSITIVE = FiniteFloatRange(min=0, min_open=True)


PROBABILITY = FiniteFloatRange(0, 1, min_open=True, max_open=True)


DIRECTORY = click.Path(file_okay=False, path_type=Path)


FILE = click.Path(dir_okay=False, path_type=Path)


INPUT = click.Path(path_type=Path)


STRATEGIES = ("fixed", "peeking", "sequential", "bayes_stop", "thompson", "test_and_roll")


MODELS = ("conjugate", "funnel", "revenue")


PARAM = "PATH=START:STOP:STEP|PATH=a,b,c"


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def rate_or_none(text: str, option: str) -> float | None:
    """The value of ``option``: a rate strictly between 0 and 1, or None for ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 < rate < 1:
        fail(f"{option} {text!r}: give a rate between 0 and 1, or none")
    return rate


def load_with_overrides(path: Path, **overrides: Any) -> Scenario:
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
def progress_bar(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with time remaining on a terminal; no bar when disabled or
    when stderr is not a terminal (logs and pipes get no bar and no stray lines). Each
    advance first stops the command if Ctrl-C or SIGTERM came and a library swallowed it."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda _n: raise_if_interrupted()
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
    with Progress(*columns, console=make_console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)

        def advance(n: int) -> None:
            raise_if_interrupted()
            progress.advance(task, n)

        yield advance


def hint_nutpie(sampler: str, quiet: bool) -> None:
    """Say once, on stderr, how to get the fast sampler when ``auto`` falls back."""
    from funnelsim.analysis.models import nutpie_hint

    hint = nutpie_hint(sampler)  # type: ignore[arg-type]
    if hint is not None:
        note(hint, quiet)


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    chosen = stream.isatty() or os.environ.get("COLUMNS", "").isdigit()  # rich reads COLUMNS
    return Console(stderr=stderr, highlight=False, width=None if chosen else PIPED_WIDTH)


def note(text: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"note: {text}", err=True)


class Output(NamedTuple):
    """Where and how a command writes: the --out directory, --force, -q, --allow-large."""

    out: Path | None
    force: bool
    quiet: bool
    allow_large: bool

    def prepare(
        self, names: tuple[str, ...], named: Mapping[str, Path | None] | None = None
    ) -> None:
        """Before any work: refuse to overwrite ``names`` in --out without --force, and
        files ``named`` by their options that cannot be written or share one path."""
        from funnelsim import files

        if self.out is not None:
            files.prepare_output(self.out, self.force, names)
        if named:
            files.check_outputs(named, self.force, self.out, names)

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
        return with_options(
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


execution_options = _execution_options_with(engine=True)


executor_options = _execution_options_with(engine=False)  # no simulation engine to choose


def output_options(written: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--out (which writes ``written``), --force, -q, --allow-large as one ``output``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_output(
            *args: Any, out: Any, force: Any, quiet: Any, allow_large: Any, **kw: Any
        ) -> None:
            command(*args, output=Output(out, force, quiet, allow_large), **kw)

        return with_options(
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


def traffic_options(command: Callable[..., None]) -> Callable[..., None]:
    """--days and --visitors-per-day: the scenario's traffic overridden."""
    return with_options(
        command,
        click.option("--days", type=COUNT, help="Override the test length in days."),
        click.option("--visitors-per-day", type=POSITIVE, help="Override the traffic."),
    )


def with_options(command: Callable[..., None], *options: Callable[..., Any]) -> Callable[..., None]:
    """``command`` with ``options`` (shown in this order in its help)."""
    for option in reversed(options):
        command = option(command)
    return command
