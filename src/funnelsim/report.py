"""The tables of every readout, built once as :class:`funnelsim.tables.Table` models.

Each ``*_table`` function turns a result into rows of formatted cells; the terminal
(:func:`funnelsim.tables.print_table`) and the HTML report
(:func:`funnelsim.tables.to_html`) show the same cells, so the same number reads the
same in both. ``print_*`` functions print a readout's tables in the terminal.

``results.json`` is a contract scripts rely on: ``variants.<name>`` holds
``conversion``, ``revenue_per_visitor`` and ``clv_per_visitor`` as
``{mean, low, high}``; non-control variants also hold
``uplift_vs_control.<metric>`` (relative, ``{mean, low, high}``) and
``experiment`` (``prob_beats_control``, ``prob_best``, ``expected_loss``,
``decision``, ``decision_words``). Lifetime economics: ``clv_per_customer``, ``cac``
(acquisition cost per customer: paid visits and nurture messages plus the service
desks' staff and automation cost) and ``ltv_to_cac`` as ``{mean, low, high}``,
``payback_months``, ``referrals_per_customer`` (expected visitors a customer refers
over the horizon), ``channels.<channel>`` (``visitors``, ``spend``, ``service_cost``
(the channel's share of the desks' cost, by the leads it brought), ``customers``,
``cac``, ``clv_per_customer``, ``ltv_to_cac``, ``payback_months``), ``experiment.clv``
(the simulated test's CLV-per-visitor readout: ``mean``, ``low``, ``high``,
``prob_beats_control``, ``prob_best``) and, for lead funnels, ``leads``. Values that
are infinite (LTV:CAC of a free channel, payback beyond the horizon) are ``null``.
Every file is written to a temporary name and renamed, so a reader never sees half a
file and an interrupted run leaves none.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnelsim import formatting as fmt
from funnelsim import question, service_report
from funnelsim.analysis import api as analysis
from funnelsim.analysis.operating import risk_line
from funnelsim.analysis.pooling_prior import doubt_message
from funnelsim.analysis.readout_tables import extras_tables, fit_note
from funnelsim.clv import ratio as clv_ratio
from funnelsim.files import atomic_writer, netcdf_bytes, output_batch, write_bytes_atomic
from funnelsim.intervals import Interval
from funnelsim.results import AssumptionEffects, Effect, ExperimentResult, VariantSummary
from funnelsim.tables import (
    EMPTY,
    Cell,
    Column,
    Row,
    Table,
    Tone,
    columns,
    label,
    print_note,
    print_table,
    text,
)

if TYPE_CHECKING:
    from rich.console import Console

    from funnelsim.analysis.lifetime import TransactionReadout
    from funnelsim.sensitivities import SensitivityResult

OUTCOME_TONE: dict[str, Tone] = {
    "ship": "good",
    "reject": "bad",
    "stop": "neutral",
    "keep_testing": "pending",
}
METRIC_LABEL = {"conversion": "conversion", "clv_per_visitor": "CLV per visitor"}
UPLIFT_NOTE = "below each value: uplift vs control [95% interval]"
RATIO_MEAN_NOTE = (
    " LTV:CAC here is each replication's ratio, averaged (results.json ltv_to_cac); the "
    "lifetime table divides the mean CLV per customer by the mean CAC."
)


def desk_cost_note(result: ExperimentResult) -> str:
    """The sentence saying that CAC counts the service desks' cost ("" without desks)."""
    if not any(s.service for s in result.variants):
        return ""
    return (
        "CAC: spend plus the service desks' staff and automation cost (shared by the "
        "leads each channel brought), per customer won. "
    )


PROBABILITY_COLUMNS = ("P(beats control)", "P(best)")


# --------------------------------------------------------------------------- cells


def metric_label(metric: str) -> str:
    """What ``experiment.metric`` judges, in words (``reached:lead`` -> ``reach of lead``)."""
    return METRIC_LABEL.get(metric, metric.replace("reached:", "reach of "))


def uplift_cell(interval: Interval | tuple[float, float, float]) -> Cell:
    """A relative uplift with its interval below."""
    mean, low, high = interval
    return Cell(fmt.uplift(mean, low, high), fmt.uplift_bounds(mean, low, high))


def with_uplift(value: str, summary: VariantSummary, metric: str) -> Cell:
    """A metric's value with the variant's uplift over control and its interval below."""
    if summary.uplift is None:
        return Cell(value)
    mean, low, high = summary.uplift[metric]
    change = fmt.uplift(mean, low, high)
    return Cell(value, f"{change} {fmt.uplift_bounds(mean, low, high)}".strip())


def interval_cell(mean: float, low: float, high: float, show: Any) -> Cell:
    """A mean with its interval below, both in the mean's format."""
    return Cell(show(mean), fmt.bounds(low, high, show))


def probability(value: float, control: bool = False) -> Cell:
    """A probability, or a dash for the control (which cannot beat itself)."""
    return EMPTY if control else Cell(fmt.percent(value, digits=1))


def outcome_cell(outcome: str, variant: str, control: str, share: float | None = None) -> Cell:
    """What the test did about a variant, in words and toned, with the share of tests."""
    words = fmt.outcome_words(outcome, variant, variant == control)
    detail = f"{fmt.percent(share, digits=0)} of tests" if share is not None else ""
    return Cell(words, detail, tone=OUTCOME_TONE[outcome])


def variant_label(name: str, control: str) -> Cell:
    """A variant's name, marked when it is the control (and not already named so)."""
    return Cell(name if name == "control" or name != control else f"{name} (control)")


def loss_text(result: ExperimentResult, loss: float) -> str:
    """An expected loss in the unit of the metric the simulated test is judged on."""
    if result.scenario.experiment.metric != "clv_per_visitor":  # a rate
        return fmt.points(loss)
    return fmt.small_money(loss, result.scenario.currency)


# --------------------------------------------------------------------------- run


def effect_table(result: ExperimentResult) -> Table:
    """Expected effect per variant: ground truth of the model over replications."""
    currency = result.scenario.currency
    rows = []
    for s in result.variants:
        change = s.largest_stage_change
        rows.append(
            Row(
                (
                    replace(
                        variant_label(s.name, result.control),
                        detail=f"{change[0]} {change[1]:+.0%}" if change else "",
                    ),
                    with_uplift(fmt.percent(s.metrics["conversion"].mean), s, "conversion"),
                    Cell(fmt.percent(s.bounce_rate.mean, digits=1)),
                    Cell(fmt.money(s.metrics["revenue_per_visitor"].mean, currency)),
                    with_uplift(
                        fmt.money(s.metrics["clv_per_visitor"].mean, currency),
                        s,
                        "clv_per_visitor",
                    ),
                )
            )
        )
    return Table(
        f"Expected effect ({len(result.replications)} replications, {result.engine} engine)",
        (
            label("variant"),
            Column("conversion"),
            Column("bounce"),
            Column("revenue per visitor"),
            Column("CLV per visitor"),
        ),
        tuple(rows),
        caption=f"Mean over replications; {UPLIFT_NOTE} (Monte Carlo); below each "
        "variant the stage it changes most.",
    )


def _test_visitors(result: ExperimentResult) -> float:
    return sum(r.test_visitors.sum() for r in result.replications) / len(result.replications)


def test_table(result: ExperimentResult) -> Table:
    """What an A/B test of the scenario's planned size would conclude, and P(CLV per
    visitor beats control) beside the decision metric's when the test judges conversion."""
    metric = result.scenario.experiment.metric
    outcomes = result.test_outcomes
    shares = {k: fmt.percent(v, digits=0) for k, v in outcomes.items()}
    show_clv = metric == "conversion" and any(s.clv_test for s in result.variants)
    columns = [label("variant"), Column(f"P({_short(metric)} beats control)")]
    columns += [Column("P(CLV/visitor beats control)")] if show_clv else []
    columns += [Column("P(best)"), Column("expected loss"), text("decision")]
    rows = []
    for s in result.variants:
        control = s.name == result.control
        cells = [variant_label(s.name, result.control), probability(s.prob_beats_control, control)]
        if show_clv:
            test = s.clv_test
            cells.append(probability(test.prob_beats_control if test else float("nan"), control))
        cells += [
            Cell(fmt.percent(s.prob_best, digits=1)),
            Cell(loss_text(result, s.expected_loss)),
            outcome_cell(s.decision, s.name, result.control, s.decision_rates[s.decision]),
        ]
        rows.append(Row(tuple(cells)))
    return Table(
        f"A/B test of {result.scenario.traffic.days} days (~{_test_visitors(result):,.0f} "
        f"visitors, split {len(result.variants)} ways) judged on {metric_label(metric)}: "
        f"mean over {len(result.replications)} simulated tests",
        tuple(columns),
        tuple(rows),
        caption=(
            f"Truly best: {result.true_best}. Tests shipped it {shares['ship_best']}, "
            f"shipped another {shares['ship_other']}, found no difference {shares['stop']}, "
            f"kept testing {shares['keep_testing']}."
        ),
    )


def _short(metric: str) -> str:
    return {"conversion": "conv.", "clv_per_visitor": "CLV/visitor"}.get(metric, metric)


def queue_table(result: ExperimentResult) -> Table:
    """Shared resources per variant: utilisation, mean wait of those served, who gave up."""
    return Table(
        "Queues (mean over replications)",
        columns(label("variant"), label("resource"), "utilisation", "mean wait", "gave up waiting"),
        tuple(
            Row(
                (
                    Cell(s.name),
                    Cell(resource),
                    Cell(fmt.percent(stats["utilisation"], digits=0)),
                    Cell(f"{fmt.decimal(stats['mean_wait_min'])} min"),
                    Cell(fmt.percent(stats["abandonment"], digits=1)),
                )
            )
            for s in result.variants
            for resource, stats in s.queues.items()
        ),
        caption="Mean wait of those served.",
    )


def lifetime_table(result: ExperimentResult) -> Table:
    """Lifetime value and acquisition cost per variant."""
    currency, horizon = result.scenario.currency, result.scenario.value.horizon_months
    rows = tuple(
        Row(
            (
                variant_label(s.name, result.control),
                with_uplift(
                    fmt.money(s.metrics["clv_per_customer"].mean, currency), s, "clv_per_customer"
                ),
                Cell(fmt.money(s.metrics["clv_per_visitor"].mean, currency)),
                Cell(fmt.money(s.metrics["cac"].mean, currency)),
                Cell(
                    fmt.ratio(clv_ratio(s.metrics["clv_per_customer"].mean, s.metrics["cac"].mean))
                ),
                Cell(fmt.payback(s.payback_months, horizon)),
            )
        )
        for s in result.variants
    )
    return Table(
        f"Lifetime value over {horizon} months and acquisition cost",
        (
            label("variant"),
            Column("CLV per customer"),
            Column("CLV per visitor"),
            Column("CAC"),
            Column("LTV:CAC"),
            Column("payback"),
        ),
        rows,
        caption=f"Mean over replications; {UPLIFT_NOTE} (Monte Carlo). "
        f"{desk_cost_note(result)}Payback: months until a customer's margin repays their "
        "acquisition cost.",
    )


def _per_channel(
    result: ExperimentResult, title: str, columns: tuple[Column, ...], cells: Any, caption: str
) -> Table:
    """A table with a row per channel and, under it, a row per variant of ``cells(c)``
    (``c`` the variant's economics in that channel)."""
    rows = []
    for channel in result.scenario.traffic.channels:
        rows.append(Row((Cell(channel), *(Cell("") for _ in columns))))
        for i, s in enumerate(result.variants):
            rows.append(
                Row(
                    (Cell(f"  {s.name}"), *cells(s.channels[channel])),
                    section_end=i == len(result.variants) - 1,
                )
            )
    return Table(title, (label("channel / variant"), *columns), tuple(rows), caption=caption)


def channel_table(result: ExperimentResult) -> Table:
    """Acquisition per channel and variant: visitors, spend, customers won, their cost."""
    currency = result.scenario.currency
    return _per_channel(
        result,
        "Acquisition by channel (mean per replication)",
        (Column("visitors"), Column("spend"), Column("customers"), Column("CAC")),
        lambda c: (
            Cell(fmt.count(c.visitors)),
            Cell(fmt.money(c.spend, currency)),
            Cell(fmt.count(c.customers)),
            Cell(fmt.money(c.cac, currency)),
        ),
        desk_cost_note(result).strip() or "CAC: acquisition spend per customer won.",
    )


def channel_value_table(result: ExperimentResult) -> Table:
    """Value per channel and variant: CLV, LTV:CAC and payback."""
    currency, horizon = result.scenario.currency, result.scenario.value.horizon_months
    return _per_channel(
        result,
        "Value by channel (mean per replication)",
        (
            Column("CLV per customer"),
            Column("CLV per visitor"),
            Column("LTV:CAC"),
            Column("payback"),
        ),
        lambda c: (
            Cell(fmt.money(c.clv_per_customer, currency)),
            Cell(fmt.money(c.clv_per_visitor, currency)),
            Cell(fmt.ratio(c.ltv_to_cac)),
            Cell(fmt.payback(c.payback_months, horizon)),
        ),
        "LTV:CAC: CLV per customer over acquisition cost per customer; 3 or more is the "
        "usual target, below 1 loses money on every customer.",
    )


def lead_table(result: ExperimentResult) -> Table:
    """Lead quality per variant: leads won, share who became customers, days to customer."""
    return Table(
        "Leads (mean per replication)",
        columns(label("variant"), "leads", "lead → customer", "days lead → customer"),
        tuple(
            Row(
                (
                    Cell(s.name),
                    Cell(fmt.count(s.leads.leads)),
                    Cell(fmt.percent(s.leads.lead_to_customer, digits=1)),
                    Cell(fmt.decimal(s.leads.days_to_customer)),
                )
            )
            for s in result.variants
            if s.leads is not None
        ),
    )


def question_table(result: ExperimentResult) -> Table | None:
    """The scenario's question and its answer (the table's lead lines) above the figure
    that answers it: per variant its mean, uplift over control and, with a goal, whether
    it is met (None when the scenario asks no question)."""
    found = question.answer(result.scenario, result.variants, result.assumptions)
    if found is None:
        return None
    shown = question.show(found.metric, result.scenario.currency)
    goal = found.goal
    columns_ = [label("variant"), Column(question.LABELS[found.metric]), Column("vs control")]
    if goal is not None:
        bound = "≤" if found.metric in question.LOWER_IS_BETTER else "≥"
        columns_.append(text(f"goal {bound} {shown(goal)}"))
    rows = []
    for name, value in found.values.items():
        cells = [
            variant_label(name, found.control),
            interval_cell(*value, shown),
            uplift_cell(found.uplift[name]) if name in found.uplift else EMPTY,
        ]
        if found.meets_goal is not None:
            met = found.meets_goal[name]
            cells.append(Cell("met" if met else "not met", tone="good" if met else "bad"))
        rows.append(Row(tuple(cells), highlight=name == found.best))
    return Table(
        f"Answer in figures: {question.LABELS[found.metric]} per variant",
        tuple(columns_),
        tuple(rows),
        caption="Mean over replications with its 95% interval below (Monte Carlo); "
        "uplift vs control [95% interval]."
        + (RATIO_MEAN_NOTE if found.metric == "ltv_to_cac" else ""),
        lead=(
            Cell(f"Question: {found.question}"),
            Cell(found.words, tone="good" if found.best != found.control else "neutral"),
        ),
    )


def run_tables(result: ExperimentResult) -> list[Table]:
    """The tables of ``funnelsim run``, in reading order: the scenario's question and its
    answer first."""
    asked = question_table(result)
    tables = [effect_table(result)] if asked is None else [asked, effect_table(result)]
    if result.assumptions is not None:
        tables.append(assumption_table(result, result.assumptions))
    tables.append(lifetime_table(result))
    if len(result.scenario.traffic.channels) > 1:
        tables += [channel_table(result), channel_value_table(result)]
    if any(s.leads is not None for s in result.variants):
        tables.append(lead_table(result))
    if result.scenario.resources:
        tables.append(queue_table(result))
    if any(s.service for s in result.variants):
        tables += service_report.service_tables((s.name, s.service) for s in result.variants)
    tables.append(test_table(result))
    return tables


def assumption_table(result: ExperimentResult, effects: AssumptionEffects) -> Table:
    """Each variant's uplift over what we do not know; P(beats control) and P(best) over
    worlds in the metric the simulated test is judged on. The plain words per variant
    are the table's notes."""
    metric = result.scenario.experiment.metric
    return Table(
        f"Over what we do not know ({effects.worlds} worlds of {effects.counted})",
        (
            label("variant"),
            Column("uplift conv."),
            Column("uplift CLV"),
            Column("P(beats control)"),
            Column("P(best)"),
        ),
        tuple(
            Row(
                (
                    Cell(name),
                    uplift_cell(_central(by_metric["conversion"])),
                    uplift_cell(_central(by_metric["clv_per_visitor"])),
                    Cell(fmt.percent(by_metric[metric].prob_beats_control, digits=0)),
                    Cell(fmt.percent(by_metric[metric].prob_best, digits=0)),
                )
            )
            for name, by_metric in effects.effects.items()
        ),
        caption=(
            f"Uplift vs {result.control} if the stated values hold, with its "
            f"{effects.level:.0%} interval over assumptions and Monte Carlo below; "
            f"P on {metric_label(metric)}, as shares of worlds."
        ),
        notes=tuple(Cell(line) for line in assumption_lines(effects, metric)),
    )


def _central(effect: Effect) -> tuple[float, float, float]:
    return (effect.central, effect.low, effect.high)


def assumption_lines(effects: AssumptionEffects, metric: str) -> list[str]:
    """Plain words per variant: its uplift in ``metric`` (the judged one) if the stated
    values hold, over what we do not know, and the assumption the spread hangs on most."""
    label = "" if metric == "conversion" else f" ({metric_label(metric)})"
    lines = [
        f"{name}{label}: {by_metric[metric].describe(effects.level)}"
        for name, by_metric in effects.effects.items()
    ]
    lines += [
        f"({', '.join(keys)}: each world takes one joint draw of {source}, so their "
        "correlations are kept)"
        for source, keys in effects.joint_draws.items()
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
    """Print the tables of a run."""
    for table in run_tables(result):
        print_table(table, console)
    if result.test_outcomes_over_worlds is not None:
        print_note(Cell(worlds_test_line(result.test_outcomes_over_worlds)), console)


def sensitivity_table(result: SensitivityResult) -> Table:
    """The assumptions ranked by their total Sobol index, with the first-order index and
    the range each was drawn from; what flips the decision in the notes."""
    specs = {a.key: a.spec.describe() for a in result.assumptions}

    def index_cell(name: str, which: int) -> Cell:
        mean, low, high = result.indices.of(name)[which]
        return interval_cell(mean, low, high, fmt.decimal_3)

    return Table(
        f"What the {result.quantity} hangs on",
        (label("assumption"), Column("total index"), Column("first-order index"), text("range")),
        tuple(
            Row((Cell(name), index_cell(name, 1), index_cell(name, 0), Cell(specs[name])))
            for name in result.indices.ranked()
        ),
        caption=(
            f"Share of the variance of the {result.quantity} each assumption explains, with "
            f"its interactions (total) and alone (first-order); bootstrap "
            f"{result.indices.level:.0%} intervals below, from {result.base_samples} base "
            "samples."
        ),
        notes=(
            *(Cell(f"What flips the decision: {flip.describe()}") for flip in result.flips),
            *((Cell(result.note),) if result.note else ()),
        ),
    )


# --------------------------------------------------------------------------- analyze


def diagnostics_note(result: analysis.AnalysisResult) -> Cell:
    """One line on how far the analysis can be trusted."""
    if result.diagnostics is None:
        return Cell("Exact Beta-Binomial posterior (no sampling).")
    return fit_note(result.diagnostics)


def decision_note(result: analysis.AnalysisResult) -> Cell:
    """The decision in words, toned, with its reason."""
    decision = result.decision
    words = fmt.decision_words(decision.action, decision.variant, result.control)
    return Cell(f"Decision: {words}. {decision.reason}", tone=_decision_tone(decision.action))


def _decision_tone(action: str) -> Tone:
    return OUTCOME_TONE.get(action, "")


def analysis_table(result: analysis.AnalysisResult) -> Table:
    """Readout of an analysed experiment: the fitted model's numbers per variant, the
    decision and the diagnostics below."""
    revenue = result.metric == "revenue_per_visitor"
    has_rpv = any(v.revenue_per_visitor is not None for v in result.variants)
    has_stages = any(v.changed_stage is not None for v in result.variants)
    metric = "revenue/visitor" if revenue else result.conversion_name
    columns = [label("variant"), Column(result.conversion_name)]
    columns += [Column("rev/visitor")] if has_rpv else []
    columns += [Column("uplift"), Column("P(beats control)"), Column("P(best)")]
    columns += [Column("expected loss")] + ([text("changes most")] if has_stages else [])
    rows = []
    for v in result.variants:
        control = v.name == result.control
        name = variant_label(v.name, result.control)
        cells = [Cell(name.text, f"{fmt.count(v.visitors)} visitors")]
        cells.append(interval_cell(*v.conversion, fmt.percent))
        if has_rpv:
            rpv = v.revenue_per_visitor
            cells.append(EMPTY if rpv is None else interval_cell(*rpv, fmt.amount))
        cells += [
            EMPTY if control else uplift_cell(v.uplift),
            probability(v.prob_beats_control, control),
            Cell(fmt.percent(v.prob_best, digits=1)),
            Cell(
                f"{fmt.amount(v.expected_loss)}/visitor" if revenue else fmt.points(v.expected_loss)
            ),
        ]
        if has_stages:
            changed = v.changed_stage
            cells.append(
                EMPTY if changed is None else Cell(changed.stage, f"{changed.change.mean:+.1%}")
            )
        rows.append(Row(tuple(cells)))
    return Table(
        f"{Path(result.source).name}: {result.model} model, decision on {metric} "
        f"(control {result.control})",
        tuple(columns),
        tuple(rows),
        caption=f"Posterior mean with its {fmt.level(analysis.RATE_LEVEL)} credible "
        f"interval below; uplift relative to the control "
        f"({fmt.level(analysis.UPLIFT_LEVEL)} interval).",
        notes=(decision_note(result), diagnostics_note(result), *_risk_notes(result)),
    )


def _risk_notes(result: analysis.AnalysisResult) -> tuple[Cell, ...]:
    """The rule's simulated risks at this size, when they were measured."""
    return () if result.operating is None else (Cell(risk_line(result.operating)),)


def stage_table(result: analysis.AnalysisResult) -> Table:
    """Funnel model: each stage's continue rate per variant and its change vs control."""
    control = next(v for v in result.variants if v.name == result.control)
    others = [v for v in result.variants if v.name != result.control]
    columns = [label("stage"), Column(result.control)]
    for v in others:
        columns += [Column(v.name), Column(f"{v.name} vs {result.control}"), Column("P(higher)")]
    rows = []
    for i, effect in enumerate(control.stages):
        cells = [Cell(effect.stage), Cell(fmt.percent(effect.rate.mean, digits=1))]
        for v in others:
            own = v.stages[i]
            cells += [
                Cell(fmt.percent(own.rate.mean, digits=1)),
                uplift_cell(own.change),
                Cell(fmt.percent(own.prob_increase, digits=1)),
            ]
        rows.append(Row(tuple(cells)))
    doubt = doubt_message(result.stage_checks)
    return Table(
        "Stage by stage: share continuing, change vs control",
        tuple(columns),
        tuple(rows),
        caption=f"Posterior means; the change is relative, with its "
        f"{fmt.level(analysis.UPLIFT_LEVEL)} credible interval below.",
        notes=(Cell(doubt, tone="bad"),) if doubt else (),
    )


def sample_ratio_table(result: analysis.AnalysisResult) -> Table:
    """The visitor split against the planned one, and the chi-square test's verdict."""
    visitors = [v.visitors for v in result.variants]
    total = sum(visitors)
    planned = result.planned_shares or tuple(1 / len(visitors) for _ in visitors)
    check = result.sample_ratio
    return Table(
        "Sample ratio check",
        (label("variant"), Column("visitors"), Column("share"), Column("planned share")),
        tuple(
            Row(
                (
                    variant_label(v.name, result.control),
                    Cell(fmt.count(v.visitors), f"expected {fmt.count(total * share)}"),
                    Cell(fmt.percent(v.visitors / total if total else float("nan"))),
                    Cell(fmt.percent(share)),
                )
            )
            for v, share in zip(result.variants, planned, strict=True)
        ),
        caption="Pearson chi-square test of the observed split against the planned one "
        "(Fabijan et al. 2019); a mismatch withholds the decision.",
        notes=(Cell(check.message, tone="bad" if check.mismatch else ""),),
    )


def analysis_tables(result: analysis.AnalysisResult, every_row: bool = True) -> list[Table]:
    """The tables of ``funnelsim analyze``: the readout, the stage table of the funnel
    model, the sample ratio check (when it fails, or ``every_row``) and the per-visitor
    readouts that ran (:func:`funnelsim.analysis.readout_tables.extras_tables`)."""
    tables = [analysis_table(result)]
    if any(v.stages for v in result.variants):
        tables.append(stage_table(result))
    if every_row or result.sample_ratio.mismatch:
        tables.append(sample_ratio_table(result))
    if result.extras is not None:
        tables += extras_tables(result.extras, every_row, result.conversion_name)
    return tables


def print_analysis(
    result: analysis.AnalysisResult, console: Console, verbose: bool = False
) -> None:
    """Print the readout of :func:`funnelsim.analysis.api.analyze`: short, or every row
    of every table with ``verbose``."""
    for table in analysis_tables(result, every_row=verbose):
        print_table(table, console)


def write_analysis(result: analysis.AnalysisResult, out: Path) -> list[Path]:
    """Write ``results.json`` and, for the PyMC models, the posterior as ``posterior.nc``,
    together (one :func:`output_batch`)."""
    with output_batch() as placed:
        with atomic_writer(out / "results.json") as stream:
            stream.write(analysis.results_json(result) + "\n")
        if result.posterior is not None:
            write_bytes_atomic(out / "posterior.nc", netcdf_bytes(result.posterior))
    return placed


# --------------------------------------------------------------------------- order logs


def _order_log_amount(readout: TransactionReadout) -> Any:
    """How an order log's amounts are written: with its currency when stated."""
    currency = readout.currency
    return fmt.amount if currency is None else lambda value: fmt.money(value, currency)


def _order_log_unit(readout: TransactionReadout) -> str:
    if readout.currency is None:
        return "CLV in the order log's currency (name it with --currency)"
    return f"CLV in {readout.currency}"


def transactions_table(readout: TransactionReadout) -> Table:
    """Per variant of an order log: repeat purchases, share active, CLV per customer."""
    control = readout.variants[0]
    show_amount = _order_log_amount(readout)
    rows = tuple(
        Row(
            (
                variant_label(name, control),
                Cell(fmt.count(readout.customers[i])),
                interval_cell(
                    readout.repeat_purchases[i],
                    readout.repeat_low[i],
                    readout.repeat_high[i],
                    fmt.amount,
                ),
                Cell(fmt.percent(readout.still_active[i], digits=1)),
                interval_cell(
                    readout.clv_per_customer[i],
                    readout.clv_low[i],
                    readout.clv_high[i],
                    show_amount,
                ),
                probability(readout.prob_beats_control[i], control=i == 0),
                Cell(fmt.percent(readout.prob_best[i], digits=1)),
            )
        )
        for i, name in enumerate(readout.variants)
    )
    return Table(
        "Order log: repeat purchase and CLV per customer (BG/NBD)",
        columns(
            label("variant"),
            "customers",
            "repeat purchases",
            "still active",
            "CLV per customer",
            *PROBABILITY_COLUMNS,
        ),
        rows,
        caption=f"Posterior mean with its {fmt.level(readout.level)} credible interval below; "
        f"{_order_log_unit(readout)}. Still active: share of the variant's customers "
        "who have not dropped out by the end of the log.",
    )


def visitor_clv_table(readout: TransactionReadout) -> Table:
    """Per variant of an order log with known visitors: conversion and CLV per visitor."""
    per_visitor = readout.per_visitor
    assert per_visitor is not None, "CLV per visitor needs the visitors"
    clv = per_visitor.clv
    control = readout.variants[0]
    rows = tuple(
        Row(
            (
                variant_label(name, control),
                Cell(fmt.count(per_visitor.visitors[i])),
                interval_cell(
                    per_visitor.conversion[i],
                    per_visitor.conversion_low[i],
                    per_visitor.conversion_high[i],
                    fmt.percent,
                ),
                interval_cell(clv.mean[i], clv.low[i], clv.high[i], _order_log_amount(readout)),
                EMPTY
                if i == 0
                else uplift_cell((clv.uplift_mean[i], clv.uplift_low[i], clv.uplift_high[i])),
                probability(clv.prob_beats_control[i], control=i == 0),
                Cell(fmt.percent(clv.prob_best[i], digits=1)),
            )
        )
        for i, name in enumerate(readout.variants)
    )
    return Table(
        f"CLV per visitor: conversion x CLV per customer (uplift vs {control})",
        columns(
            label("variant"),
            "visitors",
            "conversion",
            "CLV per visitor",
            "uplift",
            *PROBABILITY_COLUMNS,
        ),
        rows,
        caption=f"Posterior mean with its {fmt.level(readout.level)} credible interval below: "
        "each draw of CLV per customer times a draw of the conversion posterior, so the "
        f"interval carries both; {_order_log_unit(readout)}.",
    )


def transactions_tables(readout: TransactionReadout) -> list[Table]:
    """The tables of an order log's readout."""
    tables = [transactions_table(readout)]
    if readout.per_visitor is not None:
        tables.append(visitor_clv_table(readout))
    return tables


def print_transactions(readout: TransactionReadout, console: Console) -> None:
    """The order-log readout: CLV per customer, per visitor when known, and the fit's health."""
    for table in transactions_tables(readout):
        print_table(table, console)
    print_note(fit_note(readout.diagnostics), console)
