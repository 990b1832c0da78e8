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


def _csv(rows: int) -> str:
    return "Plate,Well,Compound\n" + "".join(f"P{i},A{i % 12 + 1},c{i}\n" for i in range(rows))


def test_decompressed_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _csv(2000)  # ~40 kB once decompressed, a few kB compressed
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "a.csv.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", text)
    (tmp_path / "a.csv").write_text(text)
    for name in ("a.csv.gz", "a.csv.zip", "a.csv"):
        with pytest.raises(MetadataError, match=rf"{name}: holds more than 10,000 bytes"):
            read_delimited(tmp_path / name, max_bytes=10_000)
        assert read_delimited(tmp_path / name, max_bytes=len(text)).height == 2000
    monkeypatch.setenv("CYTOIMAGENET_MAX_TABLE_BYTES", "1000")
    with pytest.raises(MetadataError, match="CYTOIMAGENET_MAX_TABLE_BYTES"):
        read_delimited(tmp_path / "a.csv.gz")
    monkeypatch.setenv("CYTOIMAGENET_MAX_TABLE_BYTES", "lots")
    with pytest.raises(MetadataError, match="expected a positive number of bytes"):
        read_delimited(tmp_path / "a.csv.gz")


def test_a_cut_gzip_or_zip_is_refused(tmp_path: Path) -> None:
    packed = gzip.compress(_csv(500).encode())
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(MetadataError, match=r"cut\.csv\.gz: cannot read .*re-download"):
        read_delimited(tmp_path / "cut.csv.gz")
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", _csv(500))
    whole = (tmp_path / "z.zip").read_bytes()
    (tmp_path / "cut.csv.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MetadataError, match=r"cut\.csv\.zip: cannot read"):
        read_delimited(tmp_path / "cut.csv.zip")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Plate,Well,Compound\nP1,A1,dmso\nP2,A", "the last line has 2 of 3 fields"),
        ('Plate,Well,Compound\nP1,A1,dmso\nP2,A2,"taxol', "ends inside a quoted field"),
        ('Plate,Well,Compound\nP1,A1,"dmso\n', "ends inside a quoted field"),
    ],
)
def test_a_csv_cut_mid_row_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cut.csv"
    path.write_text(text)
    with pytest.raises(MetadataError, match=message) as info:
        read_delimited(path)
    assert str(path) in str(info.value)


def test_a_file_cut_inside_a_character_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes("Plate,Compound\nP1,dmso\nP2,β".encode()[:-1])  # half of "β"
    with pytest.raises(MetadataError, match="ends in the middle of a character"):
        read_delimited(path)


def test_complete_files_without_a_final_newline_still_read(tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    full.write_text("Plate,Well,Compound\nP1,A1,dmso\nP2,A2,taxol")
    assert read_delimited(full)["Compound"].to_list() == ["dmso", "taxol"]
    ragged = tmp_path / "ragged.csv"  # short rows throughout are the file's style, not a cut
    ragged.write_text("Plate,Well,Compound\nP1,A1\nP2,A2")
    assert read_delimited(ragged)["Compound"].to_list() == [None, None]
    lenient = tmp_path / "quote.csv"  # a stray quote mid-field is tolerated, as before
    lenient.write_text('Plate,Compound\nP1,"dmso"x\nP2,taxol\n')
    assert read_delimited(lenient)["Compound"].to_list() == ["dmsox", "taxol"]
