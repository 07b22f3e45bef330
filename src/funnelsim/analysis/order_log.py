"""Order logs: reading one from CSV, and each customer's purchase history.

An order log has one row per order: customer, variant, date, amount.
:func:`read_transactions` reads it with one-line ``FILE:LINE: column 'C': ...``
errors (:class:`TransactionError`); :func:`summarise_customers` turns it into each
customer's frequency, recency and age, the inputs of the BG/NBD model
(:mod:`funnelsim.analysis.bgnbd`) and of the readouts (:mod:`funnelsim.analysis.lifetime`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from funnelsim.analysis.data import (
    DataError,
    decoded_lines,
)
from funnelsim.text import control_character

if TYPE_CHECKING:
    pass

FloatArray = NDArray[np.float64]


IntArray = NDArray[np.int64]


DAYS_PER_WEEK = 7.0


DAYS_PER_MONTH = 365.25 / 12.0


class TransactionError(DataError):
    """A problem with a transactions file: one ``FILE:LINE: column 'C': ...`` sentence."""


class Transactions(NamedTuple):
    """An order log: one entry per order.

    Attributes:
        customer: Customer identifier.
        variant: Variant the customer was acquired under.
        day: Order date as days since 1970-01-01.
        amount: Order value.
    """

    customer: NDArray[np.str_]
    variant: NDArray[np.str_]
    day: IntArray
    amount: FloatArray


DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


EPOCH = date(1970, 1, 1)


def parse_day(text: str) -> int:
    """Days since 1970-01-01 of a date written YYYY-MM-DD (or YYYYMMDD, YYYY/MM/DD, or
    an ISO date and time).

    >>> parse_day("1970-01-02"), parse_day("19700103")
    (1, 2)
    """
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return (datetime.strptime(text, fmt).date() - EPOCH).days
        except ValueError:
            continue
    raise ValueError(f"cannot read {text!r} as a date (use YYYY-MM-DD)")


def _amount(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a non-negative number, got {text!r}")
    return value


def read_transactions(
    path: str | Path,
    customer: str = "customer",
    variant: str | None = "variant",
    date_column: str = "date",
    amount: str = "amount",
) -> Transactions:
    """Read an order log from CSV: one row per order with customer, variant, date, amount.

    UTF-8 text (a byte-order mark is dropped). Without a variant column (``variant=None``)
    every customer is in variant ``all``. Raises :class:`DataError` (a
    :class:`TransactionError` for the log's content) with a one-line
    ``FILE:LINE: column: problem``; a customer is won by one variant only.
    """
    path = Path(path)
    columns = {"customer": customer, "date": date_column, "amount": amount}
    if variant is not None:
        columns["variant"] = variant
    try:
        reader = csv.DictReader(decoded_lines(path, str(path)))
        header = reader.fieldnames or []
        missing = [name for name in columns.values() if name not in header]
        if missing:
            known = _short(", ".join(header) or "none", 200)
            raise TransactionError(
                f"{path}:1: column {_short(missing[0])!r}: missing from the header "
                f"(columns: {known})"
            )
        parsed = [(_row(row, columns, path, reader.line_num), reader.line_num) for row in reader]
    except csv.Error as error:
        raise TransactionError(f"{path}: not a readable CSV file ({error})") from None
    if not parsed:
        raise TransactionError(f"{path}: no orders (only a header)")
    rows, lines = zip(*parsed, strict=True)
    customers, variants, days, amounts = zip(*rows, strict=True)
    if variant is not None:
        _check_one_variant_per_customer(customers, variants, lines, f"{path}", variant)
    return Transactions(
        np.array(customers), np.array(variants), np.array(days, np.int64), np.array(amounts, float)
    )


def _check_one_variant_per_customer(
    customers: Sequence[str], variants: Sequence[str], lines: Sequence[int], path: str, column: str
) -> None:
    """A customer was won by one arm: the first order under another variant is an error."""
    first: dict[str, tuple[str, int]] = {}
    for customer, variant, line in zip(customers, variants, lines, strict=True):
        seen, seen_line = first.setdefault(customer, (variant, line))
        if seen != variant:
            raise TransactionError(
                f"{path}:{line}: column {column!r}: customer {_short(customer)!r} is under "
                f"{_short(variant)!r} here but under {_short(seen)!r} on line {seen_line}"
            )


def _row(
    row: dict[str, str | None], columns: dict[str, str], path: Path, line: int
) -> tuple[str, str, int, float]:
    values = {key: (row.get(name) or "").strip() for key, name in columns.items()}
    for key, text in values.items():
        if not text:
            raise TransactionError(f"{path}:{line}: column {columns[key]!r}: empty value")
        if (found := control_character(text)) is not None:
            raise TransactionError(
                f"{path}:{line}: column {_short(columns[key])!r}: the control character {found}"
            )
    try:
        day = parse_day(values["date"])
    except ValueError as error:
        raise TransactionError(f"{path}:{line}: column {columns['date']!r}: {error}") from None
    try:
        value = _amount(values["amount"])
    except ValueError:
        raise TransactionError(
            f"{path}:{line}: column {columns['amount']!r}: must be a non-negative number, "
            f"got {values['amount']!r}"
        ) from None
    return values["customer"], values.get("variant", "all"), day, value


class CustomerSummary(NamedTuple):
    """Per customer, what the BG/NBD model reads (times in ``unit_days`` units).

    Attributes:
        customer: Customer identifier.
        variant: The customer's variant.
        frequency: Repeat purchases: purchase days after the first one.
        recency: Time from the first to the last purchase.
        T: Age: time from the first purchase to the end of observation.
        spend: Mean value of the customer's purchase days (orders of one day added).
        unit_days: Days per time unit (7: weeks).
    """

    customer: NDArray[np.str_]
    variant: NDArray[np.str_]
    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    spend: FloatArray
    unit_days: float

    @property
    def variants(self) -> list[str]:
        """Variant names in order of first appearance."""
        return list(dict.fromkeys(self.variant.tolist()))


def summarise_customers(
    log: Transactions, end: str | None = None, unit_days: float = DAYS_PER_WEEK
) -> CustomerSummary:
    """Frequency, recency and age per customer from an order log.

    Orders after ``end`` (default: the last order date) are left out; several orders
    of one customer on one day count as one purchase (their amounts added).

    >>> log = Transactions(np.array(["a", "a", "a", "b"]), np.array(["x"] * 4),
    ...                    np.array([0, 7, 7, 14]), np.array([10.0, 5.0, 5.0, 20.0]))
    >>> s = summarise_customers(log)
    >>> s.frequency.tolist(), s.recency.tolist(), s.T.tolist(), s.spend.tolist()
    ([1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 20.0])
    """
    last_day = parse_day(end) if end is not None else int(log.day.max())
    keep = log.day <= last_day
    customers, cust = np.unique(log.customer[keep], return_inverse=True)
    day, amount, variant = log.day[keep], log.amount[keep], log.variant[keep]
    customer_variant = np.empty(len(customers), dtype=variant.dtype)
    customer_variant[cust] = variant
    clash = np.flatnonzero(customer_variant[cust] != variant)
    if clash.size:
        who = cust[clash[0]]
        both = sorted({str(customer_variant[who]), str(variant[clash[0]])})
        raise TransactionError(
            f"customer {str(customers[who])!r} appears under two variants "
            f"({both[0]!r} and {both[1]!r})"
        )
    pairs, pair_index = np.unique(np.stack([cust, day]), axis=1, return_inverse=True)
    day_amount = np.bincount(pair_index.reshape(-1), weights=amount, minlength=pairs.shape[1])
    owner, days = pairs
    n = len(customers)
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, owner, days)
    latest = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(latest, owner, days)
    purchase_days = np.bincount(owner, minlength=n).astype(float)
    return CustomerSummary(
        customer=customers,
        variant=customer_variant,
        frequency=purchase_days - 1.0,
        recency=(latest - first) / unit_days,
        T=(last_day - first) / unit_days,
        spend=np.bincount(owner, weights=day_amount, minlength=n) / purchase_days,
        unit_days=unit_days,
    )


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for a one-line message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
