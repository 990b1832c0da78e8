"""Image sizes from headers: equal to the decoded size, without decoding; None when unsure."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from cytoimagenet.imaging.headers import HEADERS, header_shape
from cytoimagenet.imaging.readers import READERS, ImageReadError, read_planes


def _write(path: Path, image: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".bmp" if path.suffix == ".dib" else path.suffix, image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


@pytest.mark.parametrize(
    ("name", "dtype", "channels"),
    [
        ("a.png", np.uint8, 1),
        ("a.png", np.uint16, 1),
        ("a.png", np.uint8, 3),
        ("a.jpg", np.uint8, 1),
        ("a.jpeg", np.uint8, 3),
        ("a.bmp", np.uint8, 3),
        ("a.dib", np.uint8, 1),
    ],
)
def test_header_shape_matches_the_decoded_image(
    tmp_path: Path, name: str, dtype: type, channels: int
) -> None:
    shape = (37, 53) if channels == 1 else (37, 53, channels)
    image = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    path = _write(tmp_path / name, image)
    assert header_shape(path) == (37, 53) == read_planes(path)[0].shape


def test_jpeg_header_after_a_large_exif_segment(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jpg", np.full((20, 30), 99, np.uint8))
    data = path.read_bytes()
    app1 = b"\xff\xe1" + struct.pack(">H", 60_002) + b"Exif\x00\x00" + b"\xff" * 59_994
    path.write_bytes(data[:2] + app1 + data[2:])
    assert header_shape(path) == (20, 30)


def test_tiff_header_gives_the_largest_page(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((10, 20), np.uint16))
        tif.write(np.zeros((30, 40), np.uint16), compression="zlib")
        tif.write(np.zeros((5, 6, 3), np.uint8), photometric="rgb")
    assert header_shape(path) == (30, 40)


def test_a_header_that_claims_a_huge_plane_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.ones((8, 8), np.uint16), compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(40000)
        tif.pages[0].tags["ImageLength"].overwrite(40000)
    assert header_shape(path) == (40000, 40000)
    with pytest.raises(ImageReadError) as err:
        read_planes(path, max_pixels=100_000_000)
    assert err.value.reason == "too-large" and "40000 x 40000" in str(err.value)


def test_max_pixels_is_checked_after_decoding_when_no_header_is_known(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.png", np.ones((30, 40), np.uint8))
    assert read_planes(path, max_pixels=1200)[0].shape == (30, 40)
    with pytest.raises(ImageReadError, match="too-large"):
        read_planes(path, max_pixels=1199)


def test_dv_header(tmp_path: Path) -> None:
    for order in "<>":
        head = bytearray(1024)
        head[0:12] = struct.pack(f"{order}iii", 64, 48, 3)  # nx, ny, sections
        head[96:98] = struct.pack(f"{order}H", 0xC0A0)
        path = tmp_path / f"a{order == '>'}.dv"
        path.write_bytes(bytes(head))
        assert header_shape(path) == (48, 64)


@pytest.mark.parametrize("name", ["a.tif", "a.png", "a.jpg", "a.bmp", "a.dv", "a.xyz"])
def test_a_damaged_or_unknown_header_gives_none(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00garbage" * 3)
    assert header_shape(path) is None


def test_every_reader_suffix_has_a_header_reader() -> None:
    assert set(READERS) <= set(HEADERS)
