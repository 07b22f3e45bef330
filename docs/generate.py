"""Regenerate every command output and image the documentation shows: `make docs`.

The README and the tutorial mark each output they show with the command that makes it:

    <!-- generated: funnelsim run scenarios/checkout.yaml; first=14; last=12 -->
    ```text
    (replaced by the output)
    ```
    <!-- /generated -->

This script runs each marked command through the CLI (as a user would type it, at the
100-column width of piped output) and writes its output between the markers: all of it,
or its ``first`` and ``last`` lines with ``...`` between. A marker may hold several
commands separated by ``&&``; ``slow`` marks commands that fit a PyMC model (the test
suite checks those only with ``FUNNELSIM_DOCS_SLOW=1``). Commands run in a scratch
directory holding ``scenarios/``, ``../shared``, the ``visitors.csv`` that
``docs/visitors_example.py`` writes, the tutorial's ``shop.yaml``: the
checkout template with the tutorial's YAML block put in place of its variants, so the
tutorial simulates exactly what it shows, and ``five.yaml``, the YAML block of its
section 5c (the scenario it calibrates). Images the tutorial's commands write are then
copied to ``docs/img`` (:data:`IMAGES`). The line counts of the module map in
``docs/architecture.md`` are counted again from the source.

    python docs/generate.py            # rewrite README.md, docs/tutorial.md, docs/img
    python docs/generate.py --check    # exit 1 naming every block that is out of date

``tests/test_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", ROOT / "docs" / "tutorial.md")
VISITORS_EXAMPLE = ROOT / "docs" / "visitors_example.py"
IMAGES = {ROOT / "docs" / "img" / "tutorial-uplift-clv.png": "results/uplift_clv_per_visitor.png"}
"""Documentation images, each copied from a file the tutorial's commands write."""
BLOCK = re.compile(
    r"<!-- generated: (?P<spec>.+?) -->\n```text\n(?P<body>.*?)```\n<!-- /generated -->",
    re.DOTALL,
)
TUTORIAL_YAML = re.compile(r"## 2\. State both hypotheses.*?```yaml\n(?P<yaml>.*?)```", re.DOTALL)
CALIBRATION_YAML = re.compile(
    r"## 5c\. From your analytics export.*?```yaml\n(?P<yaml>.*?)```", re.DOTALL
)
"""The tutorial's five-stage scenario that section 5c calibrates (``five.yaml``)."""
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MODULE_ROW = re.compile(r"^\| `(?P<module>[\w/.]+)` \| (?P<lines>[\d,]+) \|", re.MULTILINE)
"""A row of the module map: a module (or a package folder, ending in ``/``) and its lines."""
ELAPSED = re.compile(r" in \d+(\.\d+)? s\b")
"""Wall time in a sampler's summary line: the one part of an output that varies."""


@dataclass(frozen=True)
class Spec:
    """A marker: the commands, how much of their output to keep, and whether it is slow."""

    commands: tuple[str, ...]
    first: int | None = None
    last: int | None = None
    slow: bool = False


def parse_spec(text: str) -> Spec:
    """``CMD [&& CMD...][; first=N][; last=N][; slow]``."""
    command, *options = (part.strip() for part in text.split(";"))
    values = dict(option.partition("=")[::2] for option in options)
    return Spec(
        tuple(c.strip() for c in command.split("&&")),
        int(values["first"]) if "first" in values else None,
        int(values["last"]) if "last" in values else None,
        "slow" in values,
    )


def tutorial_scenario(template: str, tutorial: str) -> str:
    """The checkout template with its variants replaced by the tutorial's YAML block."""
    block = TUTORIAL_YAML.search(tutorial)
    if block is None:
        raise SystemExit("docs/tutorial.md: no YAML block under '## 2. State both hypotheses'")
    start = template.index("\nvariants:") + 1
    end = template.index("\nexperiment:", start) + 1
    return template[:start] + block["yaml"] + "\n" + template[end:]


@contextmanager
def scratch() -> Iterator[Path]:
    """A working directory laid out like a checkout: scenarios/, ../shared and shop.yaml."""
    from funnelsim.scaffold import scenario_from_template

    with tempfile.TemporaryDirectory() as top:
        work = Path(top) / "work"
        work.mkdir()
        (work / "scenarios").symlink_to(ROOT / "scenarios")
        (Path(top) / "shared").symlink_to(ROOT.parent / "shared")
        tutorial = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
        (work / "shop.yaml").write_text(
            tutorial_scenario(scenario_from_template("checkout", "shop"), tutorial),
            encoding="utf-8",
        )
        five = CALIBRATION_YAML.search(tutorial)
        if five is None:
            raise SystemExit("docs/tutorial.md: no YAML block under '## 5c.'")
        (work / "five.yaml").write_text(five["yaml"], encoding="utf-8")
        write_visitors(work / "visitors.csv")
        yield work


def write_visitors(path: Path) -> None:
    """The tutorial's per-visitor example (``docs/visitors_example.py``) at ``path``."""
    spec = importlib.util.spec_from_file_location("visitors_example", VISITORS_EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(io.StringIO()):
        module.main(str(path))


def run_command(command: str, cwd: Path) -> str:
    """The text a user sees after typing ``command`` (stdout and stderr, as piped)."""
    from click.testing import CliRunner

    from funnelsim.cli import main

    words = shlex.split(command)
    if words[0] != "funnelsim":
        raise SystemExit(f"not a funnelsim command: {command}")
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        # as piped without COLUMNS (100 columns), whatever the generating shell exports
        result = CliRunner().invoke(main, words[1:], env={"COLUMNS": None}, catch_exceptions=False)
    finally:
        os.chdir(previous)
    if result.exit_code != 0:
        raise SystemExit(f"`{command}` exited {result.exit_code}:\n{result.output}")
    return result.output


def abridge(lines: list[str], spec: Spec) -> list[str]:
    """The first and last lines a marker keeps, with ``...`` where lines were left out."""
    if spec.first is None and spec.last is None:
        return lines
    head = lines[: spec.first or 0]
    tail = lines[len(lines) - spec.last :] if spec.last else []
    if len(head) + len(tail) >= len(lines):
        return lines
    return [*head, "...", *tail]


def block_text(spec: Spec, cwd: Path) -> str:
    """The body of a block: each command after ``$``, then its output."""
    lines: list[str] = []
    for command in spec.commands:
        output = [line.rstrip() for line in run_command(command, cwd).splitlines()]
        lines += [f"$ {command}", *abridge(output, spec)]
    return "\n".join(lines) + "\n"


def comparable(text: str) -> str:
    """An output with its wall times masked."""
    return ELAPSED.sub(" in … s", text)


def regenerate(page: str, cwd: Path, keep: Callable[[Spec], bool]) -> tuple[str, list[str]]:
    """The page with every kept block regenerated, and the commands whose output changed."""
    stale: list[str] = []

    def replace(match: re.Match[str]) -> str:
        spec = parse_spec(match["spec"])
        if not keep(spec):
            return match[0]
        body = block_text(spec, cwd)
        if comparable(body) != comparable(match["body"]):
            stale.append(" && ".join(spec.commands))
        start, end = match.span("body")
        return match.string[match.start() : start] + body + match.string[end : match.end()]

    return BLOCK.sub(replace, page), stale


def source_lines(module: str) -> int:
    """Lines of a module of ``src/funnelsim``, or of every module in a folder."""
    path = ROOT / "src" / "funnelsim" / module
    files = sorted(path.glob("*.py")) if module.endswith("/") else [path]
    return sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)


def recount_module_map(page: str) -> str:
    """The architecture page with every module's line count counted again."""

    def recount(match: re.Match[str]) -> str:
        return f"| `{match['module']}` | {source_lines(match['module']):,} |"

    return MODULE_ROW.sub(recount, page)


def generate(check: bool, slow: bool) -> list[str]:
    """Regenerate (or with ``check`` only compare) every page and image; the stale ones."""
    stale: list[str] = []
    with scratch() as cwd:
        for path in PAGES:
            page = path.read_text(encoding="utf-8")
            fresh, changed = regenerate(page, cwd, lambda spec: slow or not spec.slow)
            stale += [f"{path.relative_to(ROOT)}: {command}" for command in changed]
            if changed and not check:
                path.write_text(fresh, encoding="utf-8")
        for image, source in IMAGES.items():
            made = (cwd / source).read_bytes()
            if not image.exists() or image.read_bytes() != made:
                stale.append(str(image.relative_to(ROOT)))
                if not check:
                    image.write_bytes(made)
    page = ARCHITECTURE.read_text(encoding="utf-8")
    if recount_module_map(page) != page:
        stale.append(f"{ARCHITECTURE.relative_to(ROOT)}: module map line counts")
        if not check:
            ARCHITECTURE.write_text(recount_module_map(page), encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    parser.add_argument("--fast", action="store_true", help="skip the commands marked slow")
    args = parser.parse_args(argv)
    stale = generate(args.check, slow=not args.fast)
    for item in stale:
        print(f"{'stale' if args.check else 'regenerated'}: {item}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
