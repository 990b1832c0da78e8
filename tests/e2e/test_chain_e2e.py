"""A lab's own images to mAP, whole chain: folder / LoadData / arrays → features → profile → mAP.

The synthetic screen has a real effect: compound ``tox`` makes the Actin of every cell 2.5×
brighter, ``inert`` changes nothing. If any link of the chain loses or shuffles the metadata,
drops the effect, or compares the wrong rows, ``tox``'s activity mAP falls from ~1 towards
``inert``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
from typer.testing import CliRunner

pytest.importorskip("pycytominer")
pytest.importorskip("copairs")

from cytoimagenet.cli import app

runner = CliRunner()
PLATES = ("P1", "P2")
#: Well → compound, the same on both plates: 3 DMSO, 2 tox, 2 inert.
LAYOUT = {"B02": "DMSO", "B03": "DMSO", "B04": "DMSO", "C02": "tox", "C03": "tox",
          "D02": "inert", "D03": "inert"}  # fmt: skip
CHANNELS = ("DNA", "Actin")
SIDE = 24


def _cell(rng: np.random.Generator, compound: str, channel: str) -> np.ndarray:
    """A 16-bit field: a bright Gaussian cell on noise; tox brightens Actin 2.5×."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    cy, cx = rng.uniform(9, 15, 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2))
    gain = 2.5 if compound == "tox" and channel == "Actin" else 1.0
    plane = 300 + gain * 3000 * blob + rng.normal(0, 60, (SIDE, SIDE))
    return np.clip(plane, 0, 65535).astype(np.uint16)


def _screen(root: Path) -> list[dict[str, str]]:
    """Write 2 plates × 7 wells × 2 sites × 2 channels; return one record per file."""
    rng = np.random.default_rng(7)
    records = []
    for plate in PLATES:
        for well, compound in LAYOUT.items():
            for site in ("1", "2"):
                for ch in CHANNELS:
                    name = f"{compound}_{well}_s{site}_w{ch}.tif"
                    (root / plate).mkdir(parents=True, exist_ok=True)
                    tifffile.imwrite(root / plate / name, _cell(rng, compound, ch))
                    records.append({"plate": plate, "well": well, "site": site,
                                    "compound": compound, "channel": ch, "file": name})  # fmt: skip
    return records


def _ok(args: list[str]) -> str:
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    return done.output


def _features_to_map(features: Path, tmp: Path) -> dict[str, dict]:
    """``profile`` then ``evaluate profiles --metric map``; return the per-compound mAP rows."""
    profiles = tmp / "profiles"
    _ok(["profile", "--features", str(features), "--out", str(profiles),
         "--group-by", "Plate,Well", "--control", "Compound=DMSO"])  # fmt: skip
    result = tmp / "map.json"
    _ok(["evaluate", "profiles", "--features", str(profiles / "selected.parquet"),
         "--out", str(result), "--group-by", "Compound", "--control", "Compound=DMSO",
         "--metric", "map", "--null-size", "1000"])  # fmt: skip
    doc = json.loads(result.read_text())
    return {g["group"]: g for g in doc["map"]["activity"]["per_group"]}


def _assert_effect(groups: dict[str, dict]) -> None:
    assert set(groups) == {"tox", "inert"}
    assert groups["tox"]["map"] > 0.9 and groups["tox"]["significant"], groups
    assert groups["inert"]["map"] < groups["tox"]["map"] - 0.2, groups


def test_plate_folder_to_map(tmp_path: Path) -> None:
    _screen(tmp_path / "raw")
    table = tmp_path / "images.parquet"
    text = _ok(["images", "--folder", str(tmp_path / "raw"), "--pattern",
                "{plate}/{compound}_{well}_s{site}_w{channel}.tif", "--channels", "DNA,Actin",
                "--out", str(table)])  # fmt: skip
    assert "28 images" in text
    features = tmp_path / "f.parquet"
    _ok(["extract", "--model", "intensity", "--images", str(table), "--out", str(features),
         "--no-progress"])  # fmt: skip
    assert "Cells_Intensity_Actin_Mean" in pl.read_parquet_schema(features)
    _assert_effect(_features_to_map(features, tmp_path))


def test_loaddata_to_map(tmp_path: Path) -> None:
    records = _screen(tmp_path / "raw")
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in records:
        row = rows.setdefault(
            (r["plate"], r["well"], r["site"]),
            {"Metadata_Plate": r["plate"], "Metadata_Well": r["well"],
             "Metadata_Site": r["site"], "Metadata_Compound": r["compound"]},
        )  # fmt: skip
        row[f"FileName_{r['channel']}"] = r["file"]
        row[f"PathName_{r['channel']}"] = f"/acquired/{r['plate']}"  # another machine's path
    csv = tmp_path / "load_data.csv"
    pl.DataFrame(list(rows.values())).write_csv(csv)
    table = tmp_path / "images.parquet"
    _ok(["images", "--loaddata", str(csv), "--path-map", f"/acquired/={tmp_path / 'raw'}/",
         "--out", str(table)])  # fmt: skip
    features = tmp_path / "f.parquet"
    _ok(["extract", "--model", "intensity", "--images", str(table), "--out", str(features),
         "--no-progress"])  # fmt: skip
    _assert_effect(_features_to_map(features, tmp_path))


def test_arrays_to_map_python_api(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from cytoimagenet.evaluation.feature_table import read_feature_table
    from cytoimagenet.evaluation.mean_ap import MapSettings
    from cytoimagenet.evaluation.profiles import evaluate_profiles
    from cytoimagenet.features.api import extract_arrays
    from cytoimagenet.profiling.step import ProfileJob, run_profile

    rng = np.random.default_rng(3)
    meta = pl.DataFrame(
        [{"Plate": p, "Well": w, "Site": s, "Compound": c}
         for p in PLATES for w, c in LAYOUT.items() for s in ("1", "2")]
    )  # fmt: skip
    crops = np.stack(
        [np.stack([_cell(rng, c, ch) for ch in CHANNELS], axis=-1) for c in meta["Compound"]]
    )  # N × H × W × C, as an .npz of crops usually holds them
    features = tmp_path / "f.parquet"
    # A tiny random network; per-crop percentiles would erase the brightness effect, so the
    # percentiles are the plate's (--norm-scope plate).
    table = extract_arrays(
        crops, meta, model="random", arch="resnet10t", size=32, channel_names=list(CHANNELS),
        norm_scope="plate", plate_column="Plate", out=features,
    )  # fmt: skip
    assert table.height == 28 and "Cells_CNN_random_Actin_0000" in table.columns
    run_profile(
        ProfileJob(
            features=features, out=tmp_path / "profiles", group_by=["Plate", "Well"],
            control="Compound=DMSO", normalize="mad_robustize",
        )
    )  # fmt: skip
    wells = read_feature_table(tmp_path / "profiles" / "selected.parquet")
    _, block = evaluate_profiles(
        wells, ["Metadata_Compound"], ("Metadata_Compound", "DMSO"), None,
        MapSettings(distance="cosine", null_size=1000),
    )  # fmt: skip
    _assert_effect({g["group"]: g for g in block["activity"]["per_group"]})
