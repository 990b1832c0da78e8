"""Task functions that kill their own process, for the build's worker-death tests.

The build runs its workers in spawned processes, where a monkeypatch made in the test
process does not exist. These wrappers live in an importable module, so a spawned worker
unpickles them by name; each installs, inside the worker, a TIFF reader that SIGKILLs its
own process when the file has a ``<name>.die`` marker beside it, then calls the real
function. The real functions are bound here at import, before any test patches them.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from cytoimagenet.curation.dataset.tasks import Shard
from cytoimagenet.curation.dataset.worker import process_fields as _real_fields
from cytoimagenet.curation.dataset.worker import process_shard as _real_shard

MARKER = ".die"


def marker_for(path: Path) -> Path:
    """The marker file that makes reading ``path`` kill the worker."""
    return path.with_name(path.name + MARKER)


def _install() -> None:
    from cytoimagenet.imaging import readers

    real = readers.READERS[".tif"]
    if getattr(real, "kills", False):
        return

    def killing(path: Path) -> list:
        if marker_for(Path(path)).exists():
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does
        return real(path)

    killing.kills = True  # type: ignore[attr-defined]
    readers.READERS[".tif"] = killing


def process_shard(shard: Shard) -> tuple[int, int]:
    _install()
    return _real_shard(shard)


def process_fields(shard: Shard) -> list[dict[str, Any]]:
    _install()
    return _real_fields(shard)


def suicide(n: int) -> int:
    """Return ``n * 10``, except for 3, which kills its process."""
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return n * 10
