"""Exact k-nearest neighbours with exclusions and a deterministic vote.

Search is brute force: similarities of a block of queries against every training row by one
matrix product, so memory stays at about ``block_rows × n_train`` numbers whatever the size.
Plain leave-one-out (``exclude="self"``) multiplies only the upper half of the symmetric
Gram matrix, tile by tile (:func:`cytoimagenet.evaluation.selection.loo_candidates`).

Metrics
    ``cosine`` (rows scaled to unit length, similarity = dot product, distance = 1 − cos),
    ``pearson`` (rows centred, then as cosine; distance = 1 − r) and ``euclidean``
    (similarity = −‖q − t‖², distance = ‖q − t‖). A zero row is at cosine distance 1 from
    everything.

Ordering and ties
    Neighbours are ordered by distance, then by the lower training index. The block product
    runs in float32 (float64 when the inputs are float64) and BLAS may give mathematically
    equal distances (duplicated rows) different last bits, so every query whose top-(k+1)
    similarities lie closer together than a bound on that rounding error is re-ranked on
    float64 similarities computed row by row with one summation order: exact duplicates then
    tie exactly and the lower index wins.

Vote
    Majority of the k neighbours' labels. Equal vote counts go to the tied class whose
    nearest member comes first in that order — the class with the closest member, and among
    members at exactly equal distance, the lower training index. (scikit-learn gives such
    ties to the smallest label instead; the original CytoImageNet code did the same via
    ``scipy.stats.mode``.)

Exclusions
    Leave-one-out, same group (e.g. same compound), overlapping group sets (e.g. batches) or
    a dense mask, each applied block by block: no ``n × n`` array is ever built for the
    group rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cytoimagenet.errors import ConfigError
from cytoimagenet.evaluation.exclusions import (
    Exclusion,
    GroupExclusion,
    MaskExclusion,
    OverlapExclusion,
    SelfExclusion,
    as_exclusions,
    exclude_overlap,
    exclude_same,
)
from cytoimagenet.evaluation.selection import loo_candidates, select_top

__all__ = [
    "METRICS",
    "Exclusion",
    "GroupExclusion",
    "MaskExclusion",
    "Neighbors",
    "OverlapExclusion",
    "Prediction",
    "SelfExclusion",
    "exclude_overlap",
    "exclude_same",
    "faiss_kneighbors",
    "kneighbors",
    "knn_predict",
    "prepare",
    "vote",
]

Metric = Literal["cosine", "pearson", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "pearson", "euclidean")
_BLOCK_ELEMENTS = 1 << 24  # similarities held at once (64 MiB in float32)
_LOO_TILE = 2048  # rows per side of a leave-one-out tile
_LOO_SPARE = 8  # candidates kept beyond k + 1, so near-ties rarely need a full row again
_TIE_FACTOR = 4.0  # × sqrt(d)·unit roundoff: ≥ 4× the float32 error measured on random data


Candidates = Callable[[int, float], np.ndarray]


@dataclass(frozen=True)
class Neighbors:
    """The k nearest training rows of every query, nearest first.

    Attributes
    ----------
    indices : numpy.ndarray
        ``(n_query, k)`` training row indices; −1 where fewer than k rows were allowed.
    distances : numpy.ndarray
        ``(n_query, k)`` distances in the metric's own unit; ``inf`` where missing.
    """

    indices: np.ndarray
    distances: np.ndarray


def _check(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ConfigError(f"{name}: need a non-empty 2-D feature matrix, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ConfigError(f"{name}: features must be numeric, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ConfigError(f"{name}: features contain NaN or infinite values")
    return x


def prepare(x: np.ndarray, metric: str, dtype: type = np.float32) -> np.ndarray:
    """Return ``x`` as the metric compares it: unit rows (cosine), centred unit rows (pearson)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    y = np.asarray(x, dtype=np.float64)
    if metric == "pearson":
        y = y - y.mean(axis=1, keepdims=True)
    if metric in ("cosine", "pearson"):
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        y = y / np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(y, dtype=dtype)


def _exact_scores(train: np.ndarray, rows: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    # Row-wise float64 sums in one fixed order: equal training rows get bit-equal scores.
    t = train[rows].astype(np.float64)
    qq = q.astype(np.float64)
    if metric == "euclidean":
        return -((t - qq) ** 2).sum(axis=1)
    return (t * qq).sum(axis=1)


def _to_distance(scores: np.ndarray, metric: str) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        dist = np.sqrt(np.maximum(-scores, 0.0)) if metric == "euclidean" else 1.0 - scores
    return np.where(np.isfinite(scores), dist, np.inf)


def kneighbors(
    train: np.ndarray,
    k: int,
    query: np.ndarray | None = None,
    *,
    metric: str = "cosine",
    exclude: object = None,
    block_rows: int | None = None,
) -> Neighbors:
    """Return the exact ``k`` nearest training rows of every query.

    Parameters
    ----------
    train : numpy.ndarray
        ``(n_train, d)`` reference features.
    k : int
        Neighbours per query.
    query : numpy.ndarray, optional
        ``(n_query, d)`` queries; the training rows themselves when omitted.
    metric : {"cosine", "pearson", "euclidean"}
        See the module docstring.
    exclude : None, "self", Exclusion, bool mask, or a list of these
        Pairs that may not be neighbours; ``"self"`` is leave-one-out.
    block_rows : int, optional
        Queries per block (default: about 16 M similarities per block).

    Returns
    -------
    Neighbors
        Nearest first; ties in distance go to the lower training index.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    same = query is None
    train = _check("train", train)
    query = train if query is None else _check("query", query)
    if query.shape[1] != train.shape[1]:
        raise ConfigError(f"query has {query.shape[1]} features but train has {train.shape[1]}")
    dtype = np.float64 if np.float64 in (train.dtype, query.dtype) else np.float32
    t = prepare(train, metric, dtype)
    q = t if same else prepare(query, metric, dtype)
    rules = as_exclusions(exclude, len(q), len(t), same)
    n, d = t.shape
    m = len(q)
    kk = min(k + 1, n)  # one more than asked, to see whether the k-th is tied with the next
    t_sq = (t.astype(np.float64) ** 2).sum(axis=1)
    unit = np.finfo(dtype).eps
    if metric == "euclidean":
        q_sq = (q.astype(np.float64) ** 2).sum(axis=1)
        t_max = float(np.sqrt(t_sq.max()))
        scale = 2 * np.sqrt(q_sq) * t_max + t_max**2
    else:
        q_sq = np.zeros(m)  # cosine/pearson similarities need no per-query offset
        scale = np.ones(m)
    tol = _TIE_FACTOR * np.sqrt(d) * unit * scale
    t_sq_cast = t_sq.astype(dtype)
    indices = np.full((m, k), -1, dtype=np.int64)
    distances = np.full((m, k), np.inf)

    def finish(start: int, top: np.ndarray, raw: np.ndarray, candidates: Candidates) -> None:
        """Re-rank near-tied rows exactly and store the block's first k neighbours."""
        stop = start + len(top)
        vals = raw.astype(np.float64) - q_sq[start:stop, None]
        with np.errstate(invalid="ignore"):  # −inf − −inf: excluded pairs are never ties
            gaps = np.diff(vals[:, : k + 1], axis=1)
        close = np.abs(np.nan_to_num(gaps, nan=np.inf, neginf=-np.inf)) <= tol[start:stop, None]
        block_idx = top[:, :k].copy()
        block_val = vals[:, :k].copy()
        for r in np.flatnonzero(close.any(axis=1)):
            # Every row within the rounding bound of the k-th is a candidate (block units).
            floor = vals[r, min(k, kk) - 1] - tol[start + r] + q_sq[start + r]
            cand = candidates(r, floor)
            exact = _exact_scores(t, cand, q[start + r], metric)
            pick = np.lexsort((cand, -exact))[:k]
            block_idx[r, : len(pick)] = cand[pick]
            block_val[r, : len(pick)] = exact[pick]
        width = block_idx.shape[1]
        missing = ~np.isfinite(block_val)
        indices[start:stop, :width] = np.where(missing, -1, block_idx)
        distances[start:stop, :width] = _to_distance(block_val, metric)

    if same and len(rules) == 1 and isinstance(rules[0], SelfExclusion) and n > 1:
        # Leave-one-out: symmetric tiles, half the multiplications of full rows.
        width = min(n - 1, kk + _LOO_SPARE)
        sq = t_sq_cast if metric == "euclidean" else None
        top, raw = loo_candidates(t, width, sq, block_rows or _LOO_TILE)

        def from_lists(r: int, floor: float) -> np.ndarray:
            if raw[r, -1] >= floor and width < n - 1:  # the tie band may go past the list
                row = t @ t[r]
                if sq is not None:
                    row = 2 * row - sq
                row[r] = -np.inf
                return np.flatnonzero((row >= floor) & (row > -np.inf))
            keep = (raw[r] >= floor) & np.isfinite(raw[r])
            return top[r][keep]

        finish(0, top, raw, from_lists)
        return Neighbors(indices=indices, distances=distances)
    rows_per_block = block_rows or max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, m, rows_per_block):
        stop = min(m, start + rows_per_block)
        scores = q[start:stop] @ t.T
        if metric == "euclidean":
            scores *= 2
            scores -= t_sq_cast  # −‖t‖² + 2 q·t: −‖q − t‖² up to a per-query constant
        for rule in rules:
            rule.apply(scores, start)
        top, raw = select_top(scores, kk)

        def from_block(r: int, floor: float, scores: np.ndarray = scores) -> np.ndarray:
            return np.flatnonzero((scores[r] >= floor) & (scores[r] > -np.inf))

        finish(start, top, raw, from_block)
    return Neighbors(indices=indices, distances=distances)


def vote(neighbor_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote over rows of neighbour class codes (nearest first, −1 = none).

    Returns the winning code per row, −1 for a row without neighbours. Equal counts go to
    the class that appears first in the row (its member is the nearest).
    """
    codes = np.asarray(neighbor_codes, dtype=np.int64)
    m, k = codes.shape
    valid = codes >= 0
    rows = np.broadcast_to(np.arange(m)[:, None], codes.shape)[valid]
    cls = codes[valid]
    counts = np.zeros((m, n_classes), dtype=np.int64)
    np.add.at(counts, (rows, cls), 1)
    first = np.full((m, n_classes), k, dtype=np.int64)
    ranks = np.broadcast_to(np.arange(k)[None, :], codes.shape)[valid]
    np.minimum.at(first, (rows, cls), ranks)
    key = counts * (k + 1) + (k - first)
    winner = key.argmax(axis=1)
    return np.where(valid.any(axis=1), winner, -1)


@dataclass(frozen=True)
class Prediction:
    """kNN predictions of every query.

    Attributes
    ----------
    labels : numpy.ndarray
        Object array of predicted labels; ``None`` for a query with no allowed neighbour.
    neighbors : Neighbors
        The neighbours the vote used.
    """

    labels: np.ndarray
    neighbors: Neighbors

    @property
    def scored(self) -> np.ndarray:
        """Boolean mask of the queries that got a prediction."""
        return np.array([v is not None for v in self.labels], dtype=bool)


def knn_predict(
    train: np.ndarray,
    train_labels: Sequence[Hashable],
    query: np.ndarray | None = None,
    *,
    k: int = 1,
    metric: str = "cosine",
    exclude: object = None,
    block_rows: int | None = None,
) -> Prediction:
    """Predict query labels by a k-NN majority vote (see the module docstring for ties).

    With ``query=None`` the training rows are the queries; pass ``exclude="self"`` for
    leave-one-out.
    """
    labels = list(train_labels)
    if len(labels) != len(train):
        raise ConfigError(f"{len(labels)} labels for {len(train)} training rows")
    classes = sorted(set(labels), key=str)
    code = {c: i for i, c in enumerate(classes)}
    train_codes = np.array([code[v] for v in labels], dtype=np.int64)
    nb = kneighbors(train, k, query, metric=metric, exclude=exclude, block_rows=block_rows)
    neighbour_codes = np.where(nb.indices >= 0, train_codes[nb.indices], -1)
    winners = vote(neighbour_codes, len(classes))
    out = np.empty(len(winners), dtype=object)
    out[:] = [classes[w] if w >= 0 else None for w in winners]
    return Prediction(labels=out, neighbors=nb)


def faiss_kneighbors(
    train: np.ndarray, k: int, query: np.ndarray | None = None, *, metric: str = "cosine"
) -> Neighbors:
    """Exact neighbours by faiss's flat index (``IndexFlatIP``/``IndexFlatL2``), for comparison.

    With ``query=None`` this is leave-one-out: k+1 neighbours are asked for and the query's
    own row is dropped (or the last one, when a duplicate outranked it). faiss orders equal
    distances its own way.

    Raises
    ------
    ImportError
        When faiss is not installed (``pip install 'cytoimagenet[faiss]'``).
    """
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a test dependency
        raise ImportError(
            "the faiss backend needs faiss-cpu: pip install 'cytoimagenet[faiss]'"
        ) from exc
    t = prepare(_check("train", train), metric)
    loo = query is None
    q = t if loo else prepare(_check("query", query), metric)
    index = (
        faiss.IndexFlatL2(t.shape[1]) if metric == "euclidean" else faiss.IndexFlatIP(t.shape[1])
    )
    index.add(t)
    raw, idx = index.search(q, k + 1 if loo else k)
    if loo:
        own = idx == np.arange(len(q))[:, None]
        own[~own.any(axis=1), -1] = True  # self not found: drop the farthest instead
        keep = ~own
        idx = idx[keep].reshape(len(q), k)
        raw = raw[keep].reshape(len(q), k)
    raw = raw.astype(np.float64)
    dist = np.sqrt(np.maximum(raw, 0)) if metric == "euclidean" else 1.0 - raw
    return Neighbors(indices=idx.astype(np.int64), distances=dist)
