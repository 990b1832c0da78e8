"""Refuse inputs that would give a silently meaningless kNN accuracy.

A benchmark run always prints a number; these checks make sure it means something: at least
two classes are left after the protocol's exclusions (one class always scores 100 %), the
compared profiles are not all identical (every neighbour would tie), ``k`` is below the
number of candidate neighbours (otherwise every query votes over all of them), and rows
whose cosine/Pearson similarity is undefined (zero vectors) are counted and recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

import numpy as np

from cytoimagenet.errors import SchemaError

log = logging.getLogger(__name__)

#: Relative spread below which a column (or row norm) counts as zero: float32 rounding is
#: about 1e-7 of the values, real features differ far more.
_RELATIVE_ZERO = 1e-6
_BLOCK_ROWS = 4096


def check_classes(labels: Sequence[Hashable], source: str, unit: str, stage: str = "") -> None:
    """Refuse fewer than two classes: accuracy over one class is always 100 %.

    Raises
    ------
    SchemaError
        Naming the source, the class found and how many items are left.
    """
    classes = sorted({str(v) for v in labels})
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise SchemaError(
            f"{source}: fewer than 2 classes ({found}) among the {len(labels)} {unit}(s) "
            f"{stage or 'evaluated'}; a one-class accuracy is meaningless (always 100 %): "
            "evaluate a table with at least two annotated classes"
        )


def check_identical(x: np.ndarray, source: str, unit: str) -> None:
    """Refuse rows that are all identical (zero variance in every feature column).

    Raises
    ------
    SchemaError
        When every row equals the first one up to float32 rounding.
    """
    if len(x) < 2:
        return
    x = np.asarray(x)
    high, low = x.max(axis=0).astype(np.float64), x.min(axis=0).astype(np.float64)
    spread = float((high - low).max())
    scale = float(np.maximum(np.abs(high), np.abs(low)).max())
    if spread <= _RELATIVE_ZERO * scale:
        raise SchemaError(
            f"{source}: all {len(x)} {unit}(s) have identical features (zero variance in every "
            "column); every neighbour ties and the accuracy would be meaningless: check that "
            "the features were extracted from the images (e.g. not a constant or untrained model)"
        )


def undefined_rows(x: np.ndarray, metric: str) -> np.ndarray:
    """Return a mask of rows whose cosine (zero vector) or Pearson (constant row) is undefined."""
    if metric not in ("cosine", "pearson"):
        return np.zeros(len(x), dtype=bool)
    norms = np.empty(len(x))
    for start in range(0, len(x), _BLOCK_ROWS):  # float64 copies of a block, not the table
        y = np.asarray(x[start : start + _BLOCK_ROWS], dtype=np.float64)
        if metric == "pearson":
            y = y - y.mean(axis=1, keepdims=True)
        norms[start : start + len(y)] = np.linalg.norm(y, axis=1)
    top = float(norms.max()) if len(norms) else 0.0
    return norms <= _RELATIVE_ZERO * top


def check_profiles(x: np.ndarray, metric: str, source: str, unit: str) -> dict[str, object]:
    """Refuse identical profiles; count (and warn about) rows the metric cannot compare.

    Returns
    -------
    dict
        ``{"undefined_rows": n}`` plus a ``warning`` text when ``n > 0``, for RESULT.json.

    Raises
    ------
    SchemaError
        When every profile is identical, or every profile is undefined for the metric.
    """
    check_identical(x, source, unit)
    bad = undefined_rows(x, metric)
    n = int(bad.sum())
    if not n:
        return {"undefined_rows": 0}
    what = "zero vectors" if metric == "cosine" else "constant across features"
    if n == len(x):
        raise SchemaError(
            f"{source}: all {n} {unit} profiles are {what} after normalisation, so {metric} "
            "similarity is undefined for every pair; use --metric euclidean or check the features"
        )
    text = (
        f"{n} of {len(x)} {unit} profiles are {what}; {metric} similarity is undefined for them "
        "(distance 1 to everything, ties to the lower index), so their predictions are arbitrary"
    )
    log.warning("%s: %s", source, text)
    return {"undefined_rows": n, "warning": text}


def check_k(k: int, candidates: np.ndarray, source: str, unit: str) -> dict[str, object]:
    """Refuse ``k`` ≥ the most candidate neighbours any query has; count short queries.

    Parameters
    ----------
    k : int
        Neighbours per vote.
    candidates : numpy.ndarray
        Number of allowed neighbours of every query (after exclusions).

    Returns
    -------
    dict
        ``{"queries_short_of_k": n}``: queries with fewer than ``k`` candidates (they vote
        over fewer neighbours), with a ``warning`` text when ``n > 0``.

    Raises
    ------
    SchemaError
        When no query has more than ``k`` candidates (every vote would use all of them).
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    most = int(candidates.max()) if len(candidates) else 0
    if k >= most:
        raise SchemaError(
            f"{source}: --k {k} but a {unit} has at most {most} candidate neighbour(s) "
            f"({len(candidates)} {unit}s after exclusions); k must be below {most}, or every "
            "query votes over all of them: lower --k"
        )
    short = int((candidates < k).sum())
    if not short:
        return {"queries_short_of_k": 0}
    text = f"{short} of {len(candidates)} {unit}s have fewer than k={k} candidate neighbours"
    log.warning("%s: %s", source, text)
    return {"queries_short_of_k": short, "warning": text}


def check_group_k(
    k: int, candidates: np.ndarray, group_by: Sequence[str], source: str, unit: str
) -> None:
    """Refuse a ``--group-by`` that leaves any query fewer than ``k`` candidate neighbours.

    Ungrouped, a query short of k only votes over fewer neighbours (:func:`check_k` warns);
    a grouping that starves queries changes the protocol for exactly the cells whose group
    is large, so it is refused.

    Raises
    ------
    SchemaError
        Naming the grouping, how many queries are short and the fewest candidates.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    short = int((candidates < k).sum())
    if short:
        cols = ",".join(group_by)
        raise SchemaError(
            f"{source}: --group-by {cols} leaves {short} of {len(candidates)} {unit}s fewer "
            f"than k={k} candidate neighbours (the fewest: {int(candidates.min())}) once "
            f"neighbours sharing their {cols} are excluded: lower --k or group by a finer column"
        )


def group_candidates(groups: Sequence[Hashable]) -> np.ndarray:
    """Candidates of each row when rows of its own group (itself included) are excluded."""
    _, codes, counts = np.unique(
        np.asarray([str(g) for g in groups], dtype=object), return_inverse=True, return_counts=True
    )
    return len(codes) - counts[codes]


def overlap_candidates(
    groups: Sequence[Hashable], sets: Sequence[frozenset[Hashable]]
) -> np.ndarray:
    """Candidates of each row excluding its own group and every row sharing a set member."""
    n = len(groups)
    members = sorted({str(m) for s in sets for m in s})
    pos = {m: i for i, m in enumerate(members)}
    onehot = np.zeros((n, len(members)), dtype=np.float32)
    for i, s in enumerate(sets):
        onehot[i, [pos[str(m)] for m in s]] = 1
    code = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)[1]
    allowed = (onehot @ onehot.T == 0) & (code[:, None] != code[None, :])
    return allowed.sum(axis=1)


def merge_checks(*checks: dict[str, object]) -> dict[str, object]:
    """Join check records for a score's ``extra["checks"]``; their warnings become one list."""
    out: dict[str, object] = {}
    warnings: list[object] = []
    for c in checks:
        out.update({k: v for k, v in c.items() if k != "warning"})
        warnings += [c["warning"]] if "warning" in c else []
    out["warnings"] = warnings
    return out
