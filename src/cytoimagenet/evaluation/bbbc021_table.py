"""BBBC021's tables: the MoA join on compound + concentration, batches, treatment groups.

Shared by the 1-NN evaluation (:mod:`.bbbc021`) and its mAP counterpart (:mod:`.bbbc021_map`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.errors import SchemaError
from cytoimagenet.evaluation.feature_table import FeatureTable
from cytoimagenet.io.tables import read_delimited, require_columns

COMPOUND, CONCENTRATION = "Metadata_Compound", "Metadata_Concentration"
PLATE, WELL, MOA, BATCH = "Metadata_Plate", "Metadata_Well", "Metadata_MoA", "Metadata_Batch"
#: The join key: concentration rounded to 6 significant digits, as text.
CONC_KEY = "__conc_key"


def read_moa_table(path: Path) -> pl.DataFrame:
    """Read ``BBBC021_v1_moa.csv`` (compound, concentration, moa) with a join key."""
    frame = read_delimited(Path(path))
    require_columns(frame, ["compound", "concentration", "moa"], path)
    try:
        conc = frame["concentration"].cast(pl.Float64, strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise SchemaError(f"{path}: non-numeric concentration ({exc})") from exc
    return frame.with_columns(conc.round_sig_figs(6).cast(pl.String).alias(CONC_KEY))


def _with_key(table: FeatureTable) -> pl.DataFrame:
    try:
        conc = table.meta[CONCENTRATION].cast(pl.Float64, strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise SchemaError(f"{table.source}: non-numeric {CONCENTRATION} ({exc})") from exc
    return table.meta.with_columns(conc.round_sig_figs(6).cast(pl.String).alias(CONC_KEY))


def attach_moa(table: FeatureTable, moa: Path | None) -> FeatureTable:
    """Return the table with a key column and ``Metadata_MoA`` (joined from ``moa`` if absent)."""
    table.require([COMPOUND, CONCENTRATION], " (BBBC021 needs compound and concentration)")
    meta = _with_key(table)
    if MOA in meta.columns:
        return table.with_meta(meta)
    if moa is None:
        raise SchemaError(
            f"{table.source}: no {MOA} column; pass --moa BBBC021_v1_moa.csv to join it on "
            "compound + concentration"
        )
    ref = read_moa_table(moa).select(
        pl.col("compound").alias(COMPOUND), pl.col(CONC_KEY), pl.col("moa").alias(MOA)
    )
    dupes = ref.height - ref.select(COMPOUND, CONC_KEY).n_unique()
    if dupes:
        raise SchemaError(f"{moa}: {dupes} repeated (compound, concentration) pairs")
    return table.with_meta(
        meta.join(ref, on=[COMPOUND, CONC_KEY], how="left", maintain_order="left")
    )


def row_batches(meta: pl.DataFrame, source: str) -> list[str]:
    """Each row's batch: ``Metadata_Batch``, else the plate name's prefix (``Week1_22123``)."""
    if BATCH in meta.columns and not meta[BATCH].null_count():
        return meta[BATCH].to_list()
    if PLATE not in meta.columns or meta[PLATE].null_count():
        raise SchemaError(f"{source}: NSCB needs {BATCH} or {PLATE} (batch = plate-name prefix)")
    plates = meta[PLATE].to_list()
    bad = sorted({p for p in plates if "_" not in p})
    if bad:
        raise SchemaError(
            f"{source}: cannot derive the batch from plate name(s) {bad[:3]} (expected e.g. "
            f"'Week1_22123'); add a {BATCH} column"
        )
    return [p.split("_", 1)[0] for p in plates]


def group_mean(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of the rows of ``x`` per group code (0 … n_groups-1, each present), in float64."""
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_groups))
    sums = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
    return sums / np.bincount(codes, minlength=n_groups)[:, None]


def group_codes(frame: pl.DataFrame, keys: list[str]) -> tuple[np.ndarray, pl.DataFrame]:
    """Each row's group code over ``keys``, and the groups (sorted) in code order."""
    uniq = frame.select(keys).unique().sort(keys).with_row_index("__code")
    codes = frame.select(keys).join(uniq, on=keys, how="left", maintain_order="left")["__code"]
    return codes.to_numpy().astype(np.int64), uniq
