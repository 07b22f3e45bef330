"""PyTensor's compiled models go to the user's cache directory unless the user chose one."""

import os
import subprocess
import sys
from pathlib import Path

PROBE = "import funnelsim.analysis, pytensor; print(pytensor.config.base_compiledir)"


def _compiledir(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_compiled_models_are_cached_under_the_user_cache_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    found = _compiledir(env)
    if sys.platform.startswith("linux"):
        assert found == str(tmp_path / "funnelsim" / "pytensor")
    else:
        assert found.endswith("pytensor") and "funnelsim" in found


def test_a_compile_directory_in_pytensor_flags_wins(tmp_path: Path) -> None:
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'mine'}")
    assert _compiledir(env) == str(tmp_path / "mine")
