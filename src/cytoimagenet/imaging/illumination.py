"""Illumination correction: flat fields computed from the images, as CellProfiler does.

CellProfiler's ``CorrectIlluminationCalculate`` ("Regular" method, "All" images of a group)
averages every image of a plate and channel, smooths the average heavily so that only the
illumination pattern is left (cells vanish into it), and rescales it so that its robust
minimum (the 2nd percentile) is 1; ``CorrectIlluminationApply`` divides each image by it.
:func:`flat_field` does the same, in numpy, SciPy and OpenCV:

1. aggregate: the pixel-wise ``mean`` of the images (streamed: memory of one image) or their
   ``median`` (robust to a few bright artefacts; holds the images, so capped by the caller);
2. smooth: a Gaussian filter whose full width at half maximum is ``filter_size`` (sigma =
   size / 2.35, CellProfiler's conversion), or a ``median`` filter of that side (computed on
   an area-downsampled image for speed, then upsampled linearly);
3. rescale: clip below the 2nd percentile and divide by it, so every value is ≥ 1 and
   division never brightens a pixel.

The default ``filter_size`` is a tenth of the image's shorter side: wide against cells, narrow
against a vignette.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import numpy as np

from cytoimagenet.errors import ConfigError

Statistic = Literal["mean", "median"]
Smoothing = Literal["gaussian", "median"]

#: Percentile taken as the robust minimum when rescaling (CellProfiler: 2 %).
ROBUST_MIN_PERCENTILE: Final = 2.0

#: Gaussian sigma per unit of full width at half maximum.
_FWHM: Final = 2.35


def default_filter_size(shape: tuple[int, int]) -> int:
    """Return a tenth of the shorter side, at least 3 pixels."""
    return max(3, round(min(shape) / 10))


def aggregate(images: Iterable[np.ndarray], statistic: Statistic = "mean") -> np.ndarray:
    """Pixel-wise mean or median of 2-D images of one shape, as ``float64``.

    Raises
    ------
    ConfigError
        When there are no images, or their shapes differ.
    """
    total: np.ndarray | None = None
    kept: list[np.ndarray] = []
    n = 0
    for image in images:
        if total is not None and image.shape != total.shape:
            raise ConfigError(
                f"images of one plate and channel differ in size ({total.shape} and "
                f"{image.shape}); a flat field needs images of one size"
            )
        if total is None:
            total = np.zeros(image.shape, np.float64)
        if statistic == "median":
            kept.append(np.asarray(image, np.float32))
        else:
            total += image
        n += 1
    if total is None:
        raise ConfigError("no images to compute a flat field from")
    if statistic == "median":
        return np.median(np.stack(kept), axis=0).astype(np.float64)
    return total / n


def smooth(image: np.ndarray, method: Smoothing, filter_size: int) -> np.ndarray:
    """Smooth heavily: Gaussian (FWHM ``filter_size``) or median (side ``filter_size``)."""
    from scipy import ndimage

    if method == "gaussian":
        return ndimage.gaussian_filter(image, sigma=filter_size / _FWHM, mode="reflect")
    import cv2

    factor = max(1, filter_size // 16)
    small = image.astype(np.float32)
    if factor > 1:
        h, w = image.shape
        size = (max(1, w // factor), max(1, h // factor))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    side = max(3, round(filter_size / factor) | 1)
    filtered = ndimage.median_filter(small, size=side, mode="reflect")
    if factor > 1:
        filtered = cv2.resize(
            filtered, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR
        )
    return filtered.astype(np.float64)


def rescale(image: np.ndarray, percentile: float = ROBUST_MIN_PERCENTILE) -> np.ndarray:
    """Divide by the robust minimum (values below it raised to it): every value ≥ 1.

    Raises
    ------
    ConfigError
        When the robust minimum is not positive (the images are black there).
    """
    low = float(np.percentile(image, percentile))
    if not np.isfinite(low) or low <= 0:
        raise ConfigError(
            f"the smoothed images' {percentile:g}th percentile is {low:g}, not positive; "
            "the images are too dark (or empty) to estimate the illumination"
        )
    return (np.maximum(image, low) / low).astype(np.float32)


def flat_field(
    images: Iterable[np.ndarray],
    *,
    statistic: Statistic = "mean",
    smoothing: Smoothing = "gaussian",
    filter_size: int | None = None,
) -> np.ndarray:
    """Return the flat field of one plate and channel: ``float32``, every value ≥ 1.

    Divide an image by it to correct it (:func:`correct`).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> vignette = 1.0 - ((yy - 32) ** 2 + (xx - 32) ** 2) / 64**2
    >>> flat = flat_field([1000 * vignette] * 3, filter_size=4)
    >>> bool(flat.min() >= 1.0), bool(np.corrcoef(flat.ravel(), vignette.ravel())[0, 1] > 0.99)
    (True, True)
    """
    mean = aggregate(images, statistic)
    size = filter_size or default_filter_size(mean.shape)
    return rescale(smooth(mean, smoothing, size))


def correct(image: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Divide ``image`` by its flat field, as ``float32`` (the raw scale kept)."""
    if image.shape != flat.shape:
        raise ConfigError(f"image {image.shape} and flat field {flat.shape} differ in size")
    return image.astype(np.float32) / flat
