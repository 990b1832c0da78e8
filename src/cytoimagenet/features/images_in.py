"""What ``extract`` reads besides whole files: single-cell crop boxes and flat fields.

An image table with ``crop_x_min``/``crop_x_max``/``crop_y_min``/``crop_y_max`` (written by
``cytoimagenet images --locations … --crop-size N``) is read as crops of its fields, cut at
read time, with the row's ``crop_edge`` policy; ``--illumination`` divides each field by its
plate's flat fields first (:mod:`cytoimagenet.images.illumination_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.planes import EDGES, Box, FileFields


def crop_boxes(frame: pl.DataFrame, path: Path) -> tuple[list[Box], list[str]] | None:
    """Each row's crop box and edge policy, or ``None`` for a table of whole fields.

    Raises
    ------
    ConfigError
        When only some box columns are present, a box is empty or inverted, or an edge
        policy is unknown.
    """
    from cytoimagenet.images.cells import BOX, EDGE

    present = [c for c in BOX if c in frame.columns]
    if not present:
        return None
    if len(present) != len(BOX):
        missing = [c for c in BOX if c not in frame.columns]
        raise ConfigError(f"{path}: has {present} but not {missing}; a crop needs all four")
    try:
        box = frame.select(pl.col(c).cast(pl.Int64) for c in BOX)
    except pl.exceptions.InvalidOperationError:
        raise ConfigError(f"{path}: crop box columns {list(BOX)} must hold integers") from None
    if box.null_count().sum_horizontal()[0]:
        raise ConfigError(f"{path}: a crop box column is empty in some row")
    bad = box.filter((pl.col(BOX[1]) <= pl.col(BOX[0])) | (pl.col(BOX[3]) <= pl.col(BOX[2])))
    if bad.height:
        raise ConfigError(f"{path}: crop box {bad.row(0)} is empty (max must exceed min)")
    edges = frame[EDGE].to_list() if EDGE in frame.columns else ["skip"] * frame.height
    unknown = sorted({str(e) for e in edges} - set(EDGES))
    if unknown:
        raise ConfigError(f"{path}: crop_edge {unknown[0]!r}; expected one of {list(EDGES)}")
    return [tuple(r) for r in box.rows()], edges  # type: ignore[misc]


def table_fields(
    frame: pl.DataFrame,
    files: list[list[Path]],
    path: Path,
    illumination: Path | None = None,
) -> Sequence[Sequence[Path]] | FileFields:
    """Return what ``extract`` reads: the files as they are, or crops / corrected fields.

    Parameters
    ----------
    frame, files : as :func:`~cytoimagenet.features.step.read_images_table` returns them
    path : Path
        The table (named in errors).
    illumination : Path, optional
        An ``illumination`` folder or a flat-field file.
    """
    boxes = crop_boxes(frame, path)
    flats = None
    if illumination is not None:
        from cytoimagenet.images.illumination_step import row_flats

        flats = row_flats(illumination, frame)
    if boxes is None and flats is None:
        return files
    return FileFields(
        files,
        boxes=boxes[0] if boxes else None,
        edge=boxes[1] if boxes else None,  # type: ignore[arg-type]
        flats=flats,
    )
