"""``evaluate coos7|cyclops --group-by``: the grouped protocol from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.unit.test_eval_grouped import field_table
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.evaluation.result import read_result

runner = CliRunner()


def _features(tmp_path: Path, split: bool = False) -> Path:
    table = field_table()
    frame = table.meta.hstack(pl.DataFrame(table.features, schema=table.names))
    if split:  # even fields train, odd fields test: each test field also lends train cells
        rows = pl.int_range(pl.len()) % 3 == 0
        frame = frame.with_columns(
            pl.when(rows).then(pl.lit("test1")).otherwise(pl.lit("train")).alias("Metadata_Split")
        )
    path = tmp_path / "features.parquet"
    frame.write_parquet(path)
    return path


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


def test_cyclops_group_by_field_is_recorded(tmp_path: Path) -> None:
    features = _features(tmp_path)
    code, plain = _invoke("cyclops", "--features", str(features), "--out", str(tmp_path / "p.json"))
    assert code == 0, plain
    out = tmp_path / "g.json"
    code, output = _invoke(
        "cyclops", "--features", str(features), "--out", str(out), "--group-by", "Field"
    )
    assert code == 0, output
    line = output.splitlines()[0]
    assert line.startswith("cyclops leave-one-out 11-NN euclidean grouped by Metadata_Field: ")
    doc, ungrouped = read_result(out), read_result(tmp_path / "p.json")
    assert ungrouped["accuracy"] == 1.0 and doc["accuracy"] < 0.75
    assert doc["protocol"]["group_by"] == ["Metadata_Field"]
    assert "grouped by Metadata_Field" in doc["protocol"]["description"]
    assert "group_by" not in ungrouped["protocol"]
    assert doc["config"]["group_by"] == ["Metadata_Field"]
    assert doc["scores"]["loo"]["extra"]["grouping"]["groups"] == 20
    # The report prints the grouped protocol's description.
    table = tmp_path / "table.md"
    result = runner.invoke(app, ["report", str(tmp_path / "p.json"), str(out), "--out", str(table)])
    assert result.exit_code == 0, result.output
    assert "cannot vote" in table.read_text()


def test_coos7_group_by_two_columns(tmp_path: Path) -> None:
    features = _features(tmp_path, split=True)
    out = tmp_path / "c.json"
    code, output = _invoke(
        "coos7",
        "--features",
        str(features),
        "--out",
        str(out),
        "--group-by",
        "Field,Metadata_Plate",
    )
    assert code == 0, output
    doc = json.loads(out.read_text())
    assert doc["protocol"]["group_by"] == ["Metadata_Field", "Metadata_Plate"]
    assert "grouped by Metadata_Field and Metadata_Plate" in doc["protocol"]["description"]
    assert doc["scores"]["test1"]["extra"]["grouping"]["group_by"] == doc["protocol"]["group_by"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cyclops", "--group-by", "Well"], "missing metadata column(s) ['Metadata_Well']"),
        (["cyclops", "--group-by", "Field", "--k", "290"], "fewer than k=290 candidate"),
        (["cyclops", "--group-by", "Label"], "confounded with Metadata_Label"),
        (["bbbc021", "--group-by", "Plate"], "--group-by: only for profiles, coos7 and cyclops"),
        (["cyclops", "--group-by", " , "], "name at least one metadata column"),
    ],
)
def test_bad_groupings_give_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "r.json"
    code, output = _invoke(*args, "--features", str(_features(tmp_path)), "--out", str(out))
    assert code == 1 and message in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and not out.exists()


@pytest.mark.realdata
def test_yeast_toy_grouped_below_ungrouped(tmp_path: Path) -> None:
    """Real yeast cells: intensity features, leave-one-out 11-NN with and without fields."""
    root = shared_path("yeast_wt2_toy", "images")
    images, features = tmp_path / "images.parquet", tmp_path / "features.parquet"
    extract = ["--images", str(images), "--root", str(root), "--out", str(features)]
    for args in (
        ["benchmark-images", "cyclops", "--root", str(root), "--out", str(images)],
        ["extract", "--model", "intensity", *extract, "--size", "native", "--workers", "1"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    meta = pl.read_parquet(images)
    assert meta["Metadata_Field"].n_unique() == 20 and meta["Metadata_Field"].null_count() == 0
    accuracy = {}
    for name, extra in (("plain", []), ("field", ["--group-by", "Field"])):
        out = tmp_path / f"{name}.json"
        code, output = _invoke("cyclops", "--features", str(features), "--out", str(out), *extra)
        assert code == 0, output
        accuracy[name] = read_result(out)["accuracy"]
    # Measured: 82.95 % (1362/1642) ungrouped, 43.54 % (715/1642) grouped by field.
    assert accuracy["field"] < accuracy["plain"] - 0.2
