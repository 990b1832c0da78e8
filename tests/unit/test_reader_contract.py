"""Every file suffix a catalog entry names has a reader, and a fixture that reads back exactly.

The suffixes come from each entry's ``file_pattern`` (``sources/catalog/*.toml``), so a new
source in a format nobody reads fails here instead of being quarantined file by file in a
build. Suffixes that are not image files (archives unpacked by ``download``, COOS-7's HDF5
release converted to TIFFs, metadata tables) are listed with the reason they need no reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from tests.fakes.dv import write_dv

from cytoimagenet.imaging.readers import READERS, read_planes
from cytoimagenet.sources.catalog import all_sources, load_datasets

#: A suffix: a dot after a name character, ``}``, ``]``, ``)``, ``*``, a space or the start,
#: then a letter and up to four more (``.TIF``, ``.dv``, ``.hdf5``), not followed by more name.
SUFFIX = re.compile(r"(?:(?<=[\w}\])*])|(?<=\s)|^)\.([A-Za-z][A-Za-z0-9]{0,4})(?!\w)")

#: Suffixes that name no image file the build reads, and why.
NOT_IMAGES = {
    ".zip": "an archive: `download` unpacks it (cil_kinome: one .tif per .zip)",
    ".hdf5": "COOS-7's release: `coos7_release` converts it to a TIFF tree first",
    ".json": "annotations (bbbc041 training.json / test.json)",
    ".csv": "a metadata table",
}


def catalog_suffixes() -> dict[str, list[str]]:
    """Lower-case suffix → the catalog entries (every ``*.toml``) whose file pattern names it."""
    found: dict[str, list[str]] = {}
    datasets = [load_datasets().get(n) for n in load_datasets().names()]
    for info in [*all_sources(include_generated=True), *datasets]:
        for suffix in SUFFIX.findall(info.file_pattern):
            found.setdefault(f".{suffix.lower()}", []).append(info.name)
    return found


SUFFIXES = catalog_suffixes()
IMAGE_SUFFIXES = sorted(s for s in SUFFIXES if s not in NOT_IMAGES)

Fixture = Callable[[Path], tuple[Path, list[np.ndarray]]]
RNG = np.random.default_rng(20261205)


def _cv2_file(suffix: str, dtype: type = np.uint8) -> Fixture:
    def write(folder: Path) -> tuple[Path, list[np.ndarray]]:
        top = np.iinfo(dtype).max
        image = RNG.integers(0, top, (24, 30), endpoint=True).astype(dtype)
        path = folder / f"fixture{suffix}"
        ok, encoded = cv2.imencode(".bmp" if suffix in (".dib",) else suffix, image)
        assert ok
        path.write_bytes(encoded.tobytes())
        return path, [image]

    return write


def _jpeg(suffix: str) -> Fixture:
    def write(folder: Path) -> tuple[Path, list[np.ndarray]]:
        # JPEG is lossy: the fixture is what OpenCV decodes from the very same bytes.
        image = RNG.integers(0, 256, (24, 30)).astype(np.uint8)
        ok, encoded = cv2.imencode(".jpg", image)
        assert ok
        path = folder / f"fixture{suffix}"
        path.write_bytes(encoded.tobytes())
        return path, [cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)]

    return write


def _tiff(suffix: str) -> Fixture:
    def write(folder: Path) -> tuple[Path, list[np.ndarray]]:
        pages = RNG.integers(0, 4096, (2, 24, 30)).astype(np.uint16)  # 12-bit, 2 pages
        path = folder / f"fixture{suffix}"
        tifffile.imwrite(path, pages)
        return path, list(pages)

    return write


def _dv(suffix: str) -> Fixture:
    def write(folder: Path) -> tuple[Path, list[np.ndarray]]:
        stack = RNG.integers(0, 65536, (3, 1, 2, 24, 30)).astype(np.uint16)
        path = write_dv(folder / f"fixture{suffix}", stack, byte_order=">")
        return path, list(stack.reshape(-1, 24, 30))

    return write


#: Lower-case suffix → a writer of a small fixture in that format and the planes it holds.
FIXTURES: dict[str, Fixture] = {
    ".tif": _tiff(".tif"),
    ".tiff": _tiff(".tiff"),
    ".png": _cv2_file(".png", np.uint16),
    ".bmp": _cv2_file(".bmp"),
    ".dib": _cv2_file(".dib"),
    ".jpg": _jpeg(".jpg"),
    ".jpeg": _jpeg(".jpeg"),
    ".dv": _dv(".dv"),
}


def test_the_catalog_names_the_formats_we_know_it_has() -> None:
    # guards the pattern above: it must find the odd ones (DeltaVision, DIB, upper case)
    assert {".dv", ".dib", ".tif", ".tiff", ".png", ".jpg", ".bmp"} <= set(IMAGE_SUFFIXES)
    assert set(SUFFIXES[".dv"]) == {"idr0021", "idr0067"}
    assert not set(SUFFIXES) - set(IMAGE_SUFFIXES) - set(NOT_IMAGES)


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_catalog_suffix_has_a_reader_and_a_fixture(suffix: str, tmp_path: Path) -> None:
    users = ", ".join(SUFFIXES[suffix])
    assert suffix in READERS, f"no reader for {suffix} files ({users}): add one to READERS"
    assert suffix in FIXTURES, f"no fixture for {suffix} ({users}): add a writer to FIXTURES"
    path, expected = FIXTURES[suffix](tmp_path)
    planes = read_planes(path)
    assert len(planes) == len(expected)
    for got, want in zip(planes, expected, strict=True):
        assert got.dtype == want.dtype  # full bit depth, as stored
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_suffixes_are_matched_whatever_their_case(suffix: str, tmp_path: Path) -> None:
    # the catalog writes .TIF, .BMP, .Bmp, .JPG, .DIB: the files on disk are named so
    path, expected = FIXTURES[suffix](tmp_path)
    upper = path.rename(path.with_suffix(suffix.upper()))
    assert len(read_planes(upper)) == len(expected)
