"""The ``finetune`` command: Kensert et al.'s cross-validated fine-tuning on BBBC021/BBBC014."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cytoimagenet.cli._errors import friendly, reading


def register(app: typer.Typer) -> None:
    """Add the commands of this module to ``app``."""
    app.command("finetune")(finetune)


@friendly
def finetune(
    dataset: Annotated[
        str, typer.Argument(help="bbbc021 (MoA, leave-one-compound-out) or bbbc014.")
    ],
    root: Annotated[Path, typer.Option(help="Raw data folder (plate folders + metadata CSVs).")],
    out: Annotated[Path, typer.Option(help="Run folder (run again to resume).")],
    model: Annotated[
        str | None,
        typer.Option(
            help="timm architecture [default: resnet50; tf_efficientnet_b0 for "
            "--init cytoimagenet]."
        ),
    ] = None,
    init: Annotated[
        str,
        typer.Option(
            help="Initial weights: imagenet, xavier, random, cytoimagenet (the published "
            "weights) or a weights file."
        ),
    ] = "imagenet",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the paper's).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size (default: the paper's).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="SGD learning rate (default: the paper's).")
    ] = None,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    crop_size: Annotated[
        int | None,
        typer.Option(help="Square crops of this side (default: Kensert's 2×2 / 4×4 grid)."),
    ] = None,
    input_size: Annotated[
        int | None,
        typer.Option(help="Crops are squashed to this side (default: the model's input)."),
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            help="kensert | dihedral | none (default: kensert for bbbc021, none for bbbc014)."
        ),
    ] = None,
    class_weights: Annotated[
        bool, typer.Option(help="Class-balanced loss weights per fold.")
    ] = True,
    folds: Annotated[str, typer.Option(help="all, or fold indices/names: 0,5 or taxol.")] = "all",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    amp: Annotated[str, typer.Option(help="Mixed precision: auto, off, bf16, fp16.")] = "auto",
    channels_last: Annotated[str, typer.Option(help="auto, on or off.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of weights, shuffling, augmentation.")] = 0,
    max_steps: Annotated[
        int | None, typer.Option(help="Cap training steps per epoch (smoke runs).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes for preprocessing and data loading (default: cores, at most 8)."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Folder of preprocessed crops, shared by runs (default: OUT/prepared)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fine-tune a CNN with cross-validation and score it as Kensert et al. (2019).

    Writes OUT/folds/<fold>/predictions.parquet per fold, then OUT/predictions.parquet and
    OUT/result.json. Run it again to resume: finished folds are skipped.
    """
    from cytoimagenet.config import validate_job
    from cytoimagenet.finetune.config import FinetuneJob
    from cytoimagenet.parallel import default_workers

    job = validate_job(
        FinetuneJob, dataset=dataset.lower(), root=root, out=out, model=model, init=init,
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, crop_size=crop_size,
        input_size=input_size, augment=augment, class_weights=class_weights, folds=folds,
        device=device, amp=amp, channels_last=channels_last, seed=seed, max_steps=max_steps,
        workers=min(8, default_workers()) if workers is None else workers, cache=cache,
    )  # fmt: skip
    from cytoimagenet.finetune.step import run_finetune

    def fold_done(fold: Any, status: str, info: dict[str, Any]) -> None:
        what = f"{info['crops']} crops predicted" if status == "trained" else "already done"
        typer.echo(f"fold {fold.index + 1} {fold.name} ({fold.held_out}): {what}")

    def epoch_done(fold: Any, row: dict[str, Any]) -> None:
        typer.echo(
            f"  {fold.name} epoch {row['epoch']}/{job.epochs}: loss {row['train_loss']:.4f} "
            f"accuracy {row['train_accuracy']:.3f} ({row['images_per_s']:.0f} img/s)"
        )

    # Tables read: the root's metadata, the prepared crops and finished folds under OUT.
    with reading(job.root, job.out):
        result = run_finetune(job, progress=progress, on_fold=fold_done, on_epoch=epoch_done)
    record = result.result
    if record is None:
        typer.echo("no fold finished; nothing to score")
        return
    ci = record["ci95"]
    typer.echo(
        f"\n{record['benchmark']}: {record['primary']} accuracy {record['correct']}/"
        f"{record['n']} = {100 * record['accuracy']:.1f}% (95% CI {100 * ci['low']:.1f}–"
        f"{100 * ci['high']:.1f}%), {record['folds_done']}/{record['folds_total']} folds"
    )
    typer.echo(f"predictions: {result.predictions}\nresult:      {job.out / 'result.json'}")
