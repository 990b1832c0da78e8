"""``cytoimagenet pretrain`` end to end: typer's runner, and two gloo processes under torchrun."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from cytoimagenet.cli import app

runner = CliRunner()
TINY = ["--model", "test_efficientnet", "--batch-size", "6", "--size", "32", "--workers", "0",
        "--no-progress"]  # fmt: skip


def write_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for c in range(3):
        for i in range(8):
            yy, xx = np.mgrid[0:40, 0:40]
            pattern = [(yy // 4) % 2, (xx // 4) % 2, (yy // 5 + xx // 5) % 2][c]
            image = (pattern * 180 + rng.integers(0, 60, (40, 40))).astype(np.uint8)
            (root / f"c{c}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f"c{c}" / f"{i}.png"), image)
            rows.append({"label": f"class {c}", "path": f"c{c}", "filename": f"{i}.png",
                         "dset": "val" if i < 2 else "train"})  # fmt: skip
    pl.DataFrame(rows).write_parquet(root / "metadata.parquet")
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_pretrain_resume_and_errors(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    base = ["pretrain", "--data", str(data), "--out", str(out), *TINY]
    result = runner.invoke(app, [*base, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1  train loss" in result.output
    assert "3 classes, 18 train / 6 val images on cpu (x1, amp off)" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 1 and config["model"] == "test_efficientnet"
    assert config["resolved"]["num_classes"] == 3 and config["resolved"]["world_size"] == 1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["command"] == "pretrain" and list(prov["inputs"]) == ["metadata.parquet"]

    resumed = runner.invoke(app, [*base, "--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "epoch 2/2" in resumed.output and "epoch 1/2" not in resumed.output
    assert "resumed after epoch 1" in resumed.output
    assert [r["epoch"] for r in read_csv(out / "metrics.csv")] == ["1", "2"]
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["labels"] == ["class 0", "class 1", "class 2"]

    done = runner.invoke(app, [*base, "--epochs", "2"])
    assert done.exit_code == 0 and "already has 2 epochs; nothing to do" in done.output

    other = runner.invoke(app, [*base, "--epochs", "3", "--lr", "0.01"])
    assert other.exit_code == 1
    assert "error:" in other.output and "lr: 0.001 → 0.01" in other.output

    bad = runner.invoke(app, [*base, "--amp", "fp8", "--size", "0"])
    assert bad.exit_code == 1
    assert "amp:" in bad.output and "size:" in bad.output

    if not torch.cuda.is_available():
        cpu = ["pretrain", "--data", str(data), "--out", str(tmp_path / "r2"), *TINY]
        cuda = runner.invoke(app, [*cpu, "--amp", "bf16"])
        assert cuda.exit_code == 1 and "needs a CUDA device" in cuda.output
        assert not (tmp_path / "r2").exists()  # refused before writing anything


def test_pretrain_help_lists_the_options() -> None:
    result = runner.invoke(app, ["pretrain", "--help"])
    assert result.exit_code == 0
    for option in ("--data", "--out", "--epochs", "--batch-size", "--lr", "--max-steps"):
        assert option in result.output


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    """DDP on CPU: rank 0 alone writes; val counts every image once; the run can resume."""
    data = write_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "cytoimagenet", "pretrain", "--data", str(data),
               "--out", str(out), *TINY, "--epochs", "2"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2") == 1  # only rank 0 prints
    assert "(x2, amp off)" in done.stdout
    rows = read_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    per_class = read_csv(out / "per_class_val.csv")
    assert [sum(int(r["n"]) for r in per_class if r["epoch"] == e) for e in "12"] == [6, 6]
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["global_step"] == 2 * 3  # 18 images, 3 per process per step
    assert ckpt["config"]["resolved"]["batch_per_process"] == 3
    files = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert files == ["epoch_001.pt", "epoch_002.pt", "last.pt"]
