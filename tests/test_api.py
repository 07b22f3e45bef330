"""The Python API and the thin command line over it: one execution value, library errors
that name arguments (the CLI names options), the bundled scenario list, light imports."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import funnelsim
from funnelsim import cli, scaffold, templates
from funnelsim.errors import FunnelsimError
from funnelsim.execution import Execution
from funnelsim.files import OutputExistsError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def test_help_imports_neither_numpy_nor_pydantic() -> None:
    code = (
        "import sys; from funnelsim.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('numpy', 'pydantic', 'scipy', 'pymc') if m in sys.modules),"
        " file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Simulate funnel changes" in done.stdout
    assert done.stderr.strip() == "[]"


def test_dir_and_all_list_the_public_api() -> None:
    public = dir(funnelsim)
    assert public == sorted(funnelsim.__all__)
    for name in ("load_scenario", "run", "plan", "explain", "Execution", "PlanResult"):
        assert name in public
    assert "Path" not in public and "Any" not in public
    assert funnelsim.PlanResult.__name__ == "PlanResult"


def test_execution_uses_every_cpu_only_when_asked() -> None:
    assert Execution().processes == 1
    assert Execution(workers=None).processes >= 1
    assert Execution(seed=4).seed_or(9) == 4 and Execution().seed_or(9) == 9


@pytest.mark.parametrize(
    ("error", "source", "line"),
    [
        (FunnelsimError("param x=1: bad", "param"), Path("s.yaml"), "--param x=1: bad"),
        (FunnelsimError("dask: expected 'local'", "dask"), None, "--dask: expected 'local'"),
        (
            FunnelsimError("too large: 1 replication(s)", "allow_large"),
            Path("s.yaml"),
            "s.yaml: too large: 1 replication(s); use --allow-large to run it anyway",
        ),
        (
            OutputExistsError("out: already holds results.json", "force"),
            Path("s.yaml"),
            "out: already holds results.json; use --force to overwrite",
        ),
        (FunnelsimError("at x=1: rate: bad"), Path("s.yaml"), "s.yaml: at x=1: rate: bad"),
    ],
)
def test_library_errors_get_the_command_lines_words(
    error: FunnelsimError, source: Path | None, line: str
) -> None:
    assert cli.error_line(error, source) == line


def test_library_errors_name_the_argument_not_the_option() -> None:
    with pytest.raises(FunnelsimError) as raised:
        funnelsim.sweep(ROOT / "scenarios" / "checkout.yaml", {"nowhere.rate": "0.1,0.2"})
    assert raised.value.field == "param" and "--" not in str(raised.value)


def test_every_bundled_scenario_is_a_template_and_listed() -> None:
    in_repository = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    in_package = {p.stem for p in (ROOT / "src" / "funnelsim" / "templates").glob("*.yaml")}
    assert in_repository == in_package == set(templates.NAMES) == set(scaffold.TEMPLATES)
    listed = CliRunner().invoke(cli.main, ["list"]).output
    for name in ("login_tradeoff", "lead_response", "lead_magnet"):
        assert any(line.startswith(name + " ") for line in listed.splitlines())


def test_init_writes_a_scenario_from_every_template(tmp_path: Path) -> None:
    for name in templates.NAMES:
        path = scaffold.write_template(name, str(tmp_path / name))
        assert funnelsim.load_scenario(path).name == name


def test_analyze_takes_keyword_column_names() -> None:
    result = funnelsim.analyze(
        DATA / "marketing_ab_funnel.csv",
        variant_column="test group",
        stage_columns=["step1", "step2"],
    )
    assert [v.name for v in result.variants] == ["a", "b"]
    assert any("stage columns (step1, step2)" in note for note in result.notes)


def test_event_log_rows_carry_the_order_value_of_purchases(tmp_path: Path) -> None:
    scenario = funnelsim.load_scenario(ROOT / "scenarios" / "checkout.yaml").with_overrides(
        {"traffic.visitors_per_day": 300, "traffic.days": 1}
    )
    path = funnelsim.write_event_log(scenario, tmp_path / "events.csv")
    with path.open() as stream:
        rows = list(csv.DictReader(stream))
    last = scenario.stage_names[-1]
    bought = [r for r in rows if r["stage"] == last and r["outcome"] == "continued"]
    assert bought and all(float(r["revenue"]) > 0 for r in bought)
    assert all(float(r["revenue"]) == 0 for r in rows if r not in bought)


def test_analyze_reads_pandas_and_polars_frames_as_the_file() -> None:
    import pandas as pd
    import polars as pl

    path = DATA / "marketing_ab_funnel.csv"
    from_file = funnelsim.analyze(path, variant_column="test group").to_dict()["variants"]
    for frame in (pd.read_csv(path), pl.read_csv(path)):
        result = funnelsim.analyze(frame, variant_column="test group")
        assert result.source == "<DataFrame>"
        assert result.to_dict()["variants"] == from_file


def test_a_frame_cell_error_names_its_line() -> None:
    import pandas as pd

    frame = pd.DataFrame({"variant": ["a", "b"], "converted": [True, "maybe"]})
    expected = r"^<DataFrame>:3: column 'converted': expected a number"
    with pytest.raises(FunnelsimError, match=expected):
        funnelsim.analyze(frame)


def test_control_rows_have_no_probability_of_beating_themselves() -> None:
    result = funnelsim.analyze(DATA / "marketing_ab_funnel.csv", variant_column="test group")
    variants = result.to_dict()["variants"]
    assert variants["a"]["prob_beats_control"] is None
    assert 0 <= variants["b"]["prob_beats_control"] <= 1
    frame = result.to_frame()
    assert frame["prob_beats_control"].isna().tolist() == [True, False]


def test_every_result_uses_one_frame_naming_rule() -> None:
    scenario = funnelsim.load_scenario(ROOT / "scenarios" / "checkout.yaml").with_overrides(
        {"traffic.days": 2, "traffic.visitors_per_day": 400}
    )
    analysis = funnelsim.analyze(DATA / "marketing_ab_funnel.csv", variant_column="test group")
    run = funnelsim.run(scenario, 2)
    plan = funnelsim.plan(
        scenario, "guest_checkout", simulations=20, max_days=3, truth_replications=1
    )
    for result in (analysis, run, plan):
        frame = result.to_frame()
        assert not any("." in str(column) for column in frame.columns), frame.columns
        assert type(result).__name__ in repr(result)
    assert {"conversion_mean", "prob_beats_control"} <= set(analysis.to_frame().columns)
    assert {"conversion_mean", "prob_beats_control"} <= set(run.to_frame().columns)
    assert len(plan.to_frame()) == len(plan.to_dict()["curve"]) == len(plan.curve)
    assert "\n" not in repr(plan)


def test_cost_is_estimated_and_a_request_too_large_refused() -> None:
    from funnelsim.experiment.cost import TooLargeError, check_cost

    scenario = funnelsim.load_scenario(ROOT / "scenarios" / "checkout.yaml")
    cost = funnelsim.estimate_cost(scenario, 10)
    visitors = scenario.traffic.visitors_per_day * scenario.traffic.days
    assert cost.replications == 10 and cost.visitors == visitors
    huge = scenario.with_overrides({"traffic.visitors_per_day": 5e11})
    with pytest.raises(TooLargeError) as refused:
        check_cost(huge, 10)
    assert refused.value.field == "allow_large" and "--" not in str(refused.value)
