"""Files on disk during a download: checksums, locks, validity, room."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from cytoimagenet.errors import DownloadError

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.lock`` beside ``target`` (blocks until free).

    ``flock`` locks belong to the open file, so two threads of one process exclude each
    other as two processes do. The lock file is left in place: removing it would let a
    waiter lock a file that no longer has a name.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def is_valid(path: Path, *, size: int | None, sha256: str | None) -> tuple[bool, str | None]:
    """Check a file present on disk against what is known of it.

    Returns
    -------
    (bool, str or None)
        Whether it passes, and its SHA-256 when that had to be computed.
    """
    if not path.is_file():
        return False, None
    if size is not None and path.stat().st_size != size:
        return False, None
    if sha256 is None:
        return True, None
    digest = sha256_of(path)
    return digest == sha256, digest


def room(part: Path, needed: int, url: str) -> None:
    """Refuse to start a body that cannot fit on the disk."""
    free = shutil.disk_usage(part.parent).free
    if needed > free:
        raise DownloadError(
            f"{url}: needs {needed / 1e9:,.2f} GB but {part.parent} has {free / 1e9:,.2f} GB "
            "free; free some space or choose another --to."
        )
