"""Run independent, file-based tasks serially, on a local process pool, or on a dask cluster.

The task function must be importable at module level and write its own outputs; what it
returns should be small. Results are yielded as tasks finish (in any order).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

from cytoimagenet.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Return the number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _serial(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    for item in items:
        yield item, fn(item)


def _pool(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[tuple[T, R]]:
    # "spawn": polars and OpenCV start threads, and forking a threaded process can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # Keep a bounded window in flight so huge task lists do not pile up in memory.
        window = 4 * workers
        pending = {}
        queue = iter(items)
        for item in queue:
            pending[pool.submit(fn, item)] = item
            if len(pending) >= window:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                yield item, future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(fn, nxt)] = nxt


def _dask(fn: Callable[[T], R], items: Sequence[T], address: str) -> Iterator[tuple[T, R]]:
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
            yield lookup[future.key], future.result()


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 1,
    scheduler: str | None = None,
) -> Iterator[tuple[T, R]]:
    """Apply ``fn`` to every item; yield ``(item, result)`` pairs as they complete.

    Parameters
    ----------
    workers : int
        Local processes; 1 runs in this process (easiest to debug).
    scheduler : str, optional
        Address of a dask distributed scheduler (``tcp://host:8786``). Its workers must see
        the same file system paths and have cytoimagenet installed.
    """
    if scheduler:
        return _dask(fn, items, scheduler)
    if workers <= 1 or len(items) <= 1:
        return _serial(fn, items)
    return _pool(fn, items, workers)
