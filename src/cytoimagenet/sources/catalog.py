"""The source catalog: one declarative entry per dataset, read from ``catalog/*.toml``.

Each TOML file holds the entries of one database family; each table in it is one source,
keyed by its shorthand (``bbbc005``, ``idr0088``, ``rec_rxrx1`` …). Entries are validated
with pydantic when the catalog is first loaded, so a typo fails loudly and early.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

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

#: URL schemes a catalog file may use. ``kaggle://competition/<slug>[/<file>]`` and
#: ``kaggle://dataset/<owner>/<slug>[/<file>]`` go through the official Kaggle client.
URL_SCHEMES = ("https", "http", "kaggle")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class RemoteFile(BaseModel):
    """One file of a source that can be fetched.

    Attributes
    ----------
    url : str
        Where the file is (``https://``; ``kaggle://`` for the Kaggle client).
    path : str
        Target, relative to the source's folder; the URL's last segment by default.
    size : int or None
        Size in bytes, where the source publishes it or it was verified.
    sha256 : str or None
        Lower-case hex SHA-256, where verified. Never guessed: leave it empty when unknown
        (the downloader then records the hash it computed, see ``docs/downloading.md``).
    kind : {"metadata", "images"}
        ``metadata`` files are all ``--metadata-only`` fetches.
    extract : bool or None
        Unpack the archive beside itself; ``None`` decides from the name (``.zip``, ``.tar*``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    path: str = ""
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    kind: Literal["metadata", "images"] = "images"
    extract: bool | None = None

    @model_validator(mode="after")
    def _checked(self) -> RemoteFile:
        parts = urlsplit(self.url)
        if parts.scheme not in URL_SCHEMES or not parts.netloc:
            raise ValueError(f"{self.url!r}: expected an absolute {'/'.join(URL_SCHEMES)} URL")
        if not self.path:
            name = unquote(PurePosixPath(parts.path).name)
            if not name:
                raise ValueError(f"{self.url!r}: the URL names no file; give `path`")
            object.__setattr__(self, "path", name)
        pure = PurePosixPath(self.path)
        if pure.is_absolute() or ".." in pure.parts or "\\" in self.path:
            raise ValueError(f"{self.path!r}: the target must be a relative path inside the folder")
        return self

    @property
    def is_archive(self) -> bool:
        """Whether the file is unpacked after download."""
        if self.extract is not None:
            return self.extract
        return self.path.lower().endswith(ARCHIVE_SUFFIXES)


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
    files : list of RemoteFile
        The files a download fetches (empty where no URL is known: the home page says how).
    evaluation : bool
        Used by a transfer benchmark.
    pretraining : bool
        May contribute images to the pretraining set. ``False`` for the held-out
        evaluation datasets; this is enforced again at label time.
    idr_folder : str
        IDR studies only: the study's top folder on IDR's file servers
        (``idr0003-breker-plasticity``), i.e. the home of the Aspera user ``idrNNNN`` and
        ``ftp.ebi.ac.uk/pub/databases/IDR/<idr_folder>/``. Empty where no source confirms it
        (see ``docs/idr-routes.md``).
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
    files: list[RemoteFile] = Field(default_factory=list)
    evaluation: bool = False
    pretraining: bool = True
    notes: str = ""
    idr_folder: str = Field(default="", pattern=r"^(idr\d{4}-[A-Za-z0-9._-]+)?$")

    @field_validator("database")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value not in DATABASES:
            raise ValueError(f"unknown database {value!r}; expected one of {sorted(DATABASES)}")
        return value

    @field_validator("files")
    @classmethod
    def _distinct_targets(cls, value: list[RemoteFile]) -> list[RemoteFile]:
        seen: set[str] = set()
        for item in value:
            if item.path in seen:
                raise ValueError(f"two files share the target {item.path!r}")
            seen.add(item.path)
        return value

    @property
    def database_name(self) -> str:
        """Full database name, as written in the published metadata."""
        return DATABASES[self.database]

    def summary(self) -> dict[str, object]:
        """Return a JSON-ready dict of the entry (``url`` as a string, files counted)."""
        out = self.model_dump(mode="json", exclude={"files"})
        out["remote_files"] = len(self.files)  # the list itself: `cytoimagenet download --list`
        out["database"] = self.database_name
        out["database_code"] = self.database
        return out


#: Catalog files of finished datasets: downloadable like a source, but no adapter reads
#: them into metadata (the published CytoImageNet, read as it is by pretrain and extract).
DATASET_FILES = ("published.toml",)


@functools.cache
def load_catalog() -> Registry[SourceInfo]:
    """Load and validate every catalog file shipped with the package.

    Returns
    -------
    Registry[SourceInfo]
        All sources by shorthand (not the finished datasets: :func:`load_datasets`).

    Raises
    ------
    ConfigError
        If an entry is malformed; the message names the file and the entry.
    """
    return _load("source", lambda name: name not in DATASET_FILES)


@functools.cache
def load_datasets() -> Registry[SourceInfo]:
    """Load the finished datasets of :data:`DATASET_FILES` (``cytoimagenet``)."""
    return _load("dataset", lambda name: name in DATASET_FILES)


def _load(kind: str, wanted: Callable[[str], bool]) -> Registry[SourceInfo]:
    registry: Registry[SourceInfo] = Registry(kind)
    folder = resources.files("cytoimagenet.sources") / "catalog"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".toml") or not wanted(item.name):
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
    """Return the catalog entry called ``name`` (case-insensitive), a finished dataset too."""
    datasets = load_datasets()
    return datasets.get(name) if name in datasets else load_catalog().get(name)


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
