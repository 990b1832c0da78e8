"""Members of remote zip archives by HTTP Range: ZIP64, chunks, the local index, CRC checks."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.fakes.range_server import RangeServer, flip_member_byte, write_labels

from cytoimagenet.download import remote_zip
from cytoimagenet.download.fetch_step import FetchJob, run_fetch
from cytoimagenet.download.ranges import NoRangeSupportError, RangeClient, RemoteChangedError
from cytoimagenet.download.remote_zip import Member, RemoteZip, plan_chunks
from cytoimagenet.errors import DownloadError
from cytoimagenet.sources.catalog import RemoteFile

N_MEMBERS, MEMBER_SIZE = 200, 20_000
# Runs of adjacent members and singletons: 5 chunks.
#: The bound on the bytes read for the directory: the archive's last MiB at most.
TAIL_BOUND = 1 << 20
WANTED = [f"m/f{i:03d}.bin" for i in (3, 4, 5, 50, 51, 120, 150, 151, 152, 199)]


def payloads(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {f"m/f{i:03d}.bin": rng.bytes(MEMBER_SIZE) for i in range(N_MEMBERS)}


def python_zip64(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Written by :mod:`zipfile` with ZIP64 extras and the ZIP64 end records."""
    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZIP64_LIMIT", 1000)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in payloads().items():
                with zf.open(name, "w", force_zip64=True) as out:
                    out.write(data)
    return path


def infozip_zip64(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Written by Info-ZIP ``zip -fz`` (forced ZIP64), members in the order given."""
    zip_exe = shutil.which("zip")
    if zip_exe is None:
        pytest.skip("Info-ZIP `zip` is not installed")
    src = path.parent / "infozip-src"
    for name, data in payloads().items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    argv = [zip_exe, "-q", "-fz", str(path), *payloads()]
    subprocess.run(argv, cwd=src, check=True, capture_output=True)  # noqa: S603
    return path


BUILDERS = {"python": python_zip64, "infozip": infozip_zip64}


def wanted_bytes(archive: Path, names: list[str]) -> int:
    with zipfile.ZipFile(archive) as zf:
        return sum(zf.getinfo(n).compress_size for n in names)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_zip64_members_fetched_by_range(
    builder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = BUILDERS[builder](tmp_path / "a.zip", monkeypatch)
    raw = archive.read_bytes()
    assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw  # ZIP64 end record and locator
    assert len(raw) > 2 * TAIL_BOUND
    out = tmp_path / "out"
    with RangeServer() as srv, zipfile.ZipFile(archive) as ref:
        srv.add("/a.zip", archive)
        client = RangeClient(srv.url("/a.zip"), backoff=0)
        rz = RemoteZip(client, tmp_path / "index" / "a.zip")
        assert rz.size == len(raw) and not rz.from_index
        assert set(rz.members) == set(ref.namelist())
        chunks = plan_chunks([rz.members[n] for n in WANTED])
        assert [len(c.members) for c in chunks] == [3, 2, 1, 3, 1]
        for chunk in chunks:
            buf = io.BytesIO()
            client.fetch(chunk.start, chunk.end, buf)
            assert len(buf.getvalue()) == chunk.end - chunk.start
            for member in chunk.members:
                digest = rz.extract(chunk, buf, member, out / member.name)
                data = (out / member.name).read_bytes()
                assert data == ref.read(member.name)
                assert digest == hashlib.sha256(data).hexdigest()
        assert srv.requests == 1 + len(chunks)  # the tail, then one request per chunk
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["m", *WANTED]
    tail = min(len(raw), TAIL_BOUND)
    assert client.received <= tail + 1.05 * wanted_bytes(archive, WANTED)
    assert client.received < len(raw) / 2


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_zip64_members_through_run_fetch(
    builder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = BUILDERS[builder](tmp_path / "a.zip", monkeypatch)
    labels = tmp_path / "labels.parquet"
    write_labels(labels, WANTED)
    raw = tmp_path / "raw"
    with RangeServer() as srv:
        srv.add("/a.zip", archive)
        files = {"rec_rxrx1": [RemoteFile(url=srv.url("/a.zip"), path="rxrx1-images.zip")]}
        job = FetchJob(labels=labels, to=raw, connections=3, backoff=0)
        report = run_fetch(job, progress=False, files=files)
    [source] = report.sources
    assert (source.route, source.needed, source.fetched, source.failed) == (
        "zip members",
        10,
        10,
        0,
    )
    assert source.whole_bytes == archive.stat().st_size
    assert source.needed_bytes == wanted_bytes(archive, WANTED)
    tail = min(archive.stat().st_size, TAIL_BOUND)
    assert source.received <= tail + 1.05 * source.needed_bytes
    with zipfile.ZipFile(archive) as ref:
        for name in WANTED:
            assert (raw / "rec_rxrx1" / name).read_bytes() == ref.read(name)
    written = sorted(p.name for p in (raw / "rec_rxrx1" / "m").iterdir())
    assert written == sorted(Path(n).name for n in WANTED)


def small_archive(path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            zf.writestr(f"d/{i:04d}-{'x' * 60}.bin", rng.bytes(3000))
    return path


def test_directory_beyond_the_first_tail_is_read_backwards_and_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = small_archive(tmp_path / "a.zip", n=120)
    monkeypatch.setattr(remote_zip, "TAIL", 512)  # far less than the ~14 KB directory
    index = tmp_path / ".fetch" / "a.zip"
    with RangeServer() as srv, zipfile.ZipFile(archive) as ref:
        srv.add("/a.zip", archive)
        rz = RemoteZip(RangeClient(srv.url("/a.zip"), backoff=0), index)
        assert set(rz.members) == set(ref.namelist())
        assert rz.index_bytes > 512 and rz.index_bytes < archive.stat().st_size
        assert srv.requests >= 2  # the tail, then the rest of the directory
        meta = (tmp_path / ".fetch" / "a.zip.json").read_text()
        assert '"members": 120' in meta
        tail = (tmp_path / ".fetch" / "a.zip.tail").read_bytes()
        assert archive.read_bytes().endswith(tail) and len(tail) == rz.index_bytes
        before = srv.requests
        again = RemoteZip(RangeClient(srv.url("/a.zip"), backoff=0), index)
        assert again.from_index and srv.requests == before and again.client.requests == 0
        assert again.client.version is not None and again.client.version.etag == '"v1"'
        name = sorted(ref.namelist())[7]
        member = again.members[name]
        [chunk] = plan_chunks([member])
        buf = io.BytesIO()
        again.client.fetch(chunk.start, chunk.end, buf)
        again.extract(chunk, buf, member, tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == ref.read(name)


class _Unseekable(io.RawIOBase):
    """A write-only stream: :mod:`zipfile` then writes data descriptors after each member."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self.out.write(data)


def test_members_with_data_descriptors(tmp_path: Path) -> None:
    archive = tmp_path / "streamed.zip"
    data = payloads()
    with (
        archive.open("wb") as fh,
        zipfile.ZipFile(_Unseekable(fh), "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        for name in list(data)[:20]:
            zf.writestr(name, data[name])
    with zipfile.ZipFile(archive) as ref:
        assert all(i.flag_bits & 0x08 for i in ref.infolist())
        directory = ref.start_dir  # type: ignore[attr-defined]
    names = list(data)[4:7] + list(data)[19:20]
    with RangeServer() as srv:
        srv.add("/s.zip", archive)
        rz = RemoteZip(RangeClient(srv.url("/s.zip")), tmp_path / ".fetch" / "s.zip")
        chunks = plan_chunks([rz.members[n] for n in names])
        assert [c.end for c in chunks] == [rz.members[list(data)[7]].start, directory]
        for chunk in chunks:
            buf = io.BytesIO()
            rz.client.fetch(chunk.start, chunk.end, buf)
            for member in chunk.members:
                rz.extract(chunk, buf, member, tmp_path / "out" / member.name)
                assert (tmp_path / "out" / member.name).read_bytes() == data[member.name]


def test_a_damaged_index_is_ignored_and_rewritten(tmp_path: Path) -> None:
    archive = small_archive(tmp_path / "a.zip")
    index = tmp_path / ".fetch" / "a.zip"
    with RangeServer() as srv:
        srv.add("/a.zip", archive)
        RemoteZip(RangeClient(srv.url("/a.zip")), index)
        tail = tmp_path / ".fetch" / "a.zip.tail"
        tail.write_bytes(b"X" + tail.read_bytes()[1:])
        rz = RemoteZip(RangeClient(srv.url("/a.zip")), index)
        assert not rz.from_index and srv.requests == 2
        assert tail.read_bytes() == archive.read_bytes()[-len(tail.read_bytes()) :]
        # an index of another URL is not taken either
        other = RemoteZip(RangeClient(srv.url("/a.zip?copy")), index)
        assert not other.from_index and srv.requests == 3


def test_extract_refuses_a_crc_mismatch_and_writes_nothing(tmp_path: Path) -> None:
    archive = small_archive(tmp_path / "a.zip")
    name = sorted(zipfile.ZipFile(archive).namelist())[3]
    bad = flip_member_byte(archive, name, tmp_path / "bad.zip")
    out = tmp_path / "out"
    out.mkdir()
    with RangeServer() as srv:
        srv.add("/a.zip", bad)
        rz = RemoteZip(RangeClient(srv.url("/a.zip")), tmp_path / ".fetch" / "a.zip")
        member = rz.members[name]
        [chunk] = plan_chunks([member])
        buf = io.BytesIO()
        rz.client.fetch(chunk.start, chunk.end, buf)
        with pytest.raises(DownloadError, match=rf"member {name} refused.*CRC"):
            rz.extract(chunk, buf, member, out / "m.bin")
    assert list(out.iterdir()) == []


def test_plan_chunks_joins_touching_spans_up_to_the_cap() -> None:
    spans = [("a", 0, 40), ("b", 40, 80), ("c", 80, 120), ("d", 130, 300), ("e", 300, 310)]
    members = [Member(zipfile.ZipInfo(n), s, e) for n, s, e in reversed(spans)]
    got = [(c.start, c.end, [m.name for m in c.members]) for c in plan_chunks(members, 100)]
    assert got == [(0, 80, ["a", "b"]), (80, 120, ["c"]), (130, 300, ["d"]), (300, 310, ["e"])]
    assert plan_chunks([]) == []


def test_range_client_refuses_a_server_without_ranges(tmp_path: Path) -> None:
    archive = small_archive(tmp_path / "a.zip")
    with RangeServer() as srv:
        srv.add("/a.zip", archive, ranges=False)
        client = RangeClient(srv.url("/a.zip"))
        with pytest.raises(NoRangeSupportError, match="does not answer Range"):
            client.tail(1000)
        assert client.requests == 1


def test_range_client_sees_a_new_version(tmp_path: Path) -> None:
    archive = small_archive(tmp_path / "a.zip")
    with RangeServer() as srv:
        served = srv.add("/a.zip", archive)
        client = RangeClient(srv.url("/a.zip"), retries=0)
        start, tail = client.tail(100)
        assert start == archive.stat().st_size - 100 and len(tail) == 100
        served.etag = '"v2"'  # If-Range no longer matches: the whole file comes back
        with pytest.raises(RemoteChangedError, match="changed upstream"):
            client.fetch(0, 10, io.BytesIO())
        served.etag = '"v1"'
        archive.write_bytes(archive.read_bytes() + b"more")  # same tag, another size
        with pytest.raises(RemoteChangedError, match="changed upstream"):
            client.fetch(0, 10, io.BytesIO())
