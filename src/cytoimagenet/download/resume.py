"""The ``.part`` file's companions: the upstream version it holds, and range headers.

A resumed download is only appended to when the server's 206 answer carries the ETag (or
Last-Modified) saved when the ``.part`` file was started and resumes at its exact size;
otherwise the two halves could come from two versions of the file.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path


def validator_file(part: Path) -> Path:
    """Return where the upstream version of ``part`` is saved."""
    return part.with_name(part.name + ".validator")


def discard(part: Path) -> None:
    """Remove ``part`` and its saved version."""
    part.unlink(missing_ok=True)
    validator_file(part).unlink(missing_ok=True)


def saved_version(part: Path) -> dict[str, str]:
    """Return the ETag/Last-Modified saved with ``part`` (``{}`` if none or unreadable)."""
    try:
        text = validator_file(part).read_text()
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:  # written by an older version: the bare If-Range value
        return {"legacy": text} if text else {}
    return (
        {k: v for k, v in data.items() if isinstance(v, str) and v}
        if isinstance(data, dict)
        else {}
    )


def save_version(part: Path, response: http.client.HTTPResponse) -> None:
    """Save the strong ETag and Last-Modified of the answer that starts ``part``."""
    etag = response.headers.get("ETag") or ""
    found = {
        "etag": "" if etag.startswith("W/") else etag,  # a weak tag cannot guard byte ranges
        "last_modified": response.headers.get("Last-Modified") or "",
    }
    found = {k: v for k, v in found.items() if v}
    if found:
        validator_file(part).write_text(json.dumps(found))
    else:
        validator_file(part).unlink(missing_ok=True)


def if_range(saved: dict[str, str]) -> str | None:
    """Return the ``If-Range`` value for a saved version (a strong ETag first)."""
    return saved.get("etag") or saved.get("last_modified") or saved.get("legacy")


def same_version(saved: dict[str, str], response: http.client.HTTPResponse) -> bool:
    """Whether a 206 answer carries the validator saved with the ``.part`` file."""
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    if saved.get("etag"):
        return etag == saved["etag"]
    if saved.get("last_modified"):
        return modified == saved["last_modified"]
    return bool(saved.get("legacy")) and saved.get("legacy") in (etag, modified)


def range_total(value: str) -> int | None:
    """Return N of a ``Content-Range: bytes */N`` header, if there is one."""
    tail = value.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def content_range(response: http.client.HTTPResponse) -> tuple[int | None, int | None]:
    """Return (first byte, total) of ``Content-Range: bytes 100-199/200`` (None if absent)."""
    value = response.headers.get("Content-Range", "")
    try:
        start = int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        start = None
    return start, range_total(value)


def splice_problem(
    have: int,
    start: int | None,
    total: int | None,
    size: int | None,
    saved: dict[str, str],
    response: http.client.HTTPResponse,
    checked: bool,
) -> str:
    """Why a 206 answer must not be appended to ``.part`` (empty when it may).

    ``checked``: an expected SHA-256 will catch a splice, so no saved version is needed.
    """
    if not have:
        return "the server sent a partial answer to a whole-file request"
    if start != have:
        return f"the server resumed at byte {start}, not at {have}"
    if size is not None and total is not None and total != size:
        return f"the server's file has {total} bytes, not the expected {size}"
    if saved and not same_version(saved, response):
        return "the file changed upstream since the .part was saved (ETag/Last-Modified differ)"
    if not saved and not checked:
        return "no ETag/Last-Modified was saved to show the file is unchanged"
    return ""
