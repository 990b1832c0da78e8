"""The ``evaluate`` command: kNN accuracy of a feature table on BBBC021, COOS-7 or CYCLoPs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("evaluate")(evaluate)


@friendly
def evaluate(
    benchmark: Annotated[str, typer.Argument(help="bbbc021 | coos7 | cyclops")],
    features: Annotated[
        Path,
        typer.Option(help="Feature table (.parquet, .csv, .csv.gz): Metadata_* + numeric columns."),
    ],
    out: Annotated[Path, typer.Option(help="RESULT.json to write.")],
    protocol: Annotated[
        str | None, typer.Option(help="BBBC021: cytoimagenet (default) | standard.")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="cosine | pearson | euclidean (default: the protocol's).")
    ] = None,
    normalize: Annotated[
        str | None, typer.Option(help="none | zscore | plate-dmso (default: the protocol's).")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", help="Neighbours (default: the protocol's).")] = (
        None
    ),
    sphere: Annotated[
        bool | None,
        typer.Option(
            "--sphere/--no-sphere", help="BBBC021: sphere (TVN) on DMSO after normalising."
        ),
    ] = None,
    sphere_ridge: Annotated[
        float, typer.Option(help="Sphering ridge, relative to the mean DMSO eigenvalue.")
    ] = 1.0,
    moa: Annotated[
        Path | None,
        typer.Option(help="BBBC021_v1_moa.csv, joined when the table has no Metadata_MoA."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Feature-set name for reports (default: file stem).")
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates (standard).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    ignore_non_numeric: Annotated[
        bool, typer.Option(help="Drop non-numeric, non-Metadata_ columns instead of refusing.")
    ] = False,
) -> None:
    """Score precomputed features with a benchmark's exact kNN protocol; write RESULT.json."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.evaluation.result import summary_line
    from cytoimagenet.evaluation.step import EvaluateJob, run_evaluate

    job = validate_job(
        EvaluateJob,
        benchmark=benchmark,
        features=features,
        out=out,
        protocol=protocol,
        metric=metric,
        normalize=normalize,
        k=k,
        sphere=sphere,
        sphere_ridge=sphere_ridge,
        moa=moa,
        name=name,
        bootstrap=bootstrap,
        seed=seed,
        ignore_non_numeric=ignore_non_numeric,
    )
    with reading(job.features, job.moa):
        result = run_evaluate(job)
    typer.echo(summary_line(result))
    typer.echo(f"wrote {job.out}")
