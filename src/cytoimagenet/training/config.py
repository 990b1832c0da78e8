"""The validated ``pretrain`` job: every option is checked here before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.fields import Device, OutputDir

#: Columns ``pretrain`` reads from ``DATASET/metadata.parquet``.
DATASET_COLUMNS = ("label", "path", "filename", "dset")
#: Split names of the ``dset`` column.
SPLITS = ("train", "val")

_NAMED_WEIGHTS = ("random", "imagenet", "lite0-imagenet", "cytoimagenet")


class PretrainJob(_Job):
    """Pretrain a classifier on a built dataset (paper §2.11: Adam, cross-entropy, rotations).

    Attributes
    ----------
    data : Path
        Dataset folder written by ``cytoimagenet build`` (``metadata.parquet`` + PNGs).
    out : Path
        Run folder: checkpoints, metrics, config; a run with ``checkpoints/last.pt`` here is
        resumed.
    model : str
        timm architecture.
    weights : str
        Initial weights (see :func:`cytoimagenet.models.factory.create_backbone`).
    epochs : int
        Total epochs; a finished run can be extended by resuming with a larger value.
    batch_size : int
        Global batch size (split evenly over processes under ``torchrun``).
    lr : float
        Adam learning rate (constant, as the paper).
    size : int
        Images are resized to ``size`` × ``size`` (squashed, as Keras ``target_size``).
    seed : int
        Seed of the initial weights, the shuffling, the rotations and dropout.
    workers : int
        Data-loader processes (0 loads in the training process).
    in_chans : int
        1 for grey input, 3 to replicate grey to RGB.
    amp : str
        ``auto`` (bf16 on CUDA when supported, else fp16; off on CPU), ``off``, ``bf16`` or
        ``fp16`` (CUDA only).
    channels_last : str
        ``auto`` (on for CUDA and CPU), ``on`` or ``off``.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under ``torchrun`` each process takes
        ``cuda:LOCAL_RANK``).
    max_steps : int, optional
        Stop each epoch after this many training steps and validation batches (smoke runs).
    val_every : int
        Validate every N epochs, and after the last.
    deterministic : bool
        Use deterministic kernels only (``torch.use_deterministic_algorithms``); slower on GPU.
    drop_rate, drop_path_rate : float
        Dropout before the classifier and stochastic depth (Keras EfficientNetB0 uses 0.2 and
        0.2); passed to timm.
    verify : str
        Check the image files before training: ``size`` (present, non-empty, PNGs complete),
        ``full`` (also the sha256 the build recorded) or ``none``
        (:mod:`cytoimagenet.training.verify`).
    """

    data: Path
    out: OutputDir
    model: str = "efficientnet_b0"
    weights: str = "random"
    epochs: int = Field(default=24, ge=1, le=100_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    lr: float = Field(default=1e-3, gt=0, le=10)
    size: int = Field(default=224, ge=8, le=4096)
    seed: int = Field(default=0, ge=0, lt=2**63)
    workers: int = Field(default=4, ge=0, le=256)
    in_chans: int = Field(default=1, ge=1, le=4)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    device: Device = "auto"
    max_steps: int | None = Field(default=None, ge=1)
    val_every: int = Field(default=1, ge=1)
    deterministic: bool = False
    drop_rate: float = Field(default=0.2, ge=0, lt=1)
    drop_path_rate: float = Field(default=0.2, ge=0, lt=1)
    verify: Literal["full", "size", "none"] = "size"

    @field_validator("data")
    @classmethod
    def _dataset(cls, value: Path) -> Path:
        import polars as pl

        from cytoimagenet.training.published import check_published_columns, dataset_table_path

        table = dataset_table_path(value)  # metadata.parquet, or the published metadata.csv
        if table.suffix == ".csv":
            check_published_columns(table, pl.read_csv(table, n_rows=0).columns)
            return value
        try:
            names = set(pl.read_parquet_schema(table))
        except Exception as exc:  # polars raises several types for a foreign file
            raise ValueError(f"{table}: not a readable Parquet file ({exc})") from None
        missing = [c for c in DATASET_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{table}: lacks column(s) {missing}")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value in _NAMED_WEIGHTS:
            return value
        path = Path(value.removeprefix("keras:"))
        if not path.is_file():
            raise ValueError(
                f"{value!r}: neither {', '.join(_NAMED_WEIGHTS)} nor an existing weights file"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PretrainJob:
        import polars as pl

        if self.weights in ("random", "imagenet"):
            import timm

            if not timm.is_model(self.model):
                raise ValueError(
                    f"unknown timm model {self.model!r}; see `timm.list_models()` "
                    "(e.g. efficientnet_b0, resnet50)"
                )
        from cytoimagenet.training.published import read_dataset

        table = read_dataset(self.data, ["dset", "label"])  # published layout: split derived
        other = sorted(set(table["dset"].drop_nulls().unique()) - set(SPLITS))
        if other or table["dset"].null_count():
            raise ValueError(f"dset must be 'train' or 'val' in every row (found {other or None})")
        train = table.filter(pl.col("dset") == "train")
        if train.height < self.batch_size:
            raise ValueError(
                f"{train.height} training images, fewer than one batch of {self.batch_size}; "
                "lower --batch-size"
            )
        if train["label"].null_count():
            raise ValueError("some training rows have no label")
        if train["label"].n_unique() < 2:
            raise ValueError("the training split needs at least 2 labels")
        return self

    def fingerprint(self) -> dict[str, object]:
        """Return the settings that decide the weights; a resumed run must match them.

        Left out: where files are (``data``, ``out``; the data are compared by checksum),
        how fast it runs (``workers``, ``device``, ``deterministic``), how long it runs
        (``epochs``: a run may be extended), how often it validates and how its input is
        checked (``verify``).
        """
        skip = {
            "data",
            "out",
            "workers",
            "device",
            "deterministic",
            "epochs",
            "val_every",
            "verify",
        }
        return self.model_dump(mode="json", exclude=skip)
