"""``cytoimagenet score`` end to end on small hand-built prediction tables."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from cytoimagenet.cli import app

runner = CliRunner()
CLASSES = ["Actin", "Tubulin", "DNA"]
COMPOUNDS = {"a1": "Actin", "a2": "Actin", "t1": "Tubulin", "t2": "Tubulin", "d1": "DNA"}
WRONG = ("t2", "1")  # the one treatment whose crops favour the wrong class


def _crops(compounds: dict[str, str] = COMPOUNDS) -> pl.DataFrame:
    """Two concentrations × three wells × two crops per compound; one treatment wrong."""
    rows = []
    for compound, moa in compounds.items():
        for conc in ("1", "10"):
            for w in range(3):
                for crop in range(2):
                    favoured = "DNA" if (compound, conc) == WRONG else moa
                    high = 0.6 + 0.1 * crop  # wells agree, crops differ
                    probs = {c: (high if c == favoured else (1 - high) / 2) for c in CLASSES}
                    rows.append(
                        {
                            "Metadata_Plate": f"P{w}",
                            "Metadata_Well": f"{compound}-{conc}",
                            "Metadata_Compound": compound,
                            "Metadata_Concentration": conc,
                            "Metadata_MoA": moa,
                            **probs,
                        }
                    )
    return pl.DataFrame(rows)


def _write_csv_gz(frame: pl.DataFrame, path: Path) -> Path:
    path.write_bytes(gzip.compress(frame.write_csv().encode()))
    return path


def test_score_crops_csv_gz_to_treatments_with_figure_and_conformal(tmp_path: Path) -> None:
    table = _write_csv_gz(_crops(), tmp_path / "preds.csv.gz")
    out, png = tmp_path / "r" / "RESULT.json", tmp_path / "confusion.png"
    args = ["score", "--predictions", str(table), "--out", str(out), "--from", "crop"]
    args += ["--figure", str(png), "--conformal-alpha", "0.2,0.4", "--conformal-score", "aps"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert (doc["correct"], doc["n"]) == (9, 10)
    assert doc["primary"] == "treatment" and list(doc["scores"]) == ["crop", "well", "treatment"]
    assert (doc["scores"]["well"]["correct"], doc["scores"]["well"]["n"]) == (27, 30)
    assert doc["scores"]["crop"]["n"] == 60
    assert doc["scores"]["treatment"]["labels"] == CLASSES
    assert doc["scores"]["treatment"]["confusion"] == [[4, 0, 0], [0, 3, 1], [0, 0, 2]]
    assert doc["feature_set"] == "preds" and len(doc["features_sha256"]) == 64
    block = doc["conformal"]
    assert block["calibration"] == "leave-one-out by Metadata_Compound" and block["n"] == 10
    assert [r["alpha"] for r in block["results"]] == [0.2, 0.4]
    for r in block["results"]:
        assert 0 <= r["coverage"] <= 1 and 0 <= r["mean_size"] <= 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = result.output
    assert "treatment accuracy: 90.0% (9/10)" in text
    assert "rows true, columns predicted" in text and "per-class recall" in text
    assert "Tubulin   75.0%" in text.replace("  (n=4)", "")
    assert "alpha 0.2:" in text and "alpha 0.4:" in text


def test_wells_from_parquet_with_explicit_class_order(tmp_path: Path) -> None:
    wells = (
        _crops()
        .filter(pl.col("Metadata_Plate") == "P0")
        .unique(["Metadata_Plate", "Metadata_Well"], keep="first", maintain_order=True)
    )
    table = tmp_path / "wells.parquet"
    wells.write_parquet(table)
    out = tmp_path / "r.json"
    order = ["DNA", "Actin", "Tubulin"]
    args = ["score", "--predictions", str(table), "--out", str(out), "--level", "well"]
    result = runner.invoke(app, [*args, "--classes", ",".join(order), "--name", "run1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["scores"]["well"]["labels"] == order and doc["feature_set"] == "run1"
    assert (doc["correct"], doc["n"]) == (9, 10)


def test_separate_calibration_table_must_be_compound_disjoint(tmp_path: Path) -> None:
    test_table = _write_csv_gz(_crops(), tmp_path / "test.csv.gz")
    other = {"a9": "Actin", "t9": "Tubulin", "d9": "DNA", "d8": "DNA"}
    cal_table = _write_csv_gz(_crops(other), tmp_path / "cal.csv.gz")
    out = tmp_path / "r.json"
    base = ["score", "--predictions", str(test_table), "--out", str(out), "--from", "crop"]
    base += ["--conformal-alpha", "0.3", "--mondrian"]
    ok = runner.invoke(app, [*base, "--conformal-calibration", str(cal_table)])
    assert ok.exit_code == 0, ok.output
    block = json.loads(out.read_text())["conformal"]
    assert block["calibration"] == str(cal_table) and block["n_calibration"] == 8
    assert block["mondrian"] is True
    leaky = runner.invoke(app, [*base, "--conformal-calibration", str(test_table)])
    assert leaky.exit_code == 1 and "compound-disjoint" in leaky.output


def test_clear_errors(tmp_path: Path) -> None:
    table = _write_csv_gz(_crops().drop("Tubulin"), tmp_path / "bad.csv.gz")
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["score", "--predictions", str(table), "--out", str(out)])
    assert result.exit_code == 1
    assert "error:" in result.output and "bad.csv.gz" in result.output
    assert "['Tubulin']" in result.output
    good = _write_csv_gz(_crops(), tmp_path / "good.csv.gz")
    base = ["score", "--predictions", str(good), "--out", str(out), "--from", "crop"]
    for extra, message in [
        (["--conformal-alpha", "1.5"], "(0, 1)"),
        (["--conformal-alpha", "x"], "expected numbers"),
        (["--level", "plate"], "level"),
    ]:
        bad = runner.invoke(app, [*base, *extra])
        assert bad.exit_code == 1 and message in bad.output, bad.output
    wrong_out = runner.invoke(app, ["score", "--predictions", str(good), "--out", "r.txt"])
    assert wrong_out.exit_code == 1 and ".json" in wrong_out.output
    assert not out.exists()
