"""Model inputs from image files: the paper's four extraction modes, and resizing.

A *mode* is {per-channel concat, merged} × {percentile normalised, raw}:

``concat-norm``  each channel normalised to its 0.1/99.9 percentiles, one model pass per channel,
                 features concatenated (the paper's best)
``concat``       each channel on its raw scale (divided by its dtype's maximum), one pass each
``merge-norm``   channels normalised, then averaged into one image (the dataset's own recipe)
``merge``        raw channels averaged into one image
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from cytoimagenet.imaging.normalize import MERGED_MAX, merge_channels, normalize
from cytoimagenet.imaging.readers import read_field


@dataclass(frozen=True)
class Mode:
    """How the channels of one image become model inputs."""

    concat: bool
    norm: bool


MODES: Final = {
    "concat-norm": Mode(concat=True, norm=True),
    "concat": Mode(concat=True, norm=False),
    "merge-norm": Mode(concat=False, norm=True),
    "merge": Mode(concat=False, norm=False),
}


def raw_scale(plane: np.ndarray) -> np.ndarray:
    """Put a plane on [0, 1] without normalising it: integers by their dtype's maximum.

    Float planes already on [0, 1] are kept; others are divided by their own maximum.
    """
    if plane.dtype.kind in "ui":
        return plane.astype(np.float32) / np.float32(np.iinfo(plane.dtype).max)
    top = float(plane.max()) if plane.size else 1.0
    out = plane.astype(np.float32)
    if top > 1.0:
        out /= np.float32(top)
    return np.clip(out, 0.0, 1.0, out=out)


def resize(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize to ``size`` × ``size`` (area for shrinking, linear for enlarging); None keeps it."""
    if size is None or image.shape == (size, size):
        return image
    import cv2

    shrink = image.shape[0] * image.shape[1] > size * size
    return cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def channel_inputs(files: list[Path], mode: Mode, size: int | None) -> list[np.ndarray]:
    """Read one image's channel files and return its model inputs (float32 on [0, 1]).

    One input per channel for concat modes, a single merged input otherwise.
    """
    return mode_inputs(read_field(files), mode, size)


def mode_inputs(planes: list[np.ndarray], mode: Mode, size: int | None) -> list[np.ndarray]:
    """Turn one image's planes (full bit depth) into its model inputs (float32 on [0, 1])."""
    if mode.concat:
        images = [normalize(p) if mode.norm else raw_scale(p) for p in planes]
    elif mode.norm:
        images = [merge_channels(planes).astype(np.float32) / np.float32(MERGED_MAX)]
    else:
        images = [np.mean([raw_scale(p) for p in planes], axis=0, dtype=np.float32)]
    return [resize(image, size) for image in images]
