"""Kensert et al.'s image preprocessing and augmentation, as pure functions, and the Dataset.

Preprocessing of a BBBC021 field (their ``generate_dataset_bbbc021.py``):

1. Anscombe transform ``2 * sqrt(x + 3/8)`` of the raw 16-bit channels.
2. Z-score each channel with the **scalar** mean and standard deviation of all DMSO pixels of
   that channel on the same plate (:class:`DmsoStats`).
3. Min–max rescale the whole field to 0–255, all channels jointly (:func:`rescale_255`).
4. Cut non-overlapping crops (a 2 × 2 grid of 512 × 640 on their 1024 × 1280 fields), drop
   near-empty ones (:func:`is_empty_crop`) and squash each to the model's input size.

Augmentation (their ``img_preprocess``): one of the 8 dihedral transforms (:func:`dihedral`),
per-channel intensity jitter, a 3 × 3 box blur and Gaussian noise (``kensert``), or the
dihedral transforms alone (``dihedral``). Every random choice is a function of
``(seed, epoch, sample)``, so any number of loader workers gives the same batches and a fold
resumed at an epoch boundary sees the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Augment = Literal["kensert", "dihedral", "none"]
#: A crop is empty when at most this share of its values exceeds :data:`EMPTY_LEVEL`.
EMPTY_SHARE: Final = 0.002
EMPTY_LEVEL: Final = 255 / 5.1
#: Kensert's jitter draws ``j`` from these and multiplies a channel by ``1 - j``.
JITTER: Final = (0.0, 0.0, 0.25, -0.25)
NOISE_SIGMA: Final = float(np.sqrt(50.0))


def anscombe(x: np.ndarray) -> np.ndarray:
    """Variance-stabilising transform ``2 * sqrt(x + 3/8)`` in float64.

    Examples
    --------
    >>> anscombe(np.array([0, 6])).round(4).tolist()
    [1.2247, 5.0498]
    """
    return 2.0 * np.sqrt(np.asarray(x, dtype=np.float64) + 0.375)


@dataclass
class DmsoStats:
    """Running per-channel sums of Anscombe-transformed DMSO pixels of one plate.

    Attributes
    ----------
    n : int
        Pixels per channel seen so far.
    total, squares : numpy.ndarray
        Per-channel sums of values and of squared values (float64).
    """

    n: int = 0
    total: np.ndarray = field(default_factory=lambda: np.zeros(0))
    squares: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def add(self, field_hwc: np.ndarray) -> None:
        """Add one DMSO field, ``(H, W, C)`` already Anscombe-transformed."""
        flat = field_hwc.reshape(-1, field_hwc.shape[-1]).astype(np.float64, copy=False)
        if self.n == 0:
            self.total = np.zeros(flat.shape[1])
            self.squares = np.zeros(flat.shape[1])
        elif flat.shape[1] != self.total.size:
            raise ValueError(
                f"DMSO fields differ in channels ({flat.shape[1]} vs {self.total.size})"
            )
        self.n += flat.shape[0]
        self.total += flat.sum(axis=0)
        self.squares += np.einsum("ij,ij->j", flat, flat)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-channel mean and population standard deviation (``np.std``)."""
        if self.n == 0:
            raise ValueError("no DMSO pixels were added")
        mean = self.total / self.n
        var = np.maximum(self.squares / self.n - mean * mean, 0.0)
        return mean, np.sqrt(var)


def standardize(field_hwc: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Z-score each channel with the plate's DMSO mean and std (a zero std divides by 1)."""
    safe = np.where(std > 0, std, 1.0)
    return (field_hwc - mean) / safe


def rescale_255(image: np.ndarray) -> np.ndarray:
    """Min–max rescale to [0, 255] over all pixels and channels jointly (constant → 0)."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros(image.shape, dtype=np.float64)
    return (image - low) * (255.0 / (high - low))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a [0, 255] float image to ``uint8`` (as a saved PNG would hold it)."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def tile_boxes(
    height: int, width: int, *, crop_size: int | None, grid: int
) -> list[tuple[int, int, int, int]]:
    """Return non-overlapping crop boxes ``(y0, x0, h, w)`` of a field, row by row.

    ``crop_size`` ``None`` cuts a ``grid`` × ``grid`` grid of equal tiles (Kensert: 2 × 2 for
    BBBC021, 4 × 4 for BBBC014); otherwise square tiles of that side, as many as fit,
    centred in the field.

    Raises
    ------
    ValueError
        When the field is smaller than one crop.
    """
    if crop_size is None:
        h, w = height // grid, width // grid
        if h < 1 or w < 1:
            raise ValueError(f"a {height}×{width} field cannot be cut into a {grid}×{grid} grid")
        return [(r * h, c * w, h, w) for r in range(grid) for c in range(grid)]
    rows, cols = height // crop_size, width // crop_size
    if rows < 1 or cols < 1:
        raise ValueError(f"--crop-size {crop_size} is larger than the {height}×{width} field")
    top, left = (height - rows * crop_size) // 2, (width - cols * crop_size) // 2
    return [
        (top + r * crop_size, left + c * crop_size, crop_size, crop_size)
        for r in range(rows)
        for c in range(cols)
    ]


def is_empty_crop(crop: np.ndarray) -> bool:
    """Kensert's crop QC: at most 0.2 % of the values exceed 255/5.1 (= 50)."""
    return float((crop > EMPTY_LEVEL).mean()) <= EMPTY_SHARE


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Squash to ``height`` × ``width``: area averaging to shrink, bilinear otherwise."""
    import cv2

    if image.shape[:2] == (height, width):
        return image
    shrink = image.shape[0] >= height and image.shape[1] >= width
    mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=mode)
    return out if out.ndim == image.ndim else out[..., None]


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """Apply dihedral transform ``k`` (0–7) to an ``(H, W)`` or ``(H, W, C)`` array.

    ``k % 4`` quarter turns, then a left–right flip when ``k >= 4``.
    """
    if not 0 <= k < 8:
        raise ValueError(f"dihedral transforms are numbered 0-7, got {k}")
    out = np.rot90(image, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def dihedral_inverse(k: int) -> int:
    """Return ``j`` such that ``dihedral(dihedral(x, k), j)`` is ``x``.

    Examples
    --------
    >>> [dihedral_inverse(k) for k in range(8)]
    [0, 3, 2, 1, 4, 5, 6, 7]
    """
    if not 0 <= k < 8:
        raise ValueError(f"dihedral transforms are numbered 0-7, got {k}")
    return (4 - k) % 4 if k < 4 else k  # a reflection is its own inverse


def augment_image(image: np.ndarray, mode: Augment, rng: np.random.Generator) -> np.ndarray:
    """Augment one ``(H, W, C)`` uint8 image; return float32 on the 0–255 scale."""
    import cv2

    out = image
    if mode != "none":
        out = dihedral(image, int(rng.integers(8)))
    out = np.ascontiguousarray(out, dtype=np.float32)
    if mode == "kensert":
        factors = 1.0 - rng.choice(JITTER, size=out.shape[-1])
        out *= factors.astype(np.float32)
        if rng.random() < 0.5:
            out = cv2.blur(out, (3, 3)).reshape(out.shape)
        if rng.random() < 0.5:
            out += rng.normal(0.0, NOISE_SIGMA, size=out.shape).astype(np.float32)
        np.clip(out, 0.0, 255.0, out=out)
    return out


class CropDataset:
    """Map-style dataset of ``(float32 tensor (C, S, S) on 0–255, class index)``.

    Crops live in per-plate ``.npy`` files of shape ``(N, S, S, C)``, opened as memory maps
    lazily in each process (a pickled dataset carries only the paths). Keys are
    ``(epoch, index)`` pairs (:class:`~cytoimagenet.training.data.EpochSampler`) or plain
    indices (epoch 0).
    """

    def __init__(
        self,
        files: Sequence[str],
        file_index: np.ndarray,
        offsets: np.ndarray,
        targets: np.ndarray,
        *,
        augment: Augment,
        seed: int,
    ) -> None:
        if not len(file_index) == len(offsets) == len(targets):
            raise ValueError("file_index, offsets and targets differ in length")
        self.files = list(files)
        self.file_index = np.asarray(file_index, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.augment = augment
        self.seed = seed
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}}

    def crop(self, index: int) -> np.ndarray:
        """Return the stored ``uint8`` crop of sample ``index``."""
        f = int(self.file_index[index])
        if f not in self._arrays:
            self._arrays[f] = np.load(self.files[f], mmap_mode="r")
        return np.asarray(self._arrays[f][int(self.offsets[index])])

    def image(self, epoch: int, index: int) -> np.ndarray:
        """Return the (augmented) float32 ``(H, W, C)`` image of a sample in an epoch."""
        rng = np.random.default_rng([self.seed, epoch, index])
        return augment_image(self.crop(index), self.augment, rng)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        import torch

        epoch, index = key if isinstance(key, tuple) else (0, key)
        chw = np.ascontiguousarray(self.image(epoch, index).transpose(2, 0, 1))
        return torch.from_numpy(chw), int(self.targets[index])
