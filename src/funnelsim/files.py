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
import errno
import io
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
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


class OutputLocationError(FunnelsimError):
    """An output cannot be written where it was asked for (the path and the reason)."""

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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        ) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # the data on disk before the name points at it
        os.chmod(tmp, 0o666 & ~_umask())
        pending = _BATCH.get()
        if pending is None:
            os.replace(tmp, path)
        else:
            pending.append((tmp, path))
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, error) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, error: OSError) -> OutputLocationError:
    reason = error.strerror or os.strerror(error.errno or errno.EIO)
    return OutputLocationError(f"{_cut(str(path))}: cannot write: {reason}")


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
        try:
            for tmp, path in pending:
                os.replace(tmp, path)
                placed.append(path)
        except OSError as error:
            for tmp, _ in pending:
                Path(tmp).unlink(missing_ok=True)
            raise _cannot_write(path, error) from None


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back during the block, then run the handler the signal
    would have run, or raise KeyboardInterrupt. Python runs signal handlers in the main
    thread only, so elsewhere there is nothing to hold back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {n: signal.signal(n, lambda signum, _frame: held.append(signum)) for n in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    if held:
        for number, handler in previous.items():  # the handler a signal would have run
            if held[-1] == number and callable(handler):
                handler(number, None)
        raise KeyboardInterrupt


def prepare_output(out: Path, force: bool, names: tuple[str, ...]) -> None:
    """Refuse to overwrite existing results in ``out`` unless ``force``, and an ``out``
    that cannot be written (checked before any work)."""
    check_location(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{_cut(str(out))}: exists and is not a directory", "out")
    existing = [n for n in names if (out / n).exists()]
    if existing and not force:
        raise OutputExistsError(f"{_cut(str(out))}: already holds {', '.join(existing)}", "force")


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse, before any work, a file ``path`` that cannot be written (see
    :func:`check_location`), is a directory, or exists and ``force`` is not given."""
    check_location(path)
    if path.is_dir():
        raise OutputLocationError(f"{_cut(str(path))}: is a directory, not a file")
    if path.exists() and not force:
        raise OutputExistsError(f"{_cut(str(path))}: exists", "force")


MAX_SHOWN_PATH = 200
"""Paths longer than this are cut in messages (an error line stays one readable line)."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_PATH else f"{text[: MAX_SHOWN_PATH - 3]}..."


def check_location(path: Path) -> None:
    """Refuse (:class:`OutputLocationError`) a path that cannot be written, before any
    work: a name longer than the file system allows, a parent that is a file, a special
    file (``/dev/full``, a FIFO), a directory this user cannot write in."""
    ancestor = path
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent  # lexists, unlike Path.exists, is False on a long name
    shown = _cut(str(path))
    limit = _name_max(ancestor if ancestor.is_dir() else ancestor.parent)
    if any(len(os.fsencode(part)) > limit for part in path.parts):
        raise OutputLocationError(f"{shown}: a name is longer than the file system allows")
    if ancestor == path and path.exists():
        if not path.is_dir() and not path.is_file():
            raise OutputLocationError(f"{shown}: not a regular file or directory")
        ancestor = path if path.is_dir() else path.parent
    if not ancestor.is_dir():
        raise OutputLocationError(f"{shown}: {_cut(str(ancestor))} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".funnelsim-probe.", dir=ancestor)
    except OSError as error:
        raise OutputLocationError(
            f"{shown}: cannot write in {_cut(str(ancestor))}: {error.strerror}"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_outputs(
    files: Mapping[str, Path | None],
    force: bool,
    out: Path | None = None,
    out_names: tuple[str, ...] = (),
) -> None:
    """Check the output files named by options (``{"--events": path}``) before any work:
    each writable and, without ``force``, absent; no two outputs (the files ``--out``
    gets included) at one path."""
    targets: dict[Path, str] = {}
    if out is not None:
        targets[out.resolve()] = "--out"
        targets.update({(out / name).resolve(): "--out" for name in out_names})
    for option, path in files.items():
        if path is None:
            continue
        refuse_existing(path, force)
        resolved = path.resolve()
        if resolved in targets:
            raise OutputLocationError(
                f"{_cut(str(path))}: {targets[resolved]} and {option} would write the same file"
            )
        targets[resolved] = option


def input_problem(path: Path, what: str = "file") -> str | None:
    """Why ``path`` cannot be read as an input file, or None: missing, a directory, or
    not a regular file (a FIFO or a device would block or never end)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return f"cannot read: {error.strerror}"
    if stat.S_ISDIR(mode):
        return f"is a directory, not a {what}"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe or a device); save the input to a file"
    return None


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
