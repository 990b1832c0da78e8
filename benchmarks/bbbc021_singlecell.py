"""Worked example on real BBBC021 single cells: DMSO against cycloheximide, feature set by set.

For each feature set (the intensity baseline and CNNs, ``concat-norm`` per crop or per plate)
this runs the package's own path and prints one row:

1. features of the crops through :func:`cytoimagenet.features.api.extract_arrays`;
2. ``profile`` (median per plate + well, z-scored on the DMSO wells of all plates, feature
   selection) and ``evaluate profiles`` activity mAP per dose (copairs, 10,000-draw null);
3. cell-level activity mAP per dose (cells z-scored on all DMSO cells);
4. held-out-plate kNN: each of the six plates is left out in turn and its cells are
   classified DMSO / cycloheximide by the k nearest cells (cosine) of the other five plates,
   features z-scored on those reference cells; accuracy and balanced accuracy (mean of the
   two classes' recall) over the held-out cells of all six folds.

    python benchmarks/bbbc021_singlecell.py --data ../shared/data/bbbc021_singlecell \\
        --out /tmp/bbbc021_example --sets intensity,random,lite0-imagenet,lite0-imagenet@plate

``--cells-per-well N`` keeps N cells per well (evenly spaced; default: all). Needs the ``ml``,
``lite0`` and ``profiles`` extras.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.evaluation.feature_table import read_feature_table
from cytoimagenet.evaluation.knn import knn_predict
from cytoimagenet.evaluation.mean_ap import MapSettings, phenotypic_activity
from cytoimagenet.evaluation.profiles import evaluate_profiles
from cytoimagenet.features.api import extract_arrays
from cytoimagenet.features.scope import evenly
from cytoimagenet.profiling.step import ProfileJob, run_profile

COLUMNS = {
    "Image_Metadata_Plate_DAPI": "Plate",
    "Image_Metadata_Well_DAPI": "Well",
    "Image_Metadata_Compound": "Compound",
    "Image_Metadata_Concentration": "Concentration",
    "moa": "MoA",
    "image_key": "Image",
    "cell_index": "Cell",
}


def load(data: Path, per_well: int | None) -> tuple[np.ndarray, pl.DataFrame]:
    """Return the crops (N × 68 × 68 × 3, uint16) and their metadata, optionally subsampled."""
    z = np.load(data / "crops.npz")
    meta = pl.read_csv(data / "metadata.csv").select(
        [pl.col(k).cast(pl.String).alias(v) for k, v in COLUMNS.items()]
    )
    if meta["Image"].to_list() != z["image_key"].tolist() or meta["Cell"].to_list() != [
        str(c) for c in z["cell_index"]
    ]:
        raise SystemExit("error: metadata.csv rows do not follow crops.npz")
    meta = meta.with_columns(channels=pl.lit("DAPI|Tubulin|Actin"))
    rows = np.arange(meta.height)
    if per_well is not None:
        wells = meta.with_row_index("r").group_by(["Plate", "Well"], maintain_order=True)
        rows = np.sort(np.concatenate([evenly(g["r"].to_list(), per_well) for _, g in wells]))
    return z["images"][rows], meta[rows]


def standardize(fit: np.ndarray, *parts: np.ndarray) -> list[np.ndarray]:
    """Z-score ``parts`` with the mean and std of ``fit`` (constant columns dropped)."""
    mu, sd = fit.mean(0), fit.std(0)
    keep = sd > 0
    return [(p[:, keep] - mu[keep]) / sd[keep] for p in parts]


def cells_map(table: pl.DataFrame, names: list[str]) -> dict[str, float]:
    """Activity mAP per dose over cells, z-scored on the DMSO cells."""
    x = table.select(names).to_numpy().astype(np.float64)
    control = (table["Metadata_Compound"] == "DMSO").to_numpy()
    (x,) = standardize(x[control], x)
    settings = MapSettings(distance="cosine", null_size=10_000)
    block = phenotypic_activity(
        table, x, ["Metadata_Concentration"], control, settings, "cells", "cell"
    )
    return {str(g["group"]): round(float(g["map"]), 3) for g in block["per_group"]}


def held_out_knn(table: pl.DataFrame, names: list[str], k: int) -> dict[str, float]:
    """Leave-one-plate-out kNN, DMSO vs cycloheximide, every plate held out once."""
    x = table.select(names).to_numpy().astype(np.float64)
    label = table["Metadata_Compound"].to_numpy()
    plate = table["Metadata_Plate"].to_numpy()
    plates = np.unique(plate)
    hits, truth = [], []
    for p in plates:
        ref, query = plate != p, plate == p
        train, test = standardize(x[ref], x[ref], x[query])
        pred = knn_predict(train, label[ref].tolist(), test, k=k).labels
        hits.append(pred == label[query])
        truth.append(label[query])
    hit, lab = np.concatenate(hits), np.concatenate(truth)
    per_class = [hit[lab == c].mean() for c in np.unique(lab)]
    return {
        "accuracy": round(float(hit.mean()), 3),
        "balanced": round(float(np.mean(per_class)), 3),
        "held_out_plates": len(plates),
        "query_cells": int(hit.size),
    }


def run_set(spec: str, images: np.ndarray, meta: pl.DataFrame, out: Path, k: int, size: str):
    """Features, profiles, mAP and kNN of one feature set ``MODEL[@SCOPE]``."""
    model, _, scope = spec.partition("@")
    tag = spec.replace("@", "_").replace(":", "_")
    start = time.perf_counter()
    options = {} if model == "intensity" else {"norm_scope": scope or "crop"}
    table = extract_arrays(
        images, meta, model=model, mode="concat-norm",
        size=None if size == "native" else int(size), out=out / f"{tag}.parquet",
        plate_column="Plate", **options,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    names = [c for c in table.columns if c.startswith("Cells_")]
    prof = out / f"{tag}_profiles"
    run_profile(
        ProfileJob(
            features=out / f"{tag}.parquet", out=prof, control="Compound=DMSO", per_plate=False
        )
    )
    wells = read_feature_table(prof / "selected.parquet")
    _, block = evaluate_profiles(
        wells, ["Metadata_Compound", "Metadata_Concentration"], ("Metadata_Compound", "DMSO"),
        None, MapSettings(distance="cosine", null_size=10_000),
    )  # fmt: skip
    activity = block["activity"]
    return {
        "set": spec,
        "cells": table.height,
        "features": len(names),
        "extract_s": round(seconds, 1),
        "well_map": {str(g["group"]): round(float(g["map"]), 3) for g in activity["per_group"]},
        "well_significant": f"{activity['significant']}/{activity['groups']}",
        "selected_features": len(wells.names),
        "cell_map": cells_map(table, names),
        "knn": held_out_knn(table, names, k),
    }


def main() -> None:
    """Run every feature set and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bbbc021_singlecell"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sets", default="intensity,random,lite0-imagenet")
    parser.add_argument("--cells-per-well", type=int, default=None)
    parser.add_argument("--size", default="native", help="CNN input side, or native (68).")
    parser.add_argument("--k", type=int, default=11)
    args = parser.parse_args()
    images, meta = load(args.data, args.cells_per_well)
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.sets.split(","):
        row = run_set(spec, images, meta, args.out, args.k, args.size)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
