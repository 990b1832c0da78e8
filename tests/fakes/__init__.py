"""Fake raw trees, one writer per source, in the layout and formats the source publishes.

Each family module exposes ``FAKES``: ``{source name: writer}``, where a writer takes an
empty directory, writes a small raw tree into it, and returns the number of records the
source's adapter must produce from it. :data:`ALL_FAKES` merges them; the adapter
contract test runs every registered adapter on its fake.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

FakeWriter = Callable[[Path], int]


def _collect() -> dict[str, FakeWriter]:
    merged: dict[str, FakeWriter] = {}
    for module in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{module.name}")
        for name, writer in getattr(mod, "FAKES", {}).items():
            if name in merged:
                raise ValueError(f"two fakes for source {name!r}")
            merged[name] = writer
    return merged


ALL_FAKES: dict[str, FakeWriter] = _collect()
