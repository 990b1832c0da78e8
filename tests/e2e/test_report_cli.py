"""``benchmark-images`` → ``extract`` and ``report``, end to end through typer's runner."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
from tests.conftest import shared_path
from tests.unit.test_eval_report import COOS7_DESC, paper_results, result, score
from typer.testing import CliRunner

from cytoimagenet.cli import app

runner = CliRunner()


def _fake_coos7(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test1", "test2", "test3", "test4"):
        for label in ("Golgi", "Peroxisomes"):
            for chan in ("protein", "nucleus", "mask"):
                path = root / split / label / f"plate2_B03_1_9_{chan}.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(path, rng.integers(0, 4096, (20, 20), dtype=np.uint16))


def _extract(images: Path, root: Path, out: Path) -> pl.DataFrame:
    args = ["extract", "--model", "random", "--images", str(images), "--root", str(root)]
    args += ["--out", str(out), "--size", "32", "--workers", "1", "--no-progress"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    return pl.read_parquet(out)


def test_coos7_images_then_extract(tmp_path: Path) -> None:
    raw = tmp_path / "coos7"
    _fake_coos7(raw)
    images = tmp_path / "coos7.parquet"
    args = ["benchmark-images", "coos7", "--root", str(raw), "--out", str(images)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "coos7: 10 rows (cells), 2 classes" in done.output and "test4" in done.output
    features = _extract(images, raw, tmp_path / "features.parquet")
    assert features.height == 10
    assert features.filter(pl.col("Metadata_Split") == "train")[
        "Metadata_Label"
    ].sort().to_list() == [
        "Golgi",
        "Peroxisomes",
    ]
    assert sum(c.startswith("Cells_CNN_") for c in features.columns) == 2 * 1280  # concat-norm


@pytest.mark.realdata
def test_yeast_toy_images_then_extract(tmp_path: Path) -> None:
    raw = shared_path("yeast_wt2_toy")
    images = tmp_path / "cyclops.parquet"
    args = ["benchmark-images", "cyclops", "--root", str(raw), "--out", str(images)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "cyclops: 1642 rows (cells), 5 classes" in done.output
    assert re.search(r"AAC3\s+416", done.output)
    # Extract on two cells per class: the table works as is, a subset keeps the test fast.
    table = pl.read_parquet(images)
    few = table.group_by("Metadata_Label", maintain_order=True).head(2)
    few.write_parquet(tmp_path / "few.parquet")
    features = _extract(tmp_path / "few.parquet", raw, tmp_path / "features.parquet")
    assert features.height == 10
    assert features["Metadata_Label"].to_list() == few["Metadata_Label"].to_list()
    assert features.select(pl.col("^Cells_CNN_.*$")).to_numpy().std(0).max() > 0


def test_benchmark_images_errors_are_one_line(tmp_path: Path) -> None:
    done = runner.invoke(app, ["benchmark-images", "bbbc021", "--root", str(tmp_path / "no"),
                               "--out", str(tmp_path / "x.parquet")])  # fmt: skip
    assert done.exit_code == 1 and "error: invalid options" in done.output
    assert "no such directory" in done.output
    done = runner.invoke(app, ["benchmark-images", "bbbc021", "--root", str(tmp_path),
                               "--out", str(tmp_path / "x.parquet")])  # fmt: skip
    assert done.exit_code == 1 and "BBBC021_v1_image.csv" in done.output
    assert not (tmp_path / "x.parquet").exists()


def _write_results(folder: Path) -> list[Path]:
    labels = ["Golgi", "Peroxisomes", "ER"]
    extra = [
        result("coos7", name, "coos7", COOS7_DESC,
               {"test1": score(c, 30, labels=labels), "test2": score(c - 3, 30, labels=labels)})
        for name, c in (("ImageNet", 25), ("Fusion", 28))
    ]  # fmt: skip
    paths = []
    for i, r in enumerate([*paper_results()[:2], *extra]):
        path = folder / f"r{i}.json"
        path.write_text(json.dumps(r, indent=2))
        paths.append(path)
    return paths


def test_report_table_and_confusion_pngs(tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    paths = _write_results(tmp_path)
    out, figures = tmp_path / "report" / "table.md", tmp_path / "report" / "figures"
    args = ["report", *map(str, paths), "--out", str(out), "--figures", str(figures)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    text = out.read_text()
    assert "| BBBC021 | cytoimagenet | 103 | 27.18 ± 8.59 | — | — |" in text
    assert "| COOS-7 test1 | coos7 | 30 | — | 83.33 ± 13.34 | **93.33 ± 8.93** |" in text
    assert text.count("- **COOS-7 · coos7**") == 1  # the protocol described once
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 4  # two feature sets x two COOS-7 test sets carry a confusion matrix
    for link in links:
        image = plt.imread(out.parent / link)
        assert image.ndim == 3 and image.shape[0] > 100
    assert "wrote" in done.output and "4 figure(s)" in done.output


def test_report_umap_without_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)
    paths = _write_results(tmp_path)
    features = tmp_path / "f.parquet"
    pl.DataFrame({"Metadata_Label": ["a"], "feature_0": [1.0]}).write_parquet(features)
    out = tmp_path / "table.md"
    args = ["report", str(paths[0]), "--out", str(out), "--figures", str(tmp_path / "fig")]
    done = runner.invoke(app, [*args, "--umap", str(features)])
    assert done.exit_code == 1 and "pip install 'cytoimagenet[umap]'" in done.output
    assert not out.exists() and not (tmp_path / "fig").exists()
    done = runner.invoke(app, ["report", str(paths[0]), "--out", str(out), "--umap", str(features)])
    assert done.exit_code == 1 and "--figures" in done.output
    done = runner.invoke(app, ["report", str(tmp_path / "none.json"), "--out", str(out)])
    assert done.exit_code == 1 and "no such result file" in done.output


def test_report_of_a_foreign_json_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other/2"}))
    out = tmp_path / "table.md"
    done = runner.invoke(app, ["report", str(bad), "--out", str(out)])
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert "error: " in done.output and "bad.json: not a cytoimagenet-result/1" in done.output
    assert not out.exists()


def test_coos7_hdf5_release_then_extract(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    from tests.fakes.coos7_release import SIZES, write_release

    write_release(tmp_path / "coos7")
    images = tmp_path / "coos7.parquet"
    args = ["benchmark-images", "coos7", "--root", str(tmp_path / "coos7"), "--out", str(images)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert f"coos7: {sum(SIZES.values())} rows (cells), 7 classes" in done.output
    assert "read the HDF5 release" in done.output
    features = _extract(images, tmp_path / "coos7", tmp_path / "features.parquet")
    assert features.height == sum(SIZES.values())
