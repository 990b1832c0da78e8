"""Image tables from a lab's own images: patterns, LoadData, indexes, cells, flat fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.images_in import crop_boxes, table_fields
from cytoimagenet.features.planes import FileFields, apply_flat_field, crop_plane
from cytoimagenet.images.cells import add_cells
from cytoimagenet.images.loaddata import read_index, read_loaddata
from cytoimagenet.images.pattern import compile_pattern, natural_key, scan_folder
from cytoimagenet.images.step import ImagesJob, relative_paths, run_images
from cytoimagenet.imaging.illumination import flat_field


def _plate(root: Path, plates=("P1",), wells=("B02", "C10"), sites=(1, 2), chans=(1, 2, 3)):
    """Write 16-bit TIFFs plate/well_s<site>_w<ch>.tif; pixel value encodes the file."""
    for p in plates:
        for w in wells:
            for s in sites:
                for c in chans:
                    path = root / p / f"{w}_s{s}_w{c}.tif"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tifffile.imwrite(path, np.full((20, 24), 100 * c + s, np.uint16))


def test_pattern_fields_regex_and_errors() -> None:
    p = compile_pattern("{plate}/{well}_s{site:\\d+}_w{channel}.tif")
    assert p.regex.fullmatch("P1/B02_s12_w3.tif").groupdict()["site"] == "12"
    assert p.regex.fullmatch("P1/B02_sx_w3.tif") is None
    twice = compile_pattern("{plate}/{plate}_{channel}.tif")
    assert twice.regex.fullmatch("A/A_1.tif") and not twice.regex.fullmatch("A/B_1.tif")
    for bad in ("plain.tif", "{plate/x.tif", "{a:(}.tif"):
        with pytest.raises(ConfigError, match="--pattern"):
            compile_pattern(bad)
    assert sorted(["w10", "w2", "w1"], key=natural_key) == ["w1", "w2", "w10"]


def test_scan_folder_groups_channels_into_rows(tmp_path: Path) -> None:
    _plate(tmp_path, plates=("P1", "P2"))
    (tmp_path / "P1" / "notes.txt").write_text("not an image")
    scan = scan_folder(tmp_path, compile_pattern("{plate}/{well}_s{site}_w{channel}.tif"))
    t = scan.table
    assert t.height == 8 and t.columns == [
        "Metadata_Plate", "Metadata_Well", "Metadata_Site", "channels", "channel_paths"
    ]  # fmt: skip
    assert t["channels"][0].to_list() == ["1", "2", "3"]
    first = t.row(0, named=True)
    assert (first["Metadata_Plate"], first["Metadata_Well"], first["Metadata_Site"]) == (
        "P1", "B02", "1"
    )  # fmt: skip
    assert [Path(p).name for p in first["channel_paths"]] == [
        "B02_s1_w1.tif", "B02_s1_w2.tif", "B02_s1_w3.tif"
    ]  # fmt: skip
    chosen = scan_folder(
        tmp_path, compile_pattern("{plate}/{well}_s{site}_w{channel}.tif"), channels=["3", "1"]
    )
    assert chosen.table["channels"][0].to_list() == ["3", "1"]
    assert "channels not in --channels" in chosen.notes[0]


def test_scan_folder_refuses_unmatched_and_incomplete(tmp_path: Path) -> None:
    _plate(tmp_path)
    pattern = compile_pattern("{plate}/{well}_s{site}_w{channel}.tif")
    (tmp_path / "P1" / "B02_s3_w1.tif").write_bytes(b"")  # site 3 has channel 1 only
    with pytest.raises(ConfigError, match=r"1 image\(s\) lack channels.*site=3.*2, 3"):
        scan_folder(tmp_path, pattern)
    kept = scan_folder(tmp_path, pattern, allow_incomplete=True)
    assert kept.table.height == 4 and len(kept.dropped) == 1
    (tmp_path / "P1" / "thumb_B02.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"match no --pattern.*thumb_B02\.png"):
        scan_folder(tmp_path, pattern, allow_incomplete=True)
    loose = scan_folder(tmp_path, pattern, allow_incomplete=True, ignore_unmatched=True)
    assert loose.table.height == 4 and "match no pattern" in loose.notes[0]
    with pytest.raises(ConfigError, match="no file under"):
        scan_folder(tmp_path, compile_pattern("{plate}/{well}.jpg"), ignore_unmatched=True)


def _loaddata(tmp_path: Path) -> Path:
    _plate(tmp_path / "imgs")
    rows = []
    for w in ("B02", "C10"):
        for s in (1, 2):
            row = {"Metadata_Plate": "P1", "Metadata_Well": w, "Metadata_Site": str(s)}
            for name, c in (("DNA", 1), ("Actin", 3)):
                row[f"FileName_{name}"] = f"{w}_s{s}_w{c}.tif"
                row[f"PathName_{name}"] = "/old/machine/imgs/P1"
            rows.append(row)
    path = tmp_path / "load_data.csv"
    pl.DataFrame(rows).write_csv(path)
    return path


def test_loaddata_resolves_paths_and_keeps_metadata(tmp_path: Path) -> None:
    csv = _loaddata(tmp_path)
    scan = read_loaddata(csv, path_map=[("/old/machine/", f"{tmp_path}/")])
    t = scan.table
    assert t.height == 4 and t["channels"][0].to_list() == ["DNA", "Actin"]
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_Site"} <= set(t.columns)
    assert t["channel_paths"][3].to_list() == [
        f"{tmp_path}/imgs/P1/C10_s2_w1.tif", f"{tmp_path}/imgs/P1/C10_s2_w3.tif"
    ]  # fmt: skip
    only = read_loaddata(csv, channels=["Actin"], path_map=[("/old/machine/", f"{tmp_path}/")])
    assert only.table["channels"][0].to_list() == ["Actin"]
    with pytest.raises(ConfigError, match=r"do not exist.*--path-map"):
        read_loaddata(csv)
    with pytest.raises(ConfigError, match="not in the table"):
        read_loaddata(csv, channels=["ER"])
    pl.DataFrame({"Metadata_Plate": ["P1"], "Image": ["x.tif"]}).write_csv(tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match="no FileName_"):
        read_loaddata(tmp_path / "bad.csv")


def _index(tmp_path: Path) -> Path:
    _plate(tmp_path / "images", wells=("B02",), sites=(1,), chans=(1, 2))
    path = tmp_path / "index.csv"
    pl.DataFrame(
        {
            "Metadata_Plate": ["P1"],
            "Metadata_Well": ["B02"],
            "Metadata_Site": ["1"],
            "DNA": ["images/P1/B02_s1_w1.tif"],
            "RNA": ["images/P1/B02_s1_w2.tif"],
            "Replicate": ["1"],
        }
    ).write_csv(path)
    return path


def test_index_finds_channel_columns(tmp_path: Path) -> None:
    scan = read_index(_index(tmp_path))
    assert scan.table["channels"][0].to_list() == ["DNA", "RNA"]
    assert "Replicate" not in scan.table.columns
    assert read_index(tmp_path / "index.csv", channels=["RNA"]).table["channels"][0][0] == "RNA"


def test_cells_from_a_csv_with_edges(tmp_path: Path) -> None:
    scan = read_index(_index(tmp_path))  # one 20 x 24 field
    locs = tmp_path / "cells.csv"
    pl.DataFrame(
        {
            "Metadata_Plate": ["P1"] * 4 + ["P9"],
            "Metadata_Well": ["B02"] * 5,
            "Metadata_Site": ["1"] * 5,
            "Nuclei_Location_Center_X": [12.0, 2.0, 23.4, None, 5.0],
            "Nuclei_Location_Center_Y": [10.0, 10.0, 19.6, 3.0, 5.0],
        }
    ).write_csv(locs)
    skip = add_cells(scan, locs, crop_size=8)
    assert skip.table.height == 1
    row = skip.table.row(0, named=True)
    assert (row["crop_x_min"], row["crop_x_max"], row["crop_y_min"], row["crop_y_max"]) == (
        8, 16, 6, 14
    )  # fmt: skip
    assert row["crop_edge"] == "skip" and row["Metadata_Cell"] == 0
    assert any("box leaves the image" in n for n in skip.notes)
    assert any("without a centre" in n for n in skip.notes)
    assert any("of no listed image" in n for n in skip.notes)
    padded = add_cells(scan, locs, crop_size=8, edge="zero")
    assert padded.table.height == 3 and padded.table["Metadata_Cell"].to_list() == [0, 1, 2]
    with pytest.raises(ConfigError, match="no column 'X'"):
        add_cells(scan, locs, crop_size=8, x_column="X")


def test_cells_from_a_deepprofiler_folder(tmp_path: Path) -> None:
    scan = read_index(_index(tmp_path))
    folder = tmp_path / "locations" / "P1"
    folder.mkdir(parents=True)
    pl.DataFrame({"Nuclei_Location_Center_X": [10.0], "Nuclei_Location_Center_Y": [9.0]}).write_csv(
        folder / "B02-1-Nuclei.csv"
    )
    cells = add_cells(scan, tmp_path / "locations", crop_size=6)
    assert cells.table.height == 1 and cells.table["crop_x_min"][0] == 7
    with pytest.raises(ConfigError, match="no locations file for any image"):
        add_cells(scan, tmp_path / "locations", crop_size=6, location_pattern="{Metadata_Well}.csv")


def test_crop_plane_edges() -> None:
    a = np.arange(1, 13, dtype=np.uint16).reshape(3, 4)
    np.testing.assert_array_equal(crop_plane(a, (1, 3, 0, 2), "skip"), a[0:2, 1:3])
    np.testing.assert_array_equal(
        crop_plane(a, (2, 6, -1, 2), "zero"), [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0]]
    )
    np.testing.assert_array_equal(
        crop_plane(a, (2, 6, -1, 2), "reflect"), [[3, 4, 4, 3], [3, 4, 4, 3], [7, 8, 8, 7]]
    )
    assert crop_plane(a, (10, 12, 10, 12), "zero").tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ConfigError, match="leaves the 3 x 4 image"):
        crop_plane(a, (-1, 1, 0, 1), "skip")


def test_table_fields_crop_at_read_time(tmp_path: Path) -> None:
    plane = np.arange(20 * 24, dtype=np.uint16).reshape(20, 24)
    tifffile.imwrite(tmp_path / "a.tif", plane)
    frame = pl.DataFrame(
        {"crop_x_min": [2, -3], "crop_x_max": [6, 1], "crop_y_min": [1, 0], "crop_y_max": [5, 4]}
    ).with_columns(pl.Series("crop_edge", ["skip", "zero"]))
    fields = table_fields(frame, [[tmp_path / "a.tif"]] * 2, tmp_path / "t.parquet")
    assert isinstance(fields, FileFields)
    np.testing.assert_array_equal(fields.planes(0)[0], plane[1:5, 2:6])
    assert fields.planes(1)[0][:, :3].max() == 0 and fields.planes(1)[0].dtype == np.uint16
    with pytest.raises(ConfigError, match="a crop needs all four"):
        crop_boxes(frame.drop("crop_y_max"), tmp_path / "t.parquet")
    inverted = frame.with_columns(pl.lit(0).alias("crop_x_max"))
    with pytest.raises(ConfigError, match="is empty"):
        crop_boxes(inverted, tmp_path / "t.parquet")
    whole = table_fields(pl.DataFrame({"a": [1]}), [[tmp_path / "a.tif"]], tmp_path / "t")
    assert isinstance(whole, list)


def _vignette(h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    r2 = ((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2
    return 1.0 - 0.8 * r2  # 1 in the centre, 0.6 in the corners


def test_flat_field_recovers_a_vignette() -> None:
    rng = np.random.default_rng(0)
    vig = _vignette()
    yy, xx = np.ogrid[:96, :128]
    images = []
    for _ in range(60):  # 8 bright cells on a 500 background, dimmed by the vignette, + noise
        cells = np.zeros(vig.shape)
        for y, x in rng.uniform(0, 1, size=(8, 2)) * [96, 128]:
            cells += 1000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 30)
        images.append(((500 + cells) * vig + rng.normal(0, 20, vig.shape)).astype(np.uint16))
    truth = vig / np.percentile(vig, 2)
    above = truth >= 1.0  # below its robust minimum a flat field is clipped to 1
    robust = flat_field(images, statistic="median", smoothing="median")
    assert robust.dtype == np.float32 and robust.min() >= 1.0
    assert np.abs(robust / truth - 1)[above].max() < 0.05  # the vignette, to 5 % everywhere
    assert np.corrcoef(robust.ravel(), vig.ravel())[0, 1] > 0.99
    mean = flat_field(images)  # the mean also holds the cells: close, less exact
    assert np.abs(mean / truth - 1)[above].max() < 0.15
    assert np.corrcoef(mean.ravel(), vig.ravel())[0, 1] > 0.95
    corrected = [apply_flat_field([im], [robust])[0] for im in images]
    before, after = np.median(images, axis=0), np.median(corrected, axis=0)
    centre, corner = (slice(40, 56), slice(56, 72)), (slice(0, 12), slice(0, 12))
    assert before[centre].mean() / before[corner].mean() > 1.4
    assert abs(after[centre].mean() / after[corner].mean() - 1) < 0.05
    with pytest.raises(ConfigError, match="too dark"):
        flat_field([np.zeros((8, 8), np.uint16)])
    with pytest.raises(ConfigError, match="differ in size"):
        flat_field([np.ones((8, 8)), np.ones((8, 9))])


def test_apply_flat_field_keeps_the_raw_scale() -> None:
    plane = np.full((2, 2), 65535, np.uint16)
    flat = np.full((2, 2), 2.0, np.float32)
    (out,) = apply_flat_field([plane], [flat])
    assert out.dtype == np.float32 and np.allclose(out, 0.5)
    with pytest.raises(ConfigError, match="2 x 3, the image 2 x 2"):
        apply_flat_field([plane], [np.ones((2, 3), np.float32)])


def test_images_job_validates_routes(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    with pytest.raises(ValueError, match="exactly one of"):
        ImagesJob(out=out)
    with pytest.raises(ValueError, match="go together"):
        ImagesJob(out=out, folder=tmp_path)
    with pytest.raises(ValueError, match="--locations and --crop-size"):
        ImagesJob(out=out, folder=tmp_path, pattern="{a}_{channel}.tif", crop_size=8)
    with pytest.raises(ValueError, match="needs a \\{channel\\}"):
        ImagesJob(out=out, folder=tmp_path, pattern="{a}.tif", channels=["1"])


def test_run_images_writes_paths_relative_to_the_table(tmp_path: Path) -> None:
    _plate(tmp_path / "data")
    out = tmp_path / "tables" / "images.parquet"
    job = ImagesJob(
        out=out, folder=tmp_path / "data", pattern="{plate}/{well}_s{site}_w{channel}.tif"
    )
    run_images(job)
    table = pl.read_parquet(out)
    assert table["channel_paths"][0][0] == "../data/P1/B02_s1_w1.tif"
    assert (out.parent / table["channel_paths"][0][0]).is_file()
    assert out.with_name("images.provenance.json").is_file()
    same = relative_paths(pl.DataFrame({"channel_paths": [[str(out)]]}), out.parent)
    assert same["channel_paths"][0][0] == "images.parquet"
