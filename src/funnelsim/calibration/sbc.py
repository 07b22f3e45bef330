"""Simulation-based calibration of the calibration model (Talts et al. 2018).

Each of N fits draws "true" values of the fitted assumptions from their priors,
simulates counts of the same shape as the team's data (each observed cell's top count
as observed, then every stage a Binomial with the model's continue probability: the
model's prior predictive) and fits them. If the fits are right, the rank of each true
value among its posterior draws is uniform and the central 90% intervals cover the
truths 90% of the time; ranks piling up at the ends or in the middle say the posterior
is too narrow or too wide.

One model is compiled per batch of fits and refilled with each fit's counts (its data
containers), and every fit has its own seed from ``SeedSequence(seed).spawn``: the
numbers are the same in this process, on local processes or on Dask.

Reference: Talts, Betancourt, Simpson, Vehtari & Gelman (2018), "Validating Bayesian
inference algorithms with simulation-based calibration", arXiv:1804.06788.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim.calibration.fit import LEVEL
from funnelsim.calibration.model import (
    Observed,
    calibration_model,
    cell_weights,
    continue_probabilities,
    expected_continue,
    fitted_assumptions,
)
from funnelsim.execution import SERIAL, Execution

if TYPE_CHECKING:
    import pymc as pm

    from funnelsim.analysis.models import SamplerSettings

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RANK_DRAWS = 99
"""Posterior draws each truth is ranked among (evenly thinned): ranks 0..99."""
BINS = 10
"""Bins of the rank histogram tested for uniformity (10 ranks each)."""


@dataclass(frozen=True)
class SBCResult:
    """Ranks and interval coverage of the true values over many simulated fits.

    Attributes:
        keys: The fitted assumptions.
        seed: The seed the fits' seeds were spawned from.
        ranks: (fits, assumptions) rank of each truth among ``RANK_DRAWS`` draws.
        covered: (fits, assumptions) True where the central ``LEVEL`` interval of all
            the fit's draws holds the truth.
        divergences: (fits,) divergent transitions of each fit.
    """

    keys: tuple[str, ...]
    seed: int
    ranks: IntArray
    covered: npt.NDArray[np.bool_]
    divergences: IntArray

    @property
    def fits(self) -> int:
        return int(self.ranks.shape[0])

    def histogram(self) -> IntArray:
        """(assumptions, ``BINS``) fits whose rank falls in each bin."""
        bins = self.ranks * BINS // (RANK_DRAWS + 1)
        return np.stack([np.bincount(column, minlength=BINS) for column in bins.T])

    def uniformity(self) -> FloatArray:
        """Per assumption, the chi-square test's p-value that the ranks are uniform."""
        from scipy import stats

        return np.asarray(stats.chisquare(self.histogram(), axis=1).pvalue, dtype=float)

    def coverage(self) -> FloatArray:
        """Per assumption, the share of fits whose ``LEVEL`` interval holds the truth."""
        return np.asarray(self.covered.mean(axis=0), dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """``sbc.json``: per assumption the coverage, the rank histogram and its test."""
        p_values, coverage, histogram = self.uniformity(), self.coverage(), self.histogram()
        return {
            "fits": self.fits,
            "seed": self.seed,
            "interval_level": LEVEL,
            "rank_draws": RANK_DRAWS,
            "divergent_fits": int((self.divergences > 0).sum()),
            "assumptions": {
                key: {
                    "coverage": float(coverage[i]),
                    "rank_histogram": histogram[i].tolist(),
                    "uniformity_p_value": float(p_values[i]),
                    "ranks": self.ranks[:, i].tolist(),
                }
                for i, key in enumerate(self.keys)
            },
        }

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def __repr__(self) -> str:
        lines = [
            f"Simulation-based calibration: {self.fits} fits, truths drawn from the priors "
            f"({LEVEL:.0%} intervals; ranks among {RANK_DRAWS} draws in {BINS} bins)"
        ]
        p_values, coverage = self.uniformity(), self.coverage()
        for i, key in enumerate(self.keys):
            lines.append(
                f"  {key}: covered {coverage[i]:.0%}, rank uniformity p = {p_values[i]:.3g}, "
                f"ranks per bin {' '.join(map(str, self.histogram()[i]))}"
            )
        lines.append(f"  fits with divergences: {int((self.divergences > 0).sum())}")
        return "\n".join(lines)


def simulate_counts(observed: Observed, values: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Counts of ``observed``'s shape at ``values`` (its value slots): each cell's top
    count kept, then stage by stage a Binomial with the model's continue probability."""
    weights = cell_weights(observed.terms, observed.counts)
    with np.errstate(invalid="ignore"):  # nobody left to continue: 0 / 0
        expected = expected_continue(continue_probabilities(values, observed.terms), weights)
    expected = np.nan_to_num(expected, nan=0.0)
    reached = np.empty_like(observed.counts.reached)
    reached[:, 0] = observed.counts.reached[:, 0]
    for s in range(expected.shape[1]):
        reached[:, s + 1] = rng.binomial(
            reached[:, s].astype(np.int64), np.clip(expected[:, s], 0, 1)
        )
    return reached


def _truths(observed: Sequence[Observed], rng: np.random.Generator) -> dict[str, float]:
    """One draw of every fitted assumption from its prior."""
    return {
        key: float(assumption.values(rng.uniform(size=1))[0])
        for key, assumption in fitted_assumptions(observed).items()
    }


def _data(
    observed: Sequence[Observed], truths: dict[str, float], rng: np.random.Generator
) -> dict[str, FloatArray]:
    """The data containers of every data set, simulated at ``truths``."""
    containers = {}
    for data in observed:
        values = data.terms.values.copy()
        for slot, assumption in data.terms.fitted():
            values[slot] = truths[assumption.key]
        reached = simulate_counts(data, values, rng)
        suffix = "" if data.label == "data" else f"[{data.label}]"
        containers[f"reached{suffix}"] = reached[:, :-1]
        containers[f"continued{suffix}"] = reached[:, 1:]
    return containers


Sampler = Callable[[dict[str, FloatArray], int], Any]


def _sampler(model: pm.Model, settings: SamplerSettings) -> Sampler:
    """A function from data containers and a seed to the fit's InferenceData, compiling
    ``model`` once (chains run one after the other: the fits are the parallel work)."""
    from funnelsim.analysis.models import resolve_sampler

    if resolve_sampler(settings.sampler) == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)

        def run_nutpie(data: dict[str, FloatArray], seed: int) -> Any:
            return nutpie.sample(
                compiled.with_data(**data),
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                seed=seed,
                target_accept=settings.target_accept,
                progress_bar=False,
                cores=1,
            )

        return run_nutpie
    import pymc as pm

    def run_pymc(data: dict[str, FloatArray], seed: int) -> Any:
        with model:
            pm.set_data(data)
            return pm.sample(
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                cores=1,
                random_seed=seed,
                target_accept=settings.target_accept,
                progressbar=False,
                compute_convergence_checks=False,
            )

    return run_pymc


def _rank(draws: FloatArray, truth: float) -> int:
    """Rank of ``truth`` among ``RANK_DRAWS`` draws thinned evenly from ``draws``."""
    flat = draws.reshape(-1)
    thinned = flat[np.linspace(0, len(flat) - 1, RANK_DRAWS).round().astype(int)]
    return int((thinned < truth).sum())


def _fit_batch(
    observed: tuple[Observed, ...], settings: SamplerSettings, seeds: list[np.random.SeedSequence]
) -> list[tuple[list[int], list[bool], int]]:
    """Simulate and fit one batch: per fit the ranks, coverage and divergences."""
    keys = list(fitted_assumptions(observed))
    tail = (1 - LEVEL) / 2
    sample = _sampler(calibration_model(observed), settings)
    results = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truths = _truths(observed, rng)
        idata = sample(_data(observed, truths, rng), int(seed.generate_state(1)[0]))
        ranks, covered = [], []
        for key in keys:
            draws = np.asarray(idata.posterior[key])
            low, high = np.quantile(draws, [tail, 1 - tail])
            ranks.append(_rank(draws, truths[key]))
            covered.append(bool(low <= truths[key] <= high))
        results.append((ranks, covered, int(np.asarray(idata.sample_stats["diverging"]).sum())))
    return results


def _fit_chunks(
    observed: tuple[Observed, ...],
    settings: SamplerSettings,
    chunks: list[list[np.random.SeedSequence]],
) -> list[list[tuple[list[int], list[bool], int]]]:
    return [_fit_batch(observed, settings, chunk) for chunk in chunks]


def simulation_based_calibration(
    observed: Sequence[Observed],
    fits: int,
    settings: SamplerSettings,
    execution: Execution = SERIAL,
) -> SBCResult:
    """``fits`` fits of data simulated from the priors, shaped as ``observed``'s, their
    seeds spawned from ``settings.seed``; run here, on local processes or on Dask
    (``execution``), with the same numbers."""
    from funnelsim import parallel

    seeds = np.random.SeedSequence(settings.seed).spawn(fits)
    workers = execution.processes
    chunks = parallel.batches(seeds, workers, per_worker=1)  # one compile per chunk
    work = functools.partial(_fit_chunks, tuple(observed), settings)
    batches = parallel.map_batches(work, chunks, workers, execution.dask)
    rows = [row for chunk in batches for row in chunk]
    return SBCResult(
        keys=tuple(fitted_assumptions(observed)),
        seed=settings.seed,
        ranks=np.array([r for r, _, _ in rows], dtype=np.int64),
        covered=np.array([c for _, c, _ in rows], dtype=bool),
        divergences=np.array([d for _, _, d in rows], dtype=np.int64),
    )
