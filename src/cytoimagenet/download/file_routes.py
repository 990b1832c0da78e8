"""Sources served file by file: only the needed files are fetched.

- ``kaggle``: each needed file through the official client's single-file download
  (``competition_download_file`` / ``dataset_download_file``), instead of the whole
  competition archive.
- ``cil``: the Cell Image Library serves one ``<id>.zip`` per image; only the needed ids.
- ``idr``: an Aspera file list of exactly the needed files and the one ``ascp`` command to
  run (:mod:`cytoimagenet.download.idr_route`), plus any per-file HTTP route it finds.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from cytoimagenet.download.archive import archive_stem, extract_archive
from cytoimagenet.download.fetch_report import Ledger, SourceFetch
from cytoimagenet.download.http import Fetched
from cytoimagenet.download.routes import CIL_IMAGE_URL, parse_kaggle
from cytoimagenet.errors import DownloadError
from cytoimagenet.sources.catalog import RemoteFile, SourceInfo

Getter = Callable[[SourceInfo, RemoteFile, Path], Fetched]
"""Fetch one remote file to a target path, verified (HTTP or the Kaggle client)."""


def kaggle_files(info: SourceInfo, paths: list[str], files: list[RemoteFile]) -> list[RemoteFile]:
    """Return the single files of the source's Kaggle competition or dataset that ``paths`` name.

    A path under the folder a whole download unpacks the archive into (``<archive stem>/``)
    names the file inside it without that folder.

    Examples
    --------
    >>> from cytoimagenet.sources.catalog import get_source
    >>> info = get_source("kag_hpa")
    >>> [f.url for f in kaggle_files(info, ["train/a_green.png"], info.files)]
    ['kaggle://competition/human-protein-atlas-image-classification/train/a_green.png']
    """
    whole = [f for f in files if f.kind == "images" and parse_kaggle(f.url)[2] is None]
    if not whole:
        raise DownloadError(f"{info.name}: the catalog names no whole Kaggle competition/dataset")
    base = whole[0]
    stem = archive_stem(PurePosixPath(base.path).name) + "/"
    out = []
    for path in paths:
        inner = path.removeprefix(stem)
        out.append(RemoteFile(url=f"{base.url.rstrip('/')}/{inner}", path=path, extract=False))
    return out


def cil_files(paths: list[str]) -> tuple[list[RemoteFile], list[str]]:
    """Return the ``<id>.zip`` of each needed CIL image (``<id>.tif`` etc.), and paths with no id.

    Examples
    --------
    >>> files, bad = cil_files(["53464.tif", "x/notes.txt"])
    >>> [(f.url.rsplit("/", 1)[1], f.path) for f in files], bad
    ([('53464.zip', '53464.zip')], ['x/notes.txt'])
    """
    out: dict[str, RemoteFile] = {}
    bad: list[str] = []
    for path in paths:
        pure = PurePosixPath(path)
        stem = pure.stem
        if not stem.isdigit():
            bad.append(path)
            continue
        target = (pure.parent / f"{stem}.zip").as_posix()
        out[target] = RemoteFile(url=CIL_IMAGE_URL.format(id=stem), path=target)
    return list(out.values()), bad


def fetch_files(
    info: SourceInfo,
    wanted: list[tuple[RemoteFile, list[str]]],
    folder: Path,
    get: Getter,
    result: SourceFetch,
    *,
    connections: int,
    progress: bool,
) -> None:
    """Fetch each remote file whose needed paths are not all on disk; unpack archives.

    ``wanted`` pairs each remote file with the needed paths it provides.
    """
    from tqdm.auto import tqdm

    ledger = Ledger(folder)
    todo = []
    for remote, provides in wanted:
        if all((folder / p).is_file() for p in provides):
            result.add(skipped=len(provides))
        else:
            todo.append((remote, provides))
    with tqdm(total=len(todo), desc=f"{info.name} files", unit="file", disable=not progress) as bar:

        def one(item: tuple[RemoteFile, list[str]]) -> None:
            remote, provides = item
            try:
                got = get(info, remote, folder / remote.path)
                ledger.record(remote.path, got.size, got.sha256, remote.url, None)
                result.add(received=got.size if got.status == "downloaded" else 0)
                if remote.is_archive:
                    extract_archive(got.path)
                absent = [p for p in provides if not (folder / p).is_file()]
                if absent:
                    raise DownloadError(f"{remote.path} did not provide {', '.join(absent)}")
                result.add(fetched=len(provides))
            except (DownloadError, OSError) as exc:
                result.fail(remote.path, str(exc), files=len(provides))
            finally:
                bar.update(1)

        with ThreadPoolExecutor(max_workers=connections) as pool:
            list(pool.map(one, todo))
