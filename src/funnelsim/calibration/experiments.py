"""Past experiments as calibration data: each arm's counts tied to the funnel it ran.

A small YAML file describes one past test::

    data: fields_test.csv           # next to this file: counts per arm, or per visitor
    arm_column: arm                 # the column naming each row's arm
    stage_columns: [landing, cart, checkout, purchase]   # optional: converted last
    per_visitor: false              # true: one row per visitor with 0/1 stage flags
    arms:
      long: control                 # a variant of the scenario, by name
      short: {stages.checkout.friction.form_fields: 8}   # or overrides of the control

Each arm becomes an :class:`~funnelsim.calibration.model.Observed` data set whose
funnel is the scenario as that arm changed it, so the arms share the scenario's
parameters: a past "12 vs 8 fields" test informs the form-field coefficient, and an arm
tied to a variant with its own uncertain override (``variants.<name>.<path>``) informs
that effect assumption.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from funnelsim.calibration.model import (
    CalibrationError,
    DataCalibrationError,
    Observed,
    control_of,
    funnel_terms,
    match_stages,
)
from funnelsim.calibration.readers import StageCounts, read_funnel_counts, read_visitor_flags

if TYPE_CHECKING:
    from funnelsim.scenario import Scenario

FIELDS = ("data", "arm_column", "stage_columns", "per_visitor", "arms")


def _load(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's mapping and the line of each top-level key (1-based)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DataCalibrationError(f"{path}: cannot read the experiment file: {error}") from None
    if not isinstance(raw, dict) or not isinstance(node, yaml.MappingNode):
        raise DataCalibrationError(f"{path}: expected a mapping with {', '.join(FIELDS)}")
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    return raw, lines


def _fail(path: Path, lines: dict[str, int], field: str, message: str) -> CalibrationError:
    return DataCalibrationError(f"{path}:{lines.get(field.split('.')[0], 1)}: {field}: {message}")


def _arm_scenario(
    scenario: Scenario, spec: Any, where: tuple[Path, dict[str, int], str]
) -> Scenario:
    """The funnel an arm ran: a variant by name, or the control with overrides."""
    path, lines, field = where
    if isinstance(spec, str):
        if spec not in scenario.variants:
            known = ", ".join(scenario.variant_names)
            raise _fail(path, lines, field, f"no variant {spec!r} in the scenario ({known})")
        return scenario.variant(spec)
    if spec is None:
        return control_of(scenario)
    if not isinstance(spec, dict):
        raise _fail(path, lines, field, "expected a variant name or {field.path: value, ...}")
    return control_of(scenario.with_overrides({str(k): v for k, v in spec.items()}))


def arm_counts(counts: StageCounts, column: str, arm: str) -> StageCounts:
    """The rows of one arm (breakdown ``column`` equal to ``arm``), without that column."""
    position = counts.breakdown.index(column)
    rows = [i for i, cell in enumerate(counts.cells) if cell[position] == arm]
    if not rows:
        values = ", ".join(sorted({cell[position] for cell in counts.cells}))
        raise DataCalibrationError(
            f"{counts.source}: column {column!r} has no arm {arm!r} ({values})"
        )
    keep = [i for i in range(len(counts.breakdown)) if i != position]
    return StageCounts(
        stages=counts.stages,
        reached=np.asarray(counts.reached[rows]),
        breakdown=tuple(counts.breakdown[i] for i in keep),
        cells=tuple(tuple(counts.cells[r][i] for i in keep) for r in rows),
        source=f"{counts.source} ({column} {arm})",
    )


def read_past_experiment(path: str | PathLike[str], scenario: Scenario) -> list[Observed]:
    """Every arm of the past experiment described by the YAML file at ``path``.

    Raises:
        CalibrationError: a missing or unknown field, an arm naming no variant, an arm
            absent from the data, or stages that do not match the scenario's (one line
            naming the file, line and field).
        DataError: a problem in the data file (file, line and column).
        ScenarioError: an arm's override that the scenario refuses.
    """
    path = Path(path)
    raw, lines = _load(path)
    unknown = [key for key in raw if key not in FIELDS]
    if unknown:
        raise _fail(path, lines, str(unknown[0]), f"unknown field (one of {', '.join(FIELDS)})")
    for required in ("data", "arm_column", "arms"):
        if required not in raw:
            raise DataCalibrationError(f"{path}: missing field {required!r}")
    arms = raw["arms"]
    if not isinstance(arms, dict) or len(arms) < 1:
        raise _fail(path, lines, "arms", "expected a mapping of arm name to variant or overrides")
    columns = raw.get("stage_columns")
    if columns is not None and (
        not isinstance(columns, list)
        or len(columns) < 2
        or not all(isinstance(c, str) for c in columns)
    ):
        raise _fail(path, lines, "stage_columns", "expected a list of column names, converted last")
    data = path.parent / str(raw["data"])
    column = str(raw["arm_column"])
    per_visitor = bool(raw.get("per_visitor", False))
    if per_visitor and columns is None:
        raise _fail(path, lines, "per_visitor", "per-visitor flags need their stage_columns")
    aggregated = None if per_visitor else read_funnel_counts(data, columns, [column])
    observed = []
    for arm, spec in arms.items():
        resolved = _arm_scenario(scenario, spec, (path, lines, f"arms.{arm}"))
        if aggregated is None:
            counts = read_visitor_flags(data, columns[:-1], (column, str(arm)), columns[-1])
        else:
            counts = arm_counts(aggregated, column, str(arm))
        terms = funnel_terms(resolved)
        match_stages(terms, counts, by_position=columns is not None)
        observed.append(Observed(f"{path.stem}:{arm}", terms, counts, resolved))
    return observed
