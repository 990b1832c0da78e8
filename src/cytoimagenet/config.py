"""Validated job configurations: every command checks its inputs here before doing any work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cytoimagenet.errors import ConfigError
from cytoimagenet.fields import OutputDir, ParquetOut, existing_dir, existing_file, existing_files


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def resolved(self) -> dict[str, object]:
        """Return the configuration as JSON-ready values."""
        return self.model_dump(mode="json")


class MetadataJob(_Job):
    """Build the harmonised metadata table of one source.

    Attributes
    ----------
    source : str
        Catalog shorthand.
    raw : Path
        Existing directory with the source's raw metadata (and images, if downloaded).
    out : Path
        Output Parquet file.
    csv : bool
        Also write the CSV export beside it.
    """

    source: str
    raw: Annotated[Path, existing_dir("the source's raw metadata folder")]
    out: ParquetOut
    csv: bool = True

    @field_validator("source")
    @classmethod
    def _known(cls, value: str) -> str:
        from cytoimagenet.sources import get_source

        return get_source(value).name

    @model_validator(mode="after")
    def _spare_the_raw_files(self) -> MetadataJob:
        # The outputs replace files of their names; inside --raw those may be the very
        # metadata files just read (``--out raw/x.parquet`` would overwrite ``raw/x.csv``).
        raw = self.raw.resolve()
        written = [self.out, self.out.with_name(f"{self.out.stem}.provenance.json")]
        written += [self.out.with_suffix(".csv")] if self.csv else []
        clash = [p for p in written if p.is_file() and raw in p.resolve().parents]
        if clash:
            raise ValueError(
                f"{clash[0]} is a file in the raw folder {self.raw} and would be overwritten; "
                "write --out outside --raw"
            )
        return self


J = TypeVar("J", bound=_Job)


class SampleJob(_Job):
    """Generate embedded synthetic data: the sample source or a benchmark-layout screen.

    ``kind`` is ``source`` (the pretraining sample, :mod:`cytoimagenet.sample.generate`),
    ``bbbc021`` (a compound screen in BBBC021's layout, one plate per week,
    :mod:`cytoimagenet.sample.plate`) or ``bbbc014`` (a BBBC014-like plate; seed only).
    ``size`` and ``cells`` ``None`` take the kind's default; ``dmso_wells`` (DMSO control
    wells per plate) is for ``bbbc021`` only.
    """

    out: OutputDir
    kind: Literal["source", "bbbc021", "bbbc014"] = "source"
    plates: int = Field(default=2, ge=1, le=8)
    sites: int = Field(default=2, ge=1, le=9)
    size: int | None = Field(default=None, ge=16, le=2048)
    cells: int | None = Field(default=None, ge=1, le=200)
    dmso_wells: int | None = Field(default=None, ge=1, le=24)
    seed: int = 0

    @model_validator(mode="after")
    def _dmso_wells_for_bbbc021(self) -> SampleJob:
        if self.dmso_wells is not None and self.kind != "bbbc021":
            raise ValueError(f"--dmso-wells is for --kind bbbc021, not {self.kind!r}")
        return self


class LabelJob(_Job):
    """Assign weak labels over one or more harmonised metadata tables."""

    metadata: Annotated[list[Path], Field(min_length=1), existing_files("metadata table(s)")]
    out: ParquetOut
    threshold: int = Field(default=287, ge=1)
    class_size: int = Field(default=1000, ge=1)
    seed: int = 0
    categories: list[str] | None = None
    min_class_size: int | None = Field(default=None, ge=1)
    unseen_classes: int = Field(default=0, ge=0)
    include_controls: bool = False
    split_by_dose: bool = False
    synonyms: Annotated[Path | None, existing_file("synonyms table")] = None
    blocklist: Annotated[Path | None, existing_file("blocklist table")] = None

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        from cytoimagenet.curation.labels import CATEGORY_ORDER

        if value is not None:
            unknown = [c for c in value if c not in CATEGORY_ORDER]
            if unknown:
                raise ValueError(
                    f"unknown categories {unknown}; choose from {list(CATEGORY_ORDER)}"
                )
        return value


class QCConfig(_Job):
    """Quality-control thresholds (see :class:`cytoimagenet.imaging.quality.QCThresholds`)."""

    uniform_low: float = Field(default=0.1, ge=0, le=100)
    uniform_high: float = Field(default=99.9, ge=0, le=100)
    min_side: int = Field(default=16, ge=1)
    crop_mean_low: float = 1.0
    crop_mean_high: float = 254.0
    dim_percentile: float = Field(default=75.0, ge=0, le=100)
    mask_flat_fraction: float = Field(default=0.8, gt=0, le=1)
    mask_max_levels: int = Field(default=4096, ge=2)


class BuildJob(_Job):
    """Build the dataset (PNGs + metadata) from a labels table and the raw images.

    Attributes
    ----------
    labels : Path
        Labels table written by ``cytoimagenet labels``.
    root : Path
        Raw data root: the files of source ``S`` lie under ``root/S/`` as its
        ``channel_paths`` say.
    out : Path
        Dataset folder (created; an interrupted build here is resumed).
    workers : int
        Local worker processes.
    scheduler : str, optional
        Address of a dask distributed scheduler; replaces the local pool.
    class_size : int
        Classes are trimmed to this many images (paper: 1000).
    min_class_size : int
        Classes with fewer images after QC are dropped (published dataset: 500).
    max_pixels : int
        Largest plane (height x width) a field may have, checked from file headers before
        decoding; larger fields are quarantined as ``too-large`` (100 Mpx: about 10,000²,
        far above any source's fields, far below a decompression bomb).
    """

    labels: Annotated[Path, existing_file("labels table (run `cytoimagenet labels` first)")]
    root: Annotated[Path, existing_dir("the raw data root")]
    out: OutputDir
    workers: int = Field(default=1, ge=1, le=512)
    scheduler: str | None = None
    seed: int = 0
    class_size: int = Field(default=1000, ge=1)
    min_class_size: int = Field(default=500, ge=1)
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    crops: bool = True
    low: float = Field(default=0.1, ge=0, le=100)
    high: float = Field(default=99.9, ge=0, le=100)
    shard_size: int = Field(default=32, ge=1, le=100_000)
    max_pixels: int = Field(default=100_000_000, ge=1)
    qc: QCConfig = QCConfig()

    def fingerprint(self) -> dict[str, object]:
        """Return the settings that decide the output (not how fast it is made)."""
        return self.model_dump(
            mode="json", exclude={"workers", "scheduler", "out", "root", "labels"}
        )


class QuickstartJob(_Job):
    """Run the main job on the embedded sample."""

    out: OutputDir = Path("runs/quickstart")
    preset: Literal["default", "tiny"] = "default"
    seed: int = 0
    workers: int = Field(default=1, ge=1, le=512)


def claim_folder(out: Path, marker: str, command: str) -> dict[str, object] | None:
    """Refuse a non-empty ``out`` that holds no earlier run of ``command``.

    A run is recognised by its ``marker`` file (a JSON object it writes first): a command must
    never overwrite files it did not write.

    Returns
    -------
    dict or None
        The marker's content when ``out`` holds an earlier run (to resume), else ``None``.

    Raises
    ------
    ConfigError
        When ``out`` is not empty and has no marker, or the marker is not a JSON object.
    """
    import json

    state = out / marker
    if state.is_file():
        try:
            content = json.loads(state.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            content = exc
        if not isinstance(content, dict):
            raise ConfigError(
                f"{state}: not a valid {command} state file ({content}); remove the folder "
                "to start over, or choose an empty --out folder"
            )
        return content
    if out.is_dir() and any(out.iterdir()):
        found = sorted(p.name for p in out.iterdir())
        shown = ", ".join(found[:3]) + (" …" if len(found) > 3 else "")
        raise ConfigError(
            f"{out} is not empty ({shown}) and holds no earlier `{command}` run; "
            f"`{command}` never overwrites files it did not write: choose an empty --out "
            "folder, or remove this one"
        )
    return None


def validate_job(job_type: type[J], /, **values: object) -> J:
    """Build and validate a job, turning pydantic's error into a :class:`ConfigError`.

    Raises
    ------
    ConfigError
        Listing every invalid field with its message.
    """
    from pydantic import ValidationError

    from cytoimagenet.errors import UnknownSourceError

    try:
        return job_type(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or job_type.__name__
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        # One line, so that a command's answer to bad input is one `error:` line.
        raise ConfigError("invalid options: " + "; ".join(problems)) from None
    except UnknownSourceError as exc:
        raise ConfigError(str(exc)) from None
