"""Feature commands: ``extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the feature commands to ``app``."""
    app.command("extract")(extract)


@friendly
def extract(
    model: Annotated[
        str,
        typer.Option(
            help="random | imagenet | lite0-imagenet | cytoimagenet (the published weights) | "
            "keras:PATH.h5 | CHECKPOINT | intensity (raw intensity statistics, no network) | "
            "fusion:A+B"
        ),
    ],
    images: Annotated[Path, typer.Option(help="Images table (.parquet/.csv).")],
    out: Annotated[Path, typer.Option(help="Output features (.parquet).")],
    mode: Annotated[
        str, typer.Option(help="concat-norm | concat | merge-norm | merge")
    ] = "concat-norm",
    size: Annotated[str, typer.Option(help="Input side in pixels, or 'native'.")] = "224",
    root: Annotated[
        Path | None, typer.Option(help="Folder the table's paths are relative to.")
    ] = None,
    arch: Annotated[str, typer.Option(help="timm model for random/imagenet.")] = "efficientnet_b0",
    in_chans: Annotated[int, typer.Option(help="Model input channels (grey replicated).")] = 1,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    workers: Annotated[int, typer.Option(help="Threads preparing images ahead.")] = 2,
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda, cuda:1 …).")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of random weights.")] = 0,
    keras_padding: Annotated[
        bool | None,
        typer.Option(
            "--keras-padding/--tf-padding",
            help="Pad stride-2 convolutions as Keras (any input size) or as TF-SAME; "
            "default: Keras for keras:/cytoimagenet weights, TF-SAME otherwise.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Model token of the column names Cells_CNN_<name>_<channel>_<i> "
            "(default: from --model; not for fusion)."
        ),
    ] = None,
    illumination: Annotated[
        Path | None,
        typer.Option(
            help="Divide images by flat fields first: a folder `cytoimagenet illumination` "
            "wrote, or one .npy/.tif file."
        ),
    ] = None,
    norm_scope: Annotated[
        str,
        typer.Option(
            help="crop | plate | dataset: where concat-norm/merge-norm take their 0.1/99.9 "
            "percentiles (plate and dataset keep intensity differences between images)."
        ),
    ] = "crop",
    plate_column: Annotated[
        str, typer.Option(help="The plate column for --norm-scope plate.")
    ] = "Metadata_Plate",
    norm_sample: Annotated[
        int, typer.Option(help="Images per plate (or dataset) the percentiles come from.")
    ] = 256,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Extract penultimate-layer features of every image in a table."""
    from cytoimagenet.config import validate_job
    from cytoimagenet.features.step import ExtractJob, run_extract

    job = validate_job(
        ExtractJob,
        model=model,
        images=images,
        out=out,
        root=root,
        mode=mode,
        size=None if size == "native" else size,
        arch=arch,
        in_chans=in_chans,
        batch_size=batch_size,
        workers=workers,
        device=device,
        seed=seed,
        keras_padding=keras_padding,
        name=name,
        illumination=illumination,
        norm_scope=norm_scope,
        plate_column=plate_column,
        norm_sample=norm_sample,
    )
    with reading(job.images):
        meta = run_extract(job, progress=progress)
    typer.echo(f"wrote {job.out} ({meta.height} images)")
