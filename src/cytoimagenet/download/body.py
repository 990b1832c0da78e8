"""One response body into its ``.part`` file, within the limits of one fetch.

The limits: a deadline for the whole file (every retry included), a stall window in which a
minimum of bytes must arrive, and a cap on a body whose length nobody states. A breach that
a retry may cure raises :class:`TransientError`; one that it cannot raises ``DownloadError``.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cytoimagenet.download import resume
from cytoimagenet.download.files import CHUNK
from cytoimagenet.errors import DownloadError

Progress = Callable[[int, int | None], None]
"""Called with (bytes on disk so far, total bytes or None) as the download advances."""


#: Default seconds one file may take, every retry included.
DEADLINE = 24 * 3600.0
#: Default seconds within which at least :data:`STALL_BYTES` must arrive (a slow drip).
STALL = 300.0
STALL_BYTES = 64 * 1024
#: Default cap on the bytes taken from a body of unknown length.
MAX_UNKNOWN = 64 * 1024**3


class TransientError(Exception):
    """An error after which a retry (resuming the ``.part`` file) may succeed."""


class RestartError(TransientError):
    """The ``.part`` file was discarded (another version upstream): start over at once."""


@dataclass(frozen=True)
class Budget:
    """The limits of one fetch: an absolute deadline, the stall window, the unknown-size cap."""

    until: float | None
    deadline: float | None
    stall: float | None
    max_unknown: int | None
    checked: bool  # an expected SHA-256 will catch a spliced resume

    def left(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.until is None else self.until - time.monotonic()


def check_deadline(url: str, part: Path, budget: Budget) -> None:
    """Raise ``DownloadError`` once the deadline has passed, saying whether ``part`` is kept."""
    left = budget.left()
    if left is not None and left <= 0:
        kept = part.exists() and part.stat().st_size > 0
        hint = f"{part.name} is kept, so a new run resumes; " if kept else ""
        raise DownloadError(
            f"{url}: not finished within the per-file deadline of {budget.deadline:g} s; "
            f"{hint}raise it with --deadline (or CYTOIMAGENET_DOWNLOAD_DEADLINE)."
        )


def stream_body(
    response: http.client.HTTPResponse,
    part: Path,
    append: bool,
    have: int,
    expected: int | None,
    progress: Progress | None,
    budget: Budget,
    url: str,
) -> int:
    """Append (or, without ``append``, write) the body to ``part``; return the bytes on disk.

    Raises :class:`TransientError` for a lost connection or a stall, and ``DownloadError``
    (after discarding ``part``) past the unknown-size cap or the deadline.
    """
    done = have
    mark, mark_at = done, time.monotonic()  # bytes seen at the start of the stall window
    with part.open("ab" if append else "wb") as out:
        if progress:
            progress(done, expected)
        while True:
            try:
                chunk = response.read1(CHUNK)  # returns as data arrives: checks stay timely
            except (OSError, http.client.HTTPException) as exc:  # not disk errors: those stop
                raise TransientError(f"connection lost after {done} bytes: {exc!r}") from None
            if not chunk:
                return done
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, expected)
            now = time.monotonic()
            if expected is None and budget.max_unknown is not None and done > budget.max_unknown:
                out.close()
                resume.discard(part)
                raise DownloadError(
                    f"{url}: more than {budget.max_unknown:,} bytes of unknown length; nothing "
                    "was kept. Raise the cap with --max-unknown-size (or "
                    "CYTOIMAGENET_DOWNLOAD_MAX_UNKNOWN) if the file really is this large."
                )
            if done - mark >= STALL_BYTES:
                mark, mark_at = done, now
            elif budget.stall is not None and now - mark_at > budget.stall:
                raise TransientError(
                    f"stalled: under {STALL_BYTES // 1024} KiB in {budget.stall:g} s"
                )
            if budget.until is not None and now > budget.until:
                out.flush()
                check_deadline(url, part, budget)
