"""A loopback HTTP server for files on disk with real ``Range`` support and injectable faults.

Serves ``GET`` for each registered path: ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n``
answered ``206`` with ``Content-Range`` (one range per request, as object stores do),
``If-Range`` honoured against the ETag, ``ETag`` and ``Last-Modified`` sent. Faults: no
``Range`` support (always ``200`` with the whole file), a latency added before each answer,
a connection dropped after some bytes of the next answers. Counts requests and body bytes
sent. Used by the selective-fetch tests and ``benchmarks/selective_fetch.py``, with
:func:`write_labels`, the smallest labels table naming files of one source.
"""

from __future__ import annotations

import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Served:
    """One file and how it answers."""

    path: Path
    etag: str = '"v1"'
    ranges: bool = True
    drop_after: int | None = None  # bytes of body sent before hanging up …
    drops: int = 0  # … on this many answers
    requests: int = 0
    ranges_asked: list[str] = field(default_factory=list)


class RangeServer(ThreadingHTTPServer):
    """Serve :class:`Served` files on 127.0.0.1; ``latency`` seconds before each answer."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Served] = {}
        self.latency = latency
        self.sent = 0
        self.requests = 0
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    def add(self, url_path: str, file: Path, **how: object) -> Served:
        """Serve ``file`` at ``url_path``; return its :class:`Served` (faults can be set on it)."""
        served = Served(Path(file), **how)  # type: ignore[arg-type]
        self.files[url_path] = served
        return served

    def url(self, url_path: str) -> str:
        """The full URL of ``url_path``."""
        return f"http://127.0.0.1:{self.server_address[1]}{url_path}"

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        served = srv.files.get(self.path.split("?")[0])
        with srv.lock:
            srv.requests += 1
        if srv.latency:
            time.sleep(srv.latency)
        if served is None:
            self.send_error(404)
            return
        served.requests += 1
        size = served.path.stat().st_size
        start, end = 0, size - 1
        asked = self.headers.get("Range")
        fresh = self.headers.get("If-Range") in (None, served.etag)
        partial = bool(served.ranges and asked and fresh)
        if partial:
            served.ranges_asked.append(asked or "")
            match = _RANGE.fullmatch(asked or "")
            if not match or (not match.group(1) and not match.group(2)):
                self.send_error(400)
                return
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:
                start = max(0, size - int(last))
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(206 if partial else 200)
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", served.etag)
        self.send_header("Last-Modified", "Mon, 01 Jun 2026 00:00:00 GMT")
        self.send_header("Accept-Ranges", "bytes" if served.ranges else "none")
        self.end_headers()
        limit = end - start + 1
        if served.drops > 0 and served.drop_after is not None:
            served.drops -= 1
            limit = min(limit, served.drop_after)
            self.close_connection = True
        with served.path.open("rb") as fh:
            fh.seek(start)
            left = limit
            while left > 0:
                block = fh.read(min(1 << 20, left))
                if not block:
                    break
                try:
                    self.wfile.write(block)
                except OSError:
                    return
                left -= len(block)
                with srv.lock:
                    srv.sent += len(block)


def write_labels(path: Path, names: list[str], source: str = "rec_rxrx1") -> Path:
    """Write a labels table with one labelled row per file of ``names`` (one channel each)."""
    pl.DataFrame(
        {
            "idx": [f"r{i}" for i in range(len(names))],
            "label": ["x"] * len(names),
            "dir_name": [source] * len(names),
            "channels": [["f_nucleus"]] * len(names),
            "channel_paths": [[n] for n in names],
        }
    ).write_parquet(path)
    return path


def flip_member_byte(archive: Path, name: str, copy: Path, at: int = 100) -> Path:
    """Copy ``archive`` with one byte of member ``name``'s data flipped (``at`` bytes in)."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        offset = zf.getinfo(name).header_offset
    name_len = int.from_bytes(data[offset + 26 : offset + 28], "little")
    extra_len = int.from_bytes(data[offset + 28 : offset + 30], "little")
    data[offset + 30 + name_len + extra_len + at] ^= 0xFF
    copy.write_bytes(bytes(data))
    return copy
