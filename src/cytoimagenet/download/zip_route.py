"""Needed members of a source's zip archives, fetched by ``Range`` (RxRx, BBBC per-plate zips).

Per archive: read (or load) its directory, match the needed paths to members as a whole
download would unpack them, skip members already on disk with the right CRC-32, fetch the
rest in runs of adjacent members over ``--connections`` threads, and write each member only
once its CRC-32 and size match the directory. A server that does not answer ``Range`` gets
the whole archive (with a warning), as a plain download would; so do tar archives, which
have no directory to read.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cytoimagenet.download.fetch_report import Ledger, SourceFetch
from cytoimagenet.download.files import room
from cytoimagenet.download.needed import match_members
from cytoimagenet.download.ranges import NoRangeSupportError, RangeClient, RemoteChangedError
from cytoimagenet.download.remote_zip import (
    CHUNK_MAX,
    Chunk,
    Member,
    RemoteZip,
    crc_matches,
    plan_chunks,
)
from cytoimagenet.download.routes import mirrored
from cytoimagenet.errors import DownloadError
from cytoimagenet.sources.catalog import RemoteFile, SourceInfo

Whole = Callable[[SourceInfo, RemoteFile], tuple[str | None, int]]
"""Fetch (and unpack) one whole file the plain way; return (an error text or None, bytes)."""


@dataclass(frozen=True)
class ZipOptions:
    """How archives are read: connections, retries, the mirror, and the plain fallback."""

    connections: int
    retries: int
    backoff: float
    timeout: float
    mirror: str | None
    whole: Whole
    progress: bool = True
    dry_run: bool = False


@dataclass(frozen=True)
class _Task:
    archive: RemoteZip
    chunk: Chunk
    targets: dict[str, str]  # member name → path under the source folder


def zip_route(
    info: SourceInfo, paths: list[str], folder: Path, files: list[RemoteFile], opts: ZipOptions
) -> SourceFetch:
    """Fetch ``paths`` of ``info`` from its image archives into ``folder``; see the module."""
    result = SourceFetch(info.name, "zip members", needed=len(paths))
    images = [f for f in files if f.kind == "images"]
    zips = [f for f in images if f.is_archive and f.path.lower().endswith(".zip")]
    opened: dict[str, RemoteZip] = {}
    plain: list[tuple[RemoteFile, str]] = []  # fetched whole, and why
    for remote in zips:
        archive = _open(remote, folder, opts, result, plain)
        if archive is not None:
            opened[remote.path] = archive
            result.whole_bytes += archive.size
    matched = match_members(paths, {p: a.names for p, a in opened.items()})
    missing = [p for p in matched.missing if not (folder / p).is_file()]
    result.skipped += len(matched.missing) - len(missing)
    if missing and not opts.dry_run:
        for remote in images:  # tar archives and loose files: only the plain way
            if remote not in zips and (remote.is_archive or remote.path in missing):
                plain.append((remote, "it is not a zip archive"))
        for remote, why in plain:
            _whole(info, remote, opts, result, why)
        still = [p for p in missing if not (folder / p).is_file()]
        result.add(fetched=len(missing) - len(still))
        missing = still
    if missing and plain and opts.dry_run:
        names = ", ".join(r.path for r, _ in plain)
        result.note("", f"{len(missing)} needed file(s) will come from {names}, fetched whole")
    elif missing:
        result.fail(
            missing[0],
            f"{len(missing)} needed file(s) are in none of the source's archives "
            f"({', '.join(sorted(opened)) or 'none readable'}), e.g. {missing[0]}; was the "
            "labels table built from another release of the source?",
            files=len(missing),
        )
    tasks = _tasks(opened, matched.found, folder, result)
    if opts.dry_run or not tasks:
        return _closed(result, opened)
    members = [m for t in tasks for m in t.chunk.members]
    try:
        (folder / ".fetch").mkdir(parents=True, exist_ok=True)
        room(folder / ".fetch" / "members", sum(m.info.file_size for m in members), info.name)
    except (OSError, DownloadError) as exc:
        result.fail("", str(exc), files=len(members))
        return _closed(result, opened)
    _run(tasks, folder, opts, result)
    return _closed(result, opened)


def _closed(result: SourceFetch, opened: dict[str, RemoteZip]) -> SourceFetch:
    """Count the bytes the archives' clients received and close their connections."""
    for archive in opened.values():
        result.received += archive.client.received
        archive.client.close()
    return result


def _open(
    remote: RemoteFile,
    folder: Path,
    opts: ZipOptions,
    result: SourceFetch,
    plain: list[tuple[RemoteFile, str]],
) -> RemoteZip | None:
    client = RangeClient(
        mirrored(remote.url, opts.mirror),
        retries=opts.retries,
        backoff=opts.backoff,
        timeout=opts.timeout,
        same_host=bool(opts.mirror),
    )
    index = folder / ".fetch" / remote.path
    try:
        return RemoteZip(client, index)
    except NoRangeSupportError:
        result.received += client.received
        plain.append((remote, "the server does not answer Range requests"))
        if opts.dry_run:
            result.note(remote.path, "the server does not answer Range requests: fetched whole")
    except DownloadError as exc:
        result.received += client.received
        result.fail(remote.path, str(exc), files=0)
    return None


def _whole(
    info: SourceInfo, remote: RemoteFile, opts: ZipOptions, result: SourceFetch, why: str
) -> None:
    """Fetch one file the plain way, noting why (a warning)."""
    error, received = opts.whole(info, remote)
    result.add(received=received)
    if error:
        result.fail(remote.path, error, files=0)
    else:
        result.note(remote.path, f"warning: {why}; fetched the whole file and unpacked it")


def _tasks(
    opened: dict[str, RemoteZip],
    found: dict[str, dict[str, str]],
    folder: Path,
    result: SourceFetch,
) -> list[_Task]:
    tasks: list[_Task] = []
    for path, archive in opened.items():
        wanted = found.get(path, {})
        todo: list[Member] = []
        targets: dict[str, str] = {}
        for where, name in wanted.items():
            member = archive.members.get(name)
            if member is None:
                why = "a link or special file in the archive; only a whole download unpacks it"
                result.fail(where, f"{name} is {why}")
                continue
            result.needed_bytes += member.info.compress_size
            if crc_matches(folder / where, member):
                result.skipped += 1
                continue
            todo.append(member)
            targets[name] = where
        tasks += [_Task(archive, c, targets) for c in plan_chunks(todo, CHUNK_MAX)]
    return tasks


def _run(tasks: list[_Task], folder: Path, opts: ZipOptions, result: SourceFetch) -> None:
    from tqdm.auto import tqdm

    ledger = Ledger(folder)
    staging = folder / ".fetch"
    staging.mkdir(parents=True, exist_ok=True)
    total = sum(t.chunk.end - t.chunk.start for t in tasks)
    forgotten: set[int] = set()
    with tqdm(
        total=total,
        desc=f"{result.source} members",
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not opts.progress or not tasks,
    ) as bar:

        def one(task: _Task) -> None:
            chunk = task.chunk
            with tempfile.SpooledTemporaryFile(max_size=CHUNK_MAX + 1, dir=staging) as spool:
                try:
                    if task.archive.holds(chunk):  # already in the index: nothing to fetch
                        bar.update(chunk.end - chunk.start)
                    else:
                        task.archive.client.fetch(chunk.start, chunk.end, spool, bar.update)
                except DownloadError as exc:
                    if isinstance(exc, RemoteChangedError) and id(task.archive) not in forgotten:
                        forgotten.add(id(task.archive))
                        task.archive.forget()
                    first = task.targets[chunk.members[0].name]
                    result.fail(first, str(exc), files=len(chunk.members))
                    return
                for member in chunk.members:
                    where = task.targets[member.name]
                    try:
                        digest = task.archive.extract(chunk, spool, member, folder / where)
                    except (DownloadError, OSError) as exc:
                        result.fail(where, str(exc))
                        continue
                    ledger.record(
                        where,
                        member.info.file_size,
                        digest,
                        task.archive.client.url,
                        member.info.CRC,
                    )
                    result.add(fetched=1)

        with ThreadPoolExecutor(max_workers=opts.connections) as pool:
            list(pool.map(one, tasks))
