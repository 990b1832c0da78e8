"""extract (intensity) → profile → evaluate profiles / bbbc021 --metric map → report."""

from __future__ import annotations

import builtins
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


def _images(tmp: Path) -> Path:
    """Two plates × 12 wells × 2 sites; compounds a, b brighten Actin (MoA up), c does not."""
    rng = np.random.default_rng(0)
    rows = []
    layout = ["DMSO"] * 4 + ["a"] * 2 + ["b"] * 2 + ["c"] * 2 + ["d"] * 2
    moa = {"DMSO": "DMSO", "a": "up", "b": "up", "c": "none", "d": "none"}
    for plate in ("Week1_1", "Week2_1"):
        for w, compound in enumerate(layout):
            for site in range(2):
                names = []
                for ch in ("DNA", "Actin"):
                    plane = rng.integers(200, 400, size=(16, 16), dtype=np.uint16)
                    if moa[compound] == "up" and ch == "Actin":
                        plane += 300
                    name = f"{plate}_{w}_{site}_{ch}.tif"
                    tifffile.imwrite(tmp / name, plane)
                    names.append(name)
                rows.append({
                    "Plate": plate, "Well": f"A{w:02d}", "Site": str(site),
                    "Compound": compound, "Concentration": "1.0", "MoA": moa[compound],
                    "channels": "DNA|Actin", "channel_paths": "|".join(names),
                })  # fmt: skip
    table = tmp / "images.csv"
    pl.DataFrame(rows).write_csv(table)
    return table


def _ok(args: list[str]) -> str:
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    return done.output


def test_extract_profile_map_report(tmp_path: Path) -> None:
    features = tmp_path / "intensity.parquet"
    _ok(["extract", "--model", "intensity", "--images", str(_images(tmp_path)),
         "--out", str(features), "--no-progress"])  # fmt: skip
    out = tmp_path / "profiles"
    text = _ok(["profile", "--features", str(features), "--out", str(out),
                "--control", "Metadata_Compound=DMSO", "--normalize", "mad_robustize"])  # fmt: skip
    assert "aggregate: 24 profiles × 22 features" in text
    prov = json.loads((out / "profile.provenance.json").read_text())
    assert [s["step"] for s in prov["steps"]] == ["aggregate", "normalize", "feature_select"]
    assert prov["config"]["normalize"] == "mad_robustize" and prov["pycytominer"]
    wells = pl.read_parquet(out / "aggregated.parquet")
    # metadata constant within a well is kept, the site (which varies) is not; rows counted
    assert {"Metadata_Compound", "Metadata_MoA"} <= set(wells.columns)
    assert "Metadata_Site" not in wells.columns and wells["Metadata_Rows"].to_list() == [2] * 24
    normalized = pl.read_parquet(out / "normalized.parquet")
    dmso = normalized.filter(pl.col("Metadata_Compound") == "DMSO")
    assert (
        dmso.group_by("Metadata_Plate")
        .agg(pl.col("Cells_Intensity_Actin_Mean").median())["Cells_Intensity_Actin_Mean"]
        .abs()
        .max()
        < 1e-6
    )  # robust-centred on each plate's DMSO
    result = tmp_path / "map.json"
    text = _ok(["evaluate", "profiles", "--features", str(out / "selected.parquet"),
                "--out", str(result), "--group-by", "Compound", "--control", "Compound=DMSO",
                "--moa-column", "MoA", "--null-size", "1000"])  # fmt: skip
    assert text.startswith("profiles cosine mAP activity")
    doc = json.loads(result.read_text())
    groups = {g["group"]: g for g in doc["map"]["activity"]["per_group"]}
    assert set(groups) == {"a", "b", "c", "d"}
    assert groups["a"]["map"] > groups["c"]["map"] and groups["a"]["significant"]
    assert doc["accuracy"] is None and doc["map"]["settings"]["null_size"] == 1000
    assert doc["map"]["consistency"]["groups"] == 2
    report = tmp_path / "report.md"
    _ok(["report", str(result), "--out", str(report)])
    assert "| Profiles mAP activity | map | 4 |" in report.read_text()


def test_bbbc021_metric_map_sits_next_to_nsc(tmp_path: Path) -> None:
    features = tmp_path / "intensity.parquet"
    _ok(["extract", "--model", "intensity", "--images", str(_images(tmp_path)),
         "--out", str(features), "--no-progress"])  # fmt: skip
    result = tmp_path / "r.json"
    text = _ok(["evaluate", "bbbc021", "--features", str(features), "--out", str(result),
                "--metric", "map", "--null-size", "500"])  # fmt: skip
    assert "NSC 1-NN cosine" in text and "mAP activity" in text and "mAP consistency" in text
    doc = json.loads(result.read_text())
    assert doc["protocol"]["metric"] == "cosine" and doc["config"]["map"] is True
    assert doc["map"]["activity"]["unit"] == "row" and doc["map"]["consistency"]["groups"] == 2
    report = tmp_path / "t.md"
    _ok(["report", str(result), "--out", str(report)])
    table = report.read_text()
    assert "| BBBC021 NSC | cytoimagenet |" in table and "| BBBC021 mAP activity |" in table
    assert "BBBC021 · mAP" in table


def _table(tmp: Path) -> Path:
    path = tmp / "p.parquet"
    rng = np.random.default_rng(0)
    pl.DataFrame({
        "Metadata_Plate": ["P1"] * 6, "Metadata_Well": list("ABCDEF"),
        "Metadata_Compound": ["DMSO", "DMSO", "a", "a", "b", "b"],
        "Cells_CNN_m_ch0_0000": rng.normal(size=6), "Cells_CNN_m_ch0_0001": rng.normal(size=6),
    }).write_parquet(path)  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["evaluate", "profiles"], "needs --group-by"),
        (["evaluate", "profiles", "--group-by", "Compound", "--control", "DMSO"], "COLUMN=VALUE"),
        (
            ["evaluate", "profiles", "--group-by", "Compound", "--control", "Compound=PBS"],
            "no row has Metadata_Compound = 'PBS'",
        ),
        (
            ["evaluate", "profiles", "--group-by", "Dose", "--control", "Compound=DMSO"],
            "missing metadata column",
        ),
        (["evaluate", "coos7", "--map"], "only for bbbc021"),
        (["evaluate", "bbbc021", "--group-by", "Compound"], "only for profiles"),
        (["profile", "--feature-select", "magic"], "pick any of"),
        (["profile", "--control", "Compound=PBS"], "no control profile"),
        (["profile", "--group-by", "Dose"], "missing metadata column"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, extra: list[str], needle: str) -> None:
    table = _table(tmp_path)
    where = ["--out", str(tmp_path / ("o" if extra[0] == "profile" else "o.json"))]
    done = runner.invoke(app, [*extra, "--features", str(table), *where])
    assert done.exit_code == 1, done.output
    assert done.output.count("error:") == 1 and needle in done.output, done.output


def test_missing_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_profiles(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("copairs", "pycytominer"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_profiles)
    table = _table(tmp_path)
    for args in (
        ["evaluate", "profiles", "--group-by", "Compound", "--control", "Compound=DMSO",
         "--out", str(tmp_path / "o.json")],
        ["profile", "--out", str(tmp_path / "o")],
    ):  # fmt: skip
        done = runner.invoke(app, [*args, "--features", str(table)])
        assert done.exit_code == 1 and "cytoimagenet[profiles]" in done.output, done.output
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o").exists()
