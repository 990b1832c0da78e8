"""Which raw files a build of a labels table reads, and where each lies in a source's archives.

Pure functions: a labels table in, per source the channel files ``build`` opens (the same
rule as the build: :func:`cytoimagenet.curation.dataset.plan.channel_files`), and a map
from those paths to archive members laid out as a whole download would unpack them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import polars as pl

from cytoimagenet.curation.dataset.plan import channel_files, check_inside_root
from cytoimagenet.download.archive import archive_stem
from cytoimagenet.errors import SchemaError
from cytoimagenet.io.parquet import read_parquet

_COLUMNS = ("idx", "label", "dir_name", "channels", "channel_paths")
_GLOB = ("*", "?", "[")


def needed_files(
    labels: Path, sources: Iterable[str] = (), root: Path | None = None
) -> dict[str, list[str]]:
    """Return source → sorted channel paths (relative to ``RAW/<source>/``) a build reads.

    Parameters
    ----------
    labels : Path
        The table ``cytoimagenet labels`` wrote.
    sources : iterable of str
        Keep only these sources (all when empty).
    root : Path, optional
        The download root: paths leading outside it are refused, as the build refuses them.

    Raises
    ------
    SchemaError
        If a column is missing, no row has a label, or a named source has no labelled row.
    ConfigError
        If a path leads outside ``root``.
    """
    table = read_parquet(labels)
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise SchemaError(
            f"{labels}: missing column(s) {', '.join(missing)}; pass the table written by "
            "`cytoimagenet labels`"
        )
    rows = table.filter(pl.col("label").is_not_null() & pl.col("dir_name").is_not_null())
    if rows.is_empty():
        raise SchemaError(f"{labels}: no labelled rows; run `cytoimagenet labels` first")
    if root is not None:
        check_inside_root(rows, root, labels)
    return files_by_source(rows, sources, labels)


def files_by_source(
    rows: pl.DataFrame, sources: Iterable[str] = (), where: Path | str = "table"
) -> dict[str, list[str]]:
    """Return the per-source files of labelled ``rows`` (see :func:`needed_files`).

    Examples
    --------
    >>> rows = pl.DataFrame({"dir_name": ["s", "s"], "channels": [["f_a", "bf"], ["f_a"]],
    ...                      "channel_paths": [["x/1.png", "x/2.png"], ["x/3.png"]]})
    >>> files_by_source(rows)
    {'s': ['x/1.png', 'x/3.png']}
    """
    wanted = {s.lower() for s in sources}
    out: dict[str, set[str]] = {}
    for row in rows.select("dir_name", "channels", "channel_paths").iter_rows(named=True):
        name = row["dir_name"]
        if wanted and name not in wanted:
            continue
        out.setdefault(name, set()).update(
            channel_files(row["channels"], row["channel_paths"] or [])
        )
    absent = sorted(wanted - set(out))
    if absent:
        raise SchemaError(f"{where}: no labelled row of source(s) {', '.join(absent)}")
    return {name: sorted(paths) for name, paths in sorted(out.items())}


def unpacked_prefix(archive_path: str, names: Iterable[str]) -> str:
    """Where a whole download unpacks ``archive_path``'s members, relative to the source folder.

    An archive whose entries share one top-level name unpacks beside itself; otherwise into a
    folder named after it (:func:`cytoimagenet.download.archive.extract_archive`).

    Examples
    --------
    >>> unpacked_prefix("rxrx1-images.zip", ["images/a.png", "images/b.png"])
    ''
    >>> unpacked_prefix("zips/stage1_train.zip", ["a/x.png", "b/y.png"])
    'zips/stage1_train/'
    """
    parent = PurePosixPath(archive_path).parent
    base = "" if str(parent) == "." else f"{parent}/"
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) <= 1:
        return base
    return f"{base}{archive_stem(PurePosixPath(archive_path).name)}/"


@dataclass
class Matched:
    """Needed paths found in an archive (path → member name), and those found nowhere."""

    found: dict[str, dict[str, str]] = field(default_factory=dict)  # archive → {path: member}
    missing: list[str] = field(default_factory=list)


def match_members(paths: list[str], archives: Mapping[str, Iterable[str]]) -> Matched:
    """Find each needed path among the members of ``archives`` (archive path → entry names).

    Names are as a whole download unpacks them (cleaned; folders end in ``/``).

    A path with glob characters matches every member it names (the build reads the first).

    Examples
    --------
    >>> m = match_members(["images/a.png", "c.png"], {"x.zip": ["images/a.png", "images/b"]})
    >>> m.found, m.missing
    ({'x.zip': {'images/a.png': 'images/a.png'}}, ['c.png'])
    """
    where: dict[str, tuple[str, str]] = {}
    for archive, names in archives.items():
        names = list(names)
        prefix = unpacked_prefix(archive, names)  # folders count, as they do when unpacking
        for name in names:
            if not name.endswith("/"):
                where.setdefault(prefix + name, (archive, name))
    result = Matched()
    globs = _GlobIndex(where)
    for path in paths:
        hits = globs.hits(path) if any(c in path for c in _GLOB) else [path] * (path in where)
        if not hits:
            result.missing.append(path)
        for hit in hits:
            archive, name = where[hit]
            result.found.setdefault(archive, {})[hit] = name
    return result


class _GlobIndex:
    """Member names by the pieces of their file names, for globs.

    A glob is matched only against the names holding its rarest literal piece, not against
    every member (thousands of well patterns against a plate's fields).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        self._grams: dict[int, dict[str, list[str]]] = {}

    def hits(self, pattern: str) -> list[str]:
        base = re.sub(r"\[[^\]]*\]", "*", pattern.rsplit("/", 1)[-1])
        pieces = {p[:8] for p in re.split(r"[*?]", base) if len(p) >= 2}
        if not pieces:
            return fnmatch.filter(self.names, pattern)
        buckets = [self._bucket(p) for p in pieces]
        return fnmatch.filter(min(buckets, key=len), pattern)

    def _bucket(self, piece: str) -> list[str]:
        k = len(piece)
        grams = self._grams.get(k)
        if grams is None:
            grams = self._grams[k] = {}
            for name in self.names:
                base = name.rsplit("/", 1)[-1]
                for gram in {base[i : i + k] for i in range(len(base) - k + 1)}:
                    grams.setdefault(gram, []).append(name)
        return grams.get(piece, [])
