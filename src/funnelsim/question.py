"""The question a scenario asks, answered from a run (``question:`` in the scenario).

A heating installer asks "phone only, or phone, e-mail and a chat bot?"; the run's
first lines say which variant answers it best on the figure the question names, by how
much against control (with its Monte Carlo interval, and its interval over the
scenario's uncertain assumptions when the run has one), and, when the question sets a
goal ("LTV:CAC above 10x"), which variants reach it. :func:`answer` computes that from
a run's variant summaries; the terminal and HTML reports show it
as a table (:func:`funnelsim.report.question_table`) and ``results.json`` carries it
under ``question``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from funnelsim import formatting as fmt
from funnelsim.numbers import finite_or_none

if TYPE_CHECKING:
    from funnelsim.intervals import Interval
    from funnelsim.scenario.schema import Scenario

LABELS = {
    "conversion": "conversion",
    "revenue_per_visitor": "revenue per visitor",
    "clv_per_visitor": "CLV per visitor",
    "clv_per_customer": "CLV per customer",
    "cac": "CAC",
    "ltv_to_cac": "LTV:CAC",
}
LOWER_IS_BETTER = frozenset({"cac"})


class Summary(Protocol):
    """What the answer reads of a variant's results (results.VariantSummary)."""

    name: str
    metrics: dict[str, Interval]
    uplift: dict[str, Interval] | None


class Spread(Protocol):
    """A variant's uplift over what we do not know (results.Effect)."""

    low: float
    high: float


class Effects(Protocol):
    """What the answer reads of a run's effects over its worlds (results.AssumptionEffects)."""

    level: float
    effects: dict[str, dict[str, Spread]]


@dataclass(frozen=True)
class Answer:
    """A run's answer to its scenario's question: per variant the metric's mean over
    replications with its 95% Monte Carlo interval, the best variant, and who meets the
    goal (None without one)."""

    question: str
    metric: str
    goal: float | None
    values: dict[str, Interval]
    uplift: dict[str, Interval]  # relative to control, for every other variant
    best: str
    control: str
    meets_goal: dict[str, bool] | None
    words: str

    def to_dict(self) -> dict[str, Any]:
        """The ``question`` block of ``results.json``."""
        return {
            "text": self.question,
            "metric": self.metric,
            "goal": self.goal,
            "best": self.best,
            "meets_goal": self.meets_goal,
            "answer": self.words,
        }


def show(metric: str, currency: str) -> Callable[[float], str]:
    """How a value of ``metric`` reads (3.47%, €12.30, 11.3x)."""
    if metric == "conversion":
        return fmt.percent
    if metric == "ltv_to_cac":
        return _times
    return lambda value: fmt.money(value, currency)


def _times(value: float) -> str:
    """LTV:CAC as a multiple: 11.3x ("no spend" when nothing was spent)."""
    shown = fmt.ratio(value)
    return f"{shown}x" if math.isfinite(value) else shown


def _meets(metric: str, value: float, goal: float) -> bool:
    return value <= goal if metric in LOWER_IS_BETTER else value >= goal


def answer(
    scenario: Scenario, variants: Sequence[Summary], effects: Effects | None = None
) -> Answer | None:
    """The answer of a run's ``variants`` to the scenario's question (None when it asks
    none); with the run's ``effects`` over its uncertain assumptions, the best variant's
    uplift is also given over what we do not know."""
    question = scenario.question
    if question is None:
        return None
    metric, control = question.metric, scenario.control
    values = {s.name: s.metrics[metric] for s in variants}
    uplift = {s.name: s.uplift[metric] for s in variants if s.uplift is not None}
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    finite = [name for name, v in values.items() if finite_or_none(v.mean) is not None]
    best = max(finite, key=lambda name: sign * values[name].mean) if finite else control
    meets = (
        None
        if question.goal is None
        else {name: _meets(metric, v.mean, question.goal) for name, v in values.items()}
    )
    shown = show(metric, scenario.currency)
    words = _words(LABELS[metric], shown, values, uplift, best, control)
    if best != control:
        words += _assumption_words(effects, best, metric)
    if meets is not None and question.goal is not None:
        words += "; " + _goal_words(metric, shown(question.goal), meets)
    words = f"Answer: {words}."
    return Answer(question.text, metric, question.goal, values, uplift, best, control, meets, words)


def _words(
    label: str,
    shown: Callable[[float], str],
    values: dict[str, Interval],
    uplift: dict[str, Interval],
    best: str,
    control: str,
) -> str:
    if best == control:
        return f"no variant beats {control} on {label} ({shown(values[control].mean)})"
    change = uplift[best]
    return (
        f"{best}, {label} {shown(values[best].mean)} against "
        f"{shown(values[control].mean)} for {control} ({fmt.uplift(*change)} "
        f"{fmt.uplift_bounds(*change)}, 95% Monte Carlo interval)"
    )


def _assumption_words(effects: Effects | None, best: str, metric: str) -> str:
    """``; +8% to +25% over what we do not know (90%)``, when the run has that interval."""
    effect = None if effects is None else effects.effects.get(best, {}).get(metric)
    if effect is None or effects is None:
        return ""
    level = f"{effects.level:.0%}"
    return f"; {effect.low:+.0%} to {effect.high:+.0%} over what we do not know ({level})"


def _goal_words(metric: str, goal: str, meets: dict[str, bool]) -> str:
    bound = "at most" if metric in LOWER_IS_BETTER else "at least"
    met = [name for name, ok in meets.items() if ok]
    return f"goal {LABELS[metric]} {bound} {goal}: met by {', '.join(met) if met else 'none'}"
