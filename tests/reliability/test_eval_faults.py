"""Issue 14: ``evaluate`` and ``score`` refuse (or flag) inputs that give a meaningless number.

Each case ran to a confident-looking accuracy before: one MoA class (100 ± 0 %), identical
features, ``--k`` at least the candidate neighbours, text columns dropped without a word,
all-zero probabilities scored as the first class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.evaluation.feature_table import FeatureTable
from tests.unit.test_eval_bbbc021 import simulate

runner = CliRunner()
CLASSES = ["A", "B", "C"]


def _parquet(table: FeatureTable, path: Path) -> Path:
    table.meta.hstack(pl.DataFrame(table.features, schema=table.names)).write_parquet(path)
    return path


def _evaluate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


def _one_line_error(code: int, output: str, *needles: str) -> None:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], (needle, output)


# --- evaluate ---------------------------------------------------------------------------------


def test_one_moa_class_is_refused_not_reported_as_100_percent(tmp_path: Path) -> None:
    table = simulate(0)
    moa = table.meta["Metadata_MoA"]
    one = table.with_meta(
        table.meta.with_columns(
            pl.when(moa == "DMSO").then(moa).otherwise(pl.lit("A")).alias(moa.name)
        )
    )
    path = _parquet(one, tmp_path / "one.parquet")
    out = tmp_path / "r.json"
    code, output = _evaluate("bbbc021", "--features", str(path), "--out", str(out))
    _one_line_error(code, output, "one.parquet", "fewer than 2 classes (only 'A')", "20 treatment")
    assert not out.exists()


def test_one_class_left_for_nscb_is_refused(tmp_path: Path) -> None:
    table = simulate(0)
    # B (week 1 only) is dropped for NSCB; make C and D one class with A → only "A" left.
    moa = table.meta["Metadata_MoA"]
    merged = pl.when(moa.is_in(["C", "D"])).then(pl.lit("A")).otherwise(moa).alias(moa.name)
    path = _parquet(table.with_meta(table.meta.with_columns(merged)), tmp_path / "nscb.parquet")
    args = ["bbbc021", "--features", str(path), "--out", str(tmp_path / "r.json")]
    code, output = _evaluate(*args, "--protocol", "standard")
    _one_line_error(code, output, "fewer than 2 classes (only 'A')", "for NSCB")


def test_identical_features_are_refused(tmp_path: Path) -> None:
    table = simulate(0)
    flat = np.ones_like(table.features)  # e.g. a constant or broken model
    path = _parquet(FeatureTable("f", table.meta, flat, table.names), tmp_path / "flat.parquet")
    code, output = _evaluate("bbbc021", "--features", str(path), "--out", str(tmp_path / "r.json"))
    _one_line_error(code, output, "flat.parquet: all ", "row(s) have identical features")
    labels = table.meta.select(pl.col("Metadata_MoA").alias("Metadata_Label"))
    path = _parquet(FeatureTable("f", labels, flat, table.names), tmp_path / "cells.parquet")
    code, output = _evaluate("cyclops", "--features", str(path), "--out", str(tmp_path / "r.json"))
    _one_line_error(code, output, "cells.parquet: all ", "identical features")


def test_zero_profiles_are_warned_about_and_recorded(tmp_path: Path) -> None:
    table = simulate(0)
    x = table.features.copy()
    x[(table.meta["Metadata_Compound"] == "a1").to_numpy()] = 0.0  # two zero profiles
    path = _parquet(FeatureTable("z", table.meta, x, table.names), tmp_path / "z.parquet")
    out = tmp_path / "r.json"
    args = ["bbbc021", "--features", str(path), "--out", str(out), "--normalize", "none"]
    code, output = _evaluate(*args)
    assert code == 0, output
    doc = json.loads(out.read_text())
    assert doc["scores"]["nsc"]["extra"]["checks"]["undefined_rows"] == 2
    assert doc["checks"]["warnings"] == [
        "2 of 20 treatment profiles are zero vectors; cosine similarity is undefined for them "
        "(distance 1 to everything, ties to the lower index), so their predictions are arbitrary"
    ]
    assert doc["checks"]["constant_feature_columns"] == 0
    code, output = _evaluate(*args, "--metric", "euclidean")  # defined for euclidean
    assert code == 0 and json.loads(out.read_text())["checks"]["warnings"] == []


def test_k_at_least_the_candidates_is_refused_with_the_numbers(tmp_path: Path) -> None:
    path = _parquet(simulate(0), tmp_path / "sim.parquet")
    args = ["bbbc021", "--features", str(path), "--out", str(tmp_path / "r.json")]
    # 20 treatments of 10 compounds (2 concentrations): 18 candidates each under NSC.
    code, output = _evaluate(*args, "--k", "18")
    _one_line_error(code, output, "--k 18 but a treatment has at most 18 candidate neighbour")
    code, output = _evaluate(*args, "--k", "17")
    assert code == 0, output
    rng = np.random.default_rng(0)
    cells = pl.DataFrame({"Metadata_Label": ["x", "y"] * 6})
    small = _parquet(
        FeatureTable("c", cells, rng.standard_normal((12, 4)).astype(np.float32), list("abcd")),
        tmp_path / "cells.parquet",
    )
    code, output = _evaluate("cyclops", "--features", str(small), "--out", str(tmp_path / "c.json"))
    _one_line_error(code, output, "12 cells; leave-one-out 11-NN needs more than 12")
    split = ["train"] * 10 + ["test1"] * 2
    coos = _parquet(
        FeatureTable("c", cells.with_columns(Metadata_Split=pl.Series(split)),
                     rng.standard_normal((12, 4)).astype(np.float32), list("abcd")),
        tmp_path / "coos.parquet",
    )  # fmt: skip
    code, output = _evaluate("coos7", "--features", str(coos), "--out", str(tmp_path / "c.json"))
    _one_line_error(code, output, "--k 11 but a test cell has at most 10 candidate")


def test_text_columns_are_named_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = ["Metadata_Label,f1,f2,note"] + [f"{'xy'[i % 2]},{i},{i % 3}.5,n{i}" for i in range(8)]
    rows[3] = "x,3,oops,n3"  # a numeric column with one stray word reads as text
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    base = ["cyclops", "--features", str(path), "--out", str(out), "--k", "1"]
    code, output = _evaluate(*base)
    _one_line_error(code, output, "t.csv: non-numeric column(s) ['f2', 'note']", "--ignore-non")
    code, output = _evaluate(*base, "--ignore-non-numeric")
    assert code == 0, output
    assert json.loads(out.read_text())["protocol"]["feature_columns"] == 1


def test_non_finite_features_name_how_many_rows(tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    path.write_text("Metadata_Label,f1,f2\na,1,inf\nb,,NaN\nc,3,4\na,1,1\n")
    code, output = _evaluate("cyclops", "--features", str(path), "--out", str(tmp_path / "r.json"))
    _one_line_error(code, output, "nan.csv: 3 empty/NaN/infinite feature values in 2 of 4 row(s)")


# --- score ------------------------------------------------------------------------------------


def _predictions(tmp_path: Path, rows: list[list[float]]) -> Path:
    frame = pl.DataFrame(
        {
            "Metadata_Compound": [f"c{i}" for i in range(len(rows))],
            "Metadata_Concentration": ["1"] * len(rows),
            "Metadata_MoA": [CLASSES[i % 3] for i in range(len(rows))],
            **{c: [r[j] for r in rows] for j, c in enumerate(CLASSES)},
        }
    )
    path = tmp_path / "p.csv"
    frame.write_csv(path)
    return path


def _score(path: Path, out: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["score", "--predictions", str(path), "--out", str(out)])
    return result.exit_code, result.output


def test_score_refuses_all_zero_probability_rows_naming_them(tmp_path: Path) -> None:
    good = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]] * 3
    rows = [r.copy() for r in good]
    rows[1] = rows[7] = [0.0, 0.0, 0.0]  # row 7 would have scored as "A": right by accident
    out = tmp_path / "r.json"
    code, output = _score(_predictions(tmp_path, rows), out)
    _one_line_error(code, output, "p.csv: all-zero probabilities in 2 of 9 row(s) (rows 1, 7)")
    assert not out.exists()
    code, output = _score(_predictions(tmp_path, good), out)
    assert code == 0, output


def test_score_names_the_rows_of_negative_and_non_finite_probabilities(tmp_path: Path) -> None:
    rows = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]] * 2
    negative = [r.copy() for r in rows]
    negative[4] = [-0.5, 1.0, 0.5]
    code, output = _score(_predictions(tmp_path, negative), tmp_path / "r.json")
    _one_line_error(code, output, "in 1 of 6 row(s) (rows 4)", "softmax")
    bad = [r.copy() for r in rows]
    bad[2], bad[5] = [float("nan"), 0.5, 0.5], [0.2, float("inf"), 0.1]
    code, output = _score(_predictions(tmp_path, bad), tmp_path / "r.json")
    _one_line_error(code, output, "2 empty/NaN/infinite probabilities in 2 of 6 row(s) (rows 2, 5)")
