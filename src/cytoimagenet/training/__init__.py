"""Pretraining on a built dataset (paper §2.11): data loading, loop, metrics, checkpoints.

The heavy modules (torch, timm) are imported by :mod:`cytoimagenet.training.loop` only, so
``from cytoimagenet.training.config import PretrainJob`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cytoimagenet.training.loop import PretrainResult, run_pretrain

__all__ = ["PretrainResult", "run_pretrain"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cytoimagenet.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
