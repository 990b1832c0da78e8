"""Top-k selection for the exact k-NN search: per block of rows, and leave-one-out by tiles.

Scores here are "block units": the similarity the search ranks by (dot product of prepared
rows; for Euclidean ``2 q·t − ‖t‖²``, which orders like ``−‖q − t‖²`` for a fixed query).
Every selection returns columns ordered by (−score, column).
"""

from __future__ import annotations

import numpy as np


def sorted_rows(idx: np.ndarray, val: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Order each row's candidates by (−value, index) and keep the first ``kk``."""
    order = np.lexsort((idx, -val), axis=1)[:, :kk]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)


def select_top(scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``kk`` largest scores of every row and their columns, by (−score, column).

    A full partition of every row is the slow part of a search, so the columns are cut into
    strided chunks (chunk ``c`` holds columns ``c, c + C, c + 2C, …``; a reduction over them
    is vectorised for C- and F-ordered arrays alike, so a transposed tile needs no copy).
    The ``kk``-th largest chunk maximum is a floor that provably keeps the top ``kk`` (``kk``
    chunks each hold a value at least that large); only the chunks reaching it are read.
    """
    b, n = scores.shape
    if kk >= n:
        idx = np.broadcast_to(np.arange(n), scores.shape).copy()
        return sorted_rows(idx, scores, kk)
    width = 16 if n // 16 >= kk else max(1, n // kk)
    chunks = n // width
    body = chunks * width
    maxima = scores[:, :body].reshape(b, width, chunks).max(axis=1)
    if body < n:  # the leftover columns count as one more chunk
        maxima = np.concatenate([maxima, scores[:, body:].max(axis=1, keepdims=True)], axis=1)
    c = maxima.shape[1]
    floor = np.partition(maxima, c - kk, axis=1)[:, c - kk]
    hit_rows, hit_chunks = np.nonzero(maxima[:, :chunks] >= floor[:, None])
    cols = hit_chunks[:, None] + chunks * np.arange(width)
    vals = scores[hit_rows[:, None], cols]
    keep = vals >= floor[hit_rows, None]
    rows = np.repeat(hit_rows, width)[keep.ravel()]
    cols, vals = cols[keep], vals[keep]
    if body < n:
        tail = scores[:, body:]
        t_rows, t_cols = np.nonzero(tail >= floor[:, None])
        rows = np.concatenate([rows, t_rows])
        cols = np.concatenate([cols, t_cols + body])
        vals = np.concatenate([vals, tail[t_rows, t_cols]])
        order = np.argsort(rows, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=b)
    cap = 8 * kk + 64
    idx = np.full((b, min(int(counts.max()), cap)), n, dtype=np.int64)
    val = np.full(idx.shape, -np.inf, dtype=scores.dtype)
    light = counts[rows] <= cap
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(rows)) - starts[rows]
    idx[rows[light], pos[light]] = cols[light]
    val[rows[light], pos[light]] = vals[light]
    idx, val = sorted_rows(idx, val, kk)
    heavy = np.flatnonzero(counts > cap)  # e.g. most columns excluded: partition fully
    if len(heavy):
        part = np.argpartition(scores[heavy], n - kk, axis=1)[:, n - kk :]
        idx[heavy], val[heavy] = sorted_rows(
            part, np.take_along_axis(scores[heavy], part, axis=1), kk
        )
    return idx, val


def _merge(
    best_idx: np.ndarray, best_val: np.ndarray, scores: np.ndarray, offset: int
) -> tuple[np.ndarray, np.ndarray]:
    width = best_idx.shape[1]
    idx, val = select_top(scores, min(width, scores.shape[1]))
    both_idx = np.concatenate([best_idx, idx + offset], axis=1)
    both_val = np.concatenate([best_val, val], axis=1)
    return sorted_rows(both_idx, both_val, width)


def loo_candidates(
    t: np.ndarray, width: int, sq: np.ndarray | None, tile: int
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out top-``width`` of every row of ``t`` against all others, by symmetric tiles.

    The Gram matrix is symmetric, so only tiles on and above the diagonal are multiplied
    (about half the work of full rows); each tile updates the running top lists of its row
    block and, transposed, of its column block.

    Parameters
    ----------
    t : numpy.ndarray
        Prepared rows (float32 or float64).
    width : int
        Candidates kept per row.
    sq : numpy.ndarray, optional
        Squared norms in ``t``'s dtype for Euclidean block units; None for dot products.
    tile : int
        Rows per tile side.

    Returns
    -------
    tuple of numpy.ndarray
        ``(n, width)`` columns (−1 where fewer rows exist) and scores (−inf there).
    """
    n = len(t)
    best_idx = np.full((n, width), -1, dtype=np.int64)
    best_val = np.full((n, width), -np.inf, dtype=t.dtype)
    starts = range(0, n, tile)
    for a in starts:
        rows_a = slice(a, min(n, a + tile))
        for b in range(a, n, tile):
            rows_b = slice(b, min(n, b + tile))
            gram = t[rows_a] @ t[rows_b].T
            if a == b:
                np.fill_diagonal(gram, -np.inf)
            for_a = 2 * gram - sq[rows_b] if sq is not None else gram
            best_idx[rows_a], best_val[rows_a] = _merge(
                best_idx[rows_a], best_val[rows_a], for_a, b
            )
            if a != b:
                for_b = 2 * gram.T - sq[rows_a] if sq is not None else gram.T
                best_idx[rows_b], best_val[rows_b] = _merge(
                    best_idx[rows_b], best_val[rows_b], for_b, a
                )
    best_idx[~np.isfinite(best_val)] = -1
    return best_idx, best_val
