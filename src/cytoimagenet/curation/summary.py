"""Summaries of a unified metadata table, as data and as a human-readable report."""

from __future__ import annotations

from typing import Any

import polars as pl

from cytoimagenet.schema import LABEL_FIELDS


def summarize(table: pl.DataFrame, *, top: int = 5) -> dict[str, Any]:
    """Describe a unified table: sizes, label-field coverage, controls and exclusions.

    Parameters
    ----------
    table : polars.DataFrame
        A unified-schema table.
    top : int
        How many most frequent values to list per label field.

    Returns
    -------
    dict
        JSON-ready summary.
    """
    fields: dict[str, Any] = {}
    for field in LABEL_FIELDS:
        values = table.select(pl.col(field).explode().drop_nulls()).to_series()
        counts = values.value_counts(sort=True, name="n").head(top)
        fields[field] = {
            "rows_with_value": int(table[field].is_not_null().sum()),
            "distinct": int(values.n_unique()),
            "top": {r[field]: r["n"] for r in counts.iter_rows(named=True)},
        }
    controls = table["control"].drop_nulls().value_counts(sort=True, name="n")
    excluded = table["exclude_reason"].drop_nulls().value_counts(sort=True, name="n")
    return {
        "rows": table.height,
        "sources": sorted(table["dir_name"].unique().to_list()),
        "pool": {
            r["pool"]: r["n"] for r in table["pool"].value_counts(name="n").iter_rows(named=True)
        },
        "plates": int(table["plate"].n_unique())
        if table["plate"].null_count() < table.height
        else 0,
        "label_fields": fields,
        "controls": {r["control"]: r["n"] for r in controls.iter_rows(named=True)},
        "excluded": {r["exclude_reason"]: r["n"] for r in excluded.iter_rows(named=True)},
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize`'s output as an aligned plain-text report."""
    lines = [
        f"rows: {summary['rows']:,}   sources: {', '.join(summary['sources'])}"
        f"   plates: {summary['plates']}",
        "pool: " + ", ".join(f"{k} {v:,}" for k, v in sorted(summary["pool"].items())),
        "",
        f"{'field':<13}{'rows':>10}{'distinct':>10}  most frequent",
    ]
    for field, info in summary["label_fields"].items():
        top = ", ".join(f"{k} ({v:,})" for k, v in info["top"].items()) or "-"
        lines.append(f"{field:<13}{info['rows_with_value']:>10,}{info['distinct']:>10,}  {top}")
    if summary["controls"]:
        lines += [
            "",
            "controls: " + ", ".join(f"{k} {v:,}" for k, v in summary["controls"].items()),
        ]
    if summary["excluded"]:
        lines += ["", "excluded from labelling:"]
        lines += [f"  {v:>8,}  {k}" for k, v in summary["excluded"].items()]
    return "\n".join(lines)
