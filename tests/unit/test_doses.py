"""Doses: the unit table and parser, and what each adapter with a dose column records."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes import bbbc as bbbc_fakes
from tests.fakes import idr as idr_fakes

from cytoimagenet.curation.dose import (
    CANONICAL_UNITS,
    UNITS,
    dose_exprs,
    format_dose,
    normalize_unit,
)
from cytoimagenet.sources import build_metadata


def parse(values: list[object], units: list[str | None] | None = None) -> list[tuple]:
    frame = pl.DataFrame({"concentration": values}, schema={"concentration": pl.String})
    if units is not None:
        frame = frame.with_columns(pl.Series("concentration_unit", units, dtype=pl.String))
    out = frame.select(*dose_exprs(frame))
    return list(out.iter_rows())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("uM", ("uM", 1.0)),
        ("µM", ("uM", 1.0)),
        ("μM", ("uM", 1.0)),  # Greek mu, not the micro sign
        ("microMolar", ("uM", 1.0)),
        ("micromoles per liter", ("uM", 1.0)),
        ("nM", ("uM", 1e-3)),
        ("nanomolar", ("uM", 1e-3)),
        ("mM", ("uM", 1e3)),
        ("mmol/L", ("uM", 1e3)),
        ("M", ("uM", 1e6)),
        ("ug/mL", ("ug/ml", 1.0)),
        ("microgram per milliliter", ("ug/ml", 1.0)),
        ("ng/ml", ("ug/ml", 1e-3)),
        ("mg/mL", ("ug/ml", 1e3)),
        ("% v/v", ("%", 1.0)),
        ("percent", ("%", 1.0)),
    ],
)
def test_units_are_normalised(raw: str, expected: tuple[str, float]) -> None:
    assert normalize_unit(raw) == expected


@pytest.mark.parametrize("raw", ["furlongs", "", "x", "units", None, "um um"])
def test_unknown_units_are_none(raw: str | None) -> None:
    assert normalize_unit(raw) is None


def test_every_unit_maps_into_the_small_set() -> None:
    assert {u for u, _ in UNITS.values()} == set(CANONICAL_UNITS)


def test_numbers_and_units_are_parsed_and_converted() -> None:
    got = parse(
        ["0.3", "5 micromolar", "1 microgram per milliliter", " .5 ", "1e-3 nM", "300 nM", "0"],
        ["uM", None, None, "mg/mL", None, "mM", "uM"],
    )
    assert got == [
        (0.3, "uM"),
        (5.0, "uM"),  # the unit in the cell wins
        (1.0, "ug/ml"),
        (500.0, "ug/ml"),
        (1e-6, "uM"),
        (0.3, "uM"),  # 300 nM, exactly 0.3 and not 0.30000000000000004
        (0.0, "uM"),
    ]


def test_unreadable_values_give_null_value_and_unit() -> None:
    values = ["-1", "1,5", "abc", None, "3", "7 bananas", "inf"]
    got = parse(values, ["uM", "uM", "uM", "uM", "furlong", "uM", "uM"])
    assert got == [(None, None)] * 7


def test_no_dose_columns_gives_nulls() -> None:
    frame = pl.DataFrame({"x": [1, 2]})
    out = frame.with_columns(*dose_exprs(frame)).drop("x")
    assert out.schema == pl.Schema({"concentration": pl.Float64, "concentration_unit": pl.String})
    assert out.null_count().row(0) == (2, 2)


def test_a_number_without_any_unit_is_null() -> None:
    assert parse(["3"]) == [(None, None)]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.3, "uM", "0.3 uM"),
        (1.0, "uM", "1 uM"),
        (1e-6, "uM", "0.000001 uM"),
        (250.0, "%", "250 %"),
    ],
)
def test_format_dose(value: float, unit: str, text: str) -> None:
    assert format_dose(value, unit) == text


# --- adapters ---------------------------------------------------------------------------


def _doses(table: pl.DataFrame) -> dict[str, tuple[float | None, str | None]]:
    return {
        r["idx"].split("-", 1)[1]: (r["concentration"], r["concentration_unit"])
        for r in table.iter_rows(named=True)
    }


def test_idr0088_doses_from_the_header_unit(tmp_path: Path) -> None:
    idr_fakes.fake_idr0088(tmp_path)
    doses = _doses(build_metadata("idr0088", tmp_path))
    assert doses == {"screenA_1013608248_L10": (10.0, "uM"), "screenA_1013608248_A1": (None, None)}


def test_idr0016_and_idr0037_doses_written_in_words(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    idr_fakes.fake_idr0016(a)
    idr_fakes.fake_idr0037(b)
    assert _doses(build_metadata("idr0016", a)) == {
        "screenA_24277_A01": (None, None),
        "screenA_24277_A02": (5.0, "uM"),
    }
    assert _doses(build_metadata("idr0037", b)) == {
        "screenA_experiment_1_A1": (1.0, "ug/ml"),
        "screenA_experiment_1_A10": (None, None),
    }


def test_idr0081_doses(tmp_path: Path) -> None:
    idr_fakes.fake_idr0081(tmp_path)
    table = build_metadata("idr0081", tmp_path)
    # DMSO is published as 1762.5 uM (0.01 %); kept as published.
    assert set(_doses(table).values()) == {(1762.5, "uM")}


def test_studies_without_a_dose_column_have_none(tmp_path: Path) -> None:
    idr_fakes.fake_idr0093(tmp_path)
    table = build_metadata("idr0093", tmp_path)
    assert table["concentration"].null_count() == table.height


def test_bbbc021_doses_in_micromolar(tmp_path: Path) -> None:
    bbbc_fakes.fake_bbbc021(tmp_path)
    table = build_metadata("bbbc021", tmp_path)
    by_compound = {
        r["compound"][0]: (r["concentration"], r["concentration_unit"])
        for r in table.iter_rows(named=True)
    }
    assert by_compound == {"taxol": (0.003, "uM"), "dmso": (0.0, "uM"), "mystery": (1.0, "uM")}


# --- real tables -------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_idr0088_doses() -> None:
    raw = shared_path("source_metadata", "idr0088")
    table = build_metadata("idr0088", raw)
    counts = dict(table["concentration"].value_counts().iter_rows())
    # Four doses of every compound; DMSO wells have none.
    assert counts == {0.3: 71_119, 1.0: 71_112, 3.0: 71_020, 9.0: 70_611, None: 33_568}
    assert table["concentration_unit"].drop_nulls().unique().to_list() == ["uM"]
    dmso = table.filter(pl.col("compound").list.contains("dmso"))
    assert dmso.height == 33_568 and dmso["concentration"].null_count() == dmso.height


@pytest.mark.realdata
def test_real_idr0081_doses() -> None:
    raw = shared_path("source_metadata", "idr0081")
    table = build_metadata("idr0081", raw)
    counts = dict(table["concentration"].value_counts().iter_rows())
    # Compounds at 1.25 uM in screens B-E; DMSO published as 1762.5 uM (all of screen A);
    # 16 wells of D and E list no compound and no dose.
    assert counts == {1.25: 12_016, 1762.5: 2_560, None: 16}
