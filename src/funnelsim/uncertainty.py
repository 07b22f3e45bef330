"""Uncertain assumptions: what we do not know, one value per possible world.

A scenario's per-visitor distributions (``{dist: lognormal, mean: 62, sd: 35}``)
say how visitors differ from one another. An *uncertain quantity* says something
else: that a single number of the model (a stage's base rate, a friction
coefficient, the mean order value) is not known, only a range of plausible
values. Each simulated *world* takes one value of it, the same for every visitor
and every variant of that world.

In a scenario file an uncertain quantity is a mapping with the key ``uncertain``
naming its distribution, and that distribution's parameters:

=========================================================  ==============================
YAML                                                       meaning
=========================================================  ==============================
``{uncertain: uniform, low: 0.02, high: 0.06}``            any value in [low, high]
``{uncertain: normal, mean: 0.04, sd: 0.01}``              normal, truncated to the
                                                           field's valid range
``{uncertain: beta, mean: 0.6, sd: 0.05}``                 a probability, by mean and sd
``{uncertain: lognormal, mean: 62, sd: 8}``                a positive, right-skewed value
``{uncertain: triangular, low: 1, mode: 1.5, high: 2.5}``  most plausible at ``mode``
=========================================================  ==============================

Each has a *central* value, the one a run uses "if the stated values hold"
(``--assumptions fixed``): the mean of a normal, beta or lognormal, the middle of
a uniform, the mode of a triangular.

Worlds are drawn quasi-randomly: a seeded, randomised Halton sequence
(:mod:`funnelsim.halton`) gives points of the unit cube, one coordinate per
uncertain quantity, and each coordinate becomes a value through the quantity's
inverse CDF (:meth:`UncertainQuantity.ppf`, written with ``scipy.special`` as
``scipy.stats`` computes it: importing ``scipy.stats`` costs ``run`` about a second),
so a few dozen worlds already cover every range evenly.

Assumptions with *joint draws* (a calibrated scenario's posterior, :class:`JointDraws`)
are not drawn one by one: world ``w`` takes one whole row of the draws, the same row
for every assumption of those draws, so their correlations are kept.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Union

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from funnelsim.halton import scrambled_halton

if TYPE_CHECKING:
    from scipy.stats._distn_infrastructure import rv_continuous_frozen

FloatArray = NDArray[np.float64]
UNCERTAIN_KINDS = ("uniform", "normal", "beta", "lognormal", "triangular")
ROW_STREAM = 1  # joint draws' rows: seeded by (seed, ROW_STREAM), not by the Halton seed
EDGE = 1e-12  # unit-cube coordinates are kept inside (EDGE, 1 - EDGE): finite quantiles
Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Bounds(NamedTuple):
    """The valid range of a field (``-inf``/``inf`` when open-ended)."""

    low: float = -math.inf
    high: float = math.inf

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high

    def describe(self) -> str:
        if self.high == math.inf:
            return f">= {self.low:g}"
        return f"between {self.low:g} and {self.high:g}"


UNBOUNDED = Bounds()


class UncertainQuantity(BaseModel, abc.ABC):
    """Base of the uncertain-quantity specs: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    @abc.abstractmethod
    def central(self) -> float:
        """The value a run uses when assumptions are fixed."""

    @abc.abstractmethod
    def distribution(self, bounds: Bounds = UNBOUNDED) -> rv_continuous_frozen:
        """The scipy.stats distribution of the quantity within ``bounds``."""

    @property
    @abc.abstractmethod
    def support(self) -> Bounds:
        """The range of values the distribution can take (before any truncation)."""

    @abc.abstractmethod
    def quantiles(self, u: FloatArray, bounds: Bounds) -> FloatArray:
        """The inverse CDF at ``u`` of :meth:`distribution` ``(bounds)``, without scipy.stats."""

    def bounds_problem(self, bounds: Bounds) -> str | None:
        """Why values of this spec cannot lie within ``bounds``, or None."""
        if self.support.low < bounds.low or self.support.high > bounds.high:
            return f"{self.describe()} reaches outside the valid range ({bounds.describe()})"
        return None

    def ppf(self, u: FloatArray, bounds: Bounds = UNBOUNDED) -> FloatArray:
        """Values at unit-interval points ``u`` (the inverse CDF)."""
        clipped = np.clip(np.asarray(u, dtype=float), EDGE, 1.0 - EDGE)
        return np.asarray(self.quantiles(clipped, bounds), dtype=float)

    def describe(self) -> str:
        """``normal(mean 0.04, sd 0.01)``: the spec in one short phrase."""
        fields = self.model_dump(exclude={"uncertain"})
        inner = ", ".join(f"{k} {v:g}" for k, v in fields.items())
        return f"{self.uncertain}({inner})"  # type: ignore[attr-defined]


class UncertainUniform(UncertainQuantity):
    """Every value between ``low`` and ``high`` equally plausible."""

    uncertain: Literal["uniform"] = "uniform"
    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _ordered(self) -> UncertainUniform:
        if self.high <= self.low:
            raise ValueError(f"high must be greater than low ({self.low:g}), got {self.high:g}")
        return self

    @property
    def central(self) -> float:
        return (self.low + self.high) / 2

    def distribution(self, bounds: Bounds = UNBOUNDED) -> rv_continuous_frozen:
        from scipy import stats

        return stats.uniform(loc=self.low, scale=self.high - self.low)

    @property
    def support(self) -> Bounds:
        return Bounds(self.low, self.high)

    def quantiles(self, u: FloatArray, bounds: Bounds) -> FloatArray:
        return u * (self.high - self.low) + self.low


class UncertainNormal(UncertainQuantity):
    """Normal by mean and sd, truncated to the field's valid range."""

    uncertain: Literal["normal"] = "normal"
    mean: Finite
    sd: PositiveFinite

    @property
    def central(self) -> float:
        return self.mean

    def distribution(self, bounds: Bounds = UNBOUNDED) -> rv_continuous_frozen:
        from scipy import stats

        low, high = (bounds.low - self.mean) / self.sd, (bounds.high - self.mean) / self.sd
        return stats.truncnorm(low, high, loc=self.mean, scale=self.sd)

    @property
    def support(self) -> Bounds:
        return UNBOUNDED

    def quantiles(self, u: FloatArray, bounds: Bounds) -> FloatArray:
        """Truncated to ``bounds``: the standard normal's quantile of a probability between
        the bounds' CDFs, from the upper tail's survival function where it is above 1/2
        (as precise in both tails)."""
        from scipy.special import ndtr, ndtri

        low, high = (bounds.low - self.mean) / self.sd, (bounds.high - self.mean) / self.sd
        below = ndtr(low) + u * (ndtr(high) - ndtr(low))
        above = ndtr(-high) + (1.0 - u) * (ndtr(-low) - ndtr(-high))
        z = np.where(below < 0.5, ndtri(below), -ndtri(above))
        return self.mean + self.sd * z

    def bounds_problem(self, bounds: Bounds) -> str | None:
        if self.mean not in bounds:
            return f"mean must be {bounds.describe()}, got {self.mean:g}"
        return None


class UncertainBeta(UncertainQuantity):
    """A probability, Beta-distributed with the given mean and sd."""

    uncertain: Literal["beta"] = "beta"
    mean: Annotated[float, Field(gt=0, lt=1)]
    sd: PositiveFinite

    @model_validator(mode="after")
    def _possible(self) -> UncertainBeta:
        largest = math.sqrt(self.mean * (1 - self.mean))
        if self.sd >= largest:
            raise ValueError(
                f"sd must be below sqrt(mean (1 - mean)) = {largest:.4g} for a beta, "
                f"got {self.sd:g}"
            )
        return self

    @property
    def central(self) -> float:
        return self.mean

    @property
    def shape(self) -> tuple[float, float]:
        """(alpha, beta) with this mean and sd."""
        k = self.mean * (1 - self.mean) / self.sd**2 - 1
        return self.mean * k, (1 - self.mean) * k

    def distribution(self, bounds: Bounds = UNBOUNDED) -> rv_continuous_frozen:
        from scipy import stats

        return stats.beta(*self.shape)

    @property
    def support(self) -> Bounds:
        return Bounds(0.0, 1.0)

    def quantiles(self, u: FloatArray, bounds: Bounds) -> FloatArray:
        from scipy.special import betaincinv

        return np.asarray(betaincinv(*self.shape, u), dtype=float)


class UncertainLogNormal(UncertainQuantity):
    """A positive, right-skewed value by its mean and sd."""

    uncertain: Literal["lognormal"] = "lognormal"
    mean: PositiveFinite
    sd: PositiveFinite

    @property
    def central(self) -> float:
        return self.mean

    def distribution(self, bounds: Bounds = UNBOUNDED) -> rv_continuous_frozen:
        from scipy import stats

        return stats.lognorm(s=self._sigma, scale=self._scale)

    @property
    def _sigma(self) -> float:
        return math.sqrt(math.log1p((self.sd / self.mean) ** 2))

    @property
    def _scale(self) -> float:
        return math.exp(math.log(self.mean) - self._sigma**2 / 2)

    @property
    def support(self) -> Bounds:
        return Bounds(0.0)

    def quantiles(self, u: FloatArray, bounds: Bounds) -> FloatArray:
        from scipy.special import ndtri

        return np.exp(self._sigma * ndtri(u)) * self._scale


class UncertainTriangular(UncertainQuantity):
    """Between ``low`` and ``high``, most plausible at ``mode``."""

    uncertain: Literal["triangular"] = "triangular"
    low: Finite
    mode: Finite
    high: Finite

    @model_validator(mode="after")
    def _ordered(self) -> UncertainTriangular:
        if not self.low <= self.mode <= self.high or self.low == self.high:
            raise ValueError(
                f"needs low <= mode <= high and low < high, got "
                f"{self.low:g}, {self.mode:g}, {self.high:g}"
            )
        return self

    @property
    def central(self) -> float:
        return self.mode

    def distribution(self, bounds: Bounds = UNBOUNDED) -> rv_continuous_frozen:
        from scipy import stats

        width = self.high - self.low
        return stats.triang(c=(self.mode - self.low) / width, loc=self.low, scale=width)

    @property
    def support(self) -> Bounds:
        return Bounds(self.low, self.high)

    def quantiles(self, u: FloatArray, bounds: Bounds) -> FloatArray:
        width = self.high - self.low
        c = (self.mode - self.low) / width
        standard = np.where(u < c, np.sqrt(c * u), 1.0 - np.sqrt((1.0 - c) * (1.0 - u)))
        return standard * width + self.low


Uncertain = Annotated[
    Union[  # noqa: UP007 (discriminated union)
        UncertainUniform, UncertainNormal, UncertainBeta, UncertainLogNormal, UncertainTriangular
    ],
    Field(discriminator="uncertain"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Uncertain)


def is_uncertain(value: object) -> bool:
    """True for raw data written as an uncertain quantity (a mapping with ``uncertain``)."""
    return isinstance(value, dict) and "uncertain" in value


def parse_uncertain(data: Any) -> UncertainQuantity:
    """The spec written as ``data`` (raises pydantic.ValidationError when it is wrong).

    >>> parse_uncertain({"uncertain": "normal", "mean": 0.04, "sd": 0.01}).describe()
    'normal(mean 0.04, sd 0.01)'
    """
    return _ADAPTER.validate_python(data)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- worlds


@dataclass(frozen=True, eq=False)
class JointDraws:
    """Joint draws of several assumptions (a posterior's draws, chains one after another).

    Attributes:
        source: Where they were read from (a file), for messages.
        keys: The assumption each column holds, by key.
        values: (draws, keys): row ``i`` is one joint draw.
    """

    source: str
    keys: tuple[str, ...]
    values: FloatArray

    def rows(self, n: int, seed: int) -> NDArray[np.int64]:
        """The rows ``n`` worlds take, reproducible from ``seed``: random permutations of
        every row one after another, so no row repeats before each was taken once (a
        stream of ``seed`` apart from the quasi-random points')."""
        rng = np.random.default_rng([seed, ROW_STREAM])
        count = len(self.values)
        laps = [rng.permutation(count) for _ in range(-(-n // count))]
        return np.concatenate(laps)[:n] if laps else np.zeros(0, dtype=np.int64)

    def column(self, key: str) -> FloatArray:
        """Every draw of assumption ``key``."""
        return np.asarray(self.values[:, self.keys.index(key)])


class Assumption(NamedTuple):
    """One uncertain quantity of a scenario.

    ``key`` names it (the dotted path of the field, e.g.
    ``coefficients.form_fields.hazard_per_field``, or ``variants.<name>.<path>`` for
    a variant's own uncertain override, drawn independently of the base's);
    ``path`` is the field it sets; ``bounds`` the field's valid range; ``default`` is
    True for a calibrated default's documented range (the file leaves the coefficient
    to its default), False for a quantity the file writes as uncertain; ``joint`` holds
    its joint draws with other assumptions when the scenario points to a posterior
    (``spec`` then describes its marginal: the central value, sensitivity analysis).
    """

    key: str
    spec: UncertainQuantity
    bounds: Bounds = UNBOUNDED
    path: str = ""
    default: bool = False
    joint: JointDraws | None = None

    @property
    def field(self) -> str:
        """The dotted path of the field this assumption sets."""
        return self.path or self.key

    @property
    def central(self) -> float:
        return self.spec.central

    def values(self, u: FloatArray) -> FloatArray:
        """The quantity's values at unit-interval points ``u``."""
        return self.spec.ppf(u, self.bounds)


def unit_points(n: int, dimensions: int, seed: int) -> FloatArray:
    """``n`` points of the unit cube of ``dimensions`` dimensions: a randomised Halton
    sequence seeded by ``seed`` (quasi-random; see :mod:`funnelsim.halton`)."""
    return scrambled_halton(n, dimensions, seed)


def values_at(assumptions: Sequence[Assumption], points: FloatArray) -> FloatArray:
    """(worlds, assumptions): each assumption's value at each point of the unit cube."""
    columns = [a.values(points[:, j]) for j, a in enumerate(assumptions)]
    return np.column_stack(columns) if columns else np.zeros((len(points), 0))


def draw_values(assumptions: Sequence[Assumption], n: int, seed: int) -> FloatArray:
    """(worlds, assumptions): ``n`` worlds' values of every assumption, reproducible from
    ``seed``: quasi-random for independent ones, and for those with joint draws the
    row that world takes of their draws (one row for all of the same draws)."""
    free = [j for j, a in enumerate(assumptions) if a.joint is None]
    values = np.empty((n, len(assumptions)))
    chosen = [assumptions[j] for j in free]
    values[:, free] = values_at(chosen, unit_points(n, len(chosen), seed))
    rows: dict[int, NDArray[np.int64]] = {}
    for j, assumption in enumerate(assumptions):
        joint = assumption.joint
        if joint is not None:
            if id(joint) not in rows:
                rows[id(joint)] = joint.rows(n, seed)
            values[:, j] = joint.column(assumption.key)[rows[id(joint)]]
    return values
