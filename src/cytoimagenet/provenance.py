"""Provenance: what produced an output — resolved config, versions, input checksums."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cytoimagenet.io.atomic import atomic_path

_PACKAGES = ("cytoimagenet", "numpy", "polars", "pyarrow", "pydantic", "tifffile", "torch", "timm")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def environment() -> dict[str, object]:
    """Return Python, platform and installed versions of the packages that matter."""
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def write_provenance(
    path: Path,
    *,
    command: str,
    config: Mapping[str, object],
    inputs: Iterable[Path] = (),
    root: Path | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Write a provenance JSON file and return its content.

    Parameters
    ----------
    path : Path
        Where to write (atomically).
    command : str
        The operation that produced the output, e.g. ``"metadata"``.
    config : Mapping
        The resolved, validated configuration.
    inputs : iterable of Path
        Input files to checksum.
    root : Path, optional
        Input paths are recorded relative to this folder when given.
    extra : Mapping, optional
        Further facts (row counts …).
    """
    files = {}
    for p in sorted(set(inputs)):
        key = p.relative_to(root).as_posix() if root else str(p)
        files[key] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    record: dict[str, object] = {
        "command": command,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": dict(config),
        "environment": environment(),
        "inputs": files,
        **(dict(extra) if extra else {}),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return record
