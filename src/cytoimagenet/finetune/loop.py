"""Train one fold and predict its held-out crops (SGD with momentum, class-balanced loss).

Per fold, under ``RUN_DIR/folds/<fold>/``:

* ``checkpoint.pt`` after every epoch (atomic; a
  :func:`~cytoimagenet.models.factory.checkpoint_payload` plus optimiser state, read back
  with ``weights_only=True``). A fold interrupted mid-way resumes after its last epoch and,
  on CPU, ends with the same weights as one that never stopped: the shuffle, the
  augmentation and the global torch RNG are functions of ``(seed, fold, epoch)``.
* ``metrics.csv``: one row per epoch.
* ``predictions.parquet`` (written by the caller) marks the fold done; the checkpoint is then
  deleted, since 38 ResNet50 checkpoints with momentum would take ~7 GB.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.finetune.data import Augment, CropDataset
from cytoimagenet.finetune.folds import Fold, split
from cytoimagenet.finetune.model import IN_CHANS, build_classifier
from cytoimagenet.finetune.prepare import Prepared
from cytoimagenet.hashing import stable_hash
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.models.factory import (
    KERAS_PADDING,
    Backbone,
    checkpoint_payload,
    create_backbone,
)
from cytoimagenet.training.checkpoint import read_resume_state
from cytoimagenet.training.data import EpochSampler, make_loader
from cytoimagenet.training.metrics import append_rows, keep_epochs

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CHECKPOINT: Final = "checkpoint.pt"
FOLD_METRICS: Final = ("epoch", "train_loss", "train_accuracy", "steps", "lr", "seconds",
                       "images_per_s")  # fmt: skip
#: Columns of a predictions table besides the class probabilities.
META_COLUMNS: Final = {
    "compound": "Metadata_Compound", "concentration": "Metadata_Concentration",
    "moa": "Metadata_MoA", "plate": "Metadata_Plate", "well": "Metadata_Well",
    "site": "Metadata_Site", "replicate": "Metadata_Replicate", "field": "Metadata_Field",
    "crop": "Metadata_Crop", "batch": "Metadata_Batch", "group": "Metadata_Group",
}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """What one fold's training needs from the job, resolved.

    Attributes
    ----------
    model, init : str
        Architecture and initialisation (see :mod:`cytoimagenet.finetune.model`).
    epochs, batch_size : int
        Epochs and batch size.
    lr, momentum : float
        SGD settings (constant learning rate: Kensert's step decay never fired).
    augment : str
        ``kensert``, ``dihedral`` or ``none``.
    class_weights : bool
        Weight the loss by ``n / (C * n_c)`` over the fold's training crops.
    seed : int
        Seed of the initial head/weights, the shuffle and the augmentation.
    max_steps : int, optional
        Cap training steps per epoch (smoke runs); predictions always cover every crop.
    workers : int
        Data-loader processes.
    device : torch.device
        Where to train.
    amp : str
        ``off``, ``bf16`` or ``fp16``.
    channels_last : bool
        Channels-last memory format.
    fingerprint : dict
        Settings a resumed fold must share with its checkpoint.
    """

    model: str
    init: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    augment: Augment
    class_weights: bool
    seed: int
    max_steps: int | None
    workers: int
    device: Any
    amp: str
    channels_last: bool
    fingerprint: dict[str, Any]


def balanced_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Keras/scikit-learn ``balanced`` weights ``n / (C * n_c)``; absent classes get 0.

    Examples
    --------
    >>> balanced_weights(np.array([0, 0, 0, 1]), 3).tolist()
    [0.6666666666666666, 2.0, 0.0]
    """
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    present = int((counts > 0).sum())
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, len(targets) / (present * counts), 0.0)
    return weights


def _dataset(prepared: Prepared, rows: np.ndarray, targets: np.ndarray, **kw: Any) -> CropDataset:
    index = prepared.index
    return CropDataset(
        prepared.files,
        index["file_index"].to_numpy()[rows],
        index["offset"].to_numpy()[rows],
        targets[rows],
        **kw,
    )


def _rebuild(state: dict[str, Any], num_classes: int, seed: int) -> Backbone:
    """Rebuild a checkpoint's model without its original initialisation (no hub, no file)."""
    base = create_backbone(state["model_name"], weights="random", in_chans=IN_CHANS,
                           num_classes=num_classes, seed=seed,
                           keras_padding=state.get("padding") == KERAS_PADDING)  # fmt: skip
    base.model.load_state_dict(state["state_dict"])
    return Backbone(base.model, base.name, "checkpoint", IN_CHANS, tuple(state["mean"]),
                    tuple(state["std"]), base.extra)  # fmt: skip


def _inputs(x: torch.Tensor, backbone: Backbone, s: Settings) -> torch.Tensor:
    import torch

    x = backbone.preprocess(x.to(s.device, non_blocking=True).float().div_(255.0))
    return x.contiguous(memory_format=torch.channels_last) if s.channels_last else x


def _autocast(s: Settings) -> Any:
    import torch

    dtype = torch.bfloat16 if s.amp == "bf16" else torch.float16
    return torch.autocast(s.device.type, dtype=dtype, enabled=s.amp != "off")


def _bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not progress,
                file=sys.stderr, dynamic_ncols=True)  # fmt: skip


def predict(
    backbone: Backbone, dataset: CropDataset, s: Settings, *, progress: bool = False
) -> np.ndarray:
    """Return the softmax probabilities ``(N, C)`` of every crop, in order (eval mode)."""
    import torch

    loader = make_loader(
        dataset,  # type: ignore[arg-type]  # any map-style dataset works
        range(len(dataset)),
        batch_size=s.batch_size,
        workers=0,
        pin_memory=False,
        drop_last=False,
        seed=s.seed,
    )
    model = backbone.model.eval()
    out = []
    with torch.inference_mode(), _bar(len(loader), "predict", progress) as bar:
        for images, _ in loader:
            with _autocast(s):
                logits = model(_inputs(images, backbone, s))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            bar.update()
    return np.concatenate(out).astype(np.float64)


def train_fold(
    fold: Fold,
    prepared: Prepared,
    classes: Sequence[str],
    s: Settings,
    folder: Path,
    *,
    progress: bool = True,
    on_epoch: Callable[[Fold, dict[str, Any]], None] | None = None,
) -> pl.DataFrame:
    """Train on every group but ``fold.held_out``; return the held-out crops' predictions.

    Returns
    -------
    polars.DataFrame
        One row per held-out crop: ``Metadata_*`` columns (:data:`META_COLUMNS` and
        ``Metadata_Fold``) and one probability column per class.

    Raises
    ------
    ConfigError
        When the fold has no training or test crop, or its checkpoint holds other settings.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    index = prepared.index
    lookup = {c: i for i, c in enumerate(classes)}
    targets = np.array([lookup[m] for m in index["moa"].to_list()], dtype=np.int64)
    train_rows, test_rows = split(index, fold)
    if len(train_rows) == 0 or len(test_rows) == 0:
        raise ConfigError(
            f"fold {fold.name}: {len(train_rows)} train / {len(test_rows)} test crops"
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    fingerprint = {**s.fingerprint, "fold": fold.name}
    state = read_resume_state(path, fingerprint) if path.is_file() else None
    start = int(state["epoch"]) if state else 0
    if state:
        backbone = _rebuild(state, len(classes), s.seed)
        keep_epochs(folder / "metrics.csv", start)
    else:
        backbone = build_classifier(s.model, s.init, len(classes), s.seed)
        (folder / "metrics.csv").unlink(missing_ok=True)
    model = backbone.model.to(s.device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    backbone.model = model
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum)
    scaler = torch.amp.GradScaler(s.device.type, enabled=s.amp == "fp16")
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    del state

    weights = balanced_weights(targets[train_rows], len(classes))
    if not s.class_weights:
        weights = (weights > 0).astype(np.float64)
    weight = torch.tensor(weights, dtype=torch.float32, device=s.device)
    absent = [c for c, w in zip(classes, weights, strict=True) if w == 0]
    if absent:
        log.warning("fold %s: no training crop of class(es) %s", fold.name, absent)
    fold_seed = stable_hash(s.seed, "fold", fold.name)
    train_set = _dataset(prepared, train_rows, targets, augment=s.augment, seed=fold_seed)
    batch = min(s.batch_size, len(train_set))
    sampler = EpochSampler(len(train_set), seed=fold_seed)
    loader = make_loader(
        train_set,  # type: ignore[arg-type]  # any map-style dataset works
        sampler,
        batch_size=batch,
        workers=s.workers,
        pin_memory=s.device.type == "cuda",
        drop_last=True,
        seed=fold_seed,
    )
    steps = len(loader) if s.max_steps is None else min(len(loader), s.max_steps)
    for epoch in range(start + 1, s.epochs + 1):
        began = time.perf_counter()
        sampler.set_epoch(epoch)
        torch.manual_seed(stable_hash(fold_seed, "epoch", epoch))
        model.train()
        loss_sum = torch.zeros((), device=s.device)
        hits = torch.zeros((), device=s.device, dtype=torch.int64)
        seen = 0
        with _bar(steps, f"{fold.name} epoch {epoch}/{s.epochs}", progress) as bar:
            for step, (images, y) in enumerate(loader):
                if step >= steps:
                    break
                y = y.to(s.device, non_blocking=True)
                with _autocast(s):
                    logits = model(_inputs(images, backbone, s))
                # Keras class_weight: the batch mean of weighted per-sample losses.
                losses = F.cross_entropy(logits.float(), y, reduction="none") * weight[y]
                loss = losses.mean()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += losses.detach().sum()
                hits += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                bar.update()
        seconds = time.perf_counter() - began
        row = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / max(seen, 1),
            "train_accuracy": int(hits) / max(seen, 1),
            "steps": steps,
            "lr": s.lr,
            "seconds": round(seconds, 3),
            "images_per_s": round(seen / seconds, 2) if seconds > 0 else math.nan,
        }
        payload = checkpoint_payload(
            backbone, labels=list(classes), num_classes=len(classes), epoch=epoch,
            optimizer=optimizer.state_dict(), scaler=scaler.state_dict(),
            fingerprint=fingerprint, fold=fold.name,
        )  # fmt: skip
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        append_rows(folder / "metrics.csv", FOLD_METRICS, [row])
        if on_epoch:
            on_epoch(fold, row)

    test_set = _dataset(prepared, test_rows, targets, augment="none", seed=fold_seed)
    probs = predict(backbone, test_set, s, progress=progress)
    meta = (
        index[test_rows]
        .select([pl.col(c).alias(m) for c, m in META_COLUMNS.items() if c in index.columns])
        .with_columns(pl.lit(fold.name).alias("Metadata_Fold"))
    )
    return pl.concat([meta, pl.DataFrame(probs, schema=list(classes), orient="row")],
                     how="horizontal")  # fmt: skip
