"""Proportional stratified sampling: largest-remainder allocation, seeded and exact.

The original code called ``DataFrame.sample(frac)`` per group, which rounds every group on
its own (strata of one row get nothing until ``frac > 0.5``), then inflated ``frac`` in a
loop and trimmed at random. Here the allocation is Hamilton's largest-remainder method —
quotas sum to the target exactly and each differs from its exact share by less than one —
with remainder ties broken by a seeded permutation, and rows within a stratum drawn
uniformly by the same seeded generator. Same inputs and seed, same rows, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def largest_remainder(
    sizes: Sequence[int] | IntArray, total: int, rng: np.random.Generator
) -> IntArray:
    """Allocate ``total`` draws across strata in proportion to their ``sizes``.

    Parameters
    ----------
    sizes : array of int
        Stratum sizes (non-negative).
    total : int
        Number of draws; if it is at least ``sum(sizes)`` every row is taken.
    rng : numpy.random.Generator
        Breaks ties between equal remainders.

    Returns
    -------
    numpy.ndarray
        Quotas, ``0 <= quota <= size``, summing to ``min(total, sum(sizes))``.

    Examples
    --------
    >>> largest_remainder([10, 6, 4], 7, np.random.default_rng(0)).tolist()
    [4, 2, 1]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    if total >= n:
        return sizes.copy()
    if total <= 0:
        return np.zeros_like(sizes)
    # Integer arithmetic: exact shares are sizes * total / n, so no float ties or drift.
    scaled = sizes * total
    quotas = scaled // n
    remainders = scaled % n
    missing = total - int(quotas.sum())
    priority = rng.permutation(len(sizes))
    order = np.lexsort((priority, -remainders))
    quotas[order[:missing]] += 1
    return quotas


def group_codes(columns: Sequence[IntArray]) -> IntArray:
    """Combine per-row integer codes of several columns into one dense group id per row."""
    if not columns:
        raise ValueError("group_codes needs at least one column")
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        col = np.asarray(col, dtype=np.int64)
        _, inverse = np.unique(combined * (int(col.max(initial=0)) + 1) + col, return_inverse=True)
        combined = inverse.astype(np.int64).ravel()
    return combined


def stratified_sample(groups: IntArray, total: int, rng: np.random.Generator) -> IntArray:
    """Return the sorted positions of ``total`` rows drawn proportionally from each group.

    Parameters
    ----------
    groups : array of int
        Dense group id of each row (see :func:`group_codes`).
    total : int
        How many rows to keep.
    rng : numpy.random.Generator
        Seeded generator for the allocation ties and the draws.

    Examples
    --------
    >>> g = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    >>> pick = stratified_sample(g, 5, np.random.default_rng(1))
    >>> np.bincount(g[pick]).tolist()
    [2, 1, 2]
    """
    groups = np.asarray(groups, dtype=np.int64)
    if total >= len(groups):
        return np.arange(len(groups), dtype=np.int64)
    sizes = np.bincount(groups)
    quotas = largest_remainder(sizes, total, rng)
    keys = rng.random(len(groups))
    order = np.lexsort((keys, groups))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.arange(len(groups)) - starts[groups[order]]
    chosen = order[rank < quotas[groups[order]]]
    return np.sort(chosen)
