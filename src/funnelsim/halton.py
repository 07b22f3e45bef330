"""Randomised Halton points: even, seeded points of the unit cube, with NumPy alone.

The Halton sequence writes the index ``i`` in base ``b`` (a different prime per
dimension) and mirrors its digits behind the point: ``i = d0 + d1 b + d2 b^2 + ...``
becomes ``d0 / b + d1 / b^2 + d2 / b^3 + ...``. The first ``b^m`` points then hold one
point in each interval of width ``b^-m`` of that dimension. Randomised by a random
permutation of the digits ``0..b-1`` at every digit position of every dimension (Owen
2017), each point is uniform on the cube (the estimates are unbiased, and repeats with
other seeds give an honest Monte Carlo error), the stratification is kept, and the
correlation between the dimensions of large bases is broken.

``scipy.stats.qmc.Halton(scramble=True)`` does the same, but importing ``scipy.stats``
takes about a second, which ``funnelsim run`` spent for its worlds alone.

References:
    Halton, J. H. (1960), "On the efficiency of certain quasi-random sequences of points
    in evaluating multi-dimensional integrals", Numerische Mathematik 2, 84-90.
    Owen, A. B. (2017), "A randomized Halton algorithm in R", arXiv:1706.02808.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
MANTISSA_BITS = 52  # digits kept per dimension: as many as a float's mantissa resolves


def primes(count: int) -> list[int]:
    """The first ``count`` primes.

    >>> primes(5)
    [2, 3, 5, 7, 11]
    """
    found: list[int] = []
    candidate = 2
    while len(found) < count:
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
        candidate += 1
    return found


def _radical_inverse(index: NDArray[np.int64], base: int, rng: np.random.Generator) -> FloatArray:
    """The points of one dimension: ``index``'s digits in ``base``, each digit position
    through its own random permutation, mirrored behind the point. Summed as integers
    over ``base^digits <= 2^52`` (exact), so every point lies in [0, 1)."""
    digits = int(MANTISSA_BITS / math.log2(base))
    permutations = rng.permuted(np.tile(np.arange(base), (digits, 1)), axis=1)
    numerators = np.zeros(index.shape, dtype=np.int64)
    remaining = index.copy()
    for position in range(digits):
        remaining, digit = np.divmod(remaining, base)
        numerators += permutations[position, digit] * base ** (digits - 1 - position)
    return numerators / float(base**digits)


def scrambled_halton(n: int, dimensions: int, seed: int) -> FloatArray:
    """``n`` randomised Halton points of the unit cube of ``dimensions`` dimensions, the
    j-th in base ``primes(dimensions)[j]``, reproducible from ``seed``.

    >>> points = scrambled_halton(9, 2, seed=1)
    >>> points.shape, sorted((points[:, 1] * 9).astype(int).tolist())  # one per ninth
    ((9, 2), [0, 1, 2, 3, 4, 5, 6, 7, 8])
    """
    rng = np.random.default_rng(seed)
    index = np.arange(n, dtype=np.int64)
    columns = [_radical_inverse(index, base, rng) for base in primes(dimensions)]
    return np.column_stack(columns) if columns else np.zeros((n, 0))
