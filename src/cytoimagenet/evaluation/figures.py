"""Figures of the benchmark report: confusion matrices and an optional UMAP of features.

Both write one PNG with matplotlib's Agg backend (no display needed) and return its path.
UMAP needs the ``umap`` extra (``umap-learn``); nothing else here does.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError, CytoImageNetError
from cytoimagenet.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Label columns a UMAP is coloured by when none is named, first present wins.
LABEL_COLUMNS = ("Metadata_MoA", "Metadata_Label", "Metadata_label")


class MissingExtraError(CytoImageNetError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: object, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
    _pyplot().close(fig)
    return path


def _wrap(label: str, width: int) -> str:
    return "\n".join(textwrap.wrap(label, width, break_long_words=False)) or label


def draw_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> Figure:
    """Draw a confusion matrix (rows true, columns predicted) and return the figure.

    Readable at any class count: long names are wrapped onto lines, columns are labelled
    horizontally while the wrapped names fit their cells and on one line at 45° otherwise
    (neighbours then sit a cell apart across the text, more than its height), the figure
    grows with the number of classes and the longest name, every cell shows its count
    (zeros in grey) and each true class its total. Cells are coloured by the row fraction
    (per-class recall), so rare classes are as readable as common ones.

    Raises
    ------
    ConfigError
        When the matrix is not square or does not match ``labels``.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    k = len(labels)
    if counts.ndim != 2 or counts.shape != (k, k):
        raise ConfigError(
            f"{title}: a {k}-class confusion matrix must be {k}x{k}, got {counts.shape}"
        )
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    font = 9 if k <= 8 else 7 if k <= 16 else 6
    wrapped = [_wrap(str(name), 14) for name in labels]
    lines = [line for w in wrapped for line in w.splitlines()] or [""]
    label_in = 0.62 * font / 72 * max(len(line) for line in lines)  # widest line, inches
    rows_in = 1.25 * font / 72 * max(w.count("\n") + 1 for w in wrapped)  # tallest label
    flat = k <= 8 and label_in <= 1.2  # column names side by side when each fits its cell
    cell = max(0.5, label_in + 0.15) if flat else max(0.32, 2.4 * font / 72)
    side = max(2.0, k * cell)
    longest_in = 0.62 * font / 72 * max(len(str(name)) for name in labels)
    below = rows_in if flat else 0.75 * longest_in  # room for the column names
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(side + label_in + 1.6, side + below + 1.0))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(
        range(k),
        wrapped if flat else [str(name) for name in labels],
        rotation=0 if flat else 45,
        ha="center" if flat else "right",
        rotation_mode="anchor",
        fontsize=font,
    )
    ax.set_yticks(
        range(k),
        [f"{w} ({int(t)})" for w, t in zip(wrapped, totals[:, 0], strict=True)],
        fontsize=font,
    )
    ax.set_xlabel("predicted", fontsize=font + 1)
    ax.set_ylabel("true (items)", fontsize=font + 1)
    ax.set_title(title, fontsize=font + 1)
    for (i, j), v in np.ndenumerate(counts):
        colour = "white" if share[i, j] > 0.5 else "black" if v else "0.6"
        ax.text(j, i, str(v), ha="center", va="center", fontsize=font, color=colour)
    fig.tight_layout()
    return fig


def confusion_figure(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str, path: Path
) -> Path:
    """Write a confusion matrix as a PNG: rows true, columns predicted (:func:`draw_confusion`).

    Parameters
    ----------
    labels : sequence of str
        Class names, in the matrix's order.
    matrix : sequence of sequence of int
        Square counts.
    title : str
        Figure title (benchmark, score, feature set, accuracy).
    path : Path
        PNG to write (atomically; folders created).

    Raises
    ------
    ConfigError
        When the matrix is not square or does not match ``labels``.
    """
    return _save(draw_confusion(labels, matrix, title), path)


def require_umap() -> ModuleType:
    """Import ``umap`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        import umap
    except ImportError as exc:
        raise MissingExtraError(
            "the UMAP figure needs umap-learn, which is not installed: "
            "pip install 'cytoimagenet[umap]' (or leave out --umap)"
        ) from exc
    return umap


def umap_figure(
    features: Path,
    path: Path,
    *,
    label_column: str | None = None,
    seed: int = 0,
    max_points: int = 20_000,
) -> Path:
    """Write a 2-D UMAP of a features table, coloured by a label column.

    Parameters
    ----------
    features : Path
        Parquet/CSV features table (``Metadata_*`` + numeric feature columns).
    path : Path
        PNG to write.
    label_column : str, optional
        Colour by this column; the first of :data:`LABEL_COLUMNS` present by default.
    seed : int
        Seed of the subsample and of UMAP.
    max_points : int
        Rows beyond this are subsampled (seeded), since UMAP is quadratic-ish in memory.

    Raises
    ------
    MissingExtraError
        When umap-learn is not installed (checked before the table is read).
    ConfigError
        When the table has no label column or no numeric feature column.
    """
    umap = require_umap()
    features = Path(features)
    table = pl.read_csv(features) if ".csv" in features.suffixes else pl.read_parquet(features)
    label = label_column or next((c for c in LABEL_COLUMNS if c in table.columns), None)
    if label is None or label not in table.columns:
        raise ConfigError(
            f"{features}: no label column to colour the UMAP by (looked for "
            f"{label_column or ', '.join(LABEL_COLUMNS)}); name one with --umap-label"
        )
    numeric = [
        c for c, t in table.schema.items() if not c.startswith("Metadata_") and t.is_numeric()
    ]
    if not numeric:
        raise ConfigError(f"{features}: no numeric feature column")
    table = table.filter(pl.col(label).is_not_null())
    if table.height > max_points:
        table = table.sample(max_points, seed=seed)
    x = table.select(numeric).to_numpy().astype(np.float32)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    xy = umap.UMAP(random_state=seed).fit_transform(x)
    names = table[label].cast(pl.String).to_list()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    classes = sorted(set(names))
    cmap = plt.get_cmap("tab20", max(len(classes), 1))
    codes = np.array([classes.index(n) for n in names])
    for i, name in enumerate(classes):
        sel = codes == i
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=cmap(i), label=name, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"UMAP of {features.name} ({len(names)} rows, by {label})", fontsize=9)
    ax.legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)
