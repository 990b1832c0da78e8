"""BBBC021's published metadata CSVs: what every reader of them must do the same way.

``BBBC021_v1_image.csv`` lists each field's channel files (``Image_PathName_X`` /
``Image_FileName_X``); ``BBBC021_v1_moa.csv`` gives the mechanism of action of 103
treatments (and ``DMSO``). The source adapter (:class:`cytoimagenet.sources.bbbc.Bbbc021Adapter`),
the benchmark loader (:mod:`cytoimagenet.evaluation.loaders`) and the fine-tuning layout
(:mod:`cytoimagenet.finetune.layout`) keep different fields and columns, but must join the two
files and find the plate folders alike, or they would not hold out and score the same
treatments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.io.tables import read_delimited, require_columns

BBBC021_CHANNELS: Final = ("DAPI", "Tubulin", "Actin")
FILE_COLUMNS: Final = tuple(f"Image_FileName_{c}" for c in BBBC021_CHANNELS)
PATH_COLUMNS: Final = tuple(f"Image_PathName_{c}" for c in BBBC021_CHANNELS)
COMPOUND: Final = "Image_Metadata_Compound"
CONCENTRATION: Final = "Image_Metadata_Concentration"


def read_annotated(image_csv: Path, moa_csv: Path, needs: Sequence[str] = ()) -> pl.DataFrame:
    """Return the image table with a ``moa`` column joined from the MoA table.

    The join is on compound and *numeric* concentration: ``0.003`` in the image table is
    ``0.003000`` in the MoA table. ``moa`` is null for unannotated fields.

    Parameters
    ----------
    image_csv, moa_csv : Path
        ``BBBC021_v1_image.csv`` (``.gz`` allowed) and ``BBBC021_v1_moa.csv``.
    needs : sequence of str
        Image-table columns the caller needs besides the channel files, compound and
        concentration.

    Raises
    ------
    MetadataError
        When either table lacks a column.
    """
    image, moa = read_delimited(image_csv), read_delimited(moa_csv)
    needs = [*FILE_COLUMNS, *PATH_COLUMNS, COMPOUND, CONCENTRATION, *needs]
    require_columns(image, needs, image_csv)
    require_columns(moa, ["compound", "concentration", "moa"], moa_csv)
    key = pl.col("concentration").cast(pl.Float64, strict=False).round(9).alias("_conc")
    moa = moa.select(pl.col("compound").alias(COMPOUND), key, "moa").unique([COMPOUND, "_conc"])
    image = image.with_columns(
        pl.col(CONCENTRATION).cast(pl.Float64, strict=False).round(9).alias("_conc")
    )
    return image.join(moa, on=[COMPOUND, "_conc"], how="left").drop("_conc")


def plate_folder(root: Path, folder: str) -> str | None:
    """Return where a plate folder of the image table lies under ``root``, or ``None``.

    The table says ``Week1/Week1_22123``; the published zips unpack to ``Week1_22123``.
    Either layout is accepted, the table's first.

    Examples
    --------
    >>> plate_folder(Path("/nonexistent"), "Week1/Week1_22123") is None
    True
    """
    if (root / folder).is_dir():
        return folder
    flat = Path(folder).name
    return flat if (root / flat).is_dir() else None
