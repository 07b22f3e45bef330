"""Helping people start: scenario templates, the bundled list, and the funnel explained.

Before simulating anything, a growth team draws its funnel on a whiteboard:
the stages top to bottom, how many people are expected to make it past each,
the obstacles at each step, and who has to answer the phone. This module
draws that picture from a scenario file, with the numbers the model implies
*before* any randomness: the continue rate of each stage after its friction
(per segment), the load on each shared resource, and warnings where a number
looks implausible, such as a sales team asked to work more than 100% of the
time (the queue then grows without bound).

It also writes new scenarios from commented templates (``funnelsim init``)
and lists the templates shipped with the package (``funnelsim list``).

The expected figures are exact for the model without queues: visitors are
tracked as probability mass over segment x channel x preferred payment method
x preferred contact option, so mix shifts along the funnel are accounted for.
Queue abandonment and waiting before an answer are not included; the
simulation adds them.

References:
    Offered load and utilisation rho = lambda E[S] / c of a c-server queue:
    Kleinrock, L. (1975), Queueing Systems, Volume 1: Theory, Wiley, section 2.1.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import clv, friction
from funnelsim.engine.draws import MINUTES_PER_DAY
from funnelsim.engine.model import CompiledFunnel, compile_funnel
from funnelsim.engine.schedules import rota
from funnelsim.errors import FunnelsimError
from funnelsim.files import refuse_existing, write_text_atomic
from funnelsim.friction import Coefficients, DefaultRange, default_ranges
from funnelsim.scenario.loader import parse_scenario
from funnelsim.scenario.schema import Scenario, Stage
from funnelsim.templates import NAMES

FloatArray = NDArray[np.float64]

TEMPLATES = NAMES  # every bundled scenario
HEAVY_LOAD = 0.85
IMPLAUSIBLE_CONVERSION = 0.5
SLOW_PAGE_S = 15.0
LONG_FORM_FIELDS = 40
FEW_REPLICATIONS = 30

FRICTION_LABELS = {**friction.LABELS, "nurture": "lead nurture"}


# --------------------------------------------------------------------------- templates


class TemplateInfo(NamedTuple):
    """A bundled scenario template: its name, title line, and shape."""

    name: str
    summary: str
    stages: int
    variants: int


def template_text(name: str) -> str:
    """The YAML text of a bundled scenario (one of :data:`TEMPLATES`)."""
    if name not in TEMPLATES:
        raise KeyError(f"no template {name!r}; templates: {', '.join(TEMPLATES)}")
    return resources.files("funnelsim").joinpath("templates", f"{name}.yaml").read_text("utf-8")


def templates() -> list[TemplateInfo]:
    """The bundled templates, each with its first comment line as a summary.

    >>> [t.name for t in templates()][:4]
    ['checkout', 'leads', 'rean', 'page_speed']
    """
    infos = []
    for name in TEMPLATES:
        text = template_text(name)
        scenario = parse_scenario(text, f"{name}.yaml")
        first = next((line for line in text.splitlines() if line.startswith("#")), "# ")
        infos.append(
            TemplateInfo(
                name, first.lstrip("# ").strip(), len(scenario.stages), len(scenario.variants)
            )
        )
    return infos


def scenario_from_template(template: str, name: str) -> str:
    """The template's text with the scenario's ``name:`` set to ``name``."""
    text = template_text(template)
    quoted = json.dumps(name)  # a JSON string is a valid YAML scalar, whatever it holds
    return re.sub(r"^name: .*$", lambda _m: f"name: {quoted}", text, count=1, flags=re.MULTILINE)


class InitNameError(FunnelsimError):
    """``funnelsim init`` was given a NAME that names no file ('', '.', a directory)."""


def write_template(template: str, name: str, force: bool = False) -> Path:
    """Write the scenario ``name`` from ``template`` where :func:`init_path` says; an
    existing file only with ``force``. The path written."""
    path = init_path(name)
    refuse_existing(path, force)
    try:
        write_text_atomic(path, scenario_from_template(template, path.stem))
    except OSError as error:
        raise FunnelsimError(f"{path}: cannot write: {error.strerror}", "name") from None
    return path


def init_path(name: str) -> Path:
    """Where ``funnelsim init NAME`` writes: NAME if it ends in .yaml or .yml, else NAME.yaml."""
    path = Path(name)
    if not name.strip() or path.name in ("", ".", "..") or name.endswith(("/", os.sep)):
        shown = repr(name[:60] + ("..." if len(name) > 60 else ""))
        raise InitNameError(f"init: {shown} is not a file name; give a name such as my_funnel")
    return path if path.suffix in (".yaml", ".yml") else path.with_name(path.name + ".yaml")


# --------------------------------------------------------------------------- expectations


class FrictionEffect(NamedTuple):
    """One friction at a stage: what it is and its mean factor on continuing, per segment."""

    kind: str
    detail: str
    factor_by_segment: dict[str, float]


class StageExpectation(NamedTuple):
    """A stage as the model expects it, before queues.

    Attributes:
        name: Stage name.
        rate: The stage's base rate (before intent and friction).
        reaching: Share of all visitors expected to reach the stage.
        continue_rate: Expected share of those reaching it who continue.
        by_segment: The continue rate per segment.
        frictions: Each friction with its mean factor per segment.
        resource: The shared resource visitors wait for, if any.
    """

    name: str
    rate: float
    reaching: float
    continue_rate: float
    by_segment: dict[str, float]
    frictions: list[FrictionEffect]
    resource: str | None


class ResourceLoad(NamedTuple):
    """Expected load of a shared resource: utilisation = arrivals x mean service / capacity
    (with a schedule, the servers on duty averaged over the week)."""

    name: str
    capacity: int
    mean_service_min: float
    arrivals_per_hour: float
    utilisation: float
    stages: tuple[str, ...]


class ExpectedFunnel(NamedTuple):
    """The funnel a scenario implies, with its warnings."""

    stages: list[StageExpectation]
    resources: list[ResourceLoad]
    conversion: float
    conversion_by_segment: dict[str, float]
    warnings: list[str]


def _shares(cdf: FloatArray) -> FloatArray:
    return np.diff(cdf, prepend=0.0, axis=-1)


def _response_factor(funnel: CompiledFunnel, s: int, p: FloatArray) -> FloatArray:
    """Mean of response_continue(p, delay) / p over the stage's response-delay distribution."""
    stage = funnel.stage(s)
    if not stage.friction.response_decay or stage.response_delay_min is None:
        return np.ones_like(p)
    answered = friction.mean_response_continue(p, stage.response_delay_min, funnel.response)
    return np.divide(answered, p, out=np.ones_like(p), where=p > 0)


def _stage_factors(funnel: CompiledFunnel, s: int) -> dict[str, FloatArray]:
    """Every factor at stage ``s`` over (segment, channel, payment pref, contact pref)."""
    return {kind: factor[s] for kind, factor in funnel.friction._asdict().items()}


def _segment_means(
    mass: FloatArray, values: FloatArray, segments: tuple[str, ...]
) -> dict[str, float]:
    values = np.broadcast_to(values, mass.shape)
    weight = mass.sum(axis=(1, 2, 3))
    total = (mass * values).sum(axis=(1, 2, 3))
    return {
        g: float(total[i] / weight[i]) if weight[i] > 0 else float("nan")
        for i, g in enumerate(segments)
    }


def expected_funnel(scenario: Scenario) -> ExpectedFunnel:
    """Expected continue rates, reach, resource loads and warnings of a scenario.

    >>> from funnelsim.scenario import parse_scenario
    >>> s = parse_scenario('''
    ... name: two stages
    ... traffic: {visitors_per_day: 100, days: 1}
    ... stages: [{name: a, rate: 0.5}, {name: b, rate: 0.4, friction: {form_fields: 9}}]
    ... value: {order_value: 10}
    ... ''')
    >>> [round(st.continue_rate, 4) for st in expected_funnel(s).stages]
    [0.5, 0.384]
    """
    funnel = compile_funnel(scenario)
    mass = (
        _shares(funnel.segment_cdf)[:, None, None, None]
        * _shares(funnel.channel_cdf)[None, :, None, None]
        * _shares(funnel.payment_cdf)[:, None, :, None]
        * _shares(funnel.contact_cdf)[:, None, None, :]
    )
    per_minute = scenario.traffic.visitors_per_day / MINUTES_PER_DAY
    arrivals = np.zeros(len(funnel.resources))
    stages = []
    for s, stage in enumerate(scenario.stages):
        factors = _stage_factors(funnel, s)
        passed_friction = np.prod(list(np.broadcast_arrays(*factors.values())), axis=0)
        p = passed_friction * funnel.base[s][:, :, None, None]
        response = _response_factor(funnel, s, p)
        effects = [
            FrictionEffect(
                kind,
                _friction_detail(stage, kind, scenario.coefficients),
                _segment_means(mass, values, funnel.segments),
            )
            for kind, values in factors.items()
            if _has_friction(stage, kind)
        ]
        if stage.friction.response_decay and stage.response_delay_min is not None:
            effects.append(
                FrictionEffect(
                    "response",
                    _friction_detail(stage, "response", scenario.coefficients),
                    _segment_means(mass * p, response, funnel.segments),
                )
            )
        if stage.nurture is not None:
            nurture = stage.nurture
            ready = clv.lead_ready_share(nurture.ready_per_message, nurture.max_messages)
            effects.append(
                FrictionEffect(
                    "nurture",
                    f"{nurture.max_messages} messages every {nurture.interval_days:g} "
                    f"days, {nurture.ready_per_message:.0%} sales-ready per message",
                    dict.fromkeys(funnel.segments, ready),
                )
            )
        p_continue = p * response
        reaching = float(mass.sum())
        resource = funnel.stage_resource[s]
        if resource is not None:
            arrivals[resource] += per_minute * float((mass * passed_friction).sum())
        stages.append(
            StageExpectation(
                stage.name,
                scenario.base_rate(stage),
                reaching,
                float((mass * p_continue).sum() / reaching) if reaching > 0 else 0.0,
                _segment_means(mass, p_continue, funnel.segments),
                effects,
                stage.resource,
            )
        )
        mass = mass * p_continue
    loads = _resource_loads(scenario, arrivals)
    conversion = float(mass.sum())
    first = np.array([g.share for g in scenario.segments.values()])
    by_segment = dict(
        zip(
            funnel.segments,
            (mass.sum(axis=(1, 2, 3)) / np.where(first > 0, first, 1.0)).tolist(),
            strict=True,
        )
    )
    return ExpectedFunnel(
        stages, loads, conversion, by_segment, list(_warnings(scenario, stages, loads, conversion))
    )


def _resource_loads(scenario: Scenario, arrivals: FloatArray) -> list[ResourceLoad]:
    loads = []
    for k, (name, resource) in enumerate(scenario.resources.items()):
        service = resource.service_min.mean_value
        on_duty = float(rota(resource.schedule, resource.capacity).weekly.mean())
        loads.append(
            ResourceLoad(
                name,
                resource.capacity,
                service,
                float(arrivals[k] * 60.0),
                float(arrivals[k] * service / on_duty),
                tuple(st.name for st in scenario.stages if st.resource == name),
            )
        )
    return loads


def _has_friction(stage: Stage, kind: str) -> bool:
    f = stage.friction
    return {
        "page_load": f.page_load,
        "form_fields": f.form_fields is not None,
        "login_wall": f.login_wall != "none",
        "payment": f.payment_methods is not None,
        "contact": stage.contact_options is not None,
    }[kind]


def _friction_detail(stage: Stage, kind: str, coefficients: Coefficients) -> str:
    f = stage.friction
    if kind == "page_load":
        return "bounce at each segment's page load time"
    if kind == "form_fields":
        free = coefficients.form_fields.free_fields if f.free_fields is None else f.free_fields
        return f"{f.form_fields} form fields, {free} free"
    if kind == "login_wall":
        return f"login {f.login_wall}"
    if kind == "payment":
        return "offers " + ", ".join(f.payment_methods or [])
    if kind == "contact":
        return "offers " + ", ".join(stage.contact_options or [])
    delay = stage.response_delay_min
    return f"answered after ~{delay.mean_value:g} min" if delay is not None else "answer delay"


def describe_friction(stage: Stage, coefficients: Coefficients) -> str:
    """A short description of a stage's friction, e.g. ``12 form fields, 8 free; login
    required``."""
    kinds = [
        *(
            k
            for k in ("page_load", "form_fields", "login_wall", "payment", "contact")
            if _has_friction(stage, k)
        )
    ]
    parts = [
        (
            "slow pages"
            if k == "page_load"
            else f"{FRICTION_LABELS[k]}: {_friction_detail(stage, k, coefficients)}"
            if k in ("payment", "contact")
            else _friction_detail(stage, k, coefficients)
        )
        for k in kinds
    ]
    if stage.friction.response_decay:
        parts.append(
            "response decay"
            + (
                f" ({_friction_detail(stage, 'response', coefficients)})"
                if stage.response_delay_min
                else ""
            )
        )
    return "; ".join(parts) or "none"


def _warnings(
    scenario: Scenario, stages: list[StageExpectation], loads: list[ResourceLoad], conversion: float
) -> Iterator[str]:
    for load in loads:
        if load.utilisation >= 1.0:
            yield (
                f"resources.{load.name}: utilisation {load.utilisation:.0%} >= 100%: the queue "
                "grows without bound (only impatient visitors leaving keep it finite); add "
                "capacity or shorten service"
            )
        elif load.utilisation >= HEAVY_LOAD:
            yield (
                f"resources.{load.name}: utilisation {load.utilisation:.0%}: waits will be "
                "long and very sensitive to traffic"
            )
    for st in stages:
        if st.continue_rate == 0.0:
            yield f"stages.{st.name}: nobody continues past this stage"
    if conversion > IMPLAUSIBLE_CONVERSION:
        yield (
            f"expected conversion {conversion:.0%} is far above typical web funnels "
            "(1-5%); check the stage rates"
        )
    yield from _page_load_warnings(scenario)
    for name, segment in scenario.segments.items():
        if segment.page_load_s > SLOW_PAGE_S:
            yield (
                f"segments.{name}.page_load_s: {segment.page_load_s:g} s is beyond the range "
                "the page-load curve was fitted on (1-10 s)"
            )
    for stage in scenario.stages:
        fields = stage.friction.form_fields
        if fields is not None and fields > LONG_FORM_FIELDS:
            yield (
                f"stages.{stage.name}.friction.form_fields: {fields} fields is far beyond "
                "the 8-15 the form model was calibrated on"
            )
    if scenario.value.margin == 1.0:
        yield "value.margin is 100%: CLV then counts revenue, not profit"
    if scenario.experiment.replications < FEW_REPLICATIONS:
        yield (
            f"experiment.replications {scenario.experiment.replications} is low: intervals "
            "of the expected effect will be wide"
        )


def _page_load_warnings(scenario: Scenario) -> Iterator[str]:
    """Segments whose landing bounce the published ratio would push to 100%."""
    coef = scenario.coefficients.page_load
    for stage in scenario.stages:
        if not stage.friction.page_load:
            continue
        bounce = 1.0 - scenario.base_rate(stage)
        for name, segment in scenario.segments.items():
            ratio = float(friction.bounce_multiplier(segment.page_load_s, coef))
            if bounce > 0 and ratio * bounce >= 1.0:
                yield (
                    f"stages.{stage.name}: a {bounce:.0%} bounce at 1 s times {ratio:.2f} at "
                    f"{segment.page_load_s:g} s ({name}) reaches 100%, so every {name} visitor "
                    f"of average intent leaves; the published ratios hold for landing pages "
                    f"bouncing under {1 / ratio:.0%} at 1 s"
                )


# --------------------------------------------------------------------------- calibrated defaults


class CalibratedValue(NamedTuple):
    """A calibrated coefficient a scenario uses: its value and the range its sources allow."""

    path: str
    value: float
    range: DefaultRange

    @property
    def is_default(self) -> bool:
        return self.value == self.range.spec["mode"]


def uses_coefficient(scenario: Scenario, group: str, field: str) -> bool:
    """Whether coefficient ``group.field`` acts on some stage of the scenario."""
    if group == "response":
        response = scenario.coefficients.response
        active = "slope" if response.model == "log_odds" else "half_life_min"
        return field == active and any(s.friction.response_decay for s in scenario.stages)
    if group == "login_wall":
        return any(s.friction.login_wall == field for s in scenario.stages)
    return any(_has_friction(stage, group) for stage in scenario.stages)


def calibrated_values(scenario: Scenario) -> list[CalibratedValue]:
    """The calibrated coefficients acting on the scenario's stages, with their ranges.

    >>> s = parse_scenario('''
    ... name: a form
    ... traffic: {visitors_per_day: 100, days: 1}
    ... stages: [{name: a, rate: 0.5, friction: {form_fields: 9}}]
    ... value: {order_value: 10}
    ... ''')
    >>> [(c.path, c.value) for c in calibrated_values(s)]
    [('coefficients.form_fields.hazard_per_field', 0.0401)]
    """
    found = []
    for path, spec in default_ranges().items():
        _, group, field = path.split(".")
        if uses_coefficient(scenario, group, field):
            value = getattr(getattr(scenario.coefficients, group), field)
            found.append(CalibratedValue(path, value, spec))
    return found


# --------------------------------------------------------------------------- explain


def explain_lines(scenario: Scenario) -> list[str]:
    """The funnel as a person would draw it, as rich-markup lines for the terminal."""
    expected = expected_funnel(scenario)
    traffic = scenario.traffic
    lines = [
        f"[bold]{_markup(scenario.name)}[/]: {traffic.visitors_per_day:,.0f} visitors/day "
        f"x {traffic.days} days"
    ]
    lines.append(
        "channels: "
        + ", ".join(
            f"{_markup(n)} {c.share:.0%}"
            + (f" ({c.cost_per_visit:g} {scenario.currency}/visit)" if c.cost_per_visit else "")
            + (f" intent x{c.intent:g}" if c.intent != 1 else "")
            for n, c in traffic.channels.items()
        )
    )
    lines.append(
        "segments: "
        + ", ".join(
            f"{_markup(n)} {g.share:.0%} (pages {g.page_load_s:g} s)"
            for n, g in scenario.segments.items()
        )
    )
    lines.append("")
    visitors = traffic.visitors_per_day * traffic.days
    segments = list(scenario.segments)
    for st, stage in zip(expected.stages, scenario.stages, strict=True):
        lines.append(
            f"  [cyan]{visitors * st.reaching:>10,.0f}[/] reach [bold]{_markup(st.name)}"
            f"[/]  ({_base_rate_text(scenario, stage, st.rate)}"
            + (f", waits for {_markup(st.resource)}" if st.resource else "")
            + ")"
        )
        for effect in st.frictions:
            kind = ("" if effect.kind == "nurture" else "friction ") + FRICTION_LABELS[effect.kind]
            lines.append(
                f"  {'':>10}   {kind} "
                f"({_markup(effect.detail)}): "
                + _by_segment(effect.factor_by_segment, segments, ".3f", prefix="x")
            )
        lines.append(
            f"  {'':>10}   [green]continue {st.continue_rate:.1%}[/]"
            + (
                f"  ({_by_segment(st.by_segment, segments, '.1%', named=True)})"
                if len(segments) > 1
                else ""
            )
        )
    lines.append(
        f"  [green]{visitors * expected.conversion:>10,.0f}[/] buy  "
        f"(conversion {expected.conversion:.2%}"
        + (
            f"; {_by_segment(expected.conversion_by_segment, segments, '.2%', named=True)}"
            if len(segments) > 1
            else ""
        )
        + ")"
    )
    if expected.resources:
        lines.append("")
        lines.append("resources (offered load = arrivals x mean service / capacity):")
        for load in expected.resources:
            color = (
                "red"
                if load.utilisation >= 1
                else "yellow"
                if load.utilisation >= HEAVY_LOAD
                else "green"
            )
            lines.append(
                f"  {_markup(load.name)}: {load.capacity} x "
                f"{load.mean_service_min:g} min, "
                f"{load.arrivals_per_hour:.2f} arrivals/hour at "
                f"{', '.join(load.stages) or 'no stage'}: "
                f"[{color}]utilisation {load.utilisation:.0%}[/]"
            )
    calibrated = calibrated_values(scenario)
    if calibrated:
        lines.append("")
        lines.append("calibrated coefficients (range their sources allow, docs/calibration.md):")
        lines.extend(
            f"  {c.path} {c.value:g}"
            + (" (default)" if c.is_default else " (set by the scenario)")
            + f": {c.range.describe()}"
            for c in calibrated
        )
    lines.append("")
    lines.append("variants (expected before queues and waiting):")
    control = expected_funnel(scenario.variant(scenario.control))
    for name in scenario.variant_names:
        changes = ", ".join(
            f"{_markup(k)} = {_markup(str(v))}" for k, v in scenario.variants[name].items()
        )
        lines.append(
            f"  {_markup(name)}: "
            + (changes or "the base scenario")
            + (" (control)" if name == scenario.control else "")
        )
        mine = control if name == scenario.control else expected_funnel(scenario.variant(name))
        lines.append(f"  {'':>10}   {_variant_expectation(mine, control)}")
    if expected.warnings:
        lines.append("")
        lines.extend(f"[yellow]warning:[/] {_markup(w)}" for w in expected.warnings)
    lines.append("")
    lines.append(
        "[dim]Expected figures before queues and waiting; `funnelsim run` simulates them.[/]"
    )
    return lines


def _base_rate_text(scenario: Scenario, stage: Stage, rate: float) -> str:
    """``base rate 45%``; with response decay, when that rate applies and where it came from."""
    text = f"base rate {rate:.0%}"
    if not stage.friction.response_decay:
        return text
    response = scenario.coefficients.response
    text += f" if answered within {response.reference_min:g} min"
    observed = stage.rate_at
    if observed is not None:
        text += f", implied by {observed.rate:.0%} at {observed.response_min:g} min"
    elif stage.response_delay_min is not None:
        today = friction.mean_response_continue(rate, stage.response_delay_min, response)
        text += f", {float(today):.1%} after its response_delay_min" + (
            " (before queueing)" if stage.resource else ""
        )
    return text


def _variant_expectation(variant: ExpectedFunnel, control: ExpectedFunnel) -> str:
    """A variant's expected conversion against the control's, and the stages it moves."""
    text = f"conversion {variant.conversion:.2%}"
    if variant is not control and control.conversion > 0:
        text += f" ({variant.conversion / control.conversion - 1:+.1%} vs control)"
    moved = [
        f"{_markup(mine.name)} continue {theirs.continue_rate:.1%} -> {mine.continue_rate:.1%}"
        for mine, theirs in zip(variant.stages, control.stages, strict=True)
        if abs(mine.continue_rate - theirs.continue_rate) > 5e-4
    ]
    return "; ".join([text, *moved])


def _by_segment(
    values: dict[str, float], segments: list[str], fmt: str, named: bool = False, prefix: str = ""
) -> str:
    distinct = {round(v, 6) for v in values.values()}
    if len(distinct) == 1 and not named:
        return prefix + format(next(iter(values.values())), fmt)
    return ", ".join(f"{_markup(g)} {prefix}{values[g]:{fmt}}" for g in segments)


def _markup(text: str) -> str:
    """Escape rich markup in user text."""
    from rich.markup import escape

    return escape(text)
