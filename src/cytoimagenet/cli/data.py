"""Data commands: ``metadata``, ``sample`` and ``quickstart``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading
from cytoimagenet.config import (
    BuildJob,
    LabelJob,
    MetadataJob,
    QuickstartJob,
    SampleJob,
    validate_job,
)


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""
    app.command("metadata")(metadata)
    app.command("labels")(labels)
    app.command("build")(build)
    app.command("sample")(sample)
    app.command("quickstart")(quickstart)


@friendly
def metadata(
    source: Annotated[str, typer.Argument(help="Source shorthand (see `sources list`).")],
    raw: Annotated[Path, typer.Option(help="Folder with the source's raw metadata files.")],
    out: Annotated[Path, typer.Option(help="Output table (.parquet).")],
    csv: Annotated[bool, typer.Option(help="Also write the CSV export beside it.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Read SOURCE's raw metadata into the unified schema and print a summary."""
    from cytoimagenet.curation.metadata import run_metadata
    from cytoimagenet.curation.summary import format_summary, summarize

    job = validate_job(MetadataJob, source=source, raw=raw, out=out, csv=csv)
    table = run_metadata(job)
    summary = summarize(table)
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
    if not as_json:
        typer.echo(f"\nwrote {job.out}")


@friendly
def labels(
    metadata: Annotated[list[Path], typer.Option(help="Harmonised metadata table(s).")],
    out: Annotated[Path, typer.Option(help="Output labels table (.parquet).")],
    more: Annotated[
        list[Path] | None,
        typer.Argument(help="Further tables, so `--metadata A B C` works.", show_default=False),
    ] = None,
    threshold: Annotated[int, typer.Option(help="Minimum images of a candidate label.")] = 287,
    class_size: Annotated[int, typer.Option(help="Maximum images per label.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    category: Annotated[
        list[str] | None, typer.Option(help="Only these label categories (repeatable).")
    ] = None,
    min_class_size: Annotated[
        int | None, typer.Option(help="Drop labels smaller than this.")
    ] = None,
    unseen: Annotated[int, typer.Option(help="Also build N held-out unseen classes.")] = 0,
    include_controls: Annotated[
        bool,
        typer.Option(
            "--include-controls",
            help="Let control wells (vehicle, negative, positive, empty) be labelled too.",
        ),
    ] = False,
    split_by_dose: Annotated[
        bool,
        typer.Option(
            "--split-by-dose",
            help="Compound labels per (compound, concentration), e.g. 'taxol 0.3 uM'.",
        ),
    ] = False,
    synonyms: Annotated[
        Path | None,
        typer.Option(help="CSV category,value,canonical[,reason]: your synonyms, applied too."),
    ] = None,
    blocklist: Annotated[
        Path | None,
        typer.Option(help="CSV category,value,reason: values that never become labels."),
    ] = None,
) -> None:
    """Assign weak labels (least count first, exact tokens, stratified sampling)."""
    from cytoimagenet.curation.label_step import run_labels

    job = validate_job(
        LabelJob,
        metadata=[*metadata, *(more or [])],
        out=out,
        threshold=threshold,
        class_size=class_size,
        seed=seed,
        categories=category,
        min_class_size=min_class_size,
        unseen_classes=unseen,
        include_controls=include_controls,
        split_by_dose=split_by_dose,
        synonyms=synonyms,
        blocklist=blocklist,
    )
    with reading(job.metadata):
        text = run_labels(job)
    typer.echo(text)


@friendly
def sample(
    out: Annotated[Path, typer.Option(help="Folder to write into.")],
    kind: Annotated[
        str,
        typer.Option(
            help="source: the pretraining sample source; bbbc021: a compound screen in "
            "BBBC021's layout (one plate per week); bbbc014: a BBBC014-like plate."
        ),
    ] = "source",
    plates: Annotated[int, typer.Option(help="Number of plates.")] = 2,
    sites: Annotated[int, typer.Option(help="Fields per well.")] = 2,
    size: Annotated[
        int | None, typer.Option(help="Field side in pixels [default: 192, bbbc021: 128].")
    ] = None,
    cells: Annotated[
        int | None, typer.Option(help="Cells per field [default: 12, bbbc021: 8].")
    ] = None,
    dmso_wells: Annotated[
        int | None, typer.Option(help="bbbc021: DMSO control wells per plate [default: 4].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Generate embedded synthetic data (16-bit TIFFs + the layout's metadata CSVs)."""
    job = validate_job(
        SampleJob,
        out=out,
        kind=kind,
        plates=plates,
        sites=sites,
        size=size,
        cells=cells,
        dmso_wells=dmso_wells,
        seed=seed,
    )
    from cytoimagenet.sample.marker import claim_sample_folder

    claim_sample_folder(job.out, job.resolved())
    if job.kind == "bbbc014":
        from cytoimagenet.sample.bbbc014 import generate_bbbc014

        written = generate_bbbc014(job.out, seed=job.seed) / "BBBC014_v1_images"
    elif job.kind == "bbbc021":
        from cytoimagenet.sample.plate import PlateSpec, generate_moa_plate

        sized = {
            k: v
            for k, v in (("size", job.size), ("cells", job.cells), ("dmso_wells", job.dmso_wells))
            if v is not None
        }
        spec = PlateSpec(weeks=job.plates, sites=job.sites, seed=job.seed, **sized)
        written = generate_moa_plate(job.out, spec)
    else:
        from cytoimagenet.sample import SampleSpec, generate_sample

        sized = {k: v for k, v in (("size", job.size), ("cells", job.cells)) if v is not None}
        spec = SampleSpec(plates=job.plates, sites=job.sites, seed=job.seed, **sized)
        written = generate_sample(job.out, spec)
    typer.echo(f"wrote {written}")


@friendly
def build(
    labels: Annotated[Path, typer.Option(help="Labels table from `cytoimagenet labels`.")],
    root: Annotated[Path, typer.Option(help="Raw data root: source S's files under ROOT/S/.")],
    out: Annotated[Path, typer.Option(help="Dataset folder (an interrupted build is resumed).")],
    workers: Annotated[
        int | None, typer.Option(help="Local worker processes [default: all cores].")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (crops, trimming, split).")] = 0,
    class_size: Annotated[int, typer.Option(help="Trim classes to this many images.")] = 1000,
    min_class_size: Annotated[int, typer.Option(help="Drop classes smaller than this.")] = 500,
    val_fraction: Annotated[float, typer.Option(help="Share of each class in val.")] = 0.1,
    crops: Annotated[bool, typer.Option(help="Make multi-scale crops.")] = True,
    shard_size: Annotated[int, typer.Option(help="Fields per task (unit of resumption).")] = 32,
    max_pixels: Annotated[
        int,
        typer.Option(
            help="Quarantine fields with a plane over this many pixels (height x width, "
            "read from file headers before decoding) as too-large."
        ),
    ] = 100_000_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Standardise, crop, QC and write the labelled images as PNGs + metadata."""
    from cytoimagenet.curation.dataset import run_build
    from cytoimagenet.curation.dataset.report import format_report
    from cytoimagenet.parallel import default_workers

    job = validate_job(
        BuildJob,
        labels=labels,
        root=root,
        out=out,
        workers=workers or default_workers(),
        scheduler=scheduler,
        seed=seed,
        class_size=class_size,
        min_class_size=min_class_size,
        val_fraction=val_fraction,
        crops=crops,
        shard_size=shard_size,
        max_pixels=max_pixels,
    )
    with reading(job.labels):
        result = run_build(job, progress=progress)
    typer.echo(format_report(result.report))
    typer.echo(f"\nwrote {result.metadata}")


@friendly
def quickstart(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/quickstart"),
    preset: Annotated[
        str, typer.Option(help="default (about two minutes) or tiny (seconds, for tests).")
    ] = "default",
    stages: Annotated[
        str | None,
        typer.Option(help="Comma-separated subset of curate,pretrain,extract,evaluate,report."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes for the build [default: all cores].")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run the whole pipeline on embedded synthetic data and write an HTML report.

    Stages: curate (sample → metadata → labels → dataset build), pretrain (a small CNN on
    CPU), extract (random, pretrained, offline ImageNet baseline, fusion), evaluate (BBBC021
    protocol on a synthetic screen), report (HTML + Markdown).
    """
    from cytoimagenet.curation.dataset.report import format_report
    from cytoimagenet.curation.summary import format_summary
    from cytoimagenet.evaluation.report import read_result, results_table
    from cytoimagenet.parallel import default_workers
    from cytoimagenet.quickstart import Run, parse_stages, run_pipeline
    from cytoimagenet.quickstart.notes import small_n_caveat, validation_loss
    from cytoimagenet.quickstart.run import FEATURE_SETS

    job = validate_job(
        QuickstartJob, out=out, preset=preset, seed=seed, workers=workers or default_workers()
    )
    run = Run(job.out, job.preset, job.seed, job.workers, progress=progress)
    done = run_pipeline(run, parse_stages(stages))
    if "curate" in done:
        curated = done["curate"]
        typer.echo(format_summary(curated.summary))
        typer.echo("")
        typer.echo(format_report(curated.build.report))
    results = [run.paths.results / f"{s}.json" for s in FEATURE_SETS]
    results = [read_result(r) for r in results if r.is_file()]
    summary = validation_loss(run.paths.pretrain / "metrics.csv")
    if summary is not None and {"pretrain", "extract"} & set(done):
        typer.echo("\n" + summary.line())
    if "evaluate" in done and results:
        table, _, rest = results_table(results).partition("\n\n")
        caveat = small_n_caveat(results)
        typer.echo("\n" + table + (f"\n\n{caveat}" if caveat else "") + "\n\n" + rest)
    if "report" in done:
        typer.echo(f"\nreport: {done['report']}")
