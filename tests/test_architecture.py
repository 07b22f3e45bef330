"""The package reads top-down: no import runs upward through the layers, none circles.

Every module under ``src/funnelsim`` is parsed with :mod:`ast`; its imports (at module
level and inside functions, but not those under ``if TYPE_CHECKING:``, which never run)
make the import graph. A module may import from its own layer or any layer below it
(``docs/architecture.md`` draws the layers).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "funnelsim"

LAYERS: tuple[tuple[str, ...], ...] = (
    # shared contracts and plumbing: import nothing above them
    (
        "errors",
        "execution",
        "numbers",
        "formatting",
        "tables",
        "intervals",
        "files",
        "result_mixin",
        "results",
        "question",
        "parallel",
        "queueing",
        "compile_cache",
        "fields",
        "uncertainty",
        "halton",
        "sobol",
        "templates",
        "text",
    ),
    # the friction models: coefficients, calibration, formulas (part of the schema)
    ("friction",),
    # the scenario file and its schema
    ("scenario", "schema_doc"),
    # the funnel model and the engines that simulate it
    ("clv", "engine", "scaffold", "budget", "worlds"),
    # statistics on aggregates and order logs
    ("analysis",),
    # variants x replications, and the order logs they produce
    ("experiment", "orders", "propagation"),
    # figures (drawn by the studies and the HTML report)
    ("plots",),
    # studies built on many experiments
    (
        "sweeps",
        "strategies",
        "planning",
        "preposterior",
        "profit_planning",
        "sensitivities",
        "calibration",
    ),
    # presentation: terminal tables and the HTML report
    ("report", "service_report", "html_report"),
    # entry points: the command line and the package's Python API
    ("cli", ""),
)
"""Layers, lowest first; a name is a module or a package under ``funnelsim`` ("" is the
package ``funnelsim`` itself, its ``__init__``)."""

KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset()
"""Upward imports that exist today, each with the change that will remove it."""


def module_name(path: Path) -> str:
    parts = ("funnelsim", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import under ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append(child)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            found.extend(i for other in child.orelse for i in _imports(ast.Module([other], [])))
        else:
            found.extend(_imports(child))
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The funnelsim modules an import statement loads (a name imported from a package
    counts as its submodule when there is one)."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {n for n in names if n in MODULES and n != "funnelsim" and n != module}


def import_graph() -> dict[str, set[str]]:
    """Each funnelsim module and the funnelsim modules it imports at run time."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {t for node in _imports(tree) for t in _targets(module, node)}
    return graph


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest declared name that holds ``module``."""
    relative = module.removeprefix("funnelsim").removeprefix(".")
    best: tuple[int, int] | None = None
    for index, names in enumerate(LAYERS):
        for name in names:
            holds = relative == name or (name and relative.startswith(name + "."))
            if holds and (best is None or len(name) > best[0]):
                best = (len(name), index)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[1]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(m, t) for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_no_import_runs_upward() -> None:
    assert upward_imports(import_graph()) - KNOWN_UPWARD == set()


def test_known_upward_imports_still_exist() -> None:
    """An exception that no longer happens is removed from the list, not kept."""
    assert upward_imports(import_graph()) >= KNOWN_UPWARD


def test_graph_sees_lazy_imports_and_skips_type_checking() -> None:
    graph = import_graph()
    assert "funnelsim.scaffold" in graph["funnelsim.html_report"]  # inside a function
    assert "funnelsim.experiment.economics" not in graph["funnelsim.results"]  # TYPE_CHECKING


@pytest.mark.parametrize(
    ("edge", "found_by"),
    [
        (("funnelsim.scenario.schema", "funnelsim.cli"), "upward"),
        (("funnelsim.engine.model", "funnelsim.experiment.runner"), "upward"),
        (("funnelsim.files", "funnelsim.results"), "cycle"),
    ],
)
def test_checks_catch_a_new_bad_import(edge: tuple[str, str], found_by: str) -> None:
    graph = import_graph()
    graph[edge[0]] = graph[edge[0]] | {edge[1]}
    if found_by == "upward":
        assert edge in upward_imports(graph) - KNOWN_UPWARD
    else:
        assert any(set(edge) <= set(c) for c in cycles(graph))


def test_module_map_lists_every_module() -> None:
    """docs/architecture.md names every module (a package's re-exporting ``__init__``
    aside) and no module that is gone; ``make docs`` keeps its line counts."""
    page = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w/.]+)` \| [\d,]+ \|", page, re.MULTILINE))
    modules = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")}
    folders = tuple(name for name in listed if name.endswith("/"))
    covered = {m for m in modules if m.startswith(folders)} | (listed & modules)
    reexports = {m for m in modules if m.endswith("/__init__.py")}
    assert modules - covered - reexports == set(), "add them to docs/architecture.md"
    assert {name for name in listed if not name.endswith("/")} <= modules
