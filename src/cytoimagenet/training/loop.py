"""The ``pretrain`` loop: Adam + cross-entropy on rotated images, as the paper (§2.11).

Files under the run folder (only the first process writes):

* ``config.json`` — the resolved job; ``provenance.json`` — versions and the dataset checksum.
* ``metrics.csv`` — one row per epoch (:data:`~cytoimagenet.training.metrics.METRIC_COLUMNS`);
  ``per_class_val.csv`` — val accuracy of every class at every validated epoch.
* ``checkpoints/epoch_NNN.pt`` and ``checkpoints/last.pt`` after every epoch, written
  atomically; each is a :func:`~cytoimagenet.models.factory.checkpoint_payload` plus the
  optimiser and gradient-scaler state, readable with ``torch.load(weights_only=True)`` and
  usable as ``--weights`` of any command.

Exact resume: running the same job again on a folder with ``last.pt`` continues after its
epoch. The random streams need no saved state, because each is a function of the seed and
the epoch: the shuffle (``DistributedSampler(seed)``), the rotations (seeded per sample) and
dropout (the global torch RNG is reseeded at the start of every epoch). On CPU, a run
resumed after epoch k ends with the same weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cytoimagenet.errors import ConfigError
from cytoimagenet.hashing import stable_hash
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.models.factory import KERAS_PADDING, Backbone, checkpoint_payload
from cytoimagenet.provenance import sha256_file, write_provenance
from cytoimagenet.training import distributed
from cytoimagenet.training.checkpoint import (
    CHECKPOINT_DIR,
    LAST,
    check_out,
    find_resume_state,
    prepare_out,
    save_checkpoint,
    sweep_temp,
)
from cytoimagenet.training.config import PretrainJob
from cytoimagenet.training.data import (
    EpochSampler,
    ImageDataset,
    ShardSampler,
    Splits,
    make_loader,
    read_splits,
)
from cytoimagenet.training.epoch import EpochRunner, metric_row
from cytoimagenet.training.metrics import (
    METRIC_COLUMNS,
    PER_CLASS_COLUMNS,
    append_rows,
    per_class_rows,
)
from cytoimagenet.training.published import dataset_table_path
from cytoimagenet.training.verify import all_gather, checksums_of, verify_dataset

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What a ``pretrain`` call did.

    Attributes
    ----------
    out : Path
        The run folder.
    labels : list of str
        Class names, in class-index order.
    start_epoch : int
        Epochs already done before this call (a resumed run).
    epoch : int
        Epochs done when it returned.
    rows : list of dict
        The ``metrics.csv`` rows of the epochs run by this call.
    checkpoint : Path, optional
        The latest checkpoint.
    backbone : Backbone, optional
        The trained model (with its classifier) on its device.
    settings : dict
        Resolved runtime settings (device, amp, channels_last, processes …).
    """

    out: Path
    labels: list[str]
    start_epoch: int
    epoch: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    backbone: Backbone | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _build_model(job: PretrainJob, num_classes: int, state: dict[str, Any] | None) -> Backbone:
    from cytoimagenet.models.factory import create_backbone

    kw = {"drop_rate": job.drop_rate, "drop_path_rate": job.drop_path_rate}
    kw = {k: v for k, v in kw.items() if v}
    try:
        if state is None:
            return create_backbone(
                job.model,
                weights=job.weights,
                in_chans=job.in_chans,
                num_classes=num_classes,
                seed=job.seed,
                **kw,
            )
        rebuilt = create_backbone(
            state["model_name"],
            weights="random",
            in_chans=int(state["in_chans"]),
            num_classes=num_classes,
            seed=job.seed,
            keras_padding=state.get("padding") == KERAS_PADDING,
            **kw,
        )
    except TypeError as exc:
        raise ConfigError(f"{job.model} does not take {sorted(kw)} ({exc})") from None
    try:
        rebuilt.model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:  # a damaged file that still unpickles
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"{job.out / CHECKPOINT_DIR}: the checkpoint's weights do not fit "
            f"{state['model_name']} ({first}); delete the folder to start over"
        ) from None
    mean, std = tuple(state["mean"]), tuple(state["std"])
    return Backbone(
        rebuilt.model, rebuilt.name, job.weights, rebuilt.in_chans, mean, std, rebuilt.extra
    )


def run_pretrain(
    job: PretrainJob,
    *,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> PretrainResult:
    """Pretrain (or resume pretraining) as ``job`` says; see the module docstring.

    Parameters
    ----------
    job : PretrainJob
        The validated job.
    progress : bool
        Show tqdm bars (first process only).
    on_epoch : callable, optional
        Called on the first process with each epoch's ``metrics.csv`` row.

    Raises
    ------
    ConfigError
        For settings this machine cannot run, or a run folder holding another run.
    """
    import torch

    ctx = distributed.setup(job.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        if job.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        return _pretrain(job, ctx, progress, on_epoch)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        distributed.teardown(ctx)


def _pretrain(
    job: PretrainJob,
    ctx: distributed.Context,
    progress: bool,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> PretrainResult:
    import torch
    from torch.nn.parallel import DistributedDataParallel

    device = ctx.device
    amp = distributed.resolve_amp(job.amp, device)
    channels_last = distributed.resolve_channels_last(job.channels_last, device)
    if job.batch_size % ctx.world_size:
        raise ConfigError(
            f"--batch-size {job.batch_size} does not split over {ctx.world_size} processes"
        )
    per_process = job.batch_size // ctx.world_size
    metadata = dataset_table_path(job.data)  # built .parquet or published .csv
    fingerprint = {
        **job.fingerprint(),
        "amp": amp,
        "channels_last": channels_last,
        "metadata_sha256": sha256_file(metadata),
    }
    folder = job.out / CHECKPOINT_DIR
    if ctx.is_main:
        sweep_temp(job.out)  # a killed run's half-written checkpoint is as big as a whole one
    state = find_resume_state(folder, fingerprint)  # falls back past an unreadable last.pt
    splits: Splits = read_splits(job.data)
    labels = splits.labels
    start = int(state["epoch"]) if state else 0
    settings = {
        "device": str(device),
        "amp": amp,
        "channels_last": channels_last,
        "world_size": ctx.world_size,
        "batch_per_process": per_process,
        "num_classes": len(labels),
        "train_images": len(splits.train_paths),
        "val_images": len(splits.val_paths),
        "val_dropped": splits.val_dropped,
        "start_epoch": start,
    }
    result = PretrainResult(job.out, labels, start, start, settings=settings)
    if state and state.get("labels") != labels:
        raise ConfigError(f"{folder / LAST}: its labels differ from the dataset's")
    if start >= job.epochs:
        result.checkpoint = folder / LAST
        log.info(
            "%s already has %d epochs (asked for %d); nothing to do", job.out, start, job.epochs
        )
        return result
    check_out(job.out, resuming=state is not None)
    paths = [p.decode() for p in (*splits.train_paths, *splits.val_paths)]
    verify_dataset(
        splits.root,
        paths,
        checksums_of(metadata, paths) if job.verify == "full" else None,
        job.verify,
        rank=ctx.rank,
        world_size=ctx.world_size,
        gather=all_gather if ctx.distributed else None,
    )
    backbone = _build_model(job, len(labels), state)
    model = backbone.model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    backbone.model = model
    optimizer = torch.optim.Adam(model.parameters(), lr=job.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    net: nn.Module = model
    if ctx.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    run = EpochRunner(
        job, ctx, backbone, net, optimizer, scaler, amp, channels_last, len(labels), progress
    )
    run.global_step = int(state["global_step"]) if state else 0
    del state

    cuda = device.type == "cuda"
    train_set = ImageDataset(
        splits.root, splits.train_paths, splits.train_targets, job.size, augment=True, seed=job.seed
    )
    sampler = EpochSampler(len(train_set), seed=job.seed, rank=ctx.rank, world_size=ctx.world_size)
    common = {"workers": job.workers, "pin_memory": cuda, "seed": job.seed}
    train_loader = make_loader(train_set, sampler, batch_size=per_process, drop_last=True, **common)
    val_set = ImageDataset(
        splits.root, splits.val_paths, splits.val_targets, job.size, augment=False, seed=job.seed
    )
    val_loader = make_loader(
        val_set,
        ShardSampler(len(val_set), rank=ctx.rank, world_size=ctx.world_size),
        batch_size=per_process,
        drop_last=False,
        **common,
    )
    if len(train_loader) == 0:
        raise ConfigError(
            f"{len(train_set)} training images give no full batch of {per_process} per process"
        )

    if ctx.is_main:
        prepare_out(job.out, start)
        config = {**job.resolved(), "resolved": settings}
        with atomic_path(job.out / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        write_provenance(
            job.out / "provenance.json",
            command="pretrain",
            config=config,
            inputs=[metadata],
            root=job.data,
        )

    for epoch in range(start + 1, job.epochs + 1):
        began = time.perf_counter()
        sampler.set_epoch(epoch)
        torch.manual_seed(stable_hash(job.seed, "dropout", epoch, ctx.rank))
        train = run.train_epoch(train_loader, epoch)
        train_seconds = time.perf_counter() - began
        validate = len(val_set) > 0 and (epoch % job.val_every == 0 or epoch == job.epochs)
        val = run.evaluate(val_loader, epoch) if validate else None
        seconds = time.perf_counter() - began
        row = metric_row(
            epoch,
            train,
            val,
            optimizer.param_groups[0]["lr"],
            seconds,
            train.n / train_seconds if train_seconds > 0 else math.nan,
        )
        result.rows.append(row)
        result.epoch = epoch
        if ctx.is_main:
            append_rows(job.out / "metrics.csv", METRIC_COLUMNS, [row])
            if val:
                append_rows(
                    job.out / "per_class_val.csv",
                    PER_CLASS_COLUMNS,
                    per_class_rows(epoch, labels, val),
                )
            payload = checkpoint_payload(
                backbone,
                labels=labels,
                num_classes=len(labels),
                epoch=epoch,
                global_step=run.global_step,
                optimizer=optimizer.state_dict(),
                scaler=scaler.state_dict(),
                fingerprint=fingerprint,
                config={**job.resolved(), "resolved": settings},
                metrics={k: v for k, v in row.items() if v is not None},
            )
            result.checkpoint = save_checkpoint(payload, folder, epoch)
            if on_epoch:
                on_epoch(row)
        distributed.barrier(ctx)
    result.backbone = backbone
    return result
