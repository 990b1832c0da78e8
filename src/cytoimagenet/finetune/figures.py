"""Confusion matrices, per-class recall and conformal summaries as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def format_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Return a confusion matrix as aligned text; columns are numbered like the rows.

    Examples
    --------
    >>> print(format_confusion([[2, 0], [1, 3]], ["a", "b"]))
    rows true, columns predicted
         1  2
    1 a  2  0
    2 b  1  3
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    cell = max(2, len(str(int(matrix.max(initial=0)))), len(str(len(labels))))
    names = [f"{i + 1} {name}" for i, name in enumerate(labels)]
    width = max(len(n) for n in names)
    header = " " * width + "".join(f" {i + 1:>{cell}}" for i in range(len(labels)))
    lines = ["rows true, columns predicted", header]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:<{width}}" + "".join(f" {v:>{cell}}" for v in row))
    return "\n".join(lines)


def format_recall(recall: Mapping[str, float | None], support: Mapping[str, int]) -> str:
    """Return per-class recall as aligned text lines (``n/a`` for a class with no rows)."""
    width = max(len(c) for c in recall)
    lines = []
    for c, r in recall.items():
        value = "n/a" if r is None else f"{100 * r:5.1f}%"
        lines.append(f"  {c:<{width}}  {value:>6}  (n={support.get(c, 0)})")
    return "\n".join(lines)


def format_conformal(block: Mapping[str, object]) -> str:
    """Return one line per error rate of a RESULT.json ``conformal`` block."""
    head = (
        f"conformal ({block['score']}, {'Mondrian' if block['mondrian'] else 'split'}, "
        f"calibration: {block['calibration']}):"
    )
    lines = [head]
    for r in block["results"]:  # type: ignore[attr-defined]
        lines.append(
            f"  alpha {r['alpha']:.3g}: coverage {100 * r['coverage']:.1f}% "
            f"(target ≥ {100 * (1 - r['alpha']):.0f}%), mean set size {r['mean_size']:.2f}, "
            f"singletons {100 * r['singleton_share']:.1f}%, empty {100 * r['empty_share']:.1f}%"
        )
    return "\n".join(lines)
