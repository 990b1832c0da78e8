"""BBBC021 mAP (``evaluate bbbc021 --map``): copairs' activity and consistency next to NSC.

The features are normalised exactly as the kNN protocol normalises them
(:func:`cytoimagenet.evaluation.bbbc021.prepare`); then

- *activity*: the replicate profiles of each treatment (compound + concentration) against
  the DMSO profiles — rows as given for the ``cytoimagenet`` protocol, well means for the
  ``standard`` one (its well-level aggregation);
- *consistency*: the treatment profiles the kNN ranks, positives of the same MoA and another
  compound (as NSC excludes the query's compound), negatives of another MoA.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from cytoimagenet.evaluation.bbbc021 import Bbbc021Protocol, prepare, treatment_profiles
from cytoimagenet.evaluation.bbbc021_table import (
    COMPOUND,
    CONC_KEY,
    MOA,
    PLATE,
    WELL,
    group_codes,
    group_mean,
)
from cytoimagenet.evaluation.feature_table import FeatureTable
from cytoimagenet.evaluation.mean_ap import (
    MapSettings,
    phenotypic_activity,
    phenotypic_consistency,
)

DESCRIPTION = (
    "mAP computed by copairs on the protocol's normalised features. Activity: replicate "
    "profiles ({unit}s) of each treatment (compound + concentration) retrieve each other "
    "against the DMSO {unit}s; mAP per treatment. Consistency: treatment profiles retrieve "
    "those of the same MoA and another compound against those of other MoAs; mAP per MoA. "
    "{distance} similarity; permutation p-values ({null_size} draws, seed {seed}), "
    "Benjamini-Hochberg FDR over the groups, significant at q < {threshold:g}."
)


def _wells(
    meta: pl.DataFrame, x: np.ndarray, control: np.ndarray, source: str
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Average rows per well (plate + well); a well's metadata is its first row's."""
    from cytoimagenet.errors import SchemaError

    missing = [c for c in (PLATE, WELL) if c not in meta.columns or meta[c].null_count()]
    if missing:
        raise SchemaError(f"{source}: per-well mAP needs column(s) {missing}")
    codes, wells = group_codes(meta, [PLATE, WELL])
    means = group_mean(x, codes, wells.height)
    first = np.unique(codes, return_index=True)[1]  # codes are 0 … wells-1
    return meta[first.tolist()], means, control[first]


def map_bbbc021(
    table: FeatureTable,
    proto: Bbbc021Protocol,
    moa: Path | None,
    settings: MapSettings,
) -> dict[str, object]:
    """Return the RESULT.json ``map`` block: settings, description, activity, consistency.

    Raises
    ------
    SchemaError
        When either analysis has nothing to compare (see
        :func:`~cytoimagenet.evaluation.mean_ap.phenotypic_activity`).
    """
    source = table.source
    prep = prepare(table, proto, moa)
    keep = prep.evaluated | prep.control
    meta, x, control = prep.meta.filter(pl.Series(keep)), prep.x[keep], prep.control[keep]
    unit = "row"
    if proto.aggregate == "well-mean":
        meta, x, control = _wells(meta, x, control, source)
        unit = "well"
    meta = meta.with_columns(pl.col(CONC_KEY).alias("Metadata_Concentration_key"))
    treatment = [COMPOUND, "Metadata_Concentration_key"]
    activity = phenotypic_activity(meta, x, treatment, control, settings, source, unit)
    treat, profiles = treatment_profiles(prep.rows, prep.x[prep.evaluated], proto.aggregate, source)
    consistency = phenotypic_consistency(
        treat, profiles, MOA, [COMPOUND], settings, source, "treatment"
    )
    return {
        "settings": settings.block(),
        "description": DESCRIPTION.format(unit=unit, **settings.block()),
        "activity": activity,
        "consistency": consistency,
    }
