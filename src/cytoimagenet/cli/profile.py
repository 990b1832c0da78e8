"""The ``profile`` command: aggregate, normalise and select features with pycytominer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("profile")(profile)


def _list(text: str) -> list[str]:
    return [t for t in text.split(",") if t.strip()]


@friendly
def profile(
    features: Annotated[Path, typer.Option(help="Feature table (.parquet, .csv, .csv.gz).")],
    out: Annotated[Path, typer.Option(help="Folder for the step tables and provenance.")],
    group_by: Annotated[
        str, typer.Option(help="Comma-separated columns of one profile.")
    ] = "Metadata_Plate,Metadata_Well",
    operation: Annotated[str, typer.Option(help="Aggregation: median | mean.")] = "median",
    control: Annotated[
        str | None,
        typer.Option(help="Control profiles, COL=VALUE (e.g. Metadata_Compound=DMSO)."),
    ] = None,
    normalize: Annotated[
        str, typer.Option(help="zscore | mad_robustize | spherize | none.")
    ] = "zscore",
    per_plate: Annotated[
        bool,
        typer.Option("--per-plate/--all-plates", help="Normalise each plate on its controls."),
    ] = True,
    plate_column: Annotated[str, typer.Option(help="Plate column.")] = "Metadata_Plate",
    feature_select: Annotated[
        str,
        typer.Option(
            help="Comma-separated: variance_threshold, correlation_threshold, blocklist, "
            "drop_na_columns; or none."
        ),
    ] = "variance_threshold,correlation_threshold,blocklist",
    ignore_non_numeric: Annotated[
        bool, typer.Option(help="Drop non-numeric, non-Metadata_ columns instead of refusing.")
    ] = False,
) -> None:
    """Aggregate, normalise against controls and select features; a Parquet per step."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.profiling.step import ProfileJob, require_pycytominer, run_profile

    job = validate_job(
        ProfileJob,
        features=features,
        out=out,
        group_by=_list(group_by),
        operation=operation,
        control=control,
        normalize=normalize,
        per_plate=per_plate,
        plate_column=plate_column,
        feature_select=_list(feature_select),
        ignore_non_numeric=ignore_non_numeric,
    )
    require_pycytominer()
    with reading(job.features):
        steps = run_profile(job)
    for step in steps:
        typer.echo(f"{step['step']}: {step['rows']} profiles × {step['features']} features")
    typer.echo(f"wrote {job.out}")
