"""``download --labels``: fetch only the raw files a build of a labels table reads.

From the labels table, every channel file ``build`` opens (:mod:`.needed`), per source; then
each source's route by its catalog access (a table, not a chain of ``if``):

========  ===============================================================================
access    route
========  ===============================================================================
rxrx      members of the image zips by HTTP ``Range`` (:mod:`.zip_route`)
direct    the same for zip archives; tar archives and loose files the plain way
kaggle    single files through the official client (:mod:`.file_routes`)
cil       one ``<id>.zip`` per needed image
idr       an Aspera file list and the ``ascp`` command (:mod:`.idr_route`)
========  ===============================================================================

Files land where a whole download would unpack them, ``RAW/<source>/<channel path>``, so
``build --root RAW`` reads the subset as it reads everything. Reruns skip what is there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from cytoimagenet.config import _Job
from cytoimagenet.download import http
from cytoimagenet.download.archive import MAX_EXTRACT, MAX_RATIO
from cytoimagenet.download.fetch_report import FetchReport, SourceFetch
from cytoimagenet.download.file_routes import cil_files, fetch_files, kaggle_files
from cytoimagenet.download.http import Fetched, fetch
from cytoimagenet.download.needed import needed_files
from cytoimagenet.download.routes import fetch_kaggle, kaggle_api, mirrored
from cytoimagenet.download.step import DownloadJob, fetch_one, writable_root
from cytoimagenet.download.zip_route import ZipOptions, zip_route
from cytoimagenet.errors import UnknownSourceError
from cytoimagenet.fields import OutputDir, existing_file
from cytoimagenet.sources.catalog import RemoteFile, SourceInfo, get_source


class FetchJob(_Job):
    """Fetch the files a labels table needs.

    Attributes
    ----------
    labels : Path
        The table ``cytoimagenet labels`` wrote.
    to : Path
        Download root (``build --root``); source S goes to ``<to>/S/``.
    sources : list of str
        Only these sources of the table (all when empty).
    connections : int
        Concurrent requests per source.
    retries, backoff, timeout, mirror, deadline, stall, max_unknown_size, max_extract_size,
    max_ratio
        As for a whole download (:class:`cytoimagenet.download.step.DownloadJob`).
    """

    labels: Annotated[Path, existing_file("labels table")]
    to: OutputDir
    sources: list[str] = Field(default_factory=list)
    connections: int = Field(default=4, ge=1, le=64)
    retries: int = Field(default=3, ge=0, le=20)
    backoff: float = Field(default=1.0, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    mirror: str | None = None
    deadline: float | None = Field(default=http.DEADLINE, gt=0)
    stall: float | None = Field(default=http.STALL, gt=0)
    max_unknown_size: int | None = Field(default=http.MAX_UNKNOWN, gt=0)
    max_extract_size: int | None = Field(default=MAX_EXTRACT, gt=0)
    max_ratio: float | None = Field(default=MAX_RATIO, gt=1)

    @field_validator("sources")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(get_source(v).name for v in value))

    @field_validator("mirror")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value}: a mirror is an http(s):// base URL")
        return value

    def plain(self, source: str) -> DownloadJob:
        """Return the options of a whole download of ``source`` (the fallback route)."""
        keep = set(DownloadJob.model_fields) - {"sources", "metadata_only", "extract", "refresh"}
        return DownloadJob(sources=[source], **{k: getattr(self, k) for k in keep})


@dataclass(frozen=True)
class _Context:
    job: FetchJob
    progress: bool
    dry_run: bool
    files: dict[str, list[RemoteFile]]
    kaggle_factory: Callable[[], object]

    def remote_files(self, info: SourceInfo) -> list[RemoteFile]:
        return self.files.get(info.name, list(info.files))

    def get(self, info: SourceInfo, remote: RemoteFile, target: Path) -> Fetched:
        if remote.url.startswith("kaggle:"):
            return fetch_kaggle(remote, target, api_factory=self.kaggle_factory)
        job = self.job
        return fetch(
            mirrored(remote.url, job.mirror),
            target,
            size=remote.size,
            sha256=remote.sha256,
            retries=job.retries,
            backoff=job.backoff,
            timeout=job.timeout,
            deadline=job.deadline,
            stall=job.stall,
            max_unknown=job.max_unknown_size,
            same_host=True if job.mirror else None,
        )

    def whole(self, info: SourceInfo, remote: RemoteFile) -> tuple[str | None, int]:
        every = self.remote_files(info)
        protect = [self.job.to / info.name / f.path for f in every]
        outcome = fetch_one(
            self.job.plain(info.name), info, remote, self.progress, self.kaggle_factory, protect
        )
        received = outcome.size or 0 if outcome.status == "downloaded" else 0
        return (outcome.reason if outcome.status == "failed" else None), received


Route = Callable[[_Context, SourceInfo, list[str]], SourceFetch]


def _zips(ctx: _Context, info: SourceInfo, paths: list[str]) -> SourceFetch:
    job = ctx.job
    opts = ZipOptions(
        connections=job.connections,
        retries=job.retries,
        backoff=job.backoff,
        timeout=job.timeout,
        mirror=job.mirror,
        whole=ctx.whole,
        progress=ctx.progress,
        dry_run=ctx.dry_run,
    )
    return zip_route(info, paths, ctx.job.to / info.name, ctx.remote_files(info), opts)


def _kaggle(ctx: _Context, info: SourceInfo, paths: list[str]) -> SourceFetch:
    result = SourceFetch(info.name, "kaggle files", needed=len(paths))
    files = kaggle_files(info, paths, ctx.remote_files(info))
    if not ctx.dry_run:
        wanted = [(f, [f.path]) for f in files]
        _files(ctx, info, wanted, result)
    return result


def _cil(ctx: _Context, info: SourceInfo, paths: list[str]) -> SourceFetch:
    result = SourceFetch(info.name, "cil files", needed=len(paths))
    files, bad = cil_files(paths)
    if bad:
        result.fail(bad[0], f"{len(bad)} path(s) name no CIL id, e.g. {bad[0]}", files=len(bad))
    if not ctx.dry_run:
        by_zip = {f.path: f for f in files}
        wanted: dict[str, list[str]] = {}
        for path in paths:
            key = (Path(path).parent / f"{Path(path).stem}.zip").as_posix()
            if key in by_zip:
                wanted.setdefault(key, []).append(path)
        _files(ctx, info, [(by_zip[k], v) for k, v in wanted.items()], result)
    return result


def _idr(ctx: _Context, info: SourceInfo, paths: list[str]) -> SourceFetch:
    from cytoimagenet.download.idr_route import plan_idr

    result = SourceFetch(info.name, "aspera list", needed=len(paths))
    folder = ctx.job.to / info.name
    absent = [p for p in paths if not (folder / p).is_file()]
    result.add(skipped=len(paths) - len(absent))
    if ctx.dry_run or not absent:
        return result
    route = plan_idr(info, absent, ctx.job.to)
    if route.http:
        _files(ctx, info, [(f, [f.path]) for f in route.http], result)
    if route.files:
        result.note("", route.note, status="manual")
    return result


def _files(
    ctx: _Context, info: SourceInfo, wanted: list[tuple[RemoteFile, list[str]]], result: SourceFetch
) -> None:
    fetch_files(
        info,
        wanted,
        ctx.job.to / info.name,
        ctx.get,
        result,
        connections=ctx.job.connections,
        progress=ctx.progress,
    )


ROUTES: dict[str, Route] = {
    "rxrx": _zips,
    "direct": _zips,
    "kaggle": _kaggle,
    "cil": _cil,
    "idr": _idr,
}


def run_fetch(
    job: FetchJob,
    *,
    progress: bool = True,
    dry_run: bool = False,
    files: dict[str, list[RemoteFile]] | None = None,
    kaggle_factory: Callable[[], object] = kaggle_api,
) -> FetchReport:
    """Fetch (or, with ``dry_run``, only size up) every source's needed files.

    Parameters
    ----------
    job : FetchJob
        Validated options.
    progress : bool
        Show progress bars.
    dry_run : bool
        Read archive directories (kept for the fetch) but fetch no member or file.
    files : dict, optional
        Source → files instead of the catalog's (tests, private copies).
    kaggle_factory : callable
        Returns an authenticated Kaggle API object (replaced in tests).
    """
    needed = needed_files(job.labels, job.sources, job.to)
    writable_root(job.to)
    ctx = _Context(job, progress, dry_run, files or {}, kaggle_factory)
    results = []
    for name, paths in needed.items():
        try:
            info = get_source(name)
        except UnknownSourceError:
            result = SourceFetch(name, "none", needed=len(paths))
            result.fail(
                "",
                f"{name} is not a catalog source; put its files under <to>/{name}/ by hand",
                len(paths),
            )
            results.append(result)
            continue
        route = ROUTES.get(info.access)
        if route is None:
            result = SourceFetch(name, info.access, needed=len(paths))
            result.note(
                "", f"{name}: no automatic download ({info.access}); see {info.url}", "manual"
            )
            results.append(result)
            continue
        results.append(route(ctx, info, paths))
    return FetchReport(results)
