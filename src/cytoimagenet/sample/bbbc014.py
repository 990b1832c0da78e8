"""A tiny synthetic BBBC014 plate in the published layout, for tests and smoke runs.

96 wells × ``Channel 1`` (NFκB) and ``Channel 2`` (DNA) 8-bit BMPs named
``Channel {1,2}-NN-R-CC-00.BMP`` under ``BBBC014_v1_images/``. TNFα falls along each row, so
NFκB sits in the nucleus in the wells of column 1 and in the cytoplasm in column 12, as the
translocation assay shows it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _cell_distance(
    rng: np.random.Generator, shape: tuple[int, int], n: int
) -> tuple[np.ndarray, float]:
    """Distance of every pixel to its nearest of ``n`` random cell centres, and the radius."""
    h, w = shape
    radius = max(2.0, min(h, w) / 9)
    centres = rng.uniform([radius, radius], [h - radius, w - radius], size=(n, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])
    return dist.min(axis=0), float(radius)


def _ring(dist: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((dist - centre) / width) ** 2))


def generate_bbbc014(
    root: Path, *, shape: tuple[int, int] = (48, 64), cells: int = 5, seed: int = 0
) -> Path:
    """Write the plate under ``root/BBBC014_v1_images/`` and return ``root``."""
    import cv2

    folder = Path(root) / "BBBC014_v1_images"
    folder.mkdir(parents=True, exist_ok=True)
    for n, (row, col) in enumerate(((r, c) for r in "ABCDEFGH" for c in range(1, 13)), 1):
        rng = np.random.default_rng([seed, n])
        dist, r = _cell_distance(rng, shape, cells)
        nuclear = 1.0 - (col - 1) / 11
        nucleus = _ring(dist, 0.0, 0.7 * r)
        cytoplasm = _ring(dist, 1.6 * r, 0.6 * r)
        nfkb = 150 * (nuclear * nucleus + (1 - nuclear) * cytoplasm)
        dna = 180 * nucleus
        for ch, signal in (("1", nfkb), ("2", dna)):
            image = np.clip(np.rint(20 + signal + rng.normal(0, 6, size=shape)), 0, 255)
            cv2.imwrite(str(folder / f"Channel {ch}-{n:02d}-{row}-{col:02d}-00.BMP"),
                        image.astype(np.uint8))  # fmt: skip
    return Path(root)
