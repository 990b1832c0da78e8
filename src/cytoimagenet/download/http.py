"""Fetch one file over HTTP(S): streamed to ``.part``, resumed, verified, renamed into place.

Only the standard library is used (``urllib.request``). TLS certificates and host names are
always verified (the default SSL context); an HTTPS URL is never redirected to plain HTTP.
Concurrent fetches of the same target — threads or processes — serialise on a lock file
beside it, so the second one finds the finished file and skips it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cytoimagenet import __version__
from cytoimagenet.errors import CytoImageNetError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = f"cytoimagenet/{__version__} (+https://github.com/cytoimagenet/cytoimagenet)"
#: HTTP statuses worth another try: the server or a proxy is temporarily unable to answer.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

Progress = Callable[[int, int | None], None]
"""Called with (bytes on disk so far, total bytes or None) as the download advances."""


class DownloadError(CytoImageNetError):
    """A file could not be fetched; the message names the URL and what to try."""


class ChecksumError(DownloadError):
    """A fetched file does not have the expected size or SHA-256; nothing was kept."""


class _TransientError(Exception):
    """An error after which a retry (resuming the ``.part`` file) may succeed."""


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


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects, except from HTTPS to plain HTTP (that would drop TLS silently)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        """Return the follow-up request, refusing a downgrade to plain HTTP."""
        if req.full_url.startswith("https:") and not newurl.startswith("https:"):
            raise DownloadError(f"{req.full_url}: refused a redirect from HTTPS to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def build_opener() -> urllib.request.OpenerDirector:
    """Return the opener every fetch uses: verified TLS, no HTTPS→HTTP redirects."""
    context = ssl.create_default_context()  # CERT_REQUIRED and host-name checks
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoDowngrade())


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
        Further attempts after a transient failure (dropped connection, timeout, HTTP 5xx,
        429); each resumes the ``.part`` file with a ``Range`` request.
    backoff : float
        Seconds before the first retry, doubled each time (capped at 60 s).
    timeout : float
        Socket timeout in seconds.
    progress : callable, optional
        See :data:`Progress`.

    Raises
    ------
    DownloadError
        On an HTTP error, or after the last retry; the message names the URL.
    ChecksumError
        If the file differs from ``size``/``sha256``; the ``.part`` file is removed.
    """
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"{url}: only http(s) URLs can be fetched")
    target = Path(target)
    with file_lock(target):
        ok, digest = is_valid(target, size=size, sha256=sha256)
        if ok:
            digest = digest or sha256_of(target)
            return Fetched(target, "skipped", target.stat().st_size, digest)
        part = target.with_name(target.name + ".part")
        for fresh in (False, True):
            if fresh:  # a resumed file may mix two versions of the upstream file
                _discard(part)
            resumed = _download(url, part, size, retries, backoff, timeout, progress)
            try:
                digest = _verify(part, target, size, sha256, url)
                break
            except ChecksumError:
                if fresh or not resumed:
                    _discard(part)
                    raise
                log.warning("%s: resumed file failed verification; downloading it again", url)
        with part.open("rb") as fh:
            os.fsync(fh.fileno())
        part.replace(target)
        _validator_file(part).unlink(missing_ok=True)
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
            "from downloads.json."
        )
    return digest


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _validator_file(part).unlink(missing_ok=True)


def _download(
    url: str,
    part: Path,
    size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: Progress | None,
) -> bool:
    """Fill ``part`` with the whole file; return whether any bytes were resumed."""
    opener = build_opener()
    resumed = False
    for attempt in range(retries + 1):
        try:
            resumed |= _attempt(opener, url, part, size, timeout, progress)
            return resumed
        except _TransientError as exc:
            if attempt == retries:
                kept = part.exists() and part.stat().st_size > 0
                hint = f"{part.name} is kept; run again to resume" if kept else "run again later"
                raise DownloadError(
                    f"{url}: {exc} (gave up after {retries + 1} attempt(s)); {hint}."
                ) from None
            wait = min(backoff * 2**attempt, 60.0)
            log.warning("%s: %s; retrying in %.1f s", url, exc, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(
    opener: urllib.request.OpenerDirector,
    url: str,
    part: Path,
    size: int | None,
    timeout: float,
    progress: Progress | None,
) -> bool:
    """One request; append to ``part`` when the server honours the range."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # cannot be a prefix of the right file
        _discard(part)
        have = 0
    headers = {"User-Agent": USER_AGENT}
    validator = _validator_file(part)
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator.exists():  # the server sends the whole file if it changed since
            headers["If-Range"] = validator.read_text()
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left after `have`, or the file shrank
            total = _range_total(exc.headers.get("Content-Range", ""))
            if have == (size if size is not None else total):
                return True  # the .part file already holds everything
            _discard(part)
            raise _TransientError("the server refused to resume; starting over") from None
        if exc.code in TRANSIENT_STATUS:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from None
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
        raise _TransientError(f"connection failed: {reason}") from None
    with response:
        append = have > 0 and response.status == 206 and _range_start(response) == have
        if not append:
            have = 0  # the server ignored the range (or the file changed): start over
            tag = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if tag and not tag.startswith("W/"):
                validator.write_text(tag)
            else:
                validator.unlink(missing_ok=True)
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length and length.isdigit() else size
        done = _stream(response, part, append, have, expected, progress)
    if expected is not None and done < expected:
        # http.client reports a connection closed early as a short read, not an error
        raise _TransientError(f"connection closed after {done} of {expected} bytes")
    return append


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    append: bool,
    have: int,
    expected: int | None,
    progress: Progress | None,
) -> int:
    done = have
    with part.open("ab" if append else "wb") as out:
        if progress:
            progress(done, expected)
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:  # not disk errors: those stop
                raise _TransientError(f"connection lost after {done} bytes: {exc!r}") from None
            if not chunk:
                return done
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, expected)


def _range_total(value: str) -> int | None:
    """Return N of a ``Content-Range: bytes */N`` header, if there is one."""
    tail = value.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def _range_start(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None
