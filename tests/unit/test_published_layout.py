"""The published CytoImageNet layout (metadata.csv + label folders) for pretrain/extract/report."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.fakes.published import make_published, write_metadata
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.config import validate_job
from cytoimagenet.download.routes import plan_source
from cytoimagenet.download.step import DownloadJob, run_download
from cytoimagenet.errors import CytoImageNetError, SchemaError
from cytoimagenet.features.step import read_images_table
from cytoimagenet.schema import PUBLISHED_COLUMNS
from cytoimagenet.sources.catalog import get_source, load_catalog
from cytoimagenet.training.config import PretrainJob
from cytoimagenet.training.data import read_splits
from cytoimagenet.training.published import (
    grouped_split,
    read_dataset,
    read_published,
    val_fields,
)

runner = CliRunner()
TINY = ["--model", "test_efficientnet", "--batch-size", "6", "--size", "32", "--workers", "0",
        "--no-progress"]  # fmt: skip


@pytest.fixture
def published(tmp_path: Path) -> Path:
    make_published(tmp_path / "cytoimagenet")
    return tmp_path / "cytoimagenet"


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh))


def test_fake_is_the_published_layout(published: Path) -> None:
    assert _header(published / "metadata.csv") == list(PUBLISHED_COLUMNS)
    assert not (published / "metadata.parquet").exists()
    assert {p.name for p in published.iterdir() if p.is_dir()} == {
        "human",
        "u2os",
        "kinase_inhibitor-gefitinib",
    }


@pytest.mark.parametrize("nested", [False, True])
def test_every_row_finds_its_png(tmp_path: Path, nested: bool) -> None:
    rows = make_published(tmp_path, nested=nested, prefix="/cytoimagenet")
    frame = read_published(tmp_path / "metadata.csv")
    assert frame.height == len(rows)
    assert frame["filename"].to_list() == [r["filename"] for r in rows]  # row order kept
    for folder, name in frame.select("path", "filename").iter_rows():
        assert (tmp_path / folder / name).is_file(), (folder, name)
    assert set(frame["dset"]) == {"train", "val"}


def test_split_is_grouped_by_idx_per_label_and_seeded(published: Path) -> None:
    frame = read_published(published / "metadata.csv")
    sides = frame.group_by("idx").agg(pl.col("dset").n_unique().alias("n"))
    assert sides["n"].max() == 1  # crops of one field never straddle train and val
    for (label,), group in frame.group_by(["label"]):
        val = int((group["dset"] == "val").sum())
        assert 1 <= val <= round(0.1 * group.height) + 3, label  # ~10%, whole fields
    again = read_published(published / "metadata.csv")
    assert again["dset"].to_list() == frame["dset"].to_list()
    other = read_published(published / "metadata.csv", seed=1)
    assert other["dset"].to_list() != frame["dset"].to_list()


def test_split_does_not_depend_on_row_order(published: Path) -> None:
    table = published / "metadata.csv"
    before = dict(read_published(table).select("filename", "dset").iter_rows())
    with table.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows = [rows[i] for i in np.random.default_rng(3).permutation(len(rows))]
    write_metadata(table, rows)
    after = dict(read_published(table).select("filename", "dset").iter_rows())
    assert after == before


def test_an_idx_under_two_labels_is_val_under_both() -> None:
    # The per-label rule alone can send a field to val under one label and train under
    # another; pick a seed where it does, then check the split keeps the field whole.
    a = pl.DataFrame({"label": "a", "idx": [f"s-{i}" for i in range(10)]})
    b = pl.DataFrame({"label": "b", "idx": [f"s-{i}" for i in range(10)] + [
        f"t-{i}" for i in range(30)]})  # fmt: skip
    seed = next(s for s in range(100) if not val_fields(a, 0.1, s) <= val_fields(b, 0.1, s))
    (field,) = val_fields(a, 0.1, seed) - val_fields(b, 0.1, seed)
    frame = pl.concat([a, b])
    split = frame.with_columns(grouped_split(frame, 0.1, seed))
    assert split.filter(pl.col("idx") == field)["dset"].to_list() == ["val", "val"]
    assert split.group_by("idx").agg(pl.col("dset").n_unique())["dset"].max() == 1


def test_a_dset_column_is_replaced_by_the_grouped_split(published: Path) -> None:
    table = published / "metadata.csv"
    with table.open(newline="", encoding="utf-8") as fh:
        rows = [{**r, "dset": "train"} for r in csv.DictReader(fh)]
    write_metadata(table, rows)
    frame = read_published(table)
    assert (frame["dset"] == "val").sum() > 0


def test_pretrain_job_and_splits_accept_the_published_layout(
    published: Path, tmp_path: Path
) -> None:
    job = validate_job(
        PretrainJob, data=published, out=tmp_path / "run", batch_size=6, model="test_efficientnet"
    )
    assert job.data == published
    splits = read_splits(published)
    assert splits.labels == sorted(["human", "u2os", "kinase inhibitor/gefitinib"])
    total = len(splits.train_paths) + len(splits.val_paths)
    assert total == pl.read_csv(published / "metadata.csv").height
    for rel in [*splits.train_paths, *splits.val_paths]:
        assert (Path(splits.root) / rel.decode()).is_file()


def test_pretrain_cli_runs_on_the_published_layout(published: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(published), "--out", str(out), *TINY, "--epochs", "1"]
    result = runner.invoke(app, [*args, "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    splits = read_splits(published)
    train, val = len(splits.train_paths), len(splits.val_paths)
    assert f"3 classes, {train} train / {val} val images" in result.output
    assert (out / "checkpoints" / "last.pt").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert list(prov["inputs"]) == ["metadata.csv"]  # the run's checksum is of the CSV


def test_extract_table_reads_the_published_metadata(published: Path) -> None:
    frame, files = read_images_table(published / "metadata.csv", None)
    assert frame.height == len(files)
    assert all(len(f) == 1 and f[0].is_file() for f in files)


def test_extract_cli_runs_on_the_published_metadata(published: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    table = str(published / "metadata.csv")
    args = ["extract", "--model", "random", "--arch", "test_efficientnet", "--size", "32",
            "--images", table, "--out", str(out), "--no-progress"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    features = pl.read_parquet(out)
    assert features.height == pl.read_csv(published / "metadata.csv").height
    assert "Metadata_idx" in features.columns and "Cells_CNN_random_ch0_0000" in features.columns


def test_class_grid_reads_the_published_layout(published: Path, tmp_path: Path) -> None:
    from cytoimagenet.reporting.figures import class_grid

    out = class_grid(published, tmp_path / "classes.png", per_class=2)
    assert out.is_file() and out.stat().st_size > 0


def test_a_built_parquet_wins_over_the_csv(published: Path) -> None:
    pl.DataFrame(
        {"label": ["x"], "path": ["human"], "filename": ["a.png"], "dset": ["val"]}
    ).write_parquet(published / "metadata.parquet")
    assert read_dataset(published, ["label", "dset"]).to_dicts() == [{"label": "x", "dset": "val"}]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-column", "lacks column(s) idx"),
        ("empty-label", "row 3 has no 'label'"),
        ("no-folder", "no folder for path '/elsewhere/nothing'"),
        ("climbs", "climbs out of the dataset folder"),
    ],
)
def test_published_errors_name_the_file_and_the_fix(
    published: Path, case: str, message: str
) -> None:
    table = published / "metadata.csv"
    with table.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if case == "no-column":
        rows = [{k: v for k, v in r.items() if k != "idx"} for r in rows]
    elif case == "empty-label":
        rows[1]["label"] = ""
    elif case == "no-folder":
        rows[4]["path"] = "/elsewhere/nothing"
    else:
        rows[0]["path"] = "../outside"
    write_metadata(table, rows)
    with pytest.raises(SchemaError, match=r"metadata\.csv") as info:
        read_published(table)
    assert message in str(info.value)


def test_pretrain_cli_error_for_a_folder_without_a_table(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *TINY]
    )
    assert result.exit_code == 1
    assert "no metadata.parquet" in result.output and "metadata.csv" in result.output
    assert "cytoimagenet download cytoimagenet" in result.output


def test_pretrain_cli_error_for_a_published_table_missing_a_column(
    published: Path, tmp_path: Path
) -> None:
    table = published / "metadata.csv"
    with table.open(newline="", encoding="utf-8") as fh:
        rows = [{k: v for k, v in r.items() if k != "filename"} for r in csv.DictReader(fh)]
    write_metadata(table, rows)
    result = runner.invoke(
        app, ["pretrain", "--data", str(published), "--out", str(tmp_path / "run"), *TINY]
    )
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "lacks column(s) filename" in result.output


# --- `cytoimagenet download cytoimagenet` ---------------------------------------------------


class FakeKaggle:
    """Stands in for ``KaggleApi``: delivers the fake published tree as ``<slug>.zip``."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.calls: list[tuple[str, bool]] = []

    def dataset_download_files(self, ref: str, path: str, quiet: bool, unzip: bool) -> None:
        self.calls.append((ref, unzip))
        with zipfile.ZipFile(Path(path) / (ref.split("/")[1] + ".zip"), "w") as zf:
            for file in sorted(self.tree.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(self.tree.parent).as_posix())


def test_the_published_dataset_is_a_kaggle_download_not_a_source() -> None:
    info = get_source("CytoImageNet")
    assert info.access == "kaggle" and not info.pretraining
    assert [f.url for f in info.files] == ["kaggle://dataset/stanleyhua/cytoimagenet"]
    assert "cytoimagenet" not in load_catalog()  # no adapter, no `metadata cytoimagenet`
    plan = plan_source(info, metadata_only=True)
    assert not plan.files and "ships with the images" in plan.manual[0]


def test_download_then_pretrain_reads_what_was_unpacked(tmp_path: Path) -> None:
    make_published(tmp_path / "kaggle" / "cytoimagenet")
    api = FakeKaggle(tmp_path / "kaggle" / "cytoimagenet")
    job = DownloadJob(sources=["cytoimagenet"], to=tmp_path / "dl")
    report = run_download(job, progress=False, kaggle_factory=lambda: api)
    assert [o.status for o in report.outcomes] == ["downloaded"], report.outcomes
    assert api.calls == [("stanleyhua/cytoimagenet", False)]
    (table,) = (tmp_path / "dl" / "cytoimagenet").rglob("metadata.csv")
    splits = read_splits(table.parent)
    assert len(splits.labels) == 3 and len(splits.val_paths) > 0
    with pytest.raises(CytoImageNetError, match=f"pass {re.escape(str(table.parent))}"):
        read_splits(tmp_path / "dl" / "cytoimagenet")  # the download folder: says which


def test_download_list_names_the_kaggle_dataset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["download", "cytoimagenet", "--to", str(tmp_path), "--list"])
    assert result.exit_code == 0, result.output
    assert "cytoimagenet/cytoimagenet.zip" in result.output
    assert "kaggle://dataset/stanleyhua/cytoimagenet" in result.output


def test_the_published_dataset_has_no_adapter_and_says_what_to_do() -> None:
    from cytoimagenet.errors import ConfigError
    from cytoimagenet.sources import get_adapter

    with pytest.raises(ConfigError, match=r"no metadata adapter.*pretrain --data DIR"):
        get_adapter("cytoimagenet")
