"""Read raw metadata files as their sources publish them, tolerating their known damage.

Every reader returns an all-string :class:`polars.DataFrame` (no type inference: plate
numbers stay strings, gene ids stay as written) with empty cells as nulls, and raises
:class:`~cytoimagenet.errors.MetadataError` naming the file on any failure.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from cytoimagenet.errors import MetadataError

log = logging.getLogger(__name__)

_TAB_SUFFIXES = (".tsv", ".txt", ".tab")


def _open_text(path: Path) -> str:
    """Return the decoded text of a plain, ``.gz`` or single-member ``.zip`` file."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise MetadataError(
                        f"{path}: expected one table inside the zip archive, found {members}"
                    )
                raw = zf.read(members[0])
        elif path.suffix == ".gz":
            raw = gzip.decompress(path.read_bytes())
        else:
            raw = path.read_bytes()
    except (OSError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile) as exc:
        raise MetadataError(f"{path}: cannot read ({exc}); re-download the file") from exc
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise MetadataError(f"{path}: not a text file")  # pragma: no cover - latin-1 never fails


def _table_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", ".gz"):
        name = name.removesuffix(suffix)
    return name


def _sniff_separator(path: Path, header: str) -> str:
    if _table_name(path).endswith(_TAB_SUFFIXES) or header.count("\t") > header.count(","):
        return "\t"
    return ","


def read_delimited(path: Path, *, separator: str | None = None) -> pl.DataFrame:
    """Read a CSV/TSV (optionally ``.gz`` or a one-member ``.zip``) as strings.

    Rows with more fields than the header (spreadsheet exports with unquoted commas) keep
    their extra fields, comma-joined, in a column named ``__extra__``; rows with fewer are
    padded with nulls. A trailing empty field on every row (a trailing comma) is dropped.

    Parameters
    ----------
    path : Path
        The file to read.
    separator : str, optional
        Field separator; sniffed from the name and the header line when not given.

    Returns
    -------
    polars.DataFrame
        One string column per header field, header names stripped of whitespace.

    Raises
    ------
    MetadataError
        If the file is missing, unreadable, empty, or has a duplicated header name.
    """
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: no such file")
    text = _open_text(path)
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise MetadataError(f"{path}: the file is empty; expected a header row")
    sep = separator or _sniff_separator(path, first_line)
    # Survey-style files hold whole class lists in one cell, far beyond csv's 128 KiB default.
    csv.field_size_limit(sys.maxsize)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    # A trailing separator on every data row yields one phantom empty field.
    if body and all(len(r) == len(header) + 1 and r[-1] == "" for r in body):
        body = [r[:-1] for r in body]
    while header and header[-1] == "" and all(len(r) < len(header) or r[-1] == "" for r in body):
        header.pop()
        body = [r[: len(header)] for r in body]
    dupes = {h for h in header if header.count(h) > 1}
    if dupes:
        raise MetadataError(f"{path}: duplicated column names {sorted(dupes)}")
    n = len(header)
    ragged = sum(1 for r in body if len(r) > n)
    if ragged:
        log.warning("%s: %d rows have more fields than the header; kept in __extra__", path, ragged)
    columns: dict[str, list[str | None]] = {h: [] for h in header}
    extra: list[str | None] = []
    for r in body:
        for i, h in enumerate(header):
            v = r[i].strip() if i < len(r) else ""
            columns[h].append(v or None)
        extra.append(",".join(r[n:]) if len(r) > n else None)
    data: dict[str, list[str | None]] = dict(columns)
    if ragged:
        data["__extra__"] = extra
    return pl.DataFrame(data, schema=dict.fromkeys(data, pl.String))


def read_excel(path: Path, *, sheet: str | int | None = None) -> pl.DataFrame:
    """Read one sheet of an ``.xls``/``.xlsx`` file as strings.

    Raises
    ------
    MetadataError
        If the file is missing or not a readable spreadsheet.
    """
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: no such file")
    try:
        kwargs: dict[str, object] = {"engine": "calamine", "infer_schema_length": 0}
        if isinstance(sheet, str):
            kwargs["sheet_name"] = sheet
        elif isinstance(sheet, int):
            kwargs["sheet_id"] = sheet + 1
        frame = pl.read_excel(path, **kwargs)  # type: ignore[call-overload]
    except Exception as exc:  # fastexcel raises its own hierarchy
        raise MetadataError(f"{path}: cannot read as a spreadsheet ({exc})") from exc
    frame = frame.rename({c: c.strip() for c in frame.columns})
    return frame.with_columns(
        pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in frame.columns
    )


def require_columns(frame: pl.DataFrame, columns: Iterable[str], path: Path | str) -> None:
    """Raise a :class:`MetadataError` naming ``path`` if any of ``columns`` is absent."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MetadataError(
            f"{path}: missing column(s) {missing}; found {frame.columns}. "
            "Is this the file the source publishes, unmodified?"
        )


def find_files(root: Path, patterns: Sequence[str]) -> list[Path]:
    """Return the files under ``root`` matching any glob pattern, sorted, without duplicates."""
    found: set[Path] = set()
    for pattern in patterns:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)
