"""Where extraction gets each image's planes: files, crops of files, or numpy arrays.

:func:`~cytoimagenet.features.extract.extract_features` asks a :class:`FieldSource` for the
planes of row ``i``; the mode (:func:`~cytoimagenet.features.inputs.mode_inputs`) then turns
them into model inputs. Keeping the two apart lets files, single-cell crops of files, and
arrays held in memory share one extraction path, so their features agree exactly.

Order of operations for files: read at full bit depth → divide by the flat field (when given)
→ crop (when the row has a box) → the mode's normalisation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np

from cytoimagenet.errors import ConfigError
from cytoimagenet.imaging.readers import read_field

#: How a crop box that leaves the image is filled: refused, zeros, or mirrored pixels.
Edge = Literal["skip", "zero", "reflect"]
EDGES: Final = ("skip", "zero", "reflect")

#: A crop box, half-open pixel bounds: ``(x_min, x_max, y_min, y_max)``.
Box = tuple[int, int, int, int]


@runtime_checkable
class FieldSource(Protocol):
    """Rows of images, each a list of 2-D planes of one shape (one per channel)."""

    def __len__(self) -> int:
        """Return the number of rows."""
        ...

    def name(self, row: int) -> str:
        """How error messages name ``row`` (its first file, or its array index)."""
        ...

    def planes(self, row: int) -> list[np.ndarray]:
        """Return the planes of ``row``, at full bit depth."""
        ...


def crop_plane(plane: np.ndarray, box: Box, edge: Edge) -> np.ndarray:
    """Cut ``box`` out of ``plane``; parts outside it are zeros or mirrored, per ``edge``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(9, dtype=np.uint16).reshape(3, 3)
    >>> crop_plane(a, (-1, 2, 0, 2), "zero").tolist()
    [[0, 0, 1], [0, 3, 4]]
    >>> crop_plane(a, (-1, 2, 0, 2), "reflect").tolist()
    [[0, 0, 1], [3, 3, 4]]
    """
    x0, x1, y0, y1 = box
    h, w = plane.shape
    inside = plane[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    pads = ((max(-y0, 0), max(y1 - h, 0)), (max(-x0, 0), max(x1 - w, 0)))
    if not any(a or b for a, b in pads):
        return inside
    if edge == "skip":
        raise ConfigError(
            f"crop box x {x0}:{x1}, y {y0}:{y1} leaves the {h} x {w} image; rebuild the "
            "table with `cytoimagenet images --edge zero|reflect`, or drop the cell"
        )
    if edge == "zero":
        if inside.size == 0:
            return np.zeros((y1 - y0, x1 - x0), plane.dtype)
        return np.pad(inside, pads, mode="constant")
    # Mirror about the border, the edge pixel repeated (numpy's "symmetric" padding); a box
    # reaching further than the image keeps mirroring.
    rows = _mirror(np.arange(y0, y1), h)
    cols = _mirror(np.arange(x0, x1), w)
    return plane[np.ix_(rows, cols)]


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Fold indices into ``[0, n)`` by mirroring, edge repeated: -1 → 0, n → n - 1."""
    period = 2 * n
    folded = np.mod(index, period)
    return np.where(folded < n, folded, period - 1 - folded)


def apply_flat_field(planes: Sequence[np.ndarray], flats: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Divide each plane by its flat field (values ≥ 1), keeping the raw scale.

    Integer planes come back as ``float32`` on [0, 1] (divided by their dtype's maximum, as
    ``concat`` and ``merge`` put raw planes), so raw modes still compare absolute intensity.
    A single flat field serves every channel.
    """
    if len(flats) == 1:
        flats = list(flats) * len(planes)
    if len(flats) != len(planes):
        raise ConfigError(
            f"the illumination correction has {len(flats)} channel(s), the image {len(planes)}"
        )
    out = []
    for plane, flat in zip(planes, flats, strict=True):
        if flat.shape != plane.shape:
            raise ConfigError(
                f"the illumination correction is {flat.shape[0]} x {flat.shape[1]}, the image "
                f"{plane.shape[0]} x {plane.shape[1]}; compute it from images of this size"
            )
        work = plane.astype(np.float32)
        if plane.dtype.kind in "ui":
            work /= np.float32(np.iinfo(plane.dtype).max)
        out.append(work / flat)
    return out


@dataclass
class FileFields:
    """Rows of channel files; optionally a crop box per row and flat fields per row.

    Attributes
    ----------
    files : sequence of sequences of Path
        The channel files of each row.
    boxes : sequence of Box or None, optional
        A crop box per row (``None`` for a whole field).
    edge : sequence of Edge, optional
        Each row's edge policy for boxes that leave the image (``skip`` refuses them).
    flats : sequence of (sequence of ndarray or None), optional
        Each row's flat fields, one per channel (see :mod:`cytoimagenet.imaging.illumination`).
    cache_fields : int
        Fields kept decoded, so the cells of one field read it once.
    """

    files: Sequence[Sequence[Path]]
    boxes: Sequence[Box | None] | None = None
    edge: Sequence[Edge] | None = None
    flats: Sequence[Sequence[np.ndarray] | None] | None = None
    cache_fields: int = 8
    _cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def name(self, row: int) -> str:
        """Return the row's first file."""
        return str(self.files[row][0])

    def _field(self, row: int) -> list[np.ndarray]:
        key = (tuple(self.files[row]), id(self.flats[row]) if self.flats else None)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        planes = read_field(self.files[row])
        if self.flats and self.flats[row] is not None:
            planes = apply_flat_field(planes, self.flats[row])
        if self.boxes is not None:  # only cells share fields; whole fields are read once
            with self._lock:
                self._cache[key] = planes
                while len(self._cache) > self.cache_fields:
                    self._cache.popitem(last=False)
        return planes

    def planes(self, row: int) -> list[np.ndarray]:
        """Return the row's planes: read, flat-field corrected, cropped."""
        planes = self._field(row)
        box = self.boxes[row] if self.boxes is not None else None
        if box is None:
            return planes
        edge = self.edge[row] if self.edge is not None else "skip"
        try:
            return [crop_plane(p, box, edge) for p in planes]
        except ConfigError as exc:
            raise ConfigError(f"{self.name(row)}: {exc}") from None


@dataclass
class ArrayFields:
    """Rows of an ``(N, C, H, W)`` array held in memory."""

    images: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def name(self, row: int) -> str:
        """Return ``images[row]``."""
        return f"images[{row}]"

    def planes(self, row: int) -> list[np.ndarray]:
        """Return the row's channel planes (contiguous, at the array's dtype)."""
        return [np.ascontiguousarray(p) for p in self.images[row]]
