"""A lab's own images in, through the command line: folder, LoadData, cells, flat fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
from typer.testing import CliRunner

from cytoimagenet.cli import app

pytest.importorskip("torch")
pytest.importorskip("timm")

runner = CliRunner()
PATTERN = "{plate}/{well}_s{site}_w{channel}.tif"


def _screen(root: Path, plates: tuple[str, ...] = ("P1", "P2"), side: int = 32) -> None:
    """Two plates × two wells × one site × two channels of 16-bit noise, dimmed at the left."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.5, 1.0, side)[None, :]
    for p in plates:
        for w in ("B02", "C03"):
            for c in (1, 2):
                plane = (rng.uniform(1000, 3000, (side, side)) * ramp).astype(np.uint16)
                path = root / p / f"{w}_s1_w{c}.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(path, plane)


def _extract(images: Path, out: Path, *extra: str) -> pl.DataFrame:
    result = runner.invoke(
        app,
        ["extract", "--model", "random", "--images", str(images), "--out", str(out),
         "--size", "32", "--no-progress", *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return pl.read_parquet(out)


def test_plate_folder_to_features(tmp_path: Path) -> None:
    _screen(tmp_path / "raw")
    table = tmp_path / "out" / "images.parquet"
    result = runner.invoke(
        app,
        ["images", "--folder", str(tmp_path / "raw"), "--pattern", PATTERN,
         "--channels", "2,1", "--out", str(table)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 images, channels: 2, 1" in result.output and "plates: 2" in result.output
    features = _extract(table, tmp_path / "out" / "f.parquet")  # no --root: relative paths
    assert features.height == 4
    assert features["Metadata_Well"].to_list() == ["B02", "C03", "B02", "C03"]
    cols = [c for c in features.columns if c.startswith("Cells_")]
    assert cols[0] == "Cells_CNN_random_2_0000" and len(cols) == 2 * 1280


def test_loaddata_to_features(tmp_path: Path) -> None:
    _screen(tmp_path / "raw", plates=("P1",))
    rows = [
        {
            "Metadata_Plate": "P1", "Metadata_Well": w, "Metadata_Treatment": t,
            "FileName_DNA": f"{w}_s1_w1.tif", "PathName_DNA": "P1",
            "FileName_Actin": f"{w}_s1_w2.tif", "PathName_Actin": "P1",
        }
        for w, t in (("B02", "DMSO"), ("C03", "taxol"))
    ]  # fmt: skip
    csv = tmp_path / "load_data.csv"
    pl.DataFrame(rows).write_csv(csv)
    table = tmp_path / "images.parquet"
    result = runner.invoke(
        app,
        ["images", "--loaddata", str(csv), "--root", str(tmp_path / "raw"), "--out", str(table)],
    )
    assert result.exit_code == 0, result.output
    features = _extract(table, tmp_path / "f.parquet")
    assert features["Metadata_Treatment"].to_list() == ["DMSO", "taxol"]
    assert "Cells_CNN_random_DNA_0000" in features.columns


def test_index_and_cell_locations_to_crops(tmp_path: Path) -> None:
    _screen(tmp_path / "raw", plates=("P1",))
    pl.DataFrame(
        {
            "Metadata_Plate": ["P1", "P1"], "Metadata_Well": ["B02", "C03"],
            "Metadata_Site": ["1", "1"],
            "DNA": ["raw/P1/B02_s1_w1.tif", "raw/P1/C03_s1_w1.tif"],
            "Actin": ["raw/P1/B02_s1_w2.tif", "raw/P1/C03_s1_w2.tif"],
        }
    ).write_csv(tmp_path / "index.csv")  # fmt: skip
    folder = tmp_path / "locations" / "P1"
    folder.mkdir(parents=True)
    for well, xs in (("B02", [16.0, 1.0]), ("C03", [30.5])):  # x=1 and x=30.5 touch the edge
        pl.DataFrame(
            {"Nuclei_Location_Center_X": xs, "Nuclei_Location_Center_Y": [16.0] * len(xs)}
        ).write_csv(folder / f"{well}-1-Nuclei.csv")
    args = ["images", "--index", str(tmp_path / "index.csv"), "--locations",
            str(tmp_path / "locations"), "--crop-size", "12"]  # fmt: skip
    skipped = runner.invoke(app, [*args, "--out", str(tmp_path / "skip.parquet")])
    assert skipped.exit_code == 0, skipped.output
    assert "1 cells" in skipped.output and "2 cell(s) whose 12px box leaves" in skipped.output
    padded = runner.invoke(
        app, [*args, "--edge", "reflect", "--out", str(tmp_path / "cells.parquet")]
    )
    assert padded.exit_code == 0, padded.output
    cells = pl.read_parquet(tmp_path / "cells.parquet")
    assert cells.height == 3 and cells["crop_x_min"].to_list() == [10, -5, 25]
    features = _extract(tmp_path / "cells.parquet", tmp_path / "f.parquet", "--size", "native")
    assert features.height == 3 and features["Metadata_Cell"].to_list() == [0, 1, 0]
    assert features["Metadata_crop_edge"].to_list() == ["reflect"] * 3
    x = features.select(pl.selectors.starts_with("Cells_")).to_numpy()
    assert np.isfinite(x).all() and not np.allclose(x[0], x[1])


def test_illumination_then_extract(tmp_path: Path) -> None:
    _screen(tmp_path / "raw")
    table = tmp_path / "images.parquet"
    made = runner.invoke(
        app,
        ["images", "--folder", str(tmp_path / "raw"), "--pattern", PATTERN, "--out", str(table)],
    )
    assert made.exit_code == 0, made.output
    illum = tmp_path / "illum"
    result = runner.invoke(
        app, ["illumination", "--images", str(table), "--out", str(illum), "--filter-size", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "2 plate(s) x 2 channel(s) (1, 2), by Metadata_Plate" in result.output
    index = json.loads((illum / "illumination.json").read_text())
    assert sorted(index["plates"]) == ["P1", "P2"]
    flat = np.load(illum / index["plates"]["P1"][0])
    assert flat.min() >= 1.0 and flat[:, -4:].mean() > 1.5 * flat[:, :4].mean()  # the ramp
    raw = _extract(table, tmp_path / "raw.parquet", "--mode", "concat")
    corrected = _extract(table, tmp_path / "c.parquet", "--mode", "concat", "--illumination",
                         str(illum))  # fmt: skip
    cols = [c for c in raw.columns if c.startswith("Cells_")]
    assert not np.allclose(raw.select(cols).to_numpy(), corrected.select(cols).to_numpy())
    one = _extract(
        table, tmp_path / "one.parquet", "--illumination", str(illum / index["plates"]["P1"][0])
    )
    assert one.height == 4
    bad = runner.invoke(
        app,
        ["extract", "--model", "random", "--images", str(table), "--out",
         str(tmp_path / "x.parquet"), "--illumination", str(tmp_path)],
    )  # fmt: skip
    assert bad.exit_code == 1 and "no illumination.json" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--folder", "{raw}", "--pattern", "{{plate}.tif"], "malformed braces"),
        (["--folder", "{raw}", "--pattern", "{plate}/{well}.png"], "match no --pattern"),
        (["--folder", "{raw}"], "--folder and --pattern go together"),
        (["--loaddata", "{raw}/nope.csv"], "no such LoadData CSV"),
        (["--folder", "{raw}", "--pattern", PATTERN, "--channels", "1,9"], "lack channels"),
        (["--folder", "{raw}", "--pattern", PATTERN, "--edge", "wrap"], "edge"),
    ],
)
def test_images_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    _screen(tmp_path / "raw", plates=("P1",))
    filled = [a.replace("{raw}", str(tmp_path / "raw")) for a in args]
    result = runner.invoke(app, ["images", *filled, "--out", str(tmp_path / "t.parquet")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error:") and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "t.parquet").exists()
