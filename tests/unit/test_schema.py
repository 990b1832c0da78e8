"""The unified schema: columns, validation, Parquet and CSV round trips, atomic writes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cytoimagenet.errors import SchemaError
from cytoimagenet.io.atomic import atomic_path
from cytoimagenet.schema import (
    PUBLISHED_COLUMNS,
    SCHEMA,
    conform,
    empty_frame,
    read_table,
    validate,
    write_table,
)

PUBLISHED = [
    "label",
    "category",
    "database",
    "name",
    "dir_name",
    "path",
    "filename",
    "idx",
    "organism",
    "cell_type",
    "cell_visible",
    "phenotype",
    "compound",
    "sirna",
    "gene",
    "microscopy",
    "crop",
    "scaling",
    "x_min",
    "x_max",
    "y_min",
    "y_max",
]


def _table() -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "database": ["Other"] * 2,
                "name": ["x"] * 2,
                "dir_name": ["sample"] * 2,
                "path": ["p", "p"],
                "filename": ["a", "b"],
                "idx": ["sample-a", "sample-b"],
                "compound": [["dmso"], ["taxol", "x|y"]],
                "crop": [False, False],
                "pool": ["pretraining"] * 2,
            }
        )
    )


def test_published_columns_in_order() -> None:
    assert list(PUBLISHED_COLUMNS) == PUBLISHED
    assert list(SCHEMA)[: len(PUBLISHED)] == PUBLISHED
    assert empty_frame().columns == list(SCHEMA)


def test_validate_accepts_and_rejects() -> None:
    validate(_table())
    with pytest.raises(SchemaError, match="missing columns"):
        validate(_table().drop("idx"))
    with pytest.raises(SchemaError, match="share an idx"):
        validate(_table().with_columns(pl.lit("same").alias("idx")))
    with pytest.raises(SchemaError, match="null"):
        validate(_table().with_columns(pl.lit(None, dtype=pl.String).alias("path")))
    with pytest.raises(SchemaError, match="expected"):
        validate(_table().with_columns(pl.col("crop").cast(pl.Int64)))


def test_parquet_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    write_table(_table(), out, csv=True)
    assert read_table(out).equals(_table())
    csv_text = (tmp_path / "t.csv").read_text()
    assert csv_text.splitlines()[0].startswith(",".join(PUBLISHED[:4]))
    assert "taxol|x|y" in csv_text  # lists are |-joined in CSV


def test_csv_round_trip_of_simple_values(tmp_path: Path) -> None:
    table = _table().with_columns(pl.Series("compound", [["dmso"], ["taxol", "nocodazole"]]))
    write_table(table, tmp_path / "t.parquet", csv=True)
    assert read_table(tmp_path / "t.csv").equals(table)


def test_read_table_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no such file"):
        read_table(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match="idx"):
        read_table(bad)


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
