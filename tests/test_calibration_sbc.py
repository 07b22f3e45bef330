"""Simulation-based calibration: over 100 fits of data drawn from the priors the ranks
of the truths are uniform and the 90% intervals cover them 90% of the time, with the
same numbers on every executor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from funnelsim.analysis.models import SamplerSettings
from funnelsim.calibration.api import read_counts
from funnelsim.calibration.model import control_of, observed_data
from funnelsim.calibration.sbc import BINS, RANK_DRAWS, SBCResult, simulation_based_calibration
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.scenario import load_scenario

SCENARIO = """name: sbc
traffic: {visitors_per_day: 1000, days: 1}
segments:
  new: {share: 0.5, intent: 0.7}
  returning: {share: 0.5, intent: 1.5}
stages:
  - name: product
    rate: {uncertain: beta, mean: 0.4, sd: 0.15}
  - name: checkout
    rate: {uncertain: uniform, low: 0.3, high: 0.9}
value: {order_value: 50}
"""
SHAPE = "segment,product,checkout,purchase\nnew,300,0,0\nreturning,300,0,0\n"
FITS = 100
SEED = 11


def test_rank_histogram_and_its_test() -> None:
    ranks = np.arange(100).reshape(-1, 1) * (RANK_DRAWS + 1) // 100
    result = SBCResult(
        keys=("x",),
        seed=0,
        ranks=ranks,
        covered=np.arange(100).reshape(-1, 1) < 90,
        divergences=np.zeros(100, dtype=np.int64),
    )
    assert result.histogram().tolist() == [[10] * BINS]
    assert result.uniformity()[0] == pytest.approx(1.0)
    assert result.coverage()[0] == pytest.approx(0.9)
    piled = SBCResult(
        ("x",), 0, np.zeros((100, 1), dtype=np.int64), result.covered, result.divergences
    )
    assert piled.uniformity()[0] < 1e-50  # every rank in the first bin


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sbc")
    (folder / "sbc.yaml").write_text(SCENARIO, encoding="utf-8")
    (folder / "shape.csv").write_text(SHAPE, encoding="utf-8")
    return folder / "sbc.yaml", folder / "shape.csv"


@pytest.fixture(scope="module")
def report(files: tuple[Path, Path]) -> dict:  # type: ignore[type-arg]
    """``funnelsim calibrate --sbc 100`` on two local processes: sbc.json."""
    scenario, shape = files
    out = scenario.parent / "out"
    args = ["calibrate", str(scenario), "--data", str(shape), "--out", str(out)]
    args += ["--sbc", str(FITS), "--draws", "100", "--chains", "2", "--seed", str(SEED)]
    result = CliRunner().invoke(main, [*args, "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "rank uniformity" in result.output
    return json.loads((out / "sbc.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.slow
def test_ranks_are_uniform_and_intervals_cover_at_their_level(report: dict) -> None:  # type: ignore[type-arg]
    assert report["fits"] == FITS
    # 3 binomial standard errors of 100 fits at 90%: 9 fits
    tolerance = 3 * math.sqrt(FITS * 0.9 * 0.1) / FITS
    for key, summary in report["assumptions"].items():
        assert sum(summary["rank_histogram"]) == FITS
        assert summary["uniformity_p_value"] > 0.001, (key, summary["rank_histogram"])
        assert abs(summary["coverage"] - 0.9) <= tolerance, (key, summary["coverage"])


@pytest.mark.slow
@pytest.mark.parametrize("dask", [None, "local"])
def test_every_executor_gives_the_same_fits(
    report: dict,  # type: ignore[type-arg]
    files: tuple[Path, Path],
    dask: str | None,
) -> None:
    """The first 3 fits again, here or on a Dask cluster: the same ranks as the first 3
    of the 100 on two processes (each fit's seed is the same SeedSequence child)."""
    if dask is not None:
        pytest.importorskip("distributed")
    scenario_path, shape = files
    scenario = load_scenario(scenario_path)
    observed = observed_data(scenario, read_counts(shape), False, ())
    assert observed[0].terms.stages == tuple(control_of(scenario).stage_names)
    settings = SamplerSettings(draws=100, tune=100, chains=2, seed=SEED)
    execution = Execution(workers=2, dask=dask) if dask else Execution(workers=1)
    again = simulation_based_calibration(observed, 3, settings, execution)
    first = np.array([summary["ranks"][:3] for summary in report["assumptions"].values()]).T
    assert again.ranks.tolist() == first.tolist()
