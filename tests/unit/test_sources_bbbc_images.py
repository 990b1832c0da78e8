"""BBBC sources labelled by folder and file names: naming, labels, and the authors' tables.

The real-name tests feed every file name of the CytoImageNet authors' early standardised
tables (``../shared/data/cytoimagenet_survey/early_cleaned_metadata``) into the adapters as
empty placeholder files, and check the records and labels against those tables.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes.bbbc_images import FAKES, touch

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import read_delimited
from cytoimagenet.sources import build_metadata, get_adapter
from cytoimagenet.sources.bbbc_layouts import LAYOUTS


def early_table(source: str) -> pl.DataFrame:
    """The authors' early table of ``source``, with each file's path relative to the raw root."""
    path = shared_path("cytoimagenet_survey", "early_cleaned_metadata", f"{source}_metadata.csv")
    table = read_delimited(path)
    folder = pl.col("path").str.replace(rf"^/ferrero/stan_data/{source}/?", "")
    rel = (
        pl.when(folder == "").then(pl.col("filename")).otherwise(folder + "/" + pl.col("filename"))
    )
    return table.with_columns(rel.alias("rel"))


def placeholders(tmp_path: Path, table: pl.DataFrame) -> Path:
    raw = tmp_path / "raw"
    touch(raw, table["rel"].to_list())
    return raw


# --- layouts agree with the catalog -----------------------------------------------------


@pytest.mark.parametrize("source", sorted(LAYOUTS))
def test_channel_tokens_match_catalog_channels(source: str) -> None:
    layout = LAYOUTS[source]
    adapter = get_adapter(source)
    assert adapter.needs_images
    assert adapter.info.metadata_files == []
    if layout.channel is not None:
        assert len(layout.channels) == len(adapter.info.channels)


# --- the authors' real file names ---------------------------------------------------------


def test_bbbc005_real_names_one_record_per_stain(tmp_path: Path) -> None:
    table = early_table("bbbc005")
    assert table.height == 2400
    raw = placeholders(tmp_path, table)
    records = get_adapter("bbbc005").read(raw)
    assert records.height == 2400  # the authors kept each channel file as its own row
    got = records.select(pl.col("channel_paths").list.first().alias("rel"), "cell_visible")
    joined = table.join(got, on="rel", how="left")
    assert joined["cell_visible"].null_count() == 0
    assert (joined["cell_visible"] == joined["cell_component"]).all()
    assert joined["cell_visible"].value_counts().sort("cell_visible")["count"].to_list() == [
        1200,
        1200,
    ]
    # Every file the authors listed sits in a ground-truth folder: masks, never labelled.
    assert records["exclude_reason"].str.contains("ground-truth").all()
    harmonised = build_metadata("bbbc005", raw)
    assert set(harmonised["channels"].explode()) == {"f_cell body", "f_nucleus"}
    assert harmonised["cell_type"].explode().unique().to_list() == ["u2os"]


@pytest.mark.parametrize("source", ["bbbc013", "bbbc014"])
def test_translocation_real_names_keep_the_dna_channel(source: str, tmp_path: Path) -> None:
    table = early_table(source)
    assert table.height == 192
    raw = placeholders(tmp_path, table)
    records = get_adapter(source).read(raw)
    assert records.height == 96
    assert records["well"].n_unique() == 96
    paths = records["channel_paths"].explode()
    assert paths.len() == 96
    assert paths.str.contains(r"Channel ?2-").all()
    wells = table["filename"].str.extract(r"-([A-H])-(\d{2})", 1) + table["filename"].str.extract(
        r"-([A-H])-(\d{2})", 2
    )
    assert set(records["well"]) == set(wells)
    harmonised = build_metadata(source, raw)
    assert (harmonised["cell_visible"].list.join("|") == "nucleus").all()
    assert records["exclude_reason"].null_count() == 96


def test_bbbc014_both_cell_lines_as_the_authors(tmp_path: Path) -> None:
    table = early_table("bbbc014")
    harmonised = build_metadata("bbbc014", placeholders(tmp_path, table))
    assert set(table["cell_type"]) == {"mcf7|a549"}
    assert (harmonised["cell_type"].list.join("|") == "mcf7|a549").all()


def test_bbbc015_real_names_two_channels_per_field(tmp_path: Path) -> None:
    table = early_table("bbbc015")
    assert table.height == 288
    raw = placeholders(tmp_path, table)
    records = get_adapter("bbbc015").read(raw)
    assert records.height == 144
    assert (records["channel_paths"].list.len() == 2).all()
    assert records["channel_paths"].list.first().str.ends_with("_1.JPG").all()
    harmonised = build_metadata("bbbc015", raw)
    assert set(table["cell_component"]) == {"nucleus|cell membrane"}
    assert (harmonised["cell_visible"].list.join("|") == "nucleus|cell membrane").all()
    assert harmonised["exclude_reason"].null_count() == 144


def test_bbbc026_real_names(tmp_path: Path) -> None:
    table = early_table("bbbc026")
    assert table.height == 864
    raw = placeholders(tmp_path, table)
    records = get_adapter("bbbc026").read(raw)
    assert records.height == 864
    assert set(records["path"]) == {"."}  # the authors' files sit at the raw root
    first = records.filter(pl.col("well") == "A01", pl.col("site") == "2")
    assert first["plate"].to_list() == ["ADSASS092408-GHAD2-D6-20x"]
    harmonised = build_metadata("bbbc026", raw)
    assert (harmonised["organism"].list.join("|") == "human|mouse").all()
    assert (harmonised["cell_type"].list.join("|") == "hepatocyte|fibroblast").all()
    assert (harmonised["cell_visible"].list.join("|") == "nucleus").all()


def test_bbbc051_real_names_reproduce_cell_types(tmp_path: Path) -> None:
    table = early_table("bbbc051")
    assert table.height == 5600
    raw = placeholders(tmp_path, table)
    records = get_adapter("bbbc051").read(raw)
    assert records.height == 5600
    got = records.select(
        pl.col("channel_paths").list.first().alias("rel"), pl.col("cell_type").alias("ours")
    )
    joined = table.join(got, on="rel", how="left")
    assert joined["ours"].null_count() == 0
    assert (joined["ours"] == joined["cell_type"]).all()
    counts = dict(records["cell_type"].value_counts().iter_rows())
    assert len(counts) == 7 and set(counts.values()) == {800}


# --- labels from names --------------------------------------------------------------------


def test_bbbc010_columns_split_alive_and_dead(tmp_path: Path) -> None:
    FAKES["bbbc010"](tmp_path)
    table = build_metadata("bbbc010", tmp_path).sort("well")
    assert table["well"].to_list() == ["A01", "A13"]
    assert table["phenotype"].to_list() == [["alive"], ["dead"]]
    assert table["compound"].to_list() == [["ampicillin"], None]
    assert table["control"].to_list() == ["positive", "negative"]
    assert table["organism"].to_list() == [["nematode"], ["nematode"]]
    # w2 (brightfield) first, as the catalog's channel order says.
    assert table["channel_paths"].list.first().str.contains("_w2_").all()


def test_bbbc048_phase_folders_become_phenotypes(tmp_path: Path) -> None:
    phases = ["G1", "S", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase"]
    touch(
        tmp_path, [f"CellCycle/{p}/{i}_Ch{c}.jpg" for i, p in enumerate(phases) for c in (3, 4, 6)]
    )
    table = build_metadata("bbbc048", tmp_path)
    assert table.height == 7
    assert set(table["phenotype"].explode()) == {
        "g1 phase",
        "s phase",
        "g2 phase",
        "prophase",
        "metaphase",
        "anaphase",
        "telophase",
    }
    assert table["channel_paths"].list.first().str.ends_with("_Ch4.jpg").all()
    assert table["idx"].to_list() == sorted(table["idx"].to_list())


def test_bbbc020_merged_preview_is_skipped_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    FAKES["bbbc020"](tmp_path)
    with caplog.at_level(logging.WARNING):
        records = get_adapter("bbbc020").read(tmp_path)
    assert not caplog.records
    assert records["channel_paths"].list.len().to_list() == [2, 2]
    assert not records["channel_paths"].explode().str.contains(r"\(c1\+c5\)").any()


def test_keys_are_path_derived_and_stable(tmp_path: Path) -> None:
    FAKES["bbbc012"](tmp_path)
    first = get_adapter("bbbc012").read(tmp_path)
    (tmp_path / "BBBC012_v1_images" / "zz_late_addition_H12_w1.tif").write_bytes(b"")
    again = get_adapter("bbbc012").read(tmp_path)
    kept = again.filter(pl.col("key").is_in(first["key"].to_list()))
    assert kept["key"].to_list() == first["key"].to_list()


# --- odd trees ------------------------------------------------------------------------------


def test_missing_channel_is_recorded_and_excluded(tmp_path: Path) -> None:
    FAKES["bbbc012"](tmp_path)
    table = build_metadata("bbbc012", tmp_path).sort("well")
    assert table["exclude_reason"].to_list() == [None, "missing channel file(s): f_pharynx"]
    assert table["channel_paths"].list.len().to_list() == [3, 2]
    assert table["channels"][1].to_list() == ["brightfield", "f_intestine"]


def test_odd_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    FAKES["bbbc013"](tmp_path)
    touch(tmp_path, ["BBBC013_v1_images_bmp/Thumbs_preview.bmp"])
    with caplog.at_level(logging.WARNING):
        records = get_adapter("bbbc013").read(tmp_path)
    assert records.height == 2
    assert "Thumbs_preview.bmp" in caplog.text


def test_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images")
    with pytest.raises(MetadataError, match=r"no image files .* 'bbbc048'"):
        get_adapter("bbbc048").read(tmp_path)


def test_no_file_in_published_naming_names_the_pattern(tmp_path: Path) -> None:
    touch(tmp_path, ["renamed/cell_0001.tif"])
    with pytest.raises(MetadataError, match=r"SIMCEPImages.*expected|expected.*SIMCEPImages"):
        get_adapter("bbbc005").read(tmp_path)
