"""Ctrl-C during ``funnelsim run``: exit 130, one line saying so, nothing half-written.

A terminal's Ctrl-C signals every process of the foreground group (the command and its
pool workers); ``kill -INT`` signals the command alone. Both must stop the run promptly,
print one line and no traceback, leave no temporary file behind, and leave the results
of an earlier run byte for byte as they were (the interrupted run was given ``--force``,
so only atomic writing protects them).
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import two_arm_scenario
from funnelsim import files, parallel
from funnelsim.cli import interrupts, main

FUNNELSIM = str(Path(sys.executable).parent / "funnelsim")
RESULTS = ("results.json", "summary.csv")
STARTUP_TIMEOUT_S = 120  # generous: the machine is shared; only a hang reaches it
# The uninterrupted run takes about 20 minutes, so a run that ends within STOP_TIMEOUT_S of
# Ctrl-C stopped rather than finishing its queued work first.
STOP_TIMEOUT_S = 60
ANSI_CONTROL = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07)")
SCENARIO = two_arm_scenario("interrupt me", 3, 20000, 20000)


@pytest.fixture
def previous_run(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A scenario file and an output directory holding the results of an earlier run."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "out"
    earlier = CliRunner().invoke(
        main,
        ["run", str(scenario), "--replications", "2", "--workers", "1", "-q", "--out", str(out)],
    )
    assert earlier.exit_code == 0, earlier.output
    return scenario, out, {name: (out / name).read_bytes() for name in RESULTS}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _has_loaded(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def _wait_for(condition: Callable[[], bool], run: Run) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not condition():
        assert run.proc.poll() is None, "the run ended before it was interrupted"
        assert time.monotonic() < deadline, "run did not start"
        time.sleep(0.05)


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


class Run:
    """``funnelsim run`` in a session of its own, its stderr a terminal as for a person at a
    keyboard (so the progress display runs), the terminal read as it fills. One BLAS
    thread, so that the display's refresh thread is the only second thread: it shows
    that replications are running."""

    def __init__(self, scenario: Path, out: Path, workers: int) -> None:
        controller, terminal = pty.openpty()
        self.proc = subprocess.Popen(
            [
                FUNNELSIM,
                "run",
                str(scenario),
                "--workers",
                str(workers),
                "--out",
                str(out),
                "--force",
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            start_new_session=True,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        os.close(terminal)
        self.screen = bytearray()
        self.reader = threading.Thread(target=self._read, args=(controller,), daemon=True)
        self.reader.start()

    def _read(self, controller: int) -> None:
        try:
            while chunk := os.read(controller, 4096):
                self.screen += chunk
        except OSError:  # EIO: the run has closed the terminal
            pass
        finally:
            os.close(controller)

    def finish(self) -> tuple[str, list[str]]:
        """Stdout, and the lines left on the terminal (control sequences removed)."""
        stdout, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        self.reader.join(STOP_TIMEOUT_S)
        text = ANSI_CONTROL.sub("", self.screen.decode(errors="replace"))
        return stdout.decode(), [
            line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()
        ]


@pytest.fixture
def start() -> Iterator[Callable[[Path, Path, int], Run]]:
    """Start runs; kill whatever a failed test leaves running."""
    started: list[Run] = []

    def start_run(scenario: Path, out: Path, workers: int) -> Run:
        started.append(Run(scenario, out, workers))
        return started[-1]

    yield start_run
    for run in started:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.communicate()


def _assert_stopped_cleanly(run: Run, out: Path, before: dict[str, bytes]) -> None:
    children = _children(run.proc.pid)
    stdout, screen = run.finish()
    assert run.proc.returncode == 130, screen
    assert not any("Traceback" in line or "Error" in line for line in [*screen, stdout])
    said = [line for line in screen if "interrupt" in line]
    assert len(said) == 1 and said[0].startswith("interrupted: stopped"), screen
    assert sorted(p.name for p in out.iterdir()) == sorted(RESULTS), "no temporary files"
    assert {name: (out / name).read_bytes() for name in RESULTS} == before
    for child in children:  # the pool's workers are gone, not working on
        assert (
            not Path(f"/proc/{child}").exists()
            or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
        )


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c", "kill-parent"])
def test_interrupting_the_process_pool(previous_run, start, to_group):
    scenario, out, before = previous_run
    run = start(scenario, out, workers=2)
    _wait_for(lambda: len(_children(run.proc.pid)) == 2, run)
    time.sleep(0.5)  # the workers are busy with replications
    if to_group:
        os.killpg(run.proc.pid, signal.SIGINT)
    else:
        run.proc.send_signal(signal.SIGINT)
    _assert_stopped_cleanly(run, out, before)


def test_interrupting_a_serial_run(previous_run, start):
    scenario, out, before = previous_run
    run = start(scenario, out, workers=1)
    _wait_for(lambda: _threads(run.proc.pid) == 2, run)  # the progress display is running
    time.sleep(0.5)
    os.killpg(run.proc.pid, signal.SIGINT)
    _assert_stopped_cleanly(run, out, before)


def test_interrupting_while_libraries_load(previous_run, start):
    scenario, out, before = previous_run
    run = start(scenario, out, workers=1)
    # SciPy's first extension loads as ``run`` imports the simulation, seconds before
    # any replication; Ctrl-C here may surface as an ImportError inside SciPy.
    _wait_for(lambda: _has_loaded(run.proc.pid, "scipy/_lib/_ccallback_c"), run)
    os.killpg(run.proc.pid, signal.SIGINT)
    _assert_stopped_cleanly(run, out, before)


def test_an_interrupt_a_library_swallows_stops_the_run_at_its_next_step(previous_run, monkeypatch):
    """Ctrl-C that some library catches (an interrupted import inside SciPy surfaces as an
    ImportError its fallback catches) still stops ``run``: the next progress step raises
    it, the run exits 130 and the earlier results stay as they were."""
    from funnelsim.experiment import runner

    scenario, out, before = previous_run
    original, calls = runner.replicate, []

    def swallowing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler raises KeyboardInterrupt here
            except KeyboardInterrupt:
                pass  # swallowed
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "replicate", swallowing)
    args = ["run", str(scenario), "--replications", "50", "--workers", "1", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--force"])
    assert result.exit_code == 130, result.output
    first_batch = len(parallel.batches(range(50), workers=1)[0])
    assert "interrupted: stopped" in result.output and len(calls) == first_batch < 50
    assert {name: (out / name).read_bytes() for name in RESULTS} == before
    interrupts.raise_if_interrupted()  # forgotten with the command: the next one runs


def test_an_interrupted_batch_places_no_file(tmp_path):
    old = tmp_path / "results.json"
    old.write_text("old results\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), files.output_batch() as placed:
        with files.atomic_writer(tmp_path / "summary.csv") as stream:
            stream.write("new,summary\n")
        with files.atomic_writer(old) as stream:
            stream.write("new results\n")
        raise KeyboardInterrupt
    assert placed == []
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert old.read_text(encoding="utf-8") == "old results\n"


def test_a_finished_batch_places_every_file(tmp_path):
    with files.output_batch() as placed:
        for name in RESULTS:
            with files.atomic_writer(tmp_path / name) as stream:
                stream.write(name)
        assert list(tmp_path.iterdir()) != [] and placed == []  # only temporary files yet
        assert all(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert placed == [tmp_path / name for name in RESULTS]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(RESULTS)


def test_ctrl_c_while_placing_files_is_raised_after_all_are_placed(tmp_path, monkeypatch):
    rename = os.replace

    def rename_then_interrupt(src: str, dst: Path) -> None:
        rename(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives after the first rename

    with pytest.raises(KeyboardInterrupt), files.output_batch() as placed:
        for name in RESULTS:
            with files.atomic_writer(tmp_path / name) as stream:
                stream.write(name)
        monkeypatch.setattr(os, "replace", rename_then_interrupt)
    assert placed == [tmp_path / name for name in RESULTS]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(RESULTS)
