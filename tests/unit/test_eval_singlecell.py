"""COOS-7 (fit on train, per test set) and CYCLoPs (leave-one-out) against scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.feature_table import FeatureTable, zscore
from cytoimagenet.evaluation.singlecell import evaluate_coos7, evaluate_cyclops, resolve_singlecell

YEAST = Path(__file__).parents[2] / ".." / "shared" / "data" / "yeast_wt2_toy" / "images"
CLASSES = ["cytoplasm", "ER", "mitochondrion", "nucleus", "vacuole"]


def _cells(n: int, seed: int, shift: float = 0.0, d: int = 10) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((len(CLASSES), d)) * 1.2
    y = rng.integers(0, len(CLASSES), n)
    x = centres[y] + rng.standard_normal((n, d)) + shift  # test sets drift from train
    return x * np.linspace(0.5, 3, d), [CLASSES[i] for i in y]


def _reference(x_train: np.ndarray, y_train: list[str], x: np.ndarray, k: int, loo: bool):
    """sklearn's neighbours (nearest first) + the documented vote: ties to the nearest class.

    Returns the predictions and whether each vote was tied (where sklearn's own
    ``KNeighborsClassifier`` would pick the smallest label instead).
    """
    nn = NearestNeighbors(n_neighbors=k + loo, algorithm="brute").fit(x_train)
    idx = nn.kneighbors(x, return_distance=False)
    if loo:
        assert (idx[:, 0] == np.arange(len(x))).all()  # no duplicates: self comes first
        idx = idx[:, 1:]
    preds, tied = [], []
    for row in np.asarray(y_train)[idx]:
        values, counts = np.unique(row, return_counts=True)
        best = set(values[counts == counts.max()])
        preds.append(next(v for v in row if v in best))
        tied.append(len(best) > 1)
    return np.array(preds), np.array(tied)


def _confusion(true: np.ndarray, pred: np.ndarray, labels: list[str]) -> list[list[int]]:
    return [[int(((true == a) & (pred == b)).sum()) for b in labels] for a in labels]


def coos7_table() -> FeatureTable:
    parts, meta = [], []
    for i, split in enumerate(["train", "test1", "test2", "test3", "test4"]):
        x, y = _cells(300 if split == "train" else 80, seed=i, shift=0.4 * i)
        parts.append(x)
        meta += [{"Metadata_Label": lab, "Metadata_Split": split} for lab in y]
    x = np.vstack(parts).astype(np.float32)
    return FeatureTable("coos7.parquet", pl.DataFrame(meta), x, [f"f{i}" for i in range(10)])


def test_coos7_matches_kneighborsclassifier_per_test_set() -> None:
    table = coos7_table()
    scores = evaluate_coos7(table, resolve_singlecell("coos7"))
    assert list(scores) == ["test1", "test2", "test3", "test4"]
    split = np.asarray(table.meta["Metadata_Split"].to_list())
    labels = np.asarray(table.meta["Metadata_Label"].to_list())
    train = split == "train"
    # The protocol: z-score on the training cells' statistics, Euclidean 11-NN fit on train.
    x = zscore(table.features, table.features[train]).astype(np.float64)
    clf = KNeighborsClassifier(n_neighbors=11, algorithm="brute").fit(x[train], labels[train])
    for name, score in scores.items():
        rows = split == name
        ref, tied = _reference(x[train], labels[train].tolist(), x[rows], 11, loo=False)
        assert score["n"] == rows.sum() == 80 and score["extra"]["train_cells"] == 300
        assert score["correct"] == int((ref == labels[rows]).sum())
        assert score["confusion"] == _confusion(labels[rows], ref, score["labels"])
        # Where no vote tied, sklearn's classifier agrees row by row.
        np.testing.assert_array_equal(ref[~tied], clf.predict(x[rows])[~tied])
    # Drift lowers accuracy from test1 to test4, as the test sets are built to.
    assert scores["test1"]["accuracy"] > scores["test4"]["accuracy"]


def test_coos7_predictions_equal_sklearn_when_no_vote_can_tie() -> None:
    # k = 1: no vote ties, so the per-set accuracies must equal sklearn's exactly.
    table = coos7_table()
    scores = evaluate_coos7(table, resolve_singlecell("coos7", k=1, normalize="none"))
    split = np.asarray(table.meta["Metadata_Split"].to_list())
    labels = np.asarray(table.meta["Metadata_Label"].to_list())
    x = table.features.astype(np.float64)
    clf = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(
        x[split == "train"], labels[split == "train"]
    )
    for name, score in scores.items():
        rows = split == name
        assert score["correct"] == int((clf.predict(x[rows]) == labels[rows]).sum())


def test_cyclops_leave_one_out_matches_sklearn() -> None:
    x, y = _cells(400, seed=7)
    meta = pl.DataFrame({"Metadata_Label": y})
    table = FeatureTable("cyclops.csv", meta, x.astype(np.float32), [f"f{i}" for i in range(10)])
    clf = KNeighborsClassifier(n_neighbors=11, algorithm="brute")
    for k in (1, 11):
        score = evaluate_cyclops(table, resolve_singlecell("cyclops", k=k))["loo"]
        z = zscore(table.features).astype(np.float64)
        ref, tied = _reference(z, y, z, k, loo=True)
        truth = np.asarray(y)
        assert score["n"] == 400 and score["labels"] == sorted(CLASSES)
        assert score["correct"] == int((ref == truth).sum())
        assert score["confusion"] == _confusion(truth, ref, score["labels"])
        if k == 11:  # leave-one-out by n separate fits, on a few untied rows
            for i in np.flatnonzero(~tied)[:5]:
                rest = np.arange(len(z)) != i
                fit = clf.fit(z[rest], truth[rest])
                assert fit.predict(z[i : i + 1])[0] == ref[i]


def test_cyclops_on_the_yeast_toy_cells() -> None:
    tifffile = pytest.importorskip("tifffile")
    if not YEAST.is_dir():
        pytest.skip(f"{YEAST} not available")
    feats, labels = [], []
    for folder in sorted(YEAST.iterdir()):
        for gfp in sorted(folder.glob("*_gfp.tif"))[:150]:
            rfp = gfp.with_name(gfp.name.replace("_gfp.tif", "_rfp.tif"))
            if not rfp.is_file():
                continue
            row = []
            for image in (tifffile.imread(gfp), tifffile.imread(rfp)):
                im = image.astype(np.float64)
                row += [*np.percentile(im, [10, 50, 90, 99]), im.mean(), im.std()]
            feats.append(row)
            labels.append(folder.name)
    x = np.asarray(feats, dtype=np.float32)
    table = FeatureTable("yeast", pl.DataFrame({"Metadata_Label": labels}), x, list("abcdefghijkl"))
    score = evaluate_cyclops(table, resolve_singlecell("cyclops"))["loo"]
    majority = max(labels.count(c) for c in set(labels)) / len(labels)
    assert score["n"] == len(labels) > 500
    assert score["accuracy"] > majority + 0.3  # intensity statistics separate these strains
    assert score["ci95"]["method"] == "wald" and "wilson_ci95" in score["extra"]


def test_errors_are_clear() -> None:
    table = coos7_table()
    with pytest.raises(SchemaError, match=r"coos7.parquet: COOS-7 needs Metadata_Split == 'train'"):
        evaluate_coos7(table.filter(table.meta["Metadata_Split"].to_numpy() != "train"),
                       resolve_singlecell("coos7"))  # fmt: skip
    with pytest.raises(SchemaError, match=r"missing metadata column.*Metadata_Split"):
        evaluate_coos7(table.with_meta(table.meta.drop("Metadata_Split")),
                       resolve_singlecell("coos7"))  # fmt: skip
    with pytest.raises(SchemaError, match="fewer than two classes"):
        one = table.with_meta(table.meta.with_columns(Metadata_Label=pl.lit("x")))
        evaluate_cyclops(one, resolve_singlecell("cyclops"))
    small = table.filter(np.arange(len(table)) < 8)
    with pytest.raises(SchemaError, match="8 cells; leave-one-out 11-NN"):
        evaluate_cyclops(small, resolve_singlecell("cyclops"))
    with pytest.raises(ConfigError, match=r"plate-dmso.*none or zscore"):
        resolve_singlecell("cyclops", normalize="plate-dmso")


def test_descriptions_record_the_settings() -> None:
    text = resolve_singlecell("coos7").description()
    assert "euclidean 11-NN" in text and "training cells' mean/std" in text
    text = resolve_singlecell("cyclops", metric="cosine", k=5).description()
    assert "cosine 5-NN leave-one-out" in text
    assert resolve_singlecell("cyclops").block()["k"] == 11
