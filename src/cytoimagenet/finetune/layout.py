"""The fields of BBBC021 and BBBC014 as Kensert et al. (2019) selected and labelled them.

One row per field of view (:data:`FIELD_COLUMNS`), whatever the source:

* **BBBC021** — ``BBBC021_v1_image.csv`` joined with ``BBBC021_v1_moa.csv`` on compound and
  *numeric* concentration. Kept: the 103 annotated treatments (12 MoAs, 38 compounds) and the
  DMSO fields, which only normalise their plate (``role == "control"``, never a class). Taxol
  is annotated only on Week1 plates, in ``D0*`` wells at 0.3, 1 and 3 µM, as their
  ``generate_dataset_bbbc021.py`` filters it; elsewhere it is a control of other plates.
* **BBBC014** — the 96 wells of one plate, two BMPs each (``Channel 1`` NFκB, ``Channel 2``
  DNA). As in their ``generate_dataset_bbbc014.py``: rows A–D are MCF7 and E–H A549; in each
  row the first four wells (highest TNFα) are ``positive`` (translocation) and the last four
  ``negative``; the middle four are left out.

Channel files are listed in network input order: BBBC021 (DAPI, Tubulin, Actin), which is
what their network saw after ``cv2.imread`` reversed the stacked (Actin, Tubulin, DAPI);
BBBC014 (NFκB, DNA), fed as RGB = (0, NFκB, DNA).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import ConfigError, MetadataError
from cytoimagenet.io.tables import find_files
from cytoimagenet.sources.bbbc021_csv import (
    COMPOUND,
    CONCENTRATION,
    FILE_COLUMNS,
    PATH_COLUMNS,
    plate_folder,
    read_annotated,
)

#: Columns of a fields table (``paths``: absolute channel files, network input order).
FIELD_COLUMNS: Final = (
    "field", "plate", "well", "site", "replicate", "compound", "concentration", "moa",
    "role", "group", "batch", "paths",
)  # fmt: skip
#: Kensert's taxol rule: the annotated taxol treatments are these wells only.
TAXOL_CONCENTRATIONS: Final = (0.3, 1.0, 3.0)
BBBC021_FILES: Final = ("BBBC021_v1_image.csv*", "BBBC021_v1_moa.csv")
#: ``Channel 1-01-A-01-00.BMP`` (also without the space or the ``-00``).
BBBC014_RE: Final = re.compile(
    r"Channel ?(?P<ch>[12])-(?P<n>\d+)-(?P<row>[A-H])-(?P<col>\d{2})(?:-\d+)?\.bmp$", re.I
)
BBBC014_POSITIVE_COLUMNS: Final = (1, 2, 3, 4)
BBBC014_NEGATIVE_COLUMNS: Final = (9, 10, 11, 12)
BBBC014_MCF7_ROWS: Final = ("A", "B", "C", "D")


def find_bbbc021_metadata(root: Path) -> tuple[Path, Path]:
    """Return ``(image_csv, moa_csv)`` found in ``root`` or below it.

    Raises
    ------
    MetadataError
        Naming the files that are missing.
    """
    found = []
    for pattern in BBBC021_FILES:
        hits = find_files(root, [pattern]) or find_files(root, [f"**/{pattern}"])
        if not hits:
            raise MetadataError(
                f"{root}: no {pattern.rstrip('*')} here or below; put the BBBC021 metadata "
                "files (BBBC021_v1_image.csv, BBBC021_v1_moa.csv) beside the plate folders"
            )
        found.append(hits[0])
    return found[0], found[1]


def bbbc021_fields(image_csv: Path, moa_csv: Path) -> pl.DataFrame:
    """Read BBBC021's two CSVs into a fields table with *relative* channel paths.

    Returns
    -------
    polars.DataFrame
        :data:`FIELD_COLUMNS`, ``paths`` relative to the data root (``Image_PathName_X /
        Image_FileName_X``); ``group`` is the compound, ``batch`` the week.
    """
    files, dirs = FILE_COLUMNS, PATH_COLUMNS
    plate, well = "Image_Metadata_Plate_DAPI", "Image_Metadata_Well_DAPI"
    image = read_annotated(image_csv, moa_csv, [plate, well, "Replicate"])
    table = image.filter(pl.col("moa").is_not_null()).select(
        pl.col(plate).alias("plate"),
        pl.col(well).alias("well"),
        pl.col(files[0]).str.extract(r"_s(\d+)_").fill_null("1").alias("site"),
        pl.col("Replicate").alias("replicate"),
        pl.col(COMPOUND).alias("compound"),
        pl.col(CONCENTRATION).cast(pl.Float64, strict=False).round(9).alias("concentration"),
        pl.col(dirs[0]).str.extract(r"^(Week\d+)").fill_null("").alias("batch"),
        pl.concat_list(pl.col(d) + "/" + pl.col(f) for d, f in zip(dirs, files, strict=True)).alias(
            "paths"
        ),
        "moa",
    )
    taxol = pl.col("compound").str.to_lowercase() == "taxol"
    kensert_taxol = (
        pl.col("plate").str.starts_with("Week1")
        & pl.col("well").str.contains("D0")
        & pl.col("concentration").is_in(list(TAXOL_CONCENTRATIONS))
    )
    control = pl.col("compound").str.to_lowercase() == "dmso"
    return (
        table.filter(~taxol | kensert_taxol)
        .with_columns(
            (pl.col("plate") + "_" + pl.col("well") + "_s" + pl.col("site")).alias("field"),
            pl.when(control).then(pl.lit("control")).otherwise(pl.lit("treated")).alias("role"),
            pl.when(control).then(None).otherwise(pl.col("moa")).alias("moa"),
            pl.col("compound").alias("group"),
        )
        .select(FIELD_COLUMNS)
        .unique("field", keep="first", maintain_order=True)
        .sort("plate", "well", "site")
    )


def resolve_paths(fields: pl.DataFrame, root: Path) -> pl.DataFrame:
    """Make the relative ``paths`` absolute under ``root``; every file must exist.

    Raises
    ------
    ConfigError
        Naming how many channel files are missing, with examples.
    """
    root = root.resolve()
    folders = {
        p.rsplit("/", 1)[0] for p in fields["paths"].explode().drop_nulls().unique().to_list()
    }
    mapping = {f: plate_folder(root, f) or f for f in folders}

    def absolute(path: str) -> str:
        folder, name = path.rsplit("/", 1)
        return str(root / mapping[folder] / name)

    out = fields.with_columns(
        pl.col("paths").list.eval(pl.element().map_elements(absolute, return_dtype=pl.String))
    )
    missing = [p for p in out["paths"].explode().to_list() if not Path(p).is_file()]
    if missing:
        raise ConfigError(
            f"{root}: {len(missing)} channel file(s) listed in the metadata are missing, "
            f"e.g. {missing[:2]}; unpack every plate folder under --root (as "
            "Week1/Week1_22123/… or Week1_22123/…)"
        )
    return out


def read_bbbc021(root: Path) -> tuple[pl.DataFrame, list[Path]]:
    """Return the BBBC021 fields under ``root`` (absolute paths) and the metadata files read."""
    image_csv, moa_csv = find_bbbc021_metadata(root)
    fields = bbbc021_fields(image_csv, moa_csv)
    if fields.filter(pl.col("role") == "treated").height == 0:
        raise MetadataError(f"{image_csv}: no field of an annotated treatment")
    return resolve_paths(fields, root), [image_csv, moa_csv]


def bbbc014_label(row: str, column: int) -> tuple[str, str | None]:
    """Return ``(cell line, label)`` of a BBBC014 well; the label is ``None`` if unused.

    Examples
    --------
    >>> bbbc014_label("B", 3), bbbc014_label("F", 10), bbbc014_label("A", 6)
    (('MCF7', 'positive'), ('A549', 'negative'), ('MCF7', None))
    """
    line = "MCF7" if row.upper() in BBBC014_MCF7_ROWS else "A549"
    if column in BBBC014_POSITIVE_COLUMNS:
        return line, "positive"
    if column in BBBC014_NEGATIVE_COLUMNS:
        return line, "negative"
    return line, None


def read_bbbc014(root: Path) -> tuple[pl.DataFrame, list[Path]]:
    """Return the 64 labelled BBBC014 wells under ``root`` (one field each) and no metadata.

    Raises
    ------
    MetadataError
        When no BMP is named as BBBC014 publishes them, or a well lacks a channel.
    """
    root = root.resolve()
    found: dict[tuple[str, int], dict[str, str]] = {}
    for path in sorted(root.rglob("*")):
        match = BBBC014_RE.search(path.name)
        if match and path.is_file():
            key = (match["row"].upper(), int(match["col"]))
            found.setdefault(key, {}).setdefault(match["ch"], str(path))
    if not found:
        raise MetadataError(
            f"{root}: no BBBC014 image here or below (expected files named like "
            "'Channel 1-01-A-01-00.BMP' and 'Channel 2-01-A-01-00.BMP')"
        )
    rows = []
    for (row, column), channels in sorted(found.items()):
        line, label = bbbc014_label(row, column)
        if label is None:
            continue
        if set(channels) != {"1", "2"}:
            raise MetadataError(f"{root}: well {row}{column:02d} lacks a channel file")
        rows.append({
            "field": f"BBBC014_{row}{column:02d}", "plate": "BBBC014",
            "well": f"{row}{column:02d}", "site": "1", "replicate": row, "compound": "TNFa",
            "concentration": float(column), "moa": label, "role": "treated", "group": line,
            "batch": "BBBC014", "paths": [channels["1"], channels["2"]],
        })  # fmt: skip
    if not rows:
        raise MetadataError(f"{root}: no BBBC014 well of columns 1-4 or 9-12 found")
    return pl.DataFrame(rows).select(FIELD_COLUMNS), []


READERS: Final = {"bbbc021": read_bbbc021, "bbbc014": read_bbbc014}
