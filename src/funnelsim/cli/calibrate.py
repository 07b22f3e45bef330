"""``calibrate``: a scenario's uncertain assumptions narrowed by the team's own data,
or the calibration itself checked on data simulated from the priors (``--sbc``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from funnelsim.cli.shared import (
    COUNT,
    DIRECTORY,
    FILE,
    INPUT,
    Output,
    executor_options,
    fail,
    load_with_overrides,
)
from funnelsim.execution import Execution

CALIBRATION_FILES = ("calibration.json", "posterior.nc", "calibrated.yaml")


@click.command()
@click.argument("scenario_file", type=INPUT)
@click.option(
    "--data",
    "data_file",
    required=True,
    type=FILE,
    help="Funnel counts (analytics export), an event log (with --stage-map) or "
    "per-visitor flags (with --arm).",
)
@click.option(
    "--stage-columns",
    metavar="A,B,C,CONVERTED",
    help="Stage columns in funnel order, the converted column last [default: every "
    "column but date and breakdowns; names must then be the scenario's stages].",
)
@click.option("--by", metavar="COL,...", help="Breakdown columns besides segment and channel.")
@click.option(
    "--stage-map",
    metavar="EVENT=STAGE,...",
    help="Read --data as an event log (visitor_id,timestamp,event, or the log of run "
    "--events: events STAGE and STAGE:OUTCOME); one event maps to 'converted'; one may map "
    "to 'replied' (or 'replied:STAGE'): the business's first reply to a lead at a stage "
    "with a response delay.",
)
@click.option(
    "--arm",
    metavar="COLUMN=VALUE",
    help="Read --data as per-visitor flags, keeping the rows of one experiment arm "
    "(with --stage-map: the event log's rows of that arm, e.g. variant=control).",
)
@click.option(
    "--experiments",
    multiple=True,
    type=FILE,
    help="A past experiment's YAML (data file, each arm's variant or overrides); repeatable.",
)
@click.option("--sampler", type=click.Choice(["auto", "nutpie", "pymc"]), default="auto")
@click.option("--draws", type=click.IntRange(min=100), default=1000, help="Draws per chain.")
@click.option("--chains", type=click.IntRange(min=2), default=4)
@click.option(
    "--sbc",
    "sbc_fits",
    type=COUNT,
    help="Instead: simulation-based calibration, N fits of data the engine simulates at "
    "values drawn from the priors, shaped as --data (writes sbc.json; --workers/--dask "
    "run the fits).",
)
@executor_options
@click.option(
    "--out",
    type=DIRECTORY,
    default=Path("calibration"),
    help="Write calibration.json, posterior.nc and calibrated.yaml (or sbc.json) here.",
)
@click.option("--force", is_flag=True, help="Overwrite existing results.")
@click.option("--report", "report_file", type=FILE, help="Write a self-contained HTML report.")
def calibrate(
    scenario_file: Path,
    data_file: Path,
    stage_columns: str | None,
    by: str | None,
    stage_map: str | None,
    arm: str | None,
    experiments: tuple[Path, ...],
    sampler: str,
    draws: int,
    chains: int,
    sbc_fits: int | None,
    execution: Execution,
    out: Path,
    force: bool,
    report_file: Path | None,
) -> None:
    """Narrow SCENARIO_FILE's uncertain assumptions with the team's own funnel data."""
    import funnelsim
    from funnelsim import files
    from funnelsim.calibration.api import SBC_NAME, write_calibration, write_sbc
    from funnelsim.calibration.readers import parse_stage_map

    load_with_overrides(scenario_file)  # the file checked, and named in errors
    if sbc_fits and report_file is not None:
        fail("--report: the report is of a calibration; --sbc writes sbc.json")
    output = Output(out, force, False, True)
    output.prepare((SBC_NAME,) if sbc_fits else CALIBRATION_FILES)
    if report_file is not None:
        files.refuse_existing(report_file, force)
    options: dict[str, Any] = {
        "stage_columns": _names(stage_columns) or None,
        "by": _names(by),
        "stage_map": parse_stage_map(stage_map) if stage_map is not None else None,
        "arm": _arm(arm) if arm is not None else None,
        "experiments": experiments,
        "draws": draws,
        "chains": chains,
        "seed": execution.seed_or(0),
        "sampler": sampler,
    }
    if sbc_fits:
        check = funnelsim.calibration_sbc(
            scenario_file, data_file, sbc_fits, execution=execution, **options
        )
        click.echo(repr(check))
        output.written(write_sbc(check, out, force))
        return
    result = funnelsim.calibrate(scenario_file, data_file, **options)
    written = write_calibration(result, out, force)
    if report_file is not None:
        from funnelsim.html_report import calibration_report, write_report

        written += write_report(calibration_report(result), report_file)
    click.echo(repr(result))
    output.written(written)


def _arm(text: str) -> tuple[str, str]:
    column, equals, value = text.partition("=")
    if not equals or not column.strip() or not value.strip():
        fail(f"--arm: expected COLUMN=VALUE, got {text!r}")
    return column.strip(), value.strip()


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())
