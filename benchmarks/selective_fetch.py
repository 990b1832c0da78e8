"""Time ``download --labels`` (members of a big zip by HTTP Range) against a whole download.

Builds once, and keeps in ``--work``, an RxRx1-like ``rxrx1-images.zip``: ``--gb`` GiB
(default 2.1, so zipfile writes the ZIP64 end records) of 8-bit 512×512 noisy PNGs, six
channels per field, laid out as ``images/<experiment>/Plate<p>/<well>_s<site>_w<n>.png``
with directory entries, members stored (ZIP_STORED: PNGs barely deflate). A pool of 64
distinct PNGs (~120-250 KB each, like RxRx's) is reused across members to keep generation
fast. A labels table selects ``--share`` of the fields (seeded random choice, not blocks).

Served from a loopback Range server (``tests/fakes/range_server.py``), it measures:

1. without latency: a selective fetch into a fresh RAW (directory read remotely, 4
   connections, the CLI default): bytes sent / bytes of the needed members (goal ≤ 1.05)
   and wall time; then the whole-archive download (``http.fetch``) and its unpacking
   (``extract_archive``) from the same server;
2. with ``--latency`` seconds added per request: the selective fetch with each of
   ``--connections``, each into a fresh RAW with the saved directory index copied in (so
   only member requests are counted): wall time, requests, MB/s, speed-up vs the first;
3. every fetched file of run 1 byte-for-byte against ``zipfile.ZipFile(archive).read``.

Usage::

    PYTHONPATH=. python benchmarks/selective_fetch.py [--quick] [--gb 2.1] [--share 0.13]
        [--connections 1 2 4 8 16] [--latency 0.02] [--work DIR] [--seed 0] [--no-keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import polars as pl
from tests.fakes.range_server import RangeServer

from cytoimagenet.download.archive import extract_archive
from cytoimagenet.download.fetch_step import FetchJob, run_fetch
from cytoimagenet.download.http import fetch

URL_PATH = "/storage.googleapis.com/rxrx/rxrx1/rxrx1-images.zip"
SOURCE = "rec_rxrx1"
CHANNELS = ["f_nucleus", "f_er", "f_actin", "f_nucleoli", "f_mitochondria", "f_golgi"]
EXPERIMENTS = [f"{c}-{i:02d}" for c in ("HEPG2", "HUVEC", "RPE", "U2OS") for i in range(1, 25)]
WELLS = [f"{r}{c:02d}" for r in "BCDEFGHIJKLMNO" for c in range(2, 24)]
STAMP = (2019, 6, 1, 0, 0, 0)
FORMAT = 1
MB = 1e6


def png_pool(n: int, seed: int) -> list[bytes]:
    """Distinct 512×512 8-bit PNGs: blurred blobs plus noise of varied strength."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(n):
        blobs = cv2.GaussianBlur(rng.random((512, 512), np.float32) * 255, (0, 0), 6)
        noise = rng.normal(0, np.exp(rng.uniform(0.5, 3.5)), (512, 512))
        img = np.clip(blobs * 3 - 300 + noise + 40, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".png", img)
        assert ok
        pool.append(buf.tobytes())
    return pool


def fields():
    """(experiment, plate, well, site) in the order the archive stores them."""
    for exp in EXPERIMENTS:
        for plate in range(1, 5):
            for well in WELLS:
                for site in (1, 2):
                    yield exp, plate, well, site


def member_paths(field: tuple[str, int, str, int]) -> list[str]:
    exp, plate, well, site = field
    return [f"images/{exp}/Plate{plate}/{well}_s{site}_w{n}.png" for n in range(1, 7)]


def build_archive(path: Path, gib: float, seed: int) -> None:
    """Write the archive (see the module docstring) unless one with these parameters exists."""
    meta = path.with_suffix(".json")
    params = {"format": FORMAT, "gib": gib, "seed": seed}
    if path.is_file() and meta.is_file():
        saved = json.loads(meta.read_text())
        if saved.get("params") == params and saved.get("size") == path.stat().st_size:
            print(f"archive: reusing {path} ({path.stat().st_size / 1e9:.2f} GB)")
            return
    t0 = time.perf_counter()
    pool = png_pool(64, seed)
    t_pool = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    target, written, members, dirs = int(gib * 2**30), 0, 0, set()
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for field in fields():
            if written >= target:
                break
            folder = member_paths(field)[0].rsplit("/", 1)[0]
            parts = folder.split("/")
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i]) + "/"
                if d not in dirs:
                    dirs.add(d)
                    zf.writestr(zipfile.ZipInfo(d, STAMP), b"")
            for name in member_paths(field):
                data = pool[rng.integers(len(pool))]
                zf.writestr(zipfile.ZipInfo(name, STAMP), data)
                written += len(data)
                members += 1
    tmp.replace(path)
    meta.write_text(json.dumps({"params": params, "size": path.stat().st_size}))
    took = time.perf_counter() - t0
    sizes = [len(p) for p in pool]
    print(
        f"archive: wrote {path} ({path.stat().st_size / 1e9:.2f} GB, {members:,} PNG members, "
        f"{len(dirs)} directory entries; PNG pool of 64: {min(sizes) // 1000}-"
        f"{max(sizes) // 1000} KB, encoded in {t_pool:.1f} s) in {took:.1f} s"
    )


def write_labels(archive: Path, labels: Path, share: float, seed: int):
    """Label ``share`` of the fields; return the needed members, their bytes, all fields."""
    with zipfile.ZipFile(archive) as zf:
        sizes = {i.filename: i.compress_size for i in zf.infolist() if not i.is_dir()}
    present = _fields_upto(len(sizes) // 6)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(present), round(share * len(present)), replace=False))
    rows = [member_paths(present[i]) for i in pick]
    pl.DataFrame(
        {
            "label": [f"sirna {rng.integers(1, 1139)}" for _ in rows],
            "dir_name": SOURCE,
            "channels": [CHANNELS] * len(rows),
            "channel_paths": rows,
            "idx": list(range(len(rows))),
        }
    ).write_parquet(labels)
    needed = [p for row in rows for p in row]
    print(
        f"labels: {len(rows):,} of {len(present):,} fields ({len(rows) / len(present):.1%}), "
        f"{len(needed):,} files, {sum(sizes[p] for p in needed) / MB:,.1f} MB of members"
    )
    return needed, sum(sizes[p] for p in needed), len(present)


def _fields_upto(n: int) -> list[tuple[str, int, str, int]]:
    out = []
    for field in fields():
        if len(out) == n:
            break
        out.append(field)
    return out


def selective(srv: RangeServer, labels: Path, raw: Path, connections: int, index: Path | None):
    """One selective fetch into a fresh ``raw``; return (SourceFetch, seconds, sent, requests)."""
    shutil.rmtree(raw, ignore_errors=True)
    if index is not None:
        dest = raw / SOURCE / ".fetch"
        dest.mkdir(parents=True)
        for f in index.glob("rxrx1-images.zip.*"):
            shutil.copy2(f, dest / f.name)
    job = FetchJob(labels=labels, to=raw, connections=connections, mirror=srv.url(""))
    sent, requests = srv.sent, srv.requests
    t0 = time.perf_counter()
    report = run_fetch(job, progress=False)
    took = time.perf_counter() - t0
    assert report.failed == 0, report.sources[0].outcomes[:3]
    (src,) = report.sources
    return src, took, srv.sent - sent, srv.requests - requests


def whole(srv: RangeServer, work: Path) -> tuple[float, float, int]:
    """Download the whole archive and unpack it; return (download s, unpack s, bytes sent)."""
    dest = work / "whole" / SOURCE
    shutil.rmtree(dest.parent, ignore_errors=True)
    sent = srv.sent
    t0 = time.perf_counter()
    got = fetch(srv.url(URL_PATH), dest / "rxrx1-images.zip", retries=0)
    t_fetch = time.perf_counter() - t0
    sent = srv.sent - sent
    t0 = time.perf_counter()
    extract_archive(got.path)
    t_unpack = time.perf_counter() - t0
    shutil.rmtree(dest.parent)
    return t_fetch, t_unpack, sent


def verify(archive: Path, raw: Path, needed: list[str]) -> int:
    """Compare every fetched file with the archive's member; return how many matched."""
    with zipfile.ZipFile(archive) as zf:
        for name in needed:
            assert (raw / SOURCE / name).read_bytes() == zf.read(name), name
    return len(needed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=None, help="archive GiB (default 2.1)")
    parser.add_argument("--share", type=float, default=0.13)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cin-fetch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quick", action="store_true", help="a 0.2 GiB archive")
    args = parser.parse_args()
    gib = args.gb if args.gb is not None else (0.2 if args.quick else 2.1)
    args.work.mkdir(parents=True, exist_ok=True)
    archive = args.work / f"rxrx1-images-{gib:g}gib-s{args.seed}.zip"
    labels, raw = args.work / "labels.parquet", args.work / "raw"
    print(f"machine: {os.cpu_count()} CPU(s); work dir {args.work}")
    build_archive(archive, gib, args.seed)
    size = archive.stat().st_size
    with archive.open("rb") as fh:
        fh.seek(max(0, size - (1 << 20)))
        zip64 = b"PK\x06\x06" in fh.read()
    if size > 2**31:
        assert zip64, "an archive past 2 GiB must carry the ZIP64 end record"
    print(f"archive: {size:,} bytes, ZIP64 end record: {'yes' if zip64 else 'no'}")
    needed, needed_bytes, n_fields = write_labels(archive, labels, args.share, args.seed)

    runs = []
    with RangeServer(latency=0) as srv:  # one server (one URL), so the saved index applies
        served = srv.add(URL_PATH, archive)
        src, t_sel, sent, reqs = selective(srv, labels, raw, 4, None)
        assert src.fetched == len(needed) and src.needed_bytes == needed_bytes
        n_ok = verify(archive, raw, needed)
        t_whole, t_unpack, whole_sent = whole(srv, args.work)
        index = args.work / "index"
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(raw / SOURCE / ".fetch", index)
        print(
            f"\nno latency, 4 connections: selective {t_sel:.2f} s, {reqs} requests, "
            f"{sent / MB:,.1f} MB sent (report: {src.received / MB:,.1f} MB received); "
            f"verified {n_ok:,}/{len(needed):,} files byte for byte"
        )
        print(
            f"whole archive: download {t_whole:.2f} s ({whole_sent / MB:,.0f} MB), "
            f"unpack {t_unpack:.2f} s"
        )
        srv.latency = args.latency
        for c in args.connections:
            asked = len(served.ranges_asked)
            s, t, sent_c, reqs_c = selective(srv, labels, raw, c, index)
            assert s.fetched == len(needed), (s.fetched, len(needed))
            assert not any(r.startswith("bytes=-") for r in served.ranges_asked[asked:])
            runs.append((c, t, reqs_c, sent_c))
            print(f"{args.latency * 1000:g} ms latency, {c} connection(s): {t:.2f} s")
    shutil.rmtree(raw, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)

    base = runs[0][1]
    table = [
        f"| connections | wall (s) | requests | MB/s | speed-up vs {runs[0][0]} |",
        "|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {c} | {t:.2f} | {r} | {needed_bytes / MB / t:,.0f} | {base / t:.2f}× |"
        for c, t, r, _ in runs
    ]
    summary = [
        f"Archive: {size / 1e9:.2f} GB ZIP64={'yes' if zip64 else 'no'}, "
        f"{src.needed:,} needed files ({len(needed) // 6:,} of {n_fields:,} fields) "
        f"({needed_bytes / MB:,.1f} MB of members, {needed_bytes / size:.1%} of the archive); "
        f"{os.cpu_count()} CPU(s), loopback server.",
        "",
        "| measure | selective | whole archive | ratio |",
        "|---|---:|---:|---:|",
        f"| bytes sent / needed member bytes | {sent / needed_bytes:.4f} | "
        f"{whole_sent / needed_bytes:.2f} | {whole_sent / sent:.1f}× fewer |",
        f"| report `received` / `needed_bytes` | {src.received / src.needed_bytes:.4f} | | |",
        f"| wall time, no latency (s) | {t_sel:.2f} | {t_whole:.2f} | {t_whole / t_sel:.1f}× |",
        f"| … plus unpacking (s) | {t_sel:.2f} | {t_whole + t_unpack:.2f} | "
        f"{(t_whole + t_unpack) / t_sel:.1f}× |",
        "",
        f"Selective fetch with {args.latency * 1000:g} ms per request (saved index reused):",
        "",
        *table,
    ]
    print("\n" + "\n".join(summary))
    ratio = sent / needed_bytes
    print(f"\nbytes ratio {ratio:.4f} ({'within' if ratio <= 1.05 else 'ABOVE'} the 1.05 goal)")
    if not args.keep:
        archive.unlink()
        archive.with_suffix(".json").unlink()


if __name__ == "__main__":
    main()
