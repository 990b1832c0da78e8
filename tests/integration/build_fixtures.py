"""Raw trees with real pixels for build tests: the sample plate plus fake sources whose channel
files are written as synthetic images in each file's own format."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import polars as pl
import tifffile
from tests.fakes import ALL_FAKES

from cytoimagenet.curation.labels import LabelOptions, assign_labels
from cytoimagenet.sample import SampleSpec, generate_sample
from cytoimagenet.schema import write_table
from cytoimagenet.sources import build_metadata

#: Fake sources whose files cover the reader formats: TIFF, DIB, PNG (grey and RGB).
FAKE_SOURCES = ("idr0003", "bbbc017", "kag_hpa", "bbbc041")


def synthetic_field(rng: np.random.Generator, size: int, dtype: type) -> np.ndarray:
    """Blobs on a noisy background, spanning the dtype's range like a real micrograph."""
    yy, xx = np.mgrid[0:size, 0:size]
    image = rng.normal(100, 10, (size, size))
    for _ in range(12):
        cy, cx = rng.integers(0, size, 2)
        image += 2000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 14) ** 2))
    top = 4095 if dtype == np.uint16 else 255
    image = image / image.max() * top
    return np.clip(image, 0, top).astype(dtype)


def write_image(path: Path, rng: np.random.Generator, size: int = 200) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, synthetic_field(rng, size, np.uint16))
        return
    image = synthetic_field(rng, size, np.uint8)
    if "bbbc041" in path.parts:  # RGB brightfield
        image = np.dstack([image, image // 2, 255 - image])
    ok, buf = cv2.imencode(".bmp" if suffix == ".dib" else suffix, image)
    assert ok
    path.write_bytes(buf.tobytes())


def make_raw_root(root: Path, seed: int = 0) -> list[pl.DataFrame]:
    """Write every source under ``root/<source>``; return their metadata tables."""
    rng = np.random.default_rng(seed)
    tables = []
    generate_sample(root / "sample", SampleSpec(plates=1, sites=2, size=160, seed=seed))
    tables.append(build_metadata("sample", root / "sample"))
    for source in FAKE_SOURCES:
        raw = root / source
        raw.mkdir(parents=True)
        ALL_FAKES[source](raw)
        table = build_metadata(source, raw)
        for files in table["channel_paths"].to_list():
            for rel in files:
                write_image(raw / rel, rng)
        tables.append(table)
    return tables


def make_labels(root: Path, out: Path, threshold: int = 2) -> pl.DataFrame:
    """Raw tree + labels table for a build; returns the labelled rows."""
    tables = make_raw_root(root)
    result = assign_labels(tables, LabelOptions(threshold=threshold, class_size=1000, seed=0))
    write_table(result.table, out)
    return result.table.filter(pl.col("label").is_not_null())
