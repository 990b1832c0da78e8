"""Multi-scale crops ("upsampling"), as the paper made them, seeded.

An image whose sides are both at least :data:`MIN_CROPPABLE` pixels is split into quadrants;
each crop sits inside a different quadrant, at a scale of 1/2, 1/4, 1/8 or 1/16 of the full
side (so scale 1/2 is the whole quadrant), at a random position. Scales whose crop would be
under ``min_side`` pixels are dropped. Crops keep the image's aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

SCALES: Final = (0.5, 0.25, 0.125, 0.0625)
MIN_CROPPABLE: Final = 140
MIN_CROP_SIDE: Final = 70


@dataclass(frozen=True)
class CropBox:
    """A crop in source pixels: rows ``y_min:y_max``, columns ``x_min:x_max`` (ends exclusive)."""

    slot: int
    scaling: float
    x_min: int
    x_max: int
    y_min: int
    y_max: int

    @property
    def region(self) -> tuple[slice, slice]:
        """The crop as (rows, columns) slices."""
        return slice(self.y_min, self.y_max), slice(self.x_min, self.x_max)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """Return the crop of ``image`` (a view)."""
        return image[self.region]


def crops_per_image(class_size: int) -> int:
    """Crops per image for a class of ``class_size`` images (paper: 1000→1 … <400→4).

    Examples
    --------
    >>> [crops_per_image(n) for n in (1000, 999, 550, 549, 400, 399, 10)]
    [1, 2, 2, 3, 3, 4, 4]
    """
    if class_size >= 1000:
        return 1
    if class_size >= 550:
        return 2
    if class_size >= 400:
        return 3
    return 4


def plan_crops(
    height: int,
    width: int,
    n_crops: int,
    rng: np.random.Generator,
    *,
    min_side: int = MIN_CROP_SIDE,
    min_croppable: int = MIN_CROPPABLE,
) -> list[CropBox]:
    """Choose up to ``n_crops`` (≤ 4) crop boxes for an image of ``height`` × ``width``.

    Returns an empty list when the image is too small to crop (either side under
    ``min_croppable``) or no scale yields crops of at least ``min_side`` pixels.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice (quadrants, scales, positions).
    """
    if not 1 <= n_crops <= 4:
        raise ValueError(f"n_crops must be 1..4, got {n_crops}")
    if height < min_croppable or width < min_croppable:
        return []
    valid = [s for s in SCALES if int(s * height) >= min_side and int(s * width) >= min_side]
    if not valid:
        return []
    if len(valid) > n_crops:
        scales = list(rng.choice(valid, size=n_crops, replace=True))  # as the paper's code
    else:
        # Fewer scales than crops: every scale once, the rest repeated at random (paper).
        scales = valid + list(rng.choice(valid, size=n_crops - len(valid), replace=True))
    rng.shuffle(scales)
    half_h, half_w = height // 2, width // 2
    origins = [(0, 0), (0, half_w), (half_h, 0), (half_h, half_w)]
    quadrants = rng.choice(4, size=n_crops, replace=False)
    boxes = []
    for slot, (scale, q) in enumerate(zip(scales, quadrants, strict=True)):
        y0, x0 = origins[int(q)]
        ch, cw = int(scale * height), int(scale * width)
        if scale == SCALES[0]:
            ch, cw = half_h, half_w
            dy = dx = 0
        else:
            dy = int(rng.integers(0, half_h - ch + 1))
            dx = int(rng.integers(0, half_w - cw + 1))
        boxes.append(
            CropBox(
                slot=slot,
                scaling=float(scale),
                x_min=x0 + dx,
                x_max=x0 + dx + cw,
                y_min=y0 + dy,
                y_max=y0 + dy + ch,
            )
        )
    return boxes
