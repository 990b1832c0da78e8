"""Confidence intervals: the paper's Wald numbers, Wilson against scipy, group bootstrap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import binomtest

from cytoimagenet.errors import ConfigError
from cytoimagenet.evaluation.stats import bootstrap_interval, wald_interval, wilson_interval


def _paper(correct: int, n: int) -> str:
    ci = wald_interval(correct, n)
    return f"{100 * correct / n:.2f} ± {100 * ci['half_width']:.2f}"


@pytest.mark.parametrize(
    ("correct", "text"),
    # Table 2, BBBC021 row (n = 103 treatments): Random, ImageNet = CytoImageNet, Fusion.
    [(28, "27.18 ± 8.59"), (86, "83.50 ± 7.17"), (89, "86.41 ± 6.62")],
)
def test_wald_reproduces_the_papers_bbbc021_row(correct: int, text: str) -> None:
    assert _paper(correct, 103) == text


@pytest.mark.parametrize(
    ("accuracy", "half_width"),
    # Table 2, CYCLoPs row with the paper's stated n = 27,058 cells.
    [(0.5306, 0.59), (0.6847, 0.55), (0.6519, 0.57), (0.7797, 0.49)],
)
def test_wald_reproduces_the_papers_cyclops_row(accuracy: float, half_width: float) -> None:
    n = 27_058
    ci = wald_interval(round(accuracy * n), n)
    assert round(100 * ci["half_width"], 2) == half_width


def test_wald_bounds_and_degenerate_ends() -> None:
    ci = wald_interval(86, 103)
    assert ci["method"] == "wald" and ci["z"] == 1.96
    assert ci["low"] == pytest.approx(86 / 103 - ci["half_width"])
    assert ci["high"] == pytest.approx(86 / 103 + ci["half_width"])
    assert wald_interval(103, 103)["half_width"] == 0.0  # the Wald interval's known defect
    assert wald_interval(1, 3)["low"] >= 0.0 and wald_interval(2, 3)["high"] <= 1.0


@pytest.mark.parametrize(("correct", "n"), [(86, 103), (0, 10), (10, 10), (1, 2), (5000, 9999)])
def test_wilson_matches_scipy(correct: int, n: int) -> None:
    ours = wilson_interval(correct, n)
    ref = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours["low"] == pytest.approx(ref.low, abs=1e-9)
    assert ours["high"] == pytest.approx(ref.high, abs=1e-9)
    assert ours["half_width"] == pytest.approx((ref.high - ref.low) / 2)


def test_wilson_stays_informative_where_wald_collapses() -> None:
    assert wilson_interval(103, 103)["low"] < 0.97
    assert wilson_interval(0, 103)["high"] > 0.03


def test_bootstrap_is_seeded_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(0)
    correct = rng.random(103) < 0.8
    groups = rng.integers(0, 38, 103).tolist()
    a = bootstrap_interval(correct, groups, seed=1)
    assert a == bootstrap_interval(correct, groups, seed=1)
    assert a != bootstrap_interval(correct, groups, seed=2)
    assert a["low"] < correct.mean() < a["high"]
    assert (a["groups"], a["n_boot"], a["method"]) == (len(set(groups)), 2000, "bootstrap")


def test_group_bootstrap_is_wider_for_clustered_errors() -> None:
    # 20 compounds, each entirely right or entirely wrong: resampling compounds must show
    # more uncertainty than treating the 100 items as independent.
    correct = np.repeat(np.arange(20) < 14, 5)
    by_group = bootstrap_interval(correct, np.repeat(np.arange(20), 5).tolist(), seed=0)
    by_item = bootstrap_interval(correct, list(range(100)), seed=0)
    assert by_group["half_width"] > 1.5 * by_item["half_width"]
    # Items as their own groups: close to the binomial interval.
    assert by_item["half_width"] == pytest.approx(wilson_interval(70, 100)["half_width"], rel=0.2)


def test_bootstrap_of_all_correct_is_a_point() -> None:
    ci = bootstrap_interval([True] * 6, ["a", "a", "b", "b", "c", "c"], n_boot=50, seed=0)
    assert (ci["low"], ci["high"], ci["half_width"]) == (1.0, 1.0, 0.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wald_interval(5, 0), "n > 0"),
        (lambda: wilson_interval(11, 10), "correct <= n"),
        (lambda: bootstrap_interval([True], ["a", "b"]), "one group per item"),
        (lambda: bootstrap_interval([True], ["a"], n_boot=0), "n_boot >= 1"),
    ],
)
def test_clear_errors(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("seed", range(6))
def test_class_metrics_match_scikit_learn(seed: int) -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

    from cytoimagenet.evaluation.result import score_entry

    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d"]
    true = rng.choice(classes[:3], size=40, p=[0.6, 0.3, 0.1]).tolist()  # imbalanced
    pred = [t if rng.random() < 0.6 else str(rng.choice(classes)) for t in true]  # 'd': never true
    extra = score_entry(true, pred)["extra"]
    labels = sorted({*true, *pred})
    assert extra["macro_f1"] == pytest.approx(
        f1_score(true, pred, labels=labels, average="macro", zero_division=0)
    )
    with warnings.catch_warnings():  # scikit-learn warns of the never-true class 'd'
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(true, pred)
    assert extra["balanced_accuracy"] == pytest.approx(balanced)
    recall = recall_score(true, pred, labels=sorted(set(true)), average=None)
    assert [extra["per_class_recall"][c] for c in sorted(set(true))] == pytest.approx(recall)
    assert extra["support"] == {c: true.count(c) for c in labels}
    if "d" in labels:
        assert extra["per_class_recall"]["d"] is None
