"""The ``extract`` step: an images table + a model spec → a features Parquet file.

Model specs: ``random``, ``imagenet``, ``lite0-imagenet``, ``cytoimagenet`` (the authors'
published weights, fetched once and cached), ``keras:PATH``, a checkpoint or
weights file, or ``fusion:A+B`` (features of A and B, each z-scored over the images, then
concatenated — the paper's headline model).

The output follows the pycytominer convention: ``Metadata_<column>`` for every scalar column
of the images table, then ``feature_NNNNN`` columns (concat modes: channel-major blocks of the
backbone's width). The Parquet schema metadata records the spec, mode, size and versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from cytoimagenet.config import _Job
from cytoimagenet.errors import ConfigError
from cytoimagenet.features.extract import extract_features, fuse
from cytoimagenet.features.inputs import MODES
from cytoimagenet.fields import Device, ParquetOut, existing_file
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.io.parquet import native_stderr_held
from cytoimagenet.provenance import environment, write_provenance
from cytoimagenet.training.published import is_published_table, resolve_folders

FUSION_PREFIX = "fusion:"


class ExtractJob(_Job):
    """Extract features of every image in a table.

    Attributes
    ----------
    model : str
        Model spec (see the module docstring).
    images : Path
        Table (Parquet or CSV) with ``channel_paths`` (a list, or ``|``-joined) or
        ``path`` + ``filename`` columns, relative to ``root``.
    root : Path, optional
        Folder the paths are relative to; the table's folder by default.
    arch : str
        timm architecture for ``random`` and ``imagenet``.
    size : int or None
        Resize inputs to this side; ``None`` is ``--size native``.
    keras_padding : bool or None
        Keras's stride-2 padding (exact for Keras weights at any native size) or timm's
        TF-SAME; None follows the weights (Keras's for ``keras:`` and ``cytoimagenet``).
    """

    model: str
    images: Annotated[Path, existing_file("images table")]
    out: ParquetOut
    root: Path | None = None
    mode: Literal["concat-norm", "concat", "merge-norm", "merge"] = "concat-norm"
    size: int | None = Field(default=224, ge=8)
    arch: str = "efficientnet_b0"
    in_chans: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)
    workers: int = Field(default=2, ge=1)
    device: Device = "cpu"
    seed: int = 0
    keras_padding: bool | None = None

    @field_validator("model")
    @classmethod
    def _fusion_parts(cls, value: str) -> str:
        if value.startswith(FUSION_PREFIX):
            parts = value.removeprefix(FUSION_PREFIX).split("+")
            if len(parts) < 2 or not all(parts):
                raise ValueError(
                    f"{value!r}: write fusion as fusion:A+B (e.g. fusion:imagenet+ckpt.pt)"
                )
        return value


def _read_table(path: Path) -> pl.DataFrame:
    """Read an images table (CSV by suffix, else Parquet), naming ``path`` on any failure."""
    from polars.exceptions import PanicException, PolarsError

    is_csv = path.name.lower().endswith((".csv", ".csv.gz"))
    try:
        with native_stderr_held():  # a panic's Rust message would precede our error line
            return pl.read_csv(path, infer_schema=False) if is_csv else pl.read_parquet(path)
    except (PolarsError, PanicException, OSError, UnicodeDecodeError) as exc:
        kind = "CSV" if is_csv else "Parquet"
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ConfigError(
            f"{path}: cannot be read as a {kind} images table, it is corrupt or not {kind} "
            f"({reason}); give the table `cytoimagenet benchmark-images` or `build` wrote"
        ) from exc


def _string_column(frame: pl.DataFrame, name: str, path: Path) -> list[str]:
    """Return a column of file names, refusing other types and missing values."""
    column = frame[name]
    if column.dtype != pl.String:
        raise ConfigError(
            f"{path}: column {name!r} holds {column.dtype}, expected text (file paths)"
        )
    if column.null_count():
        row = column.is_null().arg_true()[0]
        raise ConfigError(f"{path}: column {name!r} is empty in row {row}; every image needs it")
    return column.to_list()


def _channel_lists(frame: pl.DataFrame, path: Path) -> list[list[str]]:
    """Return ``channel_paths`` as lists of names (a list column, or a ``|``-joined string)."""
    column = frame["channel_paths"]
    if column.dtype == pl.String:
        return [v.split("|") for v in _string_column(frame, "channel_paths", path)]
    if column.dtype != pl.List(pl.String):
        raise ConfigError(
            f"{path}: column 'channel_paths' holds {column.dtype}, expected a list of file "
            "paths or '|'-joined paths"
        )
    if column.null_count():
        row = column.is_null().arg_true()[0]
        raise ConfigError(f"{path}: column 'channel_paths' is empty in row {row}")
    return column.to_list()


def read_images_table(path: Path, root: Path | None) -> tuple[pl.DataFrame, list[list[Path]]]:
    """Read an images table and resolve every row's channel files.

    A built dataset's metadata (it has ``sha256`` and ``dset``) points at its PNGs through
    ``path``/``filename``, and so does the published ``metadata.csv`` (its ``path`` found
    under ``root``: :func:`~cytoimagenet.training.published.resolve_folders`); any other
    table uses ``channel_paths`` when it has them. The
    table is checked before any model is loaded: readable, not empty, the columns present
    and of text type, no missing file names.

    Raises
    ------
    ConfigError
        When the table cannot be read, has no rows, has neither ``channel_paths`` nor
        ``path``/``filename`` (of text type, without gaps), or a row has no files.
    """
    frame = _read_table(path)
    base = root or path.parent
    built = {"sha256", "dset", "path", "filename"} <= set(frame.columns)
    if "channel_paths" in frame.columns and not built:
        rel = _channel_lists(frame, path)
    elif {"path", "filename"} <= set(frame.columns):
        folders = _string_column(frame, "path", path)
        if is_published_table(frame.columns):  # published metadata.csv: the authors' own paths
            found = resolve_folders(folders, base, path)
            folders = [found[f] for f in folders]
        names = _string_column(frame, "filename", path)
        rel = [[f"{p}/{f}"] for p, f in zip(folders, names, strict=True)]
    else:
        raise ConfigError(
            f"{path}: needs a 'channel_paths' column (list or '|'-joined) or 'path' and "
            f"'filename' columns, relative to --root; found {frame.columns[:8]}"
        )
    if frame.height == 0:
        raise ConfigError(f"{path}: the images table has no rows; nothing to extract")
    empty = [i for i, r in enumerate(rel) if not r or not all(r)]
    if empty:
        raise ConfigError(f"{path}: row {empty[0]} lists no image files (or an empty name)")
    return frame, [[base / f for f in r] for r in rel]


def metadata_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Scalar columns as ``Metadata_<name>``; list columns ``|``-joined."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            col = col.list.join("|")
        elif dtype.is_nested() or dtype == pl.Object:
            continue
        exprs.append(col.alias(name if name.startswith("Metadata_") else f"Metadata_{name}"))
    return frame.select(exprs)


def _features_for(
    spec: str, job: ExtractJob, files: list[list[Path]], progress: bool
) -> np.ndarray:
    from cytoimagenet.models.factory import create_backbone

    backbone = create_backbone(
        job.arch,
        weights=spec,
        in_chans=job.in_chans,
        seed=job.seed,
        keras_padding=job.keras_padding,
    )
    return extract_features(
        backbone,
        files,
        MODES[job.mode],
        job.size,
        batch_size=job.batch_size,
        workers=job.workers,
        device=job.device,
        progress=progress,
    )


def write_features(meta: pl.DataFrame, features: np.ndarray, out: Path, info: dict) -> None:
    """Write ``Metadata_*`` + ``feature_*`` columns to Parquet, atomically, with ``info``."""
    import pyarrow.parquet as pq

    names = [f"feature_{i:05d}" for i in range(features.shape[1])]
    table = pl.concat([meta, pl.from_numpy(features, schema=names)], how="horizontal").to_arrow()
    table = table.replace_schema_metadata({b"cytoimagenet": json.dumps(info).encode()})
    with atomic_path(out) as tmp:
        # pyarrow writes it: polars cannot attach schema metadata.
        pq.write_table(table, tmp, compression="zstd")


def run_extract(job: ExtractJob, *, progress: bool = True) -> pl.DataFrame:
    """Extract, write ``job.out`` (+ ``.provenance.json``) and return the metadata columns."""
    frame, files = read_images_table(job.images, job.root)
    if job.model.startswith(FUSION_PREFIX):
        specs = job.model.removeprefix(FUSION_PREFIX).split("+")
        features = fuse([_features_for(s, job, files, progress) for s in specs])
    else:
        features = _features_for(job.model, job, files, progress)
    meta = metadata_columns(frame)
    info = {"config": job.resolved(), "environment": environment(), "shape": features.shape}
    write_features(meta, features, job.out, info)
    write_provenance(
        job.out.with_name(f"{job.out.stem}.provenance.json"),
        command="extract",
        config=job.resolved(),
        inputs=[job.images],
        extra={"images": features.shape[0], "features": features.shape[1]},
    )
    return meta
