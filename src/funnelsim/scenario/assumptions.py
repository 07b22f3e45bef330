"""Uncertain quantities in a scenario file: found, checked and set to their central value.

A number of the model written ``{uncertain: normal, mean: 0.04, sd: 0.01}`` (see
:mod:`funnelsim.uncertainty`) is taken out of the raw data before validation and
replaced by its central value, so the scenario validates as a point-value scenario;
each becomes an :class:`~funnelsim.uncertainty.Assumption` keyed by its dotted path
(``stages.cart.rate``), after checking that it sets a real-valued model quantity and
that its values lie within the field's valid range. A variant's own uncertain
override is keyed ``variants.<name>.<path>`` and drawn independently. Every calibrated
default coefficient the file leaves to its default carries the range its sources
allow (:func:`funnelsim.friction.default_ranges`).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from funnelsim.files import input_problem
from funnelsim.friction import default_ranges
from funnelsim.scenario.messages import (
    Path_,
    ScenarioError,
    _container_item,
    _dotted,
    _LineMap,
    _message,
    _shown,
    _unwrap,
)
from funnelsim.uncertainty import (
    UNCERTAIN_KINDS,
    Assumption,
    Bounds,
    JointDraws,
    UncertainQuantity,
    is_uncertain,
    parse_uncertain,
)

NOT_UNCERTAIN = {"share": "shares must sum to 1", "seed": "it is not a model quantity"}


def sets(override: str, field: str) -> bool:
    """True when setting ``override`` replaces ``field`` (the field itself or a parent)."""
    return field == override or field.startswith(f"{override}.")


def _spec_message(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        kinds = ", ".join(UNCERTAIN_KINDS)
        return f"unknown uncertain {_shown(error['ctx']['tag'])} (one of {kinds})"
    if kind == "missing":
        return f"uncertain quantity needs {error['loc'][-1]!r}"
    if kind == "extra_forbidden":
        return f"unknown field {_shown(error['loc'][-1])} for this uncertain quantity"
    return _message(error, (), root, ())


def parse_spec(
    raw: Any, file: str, line: int | None, field: str, root: type[BaseModel]
) -> UncertainQuantity:
    """The uncertain quantity written as ``raw``; a mistake is a :class:`ScenarioError`."""
    try:
        return parse_uncertain(raw)
    except ValidationError as exc:
        raise ScenarioError(file, line, field, _spec_message(exc.errors()[0], root)) from None


def take_uncertain(
    node: Any, path: Path_, file: str, lines: _LineMap, root: type[BaseModel]
) -> dict[Path_, UncertainQuantity]:
    """Replace every ``{uncertain: ...}`` inside ``node`` by its central value; return the
    specs by data path (the ``variants`` section is left to the variants)."""
    found: dict[Path_, UncertainQuantity] = {}
    if isinstance(node, dict):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return found
    for key, value in items:
        where = (*path, key)
        if where == ("variants",):
            continue
        if is_uncertain(value):
            found[where] = parse_spec(value, file, lines.line_of(where), _dotted(where), root)
            node[key] = found[where].central
        else:
            found.update(take_uncertain(value, where, file, lines, root))
    return found


def _field_info(root: type[BaseModel], data: Any, path: Path_) -> FieldInfo | None:
    """The pydantic field that data ``path`` sets, following the data through lists,
    dicts and discriminated unions (``dist``); None for a container's item."""
    annotation: Any = root
    info: FieldInfo | None = None
    current = data
    for part in path:
        models = [a for a in _unwrap(annotation) if isinstance(a, type)]
        models = [m for m in models if issubclass(m, BaseModel) and isinstance(part, str)]
        chosen = [m for m in models if part in m.model_fields]
        if len(chosen) > 1 and isinstance(current, dict):
            tag = current.get("dist")
            chosen = [
                m
                for m in chosen
                if "dist" not in m.model_fields
                or tag in typing.get_args(m.model_fields["dist"].annotation)
                or tag == m.model_fields["dist"].default
            ]
        if chosen:
            info = chosen[0].model_fields[str(part)]
            annotation = info.annotation
        else:
            item = _container_item(annotation)
            if item is None:
                return None
            annotation, info = item, None
        current = _item(current, part)
    return info


def _item(data: Any, part: str | int) -> Any:
    """``data[part]``, or None where the raw data leaves it out."""
    if isinstance(data, dict):
        return data.get(part)
    if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
        return data[part]
    return None


def _is_distribution(annotation: Any) -> bool:
    """True for a per-visitor distribution field (its models have a ``dist``)."""
    models = [a for a in _unwrap(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return bool(models) and all("dist" in m.model_fields for m in models)


def _real_constraints(info: FieldInfo) -> list[Any] | None:
    """The constraints of a real-valued field (``float``, also optional or annotated);
    None for a field of any other type."""
    if info.annotation is float:
        return list(info.metadata)
    options = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    if len(options) != 1:
        return None
    option = options[0]
    if option is float:
        return list(info.metadata)
    if typing.get_origin(option) is not Annotated or typing.get_args(option)[0] is not float:
        return None
    found = list(info.metadata)
    for rule in typing.get_args(option)[1:]:
        found.extend(rule.metadata if isinstance(rule, FieldInfo) else [rule])
    return found


def field_bounds(constraints: list[Any]) -> Bounds:
    """A real-valued field's valid range, from its constraints."""
    low, high = -math.inf, math.inf
    for rule in constraints:
        if getattr(getattr(rule, "func", None), "__name__", "") == "_probability":
            low, high = max(low, 0.0), min(high, 1.0)
        low = max(low, float(getattr(rule, "gt", getattr(rule, "ge", low))))
        high = min(high, float(getattr(rule, "lt", getattr(rule, "le", high))))
    return Bounds(low, high)


def name_path(data: Any, path: Path_) -> str:
    """The override-style dotted name of a data path: stages by name (``stages.cart.rate``)."""
    parts, current = [], data
    for part in path:
        item = current[part]
        if isinstance(current, list) and isinstance(item, dict):
            part = item.get("name", part)
        parts.append(str(part))
        current = item
    return ".".join(parts)


def assumption_at(
    root: type[BaseModel],
    key: str,
    data: Any,
    path: Path_,
    spec: UncertainQuantity,
    where: tuple[str, int | None],
) -> Assumption:
    """The assumption at data ``path`` of a ``root`` document; refused (a
    :class:`ScenarioError` at ``where``, file and line) unless it sets a real-valued
    model quantity and the spec's values lie within the field's valid range."""
    file, line = where
    field = _dotted(path)
    name = str(path[-1])
    if path[0] == "experiment" or name in NOT_UNCERTAIN:
        reason = NOT_UNCERTAIN.get(name, "the experiment's settings are not assumptions")
        raise ScenarioError(file, line, field, f"cannot be uncertain: {reason}")
    info = _field_info(root, data, path)
    constraints = None if info is None else _real_constraints(info)
    if constraints is None:
        hint = (
            " (a distribution's parameters can: {dist: constant, value: {uncertain: ...}})"
            if info is not None and _is_distribution(info.annotation)
            else ""
        )
        raise ScenarioError(
            file, line, field, f"cannot be uncertain: only a real-valued model quantity can{hint}"
        )
    bounds = field_bounds(constraints)
    problem = spec.bounds_problem(bounds)
    if problem:
        raise ScenarioError(file, line, field, problem)
    return Assumption(key, spec, bounds, name_path(data, path))


def _holds(data: Any, parts: list[str]) -> bool:
    """True when the raw data sets the field at ``parts`` (a dotted path of keys)."""
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def default_assumptions(root: type[BaseModel], data: Any) -> list[Assumption]:
    """The documented range of every calibrated default coefficient that ``data`` (a
    scenario's raw data) leaves to its default, as assumptions keyed by their path."""
    found = []
    for path, default in default_ranges().items():
        parts = path.split(".")
        info = _field_info(root, data, tuple(parts))
        constraints = None if info is None else _real_constraints(info)
        if _holds(data, parts) or constraints is None:
            continue
        spec = parse_uncertain(default.spec)
        found.append(Assumption(path, spec, field_bounds(constraints), path, default=True))
    return found


DRAW_DIMS = {"chain", "draw"}
"""The dimensions of a posterior variable with one value per draw (an assumption's)."""
TRANSFORMED = "__"
"""How PyMC's names of unconstrained values end (``stages.cart.rate_logodds__``)."""


def read_joint_draws(
    path: Path, where: tuple[str, int | None], assumptions: Mapping[str, Assumption]
) -> JointDraws:
    """The joint draws in the posterior group of the NetCDF file at ``path`` (an ArviZ
    InferenceData, as ``funnelsim calibrate`` writes it): one column per variable with
    one value per draw (dimensions chain and draw), chains one after another. Each such
    variable must name one of ``assumptions`` and lie within its field's range;
    variables with more dimensions (derived quantities) and PyMC's unconstrained values
    (names ending ``__``) are left out. A problem is a
    :class:`ScenarioError` at ``where`` (file and line), field ``posterior``."""
    file, line = where

    def refuse(message: str) -> ScenarioError:
        return ScenarioError(file, line, "posterior", f"{path}: {message}")

    problem = input_problem(path, "NetCDF file")
    if problem is not None:
        raise refuse(problem)
    posterior = _posterior_group(path, refuse)
    keys = [
        str(k)
        for k, v in posterior.data_vars.items()
        if set(v.dims) == DRAW_DIMS and not str(k).endswith(TRANSFORMED)
    ]
    if not keys or posterior.sizes.get("draw", 0) == 0:
        raise refuse("no draws of any assumption (variables by chain and draw)")
    for key in keys:
        if key not in assumptions:
            known = ", ".join(assumptions) or "none"
            raise refuse(f"variable {key!r} names no assumption of the scenario ({known})")
    columns = [_draw_column(posterior[key], key, assumptions[key].bounds, refuse) for key in keys]
    return JointDraws(str(path), tuple(keys), np.column_stack(columns))


def _draw_column(
    variable: Any, key: str, bounds: Bounds, refuse: typing.Callable[[str], ScenarioError]
) -> np.ndarray:
    """Every draw of one posterior variable (chains one after another), refused unless
    they are finite numbers within ``bounds``."""
    column = variable.transpose("chain", "draw").to_numpy().reshape(-1)
    if column.dtype.kind not in "fiu":
        raise refuse(f"variable {key!r} does not hold numbers")
    column = column.astype(float)
    extremes = (float(column.min()), float(column.max()))
    if not np.isfinite(column).all() or not all(v in bounds for v in extremes):
        raise refuse(f"variable {key!r} has draws outside its valid range ({bounds.describe()})")
    return column


def _posterior_group(path: Path, refuse: typing.Callable[[str], ScenarioError]) -> Any:
    """The loaded posterior group of a NetCDF file (xarray Dataset)."""
    import xarray as xr

    try:
        with xr.open_dataset(path, group="posterior") as group:
            return group.load()
    except (OSError, ValueError, KeyError, TypeError):
        raise refuse(
            "not a NetCDF file with a posterior group (as funnelsim calibrate writes posterior.nc)"
        ) from None
