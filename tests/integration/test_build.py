"""The dataset builder end to end on raw trees with real pixels."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
from tests.integration.build_fixtures import make_labels

from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset import run_build
from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.imaging.png import TMP_MARKER
from cytoimagenet.sample import SampleSpec, generate_sample
from cytoimagenet.schema import PUBLISHED_COLUMNS, write_table
from cytoimagenet.sources import build_metadata


def _job(labels: Path, root: Path, out: Path, **kw: object) -> BuildJob:
    values = {"min_class_size": 1, "shard_size": 4, "workers": 1, **kw}
    return BuildJob(labels=labels, root=root, out=out, **values)


def _tree(out: Path) -> dict[str, str]:
    """The dataset's files (not the build state or timestamped provenance) → sha256."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "provenance.json" and ".build" not in p.parts
    }


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pl.DataFrame]:
    base = tmp_path_factory.mktemp("raw")
    labelled = make_labels(base / "root", base / "labels.parquet")
    root = base / "root"
    # One truncated TIFF and one missing channel file: both must be quarantined.
    sample = labelled.filter(pl.col("dir_name") == "sample").sort("idx")
    broken = root / "sample" / sample["channel_paths"][0][1]
    broken.write_bytes(broken.read_bytes()[:300])
    (root / "sample" / sample["channel_paths"][1][2]).unlink()
    return base / "labels.parquet", root, labelled


@pytest.fixture(scope="module")
def built(raw: tuple[Path, Path, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory):
    labels, root, labelled = raw
    out = tmp_path_factory.mktemp("built") / "dataset"
    result = run_build(_job(labels, root, out), progress=False)
    return out, result, labelled


def test_dataset_files_match_metadata(built) -> None:
    out, result, _ = built
    meta = pl.read_parquet(out / "metadata.parquet")
    assert meta.equals(result.dataset)
    assert list(meta.columns[: len(PUBLISHED_COLUMNS)]) == list(PUBLISHED_COLUMNS)
    assert {"dset", "sha256", "channels"} <= set(meta.columns)
    pngs = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    listed = {f"{p}/{f}" for p, f in meta.select("path", "filename").iter_rows()}
    assert pngs == listed
    for path, name, digest, width, height in meta.select(
        "path", "filename", "sha256", "width", "height"
    ).iter_rows():
        data = (out / path / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.shape == (height, width)
        assert name.startswith(f"{path}-")
    assert not [p for p in out.rglob(f"*{TMP_MARKER}*")]
    assert pl.read_csv(out / "metadata.csv").height == meta.height


def test_crops_geometry_and_counts(built) -> None:
    _, result, labelled = built
    meta = result.dataset
    crops = meta.filter(pl.col("crop"))
    assert crops.height > 0
    assert (crops["x_max"] - crops["x_min"] == crops["width"]).all()
    assert (crops["y_max"] - crops["y_min"] == crops["height"]).all()
    assert set(crops["scaling"].unique().to_list()) <= {0.5, 0.25, 0.125, 0.0625}
    # 200-px fields give one 100-px crop per quadrant: classes under 400 get 4 crops each.
    per_image = crops.group_by("idx").len()["len"]
    assert per_image.max() <= 4
    assert per_image.min() >= 1
    # Every labelled source image is either in the dataset or quarantined.
    quarantined = set(pl.read_csv(result.metadata.parent / "quarantine.csv")["idx"].to_list())
    assert set(meta["idx"].unique().to_list()) | quarantined == set(labelled["idx"].to_list())


def test_corrupt_and_missing_files_are_quarantined(built) -> None:
    out, result, _ = built
    quarantine = pl.read_csv(out / "quarantine.csv")
    assert sorted(quarantine["reason"].to_list()) == ["missing", "unreadable"]
    assert result.report["rejected_by_reason"] == {"missing": 1, "unreadable": 1}
    assert all(".tif" in d for d in quarantine["detail"].to_list())
    assert (out / "build_report.md").read_text().startswith("# Build report")


def test_split_is_grouped_by_source_image_and_stratified(built) -> None:
    _, result, _ = built
    meta = result.dataset
    per_idx = meta.group_by("idx").agg(pl.col("dset").n_unique())
    assert (per_idx["dset"] == 1).all()
    for (label,), group in meta.group_by(["label"]):
        val = int((group["dset"] == "val").sum())
        assert abs(val - 0.1 * group.height) <= 4, label


def test_rebuild_with_two_workers_is_identical(built, raw, tmp_path: Path) -> None:
    out, _, _ = built
    labels, root, _ = raw
    again = tmp_path / "again"
    run_build(_job(labels, root, again, workers=2, shard_size=3), progress=False)
    assert _tree(again) == _tree(out)


def test_rerun_of_finished_build_changes_nothing(built, raw) -> None:
    out, _, _ = built
    labels, root, _ = raw
    before = _tree(out)
    run_build(_job(labels, root, out), progress=False)
    assert _tree(out) == before


def test_trimming_and_minimum_class_size(raw, tmp_path: Path) -> None:
    labels, root, _ = raw
    result = run_build(
        _job(labels, root, tmp_path / "d", class_size=20, min_class_size=10), progress=False
    )
    counts = result.dataset.group_by("label").len()
    assert counts["len"].max() <= 20 and counts["len"].min() >= 10
    assert result.report["classes_dropped"]
    kept = {f"{p}/{f}" for p, f in result.dataset.select("path", "filename").iter_rows()}
    on_disk = {p.relative_to(tmp_path / "d").as_posix() for p in (tmp_path / "d").rglob("*.png")}
    assert kept == on_disk


def test_dask_scheduler_gives_the_same_dataset(built, raw, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    out, _, _ = built
    labels, root, _ = raw
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        dashboard_address=None,
        host="127.0.0.1",
        protocol="tcp",
    ) as cluster:
        job = _job(labels, root, tmp_path / "dask", scheduler=cluster.scheduler_address)
        run_build(job, progress=False)
    assert _tree(tmp_path / "dask") == _tree(out)


def test_errors_before_any_work(raw, tmp_path: Path) -> None:
    labels, root, labelled = raw
    with pytest.raises(ConfigError, match="no folder for source"):
        run_build(_job(labels, tmp_path, tmp_path / "o1"), progress=False)
    bad = tmp_path / "bad.parquet"
    labelled.drop("channel_paths").write_parquet(bad)
    with pytest.raises(SchemaError, match="channel_paths"):
        run_build(_job(bad, root, tmp_path / "o2"), progress=False)
    unlabelled = tmp_path / "unlabelled.parquet"
    write_table(labelled.with_columns(pl.lit(None, pl.String).alias("label")), unlabelled)
    with pytest.raises(SchemaError, match="no labelled rows"):
        run_build(_job(unlabelled, root, tmp_path / "o3"), progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        run_build(_job(labels, root, busy), progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_other_settings_refuse_to_mix(raw, tmp_path: Path) -> None:
    labels, root, _ = raw
    out = tmp_path / "d"
    run_build(_job(labels, root, out, crops=False), progress=False)
    with pytest.raises(ConfigError, match="seed"):
        run_build(_job(labels, root, out, crops=False, seed=1), progress=False)


# --- kill and resume ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cytoimagenet.curation.labels import LabelOptions, assign_labels

    base = tmp_path_factory.mktemp("big")
    generate_sample(base / "root" / "sample", SampleSpec(plates=2, sites=2, size=256, seed=3))
    table = build_metadata("sample", base / "root" / "sample")
    result = assign_labels([table], LabelOptions(threshold=5, seed=0))
    write_table(result.table, base / "labels.parquet")
    return base / "labels.parquet", base / "root"


def _cli(labels: Path, root: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "cytoimagenet", "build", "--labels", str(labels), "--root",
        str(root), "--out", str(out), "--workers", "2", "--shard-size", "2",
        "--min-class-size", "1", "--no-progress",
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(big_sample, tmp_path: Path) -> None:
    labels, root = big_sample
    reference = tmp_path / "reference"
    run_build(_job(labels, root, reference, workers=1, shard_size=2), progress=False)

    out = tmp_path / "killed"
    shards = out / ".build" / "shards"
    for attempt in range(2):  # kill it twice, at different moments
        proc = subprocess.Popen(_cli(labels, root, out), start_new_session=True)  # noqa: S603
        deadline = time.monotonic() + 60
        target = 3 + 8 * attempt
        while time.monotonic() < deadline and proc.poll() is None:
            if shards.is_dir() and len(list(shards.glob("*.parquet"))) >= target:
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "metadata.parquet").exists(), "the build finished before it was killed"
    done = subprocess.run(_cli(labels, root, out), capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    assert _tree(out) == _tree(reference)
