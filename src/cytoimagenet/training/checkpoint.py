"""A pretraining run folder: checkpoints every epoch, exact resume, and what may be resumed.

``RUN/checkpoints/epoch_NNN.pt`` holds the model, optimiser, RNG states and the settings
fingerprint after epoch NNN; ``last.pt`` is a hard link to the newest. A run resumes from
``last.pt`` only with the same settings, and metric rows of epochs without a checkpoint (a
run killed mid-epoch) are dropped first, so a resumed run's files equal an uninterrupted one's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from cytoimagenet.errors import ConfigError
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.models.factory import CHECKPOINT_FORMAT
from cytoimagenet.training.metrics import keep_epochs

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
RUN_FILES = {"config.json", "provenance.json", "metrics.csv", "per_class_val.csv", CHECKPOINT_DIR}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def read_resume_state(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Load ``last.pt`` for resuming; refuse one made with other settings.

    Raises
    ------
    ConfigError
        If the file is not a pretraining checkpoint or its settings differ.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ConfigError(
            f"{path}: unreadable checkpoint ({exc}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a cytoimagenet checkpoint")
    if "optimizer" not in state or "fingerprint" not in state:
        raise ConfigError(f"{path}: a weights-only checkpoint cannot be resumed")
    changed = _differences(state["fingerprint"], fingerprint)
    if changed:
        raise ConfigError(
            f"{path.parent.parent} holds a run with other settings ({'; '.join(changed)}); "
            "resume with the same options, or choose a new --out"
        )
    return state


def save_checkpoint(payload: dict[str, Any], folder: Path, epoch: int) -> Path:
    """Write ``epoch_NNN.pt`` and point ``last.pt`` at it, each atomically; return the former."""
    import torch

    final = folder / f"epoch_{epoch:03d}.pt"
    with atomic_path(final) as tmp:
        torch.save(payload, tmp)
    with atomic_path(folder / LAST) as tmp:
        tmp.unlink()
        try:
            os.link(final, tmp)  # same bytes, no second copy on disk
        except OSError:
            shutil.copyfile(final, tmp)
    return final


def check_out(out: Path, resuming: bool) -> None:
    """Refuse a run folder that holds something other than an unfinished first epoch."""
    if out.is_dir() and not resuming:
        other = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES)
        if other:
            raise ConfigError(
                f"{out} is not empty and holds no pretraining run ({', '.join(other[:3])} …); "
                "choose an empty --out folder"
            )


def prepare_out(out: Path, start: int) -> None:
    """Create the folders; drop metric rows of epochs that have no checkpoint."""
    for name in ("metrics.csv", "per_class_val.csv"):
        if start:
            keep_epochs(out / name, start)
        else:  # left by a run killed in its first epoch
            (out / name).unlink(missing_ok=True)
    (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
