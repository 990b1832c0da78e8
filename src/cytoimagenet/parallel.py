"""Run independent, file-based tasks serially, on local worker processes, or on a dask cluster.

The task function must be importable at module level and write its own outputs; what it
returns should be small. Results are yielded as tasks finish (in any order). Tasks must be
idempotent: a task whose process dies (the OOM killer, a crashing decoder) is run again.

Local workers are one-process executors, each given one task at a time, so a process that
dies takes only its own task with it (a shared pool would break, failing every task in
flight): that task is retried once in a fresh process, then handed to ``on_died``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from cytoimagenet.errors import ConfigError, CytoImageNetError

T = TypeVar("T")
R = TypeVar("R")


class WorkerDiedError(CytoImageNetError):
    """A worker process died on the same task every time it was tried."""


def _died(fn: Callable[..., object]) -> Callable[[object], object]:
    def fail(item: object) -> object:
        raise WorkerDiedError(
            f"a worker process running {getattr(fn, '__name__', fn)} died twice on the same "
            "task (killed by the OS: out of memory?); run again with fewer --workers"
        )

    return fail


def default_workers() -> int:
    """Return the number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _serial(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    for item in items:
        yield item, fn(item)


def run_isolated(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    retries: int = 1,
    on_died: Callable[[T], R] | None = None,
) -> Iterator[tuple[T, R]]:
    """Run ``fn`` on every item in child processes, one item per process at a time.

    With one worker the results come in the order of ``items``.

    Parameters
    ----------
    workers : int
        Child processes running at once (each a one-process executor).
    retries : int
        Fresh processes to try again on after an item's process died.
    on_died : callable, optional
        Called in this process with an item whose process died ``retries + 1`` times; its
        return value is yielded as the item's result. Without it, :class:`WorkerDiedError`.
    """
    # "spawn": polars and OpenCV start threads, and forking a threaded process can deadlock.
    context = multiprocessing.get_context("spawn")
    handle = on_died or _died(fn)
    queue: deque[tuple[T, int]] = deque((item, 0) for item in items)
    slots: list[ProcessPoolExecutor | None] = [None] * max(1, workers)
    running: dict[Future, tuple[int, T, int]] = {}

    def start(slot: int) -> None:
        item, attempt = queue.popleft()
        executor = slots[slot]
        if executor is None:
            executor = slots[slot] = ProcessPoolExecutor(max_workers=1, mp_context=context)
        running[executor.submit(fn, item)] = (slot, item, attempt)

    try:
        for slot in range(min(len(slots), len(queue))):
            start(slot)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                slot, item, attempt = running.pop(future)
                died = isinstance(future.exception(), BrokenProcessPool)
                if died:  # this executor's only process is gone: replace it
                    slots[slot].shutdown(wait=False)  # type: ignore[union-attr]
                    slots[slot] = None
                    if attempt < retries:
                        queue.appendleft((item, attempt + 1))
                if queue:  # keep the slot busy while the caller handles this result
                    start(slot)
                if not died:
                    yield item, future.result()
                elif attempt >= retries:
                    yield item, handle(item)
    finally:
        for executor in slots:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)


def _dask(
    fn: Callable[[T], R], items: Sequence[T], address: str, handle: Callable[[T], R]
) -> Iterator[tuple[T, R]]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:
        raise ConfigError(
            "--scheduler needs dask.distributed: pip install 'cytoimagenet[scale]'"
        ) from exc
    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise ConfigError(f"cannot reach the dask scheduler at {address}: {exc}") from None
    with client:
        futures = client.map(fn, list(items), pure=False)
        lookup = {f.key: item for f, item in zip(futures, items, strict=True)}
        for future in as_completed(futures):
            item = lookup[future.key]
            try:
                result = future.result()
            except Exception as exc:
                # dask retries a task whose worker died, then gives up with KilledWorker.
                if type(exc).__name__ != "KilledWorker":
                    raise
                result = handle(item)
            yield item, result


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    on_died: Callable[[T], R] | None = None,
) -> Iterator[tuple[T, R]]:
    """Apply ``fn`` to every item; yield ``(item, result)`` pairs as they complete.

    Parameters
    ----------
    workers : int
        Local processes; 1 runs in this process (easiest to debug, but a task that kills
        its process kills the caller too).
    scheduler : str, optional
        Address of a dask distributed scheduler (``tcp://host:8786``). Its workers must see
        the same file system paths and have cytoimagenet installed.
    on_died : callable, optional
        Called in this process with an item whose worker process died twice (locally) or
        that dask gave up on (``KilledWorker``); its return value stands for the result.
        Without it, :class:`WorkerDiedError` is raised.
    """
    if scheduler:
        return _dask(fn, items, scheduler, on_died or _died(fn))
    if workers <= 1:
        return _serial(fn, items)
    # Even a single item goes to a child process: run in this one, a task that kills its
    # process would kill the whole run, on every retry.
    return run_isolated(fn, items, workers=workers, on_died=on_died)
