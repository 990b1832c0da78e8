"""Safe, resumable unpacking of zip and tar archives.

Every entry is checked before anything is written: absolute paths, ``..`` components,
links that point outside the target and device or special files refuse the whole archive.
Files are written under a temporary name and renamed, so a killed extraction leaves no
partial file; running it again skips the entries already there (same size) and a marker
beside the archive skips a finished archive outright.

Layout: an archive whose entries share one top-level name is unpacked beside itself;
otherwise into a folder named after it (``stage1_train.zip`` → ``stage1_train/``), as most
unarchivers do, so archives of loose files do not mix.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from cytoimagenet.download.http import CHUNK, DownloadError, file_lock

Kind = Literal["file", "dir", "symlink", "hardlink"]
_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")


class UnsafeArchiveError(DownloadError):
    """An archive entry would land outside the target, or is a device or special file."""


@dataclass(frozen=True)
class Entry:
    """One checked archive entry: ``name`` is a clean relative POSIX path."""

    name: str
    kind: Kind
    size: int = 0
    link: str = ""


@dataclass(frozen=True)
class Extracted:
    """Outcome of :func:`extract_archive`: where it went and how many files were written."""

    archive: Path
    dest: Path
    status: Literal["extracted", "skipped"]
    written: int = 0
    skipped: int = 0


def marker_path(archive: Path) -> Path:
    """Return the completion marker of ``archive`` (hidden, beside it)."""
    return archive.parent / f".{archive.name}.extracted"


def extract_archive(archive: Path, dest: Path | None = None) -> Extracted:
    """Unpack ``archive`` safely; skip it when its completion marker matches.

    Parameters
    ----------
    archive : Path
        A zip or tar file (gzip, bzip2 and xz compressed tars too), recognised by content.
    dest : Path, optional
        Target folder; by default chosen as the module docstring describes.

    Raises
    ------
    UnsafeArchiveError
        If any entry is unsafe; nothing is written then.
    DownloadError
        If the file is neither a zip nor a tar archive, or is corrupt.
    """
    archive = Path(archive)
    marker = marker_path(archive)
    with file_lock(marker):
        stamp = {"size": archive.stat().st_size, "mtime_ns": archive.stat().st_mtime_ns}
        done = _read_marker(marker)
        if done and all(done.get(k) == v for k, v in stamp.items()):
            return Extracted(archive, archive.parent / done.get("dest", "."), "skipped")
        with _Reader.open(archive) as reader:
            try:
                entries = list(reader.entries())
                if dest is None:
                    dest = _default_dest(archive, entries)
                written, skipped = _write_all(reader, entries, dest)
            except (EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
                raise _corrupt(archive, exc) from None
        rel = os.path.relpath(dest, archive.parent)
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps({**stamp, "dest": rel, "files": written + skipped}))
        tmp.replace(marker)
        return Extracted(archive, dest, "extracted", written, skipped)


def _read_marker(marker: Path) -> dict[str, object] | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _default_dest(archive: Path, entries: list[Entry]) -> Path:
    tops = {e.name.split("/", 1)[0] for e in entries}
    if len(tops) <= 1:
        return archive.parent
    name = archive.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return archive.parent / name


def clean_name(raw: str, archive: Path) -> str:
    """Return ``raw`` as a relative POSIX path, or raise if it could escape the target."""
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or (name[1:2] == ":" and name[:1].isalpha()):
        raise UnsafeArchiveError(f"{archive}: refused entry {raw!r} (absolute path)")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: refused entry {raw!r} ('..' leaves the target)")
    if not parts:
        raise UnsafeArchiveError(f"{archive}: refused entry {raw!r} (empty name)")
    return "/".join(parts)


def _check_link(entry_name: str, link: str, archive: Path) -> None:
    """Refuse a symlink that points outside the target (anywhere inside is fine)."""
    if link.startswith("/") or "\x00" in link:
        raise UnsafeArchiveError(f"{archive}: refused link {entry_name!r} -> {link!r}")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(entry_name), link))
    if joined == ".." or joined.startswith("../"):
        raise UnsafeArchiveError(
            f"{archive}: refused link {entry_name!r} -> {link!r} (points outside the target)"
        )


class _Reader:
    """The two archive formats behind one small interface."""

    def __init__(self, archive: Path, handle: zipfile.ZipFile | tarfile.TarFile) -> None:
        self.archive = archive
        self.handle = handle

    @classmethod
    def open(cls, archive: Path) -> _Reader:
        try:
            if zipfile.is_zipfile(archive):
                return cls(archive, zipfile.ZipFile(archive))
            if tarfile.is_tarfile(archive):
                return cls(archive, tarfile.open(archive))
        except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise _corrupt(archive, exc) from None
        raise DownloadError(f"{archive}: neither a zip nor a tar archive; {_AGAIN}")

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def entries(self) -> Iterator[Entry]:
        """Yield every entry, checked; raise on the first unsafe one."""
        if isinstance(self.handle, zipfile.ZipFile):
            for info in self.handle.infolist():
                name = clean_name(info.filename, self.archive)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    link = self.handle.read(info).decode("utf-8", "replace")
                    _check_link(name, link, self.archive)
                    yield Entry(name, "symlink", link=link)
                elif mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(f"{self.archive}: refused special file {name!r}")
                else:
                    yield Entry(name, "dir" if info.is_dir() else "file", info.file_size)
            return
        for member in self.handle.getmembers():
            name = clean_name(member.name, self.archive)
            if member.isreg():
                yield Entry(name, "file", member.size)
            elif member.isdir():
                yield Entry(name, "dir")
            elif member.issym():
                _check_link(name, member.linkname, self.archive)
                yield Entry(name, "symlink", link=member.linkname)
            elif member.islnk():
                yield Entry(name, "hardlink", link=clean_name(member.linkname, self.archive))
            else:
                raise UnsafeArchiveError(
                    f"{self.archive}: refused {name!r} (device, fifo or other special file)"
                )

    def open_file(self, name: str, index: int) -> IO[bytes]:
        """Return a reader of the ``index``-th entry's content."""
        if isinstance(self.handle, zipfile.ZipFile):
            return self.handle.open(self.handle.infolist()[index])
        fh = self.handle.extractfile(self.handle.getmembers()[index])
        if fh is None:  # pragma: no cover - only regular files are asked for
            raise DownloadError(f"{self.archive}: cannot read {name!r}")
        return fh


_AGAIN = "delete it and download it again"


def _corrupt(archive: Path, exc: BaseException) -> DownloadError:
    return DownloadError(f"{archive}: unreadable or corrupt archive ({exc!r}); {_AGAIN}")


def _inside(dest_real: str, path: Path) -> Path:
    """Resolve ``path`` (following links already on disk) and require it inside the target."""
    real = os.path.realpath(path)
    if real != dest_real and not real.startswith(dest_real + os.sep):
        raise UnsafeArchiveError(f"{path}: resolves outside {dest_real}; refused")
    return Path(real)


def _write_all(reader: _Reader, entries: list[Entry], dest: Path) -> tuple[int, int]:
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest)
    written = skipped = 0
    for index, entry in enumerate(entries):
        path = dest / entry.name
        if entry.kind == "dir":
            _inside(dest_real, path).mkdir(parents=True, exist_ok=True)
            continue
        real = _inside(dest_real, path)
        real.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "symlink":
            if not path.is_symlink():
                path.symlink_to(entry.link)
            continue
        if real.is_file() and real.stat().st_size == entry.size and entry.kind == "file":
            skipped += 1
            continue
        tmp = real.with_name(f".{real.name}.extracting")
        if entry.kind == "hardlink":  # a copy: a link would share later writes
            shutil.copyfile(_inside(dest_real, dest / entry.link), tmp)
        else:
            with reader.open_file(entry.name, index) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
        tmp.replace(real)
        written += 1
    return written, skipped
