"""A tiny COOS-7 HDF5 release: one file per split, as the public release lays them out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cytoimagenet.evaluation.coos7_release import COOS7_CLASSES

SIZES = {"training": 9, "test1": 3, "test2": 3, "test3": 2, "test4": 2}


def write_release(
    root: Path,
    *,
    labels_key: str = "labels",
    bad_label: float | None = None,
    identity: bool = False,
) -> None:
    """Three channels (protein, nucleus, mask) whose pixels encode split, cell and channel.

    With ``identity``, the training and test1 files also hold per-cell ``plateIDs`` (bytes)
    and ``wellIDs`` (integers).
    """
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    for s, (split, n) in enumerate(SIZES.items()):
        data = np.zeros((n, 3, 8, 8), np.uint16)
        for i in range(n):
            for c in range(3):
                data[i, c] = 1000 * s + 10 * i + c
        codes = (np.arange(n) % len(COOS7_CLASSES)).astype(np.float64).reshape(n, 1)
        if bad_label is not None and split == "test2":
            codes[1] = bad_label
        with h5py.File(root / f"COOS7_v1.1_{split}.hdf5", "w") as handle:
            handle["data"] = data
            handle[labels_key] = codes
            if identity and split in ("training", "test1"):
                handle["plateIDs"] = np.array([f"P{i % 2}".encode() for i in range(n)])
                handle["wellIDs"] = np.arange(n) // 2
