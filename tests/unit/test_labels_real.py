"""Weak labels a biologist would sign, on every real source table in ``../shared/data``.

Builds each source's table from its real published metadata (the folders without
per-image metadata, idr0016/0017/0093, fail to build and are left out), assigns the labels
with the default options and checks what must never be a label: a control, a bare number,
a placeholder, an underscore, a strain, a compound's mechanism filed as a phenotype.
"""

from __future__ import annotations

import re

import polars as pl
import pytest
from tests.conftest import shared_path

from cytoimagenet.curation.labels import REFUSED_NUMBER, LabelOptions, LabelResult, assign_labels
from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata

#: Words that name no class, wherever they stand in a label.
PLACEHOLDER = re.compile(r"\b(unknown|n/a|none|null|nan|missing|control|negative|positive)\b")


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    root = shared_path("source_metadata")
    built = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            built[folder.name] = build_metadata(folder.name, folder)
        except MetadataError:
            continue  # plate lists only (idr0016, idr0017, idr0093)
    return built


@pytest.fixture(scope="module")
def result(tables: dict[str, pl.DataFrame]) -> LabelResult:
    return assign_labels(list(tables.values()), LabelOptions())


def test_every_source_with_metadata_is_built(tables: dict[str, pl.DataFrame]) -> None:
    assert {"idr0088", "rec_rxrx1", "idr0009", "idr0003", "bbbc041", "cil_kinome"} <= set(tables)
    assert len(tables) >= 17


def test_no_control_is_a_label(result: LabelResult, tables: dict[str, pl.DataFrame]) -> None:
    assert result.table.height > 50_000
    assert result.table["control"].null_count() == result.table.height
    assert "dmso" not in set(result.table["label"])
    assert "3'-deoxy-3'-fluorothymidine" not in set(result.table["label"])  # idr0081's positive
    # The controls were there, and are reported per source and kind.
    excluded = {(r["dir_name"], r["control"]): r["images"] for r in result.controls.to_dicts()}
    assert excluded[("rec_rxrx1", "positive")] == 12_194
    assert excluded[("idr0088", "negative")] == 33_568
    assert excluded[("idr0081", "positive")] == 1_792
    total = sum(int(t["control"].is_not_null().sum()) for t in tables.values())
    assert sum(excluded.values()) == total - _held_out_controls(tables)


def _held_out_controls(tables: dict[str, pl.DataFrame]) -> int:
    return sum(
        int((t["control"].is_not_null() & t["exclude_reason"].is_not_null()).sum())
        for t in tables.values()
    )


def test_no_label_is_a_number_a_placeholder_or_has_an_underscore(result: LabelResult) -> None:
    labels = result.table["label"].unique().to_list()
    assert not [x for x in labels if x.isdigit()]
    assert not [x for x in labels if PLACEHOLDER.search(x)]
    assert not [x for x in labels if "_" in x]
    # The guard ran: no bare-number candidate survived harmonisation into the pool.
    assert REFUSED_NUMBER not in set(result.candidates["status"])


def test_categories_are_what_the_values_are(
    result: LabelResult, tables: dict[str, pl.DataFrame]
) -> None:
    by_category: dict[str, set[str]] = {}
    for label, category in result.table.select("label", "category").unique().iter_rows():
        by_category.setdefault(category, set()).add(label)
    # Yeast strains are not cell types; parasite stages are not human cell types.
    assert not {"y6545", "sk1", "ring", "trophozoite"} & by_category["cell_type"]
    # Kinase groups are not visible structures; gene families and growth media are not
    # phenotypes; mechanisms of action are not phenotypes unless asked for.
    assert not [x for x in by_category["cell_visible"] if x.endswith(" kinase")]
    moa = set(tables["idr0088"]["moa"].explode().drop_nulls())
    assert len(moa) > 200
    phenotypes = by_category["phenotype"]
    assert not moa & phenotypes
    assert not {"kinase", "phosphatase", "starvation", "wildtype", "dithiothreitol"} & phenotypes
    assert "moa" not in by_category and "condition" not in by_category
