"""Documentation that cannot drift: the generated scenario reference, the runnable example,
and the commands the tutorial tells people to type."""

from __future__ import annotations

import json
import re
import runpy

import pytest
from click.testing import CliRunner

from conftest import ROOT
from funnelsim import cli, friction, schema_doc
from funnelsim.scenario import Scenario

DOCS = ROOT / "docs"


def test_scenario_reference_is_up_to_date() -> None:
    committed = (DOCS / "scenario-reference.md").read_text(encoding="utf-8")
    assert committed == schema_doc.markdown(), (
        "docs/scenario-reference.md is stale: run "
        "`funnelsim schema --markdown -o docs/scenario-reference.md --force`"
    )


def _fields(model: type, seen: set[type]) -> set[str]:
    """Every field name of the scenario models, walking nested models."""
    from pydantic import BaseModel

    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for name, info in model.model_fields.items():
        names.add(name)
        for option in re.findall(r"funnelsim\.[\w.]*?([A-Z]\w*)", repr(info.annotation)):
            from funnelsim import scenario

            child = getattr(scenario, option, None)
            if isinstance(child, type) and issubclass(child, BaseModel):
                names |= _fields(child, seen)
    return names


def test_reference_lists_every_field_with_units_and_sources() -> None:
    text = schema_doc.markdown()
    for name in _fields(Scenario, set()):
        assert f"`{name}`" in text, name  # distribution parameters are in their own table
    assert "| `page_load_s` | number, ≥ 0, ≤ 1e+09 | `1.0` | seconds |" in text
    assert "| `hazard_per_field` | number in [0, 1] | `0.0401` |" in text
    assert "Baymard Institute (2024)" in text and "Google / SOASTA" in text
    for name, calibrated in friction.default_ranges().items():
        assert f"Range of `{name.rsplit('.', 1)[1]}` (what its sources allow): " in text
        assert calibrated.describe() in text
    assert "to enter today's, use `rate_at`" in text  # what `rate` means with response decay


def test_schema_command_prints_json_schema_and_writes_markdown(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli.main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "Scenario"
    out = tmp_path / "ref.md"
    result = runner.invoke(cli.main, ["schema", "--markdown", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text(encoding="utf-8") == schema_doc.markdown()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_example_runs(capsys) -> None:
    runpy.run_path(str(DOCS / "example.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "ExperimentResult('Page speed'" in printed
    assert "figures" in printed


@pytest.mark.parametrize("page", ["tutorial.md", "modelling.md"])
def test_docs_only_mention_real_commands(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^\$ funnelsim ([a-z]+)", text, flags=re.MULTILINE))
    mentioned |= set(re.findall(r"`funnelsim ([a-z]+)", text))
    assert mentioned <= set(cli.main.commands), mentioned - set(cli.main.commands)


def test_import_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, funnelsim; print(sorted(m for m in ('pymc', 'arviz', 'matplotlib', "
        "'simpy', 'pandas', 'dask') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_public_api_is_documented_and_bench_runs() -> None:
    import funnelsim

    for name in funnelsim.__all__:
        assert getattr(funnelsim, name).__doc__, name
    scenario = funnelsim.load_scenario(ROOT / "scenarios" / "checkout.yaml").with_overrides(
        {"traffic.days": 1}
    )
    result = funnelsim.bench(scenario, ["fixed"], replications=10, truth_replications=2)
    assert [s.name for s in result.scores] == ["fixed"]


def _generator():
    return runpy.run_path(str(DOCS / "generate.py"))


def test_generated_outputs_and_images_are_up_to_date() -> None:
    """Every command output the README and the tutorial show, and the tutorial's image, is
    what the command prints now (PyMC fits too with FUNNELSIM_DOCS_SLOW=1)."""
    import os

    generator = _generator()
    stale = generator["generate"](check=True, slow=os.environ.get("FUNNELSIM_DOCS_SLOW") == "1")
    assert not stale, f"stale documentation (run `make docs`): {stale}"


def test_every_output_block_names_its_command() -> None:
    generator = _generator()
    for page in generator["PAGES"]:
        text = page.read_text(encoding="utf-8")
        blocks = list(generator["BLOCK"].finditer(text))
        assert blocks, page
        for block in blocks:
            spec = generator["parse_spec"](block["spec"])
            assert all(c.startswith("funnelsim ") for c in spec.commands)
            first = block["body"].splitlines()[0] if block["body"] else ""
            assert first == f"$ {spec.commands[0]}", (page.name, first)


def test_tutorial_simulates_the_yaml_it_shows() -> None:
    generator = _generator()
    tutorial = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    from funnelsim.scaffold import scenario_from_template
    from funnelsim.scenario import parse_scenario

    text = generator["tutorial_scenario"](scenario_from_template("checkout", "shop"), tutorial)
    scenario = parse_scenario(text, "shop.yaml")
    assert scenario.variant_names == ["control", "guest_checkout"]
    assert scenario.coefficients.login_wall.registered_repeat_multiplier == 1.5
