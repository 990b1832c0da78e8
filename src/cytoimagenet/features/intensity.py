"""The intensity baseline: per-channel statistics of raw intensities (`--model intensity`).

A CNN feature set is only worth its cost when it beats what plain intensities already tell
apart. These features are read at full bit depth, before any normalisation, so they keep the
absolute intensity that ``concat-norm`` (per-crop percentile stretching) erases: per channel
the mean, standard deviation, minimum, 1st/5th/25th/50th/75th/95th/99th percentiles and
maximum, in the file's own units. No torch is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np

from cytoimagenet.errors import ConfigError
from cytoimagenet.imaging.readers import read_field

PERCENTILES: Final = (1, 5, 25, 50, 75, 95, 99)
#: Statistic names, in column order.
STATS: Final = ("Mean", "Std", "Min", *(f"P{p:02d}" for p in PERCENTILES), "Max")


def plane_stats(plane: np.ndarray) -> np.ndarray:
    """Return the :data:`STATS` of one plane (float64, on the plane's raw scale).

    Examples
    --------
    >>> s = plane_stats(np.arange(101, dtype=np.uint16).reshape(1, 101))
    >>> dict(zip(STATS, s.tolist()))["P25"], float(s[0]), float(s[-1])
    (25.0, 50.0, 100.0)
    """
    x = np.asarray(plane, dtype=np.float64).ravel()
    q = np.percentile(x, PERCENTILES)
    return np.concatenate([[x.mean(), x.std(), x.min()], q, [x.max()]])


def image_stats(planes: Sequence[np.ndarray]) -> np.ndarray:
    """Return the statistics of every channel plane of one image, channel-major."""
    return np.concatenate([plane_stats(p) for p in planes])


def _accessors(
    source: Sequence[Sequence[Path]] | Any,
) -> tuple[int, Callable[[int], list[np.ndarray]], Callable[[int], str]]:
    """Row count, planes of a row and name of a row, for file lists or a planes source."""
    if hasattr(source, "planes"):  # a FieldSource (files, crops, arrays)
        return len(source), source.planes, source.name
    files = source
    return len(files), (lambda i: read_field(list(files[i]))), (lambda i: str(files[i][0]))


def intensity_features(
    source: Sequence[Sequence[Path]] | Any, *, workers: int = 2, progress: bool = True
) -> np.ndarray:
    """Return an ``(images, channels × len(STATS))`` float32 array of raw intensity statistics.

    Parameters
    ----------
    source : sequence of sequences of Path, or a field source
        The channel files of each image, or any object with ``planes(row)``, ``name(row)``
        and ``len()`` (:class:`cytoimagenet.features.planes.FieldSource`).
    workers : int
        Threads reading images.

    Raises
    ------
    ConfigError
        When there are no images, or an image has another number of channels than the first.
    """
    n, planes, name = _accessors(source)
    if not n:
        raise ConfigError("no images to extract features from")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="img", desc="intensity")
    rows: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, row in enumerate(pool.map(lambda i: image_stats(planes(i)), range(n))):
            if rows and len(row) != len(rows[0]):
                raise ConfigError(
                    f"{name(i)}: {len(row) // len(STATS)} channel planes, but earlier images "
                    f"had {len(rows[0]) // len(STATS)}; every image needs the same channels"
                )
            rows.append(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return np.stack(rows).astype(np.float32)
