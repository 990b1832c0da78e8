"""A fault-injecting HTTP server on 127.0.0.1, for download reliability tests.

Each path is a :class:`Route` saying how to misbehave: close mid-file without a
``Content-Length``, ignore ``If-Range`` and serve changed content, redirect (off-host, to
other schemes), drip bytes slowly. The server is bounded: it answers at most
``max_requests`` requests, no answer drips past ``lifetime`` seconds, and it stops itself
after ``lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """How one path answers; ``calls`` records each request's (Range, If-Range) headers.

    Attributes
    ----------
    data : bytes
        The body; after ``change_after`` requests it becomes ``changed`` (a new upstream
        version, with ETag ``etag2``).
    length : bool
        Send ``Content-Length`` (else the body ends when the connection closes).
    ranges : bool
        Answer ``Range`` requests with 206.
    if_range : bool
        Honour ``If-Range`` (False: a broken server that splices old and new).
    drop_at : int, optional
        Send this many body bytes, then hang up (``drops`` times).
    redirect : str, optional
        Answer 302 with this ``Location``.
    drip : float
        Seconds between bytes of the body (a slow drip), 0 for none.
    range_offset : int
        Resume this many bytes past the requested start (a broken range implementation).
    """

    data: bytes = b""
    length: bool = True
    ranges: bool = True
    if_range: bool = True
    etag: str = '"v1"'
    changed: bytes | None = None
    etag2: str = '"v2"'
    change_after: int = 1
    drop_at: int | None = None
    drops: int = 1
    redirect: str | None = None
    drip: float = 0.0
    range_offset: int = 0
    calls: list[tuple[str | None, str | None]] = field(default_factory=list)

    def version(self) -> tuple[bytes, str]:
        """Return the body and ETag the next request sees."""
        if self.changed is not None and len(self.calls) > self.change_after:
            return self.changed, self.etag2
        return self.data, self.etag


class FaultServer(ThreadingHTTPServer):
    """The server; ``routes`` maps a path to its :class:`Route`."""

    daemon_threads = True

    def __init__(self, max_requests: int = 50, lifetime: float = 30.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)  # loopback only
        self.routes: dict[str, Route] = {}
        self.max_requests, self.lifetime = max_requests, lifetime
        self.requests = 0
        self.ends = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def start(self) -> FaultServer:
        """Start serving in a daemon thread; :meth:`stop` (or ``lifetime``) ends it."""
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (safe to call twice)."""
        self._timer.cancel()
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """Return the URL of ``path`` on this server (``host`` may name it differently)."""
        return f"http://{host}:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests += 1
        route = srv.routes.get(self.path.split("?")[0])
        if srv.requests > srv.max_requests or route is None:
            self.send_error(503 if route else 404)
            return
        route.calls.append((self.headers.get("Range"), self.headers.get("If-Range")))
        if route.redirect:
            self.send_response(302)
            self.send_header("Location", route.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, etag = route.version()
        start, rng = 0, self.headers.get("Range")
        stale = route.if_range and self.headers.get("If-Range") not in (None, etag)
        if route.ranges and rng and rng.startswith("bytes=") and not stale:
            start = int(rng[6:].split("-")[0]) + route.range_offset
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if route.length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        if route.drop_at is not None and route.drops > 0:
            route.drops -= 1
            body = body[: route.drop_at]
        self.close_connection = True
        if not route.drip:
            self.wfile.write(body)
            return
        for i in range(len(body)):  # bounded by the server's lifetime
            if time.monotonic() > srv.ends:
                return
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            time.sleep(route.drip)
