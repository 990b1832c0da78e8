"""Safe, resumable archive extraction: hostile entries are refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cytoimagenet.download.archive import (
    UnsafeArchiveError,
    clean_name,
    extract_archive,
    marker_path,
)
from cytoimagenet.download.http import DownloadError


def make_zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in kw.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.name.startswith(".")}


def test_zip_with_one_top_folder_unpacks_beside_itself(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"top/": b"", "top/x.txt": b"x", "top/s/y.txt": b"yy"})
    done = extract_archive(archive)
    assert done.status == "extracted" and done.dest == tmp_path and done.written == 2
    assert (tmp_path / "top" / "s" / "y.txt").read_bytes() == b"yy"


def test_archive_of_loose_files_unpacks_into_its_own_folder(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "stage1_train.zip", {"id1/a.png": b"1", "id2/b.png": b"2"})
    done = extract_archive(archive)
    assert done.dest == tmp_path / "stage1_train"
    assert files_under(done.dest) == {"id1", "id1/a.png", "id2", "id2/b.png"}


def test_tar_gz_unpacks_with_an_inner_symlink(tmp_path: Path) -> None:
    archive = tmp_path / "t.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "t/data/f.txt", b"hello")
        add(tar, "t/link.txt", type=tarfile.SYMTYPE, linkname="data/f.txt")
        add(tar, "t/hard.txt", type=tarfile.LNKTYPE, linkname="t/data/f.txt")
    extract_archive(archive)
    assert (tmp_path / "t" / "link.txt").is_symlink()
    assert (tmp_path / "t" / "link.txt").read_text() == "hello"
    assert (tmp_path / "t" / "hard.txt").read_text() == "hello"


def test_finished_archive_is_skipped_and_a_partial_one_resumed(tmp_path: Path) -> None:
    entries = {f"p/f{i}.txt": bytes([i]) * (i + 1) for i in range(6)}
    archive = make_zip(tmp_path / "p.zip", entries)
    assert extract_archive(archive).written == 6
    assert extract_archive(archive).status == "skipped"
    # as if killed mid-way: no marker, one file missing, a stray temp file left behind
    marker_path(archive).unlink()
    (tmp_path / "p" / "f3.txt").unlink()
    (tmp_path / "p" / ".f3.txt.extracting").write_bytes(b"half")
    again = extract_archive(archive)
    assert (again.written, again.skipped) == (1, 5)
    assert (tmp_path / "p" / "f3.txt").read_bytes() == entries["p/f3.txt"]
    assert not (tmp_path / "p" / ".f3.txt.extracting").exists()


def test_changed_archive_is_extracted_again(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "p.zip", {"p/a.txt": b"old"})
    extract_archive(archive)
    make_zip(archive, {"p/a.txt": b"newer"})
    assert extract_archive(archive).status == "extracted"
    assert (tmp_path / "p" / "a.txt").read_bytes() == b"newer"


@pytest.mark.parametrize(
    ("entries", "links", "match"),
    [
        ({"ok.txt": b"1", "../evil.txt": b"x"}, None, r"'\.\.' leaves"),
        ({"ok.txt": b"1", "a/../../evil.txt": b"x"}, None, r"'\.\.' leaves"),
        ({"ok.txt": b"1", "/tmp/evil.txt": b"x"}, None, "absolute path"),
        ({"ok.txt": b"1", "C:/evil.txt": b"x"}, None, "absolute path"),
        ({"ok.txt": b"1"}, {"up": "../../.."}, "points outside"),
        ({"ok.txt": b"1"}, {"abs": "/etc"}, "refused link"),
    ],
)
def test_malicious_zip_is_refused_and_nothing_is_written(
    tmp_path: Path, entries: dict[str, bytes], links: dict[str, str] | None, match: str
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    archive = make_zip(box / "bad.zip", entries, links)
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_archive(archive)
    assert files_under(tmp_path) == {"box", "box/bad.zip"}  # not even ok.txt
    assert not marker_path(archive).exists()


def _tar_cases() -> list[tuple[str, dict[str, object], str]]:
    return [
        ("../evil.txt", {}, r"'\.\.' leaves"),
        ("/tmp/evil.txt", {}, "absolute path"),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "/etc"}, "refused link"),
        ("d/link", {"type": tarfile.SYMTYPE, "linkname": "../../x"}, "points outside"),
        ("hard", {"type": tarfile.LNKTYPE, "linkname": "../outside"}, r"'\.\.' leaves"),
        ("dev", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "special file"),
        ("fifo", {"type": tarfile.FIFOTYPE}, "special file"),
    ]


@pytest.mark.parametrize(("name", "kw", "match"), _tar_cases())
def test_malicious_tar_is_refused_and_nothing_is_written(
    tmp_path: Path, name: str, kw: dict[str, object], match: str
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    archive = box / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        add(tar, "ok.txt", b"fine")
        add(tar, name, b"x" if not kw else b"", **kw)
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_archive(archive)
    assert files_under(tmp_path) == {"box", "box/bad.tar"}


def test_link_planted_before_extraction_cannot_redirect_writes(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    box = tmp_path / "box"
    (box / "p").mkdir(parents=True)
    (box / "p" / "sub").symlink_to(outside)  # e.g. left by an earlier, different archive
    archive = make_zip(box / "p.zip", {"p/sub/evil.txt": b"x"})
    with pytest.raises(UnsafeArchiveError, match="resolves outside"):
        extract_archive(archive)
    assert list(outside.iterdir()) == []


def test_not_an_archive_and_a_truncated_one_are_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>error page</html>")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        extract_archive(junk)
    good = make_zip(tmp_path / "g.zip", {"g/a.bin": bytes(range(256)) * 400})
    cut = tmp_path / "cut.tar.gz"
    with tarfile.open(cut, "w:gz") as tar:
        tar.add(good, arcname="g.zip")
    cut.write_bytes(cut.read_bytes()[:-200])
    with pytest.raises(DownloadError, match="corrupt"):
        extract_archive(cut)


def test_clean_name_normalises_harmless_forms() -> None:
    assert clean_name("./a//b/./c.txt", Path("x.zip")) == "a/b/c.txt"
    assert clean_name("dir\\file.txt", Path("x.zip")) == "dir/file.txt"
    with pytest.raises(UnsafeArchiveError):
        clean_name("dir\\..\\..\\evil", Path("x.zip"))


def _reference_clean(raw: str) -> str | None:
    """The rule spelled out with pathlib, to check the string fast path against."""
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or (name[1:2] == ":" and name[:1].isalpha()):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    return None if ".." in parts or not parts else "/".join(parts)


@given(
    st.lists(
        st.sampled_from(["a", "b.png", ".", "..", "", "\\", "/", ":", "C:", "\x00", "x y"]),
        max_size=8,
    ).map("".join)
    | st.text(max_size=12)
)
def test_clean_name_fast_path_matches_the_pathlib_rule(raw: str) -> None:
    try:
        got: str | None = clean_name(raw, Path("x.zip"))
    except UnsafeArchiveError:
        got = None
    assert got == _reference_clean(raw)
