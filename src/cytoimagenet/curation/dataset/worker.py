"""Process one shard: read, merge, QC, crop and write every field; record the outcome.

A shard's record (a small Parquet file) is written last and atomically, so its presence means
every PNG it lists is complete. Re-running a shard rewrites byte-identical PNGs under the same
names: every random choice comes from the task's own seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cytoimagenet.curation.dataset.records import RECORD_COLUMNS, record_path, write_record
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
        planes = read_field([Path(f) for f in task.files], options.max_pixels)
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
        # The whole field stands in for its crops, so it must pass the crops' QC: without
        # it a black field (all crops dropped as dim) entered the dataset, labelled.
        whole = to_uint8(merge())
        why = crop_reason(whole, options.qc)
        if why is not None:
            detail = f"the whole field failed the crop QC ({why}); {task.files[0]}"
            rows.append(_row(task, "rejected", reason=why, detail=detail))
            return rows
        geometry = {
            "crop": False,
            "scaling": 1.0,
            "x_min": 0,
            "x_max": width,
            "y_min": 0,
            "y_max": height,
        }
        rows.append(_written(task, 0, whole, out, **geometry))
    return rows


def process_fields(shard: Shard) -> list[dict[str, Any]]:
    """Process every task of ``shard``; return the rows of its record (nothing recorded).

    An unexpected error on one field is recorded as a rejection with reason ``error``;
    it never stops the shard.
    """
    out = Path(shard.out)
    rows: list[dict[str, Any]] = []
    for task in shard.tasks:
        try:
            rows.extend(process_image(task, out, shard.options))
        except Exception as exc:  # one bad field must not stop the build
            rows.append(
                _row(task, "rejected", reason="error", detail=f"{type(exc).__name__}: {exc}")
            )
    return rows


def _summary(shard: Shard, rows: list[dict[str, Any]]) -> tuple[int, int]:
    frame = write_record(record_path(Path(shard.results), shard.shard_id), rows)
    return len(shard.tasks), int((frame["status"] == "ok").sum())


def process_shard(shard: Shard) -> tuple[int, int]:
    """Process every task of ``shard`` and write its record; return (fields, outputs)."""
    return _summary(shard, process_fields(shard))


def isolate_shard(shard: Shard) -> tuple[int, int]:
    """Redo a shard whose worker process died, one field per process, and record it.

    Called (in the build's own process) when ``shard`` killed its worker twice: the OOM
    killer, or a decoder that crashes. Each field runs alone in a fresh process; a field
    whose process dies again is quarantined with reason ``worker-died`` and the others are
    kept, so the build finishes instead of retrying the killer for ever.
    """
    from dataclasses import replace

    from cytoimagenet.parallel import run_isolated

    singles = [replace(shard, tasks=(task,)) for task in shard.tasks]
    rows: list[dict[str, Any]] = []
    for single, result in run_isolated(process_fields, singles, on_died=lambda _: None):
        if result is None:
            task = single.tasks[0]
            detail = (
                "the worker process died on this field (killed by the OS: out of memory? "
                f"or a crashing decoder); {task.files[0]}"
            )
            rows.append(_row(task, "rejected", reason="worker-died", detail=detail))
        else:
            rows.extend(result)
    return _summary(shard, rows)
