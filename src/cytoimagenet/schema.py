"""The unified metadata schema: one row per source image (or, after the build, per crop).

The first 22 columns are those of the published CytoImageNet ``metadata.csv``, in its order.
The rest carry what the pipeline needs to rebuild an image (its channel files) and to audit
it (plate, well, control status, why a row may not enter the pretraining pool).

Multi-valued label fields (``organism`` … ``gene``) are lists of strings in memory and in
Parquet, and ``|``-joined in CSV, as the published table does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import SchemaError
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.io.parquet import read_parquet

#: Label fields that a weak label can come from, in the order the paper lists them.
LABEL_FIELDS: Final = (
    "organism",
    "cell_type",
    "cell_visible",
    "phenotype",
    "compound",
    "gene",
    "sirna",
)
#: Fields outside the paper's seven that a user may still ask to label by (never by default).
OPTIONAL_LABEL_FIELDS: Final = ("moa", "condition")

_S = pl.String
_L = pl.List(pl.String)

#: The columns of the published metadata.csv, in order, with their types.
PUBLISHED_COLUMNS: Final[dict[str, pl.DataType]] = {
    "label": _S(),
    "category": _S(),
    "database": _S(),
    "name": _S(),
    "dir_name": _S(),
    "path": _S(),
    "filename": _S(),
    "idx": _S(),
    "organism": _L,
    "cell_type": _L,
    "cell_visible": _L,
    "phenotype": _L,
    "compound": _L,
    "sirna": _L,
    "gene": _L,
    "microscopy": _S(),
    "crop": pl.Boolean(),
    "scaling": pl.Float64(),
    "x_min": pl.Int64(),
    "x_max": pl.Int64(),
    "y_min": pl.Int64(),
    "y_max": pl.Int64(),
}

#: Columns beyond the published ones.
EXTRA_COLUMNS: Final[dict[str, pl.DataType]] = {
    "channels": _L,  # channel names, e.g. ["f_nucleus", "f_actin"]
    "channel_paths": _L,  # one file per channel, relative to the source's raw root
    "plate": _S(),
    "well": _S(),
    "site": _S(),
    "control": _S(),  # "negative", "positive", "empty" or another control kind; null if none
    # Facts that are not among the paper's seven label categories (docs/labels.md says why):
    "moa": _L,  # mechanism of action of the compound(s), e.g. ["tubulin destabilizer"]
    "strain": _S(),  # strain or line id (yeast y6545, sk1 …), never a cell type
    "condition": _L,  # growth or treatment conditions (starvation, a medium, a stress)
    "concentration": pl.Float64(),  # dose of the compound, in concentration_unit
    "concentration_unit": _S(),  # "uM", "ug/ml" or "%" (converted: curation/dose.py)
    "pool": _S(),  # "pretraining" or "evaluation"
    "exclude_reason": _S(),  # why the row may never be labelled; null if it may
}

SCHEMA: Final[dict[str, pl.DataType]] = {**PUBLISHED_COLUMNS, **EXTRA_COLUMNS}
LIST_COLUMNS: Final = tuple(c for c, t in SCHEMA.items() if isinstance(t, pl.List))
REQUIRED_NON_NULL: Final = ("database", "name", "dir_name", "path", "filename", "idx", "pool")


def empty_frame() -> pl.DataFrame:
    """Return a zero-row frame with the unified schema."""
    return pl.DataFrame(schema=SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing schema columns as nulls, cast, and order columns as the schema does.

    Columns that are not part of the schema are dropped.
    """
    exprs = []
    for col, dtype in SCHEMA.items():
        if col in frame.columns:
            exprs.append(pl.col(col).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
    return frame.select(exprs)


def validate(frame: pl.DataFrame, *, what: str = "table") -> None:
    """Check that ``frame`` follows the unified schema.

    Raises
    ------
    SchemaError
        Naming every problem found: missing columns, wrong types, nulls in required
        columns, or duplicated ``idx`` values among uncropped rows.
    """
    problems: list[str] = []
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    for col, dtype in SCHEMA.items():
        if col in frame.columns and frame.schema[col] != dtype:
            problems.append(f"column {col!r} is {frame.schema[col]}, expected {dtype}")
    for col in REQUIRED_NON_NULL:
        if col in frame.columns and frame[col].null_count():
            problems.append(f"column {col!r} has {frame[col].null_count()} null values")
    if not problems and frame.height:
        uncropped = frame.filter(~pl.col("crop").fill_null(False))
        dup = uncropped["idx"].is_duplicated()
        if dup.any():
            examples = uncropped.filter(dup)["idx"].unique().head(3).to_list()
            problems.append(f"{dup.sum()} rows share an idx, e.g. {examples}")
    if problems:
        raise SchemaError(f"{what} does not follow the unified schema: " + "; ".join(problems))


def to_csv_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with list columns ``|``-joined, ready for CSV."""
    return frame.with_columns(pl.col(c).list.join("|") for c in LIST_COLUMNS if c in frame.columns)


def from_csv_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Invert :func:`to_csv_frame`: split ``|``-joined lists, parse booleans and numbers."""
    exprs = []
    for col, dtype in SCHEMA.items():
        if col not in frame.columns or frame.schema[col] != pl.String:
            continue
        if dtype == pl.Boolean:
            exprs.append(
                pl.col(col)
                .str.to_lowercase()
                .replace_strict(
                    {"true": True, "1": True, "false": False, "0": False},
                    default=None,
                    return_dtype=pl.Boolean,
                )
            )
        elif dtype.is_numeric():
            exprs.append(pl.col(col).cast(pl.Float64, strict=False).cast(dtype, strict=False))
    for col in LIST_COLUMNS:
        if col in frame.columns and frame.schema[col] == pl.String:
            exprs.append(
                pl.when(pl.col(col).is_null() | (pl.col(col) == ""))
                .then(pl.lit(None, dtype=_L))
                .otherwise(pl.col(col).str.split("|"))
                .alias(col)
            )
    return conform(frame.with_columns(exprs))


def write_table(frame: pl.DataFrame, path: Path, *, csv: bool = False) -> None:
    """Write a unified table to Parquet atomically, and optionally a CSV beside it.

    Parameters
    ----------
    frame : polars.DataFrame
        A table that passes :func:`validate`.
    path : Path
        The Parquet file to write. Its parent is created.
    csv : bool
        Also write ``path.with_suffix('.csv')`` in the published CSV layout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
    if csv:
        with atomic_path(path.with_suffix(".csv")) as tmp:
            to_csv_frame(frame).write_csv(tmp)


def read_table(path: Path) -> pl.DataFrame:
    """Read a unified table from Parquet or CSV (``|``-joined lists), conformed to the schema.

    Raises
    ------
    SchemaError
        If the file cannot be read as a table or lacks the ``idx`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such file; expected a metadata table (.parquet or .csv)")
    try:
        is_csv = path.suffix == ".csv" or path.name.endswith(".csv.gz")
        frame = pl.read_csv(path, infer_schema=False) if is_csv else read_parquet(path)
    except Exception as exc:  # polars raises several unrelated types here
        raise SchemaError(f"{path}: cannot read as a table ({exc})") from exc
    if "idx" not in frame.columns:
        raise SchemaError(f"{path}: no 'idx' column; is this a cytoimagenet metadata table?")
    return from_csv_frame(frame) if is_csv else conform(frame)
