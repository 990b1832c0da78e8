"""Complete CPU fine-tuning runs on tiny synthetic plates: every step, resume, CLI, scoring.

BBBC021-like: 4 compounds × 2 concentrations (2 MoAs) + DMSO on 2 plates of different gain,
64 px fields cut into 2×2 crops and squashed to 32 px; timm's ``test_resnet``, Xavier init,
2 epochs of 2 steps per fold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.config import validate_job
from cytoimagenet.errors import ConfigError
from cytoimagenet.finetune.config import FinetuneJob
from cytoimagenet.finetune.step import run_finetune
from cytoimagenet.sample.bbbc014 import generate_bbbc014
from cytoimagenet.sample.plate import PlateSpec, generate_moa_plate

CLASSES = ["Actin disruptors", "Microtubule destabilizers"]
FOLDS = ["colchicine", "cytochalasin-b", "latrunculin-b", "nocodazole"]
PLATE = PlateSpec(weeks=2, dmso_wells=2, sites=1, size=64, cells=6, effect=1.0,
                  moas=tuple(CLASSES), plate_gain=0.35)  # fmt: skip


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bbbc021") / "raw"
    generate_moa_plate(root, PLATE)
    return root


def make_job(raw: Path, out: Path, **kw: Any) -> FinetuneJob:
    values = {"dataset": "bbbc021", "root": raw, "out": out, "model": "test_resnet",
              "init": "xavier", "epochs": 2, "batch_size": 8, "input_size": 32,
              "max_steps": 2, "workers": 0, "cache": out.parent / "cache", **kw}  # fmt: skip
    return validate_job(FinetuneJob, **values)


class StopError(Exception):
    """Stands for a kill between two epochs."""


def test_complete_run_resume_and_score(raw: Path, tmp_path: Path) -> None:
    full = run_finetune(make_job(raw, tmp_path / "full"), progress=False)
    assert full.trained == FOLDS and full.classes == CLASSES
    crops = full.settings["crops"]
    assert crops + full.settings["crops_dropped"] == 64  # 8 treatments × 2 plates × 4 crops
    assert crops >= 60  # the odd quadrant without a cell is dropped, as Kensert did
    preds = pl.read_parquet(tmp_path / "full" / "predictions.parquet")
    assert preds.height == crops
    for column in ("Metadata_Compound", "Metadata_Concentration", "Metadata_MoA",
                   "Metadata_Plate", "Metadata_Well", "Metadata_Fold", *CLASSES):  # fmt: skip
        assert column in preds.columns
    assert preds.select(pl.sum_horizontal(CLASSES)).to_series().is_between(0.999, 1.001).all()
    # a fold predicts its own compound only: nothing of it was in its training set
    per_fold = preds.group_by("Metadata_Fold").agg(pl.col("Metadata_Compound").n_unique())
    assert per_fold["Metadata_Compound"].to_list() == [1] * 4
    result = json.loads((tmp_path / "full" / "result.json").read_text())
    assert result["n"] == 8 and result["primary"] == "treatment"  # 8 treatments
    # one well per replicate here, so Kensert's replicate grouping scores the same
    assert result["kensert_replicates"]["correct"] == result["correct"]
    assert result["complete"] and result["folds_total"] == 4
    assert sum(f["n"] for f in result["folds"].values()) == 8
    assert result["config"]["job"]["model"] == "test_resnet"
    assert "torch" in result["environment"]["packages"]
    assert (tmp_path / "full" / "provenance.json").is_file()
    assert not list((tmp_path / "full").glob("folds/*/checkpoint.pt"))  # removed when done

    # Killed after fold 1's first epoch: fold 0 is done, fold 1 has a checkpoint.
    out = tmp_path / "resumed"

    def kill(fold: Any, row: dict[str, Any]) -> None:
        if fold.index == 1 and row["epoch"] == 1:
            raise StopError

    with pytest.raises(StopError):
        run_finetune(make_job(raw, out), progress=False, on_epoch=kill)
    done = out / "folds" / FOLDS[0] / "predictions.parquet"
    stamp = done.stat().st_mtime_ns
    assert (out / "folds" / FOLDS[1] / "checkpoint.pt").is_file()
    assert not (out / "predictions.parquet").exists()

    epochs: list[tuple[str, int]] = []
    again = run_finetune(make_job(raw, out), progress=False,
                         on_epoch=lambda f, row: epochs.append((f.name, row["epoch"])))  # fmt: skip
    assert again.skipped == FOLDS[:1] and again.trained == FOLDS[1:]
    assert again.settings["groups_skipped"] == 2  # the crops were cached
    assert epochs[0] == (FOLDS[1], 2)  # resumed after its checkpointed epoch
    assert done.stat().st_mtime_ns == stamp
    assert_frame_equal(pl.read_parquet(out / "predictions.parquet"), preds, check_exact=True)
    assert json.loads((out / "result.json").read_text())["accuracy"] == result["accuracy"]
    metrics = pl.read_csv(out / "folds" / FOLDS[1] / "metrics.csv")
    assert metrics["epoch"].to_list() == [1, 2]

    third = run_finetune(make_job(raw, out), progress=False)
    assert third.trained == [] and third.skipped == FOLDS
    with pytest.raises(ConfigError, match="other settings"):
        run_finetune(make_job(raw, out, lr=0.1), progress=False)

    # the score command reads the same table and agrees
    runner = CliRunner()
    scored = runner.invoke(app, ["score", "--predictions", str(out / "predictions.parquet"),
                                 "--from", "crop", "--out", str(tmp_path / "s.json")])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert json.loads((tmp_path / "s.json").read_text())["correct"] == result["correct"]


def test_some_folds_then_the_rest(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_finetune(make_job(raw, out, folds="1,nocodazole", epochs=1), progress=False)
    assert first.trained == ["cytochalasin-b", "nocodazole"]
    partial = json.loads((out / "result.json").read_text())
    assert not partial["complete"] and partial["folds_done"] == 2
    rest = run_finetune(make_job(raw, out, epochs=1), progress=False)
    assert rest.skipped == ["cytochalasin-b", "nocodazole"] and len(rest.trained) == 2
    assert json.loads((out / "result.json").read_text())["complete"]


def test_missing_image_fails_before_work(raw: Path, tmp_path: Path) -> None:
    copy = tmp_path / "raw"
    copy.mkdir()
    for path in raw.rglob("*"):
        if path.is_file() and "_s1_w2" not in path.name:  # every tubulin file gone
            target = copy / path.relative_to(raw)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    result = CliRunner().invoke(app, ["finetune", "bbbc021", "--root", str(copy), "--out",
                                      str(tmp_path / "run"), "--init", "xavier"])  # fmt: skip
    assert result.exit_code == 1
    assert "error:" in result.output and "missing" in result.output
    assert not (tmp_path / "run" / "folds").exists()


def test_cli_bbbc014_two_folds_across_cell_lines(tmp_path: Path) -> None:
    raw = generate_bbbc014(tmp_path / "raw")
    out = tmp_path / "run"
    args = ["finetune", "bbbc014", "--root", str(raw), "--out", str(out), "--model",
            "test_resnet", "--init", "xavier", "--input-size", "16", "--max-steps", "2",
            "--workers", "2", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "fold 1 a549 (A549)" in result.output and "well accuracy" in result.output
    record = json.loads((out / "result.json").read_text())
    assert record["n"] == 64 and record["protocol"]["aggregation"] == "mean"
    assert {k: v["n"] for k, v in record["folds"].items()} == {"a549": 32, "mcf7": 32}
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.height == 64 * 16 and set(preds.columns) >= {"negative", "positive"}
    a549 = preds.filter(pl.col("Metadata_Fold") == "a549")
    assert set(a549["Metadata_Group"]) == {"A549"}
    assert record["config"]["job"]["augment"] == "none" and record["config"]["job"]["epochs"] == 1


def test_unreachable_imagenet_weights_fail_before_preprocessing(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import timm

    real = timm.create_model

    def offline(name: str, **kw: Any) -> Any:
        if kw.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="--init PATH"):
        run_finetune(make_job(raw, out, init="imagenet", cache=None), progress=False)
    assert not (out / "prepared").exists() and not (out / "config.json").exists()
