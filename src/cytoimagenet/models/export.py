"""Export weights as a folder timm loads as it is: ``config.json`` + ``model.safetensors``.

The layout is the one timm's Hugging Face hub configs use (``architecture``, ``num_classes``,
``num_features``, ``global_pool``, ``model_args`` and ``pretrained_cfg`` with the input size,
mean and std), so any tool that takes timm encoders can load it offline::

    timm.create_model("local-dir:DIR", pretrained=True)              # as exported
    timm.create_model("local-dir:DIR", pretrained=True, num_classes=0)  # pooled features

``model_args`` records ``in_chans``, so a grey (1-channel) model is rebuilt with one input
channel; passing ``in_chans=3`` lets timm spread the grey filter over RGB.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cytoimagenet.errors import ConfigError
from cytoimagenet.io.atomic import current_umask

if TYPE_CHECKING:
    import torch

    from cytoimagenet.models.factory import Backbone

CONFIG_NAME: Final = "config.json"
WEIGHTS_NAME: Final = "model.safetensors"


def timm_config(
    arch: str,
    *,
    num_classes: int,
    num_features: int,
    in_chans: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    input_size: int = 224,
    label_names: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a timm hub-style config for ``arch`` with our input convention.

    ``first_conv``, ``classifier`` and ``pool_size`` come from timm's default config of the
    architecture (timm needs them to adapt the stem and drop the head); URLs and hub ids of
    timm's own weights are left out, so nothing points at other weights.
    """
    from timm.models import get_pretrained_cfg

    base = get_pretrained_cfg(arch)
    base_cfg = base.to_dict() if base is not None else {}
    pretrained_cfg: dict[str, Any] = {
        "input_size": [in_chans, input_size, input_size],
        "fixed_input_size": False,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": list(mean),
        "std": list(std),
        "num_classes": num_classes,
    }
    for key in ("pool_size", "first_conv", "classifier"):
        if base_cfg.get(key) is not None:
            value = base_cfg[key]
            pretrained_cfg[key] = list(value) if isinstance(value, tuple) else value
    config: dict[str, Any] = {
        "architecture": arch,
        "num_classes": num_classes,
        "num_features": num_features,
        "global_pool": "avg",
        "model_args": {"in_chans": in_chans},
        "pretrained_cfg": pretrained_cfg,
    }
    if label_names and num_classes == len(label_names):
        config["label_names"] = list(label_names)
    if extra:
        config["cytoimagenet"] = extra
    return config


def write_timm_folder(
    out: Path, state: dict[str, torch.Tensor], config: dict[str, Any], *, replace: bool = False
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``out``, all or nothing.

    The files are written in a temporary folder beside ``out`` that is renamed into place, so
    an interrupted export leaves no half folder.

    Raises
    ------
    ConfigError
        If ``out`` exists and is not empty (unless ``replace``).
    """
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and not replace and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not empty; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        # mkdtemp makes the folder 0700; a published folder follows the umask as mkdir does.
        tmp.chmod(0o777 & ~current_umask())
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _padding_note(backbone: Backbone) -> dict[str, str]:
    """Say when the model pads as Keras: timm's folder cannot, and rebuilds it TF-SAME."""
    if backbone.extra.get("padding") != "keras":
        return {}
    return {
        "padding": "keras",
        "padding_note": "trained/converted with Keras's stride-2 padding; timm rebuilds it "
        "TF-SAME, identical when both input sides are multiples of 32. For other sizes call "
        "cytoimagenet.models.keras_padding.use_keras_padding(model)",
    }


def export_backbone(backbone: Backbone, out: Path, *, input_size: int = 224, **extra: Any) -> Path:
    """Export a built :class:`~cytoimagenet.models.factory.Backbone` (head included, if any)."""
    model = backbone.model
    labels = backbone.extra.get("labels")
    config = timm_config(
        backbone.name,
        num_classes=int(getattr(model, "num_classes", 0)),
        num_features=backbone.num_features,
        in_chans=backbone.in_chans,
        mean=backbone.mean,
        std=backbone.std,
        input_size=input_size,
        label_names=list(labels) if labels else None,
        extra={"weights": backbone.weights, **_padding_note(backbone), **extra},
    )
    return write_timm_folder(out, model.state_dict(), config)


def export_weights(spec: str, out: Path, *, in_chans: int = 1) -> Path:
    """Export a weight spec (a ``pretrain`` checkpoint, ``cytoimagenet``, ``keras:PATH``).

    A checkpoint keeps its classifier and class names; the published CytoImageNet weights
    have no top (``num_classes`` 0).

    Raises
    ------
    ConfigError
        For a file that is not a cytoimagenet checkpoint (a bare state dict does not say its
        architecture) or that does not fit its architecture.
    """
    from cytoimagenet.models.factory import CHECKPOINT_FORMAT, create_backbone, read_weights_file

    num_classes = 0
    if spec != "cytoimagenet" and not spec.startswith("keras:"):
        data = read_weights_file(Path(spec))
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(
                f"{spec}: not a cytoimagenet checkpoint (a bare state dict does not name its "
                "architecture); export a checkpoint from `cytoimagenet pretrain`"
            )
        labels = data.get("labels") or []
        head = [k for k in data["state_dict"] if k.startswith(("classifier.", "fc.", "head."))]
        num_classes = len(labels) if labels and head else 0
        in_chans = int(data.get("in_chans", in_chans))
    backbone = create_backbone(weights=spec, in_chans=in_chans, num_classes=num_classes)
    return export_backbone(backbone, out)
