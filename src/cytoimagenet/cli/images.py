"""Image commands: ``images`` (a lab's own images → image table) and ``illumination``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the image commands to ``app``."""
    app.command("images")(images)
    app.command("illumination")(illumination)


def _split(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",")] if text else None


@friendly
def images(
    out: Annotated[Path, typer.Option(help="Output image table (.parquet).")],
    folder: Annotated[
        Path | None, typer.Option(help="Plate folder (with --pattern).", show_default=False)
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(
            help="Filename pattern under --folder with named fields, e.g. "
            "'{plate}/{well}_s{site}_w{channel}.tif'; {name:REGEX} gives a field's expression.",
            show_default=False,
        ),
    ] = None,
    loaddata: Annotated[
        Path | None,
        typer.Option(
            help="CellProfiler LoadData CSV (FileName_/PathName_/Metadata_*).", show_default=False
        ),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            help="DeepProfiler-style index CSV: a path column per channel.", show_default=False
        ),
    ] = None,
    channels: Annotated[
        str | None,
        typer.Option(
            help="Channels to use, in order, comma-separated [default: all].", show_default=False
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Where relative paths of --loaddata/--index start [default: its folder].",
            show_default=False,
        ),
    ] = None,
    path_map: Annotated[
        list[str] | None,
        typer.Option(help="OLD=NEW path prefix to rewrite (repeatable).", show_default=False),
    ] = None,
    allow_incomplete: Annotated[
        bool, typer.Option(help="Drop images that lack a channel instead of failing.")
    ] = False,
    ignore_unmatched: Annotated[
        bool, typer.Option(help="Leave out image files the pattern does not match.")
    ] = False,
    allow_missing: Annotated[
        bool, typer.Option(help="Drop CSV rows whose files do not exist.")
    ] = False,
    locations: Annotated[
        Path | None,
        typer.Option(
            help="Cell centres: a CSV, or a folder of per-image CSVs (single cells).",
            show_default=False,
        ),
    ] = None,
    location_pattern: Annotated[
        str, typer.Option(help="Per-image locations file under a --locations folder.")
    ] = "{Metadata_Plate}/{Metadata_Well}-{Metadata_Site}-Nuclei.csv",
    x_column: Annotated[str, typer.Option(help="Cell centre x (column) column.")] = (
        "Nuclei_Location_Center_X"
    ),
    y_column: Annotated[str, typer.Option(help="Cell centre y (row) column.")] = (
        "Nuclei_Location_Center_Y"
    ),
    crop_size: Annotated[
        int | None, typer.Option(help="Side of single-cell crops in pixels.", show_default=False)
    ] = None,
    edge: Annotated[
        str,
        typer.Option(help="Crops leaving the image: skip (drop the cell) | zero | reflect."),
    ] = "skip",
) -> None:
    """Build the image table `extract` reads from a plate folder, LoadData CSV or index."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.errors import ConfigError
    from cytoimagenet.images.step import ImagesJob, parse_path_map, run_images, summarize

    try:
        pairs = parse_path_map(path_map or [])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    job = validate_job(
        ImagesJob,
        out=out,
        folder=folder,
        pattern=pattern,
        loaddata=loaddata,
        index=index,
        channels=_split(channels),
        root=root,
        path_map=pairs,
        allow_incomplete=allow_incomplete,
        ignore_unmatched=ignore_unmatched,
        allow_missing=allow_missing,
        locations=locations,
        location_pattern=location_pattern,
        x_column=x_column,
        y_column=y_column,
        crop_size=crop_size,
        edge=edge,
    )
    scan = run_images(job)
    typer.echo(summarize(scan))
    typer.echo(f"wrote {job.out}")


@friendly
def illumination(
    images: Annotated[Path, typer.Option(help="Image table (.parquet/.csv).")],
    out: Annotated[Path, typer.Option(help="Output folder for the flat fields.")],
    root: Annotated[
        Path | None, typer.Option(help="Folder the table's paths are relative to.")
    ] = None,
    plate_column: Annotated[
        str | None,
        typer.Option(
            help="Column grouping images [default: Metadata_Plate if present, else "
            "all images together].",
            show_default=False,
        ),
    ] = None,
    statistic: Annotated[str, typer.Option(help="mean | median of the images.")] = "mean",
    smoothing: Annotated[str, typer.Option(help="gaussian | median filter.")] = "gaussian",
    filter_size: Annotated[
        int | None,
        typer.Option(
            help="Filter width in pixels [default: a tenth of the shorter side].",
            show_default=False,
        ),
    ] = None,
    max_images: Annotated[int, typer.Option(help="At most this many images per plate.")] = 500,
    workers: Annotated[int, typer.Option(help="Threads reading images.")] = 2,
) -> None:
    """Compute per-plate, per-channel flat fields (CellProfiler's illumination correction)."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.images.illumination_step import IlluminationJob, run_illumination

    job = validate_job(
        IlluminationJob,
        images=images,
        out=out,
        root=root,
        plate_column=plate_column,
        statistic=statistic,
        smoothing=smoothing,
        filter_size=filter_size,
        max_images=max_images,
        workers=workers,
    )
    with reading(job.images):
        index = run_illumination(job)
    plates = index["plates"]
    typer.echo(
        f"flat fields of {len(plates)} plate(s) x {len(index['channels'])} channel(s) "
        f"({', '.join(index['channels'])}), by {index['plate_column'] or 'one group'}"
    )
    typer.echo(f"wrote {job.out}")
