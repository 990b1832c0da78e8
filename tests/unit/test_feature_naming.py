"""Feature column names (Cells_CNN_…, Cells_Intensity_…), the intensity baseline, and
pycytominer's ``features="infer"`` on real ``extract`` output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import tifffile
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.evaluation.feature_table import read_feature_table
from cytoimagenet.features.intensity import STATS, intensity_features, plane_stats
from cytoimagenet.features.naming import channel_tokens, cnn_names, model_token
from cytoimagenet.features.step import ExtractJob, run_extract, table_channel_names

runner = CliRunner()


def _screen(tmp: Path, n: int = 8, channels: tuple[str, ...] = ("DNA", "Actin")) -> Path:
    """A small plate: half DMSO, half a compound that doubles the Actin intensity."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        compound = "DMSO" if i % 2 == 0 else "X"
        names = []
        for c, ch in enumerate(channels):
            plane = rng.integers(100, 1000, size=(24, 24), dtype=np.uint16)
            if compound == "X" and c == 1:
                plane *= 2
            name = f"f{i}_{ch}.tif"
            tifffile.imwrite(tmp / name, plane)
            names.append(name)
        rows.append(
            {
                "Metadata_Plate": f"P{i // 4}",
                "Metadata_Well": f"A{i % 4:02d}",
                "Metadata_Compound": compound,
                "channels": list(channels),
                "channel_paths": names,
            }
        )
    table = tmp / "images.parquet"
    pl.DataFrame(rows).write_parquet(table)
    return table


def test_tokens_and_names() -> None:
    assert model_token("imagenet") == "imagenet"
    assert model_token("/x/runs/exp_7/checkpoints/best.pt") == "exp7"
    assert model_token("last.pt") == "checkpoint"
    assert channel_tokens(None, 3) == ["ch0", "ch1", "ch2"]
    assert channel_tokens(["DNA"], 2) == ["ch0", "ch1"]  # wrong count: numbered
    names = cnn_names("m", ["A"], 12_000)
    assert names[0] == "Cells_CNN_m_A_00000" and len(set(names)) == 12_000


def test_table_channel_names() -> None:
    frame = pl.DataFrame({"channels": ["DNA|Actin", "DNA|Actin"]})
    assert table_channel_names(frame) == ["DNA", "Actin"]
    assert table_channel_names(pl.DataFrame({"channels": ["a", "b"]})) is None  # rows differ
    assert table_channel_names(pl.DataFrame({"x": [1]})) is None


def test_plane_stats_match_numpy() -> None:
    rng = np.random.default_rng(1)
    plane = rng.integers(0, 65535, size=(31, 17), dtype=np.uint16)
    got = dict(zip(STATS, plane_stats(plane), strict=True))
    x = plane.astype(np.float64)
    assert got["Mean"] == pytest.approx(x.mean()) and got["Std"] == pytest.approx(x.std())
    assert got["Min"] == x.min() and got["Max"] == x.max()
    assert got["P05"] == pytest.approx(np.percentile(x, 5))
    assert got["P99"] == pytest.approx(np.percentile(x, 99))


def test_intensity_refuses_mixed_channel_counts(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, np.ones((4, 4), np.uint16))
    tifffile.imwrite(b, np.ones((4, 4), np.uint16))
    from cytoimagenet.errors import ConfigError

    with pytest.raises(ConfigError, match="channel planes"):
        intensity_features([[a, b], [a]], workers=1, progress=False)


def test_extract_intensity_cli_keeps_raw_units(tmp_path: Path) -> None:
    table = _screen(tmp_path)
    out = tmp_path / "intensity.parquet"
    args = ["extract", "--model", "intensity", "--images", str(table), "--out", str(out),
            "--no-progress"]  # fmt: skip
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    frame = pl.read_parquet(out)
    feats = [c for c in frame.columns if not c.startswith("Metadata_")]
    assert feats == [f"Cells_Intensity_{c}_{s}" for c in ("DNA", "Actin") for s in STATS]
    # raw units, not rescaled: the compound doubles Actin, DNA stays
    x = frame.filter(pl.col("Metadata_Compound") == "X")
    d = frame.filter(pl.col("Metadata_Compound") == "DMSO")
    assert x["Cells_Intensity_Actin_Mean"].mean() > 1.8 * d["Cells_Intensity_Actin_Mean"].mean()
    assert frame["Cells_Intensity_DNA_Min"].min() >= 100
    assert frame["Cells_Intensity_DNA_Max"].max() < 1000
    info = json.loads(pq.read_schema(out).metadata[b"cytoimagenet"])
    assert info["columns"]["first"] == "Cells_Intensity_DNA_Mean"


def test_extract_refuses_name_with_fusion_and_empty_name(tmp_path: Path) -> None:
    table = _screen(tmp_path, n=2)
    out = tmp_path / "o.parquet"
    for extra in (["--model", "fusion:intensity+random", "--name", "x"],
                  ["--model", "intensity", "--name", "__"]):  # fmt: skip
        done = runner.invoke(app, ["extract", *extra, "--images", str(table), "--out", str(out)])
        assert done.exit_code == 1 and done.output.count("error:") == 1, done.output
    assert not out.exists()


@pytest.fixture
def cnn_features(tmp_path: Path) -> Path:
    pytest.importorskip("timm")
    table = _screen(tmp_path)
    out = tmp_path / "cnn.parquet"
    job = ExtractJob(model="random", arch="test_efficientnet", images=table, out=out, size=32,
                     workers=1)  # fmt: skip
    run_extract(job, progress=False)
    return out


def test_cnn_columns_name_model_and_channel(cnn_features: Path) -> None:
    table = read_feature_table(cnn_features)
    width = len(table.names) // 2
    assert table.names[0] == "Cells_CNN_random_DNA_0000"
    assert table.names[width] == "Cells_CNN_random_Actin_0000"


def test_old_feature_files_still_read(tmp_path: Path) -> None:
    old = tmp_path / "old.parquet"
    pl.DataFrame(
        {"Metadata_Plate": ["P1", "P2"], "feature_00000": [0.5, 1.0], "feature_00001": [2.0, 3.0]}
    ).write_parquet(old)
    assert read_feature_table(old).names == ["feature_00000", "feature_00001"]


@pytest.mark.parametrize("kind", ["intensity", "cnn"])
def test_pycytominer_infers_every_feature_column(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pycytominer = pytest.importorskip("pycytominer")
    if kind == "cnn":
        path = request.getfixturevalue("cnn_features")
    else:
        path = tmp_path / "intensity.parquet"
        run_extract(
            ExtractJob(model="intensity", images=_screen(tmp_path), out=path), progress=False
        )
    frame = pl.read_parquet(path).to_pandas()
    ours = read_feature_table(path).names
    from pycytominer.cyto_utils import infer_cp_features

    assert infer_cp_features(frame) == ours
    agg = pycytominer.aggregate(frame, strata=["Metadata_Plate", "Metadata_Compound"],
                                features="infer")  # fmt: skip
    assert agg.shape == (4, 2 + len(ours))
    dmso_rows = "Metadata_Compound == 'DMSO'"
    norm = pycytominer.normalize(frame, features="infer", meta_features="infer",
                                 samples=dmso_rows, method="standardize")  # fmt: skip
    assert [c for c in norm.columns if not c.startswith("Metadata_")] == ours
    dmso = norm[norm["Metadata_Compound"] == "DMSO"][ours].to_numpy()
    assert np.allclose(dmso.mean(axis=0), 0, atol=1e-4)
    selected = pycytominer.feature_select(
        norm, features="infer", operation=["variance_threshold", "correlation_threshold"]
    )
    kept = [c for c in selected.columns if not c.startswith("Metadata_")]
    assert 0 < len(kept) <= len(ours) and set(kept) <= set(ours)
