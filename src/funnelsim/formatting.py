"""How every number a reader sees is written: one function per kind of number.

Tables, reports, figure labels and decision sentences format through here, so the
same quantity reads the same everywhere: rates as percentages, differences of rates
in percentage points ("pp", never in scientific notation), money with its currency,
counts as whole numbers, intervals as ``[low, high]`` in the unit of their mean.
A value that is not finite reads "n/a" unless its kind gives it a meaning (no spend,
beyond the horizon).

>>> percent(0.0347), percent(0.0347, digits=1, signed=True)
('3.47%', '+3.5%')
>>> points(0.00123), points(2.47e-10), points(0.00123, signed=True)
('0.123 pp', '< 0.001 pp', '+0.123 pp')
>>> difference(0.0203149), p_value(0.035197)
('+0.02031', '0.0352')
>>> money(6715.123, "EUR"), money(3.5, "CHF")
('€6,715.12', '3.50 CHF')
>>> count(450.3), payback(0.2, 24), payback(float("inf"), 24)
('450', 'first order', '> 24 mo')
>>> uplift(0.069, 0.068, 0.070), uplift(2.78, 1.70, 3.86)
('+6.9%', '+278%')
>>> uplift_bounds(0.069, 0.068, 0.070)
'[+6.8, +7.0]'
"""

from __future__ import annotations

import math
from collections.abc import Callable

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
NOT_AVAILABLE = "n/a"
SMALLEST_POINTS = 0.001
"""Differences of rates below this many percentage points read "< 0.001 pp"."""


def percent(value: float, digits: int = 2, signed: bool = False) -> str:
    """A share or rate as a percentage: ``0.0347`` is ``3.47%``."""
    if not math.isfinite(value):
        return NOT_AVAILABLE
    return f"{value * 100:{'+' if signed else ''}.{digits}f}%"


def points(value: float, signed: bool = False) -> str:
    """A difference of two rates in percentage points, three decimals: ``0.123 pp``
    (``+0.123 pp`` when ``signed``)."""
    if not math.isfinite(value):
        return NOT_AVAILABLE
    shown = value * 100
    if 0 < abs(shown) < SMALLEST_POINTS:
        return f"{'-' if shown < 0 else '+' if signed else ''}< {SMALLEST_POINTS} pp"
    return f"{shown:{'+' if signed else ''}.3f} pp"


def difference(value: float) -> str:
    """A difference in a metric's own unit (a rate, an amount), four significant digits
    and its sign: ``+0.02031``, ``-1.25``."""
    return f"{value:+.4g}" if math.isfinite(value) else NOT_AVAILABLE


def number(value: float) -> str:
    """A value in a metric's own unit, four significant digits: ``0.1903``, ``51.34``."""
    return f"{value:.4g}" if math.isfinite(value) else NOT_AVAILABLE


def p_value(value: float) -> str:
    """A p- or q-value, three significant digits: ``0.0352``, ``1.2e-07``."""
    return f"{value:.3g}" if math.isfinite(value) else NOT_AVAILABLE


def money(value: float, currency: str, digits: int = 2) -> str:
    """An amount with its currency: a symbol when the currency has one (the sign before
    it: ``-€1,234``), else its code."""
    if not math.isfinite(value):
        return NOT_AVAILABLE
    symbol = CURRENCY_SYMBOLS.get(currency)
    if not symbol:
        return f"{value:,.{digits}f} {currency}"
    shown = f"{abs(value):,.{digits}f}"
    negative = value < 0 and shown.strip("0.,") != ""  # -0.001 shows as €0.00
    return f"{'-' if negative else ''}{symbol}{shown}"


def small_money(value: float, currency: str) -> str:
    """An amount that may be a fraction of a cent (an expected loss per visitor)."""
    return money(value, currency, digits=2 if abs(value) >= 0.005 or value == 0 else 4)


def amount(value: float) -> str:
    """An amount or mean count without a unit, two decimals: ``1,234.50``."""
    return f"{value:,.2f}" if math.isfinite(value) else NOT_AVAILABLE


def count(value: float) -> str:
    """A count of people or events (a mean over replications rounds to a whole one)."""
    return f"{round(value):,}" if math.isfinite(value) else NOT_AVAILABLE


def decimal(value: float, digits: int = 1) -> str:
    """A plain number with ``digits`` decimals (days, minutes, ratios)."""
    return f"{value:,.{digits}f}" if math.isfinite(value) else NOT_AVAILABLE


def decimal_3(value: float) -> str:
    """A share of variance (a Sobol index) with three decimals: ``0.412``."""
    return decimal(value, digits=3)


def assumption_value(value: float) -> str:
    """A scenario quantity of any scale (a rate, a coefficient), four significant
    digits: ``0.4123``, ``1.281``."""
    return f"{value:.4g}" if math.isfinite(value) else NOT_AVAILABLE


def ratio(value: float) -> str:
    """LTV:CAC: one decimal; infinite when nothing was spent."""
    if math.isinf(value):
        return "no spend"
    return decimal(value)


def payback(months: float, horizon_months: int) -> str:
    """Months until a customer's margin repays their acquisition cost."""
    if math.isinf(months):
        return f"> {horizon_months} mo"
    if not math.isfinite(months):
        return NOT_AVAILABLE
    return "first order" if round(months) == 0 else f"{months:.0f} mo"


OUTCOME_WORDS = {
    "reject": "not best",
    "stop": "no difference",
    "keep_testing": "keep testing",
}
"""What a test's outcome tells the reader to do, besides shipping."""


def decision_words(action: str, variant: str | None, control: str) -> str:
    """A decision as what to do: "ship B", "keep control", "no difference", "keep testing".

    >>> decision_words("ship", "a", "a"), decision_words("ship", "b", "a")
    ('keep control', 'ship b')
    """
    if action == "ship":
        return "keep control" if variant == control else f"ship {variant}"
    return OUTCOME_WORDS[action]


def outcome_words(outcome: str, variant: str, is_control: bool) -> str:
    """What a test did about one variant, in words: shipping it ("ship B", "keep control"
    for the control), "not best" when another one shipped, else the test's decision.

    >>> outcome_words("ship", "a", True), outcome_words("reject", "b", False)
    ('keep control', 'not best')
    """
    if outcome == "ship":
        return "keep control" if is_control else f"ship {variant}"
    return OUTCOME_WORDS[outcome]


def level(value: float) -> str:
    """An interval's level: ``0.95`` is ``95%``."""
    return f"{value:.0%}"


def _uplift_digits(*values: float) -> int:
    """Whole percentages for uplifts of 100% or more, else one decimal."""
    return 0 if max(map(abs, values)) >= 1 else 1


def uplift(mean: float, low: float, high: float) -> str:
    """A relative uplift's mean, with as many digits as its interval needs."""
    if not all(map(math.isfinite, (mean, low, high))):
        return NOT_AVAILABLE
    return f"{mean * 100:+.{_uplift_digits(mean, low, high)}f}%"


def uplift_bounds(mean: float, low: float, high: float) -> str:
    """A relative uplift's interval in percent: ``[+6.8, +7.0]``."""
    if not all(map(math.isfinite, (mean, low, high))):
        return ""
    digits = _uplift_digits(mean, low, high)
    return f"[{low * 100:+.{digits}f}, {high * 100:+.{digits}f}]"


def bounds(low: float, high: float, show: Callable[[float], str]) -> str:
    """An interval's bounds in the format of its mean: ``[3.10%, 3.84%]``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{show(low)}, {show(high)}]"
