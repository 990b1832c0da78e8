"""The report document model (HTML/Markdown rendering) and the report figures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl

from cytoimagenet.reporting.document import (
    Code,
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from cytoimagenet.reporting.figures import feature_map, pca_2d, read_metrics, training_curves


def _doc() -> Document:
    return Document("Run <1>").add(
        Heading("Results & more"),
        Paragraph("a < b", note=True),
        Table(["name", "acc"], [["x|y", 0.5], ["z", 1]], bold=frozenset({(1, 1)}), table_id="t"),
        Figure("figures/a b.png", "A & B", inline=True),
        Code("cytoimagenet run --out <dir>"),
    )


def test_html_escapes_every_text_and_marks_numbers_and_bold() -> None:
    page = to_html(_doc())
    assert page.startswith("<!DOCTYPE html>") and "<title>Run &lt;1&gt;</title>" in page
    assert "<h2>Results &amp; more</h2>" in page and '<p class="note">a &lt; b</p>' in page
    assert '<table id="t">' in page and '<td class="num">0.5</td>' in page
    assert '<td class="num"><strong>1</strong></td>' in page and "<td>x|y</td>" in page
    assert '<figure class="inline"><img src="figures/a b.png" alt="A &amp; B">' in page
    assert "<pre><code>cytoimagenet run --out &lt;dir&gt;</code></pre>" in page
    assert "<script" not in page  # a static page: nothing runs


def test_markdown_twin_escapes_pipes_and_keeps_figures_relative() -> None:
    text = to_markdown(_doc())
    lines = text.splitlines()
    assert lines[0] == "# Run <1>" and "## Results & more" in lines and "*a < b*" in lines
    assert "| name | acc |" in lines and "|---|---:|" in lines
    assert "| x\\|y | 0.5 |" in lines and "| z | **1** |" in lines
    assert "![A & B](figures/a b.png)" in lines
    assert "```\ncytoimagenet run --out <dir>\n```" in text


def test_pca_recovers_the_dominant_direction_with_a_fixed_sign() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    x = np.stack([t, -t, 0.01 * rng.normal(size=200)], axis=1)
    x[:, 2] += 5.0  # offsets must not matter
    coords, explained = pca_2d(x)
    assert explained[0] > 0.6 and explained.sum() <= 1.0 + 1e-12
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.99
    again, _ = pca_2d(x[:, [1, 0, 2]])
    assert np.allclose(np.abs(again), np.abs(coords)) and np.allclose(pca_2d(x)[0], coords)


def test_figures_are_written_as_pngs(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(
        "epoch,train_loss,train_top1,val_loss,val_top1\n1,1.5,0.3,1.6,0.25\n2,1.1,0.6,,\n"
    )
    rows = read_metrics(metrics)
    assert rows[1]["train_top1"] == 0.6 and np.isnan(rows[1]["val_loss"])
    curves = training_curves(metrics, tmp_path / "figs" / "training.png")
    rng = np.random.default_rng(1)
    table = pl.DataFrame(
        {"Metadata_MoA": ["a"] * 10 + ["b"] * 10 + [None], "f0": rng.normal(size=21),
         "f1": rng.normal(size=21), "f2": rng.normal(size=21)}
    )  # fmt: skip
    fmap = feature_map([("one", table), ("two", table)], tmp_path / "figs" / "map.png")
    for path in (curves, fmap):
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    assert not list((tmp_path / "figs").glob("*.tmp*"))
