"""Fitting the calibration model, checking it against the data, and the calibrated file.

:func:`calibrate_counts` samples the posterior of the scenario's uncertain stage rates
given observed counts (:mod:`funnelsim.calibration.model`), compares prior and
posterior, replicates the observed stage counts from the posterior (the posterior
predictive check) and writes the scenario back with each calibrated assumption replaced
by a Beta fitted to its posterior draws (mean and sd), so that ``run`` draws its worlds
from what the data say.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim.calibration.model import calibration_model, funnel_terms, match_stages
from funnelsim.calibration.readers import StageCounts

if TYPE_CHECKING:
    import arviz as az
    import pandas

    from funnelsim.analysis.models import Diagnostics, SamplerSettings
    from funnelsim.scenario import Scenario
    from funnelsim.uncertainty import Assumption

FloatArray = npt.NDArray[np.float64]
LEVEL = 0.9
"""Level of every interval in a calibration: prior, posterior and predictive."""
PREDICTIVE_SEED = 20261130


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
    not_calibrated: tuple[str, ...] = ()

    def __repr__(self) -> str:
        lines = [f"Calibration of {self.scenario!r} to {self.source} ({LEVEL:.0%} intervals)"]
        for u in self.updates:
            lines.append(
                f"  {u.key}: prior {u.prior_mean:.4g} [{u.prior_interval[0]:.4g}, "
                f"{u.prior_interval[1]:.4g}] -> posterior {u.posterior_mean:.4g} "
                f"[{u.posterior_interval[0]:.4g}, {u.posterior_interval[1]:.4g}], "
                f"narrowed {u.narrowed:.0%}"
            )
        outside = int(self.predictive.outside.sum())
        lines.append(f"  posterior predictive: {outside} observed count(s) outside their interval")
        lines.append(f"  fit {'reliable' if self.diagnostics.reliable else 'UNRELIABLE'}")
        lines.extend(f"    {p}" for p in self.diagnostics.problems)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything in ``calibration.json``: plain numbers, lists and strings."""
        from funnelsim.analysis.models import diagnostics_dict

        check = self.predictive
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
            "not_calibrated": list(self.not_calibrated),
            "posterior_predictive": [
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
            ],
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


def calibrate_counts(
    scenario: Scenario,
    scenario_text: str,
    counts: StageCounts,
    settings: SamplerSettings,
    by_position: bool = False,
) -> Calibration:
    """Fit the scenario's uncertain stage rates to ``counts``; see :class:`Calibration`.

    Raises:
        CalibrationError: a queue (or other stage without a closed form), stages or
            breakdown values that do not match, or no uncertain stage rate to calibrate.
    """
    from funnelsim.analysis.models import sample
    from funnelsim.calibration.model import CalibrationError

    terms = funnel_terms(scenario)
    match_stages(terms, counts, by_position)
    if not terms.calibrated:
        raise CalibrationError(
            f"{scenario.name}: no stage rate is uncertain; write the rates to calibrate as "
            "{uncertain: ...} (for example rate: {uncertain: beta, mean: 0.5, sd: 0.2})"
        )
    fit = sample(calibration_model(terms, counts), settings)
    posterior = fit.idata.posterior
    updates = tuple(
        _update(assumption, np.asarray(posterior[assumption.key]).reshape(-1))
        for assumption, _ in terms.calibrated
    )
    calibrated_keys = {u.key for u in updates}
    control = scenario.variant(scenario.variant_names[0])
    return Calibration(
        scenario=scenario.name,
        source=counts.source,
        updates=updates,
        predictive=_predictive(counts, np.asarray(posterior["continue"])),
        diagnostics=fit.diagnostics,
        idata=fit.idata,
        calibrated_yaml=calibrated_text(scenario_text, {u.key: u.fitted for u in updates}),
        not_calibrated=tuple(a.key for a in control.assumptions if a.key not in calibrated_keys),
    )


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
        fitted=fitted_spec(mean, sd),
    )


def fitted_spec(mean: float, sd: float) -> dict[str, Any]:
    """A Beta with the posterior's mean and sd, as an uncertain spec (a probability's
    variance is below mean (1 - mean), so the Beta always exists; it is capped just
    below that bound for a posterior piled at 0 or 1)."""
    largest = math.sqrt(mean * (1 - mean))
    return {
        "uncertain": "beta",
        "mean": float(f"{mean:.6g}"),
        "sd": float(f"{min(sd, 0.999 * largest):.4g}"),
    }


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


def calibrated_text(text: str, fitted: dict[str, dict[str, Any]]) -> str:
    """The scenario text with each fitted assumption's ``{uncertain: ...}`` replaced by
    its fitted spec, written inline; comments and everything else kept as they were."""
    nodes = _spec_nodes(text)
    spans = sorted(
        (
            (nodes[key].start_mark.index, nodes[key].end_mark.index, spec)
            for key, spec in fitted.items()
        ),
        reverse=True,
    )
    for start, end, spec in spans:
        inline = "{" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}"
        end = start + len(text[start:end].rstrip())  # a block mapping ends at the next key
        text = text[:start] + inline + text[end:]
    return text
