"""Customer lifetime value: what a first purchase is worth over the customer's life.

Picture a coffee-bean subscription shop. A customer who buys today may come
back: each month they are still active they place, on average,
``repeat_per_month`` more orders, and each month some of them leave for good
(churn). A newsletter (a *nurture* programme) nudges active customers to order
more often, at a cost per message; customers who created an account at checkout
(*registered*) may come back more often than guests. Money later is worth less
than money now, so every later month's margin is discounted; the first order's
margin counts in full.

Churn is either the same for everybody (``constant``: a customer's lifetime is
geometric) or differs between customers (``sbg``: each customer's churn is drawn
from a Beta distribution, the shifted-beta-geometric model of Fader & Hardie 2007),
in which case the customers who stay are ever more loyal.

Two answers sit side by side, so each checks the other:

* :func:`simulate_lifetimes` draws each customer's churn and lifetime from
  uniforms (vectorised over customers, common random numbers); what happens within
  the lifetime enters through its conditional expectation. The experiment runner
  uses it for CLV per customer and per visitor (:func:`customer_value`).
* :func:`expected_clv`, :func:`expected_purchases` and the closed forms
  :func:`closed_form_clv` / :func:`finite_horizon_clv` give the expectations. With
  one order per active month, retention r, discount d and margin m per period the
  infinite-horizon value is m (1 + d) / (1 + d - r) (Gupta & Lehmann 2003; Gupta et
  al. 2006, Journal of Service Research 9(2)).

Acquisition economics close the loop: CAC is spend divided by customers won,
LTV:CAC compares what a customer brings with what it cost to win them, and the
payback month is when a customer's cumulative margin first covers the CAC.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim.scenario.schema import Distribution, Retention, Scenario, Value

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
UNIFORMS_PER_CUSTOMER = 3  # registration, churn, lifetime
QUADRATURE_NODES = 64


def monthly_discount_rate(annual: float) -> float:
    """The monthly rate equivalent to an annual discount rate.

    >>> round(monthly_discount_rate(0.10), 6)
    0.007974
    """
    return float((1.0 + annual) ** (1.0 / 12.0) - 1.0)


def discounted_repeat_orders(value: Value) -> float:
    """Expected repeat orders per customer over the horizon, discounted to today,
    for ``value``'s own (constant-churn) retention, without nurture.

    Sum over months k = 1..horizon of repeat_per_month x (1 - churn)^k / (1 + d)^k.
    """
    retention = 1.0 - value.retention.churn_per_month
    factor = retention / (1.0 + monthly_discount_rate(value.discount_rate_annual))
    months = value.horizon_months
    if factor == 1.0:
        geometric = float(months)
    else:
        geometric = factor * (1.0 - factor**months) / (1.0 - factor)
    return value.retention.repeat_per_month * geometric


def clv_per_customer(first_order_value: float, value: Value) -> float:
    """Margin of the first order plus the discounted margin of expected repeat orders
    (constant churn, no nurture: the quick estimate; see :func:`expected_clv`)."""
    repeat_revenue = discounted_repeat_orders(value) * value.order_value.mean_value
    return value.margin * (first_order_value + repeat_revenue)


def closed_form_clv(margin: float, retention: float, discount: float) -> float:
    """Infinite-horizon CLV with the current period's margin counted: m(1+d)/(1+d-r).

    >>> round(closed_form_clv(1.0, 0.8, 0.1), 4)
    3.6667
    """
    return margin * (1.0 + discount) / (1.0 + discount - retention)


def finite_horizon_clv(margin: float, retention: float, discount: float, periods: int) -> float:
    """CLV over the first order's period plus ``periods`` later ones:
    m (1 - q^(periods+1)) / (1 - q) with q = r / (1 + d); tends to :func:`closed_form_clv`.

    >>> round(finite_horizon_clv(1.0, 0.8, 0.1, 1000), 4)
    3.6667
    >>> finite_horizon_clv(2.0, 0.8, 0.1, 0)
    2.0
    """
    q = retention / (1.0 + discount)
    if q == 1.0:
        return margin * (periods + 1)
    return margin * (1.0 - q ** (periods + 1)) / (1.0 - q)


# --------------------------------------------------------------------------- the model


class LifetimeModel(NamedTuple):
    """Everything that decides one kind of customer's life after the first order.

    Attributes:
        margin: Share of an order's value that is margin.
        order_value: Mean value of a repeat order.
        repeat_per_month: Expected repeat orders per active month (after nurture
            and registration effects).
        repeat_orders: ``poisson`` (random count per month) or ``fixed``.
        churn_per_month: Constant churn per month (unused with ``sbg``).
        sbg: (alpha, beta) of the Beta distribution of churn, or None for constant churn.
        churn_multiplier: Factor on each customer's churn (registered customers).
        horizon_months: Months after the first order that count.
        monthly_discount: Discount rate per month.
        nurture_cost_per_month: Cost of the nurture messages per active month.
        referrals_per_month: Visitors an active customer refers per month.
    """

    margin: float
    order_value: float
    repeat_per_month: float
    repeat_orders: Literal["poisson", "fixed"]
    churn_per_month: float
    sbg: tuple[float, float] | None
    churn_multiplier: float
    horizon_months: int
    monthly_discount: float
    nurture_cost_per_month: float
    referrals_per_month: float


def customer_terms(
    scenario: Scenario, segment: str, channel: str
) -> tuple[Retention, Distribution]:
    """Retention and order-value distribution of customers from ``segment`` and ``channel``:
    the channel's own if it has them, else the segment's, else ``value``'s."""
    seg, chan = scenario.segments[segment], scenario.traffic.channels[channel]
    value = scenario.value
    retention = chan.retention or seg.retention or value.retention
    order_value = chan.order_value or seg.order_value or value.order_value
    return retention, order_value


def strictest_login_wall(scenario: Scenario) -> Literal["none", "optional", "required"]:
    """Whether a buyer of this funnel passed a login wall: the strictest wall of any stage."""
    walls = {stage.friction.login_wall for stage in scenario.stages}
    if "required" in walls:
        return "required"
    return "optional" if "optional" in walls else "none"


def lifetime_model(
    scenario: Scenario, segment: str, channel: str, registered: bool
) -> LifetimeModel:
    """The :class:`LifetimeModel` of one kind of customer of a (variant-resolved) scenario.

    >>> from funnelsim.scenario import parse_scenario
    >>> s = parse_scenario("name: x\\ntraffic: {visitors_per_day: 10, days: 1}\\n"
    ...     "stages: [{name: buy, rate: 0.1}]\\nvalue: {order_value: 50, margin: 0.3}")
    >>> lifetime_model(s, "all", "direct", registered=False).order_value
    50.0
    """
    value = scenario.value
    retention, order_value = customer_terms(scenario, segment, channel)
    repeat = retention.repeat_per_month
    nurture_cost = 0.0
    if value.nurture is not None:
        nurture = value.nurture
        lift = nurture.repeat_lift_per_message * nurture.messages_per_month
        if nurture.max_repeat_lift is not None:
            lift = min(lift, nurture.max_repeat_lift)
        repeat *= 1.0 + lift
        nurture_cost = nurture.messages_per_month * nurture.cost_per_message
    wall = scenario.coefficients.login_wall
    churn_multiplier = 1.0
    if registered:
        repeat *= wall.registered_repeat_multiplier
        churn_multiplier = wall.registered_churn_multiplier
    sbg = retention.sbg
    return LifetimeModel(
        margin=value.margin,
        order_value=order_value.mean_value,
        repeat_per_month=repeat,
        repeat_orders=retention.repeat_orders,
        churn_per_month=retention.churn_per_month,
        sbg=(sbg.alpha, sbg.beta) if retention.churn == "sbg" and sbg is not None else None,
        churn_multiplier=churn_multiplier,
        horizon_months=value.horizon_months,
        monthly_discount=monthly_discount_rate(value.discount_rate_annual),
        nurture_cost_per_month=nurture_cost,
        referrals_per_month=value.referral.per_customer_per_month,
    )


# --------------------------------------------------------------------------- expectations


@functools.lru_cache(maxsize=64)
def _beta_quadrature(alpha: float, beta: float) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights with sum(w f(x)) = E[f(X)], X ~ Beta(alpha, beta) (Gauss-Jacobi)."""
    from scipy.special import roots_jacobi

    x, w = roots_jacobi(QUADRATURE_NODES, beta - 1.0, alpha - 1.0)
    return (x + 1.0) / 2.0, w / w.sum()


def survival(model: LifetimeModel) -> FloatArray:
    """Expected share of customers still active k months after the first order,
    k = 0..horizon (entry 0 is 1).

    Constant churn c: (1 - c)^k. Shifted-beta-geometric: E[(1 - theta)^k] with theta ~
    Beta(alpha, beta), = B(alpha, beta + k) / B(alpha, beta) when the multiplier is 1
    (Fader & Hardie 2007, eq. 3), evaluated by Gauss-Jacobi quadrature.
    """
    months = np.arange(model.horizon_months + 1)
    if model.sbg is None:
        retained = 1.0 - min(1.0, model.churn_per_month * model.churn_multiplier)
        return np.asarray(retained**months, dtype=np.float64)
    nodes, weights = _beta_quadrature(*model.sbg)
    kept = 1.0 - np.minimum(1.0, nodes * model.churn_multiplier)
    return np.asarray(weights @ kept[:, None] ** months[None, :], dtype=np.float64)


def _discount_factors(model: LifetimeModel) -> FloatArray:
    """(1 + d)^-k for k = 0..horizon."""
    return np.asarray((1.0 + model.monthly_discount) ** -np.arange(model.horizon_months + 1.0))


def expected_clv(model: LifetimeModel, first_order_value: float | None = None) -> float:
    """Expected CLV of one customer: the first order's margin undiscounted, then each
    later month's expected margin net of nurture cost, discounted.

    ``first_order_value`` defaults to the mean repeat order value.
    """
    first = model.order_value if first_order_value is None else first_order_value
    later = survival(model)[1:] @ _discount_factors(model)[1:]
    monthly = model.margin * model.order_value * model.repeat_per_month
    return float(model.margin * first + (monthly - model.nurture_cost_per_month) * later)


def expected_purchases(model: LifetimeModel) -> float:
    """Expected orders of one customer over the horizon, the first included:
    1 + repeat_per_month x sum over k of S(k). With one order per active month,
    constant retention r and an endless horizon this is the geometric mean 1 / (1 - r).
    """
    return float(1.0 + model.repeat_per_month * survival(model)[1:].sum())


def cumulative_margin(model: LifetimeModel, first_order_value: float) -> FloatArray:
    """Expected margin (undiscounted, net of nurture) a customer has brought by month
    k = 0..horizon; entry 0 is the first order's margin. Used for payback months."""
    monthly = model.margin * model.order_value * model.repeat_per_month
    per_month = (monthly - model.nurture_cost_per_month) * survival(model)
    per_month[0] = model.margin * first_order_value
    return np.cumsum(per_month)


# --------------------------------------------------------------------------- simulation


class Lifetimes(NamedTuple):
    """Simulated customers after their first order, one entry per customer.

    Attributes:
        churn: Each customer's monthly churn probability.
        active_months: Months active after the first order, within the horizon.
        churned: True when the customer left before the horizon ended.
        repeat_orders: Expected repeat orders given the months active (rate x months).
        order_variance: Variance of the repeat-order count given the months active: the
            expectation for Poisson orders, 0 for fixed ones (a test arm's total count
            is then one Poisson draw plus a fixed part).
        value: Discounted margin of the repeat orders minus nurture cost (the first
            order is not included).
        referrals: Expected visitors referred within the horizon.
    """

    churn: FloatArray
    active_months: IntArray
    churned: NDArray[np.bool_]
    repeat_orders: FloatArray
    order_variance: FloatArray
    value: FloatArray
    referrals: FloatArray


def _customer_churn(model: LifetimeModel, u: FloatArray) -> FloatArray:
    if model.sbg is None:
        churn = np.full(u.shape, model.churn_per_month)
    else:
        from scipy.special import betaincinv

        churn = betaincinv(model.sbg[0], model.sbg[1], u)
    return np.asarray(np.minimum(1.0, churn * model.churn_multiplier), dtype=float)


def _months_survived(churn: FloatArray, u: FloatArray, horizon: int) -> IntArray:
    """Geometric lifetimes by inversion: P(L >= k) = (1 - churn)^k, capped at the horizon."""
    with np.errstate(divide="ignore", invalid="ignore"):
        months = np.floor(np.log1p(-u) / np.log1p(-churn))
    months = np.where(churn <= 0.0, horizon, np.where(churn >= 1.0, 0.0, months))
    return np.minimum(months, horizon).astype(np.int64)


def simulate_lifetimes(model: LifetimeModel, uniforms: FloatArray) -> Lifetimes:
    """Draw each customer's life from two uniforms per customer (rows).

    Columns: churn (used under ``sbg``), lifetime. The months a customer stays active
    are drawn; what happens within them enters through its conditional expectation
    (Rao-Blackwellisation: exact in expectation, less noisy): repeat orders are rate x
    months, each month's margin is discounted, order values enter through their mean.

    >>> rng = np.random.default_rng(1)
    >>> m = LifetimeModel(1.0, 10.0, 1.0, "fixed", 0.0, None, 1.0, 12, 0.0, 0.0, 0.0)
    >>> simulate_lifetimes(m, rng.random((3, 2))).value.tolist()
    [120.0, 120.0, 120.0]
    """
    u = np.asarray(uniforms, dtype=float).reshape(-1, 2)
    churn = _customer_churn(model, u[:, 0])
    horizon = model.horizon_months
    life = _months_survived(churn, u[:, 1], horizon)
    orders = model.repeat_per_month * life.astype(float)
    discounted_months = np.concatenate([[0.0], np.cumsum(_discount_factors(model)[1:])])[life]
    monthly = model.margin * model.order_value * model.repeat_per_month
    return Lifetimes(
        churn=churn,
        active_months=life,
        churned=life < horizon,
        repeat_orders=orders,
        order_variance=orders if model.repeat_orders == "poisson" else np.zeros_like(orders),
        value=(monthly - model.nurture_cost_per_month) * discounted_months,
        referrals=model.referrals_per_month * life.astype(float),
    )


def monthly_retention(model: LifetimeModel, months: int) -> FloatArray:
    """P(a customer active in month k - 1 is still active in month k), k = 1..``months``:
    S(k) / S(k - 1) of :func:`survival` (0 once nobody is left, and beyond the horizon).

    Customers are independent, so among ``n`` customers active in month k - 1 the number
    still active in month k is Binomial(n, this), whatever the churn law (constant or
    shifted-beta-geometric): the cohort's survivors are a chain of binomials.

    >>> m = LifetimeModel(1.0, 10.0, 1.0, "fixed", 0.25, None, 1.0, 2, 0.0, 0.0, 0.0)
    >>> monthly_retention(m, 3).tolist()
    [0.75, 0.75, 0.0]
    """
    alive = survival(model)
    kept = np.zeros(months)
    ratios = np.divide(alive[1:], alive[:-1], out=np.zeros(len(alive) - 1), where=alive[:-1] > 0)
    kept[: min(months, len(ratios))] = ratios[:months]
    return np.clip(kept, 0.0, 1.0)


def survivor_counts(
    customers: IntArray, retention: FloatArray, rng: np.random.Generator
) -> IntArray:
    """(cohorts, months + 1): how many of each cohort's ``customers`` are active k months
    after their first order (column 0 is the cohort), drawn as a chain of binomials with
    ``retention`` (cohorts, months) from :func:`monthly_retention`: as many draws as
    months, however many customers. In distribution this is exactly the count of
    :func:`simulate_lifetimes`' customers with ``active_months >= k``.
    """
    counts = np.zeros((len(customers), retention.shape[1] + 1), np.int64)
    counts[:, 0] = customers
    for k in range(retention.shape[1]):
        counts[:, k + 1] = rng.binomial(counts[:, k], retention[:, k])
    return counts


def discounted_months(model: LifetimeModel, months: int) -> FloatArray:
    """(1 + d)^-k for k = 1..``months``, 0 beyond the horizon: summed over the months a
    customer is active, the weight of the monthly margin in :func:`simulate_lifetimes`."""
    weights = np.zeros(months)
    factors = _discount_factors(model)[1:]
    weights[: min(months, len(factors))] = factors[:months]
    return weights


class CustomerValue(NamedTuple):
    """What one variant's customers of one replication are worth, by channel.

    Attributes:
        customers: Customers won per channel.
        clv: Total CLV per channel, the first orders' margin included.
        cumulative_margin: (channels, horizon + 1) expected undiscounted margin to date,
            summed over the channel's customers (divide by ``customers`` for one).
        lifetimes: Every customer's simulated life; cells in (segment, channel) order,
            customers within a cell in slot order.
        registered: Whether each customer (same order) registered at checkout.
    """

    customers: IntArray
    clv: FloatArray
    cumulative_margin: FloatArray
    lifetimes: Lifetimes
    registered: NDArray[np.bool_]


def registration_share(scenario: Scenario) -> float:
    """Share of buyers who are registered: all behind a required login, a share behind an
    optional one, none without a login wall."""
    wall = strictest_login_wall(scenario)
    if wall == "required":
        return 1.0
    if wall == "optional":
        return scenario.coefficients.login_wall.optional_registers
    return 0.0


NO_LIFETIMES = Lifetimes(
    np.zeros(0),
    np.zeros(0, np.int64),
    np.zeros(0, bool),
    np.zeros(0),
    np.zeros(0),
    np.zeros(0),
    np.zeros(0),
)


def _join(parts: list[Lifetimes]) -> Lifetimes:
    columns = zip(NO_LIFETIMES, *parts, strict=True)
    return Lifetimes(*(np.concatenate(column) for column in columns))


def _merge(registered: NDArray[np.bool_], guest: Lifetimes, member: Lifetimes) -> Lifetimes:
    """Each customer's life under the model that applies to them (same uniforms)."""
    return Lifetimes(*(np.where(registered, m, g) for g, m in zip(guest, member, strict=True)))


class SharedLifetimes:
    """One replication's customer slots and their simulated lives, shared by its variants.

    ``uniforms[j]`` holds one row per customer slot of cell j in (segment, channel)
    order, 3 columns (registration, churn, lifetime). A slot's life depends only on its
    uniforms, whether it registers and its lifetime models, so it is simulated once per
    (cell, registered share, models) over all the cell's slots; a variant with n
    customers in the cell takes the first n (common random numbers: the k-th customer
    always uses row k).

    >>> shared = SharedLifetimes([np.random.default_rng(1).random((5, 3))])
    >>> m = LifetimeModel(1.0, 10.0, 1.0, "fixed", 0.5, None, 1.0, 12, 0.0, 0.0, 0.0)
    >>> few, more = shared.lives(0, 0.0, m, m, 2)[1], shared.lives(0, 0.0, m, m, 5)[1]
    >>> few.value.tolist() == more.value[:2].tolist()
    True
    """

    def __init__(self, uniforms: list[FloatArray]) -> None:
        self.uniforms = uniforms
        self._by_model: dict[tuple[int, LifetimeModel], Lifetimes] = {}
        self._by_cell: dict[tuple[int, float, LifetimeModel, LifetimeModel], _CellLives] = {}

    def lives(
        self, cell: int, registers: float, guest: LifetimeModel, member: LifetimeModel, n: int
    ) -> tuple[NDArray[np.bool_], Lifetimes]:
        """Whether each of the cell's first ``n`` customers registered (``registers``: the
        registered share), and their lives, each under the model that applies to them."""
        key = (cell, registers, guest, member)
        if key not in self._by_cell:
            registered = self.uniforms[cell][:, 0] < registers
            if registered.all():
                lives = self._model_lives(cell, member)
            elif registered.any():
                guests, members = self._model_lives(cell, guest), self._model_lives(cell, member)
                lives = _merge(registered, guests, members)
            else:
                lives = self._model_lives(cell, guest)
            self._by_cell[key] = _CellLives(registered, lives)
        registered, lives = self._by_cell[key]
        return registered[:n], Lifetimes(*(column[:n] for column in lives))

    def _model_lives(self, cell: int, model: LifetimeModel) -> Lifetimes:
        key = (cell, model)
        if key not in self._by_model:
            self._by_model[key] = simulate_lifetimes(model, self.uniforms[cell][:, 1:3])
        return self._by_model[key]


class _CellLives(NamedTuple):
    registered: NDArray[np.bool_]
    lives: Lifetimes


def customer_value(
    scenario: Scenario, buyers: IntArray, revenue: FloatArray, shared: SharedLifetimes
) -> CustomerValue:
    """Simulate the customers of one variant (``scenario``) from their first orders.

    ``buyers`` and ``revenue`` (first-order value sums) are (segments, channels)
    arrays; ``shared`` holds at least ``buyers`` slots per cell, and the lives the
    replication's other variants already drew on them.
    """
    segments, channels = list(scenario.segments), list(scenario.traffic.channels)
    registers = registration_share(scenario)
    customers = buyers.sum(axis=0).astype(np.int64)
    clv = scenario.value.margin * revenue.sum(axis=0)
    cumulative = np.zeros((len(channels), scenario.value.horizon_months + 1))
    parts: list[Lifetimes] = []
    registered_parts: list[NDArray[np.bool_]] = [np.zeros(0, bool)]
    for j, (g, c) in enumerate(np.ndindex(len(segments), len(channels))):
        n = int(buyers[g, c])
        if n == 0:
            continue
        guest, member = (
            lifetime_model(scenario, segments[g], channels[c], registered=flag)
            for flag in (False, True)
        )
        registered, lives = shared.lives(j, registers, guest, member, n)
        first_order = float(revenue[g, c]) / n
        members = int(np.count_nonzero(registered))
        for kind, count in ((guest, n - members), (member, members)):
            if count:
                cumulative[c] += count * cumulative_margin(kind, first_order)
        clv[c] += lives.value.sum()
        parts.append(lives)
        registered_parts.append(registered)
    return CustomerValue(customers, clv, cumulative, _join(parts), np.concatenate(registered_parts))


# --------------------------------------------------------------------------- economics


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; inf for a positive amount over zero, NaN for 0 / 0."""
    if denominator == 0.0:
        return math.inf if numerator > 0 else math.nan
    return numerator / denominator


def payback_months(cumulative: FloatArray, cac: float) -> float:
    """First month whose cumulative margin covers ``cac``; inf when none within the horizon.

    >>> payback_months(np.array([5.0, 8.0, 11.0]), 10.0)
    2.0
    >>> payback_months(np.array([5.0, 8.0]), 10.0)
    inf
    """
    if not math.isfinite(cac):
        return math.nan
    covered = np.flatnonzero(cumulative >= cac)
    return float(covered[0]) if covered.size else math.inf


def lead_ready_share(ready_per_message: float, max_messages: int) -> float:
    """Share of nurtured leads that become sales-ready within ``max_messages``.

    >>> lead_ready_share(0.5, 3)
    0.875
    """
    return float(1.0 - (1.0 - ready_per_message) ** max_messages)


def lead_messages(ready_per_message: float, max_messages: int) -> float:
    """Expected messages sent to a lead: until sales-ready or ``max_messages``.

    >>> lead_messages(1.0, 5)
    1.0
    >>> lead_messages(0.0, 5)
    5.0
    """
    return float(sum((1.0 - ready_per_message) ** j for j in range(max_messages)))


def lead_days_to_ready(interval_days: float, ready_per_message: float, max_messages: int) -> float:
    """Expected days until a lead that becomes sales-ready does (truncated geometric)."""
    p = ready_per_message
    if p == 0.0:
        return math.nan
    k = np.arange(1, max_messages + 1)
    weights = p * (1.0 - p) ** (k - 1)
    return float(interval_days * (k @ weights) / weights.sum())
