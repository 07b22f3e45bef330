"""A scenario pointing to a posterior's joint draws (``posterior: posterior.nc``): every
command's worlds take whole draws, so the posterior's correlations are kept; the same
seed gives the same worlds serial or pooled; a bad posterior is one located line."""

from __future__ import annotations

import math
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from click.testing import CliRunner

import funnelsim
from conftest import in_process_dask
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.scenario import load_scenario
from funnelsim.worlds import sample_worlds

CORRELATION = -0.9
LANDING, CART = "stages.landing.rate", "stages.cart.rate"
JOINT = """name: joint
seed: 4
traffic: {visitors_per_day: 2000, days: 1}
stages:
  - name: landing
    rate: {uncertain: beta, mean: 0.5, sd: 0.05}
  - name: cart
    rate: {uncertain: beta, mean: 0.3, sd: 0.05}
  - name: checkout
    rate: 0.7
    friction: {form_fields: 12}
value: {order_value: 50}
variants:
  control: {}
  short_form: {stages.checkout.friction.form_fields: 8}
experiment: {worlds: 512}
posterior: posterior.nc
"""
QUEUE = """name: queue
seed: 2
traffic: {visitors_per_day: 150, days: 2}
resources:
  reps: {capacity: 1, service_min: {dist: exponential, mean: {uncertain: uniform, low: 4, high: 8}}}
stages:
  - {name: enquiry, rate: {uncertain: beta, mean: 0.3, sd: 0.05}}
  - name: call
    rate: 0.5
    resource: reps
    patience_min: {dist: exponential, mean: 30}
value: {order_value: 100}
variants:
  control: {}
  two_reps: {resources.reps.capacity: 2}
experiment: {replications: 4}
posterior: draws/posterior.nc
"""


def _correlated(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two standard normal arrays with correlation CORRELATION."""
    z1, z2 = rng.standard_normal((2, *shape))
    return z1, CORRELATION * z1 + math.sqrt(1 - CORRELATION**2) * z2


def _write_posterior(path: Path, draws: dict[str, np.ndarray]) -> Path:
    """An InferenceData with ``draws`` (chain, draw) and a derived quantity with one more
    dimension (as calibrate's ``continue``), which is not an assumption."""
    chains, count = next(iter(draws.values())).shape
    posterior = {**draws, "continue": np.full((chains, count, 3), 0.5)}
    path.parent.mkdir(parents=True, exist_ok=True)
    az.from_dict(posterior=posterior).to_netcdf(str(path))
    return path


@pytest.fixture(scope="module")
def joint_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JOINT beside a posterior.nc of 2 x 1,000 draws of its two rates, correlated."""
    folder = tmp_path_factory.mktemp("joint")
    z1, z2 = _correlated(np.random.default_rng(7), (2, 1000))
    _write_posterior(folder / "posterior.nc", {LANDING: 0.5 + 0.05 * z1, CART: 0.3 + 0.05 * z2})
    scenario = folder / "joint.yaml"
    scenario.write_text(JOINT, encoding="utf-8")
    return scenario


def _pairs(worlds: funnelsim.Worlds) -> np.ndarray:
    return worlds.values[:, [worlds.keys.index(LANDING), worlds.keys.index(CART)]]


def test_run_worlds_keep_the_posteriors_correlation(joint_scenario: Path) -> None:
    scenario = load_scenario(joint_scenario)
    joint = scenario.assumptions[0].joint
    assert joint is not None and set(joint.keys) == {LANDING, CART}  # not 'continue'
    draws = np.column_stack([joint.column(LANDING), joint.column(CART)])
    result = funnelsim.run(joint_scenario, replications=2)
    assert result.assumptions is not None
    worlds = result.assumptions.values.worlds
    pairs = _pairs(worlds)
    n = len(pairs)
    assert n == 512
    # every world is one whole draw, no draw twice (512 of 2,000 rows)
    rows = {tuple(row) for row in draws.tolist()}
    assert all(tuple(pair) in rows for pair in pairs.tolist())
    assert len({tuple(pair) for pair in pairs.tolist()}) == n
    # the worlds' correlation is the draws' within 3 standard errors of a sample
    # correlation of n pairs, (1 - r^2) / sqrt(n)
    r_draws = np.corrcoef(draws, rowvar=False)[0, 1]
    r_worlds = np.corrcoef(pairs, rowvar=False)[0, 1]
    assert abs(r_worlds - r_draws) < 3 * (1 - r_draws**2) / math.sqrt(n)
    # the marginal specs alone (no posterior) draw them independently: correlation 0
    # within 3 standard errors, 1 / sqrt(n), far from the draws' -0.9
    marginal = joint_scenario.with_name("marginal.yaml")
    marginal.write_text(JOINT.replace("posterior: posterior.nc\n", ""), encoding="utf-8")
    independent = _pairs(sample_worlds(load_scenario(marginal), n, 4))
    assert abs(np.corrcoef(independent, rowvar=False)[0, 1]) < 3 / math.sqrt(n)
    # and the run says where its worlds come from
    assert result.to_dict()["assumptions"]["joint_draws"] == {joint.source: [LANDING, CART]}
    printed = CliRunner().invoke(main, ["run", str(joint_scenario), "--replications", "2"])
    words = " ".join(printed.output.split())
    assert f"({LANDING}, {CART}: each world takes one joint draw of {joint.source}" in words


def test_worlds_are_the_same_for_the_same_seed_and_change_with_it(joint_scenario: Path) -> None:
    scenario = load_scenario(joint_scenario)
    first, again = sample_worlds(scenario, 64, 3), sample_worlds(scenario, 64, 3)
    assert np.array_equal(first.values, again.values)
    assert not np.array_equal(first.values, sample_worlds(scenario, 64, 4).values)
    # more worlds than draws: every draw once before any twice
    many = _pairs(sample_worlds(scenario, 2500, 3))
    assert len({tuple(p) for p in many[:2000].tolist()}) == 2000


def test_pooled_and_dask_runs_equal_serial_on_simulated_worlds(tmp_path: Path) -> None:
    """A queue's worlds are simulated, on the pool or Dask when there is one: the same
    worlds and numbers."""
    service = "resources.reps.service_min.mean"
    z1, z2 = _correlated(np.random.default_rng(3), (2, 50))
    _write_posterior(
        tmp_path / "draws" / "posterior.nc",
        {"stages.enquiry.rate": 0.3 + 0.04 * z1, service: 6.0 + 0.8 * z2},
    )
    scenario = tmp_path / "queue.yaml"
    scenario.write_text(QUEUE, encoding="utf-8")
    serial = funnelsim.run(scenario)
    pooled = funnelsim.run(scenario, execution=Execution(workers=2))
    assert serial.assumptions is not None and pooled.assumptions is not None
    assert serial.assumptions.simulated
    assert np.array_equal(serial.assumptions.values.values, pooled.assumptions.values.values)
    assert np.array_equal(
        serial.assumptions.values.worlds.values, pooled.assumptions.values.worlds.values
    )
    assert serial.to_dict() == pooled.to_dict()
    with in_process_dask() as client:
        on_dask = funnelsim.run(scenario, execution=Execution(workers=2, dask=client))
    assert on_dask.to_dict() == serial.to_dict()


def test_sensitivity_says_it_treats_joint_draws_as_independent(joint_scenario: Path) -> None:
    result = funnelsim.sensitivity(joint_scenario, samples=256)
    assert "independent inputs" in result.note
    assert f"strongest correlation {CORRELATION:+.2f}" in result.note
    assert result.to_dict()["note"] == result.note
    printed = CliRunner().invoke(main, ["sensitivity", str(joint_scenario), "--samples", "256"])
    assert printed.exit_code == 0, printed.output
    assert "Sobol indices need independent inputs" in " ".join(printed.output.split())
    # the indices are those of the marginal specs: the same as without the posterior
    marginal = joint_scenario.with_name("marginal.yaml")
    marginal.write_text(JOINT.replace("posterior: posterior.nc\n", ""), encoding="utf-8")
    alone = funnelsim.sensitivity(marginal, samples=256)
    assert alone.note == ""
    assert alone.to_dict()["indices"] == result.to_dict()["indices"]


def test_plan_and_sweep_take_the_joint_worlds(joint_scenario: Path) -> None:
    """plan's value of information draws run's worlds; a sweep point keeps the draws."""
    from funnelsim.propagation import value_worlds

    scenario = load_scenario(joint_scenario)
    valued = value_worlds(scenario, 2, scenario.seed)
    assert valued is not None
    run_worlds = funnelsim.run(joint_scenario, replications=2).assumptions.values  # type: ignore[union-attr]
    assert np.array_equal(valued.worlds.values, run_worlds.worlds.values)
    swept = scenario.with_overrides({"stages.checkout.rate": 0.6})
    assert np.array_equal(sample_worlds(swept, 32, 1).values, sample_worlds(scenario, 32, 1).values)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "posterior.nc: no such file"),
        ("garbage", "not a NetCDF file with a posterior group"),
        ("unknown", "variable 'stages.basket.rate' names no assumption of the scenario"),
        ("outside", "variable 'stages.cart.rate' has draws outside its valid range"),
    ],
)
def test_a_bad_posterior_is_one_located_line(tmp_path: Path, case: str, message: str) -> None:
    scenario = tmp_path / "joint.yaml"
    scenario.write_text(JOINT, encoding="utf-8")
    good = 0.3 + np.zeros((1, 10))
    if case == "garbage":
        (tmp_path / "posterior.nc").write_bytes(b"not a netcdf file\n")
    elif case != "missing":
        name = "stages.basket.rate" if case == "unknown" else CART
        _write_posterior(tmp_path / "posterior.nc", {name: good + (case == "outside")})
    line = JOINT.splitlines().index("posterior: posterior.nc") + 1
    result = CliRunner().invoke(main, ["run", str(scenario), "--replications", "2"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {scenario}:{line}: posterior: ")
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_variant_or_sweep_cannot_set_the_posterior(tmp_path: Path) -> None:
    scenario = tmp_path / "joint.yaml"
    text = JOINT.replace("short_form: {", "short_form: {posterior: other.nc, ")
    scenario.write_text(text, encoding="utf-8")
    _write_posterior(tmp_path / "posterior.nc", {CART: 0.3 + np.zeros((1, 10))})
    result = CliRunner().invoke(main, ["run", str(scenario)])
    assert result.exit_code == 2
    assert "variants.short_form.posterior: the posterior's draws are read with" in result.output
