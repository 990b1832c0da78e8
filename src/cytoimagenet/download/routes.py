"""What to fetch for one source, by its catalog access route.

- ``direct`` and ``rxrx``: the catalog's files, over HTTPS.
- ``idr``: the study's annotation files over HTTPS; the images only through IDR's bulk
  route (Aspera), which this package does not drive: the plan says how.
- ``cil``: the authors' file → kinase-group table, then one ``<id>.zip`` per listed image
  from the CIL data server (planned once the table is on disk).
- ``kaggle``: the official ``kaggle`` client with the user's own credentials.
- ``manual`` / ``generated``, or no known files: what the user must do instead.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cytoimagenet.download.http import (
    ChecksumError,
    DownloadError,
    Fetched,
    file_lock,
    is_valid,
    sha256_of,
)
from cytoimagenet.sources.catalog import RemoteFile, SourceInfo

#: Where the Cell Image Library serves the file of image ``id``.
CIL_IMAGE_URL = "https://cildata.crbs.ucsd.edu/media/images/{id}/{id}.zip"
IDR_HELP = "https://idr.openmicroscopy.org/about/download.html"


@dataclass(frozen=True)
class SourcePlan:
    """Files to fetch for one source, and steps the user must take by hand."""

    source: str
    files: list[RemoteFile] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)


def plan_source(
    info: SourceInfo, *, metadata_only: bool, files: list[RemoteFile] | None = None
) -> SourcePlan:
    """Return what a download of ``info`` fetches.

    Parameters
    ----------
    info : SourceInfo
        Catalog entry.
    metadata_only : bool
        Only the files of kind ``metadata``.
    files : list of RemoteFile, optional
        Use these instead of the catalog's (tests, private mirrors).
    """
    name = info.name
    if info.access == "generated":
        return SourcePlan(name, manual=[f"{name}: generated locally; run `cytoimagenet sample`"])
    if info.access == "manual":
        return SourcePlan(name, manual=[_by_hand(info, "it has no automatic download")])
    remote = list(info.files if files is None else files)
    wanted = [f for f in remote if f.kind == "metadata" or not metadata_only]
    manual: list[str] = []
    if not remote:
        manual.append(_by_hand(info, "no download URL is recorded in the catalog"))
    elif metadata_only and not wanted:
        if info.metadata_files:
            why = "no separate metadata file is known (it ships with the images)"
        else:
            why = "its labels come from folder and file names, so the images are needed"
        manual.append(f"{name}: {why}; run without --metadata-only")
    if info.access == "idr" and not metadata_only and not any(f.kind == "images" for f in remote):
        manual.append(
            f"{name}: IDR serves images in bulk only through Aspera (`ascp`, user "
            f"{name}@fasp.ebi.ac.uk), as {IDR_HELP} explains; put them under <DIR>/{name}/ "
            f"laid out as {info.file_pattern}"
        )
    return SourcePlan(name, wanted, manual)


def _by_hand(info: SourceInfo, why: str) -> str:
    return (
        f"{info.name}: {why}; get the files from {info.url} and put them under "
        f"<DIR>/{info.name}/ (layout: {info.file_pattern})"
    )


def follow_up(
    info: SourceInfo, folder: Path, done: RemoteFile, *, metadata_only: bool
) -> list[RemoteFile]:
    """Return files that become known once ``done`` is on disk (CIL images from its table)."""
    if info.access != "cil" or metadata_only or done.kind != "metadata":
        return []
    table = folder / done.path
    with table.open(newline="", encoding="utf-8") as fh:
        names = [row.get("file_name", "") for row in csv.DictReader(fh)]
    parent = Path(done.path).parent
    out = []
    for name in names:
        stem = name.strip().removesuffix(".zip")
        if stem.isdigit():
            path = (parent / f"{stem}.zip").as_posix()
            out.append(RemoteFile(url=CIL_IMAGE_URL.format(id=stem), path=path))
    if not out:
        raise DownloadError(f"{table}: no CIL ids (`file_name` = <digits>.zip) listed")
    return out


def mirrored(url: str, mirror: str | None) -> str:
    """Return ``url`` as fetched from ``mirror`` (``<mirror>/<host>/<path>``), if one is set."""
    if not mirror or url.startswith("kaggle:"):
        return url
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}{query}"


# --- Kaggle ---------------------------------------------------------------------------

KAGGLE_HELP = (
    "Kaggle sources need the official client and your own API token: `pip install kaggle`, "
    "then put kaggle.json (Kaggle → Settings → API → Create New Token) in ~/.kaggle/ "
    "(chmod 600) or set KAGGLE_USERNAME and KAGGLE_KEY; for a competition, also accept its "
    "rules on the competition page."
)


def parse_kaggle(url: str) -> tuple[str, str, str | None]:
    """Split ``kaggle://competition/<slug>[/file]`` or ``kaggle://dataset/<owner>/<slug>[/file]``.

    Returns
    -------
    (kind, ref, file)
        ``file`` is ``None`` for the whole competition or dataset.
    """
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "kaggle" or parts.netloc not in ("competition", "dataset"):
        raise DownloadError(f"{url}: not a kaggle://competition/… or kaggle://dataset/… URL")
    n = 1 if parts.netloc == "competition" else 2
    if len(segments) < n:
        raise DownloadError(f"{url}: the Kaggle reference is incomplete")
    file = "/".join(segments[n:]) or None
    return parts.netloc, "/".join(segments[:n]), file


def kaggle_credentials() -> bool:
    """Whether Kaggle credentials are configured (a token file or environment variables)."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    return (folder / "kaggle.json").is_file() or (folder / "access_token").is_file()


def kaggle_api() -> object:
    """Return an authenticated ``KaggleApi``, or raise with what the user must set up."""
    if importlib.util.find_spec("kaggle") is None:
        raise DownloadError(f"the `kaggle` package is not installed. {KAGGLE_HELP}")
    if not kaggle_credentials():
        raise DownloadError(f"no Kaggle credentials found. {KAGGLE_HELP}")
    # the submodule, not `import kaggle`, which authenticates as a side effect of importing
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    return api


def fetch_kaggle(
    remote: RemoteFile,
    target: Path,
    *,
    api_factory: Callable[[], object] = kaggle_api,
    sha256: str | None = None,
    quiet: bool = True,
) -> Fetched:
    """Fetch one ``kaggle://`` file through the official client, then verify and rename it.

    The client writes into a private staging folder; a single file it delivers zipped
    (``train.csv.zip``) is unpacked. ``sha256`` overrides ``remote.sha256`` (a recorded hash).
    """
    kind, ref, file = parse_kaggle(remote.url)
    expected = sha256 or remote.sha256
    with file_lock(target):
        ok, digest = is_valid(target, size=remote.size, sha256=expected)
        if ok:
            return Fetched(target, "skipped", target.stat().st_size, digest or sha256_of(target))
        api = api_factory()
        staging = target.parent / f".{target.name}.kaggle"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            _kaggle_call(api, kind, ref, file, staging, quiet)
            got = _delivered(staging, target, remote.url)
            digest = sha256_of(got)
            if (remote.size is not None and got.stat().st_size != remote.size) or (
                expected is not None and digest != expected
            ):
                raise ChecksumError(
                    f"{target}: the file from {remote.url} does not match its recorded size or "
                    f"SHA-256 (got {digest}). Nothing was kept; check the Kaggle page."
                )
            got.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Fetched(target, "downloaded", target.stat().st_size, digest)


def _kaggle_call(
    api: object, kind: str, ref: str, file: str | None, staging: Path, quiet: bool
) -> None:
    path = str(staging)
    try:
        if kind == "competition" and file:
            api.competition_download_file(ref, file, path=path, quiet=quiet)  # type: ignore[attr-defined]
        elif kind == "competition":
            api.competition_download_files(ref, path=path, quiet=quiet)  # type: ignore[attr-defined]
        elif file:
            api.dataset_download_file(ref, file, path=path, quiet=quiet)  # type: ignore[attr-defined]
        else:
            api.dataset_download_files(ref, path=path, quiet=quiet, unzip=False)  # type: ignore[attr-defined]
    except Exception as exc:  # the client raises its own HTTP and REST error types
        raise DownloadError(
            f"kaggle://{kind}/{ref}{'/' + file if file else ''}: the Kaggle client failed "
            f"({exc}). A 403 means the competition rules are not accepted yet, or the token "
            "lacks access; a 401 means the token is wrong."
        ) from None


def _delivered(staging: Path, target: Path, url: str) -> Path:
    files = [p for p in staging.rglob("*") if p.is_file()]
    if len(files) != 1:
        raise DownloadError(f"{url}: expected one file from the Kaggle client, got {len(files)}")
    got = files[0]
    if got.name == target.name or got.suffix != ".zip" or target.suffix == ".zip":
        return got
    with zipfile.ZipFile(got) as zf:  # the client zips large single files
        names = [n for n in zf.namelist() if Path(n).name == target.name]
        if len(names) != 1:
            raise DownloadError(f"{url}: {got.name} does not hold exactly one {target.name}")
        out = staging / f".{target.name}.unzipped"
        with zf.open(names[0]) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return out
