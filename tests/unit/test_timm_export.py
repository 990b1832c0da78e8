"""Export to a folder timm loads as it is (``local-dir:``), round-tripped with timm offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from cytoimagenet.errors import ConfigError  # noqa: E402
from cytoimagenet.models.export import export_weights  # noqa: E402
from cytoimagenet.models.factory import checkpoint_payload, create_backbone  # noqa: E402

LABELS = ["actin", "nucleus", "tubulin"]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A grey resnet18 checkpoint as ``pretrain`` writes it (head, labels, mean/std)."""
    backbone = create_backbone("resnet18", in_chans=1, num_classes=len(LABELS), seed=4)
    backbone.mean, backbone.std = (0.2,), (0.3,)
    path = tmp_path / "last.pt"
    torch.save(checkpoint_payload(backbone, labels=LABELS, num_classes=len(LABELS)), path)
    return path


def _run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_checkpoint_round_trips_through_timm_local_dir(checkpoint: Path, tmp_path: Path) -> None:
    out = export_weights(str(checkpoint), tmp_path / "export")
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors"}
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "resnet18"
    assert (config["num_classes"], config["num_features"]) == (3, 512)
    assert config["label_names"] == LABELS
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [1, 224, 224] and cfg["mean"] == [0.2] and cfg["std"] == [0.3]
    assert "url" not in cfg and "hf_hub_id" not in cfg  # nothing points at other weights

    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    ours = create_backbone(weights=str(checkpoint), in_chans=1, num_classes=3)
    whole = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert whole.conv1.in_channels == 1 and whole.num_classes == 3
    torch.testing.assert_close(_run(whole, x), _run(ours.model, x), rtol=0, atol=0)

    features = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=0)
    ours_features = create_backbone(weights=str(checkpoint), in_chans=1)
    torch.testing.assert_close(_run(features, x), _run(ours_features.model, x), rtol=0, atol=0)
    data = timm.data.resolve_data_config({}, model=features)
    assert (data["mean"], data["std"]) == ([0.2], [0.3])

    # RGB consumers (e.g. segmentation encoders): timm spreads the grey filter over 3 channels.
    rgb = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=0, in_chans=3)
    torch.testing.assert_close(
        _run(rgb, x.expand(-1, 3, -1, -1)), _run(ours_features.model, x), rtol=1e-4, atol=1e-5
    )


def test_export_refuses_a_non_empty_folder_and_a_bare_state_dict(
    checkpoint: Path, tmp_path: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        export_weights(str(checkpoint), busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    bare = tmp_path / "bare.pt"
    torch.save(create_backbone("resnet18").model.state_dict(), bare)
    with pytest.raises(ConfigError, match="not a cytoimagenet checkpoint"):
        export_weights(str(bare), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
