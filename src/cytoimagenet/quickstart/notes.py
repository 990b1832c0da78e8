"""What the quickstart tells its reader beside the numbers.

Two honest notes, each a plain function of files the stages wrote:

* :func:`validation_loss` — where validation loss was lowest and whether it rose after that
  (a dozen CPU epochs on a few hundred crops overfit), and :func:`transfer_checkpoint`, the
  checkpoint the extract stage transfers from: the lowest-validation-loss epoch, which
  ``pretrain`` keeps as ``checkpoints/epoch_NNN.pt`` beside ``last.pt``.
* :func:`small_n_caveat` — how much one item moves a score, and whether the confidence
  intervals of the feature sets overlap (then the table does not rank them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from cytoimagenet.reporting.figures import read_metrics
from cytoimagenet.training.checkpoint import CHECKPOINT_DIR, LAST


@dataclass(frozen=True)
class ValidationLoss:
    """Validation loss over a pretraining run: its lowest point and its last value.

    Attributes
    ----------
    best_epoch, best_loss : int, float
        The epoch with the lowest validation loss (the earliest on a tie) and that loss.
    best_top1 : float
        Validation top-1 accuracy (0–1) at ``best_epoch``.
    last_epoch, last_loss : int, float
        The last validated epoch and its loss.
    train_at_best, train_at_last : float
        Training loss at those two epochs.
    epochs : int
        Epochs the run trained (rows of ``metrics.csv``).
    """

    best_epoch: int
    best_loss: float
    best_top1: float
    last_epoch: int
    last_loss: float
    train_at_best: float
    train_at_last: float
    epochs: int

    @property
    def rose(self) -> bool:
        """Whether validation loss ended above its lowest point."""
        return self.last_epoch != self.best_epoch and self.last_loss > self.best_loss

    @property
    def checkpoint_name(self) -> str:
        """File name of the lowest-validation-loss checkpoint."""
        return f"epoch_{self.best_epoch:03d}.pt"

    def line(self) -> str:
        """One line for the terminal: where val loss was lowest and what is transferred."""
        if not self.rose:
            return (
                f"pretrain: validation loss lowest at the last epoch ({self.last_epoch}: "
                f"{self.best_loss:.3f}); features from {self.checkpoint_name}"
            )
        return (
            f"pretrain: validation loss lowest at epoch {self.best_epoch} of {self.epochs} "
            f"({self.best_loss:.3f}), {self.last_loss:.3f} at epoch {self.last_epoch} "
            f"(+{self.last_loss - self.best_loss:.3f}); features from {self.checkpoint_name}"
        )

    def paragraph(self) -> str:
        """Say what validation loss did, and which checkpoint the features come from."""
        if not self.rose:
            return (
                f"Validation loss fell to its lowest at the last epoch ({self.last_epoch}: "
                f"{self.best_loss:.3f}), so the extract stage transfers from the last "
                f"checkpoint ({self.checkpoint_name}, the same file as last.pt)."
            )
        rise = self.last_loss - self.best_loss
        trend = (
            f", while training loss kept falling ({self.train_at_best:.3f} → "
            f"{self.train_at_last:.3f}): the network overfits its training crops"
            if self.train_at_last < self.train_at_best
            else ""
        )
        return (
            f"Validation loss rose over the run: lowest at epoch {self.best_epoch} of "
            f"{self.epochs} ({self.best_loss:.3f}, val top-1 {100 * self.best_top1:.1f} %), "
            f"{self.last_loss:.3f} at epoch {self.last_epoch} (+{rise:.3f}, "
            f"+{100 * rise / self.best_loss:.0f} %){trend}. The extract stage therefore "
            f"transfers from the lowest-validation-loss checkpoint ({self.checkpoint_name}), "
            "not from last.pt."
        )


def validation_loss(metrics: Path) -> ValidationLoss | None:
    """Summarise the validation loss of a ``metrics.csv``; ``None`` when none was recorded.

    Parameters
    ----------
    metrics : Path
        ``metrics.csv`` of ``cytoimagenet pretrain`` (epochs not validated hold NaN).
    """
    if not metrics.is_file():
        return None
    rows = read_metrics(metrics)
    scored = [r for r in rows if not math.isnan(r.get("val_loss", math.nan))]
    if not scored:
        return None
    best = min(scored, key=lambda r: (r["val_loss"], r["epoch"]))
    last = scored[-1]
    return ValidationLoss(
        best_epoch=int(best["epoch"]),
        best_loss=best["val_loss"],
        best_top1=best.get("val_top1", math.nan),
        last_epoch=int(last["epoch"]),
        last_loss=last["val_loss"],
        train_at_best=best.get("train_loss", math.nan),
        train_at_last=last.get("train_loss", math.nan),
        epochs=len(rows),
    )


def transfer_checkpoint(pretrain: Path) -> Path:
    """Return the checkpoint features are extracted from: the lowest-validation-loss epoch.

    ``pretrain`` keeps every epoch's ``checkpoints/epoch_NNN.pt``; without validation
    metrics (or without that file) this is ``checkpoints/last.pt``.
    """
    folder = pretrain / CHECKPOINT_DIR
    summary = validation_loss(pretrain / "metrics.csv")
    if summary is not None and (folder / summary.checkpoint_name).is_file():
        return folder / summary.checkpoint_name
    return folder / LAST


def _interval(result: Mapping[str, Any]) -> tuple[str, float, float] | None:
    """Return the result's Wilson 95 % interval where it has one, else its headline one.

    Wilson's, because the paper's Wald interval is 0 wide at 0 or 100 % (12/12 is not
    certain), which would make a perfect score look apart from every other.
    """
    primary = (result.get("scores") or {}).get(str(result.get("primary")), {})
    ci = (primary.get("extra") or {}).get("wilson_ci95") or result.get("ci95") or {}
    low, high = ci.get("low"), ci.get("high")
    if low is None or high is None:
        return None
    return str(ci.get("method", "")).capitalize() or "95 %", float(low), float(high)


def small_n_caveat(results: Sequence[Mapping[str, Any]], unit: str = "treatments") -> str | None:
    """Say how much one item moves a score and whether the 95 % intervals overlap.

    Parameters
    ----------
    results : sequence of dict
        RESULT.json objects of one benchmark (``n``, ``ci95``, ``feature_set``); the
        primary score's Wilson interval is used where it has one (:func:`_interval`).
    unit : str
        What ``n`` counts, plural.

    Returns
    -------
    str or None
        E.g. ``"n = 12 treatments: one treatment is 8.33 points, and all 4 intervals
        overlap, so the table does not rank these feature sets."``; ``None`` without results.

    Examples
    --------
    >>> ci = lambda lo, hi: {"method": "wald", "low": lo, "high": hi}
    >>> small_n_caveat([{"n": 12, "feature_set": "A", "ci95": ci(0.3, 0.86)},
    ...                 {"n": 12, "feature_set": "B", "ci95": ci(0.76, 1.0)}])
    'n = 12 treatments: one treatment is 8.33 points, and both Wald 95 % intervals overlap, so the table does not rank these feature sets.'
    """  # noqa: E501
    sizes = sorted({int(r["n"]) for r in results if r.get("n")})
    if not sizes:
        return None
    one = unit.removesuffix("s")
    points = " / ".join(f"{100 / n:.2f}" for n in sizes)
    head = f"n = {' / '.join(map(str, sizes))} {unit}: one {one} is {points} points"
    found = [(str(r.get("feature_set")), _interval(r)) for r in results]
    named = [(name, ci[1:]) for name, ci in found if ci is not None]
    if len(named) < 2:
        return head + "."
    methods = sorted({ci[0] for _, ci in found if ci is not None})
    kind = f"{' / '.join(methods)} 95 %"
    apart = [
        f"{a} and {b}"
        for (a, ca), (b, cb) in combinations(named, 2)
        if ca[1] < cb[0] or cb[1] < ca[0]
    ]
    edge = any(r.get("accuracy") in (0, 0.0, 1, 1.0) for r in results) and "Wilson" in methods
    # The table's ± is the paper's Wald interval, which a perfect score makes 0 wide.
    wald = " (the table's Wald ± is 0 wide at 0 or 100 %, which is not certainty)" if edge else ""
    if not apart:
        every = "both" if len(named) == 2 else f"all {len(named)}"
        return (
            f"{head}, and {every} {kind} intervals overlap{wald}, so the table does not rank "
            "these feature sets."
        )
    return (
        f"{head}; the {kind} intervals of {'; '.join(apart)} do not overlap, those of every "
        f"other pair do{wald}."
    )
