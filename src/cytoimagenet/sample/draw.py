"""Drawing primitives shared by the synthetic generators: elliptic cells and a 12-bit camera."""

from __future__ import annotations

import numpy as np

#: Brightest value of the simulated 12-bit camera (stored in 16-bit files).
WHITE = 4095


def ellipse(
    yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    """Return the mask of the axis-aligned ellipse at ``centre`` with ``(ry, rx)`` radii."""
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0


def expose(rng: np.random.Generator, planes: np.ndarray, read_noise: float) -> np.ndarray:
    """Image noiseless intensities: shot noise, Gaussian read noise, clipping to 12 bits."""
    noisy = rng.poisson(planes) + rng.normal(0, read_noise, planes.shape)
    return np.clip(noisy, 0, WHITE).astype(np.uint16)
