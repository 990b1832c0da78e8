"""Read a feature table: ``Metadata_*`` columns describe the rows, numeric columns are features.

Any table works — our ``extract`` output, CellProfiler/pycytominer profiles, another
model's embeddings — as Parquet or CSV/TSV (optionally gzip-compressed). Rows may be
images, sites, cells or wells. Metadata columns are read as text (plate ``0123`` stays
``0123``); every other numeric column is a feature. Any other non-numeric column is refused
by name (a numeric column with a stray word reads as text and would silently vanish), unless
the caller asks for such columns to be dropped (``evaluate --ignore-non-numeric``).
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.io.parquet import read_parquet

log = logging.getLogger(__name__)

META_PREFIX = "Metadata_"
TABLE_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv", ".tsv.gz")


@dataclass(frozen=True)
class FeatureTable:
    """Metadata and a float32 feature matrix of the same rows.

    Attributes
    ----------
    source : str
        Where the table came from (used in error messages).
    meta : polars.DataFrame
        The ``Metadata_*`` columns, as strings.
    features : numpy.ndarray
        ``(rows, features)`` float32.
    names : list of str
        Feature column names.
    """

    source: str
    meta: pl.DataFrame
    features: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return self.meta.height

    def filter(self, keep: np.ndarray) -> FeatureTable:
        """Return the rows where the boolean ``keep`` is true."""
        keep = np.asarray(keep, dtype=bool)
        return FeatureTable(
            self.source, self.meta.filter(pl.Series(keep)), self.features[keep], self.names
        )

    def with_meta(self, meta: pl.DataFrame) -> FeatureTable:
        """Return the table with new metadata of the same rows."""
        if meta.height != self.meta.height:
            raise ValueError("new metadata must have the same rows")
        return FeatureTable(self.source, meta, self.features, self.names)

    def require(self, columns: Iterable[str], why: str = "") -> None:
        """Raise a :class:`SchemaError` naming the file if a metadata column is missing/empty."""
        missing = [c for c in columns if c not in self.meta.columns]
        if missing:
            raise SchemaError(
                f"{self.source}: missing metadata column(s) {missing}{why}; found "
                f"{[c for c in self.meta.columns]}"
            )
        empty = [c for c in columns if self.meta[c].null_count()]
        if empty:
            counts = {c: self.meta[c].null_count() for c in empty}
            raise SchemaError(f"{self.source}: empty values in {counts}{why}")


def table_suffix(path: Path) -> str:
    """Return the recognised suffix of a table path ('' when unsupported)."""
    name = path.name.lower()
    return next((s for s in sorted(TABLE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def _read_delimited(path: Path) -> pl.DataFrame:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    sep = "\t" if ".tsv" in path.name.lower() else ","
    header = raw.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r").split(sep)
    header = [h.strip('"') for h in header]
    overrides = {h: pl.String for h in header if h.startswith(META_PREFIX)}
    return pl.read_csv(
        io.BytesIO(raw),
        separator=sep,
        schema_overrides=overrides,
        infer_schema_length=10_000,
        null_values=["", "NA", "NaN", "nan"],
    )


def read_feature_table(
    path: Path, *, require: Iterable[str] = (), ignore_non_numeric: bool = False
) -> FeatureTable:
    """Read a Parquet or CSV/TSV (optionally ``.gz``) feature table.

    Parameters
    ----------
    path : Path
        The table.
    require : iterable of str
        Metadata columns that must be present and non-empty.
    ignore_non_numeric : bool
        Drop (with a warning) non-numeric columns that are not ``Metadata_*`` instead of
        refusing the table.

    Raises
    ------
    ConfigError
        When the file is missing or of an unsupported type.
    SchemaError
        When the table cannot be read, has no rows, lacks a required column, has no
        numeric feature column, has a non-numeric non-``Metadata_*`` column (unless
        ``ignore_non_numeric``), or has empty/NaN/infinite feature values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such feature table")
    suffix = table_suffix(path)
    if not suffix:
        raise ConfigError(f"{path}: a feature table must be one of {list(TABLE_SUFFIXES)}")
    try:
        frame = read_parquet(path) if suffix == ".parquet" else _read_delimited(path)
    except (OSError, pl.exceptions.PolarsError, UnicodeDecodeError, EOFError) as exc:
        raise SchemaError(f"{path}: cannot read the feature table ({exc})") from exc
    if frame.height == 0:
        raise SchemaError(f"{path}: the feature table has no rows")
    meta_cols = [c for c in frame.columns if c.startswith(META_PREFIX)]
    feature_cols = [
        c
        for c, t in frame.schema.items()
        if c not in meta_cols and (t.is_numeric() or t == pl.Null)
    ]
    ignored = [c for c in frame.columns if c not in meta_cols and c not in feature_cols]
    if ignored and not ignore_non_numeric:
        more = f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
        raise SchemaError(
            f"{path}: non-numeric column(s) {ignored[:5]}{more} are neither features nor "
            f"metadata; prefix metadata with '{META_PREFIX}', fix values that should be numbers, "
            "or pass --ignore-non-numeric to drop them"
        )
    if ignored:
        log.warning("%s: ignoring non-numeric, non-Metadata_ column(s) %s", path, ignored[:10])
    if not feature_cols:
        raise SchemaError(
            f"{path}: no numeric feature columns; metadata columns must start with "
            f"'{META_PREFIX}' and every other numeric column is a feature "
            f"(found {frame.columns[:10]})"
        )
    features = frame.select(feature_cols).cast(pl.Float32).to_numpy().astype(np.float32)
    bad = ~np.isfinite(features)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        rows = int(bad.any(axis=1).sum())
        raise SchemaError(
            f"{path}: {int(bad.sum())} empty/NaN/infinite feature values in {rows} of "
            f"{len(features)} row(s) and {len(cols)} column(s), first {feature_cols[cols[0]]!r} "
            f"(row {int(np.argmax(bad[:, cols[0]]))}); drop or impute them first"
        )
    nested = [c for c in meta_cols if frame.schema[c].is_nested()]
    if nested:
        log.warning("%s: ignoring list/struct metadata column(s) %s", path, nested)
    meta_cols = [c for c in meta_cols if c not in nested]
    meta = frame.select(meta_cols).with_columns(pl.col(c).cast(pl.String) for c in meta_cols)
    table = FeatureTable(str(path), meta, np.ascontiguousarray(features), feature_cols)
    table.require(require)
    return table


def zscore(x: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Z-score columns by the mean and (population) std of ``reference`` (default ``x``).

    A column that is constant in the reference is centred only (its std counts as 1), so
    no NaN appears.
    """
    ref = x if reference is None else reference
    ref64 = ref.astype(np.float64)
    mean = ref64.mean(axis=0)
    std = ref64.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((x.astype(np.float64) - mean) / std).astype(np.float32)
