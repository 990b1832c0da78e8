"""One pretraining epoch: the training steps, the validation pass and the metrics row.

:class:`EpochRunner` holds what every epoch needs (model, optimiser, scaler, precision
settings); :func:`metric_row` turns an epoch's summaries into a ``metrics.csv`` row.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cytoimagenet.models.factory import Backbone
from cytoimagenet.training import distributed
from cytoimagenet.training.config import PretrainJob
from cytoimagenet.training.metrics import EpochSummary, EpochTotals, classes_without_correct

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


@dataclass
class EpochRunner:
    """Everything one epoch needs; ``train_epoch`` and ``evaluate`` run one pass each."""

    job: PretrainJob
    ctx: distributed.Context
    backbone: Backbone
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: str
    channels_last: bool
    num_classes: int
    progress: bool
    global_step: int = 0

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """Move a ``uint8`` batch to the device as the model's normalised float input."""
        import torch

        x = images.to(self.ctx.device, non_blocking=True).float().div_(255.0)
        x = self.backbone.preprocess(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self) -> Any:
        """Return the mixed-precision context of the resolved ``amp`` setting."""
        import torch

        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.ctx.device.type, dtype=dtype, enabled=self.amp != "off")

    def bar(self, total: int, desc: str) -> Any:
        """Return a progress bar, shown on the first process only."""
        from tqdm import tqdm

        show = self.progress and self.ctx.is_main
        return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not show,
                    file=sys.stderr, dynamic_ncols=True)  # fmt: skip

    def train_epoch(self, loader: Any, epoch: int) -> EpochSummary:
        """Run one epoch of training steps; return its totals over every process."""
        import torch.nn.functional as F  # noqa: N812

        self.net.train()
        totals = EpochTotals(self.num_classes, self.ctx.device)
        steps = len(loader) if self.job.max_steps is None else min(len(loader), self.job.max_steps)
        with self.bar(steps, f"epoch {epoch}/{self.job.epochs}") as bar:
            for step, (images, targets) in enumerate(loader):
                if step >= steps:
                    break
                x = self.inputs(images)
                y = targets.to(self.ctx.device, non_blocking=True)
                with self.autocast():
                    logits = self.net(x)
                losses = F.cross_entropy(logits.float(), y, reduction="none")
                loss = losses.mean()
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                totals.update(losses.sum(), logits, y)
                self.global_step += 1
                bar.update()
                if not bar.disable and step % 50 == 0:  # a host sync
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        totals.all_reduce()
        if not math.isfinite(float(totals.loss)):
            log.warning("epoch %d: the training loss is not finite", epoch)
        return totals.summary()

    def evaluate(self, loader: Any, epoch: int) -> EpochSummary:
        """Run the validation pass; return its totals over every process."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        model = self.backbone.model  # not the DDP wrapper: processes may have unequal shares
        model.eval()
        totals = EpochTotals(self.num_classes, self.ctx.device)
        steps = len(loader) if self.job.max_steps is None else min(len(loader), self.job.max_steps)
        with torch.inference_mode(), self.bar(steps, f"val {epoch}") as bar:
            for step, (images, targets) in enumerate(loader):
                if step >= steps:
                    break
                y = targets.to(self.ctx.device, non_blocking=True)
                with self.autocast():
                    logits = model(self.inputs(images))
                losses = F.cross_entropy(logits.float(), y, reduction="none")
                totals.update(losses.sum(), logits, y)
                bar.update()
        totals.all_reduce()
        return totals.summary()


def metric_row(
    epoch: int, train: EpochSummary, val: EpochSummary | None, lr: float, seconds: float, ips: float
) -> dict[str, Any]:
    """Return the ``metrics.csv`` row of an epoch (NaN for the val columns when not run)."""
    nan = math.nan
    return {
        "epoch": epoch,
        "train_loss": train.loss,
        "train_top1": train.top1,
        "train_top5": train.top5,
        "val_loss": val.loss if val else nan,
        "val_top1": val.top1 if val else nan,
        "val_top5": val.top5 if val else nan,
        "classes_without_correct": (
            classes_without_correct(val.class_n, val.class_correct) if val else None
        ),
        "lr": lr,
        "seconds": round(seconds, 3),
        "images_per_s": round(ips, 2),
    }
