"""Shared fixtures: paths, scenario text builders, and a cached PyTensor compile dir."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.venv' / 'pytensor-cache'}")
for _size in ("COLUMNS", "LINES"):  # piped output takes its width from COLUMNS, which
    os.environ.pop(_size, None)  # pytest-xdist's workers set to 80: tests see 100 columns

MINIMAL = """\
name: minimal
seed: 1
traffic:
  visitors_per_day: 1000
  days: 2
stages:
  - name: landing
    rate: 0.5
  - name: checkout
    rate: 0.4
value:
  order_value: {dist: constant, value: 50}
"""


def with_calibrated_values(control: Any, values: Any) -> Any:
    """The scenario ``control`` with its stage rates and the calibrated coefficients
    (``funnelsim.calibration.model.COEFFICIENTS``, in order) set to ``values``."""
    from funnelsim.calibration.model import COEFFICIENTS

    n = len(control.stages)
    stages = [
        st.model_copy(update={"rate": float(r)})
        for st, r in zip(control.stages, values[:n], strict=True)
    ]
    coef = control.coefficients
    for path, value in zip(COEFFICIENTS, values[n:], strict=True):
        _, group, name = path.split(".")
        updated = getattr(coef, group).model_copy(update={name: float(value)})
        coef = coef.model_copy(update={group: updated})
    return control.model_copy(update={"stages": stages, "coefficients": coef})


def run_in_new_process(*args: str) -> tuple[str, bool]:
    """``funnelsim ARGS`` in a new Python process: its output, and whether it imported
    scipy.stats (about a second of start-up ``run`` must not pay)."""
    import subprocess
    import sys

    code = (
        f"import sys; from funnelsim.cli import main; sys.argv = ['funnelsim', *{args!r}]\n"
        "try: main()\nexcept SystemExit: pass\nprint('scipy.stats' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return out, out.split()[-1] == "True"


def two_arm_scenario(name: str, seed: int, visitors_per_day: int, replications: int) -> str:
    """Landing (0.5) then checkout (0.4), a control and a variant with a better checkout
    (0.45): the small funnel the interrupt and output-location tests run."""
    return f"""\
name: {name}
seed: {seed}
traffic: {{visitors_per_day: {visitors_per_day}, days: 2}}
stages:
  - {{name: landing, rate: 0.5}}
  - {{name: checkout, rate: 0.4}}
value:
  order_value: {{dist: constant, value: 50}}
variants:
  control: {{}}
  better: {{stages.checkout.rate: 0.45}}
experiment: {{replications: {replications}}}
"""


@pytest.fixture
def write_scenario(tmp_path: Path):
    """Write YAML text (dedented) to a file and return its path."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@contextmanager
def in_process_dask() -> Iterator[Any]:
    """A Dask client on an in-process LocalCluster of two single-thread workers (the test
    skips where Dask is not installed)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
