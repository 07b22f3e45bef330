"""Reading an experiment's outcomes from a CSV file into per-variant aggregates.

An analyst exports a finished A/B test from the warehouse in one of two shapes. Either
the counting is done already, one row per variant (or per variant and day)::

    variant,visitors,conversions,revenue,cart,checkout
    control,10000,410,25830.50,2200,900
    guest_checkout,10000,465,29102.10,2210,1010

or there is one row per visitor, with flags for how far the visitor got::

    variant,cart,checkout,converted,revenue
    control,TRUE,TRUE,FALSE,
    guest_checkout,yes,yes,yes,62.40

A third shape is the event log ``funnelsim run --events`` writes: one row per visitor
and stage entered (``variant,visitor,...,stage,...,outcome,revenue``); a purchase is
the last stage ``continued``, with its order value; rows of outcome ``replied`` (the
business's answer to a lead) are no stage entered and are skipped. All three are
reduced here, in one streaming pass, to the sufficient statistics the models need:
visitors, conversions and visitors reaching each stage per variant, plus order value
sums (and, from per-visitor rows, sums of squares and of logarithms, which let the
revenue model learn the spread of order values). Nothing per visitor is kept in memory,
so a file of millions of rows costs only the time to read it. Column names are mapped
with :class:`ColumnMap`; a mistake in the file is reported as one
``FILE:LINE: column 'NAME': problem`` sentence (:class:`DataError`).
"""

from __future__ import annotations

import csv
import math
import reprlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from funnelsim.engine.outcomes import REPLIED
from funnelsim.errors import FunnelsimError
from funnelsim.files import input_problem
from funnelsim.text import control_character

FloatArray = npt.NDArray[np.float64]
Layout = Literal["aggregated", "per_visitor"]

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60  # a quoted value in an error stays short: one readable line
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})

MAX_COUNT = 2.0**53  # the largest count a float holds exactly


class DataError(FunnelsimError, ValueError):
    """A problem with an experiment file, as one ``FILE:LINE: column 'C': ...`` sentence."""

    located = True


class ColumnMap(NamedTuple):
    """Names of the columns to read; every other column is ignored.

    Attributes:
        variant: Column naming the variant of each row.
        converted: Per-visitor rows: the flag saying whether the visitor converted.
        visitors: Aggregated rows: visitors counted in the row. A file with this column is
            read as aggregated rows, otherwise as per-visitor rows.
        conversions: Aggregated rows: converting visitors counted in the row.
        revenue: Order value (per-visitor rows) or revenue sum (aggregated rows); None
            reads a column named ``revenue`` when the file has one.
        stages: Stage columns in funnel order: flags of reaching the stage (per-visitor
            rows) or visitors reaching it (aggregated rows). Conversion follows the last.
    """

    variant: str = "variant"
    converted: str = "converted"
    visitors: str = "visitors"
    conversions: str = "conversions"
    revenue: str | None = None
    stages: tuple[str, ...] = ()


DEFAULT_COLUMNS = ColumnMap()


class OrderStats(NamedTuple):
    """Sufficient statistics of the order values of each variant's converters.

    Attributes:
        orders: Converting visitors (one order each).
        total: Sum of their order values.
        total_sq: Sum of squared order values; None for aggregated rows.
        log_total: Sum of log order values; None for aggregated rows.
        log_total_sq: Sum of squared log order values; None for aggregated rows.
    """

    orders: FloatArray
    total: FloatArray
    total_sq: FloatArray | None = None
    log_total: FloatArray | None = None
    log_total_sq: FloatArray | None = None


class ExperimentData(NamedTuple):
    """Per-variant aggregates of one experiment, variants in order of first appearance.

    Attributes:
        variants: Variant names.
        visitors: Visitors per variant.
        conversions: Converting visitors per variant.
        stages: Names of the intermediate funnel stages, in order (may be empty).
        stage_counts: Visitors reaching each stage, shape ``(variants, stages)``.
        orders: Order value statistics, or None without a revenue column.
        metric: Name of the conversion column (``converted`` or ``conversions`` by
            default; ``retention_1`` in the Cookie Cats data).
        layout: ``"aggregated"`` or ``"per_visitor"``: the shape of the source rows.
        source: Where the data came from (file name), for messages.
    """

    variants: tuple[str, ...]
    visitors: FloatArray
    conversions: FloatArray
    stages: tuple[str, ...]
    stage_counts: FloatArray
    orders: OrderStats | None
    metric: str
    layout: Layout
    source: str


def experiment_from_counts(
    variants: Sequence[str],
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    stages: Sequence[str] = (),
    stage_counts: npt.ArrayLike | None = None,
    revenue: npt.ArrayLike | None = None,
    metric: str = "conversions",
) -> ExperimentData:
    """Experiment data from counts already aggregated per variant (e.g. in a notebook).

    Args:
        variants: Unique variant names.
        visitors: Visitors per variant.
        conversions: Converting visitors per variant.
        stages: Intermediate stage names in funnel order.
        stage_counts: Visitors reaching each stage, shape ``(variants, stages)``.
        revenue: Revenue sum per variant (order values of the converters).
        metric: Name of the conversion measure, for labels.

    Example:
        >>> data = experiment_from_counts(["A", "B"], [1000, 1000], [100, 120])
        >>> data.conversions / data.visitors
        array([0.1 , 0.12])
    """
    names = tuple(str(name) for name in variants)
    if not names or len(set(names)) != len(names) or not all(names):
        raise DataError(f"variant names must be unique and non-empty, got {list(names)}")
    n = _counts("visitors", visitors, (len(names),))
    x = _counts("conversions", conversions, (len(names),))
    reached = _counts(
        "stage_counts",
        np.zeros((len(names), 0)) if stage_counts is None else stage_counts,
        (len(names), len(stages)),
    )
    chain = np.column_stack([n, reached, x])
    if np.any(np.diff(chain, axis=1) > 0):
        raise DataError(
            "counts must not increase along the funnel: "
            "visitors >= each stage's count >= the next >= conversions"
        )
    orders = None
    if revenue is not None:
        total = _counts("revenue", revenue, (len(names),), integral=False)
        if np.any((x == 0) & (total > 0)):
            raise DataError("revenue must be zero for variants without conversions")
        orders = OrderStats(orders=x, total=total)
    return ExperimentData(
        names, n, x, tuple(stages), reached, orders, metric, "aggregated", "<counts>"
    )


def experiment_from_rates(
    variants: Sequence[str],
    rates: npt.ArrayLike,
    visitors: int,
    stages: Sequence[str],
    rng: np.random.Generator,
) -> ExperimentData:
    """A simulated experiment with known stage continue rates (ground truth for checking
    a model): per variant, ``visitors`` walk the funnel, Binomial at every stage.

    ``rates[v, s]`` is variant v's continue rate at stage s; the last column leads to
    conversion, so ``stages`` names all columns but the last.

    Example:
        >>> data = experiment_from_rates(["A", "B"], [[0.5, 1.0], [1.0, 0.5]], 100, ["cart"],
        ...                              np.random.default_rng(0))
        >>> data.stage_counts[1].tolist(), data.visitors.tolist()
        ([100.0], [100.0, 100.0])
    """
    table = np.asarray(rates, dtype=float)
    counts = np.zeros_like(table)
    for v, row in enumerate(table):
        reached = visitors
        for s, rate in enumerate(row):
            reached = rng.binomial(reached, rate)
            counts[v, s] = reached
    return experiment_from_counts(
        variants, [visitors] * len(table), counts[:, -1], stages, counts[:, :-1]
    )


def _counts(
    name: str, values: npt.ArrayLike, shape: tuple[int, ...], integral: bool = True
) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape:
        raise DataError(f"{name} must have shape {shape}, got {array.shape}", name)
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise DataError(f"{name} must be finite and non-negative", name)
    if integral and np.any(array != np.round(array)):
        raise DataError(f"{name} must be whole numbers", name)
    if integral and np.any(array > MAX_COUNT):
        raise DataError(f"{name} must be at most 2**53 (exactly representable)", name)
    return array


# --------------------------------------------------------------------------- reading


@dataclass
class _Totals:
    """Running sums of one variant while the file streams past."""

    visitors: float = 0.0
    conversions: float = 0.0
    stages: list[float] = field(default_factory=list)
    revenue: float = 0.0
    revenue_sq: float = 0.0
    log_revenue: float = 0.0
    log_revenue_sq: float = 0.0


class _Row:
    """One data row with its line number, and field access that reports errors well."""

    def __init__(self, source: str, line: int, values: list[str], index: dict[str, int]):
        self.source, self.line, self.values, self.index = source, line, values, index

    def fail(self, column: str, message: str) -> DataError:
        return DataError(f"{self.source}:{self.line}: column {_SHORT.repr(column)}: {message}")

    def text(self, column: str) -> str:
        position = self.index[column]
        if position >= len(self.values):
            raise self.fail(column, f"missing value (row has {len(self.values)} fields)")
        return self.values[position].strip()

    def flag(self, column: str) -> bool:
        word = self.text(column).lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise self.fail(
            column, f"expected TRUE/FALSE, yes/no or 1/0, got {_SHORT.repr(self.text(column))}"
        )

    def number(self, column: str, empty: float | None = None) -> float:
        text = self.text(column)
        if not text and empty is not None:
            return empty
        try:
            value = float(text)
        except ValueError:
            raise self.fail(column, f"expected a number, got {_SHORT.repr(text)}") from None
        if not math.isfinite(value) or value < 0:
            raise self.fail(column, f"must be a finite number >= 0, got {_SHORT.repr(text)}")
        return value

    def count(self, column: str) -> float:
        value = self.number(column)
        if value != round(value) or value > MAX_COUNT:
            raise self.fail(
                column,
                f"expected a whole number up to 2**53, got {_SHORT.repr(self.text(column))}",
            )
        return value


def read_experiment(
    path: str | PathLike[str] | Any, columns: ColumnMap = DEFAULT_COLUMNS
) -> ExperimentData:
    """Read an experiment (aggregated or per-visitor rows) into per-variant aggregates:
    a CSV file, or a DataFrame of any library narwhals reads (pandas, polars, ...).

    The header decides the shape: a ``columns.visitors`` column means aggregated rows
    (rows of the same variant are summed, e.g. one per day); ``visitor``, ``stage`` and
    ``outcome`` columns mean an event log (:data:`EVENT_LOG_COLUMNS`; the stages are
    read from the rows, in the order they first appear); otherwise each row is one
    visitor with a ``columns.converted`` flag. Flags accept TRUE/FALSE, yes/no and 1/0 in
    any case. In per-visitor rows the stage flags must be in funnel order (a visitor who
    reached a stage reached every earlier one, and converters reached the last), and
    revenue, when present, is the visitor's order value: positive for converters, zero or
    empty for the others.

    Raises:
        DataError: one line naming the file (or ``<DataFrame>``), line and column of the
            first problem.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ab.csv"
        >>> _ = path.write_text("variant,converted\\nA,yes\\nA,no\\nB,TRUE\\n")
        >>> data = read_experiment(path)
        >>> data.variants, data.visitors, data.conversions
        (('A', 'B'), array([2., 1.]), array([1., 1.]))
    """
    if isinstance(path, str | PathLike):
        source = str(path)
        reader = csv.reader(decoded_lines(Path(path), source))
        records = ((reader.line_num, values) for values in _records(reader, source))
    else:
        source, records = FRAME_SOURCE, _frame_records(path)
    header = next(records, (0, None))[1]
    if header is None:
        raise DataError(f"{source}: empty file (expected a header row)")
    index = _header_index(header)
    if set(EVENT_LOG_COLUMNS) <= index.keys() and columns.visitors not in index:
        return _read_event_log(records, index, columns, source)
    layout: Layout = "aggregated" if columns.visitors in index else "per_visitor"
    revenue = _revenue_column(columns, index)
    needed = (
        (columns.variant, columns.visitors, columns.conversions)
        if layout == "aggregated"
        else (columns.variant, columns.converted)
    )
    _require(needed + columns.stages + ((revenue,) if revenue else ()), index, source, layout)
    add = _add_aggregated if layout == "aggregated" else _add_visitor
    totals: dict[str, _Totals] = {}
    for line, values in records:
        if not any(value.strip() for value in values):
            continue
        row = _Row(source, line, values, index)
        name = row.text(columns.variant)
        if not name:
            raise row.fail(columns.variant, "empty variant name")
        if (found := control_character(name)) is not None:
            raise row.fail(columns.variant, f"the control character {found} in a variant name")
        add(
            totals.setdefault(name, _Totals(stages=[0.0] * len(columns.stages))),
            row,
            columns,
            revenue,
        )
    if not totals:
        raise DataError(f"{source}: no data rows after the header")
    _check_finite(totals, source)
    metric = columns.conversions if layout == "aggregated" else columns.converted
    return _assemble(totals, columns.stages, revenue, layout, metric, source)


FRAME_SOURCE = "<DataFrame>"
EVENT_LOG_COLUMNS = ("visitor", "stage", "outcome")
"""The columns that mark an event log (``funnelsim run --events``)."""
PURCHASE = "continued"
"""The outcome of the last stage that is a purchase (any other outcome is a loss)."""


@dataclass
class _EventTally:
    """Running counts of one variant's event rows: entries and purchases per stage."""

    entered: dict[str, float] = field(default_factory=dict)
    continued: dict[str, float] = field(default_factory=dict)
    orders: _Totals = field(default_factory=_Totals)
    order_stages: set[str] = field(default_factory=set)
    order_rows: float = 0.0


def _read_event_log(
    records: Iterator[tuple[int, list[str]]],
    index: dict[str, int],
    columns: ColumnMap,
    source: str,
) -> ExperimentData:
    """An event log folded into per-variant counts: the first stage's entries are the
    visitors, later stages' entries their reach, the last stage continued the purchases
    (the rows of replies to leads are skipped)."""
    _require((columns.variant,), index, source, "per_visitor")
    revenue = _revenue_column(columns, index)
    tallies: dict[str, _EventTally] = {}
    order: dict[str, None] = {}  # stages in order of first appearance
    for line, values in records:
        if not any(value.strip() for value in values):
            continue
        row = _Row(source, line, values, index)
        if row.text("outcome") == REPLIED:
            continue
        name, stage = row.text(columns.variant), row.text("stage")
        if not name or not stage:
            raise row.fail(columns.variant if not name else "stage", "empty name")
        tally = tallies.setdefault(name, _EventTally())
        order.setdefault(stage, None)
        tally.entered[stage] = tally.entered.get(stage, 0.0) + 1
        bought = row.text("outcome") == PURCHASE
        tally.continued[stage] = tally.continued.get(stage, 0.0) + bought
        if revenue is not None and row.number(revenue, empty=0.0) > 0:
            _add_order(tally.orders, row, revenue, bought)
            tally.order_stages.add(stage)
            tally.order_rows += 1
    if not tallies:
        raise DataError(f"{source}: no data rows after the header")
    return _assemble_events(tallies, tuple(order), revenue, source)


def _assemble_events(
    tallies: dict[str, _EventTally], stages: tuple[str, ...], revenue: str | None, source: str
) -> ExperimentData:
    first, last = stages[0], stages[-1]
    if not any(tally.order_rows for tally in tallies.values()):
        revenue = None  # a log without order values (a funnel that sells nothing priced)
    totals: dict[str, _Totals] = {}
    for name, tally in tallies.items():
        if tally.order_stages - {last}:
            raise DataError(
                f"{source}: variant {_SHORT.repr(name)}: order values on stage "
                f"{sorted(tally.order_stages - {last})[0]!r}; a purchase is the last stage "
                f"({last!r}) {PURCHASE}"
            )
        purchases = tally.continued.get(last, 0.0)
        if revenue is not None and tally.order_rows != purchases:
            raise DataError(
                f"{source}: variant {_SHORT.repr(name)}: {purchases:.0f} purchases but "
                f"{tally.order_rows:.0f} order values; every purchase needs a positive one"
            )
        group = tally.orders
        group.visitors = tally.entered.get(first, 0.0)
        group.conversions = purchases
        group.stages = [tally.entered.get(stage, 0.0) for stage in stages[1:]]
        totals[name] = group
    _check_finite(totals, source)
    return _assemble(totals, stages[1:], revenue, "per_visitor", "purchased", source)


def _frame_records(frame: Any) -> Iterator[tuple[int, list[str]]]:
    """A DataFrame's header and rows as the CSV reader gives them (text cells), numbered
    as lines of the CSV file the frame would write (the header is line 1)."""
    import narwhals as nw

    try:
        table = nw.from_native(frame, eager_only=True)
    except TypeError:
        raise DataError(
            f"expected a CSV path or a DataFrame, got {type(frame).__name__}", "data"
        ) from None
    yield 1, [str(name) for name in table.columns]
    for number, row in enumerate(table.iter_rows(), start=2):
        yield number, [_cell_text(value) for value in row]


def _cell_text(value: Any) -> str:
    """A DataFrame cell as CSV text: missing values empty, booleans TRUE/FALSE."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def _records(reader: Iterator[list[str]], source: str) -> Iterator[list[str]]:
    """The CSV reader's rows; a row it cannot split (a field over the size limit) is a
    DataError on its line."""
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line = getattr(reader, "line_num", 0)
            raise DataError(f"{source}:{line}: cannot read the row: {error}") from None
        yield values


def _check_finite(totals: dict[str, _Totals], source: str) -> None:
    """Refuse sums that overflowed a float (counts or order values absurdly large), and
    counts whose sum a float no longer holds exactly."""
    for name, group in totals.items():
        for attribute in ("visitors", "conversions", "stages"):
            value = getattr(group, attribute)
            if max(value if isinstance(value, list) else [value], default=0.0) > MAX_COUNT:
                raise DataError(
                    f"{source}: variant {_SHORT.repr(name)}: the {attribute} add up to more "
                    "than 2**53, beyond exact counting; check the units of the numbers"
                )
        for attribute, value in vars(group).items():
            if not all(map(math.isfinite, value if isinstance(value, list) else [value])):
                total = attribute.replace("log_", "log ").replace("_sq", " squared")
                raise DataError(
                    f"{source}: variant {_SHORT.repr(name)}: the {total} add up "
                    "to more than a float holds; check the units of the numbers"
                )


MAX_LINE_BYTES = 1_000_000
"""A longer line is refused (an endless stream without newlines is never held whole)."""


def decoded_lines(path: Path, source: str) -> Iterator[str]:
    """Lines of a UTF-8 file (a BOM is dropped), decoded one by one for exact error lines."""
    problem = input_problem(path)
    if problem is not None:
        raise DataError(f"{source}: {problem}")
    try:
        stream = path.open("rb")
    except OSError as error:
        raise DataError(f"{source}: cannot read: {error.strerror or error}") from None

    def lines() -> Iterator[str]:
        with stream:
            bounded = iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b"")
            for number, raw in enumerate(bounded, start=1):
                if len(raw) > MAX_LINE_BYTES:
                    raise DataError(f"{source}:{number}: line longer than {MAX_LINE_BYTES:,} bytes")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise DataError(
                        f"{source}:{number}: not UTF-8 text (byte {raw[error.start]:#04x} at "
                        f"column {error.start + 1}); save the file as UTF-8"
                    ) from None
                yield text.removeprefix("\ufeff") if number == 1 else text

    return lines()


def _header_index(header: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name.strip(), position)
    return index


def _revenue_column(columns: ColumnMap, index: dict[str, int]) -> str | None:
    if columns.revenue is not None:
        return columns.revenue
    return "revenue" if "revenue" in index else None


def _require(names: Sequence[str], index: dict[str, int], source: str, layout: Layout) -> None:
    missing = [name for name in names if name not in index]
    if not missing:
        return
    shape = (
        "aggregated rows"
        if layout == "aggregated"
        else ("per-visitor rows (a file with a visitors column is read as aggregated rows)")
    )
    available = ", ".join(repr(name) for name in list(index)[:12])
    raise DataError(
        f"{source}:1: column {missing[0]!r}: missing from the header; reading "
        f"{shape}; the header has {available}"
    )


def _add_aggregated(totals: _Totals, row: _Row, columns: ColumnMap, revenue: str | None) -> None:
    visitors = row.count(columns.visitors)
    conversions = row.count(columns.conversions)
    previous_name, previous = columns.visitors, visitors
    for i, stage in enumerate(columns.stages):
        reached = row.count(stage)
        if reached > previous:
            raise row.fail(
                stage,
                f"{reached:g} reached this stage but only {previous:g} "
                f"reached the one before ({previous_name!r})",
            )
        totals.stages[i] += reached
        previous_name, previous = stage, reached
    if conversions > previous:
        raise row.fail(
            columns.conversions,
            f"{conversions:g} conversions exceed the {previous:g} counted in {previous_name!r}",
        )
    totals.visitors += visitors
    totals.conversions += conversions
    if revenue is not None:
        amount = row.number(revenue, empty=0.0)
        if amount > 0 and conversions == 0:
            raise row.fail(revenue, f"revenue {amount:g} in a row without conversions")
        totals.revenue += amount


def _add_visitor(totals: _Totals, row: _Row, columns: ColumnMap, revenue: str | None) -> None:
    converted = row.flag(columns.converted)
    reached_before, previous = True, columns.variant
    for i, stage in enumerate(columns.stages):
        reached = row.flag(stage)
        if reached and not reached_before:
            raise row.fail(
                stage,
                f"visitor reached this stage but not {previous!r}; "
                "stage columns must be in funnel order",
            )
        totals.stages[i] += reached
        reached_before, previous = reached, stage
    if converted and not reached_before:
        raise row.fail(columns.converted, f"visitor converted without reaching {previous!r}")
    totals.visitors += 1
    totals.conversions += converted
    if revenue is not None:
        _add_order(totals, row, revenue, converted)


def _add_order(totals: _Totals, row: _Row, revenue: str, converted: bool) -> None:
    amount = row.number(revenue, empty=0.0)
    if not converted:
        if amount > 0:
            raise row.fail(revenue, f"revenue {amount:g} for a visitor who did not convert")
        return
    if amount <= 0:
        raise row.fail(revenue, "a converting visitor needs a positive order value")
    log_amount = math.log(amount)
    totals.revenue += amount
    totals.revenue_sq += amount * amount
    totals.log_revenue += log_amount
    totals.log_revenue_sq += log_amount * log_amount


def _assemble(
    totals: dict[str, _Totals],
    stages: tuple[str, ...],
    revenue: str | None,
    layout: Layout,
    metric: str,
    source: str,
) -> ExperimentData:
    groups = list(totals.values())

    def column(attribute: str) -> FloatArray:
        return np.array([getattr(group, attribute) for group in groups], dtype=np.float64)

    conversions = column("conversions")
    orders = None
    if revenue is not None:
        per_visitor = layout == "per_visitor"
        orders = OrderStats(
            orders=conversions,
            total=column("revenue"),
            total_sq=column("revenue_sq") if per_visitor else None,
            log_total=column("log_revenue") if per_visitor else None,
            log_total_sq=column("log_revenue_sq") if per_visitor else None,
        )
    stage_counts = np.array([group.stages for group in groups], dtype=np.float64).reshape(
        len(groups), len(stages)
    )
    return ExperimentData(
        tuple(totals),
        column("visitors"),
        conversions,
        stages,
        stage_counts,
        orders,
        metric,
        layout,
        source,
    )
