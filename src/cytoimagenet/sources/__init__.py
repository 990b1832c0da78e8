"""Source datasets: the catalog, the adapter registry, and :func:`build_metadata`.

Importing this package registers every adapter (one module per database family).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from cytoimagenet.errors import ConfigError, MetadataError
from cytoimagenet.sources import (  # noqa: F401  (importing registers the adapters)
    bbbc,
    bbbc_layouts,
    bbbc_painting,
    cil,
    evaluation,
    idr_studies,
    kaggle,
    rxrx,
    sample,
)
from cytoimagenet.sources.base import ADAPTERS, SourceAdapter
from cytoimagenet.sources.catalog import SourceInfo, all_sources, get_source, load_catalog

__all__ = [
    "ADAPTERS",
    "SourceAdapter",
    "SourceInfo",
    "all_sources",
    "build_metadata",
    "get_adapter",
    "get_source",
    "load_catalog",
]


def get_adapter(name: str) -> SourceAdapter:
    """Return the metadata adapter of source ``name``."""
    info = get_source(name)  # an unknown name fails with the catalog's list of valid names
    if name not in ADAPTERS:  # a finished dataset in the catalog: fetched, never adapted
        table = info.metadata_files[0] if info.metadata_files else "TABLE"
        raise ConfigError(
            f"{name} has no metadata adapter: it is read as it is, not turned into a source "
            f"table ({info.notes or info.title}). Use `cytoimagenet pretrain --data DIR` or "
            f"`cytoimagenet extract --images DIR/{table}`"
        )
    return ADAPTERS.get(name)


def build_metadata(source: str, raw: Path) -> pl.DataFrame:
    """Read the raw metadata of ``source`` under ``raw`` into the unified schema.

    Parameters
    ----------
    source : str
        Catalog shorthand, e.g. ``"idr0088"``.
    raw : Path
        The source's raw directory: its metadata files, and images if downloaded.

    Returns
    -------
    polars.DataFrame
        The harmonised table, one row per source image, validated.

    Raises
    ------
    UnknownSourceError
        If ``source`` is not in the catalog.
    MetadataError
        If ``raw`` or a needed file or column is missing.
    """
    from cytoimagenet.curation.harmonize import harmonize

    info = get_source(source)
    adapter = get_adapter(source)
    raw = Path(raw)
    if not raw.is_dir():
        raise MetadataError(f"{raw}: raw directory of source {source!r} not found")
    records = adapter.read(raw)
    if records.height == 0:
        raise MetadataError(f"{raw}: the metadata of {source!r} lists no images")
    return harmonize(records, info)
