"""BBBC adapters with metadata files: real files in ../shared, fake trees, clear errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from tests.conftest import shared_path
from tests.fakes import bbbc as fakes

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import build_metadata, get_adapter
from cytoimagenet.sources.bbbc import Bbbc017Adapter


def read(source: str, raw: Path) -> pl.DataFrame:
    return get_adapter(source).read(raw)


# --- bbbc021 -------------------------------------------------------------------------


@pytest.mark.realdata
def test_bbbc021_real_files() -> None:
    raw = shared_path("bbbc021_metadata")
    table = build_metadata("bbbc021", raw)
    assert table.height == 13_200
    assert table["plate"].n_unique() == 55
    assert table["compound"].explode().n_unique() == 113
    assert (table["pool"] == "evaluation").all()
    assert table["exclude_reason"].is_not_null().all()
    records = read("bbbc021", raw).join(read_concentrations(raw), on="key")
    moa = records.filter(pl.col("phenotype").is_not_null())
    assert moa.height == 2_528
    assert moa.select("compound", "conc").unique().height == 103
    assert moa["compound"].n_unique() == 38
    assert moa["phenotype"].n_unique() == 12
    dmso = table.filter(pl.col("compound").list.first() == "dmso")
    assert dmso.height == 1_320
    assert (dmso["control"] == "negative").all()
    assert dmso["phenotype"].is_null().all()
    first = table.row(0, named=True)
    assert first["idx"] == "bbbc021-Week4_27481_G10_s1"
    assert first["channel_paths"][0].startswith("Week4/Week4_27481/G10_s1_w1")
    assert [p.split("_")[-1][:2] for p in first["channel_paths"]] == ["w1", "w2", "w4"]


def read_concentrations(raw: Path) -> pl.DataFrame:
    from cytoimagenet.io.tables import read_delimited

    image = read_delimited(raw / "BBBC021_v1_image.csv.gz")
    return image.select(
        (
            pl.col("Image_Metadata_Plate_DAPI")
            + "_"
            + pl.col("Image_Metadata_Well_DAPI")
            + "_s"
            + pl.col("Image_FileName_DAPI").str.extract(r"_s(\d+)_")
        ).alias("key"),
        pl.col("Image_Metadata_Concentration").cast(pl.Float64).alias("conc"),
    )


def test_bbbc021_concentration_compared_numerically(tmp_path: Path) -> None:
    fakes.fake_bbbc021(tmp_path)
    records = read("bbbc021", tmp_path).sort("key")
    taxol = records.filter(pl.col("compound") == "taxol")
    assert taxol["phenotype"].to_list() == ["Microtubule stabilizers"] * 2  # 0.003 == 0.003000
    assert records.filter(pl.col("compound") == "mystery")["phenotype"].is_null().all()
    assert records.filter(pl.col("compound") == "DMSO")["control"].unique().to_list() == [
        "negative control"
    ]


def test_bbbc021_needs_both_files(tmp_path: Path) -> None:
    fakes.fake_bbbc021(tmp_path)
    (tmp_path / "BBBC021_v1_moa.csv").unlink()
    with pytest.raises(MetadataError, match=r"BBBC021_v1_moa\.csv"):
        read("bbbc021", tmp_path)


def test_bbbc021_missing_column(tmp_path: Path) -> None:
    (tmp_path / "BBBC021_v1_image.csv").write_text("TableNumber,Image_FileName_DAPI\n1,a.tif\n")
    (tmp_path / "BBBC021_v1_moa.csv").write_text("compound,concentration,moa\n")
    with pytest.raises(MetadataError, match="missing column"):
        read("bbbc021", tmp_path)


# --- bbbc022 / bbbc025 ---------------------------------------------------------------


def test_bbbc022_fields_channels_and_controls(tmp_path: Path) -> None:
    fakes.fake_bbbc022(tmp_path)
    records = read("bbbc022", tmp_path).sort("key")
    assert records["key"].to_list() == [
        "20585_A01_s1",
        "20585_A02_s1",
        "20585_A03_s2",
        "20585_A04_s1",
    ]
    paths = records.row(0, named=True)["channel_paths"]
    assert [p.split("/")[0] for p in paths] == [f"BBBC022_v1_images_20585w{w}" for w in range(1, 6)]
    assert [p.split("_w")[-1][0] for p in paths] == ["1", "2", "3", "4", "5"]
    assert records["compound"].to_list() == ["DMSO", "cytochalasin D", "BRD-K002", "1"]
    assert records["control"].to_list() == ["negative control", None, None, None]
    reasons = records["exclude_reason"].to_list()
    assert reasons[:3] == [None] * 3 and "malformed row" in reasons[3]


def test_bbbc022_missing_channel_column(tmp_path: Path) -> None:
    (tmp_path / "BBBC022_v1_image.csv").write_text(
        "Image_FileName_OrigHoechst,Image_Metadata_PlateID,Image_Metadata_SOURCE_COMPOUND_NAME\n"
        "IXMtest_A01_s1_w1x.tif,20585,taxol\n"
    )
    with pytest.raises(MetadataError, match=r"w2 \(ER\)"):
        read("bbbc022", tmp_path)


def test_bbbc025_gene_and_folders(tmp_path: Path) -> None:
    fakes.fake_bbbc025(tmp_path)
    table = build_metadata("bbbc025", tmp_path).sort("idx")
    assert table["well"].to_list() == ["F08", "P12"]
    assert table["gene"].to_list() == [["kif11 targeted"], None]
    assert table["control"].to_list() == [None, "negative"]
    folders = [p.split("/")[0] for p in table["channel_paths"][0]]
    assert folders == [
        f"37983_{n}" for n in ("ERSyto", "ERSytoBleed", "Hoechst", "Mito", "PhGolgi")
    ]


def test_bbbc025_without_gene_column(tmp_path: Path) -> None:
    fakes.fake_bbbc025(tmp_path)
    path = tmp_path / "BBBC025_v1_image.csv"
    path.write_text(path.read_text().replace("GeneSymbol", "Whatever"))
    with pytest.raises(MetadataError, match="Image_Metadata_GeneSymbol"):
        read("bbbc025", tmp_path)


# --- bbbc006 -------------------------------------------------------------------------


@pytest.mark.realdata
def test_bbbc006_real_counts_file() -> None:
    raw = shared_path("source_metadata", "bbbc006")
    table = build_metadata("bbbc006", raw)
    assert table.height == 768
    assert table["well"].n_unique() == 384
    assert table["well"].str.contains(r"^[A-P]\d{2}$").all()  # 'a01' upper-cased
    assert set(table["site"].unique()) == {"1", "2"}
    assert table["cell_type"].explode().unique().to_list() == ["u2os"]
    assert table["channels"].list.join("|").unique().to_list() == ["f_nucleus"]


def test_bbbc006_images_one_record_per_field_and_plane(tmp_path: Path) -> None:
    for z in (0, 16):
        folder = tmp_path / f"BBBC006_v1_images_z_{z:02d}"
        folder.mkdir()
        for well, site in (("a01", 1), ("b02", 2)):
            for w in (1, 2):
                name = f"mcf-z-stacks-03212011_{well}_s{site}_w{w}{z}{fakes.UUID}.tif"
                (folder / name).write_bytes(b"")
    table = build_metadata("bbbc006", tmp_path)
    assert table.height == 4
    assert sorted(table["idx"]) == [
        "bbbc006-z00_A01_s1",
        "bbbc006-z00_B02_s2",
        "bbbc006-z16_A01_s1",
        "bbbc006-z16_B02_s2",
    ]
    assert all(len(p) == 2 and "_w1" in p[0] and "_w2" in p[1] for p in table["channel_paths"])
    assert table["channels"].list.join("|").unique().to_list() == ["f_nucleus|f_actin"]


# --- bbbc017 -------------------------------------------------------------------------


@pytest.mark.realdata
def test_bbbc017_real_plate_map() -> None:
    raw = shared_path("source_metadata", "bbbc017")
    records = read("bbbc017", raw)
    assert records.height == 5_760
    assert records["key"].n_unique() == 5_760
    controls = records["control"].value_counts().sort("control")
    assert dict(controls.drop_nulls().iter_rows()) == {
        "empty well": 329,
        "negative control": 448,
        "positive control": 224,
    }
    table = build_metadata("bbbc017", raw)
    # The target's gene family (kinase, phosphatase …) is not a phenotype: dropped.
    assert "phenotype" not in records.columns and table["phenotype"].is_null().all()
    original = Bbbc017Adapter("bbbc017")
    original.class_as_phenotype = True
    records = original.read(raw)
    phen = records["phenotype"].explode().drop_nulls()
    assert "kinase" in phen.to_list() and "kinase_atp" in phen.to_list()
    assert not phen.str.starts_with("geneCards").any()
    assert "NONE" not in phen.to_list()
    # ';'-joined with duplicates collapses to unique tokens.
    lists = records["phenotype"].drop_nulls()
    assert (lists.list.len() == lists.list.unique().list.len()).all()
    assert table.filter(pl.col("control") == "empty")["gene"].is_null().all()


def test_bbbc017_fields_joined_to_plate_map(tmp_path: Path) -> None:
    assert fakes.fake_bbbc017(tmp_path) == 8
    records = read("bbbc017", tmp_path).sort("key")
    first = records.row(0, named=True)
    assert first["key"] == "NIRHTa+002_A01_s00"
    assert first["gene"] is None
    assert first["control"] == "negative control"  # plate 2, A01 = shLuc
    assert [p[-6:] for p in first["channel_paths"]] == ["d0.DIB", "d1.DIB", "d2.DIB"]
    minus = records.filter(pl.col("plate") == "NIRHTa-001").sort("key")
    assert minus["gene"].to_list() == ["Gabra3", "Gabra3", "MAPK11", "MAPK11"]
    assert "phenotype" not in minus.columns  # the gene family is not a phenotype


def test_bbbc017_missing_column(tmp_path: Path) -> None:
    fakes.write_xlsx(
        tmp_path / "BBBC017_v1_metadata.xlsx", [["384-Plate#", "384-well"], ["1", "A01"]]
    )
    with pytest.raises(MetadataError, match="gene name"):
        read("bbbc017", tmp_path)


# --- bbbc038 -------------------------------------------------------------------------


@pytest.mark.realdata
def test_bbbc038_real_solutions() -> None:
    raw = shared_path("source_metadata", "bbbc038")
    table = build_metadata("bbbc038", raw)
    assert table.height == 65 + 3_019
    split = pl.col("path").str.extract(r"^([^/]+)/")
    assert table.filter(split == "stage1_test").height == 65
    assert table.filter(split == "stage2_test_final").height == 3_019
    # The split is a folder, not a plate: DSB2018 images have none.
    assert table["plate"].null_count() == table.height
    row = table.row(0, named=True)
    key = row["idx"].removeprefix("bbbc038-")
    assert row["channel_paths"] == [f"{row['path']}/{key}.png"]
    assert table["cell_visible"].explode().unique().to_list() == ["nucleus"]


def test_bbbc038_stage1_train_tree_without_csv(tmp_path: Path) -> None:
    for image_id in ("aa", "bb"):
        folder = tmp_path / "stage1_train" / image_id
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        (folder / "images" / f"{image_id}.png").write_bytes(b"")
        (folder / "masks" / "m1.png").write_bytes(b"")
    records = read("bbbc038", tmp_path)
    assert records["key"].to_list() == ["aa", "bb"]
    assert records["channel_paths"].to_list() == [
        ["stage1_train/aa/images/aa.png"],
        ["stage1_train/bb/images/bb.png"],
    ]


def test_bbbc038_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="stage1_solution"):
        read("bbbc038", tmp_path)


# --- bbbc041 -------------------------------------------------------------------------


@pytest.mark.realdata
def test_bbbc041_real_test_json() -> None:
    raw = shared_path("source_metadata", "bbbc041")
    table = build_metadata("bbbc041", raw)
    assert table.height == 5_922
    assert table["filename"].n_unique() == 120
    # Parasite stages are phenotypes of infected red blood cells, not human cell types.
    counts = dict(table["cell_type"].explode().value_counts().iter_rows())
    assert counts == {"red blood cell": 5_614 + 169 + 111 + 12 + 11, None: 5}
    stages = dict(table["phenotype"].explode().drop_nulls().value_counts().iter_rows())
    assert stages == {
        "ring stage": 169,
        "trophozoite stage": 111,
        "gametocyte stage": 12,
        "schizont stage": 11,
    }
    infected = table.filter(pl.col("phenotype").is_not_null())
    assert infected["organism"].to_list() == [["human", "malaria parasite"]] * 303
    assert table.filter(pl.col("phenotype").is_null())["organism"].to_list() == [["human"]] * 5_619
    assert table["exclude_reason"].is_not_null().sum() == 5  # 'difficult'
    assert table["idx"].str.contains(r"_r\d+-\d+_c\d+-\d+$").all()


def test_bbbc041_training_and_test_together(tmp_path: Path) -> None:
    fakes.fake_bbbc041(tmp_path)
    records = read("bbbc041", tmp_path)
    assert records.height == 4
    assert "8d02117d-6c71_r10-110_c20-120" in records["key"].to_list()
    assert set(records["path"]) == {"malaria/images"}
    hard = records.filter(pl.col("exclude_reason").is_not_null())
    assert hard["cell_type"].to_list() == [None]


def test_bbbc041_bad_json(tmp_path: Path) -> None:
    (tmp_path / "test.json").write_text("{not json")
    with pytest.raises(MetadataError, match=r"test\.json"):
        read("bbbc041", tmp_path)


def test_missing_metadata_names_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"BBBC022_v1_image\.csv"):
        read("bbbc022", tmp_path)
