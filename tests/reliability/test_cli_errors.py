"""Every command fails with one clean ``error:`` line, never a traceback, on bad files.

Unwritable outputs (a path under a regular file: the one place even root cannot write),
outputs that are files, corrupt tables, garbage image tables, damaged run state, and
folders the command did not write (it must never overwrite them).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.exceptions import PanicException
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.sample import SampleSpec, generate_sample
from cytoimagenet.sample.bbbc014 import generate_bbbc014

runner = CliRunner()


def _run(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _clean_error(code: int, output: str) -> str:
    """Assert one handled ``error:`` line (plus option details), never the generic fallback."""
    assert code == 1, output
    assert output.startswith("error: "), output
    assert "unexpected" not in output and "CYTOIMAGENET_DEBUG" not in output, output
    return output


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Existing inputs of every kind a command takes; ``file`` is a plain file to write under."""
    folder = tmp_path / "in"
    folder.mkdir()
    table = folder / "t.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(table)
    result = folder / "r.json"
    result.write_text("{}")
    dataset = folder / "dataset"
    dataset.mkdir()
    pl.DataFrame(
        {"label": ["a", "b"], "path": ["a", "b"], "filename": ["1.png", "2.png"],
         "dset": ["train", "val"]}
    ).write_parquet(dataset / "metadata.parquet")  # fmt: skip
    file = tmp_path / "plain.txt"
    file.write_text("not a folder")
    return {"dir": folder, "table": table, "result": result, "dataset": dataset, "file": file}


def _commands(i: dict[str, Path], out: Path) -> dict[str, list[str]]:
    """Each writing command with valid inputs and ``out`` as its output (file or folder)."""
    d, t = str(i["dir"]), str(i["table"])
    return {
        "metadata": ["metadata", "sample", "--raw", d, "--out", f"{out}.parquet"],
        "labels": ["labels", "--metadata", t, "--out", f"{out}.parquet"],
        "build": ["build", "--labels", t, "--root", d, "--out", str(out)],
        "pretrain": ["pretrain", "--data", str(i["dataset"]), "--out", str(out), "--device",
                     "cpu"],
        "extract": ["extract", "--model", "random", "--images", t, "--out", f"{out}.parquet"],
        "benchmark-images": ["benchmark-images", "bbbc021", "--root", d, "--out",
                             f"{out}.parquet"],
        "evaluate": ["evaluate", "bbbc021", "--features", t, "--out", f"{out}.json"],
        "report": ["report", str(i["result"]), "--out", f"{out}.md"],
        "report-figures": ["report", str(i["result"]), "--out", str(i["dir"] / "t.md"),
                           "--figures", str(out)],
        "finetune": ["finetune", "bbbc021", "--root", d, "--out", str(out)],
        "score": ["score", "--predictions", t, "--out", f"{out}.json"],
        "download": ["download", "bbbc021", "--metadata-only", "--to", str(out)],
        "sample": ["sample", "--out", str(out)],
        "quickstart": ["quickstart", "--out", str(out), "--preset", "tiny", "--no-progress"],
    }  # fmt: skip


COMMANDS = list(_commands({k: Path(k) for k in ("dir", "table", "result", "dataset")}, Path()))
FOLDER_COMMANDS = ["build", "pretrain", "report-figures", "finetune", "download", "sample",
                   "quickstart"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_file_is_refused_before_any_work(
    command: str, inputs: dict[str, Path]
) -> None:
    out = inputs["file"] / "sub" / "out"
    code, output = _run(_commands(inputs, out)[command])
    _clean_error(code, output)
    assert f"{inputs['file']} is a file, not a folder" in output, output
    assert not any(p.name != "plain.txt" for p in inputs["file"].parent.iterdir() if
                   p.name != "in")  # fmt: skip


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_an_output_folder_that_is_a_file_is_refused(command: str, inputs: dict[str, Path]) -> None:
    code, output = _run(_commands(inputs, inputs["file"])[command])
    _clean_error(code, output)
    assert f"{inputs['file']}: exists and is not a directory" in output, output
    assert inputs["file"].read_text() == "not a folder"


def _panicking_parquet(path: Path) -> Path:
    """A Parquet file whose damage makes polars panic (a BaseException), not raise."""
    frame = pl.DataFrame({"a": np.arange(200), "b": [f"s{i}" for i in range(200)]})
    frame.write_parquet(path, compression="uncompressed", statistics=False)
    data = bytearray(path.read_bytes())
    data[1630] = 242  # a page length past the end of its buffer
    path.write_bytes(bytes(data))
    with pytest.raises(PanicException):  # the premise; if polars stops panicking, adjust
        pl.read_parquet(path)
    return path


@pytest.mark.parametrize("command", ["labels", "build", "extract", "evaluate", "score"])
def test_a_table_that_panics_polars_is_named(command: str, inputs: dict[str, Path]) -> None:
    bad = _panicking_parquet(inputs["dir"] / "bad.parquet")
    args = _commands({**inputs, "table": bad}, inputs["dir"] / "out")[command]
    code, output = _run([*args, "--no-progress"] if command in ("build", "extract") else args)
    _clean_error(code, output)
    assert f"{bad}: cannot be read" in output and "corrupt" in output, output


@pytest.mark.parametrize("command", ["evaluate", "extract"])
def test_a_panic_prints_nothing_but_the_error_line(command: str, inputs: dict[str, Path]) -> None:
    # Rust's panic hook writes to file descriptor 2 (a backtrace too, with RUST_BACKTRACE=1),
    # which CliRunner cannot see: run the real command in a process of its own.
    bad = _panicking_parquet(inputs["dir"] / "bad.parquet")
    args = _commands({**inputs, "table": bad}, inputs["dir"] / "out")[command]
    env = {**os.environ, "RUST_BACKTRACE": "1"}
    done = subprocess.run(  # noqa: S603 - our own entry point, list form
        [sys.executable, "-m", "cytoimagenet", *args], env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: cannot be read"), done.stderr


def _extract(images: Path, tmp_path: Path) -> str:
    out = tmp_path / "f.parquet"
    code, output = _run(["extract", "--model", "random", "--images", str(images), "--out",
                         str(out), "--no-progress"])  # fmt: skip
    assert not out.exists()
    return _clean_error(code, output)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"channel_paths": [1, 2]}), "'channel_paths' holds Int64, expected a list"),
        (pl.DataFrame({"path": [1], "filename": ["a.png"], "sha256": ["x"], "dset": ["val"]}),
         "'path' holds Int64, expected text"),
        (pl.DataFrame({"channel_paths": ["a.tif", None]}), "'channel_paths' is empty in row 1"),
        (pl.DataFrame({"channel_paths": pl.Series([], dtype=pl.String)}), "has no rows"),
        (pl.DataFrame({"file": ["a.tif"]}), "needs a 'channel_paths' column"),
    ],
)  # fmt: skip
def test_extract_validates_the_images_table(
    frame: pl.DataFrame, message: str, tmp_path: Path
) -> None:
    images = tmp_path / "images.parquet"
    frame.write_parquet(images)
    output = _extract(images, tmp_path)
    assert f"{images}: " in output and message in output, output


@pytest.mark.parametrize("content", [b"", b"channel_paths\na.tif\n", b"PAR1 not really"])
def test_extract_refuses_a_file_that_is_not_parquet(content: bytes, tmp_path: Path) -> None:
    images = tmp_path / "images.parquet"
    images.write_bytes(content)
    output = _extract(images, tmp_path)
    assert f"{images}: cannot be read as a Parquet images table" in output, output


def test_a_damaged_finetune_config_is_a_clean_error(tmp_path: Path) -> None:
    root = generate_bbbc014(tmp_path / "raw")
    run = tmp_path / "run"
    run.mkdir()
    for damaged in ("{not json", "[1, 2]", '{"job": {}}', '{"fingerprint": 3}'):
        (run / "config.json").write_text(damaged)
        code, output = _run(["finetune", "bbbc014", "--root", str(root), "--out", str(run),
                             "--device", "cpu", "--no-progress"])  # fmt: skip
        _clean_error(code, output)
        assert f"{run / 'config.json'}: not a readable finetune run config" in output, output


def test_a_damaged_quickstart_state_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "quickstart.json").write_text('{"preset": "tiny", ')
    code, output = _run(["quickstart", "--out", str(tmp_path), "--stages", "report"])
    _clean_error(code, output)
    assert f"{tmp_path / 'quickstart.json'}: not a valid quickstart state file" in output


def test_a_damaged_build_state_is_a_clean_error(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_sample(raw / "sample", SampleSpec(plates=1, sites=1, size=24, cells=2))
    meta, labels = tmp_path / "m.parquet", tmp_path / "l.parquet"
    assert _run(["metadata", "sample", "--raw", str(raw / "sample"), "--out", str(meta)])[0] == 0
    assert (
        _run(["labels", "--metadata", str(meta), "--out", str(labels), "--threshold", "2"])[0] == 0
    )
    out = tmp_path / "ds"
    (out / ".build").mkdir(parents=True)
    (out / ".build" / "plan.json").write_text("{")
    code, output = _run(["build", "--labels", str(labels), "--root", str(raw), "--out", str(out),
                         "--workers", "1", "--no-progress"])  # fmt: skip
    _clean_error(code, output)
    assert "plan.json" in output and "damaged" in output, output


@pytest.mark.parametrize(
    "args",
    [["sample"], ["sample", "--kind", "bbbc021"], ["quickstart", "--stages", "pretrain"]],
    ids=["sample", "sample-bbbc021", "quickstart"],
)
def test_a_folder_holding_other_files_is_never_written_into(
    args: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    code, output = _run([args[0], "--out", str(out), *args[1:]])
    _clean_error(code, output)
    assert f"{out} is not empty (notes.txt)" in output and "never overwrites" in output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "precious"


def test_sample_reruns_in_its_own_folder_but_not_over_another_kind(tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = ["sample", "--out", str(out), "--plates", "1", "--sites", "1", "--size", "24"]
    assert _run(args)[0] == 0
    first = (out / "sample_image.csv").read_text()
    assert _run(args)[0] == 0  # its own files: regenerated, the same
    assert (out / "sample_image.csv").read_text() == first
    code, output = _run([*args, "--kind", "bbbc014"])
    _clean_error(code, output)
    assert "holds a 'source' sample, not 'bbbc014'" in output
    assert not (out / "BBBC014_v1_images").exists()


def test_quickstart_marks_its_folder_first_so_a_stopped_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    code, output = _run(["quickstart", "--out", str(out), "--stages", "pretrain"])
    assert code == 1 and "run the 'curate' stage first" in output
    assert json.loads((out / "quickstart.json").read_text())["preset"] == "default"
    (out / "raw").mkdir()  # as a run stopped mid-curate leaves it
    code, output = _run(["quickstart", "--out", str(out), "--stages", "pretrain"])
    assert code == 1 and "run the 'curate' stage first" in output  # not "not empty"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_published_files_follow_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate_sample(raw, SampleSpec(plates=1, sites=1, size=24, cells=2))
    out = tmp_path / "meta" / "sample.parquet"
    labels = tmp_path / "labels.parquet"
    previous = os.umask(umask)
    try:
        assert _run(["metadata", "sample", "--raw", str(raw), "--out", str(out)])[0] == 0
        assert _run(["labels", "--metadata", str(out), "--out", str(labels),
                     "--threshold", "2"])[0] == 0  # fmt: skip
    finally:
        os.umask(previous)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and raw not in p.parents]
    assert {p.name for p in written} >= {"sample.parquet", "sample.csv", "labels.parquet"}
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_metadata_never_overwrites_the_raw_files_it_reads(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    table = generate_sample(raw, SampleSpec(plates=1, sites=1, size=24, cells=2))
    before = table.read_bytes()
    out = raw / "sample_image.parquet"  # its CSV export would be raw/sample_image.csv
    code, output = _run(["metadata", "sample", "--raw", str(raw), "--out", str(out)])
    _clean_error(code, output)
    assert f"{table} is a file in the raw folder" in output and "outside --raw" in output
    assert table.read_bytes() == before and not out.exists()
    elsewhere = tmp_path / "meta" / "sample_image.parquet"
    assert _run(["metadata", "sample", "--raw", str(raw), "--out", str(elsewhere)])[0] == 0
