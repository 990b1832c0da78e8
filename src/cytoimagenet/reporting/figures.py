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


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components (after z-scoring columns).

    Returns
    -------
    coords : ndarray, shape (n, 2)
    explained : ndarray, shape (2,)
        Share of the total variance each component explains.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    std = x.std(axis=0)
    x = x / np.where(std > 0, std, 1.0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    variance = s**2
    total = variance.sum()
    explained = variance[:2] / total if total > 0 else np.zeros(2)
    # A component's sign is arbitrary; fix it so reruns draw the same picture.
    signs = np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())
    return x @ (vt[:2].T * np.where(signs == 0, 1, signs)), explained


def feature_map(
    tables: Sequence[tuple[str, pl.DataFrame]], out: Path, *, label: str = "Metadata_MoA"
) -> Path:
    """Scatter the first two principal components of each feature set, coloured by ``label``.

    Parameters
    ----------
    tables : sequence of (name, DataFrame)
        Feature tables (``Metadata_*`` + numeric feature columns), one panel each.
    label : str
        Metadata column to colour by; rows where it is null are left out.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.4), squeeze=False)
    for ax, (name, table) in zip(axes[0], tables, strict=True):
        table = table.filter(pl.col(label).is_not_null())
        cols = [c for c in table.columns if not c.startswith("Metadata_")]
        coords, explained = pca_2d(table.select(cols).to_numpy())
        classes = sorted(table[label].unique())
        colours = plt.get_cmap("tab10")
        for i, value in enumerate(classes):
            mask = (table[label] == value).to_numpy()
            ax.scatter(*coords[mask].T, s=12, color=colours(i % 10), label=value, alpha=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f} %)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f} %)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, names = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, out)
