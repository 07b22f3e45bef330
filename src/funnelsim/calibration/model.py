"""The calibration model: a scenario's uncertain stage rates updated by observed counts.

Parameters are the control's uncertain assumptions ``stages.<name>.rate`` (their
``uncertain:`` specs are the priors). Every other assumption (friction coefficients,
order values) stays at its central value while fitting and keeps its spec afterwards:
counts of one funnel, without past experiments, do not identify them apart from the
rates.

A visitor of cell (segment ``g``, channel ``c``) continues from stage ``s`` with the
probability the engines use (:func:`continue_probabilities`, written once for NumPy
and PyTensor): the base rate with its odds scaled by the cell's intent, its bounce
multiplied by the segment's page-load multiplier (capped at everybody) on stages with
``page_load`` friction, times
the stage's fixed friction factors (form fields, login wall) and the expected
payment/contact factor over the segment's preferences. An observed breakdown cell (a
row of :class:`~funnelsim.calibration.readers.StageCounts`) mixes the scenario cells it
covers, weighted by their shares and by who survived the earlier stages; of the
visitors reaching stage ``s`` a Binomial number continues with that mixed probability
(a Poisson-binomial is narrower than this Binomial, so the likelihood is slightly
conservative when one observed cell mixes several scenario cells).

Refused, with the stage named: stages waiting for a resource (a queue: their rate has
no closed form), stages with a response delay and lead-nurture stages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim import friction
from funnelsim.calibration.readers import StageCounts
from funnelsim.engine.model import CompiledFunnel, compile_funnel
from funnelsim.errors import FunnelsimError
from funnelsim.uncertainty import Assumption, UncertainQuantity

if TYPE_CHECKING:
    import pymc as pm

    from funnelsim.scenario import Scenario

FloatArray = npt.NDArray[np.float64]
BREAKDOWN_FIELDS = {"segment": "segments", "channel": "channels"}


class CalibrationError(FunnelsimError):
    """A scenario or data set that cannot be calibrated, in one line."""


@dataclass(frozen=True)
class FunnelTerms:
    """The constants of a funnel's continue probabilities, and what is calibrated.

    Attributes:
        stages: Stage names.
        rates: Each stage's base rate at its central value.
        intent: (G, C) odds ratio of each segment x channel cell.
        bounce: (S, G) page-load bounce multiplier (1 where a stage has no page_load).
        factor: (S, G, C) fixed friction times the expected payment/contact factor.
        shares: (G, C) share of visitors in each cell.
        calibrated: The rate assumptions fitted, with the index of their stage.
    """

    stages: tuple[str, ...]
    segments: tuple[str, ...]
    channels: tuple[str, ...]
    rates: FloatArray
    intent: FloatArray
    bounce: FloatArray
    factor: FloatArray
    shares: FloatArray
    calibrated: tuple[tuple[Assumption, int], ...]


def continue_probabilities(
    rates: Any, intent: Any, bounce: Any, factor: Any, xp: ModuleType = np
) -> Any:
    """(S, G, C) continue probabilities from (S,) base rates; ``xp`` is NumPy or
    ``pytensor.tensor`` (the same expression in both). The bounce ``1 - rate`` (after
    intent) is multiplied by the page-load multiplier and capped at 1, as
    :func:`funnelsim.friction.page_load_factor` does; ``bounce`` is 1 without it."""
    rate = xp.reshape(rates, (-1, 1, 1))
    scaled = rate * intent / (1.0 - rate + rate * intent)
    return (1.0 - xp.minimum(bounce[:, :, None] * (1.0 - scaled), 1.0)) * factor


def expected_continue(probabilities: Any, weights: Any, xp: ModuleType = np) -> Any:
    """(rows, S): for each observed cell (``weights``: its share of each scenario cell,
    shape (rows, G*C)), the share of visitors reaching stage ``s`` who continue."""
    flat = xp.reshape(probabilities, (probabilities.shape[0], -1))
    survived = xp.cumprod(flat, axis=0)
    before = xp.concatenate([xp.ones_like(flat[:1]), survived[:-1]], axis=0)
    return xp.dot(weights, survived.T) / xp.dot(weights, before.T)


def refuse_uncalibratable(scenario: Scenario) -> None:
    """Raise :class:`CalibrationError` naming the first stage without a closed-form rate."""
    for stage in scenario.stages:
        if stage.resource is not None:
            raise CalibrationError(
                f"stage {stage.name!r} waits for resource {stage.resource!r} (a queue): its "
                "rate has no closed form, and calibrate fits funnels without queues only"
            )
        if stage.response_delay_min is not None or stage.nurture is not None:
            what = "a response delay" if stage.nurture is None else "lead nurture"
            raise CalibrationError(
                f"stage {stage.name!r} has {what}: calibrate does not model it yet; "
                "calibrate a copy of the scenario without it"
            )


def mean_cell_continue(funnel: CompiledFunnel) -> FloatArray:
    """(S, G, C): the engine's continue probabilities averaged over each segment's
    preferred payment and contact options."""
    n_g, n_c, n_p, n_k = funnel.cell_shape
    cells = funnel.cell_continue.reshape(len(funnel.stages), n_g, n_c, n_p, n_k)
    payment = np.diff(funnel.payment_cdf, axis=1, prepend=0.0)
    contact = np.diff(funnel.contact_cdf, axis=1, prepend=0.0)
    return np.asarray(np.einsum("sgcpk,gp,gk->sgc", cells, payment, contact))


def funnel_terms(scenario: Scenario) -> FunnelTerms:
    """The control's continue-probability constants and its uncertain stage rates.

    The friction that does not depend on the rate (form fields, login wall, options) is
    read off the engine's compiled funnel: its continue probability divided by the
    rate-dependent part at the central rates."""
    control = scenario.variant(scenario.variant_names[0])
    refuse_uncalibratable(control)
    funnel = compile_funnel(control)
    load_s = np.array([g.page_load_s for g in control.segments.values()])
    multiplier = np.asarray(
        friction.bounce_multiplier(load_s, control.coefficients.page_load), dtype=float
    )
    bounce = np.array(
        [multiplier if st.friction.page_load else np.ones_like(multiplier) for st in control.stages]
    )
    intent = np.array(
        [
            [g.intent * c.intent for c in control.traffic.channels.values()]
            for g in control.segments.values()
        ]
    )
    rates = np.array([st.rate for st in control.stages], dtype=float)
    rate_part = continue_probabilities(rates, intent, bounce, np.ones(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(rate_part > 0, mean_cell_continue(funnel) / rate_part, 1.0)
    segment_shares = np.diff(funnel.segment_cdf, prepend=0.0)
    channel_shares = np.diff(funnel.channel_cdf, prepend=0.0)
    index = {f"stages.{name}.rate": s for s, name in enumerate(funnel.stages)}
    calibrated = tuple(
        (a, index[a.field]) for a in control.assumptions if a.field in index and a.key == a.field
    )
    return FunnelTerms(
        stages=funnel.stages,
        segments=funnel.segments,
        channels=funnel.channels,
        rates=rates,
        intent=intent,
        bounce=bounce,
        factor=factor,
        shares=segment_shares[:, None] * channel_shares[None, :],
        calibrated=calibrated,
    )


def cell_weights(terms: FunnelTerms, counts: StageCounts) -> FloatArray:
    """(rows, G*C): each observed cell's share of the scenario's cells (breakdown
    columns ``segment`` and ``channel`` select them; other breakdowns mix them all)."""
    names = {"segment": terms.segments, "channel": terms.channels}
    weights = np.empty((len(counts.cells), terms.shares.size))
    for row, cell in enumerate(counts.cells):
        mask = np.ones(terms.shares.shape, dtype=bool)
        for column, value in zip(counts.breakdown, cell, strict=True):
            if column not in names:
                continue
            if value not in names[column]:
                known = ", ".join(names[column])
                raise CalibrationError(
                    f"{counts.source}: {column} {value!r} is not in the scenario ({known})"
                )
            position = names[column].index(value)
            selector = (position, slice(None)) if column == "segment" else (slice(None), position)
            keep = np.zeros_like(mask)
            keep[selector] = True
            mask &= keep
        weights[row] = np.where(mask, terms.shares, 0.0).reshape(-1)
        if weights[row].sum() <= 0:
            raise CalibrationError(f"{counts.source}: cell {cell} has no visitors in the scenario")
    return weights


def match_stages(terms: FunnelTerms, counts: StageCounts, by_position: bool) -> None:
    """Check that the data's stages are the scenario's (by name, or by position when
    the columns were named explicitly)."""
    if len(counts.stages) != len(terms.stages):
        raise CalibrationError(
            f"{counts.source}: {len(counts.stages)} stage columns before the converted one "
            f"({', '.join(counts.stages)}), but the scenario has {len(terms.stages)} stages "
            f"({', '.join(terms.stages)})"
        )
    if not by_position and counts.stages != terms.stages:
        raise CalibrationError(
            f"{counts.source}: stage columns {', '.join(counts.stages)} are not the scenario's "
            f"stages {', '.join(terms.stages)}; name the columns in funnel order with "
            "--stage-columns (the converted column last)"
        )


def prior(name: str, spec: UncertainQuantity, low: float, high: float) -> pm.Distribution:
    """The PyMC random variable of an uncertain spec, within the field's range."""
    import pymc as pm

    kind = spec.uncertain  # type: ignore[attr-defined]
    if kind == "uniform":
        return pm.Uniform(name, lower=spec.low, upper=spec.high)  # type: ignore[attr-defined]
    if kind == "normal":
        return pm.TruncatedNormal(
            name,
            mu=spec.mean,  # type: ignore[attr-defined]
            sigma=spec.sd,  # type: ignore[attr-defined]
            lower=low if math.isfinite(low) else None,
            upper=high if math.isfinite(high) else None,
        )
    if kind == "beta":
        alpha, beta = spec.shape  # type: ignore[attr-defined]
        return pm.Beta(name, alpha=alpha, beta=beta)
    if kind == "lognormal":
        sigma2 = math.log1p((spec.sd / spec.mean) ** 2)  # type: ignore[attr-defined]
        mu = math.log(spec.mean) - sigma2 / 2  # type: ignore[attr-defined]
        return pm.LogNormal(name, mu=mu, sigma=math.sqrt(sigma2))
    return pm.Triangular(name, lower=spec.low, c=spec.mode, upper=spec.high)  # type: ignore[attr-defined]


def calibration_model(terms: FunnelTerms, counts: StageCounts) -> pm.Model:
    """Priors from the uncertain rates, Binomial transitions per observed cell."""
    import pymc as pm
    import pytensor.tensor as pt

    weights = cell_weights(terms, counts)
    trials, successes = counts.transitions()
    coords = {"cell": [" / ".join(c) or "all" for c in counts.cells], "stage": list(terms.stages)}
    with pm.Model(coords=coords) as model:
        rates: Sequence[Any] = list(terms.rates)
        for assumption, s in terms.calibrated:
            spec = assumption.spec
            rates[s] = prior(assumption.key, spec, assumption.bounds.low, assumption.bounds.high)  # type: ignore[index]
        probabilities = continue_probabilities(
            pt.stack([pt.as_tensor_variable(r) for r in rates]),
            terms.intent,
            terms.bounce,
            terms.factor,
            pt,
        )
        expected = pm.Deterministic(
            "continue", expected_continue(probabilities, weights, pt), dims=("cell", "stage")
        )
        pm.Binomial(
            "transitions",
            n=trials,
            p=pt.clip(expected, 0.0, 1.0),
            observed=successes,
            dims=("cell", "stage"),
        )
    return model
