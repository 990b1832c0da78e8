"""COOS-7's HDF5 release: unpacked into the loader's tree, checked, resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile

from cytoimagenet.errors import MetadataError
from cytoimagenet.evaluation.coos7_release import COOS7_CLASSES, find_release, unpack_release
from cytoimagenet.evaluation.loaders import load_coos7

pytest.importorskip("h5py")

from tests.fakes.coos7_release import SIZES, write_release


def test_release_reads_like_the_tree(tmp_path: Path) -> None:
    write_release(tmp_path)
    images = load_coos7(tmp_path)
    table = images.table
    assert table.height == sum(SIZES.values())
    counts = dict(table.group_by("Metadata_Split").len().iter_rows())
    assert counts == {"train": 9, "test1": 3, "test2": 3, "test3": 2, "test4": 2}
    first = table.filter(pl.col("Metadata_Cell") == "train_000008").row(0, named=True)
    assert first["Metadata_Label"] == COOS7_CLASSES[8 % 7]
    protein, nucleus = first["channel_paths"]
    assert protein.startswith("coos7_tiff/train/") and protein.endswith("_protein.tif")
    # channel 0 is the protein, channel 1 the nucleus, the mask is not written
    assert tifffile.imread(tmp_path / protein)[0, 0] == 80
    assert tifffile.imread(tmp_path / nucleus)[0, 0] == 81
    assert tifffile.imread(tmp_path / protein).dtype == np.uint16
    assert not list(tmp_path.rglob("*_mask.tif"))
    assert "read the HDF5 release" in images.notes[0]
    assert sorted(p.name for p in images.inputs) == sorted(f"COOS7_v1.1_{s}.hdf5" for s in SIZES)


def test_unpacking_resumes_and_skips_done_splits(tmp_path: Path) -> None:
    write_release(tmp_path)
    tree = unpack_release(tmp_path, progress=False)
    cell = tree / "test1" / COOS7_CLASSES[2] / "test1_000002_protein.tif"
    stamp = cell.stat().st_mtime_ns
    # A run killed mid-split: its marker and a file are missing, the rest is there.
    (tree / ".test1.done").unlink()
    cell.unlink()
    other = tree / "test1" / COOS7_CLASSES[0] / "test1_000000_protein.tif"
    kept = other.stat().st_mtime_ns
    unpack_release(tmp_path, progress=False)
    assert cell.is_file() and (tree / ".test1.done").is_file()
    assert other.stat().st_mtime_ns == kept  # not rewritten
    assert cell.stat().st_mtime_ns >= stamp
    assert not [p for p in tree.rglob("*") if p.name.endswith(".tmp")]


def test_bad_release_files_are_named(tmp_path: Path) -> None:
    write_release(tmp_path / "a", bad_label=7)
    with pytest.raises(MetadataError, match=r"COOS7_v1.1_test2.hdf5: label 7.0 of cell 1"):
        unpack_release(tmp_path / "a", progress=False)
    write_release(tmp_path / "b", bad_label=2.5)
    with pytest.raises(MetadataError, match="not a class code"):
        unpack_release(tmp_path / "b", progress=False)
    write_release(tmp_path / "c", labels_key="y")
    with pytest.raises(MetadataError, match="holds 'data' and 'labels'"):
        unpack_release(tmp_path / "c", progress=False)
    with pytest.raises(MetadataError, match="no COOS-7 release file"):
        unpack_release(tmp_path / "empty", progress=False)


def test_one_file_per_split(tmp_path: Path) -> None:
    write_release(tmp_path)
    (tmp_path / "COOS7_v1.0_test1.h5").write_bytes(b"")
    with pytest.raises(MetadataError, match="hold COOS-7 split 'test1'"):
        find_release(tmp_path)
