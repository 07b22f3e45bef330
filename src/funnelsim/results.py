"""What a simulated experiment returns: the results types and their JSON/CSV shapes.

:class:`ExperimentResult` is the contract between the run loop
(:mod:`funnelsim.experiment`) and everything that shows or stores a run (the
terminal and HTML reports, ``results.json``, ``summary.csv``).

In ``results.json``, ``variants.<name>.uplift_vs_control.<metric>`` is ``{mean, low,
high}`` with ``interval`` and ``level`` saying what the bounds are: over assumptions
and Monte Carlo (90% by default) when the scenario has uncertain assumptions
(:class:`AssumptionEffects`), else the replications' 95% Monte Carlo interval; the
Monte Carlo interval alone is always kept under ``monte_carlo``. Over assumptions it
also holds ``prob_beats_control`` and ``prob_best`` (shares of worlds) and
``drivers`` (each assumption's first-order share of the spread).
``experiment.outcomes_over_worlds`` (null without uncertain assumptions, with queues
or referrals, or for a test judged on CLV) is ``experiment.outcomes`` with each
simulated test played in its own world and judged against that world's truth.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import question
from funnelsim.files import atomic_writer
from funnelsim.formatting import money, outcome_words
from funnelsim.intervals import Interval
from funnelsim.numbers import finite_or_none
from funnelsim.result_mixin import Result

if TYPE_CHECKING:
    from funnelsim.experiment.economics import Economics
    from funnelsim.scenario.schema import Scenario
    from funnelsim.worlds import WorldValues

FloatArray = NDArray[np.float64]


ECONOMICS = ("clv_per_customer", "cac", "ltv_to_cac")
METRICS = ("conversion", "revenue_per_visitor", "clv_per_visitor", *ECONOMICS)


@dataclass(frozen=True)
class Replication:
    """One replication: per variant (rows, control first) the full-traffic outcome and
    the readout of the simulated split test."""

    visitors: NDArray[np.int64]
    conversion: FloatArray
    revenue_per_visitor: FloatArray
    clv_per_visitor: FloatArray
    bounce_rate: FloatArray
    stage_rates: FloatArray  # (variants, stages)
    lost: NDArray[np.int64]  # (variants, stages, reasons)
    queue_abandonment: FloatArray  # (variants, resources)
    queue_wait_min: FloatArray  # (variants, resources)
    queue_utilisation: FloatArray  # (variants, resources)
    test_visitors: NDArray[np.int64]
    test_conversions: NDArray[np.int64]
    prob_best: FloatArray
    prob_beats_control: FloatArray
    expected_loss: FloatArray
    decision: str
    shipped: str | None
    economics: Economics
    service: tuple[dict[str, dict[str, Any]], ...] = ()  # per variant, per resource


class ChannelEconomics(NamedTuple):
    """Acquisition economics of one channel for one variant (means over replications).

    ``cac`` is ``(spend + service_cost) / customers``; it, ``clv_per_customer``,
    ``clv_per_visitor`` and ``ltv_to_cac`` are ratios of the means; ``ltv_to_cac`` is inf
    for a channel that costs nothing; ``payback_months``
    is the median over replications (inf: not within the horizon).
    """

    visitors: float
    spend: float  # paid visits and nurture messages
    service_cost: float  # the channel's share of the service desks' staff and automation cost
    customers: float
    cac: float
    clv_per_customer: float
    clv_per_visitor: float
    ltv_to_cac: float
    payback_months: float


class LeadQuality(NamedTuple):
    """Leads won per replication, the share who became customers, and the expected days
    from lead to customer (means over replications)."""

    leads: float
    lead_to_customer: float
    days_to_customer: float


class CLVTest(NamedTuple):
    """The simulated test's readout of CLV per visitor, averaged over replications:
    posterior mean and credible bounds, P(beats control), P(best)."""

    mean: float
    low: float
    high: float
    prob_beats_control: float
    prob_best: float


@dataclass(frozen=True)
class VariantSummary:
    """One variant's results over all replications."""

    name: str
    visitors: float
    metrics: dict[str, Interval]
    uplift: dict[str, Interval] | None
    bounce_rate: Interval
    stage_rates: dict[str, float]
    lost_by_reason: dict[str, dict[str, float]]
    largest_stage_change: tuple[str, float] | None
    prob_best: float
    prob_beats_control: float
    expected_loss: float
    decision_rates: dict[str, float]
    queues: dict[str, dict[str, float]]
    payback_months: float = math.nan
    referrals_per_customer: float = math.nan
    channels: dict[str, ChannelEconomics] = field(default_factory=dict)
    leads: LeadQuality | None = None
    clv_test: CLVTest | None = None
    service: dict[str, dict[str, Any]] = field(default_factory=dict)  # engine.service

    @property
    def decision(self) -> str:
        """The most frequent decision about this variant across simulated tests."""
        return max(self.decision_rates, key=lambda k: self.decision_rates[k])


@dataclass(frozen=True)
class Effect:
    """A variant's uplift over control in one metric, over what we do not know."""

    central: float  # the replications' mean: "if the stated values hold"
    low: float  # interval over assumptions and Monte Carlo, at the report's level
    high: float
    monte_carlo: tuple[float, float, float]  # (mean, low, high), the replications' interval
    prob_beats_control: float  # over worlds
    prob_best: float  # over worlds
    drivers: dict[str, float] = field(default_factory=dict)  # first-order share, largest first
    spread: float = 0.0  # width of the worlds' interval alone (no Monte Carlo error)

    def describe(self, level: float) -> str:
        """``+18% if the stated values hold; +6% to +29% over what we do not know (90%);
        82% of that spread is coefficients.form_fields.hazard_per_field``; the spread's
        source is named only where the assumptions move the uplift more than the Monte
        Carlo error does."""
        text = (
            f"{self.central:+.0%} if the stated values hold; {self.low:+.0%} to "
            f"{self.high:+.0%} over what we do not know ({level:.0%})"
        )
        if not self.spread > self.monte_carlo[2] - self.monte_carlo[1]:
            return text + "; the assumptions move it less than the Monte Carlo error"
        if self.drivers:
            key, share = next(iter(self.drivers.items()))
            text += f"; {max(share, 0.0):.0%} of that spread is {key}"
        return text


@dataclass(frozen=True)
class AssumptionEffects:
    """Every variant's effects over ``worlds`` worlds of the scenario's assumptions."""

    level: float
    worlds: int
    assumptions: tuple[str, ...]
    simulated: bool  # world values simulated (queues, referrals) rather than exact
    effects: dict[str, dict[str, Effect]]  # variant (not control) -> metric -> effect
    prob_best: dict[str, dict[str, float]]  # variant (control too) -> metric -> P(best)
    values: WorldValues | None = field(default=None, repr=False, compare=False)
    """The worlds and every variant's value in each (what profit planning draws from)."""

    @property
    def counted(self) -> str:
        """``3 uncertain assumptions`` (or ``1 uncertain assumption``)."""
        n = len(self.assumptions)
        return f"{n} uncertain assumption{'' if n == 1 else 's'}"

    @property
    def joint_draws(self) -> dict[str, list[str]]:
        """The assumptions each world takes from one joint draw (a calibrated scenario's
        posterior), by the file of the draws; empty when every one is drawn alone."""
        found: dict[str, list[str]] = {}
        for a in self.values.worlds.assumptions if self.values is not None else ():
            if a.joint is not None:
                found.setdefault(a.joint.source, []).append(a.key)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": "assumptions and Monte Carlo",
            "level": self.level,
            "worlds": self.worlds,
            "world_values": "simulated, one replication each" if self.simulated else "exact",
            "assumptions": list(self.assumptions),
            "joint_draws": self.joint_draws,
        }


@dataclass(frozen=True)
class ValueOfInformation:
    """What the planned test is worth against shipping the best prior variant now.

    ``worth`` is the expected value of the test's information (money over ``population``
    visitors; negative: the test costs more than it can buy) with its 95% Monte Carlo
    interval over ``simulations`` simulated tests; ``best_days`` is the profit-maximising
    length on those simulations; ``note`` says why no test can pay ("" when one can).
    """

    planned_days: int
    worth: Interval
    ship_now: str
    population: int
    simulations: int
    best_days: int
    currency: str
    note: str = ""

    def describe(self) -> str:
        """The sentence ``funnelsim run`` prints and its HTML report shows."""
        amount = money(abs(self.worth.mean), self.currency, 0)
        worth = f"is worth {amount} over" if self.worth.mean >= 0 else f"costs {amount} against"
        lead = f"{self.note}; " if self.note else ""
        return (
            f"Value of information: {lead}a {self.planned_days}-day test {worth} shipping "
            f"{self.ship_now} now ({self.population:,} visitors{self._monte_carlo()}); the best "
            f"test length on these simulations is {self.best_days} days "
            "(funnelsim plan --objective profit)."
        )

    def _monte_carlo(self) -> str:
        """``; 95% Monte Carlo interval LOW to HIGH over N simulated tests``, or nothing
        when the interval rounds to a point."""
        low, high = (money(v, self.currency, 0) for v in self.worth[1:])
        if low == high:
            return ""
        return f"; 95% Monte Carlo interval {low} to {high} over {self.simulations} simulated tests"

    def to_dict(self) -> dict[str, Any]:
        """The ``value_of_information`` entry of ``results.json``."""
        return {
            "test_days": self.planned_days,
            "worth": finite_or_none(self.worth.mean),
            "worth_interval": {
                "kind": "Monte Carlo",
                "level": 0.95,
                "low": finite_or_none(self.worth.low),
                "high": finite_or_none(self.worth.high),
                "simulated_tests": self.simulations,
            },
            "currency": self.currency,
            "ship_now": self.ship_now,
            "population": self.population,
            "best_test_days": self.best_days,
            "note": self.note or None,
            "sentence": self.describe(),
        }


@dataclass(frozen=True, repr=False)
class ExperimentResult(Result):
    """Everything ``funnelsim run`` reports."""

    scenario: Scenario
    engine: str
    replications: list[Replication]
    variants: list[VariantSummary]
    true_best: str
    test_outcomes: dict[str, float]
    assumptions: AssumptionEffects | None = None  # effects over worlds of what we do not know
    test_outcomes_over_worlds: dict[str, float] | None = None  # each test in its own world
    value_of_information: ValueOfInformation | None = None  # the planned test's worth

    frame_index: ClassVar[str | None] = "variant"

    @property
    def control(self) -> str:
        return self.scenario.control

    def headline(self) -> str:
        return (
            f"{self.scenario.name!r}: {len(self.replications)} replications, "
            f"{self.engine} engine, truly best {self.true_best!r}"
        )

    def details(self) -> list[str]:
        """Each variant's headline figures."""
        lines = []
        width = max(len(s.name) for s in self.variants)
        for s in self.variants:
            uplift = f" ({s.uplift['conversion'].mean:+.1%})" if s.uplift else " (control)"
            lines.append(
                f"  {s.name:<{width}}  conversion {s.metrics['conversion'].mean:.2%}{uplift}, "
                f"CLV/visitor {s.metrics['clv_per_visitor'].mean:,.2f} {self.scenario.currency}, "
                f"test decision {s.decision} ({s.decision_rates[s.decision]:.0%})"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document as a dictionary."""
        return results_dict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One row per variant: the columns of ``summary.csv``."""
        return summary_rows(self)


def _interval(interval: Interval) -> dict[str, float | None]:
    return {k: finite_or_none(v) for k, v in interval._asdict().items()}


MONTE_CARLO_LEVEL = 0.95  # of the replications' intervals (intervals.mean_interval)


def _uplift_dict(
    summary: VariantSummary, effects: AssumptionEffects | None
) -> dict[str, dict[str, Any]]:
    """``uplift_vs_control``: per metric the interval over assumptions where there is one,
    the Monte Carlo interval always (``monte_carlo``)."""
    assert summary.uplift is not None
    result = {}
    for metric in METRICS:
        monte_carlo = {**_interval(summary.uplift[metric]), "level": MONTE_CARLO_LEVEL}
        effect = effects.effects[summary.name].get(metric) if effects else None
        if effect is None or effects is None:
            result[metric] = {**monte_carlo, "interval": "monte_carlo", "monte_carlo": monte_carlo}
            continue
        result[metric] = {
            "mean": finite_or_none(effect.central),
            "low": finite_or_none(effect.low),
            "high": finite_or_none(effect.high),
            "interval": "assumptions and Monte Carlo",
            "level": effects.level,
            "monte_carlo": monte_carlo,
            "prob_beats_control": finite_or_none(effect.prob_beats_control),
            "prob_best": effect.prob_best,
            "drivers": effect.drivers,
        }
    return result


def _variant_dict(
    summary: VariantSummary, control: bool, effects: AssumptionEffects | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {m: _interval(summary.metrics[m]) for m in METRICS}
    data["bounce_rate"] = _interval(summary.bounce_rate)
    data["visitors"] = summary.visitors
    data["stage_rates"] = _finite_dict(summary.stage_rates)
    data["lost_by_reason"] = summary.lost_by_reason
    data["queues"] = summary.queues
    data["service"] = _finite_nested(summary.service)
    data["experiment"] = {
        "prob_beats_control": None if control else summary.prob_beats_control,
        "prob_best": summary.prob_best,
        "expected_loss": summary.expected_loss,
        "decision": summary.decision,
        "decision_words": outcome_words(summary.decision, summary.name, control),
        "decision_rates": summary.decision_rates,
    }
    data.update(_lifetime_dict(summary))
    if summary.clv_test is not None:
        data["experiment"]["clv"] = _finite_dict(summary.clv_test._asdict())
    if not control and summary.uplift is not None:
        data["uplift_vs_control"] = _uplift_dict(summary, effects)
        change = summary.largest_stage_change
        data["largest_stage_change"] = (
            {"stage": change[0], "relative_change": change[1]} if change else None
        )
    return data


def _finite_nested(figures: Any) -> Any:
    """Nested figures with NaN and infinities as None (JSON null)."""
    if isinstance(figures, dict):
        return {key: _finite_nested(value) for key, value in figures.items()}
    if isinstance(figures, list):
        return [_finite_nested(value) for value in figures]
    return finite_or_none(figures) if isinstance(figures, float) else figures


def _finite_dict(values: dict[str, float]) -> dict[str, float | None]:
    return {k: finite_or_none(v) for k, v in values.items()}


def _lifetime_dict(summary: VariantSummary) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payback_months": finite_or_none(summary.payback_months),
        "referrals_per_customer": finite_or_none(summary.referrals_per_customer),
        "channels": {name: _finite_dict(c._asdict()) for name, c in summary.channels.items()},
    }
    if summary.leads is not None:
        data["leads"] = _finite_dict(summary.leads._asdict())
    return data


def results_dict(result: ExperimentResult) -> dict[str, Any]:
    """The ``results.json`` document."""
    scenario = result.scenario
    asked = question.answer(scenario, result.variants, result.assumptions)
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "engine": result.engine,
        "replications": len(result.replications),
        "control": result.control,
        "currency": scenario.currency,
        "question": None if asked is None else asked.to_dict(),
        "variants": {
            s.name: _variant_dict(s, s.name == result.control, result.assumptions)
            for s in result.variants
        },
        "assumptions": (
            result.assumptions.to_dict()
            if result.assumptions is not None
            else {"interval": "none: every assumption at its stated value"}
        ),
        "experiment": {
            "test_visitors": float(
                sum(r.test_visitors.sum() for r in result.replications) / len(result.replications)
            ),
            "split": scenario.split_shares(),
            "metric": scenario.experiment.metric,
            "true_best": result.true_best,
            "outcomes": result.test_outcomes,
            "outcomes_over_worlds": result.test_outcomes_over_worlds,
            "rule": {
                "loss_threshold": scenario.experiment.loss_threshold,
                "rope": scenario.experiment.rope,
                "equivalence_probability": scenario.experiment.equivalence_probability,
            },
        },
        "value_of_information": (
            None if result.value_of_information is None else result.value_of_information.to_dict()
        ),
    }


def summary_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    """One flat row per variant, for ``summary.csv``."""
    rows = []
    for s in result.variants:
        row: dict[str, Any] = {"variant": s.name}
        for m in METRICS:
            row.update({f"{m}_{k}": v for k, v in s.metrics[m]._asdict().items()})
        for m in METRICS:
            uplift = s.uplift[m] if s.uplift else Interval(0.0, 0.0, 0.0)
            row.update({f"uplift_{m}_{k}": v for k, v in uplift._asdict().items()})
        row.update(_assumption_columns(result, s))
        row.update(
            prob_beats_control=None if s.name == result.control else s.prob_beats_control,
            prob_best=s.prob_best,
            expected_loss=s.expected_loss,
            decision=s.decision,
        )
        rows.append(row)
    return rows


def _assumption_columns(result: ExperimentResult, summary: VariantSummary) -> dict[str, Any]:
    """The uplift's bounds over assumptions (the Monte Carlo bounds when there are no
    uncertain assumptions, 0 for the control) and P(beats control), P(best) in
    conversion over worlds (empty without worlds)."""
    effects = result.assumptions
    by_metric = effects.effects.get(summary.name, {}) if effects else {}
    row: dict[str, Any] = {}
    for m in ("conversion", "revenue_per_visitor", "clv_per_visitor"):
        effect = by_metric.get(m)
        if effect is not None:
            low, high = effect.low, effect.high
        elif summary.uplift is not None:
            low, high = summary.uplift[m].low, summary.uplift[m].high
        else:
            low = high = 0.0
        row[f"uplift_{m}_assumptions_low"], row[f"uplift_{m}_assumptions_high"] = low, high
    conversion = by_metric.get("conversion")
    row["prob_beats_control_worlds"] = conversion.prob_beats_control if conversion else None
    row["prob_best_worlds"] = effects.prob_best[summary.name]["conversion"] if effects else None
    return row


def write_results(result: ExperimentResult, out: Path) -> list[Path]:
    """Write ``results.json`` and ``summary.csv`` under ``out``."""
    json_path, csv_path = out / "results.json", out / "summary.csv"
    with atomic_writer(json_path) as stream:
        json.dump(results_dict(result), stream, indent=2, allow_nan=False)
        stream.write("\n")
    rows = summary_rows(result)
    with atomic_writer(csv_path) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [json_path, csv_path]


def results_json(result: ExperimentResult) -> str:
    """The results document as JSON text."""
    buffer = io.StringIO()
    json.dump(results_dict(result), buffer, indent=2, allow_nan=False)
    return buffer.getvalue()
