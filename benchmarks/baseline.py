"""The code before issue 18's speed work, loaded from git, to time beside today's code.

``load(path)`` executes the file ``path`` as it was at :data:`BASELINE` in a fresh
module (its imports resolve to today's package), so a benchmark can time the old and
the new function in the same process, on the same inputs.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

BASELINE = "49e321a"
"""main just before the issue 18 work (the SimPy engine and funnel model it replaced)."""
CALLBACK_BASELINE = "0a578db"
"""main before nutpie's chains called cached C callbacks (parallel, without the GIL)
instead of Python ones, and before the BG/NBD gradient lost its digamma function (which
PyTensor's Numba cache cannot hold, so every ``--transactions`` process compiled it)."""
RUN_BASELINE = "e5fa9ba"
"""main before ``funnelsim run`` timed its first replications to choose between this
process and a pool (it estimated them ~6x too slow and always started the pool) and drew
its worlds without scipy.stats (Halton points, quantiles from scipy.special). Earlier run
baseline: d194690, before one quadrature for the exact readouts, SALib's bootstrap
dropped and matplotlib only with ``--report``."""
AGGREGATE_BASELINE = "0a578db"
"""main before the aggregate engine drew its customers' lifetimes by cohort (counts per
cell and month) instead of one by one."""
ROOT = Path(__file__).resolve().parents[1]


def load(path: str, commit: str = BASELINE) -> types.ModuleType:
    """The module at ``path`` (relative to the repository) as of ``commit``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name = "baseline_" + Path(path).stem
    module = types.ModuleType(name)
    module.__file__ = f"{commit}:{path}"
    sys.modules[name] = module  # dataclasses look their module up there
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


@contextmanager
def source_tree(commit: str) -> Iterator[Path]:
    """The package's ``src`` folder as of ``commit``, in a temporary directory (put it first
    on ``PYTHONPATH`` to run that code end to end)."""
    archive = subprocess.run(
        ["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="funnelsim-baseline-") as folder:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder) / "src"
