"""Aggregate-only simulation: draw the counts, not the visitors.

A shop that wants last month's conversion rate does not follow every shopper
through the aisles: it counts how many came in, how many reached each shelf
and how many paid. When a question needs only such counts and sums, the same
is true of a simulation: the number of visitors lost at a stage is binomial
given the number who reached it, so it can be drawn in one step, however many
visitors there are.

Where nothing is shared (no queue), the visitors of one *cell* (segment x
channel x preferred payment method x preferred contact option, see
:mod:`funnelsim.engine.model`) are exchangeable, and a replication is drawn as:

1. the number of visitors, Poisson(visitors_per_day x days) (the very count
   the per-visitor engines use), split over the cells by a multinomial draw;
2. stage by stage, each cell's visitors split multinomially into *lost to
   page load, form, login wall, payment, contact, base rate, late response* or
   *continue*, with probabilities the widths of the nested thresholds of the
   continue uniform, so the loss reasons are those the per-visitor engines
   report (a late response averages the response curve over the delay's
   distribution, :func:`funnelsim.friction.mean_response_continue`);
3. the buyers' order values: their sum from its closed form where one exists
   (a sum of k Gamma(a, s) values is Gamma(k a, s), exponentials are gammas,
   constants multiply), otherwise by drawing the buyers' values only;
4. the simulated A/B test: each cell's visitors split over the variants
   (multinomial), and an arm's buyers Binomial(arm visitors, P(buy | cell)).

The buyers' lifetimes after the first order are drawn by cohort too, as survivors per
cell and month (:mod:`funnelsim.experiment.cohorts`). Cost grows with stages x cells
(and months), and with buyers only where their order values have no closed-form sum
(log-normal, uniform, empirical: drawn in chunks, memory stays flat), not with
visitors: a hundred million visitors take about as long as ten thousand. Variants share the cell
counts, the stream of each stage and the buyers' order values (variants with
more buyers in a cell add values to the same ones), so their differences stay
less noisy than independent runs, though not coupled visitor by visitor as in
the per-visitor engines. Results agree in distribution with them (tested in
``tests/test_equivalence.py``).

References:
    Fishman, G. S. (1996), Monte Carlo: Concepts, Algorithms and Applications,
    Springer, section 3.13 (multinomial sampling by conditional binomials).
    Johnson, N. L., Kotz, S. & Balakrishnan, N. (1994), Continuous Univariate
    Distributions vol. 1, 2nd ed., Wiley, ch. 17 (sums of gamma variables).
    Devroye, L. (1986), Non-Uniform Random Variate Generation, Springer, ch. XI
    (gamma variables over their sum are Dirichlet, independent of the sum).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.random import Generator
from numpy.typing import NDArray

from funnelsim import friction
from funnelsim.engine.draws import VisitorDraws
from funnelsim.engine.model import (
    CompiledFunnel,
    VariantRuns,
    outcome_from_cells,
    refuse_coupled_visitors,
)
from funnelsim.engine.outcomes import REASONS, Outcome
from funnelsim.friction import FRICTION_REASONS
from funnelsim.scenario.schema import Constant, Distribution, Exponential, Gamma, LogNormal, Uniform

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
EXACT_SUM_LIMIT = 10_000  # closed-form order value sums above this many buyers per cell
VALUE_CHUNK = 1 << 20  # order values drawn at a time, so memory stays flat
OUTCOMES = (*FRICTION_REASONS, "rate", "response", "continue")
_CONTINUE = len(OUTCOMES) - 1


def _kept(funnel: CompiledFunnel) -> FloatArray:
    """(stages, cells): the continue probability after any response delay."""
    p = funnel.cell_continue
    decaying = [s for s in range(len(p)) if funnel.stage(s).friction.response_decay]
    if not decaying:
        return p
    kept = p.copy()
    for s in decaying:
        delay = funnel.stage(s).response_delay_min
        kept[s] = friction.mean_response_continue(p[s], delay, funnel.response)
    return kept


def continue_probabilities(funnel: CompiledFunnel) -> FloatArray:
    """(stages, cells): the chance a visitor of a cell who reaches a stage continues,
    the last outcome of :func:`outcome_probabilities` (without the others)."""
    return np.clip(_kept(funnel), 0.0, 1.0)


def outcome_probabilities(funnel: CompiledFunnel) -> FloatArray:
    """(stages, cells, outcomes): the chance a visitor of a cell who reaches a stage
    leaves it for each reason of ``OUTCOMES`` or continues."""
    thresholds = funnel.cell_thresholds  # (S, cells, friction reasons), decreasing
    n_s, n_cells, n_f = thresholds.shape
    upper = np.concatenate([np.ones((n_s, n_cells, 1)), thresholds], axis=2)
    probs = np.empty((n_s, n_cells, len(OUTCOMES)))
    probs[..., :n_f] = upper[..., :-1] - upper[..., 1:]
    p = funnel.cell_continue
    probs[..., n_f] = thresholds[..., -1] - p
    kept = _kept(funnel)
    probs[..., n_f + 1] = p - kept
    probs[..., _CONTINUE] = kept
    return np.clip(probs, 0.0, 1.0)


def _walk(probs: FloatArray, draws: VisitorDraws, visitors: IntArray) -> tuple[IntArray, IntArray]:
    """Visitors reaching each stage (S + 1, cells) and lost there by reason (S, R, cells),
    given ``outcome_probabilities``; stage s draws from its own stream."""
    n_s, n_cells = probs.shape[:2]
    reached = np.zeros((n_s + 1, n_cells), np.int64)
    lost = np.zeros((n_s, len(REASONS), n_cells), np.int64)
    alive = visitors
    for s in range(n_s):
        reached[s] = alive
        counts = draws.generator("thin", s).multinomial(alive, probs[s])
        lost[s, :_CONTINUE] = counts[:, :_CONTINUE].T
        alive = counts[:, _CONTINUE]
    reached[n_s] = alive
    return reached, lost


def reach_counts(funnel: CompiledFunnel, visitors: IntArray, draws: VisitorDraws) -> IntArray:
    """(stages + 1, cells): of ``visitors`` per cell, those reaching each stage and, in
    the last row, buying, drawn stage by stage as a replication draws them."""
    return _walk(outcome_probabilities(funnel), draws, visitors)[0]


def _draw_values(dist: Distribution, count: int, rng: Generator) -> FloatArray:
    """``count`` independent order values."""
    if isinstance(dist, LogNormal):
        mu, sigma = dist.log_params
        return rng.lognormal(mu, sigma, count)
    if isinstance(dist, Gamma):
        shape, scale = dist.shape_scale
        return rng.gamma(shape, scale, count)
    if isinstance(dist, Exponential):
        return rng.exponential(dist.mean, count)
    if isinstance(dist, Uniform):
        return rng.uniform(dist.low, dist.high, count)
    return np.asarray(dist.ppf(rng.random(count)))


def _gamma_params(dist: Distribution) -> tuple[float, float] | None:
    if isinstance(dist, Gamma):
        return dist.shape_scale
    if isinstance(dist, Exponential):
        return 1.0, dist.mean
    return None


def _sum_of_squares_share(shape: float, count: int) -> tuple[float, float]:
    """Mean and variance of sum_i D_i^2 for D ~ Dirichlet(shape, ..., shape), ``count`` parts.

    For gamma values X_i = S D_i with S the sum, independent of D, so
    sum X_i^2 = S^2 sum D_i^2; the moments follow from the Dirichlet's.
    """
    a, total = shape, shape * count
    rising = total * (total + 1.0)
    rising4 = rising * (total + 2.0) * (total + 3.0)
    second = a * (a + 1.0) / rising
    fourth = a * (a + 1.0) * (a + 2.0) * (a + 3.0) / rising4
    cross = (a * (a + 1.0)) ** 2 / rising4
    mean = count * second
    variance = count * fourth + count * (count - 1.0) * cross - mean**2
    return mean, max(variance, 0.0)


def value_sums(dist: Distribution, count: int, rng: Generator) -> tuple[float, float]:
    """Sum and sum of squares of ``count`` order values.

    Closed forms: constants multiply; a gamma (or exponential) sum above
    ``EXACT_SUM_LIMIT`` values is one Gamma draw, and its sum of squares is
    drawn from a normal with the exact conditional mean and variance (its
    relative error in distribution shrinks as 1/sqrt(count)). Otherwise the
    values are drawn, ``VALUE_CHUNK`` at a time.
    """
    if count == 0:
        return 0.0, 0.0
    if isinstance(dist, Constant):
        return count * dist.value, count * dist.value**2
    gamma = _gamma_params(dist)
    if gamma is not None and count > EXACT_SUM_LIMIT:
        shape, scale = gamma
        total = float(rng.gamma(shape * count, scale))
        mean, variance = _sum_of_squares_share(shape, count)
        share = float(np.clip(rng.normal(mean, np.sqrt(variance)), 1.0 / count, 1.0))
        return total, total**2 * share
    total = total_sq = 0.0
    for start in range(0, count, VALUE_CHUNK):
        values = _draw_values(dist, min(VALUE_CHUNK, count - start), rng)
        total += float(values.sum())
        values *= values
        total_sq += float(values.sum())
    return total, total_sq


def _nested_sums(
    dist: Distribution, buyers: IntArray, rng: Generator
) -> tuple[FloatArray, FloatArray]:
    """Order value sums for several buyer counts of one cell, nested: a larger count
    adds values to those of the smaller ones (the variants share their buyers' values)."""
    sums, squares = np.zeros(len(buyers)), np.zeros(len(buyers))
    done, total, total_sq = 0, 0.0, 0.0
    for count in np.unique(buyers):
        more, more_sq = value_sums(dist, int(count) - done, rng)
        done, total, total_sq = int(count), total + more, total_sq + more_sq
        sums[buyers == count], squares[buyers == count] = total, total_sq
    return sums, squares


def _revenue(
    funnels: Sequence[CompiledFunnel], buyers: Sequence[IntArray], rng: Generator
) -> list[tuple[FloatArray, FloatArray]]:
    """Per variant, by cell, the sum and sum of squares of the buyers' order values, drawn
    from the distribution of the cell's segment and channel. Variants with the same cells
    and the same distribution there share values."""
    sums = [(np.zeros(b.shape), np.zeros(b.shape)) for b in buyers]
    groups: dict[tuple[int, ...], list[int]] = {}
    for v, funnel in enumerate(funnels):
        groups.setdefault(funnel.cell_shape, []).append(v)
    for (_, n_c, n_p, n_k), members in groups.items():
        counts = np.array([buyers[v] for v in members])
        for cell in np.flatnonzero(counts.any(axis=0)):
            g, c = divmod(int(cell) // (n_p * n_k), n_c)
            dists = [funnels[v].order_value_dists[g][c] for v in members]
            for dist in dict.fromkeys(dists):
                rows = [i for i, d in enumerate(dists) if d == dist]
                total, total_sq = _nested_sums(dist, counts[rows, cell], rng)
                for row, value, square in zip(rows, total, total_sq, strict=True):
                    sums[members[row]][0][cell], sums[members[row]][1][cell] = value, square
    return sums


def simulate(funnel: CompiledFunnel, draws: VisitorDraws) -> Outcome:
    """One variant's outcome on one replication, drawn as counts."""
    return simulate_variants([funnel], draws, [1.0]).outcomes[0]


def simulate_variants(
    funnels: Sequence[CompiledFunnel], draws: VisitorDraws, shares: Sequence[float]
) -> VariantRuns:
    """Every variant on one replication, plus the A/B test split by ``shares``."""
    refuse_coupled_visitors(funnels, "aggregate")
    probs = [outcome_probabilities(f) for f in funnels]
    cell_counts: dict[bytes, IntArray] = {}
    walks = []
    for funnel, prob in zip(funnels, probs, strict=True):
        key = funnel.cell_probabilities.tobytes()
        if key not in cell_counts:
            cell_counts[key] = (
                draws.generator("cells", 0)
                .multinomial(draws.n_visitors, funnel.cell_probabilities)
                .astype(np.int64)
            )
        walks.append(_walk(prob, draws, cell_counts[key]))
    revenue = _revenue(
        funnels, [reached[-1] for reached, _ in walks], draws.generator("revenue", 0)
    )
    outcomes = []
    for funnel, (reached, lost), (total, total_sq) in zip(funnels, walks, revenue, strict=True):
        n_sc = len(funnel.segments) * len(funnel.channels)
        outcomes.append(
            outcome_from_cells(
                funnel,
                reached,
                lost,
                total.reshape(n_sc, -1).sum(axis=1),
                total_sq.reshape(n_sc, -1).sum(axis=1),
            )
        )
    buy_chance = [p[..., _CONTINUE].prod(axis=0) for p in probs]
    return VariantRuns(outcomes, *split_test(funnels, buy_chance, shares, draws), "aggregate")


def split_test(
    funnels: Sequence[CompiledFunnel],
    buy_chance: Sequence[FloatArray],
    shares: Sequence[float],
    draws: VisitorDraws,
) -> tuple[IntArray, IntArray]:
    """Per variant, the test's visitors and buyers.

    The visitors are split over the arms; an arm's visitors over its variant's cells;
    an arm's buyers in a cell are binomial with its variant's chance of buying there.
    """
    rng = draws.generator("split", 0)
    visitors = rng.multinomial(draws.n_visitors, np.asarray(shares, dtype=float))
    buyers = [
        rng.binomial(rng.multinomial(arm, funnel.cell_probabilities), chance).sum()
        for arm, funnel, chance in zip(visitors, funnels, buy_chance, strict=True)
    ]
    return visitors.astype(np.int64), np.array(buyers, np.int64)
