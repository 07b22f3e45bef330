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
it out. :func:`experiment_report` adapts ``funnelsim run`` results.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from funnelsim import plots
from funnelsim.files import atomic_writer, png_bytes, write_bytes_atomic
from funnelsim.report import (
    CUSTOMER_COLUMNS,
    DECISION_LABEL,
    METRIC_LABEL,
    VISITOR_COLUMNS,
    customer_rows,
    loss_text,
    money,
    percent,
    visitor_rows,
)

if TYPE_CHECKING:
    from arviz import InferenceData
    from matplotlib.figure import Figure

    from funnelsim.analysis.decision import ABReadout
    from funnelsim.analysis.lifetime import TransactionReadout, VisitorReadout
    from funnelsim.results import ExperimentResult, VariantSummary
    from funnelsim.scenario.schema import Scenario
    from funnelsim.sensitivities import SensitivityResult

POSTERIOR_DRAWS = 20_000
SIMULATED = (
    "Simulated figures are the model's consequences of the scenario's assumptions, "
    "not measurements."
)
MEASURED = "Posteriors computed from the experiment's data with the stated prior and rule."
VALUE_METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor")
OUTCOMES = ("ship", "reject", "stop", "keep_testing")  # what a simulated test did with a variant


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: a file-friendly name, a caption, and its PNG bytes."""

    name: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class Section:
    """A titled part of the report: an HTML body (already escaped) and its figures."""

    title: str
    body: str = ""
    figures: tuple[ReportFigure, ...] = ()


@dataclass(frozen=True)
class Report:
    """Everything the HTML page shows, independent of where the results came from."""

    title: str
    subtitle: str
    facts: Mapping[str, str]
    sections: tuple[Section, ...]
    footnote: str = SIMULATED
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def figures(self) -> list[ReportFigure]:
        """All figures in page order."""
        return [f for s in self.sections for f in s.figures]


# --------------------------------------------------------------------------- HTML helpers


def esc(value: object) -> str:
    """HTML-escape any value's text (scenario names and descriptions are user input)."""
    return html.escape(str(value), quote=True)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    caption: str = "",
    text_columns: Collection[int] = (0,),
) -> str:
    """An HTML table; cells are taken as HTML (escape user text before). Columns are
    right-aligned numbers except those in ``text_columns``."""
    head = "".join(f"<th{_align(i, text_columns)}>{esc(c)}</th>" for i, c in enumerate(columns))
    body = "".join(
        "<tr>"
        + "".join(f"<td{_align(i, text_columns)}>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _align(index: int, text_columns: Collection[int]) -> str:
    return "" if index in text_columns else ' class="num"'


def decision_badge(decision: str, share: float | None = None) -> str:
    """A coloured label for ship / stop / keep testing (with the share of tests deciding so)."""
    text = DECISION_LABEL.get(decision, decision.replace("_", " "))
    suffix = f" ({share:.0%})" if share is not None else ""
    return f'<span class="badge {esc(decision)}">{esc(text)}{suffix}</span>'


def _figure(name: str, caption: str, figure: Figure) -> ReportFigure:
    return ReportFigure(name, caption, png_bytes(figure))


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
.badge.ship { background: #dff3e0; color: #1b6e20; }
.badge.stop { background: #fbf0d2; color: #7a5a00; }
.badge.keep_testing { background: #dcebf8; color: #15508a; }
.badge.reject { background: #f8dede; color: #8a1c1c; }
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


def scenario_section(scenario: Scenario) -> Section:
    """Traffic, segments, stages with their friction, resources, value and variants."""
    from funnelsim.scaffold import describe_friction, expected_funnel

    traffic = scenario.traffic
    cur = scenario.currency
    parts = [f"<p>{esc(scenario.description)}</p>" if scenario.description else ""]
    parts.append(
        f"<p><b>{traffic.visitors_per_day:,.0f}</b> visitors a day for "
        f"<b>{traffic.days}</b> days (~{traffic.visitors_per_day * traffic.days:,.0f} "
        "visitors per variant in the full-traffic simulation).</p>"
    )
    parts.append(
        "<h3>Channels and segments</h3>"
        + table(
            ("channel", "share", "cost per visit", "intent (odds x)"),
            (
                (
                    esc(name),
                    percent(c.share, digits=0),
                    money(c.cost_per_visit, cur),
                    f"{c.intent:g}",
                )
                for name, c in traffic.channels.items()
            ),
        )
    )
    parts.append(
        table(
            ("segment", "share", "page load", "intent (odds x)"),
            (
                (esc(name), percent(g.share, digits=0), f"{g.page_load_s:g} s", f"{g.intent:g}")
                for name, g in scenario.segments.items()
            ),
        )
    )
    expected = expected_funnel(scenario)
    parts.append(
        "<h3>Stages</h3>"
        + table(
            ("stage", "base rate", "friction", "expected continue rate", "resource"),
            (
                (
                    esc(stage.name),
                    percent(scenario.base_rate(stage), digits=0),
                    esc(describe_friction(stage, scenario.coefficients)),
                    percent(row.continue_rate, digits=1),
                    esc(stage.resource or "—"),
                )
                for stage, row in zip(scenario.stages, expected.stages, strict=True)
            ),
            caption="Expected continue rate: averaged over segments and channels, after friction, "
            "before queues and response delays.",
            text_columns=(0, 2, 4),
        )
    )
    if scenario.resources:
        parts.append(
            table(
                ("resource", "capacity", "mean service", "expected utilisation"),
                (
                    (
                        esc(r.name),
                        str(r.capacity),
                        f"{r.mean_service_min:g} min",
                        percent(r.utilisation, digits=0),
                    )
                    for r in expected.resources
                ),
            )
        )
    value = scenario.value
    parts.append(
        f"<h3>Value</h3><p>Mean order {money(value.order_value.mean_value, cur)}, margin "
        f"{percent(value.margin, digits=0)}, {value.retention.repeat_per_month:g} repeat orders "
        f"per active month, churn {percent(value.retention.churn_per_month, digits=0)} a month, "
        f"horizon {value.horizon_months} months, discount "
        f"{percent(value.discount_rate_annual, digits=0)} a year.</p>"
    )
    parts.append(
        "<h3>Variants</h3>"
        + table(
            ("variant", "changes"),
            (
                (
                    esc(name) + (" (control)" if name == scenario.control else ""),
                    "<br>".join(f"<code>{esc(k)}: {esc(v)}</code>" for k, v in changes.items())
                    or "—",
                )
                for name, changes in ((n, scenario.variants[n]) for n in scenario.variant_names)
            ),
            text_columns=(0, 1),
        )
    )
    return Section("Scenario", "".join(parts))


# --------------------------------------------------------------------------- run results


def experiment_report(result: ExperimentResult) -> Report:
    """The report of ``funnelsim run``: expected effects and what a test would conclude."""
    scenario = result.scenario
    reps = len(result.replications)
    visitors = float(np.mean([r.test_visitors.sum() for r in result.replications]))
    facts = {
        "variants": ", ".join(scenario.variant_names),
        "replications": f"{reps:,}",
        "engine": result.engine,
        "seed": str(scenario.seed),
        "simulated test": f"{scenario.traffic.days} days, ~{visitors:,.0f} visitors",
        "truly best (model)": result.true_best,
    }
    sections = (
        _headline_section(result),
        *_assumptions_section(result),
        scenario_section(scenario),
        _funnel_section(result),
        _uplift_section(result),
        _loss_section(result),
        *_economics_sections(result),
        *_service_sections(result),
        _diagnostics_section(result),
    )
    return Report(scenario.name, _subtitle(result), facts, sections)


def _service_sections(result: ExperimentResult) -> tuple[Section, ...]:
    """Rep utilisation by hour of the week, per variant and resource (SimPy runs only)."""
    figures = tuple(
        _figure(
            f"utilisation_{summary.name}_{resource}",
            f"{resource} under {summary.name}: share of the staffed time spent serving leads, "
            "per hour of the week (mean over replications; blank: nobody on duty).",
            plots.utilisation_heatmap(
                figures["utilisation_by_hour_of_week"], f"{summary.name}: {resource}"
            ),
        )
        for summary in result.variants
        for resource, figures in summary.service.items()
    )
    return (Section("Service desk", "", figures),) if figures else ()


def _subtitle(result: ExperimentResult) -> str:
    outcomes = result.test_outcomes
    return (
        f"If every variant met the same visitors, {result.true_best} would convert best. "
        f"A {result.scenario.traffic.days}-day A/B test would ship it in "
        f"{outcomes['ship_best']:.0%} of simulated tests, ship another variant in "
        f"{outcomes['ship_other']:.0%}, stop for equivalence in {outcomes['stop']:.0%} and "
        f"still be testing in {outcomes['keep_testing']:.0%}."
    )


def _with_uplift(value: str, summary: VariantSummary, metric: str) -> str:
    """A metric's value with the variant's uplift over control (and its interval) below."""
    if summary.uplift is None:
        return value
    interval = summary.uplift[metric]
    if not all(map(math.isfinite, interval)):
        return value
    return (
        f"{value}<br><small>{percent(interval.mean, True, 1)} "
        f"[{percent(interval.low, True, 1)}, {percent(interval.high, True, 1)}]</small>"
    )


def _headline_section(result: ExperimentResult) -> Section:
    cur = result.scenario.currency
    rows = []
    for s in result.variants:
        control = s.name == result.control
        rows.append(
            (
                esc(s.name) + (" <small>(control)</small>" if control else ""),
                _with_uplift(percent(s.metrics["conversion"].mean), s, "conversion"),
                _with_uplift(
                    money(s.metrics["revenue_per_visitor"].mean, cur), s, "revenue_per_visitor"
                ),
                _with_uplift(money(s.metrics["clv_per_visitor"].mean, cur), s, "clv_per_visitor"),
                "—" if control else percent(s.prob_beats_control, digits=1),
                decision_badge(s.decision, s.decision_rates[s.decision]),
            )
        )
    body = table(
        (
            "variant",
            "conversion",
            "revenue / visitor",
            "CLV / visitor",
            "P(beats control)",
            "test decision",
        ),
        rows,
        caption=(
            f"Expected effect: mean over {len(result.replications)} replications in which "
            "every variant met the same visitors; below each value, the uplift vs control "
            "with its 95% interval. P(beats control) and the decision are those of the "
            "simulated A/B test (mean probability; most frequent decision, with its share "
            "of tests)."
        ),
    )
    return Section("Decision at a glance", body)


def _funnel_section(result: ExperimentResult) -> Section:
    stages = result.scenario.stage_names
    data = [plots.funnel_data(s, stages) for s in result.variants]
    scale = max(d.reached[0] for d in data) or None
    figures = tuple(
        _figure(
            f"funnel_{d.variant}",
            f"Funnel of {d.variant}: mean visitors per replication reaching each stage, and "
            "the visitors lost at each stage by reason.",
            plots.funnel_figure(d, scale),
        )
        for d in data
    )
    changes = [
        f"<li><b>{esc(s.name)}</b> changes <b>{esc(s.largest_stage_change[0])}</b> most: "
        f"its continue rate moves {percent(s.largest_stage_change[1], True, 1)}.</li>"
        for s in result.variants
        if s.largest_stage_change
    ]
    body = f"<ul>{''.join(changes)}</ul>" if changes else ""
    return Section("Funnels", body, figures)


def _conversion_uplift_draws(result: ExperimentResult) -> dict[str, np.ndarray]:
    """Relative uplift draws from the Beta posteriors of the first simulated test."""
    from funnelsim.analysis.conjugate import beta_posteriors

    prior = result.scenario.experiment.prior
    first = result.replications[0]
    post = beta_posteriors(first.test_visitors, first.test_conversions, prior.alpha, prior.beta)
    rng = np.random.default_rng(result.scenario.seed)
    rates = rng.beta(post.alpha, post.beta, size=(POSTERIOR_DRAWS, post.alpha.size))
    names = result.scenario.variant_names
    return {name: rates[:, i] / rates[:, 0] - 1.0 for i, name in enumerate(names) if i > 0}


def _first_test_decisions(result: ExperimentResult) -> dict[str, str]:
    first = result.replications[0]
    if first.decision != "ship":
        return {s.name: first.decision for s in result.variants}
    return {s.name: "ship" if first.shipped == s.name else "reject" for s in result.variants}


def _uplift_section(result: ExperimentResult) -> Section:
    scenario = result.scenario
    first = result.replications[0]
    truth = {s.name: s.uplift["conversion"] for s in result.variants if s.uplift}
    figures = [
        _figure(
            "uplift_conversion",
            "Posterior densities of the relative uplift in conversion "
            "(first simulated test), with the ROPE and the decision.",
            plots.uplift_figure(
                "conversion",
                _conversion_uplift_draws(result),
                scenario.experiment.rope,
                _first_test_decisions(result),
                truth,
            ),
        )
    ]
    clv_intervals, clv_beats = _clv_uplift_intervals(result)
    figures.append(
        _figure(
            "uplift_clv_per_visitor",
            "Posterior mean and 95% interval of the relative uplift "
            "in CLV per visitor (first simulated test), with the ROPE.",
            plots.uplift_interval_figure(
                "CLV per visitor", clv_intervals, scenario.experiment.rope, clv_beats
            ),
        )
    )
    body = (
        f"<p>What one simulated {scenario.traffic.days}-day test (the first replication, "
        f"{int(first.test_visitors.sum()):,} visitors split "
        f"{len(result.variants)} ways) would believe about each variant's uplift. "
        "Conversion: Beta-Binomial posteriors. The grey band is the region of practical "
        f"equivalence (±{scenario.experiment.rope:.1%}); dashed lines mark the model's "
        "expected uplift, the truth the test is trying to find. CLV per visitor: the "
        "posterior combining conversion, order value, repeat purchases and churn.</p>"
        '<p class="note">Revenue per visitor: see the expected effect above.</p>'
    )
    return Section("Uplift posteriors", body, tuple(figures))


UpliftIntervals = dict[str, tuple[float, float, float]]


def _clv_uplift_intervals(result: ExperimentResult) -> tuple[UpliftIntervals, dict[str, float]]:
    """The first simulated test's CLV-per-visitor uplift intervals and P(beats control)."""
    readout = result.replications[0].economics.test_clv
    names = result.scenario.variant_names
    intervals = {
        name: (
            float(readout.uplift_mean[i]),
            float(readout.uplift_low[i]),
            float(readout.uplift_high[i]),
        )
        for i, name in enumerate(names)
        if i > 0
    }
    beats = {name: float(readout.prob_beats_control[i]) for i, name in enumerate(names) if i > 0}
    return intervals, beats


def _loss_section(result: ExperimentResult) -> Section:
    rule = result.scenario.experiment
    label = METRIC_LABEL[rule.metric]
    threshold = rule.loss_threshold * result.variants[0].metrics[rule.metric].mean
    rows = [
        (
            esc(s.name),
            loss_text(result, s.expected_loss),
            percent(s.prob_best, digits=1),
            *(percent(s.decision_rates.get(kind, 0.0), digits=0) for kind in OUTCOMES),
            decision_badge(s.decision),
        )
        for s in result.variants
    ]
    body = table(
        (
            "variant",
            "expected loss",
            "P(best)",
            "tests shipping it",
            "shipping another",
            "stopping",
            "still testing",
            "decision",
        ),
        rows,
        caption=(
            f"Expected loss: {label} given up by shipping this variant if another is "
            f"better, mean over simulated tests. A variant ships when its loss is below "
            f"{rule.loss_threshold:.1%} of the control's {label} "
            f"(~{loss_text(result, threshold)}); "
            f"the test stops when every variant is within ±{rule.rope:.0%} of control with "
            f"probability {rule.equivalence_probability:.0%}."
        ),
    )
    return Section("Expected loss", body)


def _economics_sections(result: ExperimentResult) -> tuple[Section, ...]:
    """LTV:CAC per channel (none when the scenario has no channel economics)."""
    ratios = channel_ltv_cac(result)
    if not any(math.isfinite(r) for per_variant in ratios.values() for r in per_variant.values()):
        return (
            Section(
                "LTV:CAC per channel",
                '<p class="note">No channel has a cost per visit '
                "(<code>traffic.channels.NAME.cost_per_visit</code>), so acquisition "
                "cost and LTV:CAC are not defined.</p>",
            ),
        )
    figure = plots.ltv_cac_figure(ratios, result.scenario.variant_names)
    rows = [
        (
            esc(channel),
            *(_ratio(ratios[channel].get(v, math.nan)) for v in result.scenario.variant_names),
        )
        for channel in ratios
    ]
    body = table(
        ("channel", *result.scenario.variant_names),
        rows,
        caption="CLV per customer / acquisition cost per customer; ≥ 3 is the usual "
        "target, < 1 loses money on every customer.",
    )
    return (
        Section(
            "LTV:CAC per channel",
            body,
            (_figure("ltv_cac", "LTV:CAC per channel and variant.", figure),),
        ),
    )


def _ratio(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "no spend"


def channel_ltv_cac(result: ExperimentResult) -> dict[str, dict[str, float]]:
    """``ratio[channel][variant]``: CLV per customer over acquisition cost per customer."""
    ratios: dict[str, dict[str, float]] = {}
    for summary in result.variants:
        for channel, economics in summary.channels.items():
            ratios.setdefault(channel, {})[summary.name] = economics.ltv_to_cac
    return ratios


def _diagnostics_section(result: ExperimentResult) -> Section:
    reps = result.replications
    cur = result.scenario.currency
    rows = []
    for s in result.variants:
        cells = [esc(s.name)]
        for metric in VALUE_METRICS:
            interval = s.metrics[metric]
            half = (interval.high - interval.low) / 2
            fmt = percent if metric == "conversion" else (lambda v, c=cur: money(v, c))
            cells.append(f"{fmt(interval.mean)} ± {fmt(half)}")
        rows.append(cells)
    body = table(
        ("variant", "conversion", "revenue / visitor", "CLV / visitor"),
        rows,
        caption=f"Means over {len(reps)} replications with the half-width of their "
        "95% interval (Monte Carlo precision of the expected effect).",
    )
    body += _queue_table(result)
    series = {
        name: np.array([r.conversion[i] for r in reps])
        for i, name in enumerate(result.scenario.variant_names)
    }
    figures = (
        _figure(
            "diagnostics_running_mean",
            "Running mean of conversion per variant over replications, 95% band.",
            plots.running_mean_figure(series, "conversion"),
        ),
    )
    return Section("Diagnostics", body, figures)


def _queue_table(result: ExperimentResult) -> str:
    rows = [
        (
            esc(s.name),
            esc(resource),
            percent(stats["utilisation"], digits=0),
            f"{stats['mean_wait_min']:,.1f} min",
            percent(stats["abandonment"], digits=1),
        )
        for s in result.variants
        for resource, stats in s.queues.items()
    ]
    if not rows:
        return ""
    return table(
        ("variant", "resource", "utilisation", "mean wait of those served", "gave up waiting"),
        rows,
        text_columns=(0, 1),
        caption="Shared resources, means over replications.",
    )


# --------------------------------------------------------------------------- real experiments


def readout_report(
    readout: ABReadout,
    title: str,
    rope: float,
    prior: tuple[float, float] = (1.0, 1.0),
    idata: InferenceData | None = None,
    var_names: Sequence[str] = (),
    source: str = "",
) -> Report:
    """The report of a real experiment's Bayesian readout (from counts in a notebook or CLI).

    ``readout`` comes from :func:`funnelsim.analysis.decision.readout`; ``rope`` and
    ``prior`` are the ones it used. With ``idata`` (an MCMC posterior) the diagnostics
    show its trace of ``var_names`` and r_hat / ESS per variable.
    """
    names = [v.name for v in readout.variants]
    facts = {
        "variants": ", ".join(names),
        "control": readout.control,
        "visitors": f"{sum(v.visitors for v in readout.variants):,.0f}",
        "decision": DECISION_LABEL.get(readout.decision.action, readout.decision.action),
        **({"data": source} if source else {}),
    }
    sections = (
        _readout_headline(readout),
        _readout_uplift(readout, rope, prior),
        _readout_loss(readout),
        _mcmc_diagnostics(idata, var_names),
    )
    return Report(title, readout.decision.reason, facts, sections, MEASURED)


def _readout_headline(readout: ABReadout) -> Section:
    decision = readout.decision
    shipped = f" {esc(decision.variant)}" if decision.variant else ""
    body = f"<p>{decision_badge(decision.action)}{shipped}: {esc(decision.reason)}</p>" + (
        f'<p class="warn">{esc(readout.srm.message)}</p>' if readout.srm.mismatch else ""
    )
    rows = [
        (
            esc(v.name) + (" <small>(control)</small>" if v.name == readout.control else ""),
            f"{v.visitors:,.0f}",
            f"{v.conversions:,.0f}",
            f"{percent(v.conversion_mean)}<br><small>[{percent(v.conversion_low)}, "
            f"{percent(v.conversion_high)}]</small>",
            "—"
            if v.name == readout.control
            else f"{percent(v.uplift_mean, True, 1)}<br><small>[{percent(v.uplift_low, True, 1)}, "
            f"{percent(v.uplift_high, True, 1)}]</small>",
            "—" if v.name == readout.control else percent(v.prob_beats_control, digits=1),
        )
        for v in readout.variants
    ]
    body += table(
        ("variant", "visitors", "conversions", "conversion", "uplift", "P(beats control)"),
        rows,
        caption="Posterior mean with its 94% credible interval; relative uplift over "
        "the control with its 95% interval.",
    )
    return Section("Decision at a glance", body)


def _readout_uplift(readout: ABReadout, rope: float, prior: tuple[float, float]) -> Section:
    from funnelsim.analysis.conjugate import beta_posteriors

    visitors = [v.visitors for v in readout.variants]
    conversions = [v.conversions for v in readout.variants]
    post = beta_posteriors(visitors, conversions, *prior)
    rates = np.random.default_rng(0).beta(
        post.alpha, post.beta, size=(POSTERIOR_DRAWS, post.alpha.size)
    )
    control = [v.name for v in readout.variants].index(readout.control)
    draws = {
        v.name: rates[:, i] / rates[:, control] - 1.0
        for i, v in enumerate(readout.variants)
        if i != control
    }
    decision = readout.decision
    decisions = {
        name: (
            "ship"
            if decision.variant == name
            else "reject"
            if decision.action == "ship"
            else decision.action
        )
        for name in draws
    }
    figure = plots.uplift_figure("conversion", draws, rope, decisions)
    return Section(
        "Uplift posteriors",
        "<p>Beta-Binomial posterior of each variant's relative "
        f"uplift in conversion over {esc(readout.control)}; the grey band is the "
        f"region of practical equivalence (±{rope:.1%}).</p>",
        (
            _figure(
                "uplift_conversion",
                "Posterior densities of the relative uplift "
                "in conversion, with the ROPE and the decision.",
                figure,
            ),
        ),
    )


def _readout_loss(readout: ABReadout) -> Section:
    rows = [
        (
            esc(v.name),
            f"{v.expected_loss * 100:.3f} pts",
            percent(v.prob_best, digits=1),
            percent(v.prob_in_rope, digits=1),
        )
        for v in readout.variants
    ]
    return Section(
        "Expected loss",
        table(
            ("variant", "expected loss", "P(best)", "P(in ROPE)"),
            rows,
            caption="Expected loss: conversion points given up by shipping this variant if "
            "another is better. P(in ROPE): probability that the uplift over control is "
            "practically zero.",
        ),
    )


def _mcmc_diagnostics(idata: InferenceData | None, var_names: Sequence[str]) -> Section:
    if idata is None:
        return Section(
            "Diagnostics",
            '<p class="note">Exact conjugate posteriors: nothing was '
            "sampled, so there is no convergence to check.</p>",
        )
    import arviz as az

    names = list(var_names) or [str(name) for name in idata["posterior"].data_vars]
    summary = az.summary(idata, var_names=names, kind="diagnostics")
    stats = idata["sample_stats"] if "sample_stats" in idata.groups() else {}
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    rows = [
        (esc(label), f"{row['r_hat']:.3f}", f"{row['ess_bulk']:,.0f}", f"{row['ess_tail']:,.0f}")
        for label, row in summary.iterrows()
    ]
    body = (
        f"<p>Divergent transitions: <b>{divergences}</b>. r_hat should be below 1.01 and "
        "bulk and tail ESS above 400 (Vehtari et al. 2021).</p>"
        + table(("variable", "r_hat", "bulk ESS", "tail ESS"), rows)
    )
    return Section(
        "Diagnostics",
        body,
        (
            _figure(
                "diagnostics_trace",
                "MCMC trace per variable and chain.",
                plots.trace_figure(idata, names),
            ),
        ),
    )


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
        "customers": f"{int(readout.customers.sum()):,}",
        **(
            {"visitors": f"{int(readout.per_visitor.visitors.sum()):,}"}
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
        + f" ({readout.level:.0%} credible intervals)."
    )
    return Report(f"Order log: {source}", subtitle, facts, tuple(sections), FROM_ORDERS)


def _interval_cell(mean: float, low: float, high: float, show: Callable[[float], str]) -> str:
    return f"{show(mean)}<br><small>[{show(low)}, {show(high)}]</small>"


def _variant_label(name: str, control: bool) -> str:
    return esc(name) + (" <small>(control)</small>" if control else "")


def _customer_section(readout: TransactionReadout) -> Section:
    body = table(
        CUSTOMER_COLUMNS,
        customer_rows(readout, _interval_cell, _variant_label),
        caption="Repeat purchases of a new customer over the horizon and CLV per customer: "
        "posterior mean with its credible interval. Still active: share of the variant's "
        "customers who have not dropped out by the end of the log.",
    )
    curves = {name: readout.repeat_by_month[i] for i, name in enumerate(readout.variants)}
    figure = _figure(
        "repeat_purchases",
        "Expected repeat purchases of a new customer against months since the first order: "
        "posterior median and credible band per variant.",
        plots.repeat_purchases_figure(curves),
    )
    return Section("CLV per customer", body, (figure,))


def _visitor_section(readout: TransactionReadout, per_visitor: VisitorReadout) -> Section:
    def uplift(mean: float, low: float, high: float) -> str:
        return _interval_cell(mean, low, high, lambda v: percent(v, signed=True, digits=1))

    body = table(
        VISITOR_COLUMNS,
        visitor_rows(readout, _interval_cell, uplift, _variant_label),
        caption="CLV per visitor: each posterior draw of CLV per customer times a draw of the "
        "conversion posterior, so the interval carries both. Uplift: relative to the control.",
    )
    clv = per_visitor.clv
    intervals = {
        name: (float(clv.uplift_mean[i]), float(clv.uplift_low[i]), float(clv.uplift_high[i]))
        for i, name in enumerate(readout.variants)
        if i > 0
    }
    beats = {name: float(clv.prob_beats_control[i]) for i, name in enumerate(readout.variants)}
    figure = _figure(
        "uplift_clv_per_visitor",
        "Posterior mean and credible interval of the relative uplift in CLV per visitor.",
        plots.uplift_interval_figure("CLV per visitor", intervals, None, beats),
    )
    return Section("CLV per visitor", body, (figure,))


# --------------------------------------------------------------------------- assumptions


def _assumptions_section(result: ExperimentResult) -> tuple[Section, ...]:
    """The uplifts over what we do not know (worlds of the uncertain assumptions)."""
    effects = result.assumptions
    if effects is None:
        return ()
    rows = [
        (
            esc(name),
            _interval_cell(e.central, e.low, e.high, lambda v: f"{v:+.1%}"),
            percent(e.prob_beats_control, digits=0),
            percent(e.prob_best, digits=0),
            esc(", ".join(f"{key} {share:.0%}" for key, share in e.drivers.items()) or "—"),
        )
        for name, by_metric in effects.effects.items()
        for e in (by_metric["conversion"],)
    ]
    body = table(
        ("variant", "uplift in conversion", "P(beats control)", "P(best)", "spread from"),
        rows,
        caption=(
            f"Central uplift if the stated values hold, with its {effects.level:.0%} interval "
            f"over {effects.worlds} worlds of {effects.counted} "
            "(Monte Carlo error included); P(beats control) and P(best) are shares of "
            "worlds; 'spread from' gives each leading assumption's first-order share of the "
            "spread (RBD-FAST)."
        ),
        text_columns=(0, 4),
    )
    return (Section("Over what we do not know", body),)


def sensitivity_report(result: SensitivityResult, scenario: Scenario) -> Report:
    """The report of ``funnelsim sensitivity``: Sobol indices, ranked, and what flips the
    decision."""
    level = result.indices.level
    names = result.indices.ranked()
    specs = {a.key: a.spec.describe() for a in result.assumptions}
    rows = [
        (
            esc(name),
            _interval_cell(*result.indices.of(name)[1], lambda v: f"{v:.3f}"),
            _interval_cell(*result.indices.of(name)[0], lambda v: f"{v:.3f}"),
            esc(specs[name]),
        )
        for name in names
    ]
    body = table(
        ("assumption", "total index", "first-order index", "range"),
        rows,
        caption=(
            f"Share of the variance of the {esc(result.quantity)} each assumption explains, "
            f"with its interaction (total) and alone (first-order); bootstrap {level:.0%} "
            f"intervals from {result.base_samples} base samples."
        ),
        text_columns=(0, 3),
    )
    flips = "".join(f"<li>{esc(flip.describe())}</li>" for flip in result.flips)
    if flips:
        body += f"<p>What flips the decision:</p><ul>{flips}</ul>"
    figure = plots.sensitivity_figure(
        names,
        [result.indices.of(n)[0] for n in names],
        [result.indices.of(n)[1] for n in names],
        result.quantity,
    )
    section = Section(
        "What the decision hangs on",
        body,
        (_figure("sensitivity", "Sobol indices, largest total first", figure),),
    )
    facts = {
        "quantity": result.quantity,
        "assumptions": str(len(result.assumptions)),
        "base samples": f"{result.base_samples:,}",
        "seed": str(scenario.seed),
    }
    subtitle = f"Global sensitivity of the {result.quantity} to the uncertain assumptions."
    return Report(scenario.name, subtitle, facts, (section, scenario_section(scenario)))
