"""Converted Keras EfficientNetB0 weights against real Keras: features equal to 1e-5 relative.

Two references, neither written by our own converter's assumptions:

* Keras 2 (tf-keras 2.21): ``tests/fixtures/keras/keras2_layout.json.gz`` is the exact
  structure of the two h5 files tf-keras wrote (``save_weights`` and full-model ``save``), and
  ``keras2_features.npz`` its own features; ``make_keras2_fixture.py`` made both. The files are
  replayed here with h5py and the seeded weights of ``keras_weights.py``.
* Keras 3 (``keras`` with the torch backend, in the test extra): a subprocess builds the model,
  writes ``.weights.h5``, ``.keras`` and legacy ``.h5`` with Keras's own writers and predicts.

Every file is compared at 224×224 and at the odd native sizes 68×68 and 99×97 (where Keras's
dynamic-shape padding differs from TF-SAME), with ``in_chans`` 1 and 3, for the identity input
normalisation (CytoImageNet's), one with a different mean per channel, and one that folds.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
h5py = pytest.importorskip("h5py")

from cytoimagenet.models.factory import create_backbone  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras"
sys.path.insert(0, str(FIXTURES))

from keras_weights import NORMS, SIZES, grey_images, layer_weights, weights_digest  # noqa: E402

RTOL = 1e-5


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference relative to the largest reference feature."""
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / np.abs(want).max())


def ours(spec: str, in_chans: int, grey: np.ndarray, **kw) -> np.ndarray:
    """Pooled features of 8-bit grey images ``(n, h, w)`` as ``extract`` computes them."""
    backbone = create_backbone(weights=spec, in_chans=in_chans, **kw)
    x = torch.from_numpy(grey[:, None].astype(np.float32) / 255.0)
    with torch.inference_mode():
        return backbone.model.eval()(backbone.preprocess(x)).numpy()


# --- Keras 2: replay the layout tf-keras wrote ---------------------------------------------------


def _attr(spec: dict):
    if spec["kind"] == "zstr":
        return zlib.decompress(base64.b64decode(spec["value"])).decode()
    if spec["kind"] == "str":
        if spec["dtype"] == "|O":
            return np.array(spec["value"], dtype=h5py.string_dtype()).reshape(spec["shape"])
        return spec["value"][0]
    return np.array(spec["value"], dtype=spec["dtype"]).reshape(spec["shape"])


def _kind(names: list[str]) -> str:
    if any("depthwise_kernel" in n for n in names):
        return "dw"
    return "bn" if any("gamma" in n for n in names) else "conv"


def _layer_values(node: dict, path: str, norm: str, out: dict, order: list) -> None:
    """Map each dataset path to its array, as tf-keras's ``set_weights`` left it."""
    names = node["attrs"].get("weight_names", {}).get("value", [])
    if names and isinstance(names[0], str):
        shapes = {}

        def collect(n: dict, p: str) -> None:
            for name, child in n.get("children", []):
                if child.get("dataset"):
                    shapes[f"{p}/{name}"] = tuple(child["shape"])
                else:
                    collect(child, f"{p}/{name}")

        collect(node, path)
        layer = path.rsplit("/", 1)[-1]
        keys = [f"{path}/{n}" for n in names]
        if layer.startswith("normalization"):
            mean, var = NORMS[norm]
            arrays = [np.float32(mean), np.float32(var), np.int64(0)]
        else:
            arrays = layer_weights(layer, _kind(names), [shapes[k] for k in keys])
            order.append((layer, arrays))
        out.update(zip(keys, arrays, strict=True))
    for name, child in node.get("children", []):
        if not child.get("dataset"):
            _layer_values(child, f"{path}/{name}", norm, out, order)


def _write(node: dict, group, path: str, values: dict) -> None:
    for key, spec in node["attrs"].items():
        group.attrs[key] = _attr(spec)
    for name, child in node.get("children", []):
        if child.get("dataset"):
            group.create_dataset(name, data=values[f"{path}/{name}"])
        else:
            _write(child, group.create_group(name), f"{path}/{name}", values)


@pytest.fixture(scope="module")
def keras2():
    with gzip.open(FIXTURES / "keras2_layout.json.gz", "rt") as f:
        layout = json.load(f)
    return layout, np.load(FIXTURES / "keras2_features.npz")


def replay_keras2(layout: dict, which: str, norm: str, path: Path) -> Path:
    """Write ``path`` laid out as tf-keras's ``which`` file, with ``norm``'s weights."""
    values: dict[str, np.ndarray] = {}
    order: list = []
    _layer_values(layout[which], "", norm, values, order)
    with h5py.File(path, "w") as f:
        _write(layout[which], f, "", values)
    return path


def test_replayed_weights_are_those_tf_keras_used(keras2, tmp_path):
    layout, ref = keras2
    values: dict = {}
    order: list = []
    _layer_values(layout["weights.h5"], "", "grey", values, order)
    # tf-keras set the layers in model order; layer_names lists them in that order.
    rank = {n: i for i, n in enumerate(layout["weights.h5"]["attrs"]["layer_names"]["value"])}
    arrays = [a for _, arrs in sorted(order, key=lambda o: rank[o[0]]) for a in arrs]
    assert weights_digest(arrays) == str(ref["digest"])


@pytest.mark.parametrize("which", ["weights.h5", "full.h5"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_keras2_files_match_tf_keras(keras2, tmp_path, which, norm):
    layout, ref = keras2
    path = replay_keras2(layout, which, norm, tmp_path / f"{norm}-{which}")
    for h, w in SIZES:
        grey = ref[f"img_{h}x{w}"]
        want = ref[f"{norm}_{h}x{w}"]
        for in_chans in (1, 3):
            got = ours(f"keras:{path}", in_chans, grey)
            assert rel_err(got, want) < RTOL, (which, norm, h, w, in_chans)


def test_tf_same_padding_differs_at_odd_sizes_only(keras2, tmp_path):
    layout, ref = keras2
    path = replay_keras2(layout, "weights.h5", "identity", tmp_path / "w.h5")
    spec = f"keras:{path}"
    assert (
        rel_err(ours(spec, 1, ref["img_224x224"], keras_padding=False), ref["identity_224x224"])
        < RTOL
    )
    for h, w in ((68, 68), (99, 97)):
        err = rel_err(
            ours(spec, 1, ref[f"img_{h}x{w}"], keras_padding=False), ref[f"identity_{h}x{w}"]
        )
        assert err > 1e-2, (h, w, err)


# --- Keras 3: files written and features predicted by Keras itself -------------------------------


@pytest.fixture(scope="module")
def keras3(tmp_path_factory):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("keras3")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(  # noqa: S603 - our own script, list form
        [sys.executable, str(FIXTURES / "make_keras3_files.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, np.load(out / "features.npz")


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras", ".h5"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_keras3_files_match_keras(keras3, suffix, norm):
    out, ref = keras3
    spec = f"keras:{out / (norm + suffix)}"
    for h, w in SIZES:
        grey = grey_images(h, w)
        for in_chans in (1, 3):
            got = ours(spec, in_chans, grey)
            assert rel_err(got, ref[f"{norm}_{h}x{w}"]) < RTOL, (suffix, norm, h, w, in_chans)


def test_keras3_weights_without_name_attributes_match_by_class_order(keras3, tmp_path):
    out, ref = keras3
    path = tmp_path / "anonymous.weights.h5"
    path.write_bytes((out / "rgb.weights.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        stripped = []
        f.visititems(lambda name, obj: stripped.append(name) if "name" in obj.attrs else None)
        for name in stripped:
            del f[name].attrs["name"]
    assert stripped
    got = ours(f"keras:{path}", 1, grey_images(99, 97))
    assert rel_err(got, ref["rgb_99x97"]) < RTOL


def test_per_channel_mean_keeps_three_channels_for_grey(keras3):
    out, _ = keras3
    backbone = create_backbone(weights=f"keras:{out / 'rgb.keras'}", in_chans=1)
    assert backbone.in_chans == 3
    assert backbone.mean == pytest.approx(NORMS["rgb"][0])
    folded = create_backbone(weights=f"keras:{out / 'grey.keras'}", in_chans=1)
    assert folded.in_chans == 1
