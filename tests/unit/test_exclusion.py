"""The evaluation exclusion cannot be switched off from the table or the catalog."""

from __future__ import annotations

import polars as pl

from cytoimagenet.curation.exclusion import HELD_OUT_SOURCES, held_out_reason, is_excluded
from cytoimagenet.schema import conform


def _table(**cols: list[object]) -> pl.DataFrame:
    return conform(pl.DataFrame(cols))


def test_held_out_names() -> None:
    assert {"bbbc021", "coos7", "cyclops"} == HELD_OUT_SOURCES
    assert held_out_reason("BBBC021") is not None
    assert held_out_reason("bbbc014") is None  # used by CytoImageNet for pretraining


def test_is_excluded_ignores_a_tampered_pool_column() -> None:
    # Someone rewrote pool/exclude_reason of BBBC021 rows: they are still excluded.
    table = _table(
        dir_name=["bbbc021", "sample", "sample", "sample"],
        pool=["pretraining", "pretraining", "evaluation", "pretraining"],
        plate=["Week1_22123", "SP01", "SP01", "Week2_24121"],
        exclude_reason=[None, None, None, None],
    )
    assert is_excluded(table).to_list() == [True, False, True, True]
