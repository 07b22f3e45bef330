"""The code before issue 18's speed work, loaded from git, to time beside today's code.

``load(path)`` executes the file ``path`` as it was at :data:`BASELINE` in a fresh
module (its imports resolve to today's package), so a benchmark can time the old and
the new function in the same process, on the same inputs.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

BASELINE = "49e321a"
"""main just before the issue 18 work (the SimPy engine and funnel model it replaced)."""
ROOT = Path(__file__).resolve().parents[1]


def load(path: str) -> types.ModuleType:
    """The module at ``path`` (relative to the repository) as of :data:`BASELINE`."""
    source = subprocess.run(
        ["git", "show", f"{BASELINE}:{path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name = "baseline_" + Path(path).stem
    module = types.ModuleType(name)
    module.__file__ = f"{BASELINE}:{path}"
    sys.modules[name] = module  # dataclasses look their module up there
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module
