"""How much of each source a selective fetch needs, on the real published metadata.

Builds every source table in ``../shared/data/source_metadata`` (those with per-image
metadata), assigns weak labels with the default options (or ``--paper``: the issue's
threshold 287 / class size 1000 / seed 0, which are the defaults), and prints per source the
channel files a build reads against all the source's channel files, and the route
``download --labels`` takes for it. File shares stand in for byte shares where the archive
sizes are not known offline (channel files of one source are of similar size).

Usage::

    python benchmarks/bench_fetch_plan.py [--root ../shared/data/source_metadata]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from cytoimagenet.curation.dataset.plan import channel_files
from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.download.fetch_step import ROUTES
from cytoimagenet.download.needed import files_by_source
from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata
from cytoimagenet.sources.catalog import get_source

ROOT = Path(__file__).resolve().parents[2] / "shared/data/source_metadata"
ROUTE_NAMES = {
    "rxrx": "zip members (Range)",
    "direct": "zip members (Range)",
    "kaggle": "single Kaggle files",
    "cil": "one zip per image",
    "idr": "Aspera pair list",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    start = time.perf_counter()
    tables = {}
    for folder in sorted(p for p in args.root.iterdir() if p.is_dir()):
        try:
            tables[folder.name] = build_metadata(folder.name, folder)
        except MetadataError:
            continue
    result = assign_labels(list(tables.values()), LabelOptions())
    labelled = result.table.filter(pl.col("label").is_not_null())
    needed = files_by_source(labelled)
    took = time.perf_counter() - start
    print(f"{len(tables)} sources, {labelled.height:,} labelled images ({took:.1f} s)\n")
    print("| source | route | images | files needed | of all files | share |")
    print("|---|---|---:|---:|---:|---:|")
    sum_need = sum_all = 0
    for name, table in tables.items():
        every = {
            f
            for chans, paths in zip(table["channels"], table["channel_paths"], strict=True)
            for f in channel_files(
                chans.to_list() if chans is not None else None,
                paths.to_list() if paths is not None else [],
            )
        }
        need = len(needed.get(name, []))
        images = labelled.filter(pl.col("dir_name") == name).height
        sum_need, sum_all = sum_need + need, sum_all + len(every)
        access = get_source(name).access
        route = ROUTE_NAMES.get(access, access) if access in ROUTES else f"{access} (by hand)"
        share = 100 * need / max(len(every), 1)
        print(f"| {name} | {route} | {images:,} | {need:,} | {len(every):,} | {share:.1f} % |")
    print(
        f"| **all** | | {labelled.height:,} | {sum_need:,} | {sum_all:,} | "
        f"{100 * sum_need / max(sum_all, 1):.1f} % |"
    )


if __name__ == "__main__":
    main()
