"""Classification metrics of an epoch, and the CSV files they go to.

The counting functions are pure functions of tensors, so they run on the device without a
host sync per batch; :class:`EpochTotals` sums them over an epoch (and over processes).

Top-k uses TensorFlow's ``in_top_k`` rule, as the paper's Keras metrics: a sample is a hit
when fewer than ``k`` classes score strictly higher than its true class (ties count as hits).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cytoimagenet.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

#: Columns of ``RUN_DIR/metrics.csv``, one row per epoch.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_top1",
    "train_top5",
    "val_loss",
    "val_top1",
    "val_top5",
    "classes_without_correct",
    "lr",
    "seconds",
    "images_per_s",
)
#: Columns of ``RUN_DIR/per_class_val.csv``, one row per validated class and epoch.
PER_CLASS_COLUMNS = ("epoch", "label", "n", "correct", "accuracy")


def topk_hits(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """Return, per sample, whether its true class is among its ``k`` best scores.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C)`` scores.
    targets : torch.Tensor
        ``(N,)`` class indices.
    k : int
        Number of best classes that count (at least 1).
    """
    true = logits.gather(1, targets.view(-1, 1))
    above = (logits > true).sum(dim=1)
    return (above < k) & ~true.view(-1).isnan()


def class_counts(
    targets: torch.Tensor, hits: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(n, correct)`` per class: samples of each class and how many were hits."""
    import torch

    n = torch.bincount(targets, minlength=num_classes)
    correct = torch.bincount(targets[hits], minlength=num_classes)
    return n, correct


def classes_without_correct(n: Sequence[int], correct: Sequence[int]) -> int:
    """Count the classes that have samples but no correct prediction (paper: 402 of 894)."""
    return sum(1 for a, b in zip(n, correct, strict=True) if a > 0 and b == 0)


def ratio(num: float, den: float) -> float:
    """Return ``num / den``, or NaN when ``den`` is 0."""
    return num / den if den else math.nan


@dataclass(frozen=True)
class EpochSummary:
    """Totals of one pass over a split."""

    n: int
    loss: float
    top1: float
    top5: float
    class_n: list[int]
    class_correct: list[int]


class EpochTotals:
    """Running sums of loss, top-1/top-5 hits and per-class counts, kept on ``device``."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        import torch

        self.num_classes = num_classes
        self.n = 0  # known on the host: no device work per batch
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.hits = torch.zeros(2, dtype=torch.int64, device=device)  # top-1, top-5
        self.class_n = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.class_correct = torch.zeros(num_classes, dtype=torch.int64, device=device)

    def update(self, loss_sum: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: the summed (not mean) loss, its logits and true classes."""
        import torch

        logits = logits.detach()
        top1 = topk_hits(logits, targets, 1)
        top5 = topk_hits(logits, targets, 5)
        self.n += len(targets)
        self.loss += loss_sum.detach().to(self.loss.dtype)
        self.hits += torch.stack([top1.sum(), top5.sum()])
        n, correct = class_counts(targets, top1, self.num_classes)
        self.class_n += n
        self.class_correct += correct

    def all_reduce(self) -> None:
        """Sum the totals over every process of the default group (no-op without one)."""
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            n = torch.tensor(self.n, dtype=torch.int64, device=self.hits.device)
            for tensor in (n, self.loss, self.hits, self.class_n, self.class_correct):
                dist.all_reduce(tensor)
            self.n = int(n)

    def summary(self) -> EpochSummary:
        """Return the totals as numbers (one host sync)."""
        n = self.n
        top1, top5 = (int(v) for v in self.hits.tolist())
        return EpochSummary(
            n=n,
            loss=ratio(float(self.loss), n),
            top1=ratio(top1, n),
            top5=ratio(top5, n),
            class_n=[int(v) for v in self.class_n.tolist()],
            class_correct=[int(v) for v in self.class_correct.tolist()],
        )


def per_class_rows(epoch: int, labels: Sequence[str], summary: EpochSummary) -> list[dict]:
    """Rows of ``per_class_val.csv`` for the classes that have val samples."""
    return [
        {"epoch": epoch, "label": label, "n": n, "correct": c, "accuracy": ratio(c, n)}
        for label, n, c in zip(labels, summary.class_n, summary.class_correct, strict=True)
        if n > 0
    ]


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def append_rows(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Append rows to a CSV file, writing the header when the file is new or empty.

    NaN and None become empty cells; floats keep full precision.
    """
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def keep_epochs(path: Path, last_epoch: int) -> int:
    """Drop the rows of epochs after ``last_epoch`` from a CSV (atomic); return rows dropped.

    A run killed between writing an epoch's metrics and its checkpoint redoes that epoch
    when resumed; this keeps its rows from appearing twice.
    """
    if not path.is_file():
        return 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        rows = list(reader)
    kept = [r for r in rows if int(r["epoch"]) <= last_epoch]
    if len(kept) == len(rows):
        return 0
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(kept)
    return len(rows) - len(kept)
