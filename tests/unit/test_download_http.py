"""Verified, resumable HTTP fetches, against a loopback server each test starts and stops."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cytoimagenet.download import redirects
from cytoimagenet.download.http import ChecksumError, DownloadError, build_opener, fetch

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, every byte position distinct-ish
SHA = hashlib.sha256(DATA).hexdigest()


class Behaviour:
    """How the server answers one path; ``calls`` records each request's Range header."""

    def __init__(
        self,
        data: bytes = DATA,
        *,
        ranges: bool = True,
        drop_at: int | None = None,
        fail: list[int] | None = None,
        status: int | None = None,
        slow: float = 0.0,
    ) -> None:
        self.data, self.ranges, self.drop_at, self.slow = data, ranges, drop_at, slow
        self.fail = list(fail or [])
        self.status = status
        self.calls: list[str | None] = []


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        b = self.server.routes.get(self.path)
        if b is None:
            self.send_error(404, "Not Found")
            return
        b.calls.append(self.headers.get("Range"))
        if b.status is not None:
            self.send_error(b.status)
            return
        if b.fail:
            self.send_error(b.fail.pop(0))
            return
        start = 0
        rng = self.headers.get("Range")
        if b.ranges and rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(b.data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(b.data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(b.data) - 1}/{len(b.data)}")
        else:
            self.send_response(200)
        body = b.data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        if b.drop_at is not None:  # promise the whole body, send part, hang up (once)
            cut, b.drop_at = b.drop_at, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        for i in range(0, len(body), 65536):
            self.wfile.write(body[i : i + 65536])
            if b.slow:
                time.sleep(b.slow)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Behaviour]


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.routes = {}
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_plain_download_verifies_and_renames(server: Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Behaviour()
    target = tmp_path / "sub" / "f.bin"
    seen: list[int] = []
    got = fetch(
        url(server, "/f.bin"),
        target,
        size=len(DATA),
        sha256=SHA,
        progress=lambda d, t: seen.append(d),
    )
    assert got.status == "downloaded" and got.sha256 == SHA and got.size == len(DATA)
    assert target.read_bytes() == DATA
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert seen[-1] == len(DATA)


def test_checksum_mismatch_names_the_file_and_keeps_nothing(server: Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Behaviour(DATA[:-1] + b"X")  # same size, one byte off
    target = tmp_path / "f.bin"
    with pytest.raises(ChecksumError, match=r"f\.bin: SHA-256 mismatch") as info:
        fetch(url(server, "/f.bin"), target, size=len(DATA), sha256=SHA, retries=0)
    assert "downloads.json" in str(info.value)  # says what to do
    assert not target.exists()
    assert not (tmp_path / "f.bin.part").exists()


def test_wrong_size_is_a_checksum_error(server: Server, tmp_path: Path) -> None:
    server.routes["/f.bin"] = Behaviour(DATA + b"extra")
    with pytest.raises(ChecksumError, match="expected 1048580"):
        fetch(url(server, "/f.bin"), tmp_path / "f.bin", size=len(DATA), retries=0)
    assert list(tmp_path.iterdir()) == [tmp_path / ".f.bin.lock"]


def test_dropped_connection_resumes_with_range(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour(drop_at=300_000)
    target = tmp_path / "f.bin"
    got = fetch(url(server, "/f.bin"), target, sha256=SHA, retries=2, backoff=0.01)
    assert target.read_bytes() == DATA and got.sha256 == SHA
    assert b.calls == [None, "bytes=300000-"]  # the second request resumed


def test_part_left_by_a_killed_run_is_resumed(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour()
    target = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(DATA[:12345])
    fetch(url(server, "/f.bin"), target, sha256=SHA)
    assert target.read_bytes() == DATA
    assert b.calls == ["bytes=12345-"]


def test_server_without_range_support_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour(ranges=False, drop_at=500_000)
    target = tmp_path / "f.bin"
    fetch(url(server, "/f.bin"), target, sha256=SHA, retries=2, backoff=0.01)
    assert target.read_bytes() == DATA  # not the first 500,000 bytes twice
    assert b.calls == [None, "bytes=500000-"]  # asked to resume, got the whole file


def test_stale_part_is_redone_when_the_resumed_file_fails_verification(
    server: Server, tmp_path: Path
) -> None:
    b = server.routes["/f.bin"] = Behaviour()
    (tmp_path / "f.bin.part").write_bytes(b"garbage from another version")
    fetch(url(server, "/f.bin"), tmp_path / "f.bin", sha256=SHA)
    assert (tmp_path / "f.bin").read_bytes() == DATA
    assert b.calls == ["bytes=28-", None]  # resumed, failed the check, fetched whole


def test_404_is_a_clear_error_without_retries(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 404 .*home page") as info:
        fetch(url(server, "/missing.zip"), tmp_path / "m.zip", retries=3, backoff=0.01)
    assert "/missing.zip" in str(info.value)
    assert not (tmp_path / "m.zip").exists()


def test_500_is_retried_then_succeeds(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour(fail=[500, 503])
    fetch(url(server, "/f.bin"), tmp_path / "f.bin", sha256=SHA, retries=3, backoff=0.01)
    assert (tmp_path / "f.bin").read_bytes() == DATA and len(b.calls) == 3


def test_persistent_500_gives_up_with_a_clear_error(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour(status=500)
    with pytest.raises(DownloadError, match=r"HTTP 500 .*gave up after 3 attempt"):
        fetch(url(server, "/f.bin"), tmp_path / "f.bin", retries=2, backoff=0.01)
    assert len(b.calls) == 3 and not (tmp_path / "f.bin").exists()


def test_valid_file_present_is_skipped_and_invalid_one_replaced(
    server: Server, tmp_path: Path
) -> None:
    b = server.routes["/f.bin"] = Behaviour()
    target = tmp_path / "f.bin"
    target.write_bytes(DATA)
    assert fetch(url(server, "/f.bin"), target, sha256=SHA).status == "skipped"
    assert b.calls == []
    target.write_bytes(b"corrupt")
    assert fetch(url(server, "/f.bin"), target, sha256=SHA).status == "downloaded"
    assert target.read_bytes() == DATA and len(b.calls) == 1


def test_concurrent_threads_do_not_corrupt_each_other(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour(slow=0.005)
    target = tmp_path / "f.bin"
    results: list[str] = []

    def worker() -> None:
        results.append(fetch(url(server, "/f.bin"), target, sha256=SHA).status)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() == DATA
    assert sorted(results) == ["downloaded", "skipped", "skipped", "skipped"]
    assert len(b.calls) == 1


def test_concurrent_processes_do_not_corrupt_each_other(server: Server, tmp_path: Path) -> None:
    b = server.routes["/f.bin"] = Behaviour(slow=0.01)
    target = tmp_path / "f.bin"
    code = (
        "import sys; from pathlib import Path; from cytoimagenet.download.http import fetch; "
        "print(fetch(sys.argv[1], Path(sys.argv[2])).status)"
    )
    procs = [
        subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            [sys.executable, "-c", code, url(server, "/f.bin"), str(target)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["downloaded", "skipped"]
    assert target.read_bytes() == DATA and len(b.calls) == 1


def test_tls_verification_is_always_on() -> None:
    opener = build_opener()
    handlers = [h for h in opener.handlers if isinstance(h, urllib.request.HTTPSHandler)]
    assert handlers
    for handler in handlers:
        context = handler._context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_self_signed_https_is_refused_not_retried(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    openssl = shutil.which("openssl") or "openssl"
    subprocess.run(  # noqa: S603 (fixed arguments)
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    srv = Server(("127.0.0.1", 0), Handler)
    srv.routes = {"/f.bin": Behaviour()}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        https = f"https://127.0.0.1:{srv.server_address[1]}/f.bin"
        with pytest.raises(DownloadError, match="TLS verification failed"):
            fetch(https, tmp_path / "f.bin", retries=3, backoff=5.0)  # no 5 s waits: no retry
    finally:
        srv.shutdown()
        srv.server_close()
    assert srv.routes["/f.bin"].calls == [] and not (tmp_path / "f.bin").exists()


def test_https_to_http_redirect_is_refused() -> None:
    handler = redirects._NoDowngrade()
    request = urllib.request.Request("https://example.org/a.zip")
    with pytest.raises(DownloadError, match="refused a redirect"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://example.org/a.zip")


def test_only_http_urls_are_fetched(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="only http"):
        fetch("file:///etc/passwd", tmp_path / "x")
