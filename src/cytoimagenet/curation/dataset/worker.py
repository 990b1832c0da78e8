"""Process one shard: read, merge, QC, crop and write every field; record the outcome.

A shard's record (a small Parquet file) is written last and atomically, so its presence means
every PNG it lists is complete. Re-running a shard rewrites byte-identical PNGs under the same
names: every random choice comes from the task's own seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cytoimagenet.curation.dataset.tasks import ImageOptions, ImageTask, Shard
from cytoimagenet.imaging.crops import plan_crops
from cytoimagenet.imaging.normalize import (
    PlaneStats,
    Region,
    merge_channels,
    renormalize,
    to_uint8,
)
from cytoimagenet.imaging.png import write_png
from cytoimagenet.imaging.quality import crop_reason, field_reason
from cytoimagenet.imaging.readers import ImageReadError, read_field

#: Columns of a shard record.
RECORD_COLUMNS = (
    "idx",
    "status",
    "reason",
    "detail",
    "path",
    "filename",
    "crop",
    "scaling",
    "x_min",
    "x_max",
    "y_min",
    "y_max",
    "width",
    "height",
    "nbytes",
    "sha256",
)


def _row(task: ImageTask, status: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RECORD_COLUMNS)
    row.update(idx=task.idx, status=status, **values)
    return row


def _written(task: ImageTask, slot: int, image: np.ndarray, out: Path, **geometry: Any) -> dict:
    name = task.filename(slot)
    info = write_png(out / task.folder / name, image)
    return _row(
        task,
        "ok",
        path=task.folder,
        filename=name,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        nbytes=info.nbytes,
        sha256=info.sha256,
        **geometry,
    )


def process_image(task: ImageTask, out: Path, options: ImageOptions) -> list[dict[str, Any]]:
    """Turn one field into its output PNGs; return one record per output or rejection.

    Rejections have ``status`` ``"rejected"`` (the whole field: unreadable, uniform, mask …)
    or ``"crop-dropped"`` (one crop failed its QC; the others, or the whole image, are kept).
    """
    try:
        planes = read_field([Path(f) for f in task.files])
    except ImageReadError as exc:
        return [_row(task, "rejected", reason=exc.reason, detail=str(exc))]
    stats = [PlaneStats.of(p) for p in planes]
    reason = field_reason(stats, options.qc)
    if reason is not None:
        return [_row(task, "rejected", reason=reason, detail=f"{task.files[0]}")]

    def merge(region: Region | None = None) -> np.ndarray:
        return merge_channels(planes, options.low, options.high, stats=stats, region=region)

    height, width = planes[0].shape
    rows: list[dict[str, Any]] = []
    boxes = []
    if options.crops:
        rng = np.random.default_rng(task.seed)
        boxes = plan_crops(
            height,
            width,
            task.n_crops,
            rng,
            min_side=options.min_crop_side,
            min_croppable=options.min_croppable,
        )
    kept = 0
    for box in boxes:
        geometry = {
            "crop": True,
            "scaling": box.scaling,
            "x_min": box.x_min,
            "x_max": box.x_max,
            "y_min": box.y_min,
            "y_max": box.y_max,
        }
        # Only the crop's pixels are merged: a region of the merge is the merge of the region.
        merged = merge(box.region)
        why = crop_reason(to_uint8(merged), options.qc)
        if why is not None:
            rows.append(_row(task, "crop-dropped", reason=why, **geometry))
            continue
        image = renormalize(merged, options.low, options.high)
        rows.append(_written(task, box.slot, image, out, **geometry))
        kept += 1
    if not kept:
        geometry = {
            "crop": False,
            "scaling": 1.0,
            "x_min": 0,
            "x_max": width,
            "y_min": 0,
            "y_max": height,
        }
        rows.append(_written(task, 0, to_uint8(merge()), out, **geometry))
    return rows


def process_shard(shard: Shard) -> tuple[int, int]:
    """Process every task of ``shard`` and write its record; return (fields, outputs).

    An unexpected error on one field is recorded as a rejection with reason ``error``;
    it never stops the shard.
    """
    import polars as pl

    from cytoimagenet.io.atomic import atomic_path

    out = Path(shard.out)
    rows: list[dict[str, Any]] = []
    for task in shard.tasks:
        try:
            rows.extend(process_image(task, out, shard.options))
        except Exception as exc:  # one bad field must not stop the build
            rows.append(
                _row(task, "rejected", reason="error", detail=f"{type(exc).__name__}: {exc}")
            )
    frame = pl.DataFrame(rows, schema=RECORD_SCHEMA, orient="row")
    record = Path(shard.results) / f"{shard.shard_id:06d}.parquet"
    with atomic_path(record) as tmp:
        frame.write_parquet(tmp)
    return len(shard.tasks), int((frame["status"] == "ok").sum())


def _schema() -> dict:
    import polars as pl

    types = {
        "crop": pl.Boolean,
        "scaling": pl.Float64,
        "nbytes": pl.Int64,
    }
    ints = ("x_min", "x_max", "y_min", "y_max", "width", "height")
    return {c: types.get(c, pl.Int64 if c in ints else pl.String) for c in RECORD_COLUMNS}


RECORD_SCHEMA = _schema()
