"""Tiny synthetic plates laid out exactly as BBBC021 and BBBC014 publish theirs.

For tests and quick starts: the real loaders (:mod:`cytoimagenet.finetune.layout`) read these
folders as they read the published data. Phenotypes are visible and grow with concentration:

* BBBC021-like: 16-bit, 3-channel fields (``w1`` DAPI, ``w2`` Tubulin, ``w4`` Actin) of round
  cells; compounds of MoA ``Microtubule stabilizers`` brighten and thicken the tubulin ring,
  ``Actin disruptors`` the actin rim; DMSO wells are untreated; each plate has its own gain
  (what the per-plate DMSO normalisation removes). ``BBBC021_v1_image.csv`` and
  ``BBBC021_v1_moa.csv`` have the published columns and number formats.
* BBBC014-like: 96 wells × ``Channel 1`` (NFκB) and ``Channel 2`` (DNA) 8-bit BMPs; NFκB sits
  in the nucleus in wells of columns 1–4 (high TNFα) and in the cytoplasm in columns 9–12.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

#: ``(compound, MoA, concentrations)`` of the default BBBC021-like layout.
COMPOUNDS: Final = (
    ("taxolin", "Microtubule stabilizers", (0.3, 3.0)),
    ("epothilin", "Microtubule stabilizers", (1.0,)),
    ("cytochalasin X", "Actin disruptors", (1.0, 10.0)),
    ("latrunculin Y", "Actin disruptors", (0.5,)),
)
_CHANNEL_W: Final = {"DAPI": 1, "Tubulin": 2, "Actin": 4}
_IMAGE_COLUMNS: Final = (
    "TableNumber", "ImageNumber", "Image_FileName_DAPI", "Image_PathName_DAPI",
    "Image_FileName_Tubulin", "Image_PathName_Tubulin", "Image_FileName_Actin",
    "Image_PathName_Actin", "Image_Metadata_Plate_DAPI", "Image_Metadata_Well_DAPI",
    "Replicate", "Image_Metadata_Compound", "Image_Metadata_Concentration",
)  # fmt: skip


def _uuid(*parts: object) -> str:
    digest = hashlib.md5("|".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()
    return str(uuid.UUID(hex=digest)).upper()


def _cells(rng: np.random.Generator, shape: tuple[int, int], n: int) -> tuple[np.ndarray, float]:
    """Distance of every pixel to its nearest of ``n`` random cell centres, and the radius."""
    h, w = shape
    radius = max(2.0, min(h, w) / 9)
    centres = rng.uniform([radius, radius], [h - radius, w - radius], size=(n, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.sqrt((yy[None] - centres[:, 0, None, None]) ** 2
                   + (xx[None] - centres[:, 1, None, None]) ** 2).min(axis=0)  # fmt: skip
    return dist, float(radius)


def _ring(dist: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((dist - centre) / width) ** 2))


def render_bbbc021_field(
    rng: np.random.Generator, shape: tuple[int, int], moa: str | None, strength: float,
    gain: float, cells: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Return the three uint16 channels of one field (``moa`` ``None``: DMSO)."""
    dist, r = _cells(rng, shape, cells)
    nucleus = _ring(dist, 0.0, 0.6 * r)
    tub_w, act_w = 0.5 * r, 0.35 * r
    tub_amp, act_amp = 1200.0, 1200.0
    if moa == "Microtubule stabilizers":
        tub_amp *= 1 + 3 * strength
        tub_w *= 1 + strength
    elif moa == "Actin disruptors":
        act_amp *= 1 + 3 * strength
        act_w *= 1 + strength
    planes = {
        "DAPI": 3000 * nucleus,
        "Tubulin": tub_amp * _ring(dist, 1.3 * r, tub_w),
        "Actin": act_amp * _ring(dist, 2.0 * r, act_w),
    }
    out = {}
    for name, signal in planes.items():
        value = gain * (300 + signal) + rng.normal(0, 40, size=shape)
        out[name] = np.clip(np.rint(value), 0, 65535).astype(np.uint16)
    return out


def write_synthetic_bbbc021(
    root: Path,
    *,
    compounds: Sequence[tuple[str, str, Sequence[float]]] = COMPOUNDS,
    plates: int = 2,
    sites: int = 1,
    control_wells: int = 2,
    shape: tuple[int, int] = (64, 80),
    cells: int = 6,
    seed: int = 0,
) -> Path:
    """Write a BBBC021-like folder under ``root`` and return ``root``.

    Every plate (``Week1/Week1_<n>``) holds one well per treatment (replicate = plate
    number) and ``control_wells`` DMSO wells, each with ``sites`` fields of ``shape``.
    """
    import tifffile

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    top = {c: max(conc) for c, _, conc in compounds}
    treatments = [("DMSO", None, 0.0)] * control_wells + [
        (c, moa, x) for c, moa, conc in compounds for x in conc
    ]
    rows, number = [], 0
    for p in range(plates):
        plate = f"Week1_{10001 + p}"
        folder = f"Week1/{plate}"
        (root / folder).mkdir(parents=True, exist_ok=True)
        gain = 1.0 + 0.35 * p
        for i, (compound, moa, conc) in enumerate(treatments):
            well = f"{'BCDEFG'[i // 10]}{2 + i % 10:02d}"
            strength = conc / top[compound] if moa else 0.0
            for site in range(1, sites + 1):
                rng = np.random.default_rng([seed, p, i, site])
                planes = render_bbbc021_field(rng, shape, moa, strength, gain, cells)
                names = {}
                for channel, w in _CHANNEL_W.items():
                    name = f"{well}_s{site}_w{w}{_uuid(seed, plate, well, site, w)}.tif"
                    tifffile.imwrite(root / folder / name, planes[channel])
                    names[channel] = name
                number += 1
                rows.append([1, number, names["DAPI"], folder, names["Tubulin"], folder,
                             names["Actin"], folder, plate, well, p + 1, compound,
                             f"{conc:g}"])  # fmt: skip
    with (root / "BBBC021_v1_image.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(_IMAGE_COLUMNS)
        writer.writerows(rows)
    with (root / "BBBC021_v1_moa.csv").open("w", newline="", encoding="utf-8") as fh:
        fh.write('"compound",concentration,"moa"\n')
        fh.write('"DMSO",0.000000,"DMSO"\n')
        for compound, moa, doses in compounds:
            for x in doses:
                fh.write(f'"{compound}",{x:.6f},"{moa}"\n')
    return root


def write_synthetic_bbbc014(
    root: Path, *, shape: tuple[int, int] = (48, 64), cells: int = 5, seed: int = 0
) -> Path:
    """Write a BBBC014-like folder (``BBBC014_v1_images/Channel {1,2}-NN-R-CC-00.BMP``)."""
    import cv2

    folder = Path(root) / "BBBC014_v1_images"
    folder.mkdir(parents=True, exist_ok=True)
    for n, (row, col) in enumerate(((r, c) for r in "ABCDEFGH" for c in range(1, 13)), 1):
        rng = np.random.default_rng([seed, n])
        dist, r = _cells(rng, shape, cells)
        nuclear = 1.0 - (col - 1) / 11  # TNFα falls along the row: translocation with it
        nucleus = _ring(dist, 0.0, 0.7 * r)
        cytoplasm = _ring(dist, 1.6 * r, 0.6 * r)
        nfkb = 150 * (nuclear * nucleus + (1 - nuclear) * cytoplasm)
        dna = 180 * nucleus
        for ch, signal in (("1", nfkb), ("2", dna)):
            image = np.clip(np.rint(20 + signal + rng.normal(0, 6, size=shape)), 0, 255)
            name = f"Channel {ch}-{n:02d}-{row}-{col:02d}-00.BMP"
            cv2.imwrite(str(folder / name), image.astype(np.uint8))
    return Path(root)
