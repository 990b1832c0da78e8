"""Tolerant readers of raw metadata files."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest
from tests.conftest import shared_path

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import read_delimited, read_excel, require_columns


def test_plain_gzip_and_zip_read_the_same(tmp_path: Path) -> None:
    text = "Plate,Well,Compound Name\n1013608248,A1,DMSO\n1013608248,A2,\n"
    (tmp_path / "a.csv").write_text(text)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "a.csv.zip", "w") as zf:
        zf.writestr("a.csv", text)
    frames = [read_delimited(tmp_path / n) for n in ("a.csv", "a.csv.gz", "a.csv.zip")]
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])
    assert frames[0]["Plate"].to_list() == ["1013608248"] * 2  # kept as a string
    assert frames[0]["Compound Name"].to_list() == ["DMSO", None]  # empty → null


def test_tab_separated_with_spaces_in_values(tmp_path: Path) -> None:
    path = tmp_path / "lib.txt"
    path.write_text("Plate\tWell\nDTT p1\tA1\n")
    assert read_delimited(path).row(0) == ("DTT p1", "A1")


def test_trailing_comma_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes('\ufeffA,B\n"x",1,\n"y",2,\n'.encode())
    frame = read_delimited(path)
    assert frame.columns == ["A", "B"]
    assert frame["A"].to_list() == ["x", "y"]


def test_ragged_rows_keep_their_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6,7,8\n9,10\n")
    frame = read_delimited(path)
    assert frame["__extra__"].to_list() == [None, "7,8", None]
    assert frame["c"].to_list() == ["3", "6", None]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="no such file"):
        read_delimited(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(MetadataError, match="empty"):
        read_delimited(empty)
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a\n1,2\n")
    with pytest.raises(MetadataError, match="duplicated"):
        read_delimited(dup)
    broken = tmp_path / "broken.csv.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(MetadataError, match=r"broken\.csv\.zip"):
        read_delimited(broken)
    frame = read_delimited(tmp_path / "dup.csv", separator="\t")
    with pytest.raises(MetadataError, match=r"dup\.csv: missing column"):
        require_columns(frame, ["Plate"], tmp_path / "dup.csv")


def test_excel_on_the_real_bbbc017_plate_map() -> None:
    path = shared_path("source_metadata", "bbbc017", "bbbc_colon_metadata.xls")
    frame = read_excel(path)
    assert frame.shape == (5760, 27)
    assert "gene name" in frame.columns and frame["384-Plate#"][0] == "1"


def test_excel_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.xls"
    bad.write_bytes(b"garbage")
    with pytest.raises(MetadataError, match=r"x\.xls"):
        read_excel(bad)
