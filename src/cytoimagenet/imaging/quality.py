"""Quality-control predicates: pure functions of an image and a threshold.

Each predicate returns ``True`` when the image must be *rejected*. Thresholds live in
:class:`QCThresholds` (part of the build config), and :func:`whole_image_reason` /
:func:`crop_reason` return the name of the first failed check, which the builder records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cytoimagenet.imaging.normalize import PlaneStats, percentile_bounds


@dataclass(frozen=True)
class QCThresholds:
    """Thresholds of every QC check (defaults follow the paper and its code).

    Attributes
    ----------
    uniform_low, uniform_high : float
        Percentiles that must differ, else the image is uniform (paper README: 0.1 / 99.9).
    min_side : int
        Images with a side below this are too small.
    crop_mean_low, crop_mean_high : float
        A crop's 8-bit mean must lie strictly between these.
    dim_percentile : float
        A crop whose value at this percentile is 0 is too dim.
    mask_flat_fraction : float
        Share of equal neighbouring foreground pixels above which an image is a label mask.
    mask_max_levels : int
        Label masks have at most this many distinct values.
    """

    uniform_low: float = 0.1
    uniform_high: float = 99.9
    min_side: int = 16
    crop_mean_low: float = 1.0
    crop_mean_high: float = 254.0
    dim_percentile: float = 75.0
    mask_flat_fraction: float = 0.8
    mask_max_levels: int = 4096


def is_uniform(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> bool:
    """Empty (maximum 0) or flat (the ``low`` and ``high`` percentiles are equal)."""
    if not image.any():
        return True
    lo, hi = percentile_bounds(image, low, high)
    return lo == hi


def is_binary(image: np.ndarray) -> bool:
    """Exactly two distinct values: a binary mask, not a micrograph."""
    first = image.flat[0]
    other = image[image != first]
    return other.size > 0 and bool((other == other.flat[0]).all())


def is_label_mask(
    image: np.ndarray, flat_fraction: float = 0.8, max_levels: int = 4096, *, row_step: int = 1
) -> bool:
    """Detect a piecewise-constant integer image: an instance or class mask, not a micrograph.

    Micrographs carry noise, so neighbouring foreground pixels rarely share a value; in a
    label mask almost all of them do. Only pairs where both pixels are non-zero count, so
    dark backgrounds do not make a real image look flat. ``row_step`` > 1 estimates the share
    from every ``row_step``-th row.
    """
    if image.dtype.kind not in "ui":
        return False
    rows = image[::row_step]
    left, right = rows[:, :-1], rows[:, 1:]
    both = (left != 0) & (right != 0)
    n = int(both.sum())
    if n < 64:
        return False
    if float(((left == right) & both).sum()) / n < flat_fraction:
        return False
    return np.unique(image).size <= max_levels


def is_too_small(image: np.ndarray, min_side: int = 16) -> bool:
    """Either side under ``min_side`` pixels."""
    return min(image.shape[:2]) < min_side


def is_dim(image: np.ndarray, percentile: float = 75.0) -> bool:
    """Detect a mostly black image: its ``percentile``-th value is 0."""
    if image.dtype.kind != "u" or image.ndim != 2:
        return percentile_bounds(image, percentile, percentile)[0] == 0
    import cv2

    # Non-negative data: the interpolated percentile is 0 exactly when enough pixels are 0
    # that both order statistics around it are 0 — a count, no histogram needed.
    pos = (percentile / 100.0) * (image.size - 1)
    below = int(np.floor(pos))
    zeros = image.size - cv2.countNonZero(image)
    return zeros > below and (pos == below or zeros > below + 1)


def mean_out_of_range(image: np.ndarray, low: float = 1.0, high: float = 254.0) -> bool:
    """Detect all black or all white: the mean is outside the open interval (low, high)."""
    mean = float(image.mean(dtype=np.float64))
    return not low < mean < high


def has_non_finite(image: np.ndarray) -> bool:
    """Any NaN or infinite pixel (float data only; integers are always finite)."""
    if image.dtype.kind not in "fc":
        return False
    # min and max propagate NaN and reach ±inf: two passes, no boolean copy of the plane.
    return not (np.isfinite(image.min()) and np.isfinite(image.max()))


def field_reason(stats: Sequence[PlaneStats], qc: QCThresholds) -> str | None:
    """Return why a field (its planes, summarised) must be rejected, or ``None``.

    The checks run on the planes at full bit depth, before merging, so a field that will
    be cropped never needs its whole merge: *non-finite* when any plane holds NaN or inf
    (its percentiles, hence its normalisation, are undefined: one NaN made the whole merge
    black), *uniform* when every plane is uniform (the merge of uniform planes is blank),
    *binary-mask* / *label-mask* when any plane is one (a mask channel would contaminate the
    merge).
    """
    if any(st.cum is None and has_non_finite(st.plane) for st in stats):
        return "non-finite"
    if is_too_small(stats[0].plane, qc.min_side):
        return "too-small"
    if all(
        st.peak == 0 or st.percentile(qc.uniform_low) == st.percentile(qc.uniform_high)
        for st in stats
    ):
        return "uniform"
    for st in stats:
        if is_binary(st.plane) if st.cum is None else st.levels == 2:
            return "binary-mask"
    for st in stats:
        if (
            st.cum is not None
            and st.levels <= qc.mask_max_levels
            and is_label_mask(st.plane, qc.mask_flat_fraction, qc.mask_max_levels, row_step=16)
        ):
            return "label-mask"
    return None


def whole_image_reason(image: np.ndarray, qc: QCThresholds) -> str | None:
    """Return why a single image must be rejected, or ``None`` if it passes."""
    return field_reason([PlaneStats.of(image)], qc)


def crop_reason(crop: np.ndarray, qc: QCThresholds) -> str | None:
    """Return why an 8-bit crop (before re-normalisation) must be dropped, or ``None``."""
    if mean_out_of_range(crop, qc.crop_mean_low, qc.crop_mean_high):
        return "crop-mean"
    if is_dim(crop, qc.dim_percentile):
        return "dim"
    return None
