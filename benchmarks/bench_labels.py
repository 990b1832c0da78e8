"""Time weak-label assignment on a realistic synthetic 2.7M-row metadata table.

The table mimics CytoImageNet's inputs: each of the 40 source datasets contributes as many
rows as the authors' survey (``datasets_info.csv``) lists, scaled to 2.7M in total, with its
per-class sizes and class names as the survey gives them (so compound names pool across
datasets as they do in reality), dataset-level organism / cell type / visible structures,
and a share of multi-valued cells.

It prints: table build time, candidate counting + assignment + sampling time, peak RSS,
and the speed ratio against a faithful re-implementation of the original per-label
``str.contains`` approach (timed on the first labels and extrapolated).

Usage::

    python benchmarks/bench_labels.py [--rows 2700000] [--original-labels 8] [--split-by-dose]
"""

from __future__ import annotations

import argparse
import ast
import csv
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.schema import conform

SURVEY = Path(__file__).resolve().parents[2] / "shared/data/cytoimagenet_survey/datasets_info.csv"

#: Survey dir_name → (shorthand, label category of its class list).
DATASETS = {
    "rec_rxrx1": ("rec_rxrx1", "sirna"),
    "rec_rxrx2": ("rec_rxrx2", "compound"),
    "rec_rxrx19a": ("rec_rxrx19a", "compound"),
    "rec_rxrx19b": ("rec_rxrx19b", "compound"),
    "idr0088": ("idr0088", "compound"),
    "idr0081": ("idr0081", "compound"),
    "idr0017": ("idr0017", "compound"),
    "idr0016": ("idr0016", "compound"),
    "bbbc_u2os_cell_painting": ("bbbc022", "compound"),
    "idr0009": ("idr0009", "gene"),
    "idr0080": ("idr0080", "gene"),
    "idr0041": ("idr0041", "gene"),
    "idr0093": ("idr0093", "sirna"),
    "idr0067": ("idr0067", "gene"),
    "bbbc_colon": ("bbbc017", "gene"),
    "bbbc_u2os_rnai": ("bbbc025", "gene"),
    "bbbc_kidney": ("bbbc051", "cell_type"),
    "idr0037": ("idr0037", "cell_type"),
    "kag_hpa": ("kag_hpa", "cell_visible"),
    "kag_hpa_single": ("kag_hpa_single", "cell_visible"),
    "idr0072": ("idr0072", "cell_visible"),
    "cil_kinome": ("cil_kinome", "cell_visible"),
    "idr0021": ("idr0021", "cell_visible"),
    "idr0003": ("idr0003", "phenotype"),
    "kag_leukemia": ("kag_leukemia", "phenotype"),
    "kag_cell_cycle": ("kag_cell_cycle", "phenotype"),
    "bbbc_jurkat": ("bbbc048", "phenotype"),
    "bbbc_u2os_focus": ("bbbc006", "phenotype"),
    "bbbc_u2os_trans": ("bbbc013", "phenotype"),
    "bbbc_u2os_trans_2": ("bbbc014", "phenotype"),
    "bbbc_u2os_transfluor": ("bbbc015", "phenotype"),
    "bbbc_synth": ("bbbc005", "phenotype"),
    "bbbc_coculture": ("bbbc026", "phenotype"),
    "bbbc_wbc": ("bbbc045", "phenotype"),
    "bbbc_malaria": ("bbbc041", "phenotype"),
    "bbbc_macrophage": ("bbbc020", "phenotype"),
    "bbbc_elegans_meta": ("bbbc011", "phenotype"),
    "bbbc_elegans_infect": ("bbbc012", "phenotype"),
    "bbbc_elegans_dead": ("bbbc010", "phenotype"),
    "bbbc_data_bowl": ("bbbc038", "phenotype"),
}
CATEGORIES = ("organism", "cell_type", "cell_visible", "phenotype", "compound", "gene", "sirna")


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text) if text.startswith("[") else text
    except (ValueError, SyntaxError):
        return text


def build_table(rows: int, seed: int = 0) -> pl.DataFrame:
    """Build the synthetic unified table (see the module docstring)."""
    csv.field_size_limit(sys.maxsize)
    with SURVEY.open(encoding="utf-8") as fh:
        survey = {r["dir_name"]: r for r in csv.DictReader(fh)}
    rng = np.random.default_rng(seed)
    sizes_total = sum(int(float(survey[d]["dataset_size"])) for d in DATASETS)
    scale = rows / sizes_total
    frames = []
    for dir_name, (short, category) in DATASETS.items():
        row = survey[dir_name]
        n = round(int(float(row["dataset_size"])) * scale)
        sizes = _literal(row["class_sizes"])
        names = _literal(row["phenotype"])
        numeric = isinstance(sizes, list) and all(isinstance(s, int | float) for s in sizes)
        if not (numeric and 1 < len(sizes) <= 25_000):
            sizes = [1]
        if not (isinstance(names, list) and len(names) == len(sizes)):
            names = [f"{short} class {i}" for i in range(len(sizes))]
        p = np.asarray(sizes, float) / sum(sizes)
        cls = rng.choice(len(sizes), size=n, p=p)
        values = np.asarray([str(v).lower() for v in names], dtype=object)[cls]
        data: dict[str, object] = {c: [None] * n for c in CATEGORIES}
        data[category] = [[v] for v in values]
        organisms = str(row["organism"]).split("|")
        data["organism"] = [[organisms[i % len(organisms)]] for i in range(n)]
        cell = _literal(row["cell_type"])
        cells = (
            [str(c).lower() for c in cell]
            if isinstance(cell, list)
            else [str(cell).lower() or "none"]
        )
        if category != "cell_type":
            data["cell_type"] = [[cells[i]] for i in rng.integers(0, len(cells), n)]
        if category != "cell_visible":
            vis = _literal(row["cell_component"])
            vis_list = (
                [str(v).lower() for v in vis]
                if isinstance(vis, list)
                else [str(vis).lower() or "cell"]
            )
            data["cell_visible"] = [vis_list] * n  # multi-valued: all stains of the dataset
        frames.append(
            pl.DataFrame(
                {
                    **data,
                    "database": row["database"],
                    "name": row["name"],
                    "dir_name": short,
                    "path": short,
                    "filename": [f"{short}_{i}.png" for i in range(n)],
                    "idx": [f"{short}-{i}" for i in range(n)],
                    "crop": False,
                    "pool": "pretraining",
                },
                schema_overrides={c: pl.List(pl.String) for c in CATEGORIES},
            )
        )
    return conform(pl.concat(frames, how="diagonal"))


def original_approach(table: pl.DataFrame, candidates: pl.DataFrame, labels: int) -> float:
    """Time the original per-label loop on the first ``labels`` candidates; seconds per label."""
    import pandas as pd  # benchmark-only dependency

    df = table.select(
        "idx", "dir_name", *[pl.col(c).list.join("|") for c in CATEGORIES]
    ).to_pandas()
    df = df.rename(columns={"dir_name": "name"})
    used: dict[str, str] = {}
    t0 = time.perf_counter()
    for row in candidates.head(labels).iter_rows(named=True):
        label, col = row["label"], row["category"]
        hit = df[col].str.contains(label, na=False) & ~df.idx.isin(used)
        filtered = df[hit]
        if len(filtered) > 1000:
            strata = ("organism", "cell_type", "cell_visible", "sirna", "compound", "phenotype")
            cols = [c for c in strata if c != col]
            frac = 1000 / len(filtered)
            sample = filtered.groupby(cols, dropna=False).sample(
                frac=min(frac, 1.0), random_state=0
            )
            while len(sample) < 1000 and frac < 1:
                frac += 0.03 if len(sample) < 500 else 0.02
                sample = filtered.groupby(cols, dropna=False).sample(
                    frac=min(frac, 1.0), random_state=0
                )
            filtered = sample.head(1000)
        used.update(dict.fromkeys(filtered.idx, label))
    del pd
    return (time.perf_counter() - t0) / labels


def with_doses(table: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Give every row with a compound one of four doses (µM), as idr0088 has them."""
    rng = np.random.default_rng(seed)
    doses = np.array([0.3, 1.0, 3.0, 9.0])[rng.integers(0, 4, table.height)]
    has = table["compound"].is_not_null()
    return table.with_columns(
        pl.when(has).then(pl.Series(doses)).alias("concentration"),
        pl.when(has).then(pl.lit("uM")).alias("concentration_unit"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--original-labels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split-by-dose",
        action="store_true",
        help="give compound rows one of four doses and label per (compound, dose)",
    )
    args = parser.parse_args()
    if not SURVEY.is_file():
        sys.exit(f"{SURVEY} not found: this benchmark needs ../shared/data")

    t0 = time.perf_counter()
    table = build_table(args.rows, args.seed)
    t_build = time.perf_counter() - t0
    print(
        f"synthetic table: {table.height:,} rows from {table['dir_name'].n_unique()} "
        f"datasets, built in {t_build:.1f} s"
    )

    if args.split_by_dose:
        table = with_doses(table, args.seed)
    t0 = time.perf_counter()
    result = assign_labels([table], LabelOptions(seed=args.seed, split_by_dose=args.split_by_dose))
    t_assign = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    labelled = result.candidates.filter(pl.col("status") == "labelled")
    print(
        f"candidates {result.candidates.height:,}, labels {labelled.height:,}, "
        f"images {result.table.height:,}"
    )
    print(f"counting + assignment + sampling: {t_assign:.1f} s   (target < 60 s)")
    print(f"peak RSS of the whole run: {peak_gb:.2f} GB   (target < 4 GB)")

    per_label = original_approach(table, result.candidates, args.original_labels)
    estimate = per_label * result.candidates.height
    print(
        f"original per-label str.contains approach: {per_label:.2f} s/label on the first "
        f"{args.original_labels} labels → ~{estimate / 60:.0f} min for all "
        f"{result.candidates.height:,} candidates; ratio {estimate / t_assign:.0f}x"
    )
    by_cat = labelled.group_by("category").len().sort("len", descending=True)
    print("labels per category:", ", ".join(f"{r[0]} {r[1]}" for r in by_cat.iter_rows()))


if __name__ == "__main__":
    main()
