"""Fake raw trees of the evaluation-only datasets: curated single-cell folder layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def _tif(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros((4, 4), dtype=np.uint8))


def fake_coos7(root: Path) -> int:
    cells = [
        ("train", "Endoplasmic_Reticulum", "plate1_A01_3_12"),
        ("train", "Golgi", "plate1_B02_1_4"),
        ("test1", "Golgi", "plate1_B02_1_4"),  # same stem in another split: another cell
        ("test4", "Peroxisomes", "plate9_C03_2_7"),
    ]
    for split, label, stem in cells:
        for chan in ("protein", "nucleus", "mask"):
            _tif(root / split / label / f"{stem}_{chan}.tif")
    return len(cells)


def fake_cyclops(root: Path) -> int:
    cells = [
        ("CYTOPLASM", "YAL001C_1_rfp_3"),
        ("SPINDLEPOLE", "YBR002W_2_rfp_11"),
        ("SPINDLE", "YBR002W_2_rfp_12"),
        ("DEAD", "YCL003W_1_rfp_1"),
        ("GHOST", "YCL003W_1_rfp_2"),
    ]
    for label, stem in cells:
        for chan in ("rfp", "gfp"):
            _tif(root / label / f"{stem}_{chan}.tif")
    return len(cells)


FAKES = {"coos7": fake_coos7, "cyclops": fake_cyclops}
