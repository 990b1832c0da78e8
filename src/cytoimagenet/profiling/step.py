"""The ``profile`` step: a feature table → aggregated, normalised, feature-selected profiles.

The workflow of image-based profiling (Caicedo et al. 2017), each step done by pycytominer
(an optional dependency, ``pip install 'cytoimagenet[profiles]'``) and written out:

1. ``aggregated.parquet`` — ``pycytominer.aggregate``: one profile per ``group_by`` group
   (default plate + well), the median (or mean) of its rows; metadata columns constant
   within every group are kept, and ``Metadata_Rows`` counts the rows of each group.
2. ``normalized.parquet`` — ``pycytominer.normalize`` within each plate (``per_plate``)
   against that plate's control profiles (``control``; all profiles without it): ``zscore``
   (pycytominer's *standardize*), ``mad_robustize`` or ``spherize`` (ZCA, as TVN). Columns
   the normalisation leaves non-finite are dropped and counted.
3. ``selected.parquet`` — ``pycytominer.feature_select`` with the listed operations
   (``variance_threshold``, ``correlation_threshold``, ``blocklist``, ``drop_na_columns``).

``profile.provenance.json`` records the settings, the input checksum, the versions and,
per step, its file, rows and feature count. Any feature table is accepted (``Metadata_*``
columns + numeric features: ``extract`` output of either naming, CellProfiler profiles);
the feature columns are passed to pycytominer by name, so nothing depends on inference.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Final, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from cytoimagenet.config import _Job
from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.feature_table import FeatureTable, read_feature_table
from cytoimagenet.fields import OutputDir, existing_file
from cytoimagenet.io.atomic import atomic_path

EXTRA: Final = "pip install 'cytoimagenet[profiles]'"
METHODS: Final = {"zscore": "standardize", "mad_robustize": "mad_robustize", "spherize": "spherize"}
SELECTIONS: Final = ("variance_threshold", "correlation_threshold", "blocklist", "drop_na_columns")
ROWS: Final = "Metadata_Rows"


def require_pycytominer() -> ModuleType:
    """Return pycytominer, or raise a :class:`ConfigError` naming the extra to install."""
    try:
        import pycytominer
    except ImportError as exc:
        raise ConfigError(
            f"profile needs pycytominer, which is not installed ({exc}); install the profiles "
            f"extra: {EXTRA}"
        ) from None
    return pycytominer


class ProfileJob(_Job):
    """Turn a feature table into profiles.

    Attributes
    ----------
    features : Path
        Feature table (Parquet, CSV/TSV, optionally gzipped).
    out : Path
        Folder for the three step tables and the provenance.
    group_by : list of str
        Columns of one profile (``Metadata_`` added when missing).
    operation : {"median", "mean"}
        Aggregation.
    control : str, optional
        ``COL=VALUE`` of the control profiles the normalisation is fitted on.
    normalize : {"zscore", "mad_robustize", "spherize", "none"}
        Normalisation method.
    per_plate : bool
        Normalise each plate (``plate_column``) on its own controls.
    feature_select : list of str
        pycytominer feature-selection operations, in order (empty: none).
    """

    features: Annotated[Path, existing_file("feature table")]
    out: OutputDir
    group_by: list[str] = Field(default_factory=lambda: ["Metadata_Plate", "Metadata_Well"])
    operation: Literal["median", "mean"] = "median"
    control: str | None = None
    normalize: Literal["zscore", "mad_robustize", "spherize", "none"] = "zscore"
    per_plate: bool = True
    plate_column: str = "Metadata_Plate"
    feature_select: list[str] = Field(
        default_factory=lambda: ["variance_threshold", "correlation_threshold", "blocklist"]
    )
    ignore_non_numeric: bool = False

    @field_validator("group_by")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        from cytoimagenet.evaluation.profiles import group_columns

        return group_columns(value)

    @field_validator("control")
    @classmethod
    def _control(cls, value: str | None) -> str | None:
        from cytoimagenet.evaluation.profiles import parse_control

        return None if value is None else "=".join(parse_control(value))

    @field_validator("feature_select")
    @classmethod
    def _selections(cls, value: list[str]) -> list[str]:
        ops = [v.strip() for v in value if v.strip() and v.strip() != "none"]
        wrong = [v for v in ops if v not in SELECTIONS]
        if wrong:
            choices = ", ".join(SELECTIONS)
            raise ValueError(f"--feature-select {wrong}: pick any of {choices}, or none")
        return ops


def _frame(meta: pl.DataFrame, x: np.ndarray, names: list[str]) -> Any:
    """Return a pandas frame of metadata + features (pycytominer's input)."""
    return pl.concat([meta, pl.from_numpy(x, schema=names)], how="horizontal").to_pandas()


def _features_of(frame: Any) -> list[str]:
    return [c for c in frame.columns if not str(c).startswith("Metadata_")]


def aggregate(table: FeatureTable, job: ProfileJob, pcm: ModuleType) -> Any:
    """Aggregate rows per group; keep metadata constant within groups; count the rows."""
    table.require(job.group_by, " (named by --group-by)")
    frame = _frame(table.meta, table.features, table.names)
    out = pcm.aggregate(
        frame, strata=job.group_by, features=table.names, operation=job.operation,
        output_file=None,
    )  # fmt: skip
    rest = [c for c in table.meta.columns if c not in job.group_by]
    stats = table.meta.group_by(job.group_by).agg(
        *(pl.col(c).n_unique().alias(c) for c in rest), pl.len().alias(ROWS)
    )
    constant = [c for c in rest if stats[c].max() == 1]
    carried = (
        table.meta.group_by(job.group_by, maintain_order=True)
        .agg(*(pl.col(c).first() for c in constant))
        .join(stats.select(*job.group_by, ROWS), on=job.group_by)
    )
    features = pl.from_pandas(out)
    joined = carried.join(features, on=job.group_by, how="inner").sort(job.group_by)
    return joined.to_pandas()


def normalize(frame: Any, job: ProfileJob, pcm: ModuleType, source: str) -> tuple[Any, list[str]]:
    """Normalise (per plate) against the controls; return the frame and dropped columns."""
    import pandas as pd

    if job.normalize == "none":
        return frame, []
    features = _features_of(frame)
    meta = [c for c in frame.columns if c not in features]
    samples = "all"
    if job.control is not None:
        column, value = job.control.split("=", 1)
        if column not in frame.columns:
            raise SchemaError(f"{source}: --control column {column!r} is not in the profiles")
        samples = f"`{column}` == {value!r}"
    if job.per_plate and job.plate_column not in frame.columns:
        raise SchemaError(
            f"{source}: per-plate normalisation needs {job.plate_column!r} in the profiles "
            "(keep it in --group-by, or pass --all-plates)"
        )
    parts = [frame] if not job.per_plate else [g for _, g in frame.groupby(job.plate_column)]
    done = []
    for part in parts:
        where = f" on plate {part[job.plate_column].iloc[0]}" if job.per_plate else ""
        if samples != "all" and part.query(samples).empty:
            raise SchemaError(f"{source}: no control profile ({job.control}){where}")
        normed = pcm.normalize(
            part.reset_index(drop=True), features=features, meta_features=meta,
            samples=samples, method=METHODS[job.normalize], output_file=None,
        )  # fmt: skip
        done.append(normed)
    out = pd.concat(done, ignore_index=True)
    values = out[features].to_numpy(dtype=np.float64)
    bad = [f for f, ok in zip(features, np.isfinite(values).all(axis=0), strict=True) if not ok]
    return out.drop(columns=bad), bad


def select(frame: Any, job: ProfileJob, pcm: ModuleType) -> Any:
    """Run pycytominer's feature selection operations."""
    if not job.feature_select:
        return frame
    return pcm.feature_select(
        frame, features=_features_of(frame), operation=job.feature_select, output_file=None
    )


def _write(frame: Any, path: Path) -> dict[str, object]:
    data = pl.from_pandas(frame)
    with atomic_path(path) as tmp:
        data.write_parquet(tmp)
    return {"file": path.name, "rows": data.height, "features": len(_features_of(frame))}


def run_profile(job: ProfileJob) -> list[dict[str, object]]:
    """Run the three steps, write each table and the provenance; return the step records."""
    from importlib.metadata import version

    from cytoimagenet.provenance import write_provenance

    pcm = require_pycytominer()
    table = read_feature_table(job.features, ignore_non_numeric=job.ignore_non_numeric)
    source = str(job.features)
    job.out.mkdir(parents=True, exist_ok=True)
    aggregated = aggregate(table, job, pcm)
    steps = [{"step": "aggregate", **_write(aggregated, job.out / "aggregated.parquet")}]
    normalized, dropped = normalize(aggregated, job, pcm, source)
    record = _write(normalized, job.out / "normalized.parquet")
    steps.append({"step": "normalize", **record, "dropped_non_finite": dropped})
    selected = select(normalized, job, pcm)
    if not _features_of(selected):
        raise SchemaError(f"{source}: feature selection {job.feature_select} left no feature")
    steps.append({"step": "feature_select", **_write(selected, job.out / "selected.parquet")})
    write_provenance(
        job.out / "profile.provenance.json",
        command="profile",
        config=job.resolved(),
        inputs=[job.features],
        extra={"steps": steps, "pycytominer": version("pycytominer"), "input_rows": len(table)},
    )
    return steps
