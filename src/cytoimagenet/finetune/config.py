"""The validated ``finetune`` job; the paper's settings fill whatever is not given.

Defaults follow the configuration under which Kensert et al. committed their BBBC021
predictions (commit ``a5099dc``; see ``docs/finetuning.md``): SGD with momentum 0.9 at a
constant learning rate; ResNet50 5 epochs, batch 32, lr 5e-4; InceptionV3 7 epochs;
InceptionResNetV2 5 epochs at lr 1e-3; any other model as ResNet50. BBBC014: 1 epoch,
batch 8, lr 1e-3, no augmentation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.fields import Device, OutputDir, existing_dir

#: Kensert's BBBC021 settings per architecture (timm names); others get ``resnet50``'s.
KENSERT_BBBC021: Final = {
    "resnet50": {"epochs": 5, "batch_size": 32, "lr": 5e-4},
    "inception_v3": {"epochs": 7, "batch_size": 32, "lr": 5e-4},
    "inception_resnet_v2": {"epochs": 5, "batch_size": 32, "lr": 1e-3},
}
KENSERT_BBBC014: Final = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
DEFAULT_AUGMENT: Final = {"bbbc021": "kensert", "bbbc014": "none"}


def paper_defaults(dataset: str, model: str) -> dict[str, Any]:
    """Return the paper's epochs, batch size, learning rate and augmentation for a model.

    Examples
    --------
    >>> paper_defaults("bbbc021", "inception_v3.tf_in1k")["epochs"]
    7
    """
    if dataset == "bbbc014":
        values = dict(KENSERT_BBBC014)
    else:
        values = dict(KENSERT_BBBC021.get(model.split(".")[0], KENSERT_BBBC021["resnet50"]))
    return {**values, "augment": DEFAULT_AUGMENT.get(dataset, "none")}


class FinetuneJob(_Job):
    """Fine-tune a CNN on BBBC021 (MoA, leave-one-compound-out) or BBBC014 (two cell lines).

    Attributes
    ----------
    dataset : {"bbbc021", "bbbc014"}
        Which benchmark.
    root : Path
        Raw data: BBBC021 plate folders and its two metadata CSVs, or BBBC014's BMPs.
    out : Path
        Run folder; running the same job again resumes it.
    model : str
        Any timm architecture (``resnet50``, ``inception_v3``, ``inception_resnet_v2`` …).
    init : str
        ``imagenet``, ``xavier``, ``random``, ``cytoimagenet`` (the published weights;
        ``model`` is then ``tf_efficientnet_b0``) or a weights file.
    epochs, batch_size, lr : optional
        Default: the paper's (:func:`paper_defaults`).
    momentum : float
        SGD momentum (paper: 0.9).
    crop_size : int, optional
        Square crops of this side; default Kensert's grid (2 × 2 per BBBC021 field, 4 × 4 per
        squared BBBC014 field).
    input_size : int, optional
        Crops are squashed to this side; default the model's pretrained input (224/299).
    augment : {"kensert", "dihedral", "none"}, optional
        Default ``kensert`` (8 dihedral transforms + jitter, blur, noise) for BBBC021, ``none``
        for BBBC014, as the paper.
    class_weights : bool
        Class-balanced loss weights ``n / (C * n_c)`` per fold.
    folds : str
        ``all`` or a comma list of fold indices (0-based) or names.
    device, amp, channels_last : str
        As ``pretrain``.
    seed : int
        Seed of the initial weights, shuffling and augmentation.
    max_steps : int, optional
        Cap training steps per epoch (smoke runs).
    workers : int
        Processes for preprocessing and data loading (0: loading in the training process).
    cache : Path, optional
        Where preprocessed crops are kept (shared by runs); default ``OUT/prepared``.
    """

    dataset: Literal["bbbc021", "bbbc014"]
    root: Annotated[Path, existing_dir("the raw data root")]
    out: OutputDir
    model: str = "resnet50"
    init: str = "imagenet"
    epochs: int = Field(ge=1, le=100_000)
    batch_size: int = Field(ge=1, le=65_536)
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    crop_size: int | None = Field(default=None, ge=8, le=16_384)
    input_size: int = Field(ge=8, le=4096)
    augment: Literal["kensert", "dihedral", "none"]
    class_weights: bool = True
    folds: str = "all"
    device: Device = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    seed: int = Field(default=0, ge=0, lt=2**63)
    max_steps: int | None = Field(default=None, ge=1)
    workers: int = Field(default=0, ge=0, le=256)
    cache: OutputDir | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = {k: v for k, v in values.items() if v is not None}
        if values.get("init") == "cytoimagenet":
            # The published weights are one architecture; another --model would be ignored.
            from cytoimagenet.models.published import ARCH

            if values.setdefault("model", ARCH) != ARCH:
                raise ValueError(
                    f"--init cytoimagenet is {ARCH}; leave --model out or pass --model {ARCH}"
                )
        dataset, model = values.get("dataset"), values.get("model", "resnet50")
        if dataset in DEFAULT_AUGMENT and isinstance(model, str):
            for key, value in paper_defaults(dataset, model).items():
                values.setdefault(key, value)
        if "input_size" not in values and isinstance(model, str):
            from cytoimagenet.finetune.model import checkpoint_arch, default_input_size

            init = str(values.get("init", "imagenet"))
            try:
                arch = (Path(init).is_file() and checkpoint_arch(init)) or model
                values["input_size"] = default_input_size(arch)
            except Exception as exc:  # reported as a field error below
                raise ValueError(str(exc)) from None
        return values

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        import timm

        if not timm.is_model(value):
            raise ValueError(
                f"unknown timm model {value!r}; see `timm.list_models()` (e.g. resnet50, "
                "inception_v3, inception_resnet_v2)"
            )
        return value

    @field_validator("init")
    @classmethod
    def _init(cls, value: str) -> str:
        from cytoimagenet.finetune.model import NAMED_INITS

        if value not in NAMED_INITS and not Path(value).is_file():
            raise ValueError(f"{value!r}: neither {', '.join(NAMED_INITS)} nor a weights file")
        return value

    @field_validator("folds")
    @classmethod
    def _folds(cls, value: str) -> str:
        if not value.strip() or not any(s.strip() for s in value.split(",")):
            raise ValueError("give 'all' or a comma list of fold indices or names")
        return value

    def fingerprint(self) -> dict[str, object]:
        """Return the settings every fold of a run must share (not paths, not speed)."""
        skip = {"root", "out", "workers", "device", "folds", "cache", "amp", "channels_last"}
        return self.model_dump(mode="json", exclude=skip)
