"""Keras EfficientNetB0 weight files → timm's ``tf_efficientnet_b0``, read with h5py alone.

Such as CytoImageNet's published ``efficientnetb0_weights-notop.h5``, in the Keras 2 (legacy
h5) or Keras 3 layout. timm's ``tf_efficientnet_b0`` uses TensorFlow's asymmetric "SAME"
padding for the stride-2 convolutions and BatchNorm ``eps=1e-3``, as Keras does, so the
conversion is exact; plain ``efficientnet_b0`` (symmetric padding, ``eps=1e-5``) is measurably
different.

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

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import torch

from cytoimagenet.errors import WeightsConversionError

if TYPE_CHECKING:
    import h5py

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

# Variables per kind of layer, in Keras's legacy h5 order (trainable first, then the rest).
_VARS: Final[dict[str, tuple[str, ...]]] = {
    "conv": ("kernel",),
    "se": ("kernel", "bias"),
    "dw": ("depthwise_kernel",),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
}
_BN_TIMM: Final = ("weight", "bias", "running_mean", "running_var")
_IGNORED: Final = re.compile(r"(predictions|normalization(_\d+)?|rescaling(_\d+)?)")
_NORMALIZATION: Final = re.compile(r"normalization(_\d+)?")


@dataclass(frozen=True)
class _KerasLayer:
    """One weight-carrying layer of Keras EfficientNetB0 and where it goes in timm."""

    name: str
    kind: str  # "conv", "se", "dw" or "bn"
    timm: str  # module path in timm, without ".weight"
    shape: tuple[int, ...]  # Keras shape of the first variable (kernel or gamma)


def _b0_layers() -> list[_KerasLayer]:
    """List Keras EfficientNetB0's weight-carrying layers in graph order."""

    def conv(name: str, timm: str, k: int, cin: int, cout: int) -> _KerasLayer:
        return _KerasLayer(name, "conv", timm, (k, k, cin, cout))

    def bn(name: str, timm: str, c: int) -> _KerasLayer:
        return _KerasLayer(name, "bn", timm, (c,))

    out = [conv("stem_conv", "conv_stem", 3, 3, _B0_STEM), bn("stem_bn", "bn1", _B0_STEM)]
    cin = _B0_STEM
    for s, (expand, k, cout, repeats) in enumerate(_B0_STAGES):
        for i in range(repeats):
            p, t = f"block{s + 1}{chr(97 + i)}_", f"blocks.{s}.{i}."
            mid, se = cin * expand, max(1, int(cin * _SE_RATIO))
            se_layers = [
                _KerasLayer(p + "se_reduce", "se", t + "se.conv_reduce", (1, 1, mid, se)),
                _KerasLayer(p + "se_expand", "se", t + "se.conv_expand", (1, 1, se, mid)),
            ]
            if expand == 1:  # timm DepthwiseSeparableConv
                out += [
                    _KerasLayer(p + "dwconv", "dw", t + "conv_dw", (k, k, mid, 1)),
                    bn(p + "bn", t + "bn1", mid),
                    *se_layers,
                    conv(p + "project_conv", t + "conv_pw", 1, mid, cout),
                    bn(p + "project_bn", t + "bn2", cout),
                ]
            else:  # timm InvertedResidual
                out += [
                    conv(p + "expand_conv", t + "conv_pw", 1, cin, mid),
                    bn(p + "expand_bn", t + "bn1", mid),
                    _KerasLayer(p + "dwconv", "dw", t + "conv_dw", (k, k, mid, 1)),
                    bn(p + "bn", t + "bn2", mid),
                    *se_layers,
                    conv(p + "project_conv", t + "conv_pwl", 1, mid, cout),
                    bn(p + "project_bn", t + "bn3", cout),
                ]
            cin = cout
    out += [conv("top_conv", "conv_head", 1, cin, _B0_HEAD), bn("top_bn", "bn2", _B0_HEAD)]
    return out


# A layer's variables as read from the file: (name or None when the layout has no names, array).
_Vars = list[tuple[str | None, np.ndarray]]


def _open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only with h5py, turning every failure into a clear error."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed with the model extras
        raise ImportError("reading Keras .h5 weights needs h5py: pip install h5py") from exc
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Keras weights file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise WeightsConversionError(
            f"{path} is not a readable HDF5 file (truncated or not a Keras .h5): {exc}"
        ) from exc


def _attr_strings(group: h5py.Group, name: str) -> list[str]:
    """Read a list-of-strings attribute, including Keras's chunked ``name0``, ``name1``, ..."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_keras2(root: h5py.Group, path: Path, expected: set[str]) -> dict[str, _Vars]:
    """Read a Keras 2 ``save_weights``/``save`` h5 group: ``<layer>/<weight name>`` datasets.

    A nested model (one layer group holding all of EfficientNetB0's variables, named
    ``stem_conv/kernel:0`` and so on) is flattened by the layer name inside the weight names.
    """
    layers: dict[str, _Vars] = {}
    for lname in _attr_strings(root, "layer_names"):
        if lname not in root:
            raise WeightsConversionError(f"{path}: layer {lname!r} is listed but has no group")
        group = root[lname]
        for wname in _attr_strings(group, "weight_names"):
            if wname not in group:
                raise WeightsConversionError(
                    f"{path}: layer {lname!r} lists weight {wname!r} but the file lacks it"
                )
            parts = wname.split("/")
            owner = parts[-2] if len(parts) >= 2 else lname
            nested = lname not in expected and (owner in expected or _IGNORED.fullmatch(owner))
            target = owner if nested else lname
            var = parts[-1].split(":")[0]
            layers.setdefault(target, []).append((var, np.asarray(group[wname])))
    return layers


def _read_keras3(group: h5py.Group, layers: dict[str, _Vars]) -> None:
    """Read a Keras 3 ``.weights.h5`` tree: ``layers/<layer>/vars/<i>`` (nested models too)."""
    for lname, sub in group.items():
        vars_ = sub.get("vars")
        if vars_ is not None and len(vars_):
            keys = sorted(vars_.keys(), key=int)
            layers.setdefault(lname, []).extend((None, np.asarray(vars_[k])) for k in keys)
        for nested in ("layers", "_layer_checkpoint_dependencies"):
            if nested in sub:
                _read_keras3(sub[nested], layers)


def _read_layers(path: Path, expected: set[str]) -> dict[str, _Vars]:
    """Read every weight-carrying layer of a Keras weights file, keyed by layer name."""
    with _open_h5(path) as f:
        if "layer_names" in f.attrs:
            return _read_keras2(f, path, expected)
        if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            return _read_keras2(f["model_weights"], path, expected)
        for top in ("layers", "_layer_checkpoint_dependencies"):
            if top in f:
                layers: dict[str, _Vars] = {}
                _read_keras3(f[top], layers)
                return layers
    raise WeightsConversionError(
        f"{path} is not a Keras weights file: no 'layer_names' attribute (Keras 2 h5), "
        "no 'model_weights' group (Keras 2 full model) and no 'layers' group (Keras 3)"
    )


def _named_vars(path: Path, layer: str, kind: str, found: _Vars) -> dict[str, np.ndarray]:
    """Match a layer's variables to the names ``kind`` needs, by name or else by order."""
    want = _VARS[kind]
    names = [n for n, _ in found]
    named = {n: a for n, a in found if n is not None}
    if len(named) == len(found) and sorted(named) == sorted(want):
        return named
    if len(found) == len(want):  # Keras 3 (no names) or unusual names: legacy order
        return {w: a for w, (_, a) in zip(want, found, strict=True)}
    raise WeightsConversionError(
        f"{path}: layer {layer!r} has variables {names} but a {kind!r} layer needs {list(want)}"
    )


def _check_shape(
    path: Path, layer: str, var: str, got: tuple[int, ...], want: tuple[int, ...]
) -> None:
    """Raise when a variable's shape is not the one EfficientNetB0 has."""
    if got != want:
        raise WeightsConversionError(
            f"{path}: layer {layer!r} variable {var!r} has shape {got}, EfficientNetB0 "
            f"expects {want}; is this an EfficientNetB0 weights file?"
        )


def _tensor(array: np.ndarray) -> torch.Tensor:
    """Return a float32 contiguous tensor that owns a copy of ``array``."""
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True))


def keras_efficientnetb0_to_timm(path: Path, *, in_chans: int = 3) -> dict[str, torch.Tensor]:
    """Convert a Keras EfficientNetB0 weights file into a timm ``tf_efficientnet_b0`` state dict.

    The file is read with :mod:`h5py` only. Accepted layouts: Keras 2 ``save_weights`` h5
    (root attribute ``layer_names``; one group per layer with attribute ``weight_names``;
    datasets ``<layer>/<layer>/<var>:0``), a Keras 2 ``model.save`` h5 (the same under
    ``model_weights``), and Keras 3 ``.weights.h5`` (``layers/<layer>/vars/<i>``). Layers are
    matched by their Keras names (``stem_conv``, ``block1a_dwconv``, ..., ``top_bn``), and every
    shape is checked against EfficientNetB0's.

    A ``predictions`` Dense layer (the classification top) is ignored, as are the
    ``rescaling`` and ``normalization`` layers. Keras EfficientNet rescales its 0–255 input by
    1/255 and then applies its ``Normalization`` layer, which is the identity for a model
    built with ``weights=None`` (CytoImageNet's case). The converted timm model must then be
    fed ``x / 255``: images on [0, 1] with mean 0 and std 1. When the file's normalisation is
    not the identity, :func:`keras_input_norm` returns the mean and std to apply on [0, 1]
    images instead.

    Parameters
    ----------
    path : Path
        Keras weights file, such as ``efficientnetb0_weights-notop.h5``.
    in_chans : int, optional
        Input channels of the timm model: 3, or 1 to sum the stem kernel over its input
        channels. The sum is exact for grey images that Keras saw replicated to RGB, provided
        the normalisation treats all channels alike (the identity does). A 1-channel Keras
        stem is used as it is for ``in_chans=1``.

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
        If the file is not a readable Keras weights file, lacks a layer, has an unexpected
        weight-carrying layer, or a variable has the wrong shape. The message names the file
        and the layer.
    ValueError
        If ``in_chans`` is not 1 or 3.
    """
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    path = Path(path)
    spec = _b0_layers()
    expected = {s.name for s in spec}
    layers = _read_layers(path, expected)

    missing = [s.name for s in spec if s.name not in layers]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise WeightsConversionError(
            f"{path}: missing EfficientNetB0 layers {shown} "
            f"({len(layers)} weight-carrying layers found); truncated or not an EfficientNetB0?"
        )
    unexpected = sorted(n for n in layers if n not in expected and not _IGNORED.fullmatch(n))
    if unexpected:
        raise WeightsConversionError(
            f"{path}: unexpected weight-carrying layers {unexpected}; "
            "only EfficientNetB0 (with or without its 'predictions' top) is supported"
        )

    state: dict[str, torch.Tensor] = {}
    summed_stem = False
    for s in spec:
        v = _named_vars(path, s.name, s.kind, layers[s.name])
        if s.kind == "bn":
            for keras_var, timm_var in zip(_VARS["bn"], _BN_TIMM, strict=True):
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
        want = s.shape
        if s.name == "stem_conv" and kernel.ndim == 4 and kernel.shape[2] == 1 and in_chans == 1:
            want = (*s.shape[:2], 1, s.shape[3])
        _check_shape(path, s.name, "kernel", kernel.shape, want)
        weight = kernel.transpose(3, 2, 0, 1)
        if s.name == "stem_conv" and in_chans == 1 and weight.shape[1] == 3:
            weight = weight.sum(axis=1, keepdims=True, dtype=np.float64)
            summed_stem = True
        state[f"{s.timm}.weight"] = _tensor(weight)
        if s.kind == "se":
            _check_shape(path, s.name, "bias", v["bias"].shape, (s.shape[3],))
            state[f"{s.timm}.bias"] = _tensor(v["bias"])

    if summed_stem:
        norm = _input_norm_from_layers(layers)
        if norm is not None and (len(set(norm[0])) > 1 or len(set(norm[1])) > 1):
            warnings.warn(
                f"{path}: the Keras input normalisation differs between channels "
                f"(mean {norm[0]}, std {norm[1]}), so summing the stem kernel for in_chans=1 "
                "is not exact; use in_chans=3 with grey replicated to RGB instead",
                stacklevel=2,
            )
    return state


def _input_norm_from_layers(
    layers: Mapping[str, _Vars],
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Return (mean, std) of the first non-identity Normalization layer, else None."""
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
        if np.allclose(mean, 0.0, rtol=0, atol=1e-7) and np.allclose(var, 1.0, rtol=0, atol=1e-7):
            return None
        std = np.maximum(np.sqrt(np.maximum(var, 0.0)), 1e-7)  # Keras: max(sqrt(var), eps)
        return tuple(float(m) for m in mean), tuple(float(x) for x in std)
    return None


def keras_input_norm(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Return the input normalisation stored in a Keras EfficientNet weights file.

    Keras EfficientNet computes ``(x / 255 - mean) / sqrt(variance)`` on 0–255 input with its
    ``Rescaling`` and ``Normalization`` layers. This returns that mean and std, which apply to
    images scaled to [0, 1], so the timm model can be fed the same tensor.

    Keras 2.9+ and Keras 3 models built with ``weights="imagenet"`` follow the normalisation
    with a weightless ``Rescaling(1 / sqrt(std))`` layer that this file-level reader cannot
    see; for such files use ImageNet mean/std instead of the returned values.

    Parameters
    ----------
    path : Path
        Keras weights file (any layout :func:`keras_efficientnetb0_to_timm` accepts).

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
        If the file is not a readable Keras weights file.
    """
    path = Path(path)
    return _input_norm_from_layers(_read_layers(path, {s.name for s in _b0_layers()}))
