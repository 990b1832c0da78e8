"""Any evaluation can carry the intensity baseline row: extract it, evaluate it, report it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cytoimagenet.cli import app

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_report_shows_the_intensity_baseline_next_to_a_network(tmp_path: Path) -> None:
    raw, images = tmp_path / "raw", tmp_path / "images.parquet"
    _ok(["sample", "--kind", "bbbc021", "--out", str(raw)])
    _ok(["benchmark-images", "bbbc021", "--root", str(raw), "--out", str(images)])
    results = []
    for model in ("intensity", "random"):
        features, result = tmp_path / f"{model}.parquet", tmp_path / f"{model}.json"
        extra = ["--arch", "resnet18"] if model == "random" else []
        _ok(["extract", "--model", model, *extra, "--images", str(images), "--root", str(raw),
             "--out", str(features), "--no-progress"])  # fmt: skip
        _ok(["evaluate", "bbbc021", "--features", str(features), "--out", str(result)])
        results.append(str(result))
    table = tmp_path / "table.md"
    _ok(["report", *results, "--out", str(table)])
    header, _, row = table.read_text().splitlines()[2:5]
    assert header.endswith("| intensity | random |")
    # The baseline is a full row member: its score is printed, not only the network's.
    intensity_cell = row.split("|")[-3].strip()
    assert intensity_cell.strip("*").split(" ")[0].replace(".", "").isdigit(), row
