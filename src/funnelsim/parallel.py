"""Where independent jobs run: here, on local processes, or on a Dask cluster.

Think of a print shop with a stack of independent jobs. One press prints them
in turn; a few presses in the back room print several at once; a rented print
farm prints many more. Whoever prints a job, the pages come out the same,
because every job carries its own instructions. Here a job is a replication
(or, later, a sweep point), its instructions include its own seed stream
(``numpy.random.SeedSequence.spawn``), so the results are identical whatever
the executor and however many workers there are.

Jobs travel in batches, a few per worker, so the cost of shipping a task
(pickling, scheduling) stays small next to the work inside it, and the
workers still share the load evenly.

Executors:

* in this process, when ``workers`` is 1;
* a local process pool, the default for ``workers > 1`` (Ctrl-C stops it at once);
* measured (:func:`map_measured`): the first batch here, the rest on a pool only when
  the time the first took says the pool pays for its start;
* Dask, with ``dask="local"`` (a ``distributed.LocalCluster`` of ``workers``
  single-threaded processes, started and stopped here), a scheduler address
  such as ``"tcp://10.0.0.5:8786"`` (an existing cluster), or a
  ``distributed.Client`` you already hold. Dask is an optional extra:
  ``pip install 'funnelsim[dask]'``.

References:
    Dask Development Team (2016), Dask: Library for dynamic task scheduling,
    https://dask.org (distributed futures: ``Client.map``, ``as_completed``).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.pool
import queue
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from funnelsim.errors import FunnelsimError

T = TypeVar("T")
R = TypeVar("R")
BATCHES_PER_WORKER = 8
DASK_INSTALL = "pip install 'funnelsim[dask]'"
CONNECT_TIMEOUT_S = 10
POOL_START_S = {"fork": 0.03, "other": 0.8}
"""What starting a pool of two workers costs, by start method: a fork of a warmed-up process
(its imports inherited) took 0.03-0.06 s on a 2-core machine; a spawned or forkserver
worker imports NumPy and funnelsim again (about 0.8 s of CPU)."""

Progress = Callable[[int], None]


class ExecutorError(FunnelsimError, RuntimeError):
    """The requested executor cannot run (Dask missing, bad address, scheduler unreachable)."""


def batches(
    items: Sequence[T], workers: int, per_worker: int = BATCHES_PER_WORKER
) -> list[list[T]]:
    """Split ``items`` into about ``workers x per_worker`` consecutive batches.

    >>> batches(list(range(5)), workers=1, per_worker=2)
    [[0, 1, 2], [3, 4]]
    """
    size = max(1, math.ceil(len(items) / (max(workers, 1) * per_worker)))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def check_dask_address(address: str) -> str:
    """``address`` if it is ``local`` or a scheduler address; else an ExecutorError.

    >>> check_dask_address("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    """
    if address == "local" or "://" in address:
        return address
    raise ExecutorError(
        f"dask: expected 'local' or a scheduler address like tcp://HOST:8786, got {address!r}",
        "dask",
    )


def map_batches(
    function: Callable[[list[T]], list[R]],
    items: Sequence[T],
    workers: int = 1,
    dask: Any = None,
    progress: Progress | None = None,
) -> list[R]:
    """``function`` applied to batches of ``items``; the results, in the order of ``items``.

    ``function`` takes a list of items and returns one result per item; it must be
    picklable (a module-level function or a ``functools.partial`` of one) for the
    process pool and Dask. ``dask`` is None (local), ``"local"``, a scheduler address
    or a ``distributed.Client``. ``progress`` is called with the number of items of
    each finished batch.

    >>> map_batches(lambda batch: [x * x for x in batch], [1, 2, 3])
    [1, 4, 9]
    """
    chunks = batches(items, workers)
    if dask is not None:
        results = _on_dask(function, chunks, dask, workers, progress)
    elif workers <= 1 or len(chunks) <= 1:
        results = _in_turn(function, chunks, progress)
    else:
        results = _on_pool(function, chunks, workers, progress)
    return [result for batch in results for result in batch]


def map_measured(
    function: Callable[[list[T]], list[R]],
    items: Sequence[T],
    workers: int,
    progress: Progress | None = None,
) -> list[R]:
    """:func:`map_batches` on up to ``workers`` local processes, started only where the work
    measured here says they pay for themselves; the results do not depend on which.

    The first batch runs in this process: its first item alone (it pays the lazy imports
    and fills the caches that forked workers then inherit), then the rest of it (or the
    next batch, when it held one item) timed. The other batches go to a pool only if the
    time they would take here, less their time spread over the workers, exceeds what
    starting the pool costs (:data:`POOL_START_S`).

    >>> map_measured(lambda batch: [x * x for x in batch], [1, 2, 3], workers=2)
    [1, 4, 9]
    """
    if not items:
        return []
    chunks = batches(items, workers)
    results = [function(chunks[0][:1])]
    _advance(progress, 1)
    chunks = [chunks[0][1:], *chunks[1:]] if len(chunks[0]) > 1 else chunks[1:]
    if chunks:
        start = time.perf_counter()
        results.append(function(chunks[0]))
        _advance(progress, len(chunks[0]))
        per_item = (time.perf_counter() - start) / len(chunks[0])
        rest = chunks[1:]
        if _pool_pays(per_item * sum(map(len, rest)), min(workers, len(rest))):
            results.extend(_on_pool(function, rest, workers, progress))
        else:
            results.extend(_in_turn(function, rest, progress))
    return [result for batch in results for result in batch]


def _pool_pays(serial_s: float, workers: int) -> bool:
    """Whether ``workers`` processes finish ``serial_s`` seconds of work here sooner than
    this process alone, counting what starting them costs."""
    method = multiprocessing.get_start_method(allow_none=True)
    method = method or multiprocessing.get_all_start_methods()[0]  # the platform's default
    cost = POOL_START_S["fork" if method == "fork" else "other"] * workers / 2
    return workers > 1 and serial_s * (1 - 1 / workers) > cost


def _in_turn(
    function: Callable[[list[T]], list[R]], chunks: list[list[T]], progress: Progress | None
) -> list[list[R]]:
    """``function`` of every chunk, in this process."""
    results = []
    for chunk in chunks:
        results.append(function(chunk))
        _advance(progress, len(chunk))
    return results


def _advance(progress: Progress | None, n: int) -> None:
    if progress is not None:
        progress(n)


_TASK: Callable[[list[Any]], list[Any]] | None = None
"""The function a pool worker applies to its batches (set once, when the worker starts)."""
_BATCHES: list[list[Any]] = []
"""The batches of the pool's work, given to each worker when it starts."""

IN_FLIGHT_PER_WORKER = 2
"""Batch numbers handed to the pool at a time, per worker. The pool's task thread writes
them to a pipe; when it held whole batches it could block on the full pipe, and
Pool.terminate then waited for it forever once the workers were gone (a Ctrl-C or
SIGTERM mid-run hung the command). A few numbers never fill it."""


def _start_worker(function: Callable[[list[Any]], list[Any]], batches: list[list[Any]]) -> None:
    global _TASK, _BATCHES
    _TASK, _BATCHES = function, batches
    _leave_interrupts_to_parent()


def _run_batch(index: int) -> tuple[int, list[Any]]:
    assert _TASK is not None, "a pool worker runs batches only after _start_worker"
    return index, _TASK(_BATCHES[index])


def _on_pool(
    function: Callable[[list[T]], list[R]],
    chunks: list[list[T]],
    workers: int,
    progress: Progress | None,
) -> list[list[R]]:
    """The batches on a pool of ``workers`` processes, a few at a time: the function and
    the batches travel once, to each worker as it starts; the pool's messages are batch
    numbers."""
    results: list[list[R]] = [[] for _ in chunks]
    finished: queue.Queue[tuple[int, list[R]] | BaseException] = queue.Queue()
    pending = iter(range(len(chunks)))
    workers = min(workers, len(chunks))
    with local_pool(workers, function, chunks) as pool:

        def hand_over() -> int:
            index = next(pending, None)
            if index is None:
                return 0
            pool.apply_async(
                _run_batch, (index,), callback=finished.put, error_callback=finished.put
            )
            return 1

        in_flight = sum(hand_over() for _ in range(IN_FLIGHT_PER_WORKER * workers))
        while in_flight:
            done = finished.get()
            if isinstance(done, BaseException):
                raise done
            i, result = done
            results[i] = result
            _advance(progress, len(chunks[i]))
            in_flight += hand_over() - 1
    return results


def _leave_interrupts_to_parent() -> None:
    """Workers ignore Ctrl-C and end quietly on SIGTERM (the pool's terminate sends it),
    whatever handlers the parent had when it forked them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@contextmanager
def local_pool(
    workers: int, function: Callable[[list[Any]], list[Any]], batches: list[list[Any]]
) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of worker processes, each applying ``function`` to the ``batches`` that
    :func:`_run_batch` names, that Ctrl-C stops at once and quietly.

    Ctrl-C in a terminal signals every process of the command. The workers ignore it and
    end quietly on SIGTERM (both are blocked while they start, so none can be caught half
    set up); the parent gets ``KeyboardInterrupt`` and, leaving the block, terminates the
    workers: no queued work runs on, and no worker prints a traceback.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pool = multiprocessing.Pool(
            workers, initializer=_start_worker, initargs=(function, batches)
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    with pool:
        yield pool


def _on_dask(
    function: Callable[[list[T]], list[R]],
    chunks: list[list[T]],
    dask: Any,
    workers: int,
    progress: Progress | None,
) -> list[list[R]]:
    try:
        from distributed import as_completed as dask_completed
    except ImportError:
        raise ExecutorError(f"Dask is not installed; {DASK_INSTALL}", "dask") from None
    results: list[list[R]] = [[] for _ in chunks]
    with dask_client(dask, workers) as client:
        futures = client.map(function, chunks, pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in dask_completed(futures):  # type: ignore[no-untyped-call]
                i = index[future.key]
                results[i] = future.result()
                _advance(progress, len(chunks[i]))
        except BaseException:
            client.cancel(futures)
            raise
    return results


@contextmanager
def dask_client(dask: Any, workers: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` for ``dask`` (``"local"``, an address or a Client).

    A LocalCluster started here has ``workers`` single-threaded worker processes,
    no dashboard, and is closed on exit; a Client passed in is left open.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError(f"Dask is not installed; {DASK_INSTALL}", "dask") from None
    if not isinstance(dask, str):
        yield dask
        return
    address = check_dask_address(dask)
    if address == "local":
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=max(workers, 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as error:
        raise ExecutorError(
            f"dask: cannot reach the scheduler at {address}: {error}", "dask"
        ) from None
    with client:
        yield client
