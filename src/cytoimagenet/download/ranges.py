"""Byte ranges of one remote file over HTTP(S): ``Range`` requests, checked, retried, resumed.

The same opener as every other fetch (verified TLS, the redirect rules of
:mod:`cytoimagenet.download.redirects`). Every answer must be a ``206`` for exactly the
bytes asked, of a file of the size and version first seen (``ETag`` / ``Last-Modified``,
sent back as ``If-Range``): a server that answers ``200`` to the first request does not
serve ranges (:class:`NoRangeSupportError`), and one that does so later has a new version of the
file (:class:`RemoteChangedError`). A connection dropped mid-range is resumed from the last byte
received, with backoff, up to ``retries`` times.

The first request goes through the opener (redirects followed under its rules); the ranges
after it go straight to the URL it ended at over one kept-alive connection per thread, so
thousands of small ranges do not each pay a TCP and TLS handshake. Behind a proxy
(``HTTPS_PROXY`` …) every request goes through the opener, which honours it.
"""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from cytoimagenet.download.http import TRANSIENT_STATUS, USER_AGENT
from cytoimagenet.download.redirects import build_opener
from cytoimagenet.errors import DownloadError

T = TypeVar("T")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_READ = 1 << 20


class NoRangeSupportError(DownloadError):
    """The server answered a ``Range`` request with the whole file."""


class RemoteChangedError(DownloadError):
    """The remote file is no longer the version (size, ETag) first seen."""


@dataclass(frozen=True)
class Version:
    """What identifies one version of the remote file."""

    size: int
    etag: str = ""
    last_modified: str = ""

    def if_range(self) -> str | None:
        """Return the ``If-Range`` value: a strong ETag, else the date (never a weak ETag)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified or None


@dataclass
class RangeClient:
    """Fetch byte ranges of ``url``; counts every body byte received in ``received``.

    Attributes
    ----------
    url : str
        The file (after ``--mirror`` rewriting).
    retries : int
        Further attempts per range after a transient error (a drop resumes where it broke).
    backoff : float
        Seconds before the first retry, doubled each time.
    timeout : float
        Socket timeout in seconds (also bounds a stalled transfer).
    same_host : bool
        Follow redirects within the URL's host only (mirrors, plain HTTP).
    version : Version, optional
        Set by :meth:`tail` (or from a saved index); later answers must match it.
    """

    url: str
    retries: int = 3
    backoff: float = 1.0
    timeout: float = 60.0
    same_host: bool = False
    version: Version | None = None
    received: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._opener = build_opener(same_host=self.same_host or self.url.startswith("http:"))
        self._target: str | None = None  # where the opener's redirects ended
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._context = ssl.create_default_context()  # CERT_REQUIRED and host-name checks

    def close(self) -> None:
        """Close the kept-alive connections of every thread."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def tail(self, n: int) -> tuple[int, bytes]:
        """Return ``(offset, bytes)`` of the last ``n`` bytes, and learn the file's version.

        Raises
        ------
        NoRangeSupportError
            If the server sends the whole file instead.
        """
        return self._retrying("the end of the archive", lambda: self._tail_once(n))

    def _tail_once(self, n: int) -> tuple[int, bytes]:
        with self._open(f"bytes=-{n}", probe=True) as response:
            start, end, total = _content_range(response, self.url)
            self.version = Version(
                total,
                response.headers.get("ETag", "") or "",
                response.headers.get("Last-Modified", "") or "",
            )
            try:
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise _TransientError(f"connection lost: {exc!r}") from None
        self._count(len(data))
        if len(data) != end - start + 1:
            raise _TransientError("the end of the archive arrived short")
        return start, data

    def fetch(
        self, start: int, end: int, out: BinaryIO, progress: Callable[[int], None] | None = None
    ) -> None:
        """Write bytes ``[start, end)`` to ``out``, resuming a dropped connection."""
        got = 0

        def attempt() -> None:
            nonlocal got
            try:
                got += self._fetch_once(start + got, end, out, progress)
            except _PartialError as exc:  # keep what arrived; the retry asks for the rest
                got += exc.done
                raise

        self._retrying(f"bytes {start}-{end - 1}", attempt)

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until it succeeds, ``retries`` more times, backing off."""
        failures = 0
        while True:
            try:
                return attempt()
            except _TransientError as exc:
                failures += 1
                if failures > self.retries:
                    raise DownloadError(
                        f"{self.url}: {what} failed after {failures} tries ({exc}); run again "
                        "to resume"
                    ) from None
                time.sleep(self.backoff * 2 ** (failures - 1))

    def _fetch_once(
        self, start: int, end: int, out: BinaryIO, progress: Callable[[int], None] | None
    ) -> int:
        done = 0
        try:
            with self._open(f"bytes={start}-{end - 1}") as response:
                first, last, total = _content_range(response, self.url)
                if (first, last + 1) != (start, end):
                    raise DownloadError(
                        f"{self.url}: asked for bytes {start}-{end - 1}, got {first}-{last}; "
                        "the server's Range support is broken"
                    )
                self._check(total, response)
                while done < end - start:
                    chunk = response.read1(min(_READ, end - start - done))
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    self._count(len(chunk))
                    if progress:
                        progress(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            if not done:
                raise _TransientError(f"connection lost: {exc!r}") from None
        except DownloadError:
            self._drop()
            raise
        if done < end - start:
            self._drop()
            # a short body is a dropped connection: resume from here on the next try
            if done:
                raise _PartialError(done)
            raise _TransientError("connection closed before any byte arrived")
        return done

    def _count(self, n: int) -> None:
        with self._lock:
            self.received += n

    def _check(self, total: int, response: http.client.HTTPResponse) -> None:
        known = self.version
        if known is None:
            return
        etag = response.headers.get("ETag", "") or ""
        if total != known.size or (known.etag and etag and etag != known.etag):
            raise RemoteChangedError(
                f"{self.url}: the file changed upstream (size {total:,}, was {known.size:,}); "
                "its saved index was discarded; run again"
            )

    def _open(self, byte_range: str, *, probe: bool = False) -> http.client.HTTPResponse:
        headers = {"User-Agent": USER_AGENT, "Range": byte_range}
        if self.version and (tag := self.version.if_range()):
            headers["If-Range"] = tag
        with self._lock:
            self.requests += 1
        if self._target and not probe and _direct(self._target):
            response = self._open_direct(headers)
        else:
            response = self._open_via_opener(headers)
        if response.status != 206:
            response.close()
            self._drop()
            if probe:
                raise NoRangeSupportError(f"{self.url}: the server does not answer Range requests")
            raise RemoteChangedError(
                f"{self.url}: the server sent the whole file to a range request: it changed "
                "upstream; its saved index was discarded; run again"
            )
        return response

    def _open_via_opener(self, headers: dict[str, str]) -> http.client.HTTPResponse:
        request = urllib.request.Request(self.url, headers=headers)  # noqa: S310 (http(s) only)
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in TRANSIENT_STATUS:
                raise _TransientError(f"HTTP {exc.code} {exc.reason}") from None
            raise DownloadError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _TransientError(f"connection failed: {getattr(exc, 'reason', exc)}") from None
        self._target = response.geturl()
        return response

    def _open_direct(self, headers: dict[str, str]) -> http.client.HTTPResponse:
        """Send the request on this thread's kept-alive connection to the resolved URL."""
        parts = urlsplit(self._target or self.url)
        target = parts.path or "/"
        target += f"?{parts.query}" if parts.query else ""
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            if conn is None:
                conn = self._connect(parts.scheme, parts.hostname or "", parts.port)
            try:
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if fresh or attempt:  # a kept-alive connection the server closed: once more
                    raise _TransientError(f"connection failed: {exc!r}") from None
        if response.status >= 300 and response.status != 416:
            response.close()
            self._drop()
            if response.status in TRANSIENT_STATUS:
                raise _TransientError(f"HTTP {response.status} {response.reason}")
            # a redirect or an expired signed URL: resolve through the opener on the next try
            self._target = None
            raise _TransientError(f"HTTP {response.status} {response.reason}")
        return response

    def _connect(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _drop(self) -> None:
        """Close this thread's connection (its stream may hold unread bytes)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _direct(url: str) -> bool:
    """Whether ``url`` is reached without a proxy (the environment names none for it)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme not in proxies or bool(urllib.request.proxy_bypass(parts.hostname or ""))


class _TransientError(Exception):
    """Worth another try."""


class _PartialError(_TransientError):
    """Some bytes arrived before the connection dropped; they were kept."""

    def __init__(self, done: int) -> None:
        super().__init__(f"connection dropped after {done} bytes")
        self.done = done


def _content_range(response: http.client.HTTPResponse, url: str) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
    if not match or match.group(3) == "*":
        raise DownloadError(f"{url}: a 206 answer without a usable Content-Range")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))
