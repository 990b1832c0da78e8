"""``cytoimagenet download --labels``: only the raw files a build reads, from a loopback mirror."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.fakes import ALL_FAKES
from tests.fakes.range_server import RangeServer
from tests.integration.build_fixtures import write_image
from typer.testing import CliRunner

from cytoimagenet.cli import app
from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset import run_build
from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.download import remote_zip
from cytoimagenet.download.archive import extract_archive
from cytoimagenet.download.fetch_step import FetchJob, run_fetch
from cytoimagenet.schema import write_table
from cytoimagenet.sources import build_metadata

runner = CliRunner()
ZIP_URL = "/storage.googleapis.com/rxrx/rxrx1/rxrx1-images.zip"


@dataclass(frozen=True)
class World:
    full: Path  # RAW with every file, as a whole download unpacks it
    archive: Path  # rxrx1-images.zip as RxRx publishes it
    labels: Path  # huvec rows unlabelled: a real subset is needed
    needed: list[str]  # channel paths of the labelled rows
    unneeded: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("rxrx1")
    raw = base / "full" / "rec_rxrx1"
    raw.mkdir(parents=True)
    ALL_FAKES["rec_rxrx1"](raw)
    meta = build_metadata("rec_rxrx1", raw)
    rng = np.random.default_rng(0)
    for files in meta["channel_paths"].to_list():
        for rel in files:
            write_image(raw / rel, rng, size=64)
    archive = base / "srv" / "rxrx1-images.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((raw / "images").rglob("*.png")):
            zf.write(p, p.relative_to(raw).as_posix())
    result = assign_labels(
        [meta], LabelOptions(threshold=1, class_size=1000, seed=0, include_controls=True)
    )
    table = result.table.with_columns(
        pl.when(pl.col("label") == "huvec").then(None).otherwise(pl.col("label")).alias("label")
    )
    write_table(table, base / "labels.parquet")
    labelled = table.filter(pl.col("label").is_not_null())
    needed = sorted(p for ps in labelled["channel_paths"].to_list() for p in ps)
    every = sorted(p for ps in table["channel_paths"].to_list() for p in ps)
    assert 0 < len(needed) < len(every)
    return World(
        base / "full", archive, base / "labels.parquet", needed, sorted(set(every) - set(needed))
    )


@pytest.fixture
def raw(world: World, tmp_path: Path) -> Path:
    """A fresh download root holding only rxrx1's metadata, as `--metadata-only` leaves it."""
    folder = tmp_path / "raw" / "rec_rxrx1"
    folder.mkdir(parents=True)
    for csv in (world.full / "rec_rxrx1").glob("*.csv"):
        shutil.copy(csv, folder)
    return tmp_path / "raw"


@pytest.fixture
def srv(world: World) -> Iterator[RangeServer]:
    with RangeServer() as server:
        server.add(ZIP_URL, world.archive)
        yield server


def fetch_cli(labels: Path, to: Path, srv: RangeServer, *extra: str):
    args = ["download", "--labels", str(labels), "--to", str(to), "--mirror", srv.url("")]
    return runner.invoke(app, [*args, "--no-progress", *extra])


def images(root: Path) -> list[str]:
    folder = root / "rec_rxrx1"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def test_list_then_fetch_then_rerun(world: World, raw: Path, srv: RangeServer) -> None:
    size = world.archive.stat().st_size
    listed = fetch_cli(world.labels, raw, srv, "--list")
    assert listed.exit_code == 0, listed.output
    [line] = [ln for ln in listed.output.splitlines() if ln.startswith("rec_rxrx1")]
    assert line.split()[:3] == ["rec_rxrx1", "zip", "members"]
    assert line.split()[3] == str(len(world.needed))
    with zipfile.ZipFile(world.archive) as zf:
        needed = sum(zf.getinfo(p).compress_size for p in world.needed)
    cells = line.split()
    assert cells[4:8] == [f"{needed / 1e6:,.1f}", "MB", f"{size / 1e6:,.1f}", "MB"]
    assert cells[8] == f"{100 * needed / size:.1f}%"
    assert srv.requests == 1 and srv.files[ZIP_URL].ranges_asked == [f"bytes=-{remote_zip.TAIL}"]
    assert images(raw) == []
    assert (raw / "rec_rxrx1" / ".fetch" / "rxrx1-images.zip.json").is_file()

    done = fetch_cli(world.labels, raw, srv)
    assert done.exit_code == 0, done.output
    asked = srv.files[ZIP_URL].ranges_asked
    assert len(asked) > 1 and not any(a.startswith("bytes=-") for a in asked[1:])  # no new tail
    assert images(raw) == world.needed
    with zipfile.ZipFile(world.archive) as zf:
        for rel in world.needed:
            assert (raw / "rec_rxrx1" / rel).read_bytes() == zf.read(rel)
    ledger = (raw / "rec_rxrx1" / ".fetch" / "fetched.jsonl").read_text().splitlines()
    entries = {e["path"]: e for e in map(json.loads, ledger)}
    assert sorted(entries) == world.needed
    first = entries[world.needed[0]]
    data = (raw / "rec_rxrx1" / world.needed[0]).read_bytes()
    assert first["sha256"] == hashlib.sha256(data).hexdigest() and first["size"] == len(data)
    assert first["from"] == srv.url(ZIP_URL)
    assert f"{len(world.needed)} file(s) fetched" in done.output

    before = srv.requests
    again = fetch_cli(world.labels, raw, srv)
    assert again.exit_code == 0, again.output
    assert srv.requests == before  # directory from the index, every member already there
    assert "0 file(s) fetched" in again.output
    assert f"{len(world.needed)} already there" in again.output


def _dataset(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.png"))
    }


def test_build_on_the_fetched_subset_equals_build_on_the_whole_archive(
    world: World, raw: Path, srv: RangeServer, tmp_path: Path
) -> None:
    done = fetch_cli(world.labels, raw, srv)
    assert done.exit_code == 0, done.output
    assert not any((raw / "rec_rxrx1" / p).exists() for p in world.unneeded)
    whole = tmp_path / "whole"
    shutil.copytree(raw / "rec_rxrx1", whole / "rec_rxrx1", ignore=shutil.ignore_patterns("*.png"))
    shutil.rmtree(whole / "rec_rxrx1" / ".fetch")
    shutil.copy(world.archive, whole / "rec_rxrx1")
    extract_archive(whole / "rec_rxrx1" / world.archive.name)  # as a whole download unpacks it
    assert set(world.unneeded) <= set(images(whole))
    built = {}
    for name, root in (("subset", raw), ("whole", whole)):
        job = BuildJob(
            labels=world.labels,
            root=root,
            out=tmp_path / "out" / name,
            min_class_size=1,
            shard_size=4,
        )
        built[name] = run_build(job, progress=False)
    meta = {n: pl.read_parquet(tmp_path / "out" / n / "metadata.parquet") for n in built}
    assert meta["subset"].height > 0
    assert meta["subset"].equals(meta["whole"])
    assert set(meta["subset"]["label"].unique()) == {"hepg2", "rpe", "u2os"}
    pngs = _dataset(tmp_path / "out" / "subset")
    assert len(pngs) == meta["subset"].height
    assert pngs == _dataset(tmp_path / "out" / "whole")
    quarantine = pl.read_csv(tmp_path / "out" / "subset" / "quarantine.csv")
    assert quarantine.height == 0


def test_server_without_range_gets_the_whole_archive(
    world: World, raw: Path, srv: RangeServer
) -> None:
    srv.files[ZIP_URL].ranges = False
    done = fetch_cli(world.labels, raw, srv)
    assert done.exit_code == 0, done.output
    assert "does not answer Range" in done.output and "warning" in done.output
    assert srv.sent >= world.archive.stat().st_size  # the whole archive came
    assert set(world.needed) <= set(images(raw))
    with zipfile.ZipFile(world.archive) as zf:
        for rel in world.needed:
            assert (raw / "rec_rxrx1" / rel).read_bytes() == zf.read(rel)


def test_list_on_a_server_without_range_plans_the_whole_archive(
    world: World, raw: Path, srv: RangeServer
) -> None:
    srv.files[ZIP_URL].ranges = False
    listed = fetch_cli(world.labels, raw, srv, "--list")
    assert listed.exit_code == 0, listed.output
    assert "does not answer Range" in listed.output
    assert "none readable" not in listed.output
    assert not [ln for ln in listed.output.splitlines() if ln.split()[:1] == ["failed"]]


def test_whole_archive_fallback_counts_the_bytes_received(
    world: World, raw: Path, srv: RangeServer
) -> None:
    srv.files[ZIP_URL].ranges = False
    job = FetchJob(labels=world.labels, to=raw, mirror=srv.url(""), backoff=0)
    report = run_fetch(job, progress=False)
    [source] = report.sources
    assert (source.fetched, source.failed) == (len(world.needed), 0)
    assert source.received >= world.archive.stat().st_size


def test_needed_path_in_no_archive_is_named(world: World, raw: Path, srv: RangeServer) -> None:
    table = pl.read_parquet(world.labels)
    ghost = "images/HEPG2-01/Plate9/Z99_s1_w1.png"
    rows = table.to_dicts()
    first = next(r for r in rows if r["label"] is not None)
    first["channel_paths"] = [*first["channel_paths"], ghost]
    first["channels"] = [*first["channels"], "f_extra"]
    table = pl.DataFrame(rows, schema=table.schema)
    labels = raw.parent / "ghost.parquet"
    table.write_parquet(labels)
    done = fetch_cli(labels, raw, srv)
    assert done.exit_code == 1
    failed = [ln for ln in done.output.splitlines() if ln.startswith("failed")]
    assert len(failed) == 1 and ghost in failed[0] and "1 needed file(s)" in failed[0]
    assert images(raw) == world.needed  # everything else was fetched


def _errors(output: str) -> list[str]:
    assert "Traceback" not in output
    return [ln for ln in output.splitlines() if ln.startswith("error:")]


def test_labels_without_channel_paths_is_one_error_line(
    world: World, raw: Path, srv: RangeServer
) -> None:
    labels = raw.parent / "bad.parquet"
    pl.read_parquet(world.labels).drop("channel_paths").write_parquet(labels)
    done = fetch_cli(labels, raw, srv)
    assert done.exit_code == 1
    [line] = _errors(done.output)
    assert "channel_paths" in line and str(labels) in line
    assert srv.requests == 0


def test_zero_connections_is_rejected(world: World, raw: Path, srv: RangeServer) -> None:
    done = fetch_cli(world.labels, raw, srv, "--connections", "0")
    assert done.exit_code == 1
    [line] = _errors(done.output)
    assert "invalid options" in line and "connections" in done.output
    assert srv.requests == 0


def test_files_follow_the_umask(world: World, raw: Path, srv: RangeServer) -> None:
    old = os.umask(0o027)
    try:
        done = fetch_cli(world.labels, raw, srv)
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    fetch_dir = raw / "rec_rxrx1" / ".fetch"
    written = [raw / "rec_rxrx1" / world.needed[0], raw / "rec_rxrx1" / world.needed[-1]]
    written += [fetch_dir / "fetched.jsonl", fetch_dir / "rxrx1-images.zip.json"]
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o640)}


class FakeKaggle:
    """Stands in for ``KaggleApi``: single files only; a whole download is a test failure."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def competition_download_file(self, ref: str, file: str, path: str, quiet: bool) -> None:
        self.calls.append((ref, file))
        (Path(path) / Path(file).name).write_bytes(f"png of {file}".encode())

    def competition_download_files(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the whole competition was downloaded")


def test_kaggle_route_fetches_exactly_the_needed_single_files(tmp_path: Path) -> None:
    colours = ["green", "red", "blue", "yellow"]
    channels = ["f_protein", "f_microtubules", "f_nucleus", "f_er"]
    ids = ["00070df0", "000a6c98", "000a9596"]
    labels = tmp_path / "labels.parquet"
    pl.DataFrame(
        {
            "idx": ids,
            "label": ["nucleoplasm", "cytosol", None],
            "dir_name": ["kag_hpa"] * 3,
            "channels": [channels] * 3,
            "channel_paths": [[f"train/{i}_{c}.png" for c in colours] for i in ids],
        }
    ).write_parquet(labels)
    api = FakeKaggle()
    job = FetchJob(labels=labels, to=tmp_path / "raw", connections=2)
    report = run_fetch(job, progress=False, kaggle_factory=lambda: api)
    [source] = report.sources
    assert (source.route, source.needed, source.fetched, source.failed) == ("kaggle files", 8, 8, 0)
    wanted = sorted(f"train/{i}_{c}.png" for i in ids[:2] for c in colours)
    ref = "human-protein-atlas-image-classification"
    assert sorted(api.calls) == [(ref, f) for f in wanted]
    folder = tmp_path / "raw" / "kag_hpa"
    got = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert got == wanted
    assert (folder / wanted[0]).read_bytes() == f"png of {wanted[0]}".encode()
    again = run_fetch(job, progress=False, kaggle_factory=lambda: 1 / 0)
    assert (again.sources[0].skipped, again.sources[0].fetched) == (8, 0)


def test_cil_route_fetches_only_the_needed_zips(tmp_path: Path) -> None:
    tifs = {i: f"tiff {i}".encode() * 100 for i in ("53464", "53600", "53801")}
    served = tmp_path / "srv"
    served.mkdir()
    labels = tmp_path / "labels.parquet"
    pl.DataFrame(
        {
            "idx": list(tifs),
            "label": ["hela", "hela", None],
            "dir_name": ["cil_kinome"] * 3,
            "channels": [["f_nucleus", "f_protein"]] * 3,
            "channel_paths": [[f"{i}.tif"] for i in tifs],
        }
    ).write_parquet(labels)
    with RangeServer() as server:
        for cil_id, data in tifs.items():
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr(f"{cil_id}.tif", data)
            (served / f"{cil_id}.zip").write_bytes(buf.getvalue())
            url = f"/cildata.crbs.ucsd.edu/media/images/{cil_id}/{cil_id}.zip"
            server.add(url, served / f"{cil_id}.zip")
        to = tmp_path / "raw"
        done = fetch_cli(labels, to, server)
        assert done.exit_code == 0, done.output
        asked = {p.rsplit("/", 1)[1]: s.requests for p, s in server.files.items()}
        assert asked == {"53464.zip": 1, "53600.zip": 1, "53801.zip": 0}
        folder = to / "cil_kinome"
        assert (folder / "53464.tif").read_bytes() == tifs["53464"]
        assert (folder / "53600.tif").read_bytes() == tifs["53600"]
        assert not (folder / "53801.tif").exists() and not (folder / "53801.zip").exists()
        before = server.requests
        again = fetch_cli(labels, to, server)
        assert again.exit_code == 0 and server.requests == before
        assert "2 already there" in again.output
