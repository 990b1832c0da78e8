"""The command line, end to end, through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.sample import SampleSpec, generate_sample

runner = CliRunner()


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("cytoimagenet ")
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_sources_list_json() -> None:
    result = runner.invoke(app, ["sources", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 43
    for row in rows:
        assert {"name", "database", "title", "url", "images", "evaluation"} <= set(row)
    by_name = {r["name"]: r for r in rows}
    assert by_name["bbbc021"]["evaluation"] is True
    assert by_name["idr0088"]["images"] == 317430
    assert by_name["idr0088"]["database"] == "Image Data Resource"


def test_sources_list_and_show_text() -> None:
    result = runner.invoke(app, ["sources", "list"])
    assert result.exit_code == 0 and "43 sources" in result.output
    shown = runner.invoke(app, ["sources", "show", "rec_rxrx1"])
    assert shown.exit_code == 0 and "RxRx1" in shown.output
    as_json = json.loads(runner.invoke(app, ["sources", "show", "coos7", "--json"]).output)
    assert as_json["pretraining"] is False


def test_unknown_source_is_a_clear_error() -> None:
    result = runner.invoke(app, ["sources", "show", "bbbc21"])
    assert result.exit_code == 1
    assert "unknown source 'bbbc21'" in result.output and "bbbc021" in result.output


def test_metadata_command_writes_table_csv_and_provenance(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_sample(raw, SampleSpec(plates=1, sites=1, size=24, cells=2))
    out = tmp_path / "meta" / "sample.parquet"
    result = runner.invoke(app, ["metadata", "sample", "--raw", str(raw), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows: 24" in result.output
    assert pl.read_parquet(out).height == 24
    assert (tmp_path / "meta" / "sample.csv").is_file()
    prov = json.loads((tmp_path / "meta" / "sample.provenance.json").read_text())
    assert prov["config"]["source"] == "sample"
    assert list(prov["inputs"]) == ["sample_image.csv"]
    assert len(prov["inputs"]["sample_image.csv"]["sha256"]) == 64


def test_metadata_command_validates_before_work(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    missing = runner.invoke(
        app, ["metadata", "sample", "--raw", str(tmp_path / "no"), "--out", str(out)]
    )
    assert missing.exit_code == 1 and "no such directory" in missing.output
    wrong = runner.invoke(app, ["metadata", "nope", "--raw", str(tmp_path), "--out", str(out)])
    assert wrong.exit_code == 1 and "unknown source" in wrong.output
    suffix = runner.invoke(app, ["metadata", "sample", "--raw", str(tmp_path), "--out", "x.csv"])
    assert suffix.exit_code == 1 and ".parquet" in suffix.output
    assert not out.exists()


def test_metadata_on_an_empty_raw_folder_names_the_expected_file(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    result = runner.invoke(app, ["metadata", "sample", "--raw", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 1
    assert "sample_image.csv" in result.output
    assert not out.exists()


def test_build_command_errors_and_output(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_sample(raw / "sample", SampleSpec(plates=1, sites=2, size=150, cells=4))
    meta = tmp_path / "sample.parquet"
    runner.invoke(app, ["metadata", "sample", "--raw", str(raw / "sample"), "--out", str(meta)])
    labels = tmp_path / "labels.parquet"
    result = runner.invoke(
        app, ["labels", "--metadata", str(meta), "--out", str(labels), "--threshold", "5"]
    )
    assert result.exit_code == 0, result.output
    base = ["build", "--labels", str(labels), "--out", str(tmp_path / "ds"), "--no-progress"]
    missing = runner.invoke(app, [*base, "--root", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such directory" in missing.output
    wrong = runner.invoke(app, [*base, "--root", str(tmp_path)])
    assert wrong.exit_code == 1 and "no folder for source(s) sample" in wrong.output
    ok = runner.invoke(app, [*base, "--root", str(raw), "--min-class-size", "2", "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    assert "# Build report" in ok.output and "metadata.parquet" in ok.output
    provenance = json.loads((tmp_path / "ds" / "provenance.json").read_text())
    assert provenance["command"] == "build" and provenance["config"]["min_class_size"] == 2


def test_labels_command_writes_table_report_and_provenance(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_sample(raw, SampleSpec(plates=2, sites=1, size=24, cells=2))
    meta = tmp_path / "sample.parquet"
    assert (
        runner.invoke(app, ["metadata", "sample", "--raw", str(raw), "--out", str(meta)]).exit_code
        == 0
    )
    out = tmp_path / "labels" / "labels.parquet"
    args = ["labels", "--metadata", str(meta), "--out", str(out), "--threshold", "10"]
    result = runner.invoke(app, [*args, "--class-size", "12", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "| compound |" in result.output
    table = pl.read_parquet(out)
    assert table["label"].is_not_null().all() and table["idx"].is_unique().all()
    report = json.loads((tmp_path / "labels" / "labels.report.json").read_text())
    assert report["labels"] == table["label"].n_unique()
    assert report["options"]["seed"] == 3
    assert (tmp_path / "labels" / "labels.report.md").is_file()
    assert (tmp_path / "labels" / "labels.provenance.json").is_file()


def test_labels_command_accepts_several_tables_after_one_flag(tmp_path: Path) -> None:
    tables = []
    for seed in (0, 1):
        raw = tmp_path / f"raw{seed}"
        generate_sample(raw, SampleSpec(plates=1, sites=1, size=16, cells=1, seed=seed))
        meta = tmp_path / f"m{seed}.parquet"
        runner.invoke(app, ["metadata", "sample", "--raw", str(raw), "--out", str(meta)])
        tables.append(str(meta))
    out = tmp_path / "l.parquet"
    result = runner.invoke(app, ["labels", "--metadata", *tables, "--out", str(out)])
    # Both tables are the same source, so their idx collide: a clear schema error.
    assert result.exit_code == 1 and "share an idx" in result.output


def test_labels_command_validates_options(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "labels",
            "--metadata",
            str(tmp_path / "none.parquet"),
            "--out",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert result.exit_code == 1 and "no such metadata table" in result.output


def test_sample_kinds(tmp_path: Path) -> None:
    from cytoimagenet.evaluation.loaders import load_bbbc021

    args = ["--plates", "1", "--sites", "1", "--size", "32"]
    source = runner.invoke(app, ["sample", "--out", str(tmp_path / "s"), *args])
    assert source.exit_code == 0 and "sample_image.csv" in source.output
    screen = runner.invoke(
        app, ["sample", "--kind", "bbbc021", "--out", str(tmp_path / "b"), *args]
    )
    assert screen.exit_code == 0 and "BBBC021_v1_image.csv" in screen.output
    assert load_bbbc021(tmp_path / "b").table["Metadata_Plate"].unique().to_list() == ["Week1_S01"]
    plate = runner.invoke(app, ["sample", "--kind", "bbbc014", "--out", str(tmp_path / "c")])
    assert plate.exit_code == 0
    assert len(list((tmp_path / "c" / "BBBC014_v1_images").glob("*.BMP"))) == 2 * 96
    wrong = runner.invoke(app, ["sample", "--kind", "bbbc022", "--out", str(tmp_path / "d")])
    assert wrong.exit_code == 1 and "kind" in wrong.output
