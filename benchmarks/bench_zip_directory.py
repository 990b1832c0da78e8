"""Opening a remote zip with an RxRx1-size directory: first read over HTTP, then from the index.

RxRx1's ``rxrx1-images.zip`` holds about 754,000 members (125,510 fields x 6 channels),
so its central directory alone is tens of MB. This script writes a zip of ``--members``
one-byte members named in RxRx's layout (the directory is what matters, not the data),
serves it from a loopback Range server, and times ``RemoteZip``: the first open (tail fetch,
directory parse, name cleaning, index written) and a rerun's open from the kept index.
It prints the seconds per 100,000 entries and the peak memory of the process.

Usage::

    python benchmarks/bench_zip_directory.py [--members 754000] [--cache /tmp/cin-bigcd]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from cytoimagenet.download.ranges import RangeClient
from cytoimagenet.download.remote_zip import RemoteZip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.range_server import RangeServer


def member_names(count: int) -> list[str]:
    """RxRx1-style member paths: experiment/plate/well_site_channel.png."""
    names = []
    for i in range(count):
        field, channel = divmod(i, 6)
        plate, rest = divmod(field, 308 * 2)
        well, site = divmod(rest, 2)
        row, col = divmod(well, 22)
        names.append(
            f"rxrx1/images/HEPG2-{plate // 4 + 1:02d}/Plate{plate % 4 + 1}/"
            f"{chr(66 + row % 14)}{col + 2:02d}_s{site + 1}_w{channel + 1}.png"
        )
    return names


def write_archive(path: Path, count: int) -> None:
    """A zip of ``count`` one-byte members (ZIP64 end records once past 65,535 entries)."""
    if path.exists():
        return
    part = path.with_suffix(".part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in member_names(count):
            zf.writestr(name, b"x")
    part.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=754_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cin-bigcd")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    archive = args.cache / f"big-{args.members}.zip"
    start = time.perf_counter()
    write_archive(archive, args.members)
    print(
        f"archive: {archive.stat().st_size / 1e6:.1f} MB, {args.members:,} members "
        f"(ready in {time.perf_counter() - start:.1f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp, RangeServer() as server:
        server.add("/big.zip", archive)
        index = Path(tmp) / ".fetch" / "big.zip"
        timings = {}
        for run in ("first open (HTTP)", "rerun (index)"):
            client = RangeClient(server.url("/big.zip"), retries=0, backoff=0.0)
            start = time.perf_counter()
            remote = RemoteZip(client, index)
            timings[run] = time.perf_counter() - start
            assert len(remote.members) == args.members, len(remote.members)
            print(
                f"{run}: {timings[run]:.2f} s "
                f"({timings[run] / args.members * 1e5:.2f} s per 100k entries), "
                f"{client.received / 1e6:.1f} MB received"
            )
            client.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
