"""Reading zip and tar archives behind one interface, each entry's name checked on the way.

:mod:`cytoimagenet.download.archive` plans and writes; this module only lists entries
(refusing absolute names, ``..``, absolute or escaping links, device and special files)
and opens their content.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from cytoimagenet.download.http import DownloadError

Kind = Literal["file", "dir", "symlink", "hardlink"]
AGAIN = "delete it and download it again"
_MAX_LINK = 4096  # a zip stores a link's target as its content: never read a large one


class UnsafeArchiveError(DownloadError):
    """An archive entry would land outside the target, is special, or the archive is a bomb."""


class CorruptArchiveError(DownloadError):
    """The file is not a readable zip or tar archive (damaged or cut short)."""


@dataclass(frozen=True)
class Entry:
    """One checked archive entry: ``name`` is a clean relative POSIX path."""

    name: str
    kind: Kind
    size: int = 0
    link: str = ""


def corrupt(archive: Path, exc: BaseException) -> CorruptArchiveError:
    """Return the error for an archive that cannot be read."""
    return CorruptArchiveError(f"{archive}: unreadable or corrupt archive ({exc!r}); {AGAIN}")


def clean_name(raw: str, archive: Path) -> str:
    """Return ``raw`` as a relative POSIX path, or raise if it could escape the target."""
    # Almost every real name is already clean, and saying so with substring tests keeps a
    # directory of ~10^6 entries (RxRx1) from spending seconds in pathlib: an empty, "." or
    # ".." part can only start the name, follow a "/" or end it.
    if (
        raw[:1] not in ("", "/", ".")
        and raw[1:2] != ":"
        and not raw.endswith("/")
        and "//" not in raw
        and "/." not in raw
        and "\\" not in raw
        and "\x00" not in raw
    ):
        return raw
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or (name[1:2] == ":" and name[:1].isalpha()):
        raise UnsafeArchiveError(f"{archive}: refused entry {raw!r} (absolute path)")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: refused entry {raw!r} ('..' leaves the target)")
    if not parts:
        raise UnsafeArchiveError(f"{archive}: refused entry {raw!r} (empty name)")
    return "/".join(parts)


def check_link(entry_name: str, link: str, archive: Path) -> None:
    """Refuse a symlink that by itself points outside the target (chains: see ``archive``)."""
    if link.startswith("/") or "\x00" in link or not link:
        raise UnsafeArchiveError(f"{archive}: refused link {entry_name!r} -> {link!r}")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(entry_name), link))
    if joined == ".." or joined.startswith("../"):
        raise UnsafeArchiveError(
            f"{archive}: refused link {entry_name!r} -> {link!r} (points outside the target)"
        )


class Reader:
    """The two archive formats behind one small interface."""

    def __init__(self, archive: Path, handle: zipfile.ZipFile | tarfile.TarFile) -> None:
        self.archive = archive
        self.handle = handle

    @classmethod
    def open(cls, archive: Path) -> Reader:
        """Open ``archive``, recognised by content."""
        try:
            if zipfile.is_zipfile(archive):
                return cls(archive, zipfile.ZipFile(archive))
            if tarfile.is_tarfile(archive):
                return cls(archive, tarfile.open(archive))
        except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise corrupt(archive, exc) from None
        raise CorruptArchiveError(f"{archive}: neither a zip nor a tar archive; {AGAIN}")

    def __enter__(self) -> Reader:
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
                    if info.file_size > _MAX_LINK:
                        raise UnsafeArchiveError(f"{self.archive}: refused link {name!r} (huge)")
                    link = self.handle.read(info).decode("utf-8", "replace")
                    check_link(name, link, self.archive)
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
                check_link(name, member.linkname, self.archive)
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
