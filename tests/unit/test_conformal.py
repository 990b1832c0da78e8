"""Conformal prediction: finite-sample coverage on simulated scores, and agreement with crepes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cytoimagenet.finetune import conformal
from cytoimagenet.finetune.conformal import (
    ScoreName,
    conformal_quantile,
    group_disjoint_sets,
    leave_one_group_out,
    nonconformity,
    p_values,
    per_class_coverage,
    predict_sets,
    set_metrics,
)

K = 4


def _simulate(rng: np.random.Generator, n: int, hard_class: int | None = None):
    """Probabilities from a (deliberately miscalibrated) model and labels drawn from the truth."""
    logits = rng.normal(scale=1.5, size=(n, K))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (rng.random((n, 1)) > np.cumsum(truth, axis=1)).sum(axis=1)
    model = np.exp(2.0 * logits)  # overconfident: sharper than the truth
    if hard_class is not None:
        model[:, hard_class] *= 0.05  # the model neglects one class
    return model / model.sum(axis=1, keepdims=True), labels


def _coverages(score: ScoreName, alpha: float, n_cal: int, reps: int, **kwargs) -> np.ndarray:
    rng = np.random.default_rng(7)
    out = np.empty(reps)
    for r in range(reps):
        probs, labels = _simulate(rng, n_cal + 100)
        sets = predict_sets(
            probs[:n_cal], labels[:n_cal], probs[n_cal:], alpha, score, rng=rng, **kwargs
        )
        out[r] = set_metrics(sets, labels[n_cal:])["coverage"]
    return out


def test_quantile_rank_and_float_noise() -> None:
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(scores, 0.1) == 9.0  # k = ceil(10 * 0.9) = 9, not 10 from 9.0000…2
    assert conformal_quantile(scores, 0.2) == 8.0
    assert conformal_quantile(scores, 0.09) == math.inf  # k = 10 > n
    assert conformal_quantile(np.array([]), 0.5) == math.inf
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        conformal_quantile(scores, 1.0)


def test_scores_by_hand() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]])
    np.testing.assert_allclose(nonconformity(probs, score="lac"), 1 - probs)
    # APS: mass ranked above + own; the tie (0.4, 0.4) ranks class 1 before class 2.
    np.testing.assert_allclose(
        nonconformity(probs, score="aps"), [[0.5, 0.8, 1.0], [1.0, 0.4, 0.8]]
    )
    np.testing.assert_allclose(nonconformity(probs, np.array([2, 0]), score="aps"), [1.0, 1.0])
    rand = nonconformity(probs, score="aps", randomize=True, rng=3)
    above = nonconformity(probs, score="aps") - probs
    assert (rand >= above - 1e-12).all() and (rand <= above + probs + 1e-12).all()
    np.testing.assert_array_equal(rand, nonconformity(probs, score="aps", randomize=True, rng=3))
    with pytest.raises(ValueError, match="unknown nonconformity"):
        nonconformity(probs, score="raps")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("score", "randomize", "exact"),
    [("lac", False, True), ("aps", True, True), ("aps", False, False)],
)
def test_split_coverage_within_finite_sample_guarantee(
    score: ScoreName, randomize: bool, exact: bool
) -> None:
    n_cal, alpha, reps = 49, 0.11, 1500
    cov = _coverages(score, alpha, n_cal, reps, randomize=randomize)
    se = cov.std(ddof=1) / math.sqrt(reps)
    # Exchangeable continuous scores:
    # 1 − α ≤ E[coverage] = ceil((n+1)(1−α))/(n+1) ≤ 1 − α + 1/(n+1).
    assert cov.mean() >= 1 - alpha - 3 * se
    if exact:
        assert cov.mean() <= 1 - alpha + 1 / (n_cal + 1) + 3 * se
        assert abs(cov.mean() - math.ceil((n_cal + 1) * (1 - alpha)) / (n_cal + 1)) < 4 * se


def test_uncorrected_quantile_would_undercover() -> None:
    """The simulation can tell: the plain empirical quantile misses the guarantee."""
    n_cal, alpha, reps = 49, 0.11, 1500
    rng = np.random.default_rng(7)
    cov = np.empty(reps)
    for r in range(reps):
        probs, labels = _simulate(rng, n_cal + 100)
        cal = nonconformity(probs[:n_cal], labels[:n_cal])
        q = np.sort(cal)[math.ceil(n_cal * (1 - alpha)) - 1]
        sets = nonconformity(probs[n_cal:]) <= q
        cov[r] = set_metrics(sets, labels[n_cal:])["coverage"]
    assert cov.mean() < 1 - alpha - 3 * cov.std(ddof=1) / math.sqrt(reps)


def test_mondrian_covers_every_class_where_split_does_not() -> None:
    alpha, n_cal, reps, hard = 0.1, 200, 300, 3
    rng = np.random.default_rng(11)
    hits = {m: np.zeros(K) for m in (False, True)}
    counts = np.zeros(K)
    for _ in range(reps):
        probs, labels = _simulate(rng, n_cal + 100, hard_class=hard)
        test_labels = labels[n_cal:]
        counts += np.bincount(test_labels, minlength=K)
        for m in (False, True):
            sets = predict_sets(probs[:n_cal], labels[:n_cal], probs[n_cal:], alpha, mondrian=m)
            hits[m] += np.bincount(
                test_labels, weights=sets[np.arange(100), test_labels], minlength=K
            )
    split, mondrian = hits[False] / counts, hits[True] / counts
    assert (mondrian >= 1 - alpha - 0.01).all(), mondrian
    assert split[hard] < 1 - alpha - 0.1, split  # the neglected class is badly under-covered


def test_mondrian_class_without_calibration_is_always_in_the_set() -> None:
    probs = np.full((6, 3), 1 / 3)
    sets = predict_sets(probs, np.array([0, 0, 0, 1, 1, 1]), probs, 0.5, mondrian=True)
    assert sets[:, 2].all()


@pytest.mark.parametrize("mondrian", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_lac_matches_crepes(mondrian: bool, ties: bool) -> None:
    crepes = pytest.importorskip("crepes")
    rng = np.random.default_rng(5)
    probs, labels = _simulate(rng, 160)
    if ties:  # coarse probabilities: many equal scores exercise the ≥ / > boundaries
        probs = np.round(probs, 1)
    cal_p, cal_y, test_p = probs[:60], labels[:60], probs[60:]
    cal_scores, test_scores = nonconformity(cal_p, cal_y), nonconformity(test_p)
    cc = crepes.ConformalClassifier().fit(cal_scores, bins=cal_y if mondrian else None)
    if mondrian:
        theirs = np.column_stack(
            [
                cc.predict_p(test_scores, bins=np.full(len(test_p), c), smoothing=False)[:, c]
                for c in range(K)
            ]
        )
    else:
        theirs = cc.predict_p(test_scores, smoothing=False)
    ours = p_values(cal_scores, test_scores, cal_labels=cal_y if mondrian else None)
    np.testing.assert_allclose(ours, theirs)
    # alpha * (n + 1) is never an integer here, so crepes' p ≥ α and our quantile rule agree.
    for alpha in (0.0937, 0.1937, 0.3037):
        sets = predict_sets(cal_p, cal_y, test_p, alpha, mondrian=mondrian)
        np.testing.assert_array_equal(sets, ours > alpha)
        if not mondrian:
            crepes_sets = cc.predict_set(test_scores, confidence=1 - alpha, smoothing=False)
            np.testing.assert_array_equal(sets, crepes_sets.astype(bool))


def test_smoothed_p_values_lie_between_the_tie_bounds() -> None:
    cal = np.array([0.1, 0.2, 0.2, 0.5])
    test = np.array([[0.2, 0.05, 0.9]])
    p = p_values(cal, test, smoothing=True, rng=1)
    low = np.array([[1 / 5, 4 / 5, 0.0]])  # #{cal > s} / (n + 1)
    high = np.array([[4 / 5, 5 / 5, 1 / 5]])  # (#{cal ≥ s} + 1) / (n + 1)
    assert (p >= low).all() and (p <= high).all() and (p > low).any()
    np.testing.assert_array_equal(p, p_values(cal, test, smoothing=True, rng=1))
    np.testing.assert_allclose(p_values(cal, test), high)


def test_set_metrics_by_hand() -> None:
    sets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=bool)
    labels = np.array([0, 1, 2, 0])
    m = set_metrics(sets, labels)
    assert m == {
        "coverage": 0.5,
        "mean_size": 1.0,
        "singleton_share": 0.5,
        "empty_share": 0.25,
        "singleton_accuracy": 0.5,
    }
    assert per_class_coverage(sets, labels) == [0.5, 1.0, 0.0]
    assert per_class_coverage(sets[:2], labels[:2]) == [1.0, 1.0, None]


def test_leave_one_group_out_never_calibrates_on_the_held_out_group() -> None:
    groups = np.array(["b", "a", "b", "c", "a", "b"])
    seen = []
    for g, cal, test in leave_one_group_out(groups):
        assert set(groups[test]) == {g} and g not in set(groups[cal])
        assert len(cal) + len(test) == len(groups)
        seen.extend(test.tolist())
    assert sorted(seen) == list(range(len(groups)))


def test_group_disjoint_sets_use_only_other_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    probs, labels = _simulate(rng, 60)
    groups = np.repeat([f"compound{i}" for i in range(6)], 10)
    expected = np.zeros(probs.shape, dtype=bool)
    for g in np.unique(groups):
        own = groups == g
        expected[own] = predict_sets(probs[~own], labels[~own], probs[own], 0.2, "lac", True)
    got = group_disjoint_sets(probs, labels, groups, 0.2, "lac", mondrian=True)
    np.testing.assert_array_equal(got, expected)

    calls: list[tuple[np.ndarray, np.ndarray]] = []
    real = conformal.predict_sets

    def spy(cal_probs: np.ndarray, cal_labels: np.ndarray, test_probs: np.ndarray, *a, **k):
        calls.append((cal_probs, test_probs))
        return real(cal_probs, cal_labels, test_probs, *a, **k)

    monkeypatch.setattr(conformal, "predict_sets", spy)
    group_disjoint_sets(probs, labels, groups, 0.2, "aps", randomize=True, rng=0)
    assert len(calls) == 6
    for cal_probs, test_probs in calls:  # rows are unique vectors: no test row in calibration
        cal_rows = {tuple(r) for r in cal_probs}
        assert not any(tuple(r) in cal_rows for r in test_probs)
        assert len(cal_probs) == 50


def test_input_errors() -> None:
    probs = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="class indices"):
        predict_sets(probs, np.array([0, 1, 2]), probs, 0.1)
    with pytest.raises(ValueError, match="same class columns"):
        predict_sets(probs, np.array([0, 1, 1]), np.full((2, 3), 1 / 3), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        predict_sets(probs, np.array([0, 1, 1]), np.full((2, 2), np.nan), 0.1)
    with pytest.raises(ValueError, match="groups has"):
        group_disjoint_sets(probs, np.array([0, 1, 1]), ["a"], 0.1)
