"""The adapter contract: how one source's raw metadata becomes raw records.

An adapter only *reads*: it never downloads and never writes. It returns one row per
source image (field of view, or object for per-object sources) with these columns:

=================  ===========  =====================================================
column             required     meaning
=================  ===========  =====================================================
``key``            yes          unique and stable within the source (e.g. plate/well/site)
``path``           yes          folder of the image, relative to the raw root
``filename``       yes          file name of the image (or field stem for multi-file fields)
``channel_paths``  yes          list of per-channel files, relative to the raw root
``plate``          no           plate identifier as the source writes it
``well``           no           well, e.g. ``A01``
``site``           no           field / site within the well
``organism`` …     no           label fields (:data:`~cytoimagenet.schema.LABEL_FIELDS`),
                                a ``|``-joined string or a list of strings, raw values
``microscopy``     no           per-row modality (defaults to the catalog's)
``channels``       no           per-row channel names (defaults to the catalog's)
``control``        no           raw control annotation (``negative control``, ``empty well`` …)
``exclude_reason`` no           why this row must never be labelled (source QC failure …)
``moa``            no           mechanism(s) of action of the compound (not a label field)
``condition``      no           growth or stress condition(s): medium, starvation, a stress
``strain``         no           strain or line id (yeast ``SK1`` …), never a cell type
``concentration``  no           dose as written: a number, or text such as ``5 micromolar``;
                                the unit of a bare number in ``concentration_unit``
=================  ===========  =====================================================

Values are raw: harmonisation (:mod:`cytoimagenet.curation.harmonize`) lower-cases,
normalises, maps synonyms and fills catalog defaults, so adapters stay small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import find_files, read_delimited, require_columns
from cytoimagenet.registry import Registry
from cytoimagenet.sources.catalog import SourceInfo, get_source

RECORD_REQUIRED: Final = ("key", "path", "filename", "channel_paths")
RECORD_OPTIONAL: Final = (
    "plate",
    "well",
    "site",
    "organism",
    "cell_type",
    "cell_visible",
    "phenotype",
    "compound",
    "gene",
    "sirna",
    "microscopy",
    "channels",
    "control",
    "exclude_reason",
    "concentration",
    "concentration_unit",
    "moa",
    "condition",
    "strain",
)


def only_one(paths: list[Path], source: str, hint: str = "keep one copy") -> Path:
    """Return the one path of ``paths``; several are an error that lists them all."""
    if len(paths) > 1:
        listed = ", ".join(str(p) for p in paths)
        raise MetadataError(f"several metadata files of source {source!r} found ({listed}); {hint}")
    return paths[0]


class SourceAdapter(ABC):
    """Base class of per-source metadata adapters.

    Subclasses implement :meth:`read`. The catalog entry of the same name supplies the
    dataset-level facts (channels, defaults, metadata file patterns).

    Parameters
    ----------
    name : str
        The source's shorthand; must exist in the catalog.
    """

    #: True when labels come from folder or file names, so images must be present.
    needs_images: bool = False

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def info(self) -> SourceInfo:
        """The catalog entry of this source."""
        return get_source(self.name)

    @abstractmethod
    def read(self, raw: Path) -> pl.DataFrame:
        """Read the raw metadata under ``raw`` into raw records (see the module docstring)."""

    def metadata_paths(self, raw: Path) -> list[Path]:
        """Return the metadata files under ``raw`` that match the catalog's patterns.

        Raises
        ------
        MetadataError
            If none is found; the message lists the patterns that were looked for.
        """
        patterns = self.info.metadata_files
        found = find_files(raw, patterns)
        if not found:
            raise MetadataError(
                f"{raw}: no metadata file of source {self.name!r} found; expected a file "
                f"matching {' or '.join(patterns)} (as the source publishes it). "
                f"Put the source's metadata files there; `cytoimagenet sources show {self.name}` "
                "gives its home page."
            )
        return found

    def metadata_table(
        self, raw: Path, columns: Sequence[str], hint: str = "keep one copy"
    ) -> tuple[pl.DataFrame, Path]:
        """Read the source's one metadata table and check that it has ``columns``.

        Raises
        ------
        MetadataError
            If no file or several are found (``hint`` says which to keep), or a column is
            missing.
        """
        path = only_one(self.metadata_paths(raw), self.name, hint)
        table = read_delimited(path)
        require_columns(table, columns, path)
        return table, path

    def image_files(self, raw: Path, suffixes: tuple[str, ...]) -> list[Path]:
        """Return image files under ``raw`` with one of ``suffixes`` (case-insensitive), sorted.

        Raises
        ------
        MetadataError
            If there are none, for sources whose labels live in folder or file names.
        """
        wanted = tuple(s.lower() for s in suffixes)
        files = sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
        if not files:
            raise MetadataError(
                f"{raw}: no image files ({', '.join(suffixes)}) found for source {self.name!r}. "
                "Its labels come from folder and file names, so the images must be downloaded "
                f"there first (`cytoimagenet sources show {self.name}` gives its home page)."
            )
        return files


ADAPTERS: Registry[SourceAdapter] = Registry("source adapter")


def register(adapter: SourceAdapter) -> SourceAdapter:
    """Add ``adapter`` to the adapter registry and return it."""
    ADAPTERS.register(adapter.name, adapter)
    return adapter


def relpath(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` with forward slashes."""
    return path.relative_to(root).as_posix()


def check_records(records: pl.DataFrame, source: str) -> None:
    """Raise :class:`MetadataError` if an adapter's output breaks the record contract."""
    missing = [c for c in RECORD_REQUIRED if c not in records.columns]
    if missing:
        raise MetadataError(f"adapter {source!r} returned no {missing} column(s)")
    unknown = [c for c in records.columns if c not in RECORD_REQUIRED + RECORD_OPTIONAL]
    if unknown:
        raise MetadataError(f"adapter {source!r} returned unexpected column(s) {unknown}")
    if records["key"].null_count():
        raise MetadataError(f"adapter {source!r} returned rows without a key")
    dup = records["key"].is_duplicated()
    if dup.any():
        example = records.filter(dup)["key"].head(3).to_list()
        raise MetadataError(f"adapter {source!r} returned duplicated keys, e.g. {example}")
