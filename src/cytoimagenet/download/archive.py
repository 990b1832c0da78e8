"""Safe, resumable unpacking of zip and tar archives.

Every entry is checked before anything is written: absolute paths, ``..`` components, links
that resolve outside the target (through other links of the archive, or links already on
disk, too), hard links to anything but a regular file inside, device or special files, and
sizes past the caps (total bytes, compression ratio, free disk space) refuse the whole
archive. Entries whose path is a protected file — one the downloader fetches and verifies
itself, such as a catalog metadata table — are skipped, never overwritten. Files are written
under a temporary name and renamed, so a killed extraction leaves no partial file; running it
again skips the entries already there (same size) and a marker beside the archive skips a
finished archive outright.

Layout: an archive whose entries share one top-level name is unpacked beside itself;
otherwise into a folder named after it (``stage1_train.zip`` → ``stage1_train/``), as most
unarchivers do, so archives of loose files do not mix.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cytoimagenet.download.archive_read import (
    AGAIN,
    CorruptArchiveError,
    Entry,
    Reader,
    UnsafeArchiveError,
    clean_name,
    corrupt,
)
from cytoimagenet.download.http import CHUNK, DownloadError, file_lock

__all__ = [
    "MAX_EXTRACT",
    "MAX_RATIO",
    "CorruptArchiveError",
    "Entry",
    "Extracted",
    "UnsafeArchiveError",
    "archive_stem",
    "clean_name",
    "extract_archive",
    "marker_path",
]

log = logging.getLogger(__name__)

_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")
#: Default cap on the bytes one archive may unpack to.
MAX_EXTRACT = 2 * 1024**4
#: Default cap on unpacked size / archive size, checked once the archive unpacks to more
#: than :data:`RATIO_FLOOR` (small, very compressible files are harmless).
MAX_RATIO = 200.0
RATIO_FLOOR = 256 * 1024**2
_MAX_HOPS = 40  # links followed while resolving one path, as the kernel's limit


@dataclass(frozen=True)
class Extracted:
    """Outcome of :func:`extract_archive`: where it went and how many files were written.

    ``kept`` lists entries not written because their path is a protected file.
    """

    archive: Path
    dest: Path
    status: Literal["extracted", "skipped"]
    written: int = 0
    skipped: int = 0
    kept: tuple[str, ...] = field(default=())


def marker_path(archive: Path) -> Path:
    """Return the completion marker of ``archive`` (hidden, beside it)."""
    return archive.parent / f".{archive.name}.extracted"


def extract_archive(
    archive: Path,
    dest: Path | None = None,
    *,
    protect: Collection[Path] = (),
    max_bytes: int | None = MAX_EXTRACT,
    max_ratio: float | None = MAX_RATIO,
) -> Extracted:
    """Unpack ``archive`` safely; skip it when its completion marker matches.

    Parameters
    ----------
    archive : Path
        A zip or tar file (gzip, bzip2 and xz compressed tars too), recognised by content.
    dest : Path, optional
        Target folder; by default chosen as the module docstring describes.
    protect : collection of Path
        Files never overwritten: an entry landing on one is skipped with a warning (and
        listed in ``Extracted.kept``). The archive itself is always protected.
    max_bytes : int or None
        Most bytes the entries may unpack to (None: no cap).
    max_ratio : float or None
        Most unpacked size / archive size, above :data:`RATIO_FLOOR` (None: no cap).

    Raises
    ------
    UnsafeArchiveError
        If any entry is unsafe or the archive is past a cap; nothing is written then.
    CorruptArchiveError
        If the file is neither a zip nor a tar archive, or is corrupt.
    DownloadError
        If the unpacked files would not fit on the disk.
    """
    archive = Path(archive)
    marker = marker_path(archive)
    with file_lock(marker):
        stamp = {"size": archive.stat().st_size, "mtime_ns": archive.stat().st_mtime_ns}
        done = _read_marker(marker)
        if done and all(done.get(k) == v for k, v in stamp.items()):
            return Extracted(archive, archive.parent / str(done.get("dest", ".")), "skipped")
        with Reader.open(archive) as reader:
            try:
                entries = list(reader.entries())
                if dest is None:
                    dest = _default_dest(archive, entries)
                _check_size(archive, entries, max_bytes, max_ratio)
                plan = _plan(archive, entries, dest, [archive, *protect])
                _check_room(archive, plan, dest)
                written, skipped = _write_all(reader, plan, dest)
            except (EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
                raise corrupt(archive, exc) from None
        kept = tuple(p.entry.name for p in plan if p.kept)
        for name in kept:
            log.warning("%s: kept the downloaded %s, not the archive's copy", archive, name)
        rel = os.path.relpath(dest, archive.parent)
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps({**stamp, "dest": rel, "files": written + skipped}))
        tmp.replace(marker)
        return Extracted(archive, dest, "extracted", written, skipped, kept)


def _read_marker(marker: Path) -> dict[str, object] | None:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _default_dest(archive: Path, entries: list[Entry]) -> Path:
    tops = {e.name.split("/", 1)[0] for e in entries}
    if len(tops) <= 1:
        return archive.parent
    return archive.parent / archive_stem(archive.name)


def archive_stem(name: str) -> str:
    """Return the folder an archive of loose files unpacks into: its name less the suffix.

    Examples
    --------
    >>> archive_stem("stage1_train.zip"), archive_stem("images.tar.gz")
    ('stage1_train', 'images')
    """
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_size(
    archive: Path, entries: list[Entry], max_bytes: int | None, max_ratio: float | None
) -> None:
    """Refuse an archive that unpacks past the caps (a zip or tar bomb)."""
    total = sum(e.size for e in entries if e.kind == "file")
    packed = max(archive.stat().st_size, 1)
    how = "raise --max-extract-size / --max-ratio (or their CYTOIMAGENET_EXTRACT_* variables)"
    if max_bytes is not None and total > max_bytes:
        raise UnsafeArchiveError(
            f"{archive}: would unpack to {total:,} bytes, over the cap of {max_bytes:,}; "
            f"nothing was written. If the archive is genuine, {how}."
        )
    if max_ratio is not None and total > RATIO_FLOOR and total / packed > max_ratio:
        raise UnsafeArchiveError(
            f"{archive}: would unpack to {total:,} bytes from {packed:,} (ratio "
            f"{total / packed:,.0f}, cap {max_ratio:g}), which looks like a zip bomb; nothing "
            f"was written. If the archive is genuine, {how}."
        )


@dataclass(frozen=True)
class _Step:
    """One entry to write: where it lands (resolved, relative to the target)."""

    index: int
    entry: Entry
    where: str
    source: str = ""  # a hard link's resolved target
    kept: bool = False


def _resolve(name: str, links: dict[str, str], root: Path, archive: Path) -> str:
    """Resolve ``name`` as ``realpath`` would once every link of the archive exists.

    Links of the archive and links already on disk are followed, through chains; the path
    must never rise above the target. Returns the resolved path relative to the target.
    """
    escape = f"{archive}: refused {name!r}: through links it resolves outside the target"
    todo = list(reversed(name.split("/")))
    stack: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise UnsafeArchiveError(escape)
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        link = links.get(here)
        if link is None and (root / here).is_symlink():
            link = str((root / here).readlink())
        if link is None:
            continue
        hops += 1
        if hops > _MAX_HOPS:
            raise UnsafeArchiveError(f"{archive}: refused {name!r} (a link loop)")
        if link.startswith("/"):  # only on disk: the archive's own links are relative
            link = os.path.relpath(link, root)
            if link == ".." or link.startswith("../"):
                raise UnsafeArchiveError(escape)
            stack.clear()
        else:
            stack.pop()
        todo.extend(reversed(link.split("/")))
    return "/".join(stack)


def _plan(archive: Path, entries: list[Entry], dest: Path, protect: list[Path]) -> list[_Step]:
    """Check every entry against the whole archive; return what to write, in order."""
    root = Path(os.path.realpath(dest))
    kinds: dict[str, str] = {}
    for e in entries:
        if kinds.setdefault(e.name, e.kind) != e.kind:
            raise UnsafeArchiveError(f"{archive}: refused {e.name!r} (listed twice, as two kinds)")
    links = {e.name: e.link for e in entries if e.kind == "symlink"}
    guarded = set()
    for p in protect:
        rel = os.path.relpath(os.path.realpath(p), root)
        if rel != ".." and not rel.startswith("../"):
            guarded.add(rel)
    files = set()
    plan: list[_Step] = []
    for index, e in enumerate(entries):
        parent, _, base = e.name.rpartition("/")
        where = _join(_resolve(parent, links, root, archive), base) if parent else base
        if e.kind == "symlink":
            _resolve(_join(where.rpartition("/")[0], e.link), links, root, archive)
        elif e.kind in ("file", "dir"):
            where = _resolve(e.name, links, root, archive)
        source = ""
        if e.kind == "hardlink":
            source = _resolve(e.link, links, root, archive)
            if source not in files and not (root / source).is_file():
                raise UnsafeArchiveError(
                    f"{archive}: refused hard link {e.name!r} -> {e.link!r} (not a file of "
                    "the archive)"
                )
        if e.kind == "file":
            files.add(where)
        plan.append(_Step(index, e, where, source, kept=e.kind != "dir" and where in guarded))
    return plan


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _check_room(archive: Path, plan: list[_Step], dest: Path) -> None:
    """Refuse to start when the files still to write cannot fit on the disk."""
    needed = 0
    for step in plan:
        if step.entry.kind == "file" and not step.kept:
            path = dest / step.where
            if not (path.is_file() and path.stat().st_size == step.entry.size):
                needed += step.entry.size
    probe = dest
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DownloadError(
            f"{archive}: unpacking needs {needed / 1e9:,.2f} GB but {probe} has "
            f"{free / 1e9:,.2f} GB free; free some space, or keep it packed with --no-extract."
        )


def _inside(dest_real: str, path: Path) -> Path:
    """Resolve ``path`` (following links already on disk) and require it inside the target."""
    real = os.path.realpath(path)
    if real != dest_real and not real.startswith(dest_real + os.sep):
        raise UnsafeArchiveError(f"{path}: resolves outside {dest_real}; refused")
    return Path(real)


def _write_all(reader: Reader, plan: list[_Step], dest: Path) -> tuple[int, int]:
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest)
    written = skipped = 0
    for step in plan:
        entry, path = step.entry, Path(dest_real) / step.where
        if step.kept:
            continue
        if entry.kind == "dir":
            _inside(dest_real, path).mkdir(parents=True, exist_ok=True)
            continue
        _inside(dest_real, path.parent).mkdir(parents=True, exist_ok=True)
        if entry.kind == "symlink":
            if not (path.is_symlink() and str(path.readlink()) == entry.link):
                tmp = path.with_name(f".{path.name}.extracting")
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(entry.link)
                tmp.replace(path)
            continue
        real = _inside(dest_real, path)
        if entry.kind == "file" and real.is_file() and real.stat().st_size == entry.size:
            skipped += 1
            continue
        tmp = real.with_name(f".{real.name}.extracting")
        if entry.kind == "hardlink":  # a copy: a link would share later writes
            shutil.copyfile(_inside(dest_real, Path(dest_real) / step.source), tmp)
        else:
            with reader.open_file(entry.name, step.index) as src, tmp.open("wb") as out:
                _copy(src, out, entry, reader.archive)
        tmp.replace(real)
        written += 1
    return written, skipped


def _copy(src: object, out: object, entry: Entry, archive: Path) -> None:
    """Copy one entry, refusing more bytes than its header declared."""
    left = entry.size
    while chunk := src.read(min(CHUNK, left + 1)):  # type: ignore[attr-defined]
        left -= len(chunk)
        if left < 0:
            raise UnsafeArchiveError(
                f"{archive}: {entry.name!r} holds more than its declared {entry.size:,} bytes; "
                f"refused. {AGAIN}"
            )
        out.write(chunk)  # type: ignore[attr-defined]
