"""A faithful fake of the published CytoImageNet dataset (Kaggle ``stanleyhua/cytoimagenet``).

As on the dataset page: ``metadata.csv`` with the 22 published columns in their order, list
fields ``|``-joined and lower-case, ``path`` the folder on the authors' disk
(``/ferrero/cytoimagenet/<label folder>``), ``filename`` ``<label folder>-<binary index>.png``
zero-padded, one to four crops per source image (same ``idx``, ``crop`` true, ``scaling`` a
fraction, a box) or the whole image (``crop`` false, ``scaling`` 1), 8-bit grey PNGs in one
folder per label, and no ``dset`` column.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from cytoimagenet.schema import PUBLISHED_COLUMNS

#: (label, category, database, name, dir_name, organism, cell_type, cell_visible, compound).
LABELS = [
    ("human", "organism", "Recursion", "RxRx1", "rec_rxrx1", "human", "huvec", "", ""),
    ("u2os", "cell_type", "Broad Bioimage Benchmark Collection", "BBBC022", "bbbc022",
     "human", "u2os", "nucleus|er|nucleoli|golgi|actin|mitochondria", ""),
    ("kinase inhibitor/gefitinib", "compound", "Image Data Resource", "idr0016", "idr0016",
     "human", "u2os", "nucleus", "kinase inhibitor -- gefitinib"),
]  # fmt: skip

SIDE = 48


def _filename(folder: str, index: int, total: int) -> str:
    # as the authors: the index in binary, zero-padded to the width of len(bin(total))
    return f"{folder}-{bin(index)[2:].zfill(len(bin(total)))}.png"


def make_published(
    root: Path,
    *,
    fields_per_label: int = 12,
    nested: bool = False,
    prefix: str = "/ferrero/cytoimagenet",
    seed: int = 0,
) -> list[dict[str, str]]:
    """Write the fake under ``root`` and return its rows (CSV text, in file order).

    Parameters
    ----------
    root : Path
        Where ``metadata.csv`` goes.
    fields_per_label : int
        Source images per label; each gives 1–4 crops or the whole image.
    nested : bool
        Put the label folders under ``root/cytoimagenet/`` (as an archive might unpack).
    prefix : str
        What ``path`` starts with before the label folder.
    """
    rng = np.random.default_rng(seed)
    images = root / "cytoimagenet" if nested else root
    rows: list[dict[str, str]] = []
    for n, (label, category, database, name, dir_name, org, ctype, visible, cpd) in enumerate(
        LABELS
    ):
        folder = label.replace(" ", "_").replace("/", "-")  # the authors' folder rule
        (images / folder).mkdir(parents=True, exist_ok=True)
        outputs = []
        for field in range(fields_per_label):
            idx = f"{dir_name}-{n}{field:04d}"
            crops = int(rng.integers(0, 5))  # 0 = the whole image
            for c in range(max(crops, 1)):
                scaling = 0.25 if crops else 1.0
                x0, y0 = (int(v) for v in rng.integers(0, 256, 2)) if crops else (0, 0)
                side = 256 if crops else 1024
                outputs.append((idx, bool(crops), scaling, (x0, x0 + side, y0, y0 + side), c))
        for i, (idx, crop, scaling, (x0, x1, y0, y1), _) in enumerate(outputs):
            filename = _filename(folder, i, len(outputs))
            image = rng.integers(0, 256, (SIDE, SIDE)).astype(np.uint8)
            assert cv2.imwrite(str(images / folder / filename), image)
            rows.append(
                {
                    "label": label,
                    "category": category,
                    "database": database,
                    "name": name,
                    "dir_name": dir_name,
                    "path": f"{prefix}/{folder}",
                    "filename": filename,
                    "idx": idx,
                    "organism": org,
                    "cell_type": ctype,
                    "cell_visible": visible,
                    "phenotype": "",
                    "compound": cpd,
                    "sirna": "",
                    "gene": "",
                    "microscopy": "fluorescence",
                    "crop": str(crop),
                    "scaling": str(scaling),
                    "x_min": str(x0),
                    "x_max": str(x1),
                    "y_min": str(y0),
                    "y_max": str(y1),
                }
            )
    write_metadata(root / "metadata.csv", rows)
    return rows


def write_metadata(path: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` as the published ``metadata.csv`` (columns in the published order)."""
    columns = list(rows[0]) if rows else list(PUBLISHED_COLUMNS)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
