"""Reading a team's own funnel data into stage counts per breakdown cell.

Two shapes are read, each by one function:

- :func:`read_funnel_counts`: aggregated counts as analytics tools export them (GA4
  funnel exploration, Matomo, Mixpanel, Amplitude): one row per period (optional
  ``date``), optional breakdown columns (``segment``, ``channel`` and any named in
  ``by``), one column per stage with the visitors who reached it and a last column with
  those who converted::

      date,segment,landing,product,checkout,purchase
      2026-11-01,mobile,1200,310,95,61

- :func:`read_event_log`: one row per event, ``visitor_id,timestamp,event`` (plus the
  breakdown columns), with events mapped to stages (``{"view": "landing", ...,
  "order": "converted"}``); it gives the same counts plus the minutes between reaching
  consecutive stages and, for lead funnels, the business's first reply to each lead (an
  event mapped to ``"replied"``, or ``"replied:STAGE"`` naming the stage it answers):
  the minutes from reaching a stage with a response delay to that reply, and whether
  the lead went on. The log ``funnelsim run --events`` writes is read too: each of its
  rows is the event ``STAGE`` when the visitor entered the stage and ``STAGE:OUTCOME``
  when they left it (``contract:continued`` on the last stage is a purchase,
  ``call:replied`` the business's answer to a lead at ``call``, timed when it came).

Both return a :class:`StageCounts`; a mistake in the file is one
``FILE:LINE: column 'NAME': problem`` sentence (:class:`~funnelsim.analysis.data.DataError`).
Rows of the same breakdown cell are summed (one row per day, say).
"""

from __future__ import annotations

import csv
import itertools
import math
import reprlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

from funnelsim.analysis.data import MAX_COUNT, DataError, decoded_lines
from funnelsim.engine.outcomes import REPLIED as REPLY_OUTCOME

FloatArray = npt.NDArray[np.float64]

CONVERTED = "converted"
"""The stage-map target that marks a conversion in an event log."""
REPLIED = "replied"
"""The stage-map target that marks the business's reply to a lead (``replied:STAGE``
names the stage it answers; bare, the one stage with a response delay)."""
ENGINE_LOG_COLUMNS = ("variant", "visitor", "stage", "entered_min", "left_min", "outcome")
"""The columns of the event log ``funnelsim run --events`` writes (times in minutes)."""
DATE_COLUMN = "date"
BREAKDOWN_COLUMNS = ("segment", "channel")
"""Breakdown columns read whenever the header has them."""

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60


@dataclass(frozen=True)
class StageTimes:
    """Minutes between first reaching one stage and first reaching the next, per visitor
    who reached both in that order (from an event log).

    Attributes:
        transitions: ``(from_stage, to_stage)`` pairs, in funnel order.
        minutes: Per transition, every timed visitor's minutes.
    """

    transitions: tuple[tuple[str, str], ...]
    minutes: tuple[FloatArray, ...]

    @property
    def visitors(self) -> FloatArray:
        """Visitors timed for each transition."""
        return np.array([len(m) for m in self.minutes], dtype=np.float64)

    @property
    def mean_min(self) -> FloatArray:
        """Mean minutes per transition (NaN when nobody was timed)."""
        return np.array([m.mean() if len(m) else math.nan for m in self.minutes])

    @property
    def median_min(self) -> FloatArray:
        """Median minutes per transition (NaN when nobody was timed)."""
        return np.array([np.median(m) if len(m) else math.nan for m in self.minutes])


@dataclass(frozen=True)
class LeadReplies:
    """The business's first reply to each lead that reached a stage with a response
    delay (from an event log).

    Attributes:
        stage: The stage answered.
        cell: (leads,) each lead's row of :attr:`StageCounts.reached`.
        minutes: (leads,) minutes from first reaching the stage to the first reply; NaN
            when never answered (or the lead has no event of the stage to time from).
        continued: (leads,) True where the lead reached a later stage or converted.
    """

    stage: str
    cell: npt.NDArray[np.int64]
    minutes: FloatArray
    continued: npt.NDArray[np.bool_]

    @property
    def answered(self) -> int:
        """Leads with a timed reply."""
        return int(np.isfinite(self.minutes).sum())


@dataclass(frozen=True)
class StageCounts:
    """Visitors reaching each stage, per breakdown cell.

    Attributes:
        stages: Stage names in funnel order (the scenario's stages).
        reached: Visitors reaching each stage and, in the last column, converting;
            shape ``(cells, len(stages) + 1)``; never increasing along a row.
        breakdown: Names of the breakdown columns (may be empty).
        cells: The breakdown values of each row of ``reached``, in order of first
            appearance (one empty tuple without breakdown).
        source: Where the counts came from, for messages.
        times: Minutes between stages (event logs only), else None.
        replies: Replies to the leads of each answered stage (event logs with a reply
            event only).
    """

    stages: tuple[str, ...]
    reached: FloatArray
    breakdown: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    source: str
    times: StageTimes | None = None
    replies: tuple[LeadReplies, ...] = ()

    def transitions(self) -> tuple[FloatArray, FloatArray]:
        """Trials and successes of every stage's continue step: visitors reaching stage
        ``k`` and those reaching the next stage (or converting, after the last), each of
        shape ``(cells, stages)``."""
        return self.reached[:, :-1], self.reached[:, 1:]


def _fail(source: str, line: int, column: str, message: str) -> DataError:
    return DataError(f"{source}:{line}: column {_SHORT.repr(column)}: {message}")


def _records(path: Path, source: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV rows of a UTF-8 file with their line numbers, header first."""
    reader = csv.reader(decoded_lines(path, source))
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{source}:{reader.line_num}: cannot read the row: {error}") from None
        if any(value.strip() for value in values):
            yield reader.line_num, [value.strip() for value in values]


def _header(records: Iterator[tuple[int, list[str]]], source: str) -> dict[str, int]:
    first = next(records, None)
    if first is None:
        raise DataError(f"{source}: empty file (expected a header row)")
    index: dict[str, int] = {}
    for position, name in enumerate(first[1]):
        if name in index:
            raise _fail(source, first[0], name, "appears twice in the header")
        index[name] = position
    return index


def _require(names: Sequence[str], index: Mapping[str, int], source: str) -> None:
    for name in names:
        if name not in index:
            available = ", ".join(repr(column) for column in list(index)[:12])
            raise _fail(source, 1, name, f"missing from the header; the header has {available}")


def _value(values: list[str], index: Mapping[str, int], column: str, where: tuple[str, int]) -> str:
    position = index[column]
    if position >= len(values):
        raise _fail(*where, column, f"missing value (row has {len(values)} fields)")
    return values[position]


def _count(
    values: list[str], index: Mapping[str, int], column: str, where: tuple[str, int]
) -> float:
    text = _value(values, index, column, where)
    try:
        number = float(text)
    except ValueError:
        raise _fail(*where, column, f"expected a count, got {_SHORT.repr(text)}") from None
    if not math.isfinite(number) or number < 0 or number != round(number) or number > MAX_COUNT:
        raise _fail(
            *where, column, f"expected a whole number from 0 to 2**53, got {_SHORT.repr(text)}"
        )
    return number


def _breakdown(by: Sequence[str], index: Mapping[str, int]) -> tuple[str, ...]:
    automatic = tuple(name for name in BREAKDOWN_COLUMNS if name in index and name not in by)
    return automatic + tuple(by)


def _cell(
    values: list[str], index: Mapping[str, int], breakdown: Sequence[str], where: tuple[str, int]
) -> tuple[str, ...]:
    cell = tuple(_value(values, index, column, where) for column in breakdown)
    for column, text in zip(breakdown, cell, strict=True):
        if not text:
            raise _fail(*where, column, "empty breakdown value")
    return cell


def _assemble(
    stages: tuple[str, ...],
    totals: dict[tuple[str, ...], list[float]],
    breakdown: tuple[str, ...],
    source: str,
    times: StageTimes | None = None,
    replies: tuple[LeadReplies, ...] = (),
) -> StageCounts:
    if not totals:
        raise DataError(f"{source}: no data rows after the header")
    reached = np.array(list(totals.values()), dtype=np.float64).reshape(
        len(totals), len(stages) + 1
    )
    if not np.all(np.isfinite(reached)):
        raise DataError(f"{source}: the counts add up to more than a float holds")
    return StageCounts(stages, reached, breakdown, tuple(totals), source, times, replies)


def read_funnel_counts(
    path: str | PathLike[str],
    stage_columns: Sequence[str] | None = None,
    by: Sequence[str] = (),
) -> StageCounts:
    """Read an analytics tool's funnel export: visitors reaching each stage per period.

    Args:
        path: CSV file, one row per period (and breakdown cell).
        stage_columns: The stage columns in funnel order, the converted column last;
            None takes every column that is not ``date`` or a breakdown column, in
            header order.
        by: Breakdown columns besides ``segment`` and ``channel`` (read when present).

    Returns:
        The counts summed per breakdown cell; the stages are named after their columns.

    Raises:
        DataError: one line naming the file, line and column of the first problem (a
            count that is not a whole number, more visitors at a stage than at the one
            before, a missing column).

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "funnel.csv"
        >>> _ = path.write_text("date,landing,cart,purchase\\n1,100,20,5\\n2,50,10,3\\n")
        >>> counts = read_funnel_counts(path)
        >>> counts.stages, counts.reached.tolist()
        (('landing', 'cart'), [[150.0, 30.0, 8.0]])
    """
    source = str(path)
    records = _records(Path(path), source)
    index = _header(records, source)
    breakdown = _breakdown(by, index)
    columns = (
        tuple(stage_columns)
        if stage_columns
        else tuple(name for name in index if name != DATE_COLUMN and name not in breakdown and name)
    )
    _require(breakdown + columns, index, source)
    if len(columns) < 2:
        raise DataError(
            f"{source}:1: need at least two stage columns (a stage and the converted "
            f"column), found {len(columns)}; name them with stage_columns / --stage-columns"
        )
    totals: dict[tuple[str, ...], list[float]] = {}
    for line, values in records:
        where = (source, line)
        row = [_count(values, index, column, where) for column in columns]
        for before, after, count_before, count_after in zip(
            columns, columns[1:], row, row[1:], strict=False
        ):
            if count_after > count_before:
                raise _fail(
                    *where,
                    after,
                    f"{count_after:g} reached it but only {count_before:g} reached {before!r}",
                )
        total = totals.setdefault(_cell(values, index, breakdown, where), [0.0] * len(columns))
        for position, count in enumerate(row):
            total[position] += count
    return _assemble(columns[:-1], totals, breakdown, source)


def parse_stage_map(text: str) -> dict[str, str]:
    """``event=stage,...`` (the ``--stage-map`` option) as an event-to-stage dict.

    Raises:
        DataError: a pair without ``=``, an empty name or an event mapped twice.
    """
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        event, equals, stage = (part.strip() for part in pair.partition("="))
        if not equals or not event or not stage:
            raise DataError(f"--stage-map: expected event=stage, got {_SHORT.repr(pair.strip())}")
        if event in mapping:
            raise DataError(f"--stage-map: event {event!r} is mapped twice")
        mapping[event] = stage
    return mapping


def _timestamp(text: str, where: tuple[str, int]) -> float:
    """Seconds since the epoch, from an ISO 8601 time or a number of seconds."""
    try:
        return (
            float(text)
            if text.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(text).timestamp()
        )
    except ValueError:
        raise _fail(
            *where,
            "timestamp",
            f"expected an ISO 8601 time or epoch seconds, got {_SHORT.repr(text)}",
        ) from None


@dataclass
class _Visitor:
    cell: tuple[str, ...]
    first_seen: list[float]  # per stage (and converted), NaN until reached
    line: int
    first_line: dict[int, int] = field(default_factory=dict)  # stage: line of first_seen
    replied: dict[str, tuple[float, int]] = field(default_factory=dict)  # stage: (time, line)


@dataclass(frozen=True)
class _Event:
    """One event of a log row: its name and how to read its time (seconds), lazily
    (the time of an event the stage map ignores is never read)."""

    name: str
    column: str
    values: list[str]
    where: tuple[str, int]

    def moment(self, index: Mapping[str, int]) -> float:
        text = _value(self.values, index, self.column, self.where)
        if self.column == "timestamp":
            return _timestamp(text, self.where)
        try:
            minutes = float(text)
        except ValueError:
            minutes = math.nan
        if not math.isfinite(minutes):
            raise _fail(*self.where, self.column, f"expected minutes, got {_SHORT.repr(text)}")
        return 60.0 * minutes


def _row_events(
    values: list[str], index: Mapping[str, int], engine: bool, where: tuple[str, int]
) -> Iterable[_Event]:
    """A row's events: its ``event`` at its ``timestamp``; in a ``run --events`` log,
    ``STAGE`` at ``entered_min`` (not for a reply) and ``STAGE:OUTCOME`` at ``left_min``."""
    if not engine:
        return (_Event(_value(values, index, "event", where), "timestamp", values, where),)
    stage = _value(values, index, "stage", where)
    outcome = _value(values, index, "outcome", where)
    left = _Event(f"{stage}:{outcome}", "left_min", values, where)
    if outcome == REPLY_OUTCOME:
        return (left,)
    return (_Event(stage, "entered_min", values, where), left)


@dataclass
class _Rows:
    """Which rows of a log are read: those of one arm (``column``, ``value``), and in a
    ``run --events`` log of several variants, an arm must be named."""

    arm: tuple[str, str] | None
    engine: bool
    kept: int = 0
    first_variant: tuple[str, int] | None = None  # (name, line)

    def keep(self, values: list[str], index: Mapping[str, int], where: tuple[str, int]) -> bool:
        if self.arm is not None:
            column, wanted = self.arm
            if _value(values, index, column, where) != wanted:
                return False
        elif self.engine:
            variant = _value(values, index, "variant", where)
            if self.first_variant is None:
                self.first_variant = (variant, where[1])
            elif variant != self.first_variant[0]:
                raise _fail(
                    *where,
                    "variant",
                    f"a second variant {_SHORT.repr(variant)} (line {self.first_variant[1]} "
                    f"has {self.first_variant[0]!r}): keep one with --arm variant=NAME",
                )
        self.kept += 1
        return True


def _is_reply(target: str) -> bool:
    return target == REPLIED or target.startswith(f"{REPLIED}:")


def _reply_targets(
    stage_map: Mapping[str, str], stages: Sequence[str], delayed: Sequence[str]
) -> dict[str, str | None]:
    """Each reply event's stage: named (``replied:STAGE``), else the one stage with a
    response delay; None where no stage with a response delay could be meant (an error
    on the first row with that event)."""
    targets: dict[str, str | None] = {}
    for event, target in stage_map.items():
        if not _is_reply(target):
            continue
        named = target.partition(":")[2].strip()
        if not named and len(delayed) > 1:
            raise DataError(
                f"--stage-map: {event}={target}: several stages have a response delay "
                f"({', '.join(delayed)}); name the one answered, e.g. {event}={REPLIED}:"
                f"{delayed[0]}"
            )
        stage = named or (delayed[0] if delayed else None)
        if stage is not None and stage not in stages:
            raise DataError(
                f"--stage-map: {event}={target}: it answers {stage!r}, which no event of the "
                f"map reaches (the map's stages: {', '.join(stages)})"
            )
        targets[event] = stage if stage in delayed else None
    return targets


def _stage_order(stage_map: Mapping[str, str], source: str) -> tuple[str, ...]:
    order = tuple(s for s in dict.fromkeys(stage_map.values()) if not _is_reply(s))
    if CONVERTED not in order:
        raise DataError(
            f"{source}: the stage map names no event for {CONVERTED!r} (e.g. purchase={CONVERTED})"
        )
    stages = tuple(stage for stage in order if stage != CONVERTED)
    if not stages:
        raise DataError(f"{source}: the stage map names no stage besides {CONVERTED!r}")
    return (*stages, CONVERTED)


def read_event_log(
    path: str | PathLike[str],
    stage_map: Mapping[str, str],
    by: Sequence[str] = (),
    delayed: Sequence[str] = (),
    arm: tuple[str, str] | None = None,
) -> StageCounts:
    """Read a per-visitor event log into stage counts, times between stages and the
    replies to leads.

    Args:
        path: CSV with ``visitor_id,timestamp,event`` and optional breakdown columns;
            timestamps are ISO 8601 (with or without zone, read consistently) or epoch
            seconds; rows may come in any order. Or the log ``run --events`` writes
            (:data:`ENGINE_LOG_COLUMNS`): a row is the event ``STAGE`` at
            ``entered_min`` (except a reply's) and ``STAGE:OUTCOME`` at ``left_min``.
        stage_map: Event name to stage name; the stages are taken in the order first
            named, and one event must map to ``"converted"``. An event mapped to
            ``"replied"`` (or ``"replied:STAGE"``) is the business's reply to a lead.
            Other events are ignored.
        by: Breakdown columns besides ``segment`` and ``channel`` (read when present);
            a visitor's breakdown values must not change between rows.
        delayed: The stages with a response delay (``response_delay_min``), which a
            reply may answer; a bare ``"replied"`` answers the only one.
        arm: ``(column, value)``: only those rows are read (``("variant", "control")``
            for a ``run --events`` log, which must name one when it has several).

    Returns:
        Counts per cell: a visitor reaching a stage counts as having reached every
        earlier one (analytics funnels count the same way); ``times`` holds the minutes
        from first reaching one stage to first reaching the next, for visitors with
        both events in that order; ``replies`` each answered stage's leads with the
        minutes to their first reply.

    Raises:
        DataError: one line naming the file, line and column of the first problem (a
            reply before the lead reached the stage, to a visitor who never reached it,
            or to a stage without a response delay; a ``run --events`` log of several
            variants without ``arm``).
    """
    source = str(path)
    order = _stage_order(stage_map, source)
    position = {stage: order.index(stage) for stage in order}
    reply_to = _reply_targets(stage_map, order[:-1], delayed)
    records = _records(Path(path), source)
    index = _header(records, source)
    breakdown = _breakdown(by, index)
    engine = set(ENGINE_LOG_COLUMNS) <= index.keys() and "visitor_id" not in index
    visitor_column = "visitor" if engine else "visitor_id"
    columns = ENGINE_LOG_COLUMNS if engine else (visitor_column, "timestamp", "event")
    _require((*columns, *breakdown, *(arm[:1] if arm else ())), index, source)
    rows = _Rows(arm, engine)
    visitors: dict[str, _Visitor] = {}
    for line, values in records:
        where = (source, line)
        if not rows.keep(values, index, where):
            continue
        visitor_id = _value(values, index, visitor_column, where)
        if not visitor_id:
            raise _fail(*where, visitor_column, "empty visitor id")
        cell = _cell(values, index, breakdown, where)
        visitor = _visitor_of(visitors, visitor_id, cell, breakdown, (len(order), where))
        for event in _row_events(values, index, engine, where):
            _note_event(visitor, event, stage_map, reply_to, position, index)
    if arm is not None and not rows.kept:
        raise DataError(f"{source}: column {arm[0]!r} has no value {arm[1]!r}")
    reached_any = [v for v in visitors.values() if not all(map(math.isnan, v.first_seen))]
    if not reached_any:
        raise DataError(f"{source}: no event of the stage map ({', '.join(stage_map)}) in the file")
    totals: dict[tuple[str, ...], list[float]] = {}
    for visitor in reached_any:
        total = totals.setdefault(visitor.cell, [0.0] * len(order))
        for k in range(_furthest(visitor) + 1):
            total[k] += 1
    replies = tuple(
        _lead_replies(stage, position[stage], visitors, list(totals), source)
        for stage in dict.fromkeys(s for s in reply_to.values() if s is not None)
    )
    return _assemble(
        order[:-1], totals, breakdown, source, _stage_times(order, reached_any), replies
    )


def _visitor_of(
    visitors: dict[str, _Visitor],
    visitor_id: str,
    cell: tuple[str, ...],
    breakdown: Sequence[str],
    at: tuple[int, tuple[str, int]],
) -> _Visitor:
    """The visitor of a row (new on their first row, with ``at[0]`` stages to reach at
    ``at[1]``, the row's place); their breakdown cell must not change."""
    stages, where = at
    visitor = visitors.setdefault(visitor_id, _Visitor(cell, [math.nan] * stages, where[1]))
    if visitor.cell != cell:
        column = next(
            c for c, old, new in zip(breakdown, visitor.cell, cell, strict=True) if old != new
        )
        raise _fail(
            *where, column, f"visitor {visitor_id!r} was {visitor.cell} on line {visitor.line}"
        )
    return visitor


def _note_event(
    visitor: _Visitor,
    event: _Event,
    stage_map: Mapping[str, str],
    reply_to: Mapping[str, str | None],
    position: Mapping[str, int],
    index: Mapping[str, int],
) -> None:
    """Keep the visitor's first time at the event's stage, or their first reply."""
    if event.name in reply_to:
        _note_reply(visitor, event, reply_to[event.name], stage_map[event.name], index)
        return
    stage = stage_map.get(event.name)
    if stage is None:
        return
    moment, k = event.moment(index), position[stage]
    if math.isnan(visitor.first_seen[k]) or moment < visitor.first_seen[k]:
        visitor.first_seen[k], visitor.first_line[k] = moment, event.where[1]


def _furthest(visitor: _Visitor) -> int:
    """The last stage (or converted) a visitor reached; -1 for none."""
    reached = [k for k, moment in enumerate(visitor.first_seen) if not math.isnan(moment)]
    return max(reached, default=-1)


def _note_reply(
    visitor: _Visitor,
    event: _Event,
    stage: str | None,
    target: str,
    index: Mapping[str, int],
) -> None:
    """Keep the visitor's first reply to ``stage`` (None: a stage without a response delay)."""
    if stage is None:
        named = target.partition(":")[2].strip()
        what = f"stage {named!r} has" if named else "no stage of the scenario has"
        raise _fail(
            *event.where,
            "event" if event.column == "timestamp" else "outcome",
            f"{event.name!r} is a reply ({target}), but {what} a response delay "
            "(response_delay_min) to time it from",
        )
    moment = event.moment(index)
    earlier = visitor.replied.get(stage)
    if earlier is None or moment < earlier[0]:
        visitor.replied[stage] = (moment, event.where[1])


def _lead_replies(
    stage: str,
    k: int,
    visitors: Mapping[str, _Visitor],
    cells: list[tuple[str, ...]],
    source: str,
) -> LeadReplies:
    """The leads that reached stage ``k`` with the minutes to their first reply."""
    rows, minutes, continued = [], [], []
    for visitor_id, visitor in visitors.items():
        reply = visitor.replied.get(stage)
        furthest = _furthest(visitor)
        if furthest < k:
            if reply is not None:
                raise _fail(
                    source,
                    reply[1],
                    "event",
                    f"a reply to visitor {visitor_id!r}, who never reached {stage!r}",
                )
            continue
        enquired = visitor.first_seen[k]
        if reply is not None and reply[0] < enquired:
            raise _fail(
                source,
                reply[1],
                "timestamp",
                f"visitor {visitor_id!r} was answered before reaching {stage!r} "
                f"(line {visitor.first_line[k]})",
            )
        rows.append(cells.index(visitor.cell))
        minutes.append((reply[0] - enquired) / 60.0 if reply is not None else math.nan)
        continued.append(furthest > k)
    return LeadReplies(
        stage,
        np.array(rows, dtype=np.int64),
        np.array(minutes, dtype=np.float64),
        np.array(continued, dtype=bool),
    )


def _stage_times(order: tuple[str, ...], visitors: Sequence[_Visitor]) -> StageTimes:
    moments = np.array([visitor.first_seen for visitor in visitors], dtype=np.float64)
    gaps = (moments[:, 1:] - moments[:, :-1]) / 60.0
    timed = np.isfinite(gaps) & (gaps >= 0)
    minutes = tuple(column[keep] for column, keep in zip(gaps.T, timed.T, strict=True))
    return StageTimes(tuple(itertools.pairwise(order)), minutes)


def read_visitor_flags(
    path: str | PathLike[str],
    stage_columns: Sequence[str],
    arm: tuple[str, str],
    converted: str = "converted",
) -> StageCounts:
    """Read one arm of per-visitor rows with a flag per stage (``analyze``'s format).

    Args:
        path: CSV, one row per visitor.
        stage_columns: Flag columns of the stages, in funnel order.
        arm: ``(column, value)``: the rows kept, e.g. ``("test group", "a")`` for a
            past experiment's control arm.
        converted: The conversion flag column.

    Raises:
        DataError: as :func:`~funnelsim.analysis.data.read_experiment`, or the arm absent.
    """
    from funnelsim.analysis.data import ColumnMap, read_experiment

    column, value = arm
    data = read_experiment(
        path, ColumnMap(variant=column, converted=converted, stages=tuple(stage_columns))
    )
    if value not in data.variants:
        raise DataError(
            f"{path}: column {column!r} has no value {value!r} (it has {', '.join(data.variants)})"
        )
    row = data.variants.index(value)
    reached = [*data.stage_counts[row].tolist(), float(data.conversions[row])]
    return _assemble(tuple(stage_columns), {(): reached}, (), str(path))
