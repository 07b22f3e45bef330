"""Presenting results: terminal tables, and files written atomically.

``results.json`` is a contract scripts rely on: ``variants.<name>`` holds
``conversion``, ``revenue_per_visitor`` and ``clv_per_visitor`` as
``{mean, low, high}``; non-control variants also hold
``uplift_vs_control.<metric>`` (relative, ``{mean, low, high}``) and
``experiment`` (``prob_beats_control``, ``prob_best``, ``expected_loss``,
``decision``). Lifetime economics: ``clv_per_customer``, ``cac`` (acquisition
spend per customer) and ``ltv_to_cac`` as ``{mean, low, high}``, ``payback_months``,
``referrals_per_customer`` (expected visitors a customer refers over the horizon),
``channels.<channel>`` (``visitors``, ``spend``, ``customers``, ``cac``,
``clv_per_customer``, ``ltv_to_cac``, ``payback_months``), ``experiment.clv`` (the
simulated test's CLV-per-visitor readout: ``mean``, ``low``, ``high``,
``prob_beats_control``, ``prob_best``) and, for lead funnels, ``leads``. Values
that are infinite (LTV:CAC of a free channel, payback beyond the horizon) are
``null``. Every file is written to a temporary name and renamed, so a
reader never sees half a file and an interrupted run leaves none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from funnelsim import service_report
from funnelsim.analysis import api as analysis
from funnelsim.clv import ratio as clv_ratio
from funnelsim.files import atomic_writer, netcdf_bytes, output_batch, write_bytes_atomic
from funnelsim.intervals import Interval
from funnelsim.results import AssumptionEffects, ExperimentResult

DECISION_STYLE = {"ship": "bold green", "reject": "red", "stop": "yellow", "keep_testing": "cyan"}
DECISION_LABEL = {
    "ship": "ship",
    "reject": "reject",
    "stop": "stop: no difference",
    "keep_testing": "keep testing",
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


# --------------------------------------------------------------------------- tables


def percent(value: float, signed: bool = False, digits: int = 2) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value * 100:{'+' if signed else ''}.{digits}f}%"


def money(value: float, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency)
    if not math.isfinite(value):
        return "n/a"
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def _uplift_cell(interval: Interval) -> str:
    if not all(map(math.isfinite, interval)):
        return "n/a"
    digits = 0 if max(map(abs, interval)) >= 1 else 1  # +278% [+170, +386], +6.9% [+6.8, +7.0]
    return (
        f"{interval.mean:+.{digits}%} "
        f"[{interval.low * 100:+.{digits}f}, {interval.high * 100:+.{digits}f}]"
    )


def effect_table(result: ExperimentResult) -> Table:
    """Expected effect per variant: ground truth of the model over replications."""
    currency = result.scenario.currency
    table = Table(
        title=f"Expected effect ({len(result.replications)} replications, "
        f"{result.engine} engine; uplift vs {result.control}, 95% interval)",
        box=box.SIMPLE_HEAD,
    )
    for column in (
        "variant",
        "conversion",
        "bounce",
        "rev/visitor",
        "CLV/visitor",
        "uplift conv. [95%]",
        "uplift CLV [95%]",
        "changes most",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for s in result.variants:
        change = s.largest_stage_change
        table.add_row(
            s.name,
            percent(s.metrics["conversion"].mean),
            percent(s.bounce_rate.mean, digits=1),
            money(s.metrics["revenue_per_visitor"].mean, currency),
            money(s.metrics["clv_per_visitor"].mean, currency),
            _uplift_cell(s.uplift["conversion"]) if s.uplift else "—",
            _uplift_cell(s.uplift["clv_per_visitor"]) if s.uplift else "—",
            f"{change[0]} {change[1]:+.0%}" if change else "—",
        )
    return table


METRIC_LABEL = {"conversion": "conversion", "clv_per_visitor": "CLV per visitor"}


def loss_text(result: ExperimentResult, loss: float) -> str:
    """An expected loss in the unit of the metric the simulated test is judged on."""
    if result.scenario.experiment.metric == "conversion":
        return f"{loss * 100:.3f} pts"
    return money(loss, result.scenario.currency) if loss >= 0.005 else f"{loss:.4f}"


def test_table(result: ExperimentResult) -> Table:
    """What an A/B test of the scenario's planned size would conclude."""
    traffic = result.scenario.traffic
    visitors = sum(r.test_visitors.sum() for r in result.replications) / len(result.replications)
    outcomes = result.test_outcomes
    shares = {k: percent(v, digits=0) for k, v in outcomes.items()}
    table = Table(
        title=(
            f"A/B test of {traffic.days} days (~{visitors:,.0f} visitors, split "
            f"{len(result.variants)} ways) judged on "
            f"{METRIC_LABEL[result.scenario.experiment.metric]}: mean over "
            f"{len(result.replications)} simulated tests"
        ),
        caption=(
            f"Truly best: {result.true_best}. Tests shipped it {shares['ship_best']}, "
            f"shipped another {shares['ship_other']}, stopped {shares['stop']}, "
            f"kept testing {shares['keep_testing']}."
        ),
    )
    table.box = box.SIMPLE_HEAD
    for column in ("variant", "P(beats control)", "P(best)", "expected loss", "decision"):
        table.add_column(column, justify="left" if column in ("variant", "decision") else "right")
    for s in result.variants:
        rates = s.decision_rates
        decision = s.decision
        table.add_row(
            s.name,
            "—" if s.name == result.control else percent(s.prob_beats_control, digits=1),
            percent(s.prob_best, digits=1),
            loss_text(result, s.expected_loss),
            f"[{DECISION_STYLE[decision]}]{DECISION_LABEL[decision]}[/] "
            f"({percent(rates[decision], digits=0)})",
        )
    return table


def queue_table(result: ExperimentResult) -> Table:
    """Shared resources per variant: utilisation, mean wait of those served, who gave up."""
    table = Table(title="Queues (mean over replications)", box=box.SIMPLE_HEAD)
    for column in ("variant", "resource", "utilisation", "mean wait", "gave up waiting"):
        table.add_column(column, justify="left" if column in ("variant", "resource") else "right")
    for s in result.variants:
        for resource, stats in s.queues.items():
            table.add_row(
                s.name,
                resource,
                percent(stats["utilisation"], digits=0),
                f"{stats['mean_wait_min']:.1f} min",
                percent(stats["abandonment"], digits=1),
            )
    return table


def _ratio_cell(value: float) -> str:
    if math.isinf(value):
        return "no spend"
    return f"{value:.1f}" if math.isfinite(value) else "n/a"


def _payback_cell(months: float, horizon: int) -> str:
    if math.isinf(months):
        return f"> {horizon} mo"
    return f"{months:.0f} mo" if math.isfinite(months) else "n/a"


def lifetime_table(result: ExperimentResult) -> Table:
    """Lifetime value and acquisition cost per variant, and what the test says about CLV."""
    currency, horizon = result.scenario.currency, result.scenario.value.horizon_months
    table = Table(
        title=f"Lifetime value over {horizon} months and acquisition cost "
        f"(uplift vs {result.control}, 95% interval)",
        box=box.SIMPLE_HEAD,
        caption="P(CLV beats control): Bayesian readout of the simulated test "
        "(conversion x order value x repeat purchase x churn).",
    )
    for column in (
        "variant",
        "CLV/customer",
        "CLV/visitor",
        "CAC",
        "LTV:CAC",
        "payback",
        "uplift CLV/customer",
        "P(CLV beats control)",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for s in result.variants:
        test = s.clv_test
        table.add_row(
            s.name,
            money(s.metrics["clv_per_customer"].mean, currency),
            money(s.metrics["clv_per_visitor"].mean, currency),
            money(s.metrics["cac"].mean, currency),
            _ratio_cell(clv_ratio(s.metrics["clv_per_customer"].mean, s.metrics["cac"].mean)),
            _payback_cell(s.payback_months, horizon),
            _uplift_cell(s.uplift["clv_per_customer"]) if s.uplift else "—",
            "—"
            if s.name == result.control or test is None
            else percent(test.prob_beats_control, digits=1),
        )
    return table


def channel_table(result: ExperimentResult) -> Table:
    """Acquisition economics per channel and variant (means over replications)."""
    currency, horizon = result.scenario.currency, result.scenario.value.horizon_months
    table = Table(title="By channel (mean per replication)", box=box.SIMPLE_HEAD)
    for column in (
        "channel",
        "variant",
        "visitors",
        "spend",
        "customers",
        "CAC",
        "CLV/customer",
        "CLV/visitor",
        "LTV:CAC",
        "payback",
    ):
        table.add_column(
            column, justify="left" if column in ("channel", "variant") else "right", no_wrap=True
        )
    for channel in result.scenario.traffic.channels:
        for i, s in enumerate(result.variants):
            c = s.channels[channel]
            table.add_row(
                channel if i == 0 else "",
                s.name,
                f"{c.visitors:,.0f}",
                money(c.spend, currency),
                f"{c.customers:,.1f}",
                money(c.cac, currency),
                money(c.clv_per_customer, currency),
                money(c.clv_per_visitor, currency),
                _ratio_cell(c.ltv_to_cac),
                _payback_cell(c.payback_months, horizon),
                end_section=i == len(result.variants) - 1,
            )
    return table


def lead_table(result: ExperimentResult) -> Table:
    """Lead quality per variant: leads won, share who became customers, days to customer."""
    table = Table(title="Leads (mean per replication)", box=box.SIMPLE_HEAD)
    for column in ("variant", "leads", "lead → customer", "days lead → customer"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for s in result.variants:
        if s.leads is not None:
            leads = s.leads
            table.add_row(
                s.name,
                f"{leads.leads:,.1f}",
                percent(leads.lead_to_customer, digits=1),
                f"{leads.days_to_customer:.1f}",
            )
    return table


def assumption_table(result: ExperimentResult, effects: AssumptionEffects) -> Table:
    """Each variant's uplift over what we do not know; P(beats control) and P(best) over
    worlds in the metric the simulated test is judged on."""
    metric = result.scenario.experiment.metric
    table = Table(
        title=f"Over what we do not know ({effects.worlds} worlds of "
        f"{effects.counted}; uplift vs {result.control}, "
        f"{effects.level:.0%} interval over assumptions and Monte Carlo; P on "
        f"{METRIC_LABEL[metric]})",
        box=box.SIMPLE_HEAD,
    )
    for column in ("variant", "uplift conv.", "uplift CLV", "P(beats control)", "P(best)"):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for name, by_metric in effects.effects.items():
        conversion, value, judged = (
            by_metric["conversion"],
            by_metric["clv_per_visitor"],
            by_metric[metric],
        )
        table.add_row(
            name,
            _uplift_cell(Interval(conversion.central, conversion.low, conversion.high)),
            _uplift_cell(Interval(value.central, value.low, value.high)),
            percent(judged.prob_beats_control, digits=0),
            percent(judged.prob_best, digits=0),
        )
    return table


def assumption_lines(effects: AssumptionEffects, metric: str) -> list[str]:
    """Plain words per variant: its uplift in ``metric`` (the judged one) if the stated
    values hold, over what we do not know, and the assumption the spread hangs on most."""
    label = "" if metric == "conversion" else f" ({METRIC_LABEL[metric]})"
    lines = [
        f"{name}{label}: {by_metric[metric].describe(effects.level)}"
        for name, by_metric in effects.effects.items()
    ]
    if effects.simulated:
        lines.append(
            "(queues or referrals: each world is one simulated replication, so the spread "
            "also carries its noise, and is not apportioned to the assumptions)"
        )
    return lines


def worlds_test_line(outcomes: dict[str, float]) -> str:
    """How the simulated tests end when each plays in its own world of what we do not
    know and is judged against that world's truly best variant."""
    shares = {k: f"{v:.0%}" for k, v in outcomes.items()}
    return (
        f"With the truth drawn per world (each test in its own world of what we do not "
        f"know): tests shipped that world's best {shares['ship_best']}, shipped another "
        f"{shares['ship_other']}, stopped {shares['stop']}, kept testing "
        f"{shares['keep_testing']}."
    )


def print_results(result: ExperimentResult, console: Console) -> None:
    console.print(effect_table(result))
    if result.assumptions is not None:
        console.print(assumption_table(result, result.assumptions))
        for line in assumption_lines(result.assumptions, result.scenario.experiment.metric):
            console.print(line, highlight=False, soft_wrap=True)
    console.print(lifetime_table(result))
    if len(result.scenario.traffic.channels) > 1:
        console.print(channel_table(result))
    if any(s.leads is not None for s in result.variants):
        console.print(lead_table(result))
    if result.scenario.resources:
        console.print(queue_table(result))
    if any(s.service for s in result.variants):
        console.print(service_report.service_table((s.name, s.service) for s in result.variants))
    console.print(test_table(result))
    if result.test_outcomes_over_worlds is not None:
        console.print(worlds_test_line(result.test_outcomes_over_worlds), highlight=False)


# --------------------------------------------------------------------------- analyze


def _interval_cell(interval: analysis.PosteriorInterval, show: Callable[[float], str]) -> str:
    return f"{show(interval.mean)} [{show(interval.low)}, {show(interval.high)}]"


def _number(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else "n/a"


def diagnostics_line(result: analysis.AnalysisResult) -> str:
    """One line on how far the analysis can be trusted (rich markup)."""
    if result.diagnostics is None:
        return "Exact Beta-Binomial posterior (no sampling)."
    return fit_line(result.diagnostics)


def fit_line(found: Any) -> str:
    """One line on a NUTS fit's diagnostics, saying whether it can be trusted (rich markup)."""
    verdict = (
        "[green]reliable[/]"
        if found.reliable
        else f"[bold red]UNRELIABLE[/]: {'; '.join(found.problems)}"
    )
    return (
        f"{found.sampler} NUTS, {found.chains} chains x {found.draws:,} draws in "
        f"{found.seconds:.1f} s: max r_hat {found.r_hat_max:.3f}, min ESS "
        f"{found.ess_bulk_min:,.0f} bulk / {found.ess_tail_min:,.0f} tail, "
        f"{found.divergences} divergences: {verdict}."
    )


def analysis_table(result: analysis.AnalysisResult) -> Table:
    """Readout of an analysed experiment: the columns of :func:`test_table`, per variant,
    with the decision and the diagnostics in the caption."""
    revenue = result.metric == "revenue_per_visitor"
    has_rpv = any(v.revenue_per_visitor is not None for v in result.variants)
    has_stages = any(v.changed_stage is not None for v in result.variants)
    metric = "revenue/visitor" if revenue else result.conversion_name
    action = result.decision.action
    table = Table(
        title=(
            f"{Path(result.source).name}: {result.model} model, decision on {metric} "
            f"(control {result.control}; 94% intervals, uplift 95%)"
        ),
        caption=(
            f"[{DECISION_STYLE[action]}]{DECISION_LABEL[action]}[/] "
            f"{result.decision.reason}\n{diagnostics_line(result)}"
        ),
        box=box.SIMPLE_HEAD,
    )
    columns = ["variant", "visitors", f"{result.conversion_name} [94%]"]
    columns += ["rev/visitor [94%]"] if has_rpv else []
    columns += ["uplift [95%]", "P(beats control)", "P(best)", "expected loss"]
    columns += ["changes most"] if has_stages else []
    for column in columns:
        table.add_column(
            column,
            justify="left" if column == "variant" else "right",
            no_wrap="[" in column or column == "changes most",
        )
    for v in result.variants:
        control = v.name == result.control
        row = [v.name, f"{v.visitors:,.0f}", _interval_cell(v.conversion, percent)]
        if has_rpv:
            row.append(
                _interval_cell(v.revenue_per_visitor, _number)
                if v.revenue_per_visitor is not None
                else "—"
            )
        row += [
            "—" if control else _uplift_cell(Interval(*v.uplift)),
            "—" if control else percent(v.prob_beats_control, digits=1),
            percent(v.prob_best, digits=1),
            f"{_number(v.expected_loss)}/visitor"
            if revenue
            else f"{v.expected_loss * 100:.3f} pts",
        ]
        if has_stages:
            changed = v.changed_stage
            row.append("—" if changed is None else f"{changed.stage} {changed.change.mean:+.1%}")
        table.add_row(*row)
    return table


def stage_table(result: analysis.AnalysisResult) -> Table:
    """Funnel model: each stage's continue rate per variant and its change vs control."""
    control = next(v for v in result.variants if v.name == result.control)
    others = [v for v in result.variants if v.name != result.control]
    table = Table(
        title="Stage by stage: share continuing, change vs control [95%]", box=box.SIMPLE_HEAD
    )
    table.add_column("stage")
    table.add_column(result.control, justify="right")
    for v in others:
        table.add_column(v.name, justify="right")
        table.add_column(f"{v.name} vs {result.control}", justify="right", no_wrap=True)
        table.add_column("P(higher)", justify="right")
    for i, effect in enumerate(control.stages):
        row = [effect.stage, percent(effect.rate.mean, digits=1)]
        for v in others:
            own = v.stages[i]
            row += [
                percent(own.rate.mean, digits=1),
                _uplift_cell(Interval(*own.change)),
                percent(own.prob_increase, digits=1),
            ]
        table.add_row(*row)
    return table


def print_analysis(result: analysis.AnalysisResult, console: Console) -> None:
    """Print the readout of :func:`funnelsim.analysis.api.analyze`."""
    console.print(analysis_table(result))
    if any(v.stages for v in result.variants):
        console.print(stage_table(result))


def write_analysis(result: analysis.AnalysisResult, out: Path) -> list[Path]:
    """Write ``results.json`` and, for the PyMC models, the posterior as ``posterior.nc``,
    together (one :func:`output_batch`)."""
    with output_batch() as placed:
        with atomic_writer(out / "results.json") as stream:
            stream.write(analysis.results_json(result) + "\n")
        if result.posterior is not None:
            write_bytes_atomic(out / "posterior.nc", netcdf_bytes(result.posterior))
    return placed


CUSTOMER_COLUMNS = (
    "variant",
    "customers",
    "repeat purchases",
    "still active",
    "CLV/customer",
    "P(beats control)",
    "P(best)",
)
VISITOR_COLUMNS = (
    "variant",
    "visitors",
    "conversion",
    "CLV/visitor",
    "uplift",
    "P(beats control)",
    "P(best)",
)
Bounds = Callable[[float, float, float, Callable[[float], str]], str]
"""Formats a mean and its interval bounds with a number format, e.g. ``1.00 [0.50, 2.00]``."""


def _bracketed(mean: float, low: float, high: float, show: Callable[[float], str]) -> str:
    return f"{show(mean)} [{show(low)}, {show(high)}]"


def _amount(value: float) -> str:
    return f"{value:,.2f}"


def _probability_cell(value: float, control: bool) -> str:
    return "—" if control or not math.isfinite(value) else percent(value, digits=1)


def customer_rows(
    readout: Any, bounds: Bounds, label: Callable[[str, bool], str]
) -> list[tuple[str, ...]]:
    """Cells of the CLV-per-customer table of an order log (``CUSTOMER_COLUMNS``), one
    row per variant; ``label(name, is_control)`` writes the variant cell."""
    return [
        (
            label(name, i == 0),
            f"{readout.customers[i]:,}",
            bounds(
                readout.repeat_purchases[i], readout.repeat_low[i], readout.repeat_high[i], _amount
            ),
            percent(readout.still_active[i], digits=1),
            bounds(readout.clv_per_customer[i], readout.clv_low[i], readout.clv_high[i], _amount),
            _probability_cell(readout.prob_beats_control[i], control=i == 0),
            percent(readout.prob_best[i], digits=1),
        )
        for i, name in enumerate(readout.variants)
    ]


def visitor_rows(
    readout: Any,
    bounds: Bounds,
    uplift: Callable[[float, float, float], str],
    label: Callable[[str, bool], str],
) -> list[tuple[str, ...]]:
    """Cells of the CLV-per-visitor table of an order log (``VISITOR_COLUMNS``)."""
    per_visitor = readout.per_visitor
    clv = per_visitor.clv
    return [
        (
            label(name, i == 0),
            f"{per_visitor.visitors[i]:,}",
            bounds(
                per_visitor.conversion[i],
                per_visitor.conversion_low[i],
                per_visitor.conversion_high[i],
                percent,
            ),
            bounds(clv.mean[i], clv.low[i], clv.high[i], _amount),
            "—" if i == 0 else uplift(clv.uplift_mean[i], clv.uplift_low[i], clv.uplift_high[i]),
            _probability_cell(clv.prob_beats_control[i], control=i == 0),
            percent(clv.prob_best[i], digits=1),
        )
        for i, name in enumerate(readout.variants)
    ]


def _rich_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def transactions_table(readout: Any) -> Table:
    """Per variant of an order log: repeat purchases, share active, CLV per customer."""
    return _rich_table(
        f"Order log: repeat purchase and CLV per customer (BG/NBD, {readout.level:.0%} intervals)",
        CUSTOMER_COLUMNS,
        customer_rows(readout, _bracketed, lambda name, _: name),
    )


def visitor_clv_table(readout: Any) -> Table:
    """Per variant of an order log with known visitors: conversion and CLV per visitor."""
    return _rich_table(
        f"CLV per visitor: conversion x CLV per customer ({readout.level:.0%} intervals; "
        f"uplift vs {readout.variants[0]})",
        VISITOR_COLUMNS,
        visitor_rows(
            readout,
            _bracketed,
            lambda mean, low, high: _uplift_cell(Interval(mean, low, high)),
            lambda name, _: name,
        ),
    )


def print_transactions(readout: Any, console: Console) -> None:
    """The order-log readout: CLV per customer, per visitor when known, and the fit's health."""
    console.print(transactions_table(readout))
    if readout.per_visitor is not None:
        console.print(visitor_clv_table(readout))
    console.print(fit_line(readout.diagnostics))
