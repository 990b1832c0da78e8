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
import os
import sys
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, Final

import polars as pl
from polars.exceptions import PanicException

from cytoimagenet.errors import MetadataError

log = logging.getLogger(__name__)

_TAB_SUFFIXES = (".tsv", ".txt", ".tab")


#: Largest decompressed metadata file read by default (the largest real one is far smaller);
#: the environment variable overrides it, a ``max_bytes`` argument overrides both.
DEFAULT_MAX_BYTES: Final = 4 * 1024**3
MAX_BYTES_ENV: Final = "CYTOIMAGENET_MAX_TABLE_BYTES"
_CHUNK: Final = 1 << 20


def max_table_bytes() -> int:
    """Return the size limit of a decompressed metadata file (``$CYTOIMAGENET_MAX_TABLE_BYTES``).

    4 GiB unless the variable says otherwise.

    Raises
    ------
    MetadataError
        If the variable is set but not a positive integer.
    """
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise MetadataError(
            f"${MAX_BYTES_ENV}={text!r}: expected a positive number of bytes, e.g. 8589934592"
        )
    return value


def _read_capped(stream: BinaryIO, path: Path, limit: int) -> bytes:
    """Read ``stream`` to its end in chunks, refusing more than ``limit`` bytes."""
    parts: list[bytes] = []
    total = 0
    while chunk := stream.read(min(_CHUNK, limit + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise MetadataError(
                f"{path}: holds more than {limit:,} bytes of text once decompressed, more than "
                f"any metadata table should; if it really is one, raise ${MAX_BYTES_ENV}"
            )
    return b"".join(parts)


def _read_bytes(path: Path, limit: int) -> bytes:
    """Return the decompressed bytes of a plain, ``.gz`` or single-member ``.zip`` file."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise MetadataError(
                        f"{path}: expected one table inside the zip archive, found {members}"
                    )
                # zipfile checks the member's CRC once read to its end: a cut one fails.
                with zf.open(members[0]) as member:
                    return _read_capped(member, path, limit)
        elif path.suffix == ".gz":
            # A stream cut short raises EOFError here instead of yielding a partial table.
            with gzip.open(path, "rb") as stream:
                return _read_capped(stream, path, limit)
        with path.open("rb") as stream:
            return _read_capped(stream, path, limit)
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise MetadataError(
            f"{path}: cannot read ({exc}); the file is damaged or incomplete, re-download it"
        ) from exc


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.end == len(raw):
            # UTF-8 up to a character cut in half at the very end: a truncated file, which
            # the single-byte fallbacks below would silently misread as mojibake.
            raise MetadataError(
                f"{path}: ends in the middle of a character; the file is truncated, re-download it"
            ) from exc
    for encoding in ("cp1252", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise MetadataError(f"{path}: not a text file")  # pragma: no cover - latin-1 never fails


def _open_text(path: Path, max_bytes: int | None = None) -> str:
    """Return the decoded text of a plain, ``.gz`` or single-member ``.zip`` file."""
    limit = max_table_bytes() if max_bytes is None else max_bytes
    return _decode(_read_bytes(path, limit), path)


def _parse(text: str, sep: str, path: Path) -> list[list[str]]:
    """Split ``text`` into rows, refusing a file that ends inside a quoted field."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    try:
        return list(reader)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise MetadataError(
                f"{path}: ends inside a quoted field (line {reader.line_num}); the file is "
                "truncated or has an unbalanced quote: re-download or repair it"
            ) from exc
    # Other malformed quoting is common in spreadsheet exports: read it leniently.
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))


def _check_last_row(path: Path, text: str, header: list[str], body: list[list[str]]) -> None:
    """Refuse a file whose last line is cut short (no newline, fewer fields than its rows)."""
    if not body or text.endswith(("\n", "\r")):
        return
    last, before = body[-1], body[:-1]
    if len(last) < len(header) and (not before or len(before[-1]) >= len(header)):
        raise MetadataError(
            f"{path}: the last line has {len(last)} of {len(header)} fields and no line end; "
            "the file looks truncated, re-download it"
        )


def _table_name(path: Path) -> str:
    name = path.name
    for suffix in (".zip", ".gz"):
        name = name.removesuffix(suffix)
    return name


def _sniff_separator(path: Path, header: str) -> str:
    if _table_name(path).endswith(_TAB_SUFFIXES) or header.count("\t") > header.count(","):
        return "\t"
    return ","


def read_delimited(
    path: Path, *, separator: str | None = None, max_bytes: int | None = None
) -> pl.DataFrame:
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
    max_bytes : int, optional
        Refuse files larger than this once decompressed (default :func:`max_table_bytes`).

    Returns
    -------
    polars.DataFrame
        One string column per header field, header names stripped of whitespace.

    Raises
    ------
    MetadataError
        If the file is missing, unreadable, too large, truncated (a cut ``.gz``/``.zip``,
        a last line cut short, an unterminated quote), empty, or has a duplicated header name.
    """
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: no such file")
    text = _open_text(path, max_bytes)
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise MetadataError(f"{path}: the file is empty; expected a header row")
    sep = separator or _sniff_separator(path, first_line)
    # Survey-style files hold whole class lists in one cell, far beyond csv's 128 KiB default.
    csv.field_size_limit(sys.maxsize)
    rows = _parse(text, sep, path)
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    _check_last_row(path, text, header, body)
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
    except (Exception, PanicException) as exc:  # fastexcel raises its own; Rust may panic
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
