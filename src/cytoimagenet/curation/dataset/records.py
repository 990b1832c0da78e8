"""Shard records: the durable "this shard is done" marks of a build.

A record is a small Parquet file, ``OUT/.build/shards/NNNNNN.parquet``, written last for its
shard: to a temporary name, fsynced, renamed into place, and the folder fsynced, so after a
crash or a power cut a record is either absent or complete. A record that cannot be read
anyway (a damaged disk, a hand edit) is not trusted: it is deleted and its shard redone,
which rewrites the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.io.parquet import read_parquet

#: Columns of a shard record.
RECORD_COLUMNS = (
    "idx",
    "status",
    "reason",
    "detail",
    "path",
    "filename",
    "crop",
    "scaling",
    "x_min",
    "x_max",
    "y_min",
    "y_max",
    "width",
    "height",
    "nbytes",
    "sha256",
)

_TYPES = {"crop": pl.Boolean, "scaling": pl.Float64, "nbytes": pl.Int64}
_INTS = ("x_min", "x_max", "y_min", "y_max", "width", "height")
RECORD_SCHEMA = {c: _TYPES.get(c, pl.Int64 if c in _INTS else pl.String) for c in RECORD_COLUMNS}

#: Statuses a record row may have.
STATUSES = frozenset({"ok", "rejected", "crop-dropped"})


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's: its entries, i.e. a rename) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def record_path(results: Path, shard_id: int) -> Path:
    """Where the record of shard ``shard_id`` lives."""
    return Path(results) / f"{shard_id:06d}.parquet"


def write_record(path: Path, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Write a shard's record durably (temp name, fsync, rename, fsync folder); return it."""
    frame = pl.DataFrame(rows, schema=RECORD_SCHEMA, orient="row")
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
        fsync_path(tmp)
    fsync_path(path.parent)
    return frame


def _panics() -> tuple[type[BaseException], ...]:
    try:
        from polars.exceptions import PanicException
    except ImportError:  # pragma: no cover - every supported polars has it
        return ()
    return (PanicException,)


def read_record(path: Path) -> pl.DataFrame | None:
    """Return a record, or ``None`` when it is unreadable or not a record (so: redo it)."""
    try:
        frame = read_parquet(path)
    except (Exception, *_panics()):  # polars panics on some damaged files
        return None
    if dict(frame.schema) != RECORD_SCHEMA:
        return None
    if not frame["status"].is_in(list(STATUSES)).all() or frame["idx"].null_count():
        return None
    return frame


def load_records(results: Path, shard_ids: list[int]) -> dict[int, pl.DataFrame]:
    """Read every valid record among ``shard_ids``; delete the damaged ones.

    A shard whose record is missing or was deleted here is absent from the result, so the
    build runs it (again).
    """
    found: dict[int, pl.DataFrame] = {}
    for shard_id in shard_ids:
        path = record_path(results, shard_id)
        if not path.is_file():
            continue
        frame = read_record(path)
        if frame is None:
            path.unlink(missing_ok=True)
            continue
        found[shard_id] = frame
    return found
