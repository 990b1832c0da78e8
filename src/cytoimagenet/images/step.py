"""The ``images`` step: a plate folder, LoadData CSV or index (+ cell centres) → image table.

The table is what ``extract`` reads: ``Metadata_*`` columns, ``channels`` (names, a list),
``channel_paths`` (a list, relative to the table's own folder, so ``extract`` needs no
``--root``), and for single cells the ``crop_*`` box columns (see
:mod:`cytoimagenet.images.cells`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.fields import ParquetOut, existing_dir, existing_file
from cytoimagenet.images.cells import DEEPPROFILER_LOCATIONS, add_cells
from cytoimagenet.images.loaddata import read_index, read_loaddata
from cytoimagenet.images.pattern import CHANNEL, ScanResult, compile_pattern, scan_folder
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.provenance import write_provenance


class ImagesJob(_Job):
    """Build an image table from one of three sources, optionally as single-cell crops.

    Attributes
    ----------
    out : Path
        Output Parquet table.
    folder, pattern : Path, str
        A plate folder and a filename pattern with named fields (route a).
    loaddata : Path
        A CellProfiler LoadData CSV (route b).
    index : Path
        A DeepProfiler-style index CSV: a file-path column per channel (route c).
    channels : list of str, optional
        Channels to use, in order (``{channel}`` values, ``FileName_`` suffixes, or index
        columns).
    root : Path, optional
        Folder relative paths of a LoadData CSV or index start from (default: its folder).
    path_map : list of (str, str)
        ``OLD=NEW`` path prefixes to rewrite in a LoadData CSV or index.
    locations : Path, optional
        Cell centres: a CSV, or a folder of per-image CSVs named by ``location_pattern``.
    crop_size : int, optional
        Side of the single-cell crops (with ``locations``).
    edge : {"skip", "zero", "reflect"}
        Boxes that leave the image: drop the cell, pad with zeros, or mirror.
    """

    out: ParquetOut
    folder: Annotated[Path | None, existing_dir("the plate folder")] = None
    pattern: str | None = None
    loaddata: Annotated[Path | None, existing_file("LoadData CSV")] = None
    index: Annotated[Path | None, existing_file("index CSV")] = None
    channels: list[str] | None = Field(default=None, min_length=1)
    root: Annotated[Path | None, existing_dir("the images' root folder")] = None
    path_map: tuple[tuple[str, str], ...] = ()
    allow_incomplete: bool = False
    ignore_unmatched: bool = False
    allow_missing: bool = False
    locations: Path | None = None
    location_pattern: str = DEEPPROFILER_LOCATIONS
    x_column: str = "Nuclei_Location_Center_X"
    y_column: str = "Nuclei_Location_Center_Y"
    crop_size: int | None = Field(default=None, ge=2, le=4096)
    edge: Literal["skip", "zero", "reflect"] = "skip"

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (len(set(value)) != len(value) or not all(value)):
            raise ValueError(f"{value}: channels must be distinct and not empty")
        return value

    @field_validator("locations")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value}: no such locations file or folder")
        return value

    @model_validator(mode="after")
    def _one_route(self) -> ImagesJob:
        routes = [r for r in ("folder", "loaddata", "index") if getattr(self, r) is not None]
        if len(routes) != 1:
            raise ValueError(
                "give exactly one of --folder (with --pattern), --loaddata or --index"
                + (f" (got {', '.join('--' + r for r in routes)})" if routes else "")
            )
        if (self.folder is None) != (self.pattern is None):
            raise ValueError("--folder and --pattern go together")
        if self.pattern is not None:
            fields = compile_pattern(self.pattern).fields  # ConfigError: a clear line
            if self.channels and CHANNEL not in fields:
                raise ValueError("--channels needs a {channel} field in --pattern")
        if self.folder is not None and (self.root is not None or self.path_map):
            raise ValueError("--root and --path-map apply to --loaddata and --index")
        if (self.locations is None) != (self.crop_size is None):
            raise ValueError("--locations and --crop-size go together (single-cell crops)")
        return self


def parse_path_map(items: list[str]) -> list[tuple[str, str]]:
    """``["OLD=NEW", …]`` → pairs; a ``ValueError`` names an item without ``=``."""
    pairs = []
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise ValueError(f"--path-map {item!r}: write OLD=NEW")
        pairs.append((old, new))
    return pairs


def collect_images(job: ImagesJob) -> ScanResult:
    """Run the job's route (and the cell step) and return the table with absolute paths."""
    if job.folder is not None and job.pattern is not None:
        scan = scan_folder(
            job.folder,
            compile_pattern(job.pattern),
            channels=job.channels,
            allow_incomplete=job.allow_incomplete,
            ignore_unmatched=job.ignore_unmatched,
        )
    else:
        reader = read_loaddata if job.loaddata is not None else read_index
        scan = reader(
            job.loaddata or job.index,  # type: ignore[arg-type]
            channels=job.channels,
            root=job.root,
            path_map=job.path_map,
            allow_missing=job.allow_missing,
        )
    if job.locations is not None and job.crop_size is not None:
        scan = add_cells(
            scan,
            job.locations,
            crop_size=job.crop_size,
            edge=job.edge,
            x_column=job.x_column,
            y_column=job.y_column,
            location_pattern=job.location_pattern,
        )
    return scan


def relative_paths(table: pl.DataFrame, base: Path) -> pl.DataFrame:
    """Make ``channel_paths`` relative to ``base`` (the output table's folder)."""
    start = base.resolve()
    rel = [
        [Path(os.path.relpath(Path(p).resolve(), start)).as_posix() for p in row]
        for row in table["channel_paths"]
    ]
    return table.with_columns(pl.Series("channel_paths", rel, pl.List(pl.String)))


def run_images(job: ImagesJob) -> ScanResult:
    """Build the table, write ``job.out`` (+ ``.provenance.json``) atomically, return it."""
    scan = collect_images(job)
    table = relative_paths(scan.table, job.out.parent)
    with atomic_path(job.out) as tmp:
        table.write_parquet(tmp)
    inputs = [p for p in (job.loaddata, job.index) if p is not None]
    if job.locations is not None and job.locations.is_file():
        inputs.append(job.locations)
    write_provenance(
        job.out.with_name(f"{job.out.stem}.provenance.json"),
        command="images",
        config=job.resolved(),
        inputs=inputs,
        extra={"rows": table.height, "notes": scan.notes, "dropped": scan.dropped[:1000]},
    )
    return ScanResult(table, scan.notes, scan.dropped)


def summarize(scan: ScanResult) -> str:
    """Return the printed summary: rows, channels, metadata columns, notes, drops."""
    table = scan.table
    cells = "crop_x_min" in table.columns
    channels = table["channels"][0].to_list() if table.height else []
    meta = [c for c in table.columns if c.startswith("Metadata_")]
    lines = [
        f"{table.height} {'cells' if cells else 'images'}, channels: {', '.join(channels)}",
        f"metadata: {', '.join(meta) or 'none'}",
    ]
    if "Metadata_Plate" in table.columns:
        lines.append(f"plates: {table['Metadata_Plate'].n_unique()}")
    lines += [f"note: {n}" for n in scan.notes]
    if scan.dropped:
        lines.append(f"dropped: {len(scan.dropped)} (e.g. {scan.dropped[0]})")
    return "\n".join(lines)
