"""``cytoimagenet evaluate`` end to end: CSV.gz and Parquet tables in, RESULT.json out."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.unit.test_eval_bbbc021 import MOA_CSV, designed_table, load_real_meta, simulate
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.errors import SchemaError
from cytoimagenet.evaluation.feature_table import FeatureTable, read_feature_table
from cytoimagenet.evaluation.result import RESULT_FORMAT, read_result, write_result

runner = CliRunner()


def _frame(table: FeatureTable) -> pl.DataFrame:
    return table.meta.hstack(pl.DataFrame(table.features, schema=table.names))


def _csv_gz(frame: pl.DataFrame, path: Path) -> Path:
    path.write_bytes(gzip.compress(frame.write_csv().encode(), compresslevel=1))
    return path


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


def test_bbbc021_cytoimagenet_from_csv_gz_with_moa_join(tmp_path: Path) -> None:
    meta = load_real_meta()
    if meta is None:
        pytest.skip("real BBBC021 metadata not available")
    frame = _frame(designed_table(meta))
    assert "Metadata_MoA" not in frame.columns
    table = _csv_gz(frame, tmp_path / "designed.csv.gz")
    out = tmp_path / "res" / "RESULT.json"
    code, output = _invoke(
        "bbbc021", "--features", str(table), "--out", str(out), "--moa", str(MOA_CSV)
    )
    assert code == 0, output
    assert output.splitlines()[0] == "bbbc021 cytoimagenet NSC 1-NN cosine: 83.50 ± 7.17 % (86/103)"
    doc = read_result(out)
    assert doc["format"] == RESULT_FORMAT and doc["benchmark"] == "bbbc021"
    assert (doc["correct"], doc["n"], doc["primary"]) == (86, 103, "nsc")
    assert doc["feature_set"] == "designed" and doc["features"] == str(table)
    assert len(doc["features_sha256"]) == 64
    assert doc["ci95"]["method"] == "wald" and round(doc["ci95"]["half_width"], 4) == 0.0717
    proto = doc["protocol"]
    assert (proto["name"], proto["metric"], proto["k"], proto["normalize"]) == (
        "cytoimagenet", "cosine", 1, "zscore"
    )  # fmt: skip
    assert proto["description"].startswith("BBBC021 MoA, cytoimagenet protocol")
    assert proto["rows"] == 13200 and proto["feature_columns"] == frame.width - 4
    nsc = doc["scores"]["nsc"]
    assert len(nsc["labels"]) == 12 and len(nsc["confusion"]) == 12
    assert {"python", "numpy", "cytoimagenet"} <= set(doc["versions"]) and doc["created"]


def test_bbbc021_standard_from_parquet(tmp_path: Path) -> None:
    table = tmp_path / "sim.parquet"
    _frame(simulate(3, plate_effect=2.0)).write_parquet(table)
    out = tmp_path / "r.json"
    args = ["bbbc021", "--features", str(table), "--out", str(out), "--protocol", "standard"]
    code, output = _invoke(*args, "--metric", "pearson", "--name", "Sim features")
    assert code == 0, output
    line = output.splitlines()[0]
    assert (
        line.startswith("bbbc021 standard NSC 1-NN pearson: ") and "; NSCB 1-NN pearson: " in line
    )
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert list(doc["scores"]) == ["nsc", "nscb"] and doc["feature_set"] == "Sim features"
    assert doc["ci95"]["method"] == "wilson"
    assert doc["scores"]["nscb"]["extra"]["bootstrap_ci95"]["method"] == "bootstrap"
    assert doc["protocol"]["normalize"] == "plate-dmso" and doc["protocol"]["metric"] == "pearson"
    assert doc["config"]["protocol"] == "standard"


def _singlecell_frame(split: bool) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 240
    labels = rng.choice(["mito", "nucleus", "er"], n)
    centre = {"mito": 0.0, "nucleus": 2.0, "er": 4.0}
    x = rng.standard_normal((n, 5)) + np.array([centre[v] for v in labels])[:, None]
    data = {"Metadata_Label": labels, **{f"feat_{i}": x[:, i] for i in range(5)}}
    if split:
        data["Metadata_Split"] = np.array(["train", "test1", "test2", "test3"])[
            np.minimum(np.arange(n) // 60, 3)
        ]
    return pl.DataFrame(data)


def test_coos7_and_cyclops_print_one_line(tmp_path: Path) -> None:
    coos = _csv_gz(_singlecell_frame(split=True), tmp_path / "coos.csv.gz")
    code, output = _invoke("coos7", "--features", str(coos), "--out", str(tmp_path / "c.json"))
    assert code == 0, output
    line = output.splitlines()[0]
    assert line.startswith("coos7 11-NN euclidean: test1 ") and "; test3 " in line
    doc = read_result(tmp_path / "c.json")
    assert doc["primary"] == "test1" and list(doc["scores"]) == ["test1", "test2", "test3"]
    assert doc["n"] == 60 and doc["protocol"]["name"] == "coos7"
    cyc = tmp_path / "cyc.parquet"
    _singlecell_frame(split=False).write_parquet(cyc)
    code, output = _invoke("cyclops", "--features", str(cyc), "--out", str(tmp_path / "y.json"))
    assert code == 0, output
    assert output.startswith("cyclops leave-one-out 11-NN euclidean: ")
    assert read_result(tmp_path / "y.json")["scores"]["loo"]["n"] == 240


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["coos7", "--protocol", "standard"], "--protocol: only for bbbc021"),
        (["cyclops", "--normalize", "plate-dmso"], "--normalize plate-dmso: only for bbbc021"),
        (["bbbc021", "--metric", "manhattan"], "metric"),
        (["mnist"], "benchmark"),
        (["bbbc021", "--k", "0"], "k"),
    ],
)
def test_invalid_options_fail_before_work(tmp_path: Path, args: list[str], message: str) -> None:
    table = tmp_path / "t.parquet"
    _singlecell_frame(split=True).write_parquet(table)
    out = tmp_path / "r.json"
    code, output = _invoke(*args, "--features", str(table), "--out", str(out))
    assert code == 1 and "error: invalid options" in output and message in output
    assert not out.exists()


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    out = str(tmp_path / "r.json")
    code, output = _invoke("cyclops", "--features", str(tmp_path / "nope.parquet"), "--out", out)
    assert code == 1 and "nope.parquet: no such feature table" in output
    table = tmp_path / "t.parquet"
    _singlecell_frame(split=False).write_parquet(table)
    code, output = _invoke("cyclops", "--features", str(table), "--out", str(tmp_path / "r.txt"))
    assert code == 1 and "r.txt: the result must be a .json file" in output
    meta_only = tmp_path / "meta.csv"
    meta_only.write_text("Metadata_Label,Metadata_Plate\na,1\nb,2\n")
    code, output = _invoke("cyclops", "--features", str(meta_only), "--out", out)
    assert code == 1 and "meta.csv: no numeric feature columns" in output
    no_moa = tmp_path / "plates.parquet"
    _frame(simulate(0)).drop("Metadata_MoA").write_parquet(no_moa)
    code, output = _invoke("bbbc021", "--features", str(no_moa), "--out", out)
    assert code == 1 and "plates.parquet: no Metadata_MoA column; pass --moa" in output
    holes = tmp_path / "holes.csv"
    holes.write_text("Metadata_Label,f1,f2\na,1,2\nb,,3\n")
    code, output = _invoke("cyclops", "--features", str(holes), "--out", out)
    assert code == 1 and "holes.csv: 1 empty/NaN/infinite feature values in 1 of 2 row" in output
    assert not Path(out).exists()


def test_feature_table_reader_keeps_metadata_as_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "Metadata_Plate,Metadata_Well,x,y,note\n0123,A01,1.5,2,hello\n0456,B02,3,4,bye\n"
    )
    table = read_feature_table(path, ignore_non_numeric=True)
    assert table.meta["Metadata_Plate"].to_list() == ["0123", "0456"]
    assert table.names == ["x", "y"] and table.features.dtype == np.float32
    with pytest.raises(SchemaError, match=r"t.csv: missing metadata column"):
        read_feature_table(path, require=["Metadata_Compound"], ignore_non_numeric=True)
    # Parquet as `extract` writes it: typed metadata become text, list metadata are skipped.
    parquet = tmp_path / "t.parquet"
    pl.DataFrame(
        {
            "Metadata_Concentration": [0.003, 10.0],
            "Metadata_Site": [1, 2],
            "Metadata_channels": [["DAPI", "Actin"], ["DAPI", "Actin"]],
            "feature_00000": [0.5, 0.25],
        }
    ).write_parquet(parquet)
    table = read_feature_table(parquet)
    assert table.meta.columns == ["Metadata_Concentration", "Metadata_Site"]
    assert table.meta.row(0) == ("0.003", "1") and table.names == ["feature_00000"]


def test_read_result_checks_the_format(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else/2"}))
    with pytest.raises(SchemaError, match=r"bad.json: not a cytoimagenet-result/1 result"):
        read_result(bad)
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match="not a readable JSON result"):
        read_result(bad)
    with pytest.raises(SchemaError, match="missing field"):
        write_result(tmp_path / "x.json", {"format": RESULT_FORMAT})
    with pytest.raises(SchemaError, match="no such result file"):
        read_result(tmp_path / "absent.json")
