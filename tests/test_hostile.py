"""Hostile input: malformed and extreme scenario files and command lines, generated.

People feed funnelsim half-edited YAML, files from other tools and options typed in a
hurry. Whatever they feed it, a command must end with exit status 0 or 2; on 2 it
prints one short line naming the file, the line where there is one and the field where
there is one; it never prints a traceback and never executes anything a file asks for.

Hypothesis generates the inputs: single mutations of valid scenarios (every key and
item: deleted, renamed, replaced by a value of the wrong type or an extreme number,
joined by an unknown key), text-level damage (truncation, duplicated lines and keys,
stray characters, broken indentation, bytes that are not UTF-8, other encodings),
documents built to exhaust the loader (deep nesting, alias bombs, over-size files,
tags that would run code under an unsafe loader), and hostile option values. The
suite prints how many inputs it tried (per xdist worker when run in parallel) and keeps
the counts in pytest's cache under ``funnelsim/hostile``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import resource
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import ROOT, SCENARIOS
from funnelsim.cli import main
from funnelsim.scenario import MAX_FILE_BYTES, MAX_YAML_DEPTH

COUNTS: Counter[str] = Counter()
MAX_MESSAGE_CHARS = 400  # a one-line error a person can read, file name aside
RUNNER = CliRunner()
# Fixed examples (derandomize), no shrinking: a failing hostile input is shown as it was
# generated, which is readable, and shrinking long documents takes minutes.
HOSTILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BASE = """\
name: hostile base
seed: 5
currency: EUR
traffic:
  visitors_per_day: 150
  days: 2
  channels:
    search: {share: 0.6, cost_per_visit: 0.5, intent: 1.2}
    social: {share: 0.4, cost_per_visit: 0.2}
segments:
  mobile: {share: 0.5, page_load_s: 3.0}
  desktop: {share: 0.5}
stages:
  - name: landing
    rate: 0.6
    friction: {page_load: true}
  - name: checkout
    rate: 0.5
    friction: {form_fields: 10, login_wall: required, payment_methods: [card, paypal]}
value:
  order_value: {dist: lognormal, mean: 50, sd: 20}
  margin: 0.4
  retention: {repeat_per_month: 0.1, churn_per_month: 0.1}
  horizon_months: 12
variants:
  control: {}
  guest: {stages.checkout.friction.login_wall: optional}
experiment:
  replications: 3
  split: {control: 0.5, guest: 0.5}
"""
SEED_TEXTS = {
    "base": BASE,
    **{p.stem: p.read_text(encoding="utf-8") for p in sorted(SCENARIOS.glob("*.yaml"))},
    **{
        f"template_{p.stem}": p.read_text(encoding="utf-8")
        for p in sorted((ROOT / "src" / "funnelsim" / "templates").glob("*.yaml"))
    },
}
SEEDS = {name: yaml.safe_load(text) for name, text in SEED_TEXTS.items()}
SENTINEL = Path(os.environ.get("TMPDIR", "/tmp")) / f"funnelsim-hostile-{os.getpid()}"


# --------------------------------------------------------------------------- counting


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print (and cache) how many hostile inputs this process tried, and how they ended."""
    yield
    worker = getattr(request.config, "workerinput", {}).get("workerid", "")
    line = (
        f"hostile inputs tried{f' ({worker})' if worker else ''}: {COUNTS['inputs']}; "
        f"exit 0: {COUNTS['exit 0']}, exit 2: {COUNTS['exit 2']}, "
        f"tracebacks: {COUNTS['tracebacks']}, code executed: {COUNTS['executed']}; "
        f"error lines checked against an independent reading: {COUNTS['lines checked']}"
    )
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        cache.set(f"funnelsim/hostile/{worker or 'main'}", dict(COUNTS))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled():
        if reporter is not None and not worker:
            reporter.ensure_newline()
            reporter.write_line(line)
        else:
            sys.stderr.write(f"\n{line}\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


# --------------------------------------------------------------------------- checking


class Outcome(NamedTuple):
    """How a command ended: exit status, and the location its error line gave."""

    exit_code: int
    line: int | None
    rest: str


def invoke(args: list[str], file: Path, prefix: str = "") -> Outcome:
    """Run the CLI on a hostile input and check the universal promises."""
    COUNTS["inputs"] += 1
    result: Result = RUNNER.invoke(main, args)
    text = result.output + result.stderr
    if "Traceback" in text or (
        result.exception is not None and not isinstance(result.exception, SystemExit)
    ):
        COUNTS["tracebacks"] += 1
    if SENTINEL.exists():
        COUNTS["executed"] += 1
        SENTINEL.unlink()
        pytest.fail(f"a scenario made funnelsim execute code: {args}")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: uncaught {result.exception!r}\n{text}"
    )
    assert "Traceback" not in text, text
    COUNTS[f"exit {result.exit_code}"] += 1
    assert result.exit_code in (0, 2), f"{args}: exit {result.exit_code}\n{text}"
    if result.exit_code == 0:
        return Outcome(0, None, "")
    return _error_line(result.stderr, file, prefix)


def _error_line(stderr: str, file: Path, prefix: str) -> Outcome:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"one line expected, got {stderr!r}"
    message = lines[0]
    assert len(message) <= len(str(file)) + len(prefix) + MAX_MESSAGE_CHARS, message
    match = re.match(rf"^{re.escape(prefix + str(file))}(?::(\d+))?: (.+)$", message)
    assert match, f"the message does not start with the file name: {message!r}"
    line = int(match[1]) if match[1] else None
    if line is not None:
        assert 1 <= line <= file.read_bytes().count(b"\n") + 1, message
    return Outcome(2, line, match[2])


def validate(text: str | bytes, workdir: Path, name: str = "scenario.yaml") -> Outcome:
    path = workdir / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    outcome = invoke(["validate", str(path)], path)
    return outcome


# --------------------------------------------------------------------------- values


HUGE_NUMBERS = st.sampled_from(
    [
        10**30,
        -(10**30),
        10**400,
        -(10**400),
        2**63,
        2**64,
        -1,
        0,
        1e308,
        -1e308,
        1e-320,
        -0.0,
    ]
)
WEIRD_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "1e999",
        "nan",
        ".inf",
        "-.inf",
        "0x1F",
        "1_000",
        "yes",
        "no",
        "~",
        "null",
        "2001-12-14",
        "é",
        "\u202e\u0000",
        "a\nb",
        "x" * 5000,
        "{",
        "[]",
        "!!python/name:os",
        "control",
        "landing",
        "lognormal",
    ]
)
HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    WEIRD_STRINGS,
    st.lists(st.one_of(st.integers(-2, 3), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
)
PLAIN_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
ODD_KEYS = st.one_of(
    st.text(min_size=1, max_size=12),
    st.integers(),
    st.booleans(),
    st.sampled_from(["a: b", "x\ny", " ", "<<", "é", "stages[0]"]),
)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key and item path of a document."""
    items = (
        data.items()
        if isinstance(data, dict)
        else (enumerate(data) if isinstance(data, list) else ())
    )
    for key, value in items:
        yield (*path, key)
        yield from _paths(value, (*path, key))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


class Mutation(NamedTuple):
    seed: str
    kind: str
    path: tuple[Any, ...]
    text: str


@st.composite
def mutated_scenarios(draw: st.DrawFn, seeds: tuple[str, ...] = tuple(SEEDS)) -> Mutation:
    """A valid scenario with one key or item deleted, renamed, replaced or added to."""
    seed = draw(st.sampled_from(seeds))
    data = copy.deepcopy(SEEDS[seed])
    path = draw(st.sampled_from(list(_paths(data))))
    parent, key = _parent(data, path), path[-1]
    kind = draw(st.sampled_from(["replace", "replace", "delete", "rename", "add", "odd_key"]))
    if kind == "replace":
        parent[key] = draw(HOSTILE_VALUES)
    elif kind == "delete":
        del parent[key]
    elif kind == "rename" and isinstance(parent, dict):
        new = draw(st.sampled_from([str(key)[:-1] or "x", f"{key}s", str(key).upper()]))
        parent[new] = parent.pop(key)
    elif kind in ("add", "odd_key") and isinstance(parent[key], dict):
        new_key = draw(PLAIN_KEYS if kind == "add" else ODD_KEYS)
        parent[key][new_key] = draw(HOSTILE_VALUES)
    else:
        kind = "replace"
        parent[key] = draw(HOSTILE_VALUES)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6)
    return Mutation(seed, kind, path, text)


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _key_lines(text: str) -> dict[str, int]:
    """Dotted path -> 1-based line of its key (or item), read independently of funnelsim."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                lines.setdefault(_dotted(child), key_node.start_mark.line + 1)
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(_dotted((*path, i)), item.start_mark.line + 1)
                walk(item, (*path, i))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    return lines


# --------------------------------------------------------------------------- scenario files


@settings(HOSTILE, max_examples=450)
@given(mutation=mutated_scenarios())
def test_mutated_scenarios(mutation: Mutation, workdir: Path) -> None:
    outcome = validate(mutation.text, workdir)
    if outcome.exit_code == 0:
        return
    # The document parses: every refusal is a validation error with a line and a field.
    assert outcome.line is not None, outcome
    field, _, message = outcome.rest.partition(": ")
    assert field and message, outcome
    if mutation.kind == "odd_key" or field.startswith("variants."):
        return  # odd keys make odd field names; a variant's line is its override's
    lines = _key_lines(mutation.text)
    located = [p for p in lines if outcome.rest.startswith(f"{p}: ")]
    if located:  # the line is that of the field named (the longest matching path)
        COUNTS["lines checked"] += 1
        assert outcome.line == lines[max(located, key=len)], (outcome, mutation.path)


@settings(HOSTILE, max_examples=40)
@given(mutation=mutated_scenarios(seeds=("base",)), out=st.booleans())
def test_mutated_scenarios_run(mutation: Mutation, out: bool, workdir: Path) -> None:
    """``run`` refuses what ``validate`` refuses, with the same line; what it runs gives
    strict JSON (no NaN or infinity) and a complete set of files."""
    path = workdir / "run.yaml"
    path.write_text(mutation.text, encoding="utf-8")
    checked = validate(mutation.text, workdir, "run.yaml")
    out_dir = workdir / f"out-{COUNTS['inputs']}"
    args = ["run", str(path), "--replications", "1", "--workers", "1", "-q", "--json"]
    ran = invoke(args + (["--out", str(out_dir)] if out else []), path, prefix="error: ")
    if checked.exit_code == 2:
        assert ran == checked, (ran, checked)
    elif ran.exit_code == 0 and out:
        document = json.loads(
            (out_dir / "results.json").read_text(encoding="utf-8"), parse_constant=_refuse_constant
        )
        assert document["variants"] and document["replications"] == 1
        assert (out_dir / "summary.csv").stat().st_size > 0


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"results.json holds {name}")


SIGNIFICANT = ":-[]{}&*!|>'\"%@`#,?\t\\"


@st.composite
def damaged_texts(draw: st.DrawFn) -> bytes:
    """A scenario's text damaged at the byte level."""
    text = SEED_TEXTS[draw(st.sampled_from(list(SEED_TEXTS)))]
    lines = text.splitlines(keepends=True)
    at = draw(st.integers(0, len(lines) - 1))
    kind = draw(
        st.sampled_from(
            [
                "truncate",
                "drop_line",
                "repeat_line",
                "char",
                "bytes",
                "indent",
                "number",
                "encode",
            ]
        )
    )
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))].encode()
    if kind == "drop_line":
        return "".join(lines[:at] + lines[at + 1 :]).encode()
    if kind == "repeat_line":  # duplicate keys and items
        return "".join(lines[: at + 1] + lines[at:]).encode()
    if kind == "char":
        position = draw(st.integers(0, len(text)))
        stray = draw(st.text(alphabet=SIGNIFICANT, min_size=1, max_size=3))
        return (text[:position] + stray + text[position:]).encode()
    if kind == "bytes":
        position = draw(st.integers(0, len(text)))
        raw = text.encode()
        return raw[:position] + draw(st.binary(min_size=1, max_size=6)) + raw[position:]
    if kind == "indent":
        shift = draw(st.sampled_from([" ", "  ", "\t", ""]))
        line = lines[at]
        lines[at] = shift + line if shift else line.lstrip()
        return "".join(lines).encode()
    if kind == "number":
        number = str(draw(st.one_of(HUGE_NUMBERS, st.floats(), st.integers())))
        return re.sub(r"\b\d+(\.\d+)?\b", number, text, count=draw(st.integers(1, 3))).encode()
    encoding = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig", "cp1252"]))
    return (text.replace("name: ", "name: é ", 1)).encode(encoding, errors="replace")


@settings(HOSTILE, max_examples=300)
@given(raw=damaged_texts())
def test_damaged_files(raw: bytes, workdir: Path) -> None:
    validate(raw, workdir)


EXECUTING_TAGS = [
    f'!!python/object/apply:os.system ["touch {SENTINEL}"]',
    f'!!python/object/apply:subprocess.call [["touch", "{SENTINEL}"]]',
    f"!!python/object/new:os.system [touch {SENTINEL}]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!binary aGVsbG8=",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!custom 3",
    "!!float nan",
    "!!int 0x_",
]


@settings(HOSTILE, max_examples=60)
@given(
    tag=st.sampled_from(EXECUTING_TAGS),
    where=st.sampled_from(["name", "seed", "traffic", "stages", "document"]),
)
def test_tags_are_never_executed(tag: str, where: str, workdir: Path) -> None:
    if where == "document":
        text = f"{tag}\n"
    else:
        text = re.sub(rf"^{where}:.*$", f"{where}: {tag}", BASE, count=1, flags=re.M)
    validate(text, workdir)


@st.composite
def exhausting_documents(draw: st.DrawFn) -> str:
    """Documents made to exhaust a loader: nesting, alias bombs, sheer size."""
    kind = draw(
        st.sampled_from(
            [
                "flow",
                "block",
                "in_field",
                "bomb",
                "bomb_in_field",
                "oversize",
                "long_line",
                "many_keys",
            ]
        )
    )
    depth = draw(st.integers(MAX_YAML_DEPTH - 4, 20 * MAX_YAML_DEPTH))
    if kind == "flow":
        return "[" * depth + "]" * depth
    if kind == "block":
        return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "1\n"
    if kind == "in_field":
        return BASE.replace("name: hostile base", f"name: {'{a: ' * depth}1{'}' * depth}")
    if kind.startswith("bomb"):
        width, levels = draw(st.integers(2, 10)), draw(st.integers(2, 9))
        bomb = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
        bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
        if kind == "bomb":
            return "\n".join(bomb) + "\n"
        return BASE + "description:\n" + "".join(f"  {line}\n" for line in bomb)
    if kind == "oversize":
        padding = MAX_FILE_BYTES + draw(st.integers(1, 10_000)) - len(BASE)
        return BASE + "#" * padding + "\n"
    if kind == "long_line":
        return BASE.replace("hostile base", "x" * draw(st.integers(10_000, 200_000)))
    count = draw(st.integers(1000, 4000))
    return BASE + "".join(f"k{i}: {i}\n" for i in range(count))


@settings(HOSTILE, max_examples=50)
@given(text=exhausting_documents())
def test_exhausting_documents(text: str, workdir: Path) -> None:
    validate(text, workdir)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "   \n",
        "# only a comment\n",
        "---\n",
        "--- \n...\n",
        "~\n",
        "null\n",
        "[]\n",
        "42\n",
        "\ufeff",
        "\ufeffname: x\n",
        "name: x\n---\nname: y\n",
        "- a\n- b\n",
        "name: [unclosed\n",
        "\t\tname: x\n",
        "name: x\n\x00\n",
        "{}\n",
    ],
)
def test_degenerate_files(text: str, workdir: Path) -> None:
    outcome = validate(text, workdir)
    assert outcome.exit_code == 2


def test_unreadable_paths(workdir: Path) -> None:
    folder = workdir / "a_directory.yaml"
    folder.mkdir(exist_ok=True)
    for path in (folder, workdir / "missing.yaml"):
        assert invoke(["validate", str(path)], path).exit_code == 2
        assert invoke(["run", str(path)], path, prefix="error: ").exit_code == 2


# --------------------------------------------------------------------------- CSV files


CELLS = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "-1",
            "1.5",
            "nan",
            "inf",
            "-inf",
            "1e308",
            "1e400",
            str(10**30),
            "1_000",
            "0x10",
            "TRUE",
            "yes",
            "No",
            "maybe",
            "\x00",
            '"',
            '"a,b"',
            "a\nb",
            "é",
            "x" * 200_000,
        ]
    ),
    st.text(max_size=8),
)


def assert_file_error(message: str, path: Path, raw: bytes) -> None:
    """One short line that starts with the file, and names a line of it if any."""
    assert "\n" not in message and message.startswith(f"{path}:"), message
    assert len(message) <= len(str(path)) + MAX_MESSAGE_CHARS, message
    line = re.match(rf"^{re.escape(str(path))}:(\d+):", message)
    if line:
        assert 1 <= int(line[1]) <= raw.count(b"\n") + 1, message


@st.composite
def hostile_csvs(draw: st.DrawFn) -> bytes:
    """Experiment exports: either shape, valid rows mixed with hostile cells, counts that do
    not add up (conversions above visitors, a stage above the one before), ragged rows,
    odd headers, other encodings."""
    aggregated = draw(st.booleans())
    header = (
        ["variant", "visitors", "cart", "conversions", "revenue"]
        if aggregated
        else ["variant", "cart", "converted", "revenue"]
    )
    header = draw(
        st.sampled_from(
            [
                header,
                header[:-1],
                header[1:],
                [*header, "extra"],
                [*header, header[0]],
                [h.upper() for h in header],
                [],
                ["\ufeff" + header[0], *header[1:]],
            ]
        )
    )
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        if aggregated:
            visitors = draw(st.integers(0, 10**9))
            cart = draw(st.integers(0, visitors + 2))
            row = [
                draw(st.sampled_from(["A", "B", "C"])),
                str(visitors),
                str(cart),
                str(draw(st.integers(0, cart + 2))),
                str(draw(st.floats(0, 1e6))),
            ]
        else:
            cart, converted = draw(st.booleans()), draw(st.booleans())
            row = [
                draw(st.sampled_from(["A", "B"])),
                str(cart),
                str(converted),
                str(draw(st.floats(0, 500))) if converted else "",
            ]
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # hostile cells
            row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)
        rows.append(row[: draw(st.integers(len(row) - 1, len(row)))])
    text = "\n".join(",".join(r) for r in [header, *rows]) + draw(st.sampled_from(["\n", ""]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@settings(HOSTILE, max_examples=250)
@given(raw=hostile_csvs())
def test_hostile_csv_files(raw: bytes, workdir: Path) -> None:
    """Reading an export gives sound aggregates or one DataError line naming the file (and
    the line and column where there is one); ``analyze``, when present, exits 0 or 2."""
    from funnelsim.analysis.data import DataError, read_experiment

    path = workdir / "experiment.csv"
    path.write_bytes(raw)
    COUNTS["inputs"] += 1
    try:
        data = read_experiment(path)
    except DataError as error:
        COUNTS["exit 2"] += 1
        assert_file_error(str(error), path, raw)
    else:
        COUNTS["exit 0"] += 1
        for counts in (data.visitors, data.conversions, data.stage_counts):
            assert np.all(np.isfinite(counts)) and np.all(counts >= 0)
        assert np.all(data.conversions <= data.visitors)
    if "analyze" in main.commands:
        invoke(["analyze", str(path), "-q"], path, prefix="error: ")


# --------------------------------------------------------------------------- command lines


OPTION_VALUES = {
    "--replications": ["0", "-1", "abc", "1.5", "1e3", str(10**6), str(10**30), ""],
    "--days": ["0", "-3", "1e9", str(10**9), str(2**63), "nan", "two"],
    "--visitors-per-day": ["0", "-5", "nan", "inf", "-inf", "1e300", "1e12", "0x10", "", "1e-300"],
    "--seed": ["-1", str(2**64), str(10**40), "x", "1.0"],
    "--workers": ["0", "-2", "many", str(10**9)],
    "--engine": ["warp", "", "SIMPY"],
}


@settings(HOSTILE, max_examples=60)
@given(option=st.sampled_from(sorted(OPTION_VALUES)), data=st.data())
def test_hostile_options(option: str, data: st.DataObject, workdir: Path) -> None:
    """Option values that are wrong or absurd are refused before anything runs (click's
    usage errors are also exit 2); the absurdly large are priced, not attempted."""
    value = data.draw(st.sampled_from(OPTION_VALUES[option]))
    path = workdir / "options.yaml"
    path.write_text(BASE, encoding="utf-8")
    result = RUNNER.invoke(
        main,
        ["run", str(path), "-q", option, value, "--replications", "1"]
        if option != "--replications"
        else ["run", str(path), "-q", option, value],
    )
    COUNTS["inputs"] += 1
    COUNTS[f"exit {result.exit_code}"] += 1
    text = result.output + result.stderr
    assert "Traceback" not in text and (
        result.exception is None or isinstance(result.exception, SystemExit)
    ), text
    assert result.exit_code in (0, 2), text
    if result.exit_code == 2 and "too large" in text:
        assert "--allow-large" in text and "visitor-stage steps" in text, text


def test_absurd_requests_are_priced_and_refused(workdir: Path) -> None:
    path = workdir / "absurd.yaml"
    path.write_text(
        BASE.replace("visitors_per_day: 150", "visitors_per_day: 5e11"), encoding="utf-8"
    )
    for args in (["run", str(path)], ["run", str(workdir / "absurd.yaml"), "--days", "1"]):
        outcome = invoke(args, path, prefix="error: ")
        assert outcome.exit_code == 2
        assert "too large" in outcome.rest and "--allow-large" in outcome.rest
        assert "memory over" in outcome.rest, outcome.rest
        assert re.search(r"visitor-stage steps, ~[\d.,]+ [kMGTP]?B, ~[\d.,]+ ", outcome.rest)
    path.write_text(BASE, encoding="utf-8")
    outcome = invoke(["run", str(path), "--replications", str(10**6)], path, prefix="error: ")
    assert outcome.exit_code == 2 and "more than 100,000 replications" in outcome.rest
    swept = invoke(
        ["sweep", str(path), "--param", "traffic.visitors_per_day=100,1e11", "-q"],
        path,
        prefix="error: ",
    )
    assert swept.exit_code == 2 and "--allow-large" in swept.rest, swept.rest
    absurd = workdir / "absurd-traffic.yaml"
    absurd.write_text(
        BASE.replace("visitors_per_day: 150", "visitors_per_day: 5e11"), encoding="utf-8"
    )
    for command, file in (
        (["bench", str(path), "--days", str(10**9)], path),
        (["plan", str(absurd), "--variant", "guest"], absurd),
    ):
        refused = invoke([*command, "-q"], file, prefix="error: ")
        assert refused.exit_code == 2 and "--allow-large" in refused.rest, refused.rest


def _real_process(args: list[str], memory_bytes: int | None = None) -> tuple[int, list[str]]:
    """Run ``funnelsim`` as a separate process (optionally with capped address space)."""

    def cap_memory() -> None:
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    COUNTS["inputs"] += 1
    done = subprocess.run(
        [str(Path(sys.executable).parent / "funnelsim"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap_memory,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    COUNTS[f"exit {done.returncode}"] += 1
    if "Traceback" in done.stderr:
        COUNTS["tracebacks"] += 1
    return done.returncode, done.stderr.splitlines()


def test_real_processes(workdir: Path) -> None:
    """A few hostile inputs through real processes: the exit status the shell sees, and
    one line on stderr."""
    bomb = workdir / "bomb.yaml"
    levels = [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)]
    bomb.write_text("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(levels), encoding="utf-8")
    code, lines = _real_process(["validate", str(bomb)])
    assert code == 2 and len(lines) == 1 and "too deeply aliased" in lines[0], lines
    absurd = workdir / "absurd-process.yaml"
    absurd.write_text(
        BASE.replace("visitors_per_day: 150", "visitors_per_day: 1e13"), encoding="utf-8"
    )
    code, lines = _real_process(["run", str(absurd), "-q"])
    assert code == 2 and len(lines) == 1 and "--allow-large" in lines[0], lines
    # Allowed anyway, on a machine with 3 GB: it runs out of memory, and says so in a line.
    code, lines = _real_process(
        ["run", str(absurd), "-q", "--allow-large", "--workers", "1", "--replications", "1"],
        memory_bytes=3 * 10**9,
    )
    assert code == 2 and lines == [lines[0]] and "out of memory" in lines[0], lines


def test_estimates_scale_with_the_request() -> None:
    from funnelsim import budget
    from funnelsim.scenario import parse_scenario

    scenario = parse_scenario(BASE)
    small = budget.estimate(scenario, 10, "vectorized")
    # Steps are exact: 150 visitors/day x 2 days x 2 stages x 2 variants x 10 replications.
    assert small.steps == 150 * 2 * 2 * 2 * 10
    ten_times = budget.estimate(scenario, 100, "vectorized")
    assert ten_times.steps == 10 * small.steps
    assert math.isclose(ten_times.seconds, 10 * small.seconds)
    assert budget.refusal(small) is None
    sweep = budget.estimate_sweep(
        scenario, [{"traffic.days": d} for d in (1, 2, 40)], 10, "vectorized"
    )
    assert sweep.visitors == 150 * 40 and sweep.steps == 3 * 20 * small.steps


# --------------------------------------------------------------------------- order logs

BAD_DATES = st.sampled_from(
    ["2025-02-30", "01/02/2025", "", "yesterday", "2025-13-01", "9999-99-99", "0000-01-01"]
)
ODD_DATES = st.sampled_from(["20250101", "2025/01/05", "2025-01-01T10:00:00", "9999-12-31"])


@st.composite
def hostile_order_logs(draw: st.DrawFn) -> bytes:
    """Order logs as shops export them: mostly sound rows (so customers recur, sometimes
    under two variants), some with a damaged cell, header or encoding."""
    header = ["customer", "variant", "date", "amount"]
    if draw(st.integers(0, 9)) == 0:
        header[draw(st.integers(0, 3))] = draw(st.sampled_from(["Customer", "", "when", "amt"]))
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row = [
            draw(st.sampled_from(["c1", "c2", "c3", "c4"])),
            draw(st.sampled_from(["A", "B"])),
            draw(st.one_of(st.dates().map(lambda d: d.isoformat()), ODD_DATES)),
            str(draw(st.floats(0, 1e4))),
        ]
        if draw(st.integers(0, 4)) == 0:  # one damaged cell
            column = draw(st.integers(0, 3))
            row[column] = draw(BAD_DATES if column == 2 else CELLS)
        rows.append(
            row[: draw(st.integers(len(row) - 1, len(row)))]
            if draw(st.integers(0, 9)) == 0
            else row
        )
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@settings(HOSTILE, max_examples=200)
@given(raw=hostile_order_logs())
def test_hostile_order_logs(raw: bytes, workdir: Path) -> None:
    """An order log is read into sound per-customer histories, or refused with one line
    naming the file (and the line where there is one); never a traceback."""
    from funnelsim.analysis.data import DataError
    from funnelsim.analysis.order_log import read_transactions, summarise_customers

    path = workdir / "orders.csv"
    path.write_bytes(raw)
    COUNTS["inputs"] += 1
    try:
        summary = summarise_customers(read_transactions(path))
    except DataError as error:
        COUNTS["exit 2"] += 1
        assert_file_error(str(error), path, raw)
    else:
        COUNTS["exit 0"] += 1
        assert np.all(summary.frequency >= 0) and np.all(summary.recency >= 0)
        assert np.all(summary.recency <= summary.T)
        assert np.all(np.isfinite(summary.spend)) and np.all(summary.spend >= 0)


@settings(HOSTILE, max_examples=120)
@given(
    spec=st.one_of(
        st.text(max_size=30),
        st.lists(
            st.tuples(
                st.sampled_from(["A", "B", "", " A", "A="]),
                st.one_of(st.integers(-5, 10**20).map(str), CELLS),
            ),
            max_size=3,
        ).map(lambda pairs: ",".join(f"{k}={v}" for k, v in pairs)),
    )
)
def test_hostile_visitor_counts(spec: str) -> None:
    """--visitors is parsed into non-negative counts or refused with one line."""
    from funnelsim.analysis.lifetime import visitor_counts
    from funnelsim.analysis.order_log import TransactionError

    COUNTS["inputs"] += 1
    try:
        counts = visitor_counts(spec)
    except TransactionError as error:
        COUNTS["exit 2"] += 1
        message = str(error)
        assert "\n" not in message and message.startswith("visitors"), message
        assert error.field == "visitors", message
        assert len(message) <= MAX_MESSAGE_CHARS, message
    else:
        COUNTS["exit 0"] += 1
        assert all(isinstance(n, int) and n >= 0 for n in counts.values())
        assert all(name and name == name.strip() for name in counts)


# --------------------------------------------------------------------------- degenerate figures


def _degenerate(value: float) -> Any:
    """An interval at 0% or 100% whose bounds sit a rounding error past the mean, as a
    Wilson interval of 0 or n successes out of n does."""
    from funnelsim.intervals import Interval

    return Interval(value, value + 3.5e-18, value - 3.5e-18)


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_bench_figure_survives_a_strategy_at_0_or_100_percent(rate: float) -> None:
    from funnelsim.intervals import Interval
    from funnelsim.strategies import BENCH_METRICS, BenchResult, StrategyScore, Truth, bench_figure

    truth = Truth(
        ("a", "b"), np.array([0.1, 0.1]), np.array([1.0, 1.0]), np.array([0.5, 0.5]), 100, 7
    )
    scores = tuple(
        StrategyScore(
            name,
            {
                m: _degenerate(rate)
                if m in ("false_positive_rate", "prob_correct")
                else Interval(1.0, 0.5, 1.5)
                for m in BENCH_METRICS
            },
        )
        for name in ("bayes", "peeking")
    )
    result = BenchResult("s", "EUR", truth, "a", 10, 0, scores)
    figure = bench_figure(result)
    assert len(figure.axes) == len(BENCH_METRICS)


def test_uplift_interval_figure_survives_a_degenerate_interval() -> None:
    from funnelsim import plots

    figure = plots.uplift_interval_figure(
        "CLV per visitor", {"b": tuple(_degenerate(0.0))}, 0.01, {}
    )
    assert figure.axes[0].get_yticklabels()[0].get_text() == "b"
