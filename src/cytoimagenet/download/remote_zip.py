"""Members of a remote zip archive, fetched by HTTP ``Range`` without the rest of it.

The standard library's :mod:`zipfile` does all the zip work (the end records, ZIP64, the
central directory, local headers, inflating, the CRC-32 check); this module only gives it a
file object whose bytes come from the right place:

- the archive's *tail* (from the central directory to the end), fetched once and kept in a
  local index (``<source>/.fetch/<archive>.tail`` + ``.json``) so a rerun reads nothing
  remote to know the members;
- each needed member's *span* (its local header, data and descriptor: from its offset to the
  next member's), fetched by one ``Range`` request per run of adjacent members.

Why not fsspec or remotezip: fsspec's HTTP file system needs aiohttp and its own TLS and
redirect handling; remotezip needs requests and fetches member by member. Both would bypass
the downloader's redirect rules, mirrors, retries and counters.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import stat
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cytoimagenet.download.archive_read import clean_name
from cytoimagenet.download.ranges import RangeClient, Version
from cytoimagenet.errors import DownloadError
from cytoimagenet.io.atomic import atomic_path

#: Bytes asked for at the end of the archive first: the end records and, for archives of a
#: few hundred members, the whole directory (a larger one is read by one more request).
TAIL = 64 << 10
#: Adjacent members are fetched together up to this many bytes.
CHUNK_MAX = 8 << 20
_INDEX_FORMAT = 1
#: What a damaged deflate or lzma stream raises while a member is read.
_DECODE_ERRORS = (zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class Member:
    """One archive member and the span of the archive that holds it."""

    info: zipfile.ZipInfo
    start: int  # its local header
    end: int  # the next member's local header, or the central directory
    clean: str = ""  # the name as a whole download unpacks it (``clean_name``)

    @property
    def name(self) -> str:
        """The member's name as it unpacks (slashes, no ``./``)."""
        return self.clean or self.info.filename


@dataclass(frozen=True)
class Chunk:
    """Adjacent members fetched by one ``Range`` request."""

    start: int
    end: int
    members: tuple[Member, ...]


class _Routed(io.RawIOBase):
    """The remote archive as a seekable file: the index's tail, else this thread's chunk.

    ``zipfile`` serialises its reads on one lock and seeks before each, so a shared position
    and a per-thread chunk are enough for concurrent members.
    """

    def __init__(self, size: int, tail_start: int, tail: bytes, client: RangeClient | None):
        super().__init__()
        self.size, self.tail_start, self.tail = size, tail_start, tail
        self._client = client  # set while the directory is read; None afterwards
        self._pos = 0
        self._local = threading.local()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def use(self, chunk: Chunk | None, data: IO[bytes] | None) -> None:
        """Serve ``chunk``'s bytes from ``data`` to the calling thread."""
        self._local.chunk, self._local.data = chunk, data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        pos = self._pos
        end = self.size if n is None or n < 0 else min(self.size, pos + n)
        if end <= pos:
            return b""
        chunk: Chunk | None = getattr(self._local, "chunk", None)
        if pos >= self.tail_start:
            data = self.tail[pos - self.tail_start : end - self.tail_start]
        elif chunk is not None and chunk.start <= pos and end <= chunk.end:
            fh = self._local.data
            fh.seek(pos - chunk.start)
            data = fh.read(end - pos)
        elif self._client is not None:  # the directory starts before the tail fetched so far
            buf = io.BytesIO()
            self._client.fetch(pos, self.tail_start, buf)
            self.tail = buf.getvalue() + self.tail
            self.tail_start = pos
            data = self.tail[: end - pos]
        else:
            raise OSError(f"read of bytes {pos}-{end - 1} outside the fetched spans")
        self._pos = pos + len(data)
        return data


class RemoteZip:
    """A remote zip archive, its directory read once (or from the local index).

    Parameters
    ----------
    client : RangeClient
        Fetches ranges of the archive's URL.
    index : Path
        Where the index lives: ``<index>.tail`` and ``<index>.json``.
    """

    def __init__(self, client: RangeClient, index: Path) -> None:
        self.client = client
        self.index = index
        self.from_index = False
        self._file = self._load(index) or self._read_remote()
        try:
            self.zip = zipfile.ZipFile(self._file)  # reads the directory (remote on first use)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{client.url}: not a readable zip archive ({exc})") from None
        if not self.from_index:
            self._save()
        self._file._client = None  # from now on, only tail and chunk reads
        self.members, self.names = zip_entries(self.zip, self._file.tail_start, client.url)

    @property
    def size(self) -> int:
        """The archive's size in bytes."""
        return self._file.size

    def holds(self, chunk: Chunk) -> bool:
        """Whether the index already holds ``chunk`` (a small archive's tail is all of it)."""
        return chunk.start >= self._file.tail_start

    @property
    def index_bytes(self) -> int:
        """Bytes of the archive kept in the local index (the tail)."""
        return len(self._file.tail)

    def _read_remote(self) -> _Routed:
        start, data = self.client.tail(TAIL)
        return _Routed(start + len(data), start, data, self.client)

    def _load(self, index: Path) -> _Routed | None:
        meta_path, tail_path = _index_paths(index)
        try:
            meta = json.loads(meta_path.read_text())
            tail = tail_path.read_bytes()
        except (OSError, ValueError):
            return None
        ok = (
            isinstance(meta, dict)
            and meta.get("format") == _INDEX_FORMAT
            and meta.get("url") == self.client.url
            and meta.get("sha256") == hashlib.sha256(tail).hexdigest()
            and isinstance(meta.get("size"), int)
            and meta.get("tail_start") == meta["size"] - len(tail)
        )
        if not ok:
            return None
        version = Version(meta["size"], meta.get("etag", ""), meta.get("last_modified", ""))
        self.client.version = version
        self.from_index = True
        return _Routed(version.size, meta["tail_start"], tail, None)

    def _save(self) -> None:
        version = self.client.version or Version(self._file.size)
        meta_path, tail_path = _index_paths(self.index)
        with atomic_path(tail_path) as tmp:
            tmp.write_bytes(self._file.tail)
        meta = {
            "format": _INDEX_FORMAT,
            "url": self.client.url,
            "size": version.size,
            "etag": version.etag,
            "last_modified": version.last_modified,
            "tail_start": self._file.tail_start,
            "sha256": hashlib.sha256(self._file.tail).hexdigest(),
            "members": len(self.zip.infolist()),
        }
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))

    def forget(self) -> None:
        """Delete the local index (the archive changed upstream)."""
        for path in _index_paths(self.index):
            path.unlink(missing_ok=True)

    def extract(self, chunk: Chunk, data: IO[bytes], member: Member, target: Path) -> str:
        """Write ``member`` from the fetched ``chunk`` to ``target``; return its SHA-256.

        Raises
        ------
        DownloadError
            If its CRC-32 or size does not match the directory (nothing is written then).
        """
        self._file.use(chunk, data)
        digest = hashlib.sha256()
        written = 0
        try:
            with atomic_path(target) as tmp, tmp.open("wb") as out:
                with self.zip.open(member.info) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                if written != member.info.file_size:
                    raise zipfile.BadZipFile(
                        f"{written} bytes, the directory says {member.info.file_size}"
                    )
        except (
            zipfile.BadZipFile,
            EOFError,
            NotImplementedError,
            zlib.error,
            lzma.LZMAError,
        ) as exc:
            raise DownloadError(
                f"{self.client.url}: member {member.name} refused ({exc}); nothing was written"
            ) from None
        finally:
            self._file.use(None, None)
        return digest.hexdigest()


def _index_paths(index: Path) -> tuple[Path, Path]:
    return index.with_name(index.name + ".json"), index.with_name(index.name + ".tail")


def zip_entries(
    zf: zipfile.ZipFile, directory: int, url: str
) -> tuple[dict[str, Member], list[str]]:
    """Each regular file member with its span, by its unpacked name; and every entry's name.

    A span runs from the member's header to the next one (or the directory). Names are
    cleaned as a whole download cleans them; entries a whole download would refuse
    (absolute, ``..``) and links or special files are never fetched, but every safe entry
    (folders as ``name/``) counts for where the archive unpacks.
    """
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    ends = [i.header_offset for i in infos[1:]] + [_directory_start(zf, directory)]
    members: dict[str, Member] = {}
    names: list[str] = []
    where = Path(url)
    for info, end in zip(infos, ends, strict=True):
        try:
            name = clean_name(info.filename, where)
        except DownloadError:
            continue
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            names.append(name + "/")
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            names.append(name)  # a link or special file: unpacks, but is not fetched
        else:
            names.append(name)
            members.setdefault(name, Member(info, info.header_offset, end, name))
    return members, names


def _directory_start(zf: zipfile.ZipFile, fallback: int) -> int:
    start = getattr(zf, "start_dir", None)  # set by zipfile while reading the end records
    return int(start) if isinstance(start, int) else fallback


def plan_chunks(members: list[Member], max_bytes: int = CHUNK_MAX) -> list[Chunk]:
    """Group members whose spans touch into chunks of at most ``max_bytes`` (one may exceed it).

    Examples
    --------
    >>> import zipfile
    >>> m = [Member(zipfile.ZipInfo(n), s, e) for n, s, e in [("a", 0, 10), ("b", 10, 20),
    ...      ("c", 30, 40)]]
    >>> [(c.start, c.end, len(c.members)) for c in plan_chunks(m)]
    [(0, 20, 2), (30, 40, 1)]
    """
    chunks: list[Chunk] = []
    run: list[Member] = []
    for member in sorted(members, key=lambda m: m.start):
        if run and (member.start != run[-1].end or member.end - run[0].start > max_bytes):
            chunks.append(Chunk(run[0].start, run[-1].end, tuple(run)))
            run = []
        run.append(member)
    if run:
        chunks.append(Chunk(run[0].start, run[-1].end, tuple(run)))
    return chunks


def crc_matches(path: Path, member: Member) -> bool:
    """Whether ``path`` already holds ``member`` (size, then CRC-32)."""
    try:
        if path.stat().st_size != member.info.file_size:
            return False
        crc = 0
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                crc = zlib.crc32(block, crc)
    except OSError:
        return False
    return crc == member.info.CRC
