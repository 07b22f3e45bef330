"""What ``run`` says about what we do not know: effects over possible worlds.

The replications of a run answer "what would happen if the stated values hold",
with a Monte Carlo interval for the replication noise. This module adds the
worlds: quasi-random draws of every uncertain assumption
(:mod:`funnelsim.worlds`), every variant valued in each (exactly where the funnel
allows, so each world costs about a replication's thousandth). Per variant and
metric it reports:

* the interval of the uplift over what we do not know, at ``assumption_level``
  (90% by default): the central estimate shifted by the worlds' quantiles of the
  uplift relative to its central-world value, widened by the Monte Carlo
  half-widths (the two add, so the interval never is narrower than the Monte Carlo
  one and equals it when nothing uncertain enters the uplift);
* P(beats control) and P(best) over worlds: the share of worlds in which the
  variant's expected metric beats the control's, or is the highest;
* which assumptions the spread hangs on (exact worlds only: a simulated world's
  noise would be apportioned too): first-order variance shares estimated
  from the same worlds by RBD-FAST (Tarantola, Gatelli & Mara 2006, with
  the bias correction of Tissot & Prieur 2012). ``funnelsim sensitivity`` gives the
  full Sobol analysis with total indices.

RBD-FAST's share is computed here as SALib's ``rbd_fast.analyze`` computes its ``S1``
(the outputs reordered as in Plischke 2010, their one-sided periodogram, the first
``M`` harmonics' share of its variance, the bias correction), with NumPy's FFT:
importing SALib (pandas, scipy.signal) cost ``run`` about half a second, and its
bootstrap intervals (100 resamples per assumption) are not shown. The tests check
that both agree.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from funnelsim import parallel
from funnelsim.results import AssumptionEffects, Effect
from funnelsim.scenario import Scenario
from funnelsim.worlds import (
    WORLD_METRICS,
    Worlds,
    WorldValues,
    central_world,
    sample_worlds,
    scenario_assumptions,
    world_metrics,
)

FloatArray = NDArray[np.float64]
COUPLED_WORLDS = 32  # at most, worlds simulated (a replication each) for queues or referrals
MIN_WORLDS = 8
RBD_HARMONICS = 6  # SALib's interference parameter M; fewer than its default 10 for few worlds
SHOWN_DRIVERS = 3
MIN_DRIVER_SHARE = 0.01  # smaller (or negative, bias-corrected) shares are noise


def _value_batch(scenario: Scenario, seed: int, worlds: list[dict[str, float]]) -> list[FloatArray]:
    return [world_metrics(scenario, world, seed) for world in worlds]


def _drivers(worlds: Worlds, outputs: FloatArray) -> dict[str, float]:
    """First-order variance shares (RBD-FAST) of ``outputs`` over the worlds, largest
    first; empty when the outputs do not vary."""
    if len(worlds.keys) == 0 or np.ptp(outputs) <= 1e-12 * max(np.abs(outputs).max(), 1e-300):
        return {}
    harmonics = max(1, min(RBD_HARMONICS, len(worlds) // 8))  # M << worlds for few worlds
    shares = {}
    for key, inputs in zip(worlds.keys, worlds.values.T, strict=True):
        share = first_order_share(inputs, outputs, harmonics)
        if np.isfinite(share):
            shares[key] = share
    ranked = sorted(shares.items(), key=lambda item: -item[1])[:SHOWN_DRIVERS]
    return {key: share for key, share in ranked if share >= MIN_DRIVER_SHARE}


def first_order_share(inputs: FloatArray, outputs: FloatArray, harmonics: int) -> float:
    """RBD-FAST's bias-corrected first-order share of the variance of ``outputs`` due to
    ``inputs`` (one assumption's values), with ``harmonics`` (SALib's ``M``); NaN when the
    outputs do not vary.

    ``y = x1 + x2 / 2`` of independent uniforms has first-order shares 0.8 and 0.2:

    >>> x = np.random.default_rng(0).random((256, 2))
    >>> y = x[:, 0] + x[:, 1] / 2
    >>> round(first_order_share(x[:, 0], y, 6), 2), round(first_order_share(x[:, 1], y, 6), 2)
    (0.77, 0.13)
    """
    order = np.argsort(inputs)
    permuted = outputs[np.concatenate([order[::2], order[1::2][::-1]])]
    power = np.abs(np.fft.rfft(permuted - permuted.mean())) ** 2
    power[1 : None if permuted.size % 2 else -1] *= 2  # one-sided: the Nyquist bin once
    with np.errstate(divide="ignore", invalid="ignore"):
        share = power[1 : harmonics + 1].sum() / power[1:].sum()
    bias = 2 * harmonics / permuted.size
    return float(share - bias / (1 - bias) * (1 - share))


def _uplifts(values: FloatArray, variant: int, metric: int) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(values[:, variant, metric] / values[:, 0, metric] - 1.0)


def _effect(
    uplifts: FloatArray,
    at_central: float,
    monte_carlo: tuple[float, float, float],
    level: float,
    prob_best: float,
    drivers: dict[str, float],
) -> Effect:
    mean, mc_low, mc_high = monte_carlo
    finite = uplifts[np.isfinite(uplifts)]
    if finite.size == 0 or not math.isfinite(at_central):
        return Effect(mean, mc_low, mc_high, monte_carlo, math.nan, prob_best, drivers)
    low_q, high_q = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return Effect(
        central=mean,
        low=mc_low + min(float(low_q) - at_central, 0.0),
        high=mc_high + max(float(high_q) - at_central, 0.0),
        monte_carlo=monte_carlo,
        prob_beats_control=float(np.mean(finite > 0)),
        prob_best=prob_best,
        drivers=drivers,
        spread=float(high_q - low_q),
    )


def value_worlds(
    scenario: Scenario, replications: int, seed: int, workers: int = 1, dask: Any = None
) -> WorldValues | None:
    """Every variant of ``scenario`` valued in ``experiment.worlds`` worlds of its uncertain
    assumptions drawn from ``seed``; None when it has none (or ``experiment.assumptions``
    is ``fixed``). The one source of worlds for ``run``'s intervals and for profit
    planning: the same scenario and seed give the same worlds and values.

    Where worlds must be simulated (queues, referrals) there are at most
    ``COUPLED_WORLDS`` and no more than ``replications`` (but ``MIN_WORLDS``), so they
    cost at most about as much as a run; they run on ``workers`` or ``dask`` like the
    replications. Exact worlds are valued in this process."""
    if not scenario_assumptions(scenario):
        return None
    simulated = any(_coupled(scenario))
    n = scenario.experiment.worlds
    if simulated:  # each world costs a replication: at most as many as the run has
        n = min(n, COUPLED_WORLDS, max(MIN_WORLDS, replications))
    worlds = sample_worlds(scenario, n, seed)
    work = functools.partial(_value_batch, scenario, seed)
    items = [worlds.world(i) for i in range(n)]
    # exact worlds cost about a millisecond each: here, not worth a pool or a cluster
    values = np.array(
        parallel.map_batches(work, items, workers, dask) if simulated else work(items)
    )
    return WorldValues(worlds, values, simulated)


def propagate(
    scenario: Scenario,
    monte_carlo: Mapping[str, Mapping[str, Sequence[float]]],
    replications: int,
    seed: int,
    workers: int = 1,
    dask: Any = None,
) -> AssumptionEffects | None:
    """Effects of every variant over the worlds of :func:`value_worlds` (which says how
    many); None when ``scenario`` has no uncertain assumption (or they are fixed).

    ``monte_carlo[variant][metric]`` is the replications' (mean, low, high) uplift."""
    valued = value_worlds(scenario, replications, seed, workers, dask)
    if valued is None:
        return None
    names = scenario.variant_names
    central = world_metrics(scenario, central_world(scenario), seed)
    worlds, values, simulated = valued.worlds, valued.values, valued.simulated
    level = scenario.experiment.assumption_level
    winners = np.argmax(values, axis=1)  # (worlds, metrics)
    prob_best = {
        name: {m: float(np.mean(winners[:, j] == v)) for j, m in enumerate(WORLD_METRICS)}
        for v, name in enumerate(names)
    }
    effects: dict[str, dict[str, Effect]] = {}
    for v, name in enumerate(names[1:], start=1):
        effects[name] = {}
        for j, metric in enumerate(WORLD_METRICS):
            uplifts = _uplifts(values, v, j)
            effects[name][metric] = _effect(
                uplifts,
                float(central[v, j] / central[0, j] - 1.0) if central[0, j] > 0 else math.nan,
                tuple(monte_carlo[name][metric]),  # type: ignore[arg-type]
                level,
                prob_best[name][metric],
                {} if simulated else _drivers(worlds, np.nan_to_num(uplifts)),
            )
    return AssumptionEffects(
        level, len(worlds), tuple(worlds.keys), simulated, effects, prob_best, valued
    )


def _coupled(scenario: Scenario) -> list[bool]:
    """Per variant, whether its visitors are coupled (queues, referrals)."""
    from funnelsim.engine.model import compile_funnel

    return [compile_funnel(scenario.variant(v)).couples_visitors for v in scenario.variant_names]
