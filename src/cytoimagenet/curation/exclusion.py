"""The hard evaluation exclusion: images of benchmark datasets never enter pretraining.

The rule is deliberately *not* a setting. It is applied when metadata is harmonised and
again when labels are assigned, and it does not read the catalog's ``pretraining`` flag
alone: the held-out names are fixed here, so a catalog edit cannot switch it off by
accident. Known overlaps (the same images published under another source) are listed in
:data:`KNOWN_OVERLAPS` and matched on exact identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

#: Datasets used to evaluate transfer; their images are never pretraining data.
HELD_OUT_SOURCES: Final = frozenset({"bbbc021", "coos7", "cyclops"})


@dataclass(frozen=True)
class Overlap:
    """A set of rows, in any source, known to be images of a held-out dataset.

    Attributes
    ----------
    column : str
        Unified-schema column to test.
    pattern : str
        Regular expression that must match the *whole* value.
    reason : str
        Recorded in ``exclude_reason``.
    """

    column: str
    pattern: str
    reason: str


KNOWN_OVERLAPS: Final = (
    Overlap(
        "plate",
        r"Week\d+_\d+",
        "overlaps held-out bbbc021: BBBC021 plate name (Caie et al. MCF7 screen)",
    ),
)


def held_out_reason(source: str) -> str | None:
    """Return why ``source`` is held out, or ``None`` if it may be used for pretraining."""
    if source.lower() in HELD_OUT_SOURCES:
        return f"held-out evaluation dataset {source.lower()}"
    return None


def exclusion_expr(source: str) -> pl.Expr:
    """Return an expression for the ``exclude_reason`` column of rows of ``source``.

    The first applicable reason wins: held-out source, then known overlaps, then any
    reason the adapter gave (source QC failures and the like).
    """
    reason = held_out_reason(source)
    expr: pl.Expr = pl.col("exclude_reason")
    for overlap in reversed(KNOWN_OVERLAPS):
        hit = pl.col(overlap.column).str.contains(f"^(?:{overlap.pattern})$")
        expr = pl.when(hit.fill_null(False)).then(pl.lit(overlap.reason)).otherwise(expr)
    if reason is not None:
        # Keep the adapter's own reason (e.g. a DEAD cell) after the held-out one.
        expr = pl.concat_str([pl.lit(reason), expr], separator="; ", ignore_nulls=True)
    return expr.alias("exclude_reason")


def is_excluded(frame: pl.DataFrame) -> pl.Series:
    """Return a boolean mask of rows that may never be labelled.

    A row is excluded if it has an ``exclude_reason``, is not in the pretraining pool,
    comes from a held-out source, or matches a known overlap, whatever the table says.
    """
    mask = frame["exclude_reason"].is_not_null() | (frame["pool"] != "pretraining")
    mask = mask | frame["dir_name"].str.to_lowercase().is_in(list(HELD_OUT_SOURCES))
    for overlap in KNOWN_OVERLAPS:
        if overlap.column in frame.columns:
            hit = frame[overlap.column].str.contains(f"^(?:{overlap.pattern})$")
            mask = mask | hit.fill_null(False)
    return mask.fill_null(True)
