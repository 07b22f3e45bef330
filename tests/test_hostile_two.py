"""Hostile input, round two: output locations, special input files, YAML tags and alias
cycles, generated (issues 20 and 21).

Every option that writes (``--out``, ``--report``, ``--events``, ``--orders``,
``schema -o``, ``init NAME``) is pointed at places that cannot take a file: under a
file, a name longer than the file system allows, a special file (``/dev/full``, a FIFO),
a read-only file system, a directory where a file is expected, the same path as another
output. Each is refused before any work with one line naming the path and exit 2; no
temporary file is left and results written before are byte for byte as they were.
Inputs that are not regular files (FIFOs, ``/dev/zero``) are refused, never read
forever. The module prints how many inputs it tried and how they ended.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import types
import typing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pydantic
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import ROOT, two_arm_scenario
from funnelsim.cli import main
from funnelsim.cli.shared import FiniteFloatRange
from funnelsim.scenario import schema

COUNTS: Counter[str] = Counter()
RUNNER = CliRunner()
HOSTILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SCENARIO = two_arm_scenario("outputs", 1, 100, 2)
DATA = ROOT.parent / "shared" / "data" / "cookie_cats.csv"
READ_ONLY = Path("/sys/fs")  # a read-only file system, even for root
LONG = "n" * 300


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stderr.write(
            f"\nhostile inputs, round two, tried: {COUNTS['inputs']}; exit 2: "
            f"{COUNTS['exit 2']}, tracebacks: {COUNTS['tracebacks']}, hangs: {COUNTS['hangs']}, "
            f"temporary files left: {COUNTS['temporary']}, "
            f"lost or replaced results: {COUNTS['lost']}\n"
        )


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with a scenario, a file, a FIFO and earlier results."""
    root = tmp_path_factory.mktemp("outputs")
    (root / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (root / "a_file").write_text("not a directory\n", encoding="utf-8")
    os.mkfifo(root / "fifo")
    (root / "a_directory").mkdir()
    earlier = RUNNER.invoke(
        main, ["run", str(root / "scenario.yaml"), "-q", "--out", str(root / "kept")]
    )
    assert earlier.exit_code == 0, earlier.output
    return root


def _location(kind: str, root: Path, name: str) -> str:
    """A path of the given kind where an output cannot go."""
    return {
        "under_a_file": str(root / "a_file" / name),
        "long_name": str(root / LONG / name),
        "long_leaf": str(root / f"{LONG}.{name}"),
        "dev_full": "/dev/full",
        "fifo": str(root / "fifo"),
        "read_only": str(READ_ONLY / name),
        "missing_proc": f"/proc/self/{name}",
    }[kind]


FILE_KINDS = ["under_a_file", "long_name", "long_leaf", "dev_full", "fifo", "read_only"]
DIRECTORY_KINDS = ["under_a_file", "long_name", "long_leaf", "read_only", "missing_proc"]


def _commands(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Command -> (its arguments, the output options it has)."""
    scenario = str(root / "scenario.yaml")
    science = ["-q", "--workers", "1"]
    return {
        "run": (
            ["run", scenario, "-q", "--replications", "1"],
            ["--out", "--report", "--events", "--orders"],
        ),
        "sweep": (
            ["sweep", scenario, "--param", "seed=1,2", "--replications", "1", *science],
            ["--out"],
        ),
        "plan": (["plan", scenario, "--variant", "better", *science], ["--out"]),
        "bench": (["bench", scenario, *science], ["--out"]),
        "analyze": (["analyze", str(DATA), "-q"], ["--out", "--report"]),
        "schema": (["schema"], ["-o"]),
        "init": (["init"], ["NAME"]),
    }


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "kept").iterdir()}


def _invoke(args: list[str], root: Path, before: dict[str, bytes]) -> tuple[int, str]:
    COUNTS["inputs"] += 1
    result = RUNNER.invoke(main, args)
    text = result.output + result.stderr
    if "Traceback" in text or not isinstance(result.exception, (SystemExit, type(None))):
        COUNTS["tracebacks"] += 1
    assert "Traceback" not in text, text
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    COUNTS[f"exit {result.exit_code}"] += 1
    temporary = [p for p in root.rglob("*.tmp")] + list(root.rglob(".funnelsim-probe.*"))
    COUNTS["temporary"] += len(temporary)
    assert not temporary, temporary
    if _snapshot(root) != before:
        COUNTS["lost"] += 1
        pytest.fail(f"{args}: earlier results changed")
    return result.exit_code, result.stderr


@settings(HOSTILE, max_examples=70)
@given(
    command=st.sampled_from(["run", "sweep", "plan", "bench", "analyze", "schema", "init"]),
    data=st.data(),
)
def test_outputs_where_no_file_can_go(command: str, data: st.DataObject, place: Path) -> None:
    """Each output option pointed where it cannot write: one line naming the path (cut
    when long), exit 2, before any work."""
    args, options = _commands(place)[command]
    option = data.draw(st.sampled_from(options))
    directory = option == "--out"
    kinds = DIRECTORY_KINDS if directory else FILE_KINDS
    if option == "NAME":  # init writes NAME.yaml: a special file is never its target
        kinds = [k for k in kinds if k not in ("dev_full", "fifo")]
    kind = data.draw(st.sampled_from(kinds))
    location = _location(kind, place, "results" if directory else "out.html")
    extra = [location] if option == "NAME" else [option, location]
    given_args = [*args, *extra, "--force"]
    code, stderr = _invoke(given_args, place, _snapshot(place))
    assert code == 2, (given_args, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    shown = location if len(location) <= 200 else location[:197]
    assert shown[:100] in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]


@settings(HOSTILE, max_examples=20)
@given(
    pair=st.sampled_from(
        [
            ("--events", "same.csv", "--orders", "same.csv"),
            ("--out", "res", "--events", "res/results.json"),
            ("--out", "res", "--orders", "res/summary.csv"),
            ("--out", "res", "--report", "res/summary.csv"),
            ("--report", "page.html", "--events", "page.html"),
            ("--out", "res", "--report", "res/../res/results.json"),
        ]
    )
)
def test_two_outputs_at_one_path(pair: tuple[str, str, str, str], place: Path) -> None:
    """Two options naming one file are refused before any work, naming both options."""
    first, first_path, second, second_path = pair
    args = [
        "run",
        str(place / "scenario.yaml"),
        "-q",
        first,
        str(place / first_path),
        second,
        str(place / second_path),
    ]
    code, stderr = _invoke(args, place, _snapshot(place))
    assert code == 2 and first in stderr and second in stderr, stderr
    assert not (place / "same.csv").exists() and not (place / "res").exists()


def test_schema_output_needs_force(place: Path) -> None:
    target = place / "schema.json"
    target.write_text("mine\n", encoding="utf-8")
    code, stderr = _invoke(["schema", "-o", str(target)], place, _snapshot(place))
    assert code == 2 and "--force" in stderr and target.read_text() == "mine\n"
    code, _ = _invoke(["schema", "-o", str(target), "--force"], place, _snapshot(place))
    assert code == 0 and target.read_text().startswith("{")


@pytest.mark.parametrize("name", ["", ".", "..", "dir/", " ", LONG])
def test_init_names_that_name_no_file(name: str, place: Path) -> None:
    code, stderr = _invoke(["init", name], place, _snapshot(place))
    assert code == 2 and len(stderr.splitlines()) == 1, stderr


# --------------------------------------------------------------------------- special inputs


class HangError(Exception):
    """A command still running when its alarm went off."""


def _alarm(_signum: int, _frame: object) -> None:
    raise HangError


def _invoke_bounded(args: list[str], seconds: int = 30) -> tuple[int, str]:
    """Invoke with an alarm: a read that blocks or never ends counts as a hang and fails."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        COUNTS["inputs"] += 1
        result = RUNNER.invoke(main, args, catch_exceptions=False)
    except HangError:
        COUNTS["hangs"] += 1
        pytest.fail(f"{args}: still running after {seconds} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = result.output + result.stderr
    COUNTS["tracebacks"] += "Traceback" in text
    COUNTS[f"exit {result.exit_code}"] += 1
    return result.exit_code, result.stderr


def _special_input(kind: str, root: Path) -> Path:
    """An input that is no regular file, or a regular one that never ends a line."""
    if kind == "fifo":
        return root / "fifo"
    if kind == "link_to_fifo":
        link = root / "link_to_fifo"
        if not link.is_symlink():
            link.symlink_to(root / "fifo")
        return link
    if kind == "directory":
        return root / "a_directory"
    if kind == "endless_line":  # sparse: one line of NUL bytes, longer than any limit
        endless = root / "endless"
        with endless.open("wb") as stream:
            stream.truncate(3_000_000)
        return endless
    return Path({"dev_zero": "/dev/zero", "dev_urandom": "/dev/urandom", "tty": "/dev/tty"}[kind])


SPECIAL = ["fifo", "link_to_fifo", "directory", "endless_line", "dev_zero", "dev_urandom", "tty"]


@settings(HOSTILE, max_examples=60)
@given(
    command=st.sampled_from(
        [
            ["validate"],
            ["explain"],
            ["run", "-q"],
            ["sweep", "--param", "seed=1,2", "-q"],
            ["plan", "--variant", "better", "-q"],
            ["bench", "-q"],
            ["analyze", "-q"],
            ["analyze", "-q", "--transactions", "--visitors", "A=10,B=10"],
        ]
    ),
    kind=st.sampled_from(SPECIAL),
)
def test_special_input_files(command: list[str], kind: str, place: Path) -> None:
    """Every command refuses an input that is not a regular file, and reads a regular
    one only up to its limit: one line naming the file, exit 2, no hang."""
    path = _special_input(kind, place)
    args = [command[0], str(path), *command[1:]]
    code, stderr = _invoke_bounded(args)
    assert code == 2, (args, stderr)
    lines = [line for line in stderr.splitlines() if line]
    if lines[0].startswith("Usage:"):  # click's own refusal of a directory
        lines = lines[-1:]
    assert len(lines) == 1 and str(path) in lines[0] and len(lines[0]) < 400, stderr


# --------------------------------------------------------------------------- YAML tags, cycles

PLAIN_TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq"]
REFUSED_TAGS = [
    "!!binary",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!python/tuple",
    "!!python/dict",
    "!!python/object:os.system",
    "!!python/object/apply:os.system",
    "!custom",
    "!<tag:example.com,2000:thing>",
]


def _value_positions(text: str) -> list[tuple[str, int, str]]:
    """(dotted path, index just after the key's colon, kind of value) for every mapping
    value of a document."""
    found: list[tuple[str, int, str]] = []

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = f"{path}.{key_node.value}" if path else str(key_node.value)
                colon = text.index(":", key_node.end_mark.index) + 1
                found.append((child, colon, type(value_node).__name__))
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return found


TAGGED_BASE = SCENARIO + (
    "segments:\n  mobile: {share: 0.5, page_load_s: 3.0}\n  desktop: {share: 0.5}\n"
)
TAG_BASES = [TAGGED_BASE, (ROOT / "tests/data/every_field.yaml").read_text(encoding="utf-8")]
POSITIONS = [(base, *position) for base in TAG_BASES for position in _value_positions(base)]


@settings(HOSTILE, max_examples=120)
@given(
    position=st.sampled_from(POSITIONS),
    tag=st.sampled_from(REFUSED_TAGS + PLAIN_TAGS),
    command=st.sampled_from(["validate", "explain", "run"]),
)
def test_tags_on_every_value(
    position: tuple[str, str, int, str], tag: str, command: str, place: Path
) -> None:
    """A tag on any value (scalar, list or mapping) of a small scenario or of the seed
    with every field: a tag beyond plain data is refused with its line, a plain one is
    read as any value is; never a traceback."""
    base, _field, colon, _kind = position
    text = f"{base[:colon]} {tag}{base[colon:]}"
    path = place / "tagged.yaml"
    path.write_text(text, encoding="utf-8")
    args = [command, str(path), *(["-q", "--replications", "1"] if command == "run" else [])]
    code, stderr = _invoke_bounded(args)
    assert code in (0, 2), stderr
    if tag in REFUSED_TAGS:
        line = base[:colon].count("\n") + 1
        assert code == 2 and f"{path}:{line}: " in stderr and "tag" in stderr, (text, stderr)


@st.composite
def alias_cycles(draw: st.DrawFn) -> str:
    """A collection that holds an alias to itself, at some depth, under some field."""
    depth = draw(st.integers(0, 4))
    inner = "*loop"
    for _ in range(depth):
        inner = draw(st.sampled_from([f"[1, {inner}]", f"{{k: {inner}}}"]))
    top = draw(st.sampled_from([f"&loop [{inner}]", f"&loop {{k: {inner}}}"]))
    field = draw(st.sampled_from(["description", "traffic", "stages", "variants", "extra"]))
    return TAGGED_BASE.replace(f"{field}:", f"x_{field}:", 1) + f"{field}: {top}\n"


@settings(HOSTILE, max_examples=40)
@given(text=alias_cycles(), command=st.sampled_from(["validate", "explain", "run"]))
def test_alias_cycles(text: str, command: str, place: Path) -> None:
    path = place / "cycle.yaml"
    path.write_text(text, encoding="utf-8")
    code, stderr = _invoke_bounded([command, str(path)])
    last = text.count("\n")
    assert code == 2 and f"{path}:{last}: " in stderr, (text, stderr)
    assert "refers to itself" in stderr and len(stderr.splitlines()) == 1, stderr


# --------------------------------------------------------------------------- extreme numbers

NON_FINITE = ["nan", "inf", "-inf", "NaN", "+inf", "1e999"]


def _float_options() -> list[tuple[str, str]]:
    """(command, option) for every float-valued option of every command."""
    found = []
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, click.FloatRange):
                found.append((name, param.opts[-1]))
    return found


FLOAT_OPTIONS = _float_options()


def test_every_float_option_is_finite() -> None:
    """click's FloatRange lets NaN through; every float option uses the finite kind."""
    assert FLOAT_OPTIONS
    for command, option in FLOAT_OPTIONS:
        param = next(p for p in main.commands[command].params if option in p.opts)
        assert isinstance(param.type, FiniteFloatRange), (command, option)


@settings(HOSTILE, max_examples=60)
@given(option=st.sampled_from(FLOAT_OPTIONS), value=st.sampled_from(NON_FINITE))
def test_float_options_refuse_nan_and_infinity(
    option: tuple[str, str], value: str, place: Path
) -> None:
    command, flag = option
    source = str(DATA) if command == "analyze" else str(place / "scenario.yaml")
    extra = ["--variant", "better"] if command == "plan" else []
    code, stderr = _invoke_bounded([command, source, *extra, "-q", flag, value])
    assert code == 2 and flag in stderr and ("finite" in stderr or "range" in stderr), stderr


def _numbers(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of every number in a document."""
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield (*path, key)
        else:
            yield from _numbers(value, (*path, key))


EXTREMES = [1e308, -1e308, 1e300, 1e-300, -1e-300, 0, 0.0, 1e15, 2**63, 1e-9, 1 - 1e-16]
SEED_FILES = [*sorted((ROOT / "scenarios").glob("*.yaml")), ROOT / "tests/data/every_field.yaml"]
SEEDS = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in SEED_FILES}
NUMBER_PATHS = [(seed, path) for seed, data in SEEDS.items() for path in _numbers(data)]


def _members(annotation: Any) -> list[Any]:
    """The types an annotation allows (Annotated, unions and forward references opened)."""
    if isinstance(annotation, typing.ForwardRef):
        annotation = eval(annotation.__forward_arg__, vars(schema))
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _is_distribution(members: list[Any]) -> bool:
    return any(isinstance(m, type) and "dist" in getattr(m, "model_fields", {}) for m in members)


def _schema_fields(model: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every numeric field and every distribution-valued field of the scenario schema:
    (path with ``*`` for a name and ``[]`` for a list item, ``number`` or
    ``distribution``)."""
    for name, field in model.model_fields.items():
        if name != "variants":
            yield from _fields_of(field.annotation, f"{prefix}{name}")


def _fields_of(annotation: Any, path: str) -> Iterator[tuple[str, str]]:
    members = _members(annotation)
    if _is_distribution(members):
        yield path, "distribution"
        return
    for member in members:
        origin = typing.get_origin(member)
        if member in (int, float):
            yield path, "number"
        elif isinstance(member, type) and issubclass(member, pydantic.BaseModel):
            yield from _schema_fields(member, f"{path}.")
        elif origin is dict:
            yield from _fields_of(typing.get_args(member)[1], f"{path}.*")
        elif origin is list:
            yield from _fields_of(typing.get_args(member)[0], f"{path}[]")


def _schema_field_of(path: tuple[Any, ...]) -> str:
    """The schema field (as :func:`_schema_fields` names it) a number of a document sits
    in: the distribution, or the field an uncertain spec replaces."""
    annotation: Any = schema.Scenario
    parts: list[str] = []
    for key in path:
        members = _members(annotation)
        if _is_distribution(members):
            break
        model = next((m for m in members if key in getattr(m, "model_fields", {})), None)
        container = next((m for m in members if typing.get_origin(m) in (dict, list)), None)
        if model is not None:
            parts.append(f".{key}" if parts else str(key))
            annotation = model.model_fields[key].annotation
        elif container is not None:
            is_dict = typing.get_origin(container) is dict
            parts.append(".*" if is_dict else "[]")
            annotation = typing.get_args(container)[1 if is_dict else 0]
        else:
            break  # inside an uncertain spec: the field it stands for
    return "".join(parts)


SCHEMA_FIELDS = dict(_schema_fields(schema.Scenario))


def test_generators_reach_every_field() -> None:
    """The seeds hold a number at every numeric field of the schema and a distribution at
    every distribution-valued one: a field added to the schema fails here until a seed
    (tests/data/every_field.yaml) gives the generators a value to change."""
    reached = {_schema_field_of(path) for _, path in NUMBER_PATHS}
    assert set(SCHEMA_FIELDS) - reached == set()


def test_the_schema_takes_the_engines_beta_shapes() -> None:
    """The prior's and sbg's smallest shape is the readout's (validate ok means run can)."""
    from funnelsim.analysis import conjugate

    assert schema.MIN_BETA_SHAPE == conjugate._MIN_SHAPE


def _strict_json(name: str) -> float:
    raise AssertionError(f"results.json holds {name}")


PATHS_BY_FIELD: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
for _seed, _path in NUMBER_PATHS:
    PATHS_BY_FIELD.setdefault(_schema_field_of(_path), []).append((_seed, _path))


@pytest.mark.parametrize("field", sorted(PATHS_BY_FIELD))
@settings(HOSTILE, max_examples=2)
@given(choice=st.data(), value=st.sampled_from(EXTREMES))
def test_extreme_numbers_in_every_field(
    field: str, choice: st.DataObject, value: float, place: Path
) -> None:
    """A number of each schema field (in some seed) set to an extreme: what ``validate``
    accepts, ``run`` runs (or prices and refuses), and its JSON holds finite numbers
    only."""
    seed, path = choice.draw(st.sampled_from(PATHS_BY_FIELD[field]))
    data = copy.deepcopy(SEEDS[seed])
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    scenario = place / "extreme.yaml"
    scenario.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    checked, message = _invoke_bounded(["validate", str(scenario)])
    assert checked in (0, 2), message
    out = place / "extreme-out"
    args = ["run", str(scenario), "-q", "--json", "--replications", "1", "--workers", "1"]
    code, stderr = _invoke_bounded([*args, "--out", str(out), "--force"], seconds=120)
    if checked == 2:
        assert code == 2, stderr
        return
    assert code == 0 or (code == 2 and "too large" in stderr), (seed, path, value, stderr)
    if code == 0:
        json.loads((out / "results.json").read_text(encoding="utf-8"), parse_constant=_strict_json)


# --------------------------------------------------------------------------- distributions

DISTRIBUTION_KEYS = {
    path.split(".")[-1] for path, kind in SCHEMA_FIELDS.items() if kind == "distribution"
}
DEGENERATE = st.one_of(
    st.sampled_from([0, 0.0, 1e-300, 1e9, 1e-9]),
    st.builds(lambda v: {"dist": "constant", "value": v}, st.sampled_from([0.0, 1e-300, 1e9])),
    st.builds(lambda m: {"dist": "exponential", "mean": m}, st.sampled_from([1e-300, 1e-9, 1e9])),
    st.builds(
        lambda kind, mean, ratio: {"dist": kind, "mean": mean, "sd": mean * ratio},
        st.sampled_from(["lognormal", "gamma"]),
        st.sampled_from([1e-300, 1e-9, 1.0, 1e9]),
        st.sampled_from([1e-6, 1e-3, 1.0, 999.0, 1e3, 1e6]),
    ),
    st.builds(
        lambda low, width: {"dist": "uniform", "low": low, "high": low + width},
        st.sampled_from([0.0, 1e-300, 1e9 - 1]),
        st.sampled_from([1e-300, 1e-9, 1.0]),
    ),
)


def _distribution_paths(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        if key in DISTRIBUTION_KEYS:
            yield (*path, key)
        else:
            yield from _distribution_paths(value, (*path, key))


DISTRIBUTION_PATHS = [
    (seed, path) for seed, data in SEEDS.items() for path in _distribution_paths(data)
]


DISTRIBUTIONS_BY_FIELD: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
for _seed, _path in DISTRIBUTION_PATHS:
    DISTRIBUTIONS_BY_FIELD.setdefault(_schema_field_of(_path), []).append((_seed, _path))


@pytest.mark.parametrize("field", sorted(DISTRIBUTIONS_BY_FIELD))
@settings(HOSTILE, max_examples=8)
@given(choice=st.data(), dist=DEGENERATE, engine=st.sampled_from(["auto", "simpy"]))
def test_degenerate_distributions(
    field: str, choice: st.DataObject, dist: Any, engine: str, place: Path
) -> None:
    """Each distribution-valued field of the schema (in some seed) given degenerate
    parameters: refused with the field, or run by the engine to finite results."""
    seed, path = choice.draw(st.sampled_from(DISTRIBUTIONS_BY_FIELD[field]))
    data = copy.deepcopy(SEEDS[seed])
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = dist
    data["traffic"]["visitors_per_day"] = min(data["traffic"]["visitors_per_day"], 40)
    data["traffic"]["days"] = min(data["traffic"]["days"], 3)
    scenario = place / "degenerate.yaml"
    scenario.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    checked, message = _invoke_bounded(["validate", str(scenario)])
    out = place / "degenerate-out"
    args = ["run", str(scenario), "-q", "--replications", "1", "--workers", "1"]
    code, stderr = _invoke_bounded([*args, "--engine", engine, "--out", str(out), "--force"])
    if checked == 2:
        assert code == 2 and len(message.splitlines()) == 1, message
        return
    no_queue = "simpy" in stderr  # --engine simpy on a scenario without a queue
    assert code == 0 or no_queue or "too large" in stderr, (seed, path, dist, stderr)
    if code == 0:
        json.loads((out / "results.json").read_text(encoding="utf-8"), parse_constant=_strict_json)


# --------------------------------------------------------------------------- reproductions


def test_a_variant_cannot_override_the_shared_traffic(place: Path) -> None:
    for path in ("traffic.visitors_per_day: 1000", "traffic.days: 9"):
        scenario = place / "override.yaml"
        scenario.write_text(SCENARIO.replace("better: {", f"better: {{{path}, "), "utf-8")
        code, stderr = _invoke_bounded(["validate", str(scenario)])
        field = path.partition(":")[0]
        assert code == 2 and f"variants.better.{field}: every variant sees" in stderr, stderr


@pytest.mark.parametrize("spec", ["control=²", "A=1" + "0" * 400, "A=\u0661\u0662"])
def test_visitor_counts_name_the_option(spec: str) -> None:
    from funnelsim.analysis.lifetime import visitor_counts
    from funnelsim.analysis.order_log import TransactionError

    with pytest.raises(TransactionError, match=r"^visitors: ") as raised:
        visitor_counts(spec)
    assert raised.value.field == "visitors"  # the command line shows --visitors there


def test_count_sums_beyond_exact_floats_are_refused(place: Path) -> None:
    rows = ["variant,visitors,conversions"] + [f"{v},{2**53},10" for v in "AB" for _ in range(3)]
    data = place / "sums.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, stderr = _invoke_bounded(["analyze", str(data), "-q"])
    assert code == 2 and "add up to more than 2**53" in stderr, stderr


def test_a_sweep_grid_is_priced_before_it_is_built(place: Path) -> None:
    ranges = [f"stages.{name}.rate=0.001:0.999:0.001" for name in ("landing", "checkout")]
    args = ["sweep", str(place / "scenario.yaml"), "-q"]
    code, stderr = _invoke_bounded([*args, "--param", ranges[0], "--param", ranges[1]])
    assert code == 2 and "grid points is more than" in stderr, stderr


def test_long_sweep_values_are_cut(place: Path) -> None:
    value = "[" * 5000
    args = ["sweep", str(place / "scenario.yaml"), "-q", "--param", f"seed={value}"]
    code, stderr = _invoke_bounded(args)
    assert code == 2 and len(stderr) < 400, stderr


def test_a_service_time_of_zero_runs_on_simpy(place: Path) -> None:
    text = SCENARIO.replace(
        "stages:\n  - {name: landing, rate: 0.5}",
        "resources:\n  desk: {capacity: 1, service_min: 0}\n"
        "stages:\n  - {name: landing, rate: 0.5, resource: desk}",
    )
    scenario = place / "zero-service.yaml"
    scenario.write_text(text, encoding="utf-8")
    code, stderr = _invoke_bounded(["run", str(scenario), "-q", "--replications", "1"])
    assert code == 0, stderr


# --------------------------------------------------------------------------- terminal escapes

ESCAPES = ["\x1b[2J", "\x1b]0;title\x07", "\x9b2J", "\u202e", "\x00", "\x07"]


@settings(HOSTILE, max_examples=40)
@given(
    escape=st.sampled_from(ESCAPES),
    where=st.sampled_from(["name", "description", "variant", "order variant", "customer"]),
)
def test_control_characters_never_reach_the_terminal(escape: str, where: str, place: Path) -> None:
    """A name from a file carrying an escape sequence or a bidi override is refused with
    the file and line (and the character shown escaped); nothing printed carries it."""
    if where in ("name", "description"):
        path = place / "escape.yaml"
        text = SCENARIO.replace("name: outputs", f"name: x\n{where}: {json.dumps(f'a{escape}b')}")
        text = text.replace("name: x\nname:", "name:")
        command = ["explain", str(path)]
    elif where == "variant":
        path, command = place / "escape.csv", ["analyze", str(place / "escape.csv")]
        text = f'variant,visitors,conversions\n"A{escape}",100,10\nB,100,12\n'
    else:
        path = place / "escape-orders.csv"
        command = ["analyze", str(path), "--transactions"]
        cell = f'"c{escape}"' if where == "customer" else "c1"
        variant = f'"A{escape}"' if where == "order variant" else "A"
        text = f"customer,variant,date,amount\n{cell},{variant},2025-01-01,10\n"
    path.write_text(text, encoding="utf-8")
    code, stderr = _invoke_bounded(command)
    assert code == 2 and "control character" in stderr and str(path) in stderr, (text, stderr)
    assert escape not in stderr
