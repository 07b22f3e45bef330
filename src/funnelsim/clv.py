"""Customer lifetime value: what a first purchase is worth over the customer's life.

A customer who buys today may come back: each month they are still active they
place, on average, ``repeat_per_month`` more orders, and each month a share
``churn_per_month`` of them leave for good. Money later is worth less than
money now, so every later month's margin is discounted. The first order's
margin counts in full.

With one order per active month, retention r = 1 - churn, discount rate d per
month and margin m per order, the infinite-horizon value is the closed form
m (1 + d) / (1 + d - r) (Gupta & Lehmann 2003; Gupta et al. 2006, Journal of
Service Research 9(2)); :func:`closed_form_clv` gives it beside the finite sum.
"""

from __future__ import annotations

from funnelsim.scenario import Value


def monthly_discount_rate(annual: float) -> float:
    """The monthly rate equivalent to an annual discount rate.

    >>> round(monthly_discount_rate(0.10), 6)
    0.007974
    """
    return float((1.0 + annual) ** (1.0 / 12.0) - 1.0)


def discounted_repeat_orders(value: Value) -> float:
    """Expected repeat orders per customer over the horizon, discounted to today.

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
    """Margin of the first order plus the discounted margin of expected repeat orders."""
    repeat_revenue = discounted_repeat_orders(value) * value.order_value.mean_value
    return value.margin * (first_order_value + repeat_revenue)


def closed_form_clv(margin: float, retention: float, discount: float) -> float:
    """Infinite-horizon CLV with the current period's margin counted: m(1+d)/(1+d-r).

    >>> round(closed_form_clv(1.0, 0.8, 0.1), 4)
    3.6667
    """
    return margin * (1.0 + discount) / (1.0 + discount - retention)
