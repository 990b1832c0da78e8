"""The ``score`` step: a predictions table → RESULT.json (+ confusion PNG, + conformal sets).

Conformal sets are computed at the scored level on the aggregated probability vectors,
rescaled to sum to 1 (medians need not; APS reads the vector as a distribution, and LAC
scores of differently-scaled rows would not be comparable). Calibration is either a separate
predictions table (``conformal_calibration``; it must share no compound with the scored
table) or, by default, leave-one-compound-out inside the scored table: each compound's rows
get sets calibrated on the other compounds' rows only (see
:func:`cytoimagenet.finetune.conformal.group_disjoint_sets`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from cytoimagenet.config import _Job
from cytoimagenet.errors import SchemaError
from cytoimagenet.evaluation.result import with_input, write_result
from cytoimagenet.fields import JsonOut, existing_file, output_file
from cytoimagenet.finetune import conformal
from cytoimagenet.finetune.scoring import (
    MOA,
    detect_classes,
    level_frames,
    score_predictions,
    validate_predictions,
)
from cytoimagenet.io.parquet import read_parquet
from cytoimagenet.io.tables import read_delimited

_DELIMITED = (".csv", ".tsv", ".txt", ".tab")


class ScoreJob(_Job):
    """Score a predictions table.

    Attributes
    ----------
    predictions : Path
        Parquet, or CSV/TSV (optionally ``.gz``), one row per crop, well or treatment.
    out : Path
        RESULT.json to write.
    level, aggregate_from : {"crop", "well", "treatment"}
        Scored level and the level of the rows (default: ``level``).
    classes : list of str, optional
        Class columns in order; detected from ``Metadata_MoA`` when omitted.
    conformal_alpha : list of float
        Error rates of the conformal sets; none means no conformal block.
    conformal_calibration : Path, optional
        A compound-disjoint predictions table to calibrate on; leave-one-compound-out
        within ``predictions`` when omitted.
    """

    predictions: Annotated[Path, existing_file("predictions table")]
    out: JsonOut
    level: Literal["crop", "well", "treatment"] = "treatment"
    aggregate_from: Literal["crop", "well", "treatment"] | None = None
    classes: list[str] | None = None
    figure: Annotated[Path | None, output_file(".png", noun="figure")] = None
    benchmark: str = "predictions"
    name: str | None = None
    conformal_alpha: list[float] = Field(default_factory=list)
    conformal_score: Literal["lac", "aps"] = "lac"
    mondrian: bool = False
    randomize: bool = False
    conformal_calibration: Annotated[Path | None, existing_file("predictions table")] = None
    group: str = "Metadata_Compound"
    seed: int = 0

    @field_validator("conformal_alpha")
    @classmethod
    def _alphas(cls, value: list[float]) -> list[float]:
        bad = [a for a in value if not 0 < a < 1]
        if bad:
            raise ValueError(f"conformal error rates must lie in (0, 1), got {bad}")
        return value


def read_predictions(path: Path) -> pl.DataFrame:
    """Read a predictions table: Parquet, or CSV/TSV (optionally gzipped) as strings.

    Raises
    ------
    SchemaError
        When the file is neither, or unreadable.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".parquet":
        try:
            return read_parquet(path)
        except Exception as exc:  # polars/pyarrow raise many kinds
            raise SchemaError(f"{path}: cannot read as Parquet ({exc})") from exc
    plain = suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes
    if plain and plain[-1] in _DELIMITED:
        return read_delimited(path)
    raise SchemaError(f"{path}: give a .parquet, .csv, .tsv or .csv.gz predictions table")


def probabilities(frame: pl.DataFrame, classes: list[str], source: str) -> np.ndarray:
    """Return the class columns as an array whose rows are rescaled to sum to 1."""
    probs = frame.select(classes).to_numpy().astype(np.float64)
    sums = probs.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise SchemaError(f"{source}: {int((sums <= 0).sum())} rows have all-zero probabilities")
    return probs / sums


def _labels(frame: pl.DataFrame, classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in frame[MOA].to_list()], dtype=np.int64)


def _groups(frame: pl.DataFrame, group: str, source: str) -> np.ndarray:
    if group not in frame.columns:
        raise SchemaError(
            f"{source}: no {group} column at this level, so the conformal calibration cannot "
            "hold compounds out; add it or give --conformal-calibration"
        )
    values = frame[group]
    if values.null_count():
        raise SchemaError(f"{source}: {values.null_count()} rows have no {group}")
    return np.asarray(values.cast(pl.String).to_list(), dtype=object)


def conformal_report(
    frame: pl.DataFrame,
    classes: list[str],
    job: ScoreJob,
    calibration: pl.DataFrame | None = None,
) -> dict[str, object]:
    """Conformal sets of every row of ``frame`` at each of ``job.conformal_alpha``.

    Returns
    -------
    dict
        The RESULT.json ``conformal`` block: settings, then one entry per error rate with
        coverage, mean set size, singleton and empty shares, singleton accuracy and
        per-class coverage.
    """
    source = str(job.predictions)
    probs, labels = probabilities(frame, classes, source), _labels(frame, classes)
    score, mondrian = job.conformal_score, job.mondrian
    block: dict[str, object] = {
        "score": score,
        "mondrian": mondrian,
        "randomize": job.randomize,
        "seed": job.seed,
        "level": job.level,
        "n": frame.height,
    }
    if calibration is None:
        groups = _groups(frame, job.group, source)
        if len(set(groups)) < 2:
            raise SchemaError(f"{source}: leave-one-out calibration needs two {job.group}s")
        block["calibration"] = f"leave-one-out by {job.group}"
        block["n_groups"] = len(set(groups))
    else:
        cal_source = str(job.conformal_calibration)
        if job.group in calibration.columns and job.group in frame.columns:
            shared = set(_groups(calibration, job.group, cal_source)) & set(
                _groups(frame, job.group, source)
            )
            if shared:
                raise SchemaError(
                    f"{cal_source}: shares {job.group} {sorted(shared)[:5]} with {source}; "
                    "calibration must be compound-disjoint for honest coverage"
                )
        cal_probs = probabilities(calibration, classes, cal_source)
        cal_labels = _labels(calibration, classes)
        block["calibration"] = cal_source
        block["n_calibration"] = calibration.height
    results = []
    for alpha in job.conformal_alpha:
        rng = np.random.default_rng(job.seed)  # per alpha: results do not depend on the list
        if calibration is None:
            sets = conformal.group_disjoint_sets(
                probs, labels, groups, alpha, score, mondrian, rng, randomize=job.randomize
            )
        else:
            sets = conformal.predict_sets(
                cal_probs, cal_labels, probs, alpha, score, mondrian, rng, randomize=job.randomize
            )
        metrics = conformal.set_metrics(sets, labels)
        per_class = conformal.per_class_coverage(sets, labels)
        results.append(
            {
                "alpha": alpha,
                **{k: (None if math.isnan(v) else v) for k, v in metrics.items()},
                "per_class_coverage": dict(zip(classes, per_class, strict=True)),
            }
        )
    block["results"] = results
    return block


def _stem(path: Path) -> str:
    """``runs/a.v2.csv.gz`` → ``a.v2``."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def _prepare(path: Path, classes: list[str] | None) -> tuple[pl.DataFrame, list[str]]:
    frame = read_predictions(path)
    classes = classes or detect_classes(frame, str(path))
    return validate_predictions(frame, classes, str(path)), classes


def run_score(job: ScoreJob) -> dict[str, object]:
    """Score ``job.predictions``, write RESULT.json (and the figure); return the result."""
    from cytoimagenet.evaluation.figures import confusion_figure

    frame, classes = _prepare(job.predictions, job.classes)
    result = score_predictions(
        frame, classes, job.level, job.aggregate_from, benchmark=job.benchmark
    )
    name = job.name or _stem(job.predictions)
    result = with_input(result, feature_set=name, features=job.predictions)
    if job.conformal_alpha:
        scored = level_frames(frame, classes, job.level, job.aggregate_from)[job.level]
        cal = None
        if job.conformal_calibration is not None:
            cal_frame, _ = _prepare(job.conformal_calibration, classes)
            cal = level_frames(cal_frame, classes, job.level, job.aggregate_from)[job.level]
        result["conformal"] = conformal_report(scored, classes, job, cal)
    result["config"] = job.resolved()
    write_result(job.out, result)
    if job.figure is not None:
        primary = result["scores"][job.level]  # type: ignore[index]
        title = f"{result['feature_set']}: {job.level} accuracy {100 * primary['accuracy']:.1f}%"
        confusion_figure(primary["labels"], primary["confusion"], title, job.figure)
    return result
