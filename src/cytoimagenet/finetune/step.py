"""The ``finetune`` step: preprocess, train and predict every fold, gather, score.

Run folder::

    RUN_DIR/config.json            resolved job, its fingerprint, runtime settings
    RUN_DIR/provenance.json        versions and metadata checksums
    RUN_DIR/prepared/…             cached crops (unless --cache puts them elsewhere)
    RUN_DIR/folds/<fold>/          metrics.csv, checkpoint.pt while training,
                                   predictions.parquet once done (then skipped on rerun)
    RUN_DIR/predictions.parquet    every finished fold's crop predictions (what `score` reads)
    RUN_DIR/result.json            the score, with the config and environment

BBBC021 is scored as Kensert et al. did: the median of crop probabilities per well, the
median of well vectors per treatment, argmax, accuracy over the (103) treatments; their exact
grouping by the ``Replicate`` column is reported beside it (``kensert_replicates``). BBBC014:
the *mean* of a well's crop probabilities, argmax (their 0.5 threshold), accuracy over wells.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.evaluation.result import with_input
from cytoimagenet.finetune.config import FinetuneJob
from cytoimagenet.finetune.folds import Fold, make_folds, select_folds
from cytoimagenet.finetune.layout import READERS
from cytoimagenet.finetune.loop import CHECKPOINT, Settings, train_fold
from cytoimagenet.finetune.model import NAMED_INITS, build_classifier
from cytoimagenet.finetune.prepare import PrepSpec, prepare_crops
from cytoimagenet.hashing import stable_hash
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.provenance import environment, write_provenance

log = logging.getLogger(__name__)

PREDICTIONS: Final = "predictions.parquet"
RESULT: Final = "result.json"
_RUN_FILES: Final = {"config.json", "provenance.json", "prepared", "folds", PREDICTIONS, RESULT}
BENCHMARKS: Final = {"bbbc021": "bbbc021-moa-loco", "bbbc014": "bbbc014-translocation-2fold"}


@dataclass
class FinetuneResult:
    """What a ``finetune`` call did.

    Attributes
    ----------
    out : Path
        The run folder.
    classes : list of str
        Class names (probability columns), in order.
    folds : list of Fold
        Every fold of the dataset.
    trained, skipped : list of str
        Folds trained by this call, and folds already done.
    predictions : Path, optional
        The gathered predictions table.
    result : dict, optional
        The content of ``result.json``.
    settings : dict
        Resolved runtime settings and preprocessing counts.
    """

    out: Path
    classes: list[str]
    folds: list[Fold]
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    predictions: Path | None = None
    result: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _check_run(out: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse a run folder holding another run, or something else entirely."""
    config = out / "config.json"
    if config.is_file():
        try:
            old = json.loads(config.read_text(encoding="utf-8"))["fingerprint"]
            if not isinstance(old, dict):
                raise TypeError("its fingerprint is not a JSON object")
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"{config}: not a readable finetune run config ({type(exc).__name__}: {exc}); "
                "remove the folder to start over, or choose a new --out"
            ) from None
        keys = sorted(set(old) | set(fingerprint))
        changed = [f"{k}: {old.get(k)!r} → {fingerprint.get(k)!r}" for k in keys
                   if old.get(k) != fingerprint.get(k)]  # fmt: skip
        if changed:
            raise ConfigError(
                f"{out} holds a finetune run with other settings ({'; '.join(changed)}); "
                "resume with the same options, or choose a new --out"
            )
    elif out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in _RUN_FILES)
        if other:
            raise ConfigError(
                f"{out} is not empty and holds no finetune run ({', '.join(other[:3])} …); "
                "choose an empty --out folder"
            )


def gather(out: Path, folds: list[Fold]) -> pl.DataFrame | None:
    """Concatenate the finished folds' predictions, in fold order (``None`` if none)."""
    parts = [
        pl.read_parquet(p) for f in folds if (p := out / "folds" / f.name / PREDICTIONS).is_file()
    ]
    return pl.concat(parts, how="vertical") if parts else None


def well_means(frame: pl.DataFrame, classes: list[str]) -> pl.DataFrame:
    """One row per well: the mean of its crops' probabilities (Kensert's BBBC014 rule)."""
    keys = ["Metadata_Plate", "Metadata_Well"]
    constant = [c for c in frame.columns if c.startswith("Metadata_") and c not in keys]
    return frame.group_by(keys, maintain_order=True).agg(
        *[pl.col(c).first() for c in constant if c not in ("Metadata_Crop", "Metadata_Field")],
        *[pl.col(c).mean() for c in classes],
        pl.len().alias("Metadata_Count"),
    )


def replicate_score(frame: pl.DataFrame, classes: list[str]) -> dict[str, Any]:
    """Treatment accuracy with Kensert's exact grouping: crops → ``Replicate`` → treatment.

    Their ``treatment_prediction`` groups a treatment's crops by the ``Replicate`` column,
    which merges two wells of one replicate number (5 BBBC021 treatments have 3 wells but 2
    replicate numbers); the primary score groups by well instead.
    """
    from cytoimagenet.finetune.scoring import aggregate_predictions, score_level

    treatment = ["Metadata_Compound", "Metadata_Concentration"]
    replicates = aggregate_predictions(frame, classes, [*treatment, "Metadata_Replicate"])
    scored = score_level(aggregate_predictions(replicates, classes, treatment), classes)
    return {k: scored[k] for k in ("accuracy", "correct", "n", "ci95")}


def score_run(
    dataset: str, frame: pl.DataFrame, classes: list[str], folds: list[Fold]
) -> dict[str, Any]:
    """Score gathered predictions as the paper did; add per-fold accuracies."""
    from cytoimagenet.finetune.scoring import (
        level_frames,
        score_level,
        score_predictions,
        validate_predictions,
    )

    frame = validate_predictions(frame, classes, "finetune predictions")
    if dataset == "bbbc014":
        wells = well_means(frame, classes)
        result = score_predictions(wells, classes, "well", benchmark=BENCHMARKS[dataset])
        result["protocol"]["aggregation"] = "mean"  # type: ignore[index]
        result["protocol"]["description"] = (  # type: ignore[index]
            "mean of the crop probabilities per well, argmax (= Kensert's sigmoid ≥ 0.5), "
            "accuracy over wells; two folds across cell lines"
        )
        per_fold = {name: score_level(part, classes)
                    for (name,), part in level_frames(wells, classes, "well")["well"]
                    .group_by("Metadata_Fold", maintain_order=True)}  # fmt: skip
    else:
        result = score_predictions(frame, classes, "treatment", "crop",
                                   benchmark=BENCHMARKS[dataset])  # fmt: skip
        treatments = level_frames(frame, classes, "treatment", "crop")["treatment"]
        result["kensert_replicates"] = replicate_score(frame, classes)
        per_fold = {name: score_level(part, classes)
                    for (name,), part in treatments.group_by("Metadata_Fold",
                                                             maintain_order=True)}  # fmt: skip
    done = {
        f.name: {"held_out": f.held_out, **{k: per_fold[f.name][k] for k in ("correct", "n")}}
        for f in folds
        if f.name in per_fold
    }
    result["folds"] = done
    result["folds_done"] = len(done)
    result["folds_total"] = len(folds)
    result["complete"] = len(done) == len(folds)
    return result


def init_name(init: str) -> str:
    """``imagenet``/``xavier``/``random``, or the stem of a weights file."""
    return init if init in NAMED_INITS else Path(init).stem


def _settings(job: FinetuneJob) -> tuple[Settings, dict[str, Any]]:
    from cytoimagenet.training.distributed import resolve_amp, resolve_channels_last, resolve_device

    device = resolve_device(job.device, 0, 1)
    amp = resolve_amp(job.amp, device)
    channels_last = resolve_channels_last(job.channels_last, device)
    fingerprint = {**job.fingerprint(), "amp": amp, "channels_last": channels_last}
    settings = Settings(
        model=job.model, init=job.init, epochs=job.epochs, batch_size=job.batch_size,
        lr=job.lr, momentum=job.momentum, augment=job.augment,
        class_weights=job.class_weights, seed=job.seed, max_steps=job.max_steps,
        workers=job.workers, device=device, amp=amp, channels_last=channels_last,
        fingerprint=fingerprint,
    )  # fmt: skip
    resolved = {"device": str(device), "amp": amp, "channels_last": channels_last}
    return settings, resolved


def run_finetune(
    job: FinetuneJob,
    *,
    progress: bool = True,
    on_fold: Callable[[Fold, str, dict[str, Any]], None] | None = None,
    on_epoch: Callable[[Fold, dict[str, Any]], None] | None = None,
) -> FinetuneResult:
    """Run (or resume) a fine-tuning cross-validation; see the module docstring.

    Parameters
    ----------
    job : FinetuneJob
        The validated job.
    progress : bool
        Show progress bars.
    on_fold : callable, optional
        Called with ``(fold, "trained" | "skipped", info)`` after each selected fold.
    on_epoch : callable, optional
        Called with ``(fold, metrics row)`` after each epoch.

    Raises
    ------
    ConfigError
        For missing data, a run folder of other settings, or settings this machine cannot
        run — all before any training.
    """
    fields, inputs = READERS[job.dataset](job.root)
    treated = fields.filter(pl.col("role") == "treated")
    classes = sorted(treated["moa"].unique().to_list())
    folds = make_folds(fields)
    chosen = select_folds(folds, job.folds)
    settings, resolved = _settings(job)
    # The same settings on other data (more plates, other labels) is another run.
    listing = treated.select("field", "moa").sort("field").rows()
    fingerprint = {**job.fingerprint(), "fields": f"{stable_hash(listing):016x}"}
    _check_run(job.out, fingerprint)
    todo = [f for f in chosen if not (job.out / "folds" / f.name / PREDICTIONS).is_file()]
    if todo:  # unreachable ImageNet weights or a weights file that does not fit: fail now
        build_classifier(job.model, job.init, len(classes), job.seed)
    result = FinetuneResult(job.out, classes, folds, settings=dict(resolved))
    config = {"job": job.resolved(), "fingerprint": fingerprint, "resolved": resolved,
              "classes": classes, "folds": [f.held_out for f in folds]}  # fmt: skip
    with atomic_path(job.out / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    write_provenance(job.out / "provenance.json", command="finetune", config=config,
                     inputs=inputs)  # fmt: skip

    spec = PrepSpec(job.dataset, job.input_size, job.crop_size)
    prepared = prepare_crops(fields, spec, job.cache or job.out / "prepared",
                             workers=max(job.workers, 1), progress=progress)  # fmt: skip
    result.settings.update(prepared.summary, crops_folder=str(prepared.folder))
    for fold in chosen:
        folder = job.out / "folds" / fold.name
        done = folder / PREDICTIONS
        if done.is_file():
            result.skipped.append(fold.name)
            if on_fold:
                on_fold(fold, "skipped", {})
            continue
        frame = train_fold(fold, prepared, classes, settings, folder,
                           progress=progress, on_epoch=on_epoch)  # fmt: skip
        with atomic_path(done) as tmp:
            frame.write_parquet(tmp)
        (folder / CHECKPOINT).unlink(missing_ok=True)
        result.trained.append(fold.name)
        if on_fold:
            on_fold(fold, "trained", {"crops": frame.height})

    gathered = gather(job.out, folds)
    if gathered is None:
        return result
    result.predictions = job.out / PREDICTIONS
    with atomic_path(result.predictions) as tmp:
        gathered.write_parquet(tmp)
    scored = score_run(job.dataset, gathered, classes, folds)
    name = f"{job.model}-{init_name(job.init)}"
    record = with_input(scored, feature_set=name, features=result.predictions)
    record |= {"config": config, "environment": environment()}
    with atomic_path(job.out / RESULT) as tmp:
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n",
                       encoding="utf-8")  # fmt: skip
    result.result = record
    if not record["complete"]:
        log.warning("%s: %d of %d folds done; result.json scores those only",
                    job.out, record["folds_done"], len(folds))  # fmt: skip
    return result
