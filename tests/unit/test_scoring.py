"""Median aggregation crop → well → treatment, the tie rule, and golden scores."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pytest
from tests.conftest import shared_path

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.stats import wilson_interval
from cytoimagenet.finetune.scoring import (
    COUNT,
    MOA,
    PREDICTION,
    aggregate_predictions,
    detect_classes,
    level_frames,
    score_predictions,
    validate_predictions,
)

CLASSES = ["A", "B", "C"]
WELL = ["Metadata_Plate", "Metadata_Well"]


def _crops() -> pl.DataFrame:
    """One treatment (c1 @ 1.0, class A) in three wells with 2, 3 and 1 crops."""
    rows = [
        ("P1", "W1", 0.6, 0.3, 0.1),
        ("P1", "W1", 0.2, 0.7, 0.1),
        ("P2", "W1", 0.5, 0.4, 0.1),
        ("P2", "W1", 0.4, 0.5, 0.1),
        ("P2", "W1", 0.3, 0.6, 0.1),
        ("P3", "W1", 0.9, 0.05, 0.05),
    ]
    return pl.DataFrame(
        {
            "Metadata_Plate": [r[0] for r in rows],
            "Metadata_Well": [r[1] for r in rows],
            "Metadata_Compound": ["c1"] * 6,
            "Metadata_Concentration": [1.0] * 6,
            MOA: ["A"] * 6,
            "Metadata_Site": [1, 2, 1, 2, 3, 1],
            "A": [r[2] for r in rows],
            "B": [r[3] for r in rows],
            "C": [r[4] for r in rows],
        }
    )


def test_well_median_carries_constant_columns() -> None:
    wells = aggregate_predictions(_crops(), CLASSES, WELL)
    assert wells["Metadata_Plate"].to_list() == ["P1", "P2", "P3"]
    np.testing.assert_allclose(wells["A"], [0.4, 0.4, 0.9])  # even count: mean of middle two
    np.testing.assert_allclose(wells["B"], [0.5, 0.5, 0.05])
    assert wells[COUNT].to_list() == [2, 3, 1]
    assert wells[PREDICTION].to_list() == ["B", "B", "A"]
    assert {"Metadata_Compound", "Metadata_Concentration"} <= set(wells.columns)
    assert "Metadata_Site" not in wells.columns  # varies within a well


def test_treatment_is_the_median_of_well_medians_not_of_crops() -> None:
    frames = level_frames(_crops(), CLASSES, "treatment", "crop")
    treatment = frames["treatment"]
    assert treatment.height == 1 and treatment[COUNT].item() == 3  # three wells
    np.testing.assert_allclose(treatment.select(CLASSES).row(0), [0.4, 0.5, 0.1])
    assert treatment[PREDICTION].item() == "B"
    # The median over all six crops would give A = 0.45, B = 0.45: a different vector.
    pooled = aggregate_predictions(_crops(), CLASSES, ["Metadata_Compound"])
    np.testing.assert_allclose(pooled.select(["A", "B"]).row(0), [0.45, 0.45])


def test_ties_go_to_the_first_class_in_order() -> None:
    frame = _crops().head(1).with_columns(pl.lit(0.45).alias("A"), pl.lit(0.45).alias("B"))
    assert aggregate_predictions(frame, ["A", "B", "C"], WELL)[PREDICTION].item() == "A"
    assert aggregate_predictions(frame, ["B", "A", "C"], WELL)[PREDICTION].item() == "B"


def test_mixed_true_classes_in_a_group_is_an_error() -> None:
    frame = _crops().with_columns(pl.Series(MOA, ["A", "A", "A", "B", "A", "A"]))
    with pytest.raises(SchemaError, match=r"mix true classes.*'Metadata_Plate': 'P2'"):
        aggregate_predictions(frame, CLASSES, WELL)


def test_missing_or_empty_keys_are_errors() -> None:
    with pytest.raises(SchemaError, match="missing column"):
        aggregate_predictions(_crops().drop("Metadata_Well"), CLASSES, WELL)
    frame = _crops().with_columns(pl.lit(None, dtype=pl.String).alias("Metadata_Well"))
    with pytest.raises(SchemaError, match="empty values"):
        aggregate_predictions(frame, CLASSES, WELL)


def test_level_order_and_repeated_rows() -> None:
    with pytest.raises(ConfigError, match="only goes up"):
        level_frames(_crops(), CLASSES, "crop", "well")
    with pytest.raises(SchemaError, match=r"repeated keys.*--from"):
        level_frames(_crops(), CLASSES, "treatment")  # crops given as treatments


def _golden() -> pl.DataFrame:
    # 7 treatments: A A A B B C C; predictions A A B B C C (tie A/C → A) → 4/7 correct.
    probs = [
        (0.8, 0.1, 0.1),
        (0.5, 0.3, 0.2),
        (0.2, 0.7, 0.1),
        (0.1, 0.8, 0.1),
        (0.1, 0.3, 0.6),
        (0.2, 0.2, 0.6),
        (0.4, 0.2, 0.4),
    ]
    return pl.DataFrame(
        {
            "Metadata_Compound": [f"c{i}" for i in range(7)],
            "Metadata_Concentration": ["1"] * 7,
            MOA: ["A", "A", "A", "B", "B", "C", "C"],
            **{c: [p[i] for p in probs] for i, c in enumerate(CLASSES)},
        }
    )


def test_golden_score() -> None:
    result = score_predictions(_golden(), CLASSES, "treatment", benchmark="golden")
    assert result["format"] == "cytoimagenet-result/1" and result["primary"] == "treatment"
    assert (result["correct"], result["n"]) == (4, 7)
    assert result["accuracy"] == pytest.approx(4 / 7)
    ci = result["ci95"]
    assert ci["method"] == "wilson"
    assert (ci["low"], ci["high"]) == pytest.approx((0.2504, 0.8418), abs=1e-4)
    s = result["scores"]["treatment"]
    assert s["labels"] == CLASSES
    assert s["confusion"] == [[2, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert s["extra"]["per_class_recall"] == pytest.approx({"A": 2 / 3, "B": 0.5, "C": 0.5})
    assert s["extra"]["support"] == {"A": 3, "B": 2, "C": 2}
    assert list(result["scores"]) == ["treatment"]


def test_wilson_interval_matches_the_kensert_note() -> None:
    assert wilson_interval(100, 103)["low"] == pytest.approx(0.918, abs=5e-4)
    assert wilson_interval(100, 103)["high"] == pytest.approx(0.990, abs=5e-4)
    assert wilson_interval(98, 103)["low"] == pytest.approx(0.891, abs=5e-4)
    assert wilson_interval(98, 103)["high"] == pytest.approx(0.979, abs=5e-4)
    assert wilson_interval(0, 5)["low"] == 0.0 and wilson_interval(5, 5)["high"] == 1.0
    with pytest.raises(ValueError, match="correct"):
        wilson_interval(4, 3)


def test_detect_classes_in_column_order(caplog: pytest.LogCaptureFixture) -> None:
    frame = _golden().select(MOA, "C", "A", "B").with_columns(pl.lit(3).alias("fold"))
    with caplog.at_level(logging.WARNING):
        assert detect_classes(frame) == ["C", "A", "B"]
    assert "fold" in caplog.text
    with pytest.raises(SchemaError, match=r"no probability column for class\(es\) \['B'\]"):
        detect_classes(frame.drop("B"), "t.csv")
    with pytest.raises(SchemaError, match="no Metadata_MoA"):
        detect_classes(frame.drop(MOA))


def test_validation_errors_name_the_file(caplog: pytest.LogCaptureFixture) -> None:
    text = _golden().with_columns(pl.col(c).cast(pl.String) for c in CLASSES)
    assert validate_predictions(text, CLASSES, "t.csv")["A"].dtype == pl.Float64
    with pytest.raises(SchemaError, match=r"t\.csv: column 'B' holds non-numbers"):
        validate_predictions(text.with_columns(pl.lit("x").alias("B")), CLASSES, "t.csv")
    nan = _golden().with_columns(pl.when(pl.int_range(7) == 2).then(None).otherwise("C").alias("C"))
    with pytest.raises(SchemaError, match=r"t\.csv: 1 empty.*row 2 column 'C'"):
        validate_predictions(nan, CLASSES, "t.csv")
    with pytest.raises(SchemaError, match="logits"):
        validate_predictions(_golden().with_columns(pl.col("A") - 1), CLASSES, "t.csv")
    with pytest.raises(SchemaError, match=r"true classes \['D'\]"):
        validate_predictions(_golden().with_columns(pl.lit("D").alias(MOA)), CLASSES, "t.csv")
    with pytest.raises(SchemaError, match="missing column"):
        validate_predictions(_golden(), [*CLASSES, "D"], "t.csv")
    with caplog.at_level(logging.WARNING):
        validate_predictions(_golden().with_columns(pl.col("A") / 2), CLASSES, "t.csv")
    assert "do not sum to 1" in caplog.text


@pytest.mark.realdata
def test_bbbc021_treatments_reproduce_the_resnet50_score() -> None:
    """103 annotated treatments, 12 MoAs; ResNet50's three misses give 100/103 = 97.1%."""
    moa = pl.read_csv(shared_path("bbbc021_metadata", "BBBC021_v1_moa.csv"))
    moa = moa.filter(pl.col("moa") != "DMSO")
    classes = sorted(set(moa["moa"]))
    misses = {
        ("colchicine", 0.03): "Kinase inhibitors",
        ("chlorambucil", 10.0): "Kinase inhibitors",
        ("latrunculin B", 1.0): "Epithelial",
    }
    predicted = [misses.get((c, round(x, 3)), m) for c, x, m in moa.select(moa.columns).iter_rows()]
    frame = pl.DataFrame(
        {
            "Metadata_Compound": moa["compound"],
            "Metadata_Concentration": moa["concentration"],
            MOA: moa["moa"],
            **{k: [float(p == k) for p in predicted] for k in classes},
        }
    )
    result = score_predictions(validate_predictions(frame, classes), classes)
    assert (result["correct"], result["n"], len(classes)) == (100, 103, 12)
    assert round(100 * result["accuracy"], 1) == 97.1
    recall = result["scores"]["treatment"]["extra"]["per_class_recall"]
    assert recall["Actin disruptors"] == pytest.approx(4 / 5)
    assert recall["Microtubule destabilizers"] == pytest.approx(13 / 14)
