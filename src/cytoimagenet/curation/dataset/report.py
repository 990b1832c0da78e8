"""The build report: what was written, what was rejected and why, per-class counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from cytoimagenet.io.atomic import atomic_path


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.is_empty():
        return {}
    grouped = frame.group_by(column).len().sort(["len", column], descending=[True, False])
    return {str(k): int(v) for k, v in grouped.iter_rows()}


def build_report(
    records: pl.DataFrame, dropped: pl.DataFrame, dataset: pl.DataFrame
) -> dict[str, Any]:
    """Summarise a build as JSON-ready values."""
    fields = records["idx"].n_unique() if records.height else 0
    rejected = records.filter(pl.col("status") == "rejected")
    crop_drops = records.filter(pl.col("status") == "crop-dropped")
    per_class = []
    if dataset.height:
        grouped = (
            dataset.group_by("label", "category")
            .agg(
                pl.len().alias("images"),
                (pl.col("dset") == "val").sum().alias("val"),
                pl.col("crop").sum().alias("crops"),
                pl.col("idx").n_unique().alias("source_images"),
            )
            .sort("label")
        )
        per_class = grouped.to_dicts()
    return {
        "fields": int(fields),
        "fields_rejected": int(rejected.height),
        "rejected_by_reason": _counts(rejected, "reason"),
        "crops_dropped_by_reason": _counts(crop_drops, "reason"),
        "outputs_written": int((records["status"] == "ok").sum()) if records.height else 0,
        "outputs_dropped_by_reason": _counts(dropped, "drop_reason"),
        "classes_dropped": sorted(
            dropped.filter(pl.col("drop_reason") == "class-too-small")["label"].unique().to_list()
        ),
        "images": int(dataset.height),
        "classes": int(dataset["label"].n_unique()) if dataset.height else 0,
        "val_images": int((dataset["dset"] == "val").sum()) if dataset.height else 0,
        "per_class": per_class,
    }


def format_report(report: dict[str, Any], *, max_classes: int = 20) -> str:
    """Render the report as Markdown (the CLI prints it; the build writes it in full)."""
    lines = [
        "# Build report",
        "",
        f"- source fields: {report['fields']}",
        f"- images in the dataset: {report['images']} in {report['classes']} classes "
        f"({report['val_images']} val)",
        f"- outputs written before trimming: {report['outputs_written']}",
    ]
    for title, key in (
        ("fields rejected", "rejected_by_reason"),
        ("crops dropped by QC", "crops_dropped_by_reason"),
        ("outputs removed", "outputs_dropped_by_reason"),
    ):
        items = report[key]
        text = ", ".join(f"{k} {v}" for k, v in items.items()) or "none"
        lines.append(f"- {title}: {text}")
    if report["classes_dropped"]:
        lines.append(f"- classes below the minimum size: {len(report['classes_dropped'])}")
    rows = report["per_class"]
    lines += [
        "",
        "| label | category | images | val | crops | source images |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows[:max_classes] if max_classes else rows:
        lines.append(
            f"| {row['label']} | {row['category']} | {row['images']} | {row['val']} | "
            f"{row['crops']} | {row['source_images']} |"
        )
    if max_classes and len(rows) > max_classes:
        lines.append(f"| … {len(rows) - max_classes} more | | | | | |")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path) -> None:
    """Write ``build_report.json`` and ``build_report.md`` (every class) into ``out``."""
    with atomic_path(out / "build_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    with atomic_path(out / "build_report.md") as tmp:
        tmp.write_text(format_report(report, max_classes=0) + "\n")
