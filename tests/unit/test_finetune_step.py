"""Scoring a finetune run as the paper did (BBBC014 well means, BBBC021 replicate grouping)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from cytoimagenet.errors import ConfigError
from cytoimagenet.finetune.folds import Fold
from cytoimagenet.finetune.step import _check_run, gather, replicate_score, score_run


def crops(rows: list[tuple[str, float, str, str, str, str, float]]) -> pl.DataFrame:
    """``(compound, conc, moa, plate, well, replicate, p_positive)`` → a 2-class crop table."""
    frame = pl.DataFrame(rows, orient="row", schema=[
        "Metadata_Compound", "Metadata_Concentration", "Metadata_MoA", "Metadata_Plate",
        "Metadata_Well", "Metadata_Replicate", "positive"])  # fmt: skip
    return frame.with_columns(
        (1 - pl.col("positive")).alias("negative"),
        pl.col("Metadata_Compound").alias("Metadata_Fold"),
    )


def test_bbbc014_scores_well_means_not_medians() -> None:
    # one positive well whose mean says positive (0.6) but whose median says negative (0.45)
    pos = [("TNFa", 1.0, "positive", "P", "A01", "A", p) for p in (0.9, 0.45, 0.45)]
    neg = [("TNFa", 12.0, "negative", "P", "E12", "E", p) for p in (0.2, 0.3, 0.1)]
    frame = crops(pos + neg)
    folds = [Fold(0, "TNFa", "TNFa")]
    result = score_run("bbbc014", frame, ["negative", "positive"], folds)
    assert (result["correct"], result["n"], result["primary"]) == (2, 2, "well")
    assert result["folds"] == {"TNFa": {"held_out": "TNFa", "correct": 2, "n": 2}}


def test_bbbc021_treatment_score_and_kensert_replicates() -> None:
    classes = ["negative", "positive"]
    # Two wells share replicate number 1, a third is replicate 2 (as in 5 BBBC021 treatments).
    frame = crops([("c", 1.0, "positive", "P1", "B02", "1", p) for p in (0.9, 0.9, 0.9)]
                  + [("c", 1.0, "positive", "P2", "B02", "1", 0.4),
                     ("c", 1.0, "positive", "P3", "B02", "2", 0.45)])  # fmt: skip
    folds = [Fold(0, "c", "c")]
    result = score_run("bbbc021", frame, classes, folds)
    # by well (primary): median of well medians 0.9, 0.4, 0.45 = 0.45 → negative, wrong
    assert (result["correct"], result["n"], result["primary"]) == (0, 1, "treatment")
    # by Replicate (Kensert): median(0.9, 0.9, 0.9, 0.4) = 0.9 and 0.45 → 0.675 → right
    assert result["kensert_replicates"]["correct"] == 1
    assert replicate_score(frame, classes)["n"] == 1


def test_gather_keeps_fold_order(tmp_path: Path) -> None:
    folds = [Fold(0, "b", "B"), Fold(1, "a", "A"), Fold(2, "c", "C")]
    for fold in folds[:2]:
        (tmp_path / "folds" / fold.name).mkdir(parents=True)
        pl.DataFrame({"Metadata_Fold": [fold.name]}).write_parquet(
            tmp_path / "folds" / fold.name / "predictions.parquet"
        )
    assert gather(tmp_path, folds)["Metadata_Fold"].to_list() == ["b", "a"]
    assert gather(tmp_path / "none", folds) is None


def test_run_folder_checks(tmp_path: Path) -> None:
    _check_run(tmp_path / "new", {"lr": 1})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        _check_run(tmp_path / "other", {"lr": 1})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"fingerprint": {"lr": 1}}))
    _check_run(tmp_path / "run", {"lr": 1})
    with pytest.raises(ConfigError, match="lr: 1 → 2"):
        _check_run(tmp_path / "run", {"lr": 2})
