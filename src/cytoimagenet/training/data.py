"""Pretraining data: the dataset's splits, image decoding, rotations, samplers and loaders.

Workers decode, resize and rotate with OpenCV and ship ``uint8`` bytes; the training process
turns them into normalised floats on the device. Every random choice is a pure function of
``(seed, epoch, sample index)`` so a run is reproducible whatever the number of workers, and
an interrupted run resumed at an epoch boundary sees the same images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoimagenet.errors import CytoImageNetError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

log = logging.getLogger(__name__)

#: Border rule of the rotations: the paper's Keras ``fill_mode='reflect'`` is scipy.ndimage's
#: half-sample mirror, which repeats the edge pixel (``dcba|abcd|dcba``): OpenCV's REFLECT.
BORDER = "BORDER_REFLECT"


@dataclass(frozen=True)
class Splits:
    """The train and val images of a dataset, with class indices.

    Attributes
    ----------
    root : str
        The dataset folder (absolute).
    labels : list of str
        Sorted train labels; class ``i`` is ``labels[i]``.
    train_paths, val_paths : numpy.ndarray
        Image paths relative to ``root`` as UTF-8 bytes (one array: cheap to send to
        workers, and no per-object reference counts to copy).
    train_targets, val_targets : numpy.ndarray
        Class indices (int64).
    val_dropped : int
        Val rows whose label has no training image (left out).
    """

    root: str
    labels: list[str]
    train_paths: np.ndarray
    train_targets: np.ndarray
    val_paths: np.ndarray
    val_targets: np.ndarray
    val_dropped: int = 0


def read_splits(data: Path) -> Splits:
    """Read a dataset's metadata into :class:`Splits` (rows in the table's order).

    ``data`` is a built dataset (``metadata.parquet``) or the published layout
    (``metadata.csv``, split derived: :mod:`cytoimagenet.training.published`).
    """
    import polars as pl

    from cytoimagenet.training.published import read_dataset

    table = read_dataset(data, ["label", "path", "filename", "dset"])
    train = table.filter(pl.col("dset") == "train")
    labels = sorted(train["label"].unique().to_list())
    index = {label: i for i, label in enumerate(labels)}
    val = table.filter(pl.col("dset") == "val")
    known = val.filter(pl.col("label").is_in(labels))
    if known.height < val.height:
        log.warning(
            "%d val images have labels absent from train; left out", val.height - known.height
        )

    def paths(frame: pl.DataFrame) -> np.ndarray:
        rel = [f"{p}/{f}".encode() for p, f in frame.select("path", "filename").iter_rows()]
        return np.array(rel, dtype=np.bytes_) if rel else np.array([], dtype="S1")

    def targets(frame: pl.DataFrame) -> np.ndarray:
        return np.array([index[x] for x in frame["label"].to_list()], dtype=np.int64)

    return Splits(
        root=str(data.resolve()),
        labels=labels,
        train_paths=paths(train),
        train_targets=targets(train),
        val_paths=paths(known),
        val_targets=targets(known),
        val_dropped=val.height - known.height,
    )


def read_grey(path: str | Path) -> np.ndarray:
    """Decode an image file as a 2-D ``uint8`` array (colour → grey, 16-bit → 8-bit)."""
    import cv2

    name = str(path)
    image = cv2.imread(name, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CytoImageNetError(f"{name}: cannot read this image (missing or corrupt)")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise CytoImageNetError(f"{name}: unsupported pixel type {image.dtype}")
    return image


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Squash ``image`` to ``size`` × ``size``: area averaging to shrink, bilinear otherwise."""
    import cv2

    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    shrink = h >= size and w >= size
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def rotation_angle(seed: int, epoch: int, index: int) -> float:
    """Return the rotation in degrees, uniform on [0, 360), of one sample in one epoch."""
    return float(np.random.default_rng([seed, epoch, index]).uniform(0.0, 360.0))


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a square image about its centre, filling the corners by reflection."""
    import cv2

    h, w = image.shape[:2]
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    border = getattr(cv2, BORDER)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)


class ImageDataset:
    """Map-style dataset of ``(uint8 tensor (1, size, size), class index)``.

    Keys are ``(epoch, index)`` pairs (what :class:`EpochSampler` yields), so the epoch
    reaches persistent worker processes with every key; a plain ``index`` means epoch 0.
    """

    def __init__(
        self,
        root: str,
        paths: np.ndarray,
        targets: np.ndarray,
        size: int,
        *,
        augment: bool,
        seed: int,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError("paths and targets differ in length")
        self.root = root
        self.paths = paths
        self.targets = targets
        self.size = size
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, epoch: int, index: int) -> np.ndarray:
        """Return the prepared ``uint8`` image of sample ``index`` in ``epoch``."""
        path = f"{self.root}/{self.paths[index].decode()}"
        image = resize_square(read_grey(path), self.size)
        if self.augment:
            image = rotate(image, rotation_angle(self.seed, epoch, index))
        return np.ascontiguousarray(image)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        import torch

        epoch, index = key if isinstance(key, tuple) else (0, key)
        return torch.from_numpy(self.image(epoch, index)[None]), int(self.targets[index])


class EpochSampler:
    """Yield ``(epoch, index)`` keys in a :class:`~torch.utils.data.DistributedSampler`'s order.

    The order of an epoch depends only on ``(seed, epoch)`` (``shuffle``), and each of the
    ``world_size`` processes gets its own equal share, the tail dropped so shares are equal.
    """

    def __init__(self, n: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        from torch.utils.data import DistributedSampler

        self._inner = DistributedSampler(
            range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and rotations come next."""
        self.epoch = epoch
        self._inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self._inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, int(i)) for i in self._inner)


class ShardSampler:
    """Yield every ``world_size``-th index from ``rank`` in order: each sample exactly once."""

    def __init__(self, n: int, *, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, n, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def _worker_init(_worker_id: int) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def worker_context() -> Any:
    """Return the ``forkserver`` start method, its server preloaded with torch and OpenCV.

    Plain ``fork`` hangs when the parent has used OpenCV's thread pool (or polars'), which
    other steps in the same process may have done; ``spawn`` would import torch once per
    worker. The fork server is a clean process, and forking from it is quick.
    """
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "cv2", __name__])
    return context


def make_loader(
    dataset: ImageDataset,
    sampler: Any,
    *,
    batch_size: int,
    workers: int,
    pin_memory: bool,
    drop_last: bool,
    seed: int,
) -> DataLoader:
    """Build a DataLoader that keeps ``workers`` processes busy decoding ahead.

    The loader has its own generator, so starting it never draws from the global torch RNG
    (which dropout uses).
    """
    import torch
    from torch.utils.data import DataLoader

    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {
            "persistent_workers": True,
            "prefetch_factor": 4,
            "worker_init_fn": _worker_init,
            "multiprocessing_context": worker_context(),
        }
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
        **extra,
    )
