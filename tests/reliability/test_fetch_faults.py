"""Selective-fetch faults: corrupt members, dropped connections, partial runs, upstream changes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.download.fetch_step import FetchJob, run_fetch
from tests.fakes.range_server import RangeServer, Served, flip_member_byte, write_labels

runner = CliRunner()
ZIP_URL = "/storage.googleapis.com/rxrx/rxrx1/rxrx1-images.zip"
N_MEMBERS, MEMBER_SIZE = 60, 20_000
NAMES = [f"images/p/f{i:03d}.png" for i in range(N_MEMBERS)]


def write_archive(path: Path, seed: int = 0, text: bool = False) -> Path:
    """Random (incompressible) members, or deflated text ones when ``text``."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, name in enumerate(NAMES):
            data = f"line {i} {seed}\n".encode() * 1500 if text else rng.bytes(MEMBER_SIZE)
            zf.writestr(name, data)
    return path


def span(archive: Path, first: str, last: str) -> tuple[int, int]:
    """Bytes [start, end) from ``first``'s local header to the header after ``last``."""
    with zipfile.ZipFile(archive) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        offsets = [i.header_offset for i in infos] + [zf.start_dir]  # type: ignore[attr-defined]
        names = [i.filename for i in infos]
    return offsets[names.index(first)], offsets[names.index(last) + 1]


def cli(labels: Path, to: Path, srv: RangeServer, *extra: str):
    args = ["download", "--labels", str(labels), "--to", str(to), "--mirror", srv.url("")]
    return runner.invoke(app, [*args, "--no-progress", "--retries", "1", *extra])


def job(labels: Path, to: Path, srv: RangeServer, **kw: object) -> FetchJob:
    values = {"connections": 1, "backoff": 0.0, "retries": 1, **kw}
    return FetchJob(labels=labels, to=to, mirror=srv.url(""), **values)


def on_disk(to: Path) -> list[str]:
    folder = to / "rec_rxrx1"
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and ".fetch" not in p.parts
    )


def ledger(to: Path) -> list[str]:
    lines = (to / "rec_rxrx1" / ".fetch" / "fetched.jsonl").read_text().splitlines()
    return sorted(json.loads(line)["path"] for line in lines)


def leftovers(to: Path) -> list[str]:
    """Anything but the index, the ledger and the fetched members: temp files, spools."""
    keep = {"rxrx1-images.zip.json", "rxrx1-images.zip.tail", "fetched.jsonl"}
    return sorted(
        p.name
        for p in (to / "rec_rxrx1").rglob("*")
        if p.is_file() and p.name not in keep and not p.name.endswith(".png")
    )


WANTED = NAMES[10:13] + NAMES[30:33]  # two chunks of three members


def _refused_run(tmp_path: Path, bad: Path, wanted: list[str]) -> tuple[object, Path]:
    labels = write_labels(tmp_path / "labels.parquet", wanted)
    to = tmp_path / "raw"
    with RangeServer() as srv:
        srv.add(ZIP_URL, bad)
        done = cli(labels, to, srv, "--connections", "2")
    return done, to


def _check_refused(done, to: Path, archive: Path, wanted: list[str], victim: str) -> None:
    assert done.exit_code == 1, done.output
    failed = [ln for ln in done.output.splitlines() if ln.startswith("failed")]
    assert len(failed) == 1 and victim in failed[0] and "refused" in failed[0]
    assert "Traceback" not in done.output and "unexpected" not in done.output
    others = sorted(set(wanted) - {victim})
    assert on_disk(to) == others and ledger(to) == others
    assert leftovers(to) == []
    with zipfile.ZipFile(archive) as zf:
        for name in others:
            assert (to / "rec_rxrx1" / name).read_bytes() == zf.read(name)


def test_member_with_a_bad_crc_is_refused_and_not_written(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "good.zip")
    victim = WANTED[1]  # in the middle of a chunk: its neighbours are written
    bad = flip_member_byte(archive, victim, tmp_path / "bad.zip", at=MEMBER_SIZE // 2)
    with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
        zipfile.ZipFile(bad).read(victim)
    done, to = _refused_run(tmp_path, bad, WANTED)
    _check_refused(done, to, archive, WANTED, victim)


def test_member_with_a_corrupt_deflate_stream_is_refused(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "good.zip", text=True)
    victim = WANTED[1]
    bad = flip_member_byte(archive, victim, tmp_path / "bad.zip", at=1)
    with pytest.raises(Exception, match="Error -3 while decompressing"):
        zipfile.ZipFile(bad).read(victim)
    done, to = _refused_run(tmp_path, bad, WANTED)
    _check_refused(done, to, archive, WANTED, victim)


def test_dropped_connection_resumes_inside_the_chunk(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.zip")
    wanted = NAMES[20:30]
    labels = write_labels(tmp_path / "labels.parquet", wanted)
    start, end = span(archive, wanted[0], wanted[-1])
    drop = 3 * MEMBER_SIZE + 1234  # inside the fourth member
    to = tmp_path / "raw"
    with RangeServer() as srv:
        served = srv.add(ZIP_URL, archive)
        run_fetch(job(labels, to, srv), progress=False, dry_run=True)  # the index, no member
        assert len(served.ranges_asked) == 1 and on_disk(to) == []
        served.drop_after, served.drops = drop, 1
        report = run_fetch(job(labels, to, srv), progress=False)
    [source] = report.sources
    assert (source.fetched, source.failed) == (10, 0)
    assert served.ranges_asked[1:] == [
        f"bytes={start}-{end - 1}",
        f"bytes={start + drop}-{end - 1}",
    ]
    assert source.received == end - start  # nothing received twice
    with zipfile.ZipFile(archive) as zf:
        for name in wanted:
            assert (to / "rec_rxrx1" / name).read_bytes() == zf.read(name)


def test_dropped_tail_is_retried(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.zip")
    labels = write_labels(tmp_path / "labels.parquet", NAMES[:2])
    to = tmp_path / "raw"
    with RangeServer() as srv:
        served = srv.add(ZIP_URL, archive, drop_after=100, drops=1)
        report = run_fetch(job(labels, to, srv), progress=False)
    assert (report.sources[0].fetched, report.failed) == (2, 0)
    assert served.ranges_asked[0] == served.ranges_asked[1]  # the tail, asked again
    assert served.ranges_asked[0].startswith("bytes=-")


def test_partial_run_then_rerun_fetches_only_what_is_missing(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.zip")
    labels = write_labels(tmp_path / "labels.parquet", WANTED)
    first = span(archive, WANTED[0], WANTED[2])
    to = tmp_path / "raw"
    with RangeServer() as srv:
        served = srv.add(ZIP_URL, archive)
        run_fetch(job(labels, to, srv), progress=False, dry_run=True)
        served.drop_after, served.drops = 0, 1  # the first chunk's answer is cut off
        partial = run_fetch(job(labels, to, srv, retries=0), progress=False)
        assert (partial.sources[0].fetched, partial.failed) == (3, 3)
        assert on_disk(to) == WANTED[3:]
        # a member on disk with the right size but wrong bytes is fetched again
        damaged = to / "rec_rxrx1" / WANTED[4]
        damaged.write_bytes(bytes(damaged.stat().st_size))
        asked, requests = len(served.ranges_asked), srv.requests
        again = run_fetch(job(labels, to, srv), progress=False)
        assert (again.sources[0].fetched, again.sources[0].skipped, again.failed) == (4, 2, 0)
        new = served.ranges_asked[asked:]
        assert srv.requests - requests == 2  # no tail: the directory came from the index
    one = span(archive, WANTED[4], WANTED[4])
    assert new == [f"bytes={first[0]}-{first[1] - 1}", f"bytes={one[0]}-{one[1] - 1}"]
    with zipfile.ZipFile(archive) as zf:
        for name in WANTED:
            assert (to / "rec_rxrx1" / name).read_bytes() == zf.read(name)


def test_upstream_change_discards_the_index_and_a_rerun_succeeds(tmp_path: Path) -> None:
    served_file = write_archive(tmp_path / "served.zip")
    labels = write_labels(tmp_path / "labels.parquet", WANTED)
    to = tmp_path / "raw"
    index = [to / "rec_rxrx1" / ".fetch" / f"rxrx1-images.zip.{s}" for s in ("json", "tail")]
    with RangeServer() as srv:
        served: Served = srv.add(ZIP_URL, served_file)
        listed = cli(labels, to, srv, "--list")
        assert listed.exit_code == 0 and all(p.is_file() for p in index)
        write_archive(served_file, seed=1)  # a new release: other bytes, same names
        served.etag = '"v2"'
        changed = cli(labels, to, srv)
        assert changed.exit_code == 1
        assert "changed upstream" in changed.output and "Traceback" not in changed.output
        assert not any(p.exists() for p in index)
        assert on_disk(to) == []
        rerun = cli(labels, to, srv)
        assert rerun.exit_code == 0, rerun.output
    with zipfile.ZipFile(served_file) as zf:
        for name in WANTED:
            assert (to / "rec_rxrx1" / name).read_bytes() == zf.read(name)


def test_missing_archive_is_a_clear_failure(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.parquet", WANTED)
    with RangeServer() as srv:  # serves nothing: every request is a 404
        done = cli(labels, tmp_path / "raw", srv)
    assert done.exit_code == 1 and "Traceback" not in done.output
    failed = [ln for ln in done.output.splitlines() if ln.startswith("failed")]
    assert any("rxrx1-images.zip" in ln and "404" in ln for ln in failed)
    assert any(f"{len(WANTED)} needed file(s)" in ln for ln in failed)
