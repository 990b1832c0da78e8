"""Score a table of class probabilities the way Kensert et al. (2019) scored BBBC021.

A predictions table has one row per crop, well or treatment, a true-class column
``Metadata_MoA`` and one probability column per class, named by the class. Aggregation is the
element-wise **median** of the probability vectors at every level: crops → wells
(``Metadata_Plate, Metadata_Well``), then wells → treatments
(``Metadata_Compound, Metadata_Concentration``) — the median over a treatment's *well
medians*, not over its crops, as in their ``treatment_prediction``. Only the wells present
are aggregated (their code padded missing replicates with zero rows). The prediction is the
argmax of the aggregated vector; a tie goes to the class that comes first in ``classes``.
Accuracy is the share of rows of the scored level predicted correctly.

Aggregated vectors are medians, so they need not sum to 1 (the paper's own treatment file
does not); this changes no argmax. Inputs must be probabilities in [0, 1] (negative values
mean logits: apply a softmax first).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.result import base_result, score_entry

log = logging.getLogger(__name__)

MOA = "Metadata_MoA"
PREDICTION = "Metadata_Prediction"
COUNT = "Metadata_Count"
Level = Literal["crop", "well", "treatment"]
LEVELS: tuple[str, ...] = ("crop", "well", "treatment")
LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "crop": (),
    "well": ("Metadata_Plate", "Metadata_Well"),
    "treatment": ("Metadata_Compound", "Metadata_Concentration"),
}
_SUM_TOLERANCE = 1e-3


def detect_classes(frame: pl.DataFrame, source: str = "predictions") -> list[str]:
    """Return the class columns: those named like a value of ``Metadata_MoA``, in table order.

    Raises
    ------
    SchemaError
        When ``Metadata_MoA`` is missing, or a class that occurs in it has no column.
    """
    if MOA not in frame.columns:
        raise SchemaError(f"{source}: no {MOA} column (the true class of each row)")
    values = set(frame[MOA].drop_nulls().cast(pl.String).to_list())
    missing = sorted(values - set(frame.columns))
    if missing:
        raise SchemaError(
            f"{source}: no probability column for class(es) {missing}; every value of {MOA} "
            "needs a column of that name (or pass the class columns explicitly with --classes)"
        )
    classes = [c for c in frame.columns if c in values]
    others = [
        c
        for c, dtype in frame.schema.items()
        if c not in values and not c.startswith("Metadata_") and dtype.is_numeric()
    ]
    if others:
        log.warning(
            "%s: numeric columns %s are not classes of %s; if they are class probabilities, "
            "name every class with --classes",
            source,
            others,
            MOA,
        )
    return classes


def _rows(mask: np.ndarray, show: int = 5) -> str:
    """``3 of 120 row(s) (rows 0, 7, 9)``: rows counted from 0 after the header."""
    rows = np.flatnonzero(mask)
    listed = ", ".join(str(r) for r in rows[:show]) + (", …" if len(rows) > show else "")
    return f"{len(rows)} of {len(mask)} row(s) (rows {listed})"


def validate_predictions(
    frame: pl.DataFrame, classes: Sequence[str], source: str = "predictions"
) -> pl.DataFrame:
    """Check a predictions table and return it with the class columns as Float64.

    Raises
    ------
    SchemaError
        On a missing or non-numeric class column, an empty table, a missing true class, a
        true class outside ``classes``, a probability that is empty, NaN or outside [0, 1],
        or a row whose probabilities are all zero (each message names the rows).
    """
    classes = list(classes)
    if len(classes) < 2:
        raise SchemaError(f"{source}: need at least two classes, got {classes}")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"classes {classes} name a class twice")
    missing = [c for c in [MOA, *classes] if c not in frame.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing}; found {frame.columns}")
    if frame.height == 0:
        raise SchemaError(f"{source}: the table has no rows")
    casts = []
    for c in classes:
        try:
            casts.append(frame[c].cast(pl.Float64, strict=True))
        except pl.exceptions.InvalidOperationError as exc:
            raise SchemaError(f"{source}: column {c!r} holds non-numbers ({exc})") from exc
    frame = frame.with_columns(casts).with_columns(pl.col(MOA).cast(pl.String))
    values = frame.select(classes).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise SchemaError(
            f"{source}: {int(bad.sum())} empty/NaN/infinite probabilities in "
            f"{_rows(bad.any(axis=1))}, first in row {row} column {classes[col]!r}"
        )
    outside = (values < -1e-9) | (values > 1 + 1e-9)
    if outside.any():
        raise SchemaError(
            f"{source}: probabilities must lie in [0, 1], found [{values.min():.4g}, "
            f"{values.max():.4g}] in {_rows(outside.any(axis=1))}; if these are logits, apply "
            "a softmax first"
        )
    zero = ~(values > 0).any(axis=1)
    if zero.any():
        raise SchemaError(
            f"{source}: all-zero probabilities in {_rows(zero)}; every class ties there and the "
            "argmax would silently pick the first class: drop those rows or fix the model output"
        )
    unknown = sorted(set(frame[MOA].drop_nulls().to_list()) - set(classes))
    if frame[MOA].null_count() or unknown:
        raise SchemaError(
            f"{source}: {frame[MOA].null_count()} rows without a true class and true "
            f"classes {unknown} without a probability column"
        )
    off = int((np.abs(values.sum(axis=1) - 1) > _SUM_TOLERANCE).sum())
    if off:
        log.warning(
            "%s: %d of %d rows do not sum to 1 (±%g); fine for aggregated medians, "
            "and the argmax is unaffected",
            source,
            off,
            frame.height,
            _SUM_TOLERANCE,
        )
    return frame


def _argmax(frame: pl.DataFrame, classes: Sequence[str]) -> pl.Series:
    # np.argmax returns the first maximum: ties go to the earliest class in `classes`.
    index = np.argmax(frame.select(classes).to_numpy(), axis=1)
    return pl.Series(PREDICTION, np.asarray(classes, dtype=object)[index], dtype=pl.String)


def aggregate_predictions(
    frame: pl.DataFrame, classes: Sequence[str], by: Sequence[str]
) -> pl.DataFrame:
    """Median of every class-probability column within each group, and its argmax.

    Parameters
    ----------
    frame : polars.DataFrame
        Rows to aggregate, with ``Metadata_MoA``, the ``by`` columns and the class columns.
    classes : sequence of str
        Class columns, in the order that breaks ties (first wins).
    by : sequence of str
        Group keys, e.g. ``("Metadata_Plate", "Metadata_Well")``.

    Returns
    -------
    polars.DataFrame
        One row per group, in first-seen order: the ``by`` columns, ``Metadata_MoA``, every
        other column that is constant within every group (so well → treatment keys carry
        through), the class medians, ``Metadata_Prediction`` (argmax) and ``Metadata_Count``
        (rows aggregated).

    Raises
    ------
    SchemaError
        When a key column is missing or empty, or a group mixes true classes.
    """
    by, classes = list(by), list(classes)
    missing = [c for c in [*by, MOA, *classes] if c not in frame.columns]
    if missing:
        raise SchemaError(f"cannot aggregate by {by}: missing column(s) {missing}")
    empty = [c for c in by if frame[c].null_count()]
    if empty:
        raise SchemaError(f"cannot aggregate by {by}: column(s) {empty} have empty values")
    skip = {*by, *classes, MOA, PREDICTION, COUNT}
    others = [c for c, t in frame.schema.items() if c not in skip and not t.is_nested()]
    grouped = frame.group_by(by, maintain_order=True).agg(
        pl.col(MOA).n_unique().alias("__moa_n"),
        pl.col(MOA).first(),
        *[pl.col(c).median() for c in classes],
        *[pl.col(c).n_unique().alias(f"__n_{c}") for c in others],
        *[pl.col(c).first() for c in others],
        pl.len().alias(COUNT),
    )
    mixed = grouped.filter(pl.col("__moa_n") > 1)
    if mixed.height:
        example = {k: mixed.row(0, named=True)[k] for k in by}
        raise SchemaError(
            f"{mixed.height} group(s) of {by} mix true classes ({MOA}), e.g. {example}; "
            "a group must be one treatment of one class"
        )
    constant = [c for c in others if grouped[f"__n_{c}"].max() == 1]
    out = grouped.select(*by, MOA, *constant, *classes, COUNT)
    return out.with_columns(_argmax(out, classes))


def level_frames(
    frame: pl.DataFrame,
    classes: Sequence[str],
    level: Level = "treatment",
    aggregate_from: Level | None = None,
) -> dict[str, pl.DataFrame]:
    """Return the table at every level from ``aggregate_from`` up to ``level``.

    Raises
    ------
    ConfigError
        When ``aggregate_from`` is a coarser level than ``level``.
    SchemaError
        When the rows are not unique per ``level`` key but no aggregation was asked for.
    """
    aggregate_from = aggregate_from or level
    if level not in LEVELS or aggregate_from not in LEVELS:
        raise ConfigError(f"levels are {LEVELS}; got level={level!r}, from={aggregate_from!r}")
    start, stop = LEVELS.index(aggregate_from), LEVELS.index(level)
    if start > stop:
        raise ConfigError(
            f"cannot score at {level} level from {aggregate_from} rows: aggregation only "
            f"goes up ({' → '.join(LEVELS)})"
        )
    keys = LEVEL_KEYS[aggregate_from]
    if keys:
        missing = [k for k in keys if k not in frame.columns]
        dupes = 0 if missing else frame.height - frame.select(keys).n_unique()
        if missing or dupes:
            raise SchemaError(
                f"rows are not one per {aggregate_from} ({', '.join(keys)}): "
                + (f"missing column(s) {missing}" if missing else f"{dupes} repeated keys")
                + "; say which level the rows are with --from"
            )
    current = frame.drop(PREDICTION, strict=False).with_columns(_argmax(frame, classes))
    frames: dict[str, pl.DataFrame] = {aggregate_from: current}
    for name in LEVELS[start + 1 : stop + 1]:
        current = aggregate_predictions(current, classes, LEVEL_KEYS[name])
        frames[name] = current
    return frames


def score_level(frame: pl.DataFrame, classes: Sequence[str]) -> dict[str, object]:
    """Accuracy, Wilson interval, confusion matrix and per-class recall of one level."""
    true, pred = frame[MOA].to_list(), frame[PREDICTION].to_list()
    return score_entry(true, pred, ci="wilson", labels=list(classes))


def score_predictions(
    frame: pl.DataFrame,
    classes: Sequence[str],
    level: Level = "treatment",
    aggregate_from: Level | None = None,
    *,
    benchmark: str = "predictions",
) -> dict[str, object]:
    """Score a predictions table; return a RESULT.json dict without the input-file fields.

    Add those with :func:`cytoimagenet.evaluation.result.with_input`.

    Every level from ``aggregate_from`` to ``level`` is scored (``scores`` keys ``crop``,
    ``well``, ``treatment``); ``level`` is the primary one.

    Parameters
    ----------
    frame : polars.DataFrame
        Validated predictions (see :func:`validate_predictions`).
    classes : sequence of str
        Class columns; the order of the confusion matrix and of tie-breaking.
    level, aggregate_from : {"crop", "well", "treatment"}
        The scored level, and the level of the rows (default: ``level``).
    benchmark : str
        Free text naming what was scored.
    """
    frames = level_frames(frame, classes, level, aggregate_from)
    scores = {name: score_level(f, classes) for name, f in frames.items()}
    steps = " → ".join(frames)
    description = (
        f"class probabilities aggregated {steps} by the element-wise median at each level "
        "(Kensert et al. 2019); prediction = argmax, ties to the first class; accuracy over "
        f"{level}s with a Wilson 95% interval"
    )
    protocol = {
        "name": "median-aggregation",
        "description": description,
        "level": level,
        "aggregate_from": aggregate_from or level,
        "aggregation": "median",
        "level_keys": {name: list(LEVEL_KEYS[name]) for name in frames},
        "classes": list(classes),
        "tie_rule": "first class in order",
    }
    return base_result(benchmark=benchmark, protocol=protocol, scores=scores, primary=level)
