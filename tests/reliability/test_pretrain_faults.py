"""Issue 14: ``pretrain`` survives what a long run meets — kills mid-write, bad files, bad disks.

A killed checkpoint write leaves a temp file (swept on the next start); missing or corrupt
images are found before the first epoch (``--verify``); an unreadable ``last.pt`` falls back
to the newest readable epoch (still bit-identical), and nothing readable is one clear error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.errors import ConfigError, CytoImageNetError
from cytoimagenet.models.factory import CHECKPOINT_FORMAT
from cytoimagenet.training.checkpoint import sweep_temp
from cytoimagenet.training.loop import run_pretrain
from cytoimagenet.training.verify import PNG_END, check_file
from tests.unit.test_training import load, make_job, write_tiny_dataset

runner = CliRunner()


def _with_checksums(root: Path) -> Path:
    """The tiny dataset plus the ``sha256`` column ``cytoimagenet build`` records."""
    table = pl.read_parquet(root / "metadata.parquet")
    sums = [
        hashlib.sha256((root / p / f).read_bytes()).hexdigest()
        for p, f in table.select("path", "filename").iter_rows()
    ]
    table.with_columns(sha256=pl.Series(sums)).write_parquet(root / "metadata.parquet")
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _with_checksums(write_tiny_dataset(tmp_path / "ds"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted 2-epoch run of 2 steps per epoch (its data folder is ``out/../ds``)."""
    root = tmp_path_factory.mktemp("ref")
    ds = _with_checksums(write_tiny_dataset(root / "ds"))
    return run_pretrain(make_job(ds, root / "run", max_steps=2), progress=False)


# --- 2. stale temp files ----------------------------------------------------------------------


def test_stale_checkpoint_temp_files_are_swept_on_resume(reference, tmp_path: Path) -> None:
    data = reference.out.parent / "ds"
    out = tmp_path / "run"
    run_pretrain(make_job(data, out, epochs=1, max_steps=2), progress=False)
    ckpt = out / "checkpoints"
    stale = [ckpt / ".epoch_002.pt.k3j_9x0a.tmp", ckpt / ".last.pt.abcdefgh.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 4096)  # what a kill during torch.save leaves
    keep = [ckpt / "notes.tmp", ckpt / ".epoch_002.pt.tmp", out / "mine.tmp"]
    for path in keep:
        path.write_text("not ours")
    resumed = run_pretrain(make_job(data, out, epochs=2, max_steps=2), progress=False)
    assert resumed.start_epoch == 1 and resumed.epoch == 2
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "not ours" for p in keep)
    want, got = load(reference.checkpoint), load(out / "checkpoints" / "last.pt")
    assert all(torch.equal(v, got["state_dict"][k]) for k, v in want["state_dict"].items())


def test_a_run_killed_while_writing_config_can_start_again(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.json.a1b2c3d4.tmp").write_text("{")  # killed in its first second
    result = run_pretrain(make_job(data, out, epochs=1, max_steps=1), progress=False)
    assert result.epoch == 1 and not (out / ".config.json.a1b2c3d4.tmp").exists()
    assert sweep_temp(out) == []


# --- 3. the dataset is checked before training ------------------------------------------------


def test_missing_and_truncated_images_are_named_before_training(data: Path, tmp_path: Path) -> None:
    (data / "src/cls1/img3.png").unlink()
    png = data / "src/cls2/img5.png"
    png.write_bytes(png.read_bytes()[:-40])  # a copy cut short
    out = tmp_path / "run"
    with pytest.raises(CytoImageNetError) as err:
        run_pretrain(make_job(data, out, epochs=1), progress=False)
    message = str(err.value)
    assert "2 of 24 image file(s) missing or corrupt" in message
    assert "src/cls1/img3.png (missing)" in message
    assert "src/cls2/img5.png (truncated (no PNG end chunk))" in message
    assert not (out / "checkpoints").exists() and not (out / "metrics.csv").exists()


def test_verify_full_compares_the_recorded_sha256(data: Path, tmp_path: Path) -> None:
    png = data / "src/cls0/img4.png"
    raw = bytearray(png.read_bytes())
    raw[60] ^= 0xFF  # same size, still ends with IEND: only the checksum can tell
    png.write_bytes(bytes(raw))
    assert check_file(str(png), None, "size") is None
    with pytest.raises(CytoImageNetError, match=r"1 of 24 .*img4.png \(sha256 differs"):
        run_pretrain(make_job(data, tmp_path / "a", epochs=1, verify="full"), progress=False)
    # size (the default) does not read the whole file; none checks nothing.
    for mode in ("size", "none"):
        out = tmp_path / mode
        try:
            run_pretrain(make_job(data, out, epochs=1, max_steps=1, verify=mode), progress=False)
        except CytoImageNetError as exc:  # the decoder may reject the flipped byte itself
            assert "missing or corrupt" not in str(exc)


def test_verify_full_needs_recorded_checksums(tmp_path: Path) -> None:
    bare = write_tiny_dataset(tmp_path / "bare")  # no sha256 column
    with pytest.raises(ConfigError, match=r"metadata.parquet: no sha256 column .*--verify size"):
        run_pretrain(make_job(bare, tmp_path / "run", verify="full"), progress=False)


def test_png_end_check(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30 + PNG_END)
    assert check_file(str(path), None, "size") is None
    path.write_bytes(b"")
    assert check_file(str(path), None, "size") == "empty"
    assert check_file(str(tmp_path), None, "size") == "not a regular file"
    assert check_file(str(tmp_path / "absent.png"), None, "full") == "missing"


def test_cli_verify_option_gives_one_error_line(data: Path, tmp_path: Path) -> None:
    (data / "src/cls0/img7.png").unlink()
    args = ["pretrain", "--data", str(data), "--out", str(tmp_path / "run"), "--model",
            "test_efficientnet", "--batch-size", "6", "--size", "32", "--workers", "0",
            "--no-progress", "--epochs", "1"]  # fmt: skip
    result = runner.invoke(app, [*args, "--verify", "full"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "1 of 24 image file(s) missing or corrupt: src/cls0/img7.png (missing)" in lines[0]
    bad = runner.invoke(app, [*args, "--verify", "sometimes"])
    assert bad.exit_code == 1 and "verify" in bad.output


# --- 4. unreadable checkpoints and run files on resume ----------------------------------------


def _two_epochs(data: Path, out: Path) -> None:
    run_pretrain(make_job(data, out, epochs=2, max_steps=2), progress=False)


def test_corrupt_last_checkpoint_falls_back_and_stays_bit_identical(
    reference, tmp_path: Path
) -> None:
    data = reference.out.parent / "ds"
    out = tmp_path / "run"
    run_pretrain(make_job(data, out, epochs=1, max_steps=2), progress=False)
    last = out / "checkpoints" / "last.pt"
    good = last.read_bytes()
    # A second epoch whose checkpoint is torn: last.pt is a hard link of epoch_002.pt.
    epoch2 = out / "checkpoints" / "epoch_002.pt"
    epoch2.write_bytes(good[: len(good) // 3])
    last.unlink()
    last.hardlink_to(epoch2)
    resumed = run_pretrain(make_job(data, out, epochs=2, max_steps=2), progress=False)
    assert resumed.start_epoch == 1 and resumed.epoch == 2
    want, got = load(reference.checkpoint), load(last)
    assert got["epoch"] == 2 and got["global_step"] == want["global_step"]
    assert all(torch.equal(v, got["state_dict"][k]) for k, v in want["state_dict"].items())


def test_incomplete_checkpoint_falls_back(reference, tmp_path: Path) -> None:
    data = reference.out.parent / "ds"
    out = tmp_path / "run"
    _two_epochs(data, out)
    last = out / "checkpoints" / "last.pt"
    fingerprint = load(last)["fingerprint"]
    last.unlink()  # keep epoch_002.pt; write a last.pt that loads but lacks the run state
    torch.save({"format": CHECKPOINT_FORMAT, "optimizer": {}, "fingerprint": fingerprint}, last)
    result = run_pretrain(make_job(data, out, epochs=3, max_steps=2), progress=False)
    assert result.start_epoch == 2 and result.epoch == 3


def test_no_readable_checkpoint_is_one_clear_error(reference, tmp_path: Path) -> None:
    data = reference.out.parent / "ds"
    out = tmp_path / "run"
    _two_epochs(data, out)
    for path in (out / "checkpoints").glob("*.pt"):
        path.write_bytes(b"garbage")
    with pytest.raises(ConfigError) as err:
        run_pretrain(make_job(data, out, epochs=3, max_steps=2), progress=False)
    message = str(err.value)
    assert message.startswith(f"{out / 'checkpoints' / 'last.pt'}: unreadable checkpoint")
    assert "no earlier epoch_NNN.pt" in message and "to start the run over" in message
    assert "\n" not in message


def test_corrupt_metrics_file_on_resume_is_named(reference, tmp_path: Path) -> None:
    data = reference.out.parent / "ds"
    out = tmp_path / "run"
    run_pretrain(make_job(data, out, epochs=1, max_steps=2), progress=False)
    (out / "metrics.csv").write_text("epoch,train_loss\n1,0.5\nzz\x00\x01,\n")
    with pytest.raises(ConfigError, match=r"metrics.csv: unreadable metrics file .*move it aside"):
        run_pretrain(make_job(data, out, epochs=2, max_steps=2), progress=False)


@pytest.mark.slow
def test_torchrun_processes_report_every_share(tmp_path: Path) -> None:
    """Each process checks half the files; both report the gathered count, then stop."""
    import os
    import subprocess
    import sys

    from tests.e2e.test_pretrain_cli import TINY, write_dataset

    data = write_dataset(tmp_path / "ds")
    (data / "c0" / "2.png").unlink()  # first train image: rank 0's share
    (data / "c0" / "3.png").unlink()  # second: rank 1's
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "cytoimagenet", "pretrain", "--data", str(data),
               "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert text.count("error: ") == 2, text[-3000:]
    assert text.count("2 of 24 image file(s) missing or corrupt: c0/2.png (missing); c0/3.png") == 2
    assert not (tmp_path / "run" / "checkpoints").exists()
