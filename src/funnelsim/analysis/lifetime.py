"""Lifetime value from data: who comes back, who is gone, and which variant is worth more.

A shop ran an A/B test and kept selling to the customers it won. Its order log
(one row per order: customer, variant, date, amount) holds the answer to the
question the conversion readout cannot settle: are the customers one variant
wins worth more over their lives? Two readouts live here.

* **Conjugate CLV readout** (:func:`clv_readout`, used by ``funnelsim run``): per
  variant, posteriors of conversion (Beta), mean order value (normal
  approximation), repeat orders per active month (Gamma-Poisson) and monthly
  churn (Beta-geometric, censored at the horizon) are drawn together into a
  posterior of CLV per visitor, so P(better than control) is about lifetime value,
  not only conversion.
* **BG/NBD readout** (:func:`readout_transactions`, model in
  :mod:`funnelsim.analysis.bgnbd`) for order logs where nobody says when a
  customer left: while "alive" a customer buys as a Poisson process whose rate
  varies across customers (Gamma(r, alpha)); after each purchase they
  may drop out for good with a probability that varies across customers
  (Beta(a, b)) (Fader, Hardie & Lee 2005, "Counting your customers the easy way",
  Marketing Science 24(2)). Per variant, a PyMC model gives the posterior of r,
  alpha, a and b from each customer's frequency (repeat purchases), recency (time
  of the last purchase) and age T, hence expected repeat purchases and the
  probability of having dropped out.

Order logs are read by :mod:`funnelsim.analysis.order_log`; the BG/NBD model is in
:mod:`funnelsim.analysis.bgnbd`. This module keeps the readouts built on them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim import budget, files
from funnelsim.analysis.data import (
    DEFAULT_COLUMNS,
    ColumnMap,
    read_experiment,
)
from funnelsim.numbers import finite_or_none
from funnelsim.result_mixin import Result

if TYPE_CHECKING:
    import arviz as az

    from funnelsim.analysis.models import Diagnostics, ModelFit, SamplerSettings

from funnelsim.analysis.bgnbd import (
    PRIOR_SCALES,
    expected_repeat_purchases,
    fit_bgnbd,
    probability_alive,
)
from funnelsim.analysis.order_log import (
    CustomerSummary,
    TransactionError,
    _short,
    read_transactions,
    summarise_customers,
)

FloatArray = NDArray[np.float64]


IntArray = NDArray[np.int64]


DAYS_PER_WEEK = 7.0


DAYS_PER_MONTH = 365.25 / 12.0

ONE_TOLERANCE = 1e-8 + 1e-5
"""How near 1 a monthly ratio sums as exactly 1: ``np.isclose(q, 1.0)``'s default
tolerances, without the cost of its generality, paid 800 times per ``run``."""


class ArmCustomers(NamedTuple):
    """What one arm of a test observed about its visitors and the customers it won.

    Attributes:
        visitors: Visitors assigned to the arm.
        customers: Visitors who bought.
        revenue_sum: Sum of the customers' first-order values.
        revenue_sum_sq: Sum of their squares.
        repeat_orders: Repeat orders of all customers while followed.
        active_months: Customer-months observed active (churn trials survived).
        churned: Customers seen to churn while followed.
    """

    visitors: int
    customers: int
    revenue_sum: float
    revenue_sum_sq: float
    repeat_orders: float
    active_months: float
    churned: int


class ValueTerms(NamedTuple):
    """Known economics that turn posteriors into CLV (not estimated from the data)."""

    margin: float
    horizon_months: int
    monthly_discount: float
    nurture_cost_per_month: float = 0.0


class CLVReadout(NamedTuple):
    """Posterior of CLV per visitor per arm (control first is not assumed: see ``control``).

    Attributes:
        mean: Posterior mean of CLV per visitor.
        low: Lower bound of the equal-tailed credible interval.
        high: Upper bound.
        uplift_mean: Posterior mean of the relative uplift over control (0 for control).
        uplift_low: Lower bound of its interval.
        uplift_high: Upper bound of its interval.
        prob_beats_control: P(CLV per visitor above control's); NaN for control.
        prob_best: P(highest CLV per visitor of all arms).
    """

    mean: FloatArray
    low: FloatArray
    high: FloatArray
    uplift_mean: FloatArray
    uplift_low: FloatArray
    uplift_high: FloatArray
    prob_beats_control: FloatArray
    prob_best: FloatArray


def _order_value_moments(arm: ArmCustomers) -> tuple[float, float] | None:
    """Mean order value and the standard error of that mean, if two orders or more."""
    k = arm.customers
    if k < 2:
        return None
    mean = arm.revenue_sum / k
    variance = max(0.0, (arm.revenue_sum_sq - k * mean * mean) / (k - 1))
    return mean, math.sqrt(variance / k)


def _discounted_months(survive: FloatArray, terms: ValueTerms) -> FloatArray:
    """sum over k = 1..H of (survive / (1 + d))^k, elementwise."""
    q = survive / (1.0 + terms.monthly_discount)
    h = terms.horizon_months
    with np.errstate(divide="ignore", invalid="ignore"):
        total = q * (1.0 - q**h) / (1.0 - q)
    return np.where(np.abs(q - 1.0) <= ONE_TOLERANCE, float(h), total)


def clv_posterior(
    arm: ArmCustomers,
    terms: ValueTerms,
    rng: np.random.Generator,
    draws: int = 4000,
    prior: tuple[float, float] = (1.0, 1.0),
    fallback_order_value: tuple[float, float] = (0.0, 0.0),
) -> FloatArray:
    """Posterior draws of one arm's CLV per visitor.

    Conversion ~ Beta(prior + counts); mean order value ~ Normal(sample mean, standard
    error) (flat prior; ``fallback_order_value`` when under two orders); repeat orders
    per active month ~ Gamma(1 + orders, 1 + active months) (a prior worth one order in
    one month); monthly churn ~ Beta(1 + churned, 1 + active months). CLV per customer
    is m v + (m v lambda - nurture cost) x sum_k ((1 - churn) / (1 + d))^k.
    """
    p = rng.beta(prior[0] + arm.customers, prior[1] + arm.visitors - arm.customers, draws)
    mean, se = _order_value_moments(arm) or fallback_order_value
    value = np.maximum(0.0, rng.normal(mean, se, draws))
    rate = rng.gamma(1.0 + arm.repeat_orders, 1.0 / (1.0 + arm.active_months), draws)
    churn = rng.beta(1.0 + arm.churned, 1.0 + arm.active_months, draws)
    later = _discounted_months(1.0 - churn, terms)
    per_customer = (
        terms.margin * value + (terms.margin * value * rate - terms.nurture_cost_per_month) * later
    )
    return np.asarray(p * per_customer, dtype=float)


def _pooled_order_value(arms: Sequence[ArmCustomers]) -> tuple[float, float]:
    pooled = ArmCustomers(
        0,
        sum(a.customers for a in arms),
        sum(a.revenue_sum for a in arms),
        sum(a.revenue_sum_sq for a in arms),
        0.0,
        0.0,
        0,
    )
    return _order_value_moments(pooled) or (0.0, 0.0)


def clv_readout(
    arms: Sequence[ArmCustomers],
    terms: Sequence[ValueTerms],
    control: int,
    rng: np.random.Generator,
    draws: int = 4000,
    prior: tuple[float, float] = (1.0, 1.0),
    level: float = 0.95,
) -> CLVReadout:
    """P(better than control) and credible intervals on CLV per visitor, per arm.

    Combines the conversion, order value, repeat-purchase and churn posteriors of each
    arm (see :func:`clv_posterior`) by Monte Carlo with ``draws`` draws.

    >>> arm = ArmCustomers(1000, 50, 2500.0, 150_000.0, 40.0, 300.0, 20)
    >>> better = arm._replace(customers=70, revenue_sum=3500.0, revenue_sum_sq=210_000.0)
    >>> terms = ValueTerms(0.3, 24, 0.008)
    >>> out = clv_readout([arm, better], [terms, terms], 0, np.random.default_rng(0))
    >>> bool(out.prob_beats_control[1] > 0.8)
    True
    """
    return summarise_draws(clv_draws(arms, terms, rng, draws, prior), control, level)


def clv_draws(
    arms: Sequence[ArmCustomers],
    terms: Sequence[ValueTerms],
    rng: np.random.Generator,
    draws: int = 4000,
    prior: tuple[float, float] = (1.0, 1.0),
) -> FloatArray:
    """Posterior draws of CLV per visitor, shaped ``(arms, draws)`` (see
    :func:`clv_posterior`); an arm with under two orders borrows the pooled order value."""
    fallback = _pooled_order_value(arms)
    return np.array(
        [
            clv_posterior(arm, t, rng, draws, prior, fallback)
            for arm, t in zip(arms, terms, strict=True)
        ]
    )


def summarise_draws(samples: FloatArray, control: int, level: float = 0.95) -> CLVReadout:
    """Mean, equal-tailed interval, uplift over control, P(beats control) and P(best) of
    posterior draws shaped ``(arms, draws)``, drawn jointly across arms.

    >>> out = summarise_draws(np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 4.0]]), control=0)
    >>> out.mean.tolist(), round(float(out.prob_beats_control[1]), 3), out.prob_best.tolist()
    ([2.0, 2.3333333333333335], 0.667, [0.3333333333333333, 0.6666666666666666])
    """
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail], axis=1)
    uplift = _row_summaries(_relative(samples, samples[control]), tail)
    beats = (samples > samples[control]).mean(axis=1)
    beats[control] = math.nan
    best = np.bincount(samples.argmax(axis=0), minlength=len(samples)) / samples.shape[1]
    return CLVReadout(
        mean=samples.mean(axis=1),
        low=low,
        high=high,
        uplift_mean=uplift[:, 0],
        uplift_low=uplift[:, 1],
        uplift_high=uplift[:, 2],
        prob_beats_control=beats,
        prob_best=best,
    )


def _relative(samples: FloatArray, reference: FloatArray) -> FloatArray:
    """samples / reference - 1 per draw; NaN where the reference draw is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, samples / reference - 1.0, np.nan)


def _row_summaries(values: FloatArray, tail: float) -> FloatArray:
    """(rows, 3): each row's :func:`_summary`; the rows without NaN summarised in one go
    (the same figures, fewer NumPy calls).

    >>> _row_summaries(np.array([[1.0, 3.0], [np.nan, 2.0], [np.nan, np.nan]]), 0.0).tolist()
    [[2.0, 1.0, 3.0], [2.0, 2.0, 2.0], [nan, nan, nan]]
    """
    whole = np.isfinite(values).all(axis=1)
    summaries = np.empty((len(values), 3))
    if whole.any():
        rows = values[whole]
        summaries[whole, 0] = rows.mean(axis=1)
        summaries[whole, 1:] = np.quantile(rows, [tail, 1.0 - tail], axis=1).T
    for i in np.flatnonzero(~whole):
        summaries[i] = _summary(values[i], tail)
    return summaries


def _summary(values: FloatArray, tail: float) -> tuple[float, float, float]:
    """Mean and equal-tailed bounds of the finite values (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan, math.nan
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(finite.mean()), float(low), float(high)


class VisitorReadout(NamedTuple):
    """CLV per visitor of each variant, when the visitors behind the order log are known.

    Attributes:
        visitors: Visitors assigned to each variant.
        conversion: Posterior mean of the share of visitors who became customers, with
            ``conversion_low`` / ``conversion_high`` credible bounds.
        clv: CLV per visitor: mean, interval, uplift over control, P(beats control) and
            P(best), from the joint conversion x CLV-per-customer draws.
    """

    visitors: IntArray
    conversion: FloatArray
    conversion_low: FloatArray
    conversion_high: FloatArray
    clv: CLVReadout


@dataclass(frozen=True, repr=False)
class TransactionReadout(Result):
    """What an order log says per variant (arrays in ``variants`` order).

    Attributes:
        variants: Variant names, control first.
        customers: Customers per variant.
        repeat_purchases: Posterior mean of a new customer's expected repeat purchases
            over the horizon, with ``repeat_low`` / ``repeat_high`` credible bounds.
        still_active: Share of the variant's customers still active at the end of the
            log, at the posterior mean parameters (1 minus the churned share).
        repeat_by_month: Expected repeat purchases of a new customer after k = 0..horizon
            months, shaped ``(variants, 3, horizon + 1)``: posterior median, lower and
            upper credible bounds.
        clv_per_customer: Posterior mean CLV of a new customer, with credible bounds.
        prob_beats_control: P(CLV per customer above control's); NaN for control.
        prob_best: P(highest CLV per customer).
        diagnostics: Sampler diagnostics of the BG/NBD fit.
        level: Probability mass of the credible intervals.
        per_visitor: CLV per visitor, or None when visitor counts were not given.
        currency: The order log's currency (``EUR``), or None when not stated.
    """

    variants: list[str]
    customers: IntArray
    repeat_purchases: FloatArray
    repeat_low: FloatArray
    repeat_high: FloatArray
    still_active: FloatArray
    repeat_by_month: FloatArray
    clv_per_customer: FloatArray
    clv_low: FloatArray
    clv_high: FloatArray
    prob_beats_control: FloatArray
    prob_best: FloatArray
    diagnostics: Diagnostics
    level: float = 0.95
    per_visitor: VisitorReadout | None = None
    currency: str | None = None

    frame_index: ClassVar[str | None] = "variant"

    def headline(self) -> str:
        customers = ", ".join(
            f"{name} {count:,}"
            for name, count in zip(self.variants, self.customers.tolist(), strict=True)
        )
        return (
            f"customers: {customers}; per visitor "
            f"{'yes' if self.per_visitor is not None else 'no'}; "
            f"{'reliable' if self.diagnostics.reliable else 'UNRELIABLE'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document of ``analyze --transactions``."""
        return transactions_dict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One row per variant: its ``results.json`` entry."""
        variants = transactions_dict(self)["variants"]
        return [{"variant": name, **entry} for name, entry in variants.items()]


def _posterior(idata: az.InferenceData, name: str) -> FloatArray:
    """(draws, variants) posterior samples of one parameter."""
    values = idata["posterior"][name].values
    return np.asarray(values.reshape(-1, values.shape[-1]), dtype=float)


def repeat_purchases_by_month(
    r: FloatArray, alpha: FloatArray, a: FloatArray, b: FloatArray, months: int, month_units: float
) -> FloatArray:
    """E[X(k months)] for k = 0..months, shaped ``(draws, months + 1)``: expected repeat
    purchases of a new customer, per posterior draw (``month_units``: time units a month)."""
    t = np.arange(months + 1.0) * month_units
    shape = (*np.shape(r), 1)
    return np.asarray(
        expected_repeat_purchases(
            np.reshape(r, shape),
            np.reshape(alpha, shape),
            np.reshape(a, shape),
            np.reshape(b, shape),
            t,
        )
    )


def discounted_repeat_purchases(by_month: FloatArray, monthly_discount: float) -> FloatArray:
    """sum over months k = 1..K of (E[X(k)] - E[X(k - 1)]) / (1 + d)^k, per row of
    :func:`repeat_purchases_by_month`.

    >>> discounted_repeat_purchases(np.array([[0.0, 1.0, 2.0]]), 0.0).tolist()
    [2.0]
    """
    months = by_month.shape[-1] - 1
    per_month = np.diff(by_month, axis=-1)
    return np.asarray(per_month @ (1.0 + monthly_discount) ** -np.arange(1.0, months + 1.0))


def readout_transactions(
    summary: CustomerSummary,
    fit: ModelFit,
    control: str | None = None,
    margin: float = 1.0,
    horizon_months: int = 24,
    discount_rate_annual: float = 0.10,
    level: float = 0.95,
    seed: int = 0,
    visitors: Mapping[str, int] | None = None,
) -> TransactionReadout:
    """Per variant: repeat purchases, churned share and CLV per customer from a BG/NBD fit,
    and CLV per visitor when ``visitors`` (visitors per variant) is given.

    CLV per new customer is margin x mean order value x (1 + discounted expected repeat
    purchases over the horizon); the mean order value's posterior is the normal
    approximation over the variant's customers' mean purchase values. CLV per visitor
    multiplies each draw by a draw of the conversion posterior Beta(1 + customers,
    1 + visitors - customers), so its interval carries all three uncertainties.
    """
    variants = summary.variants
    order = control_first(variants, control)
    columns = [variants.index(v) for v in order]
    draws = {name: _posterior(fit.idata, name)[:, columns] for name in PRIOR_SCALES}
    rng = np.random.default_rng(seed)
    monthly = (1.0 + discount_rate_annual) ** (1.0 / 12.0) - 1.0
    month_units = DAYS_PER_MONTH / summary.unit_days
    n = len(draws["r"])
    tail = (1.0 - level) / 2.0
    repeats, clvs, active, curves = [], [], [], []
    for j, name in enumerate(order):
        mine = summary.variant == name
        p = {k: v[:, j] for k, v in draws.items()}
        by_month = repeat_purchases_by_month(
            p["r"], p["alpha"], p["a"], p["b"], horizon_months, month_units
        )
        curves.append(np.quantile(by_month, [0.5, tail, 1.0 - tail], axis=0))
        repeats.append(by_month[:, -1])
        spend = summary.spend[mine]
        se = spend.std(ddof=1) / math.sqrt(spend.size) if spend.size > 1 else 0.0
        value = np.maximum(0.0, rng.normal(spend.mean(), se, n))
        later = discounted_repeat_purchases(by_month, monthly)
        clvs.append(margin * value * (1.0 + later))
        point = {k: float(np.mean(p[k])) for k in PRIOR_SCALES}
        alive = probability_alive(
            point["r"],
            point["alpha"],
            point["a"],
            point["b"],
            summary.frequency[mine],
            summary.recency[mine],
            summary.T[mine],
        )
        active.append(float(np.mean(alive)))
    rep, clv = np.array(repeats), np.array(clvs)
    per_customer = summarise_draws(clv, 0, level)
    won = customers_per_variant(summary, order)
    return TransactionReadout(
        variants=order,
        customers=won,
        repeat_purchases=rep.mean(axis=1),
        repeat_low=np.quantile(rep, tail, axis=1),
        repeat_high=np.quantile(rep, 1.0 - tail, axis=1),
        still_active=np.array(active),
        clv_per_customer=per_customer.mean,
        clv_low=per_customer.low,
        clv_high=per_customer.high,
        prob_beats_control=per_customer.prob_beats_control,
        prob_best=per_customer.prob_best,
        repeat_by_month=np.array(curves),
        diagnostics=fit.diagnostics,
        level=level,
        per_visitor=(
            None
            if visitors is None
            else per_visitor_readout(clv, won, _visitors_in_order(visitors, order, won), rng, level)
        ),
    )


def control_first(variants: Sequence[str], control: str | None) -> list[str]:
    """Variant names with the control (default: the first) moved to the front."""
    first = control or variants[0]
    if first not in variants:
        raise TransactionError(f"unknown control {first!r} (variants: {', '.join(variants)})")
    return [first, *(v for v in variants if v != first)]


def customers_per_variant(summary: CustomerSummary, order: Sequence[str]) -> IntArray:
    """Number of customers of each variant, in ``order``."""
    return np.array([int((summary.variant == name).sum()) for name in order], dtype=np.int64)


def per_visitor_readout(
    clv_per_customer: FloatArray,
    customers: IntArray,
    visitors: IntArray,
    rng: np.random.Generator,
    level: float = 0.95,
) -> VisitorReadout:
    """CLV per visitor from CLV-per-customer draws ``(variants, draws)`` (control first) and
    each variant's customers out of its visitors (uniform prior on conversion).

    >>> clv = np.full((2, 4000), 100.0)
    >>> out = per_visitor_readout(clv, np.array([50, 80]), np.array([1000, 1000]),
    ...                           np.random.default_rng(0))
    >>> [round(float(m), 1) for m in out.clv.mean], bool(out.clv.prob_beats_control[1] > 0.99)
    ([5.1, 8.1], True)
    """
    conversion = rng.beta(
        1.0 + customers[:, None], 1.0 + (visitors - customers)[:, None], clv_per_customer.shape
    )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(conversion, [tail, 1.0 - tail], axis=1)
    return VisitorReadout(
        visitors=visitors,
        conversion=conversion.mean(axis=1),
        conversion_low=low,
        conversion_high=high,
        clv=summarise_draws(conversion * clv_per_customer, 0, level),
    )


def _visitors_in_order(
    visitors: Mapping[str, int], order: Sequence[str], customers: IntArray
) -> IntArray:
    """Visitor counts in ``order``; every variant needs one, at least its customers."""
    unknown = sorted(set(visitors) - set(order))
    if unknown:
        raise TransactionError(
            f"visitors: variant {_short(unknown[0])!r} is not in the order log "
            f"(variants: {', '.join(order)})",
            "visitors",
        )
    missing = [name for name in order if name not in visitors]
    if missing:
        raise TransactionError(f"visitors: no visitor count for variant {missing[0]!r}", "visitors")
    counts = np.array([visitors[name] for name in order], dtype=np.int64)
    short = np.flatnonzero(counts < customers)
    if short.size:
        i = short[0]
        raise TransactionError(
            f"visitors: variant {order[i]!r} has {counts[i]:,} visitors "
            f"but {customers[i]:,} customers in the order log",
            "visitors",
        )
    return counts


def _is_file(spec: str) -> bool:
    """Whether ``spec`` names an existing file (False for text no path can be)."""
    try:
        return Path(spec).is_file()
    except (OSError, ValueError):  # too long for a file name, or a NUL inside
        return False


MAX_VISITORS = 10**15
"""More visitors than this in one variant is a typo (and beyond a float's exact integers)."""


def visitor_counts(spec: str, columns: ColumnMap = DEFAULT_COLUMNS) -> dict[str, int]:
    """Visitors per variant from ``NAME=COUNT,NAME=COUNT`` or from an experiment CSV (any
    file :func:`funnelsim.analysis.data.read_experiment` reads).

    >>> visitor_counts("a=1000, b=1,200")
    {'a': 1000, 'b': 1200}
    """
    if _is_file(spec):
        data = read_experiment(spec, columns)
        return {name: int(count) for name, count in zip(data.variants, data.visitors, strict=True)}
    counts: dict[str, int] = {}
    for item in re.split(r",(?=[^,=]+=)", spec):
        name, equals, count = (part.strip() for part in item.partition("="))
        number = count.replace(",", "").replace("_", "")
        if not (name and equals and number.isascii() and number.isdigit()):  # not '²'
            raise TransactionError(
                f"visitors: expected NAME=COUNT[,NAME=COUNT...] or an "
                f"experiment CSV file, got {_short(item.strip())!r}",
                "visitors",
            )
        if name in counts:
            raise TransactionError(f"visitors: variant {_short(name)!r} given twice", "visitors")
        if len(number) > len(str(MAX_VISITORS)) or int(number) > MAX_VISITORS:
            raise TransactionError(
                f"visitors: {_short(name)!r} has more than {MAX_VISITORS:.0e} visitors", "visitors"
            )
        counts[name] = int(number)
    return counts


def analyze_transactions(
    path: str | Path,
    control: str | None = None,
    customer: str = "customer",
    variant: str | None = "variant",
    date_column: str = "date",
    amount: str = "amount",
    end: str | None = None,
    margin: float = 1.0,
    horizon_months: int = 24,
    discount_rate_annual: float = 0.10,
    visitors: Mapping[str, int] | None = None,
    settings: SamplerSettings | None = None,
    currency: str | None = None,
    allow_large: bool = False,
) -> tuple[TransactionReadout, az.InferenceData]:
    """Read an order log, fit BG/NBD per variant, and read out CLV per customer (and per
    visitor, given ``visitors`` per variant). ``settings`` (sampler, draws, chains, seed)
    default to those of the other PyMC models; the seed also fixes the Monte Carlo draws.
    ``currency`` names the unit of the amounts in the readout's tables and JSON. Without
    ``allow_large`` a fit beyond the limits is refused with its estimate before it starts.

    The library call behind ``funnelsim analyze --transactions``.
    """
    from funnelsim.analysis import models

    settings = settings or models.DEFAULT_SETTINGS
    summary = summarise_customers(
        read_transactions(path, customer, variant, date_column, amount), end
    )
    order = control_first(summary.variants, control)
    if visitors is not None:  # a mistake in the counts is reported before the long fit
        _visitors_in_order(visitors, order, customers_per_variant(summary, order))
    if not allow_large:
        work = budget.transactions_work(len(order), settings.draws, settings.tune, settings.chains)
        budget.check_work(work)
    fit = fit_bgnbd(summary, settings)
    readout = readout_transactions(
        summary,
        fit,
        control,
        margin,
        horizon_months,
        discount_rate_annual,
        seed=settings.seed,
        visitors=visitors,
    )
    return replace(readout, currency=currency), fit.idata


def transactions_json(readout: TransactionReadout) -> str:
    """The ``results.json`` document of ``analyze --transactions`` as text."""
    return json.dumps(transactions_dict(readout), indent=2, allow_nan=False)


def write_transactions(
    readout: TransactionReadout, idata: az.InferenceData, out: Path
) -> list[Path]:
    """Write ``results.json`` and the BG/NBD posterior ``posterior.nc`` to ``out``,
    together (one :func:`~funnelsim.files.output_batch`); the paths written."""
    with files.output_batch() as written:
        with files.atomic_writer(out / "results.json") as stream:
            stream.write(transactions_json(readout))
        files.write_bytes_atomic(out / "posterior.nc", files.netcdf_bytes(idata))
    return written


def transactions_dict(readout: TransactionReadout) -> dict[str, Any]:
    """The ``results.json`` document of ``analyze --transactions`` (no NaN: null instead)."""
    variants = {}
    for i, name in enumerate(readout.variants):
        variants[name] = {
            "customers": int(readout.customers[i]),
            "repeat_purchases": _bounds(
                readout.repeat_purchases[i], readout.repeat_low[i], readout.repeat_high[i]
            ),
            "still_active": finite_or_none(readout.still_active[i]),
            "clv_per_customer": _bounds(
                readout.clv_per_customer[i], readout.clv_low[i], readout.clv_high[i]
            ),
            "prob_beats_control": None if i == 0 else finite_or_none(readout.prob_beats_control[i]),
            "prob_best": finite_or_none(readout.prob_best[i]),
        }
        if readout.per_visitor is not None:
            variants[name].update(_per_visitor_dict(readout.per_visitor, i))
    from funnelsim.analysis.models import diagnostics_dict

    return {
        "model": "bgnbd",
        "control": readout.variants[0],
        "currency": readout.currency,
        "level": readout.level,
        "variants": variants,
        "diagnostics": diagnostics_dict(readout.diagnostics),
    }


def _bounds(mean: float, low: float, high: float) -> dict[str, float | None]:
    return {"mean": finite_or_none(mean), "low": finite_or_none(low), "high": finite_or_none(high)}


def _per_visitor_dict(readout: VisitorReadout, i: int) -> dict[str, Any]:
    """One variant's visitors, conversion and CLV per visitor (uplift for non-controls)."""
    clv = readout.clv
    data: dict[str, Any] = {
        "visitors": int(readout.visitors[i]),
        "conversion": _bounds(
            readout.conversion[i], readout.conversion_low[i], readout.conversion_high[i]
        ),
        "clv_per_visitor": {
            **_bounds(clv.mean[i], clv.low[i], clv.high[i]),
            "prob_beats_control": None if i == 0 else finite_or_none(clv.prob_beats_control[i]),
            "prob_best": finite_or_none(clv.prob_best[i]),
        },
    }
    if i > 0:
        data["uplift_vs_control"] = {
            "clv_per_visitor": _bounds(clv.uplift_mean[i], clv.uplift_low[i], clv.uplift_high[i])
        }
    return data
