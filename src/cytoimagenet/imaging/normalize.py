"""Percentile normalisation and channel merging, exact and fast.

The paper's normalisation clips an image to its 0.1th and 99.9th percentiles and rescales to
[0, 1]. For integer images the percentiles come from a histogram (``bincount`` → cumulative
counts), which gives exactly :func:`numpy.percentile`'s linear interpolation at a quarter of the
cost; the rescale is a lookup table. A constant image normalises to zeros, never NaN.

Merged fields are kept as ``uint16`` images on the [0, 65535] scale (:data:`MERGED_MAX`), so that
crops of them can be re-normalised through the same exact histogram path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

#: Full scale of a merged field.
MERGED_MAX: Final = 65535
DEFAULT_LOW: Final = 0.1
DEFAULT_HIGH: Final = 99.9

_HIST_DTYPES: Final = (np.uint8, np.uint16)


def _order_stat_from_hist(cum: np.ndarray, rank: int) -> int:
    """Return the value at 0-based sorted position ``rank`` given cumulative counts."""
    return int(np.searchsorted(cum, rank, side="right"))


def percentile_bounds(
    image: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH
) -> tuple[float, float]:
    """Return the ``low`` and ``high`` percentiles of ``image``.

    Equal to ``np.percentile(image, [low, high])`` (linear interpolation); exact for every
    dtype, through a histogram for 8- and 16-bit unsigned images.

    Examples
    --------
    >>> import numpy as np
    >>> percentile_bounds(np.arange(1001, dtype=np.uint16), 10, 90)
    (100.0, 900.0)
    """
    if image.size == 0:
        raise ValueError("empty image")
    if image.dtype not in _HIST_DTYPES:
        lo, hi = np.percentile(image, [low, high])
        return float(lo), float(hi)
    flat = image.ravel()
    cum = np.cumsum(np.bincount(flat, minlength=256))
    n = flat.size
    out = []
    for q in (low, high):
        # numpy's own arithmetic (method="linear"), so the results agree to the last bit.
        pos = (q / 100.0) * (n - 1)
        below = int(np.floor(pos))
        t = pos - below
        a = float(_order_stat_from_hist(cum, below))
        b = float(_order_stat_from_hist(cum, min(below + 1, n - 1)))
        diff = b - a
        out.append(b - diff * (1.0 - t) if t >= 0.5 else a + diff * t)
    return float(out[0]), float(out[1])


def _unit_lut(dtype: np.dtype, lo: float, hi: float, scale: float) -> np.ndarray:
    """Lookup table mapping every value of an integer dtype to ``clip((v-lo)/(hi-lo)) * scale``."""
    values = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
    if not hi > lo:
        return np.zeros_like(values)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0) * scale


def normalize(
    image: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH
) -> np.ndarray:
    """Clip to the ``low``/``high`` percentiles and rescale to [0, 1] as ``float32``.

    A constant image (``low`` percentile equal to ``high``) gives zeros.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([[0, 5], [10, 20]], dtype=np.uint16), 0, 100).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    >>> normalize(np.full((2, 2), 7, dtype=np.uint16)).max()
    np.float32(0.0)
    """
    lo, hi = percentile_bounds(image, low, high)
    if image.dtype in _HIST_DTYPES:
        return np.take(_unit_lut(image.dtype, lo, hi, 1.0).astype(np.float32), image)
    if not hi > lo:
        return np.zeros(image.shape, np.float32)
    # float64 data keeps float64 arithmetic: a narrow range on a large offset would vanish
    # in float32 before the subtraction.
    work = np.float64 if image.dtype == np.float64 else np.float32
    out = (image.astype(work) - work(lo)) / work(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _to_merged_scale(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Normalise one plane onto the [0, MERGED_MAX] scale as ``float32``."""
    lo, hi = percentile_bounds(image, low, high)
    if image.dtype in _HIST_DTYPES:
        return np.take(_unit_lut(image.dtype, lo, hi, MERGED_MAX).astype(np.float32), image)
    return normalize(image, low, high) * np.float32(MERGED_MAX)


def merge_channels(
    planes: Sequence[np.ndarray], low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH
) -> np.ndarray:
    """Normalise each plane, average them, and return a ``uint16`` image on [0, MERGED_MAX].

    This is the paper's channel merge (per-channel percentile normalisation, unweighted mean)
    kept at 16-bit precision; :func:`to_uint8` turns it into the 8-bit image the dataset stores.
    """
    if not planes:
        raise ValueError("no planes to merge")
    acc = _to_merged_scale(planes[0], low, high)
    for plane in planes[1:]:
        acc += _to_merged_scale(plane, low, high)
    if len(planes) > 1:
        acc *= np.float32(1.0 / len(planes))
    return np.rint(acc, out=acc).astype(np.uint16)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Map a merged ``uint16`` image (or a float image in [0, 1]) to ``uint8`` with rounding."""
    if image.dtype == np.uint16:
        lut = np.rint(np.arange(MERGED_MAX + 1, dtype=np.float64) * (255.0 / MERGED_MAX))
        return np.take(lut.astype(np.uint8), image)
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def renormalize(
    merged: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH
) -> np.ndarray:
    """Re-normalise a merged (crop) image to its own percentiles; returns ``uint8``."""
    lo, hi = percentile_bounds(merged, low, high)
    lut = _unit_lut(merged.dtype, lo, hi, 255.0) if merged.dtype in _HIST_DTYPES else None
    if lut is not None:
        return np.take(np.rint(lut).astype(np.uint8), merged)
    return to_uint8(normalize(merged, low, high))
