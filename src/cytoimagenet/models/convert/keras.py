"""Keras EfficientNetB0 weight files → timm's ``tf_efficientnet_b0``, read with h5py alone.

Such as CytoImageNet's published ``efficientnetb0_weights-notop.h5`` (Keras 2), or any file
Keras 3 writes (``.weights.h5``, ``.keras``, legacy ``.h5``); :mod:`.keras_h5` reads the
layouts, :mod:`.keras_b0` says where each layer goes. timm's ``tf_efficientnet_b0`` has
BatchNorm ``eps=1e-3`` and TensorFlow-style padding, as Keras; plain ``efficientnet_b0``
(``eps=1e-5``) is measurably different. Keras models built with ``input_shape=(None, None,
3)``, as CytoImageNet's, pad their stride-2 convolutions differently from TensorFlow's "SAME"
at sides that are not multiples of 32: :mod:`cytoimagenet.models.keras_padding` does it their
way.

Keras EfficientNet takes 0–255 RGB, rescales it by 1/255 and applies its ``Normalization``
layer, ``(x - mean) / sqrt(variance)``: the identity for a model built with ``weights=None``
(CytoImageNet's), any mean/variance if the model was adapted or loaded otherwise. The timm
model takes images on [0, 1] normalised by :func:`keras_input_norm` (nothing to do for the
identity), so it sees exactly the tensor Keras's stem sees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch

from cytoimagenet.errors import WeightsConversionError
from cytoimagenet.models.convert.keras_b0 import (
    BN_TIMM,
    KERAS_B0_TIMM_NAME,
    VAR_ALIASES,
    VARS,
    b0_layers,
    keras3_class_order,
)
from cytoimagenet.models.convert.keras_h5 import Vars, read_layers

__all__ = [
    "KERAS_B0_TIMM_NAME",
    "KerasB0",
    "keras_efficientnetb0",
    "keras_efficientnetb0_to_timm",
    "keras_input_norm",
]

_IGNORED: Final = re.compile(r"(predictions|normalization(_\d+)?|rescaling(_\d+)?)")
_NORMALIZATION: Final = re.compile(r"normalization(_\d+)?")
_Norm = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class KerasB0:
    """Converted Keras EfficientNetB0 weights and the input they expect.

    Attributes
    ----------
    state : dict of str to torch.Tensor
        State dict of ``timm.create_model("tf_efficientnet_b0", num_classes=0,
        in_chans=in_chans)``.
    in_chans : int
        Input channels of that model. 3 when 1 was asked for but the file's normalisation
        has a different mean per channel: grey is then replicated to RGB, as Keras saw it.
    mean, std : tuple of float
        Per input channel, on [0, 1] images.
    """

    state: dict[str, torch.Tensor]
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _read(path: Path) -> dict[str, Vars]:
    spec = b0_layers()
    return read_layers(path, {s.name for s in spec}, _IGNORED, keras3_class_order())


def _named_vars(path: Path, layer: str, kind: str, found: Vars) -> dict[str, np.ndarray]:
    """Match a layer's variables to the names ``kind`` needs, by name or else by order."""
    want = VARS[kind]
    alias = VAR_ALIASES.get(kind, {})
    names = [n for n, _ in found]
    named = {alias.get(n, n): a for n, a in found if n is not None}
    if len(named) == len(found) and sorted(named) == sorted(want):
        return named
    if len(found) == len(want) and all(n is None for n in names):  # Keras 3: Keras's order
        return {w: a for w, (_, a) in zip(want, found, strict=True)}
    raise WeightsConversionError(
        f"{path}: layer {layer!r} has variables {names} but a {kind!r} layer needs {list(want)}"
    )


def _check_shape(
    path: Path, layer: str, var: str, got: tuple[int, ...], want: tuple[int, ...]
) -> None:
    if got != want:
        raise WeightsConversionError(
            f"{path}: layer {layer!r} variable {var!r} has shape {got}, EfficientNetB0 "
            f"expects {want}; is this an EfficientNetB0 weights file?"
        )


def _tensor(array: np.ndarray) -> torch.Tensor:
    """Return a float32 contiguous tensor that owns a copy of ``array``."""
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True))


def _rgb_norm(path: Path, layers: Mapping[str, Vars]) -> _Norm | None:
    """(mean, std) of the first non-identity Normalization layer on [0, 1] images, else None."""
    for name, found in layers.items():
        if not _NORMALIZATION.fullmatch(name):
            continue
        named = {n: a for n, a in found if n is not None}
        if {"mean", "variance"} <= named.keys():
            mean, var = named["mean"], named["variance"]
        elif len(found) >= 2:  # Keras 3 order: mean, variance, count
            mean, var = found[0][1], found[1][1]
        else:
            continue
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        var = np.asarray(var, dtype=np.float64).reshape(-1)
        if mean.size not in (1, 3) or var.size != mean.size:
            raise WeightsConversionError(
                f"{path}: Normalization layer {name!r} has mean {mean.shape} and variance "
                f"{var.shape}; EfficientNetB0 normalises 3 channels"
            )
        mean, var = np.broadcast_to(mean, 3), np.broadcast_to(var, 3)
        if np.allclose(mean, 0.0, rtol=0, atol=1e-7) and np.allclose(var, 1.0, rtol=0, atol=1e-7):
            return None
        std = np.maximum(np.sqrt(np.maximum(var, 0.0)), 1e-7)  # Keras: max(sqrt(var), eps)
        return tuple(float(m) for m in mean), tuple(float(x) for x in std)
    return None


def _foldable(norm: _Norm | None) -> bool:
    """Return True when grey input can be normalised once for all channels (one mean)."""
    return norm is None or float(np.ptp(norm[0])) <= 1e-7 * max(1.0, abs(norm[0][0]))


def _grey_norm(norm: _Norm | None) -> _Norm:
    """Return the 1-channel mean/std of a foldable normalisation (the mean, the average std)."""
    if norm is None:
        return (0.0,), (1.0,)
    return (norm[0][0],), (float(np.mean(norm[1])),)


def _state(path: Path, layers: Mapping[str, Vars], stem_scale: np.ndarray | None) -> dict:
    """Build the state dict; ``stem_scale`` (per RGB channel) folds the stem to 1 channel."""
    spec = b0_layers()
    missing = [s.name for s in spec if s.name not in layers]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise WeightsConversionError(
            f"{path}: missing EfficientNetB0 layers {shown} "
            f"({len(layers)} weight-carrying layers found); truncated or not an EfficientNetB0?"
        )
    expected = {s.name for s in spec}
    unexpected = sorted(n for n in layers if n not in expected and not _IGNORED.fullmatch(n))
    if unexpected:
        raise WeightsConversionError(
            f"{path}: unexpected weight-carrying layers {unexpected}; "
            "only EfficientNetB0 (with or without its 'predictions' top) is supported"
        )
    state: dict[str, torch.Tensor] = {}
    for s in spec:
        v = _named_vars(path, s.name, s.kind, layers[s.name])
        if s.kind == "bn":
            for keras_var, timm_var in zip(VARS["bn"], BN_TIMM, strict=True):
                _check_shape(path, s.name, keras_var, v[keras_var].shape, s.shape)
                state[f"{s.timm}.{timm_var}"] = _tensor(v[keras_var])
            state[f"{s.timm}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
            continue
        if s.kind == "dw":
            kernel = v["depthwise_kernel"]
            _check_shape(path, s.name, "depthwise_kernel", kernel.shape, s.shape)
            state[f"{s.timm}.weight"] = _tensor(kernel.transpose(2, 3, 0, 1))
            continue
        kernel = v["kernel"]
        grey_stem = s.name == "stem_conv" and stem_scale is not None and kernel.shape[2:3] == (1,)
        want = (*s.shape[:2], 1, s.shape[3]) if grey_stem else s.shape
        _check_shape(path, s.name, "kernel", kernel.shape, want)
        weight = kernel.transpose(3, 2, 0, 1)
        if s.name == "stem_conv" and stem_scale is not None and not grey_stem:
            # Keras normalises each RGB copy of the grey image by its own std; the 1-channel
            # input is normalised by one std, so each channel's filter carries the ratio.
            scaled = weight.astype(np.float64) * stem_scale.reshape(1, 3, 1, 1)
            weight = scaled.sum(axis=1, keepdims=True)
        state[f"{s.timm}.weight"] = _tensor(weight)
        if s.kind == "se":
            _check_shape(path, s.name, "bias", v["bias"].shape, (s.shape[3],))
            state[f"{s.timm}.bias"] = _tensor(v["bias"])
    return state


def _convert(path: Path, layers: Mapping[str, Vars], in_chans: int) -> KerasB0:
    norm = _rgb_norm(path, layers)
    if in_chans == 1 and _foldable(norm):
        mean, std = _grey_norm(norm)
        rgb_std = np.ones(3) if norm is None else np.asarray(norm[1])
        state = _state(path, layers, std[0] / rgb_std)
        return KerasB0(state, 1, mean, std)
    mean, std = norm if norm is not None else ((0.0,) * 3, (1.0,) * 3)
    return KerasB0(_state(path, layers, None), 3, mean, std)


def keras_efficientnetb0(path: Path, *, in_chans: int = 1) -> KerasB0:
    """Convert a Keras EfficientNetB0 weights file, with the input normalisation it expects.

    For ``in_chans=1`` the result equals Keras fed the grey image replicated to RGB: the
    stem's three filters are folded into one, each scaled by the ratio of the grey std to its
    channel's std. That is exact, at the borders too, when the file's normalisation has one
    mean for all channels (the identity has); otherwise the returned model keeps 3 input
    channels (``in_chans`` 3) and grey is replicated before normalising.

    Parameters
    ----------
    path : Path
        Keras 2 ``.h5`` (``save_weights`` or full model), Keras 3 ``.weights.h5``, ``.keras``
        or legacy ``.h5`` file of an EfficientNetB0, with or without its top.
    in_chans : int, optional
        1 for grey input, 3 for RGB.

    Returns
    -------
    KerasB0
        The state dict, its model's input channels and the mean/std to apply on [0, 1]
        images.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    WeightsConversionError
        If the file is not a readable Keras weights file, lacks a layer, has an unexpected
        weight-carrying layer, or a variable has the wrong shape. The message names the file
        and the layer.
    ValueError
        If ``in_chans`` is not 1 or 3.
    """
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    path = Path(path)
    return _convert(path, _read(path), in_chans)


def keras_efficientnetb0_to_timm(path: Path, *, in_chans: int = 3) -> dict[str, torch.Tensor]:
    """Convert a Keras EfficientNetB0 weights file into a timm ``tf_efficientnet_b0`` state dict.

    Layers are matched by their Keras names (``stem_conv``, ``block1a_dwconv``, …,
    ``top_bn``; Keras 3 ``.weights.h5`` groups by class and order), and every shape is checked
    against EfficientNetB0's. A ``predictions`` top and the ``rescaling`` and
    ``normalization`` layers are not part of the state: feed the model images on [0, 1]
    normalised by ``keras_input_norm(path, in_chans=in_chans)`` (nothing, for the identity
    normalisation of a ``weights=None`` model like CytoImageNet's).

    Parameters
    ----------
    path : Path
        Keras weights file, such as ``efficientnetb0_weights-notop.h5`` (see
        :func:`keras_efficientnetb0` for the layouts).
    in_chans : int, optional
        3, or 1 to fold the stem's RGB filters into one: exact for grey images that Keras saw
        replicated to RGB. A 1-channel Keras stem is used as it is for ``in_chans=1``.

    Returns
    -------
    dict[str, torch.Tensor]
        State dict for ``timm.create_model("tf_efficientnet_b0", num_classes=0,
        in_chans=in_chans)``; ``load_state_dict(..., strict=True)`` succeeds. BatchNorm
        ``num_batches_tracked`` counters are 0.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    WeightsConversionError
        As :func:`keras_efficientnetb0`, and for ``in_chans=1`` when the file's
        normalisation has a different mean per channel, which no 1-channel stem reproduces
        at the image borders (use :func:`keras_efficientnetb0`, which keeps 3 channels then).
    ValueError
        If ``in_chans`` is not 1 or 3.
    """
    got = keras_efficientnetb0(path, in_chans=in_chans)
    if got.in_chans != in_chans:
        raise WeightsConversionError(
            f"{path}: the input normalisation has a different mean per channel "
            f"({got.mean}), so no 1-channel stem equals Keras on grey replicated to RGB; "
            "use in_chans=3 and replicate grey (create_backbone does this itself)"
        )
    return got.state


def keras_input_norm(path: Path, *, in_chans: int = 3) -> tuple[tuple[float, ...], ...] | None:
    """Return the input normalisation that goes with the converted weights of a Keras file.

    Keras EfficientNet computes ``(x / 255 - mean) / sqrt(variance)`` on 0–255 input with its
    ``Rescaling`` and ``Normalization`` layers. This returns that mean and std, which apply to
    images scaled to [0, 1]; for ``in_chans=1`` the one-channel values that go with the
    folded stem of ``keras_efficientnetb0_to_timm(path, in_chans=1)``.

    Keras 2.9+ and Keras 3 models built with ``weights="imagenet"`` follow the normalisation
    with a weightless ``Rescaling(1 / sqrt(std))`` layer that the weights cannot show; for
    such files use ImageNet mean/std instead of the returned values.

    Parameters
    ----------
    path : Path
        Keras weights file (any layout :func:`keras_efficientnetb0` accepts).
    in_chans : int, optional
        3 (per RGB channel) or 1.

    Returns
    -------
    tuple[tuple[float, ...], tuple[float, ...]] or None
        ``(mean, std)`` per channel on [0, 1] images, or None when the file has no
        Normalization layer or it is the identity (mean 0, variance 1), as for a model trained
        from ``weights=None`` like CytoImageNet's: then feed ``x / 255``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    WeightsConversionError
        If the file is not a readable Keras weights file, or ``in_chans=1`` and the means
        differ per channel (see :func:`keras_efficientnetb0_to_timm`).
    """
    path = Path(path)
    norm = _rgb_norm(path, _read(path))
    if norm is None or in_chans == 3:
        return norm
    if not _foldable(norm):
        raise WeightsConversionError(
            f"{path}: the input normalisation has a different mean per channel ({norm[0]}); "
            "a 1-channel model cannot reproduce it, use in_chans=3"
        )
    return _grey_norm(norm)
