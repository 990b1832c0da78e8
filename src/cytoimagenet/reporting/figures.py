"""Figures of a run report: example images per class, training curves, a feature map.

Every function takes tables or folders that the pipeline wrote and writes one PNG with
matplotlib's Agg backend (no display needed). They return the path written.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.io.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def class_grid(dataset: Path, out: Path, *, per_class: int = 6, seed: int = 0) -> Path:
    """Write a grid of ``per_class`` seeded example images (rows) for every label of a dataset.

    Parameters
    ----------
    dataset : Path
        A folder written by ``cytoimagenet build`` (``metadata.parquet`` + PNGs), or the
        published dataset (``metadata.csv`` + label folders).
    out : Path
        PNG to write.
    """
    import cv2

    from cytoimagenet.training.published import read_dataset

    table = read_dataset(dataset, ["label", "path", "filename"])
    labels = sorted(table["label"].unique())
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(labels), per_class, figsize=(1.3 * per_class, 1.4 * len(labels)), squeeze=False
    )
    for row, label in enumerate(labels):
        rows = table.filter(pl.col("label") == label)
        picked = rows.sample(min(per_class, rows.height), seed=seed).sort("filename")
        for col in range(per_class):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < picked.height:
                item = picked.row(col, named=True)
                image = cv2.imread(str(dataset / item["path"] / item["filename"]), 0)
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            else:
                ax.axis("off")
        axes[row][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Example images per class (8-bit PNGs as written)", fontsize=10)
    return _save(fig, out)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Read a ``metrics.csv`` of ``cytoimagenet pretrain`` as floats (empty cells → NaN)."""
    with path.open(newline="") as handle:
        return [
            {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def training_curves(metrics: Path, out: Path) -> Path:
    """Plot loss and top-1 accuracy, train and val, per epoch of a pretraining run."""
    rows = read_metrics(metrics)
    epochs = [r["epoch"] for r in rows]
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(8.5, 3.2))
    for split, style in (("train", "-o"), ("val", "--s")):
        loss_ax.plot(epochs, [r[f"{split}_loss"] for r in rows], style, label=split, ms=3)
        acc = [100 * r[f"{split}_top1"] for r in rows]
        acc_ax.plot(epochs, acc, style, label=split, ms=3)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


#: Robust z-scores are clipped here before the projection: no feature of one odd field
#: (a saturated crop, a dead one) can stretch a component by itself.
CLIP: float = 5.0
#: Panels of the feature map side by side; more wrap onto further rows.
PANELS_PER_ROW: int = 3
#: The feature map's view spans these percentiles of the projected points (plus a margin).
VIEW_PERCENTILES: tuple[float, float] = (1.0, 99.0)


def robust_scale(features: np.ndarray, clip: float | None = CLIP) -> np.ndarray:
    """Return robust z-scores per column, ``(x - median) / (1.4826 · MAD)``, clipped at ±clip.

    A column whose MAD is 0 (mostly constant) is scaled by its standard deviation instead,
    and a constant column becomes 0.

    Examples
    --------
    >>> robust_scale(np.array([[1.0], [2.0], [3.0], [1000.0]])).ravel().round(2).tolist()
    [-1.01, -0.34, 0.34, 5.0]
    """
    x = np.asarray(features, dtype=np.float64)
    centred = x - np.median(x, axis=0)
    scale = 1.4826 * np.median(np.abs(centred), axis=0)
    std = x.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    z = centred / scale
    return z if clip is None else np.clip(z, -clip, clip)


def pca_2d(features: np.ndarray, *, robust: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components.

    Parameters
    ----------
    features : ndarray, shape (n, d)
    robust : bool
        Scale columns by :func:`robust_scale` (median/MAD, clipped at :data:`CLIP`) first;
        otherwise z-score them (mean/std), which lets one outlying row own a component.

    Returns
    -------
    coords : ndarray, shape (n, 2)
    explained : ndarray, shape (2,)
        Share of the total variance each component explains.
    """
    if robust:
        x = robust_scale(features)
    else:
        x = np.asarray(features, dtype=np.float64)
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    variance = s**2
    total = variance.sum()
    explained = variance[:2] / total if total > 0 else np.zeros(2)
    # A component's sign is arbitrary; fix it so reruns draw the same picture.
    signs = np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())
    return x @ (vt[:2].T * np.where(signs == 0, 1, signs)), explained


def view_limits(coords: np.ndarray, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Return the lower and upper corner of a view spanning most of ``coords``.

    The :data:`VIEW_PERCENTILES` of each column, widened by ``margin`` of their span on both
    sides (a span of 0 widens by 1).
    """
    low, high = np.percentile(coords, VIEW_PERCENTILES, axis=0)
    pad = margin * np.where(high > low, high - low, 1.0 / margin)
    return low - pad, high + pad


def feature_map(
    tables: Sequence[tuple[str, pl.DataFrame]], out: Path, *, label: str = "Metadata_MoA"
) -> Path:
    """Scatter the first two principal components of each feature set, coloured by ``label``.

    Robust throughout, so that one odd field cannot flatten everything else into a dot:
    columns are robust z-scores clipped at ±:data:`CLIP` (:func:`robust_scale`), and each
    panel's view spans the :data:`VIEW_PERCENTILES` of its points plus a margin; points
    beyond it are drawn on the view's edge as triangles and counted in the panel's title.

    Parameters
    ----------
    tables : sequence of (name, DataFrame)
        Feature tables (``Metadata_*`` + numeric feature columns), one panel each.
    label : str
        Metadata column to colour by; rows where it is null are left out.
    """
    plt = _pyplot()
    cols = min(len(tables), PANELS_PER_ROW)
    rows = -(-len(tables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows + 0.5), squeeze=False)
    panels = list(axes.ravel())
    for ax in panels[len(tables) :]:
        ax.axis("off")
    for ax, (name, table) in zip(panels, tables, strict=False):
        table = table.filter(pl.col(label).is_not_null())
        cols = [c for c in table.columns if not c.startswith("Metadata_")]
        coords, explained = pca_2d(table.select(cols).to_numpy())
        low, high = view_limits(coords)
        outside = ((coords < low) | (coords > high)).any(axis=1)
        shown = np.clip(coords, low, high)
        classes = sorted(table[label].unique())
        colours = plt.get_cmap("tab10")
        for i, value in enumerate(classes):
            mask = (table[label] == value).to_numpy()
            for part, marker in ((mask & ~outside, "o"), (mask & outside, "^")):
                kept = {"label": value} if marker == "o" else {}
                ax.scatter(*shown[part].T, s=12, color=colours(i % 10), marker=marker,
                           alpha=0.8, **kept)  # fmt: skip
        ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]))
        beyond = f" ({int(outside.sum())} beyond the view, ▲ at its edge)" if outside.any() else ""
        ax.set_title(name + beyond, fontsize=10 if not beyond else 8)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f} %)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f} %)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, names = panels[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0.4 / fig.get_size_inches()[1], 1, 1))
    return _save(fig, out)
