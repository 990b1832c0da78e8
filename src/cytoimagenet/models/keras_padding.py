"""Keras's padding of stride-2 convolutions in models built for any input size.

Keras EfficientNet pads before each stride-2 convolution with ``ZeroPadding2D(correct_pad(x,
k))`` and then convolves without padding. ``correct_pad`` looks at the input's static size:
a model built with ``input_shape=(None, None, 3)`` (CytoImageNet's feature extractor) does not
know it, and pads every stride-2 convolution as if each side were even — ``k // 2 - 1``
before and ``k // 2`` after, on both spatial dimensions, whatever the real size. TensorFlow's
"SAME" padding, which timm's ``tf_efficientnet_b0`` reproduces, pads by the real size: the
same for even sides, one more pixel before for odd ones (and one more output pixel). The
sides of B0's five stride-2 inputs are all even only when both image sides are multiples of
32, so at other native sizes the two differ (relative feature difference 0.34 at 68×68).

:func:`use_keras_padding` gives a model Keras's rule, so converted Keras weights reproduce the
Keras model at every size. It changes no parameter: state dicts load either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Iterator


class KerasPadConv2d(nn.Conv2d):
    """A stride-2 convolution padded as Keras pads it when the input size is unknown.

    Pads ``(k // 2 - 1, k // 2)`` before/after on each spatial dimension, then convolves
    without padding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad as Keras's ``correct_pad`` for an unknown size, then convolve."""
        kh, kw = self.kernel_size
        x = F.pad(x, (kw // 2 - 1, kw // 2, kh // 2 - 1, kh // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _strided(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Conv2d]]:
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and tuple(child.stride) != (1, 1):
                yield parent, name, child


def use_keras_padding(model: nn.Module) -> nn.Module:
    """Give every stride-2 convolution of ``model`` Keras's dynamic-shape padding, in place.

    Parameters
    ----------
    model : torch.nn.Module
        Typically timm's ``tf_efficientnet_b0`` with converted Keras weights.

    Returns
    -------
    torch.nn.Module
        ``model`` itself; its convolutions keep their parameters (same tensors, same names).

    Raises
    ------
    ValueError
        If a strided convolution is not one Keras's rule covers (stride 2, odd kernel,
        no dilation).
    """
    for parent, name, conv in list(_strided(model)):
        if isinstance(conv, KerasPadConv2d):
            continue
        k, stride, dilation = conv.kernel_size, tuple(conv.stride), tuple(conv.dilation)
        if stride != (2, 2) or dilation != (1, 1) or k[0] % 2 == 0 or k[1] % 2 == 0:
            raise ValueError(
                f"{name}: Keras padding covers stride-2, odd-kernel, undilated convolutions, "
                f"not kernel {k}, stride {stride}, dilation {dilation}"
            )
        new = KerasPadConv2d(
            conv.in_channels,
            conv.out_channels,
            k,
            stride=2,
            padding=0,
            groups=conv.groups,
            bias=conv.bias is not None,
            device="meta",
        )
        new.weight = conv.weight
        new.bias = conv.bias
        new.train(conv.training)
        setattr(parent, name, new)
    return model


def uses_keras_padding(model: nn.Module) -> bool:
    """Return True when ``model`` has Keras-padded stride-2 convolutions."""
    return any(isinstance(m, KerasPadConv2d) for m in model.modules())
