"""Archive faults (issue 14): link chains, protected siblings, zip and tar bombs, full disks."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from cytoimagenet.download import archive as archive_mod
from cytoimagenet.download.archive import UnsafeArchiveError, extract_archive, marker_path
from cytoimagenet.download.http import DownloadError

BIG = 300 * 1024**2  # past the ratio floor; compresses about 1000:1


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.name.startswith(".")}


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in kw.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def test_symlink_chain_out_of_the_target_is_refused_before_writing(tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    bad = box / "chain.tar"
    with tarfile.open(bad, "w") as tar:
        add(tar, "t/ok.txt", b"fine")
        add(tar, "t/d/a", type=tarfile.SYMTYPE, linkname="..")  # t/d/a is t: inside
        add(tar, "t/x", type=tarfile.SYMTYPE, linkname="d/a/..")  # t/.. : the box, outside t?
        add(tar, "t/y", type=tarfile.SYMTYPE, linkname="x/..")  # box/.. : outside the target
        add(tar, "t/y/evil.txt", b"escaped")
    with pytest.raises(UnsafeArchiveError, match="resolves outside"):
        extract_archive(bad)
    assert files_under(tmp_path) == {"box", "box/chain.tar"}  # not even ok.txt
    assert not marker_path(bad).exists()


def test_hard_link_to_a_link_or_nothing_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "hard.tar"
    with tarfile.open(bad, "w") as tar:
        add(tar, "h/ok.txt", b"fine")
        add(tar, "h/dir", type=tarfile.DIRTYPE)
        add(tar, "h/copy", type=tarfile.LNKTYPE, linkname="h/dir")
    with pytest.raises(UnsafeArchiveError, match="not a file of the archive"):
        extract_archive(bad)
    assert not (tmp_path / "h").exists()


def test_archive_never_overwrites_a_protected_sibling(tmp_path: Path) -> None:
    csv = tmp_path / "BBBC021_v1_image.csv"
    csv.write_bytes(b"verified table")
    bad = tmp_path / "week1.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("BBBC021_v1_image.csv", b"stale copy")
        zf.writestr("Week1/a.tif", b"img")
        zf.writestr("week1.zip", b"not me either")
    done = extract_archive(bad, tmp_path, protect=[csv])
    assert csv.read_bytes() == b"verified table"
    assert done.kept == ("BBBC021_v1_image.csv", "week1.zip")
    assert (tmp_path / "Week1" / "a.tif").read_bytes() == b"img"
    assert zipfile.is_zipfile(bad)


def test_zip_link_onto_a_protected_file_cannot_write_through_it(tmp_path: Path) -> None:
    csv = tmp_path / "moa.csv"
    csv.write_bytes(b"verified")
    bad = tmp_path / "b.tar"
    with tarfile.open(bad, "w") as tar:
        add(tar, "alias", type=tarfile.SYMTYPE, linkname="moa.csv")
    with tarfile.open(tmp_path / "c.tar", "w") as tar:
        add(tar, "alias", b"overwritten")
    extract_archive(bad, tmp_path, protect=[csv])
    extract_archive(tmp_path / "c.tar", tmp_path, protect=[csv])
    assert csv.read_bytes() == b"verified"


def _zip_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as out:
        block = bytes(1024**2)
        for _ in range(BIG // len(block)):
            out.write(block)
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def test_zip_bomb_is_refused_and_the_cap_can_be_raised(tmp_path: Path) -> None:
    bomb = _zip_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < BIG / 500
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        extract_archive(bomb)
    assert files_under(tmp_path) == {"bomb.zip"}
    with pytest.raises(UnsafeArchiveError, match="over the cap"):
        extract_archive(bomb, max_ratio=None, max_bytes=BIG - 1)


def test_tar_gz_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = BIG
        tar.addfile(info, io.BufferedReader(_Zeros(BIG)))
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        extract_archive(bomb)
    assert files_under(tmp_path) == {"bomb.tar.gz"}


def test_archive_that_cannot_fit_on_the_disk_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = tmp_path / "s.zip"
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("s/a.bin", bytes(5000))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(archive_mod.shutil, "disk_usage", lambda p: usage(10**6, 10**6, 100))
    with pytest.raises(DownloadError, match="GB free"):
        extract_archive(small)
    assert not (tmp_path / "s").exists()
