"""``cytoimagenet download`` end to end: the shipped catalog, served by a loopback mirror."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.conftest import shared_path
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.sources.catalog import get_source

runner = CliRunner()


class Mirror(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    hits: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    srv = Mirror(("127.0.0.1", 0), Handler)
    srv.files, srv.hits = {}, []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def base(srv: Mirror) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def serve(srv: Mirror, url: str, body: bytes) -> None:
    """Put ``body`` where the mirror layout keeps catalog URL ``url`` (<host>/<path>)."""
    srv.files["/" + url.split("://", 1)[1]] = body


def zipped(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def download(*args: str) -> object:
    return runner.invoke(app, ["download", *args, "--no-progress"])


def test_metadata_only_then_metadata_command(mirror: Mirror, tmp_path: Path) -> None:
    real = shared_path("source_metadata", "idr0021", "idr0021-experimentA-annotation.csv")
    (remote,) = get_source("idr0021").files
    serve(mirror, remote.url, real.read_bytes())
    out = tmp_path / "raw"
    result = download("idr0021", "--to", str(out), "--metadata-only", "--mirror", base(mirror))
    assert result.exit_code == 0, result.output
    assert "1 downloaded" in result.output and "0 failed" in result.output
    target = out / "idr0021" / "idr0021-experimentA-annotation.csv"
    assert target.read_bytes() == real.read_bytes()
    record = json.loads((out / "downloads.json").read_text())["files"]
    assert record["idr0021/idr0021-experimentA-annotation.csv"]["verified"] == "catalog"
    # the metadata step runs on what was fetched
    table = tmp_path / "idr0021.parquet"
    meta = runner.invoke(
        app, ["metadata", "idr0021", "--raw", str(out / "idr0021"), "--out", str(table)]
    )
    assert meta.exit_code == 0, meta.output
    assert table.is_file()
    # a second run finds the valid file and fetches nothing
    hits = len(mirror.hits)
    again = download("idr0021", "--to", str(out), "--metadata-only", "--mirror", base(mirror))
    assert again.exit_code == 0 and "1 skipped" in again.output and len(mirror.hits) == hits


def test_wrong_content_fails_and_leaves_no_file(mirror: Mirror, tmp_path: Path) -> None:
    (remote,) = get_source("idr0021").files
    serve(mirror, remote.url, b"x" * (remote.size or 1))  # right size, wrong bytes
    result = download("idr0021", "--to", str(tmp_path), "--metadata-only", "--mirror", base(mirror))
    assert result.exit_code == 1
    assert (
        "SHA-256 mismatch" in result.output
        and "idr0021-experimentA-annotation.csv" in result.output
    )
    assert "1 failed" in result.output
    folder = tmp_path / "idr0021"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == []


def test_images_are_downloaded_extracted_and_recorded(mirror: Mirror, tmp_path: Path) -> None:
    images, truth = get_source("bbbc005").files
    image_zip = zipped({"BBBC005_v1_images/SIMCEPImages_A01_C1_F1_s01_w1.TIF": b"tif"})
    serve(mirror, images.url, image_zip)
    serve(mirror, truth.url, zipped({"BBBC005_v1_ground_truth/a.TIF": b"mask"}))
    result = download("bbbc005", "--to", str(tmp_path), "--mirror", base(mirror), "--retries", "0")
    assert result.exit_code == 0, result.output
    assert "2 downloaded" in result.output
    tif = tmp_path / "bbbc005" / "BBBC005_v1_images" / "SIMCEPImages_A01_C1_F1_s01_w1.TIF"
    assert tif.read_bytes() == b"tif"
    # no checksum in the catalog: the computed one is recorded, and verified next time
    entry = json.loads((tmp_path / "downloads.json").read_text())["files"][
        "bbbc005/BBBC005_v1_images.zip"
    ]
    assert entry["sha256"] == hashlib.sha256(image_zip).hexdigest()
    assert entry["verified"] == "computed"
    (tmp_path / "bbbc005" / "BBBC005_v1_images.zip").write_bytes(b"damaged on disk")
    again = download("bbbc005", "--to", str(tmp_path), "--mirror", base(mirror))
    assert again.exit_code == 0 and "1 downloaded" in again.output and "1 skipped" in again.output
    assert (tmp_path / "bbbc005" / "BBBC005_v1_images.zip").read_bytes() == image_zip


def test_http_errors_are_reported_per_file(mirror: Mirror, tmp_path: Path) -> None:
    images, _ = get_source("bbbc005").files
    serve(mirror, images.url, zipped({"BBBC005_v1_images/a.TIF": b"x"}))  # ground truth: 404
    result = download("bbbc005", "--to", str(tmp_path), "--mirror", base(mirror))
    assert result.exit_code == 1
    assert "1 downloaded" in result.output and "1 failed" in result.output
    assert "BBBC005_v1_ground_truth.zip" in result.output and "HTTP 404" in result.output


def test_manual_sources_say_what_to_do(tmp_path: Path) -> None:
    result = download("cyclops", "coos7", "--to", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "to do by hand" in result.output
    assert str(get_source("cyclops").url) in result.output
    assert str(get_source("coos7").url) in result.output
    assert "2 manual step(s)" in result.output


def test_kaggle_source_without_client_or_token_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = download("kag_hpa", "--to", str(tmp_path / "d"), "--metadata-only")
    assert result.exit_code == 1
    assert "kaggle.json" in result.output and "pip install kaggle" in result.output


def test_list_and_bad_options(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["download", "bbbc021", "--to", str(tmp_path), "--list"])
    assert listed.exit_code == 0
    assert "bbbc021/BBBC021_v1_moa.csv  [metadata, no checksum]" in listed.output
    assert listed.output.count("\n") == 57 and not list(tmp_path.iterdir())
    unknown = runner.invoke(app, ["download", "bbbc21", "--to", str(tmp_path)])
    assert unknown.exit_code == 1 and "bbbc021" in unknown.output
    bad = runner.invoke(app, ["download", "bbbc005", "--to", str(tmp_path), "--retries", "-1"])
    assert bad.exit_code == 1 and "retries" in bad.output
