"""The quickstart at its tiny preset: every stage runs, and the report shows the run.

The HTML report is opened in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): it must render, every image must load, and the results table must hold the
numbers of the run's RESULT.json files. Skipped when no Chromium or Playwright is installed
(CI installs both).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from html import escape
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.evaluation.report import format_cell, read_result
from cytoimagenet.quickstart.notes import small_n_caveat, validation_loss
from cytoimagenet.quickstart.pipeline import lite0_available
from cytoimagenet.quickstart.run import FEATURE_SETS

runner = CliRunner()
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("qs") / "run"
    args = ["quickstart", "--out", str(out), "--preset", "tiny", "--workers", "1", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_stage_wrote_its_outputs(run: tuple[Path, str]) -> None:
    out, output = run
    assert "images in the dataset: 192 in 4 classes (32 val)" in output
    dataset = pl.read_parquet(out / "dataset" / "metadata.parquet")
    assert dataset.height == 192 and len(list((out / "dataset").rglob("*.png"))) == 192
    metrics = (out / "pretrain" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 2  # header + 2 epochs
    assert (out / "pretrain" / "checkpoints" / "last.pt").is_file()
    expected = ["random", "intensity", "cytoimagenet"]
    expected += ["imagenet", "fusion"] if lite0_available() else []
    for stem in expected:
        features = pl.read_parquet(out / "features" / f"{stem}.parquet")
        assert features.height == 28  # 2 plates x (12 treatments + 2 DMSO wells) x 1 site
        result = read_result(out / "results" / f"{stem}.json")
        assert result["feature_set"] == FEATURE_SETS[stem]
        assert result["n"] == 12 and 0 <= result["correct"] <= 12
    timings = json.loads((out / "quickstart.json").read_text())["timings"]
    assert list(timings) == ["curate", "pretrain", "extract", "evaluate", "report"]
    assert f"report: {out / 'report' / 'index.html'}" in output


def test_intensity_is_a_column_and_provenance_names_the_networks_built(
    run: tuple[Path, str],
) -> None:
    out, output = run
    header = next(line for line in output.splitlines() if line.startswith("| Benchmark"))
    assert "| Random | Intensity |" in header
    intensity = pl.read_parquet(out / "features" / "intensity.parquet")
    assert any(c.startswith("Cells_Intensity_") for c in intensity.columns)
    best = validation_loss(out / "pretrain" / "metrics.csv")
    assert best is not None
    checkpoint = out / "pretrain" / "checkpoints" / best.checkpoint_name
    built = {"cytoimagenet": ("resnet18", str(checkpoint)), "intensity": (None, None)}
    if lite0_available():
        built["imagenet"] = ("tf_efficientnet_lite0", "lite0-imagenet")
    for stem, (architecture, weights) in built.items():
        provenance = json.loads((out / "features" / f"{stem}.provenance.json").read_text())
        assert [(n["architecture"], n["weights"]) for n in provenance["networks"]] == [
            (architecture, weights)
        ]


def test_validation_loss_and_the_small_n_caveat_are_said(run: tuple[Path, str]) -> None:
    out, output = run
    best = validation_loss(out / "pretrain" / "metrics.csv")
    assert best is not None
    assert best.line() in output
    files = [out / "results" / f"{stem}.json" for stem in FEATURE_SETS]
    caveat = small_n_caveat([read_result(f) for f in files if f.is_file()])  # table order
    assert caveat is not None and caveat.startswith("n = 12 treatments: one treatment is 8.33")
    lines = output.splitlines()
    table_end = max(i for i, line in enumerate(lines) if line.startswith("| BBBC021"))
    assert lines[table_end + 2] == caveat  # beside the table: right under it
    text = (out / "report" / "report.md").read_text()
    assert best.paragraph() in text and caveat in text
    html = (out / "report" / "index.html").read_text()
    assert f"<p>{escape(caveat)}</p>" in html and escape(best.paragraph()) in html


def _reproduce_block(report: Path) -> list[str]:
    text = report.read_text().split("## 4. Reproduce", 1)[1]
    block = re.search(r"```\n(.*?)\n```", text, re.S)
    assert block is not None
    return block.group(1).splitlines()


def test_the_reproduce_block_redoes_the_run(
    run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Execute every line of the report's Reproduce block in a new folder: same numbers."""
    out, _ = run
    again = tmp_path / "again"
    block = _reproduce_block(out / "report" / "report.md")
    lines = [line.replace(str(out), str(again)) for line in block]
    assert any(line.startswith("cytoimagenet sample --kind bbbc021") for line in lines)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):  # a shell comment
            continue
        words = shlex.split(line)
        if words[0] == "export":
            for pair in words[1:]:
                monkeypatch.setenv(*pair.split("=", 1))
            continue
        assert words[0] == "cytoimagenet", line
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    for original in sorted((out / "results").glob("*.json")):
        mine, theirs = read_result(again / "results" / original.name), read_result(original)
        assert (mine["feature_set"], mine["correct"], mine["n"]) == (
            theirs["feature_set"],
            theirs["correct"],
            theirs["n"],
        )
        assert (
            mine["scores"][mine["primary"]]["confusion"]
            == theirs["scores"][theirs["primary"]]["confusion"]
        )
    assert (again / "report" / "table.md").is_file()


def test_markdown_report_holds_the_run(run: tuple[Path, str]) -> None:
    out, _ = run
    text = (out / "report" / "report.md").read_text()
    for heading in ("1. The curated dataset", "2. Pretraining", "3. Transfer", "4. Reproduce"):
        assert heading in text
    for result_file in (out / "results").glob("*.json"):
        result = read_result(result_file)
        assert format_cell(result) in text
    assert "cytochalasin b" in text and "No field, crop or output was rejected" in text
    for link in ("figures/classes.png", "figures/training.png", "figures/feature-map.png"):
        assert f"]({link})" in text and (out / "report" / link).is_file()


def test_a_stage_runs_alone_and_refuses_missing_inputs(
    run: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = run
    before = (out / "results" / "random.json").read_text()
    again = runner.invoke(app, ["quickstart", "--out", str(out), "--preset", "tiny",
                                "--stages", "evaluate,report", "--no-progress"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert (
        json.loads((out / "results" / "random.json").read_text())["accuracy"]
        == json.loads(before)["accuracy"]
    )
    lonely = runner.invoke(
        app, ["quickstart", "--out", str(tmp_path / "empty"), "--stages", "pretrain"]
    )
    assert lonely.exit_code == 1
    assert "run the 'curate' stage first" in lonely.output
    bad = runner.invoke(app, ["quickstart", "--out", str(tmp_path), "--stages", "train"])
    assert bad.exit_code == 1 and "unknown stage(s) ['train']" in bad.output


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    return path


def test_html_report_renders_in_a_real_browser(run: tuple[Path, str]) -> None:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    out, _ = run
    results = {
        r["feature_set"]: r for r in map(read_result, sorted((out / "results").glob("*.json")))
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto((out / "report" / "index.html").as_uri(), wait_until="load")
            assert page.title() == "cytoimagenet quickstart report"
            assert page.inner_text("h1") == "cytoimagenet quickstart report"
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
                "i.naturalWidth])"
            )
            assert len(images) >= 3 + len(results)  # grid, curves, map + one confusion each
            broken = [src for src, complete, width in images if not (complete and width > 0)]
            assert broken == []
            texts = "cells => cells.map(c => c.innerText)"
            header = page.eval_on_selector_all("#results th", texts)
            cells = page.eval_on_selector_all("#results tbody tr:first-child td", texts)
        finally:
            browser.close()
    for name, result in results.items():
        assert cells[header.index(name)] == format_cell(result)
