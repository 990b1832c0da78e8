"""Training commands: ``pretrain``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
    app.command("pretrain")(pretrain)
    app.command("export")(export)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_row(row: dict[str, Any], epochs: int) -> str:
    """One line per epoch: losses, accuracies, speed."""
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {_fmt(row['train_loss'])} "
        f"top1 {_fmt(row['train_top1'])} top5 {_fmt(row['train_top5'])} | "
        f"val loss {_fmt(row['val_loss'])} top1 {_fmt(row['val_top1'])} "
        f"top5 {_fmt(row['val_top5'])} classes without a hit "
        f"{_fmt(row['classes_without_correct'])} | {row['images_per_s']:.1f} img/s "
        f"{row['seconds']:.0f} s"
    )


@friendly
def pretrain(
    data: Annotated[Path, typer.Option(help="Dataset folder from `cytoimagenet build`.")],
    out: Annotated[Path, typer.Option(help="Run folder (a run with checkpoints is resumed).")],
    model: Annotated[str, typer.Option(help="timm architecture.")] = "efficientnet_b0",
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            "--init",
            help="Initial weights: random, imagenet, lite0-imagenet, cytoimagenet (the "
            "published weights), keras:PATH, PATH.",
        ),
    ] = "random",
    epochs: Annotated[int, typer.Option(help="Total epochs (paper: 24).")] = 24,
    batch_size: Annotated[int, typer.Option(help="Global batch size (paper: 64).")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate (paper: 1e-3).")] = 1e-3,
    size: Annotated[int, typer.Option(help="Images are resized to SIZE×SIZE.")] = 224,
    seed: Annotated[int, typer.Option(help="Seed of weights, shuffling, rotations, dropout.")] = 0,
    workers: Annotated[
        int | None,
        typer.Option(help="Data-loader processes per training process [default: cores, ≤ 8]."),
    ] = None,
    in_chans: Annotated[int, typer.Option(help="1: grey input; 3: grey replicated to RGB.")] = 1,
    amp: Annotated[
        str, typer.Option(help="Mixed precision: auto (bf16/fp16 on CUDA), off, bf16, fp16.")
    ] = "auto",
    channels_last: Annotated[
        str, typer.Option(help="Channels-last memory format: auto (on for CUDA and CPU), on, off.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    max_steps: Annotated[
        int | None, typer.Option(help="Cap steps (and val batches) per epoch, for smoke runs.")
    ] = None,
    val_every: Annotated[int, typer.Option(help="Validate every N epochs and at the end.")] = 1,
    deterministic: Annotated[
        bool, typer.Option(help="Deterministic kernels only (slower on GPU).")
    ] = False,
    drop_rate: Annotated[float, typer.Option(help="Dropout before the classifier.")] = 0.2,
    drop_path_rate: Annotated[float, typer.Option(help="Stochastic depth rate.")] = 0.2,
    verify: Annotated[
        str,
        typer.Option(
            help="Check the images first: size (present, complete PNGs), full (+ sha256), none."
        ),
    ] = "size",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Pretrain a classifier on a built dataset (Adam, cross-entropy, random rotations).

    Writes OUT/checkpoints/ and a row of OUT/metrics.csv every epoch; run it again to resume.

    Several GPUs: torchrun --nproc_per_node N -m cytoimagenet pretrain ...
    """
    from cytoimagenet.config import validate_job
    from cytoimagenet.parallel import default_workers
    from cytoimagenet.training.config import PretrainJob

    with reading(data / "metadata.parquet"):
        job = validate_job(
            PretrainJob,
            data=data,
            out=out,
            model=model,
            weights=weights,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            size=size,
            seed=seed,
            workers=min(8, default_workers()) if workers is None else workers,
            in_chans=in_chans,
            amp=amp,
            channels_last=channels_last,
            device=device,
            max_steps=max_steps,
            val_every=val_every,
            deterministic=deterministic,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            verify=verify,
        )
    from cytoimagenet.training.distributed import env_ranks
    from cytoimagenet.training.loop import run_pretrain

    main = env_ranks()[0] == 0

    def echo(row: dict[str, Any]) -> None:
        typer.echo(format_row(row, job.epochs))

    with reading(job.data / "metadata.parquet"):
        result = run_pretrain(job, progress=progress, on_epoch=echo)
    if not main:
        return
    settings = result.settings
    if not result.rows:
        typer.echo(f"{job.out} already has {result.epoch} epochs; nothing to do")
        return
    typer.echo(
        f"\n{settings['num_classes']} classes, {settings['train_images']} train / "
        f"{settings['val_images']} val images on {settings['device']} "
        f"(x{settings['world_size']}, amp {settings['amp']})"
        + (f", resumed after epoch {result.start_epoch}" if result.start_epoch else "")
    )
    typer.echo(f"checkpoint: {result.checkpoint}\nmetrics:    {job.out / 'metrics.csv'}")


@friendly
def export(
    weights: Annotated[
        str,
        typer.Argument(help="A `pretrain` checkpoint, cytoimagenet (published), keras:PATH.h5."),
    ],
    out: Annotated[Path, typer.Option(help="New folder for config.json + model.safetensors.")],
    in_chans: Annotated[
        int, typer.Option(help="Input channels for cytoimagenet/keras: (checkpoints keep theirs).")
    ] = 1,
) -> None:
    """Export weights as a folder timm loads: timm.create_model('local-dir:OUT', pretrained=True).

    A checkpoint keeps its classifier and class names; pass num_classes=0 to timm for pooled
    features.
    """
    from cytoimagenet.models.export import export_weights

    folder = export_weights(weights, out, in_chans=in_chans)
    typer.echo(f"wrote {folder} (timm: create_model('local-dir:{folder}', pretrained=True))")
