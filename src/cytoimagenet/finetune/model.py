"""The fine-tuned network: any timm backbone, a fresh classifier, and its initialisation.

timm's classifier is global average pooling and one linear layer: Kensert et al.'s
``GlobalAveragePooling2D`` + ``Dense`` head. Initialisations (``--init``):

``imagenet``  timm's pretrained weights (through the Hugging Face hub; fails clearly offline)
``xavier``    Xavier-uniform on every convolution and linear weight, zero biases, BatchNorm
              reset to γ = 1, β = 0 and fresh running statistics: Keras's ``weights=None``
              (``glorot_uniform``), the paper's baseline. timm's own init is *not* that.
``random``    timm's default initialisation (seeded), for comparison only
``cytoimagenet`` the authors' published weights (``tf_efficientnet_b0``, fetched once and cached)
``PATH``      a cytoimagenet checkpoint (e.g. from ``pretrain``) or a state dict; a grey
              (1-channel) first convolution is adapted to the 3 input channels
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from cytoimagenet.errors import ConfigError
from cytoimagenet.models.factory import (
    CHECKPOINT_FORMAT,
    KERAS_PADDING,
    Backbone,
    adapt_state_dict,
    create_backbone,
    read_weights_file,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

NAMED_INITS: Final = ("imagenet", "xavier", "random", "cytoimagenet")
IN_CHANS: Final = 3


def xavier_(module: nn.Module, seed: int) -> nn.Module:
    """Re-initialise ``module`` in place as Keras does by default; return it.

    Every ``Conv*d``/``Linear`` weight gets ``xavier_uniform_`` and a zero bias; every
    normalisation layer γ = 1, β = 0 and reset running statistics. Seeded, without touching
    the global random state.
    """
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for layer in module.modules():
            if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm):
                if getattr(layer, "weight", None) is not None:
                    nn.init.ones_(layer.weight)
                if getattr(layer, "bias", None) is not None:
                    nn.init.zeros_(layer.bias)
                if isinstance(layer, nn.modules.batchnorm._NormBase):
                    layer.reset_running_stats()
    return module


def checkpoint_arch(init: str) -> str | None:
    """Return the architecture a cytoimagenet checkpoint at ``init`` names, if it is one."""
    if init in NAMED_INITS:
        return None
    meta = read_weights_file(Path(init))
    return meta.get("model_name") if meta.get("format") == CHECKPOINT_FORMAT else None


def default_input_size(model: str) -> int:
    """Return the input side of ``model``'s default pretrained config (224 if it has none).

    Raises
    ------
    ConfigError
        For a name timm does not know.
    """
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(model):
        raise ConfigError(
            f"unknown timm model {model!r}; see `timm.list_models()` (e.g. resnet50, "
            "inception_v3, inception_resnet_v2)"
        )
    cfg = get_pretrained_cfg(model)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224


def _grey_to_rgb(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Spread a 1-channel first convolution over RGB, a third each.

    A grey image replicated to three channels then gives the same response (timm's
    ``adapt_input_conv`` goes 3 → N channels, not 1 → 3).
    """
    first = getattr(model, "pretrained_cfg", {}).get("first_conv")
    key = f"{first}.weight"
    weight = state.get(key)
    if weight is not None and weight.ndim == 4 and weight.shape[1] == 1:
        state[key] = weight.repeat(1, IN_CHANS, 1, 1) / IN_CHANS
    return state


def _from_file(path: Path, model: str, num_classes: int, seed: int) -> Backbone:
    data = read_weights_file(path)
    meta = data if data.get("format") == CHECKPOINT_FORMAT else {}
    arch = meta.get("model_name", model)
    base = create_backbone(arch, weights="random", in_chans=IN_CHANS,
                           num_classes=num_classes, seed=seed,
                           keras_padding=meta.get("padding") == KERAS_PADDING)  # fmt: skip
    state = _grey_to_rgb(dict(data["state_dict"]), base.model)
    state = adapt_state_dict(state, base.model, drop_classifier=True)
    missing, unexpected = base.model.load_state_dict(state, strict=False)
    head = {k for k in missing if k.startswith(("classifier", "fc", "head", "last_linear"))}
    rest = sorted(set(missing) - head)
    if rest or unexpected:
        raise ConfigError(
            f"{path}: weights do not fit {arch} (missing {rest[:4]}, unexpected "
            f"{sorted(unexpected)[:4]}); check --model matches the weights' architecture"
        )
    mean, std = base.mean, base.std
    if meta:
        m, s = list(meta["mean"]), list(meta["std"])
        # A grey checkpoint saw each channel with one mean/std: keep it for all three.
        mean, std = (
            (tuple(m * IN_CHANS), tuple(s * IN_CHANS)) if len(m) == 1 else (tuple(m), tuple(s))
        )
    return Backbone(base.model, arch, str(path), IN_CHANS, mean, std, base.extra)


def build_classifier(model: str, init: str, num_classes: int, seed: int) -> Backbone:
    """Build ``model`` with a ``num_classes`` head, initialised as ``init`` says.

    Raises
    ------
    ConfigError
        For an unknown model, unreachable ImageNet weights, or a weights file that does not
        fit.
    """
    if init == "imagenet":
        try:
            return create_backbone(model, weights="imagenet", in_chans=IN_CHANS,
                                   num_classes=num_classes, seed=seed)  # fmt: skip
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}. For finetune: --init PATH with a local ImageNet state dict of "
                f"{model} (e.g. timm's .safetensors), or --init xavier"
            ) from None
    if init == "cytoimagenet":  # the published weights fix the architecture
        return create_backbone(weights="cytoimagenet", in_chans=IN_CHANS,
                               num_classes=num_classes, seed=seed)  # fmt: skip
    if init in ("xavier", "random"):
        backbone = create_backbone(model, weights="random", in_chans=IN_CHANS,
                                   num_classes=num_classes, seed=seed)  # fmt: skip
        if init == "xavier":
            xavier_(backbone.model, seed)
        backbone.weights = init
        return backbone
    return _from_file(Path(init), model, num_classes, seed)
