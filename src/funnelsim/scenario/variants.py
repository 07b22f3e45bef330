"""Variants as overrides by dotted path (``stages.checkout.friction.form_fields: 6``).

:func:`check_override_path` says why a path cannot be set; :func:`_set_path` sets
one in a scenario's raw data; :func:`_resolve_variant` builds a variant from its
overrides, with errors located at the override's line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from funnelsim.scenario.assumptions import assumption_at, is_uncertain, parse_spec, sets
from funnelsim.scenario.messages import (
    Path_,
    ScenarioError,
    _as_model,
    _container_item,
    _did_you_mean,
    _LineMap,
)
from funnelsim.uncertainty import Assumption, UncertainQuantity


class WithVariants(Protocol):
    """What resolving a variant needs of a scenario (the schema imports this module, so
    it is described here rather than imported)."""

    variants: dict[str, dict[str, Any]]
    _source: tuple[str, dict[Path_, int]]  # the file and lines the scenario was read from
    _assumptions: dict[str, Assumption]

    def model_dump(self, *, mode: str, exclude: set[str]) -> dict[str, Any]: ...


ScenarioT = TypeVar("ScenarioT", bound=WithVariants)


def check_override_path(base: BaseModel, dotted: str) -> str | None:
    """Why ``dotted`` is not a settable path of ``base``, or None when it is."""
    if dotted == "posterior":
        return "the posterior's draws are read with the scenario file; write another file"
    annotation: Any = type(base)
    value: Any = base
    for part in dotted.split("."):
        model = _as_model(annotation)
        if model is not None:
            if part not in model.model_fields or part == "variants":
                return f"unknown field {part!r}{_did_you_mean(part, model.model_fields)}"
            annotation = model.model_fields[part].annotation
            value = getattr(value, part, None) if value is not None else None
            continue
        item = _container_item(annotation)
        if item is None:
            return f"{part!r}: cannot go deeper into a value"
        keys = _container_keys(value)
        if part not in keys:
            return f"unknown name {part!r}{_did_you_mean(part, keys)} (known: {', '.join(keys)})"
        value = _container_get(value, part)
        annotation = item
    return None


def _container_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return [getattr(v, "name", str(i)) for i, v in enumerate(value)]
    return []


def _container_get(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value[key]
    return value[_list_index(value, key)]


def _list_index(items: list[Any], key: str) -> int:
    """The item of a list called ``key``: by its ``name``, or by position for unnamed
    items (``shifts.0``); the key is one of ``_container_keys``."""
    for j, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
        if (name if name is not None else str(j)) == key:
            return j
    raise KeyError(key)


def _set_path(data: dict[str, Any], base: BaseModel, dotted: str, value: Any) -> Path_:
    """Set ``dotted`` in the raw data of ``base``; return the path as data indices."""
    current: Any = data
    path: list[str | int] = []
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        key: str | int = part
        if isinstance(current, list):
            key = _list_index(current, part)
        path.append(key)
        if i == len(parts) - 1:
            current[key] = value
        else:
            if current[key] is None:
                current[key] = {}
            current = current[key]
    return tuple(path)


SHARED_BY_VARIANTS = ("traffic.visitors_per_day", "traffic.days")
"""Paths every variant shares: the variants of one test see the same visitors (common
random numbers), so an override of these would be silently ignored."""


def _resolve_variant(
    base: ScenarioT,
    name: str,
    file: str,
    lines: dict[Path_, int],
    validate: Callable[[Any, str, _LineMap], ScenarioT],
) -> ScenarioT:
    """Variant ``name`` of ``base``: its overrides applied to the base data, then checked
    by ``validate`` (the schema's), errors located at the override's line.

    The variant keeps the base's assumptions it does not override; an override written
    as an uncertain quantity is its own assumption, ``variants.<name>.<path>``."""
    data = base.model_dump(mode="python", exclude={"variants"})
    data["variants"] = base.variants
    line_map = _LineMap()
    variant_line = lines.get(("variants", name))
    root = type(base)
    own: list[tuple[str, Path_, UncertainQuantity, int | None]] = []
    for dotted, value in base.variants[name].items():
        override_line = lines.get(("variants", name, dotted), variant_line)
        field = f"variants.{name}.{dotted}"
        problem = check_override_path(base, dotted)  # type: ignore[arg-type]
        if dotted in SHARED_BY_VARIANTS:
            problem = "every variant sees the same traffic; sweep it (funnelsim sweep) instead"
        if problem:
            raise ScenarioError(file, override_line, field, problem)
        if is_uncertain(value):
            spec = parse_spec(value, file, override_line, field, root)  # type: ignore[arg-type]
            target = _set_path(data, base, dotted, spec.central)  # type: ignore[arg-type]
            own.append((dotted, target, spec, override_line))
        else:
            target = _set_path(data, base, dotted, value)  # type: ignore[arg-type]
        line_map.lines[target] = override_line or 0
    try:
        assumptions = {
            key: a
            for key, a in base._assumptions.items()
            if not any(sets(dotted, a.field) for dotted in base.variants[name])
        }
        for dotted, target, spec, line in own:
            key = f"variants.{name}.{dotted}"
            assumptions[key] = assumption_at(root, key, data, target, spec, (file, line))  # type: ignore[arg-type]
        resolved = validate(data, file, line_map)
        resolved._assumptions = assumptions
    except ScenarioError as error:
        raise ScenarioError(
            file, error.line or variant_line, f"variants.{name}: {error.field}", error.message
        ) from None
    resolved._source = (file, {**lines, **line_map.lines})
    return resolved
