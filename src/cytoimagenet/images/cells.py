"""Single cells: an image table + cell centres → one row per cell with a crop box.

Centres come from a CSV (joined to the images on the ``Metadata_*`` columns both share, or
on CellProfiler's 1-based ``ImageNumber`` when they share none) or from a folder of per-image
CSVs named by a pattern of the images' metadata (DeepProfiler's layout by default:
``{Metadata_Plate}/{Metadata_Well}-{Metadata_Site}-Nuclei.csv``).

Each cell gets a ``crop_size`` box centred on the pixel nearest its centre, as half-open
pixel bounds ``crop_x_min``/``crop_x_max``/``crop_y_min``/``crop_y_max`` (x: columns, y: rows),
and the edge policy ``crop_edge``; ``extract`` crops at read time, so no pixel is copied.
Edge policy, for boxes that leave the image: ``skip`` drops the cell here (the default: no
invented pixels; the count is reported), ``zero`` pads with zeros, ``reflect`` mirrors the
image about its border (edge pixel repeated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.planes import Edge
from cytoimagenet.images.loaddata import read_csv
from cytoimagenet.images.pattern import ScanResult

#: DeepProfiler's locations layout under its ``inputs/locations/`` folder.
DEEPPROFILER_LOCATIONS: Final = "{Metadata_Plate}/{Metadata_Well}-{Metadata_Site}-Nuclei.csv"
BOX: Final = ("crop_x_min", "crop_x_max", "crop_y_min", "crop_y_max")
EDGE: Final = "crop_edge"
_ROW: Final = "__image_row"


def _numeric(frame: pl.DataFrame, column: str, source: Path | str) -> pl.Series:
    if column not in frame.columns:
        raise ConfigError(
            f"{source}: no column {column!r} (cell centre); found {frame.columns[:8]}; "
            "name the centre columns with --x-column/--y-column"
        )
    try:
        return frame[column].cast(pl.Float64)
    except pl.exceptions.InvalidOperationError:
        raise ConfigError(f"{source}: column {column!r} holds non-numbers") from None


def _joined(images: pl.DataFrame, cells: pl.DataFrame, source: Path) -> pl.DataFrame:
    """Join cells to image rows on shared Metadata_* columns, or on ImageNumber."""
    keys = [c for c in cells.columns if c.startswith("Metadata_") and c in images.columns]
    indexed = images.with_row_index(_ROW)
    if keys:
        cast = cells.with_columns(pl.col(k).cast(images.schema[k]) for k in keys)
        return cast.join(indexed.select(_ROW, *keys), on=keys, how="inner", maintain_order="left")
    if "ImageNumber" in cells.columns:
        number = cells["ImageNumber"].cast(pl.Int64, strict=False)
        return cells.with_columns((number - 1).cast(pl.UInt32).alias(_ROW)).filter(
            pl.col(_ROW) < images.height
        )
    raise ConfigError(
        f"{source}: shares no Metadata_* column with the images and has no ImageNumber; "
        f"the images have {[c for c in images.columns if c.startswith('Metadata_')]}"
    )


def _from_folder(images: pl.DataFrame, folder: Path, pattern: str) -> tuple[pl.DataFrame, int]:
    """Read one locations CSV per image; return the cells and how many images had none."""
    parts = []
    absent = 0
    for row, meta in enumerate(images.iter_rows(named=True)):
        try:
            name = pattern.format(**meta)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"--location-pattern {pattern!r}: cannot be filled from the images' columns "
                f"({exc}); they have {[c for c in images.columns if c.startswith('Metadata_')]}"
            ) from None
        path = folder / name
        if not path.is_file():
            absent += 1
            continue
        cells = read_csv(path, allow_empty=True) if path.stat().st_size else pl.DataFrame()
        if cells.height:
            parts.append(cells.with_columns(pl.lit(row, pl.UInt32).alias(_ROW)))
    if not parts:
        example = pattern.format(**images.row(0, named=True))
        raise ConfigError(
            f"{folder}: no locations file for any image (looked for e.g. {folder / example}); "
            "check --locations and --location-pattern"
        )
    return pl.concat(parts, how="diagonal_relaxed"), absent


def _image_shapes(images: pl.DataFrame, rows: list[int]) -> dict[int, tuple[int, int]]:
    from cytoimagenet.imaging.headers import header_shape
    from cytoimagenet.imaging.readers import read_planes

    shapes = {}
    for row in rows:
        first = Path(images["channel_paths"][row][0])
        shape = header_shape(first)
        shapes[row] = shape if shape is not None else read_planes(first)[0].shape
    return shapes


def add_cells(
    scan: ScanResult,
    locations: Path,
    *,
    crop_size: int,
    edge: Edge = "skip",
    x_column: str = "Nuclei_Location_Center_X",
    y_column: str = "Nuclei_Location_Center_Y",
    location_pattern: str = DEEPPROFILER_LOCATIONS,
) -> ScanResult:
    """Turn an image table into a cell table: one row per cell centre, with its crop box.

    Parameters
    ----------
    scan : ScanResult
        Images (``channel_paths`` absolute) from any route.
    locations : Path
        A CSV of all cells, or a folder of per-image CSVs named by ``location_pattern``.
    crop_size : int
        Side of the square crop in pixels.
    edge : {"skip", "zero", "reflect"}
        What to do with boxes that leave the image (see the module docstring).
    x_column, y_column : str
        The centre's columns (x: column index, y: row index, in pixels).

    Returns
    -------
    ScanResult
        The images' columns, every ``Metadata_*`` column of the locations not already there,
        ``Metadata_Cell`` (the cell's 0-based order within its image, unless the locations
        have it), the centre columns, ``crop_*`` box columns and ``crop_edge``.
    """
    images = scan.table
    notes = list(scan.notes)
    if locations.is_dir():
        cells, absent = _from_folder(images, locations, location_pattern)
        if absent:
            notes.append(f"{absent} image(s) have no locations file, left out")
    else:
        every = read_csv(locations)
        cells = _joined(images, every, locations)
        if cells.height < every.height:
            notes.append(f"{every.height - cells.height} cell(s) of no listed image, left out")
    x = _numeric(cells, x_column, locations)
    y = _numeric(cells, y_column, locations)
    finite = (x.is_finite() & y.is_finite()).fill_null(False)
    if (~finite).sum():
        notes.append(f"{int((~finite).sum())} cell(s) without a centre (empty/NaN), left out")
    half = crop_size // 2
    cells = cells.with_columns(x.alias(x_column), y.alias(y_column)).filter(finite)
    low = [
        ((pl.col(c) + 0.5).floor().cast(pl.Int32) - half).alias(b)
        for c, b in ((x_column, BOX[0]), (y_column, BOX[2]))
    ]
    cells = cells.with_columns(low).with_columns(
        (pl.col(BOX[0]) + crop_size).alias(BOX[1]), (pl.col(BOX[2]) + crop_size).alias(BOX[3])
    )
    if cells.height == 0:
        raise ConfigError(f"{locations}: no cell of the images has a centre")
    if "Metadata_Cell" not in cells.columns:
        cells = cells.with_columns(pl.int_range(pl.len()).over(_ROW).alias("Metadata_Cell"))
    dropped = list(scan.dropped)
    if edge == "skip":
        shapes = _image_shapes(images, cells[_ROW].unique().sort().to_list())
        h = pl.Series([shapes[r][0] for r in cells[_ROW]])
        w = pl.Series([shapes[r][1] for r in cells[_ROW]])
        inside = (
            (cells[BOX[0]] >= 0)
            & (cells[BOX[2]] >= 0)
            & (cells[BOX[1]] <= w)
            & (cells[BOX[3]] <= h)
        )
        out = int((~inside).sum())
        if out:
            notes.append(f"{out} cell(s) whose {crop_size}px box leaves the image, skipped")
            dropped += [
                f"image row {r}: cell at x={cx:g}, y={cy:g} (box leaves the image)"
                for r, cx, cy in cells.filter(~inside).select(_ROW, x_column, y_column).rows()
            ]
        cells = cells.filter(inside)
        if cells.height == 0:
            raise ConfigError(
                f"every cell's {crop_size}px box leaves its image; use a smaller --crop-size "
                "or --edge zero|reflect"
            )
    extra = [c for c in cells.columns if c.startswith("Metadata_") and c not in images.columns]
    table = (
        cells.select(_ROW, *extra, x_column, y_column, *BOX)
        .with_columns(pl.lit(edge).alias(EDGE))
        .join(images.with_row_index(_ROW), on=_ROW, how="left", maintain_order="left")
        .sort(_ROW, maintain_order=True)
    )
    front = [c for c in images.columns if c.startswith("Metadata_")] + extra
    rest = [x_column, y_column, *BOX, EDGE, "channels", "channel_paths"]
    return ScanResult(table.select(*front, *rest), notes, dropped)
