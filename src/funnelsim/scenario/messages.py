"""Scenario errors: one line, ``FILE:LINE: field.path: what is wrong``.

:class:`ScenarioError` and the helpers that word it: where a key stands
(:class:`_LineMap`), how a field path is shown (``stages[1].rate``), short quoted
values, "did you mean" hints, and pydantic's errors turned into one clause.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel

from funnelsim.errors import FunnelsimError

SHOWN_CHARS = 60  # longest quoted value or key in an error message


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.]+")
Path_ = tuple[str | int, ...]


class ScenarioError(FunnelsimError):
    """A mistake in a scenario file, located by file, line and field."""

    located = True

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        location = f"{file}:{line}" if line is not None else file
        super().__init__(f"{location}: {field}: {message}" if field else f"{location}: {message}")
        self.file, self.line, self.field, self.message = file, line, field, message


class _LineMap:
    """Where each key and item of a YAML document stands (1-based lines)."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}

    def line_of(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def _dotted(path: Path_) -> str:
    """``stages[1].rate``; a key that is not a plain name shows quoted: ``traffic['a b']``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            text += f"[{_shown(part)}]"
        else:
            text += f".{part}" if text else part
    return text


def _shown(value: Any) -> str:
    """``repr(value)`` cut to SHOWN_CHARS, so an error about it stays one short line."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 3]}..."


def _did_you_mean(name: str, candidates: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field_hint(name: str, parent: type[BaseModel] | None) -> str:
    """A close field name of ``parent``, else the section of ``parent`` that has a field
    ``name`` (a top-level ``replications`` belongs under ``experiment``)."""
    if parent is None:
        return ""
    close = _did_you_mean(name, parent.model_fields)
    if close:
        return close
    for section, info in parent.model_fields.items():
        model = _as_model(info.annotation)
        if model is not None and name in model.model_fields:
            return f" (did you mean {section + '.' + name!r}?)"
    return ""


def _data_path(loc: tuple[str | int, ...], data: Any, keep_last: bool) -> Path_:
    """Keep the parts of a pydantic error location that index into the raw data."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif last and keep_last and isinstance(part, str):
            path.append(part)
    return tuple(path)


def _model_at(root: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The model class under ``root`` (the scenario) that holds the fields at ``path``, if any."""
    annotation: Any = root
    for part in path:
        model = _as_model(annotation)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            continue
        container = _container_item(annotation)
        if container is None:
            return None
        annotation = container
    return _as_model(annotation)


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg)]
    return [annotation]


def _as_model(annotation: Any) -> type[BaseModel] | None:
    models = [a for a in _unwrap(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


def _container_item(annotation: Any) -> Any | None:
    for option in _unwrap(annotation):
        origin = typing.get_origin(option)
        if origin is dict:
            return typing.get_args(option)[1]
        if origin is list:
            return typing.get_args(option)[0]
    return None


def _message(
    error: Mapping[str, Any], path: Path_, root: type[BaseModel], kinds: tuple[str, ...]
) -> str:
    """One clause saying what is wrong with the value at ``path`` of a ``root`` document
    (``kinds``: the distribution kinds, named when a ``dist`` is unknown)."""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        parent = _model_at(root, path[:-1])
        return f"unknown field {_shown(path[-1])}{_field_hint(str(path[-1]), parent)}"
    if kind == "union_tag_invalid":
        tag = str(error["ctx"]["tag"])
        return f"unknown dist {_shown(tag)}{_did_you_mean(tag, kinds)} (one of {', '.join(kinds)})"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    message = message.replace("Input should be", "must be")
    value = error.get("input")
    if isinstance(value, str | int | float | bool):
        message += f", got {_shown(value)}"
    return message
