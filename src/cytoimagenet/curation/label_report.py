"""The label report: labels per category and database, images per label, skipped candidates."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from cytoimagenet.curation.dose import CANONICAL_UNITS
from cytoimagenet.curation.labels import LabelResult
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.schema import LABEL_FIELDS

#: Labels per category in the published dataset (README and preprint Table 1).
PAPER_CATEGORIES: dict[str, int] = {
    "compound": 637,
    "phenotype": 93,
    "cell_type": 44,
    "gene": 43,
    "cell_visible": 38,
    "sirna": 36,
    "organism": 3,
}
#: Labels contributed per database in the published dataset (a label can span databases).
PAPER_DATABASES: dict[str, int] = {
    "Recursion": 651,
    "Image Data Resource": 450,
    "Broad Bioimage Benchmark Collection": 202,
    "Kaggle": 27,
    "Cell Image Library": 1,
}


def build_report(result: LabelResult) -> dict[str, Any]:
    """Summarise a label assignment as a JSON-ready dict."""
    table, cands = result.table, result.candidates
    per_label = (
        table.group_by("label", "category")
        .agg(pl.len().alias("images"), pl.col("database").unique().sort().alias("databases"))
        .sort(["category", "label"])
    )
    per_category = {c: 0 for c in (*LABEL_FIELDS, *result.options.categories)}
    for row in per_label.group_by("category").len().iter_rows(named=True):
        per_category[row["category"]] = row["len"]
    per_database = (
        per_label.explode("databases").group_by("databases").len().sort("len", descending=True)
    )
    skipped = cands.filter(pl.col("status") != "labelled")
    reasons = skipped.group_by("status").len().sort("len", descending=True)
    sizes = per_label["images"]
    opts = result.options
    return {
        "options": {
            "threshold": opts.threshold,
            "class_size": opts.class_size,
            "seed": opts.seed,
            "categories": list(opts.categories),
            "min_class_size": opts.minimum,
            "stage1_size": opts.stage1_size,
            "split_by_dose": opts.split_by_dose,
            "user_synonyms": len(opts.synonyms),
            "user_blocklist": len(opts.blocklist),
        },
        "labels": per_label.height,
        "images": table.height,
        "candidates": cands.height,
        "labels_per_category": per_category,
        "paper_labels_per_category": PAPER_CATEGORIES,
        "labels_per_database": {
            r["databases"]: r["len"] for r in per_database.iter_rows(named=True)
        },
        "paper_labels_per_database": PAPER_DATABASES,
        "class_size": {
            "min": int(sizes.min()) if sizes.len() else 0,
            "median": float(sizes.median()) if sizes.len() else 0.0,
            "max": int(sizes.max()) if sizes.len() else 0,
        },
        "skipped_by_reason": {r["status"]: r["len"] for r in reasons.iter_rows(named=True)},
        "images_per_label": per_label.with_columns(pl.col("databases").list.join("|")).to_dicts(),
        "skipped": skipped.to_dicts(),
        "include_controls": opts.include_controls,
        "controls_excluded": result.controls.to_dicts(),
        "blocked": blocked_report(result),
        "unseen_labels": result.unseen["label"].unique().sort().to_list()
        if result.unseen.height
        else [],
    }


#: What ``--split-by-dose`` appends to a compound (``0.3 uM``).
_DOSE = r"^[0-9.]+ (?:" + "|".join(re.escape(u) for u in CANONICAL_UNITS) + ")$"


def blocked_report(result: LabelResult) -> list[dict[str, Any]]:
    """Every blocklist entry, its reason, and the candidates it kept from being labels."""
    cands = result.candidates.filter(pl.col("status").str.starts_with("blocked: "))
    out = []
    for entry in result.options.blocklist:
        stopped = cands.filter(
            (pl.col("category") == entry.category)
            & (pl.col("status") == f"blocked: {entry.reason}")
            & (
                (pl.col("label").str.to_lowercase() == entry.value)
                | (
                    pl.col("label").str.starts_with(entry.value + " ")
                    & pl.col("label").str.slice(len(entry.value) + 1).str.contains(_DOSE)
                )
            )
        )
        out.append(
            {
                "category": entry.category,
                "value": entry.value,
                "reason": entry.reason,
                "candidates": stopped.select("label", "images").to_dicts(),
            }
        )
    return out


def format_report(report: dict[str, Any]) -> str:
    """Render the report as Markdown (also readable on a terminal)."""
    lines = [
        "# Weak-label assignment",
        "",
        f"{report['labels']:,} labels over {report['images']:,} images "
        f"from {report['candidates']:,} candidates "
        f"(threshold {report['options']['threshold']}, class size "
        f"{report['options']['class_size']}, seed {report['options']['seed']}).",
        "",
        "| category | labels | paper |",
        "|---|---:|---:|",
    ]
    for cat, n in report["labels_per_category"].items():
        lines.append(f"| {cat} | {n:,} | {report['paper_labels_per_category'].get(cat, '-')} |")
    lines += ["", "| database | labels | paper |", "|---|---:|---:|"]
    for db, n in report["labels_per_database"].items():
        lines.append(f"| {db} | {n:,} | {report['paper_labels_per_database'].get(db, '-')} |")
    cs = report["class_size"]
    lines += [
        "",
        f"Images per label: min {cs['min']:,}, median {cs['median']:,.0f}, max {cs['max']:,}.",
    ]
    if report["skipped_by_reason"]:
        lines += ["", "| skipped because | candidates |", "|---|---:|"]
        lines += [f"| {k} | {v:,} |" for k, v in report["skipped_by_reason"].items()]
    if report.get("blocked"):
        lines += ["", "| blocked (your list) | category | reason | candidates stopped |"]
        lines += ["|---|---|---|---|"]
        for b in report["blocked"]:
            stopped = ", ".join(f"{c['label']} ({c['images']:,})" for c in b["candidates"])
            lines.append(f"| {b['value']} | {b['category']} | {b['reason']} | {stopped or '-'} |")
    controls = report.get("controls_excluded") or []
    if controls:
        total = sum(c["images"] for c in controls)
        lines += [
            "",
            f"Control images left out of the pool ({total:,}; `--include-controls` keeps them):",
            "",
            "| source | control | images |",
            "|---|---|---:|",
        ]
        lines += [f"| {c['dir_name']} | {c['control']} | {c['images']:,} |" for c in controls]
    if report["unseen_labels"]:
        lines += ["", f"Unseen (held-out) classes: {', '.join(report['unseen_labels'])}."]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``<stem>.report.json`` and ``<stem>.report.md`` beside ``out``."""
    json_path = out.with_name(f"{out.stem}.report.json")
    md_path = out.with_name(f"{out.stem}.report.md")
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    with atomic_path(md_path) as tmp:
        tmp.write_text(format_report(report), encoding="utf-8")
    return json_path, md_path
