"""Write files under a temporary name and rename them into place, so nothing is half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """Return the process umask without changing it for other threads.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting and restoring
    it under a lock.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def publish_mode(path: Path) -> None:
    """Give ``path`` the mode a plain ``open()`` would have: ``0o666 & ~umask``.

    ``mkstemp`` creates files 0600 whatever the umask; a file renamed into place from it must
    not stay private when the user's umask says otherwise.
    """
    Path(path).chmod(0o666 & ~current_umask())


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    On an exception the temporary file is removed and ``final`` is left untouched. The file
    renamed into place gets the mode the umask gives new files (not ``mkstemp``'s 0600).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            publish_mode(tmp)
        tmp.replace(final)
    finally:
        if tmp.exists():
            tmp.unlink()
