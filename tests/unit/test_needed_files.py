"""Which raw files a labels table needs, and where they lie in a source's archives."""

from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl
import pytest

from cytoimagenet.curation.dataset.plan import channel_files
from cytoimagenet.download.archive import extract_archive
from cytoimagenet.download.file_routes import cil_files, kaggle_files
from cytoimagenet.download.needed import (
    files_by_source,
    match_members,
    needed_files,
    unpacked_prefix,
)
from cytoimagenet.download.remote_zip import zip_entries
from cytoimagenet.errors import ConfigError, DownloadError, SchemaError
from cytoimagenet.sources.catalog import RemoteFile, get_source


def table(rows: list[tuple[str | None, str, list[str] | None, list[str] | None]]) -> pl.DataFrame:
    """Rows of (label, dir_name, channels, channel_paths)."""
    return pl.DataFrame(
        {
            "idx": [f"r{i}" for i in range(len(rows))],
            "label": [r[0] for r in rows],
            "dir_name": [r[1] for r in rows],
            "channels": [r[2] for r in rows],
            "channel_paths": [r[3] for r in rows],
        },
        schema={
            "idx": pl.String,
            "label": pl.String,
            "dir_name": pl.String,
            "channels": pl.List(pl.String),
            "channel_paths": pl.List(pl.String),
        },
    )


def test_brightfield_is_left_out_when_there_is_fluorescence() -> None:
    rows = table(
        [
            (
                "a",
                "s1",
                ["f_nucleus", "brightfield", "f_actin"],
                ["p/1.tif", "p/bf.tif", "p/2.tif"],
            ),
            ("b", "s1", ["brightfield"], ["q/bf_only.tif"]),  # no fluorescence: kept
            ("c", "s1", ["f_nucleus"], ["p/1.tif"]),  # the same file twice: listed once
            ("d", "s2", ["f_a", "phase"], ["z/x.png"]),  # names and files do not line up
            ("e", "s2", None, ["z/y.png", "z/w.png"]),
        ]
    )
    got = files_by_source(rows)
    assert got == {
        "s1": ["p/1.tif", "p/2.tif", "q/bf_only.tif"],
        "s2": ["z/w.png", "z/x.png", "z/y.png"],
    }
    assert channel_files(["f_nucleus", "brightfield"], ["p/1.tif", "p/bf.tif"]) == ["p/1.tif"]


def test_sources_filter_and_unknown_source() -> None:
    rows = table([("a", "s1", ["f_a"], ["1.png"]), ("b", "s2", ["f_a"], ["2.png"])])
    assert files_by_source(rows, ["S2"]) == {"s2": ["2.png"]}
    with pytest.raises(SchemaError, match=r"here: no labelled row of source\(s\) s3"):
        files_by_source(rows, ["s2", "s3"], where="here")


def test_needed_files_reads_labelled_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    table(
        [
            ("a", "s1", ["f_a"], ["1.png"]),
            (None, "s1", ["f_a"], ["unlabelled.png"]),
            ("b", "s2", ["f_a"], ["2.png"]),
        ]
    ).write_parquet(path)
    assert needed_files(path) == {"s1": ["1.png"], "s2": ["2.png"]}
    assert needed_files(path, ["s2"]) == {"s2": ["2.png"]}


def test_needed_files_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    table([("a", "s1", ["f_a"], ["1.png"])]).drop("channel_paths", "channels").write_parquet(path)
    with pytest.raises(SchemaError, match=r"missing column\(s\) channels, channel_paths"):
        needed_files(path)


def test_needed_files_without_labelled_rows(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    table([(None, "s1", ["f_a"], ["1.png"])]).write_parquet(path)
    with pytest.raises(SchemaError, match="no labelled rows"):
        needed_files(path)


@pytest.mark.parametrize("bad", ["../escape.png", "/etc/passwd", "a/../../b.png"])
def test_needed_files_refuses_paths_outside_the_root(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "labels.parquet"
    table([("a", "s1", ["f_a"], ["ok.png"]), ("b", "s1", ["f_a"], [bad])]).write_parquet(path)
    with pytest.raises(ConfigError, match="r1"):
        needed_files(path, root=tmp_path / "raw")
    assert needed_files(path) == {"s1": sorted(["ok.png", bad])}  # unchecked without a root


def test_unpacked_prefix() -> None:
    assert unpacked_prefix("rxrx1-images.zip", ["images/a.png", "images/b/c.png"]) == ""
    assert unpacked_prefix("sub/one.zip", ["images/a.png"]) == "sub/"
    assert unpacked_prefix("BBBC006_v1_images_z_00.zip", ["a.tif", "b.tif"]) == (
        "BBBC006_v1_images_z_00/"
    )
    assert unpacked_prefix("zips/stage1_train.zip", ["a/x.png", "b/y.png"]) == (
        "zips/stage1_train/"
    )
    assert unpacked_prefix("x/imgs.tar.gz", ["a/1", "b/2"]) == "x/imgs/"
    assert unpacked_prefix("empty.zip", []) == ""


def test_match_members_lays_out_as_unpacked_and_reports_missing() -> None:
    archives = {
        "plate1.zip": ["Plate1/", "Plate1/A01_s1_w1.png", "Plate1/A01_s1_w2.png"],
        "loose.zip": ["a.tif", "b.tif", "dir/", "dir/c.tif"],
    }
    got = match_members(
        ["Plate1/A01_s1_w2.png", "loose/b.tif", "loose/dir/c.tif", "b.tif", "Plate1/"], archives
    )
    assert got.found == {
        "plate1.zip": {"Plate1/A01_s1_w2.png": "Plate1/A01_s1_w2.png"},
        "loose.zip": {"loose/b.tif": "b.tif", "loose/dir/c.tif": "dir/c.tif"},
    }
    assert got.missing == ["b.tif", "Plate1/"]  # not where a whole download puts it; a folder


def test_match_members_glob_paths() -> None:
    names = [
        f"NIRHTa{s}001/AS_09125_{b}_A01f{f}d{c}.DIB"
        for s in "+-"
        for b in (7, 8)
        for f in (0, 1)
        for c in (0, 1, 2)
    ]
    names += ["NIRHTa+002/AS_09125_9_A01f0d0.DIB", "NIRHTa+001/AS_09125_7_B01f0d0.DIB"]
    archives = {"bbbc017.zip": names}  # several top-level folders: unpacked into bbbc017/
    got = match_members(
        [
            "bbbc017/NIRHTa*001/*_A01f0d1.DIB",
            "bbbc017/NIRHTa*001/*_A01f[1]d2.DIB",
            "bbbc017/NIRHTa*009/*_A01f0d1.DIB",
        ],
        archives,
    )
    found = got.found["bbbc017.zip"]
    assert sorted(found) == sorted(
        [f"bbbc017/NIRHTa{s}001/AS_09125_{b}_A01f0d1.DIB" for s in "+-" for b in (7, 8)]
        + [f"bbbc017/NIRHTa{s}001/AS_09125_{b}_A01f1d2.DIB" for s in "+-" for b in (7, 8)]
    )
    assert all(found[k] == k.removeprefix("bbbc017/") for k in found)
    assert got.missing == ["bbbc017/NIRHTa*009/*_A01f0d1.DIB"]


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(["images/a.png", "images/b/c.png"], id="one-top-folder"),
        pytest.param(["images/", "images/a.png", "images/b/", "images/b/c.png"], id="dir-entries"),
        pytest.param(["a.png", "b/c.png"], id="loose"),
        pytest.param(
            ["images/a.png", "images/b.png", "docs/"],
            id="empty-dir-beside",
        ),
        pytest.param(
            ["./images/a.png", "./images/b.png"],
            id="dot-slash",
        ),
        pytest.param(
            ["images\\a.png", "images\\b.png"],
            id="backslash",
        ),
    ],
)
def test_match_members_agrees_with_a_whole_download(tmp_path: Path, names: list[str]) -> None:
    archive = tmp_path / "arch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in names:
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, name.encode())
    extract_archive(archive)
    unpacked = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file() and p != archive and not p.name.startswith(".")
    }
    assert len(unpacked) == sum(not n.endswith("/") for n in names)
    # the names as the selective fetch sees them: cleaned as a whole download cleans them
    with zipfile.ZipFile(archive) as zf:
        members, entries = zip_entries(zf, 0, str(archive))
    got = match_members(sorted(unpacked), {"arch.zip": entries})
    assert got.missing == []
    found = got.found["arch.zip"]
    assert {p: members[m].info.filename.encode() for p, m in found.items()} == unpacked


def test_match_members_first_archive_wins_a_duplicate_path() -> None:
    got = match_members(
        ["images/a.png"], {"one.zip": ["images/a.png"], "two.zip": ["images/a.png"]}
    )
    assert got.found == {"one.zip": {"images/a.png": "images/a.png"}} and not got.missing


def test_kaggle_files_name_single_files_of_the_competition() -> None:
    info = get_source("kag_hpa")
    files = kaggle_files(
        info,
        ["train/00070df0_green.png", "human-protein-atlas-image-classification/train/x_red.png"],
        list(info.files),
    )
    base = "kaggle://competition/human-protein-atlas-image-classification"
    assert [(f.url, f.path, f.is_archive) for f in files] == [
        (f"{base}/train/00070df0_green.png", "train/00070df0_green.png", False),
        (
            f"{base}/train/x_red.png",
            "human-protein-atlas-image-classification/train/x_red.png",
            False,
        ),
    ]
    meta_only = [f for f in info.files if f.kind == "metadata"]
    with pytest.raises(DownloadError, match="no whole Kaggle"):
        kaggle_files(info, ["train/a.png"], meta_only)


def test_cil_files_one_zip_per_id() -> None:
    files, bad = cil_files(["53464.tif", "53464.jpg", "sub/53600.tif", "notes.txt", "x1.tif"])
    assert [(f.path, f.url) for f in files] == [
        ("53464.zip", "https://cildata.crbs.ucsd.edu/media/images/53464/53464.zip"),
        ("sub/53600.zip", "https://cildata.crbs.ucsd.edu/media/images/53600/53600.zip"),
    ]
    assert bad == ["notes.txt", "x1.tif"]
    assert all(isinstance(f, RemoteFile) and f.is_archive for f in files)
