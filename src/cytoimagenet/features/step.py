"""The ``extract`` step: an images table + a model spec → a features Parquet file.

Model specs: ``random``, ``imagenet``, ``lite0-imagenet``, ``cytoimagenet`` (the authors'
published weights, fetched once and cached), ``keras:PATH``, a checkpoint or
weights file, ``intensity`` (per-channel raw intensity statistics, no network:
:mod:`cytoimagenet.features.intensity`), or ``fusion:A+B`` (features of A and B, each
z-scored over the images, then concatenated — the paper's headline model).

The output follows the pycytominer convention: ``Metadata_<column>`` for every scalar column
of the images table, then feature columns named ``Cells_CNN_<model>_<channel>_<i>`` or
``Cells_Intensity_<channel>_<stat>`` (:mod:`cytoimagenet.features.naming`; concat modes:
channel-major blocks of the backbone's width), which pycytominer's ``features="infer"``
finds. The Parquet schema metadata records the spec, mode, size, column scheme and versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from cytoimagenet.config import _Job
from cytoimagenet.errors import ConfigError
from cytoimagenet.features.extract import extract_features, fuse
from cytoimagenet.features.images_in import table_fields
from cytoimagenet.features.inputs import MODES
from cytoimagenet.features.naming import (
    MERGED,
    channel_tokens,
    cnn_names,
    distinct,
    intensity_names,
    model_token,
    token,
)
from cytoimagenet.features.planes import FileFields
from cytoimagenet.features.scope import ScopeBounds, job_scope
from cytoimagenet.fields import Device, ParquetOut, existing_file
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.io.parquet import native_stderr_held
from cytoimagenet.provenance import environment, write_provenance
from cytoimagenet.training.published import is_published_table, resolve_folders

if TYPE_CHECKING:  # torch is imported only when a network is built
    from cytoimagenet.models.factory import Backbone

FUSION_PREFIX = "fusion:"
INTENSITY = "intensity"


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
    name : str, optional
        The ``<model>`` token of the feature column names (default: derived from the spec,
        :func:`~cytoimagenet.features.naming.model_token`); not for fusion.
    illumination : Path, optional
        Flat fields to divide every image by before the mode's normalisation: a folder
        ``cytoimagenet illumination`` wrote (per plate and channel), or one ``.npy``/TIFF
        file (:mod:`cytoimagenet.images.illumination_step`).
    norm_scope : {"crop", "plate", "dataset"}
        Where ``concat-norm``/``merge-norm`` take their percentiles: each image, its plate
        (``plate_column``), or the whole table; ``norm_sample`` images per group
        (:mod:`cytoimagenet.features.scope`).
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
    name: str | None = None
    illumination: Path | None = None
    norm_scope: Literal["crop", "plate", "dataset"] = "crop"
    plate_column: str = "Metadata_Plate"
    norm_sample: int = Field(default=256, ge=1)

    @field_validator("illumination")
    @classmethod
    def _illumination_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value}: no such illumination folder or flat-field file")
        return value

    @field_validator("name")
    @classmethod
    def _name_token(cls, value: str | None) -> str | None:
        if value is not None and not token(value):
            raise ValueError(f"--name {value!r}: needs at least one letter or digit")
        return value

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

    @model_validator(mode="after")
    def _name_not_for_fusion(self) -> ExtractJob:
        if self.name is not None and self.model.startswith(FUSION_PREFIX):
            raise ValueError("--name is for one model; fusion parts keep their own names")
        if self.norm_scope != "crop" and not MODES[self.mode].norm:
            raise ValueError(
                f"--norm-scope {self.norm_scope} is for concat-norm and merge-norm; {self.mode} "
                "already keeps every image on its raw scale"
            )
        return self


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


def table_channel_names(frame: pl.DataFrame) -> list[str] | None:
    """Return the images table's channel names when every row has the same, else ``None``.

    They come from a ``channels`` (or ``Metadata_channels``) column: a list, or ``|``-joined.
    """
    name = next((c for c in ("channels", "Metadata_channels") if c in frame.columns), None)
    if name is None or frame.height == 0:
        return None
    column = frame[name]
    if column.dtype == pl.String:
        column = column.str.split("|")
    if column.dtype != pl.List(pl.String) or column.null_count() or column.n_unique() != 1:
        return None
    return list(column[0])


def network_record(backbone: Backbone, spec: str) -> dict[str, object]:
    """Return what provenance records of a network that made features: the built model's facts.

    ``architecture`` is the timm architecture actually built (``tf_efficientnet_lite0`` for
    ``lite0-imagenet``, a checkpoint's own ``model_name``), whatever ``--arch`` said;
    ``weights`` is the weight source it was loaded from.
    """
    return {
        "spec": spec,
        "architecture": backbone.name,
        "weights": backbone.weights,
        "in_chans": backbone.in_chans,
        "width": backbone.num_features,
        "padding": backbone.extra.get("padding", "timm"),
    }


def _features_for(
    spec: str,
    job: ExtractJob,
    files: list[list[Path]] | FileFields,
    progress: bool,
    *,
    channels: list[str] | None,
    model: str,
    scope: ScopeBounds | None = None,
) -> tuple[np.ndarray, list[str], dict[str, object]]:
    """One spec's features, their column names and the record of the network that made them.

    ``channels`` are the table's channel names (or ``None``: ``ch0``, ``ch1`` …); ``model``
    is the ``<model>`` token of CNN columns (see :mod:`~cytoimagenet.features.naming`). The
    record is :func:`network_record`'s (``architecture`` ``None`` for ``intensity``).
    ``scope`` (``--norm-scope plate|dataset``) rescales a network's inputs by its groups'
    percentiles; the intensity baseline always reads raw planes.
    """
    if spec == INTENSITY:
        from cytoimagenet.features.intensity import STATS, intensity_features

        x = intensity_features(files, workers=job.workers, progress=progress)
        names = intensity_names(channel_tokens(channels, x.shape[1] // len(STATS)), STATS)
        record = {"spec": spec, "architecture": None, "weights": None, "statistics": list(STATS)}
        return x, names, record
    from cytoimagenet.models.factory import create_backbone

    backbone = create_backbone(
        job.arch,
        weights=spec,
        in_chans=job.in_chans,
        seed=job.seed,
        keras_padding=job.keras_padding,
    )
    source, mode = (files, MODES[job.mode]) if scope is None else scope.apply(files, job.mode)
    x = extract_features(
        backbone,
        source,
        mode,
        job.size,
        batch_size=job.batch_size,
        workers=job.workers,
        device=job.device,
        progress=progress,
    )
    width = backbone.num_features
    blocks = channel_tokens(channels, x.shape[1] // width) if MODES[job.mode].concat else [MERGED]
    return x, cnn_names(model, blocks, width), network_record(backbone, spec)


def write_features(
    meta: pl.DataFrame,
    features: np.ndarray,
    out: Path,
    info: dict,
    names: list[str] | None = None,
) -> None:
    """Write ``Metadata_*`` + feature columns to Parquet, atomically, with ``info``.

    ``names`` are the feature columns' names (default ``Cells_CNN_features_all_<i>``, see
    :mod:`~cytoimagenet.features.naming`).
    """
    import pyarrow.parquet as pq

    if names is None:
        names = cnn_names("features", ["all"], features.shape[1])
    if len(names) != features.shape[1] or len(set(names)) != len(names):
        raise ValueError(f"{len(names)} feature names for {features.shape[1]} columns, or repeats")
    table = pl.concat([meta, pl.from_numpy(features, schema=names)], how="horizontal").to_arrow()
    table = table.replace_schema_metadata({b"cytoimagenet": json.dumps(info).encode()})
    with atomic_path(out) as tmp:
        # pyarrow writes it: polars cannot attach schema metadata.
        pq.write_table(table, tmp, compression="zstd")


def run_extract(job: ExtractJob, *, progress: bool = True) -> pl.DataFrame:
    """Extract, write ``job.out`` (+ ``.provenance.json``) and return the metadata columns."""
    frame, paths = read_images_table(job.images, job.root)
    # crop boxes (single cells) and flat fields, when the table or job has them
    files = table_fields(frame, paths, job.images, job.illumination)
    scope, files = job_scope(job, frame, files)
    channels = table_channel_names(frame)
    fusion = job.model.startswith(FUSION_PREFIX)
    specs = job.model.removeprefix(FUSION_PREFIX).split("+") if fusion else [job.model]
    tokens = [token(job.name)] if job.name else distinct([model_token(s) for s in specs])
    parts = [
        _features_for(s, job, files, progress, channels=channels, model=t, scope=scope)
        for s, t in zip(specs, tokens, strict=True)
    ]
    features = fuse([x for x, _, _ in parts]) if fusion else parts[0][0]
    names = [n for _, part_names, _ in parts for n in part_names]
    normalization = scope.record() if scope else {"scope": "crop"}
    # The networks actually built: `config.arch` is only what --arch said.
    networks = [record for _, _, record in parts]
    meta = metadata_columns(frame)
    info = {
        "config": job.resolved(),
        "environment": environment(),
        "shape": features.shape,
        "networks": networks,
        "normalization": normalization,
        "columns": {"scheme": "cytoimagenet-features/2", "first": names[0], "last": names[-1]},
    }
    write_features(meta, features, job.out, info, names)
    write_provenance(
        job.out.with_name(f"{job.out.stem}.provenance.json"),
        command="extract",
        config=job.resolved(),
        inputs=[job.images],
        extra={
            "images": features.shape[0],
            "features": features.shape[1],
            "networks": networks,
            "normalization": normalization,
        },
    )
    return meta
