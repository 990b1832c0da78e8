"""Plate ids: one per physical plate, checked against the plate lists IDR publishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import shared_path

from cytoimagenet.sources import build_metadata


def published_plates(raw: Path) -> set[str]:
    """Plate names of every ``*-plates.tsv`` (name first, or last after a file path)."""
    names = set()
    for path in raw.glob("*plates.tsv"):
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = [c for c in line.split("\t") if c]
            if cells:
                names.add(cells[-1] if cells[0].startswith("/") else cells[0])
    return names


@pytest.mark.realdata
@pytest.mark.parametrize(("source", "plates"), [("idr0003", 85), ("idr0072", 94), ("idr0081", 20)])
def test_idr_plates_are_the_published_plates(source: str, plates: int) -> None:
    raw = shared_path("source_metadata", source)
    table = build_metadata(source, raw)
    assert set(table["plate"].drop_nulls().unique().to_list()) == published_plates(raw)
    assert table["plate"].n_unique() == plates and table["plate"].null_count() == 0
