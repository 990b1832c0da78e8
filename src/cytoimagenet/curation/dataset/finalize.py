"""Turn shard records into the final dataset: trim classes, split, write the metadata.

Pure functions of the shard records and the job (deterministic given the seed), so a build
interrupted while finalising reaches the same result when run again; deleting the files of
trimmed rows is idempotent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.hashing import hashed_share, stable_hash
from cytoimagenet.schema import PUBLISHED_COLUMNS, SCHEMA

#: Columns added to the published ones in the dataset's metadata.
DATASET_EXTRA = (
    "dset",
    "sha256",
    "width",
    "height",
    "channels",
    "channel_paths",
    "plate",
    "well",
    "site",
    "control",
)


def trim_class(
    frame: pl.DataFrame, target: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trim one class to ``target`` rows; return (kept, dropped).

    As the published dataset: first drop up to one random crop per source image that has
    several, then random rows, until exactly ``target`` remain.
    """
    excess = frame.height - target
    if excess <= 0:
        return frame, frame.clear()
    frame = frame.sort("filename")
    idx = frame["idx"].to_numpy()
    order = rng.permutation(frame.height)
    drop = np.zeros(frame.height, dtype=bool)
    counts: dict[str, int] = {}
    for i in idx:
        counts[i] = counts.get(i, 0) + 1
    seen: set[str] = set()
    for i in order:  # one random crop of each multi-crop image, in random order
        if excess == 0:
            break
        if counts[idx[i]] > 1 and idx[i] not in seen:
            seen.add(idx[i])
            drop[i] = True
            excess -= 1
    rest = [i for i in rng.permutation(frame.height) if not drop[i]]
    drop[rest[:excess]] = True
    mask = pl.Series(drop)
    return frame.filter(~mask), frame.filter(mask)


def split_class(frame: pl.DataFrame, fraction: float, seed: int) -> pl.Series:
    """Return ``dset`` ("train"/"val") for one class, grouped by source image.

    Source images are taken in the order of a stable hash of their ``idx`` and sent to
    ``val`` until it holds ``round(fraction * rows)`` rows, so all crops of one image land in
    the same split and the split does not depend on row order or on other classes.
    """
    val = hashed_share(
        frame.group_by("idx").len().iter_rows(), round(fraction * frame.height), seed
    )
    is_val = frame["idx"].is_in(list(val))
    return pl.select(pl.when(is_val).then(pl.lit("val")).otherwise(pl.lit("train"))).to_series()


def finalize(
    records: pl.DataFrame,
    labelled: pl.DataFrame,
    *,
    class_size: int,
    min_class_size: int,
    val_fraction: float,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (dataset metadata, dropped outputs with their reason).

    Parameters
    ----------
    records : polars.DataFrame
        All shard records (status ``ok``, ``rejected`` and ``crop-dropped`` rows).
    labelled : polars.DataFrame
        The labelled rows of the labels table (source metadata of every ``idx``).
    """
    written = records.filter(pl.col("status") == "ok")
    meta = labelled.drop(
        "path", "filename", "crop", "scaling", "x_min", "x_max", "y_min", "y_max", strict=False
    )
    rows = written.join(meta, on="idx", how="inner")
    kept_parts, dropped_parts = [], []
    for (label,), group in rows.sort("label", "filename").group_by(["label"], maintain_order=True):
        rng = np.random.default_rng(stable_hash(seed, "trim", label))
        kept, dropped = trim_class(group, class_size, rng)
        if dropped.height:
            dropped_parts.append(dropped.with_columns(pl.lit("class-trim").alias("drop_reason")))
        if kept.height < min_class_size:
            dropped_parts.append(kept.with_columns(pl.lit("class-too-small").alias("drop_reason")))
            continue
        dset = split_class(kept, val_fraction, seed)
        kept_parts.append(kept.with_columns(dset.alias("dset")))
    if kept_parts:
        dataset = pl.concat(kept_parts)
    else:
        dataset = rows.clear().with_columns(pl.lit(None, pl.String).alias("dset"))
    columns = [*PUBLISHED_COLUMNS, *DATASET_EXTRA]
    dataset = dataset.select(
        [pl.col(c).cast(SCHEMA[c]) if c in SCHEMA else pl.col(c) for c in columns]
    ).sort("path", "filename")
    dropped = (
        pl.concat(dropped_parts).select("idx", "label", "path", "filename", "drop_reason")
        if dropped_parts
        else pl.DataFrame(
            schema=dict.fromkeys(("idx", "label", "path", "filename", "drop_reason"), pl.String)
        )
    )
    return dataset, dropped


def remove_dropped(out: Path, dropped: pl.DataFrame) -> int:
    """Delete the files of dropped outputs (idempotent); return how many existed."""
    removed = 0
    for folder, name in dropped.select("path", "filename").iter_rows():
        path = out / folder / name
        if path.exists():
            path.unlink()
            removed += 1
    return removed
