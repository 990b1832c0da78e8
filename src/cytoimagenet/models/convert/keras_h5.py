"""Read the weight arrays of a Keras model file with h5py, keyed by Keras layer name.

Layouts, as real Keras writes them (checked against tf-keras 2.21 and Keras 3.15):

* Keras 2 ``save_weights("x.h5")``: root attribute ``layer_names``; one group per layer with
  attribute ``weight_names`` (``stem_conv/kernel:0``); datasets
  ``<layer>/<layer>/<var>:0``. A full model (``save("x.h5")``, Keras 2 or Keras 3's legacy
  writer) has the same under ``model_weights`` (Keras 3 drops the ``:0`` and calls the
  depthwise kernel ``kernel``).
* Keras 3 ``save_weights("x.weights.h5")``: ``layers/<group>/vars/0, 1, …``, where ``<group>``
  is the layer's *class* with a counter (``conv2d_17``, ``batch_normalization_3``), numbered
  in the order of the model's layers. Keras 3.x writes the layer's own name as attribute
  ``name`` of ``vars``; without it, groups are matched to layers by their order within the
  class. Nested models nest ``layers`` groups.
* Keras 3 ``.keras``: a zip archive holding ``model.weights.h5`` in that layout.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cytoimagenet.errors import WeightsConversionError

#: A layer's variables as read: (variable name, or None when the layout has none, array).
Vars = list[tuple[str | None, np.ndarray]]

_COUNTED = re.compile(r"(?P<cls>[a-z0-9_]+?)(?:_(?P<n>\d+))?")


def _open(path: Path):
    """Open ``path`` read-only with h5py (a ``.keras`` zip: its weights), with clear errors."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed with the model extras
        raise ImportError("reading Keras .h5 weights needs h5py: pip install h5py") from exc
    if not path.is_file():
        raise FileNotFoundError(f"Keras weights file not found: {path}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                data = archive.read("model.weights.h5")
        except (KeyError, zipfile.BadZipFile) as exc:
            raise WeightsConversionError(
                f"{path} is a zip file without 'model.weights.h5'; is it a Keras 3 .keras file?"
            ) from exc
        return h5py.File(io.BytesIO(data), "r")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise WeightsConversionError(
            f"{path} is not a readable HDF5 file (truncated or not a Keras .h5): {exc}"
        ) from exc


def _attr_strings(group, name: str) -> list[str]:
    """Read a list-of-strings attribute, including Keras's chunked ``name0``, ``name1``, ..."""
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{chunk}"]))
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _read_keras2(root, path: Path, expected: set[str], ignored: re.Pattern) -> dict[str, Vars]:
    """Read a Keras 2 ``save_weights``/``save`` h5 group: ``<layer>/<weight name>`` datasets.

    A nested model (one layer group holding all of EfficientNetB0's variables, named
    ``stem_conv/kernel:0`` and so on) is flattened by the layer name inside the weight names.
    """
    layers: dict[str, Vars] = {}
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
            nested = lname not in expected and (owner in expected or ignored.fullmatch(owner))
            target = owner if nested else lname
            var = parts[-1].split(":")[0]
            layers.setdefault(target, []).append((var, np.asarray(group[wname])))
    return layers


def _read_keras3(group, path: Path, order: Mapping[str, list[str]], out: dict[str, Vars]) -> None:
    """Read one container of a Keras 3 ``.weights.h5`` tree into ``out``, nested ones too."""
    by_class: dict[str, list[tuple[int, str]]] = {}
    for gname, sub in group.items():
        vars_ = sub.get("vars")
        if vars_ is not None and len(vars_):
            m = _COUNTED.fullmatch(gname)
            cls, n = (m["cls"], int(m["n"] or 0)) if m else (gname, 0)
            by_class.setdefault(cls, []).append((n, gname))
        for nested in ("layers", "_layer_checkpoint_dependencies"):
            if nested in sub:
                _read_keras3(sub[nested], path, order, out)
    for cls, groups in by_class.items():
        groups.sort()
        names = order.get(cls, [])
        for i, (_, gname) in enumerate(groups):
            vars_ = group[gname]["vars"]
            name = vars_.attrs.get("name")
            if isinstance(name, bytes):
                name = name.decode("utf8")
            if not name and any(gname in v for v in order.values()):
                name = gname  # a group named after its layer
            if not name:  # Keras 3 before the name attribute: the i-th layer of its class
                if len(groups) != len(names):
                    raise WeightsConversionError(
                        f"{path}: {len(groups)} Keras 3 '{cls}' layers with weights, "
                        f"EfficientNetB0 has {len(names)}; is this an EfficientNetB0 file?"
                    )
                name = names[i]
            keys = sorted(vars_.keys(), key=int)
            out.setdefault(str(name), []).extend((None, np.asarray(vars_[k])) for k in keys)


def read_layers(
    path: Path, expected: set[str], ignored: re.Pattern, order: Mapping[str, list[str]]
) -> dict[str, Vars]:
    """Read every weight-carrying layer of a Keras weights file, keyed by layer name.

    Parameters
    ----------
    path : Path
        Keras 2 or 3 ``.h5``, Keras 3 ``.weights.h5`` or ``.keras`` file.
    expected : set of str
        Names of the layers the model has (to flatten nested Keras 2 models).
    ignored : re.Pattern
        Names of weight-carrying layers that are read but not converted.
    order : mapping of str to list of str
        Keras 3 class group name → layer names in order (for files without names).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    WeightsConversionError
        If the file is not a readable Keras weights file.
    """
    with _open(path) as f:
        if "layer_names" in f.attrs:
            return _read_keras2(f, path, expected, ignored)
        if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            return _read_keras2(f["model_weights"], path, expected, ignored)
        for top in ("layers", "_layer_checkpoint_dependencies"):
            if top in f:
                layers: dict[str, Vars] = {}
                _read_keras3(f[top], path, order, layers)
                return layers
    raise WeightsConversionError(
        f"{path} is not a Keras weights file: no 'layer_names' attribute (Keras 2 h5), "
        "no 'model_weights' group (full-model h5) and no 'layers' group (Keras 3)"
    )
