"""Fitting the calibration model, checking it against the data, and the calibrated file.

:func:`calibrate_counts` samples the posterior of the scenario's uncertain stage rates
given observed counts (and the dwell parameters given an event log's times between
stages; :mod:`funnelsim.calibration.model`), compares prior and
posterior, replicates the observed stage counts from the posterior (the posterior
predictive check) and writes the scenario back pointing to the posterior's joint draws
(``posterior: posterior.nc``), so that ``run``, ``sweep`` and ``plan`` draw their worlds
from what the data say, correlations included; each calibrated assumption's spec is
replaced by one fitted to its marginal draws (mean and sd), its central value and what
``sensitivity`` varies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim.calibration.model import (
    DWELL_FAMILIES,
    RESPONSE_DELAY_FAMILIES,
    FunnelTerms,
    Observed,
    calibration_model,
    control_of,
    fitted_assumptions,
    fitted_dwells,
    observed_data,
    stage_dwells,
    timed_leads,
)
from funnelsim.calibration.readers import StageCounts
from funnelsim.uncertainty import Bounds

if TYPE_CHECKING:
    import arviz as az
    import pandas

    from funnelsim.analysis.models import Diagnostics, SamplerSettings
    from funnelsim.scenario import Scenario
    from funnelsim.uncertainty import Assumption

FloatArray = npt.NDArray[np.float64]
LEVEL = 0.9
PROBABILITY = Bounds(0.0, 1.0)
"""Level of every interval in a calibration: prior, posterior and predictive."""
PREDICTIVE_SEED = 20261130
POSTERIOR_FILE = "posterior.nc"
"""The posterior's file name, beside the calibrated scenario that points to it."""


@dataclass(frozen=True)
class AssumptionUpdate:
    """One assumption before and after the data (intervals are central, at ``LEVEL``).

    Attributes:
        key: The assumption's key (``stages.cart.rate``).
        prior: The spec as written, in one phrase.
        prior_mean, prior_sd, prior_interval: The prior's moments and interval.
        posterior_mean, posterior_sd, posterior_interval: The same of the posterior draws.
        narrowed: 1 - posterior sd / prior sd (0: the data said nothing; near 1: they
            pinned it down).
        fitted: The uncertain spec written into the calibrated scenario.
    """

    key: str
    prior: str
    prior_mean: float
    prior_sd: float
    prior_interval: tuple[float, float]
    posterior_mean: float
    posterior_sd: float
    posterior_interval: tuple[float, float]
    narrowed: float
    fitted: dict[str, Any]


@dataclass(frozen=True)
class PredictiveCheck:
    """Observed vs replicated stage counts per observed cell, from the posterior.

    The top stage's count is taken as observed; each later column is replicated stage by
    stage (Binomial from the replicated count before it), so the interval carries the
    uncertainty of every earlier step.

    Attributes:
        columns: Stage names then ``converted``: the columns of the counts.
        cells: Observed cell labels.
        observed: (cells, columns) observed counts.
        low, high: (cells, columns) central ``LEVEL`` posterior predictive interval.
        outside: (cells, columns) True where the observed count falls outside it.
    """

    columns: tuple[str, ...]
    cells: tuple[str, ...]
    observed: FloatArray
    low: FloatArray
    high: FloatArray
    outside: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Calibration:
    """A scenario calibrated to observed counts: result of :func:`funnelsim.calibrate`."""

    scenario: str
    source: str
    updates: tuple[AssumptionUpdate, ...]
    predictive: PredictiveCheck
    diagnostics: Diagnostics
    idata: az.InferenceData = field(repr=False)
    calibrated_yaml: str = field(repr=False)
    not_calibrated: dict[str, str] = field(default_factory=dict)
    experiment_checks: dict[str, PredictiveCheck] = field(default_factory=dict)

    def __repr__(self) -> str:
        lines = [f"Calibration of {self.scenario!r} to {self.source} ({LEVEL:.0%} intervals)"]
        for u in self.updates:
            lines.append(
                f"  {u.key}: prior {u.prior_mean:.4g} [{u.prior_interval[0]:.4g}, "
                f"{u.prior_interval[1]:.4g}] -> posterior {u.posterior_mean:.4g} "
                f"[{u.posterior_interval[0]:.4g}, {u.posterior_interval[1]:.4g}], "
                f"narrowed {u.narrowed:.0%}"
            )
        for label, check in {"data": self.predictive, **self.experiment_checks}.items():
            outside = int(check.outside.sum())
            lines.append(
                f"  posterior predictive ({label}): {outside} observed count(s) outside "
                "their interval"
            )
        reasons: dict[str, list[str]] = {}
        for key, why in self.not_calibrated.items():
            reasons.setdefault(why, []).append(key)
        lines.extend(
            f"  kept at their prior ({why}): {', '.join(keys)}" for why, keys in reasons.items()
        )
        lines.append(f"  fit {'reliable' if self.diagnostics.reliable else 'UNRELIABLE'}")
        lines.extend(f"    {p}" for p in self.diagnostics.problems)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything in ``calibration.json``: plain numbers, lists and strings."""
        from funnelsim.analysis.models import diagnostics_dict

        return {
            "scenario": self.scenario,
            "data": self.source,
            "interval_level": LEVEL,
            "assumptions": {
                u.key: {
                    "prior": u.prior,
                    "prior_mean": u.prior_mean,
                    "prior_sd": u.prior_sd,
                    "prior_interval": list(u.prior_interval),
                    "posterior_mean": u.posterior_mean,
                    "posterior_sd": u.posterior_sd,
                    "posterior_interval": list(u.posterior_interval),
                    "narrowed": u.narrowed,
                    "calibrated_spec": u.fitted,
                }
                for u in self.updates
            },
            "not_calibrated": self.not_calibrated,
            "posterior_predictive": _check_rows(self.predictive),
            "experiments_posterior_predictive": {
                label: _check_rows(check) for label, check in self.experiment_checks.items()
            },
            "diagnostics": diagnostics_dict(self.diagnostics),
        }

    def to_frame(self) -> pandas.DataFrame:
        """One row per calibrated assumption: prior and posterior moments, intervals
        and how much the data narrowed it."""
        import pandas as pd

        rows = [
            {
                "assumption": u.key,
                "prior_mean": u.prior_mean,
                "prior_low": u.prior_interval[0],
                "prior_high": u.prior_interval[1],
                "posterior_mean": u.posterior_mean,
                "posterior_low": u.posterior_interval[0],
                "posterior_high": u.posterior_interval[1],
                "narrowed": u.narrowed,
            }
            for u in self.updates
        ]
        return pd.DataFrame(rows).set_index("assumption")

    def json(self) -> str:
        """``calibration.json``'s text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _check_rows(check: PredictiveCheck) -> list[dict[str, Any]]:
    return [
        {
            "cell": cell,
            "column": column,
            "observed": check.observed[i, j],
            "low": check.low[i, j],
            "high": check.high[i, j],
            "outside": bool(check.outside[i, j]),
        }
        for i, cell in enumerate(check.cells)
        for j, column in enumerate(check.columns)
    ]


def calibrate_counts(
    scenario: Scenario,
    scenario_text: str,
    counts: StageCounts,
    settings: SamplerSettings,
    by_position: bool = False,
    experiments: Sequence[Observed] = (),
) -> Calibration:
    """Fit the uncertain assumptions that ``counts`` (and past ``experiments``' arms)
    inform; see :class:`Calibration`.

    Raises:
        CalibrationError: a queue (or other stage without a closed form), stages or
            breakdown values that do not match, or no uncertain assumption to calibrate.
    """
    from funnelsim.analysis.models import sample

    control = control_of(scenario)
    dwells = stage_dwells(control, counts)
    observed = observed_data(scenario, counts, by_position, experiments, dwells)
    terms = observed[0].terms
    fitted = {**fitted_assumptions(observed), **fitted_dwells(dwells)}
    leads = timed_leads(control, counts, terms)
    fit = sample(calibration_model(observed, dwells, leads), settings)
    posterior = fit.idata.posterior
    updates = tuple(
        _update(assumption, np.asarray(posterior[key]).reshape(-1))
        for key, assumption in fitted.items()
    )
    checks = tuple(
        _predictive(data.counts, np.asarray(posterior[_continue_name(data.label)]))
        for data in observed
    )
    return Calibration(
        scenario=scenario.name,
        source=counts.source,
        updates=updates,
        predictive=checks[0],
        diagnostics=fit.diagnostics,
        idata=fit.idata,
        calibrated_yaml=with_posterior(
            calibrated_text(scenario_text, {u.key: u.fitted for u in updates}), POSTERIOR_FILE
        ),
        not_calibrated={
            a.key: not_fitted_reason(a, terms)
            for a in every_assumption(scenario)
            if a.key not in fitted
        },
        experiment_checks=dict(zip((d.label for d in experiments), checks[1:], strict=True)),
    )


def _continue_name(label: str) -> str:
    return "continue" if label == "data" else f"continue[{label}]"


def every_assumption(scenario: Scenario) -> list[Assumption]:
    """The control's assumptions, then every variant's own, once each."""
    found: dict[str, Assumption] = {}
    for name in scenario.variant_names:
        for assumption in scenario.variant(name).assumptions:
            found.setdefault(assumption.key, assumption)
    return list(found.values())


HELD_FIELDS = ("intent", "page_load_s", "share", "ready_per_message")
"""Fields of the continue probabilities that calibrate holds at their central value."""


def not_fitted_reason(assumption: Assumption, terms: FunnelTerms) -> str:
    """Why the data leave ``assumption`` at its prior, in one phrase."""
    if assumption.key != assumption.field:
        return (
            "a variant's own assumption: the control's counts do not inform it (a past "
            "experiment of it would, with --experiments)"
        )
    if assumption.field in terms.slots:
        return "no stage of the scenario uses it"
    if ".dwell_min." in assumption.field:
        families = f"{', '.join(DWELL_FAMILIES[:-1])} or {DWELL_FAMILIES[-1]}"
        return (
            "a dwell time: only an event log's times between stages (--stage-map) inform "
            f"it, for an {families} dwell with visitors timed"
        )
    if ".response_delay_min." in assumption.field:
        families = " or ".join(RESPONSE_DELAY_FAMILIES)
        return (
            "a response delay: only an event log's replies (an event mapped to 'replied' "
            f"in --stage-map) inform it, for an {families} delay with leads answered"
        )
    if assumption.field.rsplit(".", 1)[-1] in HELD_FIELDS:
        return (
            "enters the continue probabilities but is not fitted: held at its central "
            "value while fitting"
        )
    return "the stage counts do not depend on it"


def _interval(draws: FloatArray) -> tuple[float, float]:
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def _update(assumption: Assumption, draws: FloatArray) -> AssumptionUpdate:
    prior = assumption.spec.distribution(assumption.bounds)
    tail = (1 - LEVEL) / 2
    mean, sd = float(draws.mean()), float(draws.std(ddof=1))
    prior_sd = float(prior.std())
    return AssumptionUpdate(
        key=assumption.key,
        prior=assumption.spec.describe(),
        prior_mean=float(prior.mean()),
        prior_sd=prior_sd,
        prior_interval=(float(prior.ppf(tail)), float(prior.ppf(1 - tail))),
        posterior_mean=mean,
        posterior_sd=sd,
        posterior_interval=_interval(draws),
        narrowed=1.0 - sd / prior_sd,
        fitted=fitted_spec(mean, sd, assumption.bounds),
    )


def fitted_spec(mean: float, sd: float, bounds: Bounds = PROBABILITY) -> dict[str, Any]:
    """An uncertain spec with the posterior's mean and sd, of the kind the field's
    ``bounds`` allow: a Beta for a probability (a probability's variance is below
    mean (1 - mean), so the Beta exists; its sd is capped just below that bound for a
    posterior piled at 0 or 1), a lognormal for a positive unbounded quantity, else a
    normal (truncated to the field's range when it is drawn)."""
    if bounds.low >= 0.0 and bounds.high <= 1.0:
        largest = math.sqrt(mean * (1 - mean))
        kind, sd = "beta", min(sd, 0.999 * largest)
    else:
        kind = "lognormal" if bounds.low >= 0.0 and math.isinf(bounds.high) else "normal"
    return {"uncertain": kind, "mean": float(f"{mean:.6g}"), "sd": float(f"{sd:.4g}")}


def _predictive(counts: StageCounts, continues: FloatArray) -> PredictiveCheck:
    """Replicate each cell's counts stage by stage from posterior draws of ``continue``
    (chains x draws x cells x stages)."""
    rng = np.random.default_rng(PREDICTIVE_SEED)
    draws = continues.reshape(-1, *continues.shape[-2:])
    replicated = np.empty((draws.shape[0], *counts.reached.shape))
    replicated[:, :, 0] = counts.reached[:, 0]
    for s in range(draws.shape[-1]):
        replicated[:, :, s + 1] = rng.binomial(
            replicated[:, :, s].astype(np.int64), np.clip(draws[:, :, s], 0.0, 1.0)
        )
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(replicated, [tail, 1 - tail], axis=0)
    observed = counts.reached
    return PredictiveCheck(
        columns=(*counts.stages, "converted"),
        cells=tuple(" / ".join(cell) or "all" for cell in counts.cells),
        observed=observed,
        low=low,
        high=high,
        outside=(observed < low) | (observed > high),
    )


def _spec_nodes(text: str) -> dict[str, Any]:
    """Every mapping node with an ``uncertain`` key in the YAML text, by dotted key
    (list items by their ``name``)."""
    import yaml

    found: dict[str, Any] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            keys = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            if "uncertain" in keys:
                found[".".join(path)] = node
                return
            for name, child in keys.items():
                walk(child, (*path, str(name)))
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                name = position
                if isinstance(item, yaml.MappingNode):
                    name = next(
                        (v.value for k, v in item.value if getattr(k, "value", None) == "name"),
                        position,
                    )
                walk(item, (*path, str(name)))

    walk(yaml.compose(text), ())
    return found


def _inline(spec: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}"


def calibrated_text(text: str, fitted: dict[str, dict[str, Any]]) -> str:
    """The scenario text with each fitted assumption's ``{uncertain: ...}`` replaced by
    its fitted spec, written inline; comments and everything else kept as they were.
    A default coefficient (no spec in the file) is added to ``coefficients``."""
    nodes = _spec_nodes(text)
    spans = sorted(
        (
            (nodes[key].start_mark.index, nodes[key].end_mark.index, spec)
            for key, spec in fitted.items()
            if key in nodes
        ),
        reverse=True,
    )
    for start, end, spec in spans:
        end = start + len(text[start:end].rstrip())  # a block mapping ends at the next key
        text = text[:start] + _inline(spec) + text[end:]
    return _with_coefficients(text, {k: v for k, v in fitted.items() if k not in nodes})


def _with_coefficients(text: str, fitted: dict[str, dict[str, Any]]) -> str:
    """``text`` with the fitted default coefficients (``coefficients.<group>.<name>``):
    a ``coefficients`` section appended, or, when the file has one, merged into it (the
    file then rewritten without its comments)."""
    import yaml

    if not fitted:
        return text
    data = yaml.safe_load(text)
    if "coefficients" not in data:
        lines = ["", "# calibrated by funnelsim calibrate (documented ranges updated by data)"]
        lines.append("coefficients:")
        groups: dict[str, list[str]] = {}
        for key, spec in fitted.items():
            _, group, name = key.split(".")
            groups.setdefault(group, []).append(f"    {name}: {_inline(spec)}")
        for group, fields in groups.items():
            lines += [f"  {group}:", *fields]
        return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    for key, spec in fitted.items():
        _, group, name = key.split(".")
        data["coefficients"].setdefault(group, {})[name] = spec
    header = "# written by funnelsim calibrate (its fitted coefficients merged in)\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def with_posterior(text: str, posterior: str) -> str:
    """The scenario text pointing to the ``posterior`` file of joint draws: a ``posterior``
    key appended with a comment, or the value of the one it has replaced."""
    import yaml

    root = yaml.compose(text)
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        if getattr(key, "value", None) == "posterior":
            start, end = value.start_mark.index, value.end_mark.index
            return text[:start] + posterior + text[end:]
    lines = [
        "",
        "# calibrated by funnelsim calibrate: each world takes one joint draw of the posterior",
        "# (correlations kept); the {uncertain: ...} specs above are its marginals",
        f"posterior: {posterior}",
    ]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
