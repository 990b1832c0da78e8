"""Kaggle (HPA 2018/2021, C-NMC leukemia, cell cycle) and CIL Kinome adapters."""

from __future__ import annotations

import ast
import csv
import shutil
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes.cil import fake_kinome
from tests.fakes.kaggle import (
    fake_cell_cycle,
    fake_hpa,
    fake_hpa_single,
    fake_leukemia,
    write_leukemia_labels,
)

from cytoimagenet.curation.harmonize import harmonize
from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata, get_adapter, get_source
from cytoimagenet.sources.cil import KinomeAdapter
from cytoimagenet.sources.kaggle import (
    HPA_2018_CLASSES,
    HPA_2021_CLASSES,
    HPA_RENAMES,
    prune_localisations,
)

COLOURS = {"green", "red", "blue", "yellow"}


def _early(name: str) -> pl.DataFrame:
    """The original authors' early cleaned table of ``name``."""
    path = shared_path("cytoimagenet_survey", "early_cleaned_metadata", f"{name}_metadata.csv")
    return pl.read_csv(path, infer_schema=False)


def _survey_sizes(dir_name: str) -> list[int]:
    path = shared_path("cytoimagenet_survey", "datasets_info.csv")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["dir_name"] == dir_name)
    return list(ast.literal_eval(row["class_sizes"]))


def _green_counts(table: pl.DataFrame) -> dict[str, int]:
    green = table.filter(pl.col("idx").str.ends_with("_green"))
    return dict(green["cell_visible"].explode().value_counts().iter_rows())


# --- HPA ---------------------------------------------------------------------------------


def test_hpa_class_tables() -> None:
    assert len(HPA_2018_CLASSES) == 28
    assert len(HPA_2021_CLASSES) == 19
    assert HPA_2018_CLASSES[27] == "Rods & rings"
    assert HPA_2021_CLASSES[18] == "Negative"
    assert HPA_RENAMES["negative"] is None
    published = {c.lower() for c in HPA_2018_CLASSES + HPA_2021_CLASSES}
    assert set(HPA_RENAMES) <= published


@pytest.mark.parametrize(
    ("labels", "kept"),
    [
        (["nucleoplasm"], ["nucleoplasm"]),
        (["er", "golgi", "vesicles"], ["vesicles"]),
        (["er", "golgi"], ["golgi"]),
        (["nucleoli", "nucleoli"], ["nucleoli"]),
        (["mitochondria", "actin", "er"], ["actin"]),
        (["nucleoplasm", "cell body"], ["nucleoplasm", "cell body"]),
        ([], []),
    ],
)
def test_prune_localisations(labels: list[str], kept: list[str]) -> None:
    assert prune_localisations(labels) == kept


def test_hpa_real_2018() -> None:
    raw = shared_path("source_metadata", "kag_hpa")
    table = build_metadata("kag_hpa", raw)
    assert table.height == 4 * 31_072 == 124_288
    assert table["idx"].n_unique() == table.height
    colour = table["idx"].str.extract(r"_([a-z]+)$")
    assert dict(colour.value_counts().iter_rows()) == dict.fromkeys(COLOURS, 31_072)
    first = table.row(0, named=True)
    assert first["idx"] == "kag_hpa-00070df0-bbc3-11e8-b2bc-ac1f6b6435d0_green"
    assert first["channel_paths"] == ["train/00070df0-bbc3-11e8-b2bc-ac1f6b6435d0_green.png"]
    assert first["cell_visible"] == ["cytokinetic bridge", "nucleoplasm"]
    assert first["channels"] == ["f_protein"]
    # Never pruned, so the green counts equal the survey's raw Target counts.
    survey = _survey_sizes("kag_hpa")  # [dataset size, class 0, class 1, ...]
    green = _green_counts(table)
    assert green["nucleoplasm"] == survey[1] == 12_885
    assert green["cell body"] == survey[1 + 25] == 8_228
    assert green["rods & rings"] == survey[1 + 27] == 11
    assert "endoplasmic reticulum" not in green  # renamed to the shared vocabulary
    blue = table.filter(pl.col("idx").str.ends_with("_blue"))
    assert blue["cell_visible"].to_list()[0] == ["nucleus"]
    assert blue["channels"].to_list()[0] == ["f_nucleus"]


def test_hpa_real_2021() -> None:
    raw = shared_path("source_metadata", "kag_hpa_single")
    table = build_metadata("kag_hpa_single", raw)
    assert table.height == 4 * 21_806 == 87_224
    green = table.filter(pl.col("idx").str.ends_with("_green"))
    # Class 18 ("Negative") alone gives no localisation; it occurs 34 times.
    assert green["cell_visible"].null_count() == 34 == _survey_sizes("kag_hpa_single")[-1]
    labels = set(green["cell_visible"].explode().drop_nulls().to_list())
    assert labels <= {
        "nucleoplasm", "nuclear membrane", "nucleoli", "nuclear speckles", "nuclear bodies",
        "er", "golgi", "intermediate filaments", "actin", "microtubules", "mitotic spindle",
        "centrosome", "cell membrane", "mitochondria", "aggresome", "cell body", "vesicles",
    }  # fmt: skip
    row = table.filter(pl.col("idx") == "kag_hpa_single-5c27f04c-bb99-11e8-b2b9-ac1f6b6435d0_green")
    # 8|5|0: intermediate filaments, nuclear bodies, nucleoplasm (none is pruned).
    assert row["cell_visible"].to_list() == [
        ["intermediate filaments", "nuclear bodies", "nucleoplasm"]
    ]


def test_hpa_fake_pruning(tmp_path: Path) -> None:
    fake_hpa(tmp_path)
    table = build_metadata("kag_hpa", tmp_path)
    # "6 7" = endoplasmic reticulum + golgi apparatus → pruned to golgi.
    row = table.filter(pl.col("idx") == "kag_hpa-000c99ba-bba4-11e8-b2b9-ac1f6b6435d0_green")
    assert row["cell_visible"].to_list() == [["golgi"]]


def test_hpa_under_a_folder(tmp_path: Path) -> None:
    (tmp_path / "hpa").mkdir()
    fake_hpa_single(tmp_path / "hpa")
    table = build_metadata("kag_hpa_single", tmp_path)
    assert table["path"].unique().to_list() == ["hpa/train"]


def test_hpa_bad_class_id(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("ID,Label\nabc,3|19\n")
    with pytest.raises(MetadataError, match=r"train\.csv.*'19'.*0-18"):
        build_metadata("kag_hpa_single", tmp_path)


def test_hpa_wrong_competition_file(tmp_path: Path) -> None:
    fake_hpa(tmp_path)  # the 2018 header (Id,Target) is not the 2021 one (ID,Label)
    with pytest.raises(MetadataError, match=r"train\.csv.*missing column"):
        build_metadata("kag_hpa_single", tmp_path)


def test_hpa_no_metadata(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"no metadata file.*train\.csv"):
        build_metadata("kag_hpa", tmp_path)


# --- C-NMC leukemia ----------------------------------------------------------------------


def test_leukemia_real_validation_labels() -> None:
    raw = shared_path("source_metadata", "kag_leukemia")
    table = build_metadata("kag_leukemia", raw)
    assert table.height == 1_867
    # Normal (healthy donors') cells carry no disease phenotype, not 'wildtype'.
    assert dict(table["phenotype"].explode().value_counts().iter_rows()) == {
        "leukemia": 1_219,
        None: 648,
    }
    row = table.filter(pl.col("idx") == "kag_leukemia-val_4").row(0, named=True)
    assert row["channel_paths"] == ["C-NMC_test_prelim_phase_data/4.bmp"]
    assert row["phenotype"] is None and row["cell_type"] == ["white blood cell"]
    # The authors' cleaned table labels these numbered files the same way ('wildtype' is
    # what it called the normal cells).
    early = _early("kag_leukemia").filter(pl.col("phenotype").is_not_null())
    ours = table.select(
        pl.col("filename"), pl.col("phenotype").list.first().fill_null("wildtype").alias("ours")
    )
    joined = ours.join(early.select("filename", "phenotype"), on="filename", how="inner")
    assert joined.height == 1_867
    assert (joined["ours"] == joined["phenotype"]).all()


def test_leukemia_images(tmp_path: Path) -> None:
    fake_leukemia(tmp_path)
    table = build_metadata("kag_leukemia", tmp_path)
    rows = {r["idx"].removeprefix("kag_leukemia-"): r for r in table.iter_rows(named=True)}
    assert rows["fold_0_UID_11_10_1_all"]["phenotype"] == ["leukemia"]
    assert rows["fold_0_UID_H10_43_1_hem"]["phenotype"] is None
    assert rows["val_2"]["phenotype"] is None
    assert rows["test_1"]["phenotype"] is None
    assert rows["val_1"]["path"] == "C-NMC_Leukemia/validation_data/C-NMC_test_prelim_phase_data"


def test_leukemia_metadata_only_matches_image_keys(tmp_path: Path) -> None:
    full, meta = tmp_path / "full", tmp_path / "meta"
    full.mkdir()
    fake_leukemia(full)
    write_leukemia_labels(meta / "C-NMC_Leukemia" / "validation_data")
    with_images = build_metadata("kag_leukemia", full)
    only_csv = build_metadata("kag_leukemia", meta)
    assert only_csv.height == 2
    cols = ["idx", "path", "filename", "channel_paths", "phenotype"]
    assert only_csv.select(cols).equals(
        with_images.filter(pl.col("idx").str.contains("-val_")).select(cols)
    )


def test_leukemia_images_without_labels_csv(tmp_path: Path) -> None:
    fake_leukemia(tmp_path)
    (tmp_path / "C-NMC_Leukemia/validation_data/C-NMC_test_prelim_phase_data_labels.csv").unlink()
    table = build_metadata("kag_leukemia", tmp_path)
    assert table.height == 6
    assert table.filter(pl.col("idx").str.contains("-val_"))["phenotype"].null_count() == 2


def test_leukemia_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="C-NMC_test_prelim_phase_data_labels"):
        build_metadata("kag_leukemia", tmp_path)


def test_leukemia_labels_csv_columns(tmp_path: Path) -> None:
    (tmp_path / "kag_leukemia_val.csv").write_text("Patient_ID,labels\nUID_1_1_1_all.bmp,1\n")
    with pytest.raises(MetadataError, match=r"kag_leukemia_val\.csv.*new_names"):
        build_metadata("kag_leukemia", tmp_path)


# --- cell cycle --------------------------------------------------------------------------


def test_cell_cycle_fake(tmp_path: Path) -> None:
    fake_cell_cycle(tmp_path)
    table = build_metadata("kag_cell_cycle", tmp_path)
    assert table["phenotype"].to_list() == [["interphase"], ["interphase"], ["mitosis"]]
    assert table["cell_visible"].to_list()[0] == ["nucleus"]
    assert table["organism"].to_list()[0] == ["nematode"]


def test_cell_cycle_layout_of_the_authors_table(tmp_path: Path) -> None:
    # Rebuild the real tree from the authors' table (paths and names), then compare labels.
    early = _early("kag_cell_cycle")
    prefix = "/ferrero/stan_data/kag_cell_cycle/"
    for row in early.iter_rows(named=True):
        target = tmp_path / row["path"].removeprefix(prefix) / row["filename"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"jpg")
    table = build_metadata("kag_cell_cycle", tmp_path)
    assert table.height == 90
    ours = table.select("filename", pl.col("phenotype").list.first().alias("ours"))
    joined = ours.join(early.select("filename", "phenotype"), on="filename")
    assert joined.height == 90
    assert (joined["ours"] == joined["phenotype"]).all()
    assert dict(ours["ours"].value_counts().iter_rows()) == {"interphase": 57, "mitosis": 33}


def test_cell_cycle_needs_images(tmp_path: Path) -> None:
    assert get_adapter("kag_cell_cycle").needs_images
    with pytest.raises(MetadataError, match="images must be downloaded"):
        build_metadata("kag_cell_cycle", tmp_path)


# --- CIL Kinome Atlas --------------------------------------------------------------------


def test_kinome_real() -> None:
    raw = shared_path("source_metadata", "cil_kinome")
    table = build_metadata("cil_kinome", raw)
    assert table.height == 908
    first = table.row(0, named=True)
    assert first["idx"] == "cil_kinome-53464"
    assert first["filename"] == "53464.tif"
    assert first["channel_paths"] == ["53464.tif"]
    # A kinase group is a gene family, not something visible: no cell_visible by default.
    assert table["cell_visible"].is_null().all()
    assert first["cell_type"] == ["hela"]
    original = KinomeAdapter("cil_kinome")
    original.group_as_cell_visible = True
    table = harmonize(original.read(raw), get_source("cil_kinome"))
    assert table.row(0, named=True)["cell_visible"] == ["agc kinase"]
    counts = dict(table["cell_visible"].explode().value_counts().iter_rows())
    assert counts["tk kinase"] == 158
    assert counts["rgc kinase"] == 8
    # Asked for, the same label per file as the authors' cleaned table.
    early = _early("cil_kinome").select(
        "filename", pl.col("cell_component").str.to_lowercase().alias("theirs")
    )
    ours = table.select("filename", pl.col("cell_visible").list.first().alias("ours"))
    joined = ours.join(early, on="filename")
    assert joined.height == 908
    assert (joined["ours"] == joined["theirs"]).all()


def test_kinome_in_subfolder(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    fake_kinome(tmp_path / "annotations")
    table = build_metadata("cil_kinome", tmp_path)
    assert table["channel_paths"].to_list()[0] == ["annotations/53464.tif"]


def test_kinome_errors(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="cil_kinome_metadata"):
        build_metadata("cil_kinome", tmp_path)
    path = tmp_path / "cil_kinome_metadata.csv"
    path.write_text("file_name,group\n53464.zip,AGC\n")
    with pytest.raises(MetadataError, match="kinase"):
        build_metadata("cil_kinome", tmp_path)
    path.write_text("file_name,kinase\nreadme.txt,AGC\n")
    with pytest.raises(MetadataError, match="CIL id"):
        build_metadata("cil_kinome", tmp_path)


def test_kinome_two_tables_refused(tmp_path: Path) -> None:
    fake_kinome(tmp_path)
    (tmp_path / "old").mkdir()
    shutil.copy(tmp_path / "cil_kinome_metadata.csv", tmp_path / "old")
    with pytest.raises(MetadataError, match="several"):
        build_metadata("cil_kinome", tmp_path)
