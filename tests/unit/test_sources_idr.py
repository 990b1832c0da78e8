"""IDR adapters: quirks on the fakes, oracle counts on the real files in ../shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes.idr import FAKES, IDR0072_HEADER, write_table

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata, get_adapter


def _fake(source: str, tmp_path: Path) -> tuple[Path, int]:
    raw = tmp_path / source
    raw.mkdir()
    return raw, FAKES[source](raw)


def _by_key(table: pl.DataFrame) -> dict[str, dict[str, object]]:
    return {row["idx"]: row for row in table.to_dicts()}


def _counts(table: pl.DataFrame, field: str) -> dict[str, int]:
    values = table[field].explode().drop_nulls().value_counts()
    return dict(zip(values[field].to_list(), values["count"].to_list(), strict=True))


# --- quirks, on the fakes ------------------------------------------------------------


def test_idr0088_zip_numeric_plate_and_moa(tmp_path: Path) -> None:
    raw, _ = _fake("idr0088", tmp_path)
    rows = _by_key(build_metadata("idr0088", raw))
    treated = rows["idr0088-screenA_1013608248_L10"]
    assert treated["plate"] == "1013608248"
    # The MoA is a fact about the compound, kept in `moa`, not a phenotype label.
    assert treated["moa"] == ["topoisomerase inhibitor", "dna synthesis inhibitor"]
    assert treated["phenotype"] is None
    assert treated["compound"] == ["etoposide"]
    assert treated["channel_paths"] == [f"1013608248/L10{n}.tif" for n in (1, 2, 3)]
    dmso = rows["idr0088-screenA_1013608248_A1"]
    assert dmso["control"] == "negative" and dmso["compound"] == ["dmso"]


def test_idr0003_library_quirks(tmp_path: Path) -> None:
    raw, _ = _fake("idr0003", tmp_path)
    rows = _by_key(build_metadata("idr0003", raw))
    first = rows["idr0003-screenA_DTT_p1_A1"]
    assert first["path"] == "DTT p1"  # plate names keep their spaces in paths
    assert first["cell_visible"] == ["ylr106c"]  # no symbol: the ORF is the visible protein
    # The stress is the plate's growth condition; Y6545 the strain, not a cell type.
    assert first["condition"] == ["dithiothreitol"] and first["phenotype"] is None
    assert first["strain"] == "y6545" and first["cell_type"] is None
    assert first["gene"] is None
    excluded = rows["idr0003-screenA_SD1_p1_A1"]
    assert excluded["exclude_reason"] == "Quality Control: Excluded: GPI-anchored protein"
    empty = rows["idr0003-screenA_SD1_p1_B9"]
    assert empty["control"] == "empty" and empty["cell_visible"] is None


def test_idr0003_final_annotation_preferred_over_library(tmp_path: Path) -> None:
    raw, _ = _fake("idr0003", tmp_path)
    header = ["Plate", "Well", "Characteristics [Strain]", "Gene Symbol",
              "Experimental Condition [Environmental Stress]", "Control Type"]  # fmt: skip
    rows = [["DTT p1", "A1", "Y6545", "GEN1", "dithiothreitol", ""]]
    write_table(raw / "screenA" / "idr0003-screenA-annotation.csv", header, rows)
    table = build_metadata("idr0003", raw)
    assert table.height == 4
    assert _by_key(table)["idr0003-screenA_DTT_p1_A1"]["cell_visible"] == ["gen1"]


def test_idr0009_url_headers_controls_and_gene_fallback(tmp_path: Path) -> None:
    raw, _ = _fake("idr0009", tmp_path)
    rows = _by_key(build_metadata("idr0009", raw))
    plate = "idr0009-screenA_0305-01--2007-04-03"
    assert rows[f"{plate}_A1"]["control"] == "empty"
    assert rows[f"{plate}_A2"]["gene"] == ["aadat targeted"]
    assert rows[f"{plate}_A2"]["sirna"] == ["si00289037"]
    assert rows[f"{plate}_A2"]["phenotype"] == ["strong inhibition of secretion"]
    assert rows[f"{plate}_A3"]["control"] == "negative"
    assert rows[f"{plate}_A4"]["gene"] == ["oldsym targeted"]  # Ensembl 61 as fallback
    assert rows[f"{plate}_A4"]["exclude_reason"] == "images missing for well"


def test_idr0080_keeps_raw_plates_and_marks_empty_wells(tmp_path: Path) -> None:
    raw, _ = _fake("idr0080", tmp_path)
    table = build_metadata("idr0080", raw)
    rows = _by_key(table)
    assert table.height == 4
    assert rows["idr0080-screenA_SQ00014610_A1"]["control"] == "empty"
    assert rows["idr0080-screenA_SQ00014610_A2"]["plate"] == "SQ00014610"
    assert rows["idr0080-screenA_SQ00014610_B1"]["gene"] == ["chr2 targeted"]
    assert rows["idr0080-screenA_SQ00014610_B1"]["control"] == "negative"
    only_corrected = rows["idr0080-screenA_SQ00014611_A1"]
    assert only_corrected["path"] == "SQ00014611_illum_corrected"


def test_idr0081_screens_sharing_plate_names(tmp_path: Path) -> None:
    raw, expected = _fake("idr0081", tmp_path)
    table = build_metadata("idr0081", raw)
    assert table.height == expected == 3
    rows = _by_key(table)
    assert rows["idr0081-screenC_Za_BSF018104_A1"]["path"] == "screenC/Za_BSF018104"
    assert rows["idr0081-screenB_Za_BSF018104_A2"]["exclude_reason"] == "Quality Control: fail"
    assert rows["idr0081-screenB_Za_BSF018104_A1"]["compound"] == ["dmso"]


def test_idr0072_organism_localisation_and_protein(tmp_path: Path) -> None:
    raw, _ = _fake("idr0072", tmp_path)
    table = build_metadata("idr0072", raw)
    assert _counts(table, "organism") == {"human": 1, "mouse": 2}
    rows = _by_key(table)
    mouse = rows["idr0072-screenB_20130208_TA_VAMP1_DEG_Meas_01_A3"]
    assert "mitochondria-associated er-membrane" in mouse["cell_visible"]
    assert {"er", "ptdss1", "nucleus"} <= set(mouse["cell_visible"])
    human = rows["idr0072-screenA_WS_MCF10A_Landmark_20180613_Meas_01_N1"]
    assert "calr-kdel" in human["cell_visible"] and human["gene"] is None


def test_idr0067_clean_file_wins_over_ragged_copy(tmp_path: Path) -> None:
    raw, _ = _fake("idr0067", tmp_path)
    rows = _by_key(build_metadata("idr0067", raw))
    live = rows["idr0067-experimentA_Figure_1B_1B_01_R3D.dv"]
    assert live["cell_visible"] == ["hsp104", "htb1"] and live["exclude_reason"] is None
    em = rows["idr0067-experimentA_Figure_5D_5D_em.tif"]
    assert em["microscopy"] == "electron microscopy" and em["exclude_reason"]
    only_ragged = rows["idr0067-experimentA_Figure_6A_6A_only_here.dv"]
    assert only_ragged["cell_visible"] is None
    assert "misaligned" in only_ragged["exclude_reason"]


def test_idr0041_versions_are_merged_by_key(tmp_path: Path) -> None:
    raw, _ = _fake("idr0041", tmp_path)
    table = build_metadata("idr0041", raw)
    assert table.height == 3
    assert _counts(table, "cell_visible") == {"mad2l1": 2, "kif11": 1}
    masks = table.filter(pl.col("filename").is_not_null() & pl.col("path").str.ends_with("mask"))
    assert masks["exclude_reason"].to_list() == ["Comment [Image File Type]: segmentation masks"]


def test_idr0017_cell_line_from_plate_name(tmp_path: Path) -> None:
    raw, _ = _fake("idr0017", tmp_path)
    assert _counts(build_metadata("idr0017", raw), "cell_type") == {"104-001": 1, "pten-/-": 1}


def test_idr0016_site_paths(tmp_path: Path) -> None:
    raw, _ = _fake("idr0016", tmp_path)
    row = build_metadata("idr0016", raw).row(1, named=True)
    assert row["site"] == "1" and row["phenotype"] == ["dos - click library"]
    assert row["channel_paths"][2] == "24277-Hoechst/cdp2bioactives_a02_s1_w1.tif"


def test_keys_stable_across_file_order(tmp_path: Path) -> None:
    raw, _ = _fake("idr0041", tmp_path)
    first = get_adapter("idr0041").read(raw)
    moved = tmp_path / "moved"
    shutil.copytree(raw, moved)
    assert get_adapter("idr0041").read(moved)["key"].sort().equals(first["key"].sort())


# --- clear errors --------------------------------------------------------------------


def test_missing_metadata_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="idr0072-screen"):
        get_adapter("idr0072").read(tmp_path)


def test_missing_key_column_names_the_file(tmp_path: Path) -> None:
    bad = [h for h in IDR0072_HEADER if h != "Well"]
    write_table(tmp_path / "idr0072-screenA-annotation.csv", bad, [["p"] * len(bad)])
    with pytest.raises(MetadataError, match=r"idr0072-screenA-annotation\.csv.*Well"):
        get_adapter("idr0072").read(tmp_path)


def test_duplicated_key_in_one_file_is_an_error(tmp_path: Path) -> None:
    row = ["P1", "A1", "Homo sapiens", "", "", "X", "", "", "", ""]
    write_table(tmp_path / "idr0072-screenA-annotation.csv", IDR0072_HEADER, [row, row])
    with pytest.raises(MetadataError, match="lists keys twice"):
        get_adapter("idr0072").read(tmp_path)


# --- real files (../shared), with the oracle counts of source-metadata.md ------------


@pytest.fixture(scope="module")
def idr0088_table() -> pl.DataFrame:
    return build_metadata("idr0088", shared_path("source_metadata", "idr0088"))


def test_real_idr0088(idr0088_table: pl.DataFrame) -> None:
    table = idr0088_table
    assert table.height == 317_430
    compounds = _counts(table, "compound")
    assert len(compounds) == 1_177
    assert compounds["dmso"] == 33_568
    assert sum(1 for n in compounds.values() if n >= 287) == 69
    assert table.filter(pl.col("control") == "negative").height == 33_568
    assert table["plate"].str.contains(r"^\d+$").all()
    assert table["moa"].list.len().max() > 1  # '|'-joined MoA split into values
    assert table["phenotype"].is_null().all()
    moa = _counts(table, "moa")
    # Placeholders and probe negative controls name no mechanism; underscores are spaces.
    assert "dna alkylating agent" in moa and "unknown target unknown moa" not in moa
    assert not any("_" in m or "control" in m or "unknown" in m for m in moa)
    assert set(_counts(table, "cell_type")) == {"a549", "hepg2", "wpmy-1"}


def test_real_idr0003() -> None:
    table = build_metadata("idr0003", shared_path("source_metadata", "idr0003"))
    assert table.height == 32_640
    assert _counts(table, "condition") == {
        "synthetic medium with dextrose": 13_056,
        "dithiothreitol": 6_528,
        "hydrogen peroxide": 6_528,
        "starvation": 6_528,
    }
    assert table["phenotype"].is_null().all() and table["cell_type"].is_null().all()
    assert table["strain"].unique().to_list() == ["y6545"]
    assert table.filter(pl.col("control") == "empty").height == 1_470
    assert table["exclude_reason"].str.starts_with("Quality Control: Excluded").sum() == 935
    assert table.filter(pl.col("plate") == "DTT p1").height == 384


def test_real_idr0072() -> None:
    table = build_metadata("idr0072", shared_path("source_metadata", "idr0072"))
    assert table.height == 669 + 5_473
    assert _counts(table, "organism") == {"human": 669, "mouse": 5_473}
    visible = _counts(table, "cell_visible")
    assert visible["nucleus"] == 6_142 and {"calr-kdel", "golgin84", "er"} <= set(visible)


def test_real_idr0081() -> None:
    table = build_metadata("idr0081", shared_path("source_metadata", "idr0081"))
    per_screen = table["idx"].str.extract(r"^idr0081-(screen[A-E])_").value_counts()
    assert dict(per_screen.iter_rows()) == {
        "screenA": 768, "screenB": 768, "screenC": 768, "screenD": 6_144, "screenE": 6_144,
    }  # fmt: skip
    assert _counts(table, "compound")["dmso"] == 2_560
    assert table["compound"].null_count() == 16
    assert table["exclude_reason"].str.contains("fail").sum() == 1_008


def test_real_idr0021() -> None:
    table = build_metadata("idr0021", shared_path("source_metadata", "idr0021"))
    assert table.height == 414
    assert _counts(table, "cell_visible")["centrosome"] == 414
    assert _counts(table, "phenotype") == {"protein localized to centrosome": 414}


def test_real_idr0067_clean_and_ragged_copy() -> None:
    table = build_metadata("idr0067", shared_path("source_metadata", "idr0067"))
    assert table.height == 419
    assert table["exclude_reason"].drop_nulls().str.contains("misaligned").sum() == 0
    assert table.filter(pl.col("microscopy") == "electron microscopy").height == 83
    assert _counts(table, "cell_visible")["nup170"] == 135
    assert table["cell_type"].is_null().all()
    assert _counts(table.select(pl.concat_list("strain")), "strain") == {"sk1": 419}


def test_real_idr0009_screen_b() -> None:
    table = build_metadata("idr0009", shared_path("source_metadata", "idr0009"))
    assert table.height == 26_880
    # Annotated: positive 1,153, negative 176, empty 70. The same reagents on the other
    # plate group, unannotated there, are marked too: 944 wells of the non-targeting
    # siRNA (Q103860 = 103860) and the positive controls 24546 (88) and Q120368 (472).
    assert dict(table["control"].value_counts().drop_nulls().iter_rows()) == {
        "positive": 1_153 + 88 + 472, "negative": 176 + 944, "empty": 70,
    }  # fmt: skip
    assert table["sirna"].is_not_null().sum() > 20_000
    sirnas = _counts(table, "sirna")
    assert "q103860" not in sirnas and sirnas["103860"] == 944 + 176


def test_real_idr0041_two_versions() -> None:
    table = build_metadata("idr0041", shared_path("source_metadata", "idr0041"))
    assert table.height == 840 + 1_680
    usable = table.filter(pl.col("exclude_reason").is_null())
    assert usable.height == 280 + 560
    assert _counts(usable, "cell_visible") == {"mad2l1": 280, "kif11": 560}
