"""DeltaVision .dv (idr0021, idr0067): full bit depth, either endian, every interleaving."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from tests.fakes.dv import write_dv

from cytoimagenet.imaging.readers import READERS, ImageReadError, read_field, read_planes

SEED = 20261205


def stack(dtype: type, shape: tuple[int, ...] = (3, 1, 2, 20, 28)) -> np.ndarray:
    """A (C, T, Z, Y, X) stack whose planes all differ, over the dtype's whole range."""
    rng = np.random.default_rng(SEED)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100.0, 40.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def channel_major(array: np.ndarray) -> list[np.ndarray]:
    return list(array.reshape(-1, *array.shape[-2:]))


def test_dv_has_a_reader() -> None:
    assert ".dv" in READERS


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.uint8, np.int32])
@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_values_and_type_as_stored(tmp_path: Path, dtype: type, byte_order: str) -> None:
    data = stack(dtype)
    path = write_dv(tmp_path / "a_R3D.dv", data, byte_order=byte_order)
    planes = read_planes(path)
    assert len(planes) == 6
    for got, want in zip(planes, channel_major(data), strict=True):
        assert got.dtype == np.dtype(dtype)  # native order, full depth: nothing rescaled
        assert got.dtype.isnative
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sequence", [0, 1, 2])
def test_every_interleaving_gives_channel_major_planes(tmp_path: Path, sequence: int) -> None:
    data = stack(np.uint16, (2, 3, 4, 9, 11))  # C, T, Z all different sizes
    path = write_dv(tmp_path / "seq.dv", data, sequence=sequence)
    planes = read_planes(path)
    assert len(planes) == 24
    for got, want in zip(planes, channel_major(data), strict=True):
        np.testing.assert_array_equal(got, want)


def test_without_an_extended_header(tmp_path: Path) -> None:
    data = stack(np.uint16, (2, 1, 1, 16, 16))
    path = write_dv(tmp_path / "plain.dv", data, ext_header=False)
    for got, want in zip(read_planes(path), channel_major(data), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_file_written_by_the_library_reads_back(tmp_path: Path) -> None:
    # The other writer: mrc's own (native byte order, wavelengths as the first axis).
    import mrc

    data = stack(np.uint16, (3, 1, 1, 24, 20))[:, 0, 0]
    path = tmp_path / "written.dv"
    mrc.imsave(str(path), data, metadata={"wave0": 435, "wave1": 528, "wave2": 617})
    planes = read_planes(path)
    assert len(planes) == 3
    for got, want in zip(planes, data, strict=True):
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, want)


def test_upper_case_suffix_and_field_of_one_file(tmp_path: Path) -> None:
    data = stack(np.uint16)
    path = write_dv(tmp_path / "IMG.DV", data)
    planes = read_field([path])  # idr0021: one file holds the field's three channels
    assert len(planes) == 6 and planes[0].shape == (20, 28)


def test_not_a_dv_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "fake.dv"
    path.write_bytes(b"\0" * 2048)
    with pytest.raises(ImageReadError) as info:
        read_planes(path)
    assert info.value.reason == "unreadable" and "DeltaVision" in str(info.value)


def test_truncated_file_is_unreadable(tmp_path: Path) -> None:
    path = write_dv(tmp_path / "cut.dv", stack(np.uint16))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ImageReadError) as info:
        read_planes(path)
    assert info.value.reason == "unreadable"


def test_section_counts_that_disagree_are_unreadable(tmp_path: Path) -> None:
    import struct

    path = write_dv(tmp_path / "counts.dv", stack(np.uint16))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<h", raw, 196, 4)  # 4 wavelengths do not divide 6 sections
    path.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="do not split") as info:
        read_planes(path)
    assert info.value.reason == "unreadable"


def test_missing_library_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_dv(tmp_path / "a.dv", stack(np.uint16))
    monkeypatch.setitem(sys.modules, "mrc", None)  # import mrc → ImportError
    with pytest.raises(ImageReadError) as info:
        read_planes(path)
    assert info.value.reason == "unsupported"
    assert "pip install" in str(info.value) and "mrc" in str(info.value)
