"""Benchmark data and reporting commands: ``benchmark-images`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("benchmark-images")(benchmark_images)
    app.command("report")(report)


@friendly
def benchmark_images(
    benchmark: Annotated[str, typer.Argument(help="bbbc021 | coos7 | cyclops")],
    root: Annotated[Path, typer.Option(help="The benchmark's raw folder (images).")],
    out: Annotated[Path, typer.Option(help="Output image table (.parquet).")],
    metadata: Annotated[
        Path | None,
        typer.Option(
            help="bbbc021: folder with BBBC021_v1_image.csv and _moa.csv (default: --root)."
        ),
    ] = None,
    subset: Annotated[
        str, typer.Option(help="bbbc021: 'annotated' (103 treatments + DMSO) or 'all'.")
    ] = "annotated",
    allow_missing: Annotated[
        bool,
        typer.Option(help="Drop samples with missing image files (listed) instead of failing."),
    ] = False,
) -> None:
    """Write a benchmark's image table for `cytoimagenet extract --images OUT --root ROOT`."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.evaluation.benchmark_images import (
        BenchmarkImagesJob,
        run_benchmark_images,
        summarize,
    )

    job = validate_job(
        BenchmarkImagesJob,
        benchmark=benchmark,
        root=root,
        out=out,
        metadata=metadata,
        subset=subset,
        allow_missing=allow_missing,
    )
    images = run_benchmark_images(job)
    typer.echo(summarize(images))
    typer.echo(f"wrote {job.out} ({images.table.height} rows)")


@friendly
def report(
    results: Annotated[list[Path], typer.Argument(help="RESULT.json files (column order).")],
    out: Annotated[Path, typer.Option(help="Markdown report to write (.md).")],
    figures: Annotated[
        Path | None, typer.Option(help="Folder for confusion-matrix PNGs (and the UMAP).")
    ] = None,
    umap: Annotated[
        Path | None,
        typer.Option(help="Features table to draw a UMAP of (needs the umap extra)."),
    ] = None,
    umap_label: Annotated[
        str | None, typer.Option(help="Column the UMAP is coloured by (default: MoA or Label).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the UMAP.")] = 0,
) -> None:
    """Build the paper-style results table (rows benchmarks, columns feature sets)."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.evaluation.report_step import ReportJob, run_report

    job = validate_job(
        ReportJob,
        results=results,
        out=out,
        figures=figures,
        umap=umap,
        umap_label=umap_label,
        seed=seed,
    )
    with reading(job.umap):
        done = run_report(job)
    typer.echo(done.table)
    extra = f", {len(done.figures)} figure(s) in {job.figures}" if done.figures else ""
    typer.echo(f"wrote {job.out}{extra}")
