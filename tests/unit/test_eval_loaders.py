"""Benchmark image loaders: BBBC021, COOS-7 and CYCLoPs trees → the table ``extract`` reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile
from tests.conftest import shared_path

from cytoimagenet.errors import MetadataError
from cytoimagenet.evaluation.benchmark_images import (
    BenchmarkImagesJob,
    run_benchmark_images,
    summarize,
)
from cytoimagenet.evaluation.loaders import load_bbbc021, load_coos7, load_cyclops

# The real BBBC021_v1_image.csv header, in its order.
IMAGE_HEADER = (
    "TableNumber,ImageNumber,Image_FileName_DAPI,Image_PathName_DAPI,Image_FileName_Tubulin,"
    "Image_PathName_Tubulin,Image_FileName_Actin,Image_PathName_Actin,Image_Metadata_Plate_DAPI,"
    "Image_Metadata_Well_DAPI,Replicate,Image_Metadata_Compound,Image_Metadata_Concentration"
)
# (plate, well, compound, concentration as the image table writes it)
FIELDS = [
    ("Week1_22123", "B02", "DMSO", "0.0"),
    ("Week1_22123", "C05", "taxol", "3.0"),
    ("Week1_22123", "D07", "taxol", "0.003"),  # not in the MoA table: unannotated
    ("Week2_24121", "B02", "DMSO", "0.0"),
    ("Week2_24121", "E04", "emetine", "0.3"),
]
MOA = '"compound",concentration,"moa"\n"taxol",3.000000,"Microtubule stabilizers"\n'
MOA += '"emetine",0.300000,"Protein synthesis"\n"DMSO",0.000000,"DMSO"\n'


def _tif(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full((8, 8), value, dtype=np.uint16))


def fake_bbbc021(root: Path, *, flat: bool = False, sites: int = 2) -> int:
    """Write the two CSVs and per-plate TIFFs; return the number of fields."""
    rows = [IMAGE_HEADER]
    n = 0
    for t, (plate, well, compound, conc) in enumerate(FIELDS):
        week = plate.split("_")[0]
        folder = f"{week}/{plate}"
        for site in range(1, sites + 1):
            n += 1
            names = [f"{well}_s{site}_w{w}{t:02d}AB-{site}.tif" for w in (1, 2, 4)]
            for name in names:
                _tif(root / (plate if flat else folder) / name)
            cells = [str(t + 1), str(n), names[0], folder, names[1], folder, names[2], folder]
            rows.append(",".join([*cells, plate, well, str(site % 3 + 1), compound, conc]))
    (root / "BBBC021_v1_image.csv").write_text("\n".join(rows) + "\n")
    (root / "BBBC021_v1_moa.csv").write_text(MOA)
    return n


def test_bbbc021_annotated_subset_with_moa_joined_on_the_number(tmp_path: Path) -> None:
    fake_bbbc021(tmp_path)
    images = load_bbbc021(tmp_path)
    table = images.table
    assert table.height == 8  # 4 annotated fields x 2 sites; taxol 0.003 is unannotated
    assert images.label_column == "Metadata_MoA" and images.dropped == ()
    row = table.filter(pl.col("Metadata_Compound") == "taxol").row(0, named=True)
    assert row["Metadata_MoA"] == "Microtubule stabilizers"
    assert row["Metadata_Concentration"] == 3.0 and row["Metadata_Batch"] == "Week1"
    assert row["channels"] == ["DAPI", "Tubulin", "Actin"]
    # DAPI, Tubulin, Actin in that order: w1, w2, w4 of the same field.
    assert [p.split("_w")[1][0] for p in row["channel_paths"]] == ["1", "2", "4"]
    assert row["channel_paths"][0] == "Week1/Week1_22123/C05_s1_w101AB-1.tif"
    assert (row["Metadata_Plate"], row["Metadata_Well"], row["Metadata_Site"]) == (
        "Week1_22123",
        "C05",
        1,
    )
    dmso = table.filter(pl.col("Metadata_Compound") == "DMSO")
    assert dmso.height == 4 and set(dmso["Metadata_MoA"]) == {"DMSO"}
    assert set(table["Metadata_Batch"]) == {"Week1", "Week2"}
    every = load_bbbc021(tmp_path, annotated_only=False).table
    assert every.height == 10
    unannotated = every.filter(pl.col("Metadata_MoA").is_null())
    assert unannotated["Metadata_Concentration"].to_list() == [0.003, 0.003]


def test_bbbc021_plate_folders_as_the_zips_unpack(tmp_path: Path) -> None:
    fake_bbbc021(tmp_path, flat=True)
    images = load_bbbc021(tmp_path)
    assert images.table.height == 8
    assert images.table["channel_paths"][0][0].startswith("Week1_22123/")
    assert all((tmp_path / p).is_file() for ps in images.table["channel_paths"] for p in ps)


def test_bbbc021_missing_file_fails_or_is_dropped_and_listed(tmp_path: Path) -> None:
    raw, meta = tmp_path / "raw", tmp_path / "meta"
    fake_bbbc021(raw)
    meta.mkdir()
    for name in ("BBBC021_v1_image.csv", "BBBC021_v1_moa.csv"):
        (raw / name).rename(meta / name)
    gone = "Week2/Week2_24121/E04_s2_w204AB-2.tif"
    (raw / gone).unlink()
    with pytest.raises(MetadataError, match=r"1 of 8 fields .* lack image files") as err:
        load_bbbc021(raw, metadata=meta)
    assert gone in str(err.value) and "--allow-missing" in str(err.value)
    images = load_bbbc021(raw, metadata=meta, allow_missing=True)
    assert images.table.height == 7
    assert images.dropped == (f"Week2_24121 E04 s2: {gone}",)
    assert "dropped 1 samples" in summarize(images)


def test_bbbc021_wrong_root_names_the_plate_folders(tmp_path: Path) -> None:
    fake_bbbc021(tmp_path / "raw")
    with pytest.raises(MetadataError, match="none of the 2 BBBC021 plate folders"):
        load_bbbc021(tmp_path, metadata=tmp_path / "raw")
    with pytest.raises(MetadataError, match="BBBC021_v1_image"):
        load_bbbc021(tmp_path / "raw" / "Week1")


@pytest.mark.realdata
def test_bbbc021_real_metadata(tmp_path: Path) -> None:
    meta = shared_path("bbbc021_metadata")
    image = pl.read_csv(meta / "BBBC021_v1_image.csv.gz", infer_schema=False)
    moa = pl.read_csv(meta / "BBBC021_v1_moa.csv", infer_schema=False)
    # Only annotated fields need files: fewer to write, and the rest must not be looked at.
    pairs = {(c, float(x)) for c, x in moa.select("compound", "concentration").iter_rows()}
    keep = [
        (c, float(x)) in pairs
        for c, x in image.select(
            "Image_Metadata_Compound", "Image_Metadata_Concentration"
        ).iter_rows()
    ]
    image = image.filter(pl.Series(keep))
    assert image.height == 3848
    for folder in image["Image_PathName_DAPI"].unique():
        (tmp_path / folder).mkdir(parents=True)
    for c in ("DAPI", "Tubulin", "Actin"):
        for folder, name in image.select(f"Image_PathName_{c}", f"Image_FileName_{c}").iter_rows():
            (tmp_path / folder / name).touch()
    table = load_bbbc021(tmp_path, metadata=meta).table
    treated = table.filter(pl.col("Metadata_Compound") != "DMSO")
    treatments = treated.unique(["Metadata_Compound", "Metadata_Concentration"])
    assert treatments.height == 103
    assert treatments["Metadata_Compound"].n_unique() == 38
    assert treatments["Metadata_MoA"].n_unique() == 12
    assert treated.height == 2528 and table.height - treated.height == 1320
    assert table["Metadata_Plate"].n_unique() == 55 and table["Metadata_Batch"].n_unique() == 10
    per_moa = dict(treatments.group_by("Metadata_MoA").len().iter_rows())
    assert per_moa["Microtubule destabilizers"] == 14 and per_moa["Actin disruptors"] == 5
    assert "103 over 38 compounds and 12 MoAs" in summarize(load_bbbc021(tmp_path, metadata=meta))


def fake_coos7(root: Path) -> None:
    for split in ("train", "test1", "test2", "test3", "test4"):
        for label in ("Golgi", "Peroxisomes"):
            for i in range(2):
                for chan in ("protein", "nucleus", "mask"):
                    _tif(root / split / label / f"plate1_A0{i}_{i}_3_{chan}.tif")


def test_coos7_splits_classes_and_channel_order(tmp_path: Path) -> None:
    fake_coos7(tmp_path)
    images = load_coos7(tmp_path)
    table = images.table
    assert table.height == 20 and images.label_column == "Metadata_Label"
    assert table.group_by("Metadata_Split").len().sort("Metadata_Split")["len"].to_list() == [4] * 5
    row = table.filter(pl.col("Metadata_Split") == "test3").row(0, named=True)
    assert row["channel_paths"] == [
        "test3/Golgi/plate1_A00_0_3_protein.tif",
        "test3/Golgi/plate1_A00_0_3_nucleus.tif",
    ]
    assert row["channels"] == ["protein", "nucleus"] and row["Metadata_Cell"] == "plate1_A00_0_3"
    text = summarize(images)
    assert "coos7: 20 rows (cells), 2 classes" in text and "test4" in text


def test_coos7_unknown_split_and_missing_channel(tmp_path: Path) -> None:
    fake_coos7(tmp_path)
    (tmp_path / "train" / "Golgi" / "plate1_A01_1_3_nucleus.tif").unlink()
    with pytest.raises(
        MetadataError, match=r"1 of 20 cells .*train/Golgi/plate1_A01_1_3: no nucleus"
    ):
        load_coos7(tmp_path)
    assert load_coos7(tmp_path, allow_missing=True).table.height == 19
    _tif(tmp_path / "validation" / "Golgi" / "x_protein.tif")
    _tif(tmp_path / "validation" / "Golgi" / "x_nucleus.tif")
    with pytest.raises(MetadataError, match=r"split folder\(s\) \['validation'\]"):
        load_coos7(tmp_path, allow_missing=True)


def fake_cyclops(root: Path) -> dict[str, str]:
    """Cells whose gfp pixel value encodes their folder; returns stem → folder."""
    cells = {
        "AAA1_1_rfp_1": "ACTIN",  # sorts before DEAD: the original's shift would bite
        "BBB2_1_rfp_2": "DEAD",
        "CCC3_1_rfp_3": "CYTOPLASM",
        "CCC3_1_rfp_4": "CYTOPLASM",
        "DDD4_2_rfp_5": "GHOST",
        "EEE5_1_rfp_6": "SPINDLEPOLE",
        "FFF6_1_rfp_7": "SPINDLE",
        "GGG7_1_rfp_8": "VACUOLE",
    }
    for i, (stem, folder) in enumerate(cells.items()):
        _tif(root / folder / f"{stem}_gfp.tif", 100 + i)
        _tif(root / folder / f"{stem}_rfp.tif", 200 + i)
    (root / "VACUOLE" / "GGG7_1_rfp_8_rfp.tif").unlink()  # a cell missing its rfp
    return cells


def test_cyclops_curation_and_pairing_by_stem(tmp_path: Path) -> None:
    cells = fake_cyclops(tmp_path)
    with pytest.raises(MetadataError, match=r"VACUOLE/GGG7_1_rfp_8: no rfp file"):
        load_cyclops(tmp_path)
    images = load_cyclops(tmp_path, allow_missing=True)
    table = images.table
    assert images.dropped == ("VACUOLE/GGG7_1_rfp_8: no rfp file",)
    assert sorted(table["Metadata_Label"].unique()) == ["ACTIN", "CYTOPLASM", "SPINDLE"]
    assert table.height == 5
    for row in table.iter_rows(named=True):
        gfp, rfp = row["channel_paths"]
        assert gfp.endswith("_gfp.tif") and rfp.endswith("_rfp.tif")
        assert gfp.removesuffix("_gfp.tif") == rfp.removesuffix("_rfp.tif")
        assert cells[row["Metadata_Cell"]] == row["Metadata_Folder"] == Path(gfp).parent.name
        expected = {"SPINDLEPOLE": "SPINDLE"}.get(row["Metadata_Folder"], row["Metadata_Folder"])
        assert row["Metadata_Label"] == expected
        # The pixels agree too: the gfp and rfp of one cell were written together.
        g, r = (int(tifffile.imread(tmp_path / p)[0, 0]) for p in (gfp, rfp))
        assert r - g == 100
    assert any("removed 1 cells of DEAD" in n for n in images.notes)
    assert any("merged 1 cells of SPINDLEPOLE into SPINDLE" in n for n in images.notes)


@pytest.mark.realdata
def test_cyclops_yeast_toy() -> None:
    root = shared_path("yeast_wt2_toy")
    images = load_cyclops(root)
    table = images.table
    assert table.height == 1642 and table["Metadata_Label"].n_unique() == 5
    assert dict(table.group_by("Metadata_Label").len().iter_rows())["AAC3"] == 416
    stems = table.select(
        pl.col("channel_paths").list.first().str.replace(r"_gfp\.tif$", "").alias("g"),
        pl.col("channel_paths").list.last().str.replace(r"_rfp\.tif$", "").alias("r"),
    )
    assert (stems[:, 0] == stems[:, 1]).all()
    assert all((root / p).is_file() for p in table["channel_paths"][0])


def test_job_writes_table_and_provenance(tmp_path: Path) -> None:
    fake_coos7(tmp_path / "raw")
    out = tmp_path / "out" / "coos7.parquet"
    job = BenchmarkImagesJob(benchmark="coos7", root=tmp_path / "raw", out=out)
    run_benchmark_images(job)
    back = pl.read_parquet(out)
    assert back.schema["channel_paths"] == pl.List(pl.String) and back.height == 20
    assert (tmp_path / "out" / "coos7.provenance.json").is_file()
    with pytest.raises(ValueError, match="bbbc021 only"):
        BenchmarkImagesJob(benchmark="cyclops", root=tmp_path, out=out, subset="all")
