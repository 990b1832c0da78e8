"""Field types shared by the job configurations: paths that must exist, outputs of one kind.

Each is an ``Annotated`` type whose check runs when the job is validated, so a command fails
before any work with a message that names the path and what was expected there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def existing_file(what: str) -> AfterValidator:
    """Check that a path (or ``None``) names an existing file: ``what`` describes it."""

    def check(value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            raise ValueError(f"{value}: is a folder, not a {what}")
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such {what}")
        return value

    return AfterValidator(check)


def existing_files(what: str) -> AfterValidator:
    """Check that every path of a list names an existing file, listing all that do not."""

    def check(value: list[Path]) -> list[Path]:
        missing = [str(p) for p in value if not p.is_file()]
        if missing:
            raise ValueError(f"no such {what}: {', '.join(missing)}")
        return value

    return AfterValidator(check)


def existing_dir(what: str) -> AfterValidator:
    """Check that a path (or ``None``) names an existing directory: ``what`` says which."""

    def check(value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value}: no such directory ({what})")
        return value

    return AfterValidator(check)


def check_writable_place(value: Path) -> None:
    """Raise ``ValueError`` unless ``value`` can be created (or replaced) where it lies.

    The nearest existing ancestor must be a writable folder, not a file. Checked when a job
    is validated, so a command does not work for an hour and then fail to save its result.
    """
    place = Path("/")
    for ancestor in Path(value).resolve().parents:
        if ancestor.is_dir():
            place = ancestor
            break
        if ancestor.is_file():
            raise ValueError(
                f"{value}: cannot be created, {ancestor} is a file, not a folder; "
                "choose another path"
            )
    if not os.access(place, os.W_OK | os.X_OK):
        raise ValueError(
            f"{value}: cannot be written, {place} is not writable (read-only or no "
            "permission); choose another path"
        )


def output_file(*suffixes: str, noun: str = "output") -> AfterValidator:
    """Check that an output path (or ``None``) ends in one of ``suffixes`` and is no folder.

    Its folder must exist and be writable, or be creatable (see :func:`check_writable_place`).
    """
    wanted = " or ".join(suffixes)

    def check(value: Path | None) -> Path | None:
        if value is None:
            return value
        if value.suffix.lower() not in suffixes:
            raise ValueError(f"{value}: the {noun} must be a {wanted} file")
        if value.is_dir():
            raise ValueError(f"{value}: is a directory; give a file name ending in {wanted}")
        check_writable_place(value)
        return value

    return AfterValidator(check)


def _not_a_file(value: Path | None) -> Path | None:
    if value is None:
        return value
    if value.exists() and not value.is_dir():
        raise ValueError(f"{value}: exists and is not a directory; choose a folder")
    if value.is_dir():
        if not os.access(value, os.W_OK | os.X_OK):
            raise ValueError(
                f"{value}: the folder is not writable (read-only or no permission); "
                "choose another path"
            )
    else:
        check_writable_place(value)
    return value


def _device(value: str) -> str:
    if not _DEVICE.match(value):
        raise ValueError(f"{value!r}: expected auto, cpu, cuda or cuda:N")
    return value


#: A folder the job creates or resumes in: it may be missing, but must not be a file.
OutputDir = Annotated[Path, AfterValidator(_not_a_file)]
#: A torch device spelled ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
Device = Annotated[str, AfterValidator(_device)]
#: A Parquet output table.
ParquetOut = Annotated[Path, output_file(".parquet")]
#: A JSON result file.
JsonOut = Annotated[Path, output_file(".json", noun="result")]
