"""``cytoimagenet labels --split-by-dose --synonyms FILE --blocklist FILE`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.provenance import sha256_file
from cytoimagenet.schema import conform, write_table

runner = CliRunner()


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    """A harmonised table: taxol at two doses, paclitaxel, aspirin, and a phenotype."""
    rows = (
        [("taxol", 0.3)] * 6
        + [("taxol", 1.0)] * 6
        + [("paclitaxel", 1.0)] * 4
        + [("aspirin", 5.0)] * 6
    )
    n = len(rows)
    frame = pl.DataFrame(
        {
            "database": ["Other"] * n,
            "name": ["synth"] * n,
            "dir_name": ["synth"] * n,
            "path": ["p"] * n,
            "filename": [f"f{i}" for i in range(n)],
            "idx": [f"synth-{i}" for i in range(n)],
            "crop": [False] * n,
            "pool": ["pretraining"] * n,
            "compound": [[c] for c, _ in rows],
            "phenotype": [["round"]] * 12 + [None] * 10,
            "concentration": [d for _, d in rows],
            "concentration_unit": ["uM"] * n,
        }
    )
    path = tmp_path / "meta.parquet"
    write_table(conform(frame), path)
    return path


def labels(meta: Path, out: Path, *extra: str) -> tuple[int, str]:
    args = ["labels", "--metadata", str(meta), "--out", str(out), "--threshold", "5"]
    result = runner.invoke(app, [*args, "--class-size", "50", *extra])
    return result.exit_code, result.output


def test_split_by_dose(meta: Path, tmp_path: Path) -> None:
    out = tmp_path / "l.parquet"
    code, output = labels(meta, out, "--split-by-dose", "--category", "compound")
    assert code == 0, output
    counts = dict(pl.read_parquet(out).group_by("label").len().iter_rows())
    assert counts == {"taxol 0.3 uM": 6, "taxol 1 uM": 6, "aspirin 5 uM": 6}
    report = json.loads((tmp_path / "l.report.json").read_text())
    assert report["options"]["split_by_dose"] is True
    code, _ = labels(meta, tmp_path / "plain.parquet", "--category", "compound")
    assert dict(
        pl.read_parquet(tmp_path / "plain.parquet").group_by("label").len().iter_rows()
    ) == {
        "taxol": 12,
        "aspirin": 6,
    }


def test_synonyms_and_blocklist_are_applied_reported_and_recorded(
    meta: Path, tmp_path: Path
) -> None:
    syn = tmp_path / "syn.csv"
    syn.write_text("category,value,canonical,reason\ncompound,Paclitaxel,taxol,same drug\n")
    block = tmp_path / "block.csv"
    block.write_text('category,value,reason\ncompound,aspirin,"solvent, not a drug"\n')
    out = tmp_path / "l.parquet"
    code, output = labels(meta, out, "--synonyms", str(syn), "--blocklist", str(block))
    assert code == 0, output
    counts = dict(pl.read_parquet(out).group_by("label").len().iter_rows())
    # round (12) first, then the 4 + 0 taxol images left (paclitaxel pooled in): below 5.
    assert counts == {"round": 12}
    report = json.loads((tmp_path / "l.report.json").read_text())
    taxol = next(c for c in report["skipped"] if c["label"] == "taxol")
    assert taxol["images"] == 16  # 12 taxol + 4 paclitaxel
    assert report["blocked"][0]["reason"] == "solvent, not a drug"
    assert report["blocked"][0]["candidates"] == [{"label": "aspirin", "images": 6}]
    assert "solvent, not a drug" in (tmp_path / "l.report.md").read_text()
    prov = json.loads((tmp_path / "l.provenance.json").read_text())
    assert prov["user_tables"] == {
        "synonyms": {"path": str(syn), "sha256": sha256_file(syn)},
        "blocklist": {"path": str(block), "sha256": sha256_file(block)},
    }
    assert prov["config"]["synonyms"] == str(syn)


def test_without_user_tables_provenance_says_none(meta: Path, tmp_path: Path) -> None:
    code, output = labels(meta, tmp_path / "l.parquet")
    assert code == 0, output
    prov = json.loads((tmp_path / "l.provenance.json").read_text())
    assert prov["user_tables"] == {"synonyms": None, "blocklist": None}


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--synonyms", "category,value\ncompound,x\n", "row 1: header is 'category,value'"),
        ("--synonyms", "category,value,canonical\nshape,x,y\n", "row 2: unknown category 'shape'"),
        ("--blocklist", "category,value,reason\ncompound,x,\n", "row 2: no reason given"),
        ("--blocklist", "category,value,reason\ncompound,x,y,z\n", "row 2: 4 fields"),
    ],
)
def test_bad_tables_give_one_error_line(
    meta: Path, tmp_path: Path, option: str, text: str, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    code, output = labels(meta, tmp_path / "l.parquet", option, str(bad))
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert str(bad) in lines[0] and message in lines[0]
    assert not (tmp_path / "l.parquet").exists()


def test_missing_table_file(meta: Path, tmp_path: Path) -> None:
    code, output = labels(meta, tmp_path / "l.parquet", "--blocklist", str(tmp_path / "no.csv"))
    assert code == 1 and "no such blocklist table" in output
