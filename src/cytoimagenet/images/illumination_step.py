"""The ``illumination`` step: an image table → one flat field per plate and channel.

Writes ``OUT/illumination.json`` (the plate column, channel names, settings, and the file of
every plate and channel) and one ``.npy`` per plate and channel (``float32``, every value ≥ 1,
CellProfiler's convention). ``extract --illumination OUT`` divides every image by its plate's
flat fields; ``--illumination FILE.npy`` (``H × W`` for every channel, or ``C × H × W``) or a
(multi-page) TIFF applies one flat field to every image.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Final, Literal

import numpy as np
import polars as pl
from pydantic import Field

from cytoimagenet.config import _Job
from cytoimagenet.errors import ConfigError
from cytoimagenet.fields import OutputDir, existing_dir, existing_file
from cytoimagenet.imaging.illumination import flat_field
from cytoimagenet.imaging.readers import read_field, read_planes
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.provenance import write_provenance

INDEX: Final = "illumination.json"
#: Plate columns looked for, in order, when none is given.
PLATE_COLUMNS: Final = ("Metadata_Plate", "plate", "Plate", "Metadata_plate")
#: The group of every image when the table has no plate column.
ALL: Final = "all"


class IlluminationJob(_Job):
    """Compute per-plate, per-channel flat fields from the images of a table.

    Attributes
    ----------
    images : Path
        Image table (as ``extract`` reads it); single-cell rows count their field once.
    out : Path
        Output folder.
    plate_column : str, optional
        Column that groups images; default: the first of :data:`PLATE_COLUMNS` present,
        else every image in one group.
    statistic : {"mean", "median"}
        Pixel-wise aggregate of a group's images.
    smoothing : {"gaussian", "median"}
        Filter that leaves only the illumination pattern.
    filter_size : int, optional
        The filter's width in pixels (default: a tenth of the shorter side).
    max_images : int
        At most this many images per plate (evenly spaced), bounding time and, for the
        median, memory.
    """

    images: Annotated[Path, existing_file("images table")]
    out: OutputDir
    root: Annotated[Path | None, existing_dir("the images' root folder")] = None
    plate_column: str | None = None
    statistic: Literal["mean", "median"] = "mean"
    smoothing: Literal["gaussian", "median"] = "gaussian"
    filter_size: int | None = Field(default=None, ge=3)
    max_images: int = Field(default=500, ge=1)
    workers: int = Field(default=2, ge=1, le=64)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def plate_column(frame: pl.DataFrame, given: str | None) -> str | None:
    """Return the column that names each row's plate (``None``: one group)."""
    if given is not None:
        if given not in frame.columns:
            raise ConfigError(f"--plate-column {given!r} is not in the table: {frame.columns[:8]}")
        return given
    return next((c for c in PLATE_COLUMNS if c in frame.columns), None)


def _plates(frame: pl.DataFrame, column: str | None) -> list[str]:
    if column is None:
        return [ALL] * frame.height
    return [ALL if v is None else str(v) for v in frame[column].to_list()]


def _evenly(items: list, most: int) -> list:
    if len(items) <= most:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, most).round().astype(int)]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array)


def run_illumination(job: IlluminationJob) -> dict[str, object]:
    """Compute and write every plate's flat fields; return the index written."""
    from cytoimagenet.features.step import read_images_table

    frame, files = read_images_table(job.images, job.root)
    column = plate_column(frame, job.plate_column)
    groups: dict[str, list[tuple[Path, ...]]] = defaultdict(list)
    for plate, row in zip(_plates(frame, column), files, strict=True):
        if tuple(row) not in groups[plate]:  # cells of one field: the field once
            groups[plate].append(tuple(row))
    names = frame["channels"][0].to_list() if "channels" in frame.columns else None
    job.out.mkdir(parents=True, exist_ok=True)
    plates: dict[str, list[str]] = {}
    used = {}
    for plate, fields in sorted(groups.items()):
        fields = _evenly(fields, job.max_images)
        used[plate] = len(fields)
        with ThreadPoolExecutor(max_workers=job.workers) as pool:
            read = list(pool.map(read_field, fields))
        counts = {len(planes) for planes in read}
        if len(counts) != 1:
            raise ConfigError(f"plate {plate}: images have {sorted(counts)} channel planes")
        n = counts.pop()
        names = names if names and len(names) == n else [str(c) for c in range(n)]
        written = []
        for c in range(n):
            flat = flat_field(
                (planes[c] for planes in read),
                statistic=job.statistic,
                smoothing=job.smoothing,
                filter_size=job.filter_size,
            )
            name = f"{_safe(plate)}_{c}_{_safe(names[c])}.npy"
            _save_npy(job.out / name, flat)
            written.append(name)
        plates[plate] = written
    index = {
        "plate_column": column,
        "channels": names,
        "plates": plates,
        "images_used": used,
        "settings": job.model_dump(mode="json", include={"statistic", "smoothing", "filter_size"}),
    }
    with atomic_path(job.out / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=2), encoding="utf-8")
    write_provenance(
        job.out / "illumination.provenance.json",
        command="illumination",
        config=job.resolved(),
        inputs=[job.images],
        extra={"plates": len(plates), "images_used": used},
    )
    return index


def _load_file(path: Path) -> list[np.ndarray]:
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot be read as a .npy flat field ({exc})") from None
        planes = [array] if array.ndim == 2 else list(array) if array.ndim == 3 else []
    else:
        planes = read_planes(path)
    if not planes:
        raise ConfigError(f"{path}: a flat field must be H x W or C x H x W")
    out = [np.asarray(p, np.float32) for p in planes]
    if any(not np.isfinite(p).all() or p.min() <= 0 for p in out):
        raise ConfigError(f"{path}: a flat field must be finite and positive everywhere")
    return out


def row_flats(path: Path, frame: pl.DataFrame) -> Sequence[list[np.ndarray]]:
    """Each row's flat fields from an ``illumination`` folder or a single file.

    Raises
    ------
    ConfigError
        When the folder has no index, the table lacks its plate column, or a plate of the
        table has no flat field.
    """
    if path.is_file():
        return [_load_file(path)] * frame.height
    index_path = path / INDEX
    if not index_path.is_file():
        raise ConfigError(
            f"{path}: no {INDEX}; give the folder `cytoimagenet illumination` wrote, or a "
            ".npy/.tif flat field"
        )
    index = json.loads(index_path.read_text(encoding="utf-8"))
    column = index.get("plate_column")
    if column is not None and column not in frame.columns:
        raise ConfigError(f"{index_path}: plates are named by {column!r}, not in the table")
    rows = _plates(frame, column)
    missing = sorted(set(rows) - set(index["plates"]))
    if missing:
        raise ConfigError(
            f"{index_path}: no flat field for plate(s) {', '.join(missing[:3])}; compute them "
            "with `cytoimagenet illumination` on this table"
        )
    loaded = {p: [_load_file(path / n)[0] for n in index["plates"][p]] for p in set(rows)}
    return [loaded[p] for p in rows]
