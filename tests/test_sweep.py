"""Parameter sweeps: grid parsing, flat and monotone curves, executors, files, CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import MINIMAL, SCENARIOS
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.experiment import run_experiment
from funnelsim.scenario import Scenario, load_scenario, parse_scenario
from funnelsim.sweeps import (
    Param,
    SweepError,
    SweepResult,
    grid,
    only_variants,
    parse_param,
    range_values,
    run_sweep,
)

FORM = (
    MINIMAL.replace(
        "  - name: checkout\n    rate: 0.4\n",
        "  - name: checkout\n    rate: 0.4\n    friction: {form_fields: 12}\n",
    )
    + "variants:\n  control: {}\n  short_form: {stages.checkout.friction.form_fields: 6}\n"
)
FIELDS = "stages.checkout.friction.form_fields"


@pytest.fixture(scope="module")
def form_scenario() -> Scenario:
    return parse_scenario(FORM)


def _series(result: SweepResult, variant: str, metric: str, field: str = "mean") -> np.ndarray:
    return np.array(
        [getattr(p.metrics[metric], field) for p in result.points if p.variant == variant]
    )


# --------------------------------------------------------------------------- parsing


def test_range_includes_both_ends_and_keeps_integers() -> None:
    assert range_values("3", "20", "1") == tuple(range(3, 21))
    assert range_values("1", "2", "0.25") == (1.0, 1.25, 1.5, 1.75, 2.0)
    assert range_values("0.1", "0.3", "0.1") == (0.1, 0.2, 0.3)  # no 0.30000000000000004


def test_parse_param_reads_ranges_and_yaml_lists(form_scenario: Scenario) -> None:
    assert parse_param(f"{FIELDS}=3:9:3", form_scenario) == Param(FIELDS, (3, 6, 9))
    assert parse_param(f"{FIELDS}=4:6", form_scenario) == Param(FIELDS, (4, 5, 6))
    wall = "stages.checkout.friction.login_wall"
    assert parse_param(f"{wall}=none, required", form_scenario).values == ("none", "required")
    assert parse_param("stages.landing.rate=0.2,0.5", form_scenario).values == (0.2, 0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{FIELDS}", "expected PATH=START:STOP:STEP"),
        ("stages.checkout.friction.fields=1:3", "unknown field 'fields'"),
        ("stages.nowhere.rate=0.1", "unknown name 'nowhere'"),
        (f"{FIELDS}=9:3", "stop 3 is below start 9"),
        (f"{FIELDS}=1:9:0", "step must be positive"),
        (f"{FIELDS}=-2:3", "must be greater than or equal to 0"),
        ("stages.landing.rate=0.5,1.5", "stages.landing.rate=1.5:"),
        ("stages.checkout.friction.login_wall=none,sometimes", "must be 'none'"),
    ],
)
def test_parse_param_errors_are_one_line(form_scenario: Scenario, text: str, message: str) -> None:
    with pytest.raises(SweepError, match=message) as error:
        parse_param(text, form_scenario)
    assert "\n" not in str(error.value)


def test_grid_is_the_product_with_the_last_parameter_fastest() -> None:
    points = grid([Param("a", (1, 2)), Param("b", ("x", "y", "z"))])
    assert len(points) == 6
    assert points[1] == {"a": 1, "b": "y"} and points[3] == {"a": 2, "b": "x"}


def test_only_variants_keeps_the_named_ones_control_first(form_scenario: Scenario) -> None:
    assert only_variants(form_scenario, ["short_form"]).variant_names == ["short_form"]
    with pytest.raises(SweepError, match="no such variant"):
        only_variants(form_scenario, ["long_form"])


# --------------------------------------------------------------------------- curves


def test_parameter_without_effect_gives_a_flat_curve(form_scenario: Scenario) -> None:
    """Conversion does not depend on the traffic volume where no resource is shared.

    Flat means every two points' 95% intervals overlap: each is a t interval over
    replications (mean +- t SE), so two points of one true value overlap unless their
    difference exceeds t (SE_i + SE_j), at least 1.4 times its own 95% bound."""
    param = parse_param("traffic.visitors_per_day=250,500,1000,2000", form_scenario)
    result = run_sweep(form_scenario, [param], ["control"], 12, Execution(seed=3))
    mean, low, high = (_series(result, "control", "conversion", f) for f in ("mean", "low", "high"))
    assert np.all(low[:, None] <= high[None, :])
    assert np.unique(mean).size == 4  # different visitors at each point, not one number


def test_form_fields_give_a_monotone_curve(form_scenario: Scenario) -> None:
    """More fields never convert more (common random numbers couple the points
    monotonely), and 20 fields convert clearly less than 3 (intervals apart)."""
    result = run_sweep(
        form_scenario,
        [parse_param(f"{FIELDS}=3:20:1", form_scenario)],
        replications=6,
        execution=Execution(seed=5),
    )
    for metric in ("conversion", "revenue_per_visitor", "clv_per_visitor"):
        control = _series(result, "control", metric)
        assert np.all(np.diff(control) <= 1e-12), metric
        assert (
            _series(result, "control", metric, "high")[-1]
            < _series(result, "control", metric, "low")[0]
        )
        # the variant sets the swept path itself, so its curve does not move
        assert np.unique(_series(result, "short_form", metric)).size == 1


def test_a_sweep_point_equals_a_run_with_the_same_overrides(form_scenario: Scenario) -> None:
    result = run_sweep(form_scenario, [Param(FIELDS, (15,))], None, 4, Execution(seed=9))
    run = run_experiment(form_scenario.with_overrides({FIELDS: 15}), 4, Execution(seed=9))
    for point, summary in zip(result.points, run.variants, strict=True):
        assert point.variant == summary.name
        assert point.metrics["conversion"] == pytest.approx(summary.metrics["conversion"])


def test_results_are_identical_on_every_executor(form_scenario: Scenario) -> None:
    params = [Param(FIELDS, (8, 16)), Param("stages.landing.rate", (0.4, 0.6))]
    serial = run_sweep(form_scenario, params, None, 4, Execution(seed=2, workers=1))
    pooled = run_sweep(form_scenario, params, None, 4, Execution(seed=2, workers=2))
    on_dask = run_sweep(form_scenario, params, None, 4, Execution(seed=2, dask="local"))
    assert serial.points == pooled.points == on_dask.points


def test_too_large_a_sweep_is_refused(form_scenario: Scenario) -> None:
    with pytest.raises(SweepError, match="narrow the grid"):
        run_sweep(form_scenario, [Param(FIELDS, tuple(range(1000)))], replications=100)


# --------------------------------------------------------------------------- CLI and files


def _cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def test_cli_sweep_writes_csv_and_png_and_refuses_to_overwrite(
    write_scenario, tmp_path: Path
) -> None:
    path = write_scenario(FORM)
    out = tmp_path / "out"
    args = [
        "sweep",
        str(path),
        "--param",
        f"{FIELDS}=4:16:6",
        "--replications",
        "3",
        "--workers",
        "1",
        "--out",
        str(out),
    ]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert "Sweep of minimal" in result.output and "wrote" in result.output
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [(r[FIELDS], r["variant"]) for r in rows][:2] == [("4", "control"), ("4", "short_form")]
    assert len(rows) == 6 and float(rows[0]["conversion_low"]) <= float(rows[0]["conversion_mean"])
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = _cli(*args)
    assert again.exit_code == 2 and "use --force" in again.output
    assert _cli(*args, "--force", "-q").exit_code == 0


def test_cli_two_parameters_draw_a_heat_map(write_scenario, tmp_path: Path) -> None:
    path = write_scenario(FORM)
    result = _cli(
        "sweep",
        str(path),
        "--param",
        f"{FIELDS}=6,18",
        "--param",
        "stages.checkout.friction.login_wall=none,required",
        "--variant",
        "control",
        "--replications",
        "2",
        "--workers",
        "1",
        "-q",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((tmp_path / "sweep.csv").open()))) == 4
    assert (tmp_path / "sweep.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "stages.checkout.rate=2"], "--param stages.checkout.rate=2: "),
        (["--param", f"{FIELDS}=3", "--variant", "nope"], "--variant nope: no such variant"),
        (["--param", f"{FIELDS}=3", "--dask", "nowhere"], "--dask: expected 'local'"),
        (["--param", f"{FIELDS}=3", "--param", f"{FIELDS}=4"], "a path is given twice"),
    ],
)
def test_cli_sweep_errors_are_one_line(write_scenario, args: list[str], message: str) -> None:
    result = _cli("sweep", str(write_scenario(FORM)), *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_cli_sweep_runs_on_the_aggregate_engine(write_scenario, tmp_path: Path) -> None:
    """The aggregate engine sweeps the same curve as the vectorised one: every point's mean
    conversion agrees within 4 combined standard errors (t-intervals over 20 replications)."""
    path = write_scenario(FORM)
    means = {}
    for engine in ("vectorized", "aggregate"):
        out = tmp_path / engine
        args = ["sweep", str(path), "--param", f"{FIELDS}=6,18", "--variant", "control"]
        result = _cli(*args, "--replications", "20", "--engine", engine, "--out", str(out))
        assert result.exit_code == 0, result.output
        assert f"{engine} engine" in result.output
        rows = list(csv.DictReader((out / "sweep.csv").open()))
        means[engine] = [
            (float(r["conversion_mean"]), float(r["conversion_high"]) - float(r["conversion_low"]))
            for r in rows
        ]
    t_half = 2.093  # t(0.975, 19 degrees of freedom): half-width = t_half x SE
    pairs = zip(means["vectorized"], means["aggregate"], strict=True)
    for (walked, width_w), (counted, width_c) in pairs:
        se = math.hypot(width_w, width_c) / (2 * t_half)
        assert abs(walked - counted) < 4 * se
    assert means["aggregate"][0][0] > means["aggregate"][1][0]  # 18 fields convert less


def test_queues_cannot_be_swept_on_the_vectorized_engine() -> None:
    result = _cli(
        "sweep",
        str(SCENARIOS / "lead_response.yaml"),
        "--param",
        "resources.sales_reps.capacity=1,2",
        "--engine",
        "vectorized",
    )
    assert result.exit_code == 2 and "cannot simulate shared resources" in result.output


def test_shipped_scenario_paths_are_sweepable() -> None:
    checkout = load_scenario(SCENARIOS / "checkout.yaml")
    assert len(parse_param(f"{FIELDS}=3:20:1", checkout).values) == 18
    leads = load_scenario(SCENARIOS / "lead_response.yaml")
    assert parse_param("resources.sales_reps.capacity=1:8", leads).values == tuple(range(1, 9))


def test_docstring_examples_run() -> None:
    import doctest

    from funnelsim import sweeps

    assert doctest.testmod(sweeps).failed == 0
