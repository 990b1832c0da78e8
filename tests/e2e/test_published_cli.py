"""``--model cytoimagenet`` and ``export`` through the command line, against a loopback mirror."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("h5py")

from tests.fakes.published import make_published  # noqa: E402
from tests.unit.test_published_weights import (  # noqa: E402, F401 (fixtures)
    COMMIT_NEW,
    Mirror,
    blob_of,
    fake_h5,
    mirror,
    pin,
    route,
)

from cytoimagenet.cli import app  # noqa: E402
from cytoimagenet.models import published  # noqa: E402
from cytoimagenet.models.factory import (  # noqa: E402
    checkpoint_payload,
    create_backbone,
    read_weights_file,
)
from cytoimagenet.models.keras_padding import uses_keras_padding  # noqa: E402
from cytoimagenet.models.published import Version  # noqa: E402

runner = CliRunner()


@pytest.fixture
def served(mirror: Mirror, fake_h5: bytes, monkeypatch: pytest.MonkeyPatch) -> Mirror:  # noqa: F811
    version = Version(COMMIT_NEW, blob_of(fake_h5))
    pin(monkeypatch, version)
    mirror.routes[route(version)] = fake_h5
    return mirror


def _table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        names = []
        for c in range(2):
            name = f"f{i}_w{c}.tif"
            tifffile.imwrite(tmp_path / name, rng.integers(0, 4096, (40, 48), dtype=np.uint16))
            names.append(name)
        rows.append({"well": f"A0{i}", "channel_paths": "|".join(names)})
    path = tmp_path / "images.csv"
    pl.DataFrame(rows).write_csv(path)
    return path


def test_extract_with_the_published_weights(served: Mirror, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    args = ["extract", "--model", "cytoimagenet", "--images", str(_table(tmp_path))]
    args += ["--size", "64", "--no-progress"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert frame.height == 2
    assert len([c for c in frame.columns if c.startswith("Cells_CNN_cytoimagenet_")]) == 2 * 1280
    assert len(served.hits) == 1
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "b.parquet")])
    assert again.exit_code == 0, again.output
    assert len(served.hits) == 1  # cached and converted once


def test_native_size_pads_as_keras_unless_told_otherwise(served: Mirror, tmp_path: Path) -> None:
    table = _table(tmp_path)  # 40 x 48 images: not multiples of 32
    base = ["extract", "--model", "cytoimagenet", "--images", str(table), "--size", "native"]
    base += ["--no-progress"]
    features = {}
    for flag in ("", "--keras-padding", "--tf-padding"):
        out = tmp_path / f"f{flag}.parquet"
        result = runner.invoke(app, [*base, *([flag] if flag else []), "--out", str(out)])
        assert result.exit_code == 0, result.output
        features[flag] = pl.read_parquet(out).select(pl.exclude("^Metadata_.*$"))
        assert features[flag].width == 2 * 1280
    assert features[""].equals(features["--keras-padding"])
    assert not features[""].equals(features["--tf-padding"])


def test_export_published_weights_load_in_timm(served: Mirror, tmp_path: Path) -> None:
    out = tmp_path / "cyto-b0"
    result = runner.invoke(app, ["export", "cytoimagenet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "local-dir:" in result.output
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    ours = create_backbone(weights="cytoimagenet", in_chans=1).model.eval()
    # Both sides multiples of 32: Keras's padding and timm's TF-SAME padding agree.
    x = torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ours(x), rtol=0, atol=0)


def test_export_checkpoint_command(tmp_path: Path) -> None:
    backbone = create_backbone("resnet18", in_chans=1, num_classes=2, seed=1)
    ckpt = tmp_path / "last.pt"
    torch.save(checkpoint_payload(backbone, labels=["a", "b"], num_classes=2), ckpt)
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert timm.create_model(f"local-dir:{out}", pretrained=True).num_classes == 2
    again = runner.invoke(app, ["export", str(ckpt), "--out", str(out)])
    assert again.exit_code == 1
    assert again.output.strip().splitlines() == [
        f"error: {out}: exists and is not empty; choose another --out or remove it"
    ]


def test_offline_is_one_error_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(published.URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(published, "RETRIES", 0)
    result = runner.invoke(app, ["export", "cytoimagenet", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the published CytoImageNet weights")
    assert str(tmp_path / "cache" / "published" / published.H5_NAME) in lines[0]


def test_pretrain_from_the_published_weights_keeps_keras_padding_across_a_resume(
    served: Mirror, tmp_path: Path
) -> None:
    data = tmp_path / "cytoimagenet"
    make_published(data)
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(data), "--out", str(out), "--init", "cytoimagenet"]
    args += ["--batch-size", "6", "--size", "32", "--workers", "0", "--no-progress"]
    first = runner.invoke(app, [*args, "--epochs", "1", "--max-steps", "1"])
    assert first.exit_code == 0, first.output
    state = read_weights_file(out / "checkpoints" / "last.pt")
    assert state["model_name"] == "tf_efficientnet_b0" and state["padding"] == "keras"
    resumed = runner.invoke(app, [*args, "--epochs", "2", "--max-steps", "1"])
    assert resumed.exit_code == 0, resumed.output
    again = read_weights_file(out / "checkpoints" / "last.pt")
    assert again["padding"] == "keras"
    backbone = create_backbone(weights=str(out / "checkpoints" / "last.pt"), num_classes=3)
    assert uses_keras_padding(backbone.model)
