"""The ``sample`` command's mark on its output folder, so it never overwrites others' files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from cytoimagenet.config import claim_folder
from cytoimagenet.errors import ConfigError
from cytoimagenet.io.atomic import atomic_path

#: Written first into every folder the ``sample`` command fills.
MARKER: Final = ".cytoimagenet-sample.json"


def claim_sample_folder(out: Path, settings: dict[str, object]) -> None:
    """Check that ``out`` may receive a sample of ``settings["kind"]``, then mark it.

    ``out`` must be missing, empty, or hold an earlier sample of the same kind (regenerating
    rewrites only the sample's own files).

    Raises
    ------
    ConfigError
        When ``out`` holds other files, or a sample of another kind.
    """
    previous = claim_folder(out, MARKER, "sample")
    kind = settings.get("kind")
    if previous is not None and previous.get("kind") != kind:
        raise ConfigError(
            f"{out} holds a {previous.get('kind')!r} sample, not {kind!r}; choose an empty "
            "--out folder, or remove this one"
        )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MARKER) as tmp:
        tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
