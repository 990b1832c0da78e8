"""Control wells: what kind each is, and marking them consistently within a source.

A control teaches a network the absence of a treatment (a vehicle, a non-targeting siRNA,
an empty well) or a known reference effect (a positive control): it is never a weak label
unless the user asks (:class:`~cytoimagenet.curation.labels.LabelOptions`
``include_controls``). Adapters pass the source's own control annotation (RxRx1's
``well_type``, IDR's ``Control Type``, a plate map's control genes); harmonisation maps it
to a kind here and then makes the marking consistent:

* **Vehicle**: a row treated with nothing but a vehicle (:data:`VEHICLES`, after synonyms:
  ``dimethyl sulfoxide`` is ``dmso``) and not annotated is marked ``vehicle``.
* **Propagation**: a reagent (one ``sirna`` or ``compound`` value) that the source marks as
  a control of one kind in some rows is marked so in all its rows of that source. idr0009
  annotates its non-targeting siRNA 103860 as a negative control on one plate group and
  not on the other, whose wells hold the same reagent.
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: Normalised control annotations → the kind recorded in ``control``; others are kept.
CONTROL_KINDS: Final = {
    "negative control": "negative",
    "negative": "negative",
    "neg": "negative",
    "non-targeting": "negative",
    "positive control": "positive",
    "positive": "positive",
    "pos": "positive",
    "empty well": "empty",
    "empty": "empty",
    "vehicle": "vehicle",
    "vehicle control": "vehicle",
    "solvent control": "vehicle",
}
#: Compounds that are a vehicle (solvent), never a treatment of their own.
VEHICLES: Final = frozenset({"dmso"})
#: Fields whose single value names the reagent of a well.
REAGENT_FIELDS: Final = ("sirna", "compound")


def control_expr(records: pl.DataFrame, normalised: pl.Expr) -> pl.Expr:
    """Build the ``control`` column: ``normalised`` (the normalised annotation) as a kind.

    Parameters
    ----------
    records : polars.DataFrame
        The adapter's records (to know whether they have a ``control`` column).
    normalised : polars.Expr
        The raw ``control`` column after token normalisation.
    """
    if "control" not in records.columns:
        return pl.lit(None, dtype=pl.String).alias("control")
    return normalised.replace(CONTROL_KINDS).alias("control")


def mark_controls(frame: pl.DataFrame) -> pl.DataFrame:
    """Mark vehicle-only rows and propagate a reagent's control kind within one source.

    Parameters
    ----------
    frame : polars.DataFrame
        One source's rows with harmonised ``compound``/``sirna`` lists and ``control``.

    Returns
    -------
    polars.DataFrame
        ``frame`` with ``control`` filled where the rules above apply; annotated rows
        keep their kind.

    Examples
    --------
    >>> f = pl.DataFrame(
    ...     {
    ...         "compound": [["dmso"], ["taxol"], None, None],
    ...         "sirna": [None, None, ["103860"], ["103860"]],
    ...         "control": [None, None, "negative", None],
    ...     }
    ... )
    >>> mark_controls(f)["control"].to_list()
    ['vehicle', None, 'negative', 'negative']
    """
    only = pl.col("compound").list.len() == 1
    vehicle = only & pl.col("compound").list.first().is_in(list(VEHICLES))
    frame = frame.with_columns(
        pl.when(pl.col("control").is_null() & vehicle.fill_null(False))
        .then(pl.lit("vehicle"))
        .otherwise(pl.col("control"))
        .alias("control")
    )
    for field in REAGENT_FIELDS:
        reagent = pl.when(pl.col(field).list.len() == 1).then(pl.col(field).list.first())
        kinds = (
            frame.select(reagent.alias("reagent"), "control")
            .drop_nulls()
            .group_by("reagent")
            .agg(pl.col("control").unique())
            .filter(pl.col("control").list.len() == 1)
        )
        if kinds.height == 0:
            continue
        mapping = dict(zip(kinds["reagent"], kinds["control"].list.first(), strict=True))
        known = reagent.replace_strict(mapping, default=None, return_dtype=pl.String)
        frame = frame.with_columns(pl.coalesce("control", known).alias("control"))
    return frame
