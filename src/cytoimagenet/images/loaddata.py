"""Image tables from a CellProfiler LoadData CSV or a DeepProfiler-style index.

LoadData (CellProfiler's input module) has ``FileName_<channel>`` and ``PathName_<channel>``
columns for each channel and ``Metadata_*`` columns. A DeepProfiler index has one column per
channel holding the file's path (relative to the project's image folder) and ``Metadata_*``
columns. Both become one row per image: the ``Metadata_*`` columns as they are (text),
``channels`` and ``channel_paths`` (absolute).

Relative paths are resolved against ``root`` (the CSV's folder by default); ``path_map``
rewrites path prefixes first, for CSVs written on another machine
(``/home/ubuntu/bucket/=/data/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Final

import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.images.pattern import ScanResult, _listing
from cytoimagenet.imaging.readers import READERS
from cytoimagenet.io.parquet import native_stderr_held

FILE: Final = "FileName_"
PATH: Final = "PathName_"


def read_csv(path: Path, *, allow_empty: bool = False) -> pl.DataFrame:
    """Read a CSV as text columns, naming ``path`` when it cannot be read (or has no rows)."""
    from polars.exceptions import PanicException, PolarsError

    try:
        with native_stderr_held():
            frame = pl.read_csv(path, infer_schema=False)
    except (PolarsError, PanicException, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ConfigError(f"{path}: cannot be read as CSV ({reason})") from None
    if frame.height == 0 and not allow_empty:
        raise ConfigError(f"{path}: the CSV has no rows")
    return frame


def _map_path(text: str, path_map: Sequence[tuple[str, str]]) -> str:
    for old, new in path_map:
        if text.startswith(old):
            return new + text[len(old) :]
    return text


def _resolve(text: str, root: Path, path_map: Sequence[tuple[str, str]]) -> str:
    mapped = _map_path(text.replace("\\", "/"), path_map)
    return str(root / mapped) if not PurePosixPath(mapped).is_absolute() else mapped


def _check_channels(found: list[str], channels: Sequence[str] | None, what: str) -> list[str]:
    if not found:
        raise ConfigError(what)
    if channels is None:
        return found
    unknown = [c for c in channels if c not in found]
    if unknown:
        raise ConfigError(f"--channels {', '.join(unknown)} not in the table; it has {found}")
    return list(channels)


def _finish(
    frame: pl.DataFrame,
    paths: list[list[str]],
    channels: list[str],
    source: Path,
    allow_missing: bool,
) -> ScanResult:
    """Keep ``Metadata_*``, add ``channels``/``channel_paths``, check that files exist."""
    missing_rows = [i for i, row in enumerate(paths) if not all(Path(p).is_file() for p in row)]
    dropped: list[str] = []
    if missing_rows:
        shown = [next(p for p in paths[i] if not Path(p).is_file()) for i in missing_rows]
        if not allow_missing:
            raise ConfigError(
                f"{source}: {len(missing_rows)} row(s) name image files that do not exist: "
                f"{_listing(shown)}; check --root / --path-map, or pass --allow-missing"
            )
        dropped = [f"row {i}: {s} missing" for i, s in zip(missing_rows, shown, strict=True)]
    keep = sorted(set(range(frame.height)) - set(missing_rows))
    if not keep:
        raise ConfigError(f"{source}: no row's image files exist")
    meta = frame.select([c for c in frame.columns if c.startswith("Metadata_")])[keep]
    table = meta.with_columns(
        pl.Series("channels", [channels] * len(keep), pl.List(pl.String)),
        pl.Series("channel_paths", [paths[i] for i in keep], pl.List(pl.String)),
    )
    return ScanResult(table, [], dropped)


def _texts(frame: pl.DataFrame, column: str, source: Path) -> list[str]:
    values = frame[column]
    if values.null_count():
        row = values.is_null().arg_true()[0]
        raise ConfigError(f"{source}: column {column!r} is empty in row {row}")
    return values.to_list()


def read_loaddata(
    path: Path,
    *,
    channels: Sequence[str] | None = None,
    root: Path | None = None,
    path_map: Sequence[tuple[str, str]] = (),
    allow_missing: bool = False,
) -> ScanResult:
    """Read a CellProfiler LoadData CSV into an image table.

    Parameters
    ----------
    path : Path
        The CSV: ``FileName_<ch>`` + ``PathName_<ch>`` per channel, ``Metadata_*``.
    channels : sequence of str, optional
        Channels to use, in order; default: every ``FileName_`` column, in the CSV's order.
    root : Path, optional
        Folder that relative ``PathName_`` values start from; the CSV's folder by default.
    path_map : sequence of (old, new)
        Path prefixes to rewrite before resolving.
    allow_missing : bool
        Drop rows whose files do not exist (listed) instead of failing.

    Raises
    ------
    ConfigError
        When the CSV has no ``FileName_`` columns, lacks a ``PathName_``, uses multi-frame
        columns, or names missing files.
    """
    frame = read_csv(path)
    found = [c.removeprefix(FILE) for c in frame.columns if c.startswith(FILE)]
    order = _check_channels(
        found,
        channels,
        f"{path}: no FileName_<channel> columns; a LoadData CSV has FileName_ and PathName_ "
        f"columns per channel (found {frame.columns[:6]})",
    )
    frames = [c for c in frame.columns if c.startswith(("Frame_", "Series_"))]
    if frames:
        raise ConfigError(
            f"{path}: multi-frame LoadData ({frames[0]}) is not supported; give one file per "
            "channel"
        )
    no_path = [c for c in order if f"{PATH}{c}" not in frame.columns]
    if no_path:
        raise ConfigError(f"{path}: FileName_{no_path[0]} has no PathName_{no_path[0]} column")
    base = root or path.parent
    columns = [
        [
            _resolve(f"{d.rstrip('/')}/{n}", base, path_map)
            for d, n in zip(
                _texts(frame, f"{PATH}{c}", path), _texts(frame, f"{FILE}{c}", path), strict=True
            )
        ]
        for c in order
    ]
    paths = [list(row) for row in zip(*columns, strict=True)]
    return _finish(frame, paths, order, path, allow_missing)


def read_index(
    path: Path,
    *,
    channels: Sequence[str] | None = None,
    root: Path | None = None,
    path_map: Sequence[tuple[str, str]] = (),
    allow_missing: bool = False,
) -> ScanResult:
    """Read a DeepProfiler-style index: one column of file paths per channel + ``Metadata_*``.

    ``channels`` names the channel columns, in order; by default every column outside
    ``Metadata_*`` whose first value ends in an image suffix. Paths are relative to ``root``
    (the CSV's folder by default). Other arguments as :func:`read_loaddata`.
    """
    frame = read_csv(path)
    first = frame.row(0, named=True)
    found = [
        c
        for c in frame.columns
        if not c.startswith("Metadata_")
        and isinstance(first[c], str)
        and Path(first[c]).suffix.lower() in READERS
    ]
    order = _check_channels(
        found if channels is None else [c for c in frame.columns if not c.startswith("Metadata_")],
        channels,
        f"{path}: no column holds image file names; name the channel columns with --channels",
    )
    base = root or path.parent
    columns = [[_resolve(v, base, path_map) for v in _texts(frame, c, path)] for c in order]
    paths = [list(row) for row in zip(*columns, strict=True)]
    return _finish(frame, paths, order, path, allow_missing)
