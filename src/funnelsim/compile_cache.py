"""Where compiled PyMC models are kept: the user's cache directory, shared by processes.

PyTensor compiles a model's log density (C code, or Numba code for nutpie) and caches
the result under its ``base_compiledir``; by default that is ``~/.pytensor``, which some
installations cannot write or wipe between sessions. funnelsim points it at the user's
cache directory (``$XDG_CACHE_HOME/funnelsim/pytensor``, usually
``~/.cache/funnelsim/pytensor`` on Linux, ``~/Library/Caches/funnelsim/pytensor`` on
macOS, ``%LOCALAPPDATA%\\funnelsim\\Cache\\pytensor`` on Windows), so the second fit of a
model in a new process loads the compiled code instead of compiling it again. A
compile directory given in ``PYTENSOR_FLAGS`` wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from platformdirs import user_cache_path

FLAGS = "PYTENSOR_FLAGS"


def compile_cache_dir() -> Path:
    """The directory funnelsim gives PyTensor for its compiled code."""
    return user_cache_path("funnelsim", appauthor=False) / "pytensor"


def use_compile_cache(environ: MutableMapping[str, str] | None = None) -> None:
    """Add ``base_compiledir`` to ``PYTENSOR_FLAGS`` unless it names a compile directory.

    Must run before PyTensor is imported (it reads the flags once, on import);
    ``funnelsim.analysis`` calls it on import, before any model module.

    Example:
        >>> flags = {"PYTENSOR_FLAGS": "floatX=float64"}
        >>> use_compile_cache(flags)
        >>> flags["PYTENSOR_FLAGS"].startswith("floatX=float64,base_compiledir=")
        True
        >>> flags = {"PYTENSOR_FLAGS": "base_compiledir=/tmp/mine"}
        >>> use_compile_cache(flags)
        >>> flags["PYTENSOR_FLAGS"]
        'base_compiledir=/tmp/mine'
    """
    environ = os.environ if environ is None else environ
    flags = environ.get(FLAGS, "")
    if "compiledir" in flags:
        return
    ours = f"base_compiledir={compile_cache_dir()}"
    environ[FLAGS] = f"{flags},{ours}" if flags else ours
