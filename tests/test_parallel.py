"""Executors: in-process, local pool and Dask give identical results for the same seed."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from conftest import MINIMAL, SCENARIOS, in_process_dask
from funnelsim import parallel
from funnelsim.cli import main
from funnelsim.execution import Execution
from funnelsim.experiment import run_experiment
from funnelsim.parallel import ExecutorError, batches, map_batches, map_measured
from funnelsim.results import results_dict
from funnelsim.scenario import load_scenario, parse_scenario


def _squares(batch: list[int]) -> list[int]:
    return [x * x for x in batch]


@pytest.fixture(scope="module")
def small():
    return load_scenario(SCENARIOS / "checkout.yaml").with_overrides({"traffic.days": 1})


@pytest.fixture(scope="module")
def serial(small):
    return results_dict(run_experiment(small, 8))


def test_batches_keep_order_and_cover_every_item():
    items = list(range(23))
    chunks = batches(items, workers=2, per_worker=3)
    assert [x for chunk in chunks for x in chunk] == items
    assert len(chunks) == 6 and max(map(len, chunks)) - min(map(len, chunks)) <= 4


def test_pool_returns_results_in_order():
    progress: list[int] = []
    assert map_batches(_squares, list(range(50)), workers=2, progress=progress.append) == [
        x * x for x in range(50)
    ]
    assert sum(progress) == 50


def test_pool_and_serial_runs_are_identical(small, serial):
    assert results_dict(run_experiment(small, 8, Execution(workers=2))) == serial
    assert results_dict(run_experiment(small, 8, Execution(workers=None))) == serial


class _Clock:
    """A stand-in for ``time.perf_counter`` that advances only by the work's own seconds,
    so the pool decision does not depend on the load of the machine running the test."""

    now = 0.0

    def perf_counter(self) -> float:
        return self.now


CLOCK = _Clock()


def _process_of(batch: list[float]) -> list[int]:
    """This process's id for each item, each item taking its seconds on ``CLOCK``."""
    CLOCK.now += sum(batch)
    return [os.getpid()] * len(batch)


def test_measured_runs_start_workers_only_when_the_work_pays_for_them(monkeypatch):
    monkeypatch.setattr(parallel, "time", CLOCK)
    progress: list[int] = []
    cheap = map_measured(_process_of, [1e-4] * 64, workers=2, progress=progress.append)
    assert set(cheap) == {os.getpid()} and sum(progress) == 64  # 6 ms left: not worth 0.03 s
    # 64 items in 16 batches of 4, 20 ms each: 1.2 s left after the first batch (its first
    # item alone, then three timed), against about 0.03 s to fork two workers
    costly = map_measured(_process_of, [0.02] * 64, workers=2)
    assert costly[:4] == [os.getpid()] * 4
    assert os.getpid() not in costly[4:]
    assert map_measured(_squares, [], workers=2) == []
    assert map_measured(_squares, [3], workers=2) == [9]


def test_local_dask_cluster_gives_the_local_results(small, serial):
    with in_process_dask() as client:
        on_dask = results_dict(run_experiment(small, 8, Execution(workers=2, dask=client)))
    assert on_dask == serial


def test_without_dask_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    with pytest.raises(ExecutorError, match=r"pip install 'funnelsim\[dask\]'"):
        map_batches(_squares, [1, 2], dask="local")


def test_a_bad_dask_address_is_a_one_line_usage_error(write_scenario):
    with pytest.raises(ExecutorError, match="tcp://HOST:8786"):
        parallel.check_dask_address("localhost")
    path = write_scenario(MINIMAL)
    result = CliRunner().invoke(main, ["run", str(path), "--dask", "localhost", "-q"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: --dask: expected 'local'")
    assert "Traceback" not in result.output


def test_an_unreachable_scheduler_is_reported(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(ExecutorError, match="cannot reach the scheduler"):
        map_batches(_squares, [1], dask="tcp://127.0.0.1:9")


def test_aggregate_engine_from_the_command_line(write_scenario):
    path = write_scenario(MINIMAL)
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(path),
            "--engine",
            "aggregate",
            "--replications",
            "2",
            "--workers",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"engine": "aggregate"' in result.output
    assert parse_scenario(MINIMAL).name in result.output
