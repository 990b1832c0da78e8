"""Exact kNN: oracle against scikit-learn, exclusions against brute force, documented ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from cytoimagenet.errors import ConfigError
from cytoimagenet.evaluation.knn import (
    MaskExclusion,
    exclude_overlap,
    exclude_same,
    faiss_kneighbors,
    kneighbors,
    knn_predict,
    vote,
)

SK_METRIC = {"cosine": "cosine", "pearson": "correlation", "euclidean": "euclidean"}
METRICS = list(SK_METRIC)


def _data(n: int = 120, d: int = 12, seed: int = 0) -> np.ndarray:
    # Continuous Gaussian data: no two distances are equal (no ties to settle).
    return np.random.default_rng(seed).standard_normal((n, d)) + 0.3


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_query_matches_sklearn_neighbours(metric: str, dtype: type) -> None:
    train, query = _data(150).astype(dtype), _data(40, seed=1).astype(dtype)
    ours = kneighbors(train, 7, query, metric=metric, block_rows=9)
    sk = NearestNeighbors(n_neighbors=7, metric=SK_METRIC[metric], algorithm="brute")
    dist, idx = sk.fit(train.astype(np.float64)).kneighbors(query.astype(np.float64))
    np.testing.assert_array_equal(ours.indices, idx)
    np.testing.assert_allclose(ours.distances, dist, atol=1e-5 if dtype is np.float32 else 1e-10)


@pytest.mark.parametrize("metric", METRICS)
def test_leave_one_out_matches_sklearn_without_self(metric: str) -> None:
    x = _data(90)
    ours = kneighbors(x, 5, metric=metric, exclude="self")
    sk = NearestNeighbors(n_neighbors=6, metric=SK_METRIC[metric], algorithm="brute").fit(x)
    dist, idx = sk.kneighbors(x)
    assert (idx[:, 0] == np.arange(len(x))).all()  # the oracle's own first hit is the query
    np.testing.assert_array_equal(ours.indices, idx[:, 1:])
    np.testing.assert_allclose(ours.distances, dist[:, 1:], atol=1e-10)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 5])
def test_predictions_match_kneighborsclassifier(metric: str, k: int) -> None:
    # Two classes and odd k (or k = 1): a vote can never tie, so sklearn's tie rule is moot.
    rng = np.random.default_rng(3)
    train, query = _data(200), _data(60, seed=4)
    labels = np.where(rng.random(200) < 0.5, "a", "b")
    ours = knn_predict(train, labels, query, k=k, metric=metric)
    clf = KNeighborsClassifier(n_neighbors=k, metric=SK_METRIC[metric], algorithm="brute")
    np.testing.assert_array_equal(ours.labels.astype(str), clf.fit(train, labels).predict(query))


@pytest.mark.parametrize("metric", METRICS)
def test_leave_one_out_equals_n_separate_fits(metric: str) -> None:
    rng = np.random.default_rng(5)
    x = _data(41, d=6, seed=5)
    labels = rng.choice(["x", "y"], size=len(x))
    ours = knn_predict(x, labels, k=3, metric=metric, exclude="self")
    for i in range(len(x)):
        rest = np.arange(len(x)) != i
        clf = KNeighborsClassifier(n_neighbors=3, metric=SK_METRIC[metric], algorithm="brute")
        assert ours.labels[i] == clf.fit(x[rest], labels[rest]).predict(x[i : i + 1])[0]


def test_many_classes_k1_matches_sklearn() -> None:
    rng = np.random.default_rng(6)
    train, query = _data(300, d=20), _data(100, d=20, seed=7)
    labels = rng.integers(0, 9, 300).astype(str)
    ours = knn_predict(train, labels, query, k=1, metric="cosine")
    clf = KNeighborsClassifier(n_neighbors=1, metric="cosine", algorithm="brute")
    np.testing.assert_array_equal(ours.labels.astype(str), clf.fit(train, labels).predict(query))


def test_result_does_not_depend_on_block_size() -> None:
    x = _data(97).astype(np.float32)
    ref = kneighbors(x, 11, metric="euclidean", exclude="self")
    for rows in (1, 7, 96, 1000):
        other = kneighbors(x, 11, metric="euclidean", exclude="self", block_rows=rows)
        np.testing.assert_array_equal(other.indices, ref.indices)


def test_group_and_overlap_exclusions_match_brute_force() -> None:
    rng = np.random.default_rng(8)
    x = _data(60, d=5, seed=8)
    compounds = rng.integers(0, 12, len(x)).tolist()
    batches = [frozenset(rng.choice(4, size=rng.integers(1, 3), replace=False)) for _ in x]
    rules = [exclude_same(compounds), exclude_overlap(batches)]
    ours = kneighbors(x, 3, metric="cosine", exclude=rules, block_rows=7)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in range(len(x)):
        allowed = [
            j
            for j in range(len(x))
            if compounds[j] != compounds[i] and not (batches[j] & batches[i])
        ]
        expect = sorted(allowed, key=lambda j: (1 - unit[i] @ unit[j], j))[:3]
        got = [j for j in ours.indices[i] if j >= 0]
        assert got == expect, i


def test_dense_mask_and_too_few_candidates_give_minus_one() -> None:
    x = _data(6, d=3)
    mask = np.ones((6, 6), dtype=bool)
    mask[0, [3, 5]] = False  # query 0 may only see rows 3 and 5
    nb = kneighbors(x, 4, metric="euclidean", exclude=MaskExclusion(mask))
    assert sorted(nb.indices[0, :2].tolist()) == [3, 5]
    assert nb.indices[0, 2:].tolist() == [-1, -1] and np.isinf(nb.distances[0, 2:]).all()
    assert (nb.indices[1:] == -1).all()
    pred = knn_predict(x, list("aabbcc"), k=1, exclude=mask)
    assert pred.labels[0] in ("b", "c") and list(pred.labels[1:]) == [None] * 5
    assert pred.scored.tolist() == [True] + [False] * 5


def test_exact_duplicates_tie_to_the_lower_index_whatever_blas_rounds() -> None:
    # BLAS gives equal rows different last bits in some block shapes (16 rows does here);
    # the float64 re-ranking must make them tie exactly so that the lower index wins.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((700, 64)).astype(np.float32)
    for src, dst in {5: [650, 40, 333], 123: [124, 699]}.items():
        x[dst] = x[src]
    noise = 1e-3 * rng.standard_normal((48, 64)).astype(np.float32)
    q = np.vstack([x[5] + noise[:24], x[123] + noise[24:]])
    for metric in METRICS:
        nb = kneighbors(x, 4, q, metric=metric, block_rows=16)
        assert (nb.indices[:24] == [5, 40, 333, 650]).all(), metric
        assert (nb.indices[24:, :3] == [123, 124, 699]).all(), metric
        loo = kneighbors(x, 3, metric=metric, exclude="self", block_rows=16)
        assert loo.indices[650].tolist() == [5, 40, 333], metric  # a duplicate, not itself
        assert loo.indices[5].tolist() == [40, 333, 650], metric
        assert loo.indices[699].tolist()[:2] == [123, 124], metric


@pytest.mark.parametrize("metric", METRICS)
def test_symmetric_leave_one_out_tiles_equal_the_row_block_search(metric: str) -> None:
    # exclude="self" takes the tiled path; an identity mask forces the row-block path.
    x = _data(131, d=9).astype(np.float32)
    x[[100, 120]] = x[7]  # a few exact ties as well
    eye = MaskExclusion(np.eye(len(x), dtype=bool))
    ref = kneighbors(x, 6, metric=metric, exclude=eye)
    for tile in (1, 16, 50, None):
        loo = kneighbors(x, 6, metric=metric, exclude="self", block_rows=tile)
        np.testing.assert_array_equal(loo.indices, ref.indices)
        np.testing.assert_allclose(loo.distances, ref.distances, atol=1e-5)


def test_leave_one_out_with_more_duplicates_than_kept_candidates() -> None:
    # 30 copies of one row: the tie band is wider than the kept list, so rows are rescanned.
    x = _data(200, d=8).astype(np.float32)
    copies = np.arange(40, 200, 5)[:30]
    x[copies] = x[3]
    nb = kneighbors(x, 3, metric="cosine", exclude="self", block_rows=32)
    assert nb.indices[3].tolist() == copies[:3].tolist()
    assert nb.indices[copies[0]].tolist() == [3, *copies[1:3].tolist()]
    np.testing.assert_allclose(nb.distances[3], 0, atol=1e-6)


def test_vote_ties_go_to_the_class_of_the_nearest_member() -> None:
    # k = 4 with two "b" and two "a": b's member is nearest, so b wins (sklearn would say a).
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    labels = ["b", "a", "a", "b"]
    pred = knn_predict(train, labels, np.array([[1.0, 0.0]]), k=4, metric="euclidean")
    assert pred.labels.tolist() == ["b"]
    clf = KNeighborsClassifier(n_neighbors=4, algorithm="brute").fit(train, labels)
    assert clf.predict([[1.0, 0.0]]).tolist() == ["a"]
    # Three-way tie 1-1-1 at k = 3: the nearest neighbour decides.
    codes = np.array([[2, 0, 1], [1, 2, 0], [0, 0, 2], [-1, -1, -1]])
    assert vote(codes, 3).tolist() == [2, 1, 0, -1]


def test_vote_tie_at_equal_distance_goes_to_the_lower_index() -> None:
    # Two training rows at exactly the same distance with different labels: index 1 < 2.
    train = np.array([[5.0, 5.0], [1.0, 0.0], [0.0, 1.0]])
    pred = knn_predict(train, ["z", "q", "p"], np.array([[0.0, 0.0]]), k=2, metric="euclidean")
    assert pred.neighbors.indices.tolist() == [[1, 2]] and pred.labels.tolist() == ["q"]


def test_pearson_is_cosine_of_centred_rows() -> None:
    x = _data(50)
    centred = x - x.mean(axis=1, keepdims=True)
    a = kneighbors(x, 4, metric="pearson", exclude="self")
    b = kneighbors(centred, 4, metric="cosine", exclude="self")
    np.testing.assert_array_equal(a.indices, b.indices)


def test_faiss_backend_agrees_on_tie_free_data() -> None:
    pytest.importorskip("faiss")
    x = _data(200, d=16).astype(np.float32)
    for metric in ("cosine", "euclidean"):
        ours = kneighbors(x, 5, metric=metric, exclude="self")
        theirs = faiss_kneighbors(x, 5, metric=metric)
        np.testing.assert_array_equal(ours.indices, theirs.indices)
        np.testing.assert_allclose(ours.distances, theirs.distances, atol=1e-3)
    q = _data(10, d=16, seed=2).astype(np.float32)
    np.testing.assert_array_equal(kneighbors(x, 3, q).indices, faiss_kneighbors(x, 3, q).indices)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be at least 1"),
        ({"metric": "manhattan"}, "unknown metric"),
        ({"query": np.ones((2, 3))}, "query has 3 features"),
        ({"query": np.ones((2, 4)), "exclude": "self"}, "needs the queries to be the training"),
        ({"exclude": "same"}, "only named rule is 'self'"),
        ({"exclude": np.zeros((2, 2), dtype=bool)}, "exclusion mask must be bool"),
    ],
)
def test_clear_errors(kwargs: dict, message: str) -> None:
    args = {"k": 1, **kwargs}
    with pytest.raises(ConfigError, match=message):
        kneighbors(np.ones((5, 4)) + np.arange(5)[:, None], **args)


def test_non_finite_features_are_refused() -> None:
    x = _data(5)
    x[2, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN or infinite"):
        kneighbors(x, 1)
    with pytest.raises(ConfigError, match="labels for"):
        knn_predict(_data(5), ["a"], k=1)
