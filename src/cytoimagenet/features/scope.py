"""Percentile normalisation over a plate or a whole dataset instead of each crop.

``concat-norm`` and ``merge-norm`` stretch every image to its own 0.1/99.9 percentiles, which
erases absolute intensity: a compound that doubles a stain looks like its control.
``--norm-scope`` keeps the modes and changes only *where the two percentiles come from*:

``crop``     each image's own pixels (the paper's recipe, the default)
``plate``    the pixels of up to ``--norm-sample`` images of the image's plate
             (``--plate-column``), one pair per plate and channel
``dataset``  the pixels of up to ``--norm-sample`` images of the whole table, one pair per
             channel

The pairs are computed in one pass before extraction: the images of each group are sampled
evenly in table order (all of them when there are fewer), each plane contributes all its pixels
or, above :data:`PIXELS_PER_PLANE`, that many drawn at random (seeded by the row), and
:func:`numpy.percentile` is taken over the pooled pixels. Every image is then clipped to its
group's pair and rescaled to [0, 1]; a concat mode feeds each channel as it is, a merge mode
averages them. Images brighter than the rest of their group stay brighter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.inputs import MODES, Mode
from cytoimagenet.features.planes import FieldSource, FileFields
from cytoimagenet.imaging.normalize import DEFAULT_HIGH, DEFAULT_LOW

if TYPE_CHECKING:
    from cytoimagenet.features.step import ExtractJob

Scope = Literal["crop", "plate", "dataset"]
SCOPES: Final = ("crop", "plate", "dataset")
#: Most pixels one plane adds to its group's pool (a 128 × 128 crop gives all of its own).
PIXELS_PER_PLANE: Final = 16_384
#: The group of every row under ``--norm-scope dataset``.
DATASET: Final = "all"


def plate_key_column(frame: pl.DataFrame, column: str) -> str:
    """Return the column of ``frame`` that ``--plate-column`` names, with or without ``Metadata_``.

    Raises
    ------
    ConfigError
        When neither spelling is a column.
    """
    bare = column.removeprefix("Metadata_")
    for name in (column, bare, f"Metadata_{bare}"):
        if name in frame.columns:
            return name
    raise ConfigError(
        f"--plate-column {column}: the table has no such column (nor {bare}); name the plate "
        f"column, or use --norm-scope dataset (columns: {frame.columns[:8]})"
    )


def evenly(rows: Sequence[int], most: int) -> list[int]:
    """Return up to ``most`` of ``rows``, evenly spaced, first and last included.

    Examples
    --------
    >>> evenly(list(range(10)), 3)
    [0, 4, 9]
    """
    if len(rows) <= most:
        return list(rows)
    picks = np.linspace(0, len(rows) - 1, most).round().astype(int)
    return [rows[i] for i in picks]


def rescale(plane: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip ``plane`` to ``[lo, hi]`` and map it to [0, 1] as ``float32`` (zeros when hi ≤ lo)."""
    if not hi > lo:
        return np.zeros(plane.shape, np.float32)
    work = np.float64 if plane.dtype == np.float64 else np.float32
    out = np.subtract(plane, lo, dtype=work)
    out *= work(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _pixels(plane: np.ndarray, row: int) -> np.ndarray:
    """All of ``plane``'s pixels, or :data:`PIXELS_PER_PLANE` of them drawn with seed ``row``."""
    flat = plane.ravel()
    if flat.size > PIXELS_PER_PLANE:
        rng = np.random.default_rng(row)
        flat = flat[rng.choice(flat.size, PIXELS_PER_PLANE, replace=False)]
    return flat.astype(np.float64)


@dataclass(frozen=True)
class ScopeBounds:
    """The percentile pair of every group and channel, and each row's group.

    Attributes
    ----------
    scope : {"plate", "dataset"}
        Where the percentiles come from.
    column : str or None
        The plate column (``plate`` scope).
    keys : list of str
        Each row's group.
    bounds : dict of str to list of (float, float)
        Per group, the (low, high) percentiles of each channel.
    sampled : dict of str to int
        Per group, the images the percentiles were computed from.
    """

    scope: str
    column: str | None
    keys: list[str]
    bounds: dict[str, list[tuple[float, float]]]
    sampled: dict[str, int]
    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH

    def record(self) -> dict[str, object]:
        """Return what provenance records: the scope, column, and every group's pairs."""
        return {
            "scope": self.scope,
            "column": self.column,
            "percentiles": [self.low, self.high],
            "pixels_per_plane": PIXELS_PER_PLANE,
            "groups": {
                k: {"images": self.sampled[k], "bounds": [list(b) for b in v]}
                for k, v in self.bounds.items()
            },
        }

    def apply(self, source: object, mode: str) -> tuple[FieldSource, Mode]:
        """Return ``source`` rescaled with its groups' pairs, and the raw mode that feeds it.

        ``mode`` is ``concat-norm`` or ``merge-norm``; the planes come back on [0, 1], so its
        raw counterpart (``concat``/``merge``) takes them as they are.
        """
        if not isinstance(source, FieldSource):
            raise TypeError("ScopeBounds.apply needs the field source plan_scope returned")
        return ScaledFields(source, self), replace(MODES[mode], norm=False)


@dataclass
class ScaledFields:
    """A field source whose planes are clipped to their group's pair and put on [0, 1]."""

    source: FieldSource
    plan: ScopeBounds

    def __len__(self) -> int:
        return len(self.source)

    def name(self, row: int) -> str:
        """Return the underlying source's name of ``row``."""
        return self.source.name(row)

    def planes(self, row: int) -> list[np.ndarray]:
        """Return the row's planes rescaled with its group's percentile pairs."""
        planes = self.source.planes(row)
        pairs = self.plan.bounds[self.plan.keys[row]]
        if len(planes) != len(pairs):
            raise ConfigError(
                f"{self.name(row)}: {len(planes)} channel planes, but its group's percentiles "
                f"were computed for {len(pairs)}; every image needs the same channels"
            )
        return [rescale(p, lo, hi) for p, (lo, hi) in zip(planes, pairs, strict=True)]


def group_bounds(
    source: FieldSource,
    keys: Sequence[str],
    *,
    sample: int,
    workers: int = 2,
    low: float = DEFAULT_LOW,
    high: float = DEFAULT_HIGH,
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, int]]:
    """Return each group's per-channel (low, high) percentiles and the images sampled.

    Parameters
    ----------
    source : FieldSource
        The images (files, crops, arrays).
    keys : sequence of str
        Each row's group.
    sample : int
        Most images per group (evenly spaced in row order).

    Raises
    ------
    ConfigError
        When the images of a group have different numbers of channels.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        members[key].append(row)
    bounds: dict[str, list[tuple[float, float]]] = {}
    sampled: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for key, rows in members.items():
            picks = evenly(rows, sample)
            pools: list[list[np.ndarray]] = []
            for row, planes in zip(picks, pool.map(source.planes, picks), strict=True):
                if pools and len(planes) != len(pools):
                    raise ConfigError(
                        f"{source.name(row)}: {len(planes)} channel planes, but other images "
                        f"of {key} have {len(pools)}; every image needs the same channels"
                    )
                pools = pools or [[] for _ in planes]
                for c, plane in enumerate(planes):
                    pools[c].append(_pixels(plane, row))
            pairs = [np.percentile(np.concatenate(p), [low, high]) for p in pools]
            bounds[key] = [(float(lo), float(hi)) for lo, hi in pairs]
            sampled[key] = len(picks)
    return bounds, sampled


def plan_scope(
    scope: Scope,
    frame: pl.DataFrame,
    source: Sequence[Sequence[Path]] | FieldSource,
    *,
    plate_column: str,
    sample: int,
    workers: int = 2,
) -> tuple[ScopeBounds | None, FieldSource]:
    """Compute the percentile pairs of ``scope`` (``None`` for ``crop``) over ``source``.

    Returns the plan and ``source`` as a field source (file lists are wrapped).

    Raises
    ------
    ConfigError
        When the plate column is missing or empty, or a group's images disagree in channels.
    """
    fields = source if isinstance(source, FieldSource) else FileFields(source)
    if scope == "crop":
        return None, fields
    column = None
    if scope == "plate":
        column = plate_key_column(frame, plate_column)
        values = frame[column].cast(pl.String)
        if values.null_count():
            row = values.is_null().arg_true()[0]
            raise ConfigError(f"--plate-column {column}: row {row} has no plate")
        keys = values.to_list()
    else:
        keys = [DATASET] * frame.height
    bounds, sampled = group_bounds(fields, keys, sample=sample, workers=workers)
    return ScopeBounds(scope, column, keys, bounds, sampled), fields


def job_scope(
    job: ExtractJob, frame: pl.DataFrame, files: Sequence[Sequence[Path]] | FieldSource
) -> tuple[ScopeBounds | None, Sequence[Sequence[Path]] | FieldSource]:
    """Plan ``job.norm_scope`` when one of its models is a network; else ``(None, files)``.

    The intensity baseline reads raw planes, so a job of ``intensity`` alone needs no pass.
    """
    specs = job.model.removeprefix("fusion:").split("+")
    if job.norm_scope == "crop" or all(s == "intensity" for s in specs):
        return None, files
    return plan_scope(
        job.norm_scope,
        frame,
        files,
        plate_column=job.plate_column,
        sample=job.norm_sample,
        workers=job.workers,
    )
