"""The source catalog: one declarative entry per dataset, read from ``catalog/*.toml``.

Each TOML file holds the entries of one database family; each table in it is one source,
keyed by its shorthand (``bbbc005``, ``idr0088``, ``rec_rxrx1`` …). Entries are validated
with pydantic when the catalog is first loaded, so a typo fails loudly and early.
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from cytoimagenet.errors import ConfigError
from cytoimagenet.registry import Registry

#: Full database names, as the published metadata writes them, by short code.
DATABASES: dict[str, str] = {
    "bbbc": "Broad Bioimage Benchmark Collection",
    "idr": "Image Data Resource",
    "rxrx": "Recursion",
    "kaggle": "Kaggle",
    "cil": "Cell Image Library",
    "other": "Other",
}

Access = Literal["direct", "idr", "kaggle", "rxrx", "cil", "generated", "manual"]


class SourceInfo(BaseModel):
    """What one source dataset is and where it comes from.

    Attributes
    ----------
    name : str
        Shorthand, as in the CytoImageNet preprint's Supplementary Table 1.
    database : str
        Short database code, a key of :data:`DATABASES`.
    title : str
        Full dataset name.
    url : HttpUrl
        Home page.
    licence : str
        Licence of the images and metadata, as the source states it.
    organism, cell_type, cell_visible : list of str
        Dataset-level defaults, used where the metadata gives no per-image value.
    microscopy : str
        Imaging modality (``fluorescence``, ``confocal``, ``brightfield`` …).
    channels : list of str
        Channel names in file order; fluorescence channels are written ``f_<thing>``.
    file_pattern : str
        How one field's channel files are named, with ``{placeholders}``.
    images : int or None
        Expected number of images (the original authors' survey, ``datasets_info.csv``).
    access : str
        How files are obtained: ``direct`` URL, ``idr``, ``kaggle`` (user credentials),
        ``rxrx``, ``cil``, ``generated`` (the embedded sample) or ``manual``.
    metadata_files : list of str
        Glob patterns, relative to the raw root, of the metadata files the adapter reads.
        Empty when labels come from folder or file names.
    evaluation : bool
        Used by a transfer benchmark.
    pretraining : bool
        May contribute images to the pretraining set. ``False`` for the held-out
        evaluation datasets; this is enforced again at label time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    database: str
    title: str
    url: HttpUrl
    licence: str
    organism: list[str] = Field(default_factory=list)
    cell_type: list[str] = Field(default_factory=list)
    cell_visible: list[str] = Field(default_factory=list)
    microscopy: str
    channels: list[str]
    file_pattern: str
    images: int | None = Field(default=None, ge=0)
    access: Access
    metadata_files: list[str] = Field(default_factory=list)
    evaluation: bool = False
    pretraining: bool = True
    notes: str = ""

    @field_validator("database")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value not in DATABASES:
            raise ValueError(f"unknown database {value!r}; expected one of {sorted(DATABASES)}")
        return value

    @property
    def database_name(self) -> str:
        """Full database name, as written in the published metadata."""
        return DATABASES[self.database]

    def summary(self) -> dict[str, object]:
        """Return a JSON-ready dict of the entry (``url`` as a string)."""
        out = self.model_dump(mode="json")
        out["database"] = self.database_name
        out["database_code"] = self.database
        return out


@functools.cache
def load_catalog() -> Registry[SourceInfo]:
    """Load and validate every catalog file shipped with the package.

    Returns
    -------
    Registry[SourceInfo]
        All sources by shorthand.

    Raises
    ------
    ConfigError
        If an entry is malformed; the message names the file and the entry.
    """
    registry: Registry[SourceInfo] = Registry("source")
    folder = resources.files("cytoimagenet.sources") / "catalog"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml"):
            continue
        data = tomllib.loads(item.read_text(encoding="utf-8"))
        for name, entry in data.items():
            try:
                info = SourceInfo(name=name, **entry)
            except Exception as exc:
                raise ConfigError(f"catalog/{item.name} [{name}]: {exc}") from exc
            registry.register(name, info)
    return registry


def get_source(name: str) -> SourceInfo:
    """Return the catalog entry called ``name`` (case-insensitive)."""
    return load_catalog().get(name)


def all_sources(*, include_generated: bool = False) -> list[SourceInfo]:
    """Return the catalog entries, sorted by name.

    Parameters
    ----------
    include_generated : bool
        Also return generated entries (the embedded sample), which are not datasets of
        the paper and are hidden from listings by default.
    """
    catalog = load_catalog()
    entries = [catalog.get(n) for n in catalog.names()]
    return [e for e in entries if include_generated or e.access != "generated"]
