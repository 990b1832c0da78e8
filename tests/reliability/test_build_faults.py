"""Faults from issue 14 against `cytoimagenet build`: each one ends in a quarantined field or
one clear error, never a poisoned dataset, a traceback or a build that cannot finish."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset import builder, run_build, worker
from cytoimagenet.curation.dataset.tasks import ImageOptions, ImageTask
from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.errors import BuildError, ConfigError
from cytoimagenet.parallel import WorkerDiedError, run_tasks
from cytoimagenet.sample import SampleSpec, generate_sample
from cytoimagenet.schema import write_table
from cytoimagenet.sources import build_metadata
from tests.reliability import build_killer

runner = CliRunner()


def _raw(base: Path) -> tuple[Path, Path, pl.DataFrame]:
    """A sample source (48 labelled fields of 3 TIFF channels, 160 px) and its labels."""
    root = base / "root"
    generate_sample(root / "sample", SampleSpec(plates=1, sites=2, size=160, seed=0))
    table = build_metadata("sample", root / "sample")
    # All 48 fields, the DMSO controls included: these tests are about the build.
    result = assign_labels([table], LabelOptions(threshold=2, seed=0, include_controls=True))
    write_table(result.table, base / "labels.parquet")
    labelled = result.table.filter(pl.col("label").is_not_null()).sort("idx")
    return base / "labels.parquet", root, labelled


def _job(labels: Path, root: Path, out: Path, **kw: object) -> BuildJob:
    values = {"min_class_size": 1, "shard_size": 4, "workers": 1, **kw}
    return BuildJob(labels=labels, root=root, out=out, **values)


def _files(labelled: pl.DataFrame, root: Path, i: int) -> list[Path]:
    return [root / "sample" / p for p in labelled["channel_paths"][i]]


def _tree(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "provenance.json" and ".build" not in p.parts
    }


def _quarantine(out: Path) -> dict[str, str]:
    frame = pl.read_csv(out / "quarantine.csv")
    return dict(zip(frame["idx"], frame["reason"], strict=True))


# --- 1. NaN / inf pixels, and the whole-field fallback's QC ------------------------------------


def test_non_finite_pixels_quarantine_the_field(tmp_path: Path) -> None:
    labels, root, labelled = _raw(tmp_path)
    for i, bad in ((0, np.nan), (5, np.inf)):
        for path in _files(labelled, root, i):
            plane = tifffile.imread(path).astype(np.float32)
            plane[7, 9] = bad  # one pixel
            tifffile.imwrite(path, plane)
    result = run_build(_job(labels, root, tmp_path / "out"), progress=False)
    quarantine = _quarantine(tmp_path / "out")
    for i in (0, 5):
        idx = labelled["idx"][i]
        assert quarantine.get(idx) == "non-finite", idx
        assert idx not in result.dataset["idx"].to_list()
    assert result.report["rejected_by_reason"] == {"non-finite": 2}


def test_the_whole_field_fallback_passes_the_crop_qc(tmp_path: Path) -> None:
    # Too small to crop, not uniform nor a mask, but black at the 75th percentile: it used
    # to be written whole without any crop QC and enter the dataset.
    rng = np.random.default_rng(0)
    plane = np.zeros((100, 100), np.uint16)
    spots = rng.integers(0, 100, (60, 2))
    plane[spots[:, 0], spots[:, 1]] = rng.integers(500, 4000, 60)
    path = tmp_path / "dim.tif"
    tifffile.imwrite(path, plane)
    task = ImageTask(idx="s-1", files=(str(path),), folder="c", index=0, width=2, n_crops=4, seed=1)
    rows = worker.process_image(task, tmp_path / "out", ImageOptions())
    assert [(r["status"], r["reason"]) for r in rows] == [("rejected", "crop-mean")]
    assert not list((tmp_path / "out").rglob("*.png"))


# --- 2. huge images ----------------------------------------------------------------------------


def _claim_huge(path: Path) -> None:
    """Make a TIFF's header claim 40000 x 40000 pixels (its data stays small)."""
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(40000)
        tif.pages[0].tags["ImageLength"].overwrite(40000)


def test_a_huge_image_is_quarantined_from_its_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, root, labelled = _raw(tmp_path)
    target = _files(labelled, root, 3)[1]
    tifffile.imwrite(target, tifffile.imread(target), compression="zlib")
    _claim_huge(target)
    real = tifffile.TiffPage.asarray

    def guarded(page: tifffile.TiffPage, *args: object, **kwargs: object) -> np.ndarray:
        if page.imagewidth == 40000:
            raise AssertionError("a 40000 x 40000 plane was decoded")
        return real(page, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", guarded)
    run_build(_job(labels, root, tmp_path / "out"), progress=False)
    assert _quarantine(tmp_path / "out") == {labelled["idx"][3]: "too-large"}


def test_max_pixels_option_and_an_empty_dataset_is_an_error(tmp_path: Path) -> None:
    labels, root, _ = _raw(tmp_path)
    out = tmp_path / "out"
    args = ["build", "--labels", str(labels), "--root", str(root), "--out", str(out),
            "--workers", "1", "--no-progress", "--max-pixels", "1000"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: the build made an empty dataset"), result.output
    assert "all 48 fields were quarantined (too-large 48)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (out / "metadata.parquet").exists()
    assert set(_quarantine(out).values()) == {"too-large"}


def test_every_class_too_small_is_an_error_not_an_empty_success(tmp_path: Path) -> None:
    labels, root, _ = _raw(tmp_path)
    with pytest.raises(BuildError, match="every class has fewer than --min-class-size 100000"):
        run_build(_job(labels, root, tmp_path / "out", min_class_size=100_000), progress=False)
    assert not (tmp_path / "out" / "metadata.parquet").exists()


# --- 3. a worker killed (OOM killer) -----------------------------------------------------------


def test_run_tasks_survives_a_worker_that_dies() -> None:
    results = dict(run_tasks(build_killer.suicide, range(6), workers=2, on_died=lambda n: -1))
    assert results == {0: 0, 1: 10, 2: 20, 3: -1, 4: 40, 5: 50}
    with pytest.raises(WorkerDiedError, match="died twice"):
        dict(run_tasks(build_killer.suicide, [2, 3], workers=2))


def test_a_field_that_kills_its_worker_is_quarantined_and_the_build_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, root, labelled = _raw(tmp_path)
    killer = 6  # in the second shard of four
    build_killer.marker_for(_files(labelled, root, killer)[0]).touch()
    monkeypatch.setattr(builder, "process_shard", build_killer.process_shard)
    monkeypatch.setattr(worker, "process_fields", build_killer.process_fields, raising=False)
    out = tmp_path / "out"
    result = run_build(_job(labels, root, out, workers=2), progress=False)
    assert _quarantine(out) == {labelled["idx"][killer]: "worker-died"}
    # The killer's shard mates were processed: all other fields are in the dataset.
    others = set(labelled["idx"].to_list()) - {labelled["idx"][killer]}
    assert set(result.dataset["idx"].to_list()) == others


# --- 4. damaged state --------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-table"])
def test_a_damaged_shard_record_is_redone(tmp_path: Path, damage: str) -> None:
    labels, root, _ = _raw(tmp_path)
    out = tmp_path / "out"
    run_build(_job(labels, root, out), progress=False)
    before = _tree(out)
    record = out / ".build" / "shards" / "000002.parquet"
    if damage == "garbage":
        record.write_bytes(b"PAR1 not really")
    elif damage == "truncated":
        record.write_bytes(record.read_bytes()[:-40])
    else:
        pl.DataFrame({"idx": ["x"]}).write_parquet(record)
    (out / "metadata.parquet").unlink()
    run_build(_job(labels, root, out), progress=False)
    assert _tree(out) == before
    assert pl.read_parquet(record).height > 0


def test_a_damaged_plan_is_refused_saying_what_to_delete(tmp_path: Path) -> None:
    labels, root, _ = _raw(tmp_path)
    out = tmp_path / "out"
    run_build(_job(labels, root, out), progress=False)
    (out / ".build" / "plan.json").write_text('{"seed": 0, "crops"')
    with pytest.raises(ConfigError, match=f"damaged .*delete the folder {out}"):
        run_build(_job(labels, root, out), progress=False)
    (out / ".build" / "plan.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        run_build(_job(labels, root, out), progress=False)


def test_records_and_plan_are_fsynced_before_they_are_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, root, _ = _raw(tmp_path)
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    run_build(_job(labels, root, tmp_path / "out"), progress=False)
    names = [Path(s).name for s in synced]
    for stem in ("000000.parquet", "000011.parquet", "plan.json"):
        assert any(n.startswith(f".{stem}.") and n.endswith(".tmp") for n in names), stem
    assert str(tmp_path / "out" / ".build" / "shards") in synced


# --- 5. two builds into one folder -------------------------------------------------------------


def test_a_second_build_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    labels, root, _ = _raw(tmp_path)
    out = tmp_path / "out"
    (out / ".build").mkdir(parents=True)
    with (out / ".build" / "lock").open("w") as held:  # another run holds the lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        args = ["build", "--labels", str(labels), "--root", str(root), "--out", str(out),
                "--workers", "1", "--no-progress"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"error: {out}: another `cytoimagenet build`")
        assert len(result.output.strip().splitlines()) == 1
        assert not (out / ".build" / "plan.json").exists()
    run_build(_job(labels, root, out), progress=False)
    assert not (out / ".build" / "lock").exists()  # removed when the run ends


# --- 7. paths that leave the root --------------------------------------------------------------


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink", "channel-dotdot"])
def test_paths_outside_the_root_are_refused_before_any_work(tmp_path: Path, where: str) -> None:
    labels, root, labelled = _raw(tmp_path)
    outside = tmp_path / "secrets"
    outside.mkdir()
    table = pl.read_parquet(labels)
    row = labelled["idx"][2]
    is_row = pl.col("idx") == row
    if where == "absolute":
        value, column = str(outside), "dir_name"
    elif where == "dotdot":
        value, column = "../secrets", "dir_name"
    elif where == "symlink":
        (root / "evil").symlink_to(outside)
        value, column = "evil", "dir_name"
    else:
        value, column = "../../secrets/x.tif", "channel_paths"
    if column == "dir_name":
        table = table.with_columns(pl.when(is_row).then(pl.lit(value)).otherwise(pl.col(column)))
        table = table.with_columns(pl.col("literal").alias("dir_name")).drop("literal")
    else:
        paths = pl.when(is_row).then(pl.lit([value])).otherwise(pl.col(column))
        table = table.with_columns(paths.alias(column))
    bad = tmp_path / "bad.parquet"
    table.write_parquet(bad)
    with pytest.raises(ConfigError, match=f"row '{row}' has .*{value!r}.*--root"):
        run_build(_job(bad, root, tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


# --- 8. an --out that is a file ----------------------------------------------------------------


@pytest.mark.parametrize("under", [False, True])
def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path: Path, under: bool) -> None:
    labels, root, _ = _raw(tmp_path)
    file = tmp_path / "plain.txt"
    file.write_text("mine")
    out = file / "sub" if under else file
    # Past the job's own validation (a library caller can build a job without it).
    job = _job(labels, root, tmp_path / "x").model_copy(update={"out": out})
    with pytest.raises(ConfigError, match="a file, not a folder"):
        run_build(job, progress=False)
    assert file.read_text() == "mine"
