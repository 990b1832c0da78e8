"""COOS-7 and CYCLoPs adapters: folder layouts, stem pairing, held-out pool."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes import evaluation as fakes

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata, get_adapter


def read(source: str, raw: Path) -> pl.DataFrame:
    return get_adapter(source).read(raw)


def test_coos7_one_record_per_cell(tmp_path: Path) -> None:
    fakes.fake_coos7(tmp_path)
    records = read("coos7", tmp_path)
    assert records["key"].to_list() == [
        "test1/Golgi/plate1_B02_1_4",
        "test4/Peroxisomes/plate9_C03_2_7",
        "train/Endoplasmic_Reticulum/plate1_A01_3_12",
        "train/Golgi/plate1_B02_1_4",
    ]
    first = records.row(0, named=True)
    # Protein then nucleus; the mask is not a channel.
    assert first["channel_paths"] == [
        "test1/Golgi/plate1_B02_1_4_protein.tif",
        "test1/Golgi/plate1_B02_1_4_nucleus.tif",
    ]
    assert first["plate"] == "test1"
    table = build_metadata("coos7", tmp_path)
    assert set(table["cell_visible"].explode()) == {"golgi", "peroxisomes", "er"}  # synonym
    assert (table["pool"] == "evaluation").all()
    assert table["exclude_reason"].is_not_null().all()


def test_coos7_missing_channel_is_marked(tmp_path: Path) -> None:
    fakes.fake_coos7(tmp_path)
    (tmp_path / "train" / "Golgi" / "plate1_B02_1_4_nucleus.tif").unlink()
    records = read("coos7", tmp_path).filter(pl.col("key") == "train/Golgi/plate1_B02_1_4")
    row = records.row(0, named=True)
    assert row["channel_paths"] == ["train/Golgi/plate1_B02_1_4_protein.tif"]
    assert row["exclude_reason"] == "missing channel file(s): nucleus"


def test_cyclops_classes_dead_ghost_and_spindlepole(tmp_path: Path) -> None:
    fakes.fake_cyclops(tmp_path)
    records = read("cyclops", tmp_path).sort("key")
    by_folder = {r["key"].split("/")[0]: r for r in records.iter_rows(named=True)}
    assert by_folder["SPINDLEPOLE"]["cell_visible"] == "SPINDLE"
    assert by_folder["CYTOPLASM"]["exclude_reason"] is None
    for state in ("DEAD", "GHOST"):
        assert by_folder[state]["cell_visible"] is None
        assert by_folder[state]["phenotype"] == state
        assert state in by_folder[state]["exclude_reason"]
    # gfp (protein) first, rfp second, whatever order the files were written in.
    paths = records["channel_paths"]
    assert all(p[0].endswith("_gfp.tif") and p[1].endswith("_rfp.tif") for p in paths)


@pytest.mark.realdata
def test_cyclops_pairs_the_real_yeast_toy_tree_by_stem() -> None:
    raw = shared_path("yeast_wt2_toy")
    records = read("cyclops", raw)
    assert records.height == 1_642
    paths = records["channel_paths"]
    assert (paths.list.len() == 2).all()
    gfp, rfp = paths.list.get(0), paths.list.get(1)
    assert gfp.str.ends_with("_gfp.tif").all() and rfp.str.ends_with("_rfp.tif").all()
    # Same cell: the stems agree, even though the stems themselves contain '_rfp_'.
    assert (gfp.str.replace(r"_gfp\.tif$", "") == rfp.str.replace(r"_rfp\.tif$", "")).all()
    assert (records["path"] + "/" + records["filename"] + "_gfp.tif" == gfp).all()
    # This toy tree is grouped per protein, so its 'classes' are the five protein folders.
    assert sorted(records["cell_visible"].unique()) == ["AAC1", "AAC3", "AAH1", "AAP1", "AAR2"]
    table = build_metadata("cyclops", raw)
    assert (table["pool"] == "evaluation").all()


@pytest.mark.parametrize("source", ["coos7", "cyclops"])
def test_no_images_is_a_clear_error(source: str, tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="images must be downloaded"):
        read(source, tmp_path)


def test_unrelated_tifs_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "CYTOPLASM").mkdir()
    (tmp_path / "CYTOPLASM" / "cell.tif").write_bytes(b"")
    with pytest.raises(MetadataError, match="gfp,rfp"):
        read("cyclops", tmp_path)
