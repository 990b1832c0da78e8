"""Generate a small synthetic compound screen in BBBC021's published layout.

Fields of MCF7-like cells in three 16-bit channels (DAPI, Tubulin, Actin) on plates named
``Week<k>_<plate>``, with ``BBBC021_v1_image.csv`` and ``BBBC021_v1_moa.csv`` written in the
exact column layout of the real release, so every BBBC021 code path (loader, protocols,
fine-tuning) runs on it unchanged. Each mechanism of action (MoA) has its own phenotype,
shared by its compounds with a small per-compound twist, and scaled by concentration; DMSO
wells are unperturbed. Two compounds per MoA make the not-same-compound 1-NN meaningful.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import tifffile

from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.sample.draw import ellipse, expose

CHANNELS: Final = ("DAPI", "Tubulin", "Actin")
IMAGE_CSV: Final = "BBBC021_v1_image.csv"
MOA_CSV: Final = "BBBC021_v1_moa.csv"
DMSO: Final = "DMSO"


@dataclass(frozen=True)
class Phenotype:
    """How a MoA changes a cell, at full effect (1.0 = like DMSO)."""

    cell_size: float = 1.0
    nucleus_size: float = 1.0
    dna: float = 1.0
    elongation: float = 1.0
    actin: float = 1.0
    #: Share of tubulin signal in bright perinuclear puncta instead of a smooth cytoplasm.
    tubulin_puncta: float = 0.0


#: MoA → (its phenotype, its two compounds). Names follow BBBC021's MoA vocabulary.
MOAS: Final = {
    "Actin disruptors": (
        Phenotype(actin=0.25, elongation=1.6, cell_size=0.85),
        ("cytochalasin b", "latrunculin b"),
    ),
    "Microtubule destabilizers": (
        Phenotype(cell_size=1.35, tubulin_puncta=0.8, elongation=1.0),
        ("nocodazole", "colchicine"),
    ),
    "DNA damage": (
        Phenotype(nucleus_size=1.45, dna=1.7, cell_size=1.1),
        ("etoposide", "camptothecin"),
    ),
}
#: Two concentrations (µM) per compound: the lower one shows half the effect.
CONCENTRATIONS: Final = (0.3, 3.0)


@dataclass(frozen=True)
class PlateSpec:
    """Size of the generated screen.

    Attributes
    ----------
    weeks : int
        Batches; one plate per week, every treatment on every plate.
    dmso_wells : int
        DMSO control wells per plate.
    sites : int
        Fields per well.
    size : int
        Side of each field in pixels.
    cells : int
        Cells per field.
    effect : float
        Scale of every phenotype (1.0: as :data:`MOAS` states it). At 0.5 random features
        still find most MoAs but a trained model finds more, so a benchmark tells them apart.
    moas : tuple of str
        Which MoAs of :data:`MOAS` the screen holds (all by default).
    plate_gain : float
        Plate ``k`` (from 0) is imaged at gain ``1 + k * plate_gain``: the batch effect that
        per-plate DMSO normalisation removes.
    seed : int
        Seed of every random choice.
    """

    weeks: int = 2
    dmso_wells: int = 4
    sites: int = 2
    size: int = 128
    cells: int = 8
    effect: float = 0.5
    moas: tuple[str, ...] = tuple(MOAS)
    plate_gain: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.moas if m not in MOAS]
        if unknown or not self.moas:
            raise ValueError(f"moas must be a non-empty subset of {list(MOAS)}, got {unknown}")


def _effect(phenotype: Phenotype, strength: float, twist: float) -> Phenotype:
    """Blend a phenotype with DMSO's by ``strength`` and perturb it slightly (``twist``)."""

    def mix(value: float) -> float:
        return 1.0 + (value - 1.0) * strength * twist

    return Phenotype(
        cell_size=mix(phenotype.cell_size),
        nucleus_size=mix(phenotype.nucleus_size),
        dna=mix(phenotype.dna),
        elongation=mix(phenotype.elongation),
        actin=mix(phenotype.actin),
        tubulin_puncta=phenotype.tubulin_puncta * strength,
    )


def render_cells(
    rng: np.random.Generator, size: int, cells: int, ph: Phenotype, gain: float = 1.0
) -> np.ndarray:
    """Render one field as a ``(3, size, size)`` uint16 array (DAPI, Tubulin, Actin)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    planes = np.zeros((3, size, size), np.float32)
    for _ in range(cells):
        centre = tuple(rng.uniform(0.1 * size, 0.9 * size, 2))
        r = 6.0 * ph.cell_size * rng.uniform(0.85, 1.15)
        ry, rx = (r * ph.elongation, r / ph.elongation)
        if rng.random() < 0.5:
            ry, rx = rx, ry
        nr = 3.2 * ph.nucleus_size * rng.uniform(0.9, 1.1)
        cell = ellipse(yy, xx, centre, (2.0 * ry, 2.0 * rx))
        nucleus = ellipse(yy, xx, centre, (min(nr, 1.8 * ry), min(nr, 1.8 * rx)))
        cyto = cell & ~nucleus
        planes[0][nucleus] += 2000 * ph.dna * rng.uniform(0.9, 1.1)
        planes[1][cyto] += 900 * (1.0 - ph.tubulin_puncta)
        for _ in range(round(8 * ph.tubulin_puncta)):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 1.6) * nr
            spot = (centre[0] + d * np.sin(a), centre[1] + d * np.cos(a))
            planes[1][ellipse(yy, xx, spot, (1.6, 1.6))] += 2600
        edge = cell & ~ellipse(yy, xx, centre, (1.6 * ry, 1.6 * rx))
        planes[2][cyto] += 500 * ph.actin
        planes[2][edge] += 1800 * ph.actin
    planes += 110.0  # camera offset
    return expose(rng, planes * gain, read_noise=12)


def treatments(moas: tuple[str, ...] = tuple(MOAS)) -> list[tuple[str, float, str]]:
    """Return every (compound, concentration, MoA) of a screen of ``moas``, DMSO last."""
    out = [
        (compound, conc, moa)
        for moa, (_, compounds) in MOAS.items()
        if moa in moas
        for compound in compounds
        for conc in CONCENTRATIONS
    ]
    return [*out, (DMSO, 0.0, DMSO)]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")


def generate_moa_plate(out: Path, spec: PlateSpec | None = None) -> Path:
    """Write the screen under ``out`` (``Week<k>/Week<k>_<plate>/*.tif`` + the two CSVs).

    Returns
    -------
    Path
        The image CSV, written last.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> csv_path = generate_moa_plate(pathlib.Path(tempfile.mkdtemp()), PlateSpec(weeks=1,
    ...     dmso_wells=1, sites=1, size=48, cells=2))
    >>> csv_path.name
    'BBBC021_v1_image.csv'
    """
    spec = spec or PlateSpec()
    out = Path(out)
    rng = np.random.default_rng(spec.seed)
    twists = {c: rng.uniform(0.8, 1.2) for _, (_, cs) in MOAS.items() for c in cs}
    header = ["TableNumber", "ImageNumber"]
    for channel in CHANNELS:
        header += [f"Image_FileName_{channel}", f"Image_PathName_{channel}"]
    header += [
        "Image_Metadata_Plate_DAPI",
        "Image_Metadata_Well_DAPI",
        "Replicate",
        "Image_Metadata_Compound",
        "Image_Metadata_Concentration",
    ]
    rows: list[list[object]] = []
    number = 0
    for week in range(1, spec.weeks + 1):
        plate = f"Week{week}_S{week:02d}"
        folder = f"Week{week}/{plate}"
        (out / folder).mkdir(parents=True, exist_ok=True)
        screen = treatments(spec.moas)
        wells = [t for t in screen if t[0] != DMSO] + [(DMSO, 0.0, DMSO)] * spec.dmso_wells
        gain = 1.0 + (week - 1) * spec.plate_gain
        for w, (compound, conc, moa) in enumerate(wells):
            well = f"{'BCDEFG'[w // 10]}{w % 10 + 2:02d}"
            if compound == DMSO:
                phenotype = Phenotype()
            else:
                strength = spec.effect * (0.5 if conc == CONCENTRATIONS[0] else 1.0)
                phenotype = _effect(MOAS[moa][0], strength, twists[compound])
            for site in range(1, spec.sites + 1):
                field = render_cells(rng, spec.size, spec.cells, phenotype, gain)
                names = [f"{well}_s{site}_w{n + 1}.tif" for n in range(len(CHANNELS))]
                for plane, name in zip(field, names, strict=True):
                    with atomic_path(out / folder / name) as tmp:
                        tifffile.imwrite(tmp, plane)
                number += 1
                row: list[object] = [week, number]
                for name in names:
                    row += [name, folder]
                rows.append([*row, plate, well, 1, compound, conc])
    moa_rows = [[c, f"{conc:.6f}", moa] for c, conc, moa in treatments(spec.moas)]
    _write_csv(out / MOA_CSV, ["compound", "concentration", "moa"], moa_rows)
    _write_csv(out / IMAGE_CSV, header, rows)
    return out / IMAGE_CSV
