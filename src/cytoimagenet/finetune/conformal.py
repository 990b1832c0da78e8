"""Conformal prediction sets for a classifier's probabilities, in plain numpy.

Split (inductive) conformal prediction turns any classifier into one that outputs a *set* of
classes holding the true class with probability at least ``1 − alpha``, provided the
calibration and test examples are exchangeable. Two variants:

* **split** (marginal): one threshold from all calibration examples;
* **Mondrian** (class-conditional): one threshold per class, from the calibration examples of
  that class, so the guarantee holds within every class (at the price of small calibration
  sets for rare classes).

Two nonconformity scores (larger = stranger):

* **LAC** ("least ambiguous set-valued classifier", crepes' *hinge*): ``1 − p_y``;
* **APS** (adaptive prediction sets, Romano et al. 2020): the probability mass of the classes
  ranked above ``y`` plus ``p_y`` itself (``randomize=False``), or plus ``U · p_y`` with one
  uniform ``U`` per example (``randomize=True``, exact coverage in expectation).

Thresholds use the finite-sample corrected quantile: the ``ceil((n + 1)(1 − alpha))``-th
smallest of ``n`` calibration scores, infinite when that rank exceeds ``n`` (then every class
is in every set: too few calibration examples for the requested error rate). Class ``c`` is
in a test example's set when its score is at most the threshold — the same sets as
``{c : p_c > alpha}`` with the conformal p-values of :func:`p_values`.

Labels are integer class indices ``0 … n_classes − 1`` throughout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

ScoreName = Literal["lac", "aps"]
SCORES: tuple[str, ...] = ("lac", "aps")

Rng = np.random.Generator | int | None


def _rng(rng: Rng) -> np.random.Generator:
    # None means seed 0: every random choice in the package is reproducible by default.
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


def _check_probs(probs: np.ndarray, name: str) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [examples, classes], got shape {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return probs


def _check_labels(labels: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be class indices in [0, {n_classes}), got {labels}")
    return labels.astype(np.int64)


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha (the error rate) must lie in (0, 1), got {alpha}")
    return float(alpha)


def nonconformity(
    probs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    score: ScoreName = "lac",
    randomize: bool = False,
    rng: Rng = None,
) -> np.ndarray:
    """Return nonconformity scores of every class, or of the given labels.

    Parameters
    ----------
    probs : ndarray of shape (n, n_classes)
        Class probabilities (rows summing to 1 for APS to mean what it says).
    labels : ndarray of shape (n,), optional
        Class indices; when given, only their scores are returned.
    score : {"lac", "aps"}
        ``1 − p_y``, or the adaptive cumulative mass (ties in probability are ranked in
        class order).
    randomize : bool
        APS only: count ``U · p_y`` instead of ``p_y``, one ``U ~ Uniform(0, 1)`` per row.
    rng : Generator or int, optional
        Source of ``U`` (seed 0 when omitted).

    Returns
    -------
    ndarray
        Shape ``(n, n_classes)`` without labels, ``(n,)`` with them.
    """
    probs = _check_probs(probs, "probs")
    if score == "lac":
        scores = 1.0 - probs
    elif score == "aps":
        order = np.argsort(-probs, axis=1, kind="stable")
        ranked = np.take_along_axis(probs, order, axis=1)
        above = np.cumsum(ranked, axis=1) - ranked
        own = ranked
        if randomize:
            own = ranked * _rng(rng).random((probs.shape[0], 1))
        scores = np.empty_like(probs)
        np.put_along_axis(scores, order, above + own, axis=1)
    else:
        raise ValueError(f"unknown nonconformity score {score!r}; choose from {SCORES}")
    if labels is None:
        return scores
    labels = _check_labels(labels, probs.shape[0], probs.shape[1])
    return scores[np.arange(len(labels)), labels]


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """Return the finite-sample corrected ``1 − alpha`` quantile of calibration scores.

    The ``k``-th smallest score with ``k = ceil((n + 1)(1 − alpha))``; ``inf`` when ``k > n``
    (including ``n = 0``).

    Examples
    --------
    >>> conformal_quantile(np.arange(1.0, 10.0), 0.2)  # k = ceil(10 * 0.8) = 8
    8.0
    >>> conformal_quantile(np.arange(1.0, 10.0), 0.05)  # k = 10 > 9
    inf
    """
    alpha = _check_alpha(alpha)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n = scores.size
    # Round away float noise: (9 + 1) * (1 - 0.1) is 9.000000000000002, whose ceil is 10.
    k = math.ceil(round((n + 1) * (1.0 - alpha), 9))
    if k > n:
        return math.inf
    return float(np.partition(scores, k - 1)[k - 1])


def predict_sets(
    cal_probs: np.ndarray,
    cal_labels: np.ndarray,
    test_probs: np.ndarray,
    alpha: float,
    score: ScoreName = "lac",
    mondrian: bool = False,
    rng: Rng = None,
    *,
    randomize: bool = False,
) -> np.ndarray:
    """Return conformal prediction sets for the test examples.

    Parameters
    ----------
    cal_probs, test_probs : ndarray of shape (n, n_classes)
        Probabilities of the calibration and test examples (same class order).
    cal_labels : ndarray of shape (n_cal,)
        True class indices of the calibration examples.
    alpha : float
        Target error rate: sets hold the true class with probability ≥ ``1 − alpha``.
    score : {"lac", "aps"}
        Nonconformity score (see :func:`nonconformity`).
    mondrian : bool
        One threshold per class from that class's calibration examples; a class with too
        few of them (or none) is in every set.
    rng : Generator or int, optional
        Randomised APS only (seed 0 when omitted).
    randomize : bool
        Randomised APS.

    Returns
    -------
    ndarray of bool, shape (n_test, n_classes)
        ``sets[i, c]`` is True when class ``c`` is in example ``i``'s set.
    """
    cal_probs = _check_probs(cal_probs, "cal_probs")
    test_probs = _check_probs(test_probs, "test_probs")
    n_classes = cal_probs.shape[1]
    if test_probs.shape[1] != n_classes:
        raise ValueError(
            f"calibration has {n_classes} classes, test has {test_probs.shape[1]}; "
            "use the same class columns for both"
        )
    cal_labels = _check_labels(cal_labels, cal_probs.shape[0], n_classes)
    generator = _rng(rng)
    kind = {"score": score, "randomize": randomize, "rng": generator}
    cal_scores = nonconformity(cal_probs, cal_labels, **kind)  # type: ignore[arg-type]
    test_scores = nonconformity(test_probs, **kind)  # type: ignore[arg-type]
    if mondrian:
        thresholds = np.array(
            [conformal_quantile(cal_scores[cal_labels == c], alpha) for c in range(n_classes)]
        )
    else:
        thresholds = np.full(n_classes, conformal_quantile(cal_scores, alpha))
    return test_scores <= thresholds[None, :]


def p_values(
    cal_scores: np.ndarray,
    test_scores: np.ndarray,
    *,
    cal_labels: np.ndarray | None = None,
    smoothing: bool = False,
    rng: Rng = None,
) -> np.ndarray:
    """Return conformal p-values of every class of every test example.

    ``p = (#{cal ≥ s} + 1) / (n + 1)``; smoothed: ``(#{cal > s} + θ (#{cal = s} + 1)) / (n + 1)``
    with ``θ ~ Uniform(0, 1)``. With ``cal_labels`` (Mondrian, class-conditional), column ``c``
    is compared with the calibration scores of class ``c`` only.

    Parameters
    ----------
    cal_scores : ndarray of shape (n_cal,)
        Nonconformity of each calibration example's true class.
    test_scores : ndarray of shape (n_test, n_classes)
        Nonconformity of every class of every test example.
    cal_labels : ndarray of shape (n_cal,), optional
        Class indices of the calibration examples (Mondrian p-values).
    smoothing : bool
        Smoothed (randomised) p-values.
    rng : Generator or int, optional
        Source of ``θ`` (seed 0 when omitted).
    """
    cal_scores = np.asarray(cal_scores, dtype=np.float64).ravel()
    test_scores = np.asarray(test_scores, dtype=np.float64)
    theta = _rng(rng).random(test_scores.shape) if smoothing else None
    out = np.empty_like(test_scores)
    for c in range(test_scores.shape[1]):
        ref = cal_scores if cal_labels is None else cal_scores[np.asarray(cal_labels) == c]
        ref = np.sort(ref)
        n = ref.size
        s = test_scores[:, c]
        ge = n - np.searchsorted(ref, s, side="left")
        if theta is None:
            out[:, c] = (ge + 1) / (n + 1)
        else:
            gt = n - np.searchsorted(ref, s, side="right")
            out[:, c] = (gt + theta[:, c] * (ge - gt + 1)) / (n + 1)
    return out


def set_metrics(sets: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Summarise prediction sets against the true classes.

    Returns
    -------
    dict
        ``coverage`` (share of sets holding the true class), ``mean_size``,
        ``singleton_share``, ``empty_share`` and ``singleton_accuracy`` (share of singleton
        sets that are correct; NaN when there are none).
    """
    sets = np.asarray(sets, dtype=bool)
    labels = _check_labels(labels, sets.shape[0], sets.shape[1])
    if sets.shape[0] == 0:
        raise ValueError("no prediction sets to summarise")
    sizes = sets.sum(axis=1)
    hit = sets[np.arange(len(labels)), labels]
    single = sizes == 1
    return {
        "coverage": float(hit.mean()),
        "mean_size": float(sizes.mean()),
        "singleton_share": float(single.mean()),
        "empty_share": float((sizes == 0).mean()),
        "singleton_accuracy": float(hit[single].mean()) if single.any() else math.nan,
    }


def per_class_coverage(sets: np.ndarray, labels: np.ndarray) -> list[float | None]:
    """Return the coverage within each true class (None for a class with no examples)."""
    sets = np.asarray(sets, dtype=bool)
    labels = _check_labels(labels, sets.shape[0], sets.shape[1])
    hit = sets[np.arange(len(labels)), labels]
    return [
        float(hit[labels == c].mean()) if (labels == c).any() else None
        for c in range(sets.shape[1])
    ]


def leave_one_group_out(
    groups: Sequence[object] | np.ndarray,
) -> Iterator[tuple[object, np.ndarray, np.ndarray]]:
    """Yield ``(held_out, calibration_rows, test_rows)`` for every group, in first-seen order.

    The calibration rows are every row of the *other* groups, so no group is ever in its own
    calibration set.
    """
    values = np.asarray(groups, dtype=object)
    seen: dict[object, None] = dict.fromkeys(values.tolist())
    for g in seen:
        test = values == g
        yield g, np.flatnonzero(~test), np.flatnonzero(test)


def group_disjoint_sets(
    probs: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[object] | np.ndarray,
    alpha: float,
    score: ScoreName = "lac",
    mondrian: bool = False,
    rng: Rng = None,
    *,
    randomize: bool = False,
) -> np.ndarray:
    """Prediction sets where each group's rows are calibrated on the other groups' rows only.

    For leave-one-compound-out predictions (every row predicted by a model that never saw its
    compound), pass the compound of each row as ``groups``. The treatments of one compound
    are alike (concentrations of one drug), so they are exchangeable with other compounds'
    treatments only as a block: calibrating a compound on its own other concentrations
    would make its threshold depend on the very examples being tested, and coverage would
    be measured on dependent data. Holding the whole compound out makes the test compound
    one more draw from the population of compounds the threshold was fitted on.

    Parameters
    ----------
    probs : ndarray of shape (n, n_classes)
    labels : ndarray of shape (n,)
    groups : sequence of length n
        Group (compound) of each row.
    alpha, score, mondrian, rng, randomize
        As in :func:`predict_sets`.

    Returns
    -------
    ndarray of bool, shape (n, n_classes)
    """
    probs = _check_probs(probs, "probs")
    labels = _check_labels(labels, probs.shape[0], probs.shape[1])
    if len(groups) != probs.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries for {probs.shape[0]} rows")
    generator = _rng(rng)
    sets = np.zeros(probs.shape, dtype=bool)
    for _, cal, test in leave_one_group_out(groups):
        sets[test] = predict_sets(probs[cal], labels[cal], probs[test], alpha, score, mondrian,
                                  generator, randomize=randomize)  # fmt: skip
    return sets
