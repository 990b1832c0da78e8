"""Plain, picklable task descriptions passed from the planner to the workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from cytoimagenet.imaging.quality import QCThresholds


@dataclass(frozen=True)
class ImageOptions:
    """How every field is turned into dataset images.

    ``max_pixels`` bounds each plane (height x width), checked from file headers before
    decoding; ``None`` accepts any size.
    """

    low: float = 0.1
    high: float = 99.9
    crops: bool = True
    min_croppable: int = 140
    min_crop_side: int = 70
    qc: QCThresholds = field(default_factory=QCThresholds)
    max_pixels: int | None = None


@dataclass(frozen=True)
class ImageTask:
    """One source field: its channel files and where its outputs go.

    Attributes
    ----------
    idx : str
        Source image id (the ``idx`` column).
    files : tuple of str
        Absolute paths of the channel files to merge.
    folder : str
        Output folder (the label's directory name) relative to the dataset root.
    stem : str
        ``<folder>-<index>`` with the index of slot 0; crop slots add 1..3.
    index : int
        Index of slot 0; outputs are numbered ``index + slot``.
    width : int
        Zero-padding of indices within this label.
    n_crops : int
        Crops to attempt (from the class size).
    seed : int
        Seed of this image's random choices, derived from the build seed and ``idx``.
    """

    idx: str
    files: tuple[str, ...]
    folder: str
    index: int
    width: int
    n_crops: int
    seed: int

    def filename(self, slot: int) -> str:
        """Output file name of ``slot`` (0 for the whole image or the first crop)."""
        return f"{self.folder}-{self.index + slot:0{self.width}d}.png"


@dataclass(frozen=True)
class Shard:
    """A batch of tasks processed and recorded together (the unit of resumption)."""

    shard_id: int
    tasks: tuple[ImageTask, ...]
    out: str
    results: str
    options: ImageOptions
