"""What a selective fetch did, per source, and the record of every file it wrote.

Each written file is recorded (path, size, CRC-32 where the archive states it, SHA-256 of
the bytes written, where they came from) as one JSON line in
``RAW/<source>/.fetch/fetched.jsonl``: appended, so a killed run loses nothing recorded, and
cheap for hundreds of thousands of files (the whole-file manifest, ``downloads.json``, is
rewritten per entry).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cytoimagenet.download.step import Outcome

LEDGER = "fetched.jsonl"


@dataclass
class SourceFetch:
    """Counts and outcomes of one source.

    Attributes
    ----------
    source : str
        Catalog shorthand.
    route : str
        How its files were fetched (``zip members``, ``kaggle files``, ``aspera list`` …).
    needed : int
        Files the build reads.
    fetched, skipped, failed : int
        Files written now, found already valid, not obtained.
    needed_bytes : int
        Bytes of the needed files as stored remotely (compressed members); 0 if unknown.
    whole_bytes : int
        Bytes of the archives (or files) a whole download fetches; 0 if unknown.
    received : int
        Bytes received over the network, directories and retries included.
    outcomes : list of Outcome
        Failures, manual steps and notes, in order.
    """

    source: str
    route: str
    needed: int = 0
    fetched: int = 0
    skipped: int = 0
    failed: int = 0
    needed_bytes: int = 0
    whole_bytes: int = 0
    received: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, *, fetched: int = 0, skipped: int = 0, failed: int = 0, received: int = 0
    ) -> None:
        """Count files and bytes received (thread-safe)."""
        with self._lock:
            self.received += received
            self.fetched += fetched
            self.skipped += skipped
            self.failed += failed

    def fail(self, path: str, reason: str, files: int = 1) -> None:
        """Record ``files`` files not obtained, with the reason."""
        with self._lock:
            self.failed += files
            self.outcomes.append(Outcome(self.source, path, "failed", reason=reason))

    def note(self, path: str, reason: str, status: str = "downloaded") -> None:
        """Record a note (a fallback, a manual step)."""
        with self._lock:
            self.outcomes.append(Outcome(self.source, path, status, reason=reason))  # type: ignore[arg-type]


@dataclass(frozen=True)
class FetchReport:
    """Every source's :class:`SourceFetch`."""

    sources: list[SourceFetch]

    @property
    def failed(self) -> int:
        """Files not obtained, all sources together."""
        return sum(s.failed for s in self.sources)

    def summary(self) -> str:
        """One line: files fetched, skipped, failed and the bytes it took."""
        fetched = sum(s.fetched for s in self.sources)
        skipped = sum(s.skipped for s in self.sources)
        received = sum(s.received for s in self.sources)
        needed = sum(s.needed_bytes for s in self.sources if s.fetched)
        manual = sum(o.status == "manual" for s in self.sources for o in s.outcomes)
        ratio = f", {received / needed:.3f}× the needed bytes" if needed else ""
        return (
            f"{fetched} file(s) fetched ({received / 1e6:,.1f} MB received{ratio}), "
            f"{skipped} already there, {self.failed} failed, {manual} manual step(s)"
        )


class Ledger:
    """Append-only record of the files written for one source (thread-safe)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".fetch" / LEDGER
        self._lock = threading.Lock()

    def record(self, path: str, size: int, sha256: str, origin: str, crc32: int | None) -> None:
        """Append one written file."""
        entry = {"path": path, "size": size, "sha256": sha256, "from": origin}
        if crc32 is not None:
            entry["crc32"] = f"{crc32:08x}"
        entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps(entry) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
