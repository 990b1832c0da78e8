"""Features of images held in memory: numpy arrays in, the ``extract`` feature table out.

An ``.npz`` of single-cell crops needs no files::

    import numpy as np, polars as pl
    from cytoimagenet.features.api import extract_arrays

    crops = np.load("crops.npz")["images"]               # (N, H, W, C) uint16
    meta = pl.read_csv("metadata.csv")                    # one row per crop
    features = extract_arrays(crops, meta, model="random", mode="concat-norm")

The arrays take the same path as files in ``extract`` (the four modes, resizing, batching,
the backbone, column names), so the features equal those of ``extract`` on the same pixels
written to files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.planes import ArrayFields
from cytoimagenet.features.scope import job_scope
from cytoimagenet.features.step import (
    FUSION_PREFIX,
    ExtractJob,
    _features_for,
    metadata_columns,
    table_channel_names,
    write_features,
)
from cytoimagenet.fields import ParquetOut

if TYPE_CHECKING:
    import pandas as pd

#: Largest axis length taken for channels when the layout is guessed.
MAX_GUESSED_CHANNELS = 16


class ArraysJob(ExtractJob):
    """:class:`~cytoimagenet.features.step.ExtractJob` for arrays: no table, optional output."""

    images: None = None  # type: ignore[assignment]
    out: ParquetOut | None = None  # type: ignore[assignment]
    illumination: None = None  # type: ignore[assignment]


def as_nchw(images: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
    """Return ``images`` as ``(N, C, H, W)``; ``N × H × W`` is one channel.

    Parameters
    ----------
    images : numpy.ndarray
        ``N × C × H × W``, ``N × H × W × C`` or ``N × H × W``, any integer, float or bool dtype
        (bool becomes ``uint8``, ``float16`` becomes ``float32``; values are kept).
    channel_axis : int, optional
        ``1`` or ``-1``/``3``; by default the one of axes 1 and 3 no longer than
        :data:`MAX_GUESSED_CHANNELS` while the other is longer.

    Examples
    --------
    >>> as_nchw(np.zeros((5, 68, 68, 3), np.uint16)).shape
    (5, 3, 68, 68)
    >>> as_nchw(np.zeros((5, 2, 40, 40), np.uint8)).shape
    (5, 2, 40, 40)
    >>> as_nchw(np.zeros((5, 40, 40))).shape
    (5, 1, 40, 40)
    """
    array = np.asarray(images)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    if array.dtype.kind not in "uif":
        raise ConfigError(f"images of dtype {array.dtype}: expected integers, floats or bool")
    if array.ndim == 3:
        return array[:, None]
    if array.ndim != 4:
        raise ConfigError(
            f"images of shape {array.shape}: expected N x C x H x W, N x H x W x C or N x H x W"
        )
    if channel_axis is None:
        small = [a for a in (1, 3) if array.shape[a] <= MAX_GUESSED_CHANNELS]
        if len(small) != 1:
            raise ConfigError(
                f"images of shape {array.shape}: cannot tell the channel axis; pass "
                "channel_axis=1 (N x C x H x W) or channel_axis=-1 (N x H x W x C)"
            )
        channel_axis = small[0]
    if channel_axis not in (1, 3, -1):
        raise ConfigError(f"channel_axis={channel_axis}: expected 1 or -1 (3)")
    return array if channel_axis == 1 else np.moveaxis(array, -1, 1)


def _frame(metadata: pl.DataFrame | pd.DataFrame | None, n: int) -> pl.DataFrame:
    if metadata is None:
        return pl.DataFrame({"Metadata_Index": np.arange(n)})
    frame = metadata if isinstance(metadata, pl.DataFrame) else pl.from_pandas(metadata)
    if frame.height != n:
        raise ConfigError(f"metadata has {frame.height} rows for {n} images; one row per image")
    return frame


def extract_arrays(
    images: np.ndarray,
    metadata: pl.DataFrame | pd.DataFrame | None = None,
    *,
    model: str = "random",
    mode: str = "concat-norm",
    size: int | None = 224,
    channel_axis: int | None = None,
    channel_names: list[str] | None = None,
    out: Path | None = None,
    progress: bool = False,
    **options: Any,
) -> pl.DataFrame:
    """Extract features of in-memory images; return the table ``extract`` would write.

    Parameters
    ----------
    images : numpy.ndarray
        ``N × C × H × W`` or ``N × H × W × C`` (or ``N × H × W``), any dtype, at full bit
        depth (see :func:`as_nchw`).
    metadata : polars or pandas DataFrame, optional
        One row per image; its columns become ``Metadata_*`` columns as in ``extract``
        (default: ``Metadata_Index``).
    model, mode, size
        As ``extract`` (``size=None`` is ``--size native``); ``model`` may be ``intensity``
        or ``fusion:A+B``.
    channel_axis : int, optional
        ``1`` or ``-1``; guessed when one of the two axes is short (channels).
    channel_names : list of str, optional
        Channel names for the column names (default: the metadata's ``channels`` column, else
        ``ch0``, ``ch1`` …).
    out : Path, optional
        Also write the table to this Parquet file (atomically), as ``extract`` does.
    **options
        Further :class:`~cytoimagenet.features.step.ExtractJob` options: ``arch``,
        ``in_chans``, ``batch_size``, ``workers``, ``device``, ``seed``, ``keras_padding``,
        ``name``, ``norm_scope`` (``"plate"`` or ``"dataset"``: percentiles over the
        metadata's ``plate_column`` or all images, not each image), ``norm_sample``.

    Returns
    -------
    polars.DataFrame
        ``Metadata_*`` columns, then the feature columns, named as ``extract`` names them.

    Raises
    ------
    ConfigError
        For invalid options, an unknown layout, or metadata of another length.
    """
    from cytoimagenet.config import validate_job
    from cytoimagenet.features.extract import fuse
    from cytoimagenet.features.naming import distinct, model_token, token
    from cytoimagenet.provenance import environment

    job = validate_job(ArraysJob, model=model, mode=mode, size=size, out=out, **options)
    array = as_nchw(images, channel_axis)
    frame = _frame(metadata, array.shape[0])
    if array.shape[0] == 0:
        raise ConfigError("no images to extract features from")
    channels = channel_names or table_channel_names(frame)
    if channels is not None and len(channels) != array.shape[1]:
        raise ConfigError(f"{len(channels)} channel names for {array.shape[1]} channels")
    fields = ArrayFields(array)
    scope, fields = job_scope(job, frame, fields)  # type: ignore[assignment]
    fusion = job.model.startswith(FUSION_PREFIX)
    specs = job.model.removeprefix(FUSION_PREFIX).split("+") if fusion else [job.model]
    tokens = [token(job.name)] if job.name else distinct([model_token(s) for s in specs])
    parts = [
        _features_for(s, job, fields, progress, channels=channels, model=t, scope=scope)  # type: ignore[arg-type]
        for s, t in zip(specs, tokens, strict=True)
    ]
    features = fuse([x for x, _, _ in parts]) if fusion else parts[0][0]
    names = [n for _, part_names, _ in parts for n in part_names]
    meta = metadata_columns(frame)
    if job.out is not None:
        info = {
            "config": job.resolved(),
            "environment": environment(),
            "shape": features.shape,
            "source": "arrays",
            "networks": [record for _, _, record in parts],
            "normalization": scope.record() if scope else {"scope": "crop"},
            "columns": {"scheme": "cytoimagenet-features/2", "first": names[0], "last": names[-1]},
        }
        write_features(meta, features, job.out, info, names)
    return pl.concat([meta, pl.from_numpy(features, schema=names)], how="horizontal")


__all__ = ["ArraysJob", "as_nchw", "extract_arrays"]
