"""The ``download`` step: catalog sources → verified files under ``<DIR>/<source>/``.

Each file is fetched (or found valid and skipped), then unpacked if it is an archive. The
SHA-256 of every file is recorded in ``<DIR>/downloads.json``; where the catalog knows no
checksum, the recorded one is what later runs (and other users given the file) verify
against. One file failing does not stop the others; the report lists every outcome.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from cytoimagenet.config import _Job
from cytoimagenet.download import http
from cytoimagenet.download.archive import (
    MAX_EXTRACT,
    MAX_RATIO,
    CorruptArchiveError,
    Extracted,
    extract_archive,
    marker_path,
)
from cytoimagenet.download.http import (
    ChecksumError,
    DownloadError,
    Fetched,
    Progress,
    fetch,
    file_lock,
)
from cytoimagenet.download.routes import (
    fetch_kaggle,
    follow_up,
    kaggle_api,
    mirrored,
    plan_source,
)
from cytoimagenet.fields import OutputDir
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.sources.catalog import RemoteFile, SourceInfo, get_source

MANIFEST = "downloads.json"
Status = Literal["downloaded", "skipped", "failed", "manual"]


class DownloadJob(_Job):
    """Fetch the files of one or more catalog sources.

    Attributes
    ----------
    sources : list of str
        Catalog shorthands (case-insensitive).
    to : Path
        Download root; each source goes to ``<to>/<source>/``.
    metadata_only : bool
        Only the metadata files (enough for ``cytoimagenet metadata`` and ``labels``).
    extract : bool
        Unpack archives after download.
    retries : int
        Further attempts per file after a transient error.
    backoff : float
        Seconds before the first retry (doubled each time).
    timeout : float
        Socket timeout in seconds.
    mirror : str, optional
        Base URL of a mirror holding the files as ``<mirror>/<host>/<path>``; redirects
        are followed only within its host.
    refresh : bool
        Fetch again the files without a catalog checksum and re-verify the others,
        ignoring the hashes recorded in ``downloads.json``; unpack archives again.
    deadline : float or None
        Seconds one file may take, retries included.
    stall : float or None
        Seconds within which at least 64 KiB must arrive.
    max_unknown_size : int or None
        Most bytes taken from a body of unknown length.
    max_extract_size : int or None
        Most bytes one archive may unpack to.
    max_ratio : float or None
        Most unpacked size / archive size (large archives only).
    """

    sources: list[str] = Field(min_length=1)
    to: OutputDir
    metadata_only: bool = False
    extract: bool = True
    retries: int = Field(default=3, ge=0, le=20)
    backoff: float = Field(default=1.0, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    mirror: str | None = None
    refresh: bool = False
    deadline: float | None = Field(default=http.DEADLINE, gt=0)
    stall: float | None = Field(default=http.STALL, gt=0)
    max_unknown_size: int | None = Field(default=http.MAX_UNKNOWN, gt=0)
    max_extract_size: int | None = Field(default=MAX_EXTRACT, gt=0)
    max_ratio: float | None = Field(default=MAX_RATIO, gt=1)

    @field_validator("sources")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        names = [get_source(v).name for v in value]
        return list(dict.fromkeys(names))

    @field_validator("mirror")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value}: a mirror is an http(s):// base URL")
        return value


@dataclass(frozen=True)
class Outcome:
    """What happened to one file (or one manual step) of a source."""

    source: str
    path: str
    status: Status
    reason: str = ""
    size: int | None = None
    extracted: int | None = None


@dataclass(frozen=True)
class DownloadReport:
    """All outcomes of a run, in order."""

    outcomes: list[Outcome]

    def count(self, status: Status) -> int:
        """Return how many outcomes have ``status``."""
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        """The failed files."""
        return [o for o in self.outcomes if o.status == "failed"]


def run_download(
    job: DownloadJob,
    *,
    progress: bool = True,
    files: dict[str, list[RemoteFile]] | None = None,
    kaggle_factory: Callable[[], object] = kaggle_api,
) -> DownloadReport:
    """Fetch, verify and unpack every planned file of ``job.sources``.

    Parameters
    ----------
    job : DownloadJob
        Validated options.
    progress : bool
        Show a progress bar per file.
    files : dict, optional
        Source → files to fetch instead of the catalog's (tests, private copies).
    kaggle_factory : callable
        Returns an authenticated Kaggle API object (replaced in tests).
    """
    writable_root(job.to)
    _read_manifest(job.to)  # a damaged manifest stops the run before any download
    outcomes: list[Outcome] = []
    for name in job.sources:
        info = get_source(name)
        plan = plan_source(info, metadata_only=job.metadata_only, files=(files or {}).get(name))
        every = (files or {}).get(name)
        every = info.files if every is None else every
        protect = [job.to / name / f.path for f in every]  # fetched and verified on their own
        outcomes += [Outcome(name, "", "manual", reason=text) for text in plan.manual]
        queue = list(plan.files)
        while queue:
            remote = queue.pop(0)
            outcome = fetch_one(job, info, remote, progress, kaggle_factory, protect)
            outcomes.append(outcome)
            if outcome.status != "failed":
                try:
                    folder = job.to / name
                    queue += follow_up(info, folder, remote, metadata_only=job.metadata_only)
                except (OSError, ValueError, DownloadError) as exc:  # an unreadable table
                    outcomes.append(Outcome(name, remote.path, "failed", reason=str(exc)))
    return DownloadReport(outcomes)


def fetch_one(
    job: DownloadJob,
    info: SourceInfo,
    remote: RemoteFile,
    progress: bool,
    kaggle_factory: Callable[[], object],
    protect: list[Path],
) -> Outcome:
    """Fetch, verify, unpack and record one planned file; never raises for the file's faults."""
    key = f"{info.name}/{remote.path}"
    target = job.to / info.name / remote.path
    record = {} if job.refresh else _recorded(job.to, key, remote.url)
    sha256 = remote.sha256 or record.get("sha256")
    size = remote.size if remote.size is not None else record.get("size")
    note = ""
    try:
        if remote.url.startswith("kaggle:"):
            got = fetch_kaggle(
                remote, target, api_factory=kaggle_factory, sha256=sha256, quiet=not progress
            )
        else:
            with _bar(key, size, progress) as bar:
                got = fetch(
                    mirrored(remote.url, job.mirror),
                    target,
                    size=size,
                    sha256=sha256,
                    retries=job.retries,
                    backoff=job.backoff,
                    timeout=job.timeout,
                    progress=bar,
                    deadline=job.deadline,
                    stall=job.stall,
                    max_unknown=job.max_unknown_size,
                    same_host=True if job.mirror else None,
                    force=job.refresh and remote.sha256 is None,
                )
        extracted = None
        if job.extract and remote.is_archive:
            if job.refresh:
                marker_path(got.path).unlink(missing_ok=True)
            done = _unpack(got.path, remote, protect, job)
            extracted = done.written + done.skipped if done.status == "extracted" else None
            if done.kept:
                note = f"kept the downloaded {', '.join(done.kept)}, not the archive's copy"
        # recorded only now: an archive's hash once it unpacked cleanly
        _record(job.to, key, remote, got, "catalog" if remote.sha256 else "computed")
    except ChecksumError as exc:
        reason = str(exc)
        if not remote.sha256 and record.get("sha256"):
            reason += (
                f" The expected hash was recorded in {job.to / MANIFEST} (entry {key!r}); "
                f"if the new file is right, run again with --refresh, or delete that entry."
            )
        return Outcome(info.name, remote.path, "failed", reason=reason)
    except (OSError, DownloadError) as exc:
        return Outcome(info.name, remote.path, "failed", reason=str(exc))
    return Outcome(
        info.name, remote.path, got.status, reason=note, size=got.size, extracted=extracted
    )


def _unpack(path: Path, remote: RemoteFile, protect: list[Path], job: DownloadJob) -> Extracted:
    """Unpack an archive; one that no checksum vouches for is removed if it is corrupt."""
    try:
        return extract_archive(
            path, protect=protect, max_bytes=job.max_extract_size, max_ratio=job.max_ratio
        )
    except CorruptArchiveError as exc:
        if remote.sha256:
            raise
        path.unlink(missing_ok=True)  # else a cut-off file would be skipped as valid forever
        raise CorruptArchiveError(
            f"{exc} It had no checksum to check, so it was removed and not recorded; the next "
            "run fetches it again."
        ) from None


def writable_root(root: Path) -> None:
    """Fail early, naming the folder, when the download root cannot be written."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise DownloadError(
            f"{root}: cannot write to the download folder ({exc.strerror or exc}); fix its "
            "permissions or choose another --to."
        ) from None


@contextlib.contextmanager
def _bar(label: str, total: int | None, show: bool) -> Iterator[Progress]:
    """Yield a progress callback for :func:`fetch` that drives a tqdm bar."""
    from tqdm.auto import tqdm

    short = label if len(label) <= 48 else "…" + label[-47:]
    bar = tqdm(
        total=total,
        desc=short,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=not show,
    )

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def _read_manifest(root: Path) -> dict[str, dict[str, object]]:
    path = root / MANIFEST
    fix = (
        "fix it, or move it aside (e.g. `mv downloads.json downloads.json.bad`) to start "
        "fresh: files without a catalog checksum are then hashed again by the next download"
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise DownloadError(f"{path}: not valid JSON ({exc}); {fix}") from None
    files = data.get("files", {}) if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise DownloadError(
            f'{path}: not a download manifest (a JSON object whose "files" maps each '
            f"<source>/<file> to an object); {fix}"
        )
    return dict(files)


def _recorded(root: Path, key: str, url: str) -> dict[str, object]:
    """Return the manifest entry of ``key`` if recorded for the same URL, else ``{}``."""
    entry = _read_manifest(root).get(key, {})
    return entry if entry.get("url") == url else {}


def _record(root: Path, key: str, remote: RemoteFile, got: Fetched, verified: str) -> None:
    manifest = root / MANIFEST
    with file_lock(manifest):  # several processes may share one download root
        files = _read_manifest(root)
        old = files.get(key, {})
        if (old.get("url"), old.get("sha256"), old.get("size")) == (
            remote.url,
            got.sha256,
            got.size,
        ):
            return  # a skipped file, already recorded
        files[key] = {
            "url": remote.url,
            "size": got.size,
            "sha256": got.sha256,
            "verified": verified,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        text = json.dumps({"version": 1, "files": dict(sorted(files.items()))}, indent=1)
        with atomic_path(manifest) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
