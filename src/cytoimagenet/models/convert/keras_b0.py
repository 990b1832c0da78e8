"""Keras EfficientNetB0's weight-carrying layers, and where each goes in timm's model.

Layouts of the weight arrays:

========================  =========================  ===========================
layer                     Keras                      PyTorch / timm
========================  =========================  ===========================
``Conv2D`` kernel         ``(kh, kw, in, out)``      ``(out, in, kh, kw)``
``DepthwiseConv2D``       ``(kh, kw, in, 1)``        ``(in, 1, kh, kw)``
``BatchNormalization``    gamma, beta, moving_mean,  weight, bias, running_mean,
                          moving_variance            running_var
========================  =========================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: timm model that Keras EfficientNetB0 weights convert to (build it with ``num_classes=0``).
KERAS_B0_TIMM_NAME: Final = "tf_efficientnet_b0"

# Keras EfficientNetB0 blocks: (expand ratio, kernel size, output channels, repeats).
_B0_STAGES: Final = (
    (1, 3, 16, 1),
    (6, 3, 24, 2),
    (6, 5, 40, 2),
    (6, 3, 80, 3),
    (6, 5, 112, 3),
    (6, 5, 192, 4),
    (6, 3, 320, 1),
)
_B0_STEM: Final = 32
_B0_HEAD: Final = 1280
_SE_RATIO: Final = 0.25

#: Variables per kind of layer, in Keras's order (trainable first, then the rest).
VARS: Final[dict[str, tuple[str, ...]]] = {
    "conv": ("kernel",),
    "se": ("kernel", "bias"),
    "dw": ("depthwise_kernel",),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
}
#: Keras 3 calls the depthwise kernel ``kernel``; Keras 2 ``depthwise_kernel``.
VAR_ALIASES: Final = {"dw": {"kernel": "depthwise_kernel"}}
BN_TIMM: Final = ("weight", "bias", "running_mean", "running_var")

#: Keras 3 ``.weights.h5`` names a layer's group after its class (``conv2d_17``), in the order
#: of the model's layers; these are the classes of each kind.
KERAS3_CLASS: Final = {
    "conv": "conv2d",
    "se": "conv2d",
    "dw": "depthwise_conv2d",
    "bn": "batch_normalization",
}


@dataclass(frozen=True)
class KerasLayer:
    """One weight-carrying layer of Keras EfficientNetB0 and where it goes in timm."""

    name: str
    kind: str  # "conv", "se", "dw" or "bn"
    timm: str  # module path in timm, without ".weight"
    shape: tuple[int, ...]  # Keras shape of the first variable (kernel or gamma)


def b0_layers() -> list[KerasLayer]:
    """List Keras EfficientNetB0's weight-carrying layers in the order of the model's layers."""

    def conv(name: str, timm: str, k: int, cin: int, cout: int) -> KerasLayer:
        return KerasLayer(name, "conv", timm, (k, k, cin, cout))

    def bn(name: str, timm: str, c: int) -> KerasLayer:
        return KerasLayer(name, "bn", timm, (c,))

    out = [conv("stem_conv", "conv_stem", 3, 3, _B0_STEM), bn("stem_bn", "bn1", _B0_STEM)]
    cin = _B0_STEM
    for s, (expand, k, cout, repeats) in enumerate(_B0_STAGES):
        for i in range(repeats):
            p, t = f"block{s + 1}{chr(97 + i)}_", f"blocks.{s}.{i}."
            mid, se = cin * expand, max(1, int(cin * _SE_RATIO))
            se_layers = [
                KerasLayer(p + "se_reduce", "se", t + "se.conv_reduce", (1, 1, mid, se)),
                KerasLayer(p + "se_expand", "se", t + "se.conv_expand", (1, 1, se, mid)),
            ]
            if expand == 1:  # timm DepthwiseSeparableConv
                out += [
                    KerasLayer(p + "dwconv", "dw", t + "conv_dw", (k, k, mid, 1)),
                    bn(p + "bn", t + "bn1", mid),
                    *se_layers,
                    conv(p + "project_conv", t + "conv_pw", 1, mid, cout),
                    bn(p + "project_bn", t + "bn2", cout),
                ]
            else:  # timm InvertedResidual
                out += [
                    conv(p + "expand_conv", t + "conv_pw", 1, cin, mid),
                    bn(p + "expand_bn", t + "bn1", mid),
                    KerasLayer(p + "dwconv", "dw", t + "conv_dw", (k, k, mid, 1)),
                    bn(p + "bn", t + "bn2", mid),
                    *se_layers,
                    conv(p + "project_conv", t + "conv_pwl", 1, mid, cout),
                    bn(p + "project_bn", t + "bn3", cout),
                ]
            cin = cout
    out += [conv("top_conv", "conv_head", 1, cin, _B0_HEAD), bn("top_bn", "bn2", _B0_HEAD)]
    return out


def keras3_class_order() -> dict[str, list[str]]:
    """Keras layer names per Keras 3 class group name, in the order Keras numbers them.

    ``conv2d`` → ``[stem_conv, block1a_se_reduce, …]``: Keras 3 names the groups of a
    ``.weights.h5`` file ``conv2d``, ``conv2d_1``, … in that order. The input
    ``normalization`` layer and a ``predictions`` top (``dense``) are the only ones of their
    classes.
    """
    order: dict[str, list[str]] = {"normalization": ["normalization"], "dense": ["predictions"]}
    for layer in b0_layers():
        order.setdefault(KERAS3_CLASS[layer.kind], []).append(layer.name)
    return order
