"""The shared field types reject bad paths and devices with messages that name them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from cytoimagenet.fields import (
    Device,
    JsonOut,
    OutputDir,
    ParquetOut,
    existing_dir,
    existing_file,
    existing_files,
)


class _Model(BaseModel):
    table: Annotated[Path | None, existing_file("table")] = None
    tables: Annotated[list[Path], existing_files("tables")] = []
    folder: Annotated[Path | None, existing_dir("the raw root")] = None
    out_dir: OutputDir | None = None
    parquet: ParquetOut | None = None
    result: JsonOut | None = None
    device: Device = "cpu"


def _error(**values: object) -> str:
    with pytest.raises(ValidationError) as info:
        _Model(**values)
    return str(info.value)


def test_existing_paths_pass(tmp_path: Path) -> None:
    file = tmp_path / "t.csv"
    file.write_text("x\n")
    model = _Model(table=file, tables=[file, file], folder=tmp_path, out_dir=tmp_path / "new")
    assert model.table == file and model.folder == tmp_path


def test_missing_paths_are_named(tmp_path: Path) -> None:
    assert f"{tmp_path / 'gone'}: no such table" in _error(table=tmp_path / "gone")
    assert "no such tables: a, b" in _error(tables=[Path("a"), Path("b")])
    assert "no such directory (the raw root)" in _error(folder=tmp_path / "gone")
    file = tmp_path / "f"
    file.write_text("")
    assert "exists and is not a directory" in _error(out_dir=file)
    assert f"{tmp_path}: is a folder, not a table" in _error(table=tmp_path)


def test_outputs_need_their_suffix_and_no_folder(tmp_path: Path) -> None:
    assert "the output must be a .parquet file" in _error(parquet=tmp_path / "x.csv")
    assert "the result must be a .json file" in _error(result=tmp_path / "x.txt")
    folder = tmp_path / "r.json"
    folder.mkdir()
    assert "is a directory" in _error(result=folder)
    assert _Model(result=tmp_path / "R.JSON").result == tmp_path / "R.JSON"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_devices_accepted(device: str) -> None:
    assert _Model(device=device).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "CPU", "cuda:x"])
def test_devices_refused(device: str) -> None:
    assert "expected auto, cpu, cuda or cuda:N" in _error(device=device)


def test_outputs_under_a_file_are_refused_before_any_work(tmp_path: Path) -> None:
    file = tmp_path / "plain.txt"
    file.write_text("x")
    for field, name in (("out_dir", "run"), ("parquet", "t.parquet"), ("result", "r.json")):
        message = _error(**{field: file / "sub" / name})
        assert f"{file / 'sub' / name}: cannot be created, {file} is a file" in message
    # A deeper missing folder under a writable one is fine: the command creates it.
    assert _Model(parquet=tmp_path / "a" / "b" / "t.parquet").parquet is not None


def test_outputs_in_an_unwritable_folder_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, whom permissions do not stop: simulate a read-only folder.
    import cytoimagenet.fields as fields

    monkeypatch.setattr(fields.os, "access", lambda path, mode: Path(path) != tmp_path)
    assert f"{tmp_path} is not writable" in _error(parquet=tmp_path / "new" / "t.parquet")
    assert f"{tmp_path}: the folder is not writable" in _error(out_dir=tmp_path)


def test_validate_job_names_every_bad_field_on_one_line(tmp_path: Path) -> None:
    from cytoimagenet.config import validate_job
    from cytoimagenet.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_job(_Model, table=tmp_path / "gone", device="tpu")
    message = str(info.value)
    assert "\n" not in message and message.startswith("invalid options: table: ")
    assert "no such table" in message and "; device: " in message
