"""Experiment data where it lives: aggregates computed inside the engine that holds it.

An events table of a hundred million rows should not be loaded into Python to learn
eight numbers per arm. Every readout of this package needs only per-group counts, sums
and cross-products of a few per-visitor columns (:class:`funnelsim.analysis.moments.
Moments`), so the engine computes them in one ``GROUP BY`` and only those few rows come
back, as tea-tasting does:

- a pandas or polars DataFrame, or any frame narwhals supports (pyarrow tables, polars
  lazy frames, Ibis tables): narwhals expressions run in that frame's own engine;
- a Parquet or CSV file: DuckDB scans it (columns and rows it does not need are never
  read into memory);
- ``duckdb:///path/to/file.db`` with a table name: DuckDB aggregates the table in the
  database file, opened read-only.

Missing values in a metric column count as 0 (a visitor without revenue). Groups come
back sorted by their keys. Integer and 0/1 columns give identical sums from every
source; sums of fractional values agree to rounding (engines add in different orders).
DuckDB, narwhals and pyarrow are the ``warehouse`` extra of the package.

References:
    Kuznetsov, E. (2024), tea-tasting, https://tea-tasting.e10v.me (aggregated
    statistics computed in the database).
    Raasveldt, M. & Muehleisen, H. (2019), "DuckDB: an Embeddable Analytical
    Database", SIGMOD.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from funnelsim.analysis.data import FRAME_SOURCE, DataError
from funnelsim.analysis.moments import Moments

FloatArray = npt.NDArray[np.float64]
DUCKDB_PREFIX = "duckdb:///"
FILE_READERS = {".parquet": "read_parquet", ".csv": "read_csv_auto"}


class Grouped(NamedTuple):
    """Counts, sums and cross-products per group.

    Attributes:
        by: Grouping columns.
        keys: One tuple of key values (as text) per group, sorted.
        columns: Summed columns.
        count: Rows per group, shape ``(groups,)``.
        sums: Shape ``(groups, columns)``.
        cross: Shape ``(groups, columns, columns)``.
    """

    by: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    columns: tuple[str, ...]
    count: FloatArray
    sums: FloatArray
    cross: FloatArray


def _pairs(size: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(size) for j in range(i, size)]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _from_rows(rows: Sequence[Sequence[Any]], by: Sequence[str], columns: Sequence[str]) -> Grouped:
    """Assemble :class:`Grouped` from rows ``(*keys, n, *sums, *upper-triangle products)``."""
    if not rows:
        raise DataError("no rows to aggregate")
    keys = tuple(tuple(str(value) for value in row[: len(by)]) for row in rows)
    values = np.array([row[len(by) :] for row in rows], dtype=np.float64)
    k = len(columns)
    cross = np.zeros((len(rows), k, k))
    for position, (i, j) in enumerate(_pairs(k)):
        cross[:, i, j] = cross[:, j, i] = values[:, 1 + k + position]
    return Grouped(tuple(by), keys, tuple(columns), values[:, 0], values[:, 1 : 1 + k], cross)


def _sql(relation: str, by: Sequence[str], columns: Sequence[str]) -> str:
    value = [f"COALESCE(CAST({_quote(c)} AS DOUBLE), 0)" for c in columns]
    selected = [
        *(_quote(b) for b in by),
        "COUNT(*)",
        *(f"SUM({v})" for v in value),
        *(f"SUM({value[i]} * {value[j]})" for i, j in _pairs(len(columns))),
    ]
    keys = ", ".join(_quote(b) for b in by)
    return f"SELECT {', '.join(selected)} FROM {relation} GROUP BY {keys} ORDER BY {keys}"


def _check_columns(available: Sequence[str], wanted: Sequence[str], source: str) -> None:
    missing = [name for name in wanted if name not in available]
    if missing:
        raise DataError(
            f"{source}: column {missing[0]!r}: not found (columns: {', '.join(available)})"
        )


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise DataError(
            "reading Parquet files and databases needs DuckDB: pip install 'funnelsim[warehouse]'"
        ) from None
    return duckdb


def _describe(connection: Any, relation: str, source: str) -> list[str]:
    duckdb = _duckdb()
    try:
        rows = connection.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as error:
        raise DataError(f"{source}: {str(error).splitlines()[0]}") from None
    return [row[0] for row in rows]


def _duckdb_query(
    connection: Any, relation: str, by: Sequence[str], columns: Sequence[str], source: str
) -> Grouped:
    duckdb = _duckdb()
    _check_columns(_describe(connection, relation, source), [*by, *columns], source)
    try:
        rows = connection.sql(_sql(relation, by, columns)).fetchall()
    except duckdb.Error as error:
        raise DataError(f"{source}: {str(error).splitlines()[0]}") from None
    return _from_rows(rows, by, columns)


def _open_database(url: str, table: str | None) -> tuple[Any, str, str]:
    """A read-only connection, the quoted relation and a label for messages."""
    path = Path(url.removeprefix(DUCKDB_PREFIX))
    if table is None:
        raise DataError(f"{url}: name the table to read (--table)")
    if not path.is_file():
        raise DataError(f"{path}: no such database file")
    duckdb = _duckdb()
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        raise DataError(f"{path}: {str(error).splitlines()[0]}") from None
    return connection, _quote(table), f"{path}, table {table!r}"


def _open_file(path: Path) -> tuple[Any, str, str]:
    """An in-memory connection, the file-scanning relation and a label for messages."""
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: expected a .parquet or .csv file, or {DUCKDB_PREFIX}FILE")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    literal = "'" + str(path).replace("'", "''") + "'"
    return _duckdb().connect(), f"{reader}({literal})", str(path)


def _open(source: str | Path, table: str | None) -> tuple[Any, str, str]:
    text = str(source)
    if text.startswith(DUCKDB_PREFIX):
        return _open_database(text, table)
    return _open_file(Path(source))


def _frame(native: Any, by: Sequence[str], columns: Sequence[str]) -> Grouped:
    import narwhals as nw

    frame = nw.from_native(native)
    _check_columns(list(frame.columns), [*by, *columns], FRAME_SOURCE)
    value = [nw.col(c).cast(nw.Float64).fill_null(0.0) for c in columns]
    # Products first, then plain sums: every engine (pandas included) groups them fast.
    terms = [v.alias(f"__s{i}") for i, v in enumerate(value)] + [
        (value[i] * value[j]).alias(f"__q{i}_{j}") for i, j in _pairs(len(columns))
    ]
    names = [f"__s{i}" for i in range(len(columns))] + [
        f"__q{i}_{j}" for i, j in _pairs(len(columns))
    ]
    try:
        aggregated = (
            frame.select(*(nw.col(b) for b in by), *terms)
            .group_by(*by)
            .agg(nw.len().alias("__n"), *(nw.col(name).sum() for name in names))
            .sort(*by)
        )
        if isinstance(aggregated, nw.LazyFrame):
            aggregated = aggregated.collect()
    except Exception:  # a cell the frame's engine cannot read as a number
        raise _first_bad_cell(frame, columns) from None
    return _from_rows(aggregated.rows(), by, columns)


def _first_bad_cell(frame: Any, columns: Sequence[str]) -> DataError:
    """The first cell of ``columns`` that is not a number, numbered as the line of the
    CSV file the frame would write (the header is line 1)."""
    import narwhals as nw

    eager = frame.collect() if isinstance(frame, nw.LazyFrame) else frame
    for column in columns:
        for line, value in enumerate(eager[column].to_list(), start=2):
            try:
                float(value if value is not None else 0.0)
            except (TypeError, ValueError):
                return DataError(
                    f"{FRAME_SOURCE}:{line}: column {column!r}: expected a number "
                    f"(a 0/1 flag or an amount), got {value!r}"
                )
    return DataError(f"{FRAME_SOURCE}: columns {', '.join(columns)}: expected numbers")


def grouped_moments(
    source: Any, by: Sequence[str], columns: Sequence[str], table: str | None = None
) -> Grouped:
    """Per-group counts, sums and cross-products of ``columns``, computed by the source's
    own engine (see the module docstring for the kinds of ``source``).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"arm": ["a", "b", "a"], "y": [1.0, 2.0, 3.0]})
    >>> g = grouped_moments(frame, ["arm"], ["y"])
    >>> g.keys, g.count.tolist(), g.sums.ravel().tolist(), g.cross.ravel().tolist()
    ((('a',), ('b',)), [2.0, 1.0], [4.0, 2.0], [10.0, 4.0])
    """
    if not by:
        raise ValueError("group by at least one column")
    if not isinstance(source, str | Path):
        return _frame(source, by, columns)
    connection, relation, label = _open(source, table)
    with connection:
        return _duckdb_query(connection, relation, by, columns, label)


def column_names(source: Any, table: str | None = None) -> list[str]:
    """The columns of ``source`` (file, ``duckdb:///`` table or DataFrame)."""
    if not isinstance(source, str | Path):
        import narwhals as nw

        return list(nw.from_native(source).columns)
    connection, relation, label = _open(source, table)
    with connection:
        return _describe(connection, relation, label)


def read_moments(
    source: Any, arm: str, columns: Sequence[str], table: str | None = None
) -> Moments:
    """Per-arm :class:`Moments` of ``columns``, arms sorted by name."""
    grouped = grouped_moments(source, [arm], columns, table)
    arms = tuple(key[0] for key in grouped.keys)
    return Moments(arms, grouped.columns, grouped.count, grouped.sums, grouped.cross)


def read_looks(
    source: Any, arm: str, look: str, columns: Sequence[str], table: str | None = None
) -> tuple[list[str], list[Moments]]:
    """Cumulative per-arm :class:`Moments` at each value of ``look`` (a date or a look
    number), in sorted order: what a team saw at each look. An arm absent from the
    early looks counts zero visitors there."""
    grouped = grouped_moments(source, [look, arm], columns, table)
    looks = list(dict.fromkeys(key[0] for key in grouped.keys))  # the engine sorted them
    arms = tuple(sorted({key[1] for key in grouped.keys}))
    k = len(grouped.columns)
    count, sums, cross = np.zeros(len(arms)), np.zeros((len(arms), k)), np.zeros((len(arms), k, k))
    result = []
    for label in looks:
        for g, (key_look, key_arm) in enumerate(grouped.keys):
            if key_look == label:
                a = arms.index(key_arm)
                count[a] += grouped.count[g]
                sums[a] += grouped.sums[g]
                cross[a] += grouped.cross[g]
        result.append(Moments(arms, grouped.columns, count.copy(), sums.copy(), cross.copy()))
    return looks, result
