"""Generate a small synthetic fluorescence screen in the layout of a BBBC image-CSV source.

Each field holds cells drawn as three 16-bit channels (nucleus, a tagged protein, actin).
Classes differ in biology-like ways so weak labels are learnable: the tagged protein is
nuclear, cytoplasmic or punctate; compounds change cell size, shape and stain intensity;
the two cell lines differ in size. Pixel values use 12 of the 16 bits, as many cameras do,
which is exactly the case the original pipeline truncated.
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

#: Tagged protein → where it sits (becomes ``cell_visible``).
PROTEINS: Final = {"h2b": "nucleus", "gapdh": "cytoplasm", "rab5a": "endosome"}
#: Compound → (cell radius factor, elongation, actin intensity factor).
COMPOUNDS: Final = {
    "dmso": (1.0, 1.0, 1.0),
    "nocodazole": (1.35, 1.0, 0.8),
    "cytochalasin b": (0.9, 1.0, 0.35),
    "latrunculin a": (0.8, 1.6, 0.5),
}
CELL_LINES: Final = {"hela": 1.0, "u2os": 1.3}
CHANNELS: Final = ("DAPI", "Protein", "Actin")
CSV_NAME: Final = "sample_image.csv"


@dataclass(frozen=True)
class SampleSpec:
    """Size of the generated sample.

    Attributes
    ----------
    plates : int
        Number of plates; each has one row of wells per (cell line, protein) pair.
    sites : int
        Fields per well.
    size : int
        Side of each field in pixels.
    cells : int
        Cells per field.
    seed : int
        Seed of every random choice.
    """

    plates: int = 2
    sites: int = 2
    size: int = 192
    cells: int = 12
    seed: int = 0


def _wells(plate_index: int) -> list[tuple[str, str, str, str]]:
    """Return (well, cell line, protein, compound) for every well of a plate."""
    layout = []
    rows = "ABCDEFGH"
    combos = [(line, prot) for line in CELL_LINES for prot in PROTEINS]
    for r, (line, protein) in enumerate(combos):
        for c, compound in enumerate(COMPOUNDS):
            # Rotate compounds across plates so no compound is tied to a column.
            compound_name = list(COMPOUNDS)[(c + plate_index) % len(COMPOUNDS)]
            layout.append((f"{rows[r]}{c + 1:02d}", line, protein, compound_name))
            del compound
    return layout


def render_field(
    rng: np.random.Generator, size: int, cells: int, cell_line: str, protein: str, compound: str
) -> np.ndarray:
    """Render one field as a ``(3, size, size)`` uint16 array (nucleus, protein, actin)."""
    radius_f, elong, actin_f = COMPOUNDS[compound]
    base = 9.0 * CELL_LINES[cell_line] * radius_f
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    planes = np.zeros((3, size, size), np.float32)
    for _ in range(cells):
        cy, cx = rng.uniform(0.08 * size, 0.92 * size, 2)
        r = base * rng.uniform(0.85, 1.15)
        ry, rx = r * elong, r / elong
        if rng.random() < 0.5:
            ry, rx = rx, ry
        cyto = ellipse(yy, xx, (cy, cx), (2.0 * ry, 2.0 * rx))
        nucleus = ellipse(yy, xx, (cy, cx), (ry, rx))
        planes[0][nucleus] += rng.uniform(1800, 2600)
        planes[2][cyto & ~nucleus] += 900 * actin_f
        edge = cyto & ~ellipse(yy, xx, (cy, cx), (1.7 * ry, 1.7 * rx))
        planes[2][edge] += 1500 * actin_f
        where = PROTEINS[protein]
        if where == "nucleus":
            planes[1][nucleus] += 2200
        elif where == "cytoplasm":
            planes[1][cyto & ~nucleus] += 1400
        else:
            for _ in range(10):
                a, d = rng.uniform(0, 2 * np.pi), rng.uniform(1.1, 1.9)
                py, px = cy + d * ry * np.sin(a), cx + d * rx * np.cos(a)
                planes[1][ellipse(yy, xx, (py, px), (1.8, 1.8))] += 3000
    planes += 120.0  # camera offset
    return expose(rng, planes, read_noise=15)


def generate_sample(out: Path, spec: SampleSpec | None = None) -> Path:
    """Write the sample source under ``out`` and return the path of its image CSV.

    The layout is ``<plate>/<well>_s<site>_w<n>.tif`` plus ``sample_image.csv`` with one
    row per field (``Image_FileName_<channel>``, ``Image_PathName_<channel>`` and
    ``Image_Metadata_*`` columns), written last and atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tiny = SampleSpec(plates=1, sites=1, size=32, cells=2)
    >>> table = generate_sample(pathlib.Path(tempfile.mkdtemp()), tiny)
    >>> table.name
    'sample_image.csv'
    """
    spec = spec or SampleSpec()
    out = Path(out)
    rng = np.random.default_rng(spec.seed)
    header = [f"Image_FileName_{c}" for c in CHANNELS] + [f"Image_PathName_{c}" for c in CHANNELS]
    header += [
        "Image_Metadata_Plate",
        "Image_Metadata_Well",
        "Image_Metadata_Site",
        "Image_Metadata_CellLine",
        "Image_Metadata_Protein",
        "Image_Metadata_Compound",
    ]
    rows = []
    for p in range(spec.plates):
        plate = f"SP{p + 1:02d}"
        (out / plate).mkdir(parents=True, exist_ok=True)
        for well, line, protein, compound in _wells(p):
            for site in range(1, spec.sites + 1):
                field = render_field(rng, spec.size, spec.cells, line, protein, compound)
                names = [f"{well}_s{site}_w{n + 1}.tif" for n in range(len(CHANNELS))]
                for plane, name in zip(field, names, strict=True):
                    with atomic_path(out / plate / name) as tmp:
                        tifffile.imwrite(tmp, plane)
                rows.append(
                    [*names, *([plate] * 3), plate, well, str(site), line, protein, compound]
                )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    table = out / CSV_NAME
    with atomic_path(table) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return table
