"""Datasets in the published CytoImageNet layout, and one reader for either layout.

The published dataset (Kaggle ``stanleyhua/cytoimagenet``) is a folder with ``metadata.csv``
(the 22 published columns, see ``docs/metadata-schema.md``) and one folder of PNGs per label.
It has no ``dset`` column, and its ``path`` column is the folder as it was on the authors'
disk (``/ferrero/cytoimagenet/human``), so both are derived here:

* **Where the images are**: the longest trailing part of ``path`` that is a folder under the
  dataset folder (``cytoimagenet/human``, else ``human``); ``filename`` is the file in it.
* **The split**: 10% val per label, grouped by source image ``idx`` with the build's stable
  hash (the build's rule, :func:`val_fields`), so crops of one field
  never straddle train and val, and the split does not depend on row order. An ``idx`` that
  is val under any label is val under all. A ``dset`` column in the CSV is not used: the
  original split rows at random, which lets crops of one field leak into val.

A folder written by ``cytoimagenet build`` has ``metadata.parquet`` (with ``dset``); it is
preferred when both files are there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Final

import polars as pl

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.hashing import hashed_share
from cytoimagenet.io.parquet import read_parquet
from cytoimagenet.schema import PUBLISHED_COLUMNS

log = logging.getLogger(__name__)

BUILT_TABLE: Final = "metadata.parquet"
PUBLISHED_TABLE: Final = "metadata.csv"
#: Share of each label's rows held out for validation (the paper's 10%).
VAL_FRACTION: Final = 0.1
#: Seed of the derived split; fixed, so every run on the published data sees the same split.
SPLIT_SEED: Final = 0
#: Columns the published layout must give (the others of the 22 are kept when present).
NEEDED: Final = ("label", "path", "filename", "idx")


def dataset_table_path(folder: Path) -> Path:
    """Return the metadata table of a dataset folder: ``metadata.parquet``, else ``.csv``.

    Raises
    ------
    ConfigError
        If ``folder`` is not a directory or holds neither table.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(
            f"{folder}: no such directory (a dataset from `cytoimagenet build`, or the "
            "published one from `cytoimagenet download cytoimagenet`)"
        )
    for name in (BUILT_TABLE, PUBLISHED_TABLE):
        if (folder / name).is_file():
            return folder / name
    below = sorted(p.parent for p in folder.glob(f"*/{PUBLISHED_TABLE}"))
    if below:  # the download folder, not the unpacked dataset inside it
        raise ConfigError(f"{folder}: no {BUILT_TABLE} or {PUBLISHED_TABLE} here; pass {below[0]}")
    raise ConfigError(
        f"{folder}: no {BUILT_TABLE} (run `cytoimagenet build` first) and no published "
        f"{PUBLISHED_TABLE} (run `cytoimagenet download cytoimagenet`, then pass the folder "
        "that holds metadata.csv and the label folders)"
    )


def is_published_table(columns: Sequence[str]) -> bool:
    """Whether a table has the published columns but none of a build's (``sha256``)."""
    names = set(columns)
    return set(PUBLISHED_COLUMNS) <= names and "sha256" not in names


def check_published_columns(table: Path, columns: Sequence[str]) -> None:
    """Raise :class:`SchemaError` naming what a published ``metadata.csv`` lacks."""
    missing = [c for c in NEEDED if c not in columns]
    if missing:
        raise SchemaError(
            f"{table}: lacks column(s) {', '.join(missing)}; expected the published "
            f"metadata.csv ({', '.join(PUBLISHED_COLUMNS)}) or a built dataset's "
            f"{BUILT_TABLE}"
        )


def resolve_folders(paths: Sequence[str], root: Path, table: Path) -> dict[str, str]:
    """Map each distinct ``path`` value to its image folder, relative to ``root``.

    The longest trailing part of the path that is a folder under ``root`` wins, so
    ``/ferrero/cytoimagenet/human`` finds ``root/cytoimagenet/human`` or ``root/human``.

    Raises
    ------
    SchemaError
        For the first path with no such folder.
    """
    found: dict[str, str] = {}
    for value in dict.fromkeys(paths):
        parts = [p for p in PurePosixPath(value.replace("\\", "/")).parts if p not in ("/", ".")]
        if ".." in parts:
            raise SchemaError(f"{table}: path {value!r} climbs out of the dataset folder")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        match = next((t for t in tails if (root / t).is_dir()), None)
        if match is None:
            raise SchemaError(
                f"{table}: no folder for path {value!r} under {root} (tried "
                f"{', '.join(tails) or 'nothing'}); pass the folder that holds metadata.csv "
                "and the label folders, unpacked"
            )
        found[value] = match
    return found


def val_fields(frame: pl.DataFrame, fraction: float, seed: int) -> set[str]:
    """Return the ``idx`` values of one label's val fields.

    The build's rule (``curation/dataset/finalize.py: split_class``): fields in the order of
    a stable hash of their ``idx`` go to val until it holds ``round(fraction * rows)`` rows,
    so the choice depends neither on row order nor on other labels.
    """
    return hashed_share(
        frame.group_by("idx").len().iter_rows(), round(fraction * frame.height), seed
    )


def grouped_split(frame: pl.DataFrame, fraction: float, seed: int) -> pl.Series:
    """Return ``dset`` for every row: ``fraction`` val per label, grouped by ``idx``.

    An ``idx`` under two labels could fall on both sides; val wins, so no field straddles.
    """
    val: set[str] = set()
    for _, group in frame.select("label", "idx").group_by("label"):
        val |= val_fields(group, fraction, seed)
    is_val = frame["idx"].is_in(pl.Series(sorted(val), dtype=pl.String).implode())
    dset = pl.select(pl.when(is_val).then(pl.lit("val")).otherwise(pl.lit("train")))
    return dset.to_series().alias("dset")


def read_published(
    table: Path, *, seed: int = SPLIT_SEED, val_fraction: float = VAL_FRACTION
) -> pl.DataFrame:
    """Read a published ``metadata.csv``: files located, ``dset`` derived.

    Parameters
    ----------
    table : Path
        The ``metadata.csv``; images are looked for under its folder.
    seed, val_fraction : int, float
        Of the derived split (the defaults are what ``pretrain`` uses).

    Returns
    -------
    polars.DataFrame
        Every column of the CSV as text (list fields stay ``|``-joined), ``path`` relative to
        the table's folder, and ``dset`` (``train`` / ``val``).

    Raises
    ------
    SchemaError
        If a needed column is missing or empty in some row, or a folder is not found.
    """
    frame = pl.read_csv(table, infer_schema=False)
    check_published_columns(table, frame.columns)
    for column in NEEDED:
        empty = frame[column].is_null() | (frame[column].str.strip_chars() == "")
        if empty.any():
            row = int(empty.arg_max() or 0)
            raise SchemaError(f"{table}: row {row + 2} has no {column!r}; fix or drop it")
    if "dset" in frame.columns:
        log.info("%s: its dset column is not used; the split is derived, grouped by idx", table)
        frame = frame.drop("dset")
    folders = resolve_folders(frame["path"].to_list(), table.parent, table)
    frame = frame.with_columns(pl.col("path").replace_strict(folders, return_dtype=pl.String))
    return frame.with_columns(grouped_split(frame, val_fraction, seed).alias("dset"))


def read_dataset(folder: Path, columns: Sequence[str]) -> pl.DataFrame:
    """Read ``columns`` of a dataset folder's metadata, whichever layout it has.

    A built dataset's ``metadata.parquet`` is read as written; a published ``metadata.csv``
    through :func:`read_published` (``path`` resolved, ``dset`` derived).
    """
    table = dataset_table_path(folder)
    if table.name == BUILT_TABLE:
        return read_parquet(table, columns=list(columns))
    frame = read_published(table)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{table}: lacks column(s) {', '.join(missing)}")
    return frame.select(columns)
