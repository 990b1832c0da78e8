"""Grouped single-cell protocols: neighbours sharing the query's field (well …) cannot vote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.neighbors import NearestNeighbors
from tests.fakes.coos7_release import SIZES, write_release
from tests.unit.test_eval_loaders import fake_cyclops

from cytoimagenet.errors import SchemaError
from cytoimagenet.evaluation.coos7_release import find_release, release_identity
from cytoimagenet.evaluation.feature_table import FeatureTable, zscore
from cytoimagenet.evaluation.knn import exclude_same, kneighbors
from cytoimagenet.evaluation.loaders import load_coos7, load_cyclops
from cytoimagenet.evaluation.singlecell import evaluate_coos7, evaluate_cyclops, resolve_singlecell


def field_table(fields: int = 20, per_field: int = 15, seed: int = 0) -> FeatureTable:
    """Fields whose cells are near-duplicates of a field centre unrelated to the class.

    Each field holds cells of one class (as a well of one strain does) and the features
    carry only the field's illumination-like offset: a neighbour from the same field is
    always of the right class, a neighbour from another field is right by chance only.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((fields, 8)) * 5
    labels = np.array(["A", "B"])[np.arange(fields) % 2]
    rows = np.repeat(np.arange(fields), per_field)
    x = centres[rows] + rng.standard_normal((len(rows), 8)) * 0.01
    meta = pl.DataFrame(
        {
            "Metadata_Label": labels[rows].tolist(),
            "Metadata_Field": [f"f{r:02d}" for r in rows],
            "Metadata_Plate": [f"p{r % 4}" for r in rows],
        }
    )
    return FeatureTable("fields.parquet", meta, x.astype(np.float32), [f"c{i}" for i in range(8)])


def _oracle(x: np.ndarray, keys: np.ndarray, k: int, train: np.ndarray | None = None):
    """Per query: scikit-learn's exact neighbours among the rows outside its group."""
    train_x, train_keys = (x, keys) if train is None else (x[train], keys[train])
    query_x, query_keys = (x, keys) if train is None else (x[~train], keys[~train])
    out = []
    for q, g in zip(query_x, query_keys, strict=True):
        allowed = np.flatnonzero(train_keys != g)
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(train_x[allowed])
        out.append(allowed[nn.kneighbors(q[None], return_distance=False)[0]])
    return np.array(out)


def _vote(neighbour_labels: np.ndarray) -> list[str]:
    """The documented vote: majority, ties to the class of the nearest member."""
    preds = []
    for row in neighbour_labels:
        values, counts = np.unique(row, return_counts=True)
        best = set(values[counts == counts.max()])
        preds.append(next(v for v in row if v in best))
    return preds


def test_grouping_removes_the_same_field_inflation() -> None:
    table = field_table()
    plain = evaluate_cyclops(table, resolve_singlecell("cyclops"))["loo"]
    grouped = evaluate_cyclops(table, resolve_singlecell("cyclops", group_by=["Metadata_Field"]))
    loo = grouped["loo"]
    assert plain["accuracy"] == 1.0  # every neighbour is a same-field near-duplicate
    assert loo["accuracy"] < 0.75  # other fields' classes are unrelated to the features
    assert loo["n"] == plain["n"] == 300
    extra = loo["extra"]
    assert extra["grouping"] == {
        "group_by": ["Metadata_Field"],
        "groups": 20,
        "fewest_candidates": 285,
    }
    assert extra["checks"]["queries_without_own_class"] == 0


def test_cyclops_grouped_equals_the_brute_force_oracle() -> None:
    rng = np.random.default_rng(3)
    n, k = 240, 11
    x = rng.standard_normal((n, 6)) + np.repeat(rng.standard_normal((12, 6)), 20, axis=0)
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    plate, well = rng.integers(0, 3, n), rng.integers(0, 5, n)
    meta = pl.DataFrame(
        {"Metadata_Label": labels, "Metadata_Plate": plate, "Metadata_Well": well}
    ).with_columns(pl.all().cast(pl.String))
    table = FeatureTable("t.parquet", meta, x, [f"c{i}" for i in range(6)])
    proto = resolve_singlecell("cyclops", group_by=["Metadata_Plate", "Metadata_Well"])
    score = evaluate_cyclops(table, proto)["loo"]
    keys = np.array([f"{p}/{w}" for p, w in zip(plate, well, strict=True)])
    z = zscore(x)
    idx = _oracle(z, keys, k)
    nb = kneighbors(z, k, metric="euclidean", exclude=["self", exclude_same(keys.tolist())])
    np.testing.assert_array_equal(nb.indices, idx)
    pred = _vote(labels[idx])
    assert score["correct"] == sum(p == t for p, t in zip(pred, labels, strict=True))
    assert not (keys[nb.indices] == keys[:, None]).any()  # no neighbour from the query's group


def test_coos7_grouped_equals_the_brute_force_oracle() -> None:
    rng = np.random.default_rng(5)
    n_train, n_test, k = 200, 60, 5
    n = n_train + n_test
    x = rng.standard_normal((n, 5))
    labels = np.array(["er", "golgi", "cytosol"])[rng.integers(0, 3, n)]
    fields = rng.integers(0, 8, n).astype(str)  # test cells share fields with train cells
    split = np.array(["train"] * n_train + ["test1"] * n_test)
    meta = pl.DataFrame(
        {"Metadata_Label": labels, "Metadata_Split": split, "Metadata_Field": fields}
    )
    table = FeatureTable("c.parquet", meta, x, [f"c{i}" for i in range(5)])
    proto = resolve_singlecell("coos7", k=k, group_by=["Field"])
    score = evaluate_coos7(table, proto)["test1"]
    train = split == "train"
    z = zscore(x, x[train])
    idx = _oracle(z, fields, k, train=train)
    pred = _vote(labels[train][idx])
    assert score["correct"] == sum(p == t for p, t in zip(pred, labels[~train], strict=True))
    counts = {f: int((fields[train] == f).sum()) for f in set(fields)}
    fewest = min(n_train - counts[f] for f in fields[~train])
    assert score["extra"]["grouping"]["fewest_candidates"] == fewest
    plain = evaluate_coos7(table, resolve_singlecell("coos7", k=k))["test1"]
    assert "grouping" not in plain["extra"]


def test_protocol_records_the_grouping() -> None:
    proto = resolve_singlecell("cyclops", group_by=["Metadata_Field", "Metadata_Field"])
    assert proto.group_by == ("Metadata_Field",)
    block = proto.block()
    assert block["group_by"] == ["Metadata_Field"]
    assert "grouped by Metadata_Field" in block["description"]
    assert "cannot vote" in block["description"]
    ungrouped = resolve_singlecell("cyclops").block()
    assert "group_by" not in ungrouped and "grouped" not in str(ungrouped["description"])


def test_bad_groupings_are_refused() -> None:
    table = field_table(fields=4, per_field=5)
    with pytest.raises(SchemaError, match=r"missing metadata column\(s\) \['Metadata_Well'\]"):
        evaluate_cyclops(table, resolve_singlecell("cyclops", group_by=["Metadata_Well"]))
    # 4 fields of 5 cells: grouped, each cell keeps 15 candidates; k=14 runs, 16 is refused.
    evaluate_cyclops(table, resolve_singlecell("cyclops", k=14, group_by=["Metadata_Field"]))
    with pytest.raises(SchemaError, match=r"leaves 20 of 20 cells fewer than k=16 .*fewest: 15"):
        evaluate_cyclops(table, resolve_singlecell("cyclops", k=16, group_by=["Metadata_Field"]))
    # Every cell of a class on one plate: grouped by plate, no cell can be right.
    confounded = FeatureTable(
        table.source,
        table.meta.with_columns(pl.col("Metadata_Label").alias("Metadata_Plate")),
        table.features,
        table.names,
    )
    with pytest.raises(SchemaError, match="confounded with Metadata_Label"):
        evaluate_cyclops(confounded, resolve_singlecell("cyclops", k=3, group_by=["Plate"]))
    blank = FeatureTable(
        table.source,
        table.meta.with_columns(pl.lit(" ").alias("Metadata_Field")),
        table.features,
        table.names,
    )
    with pytest.raises(SchemaError, match=r"blank values in \{'Metadata_Field': 20\}"):
        evaluate_cyclops(blank, resolve_singlecell("cyclops", group_by=["Metadata_Field"]))


def test_cyclops_table_keeps_protein_and_field(tmp_path: Path) -> None:
    cells = fake_cyclops(tmp_path)
    table = load_cyclops(tmp_path, allow_missing=True).table
    for row in table.iter_rows(named=True):
        protein, image = row["Metadata_Cell"].split("_rfp_")[0].split("_")
        assert row["Metadata_Protein"] == protein
        assert row["Metadata_Field"] == f"{protein}_{image}"
    assert len(cells) > table.height  # DEAD and the cell without rfp are gone


def test_cyclops_unparsed_stems_leave_identity_empty(tmp_path: Path) -> None:
    for name in ("cellA", "YAL1_2_rfp_3"):
        for channel in ("gfp", "rfp"):
            (tmp_path / "NUCLEUS").mkdir(exist_ok=True)
            (tmp_path / "NUCLEUS" / f"{name}_{channel}.tif").write_bytes(b"")
    images = load_cyclops(tmp_path)
    fields = dict(images.table.select("Metadata_Cell", "Metadata_Field").iter_rows())
    assert fields == {"cellA": None, "YAL1_2_rfp_3": "YAL1_2"}
    assert any("1 of 2 cell stems do not read" in n for n in images.notes)


def test_coos7_release_identity_is_carried(tmp_path: Path) -> None:
    write_release(tmp_path, identity=True)
    ident = release_identity(find_release(tmp_path))
    assert ident is not None
    assert ident.columns == ["Metadata_Cell", "Metadata_Plate", "Metadata_Well"]
    assert ident.height == SIZES["training"] + SIZES["test1"]
    images = load_coos7(tmp_path)
    table = images.table
    train = table.filter(pl.col("Metadata_Cell") == "train_000003").row(0, named=True)
    assert train["Metadata_Plate"] == "P1" and train["Metadata_Well"] == "1"
    assert table.filter(pl.col("Metadata_Split") == "test4")["Metadata_Plate"].null_count() == 2
    assert any("per-cell Metadata_Plate, Metadata_Well" in n for n in images.notes)
    plain = tmp_path / "plain"
    write_release(plain)
    assert release_identity(find_release(plain)) is None
    assert "Metadata_Plate" not in load_coos7(plain).table.columns
