"""RESULT.json: build, write, read and summarise the shared result format.

The format (``cytoimagenet-result/1``) is shared by ``evaluate``, ``score`` and ``report``:
headline ``accuracy``/``correct``/``n``/``ci95`` copied from ``scores[primary]``, one entry
per score with its confusion matrix (rows = true, columns = predicted), the resolved
protocol with its frozen description, input checksum, versions and a UTC timestamp.
Fractions are in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cytoimagenet.errors import SchemaError
from cytoimagenet.evaluation.stats import wald_interval, wilson_interval
from cytoimagenet.io.atomic import atomic_path

RESULT_FORMAT = "cytoimagenet-result/1"
_REQUIRED = (
    "format", "benchmark", "feature_set", "protocol", "primary", "accuracy", "correct", "n", "ci95",
)  # fmt: skip


def confusion_matrix(
    true: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> tuple[list[str], list[list[int]]]:
    """Return the class order (sorted, true ∪ predicted unless given) and the count matrix."""
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true labels but {len(pred)} predictions")
    order = list(labels) if labels is not None else sorted({*true, *pred})
    pos = {c: i for i, c in enumerate(order)}
    rows = np.fromiter((pos[t] for t in true), dtype=np.int64, count=len(true))
    cols = np.fromiter((pos[p] for p in pred), dtype=np.int64, count=len(pred))
    matrix = np.zeros((len(order), len(order)), dtype=np.int64)
    np.add.at(matrix, (rows, cols), 1)
    return order, matrix.tolist()


def class_metrics(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> dict[str, object]:
    """Per-class recall and support, balanced accuracy and macro F1 of a confusion matrix.

    ``matrix[i][j]`` counts items of true class ``labels[i]`` predicted as ``labels[j]``.
    As scikit-learn computes them: balanced accuracy is the mean recall over the classes
    that have items; macro F1 averages over every class in ``labels`` (true or predicted),
    a class never predicted correctly scoring 0. A class without items has recall ``None``.

    Examples
    --------
    >>> m = class_metrics(["a", "b"], [[2, 0], [1, 1]])
    >>> m["balanced_accuracy"], round(m["macro_f1"], 4)
    (0.75, 0.7333)
    """
    confusion = np.asarray(matrix, dtype=np.int64).reshape(len(labels), len(labels))
    hits = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    recall = np.divide(hits, support, out=np.full(len(labels), np.nan), where=support > 0)
    denominator = support + predicted
    f1 = np.divide(2 * hits, denominator, out=np.zeros(len(labels)), where=denominator > 0)
    present = support > 0
    return {
        "per_class_recall": {
            c: (None if np.isnan(r) else float(r)) for c, r in zip(labels, recall, strict=True)
        },
        "support": {c: int(n) for c, n in zip(labels, support, strict=True)},
        "balanced_accuracy": float(recall[present].mean()) if present.any() else None,
        "macro_f1": float(f1.mean()) if len(labels) else None,
    }


def score_entry(
    true: Sequence[str],
    pred: Sequence[str],
    *,
    ci: str = "wald",
    extra: Mapping[str, object] | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, object]:
    """Return one ``scores`` entry: accuracy, counts, ``ci95``, labels, confusion, extra.

    ``extra`` always holds the other interval and :func:`class_metrics` (per-class recall,
    support, balanced accuracy, macro F1: single-cell test sets are imbalanced).

    Parameters
    ----------
    true, pred : sequence of str
        True and predicted labels of the scored items (unscored items left out).
    ci : {"wald", "wilson"}
        The interval of ``ci95``; the other one goes to ``extra``.
    extra : mapping, optional
        More fields for ``extra`` (e.g. a bootstrap interval).
    labels : sequence of str, optional
        Class order of the confusion matrix (sorted true ∪ predicted by default).

    Raises
    ------
    SchemaError
        When nothing was scored.
    """
    if len(true) == 0:
        raise SchemaError("no items to score (every query was excluded or had no neighbour)")
    correct = int(sum(t == p for t, p in zip(true, pred, strict=True)))
    n = len(true)
    wald, wilson = wald_interval(correct, n), wilson_interval(correct, n)
    labels, matrix = confusion_matrix(true, pred, labels)
    more: dict[str, object] = {
        f"{'wilson' if ci == 'wald' else 'wald'}_ci95": (wilson if ci == "wald" else wald),
        **class_metrics(labels, matrix),
    }
    more.update(extra or {})
    return {
        "accuracy": correct / n,
        "correct": correct,
        "n": n,
        "ci95": wald if ci == "wald" else wilson,
        "labels": labels,
        "confusion": matrix,
        "extra": more,
    }


def versions() -> dict[str, str]:
    """Return the Python and package versions that matter for a result."""
    from importlib.metadata import PackageNotFoundError, version

    from cytoimagenet.provenance import environment

    env = environment()
    packages: Mapping[str, str] = env["packages"]  # type: ignore[assignment]
    out = {"python": str(env["python"]), **packages}
    for name in ("scikit-learn", "faiss-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def base_result(
    *,
    benchmark: str,
    protocol: Mapping[str, object],
    scores: Mapping[str, Mapping[str, object]],
    primary: str,
) -> dict[str, object]:
    """Assemble a RESULT.json dict without the input fields (see :func:`with_input`).

    The headline numbers come from ``scores[primary]``.
    """
    if primary not in scores:
        raise ValueError(f"primary score {primary!r} is not among {list(scores)}")
    head = scores[primary]
    return {
        "format": RESULT_FORMAT,
        "benchmark": benchmark,
        "protocol": dict(protocol),
        "primary": primary,
        "accuracy": head["accuracy"],
        "correct": head["correct"],
        "n": head["n"],
        "ci95": head["ci95"],
        "scores": {k: dict(v) for k, v in scores.items()},
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def with_input(
    result: Mapping[str, object],
    *,
    feature_set: str,
    features: Path | str,
    features_sha256: str | None = None,
) -> dict[str, object]:
    """Return ``result`` with ``feature_set``, ``features`` and its checksum after ``benchmark``.

    ``features_sha256`` is computed from the file when not given.
    """
    if features_sha256 is None:
        from cytoimagenet.provenance import sha256_file

        features_sha256 = sha256_file(Path(features))
    rest = {k: v for k, v in result.items() if k not in ("format", "benchmark")}
    return {
        "format": result["format"],
        "benchmark": result["benchmark"],
        "feature_set": feature_set,
        "features": str(features),
        "features_sha256": features_sha256,
        **rest,
    }


def build_result(
    *,
    benchmark: str,
    feature_set: str,
    features: Path | str,
    features_sha256: str,
    protocol: Mapping[str, object],
    scores: Mapping[str, Mapping[str, object]],
    primary: str,
) -> dict[str, object]:
    """Assemble a RESULT.json dict; the headline numbers come from ``scores[primary]``."""
    base = base_result(benchmark=benchmark, protocol=protocol, scores=scores, primary=primary)
    return with_input(
        base, feature_set=feature_set, features=features, features_sha256=features_sha256
    )


def _check(result: Mapping[str, object], where: str) -> None:
    if result.get("format") != RESULT_FORMAT:
        raise SchemaError(
            f"{where}: not a {RESULT_FORMAT} result (format={result.get('format')!r})"
        )
    missing = [k for k in _REQUIRED if k not in result]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {missing}")


def write_result(path: Path, result: Mapping[str, object]) -> None:
    """Write a result atomically as UTF-8 JSON (indent 2) after checking its format."""
    path = Path(path)
    _check(result, str(path))
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_result(path: Path) -> dict[str, Any]:
    """Read a RESULT.json, checking ``format`` and the headline fields.

    Raises
    ------
    SchemaError
        When the file is missing, not JSON, not a ``cytoimagenet-result/1`` document, or
        lacks a headline field.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such result file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: not a readable JSON result ({exc})") from exc
    if not isinstance(doc, dict):
        raise SchemaError(f"{path}: a result must be a JSON object")
    _check(doc, str(path))
    return doc


def format_score(score: Mapping[str, object]) -> str:
    """Format one score as ``83.50 ± 7.17 % (86/103)`` (Wald) or ``… % [low, high] (…)``."""
    acc = 100 * float(score["accuracy"])  # type: ignore[arg-type]
    ci: Mapping[str, object] = score["ci95"]  # type: ignore[assignment]
    counts = f"({score['correct']}/{score['n']})"
    if ci.get("method") == "wald":
        return f"{acc:.2f} ± {100 * float(ci['half_width']):.2f} % {counts}"  # type: ignore[arg-type]
    low, high = 100 * float(ci["low"]), 100 * float(ci["high"])  # type: ignore[arg-type]
    return f"{acc:.2f} % [{low:.2f}, {high:.2f}] {counts}"


def map_summary(result: Mapping[str, object]) -> str:
    """Return ``mAP activity 0.734 (9/12 q<0.05); mAP consistency …`` of a result's ``map``."""
    from cytoimagenet.evaluation.mean_ap import format_map

    block: Mapping[str, Any] = result.get("map") or {}  # type: ignore[assignment]
    return "; ".join(
        f"mAP {kind} {format_map(block[kind])}"
        for kind in ("activity", "consistency")
        if kind in block
    )


def summary_line(result: Mapping[str, object]) -> str:
    """Return the one-line summary the ``evaluate`` command prints.

    Examples: ``bbbc021 cytoimagenet NSC 1-NN cosine: 83.50 ± 7.17 % (86/103)``;
    ``coos7 11-NN euclidean: test1 … ; test2 …``.
    """
    protocol: Mapping[str, object] = result["protocol"]  # type: ignore[assignment]
    scores: Mapping[str, Mapping[str, object]] = result["scores"]  # type: ignore[assignment]
    knn = f"{protocol.get('k')}-NN {protocol.get('metric')}"
    groups: list[object] = protocol.get("group_by") or []  # type: ignore[assignment]
    if groups:  # grouped single-cell protocols name their grouping
        knn += " grouped by " + ",".join(str(g) for g in groups)
    bench = str(result["benchmark"])
    if bench == "profiles":
        return f"profiles {protocol.get('metric')} {map_summary(result)}"
    if bench == "bbbc021":
        parts = [f"{name.upper()} {knn}: {format_score(s)}" for name, s in scores.items()]
        if result.get("map"):
            parts.append(map_summary(result))
        return f"{bench} {protocol['name']} " + "; ".join(parts)
    if bench == "cyclops":
        return f"{bench} leave-one-out {knn}: {format_score(scores[str(result['primary'])])}"
    parts = [f"{name} {format_score(s)}" for name, s in scores.items()]
    return f"{bench} {knn}: " + "; ".join(parts)
