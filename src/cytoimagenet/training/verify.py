"""Check a dataset's image files before training on them for hours.

Three modes (``pretrain --verify``):

``size`` (default)
    Every file is present, a regular file and not empty, and a PNG ends with its ``IEND``
    chunk: a copy cut short (a killed download or unpacking, a full disk) fails. Reads 20
    bytes per file.
``full``
    As ``size``, and each file's sha256 equals the one ``cytoimagenet build`` recorded in
    ``metadata.parquet`` (column ``sha256``). Reads every byte.
``none``
    No check: a missing or corrupt image then stops training when the loader reaches it.

Files are checked on a thread pool (the work is system calls and hashing, which release the
GIL); under ``torchrun`` each process checks its own share and the findings are gathered,
so every process reports the same problems.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, Literal

from cytoimagenet.errors import ConfigError, CytoImageNetError
from cytoimagenet.io.parquet import read_parquet

log = logging.getLogger(__name__)

Verify = Literal["full", "size", "none"]
VERIFY_MODES: Final = ("full", "size", "none")
#: The last 12 bytes of every PNG: the empty ``IEND`` chunk and its CRC.
PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_SHOW: Final = 3  # problems named in the error line
_CHUNK: Final = 1 << 20


def check_file(path: str, sha256: str | None, mode: Verify) -> str | None:
    """Return what is wrong with one image file (``None`` when it passes ``mode``)."""
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "empty"
    try:
        with file.open("rb") as handle:
            head = handle.read(len(PNG_SIGNATURE))
            if head == PNG_SIGNATURE:
                handle.seek(max(0, info.st_size - len(PNG_END)))
                if handle.read() != PNG_END:
                    return "truncated (no PNG end chunk)"
            if mode == "full" and sha256:
                handle.seek(0)
                digest = hashlib.sha256()
                while block := handle.read(_CHUNK):
                    digest.update(block)
                if digest.hexdigest() != sha256.lower():
                    return "sha256 differs from metadata"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return None


def find_problems(
    root: str | Path,
    paths: Sequence[str],
    checksums: Sequence[str | None] | None,
    mode: Verify,
    *,
    threads: int | None = None,
) -> list[tuple[str, str]]:
    """Return ``(relative path, problem)`` for every file that fails ``mode``, in input order.

    Parameters
    ----------
    root : str or Path
        The dataset folder.
    paths : sequence of str
        Image paths relative to ``root``.
    checksums : sequence of str or None, optional
        The recorded sha256 of each path (``full`` mode).
    mode : {"full", "size", "none"}
        See the module docstring.
    threads : int, optional
        Worker threads (default: twice the CPUs, at most 32).
    """
    if mode == "none" or not paths:
        return []
    sums: Sequence[str | None] = checksums if checksums is not None else [None] * len(paths)
    base = str(root)
    threads = threads or min(32, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        found = pool.map(
            lambda item: check_file(f"{base}/{item[0]}", item[1], mode),
            zip(paths, sums, strict=True),
            chunksize=256,
        )
        return [(p, why) for p, why in zip(paths, found, strict=True) if why is not None]


def checksums_of(table: Path, paths: Sequence[str]) -> list[str | None]:
    """Return the recorded sha256 of each ``path/filename`` from a built ``metadata.parquet``.

    Raises
    ------
    ConfigError
        When the table has no ``sha256`` column (``--verify full`` needs it).
    """
    import polars as pl

    if table.suffix != ".parquet" or "sha256" not in pl.read_parquet_schema(table):
        raise ConfigError(
            f"{table}: no sha256 column to check the images against (only datasets from "
            "`cytoimagenet build` record one); use --verify size"
        )
    frame = read_parquet(table, columns=["path", "filename", "sha256"])
    known = {f"{p}/{f}": s for p, f, s in frame.iter_rows()}
    return [known.get(p) for p in paths]


def problem_message(root: str | Path, problems: Sequence[tuple[str, str]], total: int) -> str:
    """One line naming how many files failed and the first few, with what to do."""
    shown = "; ".join(f"{p} ({why})" for p, why in problems[:_SHOW])
    more = f"; and {len(problems) - _SHOW} more" if len(problems) > _SHOW else ""
    return (
        f"{root}: {len(problems)} of {total} image file(s) missing or corrupt: {shown}{more}; "
        "restore them (rebuild or re-download the dataset) before training"
    )


def verify_dataset(
    root: str | Path,
    paths: Sequence[str],
    checksums: Sequence[str | None] | None,
    mode: Verify,
    *,
    rank: int = 0,
    world_size: int = 1,
    gather: Callable[[list[tuple[str, str]]], list[list[tuple[str, str]]]] | None = None,
) -> None:
    """Check the images (this process's share under ``torchrun``); raise on any problem.

    Parameters
    ----------
    gather : callable, optional
        ``gather(list) -> list of lists`` collecting every process's findings (e.g. a
        wrapper of ``torch.distributed.all_gather_object``); needed when ``world_size > 1``.

    Raises
    ------
    CytoImageNetError
        Naming how many files are missing or corrupt and the first few.
    """
    if mode == "none":
        log.info("%s: image files not checked (--verify none)", root)
        return
    began = time.perf_counter()
    mine = range(rank, len(paths), world_size)
    share = [paths[i] for i in mine]
    sums = [checksums[i] for i in mine] if checksums is not None else None
    problems = find_problems(root, share, sums, mode)
    if world_size > 1 and gather is not None:
        order = {p: i for i, p in enumerate(paths)}
        everyone = [item for part in gather(problems) for item in part]
        problems = sorted({tuple(x) for x in everyone}, key=lambda x: order.get(x[0], 0))
    if problems:
        raise CytoImageNetError(problem_message(root, problems, len(paths)))
    seconds = time.perf_counter() - began
    log.info("%s: %d image files pass --verify %s (%.1f s)", root, len(paths), mode, seconds)


def all_gather(items: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Gather every process's findings (``torch.distributed`` must be initialised)."""
    import torch.distributed as dist

    out: list[list[tuple[str, str]]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(out, items)
    return out
