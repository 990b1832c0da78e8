"""Download faults (issue 14): cut-off bodies, spliced resumes, redirects, drips, bad manifests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.download import step
from cytoimagenet.download.http import DownloadError, fetch
from cytoimagenet.sources.catalog import RemoteFile, get_source
from tests.reliability.servers import FaultServer, Route

DATA = bytes(range(256)) * 2048  # 512 KiB
V2 = bytes(reversed(DATA))
runner = CliRunner()


def zipped(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def serve(srv: FaultServer, url: str, route: Route) -> Route:
    """Put ``route`` where the mirror layout keeps catalog URL ``url``."""
    srv.routes["/" + url.split("://", 1)[1]] = route
    return route


def test_cut_off_body_without_length_is_resumed_not_accepted(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    route = fault_server.routes["/f"] = Route(DATA, length=False, drop_at=100_000)
    got = fetch(fault_server.url("/f"), tmp_path / "f", retries=0)
    assert (tmp_path / "f").read_bytes() == DATA and got.size == len(DATA)
    assert route.calls[1][0] == "bytes=100000-"  # asked past the cut: the server had more


def test_cut_off_body_without_length_or_ranges_keeps_nothing(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.routes["/f"] = Route(DATA, length=False, ranges=False, drop_at=100_000)
    with pytest.raises(DownloadError, match="no Content-Length"):
        fetch(fault_server.url("/f"), tmp_path / "f", retries=0)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.part").exists()


def test_cut_off_archive_is_never_recorded_and_the_good_one_is_taken_next(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    images, truth = get_source("bbbc005").files
    good = zipped({"BBBC005_v1_images/a.TIF": DATA})
    serve(fault_server, truth.url, Route(zipped({"BBBC005_v1_ground_truth/a.TIF": b"m"})))
    serve(fault_server, images.url, Route(good, length=False, ranges=False, drop_at=5000))
    mirror = fault_server.url("")
    first = runner.invoke(app, ["download", "bbbc005", "--to", str(tmp_path), "--mirror", mirror,
                                "--retries", "0", "--no-progress"])  # fmt: skip
    assert first.exit_code == 1 and "no Content-Length" in first.output
    manifest = json.loads((tmp_path / "downloads.json").read_text())["files"]
    assert "bbbc005/BBBC005_v1_images.zip" not in manifest
    serve(fault_server, images.url, Route(good))
    again = runner.invoke(app, ["download", "bbbc005", "--to", str(tmp_path), "--mirror", mirror,
                                "--no-progress"])  # fmt: skip
    assert again.exit_code == 0, again.output
    entry = json.loads((tmp_path / "downloads.json").read_text())["files"][
        "bbbc005/BBBC005_v1_images.zip"
    ]
    assert entry["sha256"] == hashlib.sha256(good).hexdigest()
    assert (tmp_path / "bbbc005" / "BBBC005_v1_images" / "a.TIF").read_bytes() == DATA


def test_changed_upstream_behind_a_server_ignoring_if_range_is_not_spliced(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    route = fault_server.routes["/f"] = Route(
        DATA, changed=V2, change_after=1, if_range=False, drop_at=200_000
    )
    fetch(fault_server.url("/f"), tmp_path / "f", retries=1, backoff=0.01)
    assert (tmp_path / "f").read_bytes() == V2  # whole new version, not half old, half new
    assert route.calls[1] == ("bytes=200000-", '"v1"') and route.calls[2] == (None, None)


def test_resume_at_the_wrong_offset_starts_over(fault_server: FaultServer, tmp_path: Path) -> None:
    route = fault_server.routes["/f"] = Route(DATA, drop_at=100_000, range_offset=10)
    fetch(fault_server.url("/f"), tmp_path / "f", retries=1, backoff=0.01)
    assert (tmp_path / "f").read_bytes() == DATA
    assert [c[0] for c in route.calls] == [None, "bytes=100000-", None]


def test_archive_member_does_not_replace_the_downloaded_table(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    base = "https://data.broadinstitute.org/bbbc/BBBC021/"
    table = RemoteFile(url=base + "BBBC021_v1_image.csv", kind="metadata")
    week = RemoteFile(url=base + "BBBC021_v1_images_Week1_22123.zip")
    serve(fault_server, table.url, Route(b"verified,table\n"))
    member = {"BBBC021_v1_image.csv": b"stale"}  # one top-level name: unpacked beside it
    serve(fault_server, week.url, Route(zipped(member)))
    job = step.DownloadJob(sources=["bbbc021"], to=tmp_path, mirror=fault_server.url(""))
    report = step.run_download(job, progress=False, files={"bbbc021": [week, table]})
    assert not report.failed
    assert (tmp_path / "bbbc021" / "BBBC021_v1_image.csv").read_bytes() == b"verified,table\n"
    assert any("BBBC021_v1_image.csv" in o.reason for o in report.outcomes)


def test_redirect_to_another_host_is_refused_for_plain_http(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.routes["/f"] = Route(DATA)
    fault_server.routes["/r"] = Route(redirect=fault_server.url("/f", host="localhost"))
    with pytest.raises(DownloadError, match="another host"):
        fetch(fault_server.url("/r"), tmp_path / "f", retries=0)
    assert fault_server.routes["/f"].calls == [] and not (tmp_path / "f").exists()


def test_redirect_within_the_host_is_followed(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.routes["/f"] = Route(DATA)
    fault_server.routes["/r"] = Route(redirect="/f")
    assert fetch(fault_server.url("/r"), tmp_path / "f", retries=0).size == len(DATA)


def test_redirect_to_another_scheme_is_refused(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.routes["/r"] = Route(redirect="ftp://127.0.0.1/f")
    with pytest.raises(DownloadError, match=r"only http\(s\)"):
        fetch(fault_server.url("/r"), tmp_path / "f", retries=0)


def test_slow_drip_stalls_and_the_deadline_stops_it(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.routes["/f"] = Route(b"x" * 400, drip=0.02)
    with pytest.raises(DownloadError, match="stalled"):
        fetch(fault_server.url("/f"), tmp_path / "f", retries=0, stall=0.3)
    with pytest.raises(DownloadError, match=r"deadline of 0\.5 s"):
        fetch(fault_server.url("/f"), tmp_path / "g", retries=0, stall=None, deadline=0.5)
    assert not (tmp_path / "f").exists() and not (tmp_path / "g").exists()


def test_unknown_length_body_is_capped(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.routes["/f"] = Route(DATA, length=False)
    with pytest.raises(DownloadError, match="unknown length"):
        fetch(fault_server.url("/f"), tmp_path / "f", retries=0, max_unknown=100_000)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.part").exists()


@pytest.mark.parametrize("text", ["[1, 2]", '{"files": []}', "{not json"])
def test_damaged_manifest_is_one_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "downloads.json").write_text(text)
    result = runner.invoke(app, ["download", "bbbc005", "--to", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    assert "downloads.json" in result.output and "move it aside" in result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output


def test_unwritable_download_folder_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: simulate the refusal the kernel would give

        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(root))

        monkeypatch.setattr(step.tempfile, "TemporaryFile", refuse)
    else:
        root.chmod(0o500)
    result = runner.invoke(app, ["download", "bbbc005", "--to", str(root), "--no-progress"])
    root.chmod(0o700)
    assert result.exit_code == 1 and result.output.count("error:") == 1
    assert str(root) in result.output and "choose another --to" in result.output


def test_wrong_recorded_hash_names_the_manifest_and_refresh_fixes_it(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    images, truth = get_source("bbbc005").files
    serve(fault_server, images.url, Route(zipped({"BBBC005_v1_images/a.TIF": b"x"})))
    serve(fault_server, truth.url, Route(zipped({"BBBC005_v1_ground_truth/a.TIF": b"m"})))
    key = "bbbc005/BBBC005_v1_images.zip"
    (tmp_path / "downloads.json").write_text(json.dumps({"version": 1, "files": {
        key: {"url": images.url, "sha256": "0" * 64, "verified": "computed"}}}))  # fmt: skip
    args = ["download", "bbbc005", "--to", str(tmp_path), "--mirror", fault_server.url("")]
    first = runner.invoke(app, [*args, "--retries", "0", "--no-progress"])
    assert first.exit_code == 1
    assert "downloads.json" in first.output and "--refresh" in first.output
    again = runner.invoke(app, [*args, "--refresh", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "downloads.json").read_text())["files"][key]["sha256"] != "0" * 64
