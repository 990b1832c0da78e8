"""Confidence intervals of an accuracy, as RESULT.json ``ci95`` blocks.

* :func:`wald_interval` — ``p ± 1.96·sqrt(p(1−p)/n)``, the CytoImageNet paper's interval
  (86/103 reads 83.50 ± 7.17 %). It treats the n items as independent and collapses to a
  zero width at p = 0 or 1.
* :func:`wilson_interval` — the Wilson score interval; honest at small n and extreme p.
* :func:`bootstrap_interval` — percentile bootstrap over *groups* (e.g. the 38 compounds
  of BBBC021's 103 treatments): whole groups are resampled with replacement, so the
  interval reflects that treatments of one compound are not independent. Predictions stay
  fixed; only the scoring is resampled.

Every block has ``method``, ``low``, ``high`` and ``half_width`` (fractions in [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from cytoimagenet.errors import ConfigError

Z95_PAPER = 1.96  # the paper's (and the original code's) constant
Z95 = 1.959963984540054


def _check(correct: int, n: int) -> None:
    if n <= 0 or not 0 <= correct <= n:
        raise ConfigError(f"an accuracy needs 0 <= correct <= n and n > 0, got {correct}/{n}")


def wald_interval(correct: int, n: int, z: float = Z95_PAPER) -> dict[str, object]:
    """Return the normal-approximation interval ``p ± z·sqrt(p(1−p)/n)``, clipped to [0, 1].

    ``half_width`` is the unclipped ``z·sqrt(p(1−p)/n)`` that the paper prints after ±.

    Examples
    --------
    >>> ci = wald_interval(86, 103)
    >>> f"{100 * 86 / 103:.2f} ± {100 * ci['half_width']:.2f}"
    '83.50 ± 7.17'
    """
    _check(correct, n)
    p = correct / n
    half = z * math.sqrt(p * (1 - p) / n)
    return {
        "method": "wald",
        "low": max(0.0, p - half),
        "high": min(1.0, p + half),
        "half_width": half,
        "z": z,
    }


def wilson_interval(correct: int, n: int, z: float = Z95) -> dict[str, object]:
    """Return the Wilson score interval; ``half_width`` is half its (asymmetric) width.

    Examples
    --------
    >>> ci = wilson_interval(86, 103)
    >>> round(ci["low"], 4), round(ci["high"], 4)
    (0.7515, 0.8943)
    """
    _check(correct, n)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return {"method": "wilson", "low": low, "high": high, "half_width": (high - low) / 2, "z": z}


def bootstrap_interval(
    correct: Sequence[bool] | np.ndarray,
    groups: Sequence[Hashable],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, object]:
    """Return a percentile bootstrap interval of the accuracy, resampling whole groups.

    Parameters
    ----------
    correct : sequence of bool
        Whether each item was predicted correctly.
    groups : sequence of hashable
        The group of each item (e.g. its compound); groups are drawn with replacement and
        each brings all its items.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval.

    Examples
    --------
    >>> ci = bootstrap_interval([True, True, False, True], ["a", "a", "b", "c"], seed=0)
    >>> ci["method"], ci["groups"], 0 <= ci["low"] <= 0.75 <= ci["high"] <= 1
    ('bootstrap', 3, True)
    """
    ok = np.asarray(correct, dtype=bool)
    if len(ok) == 0 or len(ok) != len(groups):
        raise ConfigError(f"need one group per item, got {len(groups)} groups for {len(ok)}")
    if n_boot < 1 or not 0 < level < 1:
        raise ConfigError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    index: dict[Hashable, int] = {}
    codes = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
    g = len(index)
    hits = np.bincount(codes, weights=ok.astype(np.float64), minlength=g)
    sizes = np.bincount(codes, minlength=g).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, g, size=(n_boot, g))
    # How often each group was drawn in each replicate, then weighted sums: no Python loop.
    counts = np.zeros((n_boot, g))
    np.add.at(counts, (np.repeat(np.arange(n_boot), g), draws.ravel()), 1.0)
    acc = (counts @ hits) / (counts @ sizes)
    alpha = (1 - level) / 2
    low, high = np.quantile(acc, [alpha, 1 - alpha])
    return {
        "method": "bootstrap",
        "low": float(low),
        "high": float(high),
        "half_width": float(high - low) / 2,
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "groups": g,
    }
