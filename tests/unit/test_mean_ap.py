"""mAP: our activity/consistency equal copairs' own output; degenerate input is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

copairs_map = pytest.importorskip("copairs.map")

from copairs.matching import assign_reference_index  # noqa: E402

from cytoimagenet.errors import SchemaError  # noqa: E402
from cytoimagenet.evaluation.mean_ap import (  # noqa: E402
    MapSettings,
    format_map,
    phenotypic_activity,
    phenotypic_consistency,
)

SETTINGS = MapSettings(null_size=2000, seed=3)


def _screen(seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """8 DMSO wells, 6 compounds × 4 replicates; compounds c0–c3 shift one feature, c4/c5 not."""
    rng = np.random.default_rng(seed)
    compounds = ["DMSO"] * 8 + [f"c{i // 4}" for i in range(24)]
    moas = ["DMSO"] * 8 + [f"m{(i // 4) % 2}" for i in range(24)]
    x = rng.normal(size=(32, 10))
    for i in range(8, 24):
        x[i, (i // 4) % 2] += 5.0
    return pl.DataFrame({"Metadata_Compound": compounds, "Metadata_MoA": moas}), x


def _copairs_activity(meta: pl.DataFrame, x: np.ndarray) -> pd.DataFrame:
    """copairs' documented phenotypic-activity recipe, called directly."""
    df = meta.to_pandas()
    df["Metadata_negcon"] = (df["Metadata_Compound"] == "DMSO").astype(int)
    df = assign_reference_index(
        df, "Metadata_Compound == 'DMSO'", reference_col="Metadata_reference_index"
    )
    pos_sameby = ["Metadata_Compound", "Metadata_reference_index"]
    neg_diffby = ["Metadata_negcon", "Metadata_reference_index"]
    ap = copairs_map.average_precision(df, x, pos_sameby, [], [], neg_diffby, progress_bar=False)
    ap = ap.query("Metadata_negcon == 0")
    return copairs_map.mean_average_precision(
        ap, pos_sameby, null_size=2000, threshold=0.05, seed=3, progress_bar=False
    ).sort_values("Metadata_Compound")


def test_activity_equals_copairs() -> None:
    meta, x = _screen()
    control = (meta["Metadata_Compound"] == "DMSO").to_numpy()
    ours = phenotypic_activity(meta, x, ["Metadata_Compound"], control, SETTINGS, "t")
    theirs = _copairs_activity(meta, x)
    assert [g["group"] for g in ours["per_group"]] == theirs["Metadata_Compound"].tolist()
    for key, column in (("map", "mean_average_precision"), ("p_value", "p_value"),
                        ("corrected_p_value", "corrected_p_value")):  # fmt: skip
        assert [g[key] for g in ours["per_group"]] == pytest.approx(theirs[column].tolist())
    assert ours["map"] == pytest.approx(theirs["mean_average_precision"].mean())
    assert ours["groups"] == 6 and ours["profiles"] == 24
    # the shifted compounds stand out from DMSO, the unshifted ones do not
    by = {g["group"]: g for g in ours["per_group"]}
    assert all(by[f"c{i}"]["significant"] for i in range(4))
    assert by["c4"]["map"] < by["c0"]["map"] and by["c5"]["map"] < by["c0"]["map"]


def test_activity_ap_by_hand() -> None:
    """Two replicates and two controls on a line: AP of each replicate is 1 (its twin first)."""
    meta = pl.DataFrame({"Metadata_Compound": ["DMSO", "DMSO", "a", "a"]})
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    control = np.array([True, True, False, False])
    out = phenotypic_activity(meta, x, ["Metadata_Compound"], control, SETTINGS, "t")
    assert out["map"] == pytest.approx(1.0)
    # with one control closer than the twin, the rank list is [neg, pos, neg]: AP = 1/2
    x2 = np.array([[0.0, 1.0], [1.0, 0.0], [0.05, 1.0], [1.0, 0.3]])
    out2 = phenotypic_activity(meta, x2, ["Metadata_Compound"], control, SETTINGS, "t")
    assert out2["map"] == pytest.approx(0.5)


def test_consistency_equals_copairs() -> None:
    meta, x = _screen(1)
    rows = meta.with_row_index().filter(pl.col("Metadata_Compound") != "DMSO")
    treat = rows.group_by("Metadata_Compound", maintain_order=True).agg(
        pl.col("Metadata_MoA").first(), pl.col("index")
    )
    profiles = np.stack([x[idx].mean(axis=0) for idx in treat["index"].to_list()])
    treat = treat.drop("index")
    ours = phenotypic_consistency(treat, profiles, "Metadata_MoA", ["Metadata_Compound"],
                                  SETTINGS, "t")  # fmt: skip
    df = treat.to_pandas()
    ap = copairs_map.average_precision(df, profiles, ["Metadata_MoA"], ["Metadata_Compound"],
                                       [], ["Metadata_MoA"], progress_bar=False)  # fmt: skip
    theirs = copairs_map.mean_average_precision(
        ap, ["Metadata_MoA"], null_size=2000, threshold=0.05, seed=3, progress_bar=False
    ).sort_values("Metadata_MoA")
    assert [g["map"] for g in ours["per_group"]] == pytest.approx(
        theirs["mean_average_precision"].tolist()
    )
    assert [g["p_value"] for g in ours["per_group"]] == pytest.approx(theirs["p_value"].tolist())


@pytest.mark.parametrize(
    ("compounds", "match"),
    [
        (["a", "a", "b", "b"], "needs control rows"),
        (["DMSO", "DMSO", "a", "b"], "at least 2 replicate"),
    ],
)
def test_activity_refuses_degenerate_input(compounds: list[str], match: str) -> None:
    meta = pl.DataFrame({"Metadata_Compound": compounds})
    x = np.random.default_rng(0).normal(size=(4, 3))
    control = (meta["Metadata_Compound"] == "DMSO").to_numpy()
    with pytest.raises(SchemaError, match=match):
        phenotypic_activity(meta, x, ["Metadata_Compound"], control, SETTINGS, "t.parquet")


def test_activity_refuses_identical_profiles() -> None:
    meta = pl.DataFrame({"Metadata_Compound": ["DMSO", "DMSO", "a", "a"]})
    control = (meta["Metadata_Compound"] == "DMSO").to_numpy()
    with pytest.raises(SchemaError, match="identical features"):
        phenotypic_activity(meta, np.ones((4, 3)), ["Metadata_Compound"], control, SETTINGS, "t")


def test_consistency_refuses_one_class_and_one_compound_per_class() -> None:
    x = np.random.default_rng(0).normal(size=(4, 3))
    one = pl.DataFrame({"Metadata_MoA": ["m"] * 4, "Metadata_Compound": list("abcd")})
    with pytest.raises(SchemaError, match="at least 2 Metadata_MoA"):
        phenotypic_consistency(one, x, "Metadata_MoA", ["Metadata_Compound"], SETTINGS, "t")
    lonely = pl.DataFrame({"Metadata_MoA": list("mmnn"), "Metadata_Compound": list("aabb")})
    with pytest.raises(SchemaError, match="every Metadata_MoA has one"):
        phenotypic_consistency(lonely, x, "Metadata_MoA", ["Metadata_Compound"], SETTINGS, "t")


def test_format_map() -> None:
    assert format_map({"map": 0.5, "groups": 4, "significant": 1, "threshold": 0.1}) == (
        "0.500 (1/4 q<0.1)"
    )
    assert format_map({"map": None}) == "—"
