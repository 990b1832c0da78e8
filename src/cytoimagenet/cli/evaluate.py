"""The ``evaluate`` command: kNN accuracy on BBBC021, COOS-7 or CYCLoPs, and copairs mAP."""

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
    benchmark: Annotated[
        str, typer.Argument(help="bbbc021 | coos7 | cyclops | profiles (mAP of any profiles)")
    ],
    features: Annotated[
        Path,
        typer.Option(help="Feature table (.parquet, .csv, .csv.gz): Metadata_* + numeric columns."),
    ],
    out: Annotated[Path, typer.Option(help="RESULT.json to write.")],
    protocol: Annotated[
        str | None, typer.Option(help="BBBC021: cytoimagenet (default) | standard.")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="cosine | pearson | euclidean (default: the protocol's); bbbc021: 'map' adds "
            "copairs mAP (as --map)."
        ),
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
    map_: Annotated[
        bool,
        typer.Option(
            "--map/--no-map",
            help="BBBC021: also copairs mAP (phenotypic activity and consistency).",
        ),
    ] = False,
    null_size: Annotated[int, typer.Option(help="mAP: draws of the permutation null.")] = 10_000,
    fdr: Annotated[float, typer.Option(help="mAP: FDR level of 'significant'.")] = 0.05,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="profiles: comma-separated columns naming a treatment; coos7/cyclops: "
            "neighbours sharing the query's values (e.g. Field, Well, Plate) cannot vote."
        ),
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="profiles: the control rows, COL=VALUE (Compound=DMSO).")
    ] = None,
    moa_column: Annotated[
        str | None,
        typer.Option(help="profiles: annotation for phenotypic consistency (e.g. Metadata_MoA)."),
    ] = None,
) -> None:
    """Score features with a benchmark's exact kNN protocol or copairs mAP; write RESULT.json."""
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
        map=map_,
        null_size=null_size,
        fdr=fdr,
        group_by=None if group_by is None else group_by.split(","),
        control=control,
        moa_column=moa_column,
    )
    with reading(job.features, job.moa):
        result = run_evaluate(job)
    typer.echo(summary_line(result))
    typer.echo(f"wrote {job.out}")
