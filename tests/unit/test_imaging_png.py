"""PNG encoding and atomic writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cytoimagenet.imaging.png import (
    TMP_MARKER,
    WrittenFile,
    encode_png,
    write_bytes_atomic,
    write_png,
)
from cytoimagenet.imaging.readers import read_planes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@settings(max_examples=60, deadline=None)
@given(
    image=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=64))
)
def test_encode_png_round_trips_exactly(image: np.ndarray) -> None:
    data = encode_png(image)
    assert data.startswith(PNG_SIGNATURE)
    decoded = decode(data)
    assert decoded.dtype == np.uint8
    assert decoded.ndim == 2
    np.testing.assert_array_equal(decoded, image)


def test_encode_png_non_contiguous_view() -> None:
    image = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    view = image[10:90:3, ::-2]
    np.testing.assert_array_equal(decode(encode_png(view)), view)


def test_encode_png_is_deterministic() -> None:
    image = np.random.default_rng(0).integers(0, 256, (50, 70)).astype(np.uint8)
    assert encode_png(image) == encode_png(image.copy())


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), np.uint16),
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4), np.int8),
        np.zeros((4, 4, 3), np.uint8),
        np.zeros((4, 4, 1), np.uint8),
        np.zeros(16, np.uint8),
    ],
    ids=["uint16", "float32", "int8", "rgb", "hw1", "1d"],
)
def test_encode_png_rejects_other_images(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_png(image)


def test_write_png_atomic(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (80, 90)).astype(np.uint8)
    path = tmp_path / "label a" / "nested" / "img-crop_1.png"  # parent folders are created
    written = write_png(path, image)
    assert isinstance(written, WrittenFile)
    data = path.read_bytes()
    assert written.nbytes == len(data) == path.stat().st_size
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert data == encode_png(image)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), image)
    (plane,) = read_planes(path)  # our own reader agrees
    np.testing.assert_array_equal(plane, image)
    # No temporary file left behind, in this folder or anywhere under tmp_path.
    assert sorted(p.name for p in path.parent.iterdir()) == ["img-crop_1.png"]
    assert not [p for p in tmp_path.rglob("*") if TMP_MARKER in p.name]


def test_write_png_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"old content")
    image = np.full((10, 10), 42, np.uint8)
    written = write_png(path, image)
    assert path.read_bytes() == encode_png(image)
    assert written.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_png_rejects_bad_image_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError):
        write_png(path, np.zeros((5, 5), np.uint16))
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=2048))
def test_write_bytes_atomic_reports_size_and_hash(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("atomic")
    path = folder / "blob.bin"
    written = write_bytes_atomic(path, data)
    assert path.read_bytes() == data
    assert written == WrittenFile(nbytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert [p.name for p in folder.iterdir()] == ["blob.bin"]
