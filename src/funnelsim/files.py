"""Writing output files: atomically, and as one batch.

Every file funnelsim writes goes through :func:`atomic_writer` or
:func:`write_bytes_atomic`: written under a temporary name, then renamed into place,
so a crash or Ctrl-C never leaves a half-written file. Inside :func:`output_batch` a
set of files appears together or not at all. :func:`prepare_output` refuses to
overwrite existing results without ``--force``; CSV, PNG and NetCDF writing helpers
sit on top.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from funnelsim.errors import FunnelsimError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110  # of every PNG written


class OutputExistsError(FunnelsimError):
    """The output already exists and ``force`` was not given (field ``force``)."""

    located = True


_BATCH: ContextVar[list[tuple[str, Path]] | None] = ContextVar("output_batch", default=None)


def _umask() -> int:
    """The process umask (mkstemp makes files private to their owner; results are not)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[str]]:
    """Write a text file under a temporary name and rename it into place on success
    (at the end of the enclosing :func:`output_batch`, if there is one)."""
    with _atomic(path, binary=False) as stream:
        yield stream


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file as :func:`atomic_writer` does."""
    with atomic_writer(path) as stream:
        stream.write(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a binary file (a PNG, a NetCDF) as :func:`atomic_writer` writes text."""
    with _atomic(path, binary=True) as stream:
        stream.write(data)


@contextmanager
def _atomic(path: Path, binary: bool) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        ) as stream:
            yield stream
        os.chmod(tmp, 0o666 & ~_umask())
        pending = _BATCH.get()
        if pending is None:
            os.replace(tmp, path)
        else:
            pending.append((tmp, path))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def output_batch() -> Iterator[list[Path]]:
    """Files written with :func:`atomic_writer` in the block appear together at its end,
    or not at all.

    Like a bank transfer, a set of results (``results.json`` beside ``summary.csv``)
    must never be half old, half new. Each file waits under its temporary name; only
    when the block ends without error are all renamed into place, with Ctrl-C held back
    for those few microseconds. On an error or an interrupt the temporary files are
    deleted and existing results stay as they were. Yields the list of the paths put
    in place (filled when the block ends).
    """
    pending: list[tuple[str, Path]] = []
    placed: list[Path] = []
    token = _BATCH.set(pending)
    try:
        yield placed
    except BaseException:
        for tmp, _ in pending:
            Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _BATCH.reset(token)
    with _interrupts_held():
        for tmp, path in pending:
            os.replace(tmp, path)
            placed.append(path)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C back during the block and raise it afterwards. Python runs signal
    handlers in the main thread only, so elsewhere there is nothing to hold back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if held:
        raise KeyboardInterrupt


def prepare_output(out: Path, force: bool, names: tuple[str, ...]) -> None:
    """Refuse to overwrite existing results in ``out`` unless ``force``."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory", "out")
    existing = [n for n in names if (out / n).exists()]
    if existing and not force:
        raise OutputExistsError(f"{out}: already holds {', '.join(existing)}", "force")


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse to overwrite the file ``path`` unless ``force``."""
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: exists", "force")


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_png(figure: Figure, path: Path) -> None:
    """Save a figure as PNG atomically (with the other files of an output batch)."""
    write_bytes_atomic(path, png_bytes(figure))


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write rows (same keys) as CSV, atomically."""
    with atomic_writer(path) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def netcdf_bytes(posterior: Any) -> bytes:
    """An ArviZ InferenceData as the bytes of a NetCDF file."""
    with tempfile.TemporaryDirectory() as scratch:
        netcdf = Path(scratch) / "posterior.nc"
        posterior.to_netcdf(str(netcdf))
        return netcdf.read_bytes()
