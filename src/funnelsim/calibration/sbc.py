"""Simulation-based calibration of the calibration model (Talts et al. 2018).

Each of N fits draws "true" values of the fitted assumptions from their priors, sets
them in the scenario, simulates counts of the same shape as the team's data with
funnelsim's aggregate engine (each observed cell's top count as observed, split over
the scenario cells it covers, then walked stage by stage: exact in distribution for
funnels without queues, which are all calibrate fits) and fits them. If the fits are
right, the rank of each true value among its posterior draws is uniform and the
central 90% intervals cover the truths 90% of the time; ranks piling up at the ends
or in the middle say the posterior is too narrow or too wide.

One model is compiled per batch of fits and refilled with each fit's counts (its data
containers), and every fit has its own seed from ``SeedSequence(seed).spawn``: the
numbers are the same in this process, on local processes or on Dask.

Reference: Talts, Betancourt, Simpson, Vehtari & Gelman (2018), "Validating Bayesian
inference algorithms with simulation-based calibration", arXiv:1804.06788.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from funnelsim.calibration.fit import LEVEL
from funnelsim.calibration.model import (
    Observed,
    calibration_model,
    cell_weights,
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


def simulate_counts(
    data: Observed, truths: Mapping[str, float], seed: np.random.SeedSequence
) -> FloatArray:
    """Counts of ``data``'s shape simulated by the aggregate engine with the assumptions
    at ``truths`` (by key): each observed cell's top count kept and split over the
    scenario cells it covers (multinomial, by their shares), then walked stage by stage
    as a replication walks them."""
    from funnelsim.engine.aggregate import reach_counts
    from funnelsim.engine.draws import VisitorDraws
    from funnelsim.engine.model import compile_funnel
    from funnelsim.worlds import realise

    funnel = compile_funnel(realise(data.scenario, truths))
    weights = cell_weights(data.terms, data.counts)
    options = funnel.cell_probabilities.size // weights.shape[1]  # payment x contact
    reached = np.empty_like(data.counts.reached)
    rows = zip(data.counts.reached[:, 0], weights, seed.spawn(len(weights)), strict=True)
    for row, (top, weight, row_seed) in enumerate(rows):
        draws = VisitorDraws(row_seed, visitors_per_day=0.0, days=1)
        covered = funnel.cell_probabilities * np.repeat(weight > 0, options)
        visitors = draws.generator("cells", 0).multinomial(int(top), covered / covered.sum())
        reached[row] = reach_counts(funnel, visitors, draws).sum(axis=1)
    return reached


def _truths(observed: Sequence[Observed], rng: np.random.Generator) -> dict[str, float]:
    """One draw of every fitted assumption from its prior."""
    return {
        key: float(assumption.values(rng.uniform(size=1))[0])
        for key, assumption in fitted_assumptions(observed).items()
    }


def _data(
    observed: Sequence[Observed], truths: dict[str, float], seed: np.random.SeedSequence
) -> dict[str, FloatArray]:
    """The data containers of every data set, simulated by the engine at ``truths``."""
    containers = {}
    for data, data_seed in zip(observed, seed.spawn(len(observed)), strict=True):
        reached = simulate_counts(data, truths, data_seed)
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
        data_seed = np.random.SeedSequence(rng.integers(2**63, size=2))
        idata = sample(_data(observed, truths, data_seed), int(seed.generate_state(1)[0]))
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
