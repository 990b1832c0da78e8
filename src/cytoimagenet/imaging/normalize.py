"""Percentile normalisation and channel merging, exact and fast.

The paper's normalisation clips an image to its 0.1th and 99.9th percentiles and rescales to
[0, 1]. For 8- and 16-bit images the percentiles come from a histogram (counts → cumulative
counts), which gives exactly :func:`numpy.percentile`'s linear interpolation at a fraction of
the cost. A constant image normalises to zeros, never NaN.

A field's planes are summarised once (:class:`PlaneStats`: histogram, bounds, distinct
levels); merging can then be done for any region of the field, so a build that keeps only
crops never maps the pixels it throws away. Merged images are ``uint16`` on the
[0, :data:`MERGED_MAX`] scale, so crops of them are re-normalised through the same exact
histogram path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

#: Full scale of a merged field.
MERGED_MAX: Final = 65535
DEFAULT_LOW: Final = 0.1
DEFAULT_HIGH: Final = 99.9

_HIST_DTYPES: Final = (np.uint8, np.uint16)

#: A region of a 2-D image: (rows, columns).
Region = tuple[slice, slice]


def _interpolate(cum: np.ndarray, n: int, q: float) -> float:
    """Return the ``q``-th percentile from cumulative counts (numpy's "linear" arithmetic)."""
    pos = (q / 100.0) * (n - 1)
    below = int(np.floor(pos))
    t = pos - below
    a = float(np.searchsorted(cum, below, side="right"))
    b = float(np.searchsorted(cum, min(below + 1, n - 1), side="right"))
    diff = b - a
    # numpy's own formula, so the results agree to the last bit.
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def _histogram(plane: np.ndarray) -> np.ndarray:
    """Exact counts of every value from 0 to the plane's maximum (8/16-bit planes)."""
    bins = int(plane.max()) + 1
    # OpenCV counts in float32 (exact only below 2**24) and pays per bin: it is 2-4x faster
    # than bincount (no 64-bit copy of the plane) when there are many pixels per bin, but
    # up to 4x slower on a merged crop that spreads 0.3 Mpx over 65,536 levels.
    if plane.size >= 1 << 24 or plane.size < 8 * bins:
        return np.bincount(plane.ravel())
    import cv2

    data = np.ascontiguousarray(plane.reshape(plane.shape[0], -1) if plane.ndim > 1 else plane)
    counts = cv2.calcHist([data], [0], None, [bins], [0, bins])
    return counts.ravel().astype(np.int64)


@dataclass
class PlaneStats:
    """What the pipeline needs to know about one plane, computed in one pass.

    Attributes
    ----------
    plane : numpy.ndarray
        The plane itself (not copied).
    cum : numpy.ndarray or None
        Cumulative histogram for 8/16-bit planes; ``None`` for other dtypes.
    """

    plane: np.ndarray
    cum: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, plane: np.ndarray) -> PlaneStats:
        """Summarise ``plane`` (a histogram pass for 8/16-bit data)."""
        if plane.size == 0:
            raise ValueError("empty image")
        if plane.dtype in _HIST_DTYPES:
            return cls(plane, np.cumsum(_histogram(plane)))
        return cls(plane)

    def percentile(self, q: float) -> float:
        """Return the ``q``-th percentile, equal to ``np.percentile(plane, q)``."""
        if self.cum is None:
            return float(np.percentile(self.plane, q))
        return _interpolate(self.cum, self.plane.size, q)

    def bounds(self, low: float, high: float) -> tuple[float, float]:
        """Return the ``low`` and ``high`` percentiles."""
        if self.cum is None:  # one call, as np.percentile(x, [low, high]) rounds
            lo, hi = np.percentile(self.plane, [low, high])
            return float(lo), float(hi)
        return self.percentile(low), self.percentile(high)

    @property
    def peak(self) -> float:
        """Largest value."""
        if self.cum is None:
            return float(self.plane.max())
        return float(np.searchsorted(self.cum, self.plane.size - 1, side="right"))

    @property
    def levels(self) -> int:
        """Number of distinct values."""
        if self.cum is None:
            return int(np.unique(self.plane).size)
        return int(np.count_nonzero(np.diff(self.cum, prepend=0)))


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
    return PlaneStats.of(image).bounds(low, high)


def _scale_into(
    region: np.ndarray, lo: float, hi: float, scale: float, out: np.ndarray
) -> np.ndarray:
    """Write ``clip((region - lo) / (hi - lo), 0, 1) * scale`` into ``out``."""
    if not hi > lo:
        out.fill(0)
        return out
    if region.dtype == np.uint8 and out.dtype == np.float32 and region.ndim == 2:
        import cv2

        # 8-bit data: a 256-entry table, applied by OpenCV in one pass.
        table = np.clip((np.arange(256, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) * scale
        return cv2.LUT(region, table.astype(np.float32), dst=out)
    # float64 data keeps float64 arithmetic: a narrow range on a large offset would vanish
    # in float32 before the subtraction.
    np.subtract(region, lo, out=out, dtype=out.dtype, casting="unsafe")
    out *= out.dtype.type(scale / (hi - lo))
    return np.clip(out, 0, scale, out=out)


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
    work = np.float64 if image.dtype == np.float64 else np.float32
    out = _scale_into(image, lo, hi, 1.0, np.empty(image.shape, work))
    return out.astype(np.float32, copy=False)


def merge_channels(
    planes: Sequence[np.ndarray],
    low: float = DEFAULT_LOW,
    high: float = DEFAULT_HIGH,
    *,
    stats: Sequence[PlaneStats] | None = None,
    region: Region | None = None,
) -> np.ndarray:
    """Normalise each plane, average them, and return a ``uint16`` image on [0, MERGED_MAX].

    This is the paper's channel merge (per-channel percentile normalisation, unweighted mean)
    kept at 16-bit precision; :func:`to_uint8` turns it into the 8-bit image the dataset stores.

    Parameters
    ----------
    planes : sequence of numpy.ndarray
        The field's planes, all of one shape.
    stats : sequence of PlaneStats, optional
        Precomputed :meth:`PlaneStats.of` of each plane (saves the histogram pass).
    region : (slice, slice), optional
        Merge only this region; the percentiles are still those of the whole planes, so a
        region of the merge equals the merge of the region.
    """
    if not planes:
        raise ValueError("no planes to merge")
    stats = stats or [PlaneStats.of(p) for p in planes]
    region = region or (slice(None), slice(None))
    work = np.float64 if any(p.dtype == np.float64 for p in planes) else np.float32
    shape = planes[0][region].shape
    acc = np.zeros(shape, work)
    tmp = np.empty(shape, work)
    for plane, st in zip(planes, stats, strict=True):
        acc += _scale_into(plane[region], *st.bounds(low, high), MERGED_MAX, tmp)
    if len(planes) > 1:
        acc *= acc.dtype.type(1.0 / len(planes))
    return np.rint(acc, out=acc).astype(np.uint16)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Map a merged ``uint16`` image (or a float image in [0, 1]) to ``uint8`` with rounding."""
    if image.dtype == np.uint16:
        import cv2

        # Same as rint(v * 255 / 65535) for every 16-bit value, in one fast pass.
        return cv2.convertScaleAbs(image, alpha=255.0 / MERGED_MAX)
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def renormalize(
    merged: np.ndarray,
    low: float = DEFAULT_LOW,
    high: float = DEFAULT_HIGH,
    *,
    stats: PlaneStats | None = None,
) -> np.ndarray:
    """Re-normalise a merged (crop) image to its own percentiles; returns ``uint8``."""
    st = stats or PlaneStats.of(merged)
    lo, hi = st.bounds(low, high)
    if merged.dtype == np.uint16 and merged.ndim == 2:
        import cv2

        if not hi > lo:
            return np.zeros(merged.shape, np.uint8)
        # Clip below at lo, then scale-and-round with saturation at 255: two OpenCV passes
        # instead of a 64-bit-indexed table lookup.
        low_clipped = cv2.max(merged, float(lo))
        alpha = 255.0 / (hi - lo)
        return cv2.convertScaleAbs(low_clipped, alpha=alpha, beta=-lo * alpha)
    if merged.dtype in _HIST_DTYPES:
        # Lookup table over the values present only (up to the peak), not the whole dtype.
        values = np.arange(int(st.peak) + 1, dtype=np.float64)
        unit = np.clip((values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(values)
        return np.take(np.rint(unit * 255.0).astype(np.uint8), merged)
    return to_uint8(normalize(merged, low, high))
