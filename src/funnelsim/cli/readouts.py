"""Reading a real or simulated experiment: ``analyze`` (counts, per-visitor rows, order logs)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from funnelsim.cli.interrupts import raise_if_interrupted
from funnelsim.cli.shared import (
    COUNT,
    DIRECTORY,
    FILE,
    MODELS,
    SOURCE,
    FiniteFloatRange,
    Output,
    fail,
    hint_nutpie,
    make_console,
    note,
    rate_or_none,
    with_options,
)
from funnelsim.errors import FunnelsimError


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
            type=FiniteFloatRange(min=1),
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
            "--risks/--no-risks",
            default=None,
            help="State the rule's P(ship) under A/A, for a worse and a better variant at "
            "this size (simulated) [default: on, except for a revenue decision].",
        ),
        click.option(
            "--false-ship-target",
            metavar="RATE|none",
            help="Calibrate the loss threshold so that P(ship | A/A) <= RATE at this size; "
            "none: the uncalibrated expected-loss rule [default: 0.05; none for a revenue "
            "decision].",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Details of each readout."),
    ]
    return with_options(command, *options)


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


@click.command()
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
    type=FiniteFloatRange(0, 1, min_open=True),
    default=1.0,
    help="With --transactions: margin as a share of order value (1: CLV counts revenue).",
)
@click.option(
    "--horizon-months",
    type=COUNT,
    default=24,
    help="With --transactions: months of customer life counted in CLV.",
)
@click.option(
    "--currency",
    metavar="CODE",
    help="With --transactions: the order log's currency (EUR, USD, ...), shown with CLV.",
)
@click.option("-q", "--quiet", is_flag=True, help="No table or progress (for scripts).")
@click.option(
    "--allow-large",
    is_flag=True,
    help="Draw even when the estimated memory or time is beyond the limits.",
)
@_readout_options
@click.pass_context
def analyze(ctx: click.Context, data_file: str, **options: Any) -> None:
    """Bayesian readout of a real experiment in DATA (CSV, Parquet or duckdb:///FILE).

    Aggregated rows (variant,visitors,conversions[,revenue], stage counts) or one row
    per visitor (variant,converted[,revenue], stage flags TRUE/FALSE, yes/no or 1/0), or
    the event log of run --events; with --transactions, one row per order (customer,
    variant, date, amount). Per-visitor rows also give --sequential, --covariate,
    --guardrail, --ratio and --segment-column readouts, aggregated inside DuckDB
    (pip install 'funnelsim[warehouse]').
    """
    from click.core import ParameterSource

    ctx.meta[SOURCE] = Path(data_file)
    transactions = options.pop("transactions")
    _refuse_inapplicable(ctx, transactions)
    output = Output(
        options.pop("out"), options.pop("force"), options.pop("quiet"), options.pop("allow_large")
    )
    output.prepare(("results.json", "posterior.nc"), {"--report": options["report_file"]})
    output = output._replace(quiet=output.quiet or options["as_json"])
    if transactions:
        _analyze_transactions(Path(data_file), output, **options)
        return
    default_model = ctx.get_parameter_source("model") is ParameterSource.DEFAULT
    if options["metric"] == "revenue_per_visitor" and default_model:
        options["model"] = "revenue"
    _analyze_experiment(data_file, output, **options)


TRANSACTIONS_ONLY = ("visitor_spec", "margin", "horizon_months", "currency")


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
    from funnelsim.analysis.operating import RiskRequest

    columns = {name: options[name] for name in COLUMN_OPTIONS}
    if options["metric"] not in (None, "conversion", "revenue_per_visitor"):
        columns["converted_column"] = options["metric"]  # a 0/1 column
    stages = _names(stage_columns)
    target = _false_ship_target(options["false_ship_target"], model)
    measure = model != "revenue" if options["risks"] is None else options["risks"]
    if model != "conjugate":
        hint_nutpie(sampler, output.quiet)
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
            risks=RiskRequest(target, measure=measure),
            allow_large=output.allow_large,
        )
    except ValueError as error:  # the readouts' checks of what the data allow
        if isinstance(error, FunnelsimError):
            raise
        raise FunnelsimError(str(error)) from None
    raise_if_interrupted()
    for text in result.notes:
        note(text, output.quiet)
    if as_json:
        click.echo(report.analysis.results_json(result))
    elif not output.quiet:
        report.print_analysis(result, make_console(), options["verbose"])
    if output.out is not None:
        output.written(report.write_analysis(result, output.out))
    if report_file is not None:
        page = html_report.analysis_report(result)
        output.written(html_report.write_report(page, report_file, output.out))


def _false_ship_target(text: str | None, model: str) -> float | None:
    """--false-ship-target: a rate in (0, 1), or None for ``none`` and, by default, for a
    revenue decision (the calibration simulates conversions)."""
    if text is None:
        from funnelsim.analysis.operating import DEFAULT_RISKS

        return None if model == "revenue" else DEFAULT_RISKS.target
    return rate_or_none(text, "--false-ship-target")


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
    currency: str | None,
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
    hint_nutpie(sampler, output.quiet)
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
        currency=currency,
        allow_large=output.allow_large,
    )
    raise_if_interrupted()
    if as_json:
        click.echo(lifetime.transactions_json(readout))
    elif not output.quiet:
        report.print_transactions(readout, make_console())
    if output.out is not None:
        output.written(lifetime.write_transactions(readout, idata, output.out))
    if report_file is not None:
        page = html_report.transactions_report(readout, idata, str(data_file))
        output.written(html_report.write_report(page, report_file, output.out))
