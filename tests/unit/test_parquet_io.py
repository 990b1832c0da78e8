"""Parquet reads: damaged files are one error naming them; native stderr is held, not lost."""

from __future__ import annotations

import os

import polars as pl
import pytest

from cytoimagenet.errors import SchemaError
from cytoimagenet.io.parquet import native_stderr_held, read_parquet


def test_reads_columns(tmp_path):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}).write_parquet(path)
    assert read_parquet(path, columns=["b"]).to_dict(as_series=False) == {"b": ["x", "y"]}


@pytest.mark.parametrize("content", [None, b"", b"PAR1 not really", b"a,b\n1,2\n"])
def test_missing_or_damaged_files_are_named(tmp_path, content):
    path = tmp_path / "t.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SchemaError, match=f"^{path}: "):
        read_parquet(path)


def test_native_output_passes_on_success_and_is_dropped_on_failure(capfd):
    with native_stderr_held():
        os.write(2, b"kept\n")
    with pytest.raises(RuntimeError), native_stderr_held():
        os.write(2, b"dropped\n")
        raise RuntimeError
    assert capfd.readouterr().err == "kept\n"
