"""SIGTERM (and SIGINT) sent to the command alone, as a service manager or ``kill`` does,
while each command that writes is at work with ``--out`` over earlier results.

Every one must stop with exit status 128 + the signal (143 for SIGTERM, 130 for SIGINT)
and one line, no traceback (none from pool workers either), no temporary file, and the
earlier results byte for byte as they were. ``analyze --model funnel`` is signalled
while PyMC samples (its chain processes are running): PyMC stops its chains and returns
the draws so far, which must not be written as a result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import two_arm_scenario

FUNNELSIM = str(Path(sys.executable).parent / "funnelsim")
START_TIMEOUT_S = 180  # generous: the machine is shared; only a hang reaches it
STOP_TIMEOUT_S = 60
SCENARIO = two_arm_scenario("signal me", 3, 20000, 20000)
DATA = "variant,visitors,cart,checkout,conversions\nA,20000,6000,2000,900\nB,20000,6300,2150,990\n"
UNCERTAIN = SCENARIO.replace("rate: 0.5}", "rate: {uncertain: uniform, low: 0.4, high: 0.6}}")
FUNNEL = "landing,checkout,converted\n20000,10000,4000\n"
WORK = ["--workers", "2", "--allow-large", "-q"]
COMMANDS = {
    "run": (["run", "{scenario}", *WORK], ("results.json", "summary.csv")),
    "sweep": (
        ["sweep", "{scenario}", "--param", "seed=1:100:1", "--replications", "400", *WORK],
        ("sweep.csv", "sweep.png"),
    ),
    "plan": (
        ["plan", "{scenario}", "--variant", "better", "--simulations", "20000", *WORK],
        ("plan.csv", "plan.png"),
    ),
    "bench": (
        ["bench", "{scenario}", "--replications", "20000", *WORK],
        ("bench.json", "bench.csv", "bench.png"),
    ),
    "analyze-funnel": (
        [
            "analyze",
            "{data}",
            "--model",
            "funnel",
            "--stage-columns",
            "cart,checkout",
            "--sampler",
            "pymc",
            "--draws",
            "20000",
            "-q",
        ],
        ("results.json", "posterior.nc"),
    ),
    "sensitivity": (
        ["sensitivity", "{uncertain}", "--samples", "4194304", "--workers", "2", "--allow-large"],
        ("sensitivity.json", "sensitivity.png"),
    ),
    "calibrate": (
        ["calibrate", "{uncertain}", "--data", "{funnel}", "--sampler", "pymc"],
        ("calibration.json", "posterior.nc", "calibrated.yaml"),
    ),
}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize(
    ("command", "signum"),
    [(name, signal.SIGTERM) for name in COMMANDS] + [("analyze-funnel", signal.SIGINT)],
    ids=[f"{name}-SIGTERM" for name in COMMANDS] + ["analyze-funnel-SIGINT"],
)
def test_a_signal_stops_the_command_and_keeps_earlier_results(
    command: str, signum: int, tmp_path: Path
) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    data = tmp_path / "counts.csv"
    data.write_text(DATA, encoding="utf-8")
    uncertain = tmp_path / "uncertain.yaml"
    uncertain.write_text(UNCERTAIN, encoding="utf-8")
    funnel = tmp_path / "funnel.csv"
    funnel.write_text(FUNNEL, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    args, names = COMMANDS[command]
    earlier = {name: f"earlier {name}\n".encode() for name in names}
    for name, content in earlier.items():
        (out / name).write_bytes(content)
    proc = subprocess.Popen(
        [
            FUNNELSIM,
            *(
                a.format(scenario=scenario, data=data, uncertain=uncertain, funnel=funnel)
                for a in args
            ),
            "--out",
            str(out),
            "--force",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _children(proc.pid):  # pool workers or PyMC's chains: the work is on
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never started its work"
            time.sleep(0.05)
        time.sleep(1.0)
        children = _children(proc.pid)
        proc.send_signal(signum)  # the command alone, not its process group
        _, stderr = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    text = stderr.decode(errors="replace")
    assert proc.returncode == 128 + signum, text
    assert "Traceback" not in text and "Error" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: stopped"), text
    assert sorted(p.name for p in out.iterdir()) == sorted(names), "no temporary files"
    assert {name: (out / name).read_bytes() for name in names} == earlier
    time.sleep(0.5)
    for child in children:  # workers are gone (or zombies awaiting their parent's exit)
        stat = Path(f"/proc/{child}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z", child
