"""Validated job configurations: every command checks its inputs here before doing any work."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cytoimagenet.errors import ConfigError


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
    raw: Path
    out: Path
    csv: bool = True

    @field_validator("source")
    @classmethod
    def _known(cls, value: str) -> str:
        from cytoimagenet.sources import get_source

        return get_source(value).name

    @field_validator("raw")
    @classmethod
    def _raw_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value}: no such directory (the source's raw metadata folder)")
        return value

    @field_validator("out")
    @classmethod
    def _parquet(cls, value: Path) -> Path:
        if value.suffix != ".parquet":
            raise ValueError(f"{value}: the output must be a .parquet file")
        if value.is_dir():
            raise ValueError(f"{value}: is a directory; give a file name ending in .parquet")
        return value


J = TypeVar("J", bound=_Job)


class SampleJob(_Job):
    """Generate the embedded sample source."""

    out: Path
    plates: int = Field(default=2, ge=1, le=8)
    sites: int = Field(default=2, ge=1, le=9)
    size: int = Field(default=192, ge=16, le=2048)
    cells: int = Field(default=12, ge=1, le=200)
    seed: int = 0


class QuickstartJob(_Job):
    """Run the main job on the embedded sample."""

    out: Path = Path("runs/quickstart")
    seed: int = 0


def validate_job(model: type[J], **values: object) -> J:
    """Build and validate a job, turning pydantic's error into a :class:`ConfigError`.

    Raises
    ------
    ConfigError
        Listing every invalid field with its message.
    """
    from pydantic import ValidationError

    from cytoimagenet.errors import UnknownSourceError

    try:
        return model(**values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or model.__name__
            lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid options:\n" + "\n".join(lines)) from None
    except UnknownSourceError as exc:
        raise ConfigError(str(exc)) from None
