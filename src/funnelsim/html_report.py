"""One self-contained HTML page that tells a funnel experiment's story to people who skip tables.

Picture the page a growth lead forwards to the finance team: a title, the
question the scenario asks, one table that says which variant to ship, then
the pictures that explain why. The funnel of each variant shows where people
left and for what reason; the uplift curves show what a test of the planned
size would believe, against the band of "too small to matter"; the
expected-loss table shows what shipping the wrong variant would cost; the
LTV:CAC chart shows whether the customers won are worth what they cost; the
diagnostics say whether enough was simulated (or sampled) to trust it all.

The file needs no network and no other file to be read: styles are inline and
every figure is a PNG embedded as base64. The same PNGs can be written beside
the results (``--out``) for slides and papers.

A report is built in two steps: an adapter turns a result into a
:class:`Report` (sections of HTML and figures), and :func:`render_html` lays
it out. :func:`experiment_report` adapts ``funnelsim run`` results; its figures are
drawn from plain data (:class:`FigureJob`), so two cores draw them at once.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from funnelsim import formatting as fmt
from funnelsim import parallel, plots, report
from funnelsim.analysis import readout_tables
from funnelsim.files import atomic_writer, png_bytes, write_bytes_atomic
from funnelsim.tables import EMPTY, Cell, Column, Row, Table, columns, esc, label, text, to_html

if TYPE_CHECKING:
    from arviz import InferenceData
    from matplotlib.figure import Figure

    from funnelsim.analysis.api import AnalysisResult
    from funnelsim.analysis.cuped import Estimate
    from funnelsim.analysis.guardrails import MetricsReadout
    from funnelsim.analysis.lifetime import TransactionReadout, VisitorReadout
    from funnelsim.analysis.readouts import ExtraReadouts
    from funnelsim.analysis.sequential import SequentialReadout
    from funnelsim.calibration.fit import Calibration, PredictiveCheck
    from funnelsim.results import AssumptionEffects, ExperimentResult
    from funnelsim.scenario.schema import Scenario
    from funnelsim.sensitivities import SensitivityResult

POSTERIOR_DRAWS = 20_000
SIMULATED = (
    "Simulated figures are the model's consequences of the scenario's assumptions, "
    "not measurements."
)
MEASURED = "Posteriors computed from the experiment's data with the stated prior and rule."
CALIBRATED = "Posteriors computed from the team's data with the scenario's specs as priors."
VALUE_METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor")
OUTCOMES = ("ship", "reject", "stop", "keep_testing")  # what a simulated test did with a variant


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: a file-friendly name, a caption, and its PNG bytes."""

    name: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class FigureJob:
    """A figure still to draw: a file-friendly name, a caption, and the :mod:`funnelsim.plots`
    function with its arguments (plain data, so a worker process can draw it)."""

    name: str
    caption: str
    draw: Callable[..., Figure]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Section:
    """A titled part of the report: an HTML body (already escaped), its figures, and the
    figures still to draw after them (:func:`draw_sections` draws them)."""

    title: str
    body: str = ""
    figures: tuple[ReportFigure, ...] = ()
    to_draw: tuple[FigureJob, ...] = ()


@dataclass(frozen=True)
class Report:
    """Everything the HTML page shows, independent of where the results came from."""

    title: str
    subtitle: str
    facts: Mapping[str, str]
    sections: tuple[Section, ...]
    footnote: str = SIMULATED
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    def __post_init__(self) -> None:
        if any(section.to_draw for section in self.sections):
            raise ValueError("a report's figures are drawn first (draw_sections)")

    @property
    def figures(self) -> list[ReportFigure]:
        """All figures in page order."""
        return [f for s in self.sections for f in s.figures]


# --------------------------------------------------------------------------- HTML helpers


def draw_sections(sections: Sequence[Section], workers: int = 1) -> tuple[Section, ...]:
    """``sections`` with their figures still to draw drawn, on up to ``workers`` local
    processes (no more than the cores) where that pays
    (:func:`funnelsim.parallel.map_measured`); the PNGs are the same however many drew them."""
    jobs = [job for section in sections for job in section.to_draw]
    processes = min(workers, os.cpu_count() or 1)
    pngs = iter(parallel.map_measured(_draw_pngs, jobs, processes))
    return tuple(
        replace(
            section,
            figures=(
                *section.figures,
                *(ReportFigure(job.name, job.caption, next(pngs)) for job in section.to_draw),
            ),
            to_draw=(),
        )
        for section in sections
    )


def _draw_pngs(jobs: list[FigureJob]) -> list[bytes]:
    return [png_bytes(job.draw(*job.args)) for job in jobs]


def _img(figure: ReportFigure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(figure.caption)}">'
        f"<figcaption>{esc(figure.caption)}</figcaption></figure>"
    )


# --------------------------------------------------------------------------- rendering

CSS = """
:root { --ink: #1d2430; --muted: #5b6575; --line: #e3e7ee; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 16px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.subtitle { color: var(--muted); margin: 0 0 12px; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
           gap: 6px 18px; margin: 0 0 16px; font-size: 13px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; font-weight: 600; }
nav { font-size: 13px; margin: 8px 0 0; } nav a { margin-right: 12px; color: var(--accent); }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; width: 100%; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 12px;
          padding-top: 4px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #f0f3f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
small { color: var(--muted); }
code { font-size: 12px; background: #f0f3f7; padding: 1px 4px; border-radius: 3px; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         font-weight: 600; white-space: nowrap; }
.badge.good { background: #dff3e0; color: #1b6e20; }
.badge.neutral { background: #fbf0d2; color: #7a5a00; }
.badge.pending { background: #dcebf8; color: #15508a; }
.badge.bad { background: #f8dede; color: #8a1c1c; }
.note { color: var(--muted); font-size: 13px; }
.warn { color: #9a3412; font-size: 13px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _anchor(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document."""
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in report.facts.items())
    nav = "".join(f'<a href="#{_anchor(s.title)}">{esc(s.title)}</a>' for s in report.sections)
    sections = "".join(
        f'<section id="{_anchor(s.title)}"><h2>{esc(s.title)}</h2>{s.body}'
        + "".join(_img(f) for f in s.figures)
        + "</section>"
        for s in report.sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(report.title)} — funnelsim report</title>"
        f"<style>{CSS}</style></head><body><main>"
        f'<header><h1>{esc(report.title)}</h1><p class="subtitle">{esc(report.subtitle)}</p>'
        f'<dl class="facts">{facts}</dl><nav>{nav}</nav></header>'
        f"{sections}"
        f"<footer>Made by funnelsim {esc(_version())} on {esc(report.created)}. "
        f"{esc(report.footnote)}</footer>"
        "</main></body></html>\n"
    )


def _version() -> str:
    try:
        return version("funnelsim")
    except PackageNotFoundError:
        return "(development)"


def write_report(report: Report, path: Path, png_dir: Path | None = None) -> list[Path]:
    """Write the HTML file atomically, and each figure as a PNG under ``png_dir``."""
    with atomic_writer(path) as stream:
        stream.write(render_html(report))
    written = [path]
    if png_dir is not None:
        for figure in report.figures:
            target = png_dir / f"{figure.name}.png"
            write_bytes_atomic(target, figure.png)
            written.append(target)
    return written


def figure_names(report: Report) -> tuple[str, ...]:
    """The PNG file names a report writes (to check for existing files before running)."""
    return tuple(f"{f.name}.png" for f in report.figures)


# --------------------------------------------------------------------------- scenario summary


def _scenario_tables(scenario: Scenario) -> list[Table]:
    """Channels, segments, stages with their friction, and resources of a scenario."""
    from funnelsim.scaffold import describe_friction, expected_funnel

    cur = scenario.currency
    expected = expected_funnel(scenario)
    tables = [
        Table(
            "Channels",
            (
                label("channel"),
                Column("share"),
                Column("cost per visit"),
                Column("intent (odds x)"),
            ),
            tuple(
                Row(
                    (
                        Cell(name),
                        Cell(fmt.percent(c.share, digits=0)),
                        Cell(fmt.money(c.cost_per_visit, cur)),
                        Cell(f"{c.intent:g}"),
                    )
                )
                for name, c in scenario.traffic.channels.items()
            ),
        ),
        Table(
            "Segments",
            (label("segment"), Column("share"), Column("page load"), Column("intent (odds x)")),
            tuple(
                Row(
                    (
                        Cell(name),
                        Cell(fmt.percent(g.share, digits=0)),
                        Cell(f"{g.page_load_s:g} s"),
                        Cell(f"{g.intent:g}"),
                    )
                )
                for name, g in scenario.segments.items()
            ),
        ),
        Table(
            "Stages",
            (
                label("stage"),
                Column("base rate"),
                text("friction"),
                Column("expected continue rate"),
                text("resource"),
            ),
            tuple(
                Row(
                    (
                        Cell(stage.name),
                        Cell(fmt.percent(scenario.base_rate(stage), digits=0)),
                        Cell(describe_friction(stage, scenario.coefficients)),
                        Cell(fmt.percent(row.continue_rate, digits=1)),
                        Cell(stage.resource or "—"),
                    )
                )
                for stage, row in zip(scenario.stages, expected.stages, strict=True)
            ),
            caption="Expected continue rate: averaged over segments and channels, after "
            "friction, before queues and response delays.",
        ),
    ]
    if scenario.resources:
        tables.append(
            Table(
                "Resources",
                (
                    label("resource"),
                    Column("capacity"),
                    Column("mean service"),
                    Column("expected utilisation"),
                ),
                tuple(
                    Row(
                        (
                            Cell(r.name),
                            Cell(str(r.capacity)),
                            Cell(f"{r.mean_service_min:g} min"),
                            Cell(fmt.percent(r.utilisation, digits=0)),
                        )
                    )
                    for r in expected.resources
                ),
            )
        )
    tables.append(
        Table(
            "Variants",
            (label("variant"), text("changes")),
            tuple(
                Row(
                    (
                        report.variant_label(name, scenario.control),
                        Cell("\n".join(f"{k}: {v}" for k, v in scenario.variants[name].items()))
                        if scenario.variants[name]
                        else EMPTY,
                    )
                )
                for name in scenario.variant_names
            ),
        )
    )
    return tables


def scenario_section(scenario: Scenario) -> Section:
    """Traffic, segments, stages with their friction, resources, value and variants."""
    traffic = scenario.traffic
    parts = [f"<p>{esc(scenario.description)}</p>" if scenario.description else ""]
    parts.append(
        f"<p><b>{traffic.visitors_per_day:,.0f}</b> visitors a day for "
        f"<b>{traffic.days}</b> days (~{traffic.visitors_per_day * traffic.days:,.0f} "
        "visitors per variant in the full-traffic simulation).</p>"
    )
    parts += [to_html(t, heading=True) for t in _scenario_tables(scenario)]
    return Section("Scenario", "".join(parts))


def value_assumptions_table(scenario: Scenario) -> Table:
    """The assumptions a customer's lifetime value rests on, and what variants change."""
    value, cur = scenario.value, scenario.currency
    retention, wall = value.retention, scenario.coefficients.login_wall
    assumptions = [
        ("value.order_value (mean)", fmt.money(value.order_value.mean_value, cur)),
        ("value.margin", fmt.percent(value.margin, digits=0)),
        ("value.retention.repeat_per_month", f"{retention.repeat_per_month:g}"),
        (
            "value.retention.churn_per_month",
            "sBG (heterogeneous)"
            if retention.churn == "sbg"
            else fmt.percent(retention.churn_per_month, digits=1),
        ),
        ("value.horizon_months", str(value.horizon_months)),
        ("value.discount_rate_annual", fmt.percent(value.discount_rate_annual, digits=0)),
        (
            "coefficients.login_wall.registered_repeat_multiplier",
            f"{wall.registered_repeat_multiplier:g}",
        ),
        (
            "coefficients.login_wall.registered_churn_multiplier",
            f"{wall.registered_churn_multiplier:g}",
        ),
    ]
    if value.referral.per_customer_per_month:
        assumptions.append(
            ("value.referral.per_customer_per_month", f"{value.referral.per_customer_per_month:g}")
        )
    if value.nurture is not None:
        assumptions.append(
            ("value.nurture.repeat_lift_per_message", f"{value.nurture.repeat_lift_per_message:g}")
        )
    changed = {
        name: ", ".join(f"{k}: {v}" for k, v in changes.items() if _drives_value(k))
        for name, changes in scenario.variants.items()
    }
    notes = tuple(Cell(f"{name} changes {what}.") for name, what in changed.items() if what)
    return Table(
        "Assumptions behind CLV",
        (text("scenario field"), Column("value")),
        tuple(Row((Cell(field), Cell(shown))) for field, shown in assumptions),
        caption="CLV per customer and per visitor are the model's consequences of these "
        "values: a different repeat rate, churn or margin moves every CLV figure.",
        notes=notes,
    )


def _drives_value(path: str) -> bool:
    return path.startswith("value.") or ".registered_" in path or path.endswith("login_wall")


# --------------------------------------------------------------------------- run results


def experiment_report(result: ExperimentResult, workers: int = 1) -> Report:
    """The report of ``funnelsim run``: expected effects and what a test would conclude;
    its figures drawn on up to ``workers`` processes (:func:`draw_sections`)."""
    scenario = result.scenario
    reps = len(result.replications)
    visitors = float(np.mean([r.test_visitors.sum() for r in result.replications]))
    facts = {
        "variants": ", ".join(scenario.variant_names),
        "replications": f"{reps:,}",
        "engine": result.engine,
        "seed": str(scenario.seed),
        "simulated test": f"{scenario.traffic.days} days, ~{visitors:,.0f} visitors",
        "decided on": report.metric_label(scenario.experiment.metric),
        "truly best (model)": result.true_best,
    }
    sections = (
        _headline_section(result),
        *_assumptions_section(result),
        scenario_section(scenario),
        _funnel_section(result),
        _uplift_section(result),
        _loss_section(result),
        _lifetime_section(result),
        *_service_sections(result),
        _diagnostics_section(result),
    )
    return Report(scenario.name, _subtitle(result), facts, draw_sections(sections, workers))


def _service_sections(result: ExperimentResult) -> tuple[Section, ...]:
    """Rep utilisation by hour of the week, per variant and resource (SimPy runs only)."""
    jobs = tuple(
        FigureJob(
            f"utilisation_{summary.name}_{resource}",
            f"{resource} under {summary.name}: share of the staffed time spent serving leads, "
            "per hour of the week (mean over replications; blank: nobody on duty).",
            plots.utilisation_heatmap,
            (figures["utilisation_by_hour_of_week"], f"{summary.name}: {resource}"),
        )
        for summary in result.variants
        for resource, figures in summary.service.items()
    )
    return (Section("Service desk", to_draw=jobs),) if jobs else ()


def _subtitle(result: ExperimentResult) -> str:
    outcomes = result.test_outcomes
    metric = report.metric_label(result.scenario.experiment.metric)
    return (
        f"If every variant met the same visitors, {result.true_best} would be best on "
        f"{metric}. A {result.scenario.traffic.days}-day A/B test would ship it in "
        f"{outcomes['ship_best']:.0%} of simulated tests, ship another variant in "
        f"{outcomes['ship_other']:.0%}, find no difference in {outcomes['stop']:.0%} and "
        f"still be testing in {outcomes['keep_testing']:.0%}."
    )


def best_by_metric(result: ExperimentResult, metrics: tuple[str, ...]) -> dict[str, str]:
    """The variant with the highest expected value of each metric."""
    return {
        metric: max(result.variants, key=lambda s: s.metrics[metric].mean).name
        for metric in metrics
    }


def _metric_paragraphs(result: ExperimentResult) -> str:
    """Which metric decides, the other beside it, a warning when they disagree."""
    metric = result.scenario.experiment.metric
    other = "clv_per_visitor" if metric == "conversion" else "conversion"
    best = best_by_metric(result, (metric, other))
    names = {m: report.metric_label(m) for m in (metric, other)}
    text_ = (
        f"<p>The test is judged on <b>{esc(names[metric])}</b> "
        f"(<code>experiment.metric</code>): {esc(best[metric])} is best on it. "
        f"On {esc(names[other])}, {esc(best[other])} is best.</p>"
    )
    if best[metric] != best[other]:
        text_ += (
            f'<p class="warn">The metrics disagree: judged on {esc(names[other])} the '
            f"decision would favour {esc(best[other])}, not {esc(best[metric])}. "
            f"Set <code>experiment.metric: {esc(other)}</code> if that is what counts; "
            "CLV rests on the assumptions listed under Lifetime value.</p>"
        )
    return text_


def _headline_section(result: ExperimentResult) -> Section:
    asked = report.question_table(result)
    body = "" if asked is None else to_html(asked, heading=True)
    body += _metric_paragraphs(result)
    body += to_html(report.effect_table(result), heading=True)
    body += to_html(report.test_table(result), heading=True)
    if result.value_of_information is not None:
        body += f"<p>{esc(result.value_of_information.describe())}</p>"
    return Section("Decision at a glance", body)


def _funnel_section(result: ExperimentResult) -> Section:
    stages = result.scenario.stage_names
    data = [plots.funnel_data(s, stages) for s in result.variants]
    scale = max(d.reached[0] for d in data) or None
    jobs = tuple(
        FigureJob(
            f"funnel_{d.variant}",
            f"Funnel of {d.variant}: mean visitors per replication reaching each stage, and "
            "the visitors lost at each stage by reason.",
            plots.funnel_figure,
            (d, scale),
        )
        for d in data
    )
    changes = [
        f"<li><b>{esc(s.name)}</b> changes <b>{esc(s.largest_stage_change[0])}</b> most: "
        f"its continue rate moves {fmt.percent(s.largest_stage_change[1], 1, signed=True)}.</li>"
        for s in result.variants
        if s.largest_stage_change
    ]
    body = f"<ul>{''.join(changes)}</ul>" if changes else ""
    return Section("Funnels", body, to_draw=jobs)


def _conversion_uplift_draws(result: ExperimentResult) -> dict[str, np.ndarray]:
    """Relative uplift draws from the Beta posteriors of the first simulated test."""
    from funnelsim.analysis.conjugate import beta_posteriors, relative_uplift_draws

    prior = result.scenario.experiment.prior
    first = result.replications[0]
    post = beta_posteriors(first.test_visitors, first.test_conversions, prior.alpha, prior.beta)
    draws = relative_uplift_draws(post, 0, POSTERIOR_DRAWS, result.scenario.seed)
    names = result.scenario.variant_names
    return {name: draws[:, i] for i, name in enumerate(names) if i > 0}


def _first_test_words(result: ExperimentResult) -> dict[str, str]:
    """What the first simulated test did about each variant, in words."""
    from funnelsim.analysis.decision import variant_outcomes

    first = result.replications[0]
    outcomes = variant_outcomes(first.decision, first.shipped, result.scenario.variant_names)
    return {
        name: fmt.outcome_words(outcome, name, name == result.control)
        for name, outcome in outcomes.items()
    }


def _uplift_section(result: ExperimentResult) -> Section:
    scenario = result.scenario
    first = result.replications[0]
    truth = {s.name: s.uplift["conversion"] for s in result.variants if s.uplift}
    jobs = (
        FigureJob(
            "uplift_conversion",
            "Posterior densities of the relative uplift in conversion "
            "(first simulated test), with the ROPE and what that test decided.",
            plots.uplift_figure,
            (
                "conversion",
                _conversion_uplift_draws(result),
                scenario.experiment.rope,
                _first_test_words(result),
                truth,
            ),
        ),
        FigureJob(
            "uplift_clv_per_visitor",
            "Posterior mean and 95% interval of the relative uplift "
            "in CLV per visitor (first simulated test), with the ROPE.",
            plots.uplift_interval_figure,
            ("CLV per visitor", _clv_uplift_intervals(result), scenario.experiment.rope, {}),
        ),
    )
    body = (
        f"<p>What one simulated {scenario.traffic.days}-day test (the first replication, "
        f"{int(first.test_visitors.sum()):,} visitors split "
        f"{len(result.variants)} ways) would believe about each variant's uplift. "
        "Conversion: Beta-Binomial posteriors. The grey band is the region of practical "
        f"equivalence (±{scenario.experiment.rope:.1%}); dashed lines mark the model's "
        "expected uplift, the truth the test is trying to find. CLV per visitor: the "
        "posterior combining conversion, order value, repeat purchases and churn; "
        "P(CLV/visitor beats control) over all simulated tests is in the A/B test table "
        "above.</p>"
        '<p class="note">Revenue per visitor: see the expected effect above.</p>'
    )
    return Section("Uplift posteriors", body, to_draw=jobs)


def _clv_uplift_intervals(result: ExperimentResult) -> dict[str, tuple[float, float, float]]:
    """The first simulated test's CLV-per-visitor uplift intervals."""
    readout = result.replications[0].economics.test_clv
    return {
        name: (
            float(readout.uplift_mean[i]),
            float(readout.uplift_low[i]),
            float(readout.uplift_high[i]),
        )
        for i, name in enumerate(result.scenario.variant_names)
        if i > 0
    }


def loss_table(result: ExperimentResult) -> Table:
    """Expected loss, P(best) and how often simulated tests decided each way."""
    rule = result.scenario.experiment
    metric = report.metric_label(rule.metric)
    threshold = rule.loss_threshold * result.variants[0].metrics[rule.metric].mean
    rows = tuple(
        Row(
            (
                report.variant_label(s.name, result.control),
                Cell(report.loss_text(result, s.expected_loss)),
                Cell(fmt.percent(s.prob_best, digits=1)),
                *(Cell(fmt.percent(s.decision_rates.get(k, 0.0), digits=0)) for k in OUTCOMES),
                report.outcome_cell(s.decision, s.name, result.control),
            )
        )
        for s in result.variants
    )
    return Table(
        "Expected loss",
        columns(
            label("variant"),
            "expected loss",
            "P(best)",
            "tests shipping it",
            "shipping another",
            "no difference",
            "still testing",
            text("decision"),
        ),
        rows,
        caption=(
            f"Expected loss: {metric} given up by shipping this variant if another is "
            f"better, mean over simulated tests. A variant ships when its loss is below "
            f"{rule.loss_threshold:.1%} of the control's {metric} "
            f"(~{report.loss_text(result, threshold)}); the test finds no difference when "
            f"every variant is within ±{rule.rope:.0%} of control with probability "
            f"{rule.equivalence_probability:.0%}."
        ),
    )


def _loss_section(result: ExperimentResult) -> Section:
    return Section("Expected loss", to_html(loss_table(result)))


def _lifetime_section(result: ExperimentResult) -> Section:
    """Lifetime value, payback, channels, leads, LTV:CAC and the assumptions behind them."""
    body = to_html(report.lifetime_table(result), heading=True)
    body += to_html(report.channel_table(result), heading=True)
    body += to_html(report.channel_value_table(result), heading=True)
    if any(s.leads is not None for s in result.variants):
        body += to_html(report.lead_table(result), heading=True)
    body += to_html(value_assumptions_table(result.scenario), heading=True)
    ratios = channel_ltv_cac(result)
    if not any(math.isfinite(r) for per_variant in ratios.values() for r in per_variant.values()):
        body += (
            '<p class="note">No channel has a cost per visit '
            "(<code>traffic.channels.NAME.cost_per_visit</code>), so acquisition "
            "cost and LTV:CAC are not defined.</p>"
        )
        return Section("Lifetime value", body)
    job = FigureJob(
        "ltv_cac",
        "LTV:CAC per channel and variant.",
        plots.ltv_cac_figure,
        (ratios, result.scenario.variant_names),
    )
    return Section("Lifetime value", body, to_draw=(job,))


def channel_ltv_cac(result: ExperimentResult) -> dict[str, dict[str, float]]:
    """``ratio[channel][variant]``: CLV per customer over acquisition cost per customer."""
    ratios: dict[str, dict[str, float]] = {}
    for summary in result.variants:
        for channel, economics in summary.channels.items():
            ratios.setdefault(channel, {})[summary.name] = economics.ltv_to_cac
    return ratios


def precision_table(result: ExperimentResult) -> Table:
    """Monte Carlo precision: each expected value with the half-width of its interval."""
    cur = result.scenario.currency
    shows = {
        "conversion": fmt.percent,
        "revenue_per_visitor": lambda v: fmt.money(v, cur),
        "clv_per_visitor": lambda v: fmt.money(v, cur),
    }
    rows = tuple(
        Row(
            (
                report.variant_label(s.name, result.control),
                *(
                    Cell(
                        f"{shows[m](s.metrics[m].mean)} ± "
                        f"{shows[m]((s.metrics[m].high - s.metrics[m].low) / 2)}"
                    )
                    for m in VALUE_METRICS
                ),
            )
        )
        for s in result.variants
    )
    return Table(
        "Monte Carlo precision",
        columns(label("variant"), "conversion", "revenue / visitor", "CLV / visitor"),
        rows,
        caption=f"Means over {len(result.replications)} replications with the half-width of "
        "their 95% interval (Monte Carlo precision of the expected effect).",
    )


def _diagnostics_section(result: ExperimentResult) -> Section:
    reps = result.replications
    body = to_html(precision_table(result))
    if result.scenario.resources:
        body += to_html(report.queue_table(result), heading=True)
    series = {
        name: np.array([r.conversion[i] for r in reps])
        for i, name in enumerate(result.scenario.variant_names)
    }
    job = FigureJob(
        "diagnostics_running_mean",
        "Running mean of conversion per variant over replications, 95% band.",
        plots.running_mean_figure,
        (series, "conversion"),
    )
    return Section("Diagnostics", body, to_draw=(job,))


# --------------------------------------------------------------------------- real experiments


def analysis_report(result: AnalysisResult) -> Report:
    """The report of ``funnelsim analyze``: the fitted model's readout (the same tables as
    the terminal), its stage table for the funnel model, the uplift of the metric decided
    on, and the sampler's diagnostics."""
    decision = result.decision
    facts = {
        "variants": ", ".join(v.name for v in result.variants),
        "control": result.control,
        "visitors": fmt.count(sum(v.visitors for v in result.variants)),
        "model": result.model,
        "decision": fmt.decision_words(decision.action, decision.variant, result.control),
        "data": result.source,
    }
    body = (
        f'<p class="warn">{esc(result.sample_ratio.message)}</p>'
        if result.sample_ratio.mismatch
        else ""
    )
    sections = [
        Section("Decision at a glance", body + to_html(report.analysis_table(result), heading=True))
    ]
    if any(v.stages for v in result.variants):
        sections.append(Section("Stage by stage", to_html(report.stage_table(result))))
    sections.append(_analysis_uplift(result))
    sections.append(Section("Sample ratio", to_html(report.sample_ratio_table(result))))
    if result.extras is not None:
        sections += _readout_sections(result.extras, result.conversion_name)
    sections.append(_mcmc_diagnostics(result.posterior))
    title = f"Experiment: {result.source}"
    return Report(title, decision.reason, facts, draw_sections(sections), MEASURED)


def _readout_sections(found: ExtraReadouts, rate_column: str) -> list[Section]:
    """A section per per-visitor readout that ran: its table (the terminal's, every row)
    and a figure."""
    sections = [_sequential_section(s, s.metric == rate_column) for s in found.sequential]
    if found.cuped is not None:
        sections.append(_cuped_section(found, rate_column))
    if found.metrics is not None:
        sections.append(_metrics_section(found.metrics))
    if found.ratios:
        sections.append(_ratio_section(found))
    if found.segments is not None:
        sections.append(_segment_section(found.segments))
    return sections


def _sequential_section(found: SequentialReadout, rate: bool) -> Section:
    """The look-by-look table of one metric and its confidence sequences over the looks."""
    looks = list(dict.fromkeys(row.look for row in found.looks))
    series = {
        variant: plots.SequenceSeries(
            *(
                np.array([getattr(r, key) for r in found.looks if r.variant == variant])
                for key in ("difference", "low", "high")
            )
        )
        for variant in dict.fromkeys(row.variant for row in found.looks)
    }
    arguments = (
        found.metric,
        looks,
        series,
        1 - found.alpha,
        found.stop_look,
        100.0 if rate else 1.0,  # scale: rates in percentage points
        "percentage points" if rate else "",
    )
    caption = (
        f"Difference from {found.control} in {found.metric} at each look with its "
        f"always-valid {fmt.level(1 - found.alpha)} confidence sequence (mixture SPRT); "
        "dashed: the first look where the test may stop."
    )
    return Section(
        f"Safe peeking: {found.metric}",
        to_html(readout_tables.sequential_table(found, True, rate)),
        to_draw=(
            FigureJob(
                f"sequential_{found.metric}", caption, plots.confidence_sequence_figure, arguments
            ),
        ),
    )


def _cuped_section(found: ExtraReadouts, rate_column: str) -> Section:
    cuped = found.cuped
    assert cuped is not None
    table = readout_tables.cuped_table(cuped, found.bayesian_cuped, cuped.metric == rate_column)
    series: dict[str, dict[str, tuple[float, float, float]]] = {
        "unadjusted": {e.variant: _bounds(e.unadjusted_uplift) for e in cuped.effects},
        "adjusted (CUPED)": {e.variant: _bounds(e.uplift) for e in cuped.effects},
    }
    if found.bayesian_cuped is not None:
        series["adjusted, posterior"] = {e.variant: e.uplift for e in found.bayesian_cuped.effects}
    arguments = (
        f"Uplift in {cuped.metric} with and without the covariates",
        f"relative uplift vs {cuped.control} ({fmt.level(cuped.level)} interval)",
        series,
    )
    caption = (
        f"Relative uplift in {cuped.metric} per variant, unadjusted and adjusted for "
        f"{', '.join(cuped.covariates)}: the adjusted interval is narrower by the variance "
        "the covariates explain."
    )
    job = FigureJob("cuped", caption, plots.interval_rows_figure, arguments)
    return Section("Variance reduction (CUPED)", to_html(table), to_draw=(job,))


def _bounds(value: Estimate) -> tuple[float, float, float]:
    return value.value, value.low, value.high


def _metrics_section(found: MetricsReadout) -> Section:
    series = {
        "change": {f"{e.metric} ({e.role}): {e.variant}": _bounds(e.uplift) for e in found.effects}
    }
    arguments = (
        "Relative change per metric",
        f"change vs {found.control} ({fmt.level(found.level)} confidence interval)",
        series,
    )
    caption = "Relative change of each metric per variant with its confidence interval."
    return Section(
        "Metrics and guardrails",
        to_html(readout_tables.metrics_table(found)),
        to_draw=(FigureJob("metrics", caption, plots.interval_rows_figure, arguments),),
    )


def _ratio_section(found: ExtraReadouts) -> Section:
    body = ""
    series: dict[str, dict[str, tuple[float, float, float]]] = {"delta method": {}, "posterior": {}}
    for ratio, posterior in zip(found.ratios, found.ratio_posteriors, strict=True):
        body += to_html(readout_tables.ratio_table(ratio, posterior), heading=True)
        name = f"{ratio.numerator}/{ratio.denominator}"
        for effect in ratio.effects:
            series["delta method"][f"{name}: {effect.variant}"] = _bounds(effect.uplift)
        for arm, uplift in zip(posterior.arms, posterior.uplifts, strict=True):
            if arm != ratio.control:
                series["posterior"][f"{name}: {arm}"] = uplift
    arguments = ("Relative uplift of each ratio", "uplift vs control (95% interval)", series)
    caption = "Relative uplift of each ratio metric: delta-method confidence interval and "
    caption += "posterior credible interval."
    job = FigureJob("ratios", caption, plots.interval_rows_figure, arguments)
    return Section("Ratio metrics", body, to_draw=(job,))


def _segment_section(found: Any) -> Section:
    def points(values: tuple[float, float, float]) -> tuple[float, float, float]:
        return values[0] * 100, values[1] * 100, values[2] * 100

    alone = {f"{e.segment}: {e.variant}": (e.raw_difference,) * 3 for e in found.effects}
    pooled = {f"{e.segment}: {e.variant}": tuple(e.difference) for e in found.effects}
    for variant, summary in found.across_segments.items():
        alone[f"all: {variant}"] = (found.aggregate[variant],) * 3
        pooled[f"all: {variant}"] = tuple(summary)
    series = {
        "alone": {k: points(v) for k, v in alone.items()},
        "partial pooling": {k: points(v) for k, v in pooled.items()},
    }
    arguments = (
        "Conversion difference per segment",
        f"difference vs {found.control} in percentage points "
        f"({fmt.level(found.level)} credible interval)",
        series,
        False,  # percent: the values are percentage points already
    )
    caption = (
        "Each segment's conversion difference read alone (dot) and with partial pooling "
        "(posterior mean and credible interval): pooling pulls small segments towards "
        "the common effect."
    )
    return Section(
        "Segments",
        to_html(readout_tables.segment_table(found)),
        to_draw=(FigureJob("segments", caption, plots.interval_rows_figure, arguments),),
    )


def calibration_report(result: Calibration) -> Report:
    """The report of ``funnelsim calibrate``: prior against posterior per assumption, the
    assumptions kept at their prior and why, the posterior predictive check of every
    data set, and the sampler's diagnostics."""
    checks = {"data": result.predictive, **result.experiment_checks}
    outside = sum(int(check.outside.sum()) for check in checks.values())
    facts = {
        "data": result.source,
        "calibrated": fmt.count(len(result.updates)),
        "kept at their prior": fmt.count(len(result.not_calibrated)),
        "counts outside their interval": fmt.count(outside),
        "fit": "reliable" if result.diagnostics.reliable else "UNRELIABLE",
    }
    sections = [Section("Prior and posterior", to_html(calibration_table(result), heading=True))]
    if result.not_calibrated:
        sections.append(Section("Kept at their prior", to_html(not_calibrated_table(result))))
    sections.append(
        Section(
            "Posterior predictive check",
            "".join(
                to_html(predictive_table(name, check), heading=True)
                for name, check in checks.items()
            ),
        )
    )
    sections.append(_mcmc_diagnostics(result.idata, [u.key for u in result.updates]))
    subtitle = f"Scenario {result.scenario!r} calibrated to {result.source}"
    title = f"Calibration: {result.scenario}"
    return Report(title, subtitle, facts, draw_sections(sections), CALIBRATED)


def calibration_table(result: Calibration) -> Table:
    """Per calibrated assumption: its prior, prior and posterior mean with their
    intervals, and how much the data narrowed it."""
    from funnelsim.calibration.fit import LEVEL

    show = fmt.assumption_value
    return Table(
        "Calibrated assumptions",
        (
            label("assumption"),
            text("prior"),
            Column("prior mean"),
            Column("posterior mean"),
            Column("narrowed"),
        ),
        tuple(
            Row(
                (
                    Cell(u.key),
                    Cell(u.prior),
                    Cell(show(u.prior_mean), fmt.bounds(*u.prior_interval, show)),
                    Cell(show(u.posterior_mean), fmt.bounds(*u.posterior_interval, show)),
                    Cell(fmt.percent(u.narrowed, digits=0)),
                )
            )
            for u in result.updates
        ),
        caption=f"Central {fmt.level(LEVEL)} prior and posterior intervals below each mean; "
        "narrowed = 1 - posterior sd / prior sd.",
    )


def not_calibrated_table(result: Calibration) -> Table:
    """The uncertain assumptions the data leave at their prior, and why."""
    return Table(
        "Assumptions kept at their prior",
        (label("assumption"), text("why")),
        tuple(Row((Cell(key), Cell(why))) for key, why in result.not_calibrated.items()),
    )


def predictive_table(name: str, check: PredictiveCheck) -> Table:
    """Observed against replicated counts per cell and column of one data set."""
    from funnelsim.calibration.fit import LEVEL

    return Table(
        f"Posterior predictive check: {name}",
        (
            label("cell"),
            label("count of"),
            Column("observed"),
            Column("replicated"),
            text("verdict"),
        ),
        tuple(
            Row(
                (
                    Cell(cell),
                    Cell(column),
                    Cell(fmt.count(check.observed[i, j])),
                    Cell(fmt.bounds(check.low[i, j], check.high[i, j], fmt.count)),
                    Cell("outside", tone="bad")
                    if check.outside[i, j]
                    else Cell("inside", tone="good"),
                )
            )
            for i, cell in enumerate(check.cells)
            for j, column in enumerate(check.columns)
        ),
        caption=f"Central {fmt.level(LEVEL)} posterior predictive interval of each count, "
        "replicated stage by stage from the top count.",
    )


def _analysis_uplift(result: AnalysisResult) -> Section:
    """The uplift of the metric the decision is on: posterior mean and interval per variant,
    with the ROPE, as the table above shows them."""
    metric = "revenue per visitor" if result.metric == "revenue_per_visitor" else "conversion"
    intervals = {v.name: tuple(v.uplift) for v in result.variants if v.name != result.control}
    beats = {v.name: v.prob_beats_control for v in result.variants if v.name != result.control}
    job = FigureJob(
        f"uplift_{result.metric}",
        f"Posterior mean and {fmt.level(report.analysis.UPLIFT_LEVEL)} interval of "
        f"the relative uplift in {metric}, with the ROPE and P(better than control).",
        plots.uplift_interval_figure,
        (metric, intervals, result.rule.rope, beats),
    )
    return Section(
        "Uplift posteriors",
        f"<p>{esc(result.model.capitalize())} model: posterior of each variant's relative "
        f"uplift in {esc(metric)} over {esc(result.control)}; the grey band is the region "
        f"of practical equivalence (±{result.rule.rope:.1%}).</p>",
        to_draw=(job,),
    )


def diagnostics_table(idata: InferenceData, var_names: list[str]) -> Table:
    """r_hat and ESS of each sampled variable, over its elements that vary."""
    from funnelsim.analysis.models import variable_diagnostics

    found = variable_diagnostics(idata, var_names)
    return Table(
        "Sampled quantities",
        (
            label("variable"),
            Column("elements"),
            Column("max r_hat"),
            Column("min bulk ESS"),
            Column("min tail ESS"),
            text("verdict"),
        ),
        tuple(
            Row(
                (
                    Cell(d.name),
                    Cell(str(d.elements)),
                    Cell(f"{d.r_hat_max:.3f}"),
                    Cell(fmt.count(d.ess_bulk_min)),
                    Cell(fmt.count(d.ess_tail_min)),
                    Cell("reliable", tone="good") if d.reliable else Cell("check", tone="bad"),
                )
            )
            for d in found
        ),
        caption="r_hat should be below 1.01 and bulk and tail ESS above 400 (Vehtari et al. "
        "2021); elements constant across draws have neither and are left out.",
    )


def _mcmc_diagnostics(idata: InferenceData | None, var_names: list[str] | None = None) -> Section:
    """Divergences, r_hat and ESS per sampled variable, and their traces; ``var_names``
    defaults to every variable that varies in all its elements."""
    if idata is None:
        return Section(
            "Diagnostics",
            '<p class="note">Exact conjugate posteriors: nothing was '
            "sampled for the decision, so there is no convergence to check.</p>",
        )
    from funnelsim.analysis.models import varying_variables

    names = var_names or varying_variables(idata)
    stats = idata["sample_stats"] if "sample_stats" in idata.groups() else {}
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    body = f"<p>Divergent transitions: <b>{divergences}</b>.</p>" + to_html(
        diagnostics_table(idata, names)
    )
    job = FigureJob(
        "diagnostics_trace",
        "MCMC trace per sampled variable: density (left) and draws per chain (right).",
        plots.trace_figure,
        (idata, names),
    )
    return Section("Diagnostics", body, to_draw=(job,))


# --------------------------------------------------------------------------- order logs

FROM_ORDERS = (
    "Posteriors of a BG/NBD model fitted to the order log (Fader, Hardie & Lee 2005); CLV "
    "counts the stated margin of the mean order value over the horizon, discounted at 10% "
    "a year."
)


def transactions_report(
    readout: TransactionReadout, idata: InferenceData, source: str = ""
) -> Report:
    """The report of an order log's readout (``analyze --transactions``): CLV per customer,
    per visitor when the visitors are known, repeat purchases over time, diagnostics."""
    facts = {
        "variants": ", ".join(readout.variants),
        "control": readout.variants[0],
        "customers": fmt.count(readout.customers.sum()),
        **(
            {"visitors": fmt.count(readout.per_visitor.visitors.sum())}
            if readout.per_visitor is not None
            else {}
        ),
        **({"data": source} if source else {}),
    }
    sections = [_customer_section(readout)]
    if readout.per_visitor is not None:
        sections.append(_visitor_section(readout, readout.per_visitor))
    sections.append(_mcmc_diagnostics(idata, ["r", "alpha", "a", "b"]))
    subtitle = (
        "Repeat purchase, churn and lifetime value per variant"
        + (" and per visitor" if readout.per_visitor is not None else "")
        + f" ({fmt.level(readout.level)} credible intervals)."
    )
    return Report(f"Order log: {source}", subtitle, facts, draw_sections(sections), FROM_ORDERS)


def _customer_section(readout: TransactionReadout) -> Section:
    body = to_html(report.transactions_table(readout))
    curves = {name: readout.repeat_by_month[i] for i, name in enumerate(readout.variants)}
    job = FigureJob(
        "repeat_purchases",
        "Expected repeat purchases of a new customer against months since the first order: "
        "posterior median and credible band per variant.",
        plots.repeat_purchases_figure,
        (curves,),
    )
    return Section("CLV per customer", body, to_draw=(job,))


def _visitor_section(readout: TransactionReadout, per_visitor: VisitorReadout) -> Section:
    body = to_html(report.visitor_clv_table(readout))
    clv = per_visitor.clv
    intervals = {
        name: (float(clv.uplift_mean[i]), float(clv.uplift_low[i]), float(clv.uplift_high[i]))
        for i, name in enumerate(readout.variants)
        if i > 0
    }
    beats = {name: float(clv.prob_beats_control[i]) for i, name in enumerate(readout.variants)}
    job = FigureJob(
        "uplift_clv_per_visitor",
        "Posterior mean and credible interval of the relative uplift in CLV per visitor.",
        plots.uplift_interval_figure,
        ("CLV per visitor", intervals, None, beats),
    )
    return Section("CLV per visitor", body, to_draw=(job,))


# --------------------------------------------------------------------------- assumptions


def assumptions_table(effects: AssumptionEffects) -> Table:
    """Each variant's conversion uplift over the worlds of the uncertain assumptions, its
    shares of worlds, and the assumptions its spread comes from."""
    return Table(
        "Uplift in conversion over what we do not know",
        (
            label("variant"),
            Column("uplift in conversion"),
            Column("P(beats control)"),
            Column("P(best)"),
            text("spread from"),
        ),
        tuple(
            Row(
                (
                    Cell(name),
                    report.uplift_cell((e.central, e.low, e.high)),
                    Cell(fmt.percent(e.prob_beats_control, digits=0)),
                    Cell(fmt.percent(e.prob_best, digits=0)),
                    Cell(", ".join(f"{key} {share:.0%}" for key, share in e.drivers.items()))
                    if e.drivers
                    else EMPTY,
                )
            )
            for name, by_metric in effects.effects.items()
            for e in (by_metric["conversion"],)
        ),
        caption=(
            f"Central uplift if the stated values hold, with its {effects.level:.0%} interval "
            f"over {effects.worlds} worlds of {effects.counted} below "
            "(Monte Carlo error included); P(beats control) and P(best) are shares of "
            "worlds; 'spread from' gives each leading assumption's first-order share of the "
            "spread (RBD-FAST)."
        ),
    )


def _assumptions_section(result: ExperimentResult) -> tuple[Section, ...]:
    """The uplifts over what we do not know (worlds of the uncertain assumptions)."""
    if result.assumptions is None:
        return ()
    return (Section("Over what we do not know", to_html(assumptions_table(result.assumptions))),)


def sensitivity_report(result: SensitivityResult, scenario: Scenario) -> Report:
    """The report of ``funnelsim sensitivity``: Sobol indices, ranked, and what flips the
    decision."""
    names = result.indices.ranked()
    body = to_html(report.sensitivity_table(result))
    job = FigureJob(
        "sensitivity",
        "Sobol indices, largest total first",
        plots.sensitivity_figure,
        (
            names,
            [result.indices.of(n)[0] for n in names],
            [result.indices.of(n)[1] for n in names],
            result.quantity,
        ),
    )
    section = Section("What the decision hangs on", body, to_draw=(job,))
    facts = {
        "quantity": result.quantity,
        "assumptions": str(len(result.assumptions)),
        "base samples": f"{result.base_samples:,}",
        "seed": str(scenario.seed),
    }
    subtitle = f"Global sensitivity of the {result.quantity} to the uncertain assumptions."
    sections = draw_sections((section, scenario_section(scenario)))
    return Report(scenario.name, subtitle, facts, sections)
