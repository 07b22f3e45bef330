"""Reading scenario files: size limits, YAML with the line of every key, validation.

:func:`load_scenario` reads a file, :func:`parse_scenario` YAML text; both resolve
every variant, so any mistake surfaces as one :class:`ScenarioError` line
``FILE:LINE: field.path: what is wrong``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from funnelsim.files import input_problem
from funnelsim.scenario.assumptions import (
    assumption_at,
    default_assumptions,
    name_path,
    read_joint_draws,
    take_uncertain,
)
from funnelsim.scenario.messages import Path_, ScenarioError, _dotted, _LineMap, _shown
from funnelsim.scenario.schema import Scenario, _validate
from funnelsim.scenario.variants import _resolve_variant

MAX_FILE_BYTES = 1_000_000


MAX_YAML_NODES = 100_000


MAX_YAML_DEPTH = 64


_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = {
    yaml.ScalarNode: {f"{_CORE}{t}" for t in ("null", "bool", "int", "float", "str", "timestamp")},
    yaml.SequenceNode: {f"{_CORE}seq"},
    yaml.MappingNode: {f"{_CORE}map"},
}
"""The tags a scenario may carry, per kind of node: plain YAML data, nothing else."""


class _Composer:
    """Turns a composed YAML node tree into plain data, recording lines, refusing
    duplicate keys and alias bombs (the node budget counts every visit)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.map = _LineMap()
        self.budget = MAX_YAML_NODES
        self.scalars = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()  # nodes being built: an alias back to one is a cycle

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise ScenarioError(
                self.file,
                node.start_mark.line + 1,
                "",
                f"document too large or too deeply aliased (over {MAX_YAML_NODES} nodes)",
            )
        self.map.lines.setdefault(path, node.start_mark.line + 1)
        self._check_tag(node, path)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.open:
            raise ScenarioError(
                self.file, node.start_mark.line + 1, _dotted(path), "an alias refers to itself"
            )
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def _check_tag(self, node: yaml.Node, path: Path_) -> None:
        """Refuse tags beyond plain data (``!!python/...``, ``!!binary``, ``!custom``) on
        scalars, lists and mappings alike, with the line."""
        if node.tag not in _PLAIN_TAGS[type(node)]:
            tag = node.tag.replace(_CORE, "!!")
            raise ScenarioError(
                self.file,
                node.start_mark.line + 1,
                _dotted(path),
                f"the tag {_shown(tag)} is not supported (plain YAML data only)",
            )

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        """A scalar's value; a tag that cannot read it (``!!int 0x_``) is the user's error."""
        line = node.start_mark.line + 1
        try:
            return self.scalars.construct_object(node)
        except yaml.constructor.ConstructorError as error:
            raise ScenarioError(self.file, line, _dotted(path), str(error.problem)) from None
        except (ValueError, TypeError, OverflowError, KeyError):  # !!bool 2: KeyError
            raise ScenarioError(
                self.file, line, _dotted(path), f"cannot read {_shown(node.value)} as {node.tag}"
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ScenarioError(self.file, line, _dotted(path), "keys must be plain names")
            key = self._scalar(key_node, path)
            if key == "<<":
                raise ScenarioError(
                    self.file, line, _dotted(path), "merge keys (<<) are not supported"
                )
            key = str(key)
            if key in result:
                raise ScenarioError(self.file, line, _dotted((*path, key)), "duplicate key")
            self.map.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        return result


class _NestedTooDeep(yaml.MarkedYAMLError):
    """A document nested deeper than MAX_YAML_DEPTH."""


class _NestingLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing collections nested deeper than MAX_YAML_DEPTH before
    its recursive composer (or anything after it) can exhaust the stack; the parser
    beneath keeps an explicit stack of its own."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _NestedTooDeep(
                    problem=f"nested deeper than {MAX_YAML_DEPTH} levels",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


def parse_value(text: str) -> Any:
    """One YAML value typed on the command line (``--param path=VALUE``), nested at most
    MAX_YAML_DEPTH deep. Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_NestingLoader)


def _parse_yaml(text: str, file: str) -> tuple[Any, _LineMap]:
    try:
        node = yaml.compose(text, Loader=_NestingLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        kind = "" if isinstance(error, _NestedTooDeep) else "YAML syntax error: "
        raise ScenarioError(file, line, "", f"{kind}{error.problem}") from None
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        raise ScenarioError(
            file, line, "", f"character U+{error.character:04X} is not allowed in YAML"
        ) from None
    except yaml.YAMLError as error:
        raise ScenarioError(file, None, "", f"YAML error: {str(error).splitlines()[0]}") from None
    if node is None:
        raise ScenarioError(file, 1, "", "the file is empty")
    composer = _Composer(file)
    data = composer.build(node, ())
    return data, composer.map


def _read_text(path: Path) -> str:
    file = str(path)
    problem = input_problem(path, "scenario file")
    if problem is not None:
        raise ScenarioError(file, None, "", problem)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)  # an endless stream stops here
    except OSError as error:
        raise ScenarioError(file, None, "", f"cannot read: {error.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(file, None, "", f"file larger than {MAX_FILE_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ScenarioError(file, line, "", "not valid UTF-8 text") from None


def parse_scenario(text: str, file: str = "<string>") -> Scenario:
    """Validate scenario YAML text; every variant is resolved, so errors surface now.

    The scenario's assumptions are its ``{uncertain: ...}`` quantities, then the
    calibrated default coefficients it leaves to their default, with their ranges."""
    data, line_map = _parse_yaml(text, file)
    specs = take_uncertain(data, (), file, line_map, Scenario) if isinstance(data, dict) else {}
    assumptions = [
        assumption_at(
            Scenario, name_path(data, path), data, path, spec, (file, line_map.line_of(path))
        )
        for path, spec in specs.items()
    ]
    scenario = _validate(data, file, line_map)
    scenario._source = (file, line_map.lines)
    assumptions += default_assumptions(Scenario, data)
    scenario._assumptions = {a.key: a for a in assumptions}
    for name in scenario.variants:
        scenario._resolved[name] = _resolve_variant(scenario, name, file, line_map.lines, _validate)
    if scenario.posterior is not None:
        _attach_posterior(scenario, scenario.posterior, (file, line_map.line_of(("posterior",))))
    return scenario


def _attach_posterior(scenario: Scenario, posterior: str, where: tuple[str, int | None]) -> None:
    """Give every assumption that the ``posterior`` file draws (its path relative to the
    folder of the scenario's file, ``where[0]``) those joint draws, in the base and every
    variant; a problem with the file is a :class:`ScenarioError` at ``where``."""
    resolved = [scenario, *scenario._resolved.values()]
    known = {key: a for s in resolved for key, a in s._assumptions.items()}
    joint = read_joint_draws(Path(where[0]).parent / posterior, where, known)
    for each in resolved:
        each._assumptions = {
            key: a._replace(joint=joint) if key in joint.keys else a
            for key, a in each._assumptions.items()
        }


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file.

    Raises :class:`ScenarioError` (one line: ``FILE:LINE: field: problem``) on any mistake.

    >>> scenario = load_scenario("scenarios/checkout.yaml")  # doctest: +SKIP
    >>> scenario.variant_names  # doctest: +SKIP
    ['control', 'guest_checkout', 'short_form', 'extra_payment']
    """
    path = Path(path)
    return parse_scenario(_read_text(path), str(path))
