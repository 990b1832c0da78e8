"""A pretraining run folder: checkpoints every epoch, exact resume, and what may be resumed.

``RUN/checkpoints/epoch_NNN.pt`` holds the model, optimiser, RNG states and the settings
fingerprint after epoch NNN; ``last.pt`` is a hard link to the newest. A run resumes from
``last.pt`` only with the same settings, and metric rows of epochs without a checkpoint (a
run killed mid-epoch) are dropped first, so a resumed run's files equal an uninterrupted one's.

A run killed while writing leaves its temporary file (``.epoch_NNN.pt.XXXXXXXX.tmp``, as big
as a checkpoint); :func:`sweep_temp` removes those, and only names :func:`atomic_path` makes
for this folder's files. An unreadable ``last.pt`` (a torn copy, a bad disk block) falls back
to the newest readable ``epoch_NNN.pt``: every random stream is a function of the seed and
the epoch, so resuming from an earlier epoch still ends with the same weights.
"""

from __future__ import annotations

import csv
import logging
import os
import re
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
#: What ``pretrain`` needs from a checkpoint to resume; one missing any of these is unreadable.
RESUME_KEYS = ("epoch", "global_step", "labels", "state_dict", "model_name", "in_chans", "mean",
               "std", "optimizer", "scaler", "fingerprint")  # fmt: skip
# atomic_path's temp names: "." + final name + "." + mkstemp's 8 characters + ".tmp".
_RANDOM = r"\.[a-z0-9_]{8}\.tmp"
_TEMP_IN_RUN = re.compile(
    r"\.(config\.json|provenance\.json|metrics\.csv|per_class_val\.csv)" + _RANDOM
)
_TEMP_IN_CHECKPOINTS = re.compile(r"\.(epoch_\d{3,}\.pt|last\.pt)" + _RANDOM)
_EPOCH_FILE = re.compile(r"epoch_(\d{3,})\.pt")

log = logging.getLogger(__name__)


class UnreadableCheckpointError(ConfigError):
    """A checkpoint file is corrupt, truncated or incomplete (not a settings mismatch)."""


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def read_resume_state(
    path: Path, fingerprint: dict[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Load a checkpoint for resuming; refuse one made with other settings.

    ``required`` names the keys the caller reads (``pretrain``: :data:`RESUME_KEYS`).

    Raises
    ------
    UnreadableCheckpointError
        If the file cannot be loaded, is not a cytoimagenet checkpoint or lacks what a
        resume needs.
    ConfigError
        If it was made with other settings.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise UnreadableCheckpointError(
            f"{path}: unreadable checkpoint ({str(exc).splitlines()[0] if str(exc) else exc!r})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UnreadableCheckpointError(f"{path}: not a cytoimagenet checkpoint")
    if "optimizer" not in state or "fingerprint" not in state:
        raise UnreadableCheckpointError(f"{path}: a weights-only checkpoint cannot be resumed")
    missing = [k for k in required if k not in state]
    if missing:
        raise UnreadableCheckpointError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    changed = _differences(state["fingerprint"], fingerprint)
    if changed:
        raise ConfigError(
            f"{path.parent.parent} holds a run with other settings ({'; '.join(changed)}); "
            "resume with the same options, or choose a new --out"
        )
    return state


def epoch_checkpoints(folder: Path) -> list[Path]:
    """Return the ``epoch_NNN.pt`` files of a checkpoint folder, newest epoch first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH_FILE.fullmatch(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def find_resume_state(folder: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Return the state to resume from: ``last.pt``, else the newest readable epoch file.

    ``None`` when the folder has no ``last.pt`` (a new run).

    Raises
    ------
    ConfigError
        When no checkpoint is readable (naming ``last.pt`` and what to do), or the readable
        one was made with other settings.
    """
    last = folder / LAST
    if not last.is_file():
        return None
    try:
        return read_resume_state(last, fingerprint, RESUME_KEYS)
    except UnreadableCheckpointError as exc:
        first = exc
    for path in epoch_checkpoints(folder):
        if path.samefile(last):
            continue  # a hard link of the unreadable last.pt
        try:
            state = read_resume_state(path, fingerprint, RESUME_KEYS)
        except UnreadableCheckpointError as exc:
            log.warning("%s", exc)
            continue
        log.warning("%s; resuming from %s (epoch %s) instead", first, path.name, state["epoch"])
        return state
    raise ConfigError(
        f"{first}; no earlier epoch_NNN.pt in {folder} is readable either: delete {folder} "
        "to start the run over, or choose a new --out"
    )


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


def sweep_temp(out: Path) -> list[Path]:
    """Remove temporary files a killed run left in ``out`` and its checkpoint folder.

    Only :func:`~cytoimagenet.io.atomic.atomic_path`'s temp names of the run's own files
    match (``.last.pt.k3j_9x0a.tmp``); anything else is left alone. Returns what was removed.
    """
    removed = []
    for folder, pattern in ((out, _TEMP_IN_RUN), (out / CHECKPOINT_DIR, _TEMP_IN_CHECKPOINTS)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if pattern.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted run in %s", len(removed), out)
    return removed


def prepare_out(out: Path, start: int) -> None:
    """Create the folders; drop metric rows of epochs that have no checkpoint.

    Raises
    ------
    ConfigError
        When a metrics file of the run to resume cannot be read (naming it).
    """
    for name in ("metrics.csv", "per_class_val.csv"):
        if start:
            try:
                keep_epochs(out / name, start)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError, csv.Error) as exc:
                raise ConfigError(
                    f"{out / name}: unreadable metrics file ({type(exc).__name__}: {exc}); move "
                    "it aside to resume (the checkpoints hold the run), or choose a new --out"
                ) from None
        else:  # left by a run killed in its first epoch
            (out / name).unlink(missing_ok=True)
    (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
