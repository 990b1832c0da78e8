"""``evaluate profiles``: mAP of any profile table, treatments named by metadata columns.

Rows are profiles (wells, images or cells: typically ``cytoimagenet profile``'s output, used
as given, without further normalisation). ``--group-by`` names the columns that together
identify a treatment, ``--control COL=VALUE`` the control rows. Phenotypic activity is
always computed; with ``--moa-column`` also phenotypic consistency over the treatment mean
profiles (controls and treatments without an annotation left out), positives of the same
annotation and another value of the first ``--group-by`` column (the compound).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from cytoimagenet.errors import SchemaError
from cytoimagenet.evaluation.feature_table import FeatureTable
from cytoimagenet.evaluation.mean_ap import (
    MapSettings,
    phenotypic_activity,
    phenotypic_consistency,
)

DESCRIPTION = (
    "mAP computed by copairs on the profiles as given. Activity: the replicate profiles of "
    "each treatment ({group_by}) retrieve each other against the control profiles "
    "({control}); mAP per treatment. {consistency}{distance} similarity; permutation "
    "p-values ({null_size} draws, seed {seed}), Benjamini-Hochberg FDR over the groups, "
    "significant at q < {threshold:g}."
)
CONSISTENCY = (
    "Consistency: treatment mean profiles retrieve those of the same {moa} and another "
    "{differ} against those of another {moa}; mAP per {moa}. "
)


def parse_control(text: str) -> tuple[str, str]:
    """Split ``COL=VALUE`` (the column gets the ``Metadata_`` prefix when it lacks it).

    Examples
    --------
    >>> parse_control("Compound=DMSO")
    ('Metadata_Compound', 'DMSO')

    Raises
    ------
    ValueError
        When there is no ``=`` or either side is empty.
    """
    column, sep, value = text.partition("=")
    if not sep or not column.strip() or not value.strip():
        raise ValueError(f"--control {text!r}: write COLUMN=VALUE, e.g. Metadata_Compound=DMSO")
    return metadata_name(column.strip()), value.strip()


def metadata_name(column: str) -> str:
    """Return ``column`` with the ``Metadata_`` prefix (kept when it is there)."""
    return column if column.startswith("Metadata_") else f"Metadata_{column}"


def group_columns(values: list[str]) -> list[str]:
    """Return ``--group-by`` values as unique ``Metadata_`` names, in order.

    Raises
    ------
    ValueError
        When no column is named (pydantic reports it as a validation error).
    """
    names = [metadata_name(v.strip()) for v in values if v.strip()]
    if not names:
        raise ValueError("--group-by: name at least one metadata column")
    return list(dict.fromkeys(names))


def _treatment_means(
    meta: pl.DataFrame, x: np.ndarray, group_by: list[str], moa: str, source: str
) -> tuple[pl.DataFrame, np.ndarray]:
    """Mean profile per treatment, with its annotation (one per treatment, or refused)."""
    codes_frame = meta.select(group_by).with_row_index("__row")
    uniq = meta.select(group_by).unique(maintain_order=True).with_row_index("__t")
    codes = codes_frame.join(uniq, on=group_by, how="left").sort("__row")["__t"].to_numpy()
    n = uniq.height
    sums = np.zeros((n, x.shape[1]))
    np.add.at(sums, codes, x.astype(np.float64))
    means = sums / np.bincount(codes, minlength=n)[:, None]
    info = (
        meta.with_columns(pl.Series("__t", codes))
        .group_by("__t")
        .agg(pl.col(moa).n_unique().alias("__n"), pl.col(moa).first())
        .sort("__t")
    )
    if (info["__n"] > 1).any():
        raise SchemaError(f"{source}: a treatment ({', '.join(group_by)}) has several {moa}")
    return uniq.drop("__t").hstack(info.select(moa)), means


def evaluate_profiles(
    table: FeatureTable,
    group_by: list[str],
    control: tuple[str, str],
    moa: str | None,
    settings: MapSettings,
) -> tuple[dict[str, object], dict[str, object]]:
    """Return the RESULT.json ``protocol`` and ``map`` blocks of a profile table.

    Raises
    ------
    SchemaError
        When a column is missing or empty, no row is a control, or an analysis has nothing
        to compare.
    """
    column, value = control
    needed = list(dict.fromkeys([*group_by, column, *([moa] if moa else [])]))
    table.require(needed, " (named by --group-by, --control and --moa-column)")
    meta, source = table.meta, table.source
    is_control = (meta[column] == value).to_numpy()
    if not is_control.any():
        found = sorted(meta[column].unique().to_list())[:5]
        raise SchemaError(
            f"{source}: no row has {column} = {value!r} (--control); values include {found}"
        )
    activity = phenotypic_activity(meta, table.features, group_by, is_control, settings, source)
    block: dict[str, object] = {"settings": settings.block(), "activity": activity}
    if moa is not None:
        rows = ~is_control & meta[moa].is_not_null().to_numpy()
        sub = meta.filter(pl.Series(rows))
        treat, means = _treatment_means(sub, table.features[rows], group_by, moa, source)
        block["consistency"] = phenotypic_consistency(
            treat, means, moa, [group_by[0]], settings, source, "treatment"
        )
    consistency = CONSISTENCY.format(moa=moa, differ=group_by[0]) if moa else ""
    block["description"] = DESCRIPTION.format(
        group_by=" + ".join(group_by),
        control=f"{column} = {value}",
        consistency=consistency,
        **settings.block(),
    )
    protocol: dict[str, object] = {
        "name": "map",
        "description": block["description"],
        "group_by": group_by,
        "control": f"{column}={value}",
        "moa_column": moa,
        "metric": settings.distance,
        "unit": "treatment",
        "rows": len(table),
        "feature_columns": len(table.names),
    }
    return protocol, block
