"""RxRx adapters: the Kaggle RxRx1 files in ../shared, and fakes of the release forms."""

from __future__ import annotations

import ast
import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes.rxrx import fake_rxrx1, fake_rxrx2, fake_rxrx19a, fake_rxrx19b, write_rxrx1_release

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata, get_adapter

KAGGLE_WELLS = {
    "train.csv": 36_515,
    "test.csv": 19_897,
    "train_controls.csv": 4_097,
    "test_controls.csv": 2_246,
}


@pytest.fixture(scope="module")
def rxrx1_real() -> pl.DataFrame:
    raw = shared_path("source_metadata", "rec_rxrx1")
    return build_metadata("rec_rxrx1", raw)


def _survey_row(dir_name: str) -> dict[str, str]:
    path = shared_path("cytoimagenet_survey", "datasets_info.csv")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["dir_name"] == dir_name:
                return row
    pytest.skip(f"{dir_name} not in the survey")


# --- RxRx1, Kaggle form (real files) ---------------------------------------------------


def test_rxrx1_kaggle_counts(rxrx1_real: pl.DataFrame) -> None:
    assert rxrx1_real.height == 2 * sum(KAGGLE_WELLS.values()) == 125_510
    assert rxrx1_real["idx"].n_unique() == 125_510
    assert sorted(rxrx1_real["site"].unique().to_list()) == ["1", "2"]
    # Test treatment wells carry no siRNA.
    assert rxrx1_real["sirna"].null_count() == 2 * KAGGLE_WELLS["test.csv"]
    controls = dict(rxrx1_real["control"].value_counts().iter_rows())
    assert controls == {None: 112_824, "positive": 12_194, "negative": 492}


def test_rxrx1_kaggle_values(rxrx1_real: pl.DataFrame) -> None:
    row = rxrx1_real.filter(pl.col("idx") == "rec_rxrx1-HEPG2-01_1_B03_2").row(0, named=True)
    assert row["path"] == "images/HEPG2-01/Plate1"
    assert row["filename"] == "B03_s2"
    assert row["channel_paths"] == [f"images/HEPG2-01/Plate1/B03_s2_w{n}.png" for n in range(1, 7)]
    assert row["sirna"] == ["513"]
    assert row["cell_type"] == ["hepg2"]
    assert row["organism"] == ["human"]
    assert row["control"] is None
    assert (row["plate"], row["well"]) == ("HEPG2-01_1", "B03")
    assert row["concentration"] is None and row["concentration_unit"] is None
    cells = set(rxrx1_real["cell_type"].explode().unique().to_list())
    assert cells == {"hepg2", "huvec", "rpe", "u2os"}
    negative = rxrx1_real.filter(pl.col("control") == "negative")
    assert negative["sirna"].explode().unique().to_list() == ["1138"]


def test_rxrx1_real_plates_are_experiment_plus_plate(rxrx1_real: pl.DataFrame) -> None:
    # 51 experiments x 4 plates: the files' plate numbers 1-4 alone would give 4.
    assert rxrx1_real["plate"].n_unique() == 204
    experiments = rxrx1_real["idx"].str.extract(r"^rec_rxrx1-([^_]+)_").n_unique()
    assert experiments == 51
    assert rxrx1_real["concentration"].null_count() == rxrx1_real.height


def test_rxrx1_control_sirnas_match_survey(rxrx1_real: pl.DataFrame) -> None:
    counts = (
        rxrx1_real.filter(pl.col("control").is_not_null())["sirna"]
        .explode()
        .value_counts(sort=True)["count"]
        .to_list()
    )
    assert len(counts) == 31
    assert sum(c >= 287 for c in counts) == 31
    assert counts[0] == 492  # 1138, the survey's "EMPTY"
    survey = ast.literal_eval(_survey_row("rec_rxrx1")["class_sizes"])
    assert counts == survey[:31]


def test_rxrx1_kaggle_partial_set(tmp_path: Path) -> None:
    # Only the test files (no sirna column in test.csv) still gives two sites per well.
    fake_rxrx1(tmp_path)
    for name in ("train.csv", "train_controls.csv"):
        (tmp_path / name).unlink()
    table = build_metadata("rec_rxrx1", tmp_path)
    assert table.height == 4
    assert table.filter(pl.col("control").is_null())["sirna"].null_count() == 2


# --- RxRx1, release form ---------------------------------------------------------------


def test_rxrx1_release_form(tmp_path: Path) -> None:
    expected = write_rxrx1_release(tmp_path)
    table = build_metadata("rec_rxrx1", tmp_path)
    assert table.height == expected
    by_idx = {r["idx"]: r for r in table.iter_rows(named=True)}
    first = by_idx["rec_rxrx1-HEPG2-01_1_B03_1"]
    assert first["sirna"] == ["s35651"]
    assert first["channel_paths"][0] == "rxrx1/images/HEPG2-01/Plate1/B03_s1_w1.png"
    assert by_idx["rec_rxrx1-HEPG2-01_1_B02_1"]["control"] == "negative"
    assert by_idx["rec_rxrx1-U2OS-04_2_C03_1"]["control"] == "positive"
    # No ThermoFisher id: the integer sirna_id stands in.
    assert by_idx["rec_rxrx1-U2OS-04_2_D07_2"]["sirna"] == ["17"]


def test_rxrx1_release_wins_over_kaggle(tmp_path: Path) -> None:
    fake_rxrx1(tmp_path)
    write_rxrx1_release(tmp_path)
    table = build_metadata("rec_rxrx1", tmp_path)
    assert table.height == 5
    assert "s35651" in table["sirna"].explode().to_list()


def test_same_keys_in_both_forms(tmp_path: Path) -> None:
    kaggle, release = tmp_path / "k", tmp_path / "r"
    kaggle.mkdir()
    release.mkdir()
    fake_rxrx1(kaggle)
    write_rxrx1_release(release)
    k = set(get_adapter("rec_rxrx1").read(kaggle)["key"].to_list())
    r = set(get_adapter("rec_rxrx1").read(release)["key"].to_list())
    assert {"HEPG2-01_1_B03_1", "HEPG2-01_1_B02_1"} <= k & r


# --- RxRx2, RxRx19a, RxRx19b (fakes of the published metadata.csv) ----------------------


def test_rxrx2(tmp_path: Path) -> None:
    fake_rxrx2(tmp_path)
    table = build_metadata("rec_rxrx2", tmp_path)
    assert set(table["compound"].explode().to_list()) == {"activin-a", "ifn-gamma", "empty"}
    empty = table.filter(pl.col("compound").list.contains("empty"))
    assert empty["control"].to_list() == ["empty"]
    assert table["cell_type"].explode().unique().to_list() == ["huvec"]
    assert table["channel_paths"].list.len().unique().to_list() == [6]
    assert table.filter(pl.col("site") == "4")["filename"].to_list() == ["B04_s4"]


def test_rxrx2_named_as_its_readme(tmp_path: Path) -> None:
    fake_rxrx2(tmp_path)
    shutil.move(tmp_path / "rxrx2" / "metadata.csv", tmp_path / "rxrx2-metadata.csv")
    table = build_metadata("rec_rxrx2", tmp_path)
    assert table.height == 4
    assert table["path"][0] == "images/HUVEC-1/Plate1"


def test_rxrx19a(tmp_path: Path) -> None:
    fake_rxrx19a(tmp_path)
    table = build_metadata("rec_rxrx19a", tmp_path)
    rows = {r["idx"].removeprefix("rec_rxrx19a-"): r for r in table.iter_rows(named=True)}
    treated = rows["HRCE-1_1_AA02_1"]
    assert treated["compound"] == ["remdesivir"]
    assert treated["phenotype"] == ["active sars-cov-2"]
    assert treated["control"] is None
    assert len(treated["channel_paths"]) == 5
    assert treated["channel_paths"][-1] == "images/HRCE-1/Plate1/AA02_s1_w5.png"
    assert rows["HRCE-1_1_AA03_3"]["control"] == "positive"
    assert rows["HRCE-1_2_B02_4"]["control"] == "negative"
    assert rows["HRCE-2_1_C02_2"]["phenotype"] == ["uv inactivated sars-cov-2"]
    assert rows["HRCE-2_1_C02_2"]["control"] == "negative"
    assert rows["VERO-1_1_D05_1"]["organism"] == ["african green monkey"]
    assert rows["VERO-1_1_D05_1"]["cell_type"] == ["vero"]
    assert rows["HRCE-1_1_AA02_1"]["organism"] == ["human"]


def test_rxrx19b(tmp_path: Path) -> None:
    fake_rxrx19b(tmp_path)
    table = build_metadata("rec_rxrx19b", tmp_path)
    assert table["control"].to_list() == [None, "positive", "negative", "untreated"]
    assert table["phenotype"].to_list() == [["storm-severe"], ["storm-severe"], ["healthy"], None]
    assert table["compound"].to_list()[0] == ["baricitinib"]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["rec_rxrx1", "rec_rxrx2", "rec_rxrx19a", "rec_rxrx19b"])
def test_no_metadata_is_a_clear_error(source: str, tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"no metadata file.*metadata\.csv"):
        build_metadata(source, tmp_path)


def test_missing_column_names_the_file(tmp_path: Path) -> None:
    fake_rxrx19a(tmp_path)
    path = tmp_path / "metadata.csv"
    path.write_text(path.read_text().replace("disease_condition", "condition"))
    with pytest.raises(MetadataError, match=r"metadata\.csv.*disease_condition"):
        build_metadata("rec_rxrx19a", tmp_path)


def test_kaggle_file_without_sirna(tmp_path: Path) -> None:
    fake_rxrx1(tmp_path)
    (tmp_path / "train.csv").write_text("id_code,experiment,plate,well\nX_1_B02,X-1,1,B02\n")
    with pytest.raises(MetadataError, match=r"train\.csv.*sirna"):
        build_metadata("rec_rxrx1", tmp_path)


def test_two_release_files_are_refused(tmp_path: Path) -> None:
    fake_rxrx2(tmp_path)
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "rxrx2" / "metadata.csv", tmp_path / "copy" / "metadata.csv")
    with pytest.raises(MetadataError, match="several metadata files"):
        build_metadata("rec_rxrx2", tmp_path)


# --- plates and doses ---------------------------------------------------------------------


def test_rxrx1_plates_unique_across_experiments(tmp_path: Path) -> None:
    # A second experiment's plate 1: the files' plate number alone would merge it with
    # HEPG2-01's plate 1.
    fake_rxrx1(tmp_path)
    with (tmp_path / "test.csv").open("a") as fh:
        fh.write("U2OS-02_1_B05,U2OS-02,1,B05\n")
    table = build_metadata("rec_rxrx1", tmp_path)
    assert sorted(table["plate"].unique().to_list()) == [
        "HEPG2-01_1",
        "HUVEC-17_3",
        "RPE-08_4",
        "U2OS-01_2",
        "U2OS-02_1",
    ]
    # Paths still use the plate number as the release's folders do.
    assert table.filter(pl.col("plate") == "RPE-08_4")["path"].unique().to_list() == [
        "images/RPE-08/Plate4"
    ]


def test_rxrx1_release_plates(tmp_path: Path) -> None:
    write_rxrx1_release(tmp_path)
    table = build_metadata("rec_rxrx1", tmp_path)
    assert sorted(table["plate"].unique().to_list()) == ["HEPG2-01_1", "U2OS-04_2"]


def test_rxrx2_plates_and_doses(tmp_path: Path) -> None:
    # RxRx2's README gives treatment_conc in mg/mL: stored as ug/ml (x 1000).
    fake_rxrx2(tmp_path)
    table = build_metadata("rec_rxrx2", tmp_path)
    rows = {r["idx"].removeprefix("rec_rxrx2-"): r for r in table.iter_rows(named=True)}
    assert rows["HUVEC-1_1_AA02_1"]["plate"] == "HUVEC-1_1"
    assert rows["HUVEC-2_3_B04_4"]["plate"] == "HUVEC-2_3"
    assert (
        rows["HUVEC-1_1_AA02_1"]["concentration"],
        rows["HUVEC-1_1_AA02_1"]["concentration_unit"],
    ) == (100.0, "ug/ml")
    assert rows["HUVEC-1_1_AB03_1"]["concentration"] == 10.0
    # The EMPTY well has no dose.
    assert rows["HUVEC-2_3_B04_4"]["concentration"] is None
    assert rows["HUVEC-2_3_B04_4"]["concentration_unit"] is None


@pytest.mark.parametrize(
    ("source", "fake", "doses"),
    [
        ("rec_rxrx19a", fake_rxrx19a, {"HRCE-1_1_AA02_1": 1.0, "VERO-1_1_D05_1": 10.0}),
        ("rec_rxrx19b", fake_rxrx19b, {"HUVEC-1_1_AA02_1": 0.3}),
    ],
)
def test_rxrx19_doses_in_micromolar(
    source: str, fake: Callable[[Path], int], doses: dict[str, float], tmp_path: Path
) -> None:
    fake(tmp_path)
    table = build_metadata(source, tmp_path)
    got = {
        r["idx"].split("-", 1)[1]: (r["concentration"], r["concentration_unit"])
        for r in table.iter_rows(named=True)
    }
    for key, dose in doses.items():
        assert got[key] == (dose, "uM")
    untreated = [v for k, v in got.items() if k not in doses]
    assert untreated and all(v == (None, None) for v in untreated)
    plates = table["plate"].unique().to_list()
    assert all(
        p.count("_") == 1 and p.split("_")[0] in {"HRCE-1", "HRCE-2", "VERO-1", "HUVEC-1"}
        for p in plates
    )


def test_release_without_dose_column_gives_null_doses(tmp_path: Path) -> None:
    fake_rxrx19a(tmp_path)
    path = tmp_path / "metadata.csv"
    path.write_text(path.read_text().replace("treatment_conc", "dose_x"))
    table = build_metadata("rec_rxrx19a", tmp_path)
    assert table["concentration"].null_count() == table.height
