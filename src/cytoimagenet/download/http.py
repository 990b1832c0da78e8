"""Fetch one file over HTTP(S): streamed to ``.part``, resumed, verified, renamed into place.

Only the standard library is used (``urllib.request``). TLS certificates and host names are
always verified (the default SSL context); an HTTPS URL is never redirected to plain HTTP,
nor any URL to a scheme other than http(s); a plain-HTTP URL (a mirror) is redirected only
within its own host. Concurrent fetches of the same target — threads or processes —
serialise on a lock file beside it, so the second one finds the finished file and skips it.

A body whose length nobody states (no ``Content-Length``, not chunked, no expected size) is
only kept once the server confirms where it ends (a ``Range`` request past the end answered
416 with the total): a connection closed early cannot otherwise be told from the end.
"""

from __future__ import annotations

import http.client
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cytoimagenet import __version__
from cytoimagenet.download import resume
from cytoimagenet.download.body import (
    DEADLINE,
    MAX_UNKNOWN,
    STALL,
    Budget,
    Progress,
    RestartError,
    TransientError,
    check_deadline,
    stream_body,
)
from cytoimagenet.download.files import CHUNK, file_lock, is_valid, room, sha256_of
from cytoimagenet.download.redirects import build_opener
from cytoimagenet.errors import ChecksumError, DownloadError

__all__ = [
    "CHUNK",
    "DEADLINE",
    "MAX_UNKNOWN",
    "STALL",
    "ChecksumError",
    "DownloadError",
    "Fetched",
    "Progress",
    "build_opener",
    "fetch",
    "file_lock",
    "is_valid",
    "sha256_of",
]

log = logging.getLogger(__name__)

USER_AGENT = f"cytoimagenet/{__version__} (+https://github.com/cytoimagenet/cytoimagenet)"
#: HTTP statuses worth another try: the server or a proxy is temporarily unable to answer.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Fetched:
    """Outcome of :func:`fetch`.

    Attributes
    ----------
    path : Path
        The verified file.
    status : {"downloaded", "skipped"}
        ``skipped`` when a valid file was already there.
    size : int
        Size in bytes.
    sha256 : str
        SHA-256 of the file as it is on disk.
    """

    path: Path
    status: Literal["downloaded", "skipped"]
    size: int
    sha256: str


def fetch(
    url: str,
    target: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: Progress | None = None,
    deadline: float | None = DEADLINE,
    stall: float | None = STALL,
    max_unknown: int | None = MAX_UNKNOWN,
    same_host: bool | None = None,
    force: bool = False,
) -> Fetched:
    """Download ``url`` to ``target`` unless a valid copy is already there.

    Parameters
    ----------
    url : str
        ``https://`` (or ``http://``, e.g. a local mirror) URL.
    target : Path
        Final path; the download runs in ``<target>.part`` and is renamed when verified.
    size, sha256 : optional
        Expected size and SHA-256; checked before the rename.
    retries : int
        Further attempts after a transient failure (dropped connection, timeout, stall,
        HTTP 5xx, 429); each resumes the ``.part`` file with a ``Range`` request when the
        server's ETag/Last-Modified shows the same version.
    backoff : float
        Seconds before the first retry, doubled each time (capped at 60 s).
    timeout : float
        Socket timeout in seconds (silence on the connection).
    progress : callable, optional
        See :data:`Progress`.
    deadline : float or None
        Seconds the whole file may take, retries included (None: no limit).
    stall : float or None
        Seconds within which at least ``body.STALL_BYTES`` must arrive (None: no check).
    max_unknown : int or None
        Most bytes taken from a body of unknown length (no size given, no Content-Length).
    same_host : bool, optional
        Follow redirects only within the URL's host; by default for ``http://`` URLs.
    force : bool
        Fetch again even if a file that passes the checks is there (``--refresh``).

    Raises
    ------
    DownloadError
        On an HTTP error, a refused redirect, a deadline or size cap passed, a body whose
        end cannot be confirmed, or after the last retry; the message names the URL.
    ChecksumError
        If the file differs from ``size``/``sha256``; the ``.part`` file is removed.
    """
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"{url}: only http(s) URLs can be fetched")
    target = Path(target)
    if same_host is None:
        same_host = url.startswith("http://")
    start = time.monotonic()
    budget = Budget(
        None if deadline is None else start + deadline,
        deadline,
        stall,
        max_unknown,
        sha256 is not None,
    )
    with file_lock(target):
        ok, digest = is_valid(target, size=size, sha256=sha256)
        if ok and not force:
            digest = digest or sha256_of(target)
            return Fetched(target, "skipped", target.stat().st_size, digest)
        part = target.with_name(target.name + ".part")
        opener = build_opener(same_host=same_host)
        for fresh in (False, True):
            if fresh:  # a resumed file may mix two versions of the upstream file
                resume.discard(part)
            resumed = _download(
                opener, url, part, size, retries, backoff, timeout, progress, budget
            )
            try:
                digest = _verify(part, target, size, sha256, url)
                break
            except ChecksumError:
                if fresh or not resumed:
                    resume.discard(part)
                    raise
                log.warning("%s: resumed file failed verification; downloading it again", url)
        with part.open("rb") as fh:
            os.fsync(fh.fileno())
        part.replace(target)
        resume.validator_file(part).unlink(missing_ok=True)
        return Fetched(target, "downloaded", target.stat().st_size, digest)


def _verify(part: Path, target: Path, size: int | None, sha256: str | None, url: str) -> str:
    got = part.stat().st_size
    if size is not None and got != size:
        raise ChecksumError(
            f"{target}: got {got} bytes from {url}, expected {size}. Nothing was kept; run "
            "the download again, and report the source if it persists."
        )
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256:
        raise ChecksumError(
            f"{target}: SHA-256 mismatch for {url} (expected {sha256}, got {digest}). "
            "Nothing was kept. Run the download again; if it persists, the upstream file is "
            "corrupt or has changed: check the source's page. Where the expected hash was "
            "recorded by an earlier download and the new file is right, remove its entry "
            "from downloads.json (or run again with --refresh)."
        )
    return digest


def _download(
    opener: urllib.request.OpenerDirector,
    url: str,
    part: Path,
    size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: Progress | None,
    budget: Budget,
) -> bool:
    """Fill ``part`` with the whole file; return whether any bytes were resumed."""
    resumed = probe = False
    attempt = 0
    while True:
        check_deadline(url, part, budget)
        try:
            appended, confirmed = _attempt(
                opener, url, part, size, timeout, progress, budget, probe=probe
            )
        except RestartError as exc:  # no retry used: a restart begins at byte 0, so it ends
            log.warning("%s: %s", url, exc)
            probe = False
            continue
        except TransientError as exc:
            if attempt == retries:
                kept = part.exists() and part.stat().st_size > 0
                hint = f"{part.name} is kept; run again to resume" if kept else "run again later"
                raise DownloadError(
                    f"{url}: {exc} (gave up after {retries + 1} attempt(s)); {hint}."
                ) from None
            wait = min(backoff * 2**attempt, 60.0)
            left = budget.left()
            wait = wait if left is None else max(0.0, min(wait, left))
            log.warning("%s: %s; retrying in %.1f s", url, exc, wait)
            time.sleep(wait)
            attempt += 1
            probe = False
            continue
        resumed |= appended
        if confirmed:
            return resumed
        probe = True  # ask past the end: only the server can say the body was whole


def _unconfirmed(url: str, part: Path, why: str) -> DownloadError:
    resume.discard(part)
    return DownloadError(
        f"{url}: the server sent no Content-Length and {why}, so a connection cut short "
        "cannot be told from a complete file; nothing was kept. Give the file's size in the "
        "catalog, or fetch it from a mirror that states lengths."
    )


def _attempt(
    opener: urllib.request.OpenerDirector,
    url: str,
    part: Path,
    size: int | None,
    timeout: float,
    progress: Progress | None,
    budget: Budget,
    *,
    probe: bool = False,
) -> tuple[bool, bool]:
    """One request; return (appended to ``part``, the file's end is confirmed)."""
    have = part.stat().st_size if part.exists() else 0
    saved = resume.saved_version(part) if have else {}
    if have and ((size is not None and have > size) or not (saved or budget.checked or probe)):
        # not a prefix of the right file, or nothing could show it is the same version
        resume.discard(part)
        have, saved = 0, {}
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
        if tag := resume.if_range(saved):  # the server sends the whole file if it changed since
            headers["If-Range"] = tag
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left after `have`, or the file shrank
            total = resume.range_total(exc.headers.get("Content-Range", ""))
            if have == (size if size is not None else total):
                return False, True  # the .part file already holds everything
            if probe and total is None:
                raise _unconfirmed(url, part, "its answer past the end gave no total") from None
            resume.discard(part)
            raise TransientError("the server refused to resume; starting over") from None
        if exc.code in TRANSIENT_STATUS:
            raise TransientError(f"HTTP {exc.code} {exc.reason}") from None
        if 300 <= exc.code < 400:
            raise DownloadError(
                f"{url}: refused a redirect to {exc.headers.get('Location')!r} (HTTP "
                f"{exc.code}); only http(s) redirects are followed"
            ) from None
        raise DownloadError(
            f"{url}: HTTP {exc.code} {exc.reason}. The file may have moved or need access "
            "rights; check the source's home page (`cytoimagenet sources show SOURCE`)."
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):
            raise DownloadError(
                f"{url}: TLS verification failed ({reason}). Verification is never turned "
                "off; behind an intercepting proxy, point SSL_CERT_FILE at its CA bundle."
            ) from None
        raise TransientError(f"connection failed: {reason}") from None
    with response:
        start, total = resume.content_range(response)
        if response.status == 206:
            problem = resume.splice_problem(
                have, start, total, size, saved, response, budget.checked
            )
            if problem:  # appending would mix two versions, or bytes at the wrong offset
                resume.discard(part)
                if not have:
                    raise TransientError(problem)
                raise RestartError(f"{problem}; starting the file over")
        elif probe:
            raise _unconfirmed(url, part, "it does not answer Range requests")
        append = response.status == 206
        if not append:
            have = 0  # the server ignored the range (or the file changed): start over
            resume.save_version(part, response)
        length = response.headers.get("Content-Length")
        if append and total is not None:
            expected: int | None = total
        elif length and length.isdigit():
            expected = have + int(length)
        else:
            expected = size
        known = expected is not None or bool(getattr(response, "chunked", False))
        room(part, (expected or 0) - have, url)
        done = stream_body(response, part, append, have, expected, progress, budget, url)
    if expected is not None and done < expected:
        # http.client reports a connection closed early as a short read, not an error
        raise TransientError(f"connection closed after {done} of {expected} bytes")
    return append, known
