"""Calibration: the model's continue probabilities are the engines', a synthetic funnel
is recovered, real data are reproduced, and run on a calibrated scenario is narrower."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import funnelsim
from conftest import with_calibrated_values
from funnelsim.calibration.fit import LEVEL, calibrated_text, fitted_spec, with_posterior
from funnelsim.calibration.model import (
    CalibrationError,
    continue_probabilities,
    control_of,
    expected_continue,
    funnel_terms,
    mean_cell_continue,
)
from funnelsim.cli import main
from funnelsim.engine.model import compile_funnel
from funnelsim.scenario import load_scenario, parse_scenario

TEMPLATES = Path(funnelsim.__file__).parent / "templates"
AB_FUNNEL = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "marketing_ab_funnel.csv"
)
FAST = {"draws": 300, "chains": 2, "seed": 3}

SYNTHETIC = """name: synthetic
seed: 1
traffic: {visitors_per_day: 3000, days: 1}
segments:
  mobile:  {share: 0.6, page_load_s: 4.0}
  desktop: {share: 0.4, page_load_s: 1.5}
stages:
  - name: landing
    rate: {uncertain: beta, mean: 0.5, sd: 0.15}   # the landing page's own rate
    friction: {page_load: true}
  - name: cart
    rate:
      uncertain: uniform
      low: 0.1
      high: 0.6
  - name: checkout
    rate: 0.7
value: {order_value: 50}
variants:
  control: {}
  faster: {segments.mobile.page_load_s: 1.5}
experiment: {assumption_level: 0.9}
"""
TRUTH = {
    "stages.landing.rate": 0.55,
    "stages.cart.rate": 0.31,
    "coefficients.page_load.max_extra": 1.6,
}


@pytest.mark.parametrize("template", ["checkout.yaml", "page_speed.yaml"])
def test_continue_probabilities_equal_the_engines(template: str) -> None:
    """Random base rates and friction coefficients through the NumPy engine's compiled
    funnel (averaged over the payment and contact preferences) and through the shared
    expression, in NumPy and PyTensor."""
    import pytensor.tensor as pt

    control = control_of(load_scenario(TEMPLATES / template))
    terms = funnel_terms(control)
    assert any(terms.uses(slot) for slot in range(len(terms.stages), len(terms.values)))
    rng = np.random.default_rng(7)
    for _ in range(5):
        values = rng.uniform(0.01, 1.0, len(terms.values))
        values[len(terms.stages)] *= 3.0  # page_load.max_extra: up to 3
        engine = mean_cell_continue(compile_funnel(with_calibrated_values(control, values)))
        numpy_side = continue_probabilities(values, terms)
        tensor = pt.as_tensor_variable(values)
        pytensor_side = continue_probabilities(tensor, terms, pt).eval()
        np.testing.assert_allclose(numpy_side, engine, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(pytensor_side, engine, rtol=1e-12, atol=1e-15)


def test_expected_continue_weights_cells_by_who_survived() -> None:
    # two cells, equal shares; stage 1 keeps 0.8 and 0.2, stage 2 keeps 0.5 and 1.0
    p = np.array([[[0.8, 0.2]], [[0.5, 1.0]]])
    q = expected_continue(p, np.array([[0.5, 0.5], [1.0, 0.0]]))
    # of those reaching stage 2 (0.4 + 0.1), 0.4 * 0.5 + 0.1 * 1.0 continue
    np.testing.assert_allclose(q, [[0.5, 0.3 / 0.5], [0.8, 0.5]])


def test_queue_stage_is_refused_by_name() -> None:
    scenario = control_of(load_scenario(TEMPLATES / "leads.yaml"))
    queued = next(st for st in scenario.stages if st.resource is not None)
    with pytest.raises(CalibrationError, match=f"stage '{queued.name}' waits for resource"):
        funnel_terms(scenario)


def test_calibrated_text_replaces_flow_and_block_specs_and_keeps_comments() -> None:
    bounds = {a.key: a.bounds for a in parse_scenario(SYNTHETIC).assumptions}
    fitted = {k: fitted_spec(v, 0.01, bounds[k]) for k, v in TRUTH.items()}
    text = calibrated_text(SYNTHETIC, fitted)
    assert "# the landing page's own rate" in text
    scenario = parse_scenario(text)
    specs = {a.key: a.spec for a in scenario.assumptions}
    assert specs["stages.landing.rate"].mean == pytest.approx(0.55)
    assert specs["stages.cart.rate"].sd == pytest.approx(0.01)
    assert yaml.safe_load(text)["stages"][2] == {"name": "checkout", "rate": 0.7}
    # the default coefficient's documented range is replaced by its fitted spec (a
    # normal, truncated to the field's bounded range)
    max_extra = next(a for a in scenario.assumptions if a.key == "coefficients.page_load.max_extra")
    assert not max_extra.default
    assert (max_extra.spec.uncertain, max_extra.spec.mean) == ("normal", 1.6)
    # a file with a coefficients section of its own gets the fitted one merged in
    own = SYNTHETIC + "coefficients: {form_fields: {free_fields: 6}}\n"
    merged = parse_scenario(calibrated_text(own, fitted))
    assert merged.coefficients.form_fields.free_fields == 6
    assert merged.coefficients.page_load.max_extra == pytest.approx(1.6)


def test_fitted_spec_exists_for_a_posterior_piled_at_one() -> None:
    spec = fitted_spec(0.9999, 0.02)
    parse_scenario(SYNTHETIC.replace("{uncertain: beta, mean: 0.5, sd: 0.15}", json.dumps(spec)))


def _synthetic_counts(path: Path) -> Path:
    """Counts per segment drawn from the model at the true values (the engine's
    per-cell probabilities, Binomial stage by stage)."""
    terms = funnel_terms(control_of(parse_scenario(SYNTHETIC)))
    values = terms.values.copy()
    for field, truth in TRUTH.items():
        values[terms.slots[field]] = truth
    p = continue_probabilities(values, terms)
    rng = np.random.default_rng(11)
    rows = ["segment,landing,cart,checkout,purchase"]
    for g, segment in enumerate(terms.segments):
        reached = [4000]
        for s in range(len(terms.stages)):
            reached.append(int(rng.binomial(reached[-1], p[s, g, 0])))
        rows.append(",".join([segment, *map(str, reached)]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``funnelsim calibrate`` on the synthetic counts: (scenario, data, out)."""
    folder = tmp_path_factory.mktemp("calibrate")
    scenario = folder / "synthetic.yaml"
    scenario.write_text(SYNTHETIC, encoding="utf-8")
    data = _synthetic_counts(folder / "counts.csv")
    out = folder / "out"
    args = ["calibrate", str(scenario), "--data", str(data), "--out", str(out)]
    args += ["--report", str(out / "report.html")]
    args += [
        "--stage-columns",
        "landing,cart,checkout,purchase",
        "--draws",
        "300",
        "--chains",
        "2",
        "--seed",
        "3",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "stages.landing.rate" in result.output
    return scenario, data, out


def test_synthetic_rates_are_recovered(synthetic_run: tuple[Path, Path, Path]) -> None:
    _, _, out = synthetic_run
    report = json.loads((out / "calibration.json").read_text())
    assert report["interval_level"] == LEVEL
    assert report["diagnostics"]["divergences"] == 0
    for key, truth in TRUTH.items():
        update = report["assumptions"][key]
        low, high = update["posterior_interval"]
        assert low <= truth <= high, (key, low, high)
        assert update["posterior_sd"] < update["prior_sd"] / 5
    # 6 replicated counts (the top one is given) at 90%: with a calibrated check, 3 or
    # more outside has probability below 2% (Binomial(6, 0.1), the counts taken apart)
    outside = [row for row in report["posterior_predictive"] if row["outside"]]
    assert len(outside) <= 2, outside
    assert (out / "posterior.nc").stat().st_size > 0


def test_report_shows_the_calibration_tables(synthetic_run: tuple[Path, Path, Path]) -> None:
    from funnelsim.formatting import assumption_value

    _, _, out = synthetic_run
    html = (out / "report.html").read_text()
    report = json.loads((out / "calibration.json").read_text())
    for key, update in report["assumptions"].items():
        low, high = update["posterior_interval"]
        shown = f"{assumption_value(update['posterior_mean'])}<br><small>"
        assert f"<td>{key}</td>" in html
        assert shown + f"[{assumption_value(low)}, {assumption_value(high)}]</small>" in html
    assert "Posterior predictive check: data" in html
    assert "coefficients.form_fields.hazard_per_field" in html  # kept at its prior
    assert "Divergent transitions" in html


def test_calibrate_refuses_to_overwrite_and_explains_bad_data(
    synthetic_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scenario, data, out = synthetic_run
    before = (out / "calibration.json").read_bytes()
    again = CliRunner().invoke(
        main, ["calibrate", str(scenario), "--data", str(data), "--out", str(out)]
    )
    assert again.exit_code == 2
    assert "use --force" in again.output
    bad = tmp_path / "bad.csv"
    bad.write_text("landing,cart,checkout,converted\n10,20,1,1\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["calibrate", str(scenario), "--data", str(bad), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "bad.csv:2: column 'cart': 20 reached it" in result.output
    assert (out / "calibration.json").read_bytes() == before
    assert not (tmp_path / "o").exists()


def test_run_on_the_calibrated_scenario_is_narrower(synthetic_run: tuple[Path, Path, Path]) -> None:
    scenario, _, out = synthetic_run
    calibrated = load_scenario(out / "calibrated.yaml")
    fitted = set(json.loads((out / "calibration.json").read_text())["assumptions"])
    joint = {a.key: a.joint for a in calibrated.assumptions if a.joint is not None}
    assert set(joint) == fitted  # every calibrated assumption from posterior.nc's draws
    assert next(iter(joint.values())).source == str(out / "posterior.nc")
    widths, worlds = {}, {}
    for name, path in (("prior", scenario), ("posterior", out / "calibrated.yaml")):
        effects = funnelsim.run(path, replications=4).assumptions
        assert effects is not None and effects.values is not None
        widths[name] = effects.effects["faster"]["conversion"].spread
        worlds[name] = effects.values.worlds
    assert widths["posterior"] < widths["prior"] / 2
    # the landing rate and the page-load coefficient are strongly correlated in the
    # posterior (only their product is seen); run's worlds keep that correlation, within
    # 3 standard errors of a sample correlation of n worlds, (1 - r^2) / sqrt(n)
    pair = ["stages.landing.rate", "coefficients.page_load.max_extra"]
    draws = np.column_stack([joint[key].column(key) for key in pair])  # type: ignore[union-attr]
    r_draws = np.corrcoef(draws, rowvar=False)[0, 1]
    taken = worlds["posterior"].values[:, [worlds["posterior"].keys.index(k) for k in pair]]
    r_worlds = np.corrcoef(taken, rowvar=False)[0, 1]
    assert abs(r_draws) > 0.5
    assert abs(r_worlds - r_draws) < 3 * (1 - r_draws**2) / math.sqrt(len(taken))


def _observed_mix(data: Path, shares: dict[str, float]) -> tuple[float, float]:
    """Each segment's observed conversion weighted by the scenario's shares, and the
    standard error of that mix."""
    rows = [line.split(",") for line in data.read_text().splitlines()[1:]]
    observed = sum(shares[r[0]] * int(r[-1]) / int(r[1]) for r in rows)
    variance = sum(
        shares[r[0]] ** 2 * (p := int(r[-1]) / int(r[1])) * (1 - p) / int(r[1]) for r in rows
    )
    return observed, math.sqrt(variance)


def test_calibrated_baseline_conversion_matches_the_observed(
    synthetic_run: tuple[Path, Path, Path],
) -> None:
    """The calibrated scenario's control converts as the data did: at its central
    (posterior mean) values within 3 standard errors of the observed mix, and the
    observed mix lies inside run's interval over the posterior's joint draws."""
    from funnelsim.worlds import central_world, world_metrics

    _, data, out = synthetic_run
    calibrated = load_scenario(out / "calibrated.yaml")
    shares = {name: segment.share for name, segment in calibrated.segments.items()}
    observed, standard_error = _observed_mix(data, shares)
    baseline = world_metrics(calibrated, central_world(calibrated))[0, 0]
    assert abs(baseline - observed) < 3 * standard_error, (baseline, observed)
    result = funnelsim.run(calibrated, replications=2)
    assert result.assumptions is not None and result.assumptions.values is not None
    control = result.assumptions.values.metric("conversion")[:, 0]
    level = calibrated.experiment.assumption_level
    low, high = np.quantile(control, [(1 - level) / 2, (1 + level) / 2])
    assert low <= observed <= high, (low, observed, high)


def test_the_calibrated_file_points_to_its_posterior() -> None:
    appended = with_posterior("name: x  # kept\n", "posterior.nc")
    assert appended.startswith("name: x  # kept\n")
    assert appended.endswith("\nposterior: posterior.nc\n")
    replaced = with_posterior("posterior: old.nc  # earlier\nname: x\n", "posterior.nc")
    assert replaced == "posterior: posterior.nc  # earlier\nname: x\n"


FIVE_STAGES = (
    """name: marketing control arm
traffic: {visitors_per_day: 3000, days: 1}
stages:
"""
    + "".join(
        f"  - name: step{k}\n    rate: {{uncertain: beta, mean: 0.5, sd: 0.2}}\n"
        for k in range(1, 6)
    )
    + "value: {order_value: 50}\n"
)


@pytest.mark.skipif(not AB_FUNNEL.exists(), reason="shared data set absent")
def test_marketing_control_arm_is_reproduced(tmp_path: Path) -> None:
    scenario = tmp_path / "five.yaml"
    scenario.write_text(FIVE_STAGES, encoding="utf-8")
    steps = [*(f"step{k}" for k in range(1, 6)), "converted"]
    result = funnelsim.calibrate(
        scenario, AB_FUNNEL, stage_columns=steps, arm=("test group", "a"), **FAST
    )
    check = result.predictive
    assert check.observed.tolist() == [[2874, 2874, 1835, 1778, 656, 656]]
    assert not check.outside.any(), (check.low, check.high)
    frame = result.to_frame()
    assert list(frame.index) == [f"stages.step{k}.rate" for k in range(1, 6)]
    assert (frame["narrowed"] > 0.5).all()
    assert "step3" in repr(result)


def test_cli_refuses_a_queue_stage_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "counts.csv"
    data.write_text("a,b\n10,5\n", encoding="utf-8")
    args = ["calibrate", str(TEMPLATES / "leads.yaml"), "--data", str(data)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "waits for resource" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
