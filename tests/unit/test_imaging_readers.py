"""Readers: every source format at full bit depth, RGB → grey by mean, FLEX factors, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from tests.conftest import shared_path

from cytoimagenet.errors import CytoImageNetError
from cytoimagenet.imaging.readers import (
    FLEX_XML_TAG,
    READERS,
    ImageReadError,
    read_field,
    read_planes,
)

RNG_SEED = 20240611


def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def grey_mean(rgb: np.ndarray) -> np.ndarray:
    """Exact float32 channel mean of an integer RGB array (integer sums are exact)."""
    return rgb[..., :3].astype(np.float32).sum(axis=-1) / np.float32(3)


def read_error(path: Path) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_planes(path)
    return info.value


# --- TIFF -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_single_page_exact(tmp_path: Path, dtype: type) -> None:
    image = rng().integers(0, np.iinfo(dtype).max + 1, (37, 53)).astype(dtype)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, image)
    planes = read_planes(path)
    assert len(planes) == 1
    assert planes[0].dtype == dtype
    np.testing.assert_array_equal(planes[0], image)


def test_tiff_12bit_in_uint16_is_not_truncated(tmp_path: Path) -> None:
    # Every 12-bit value once: an 8-bit read path would keep 16 levels (top 8 of 16 bits).
    image = rng().permutation(np.arange(4096, dtype=np.uint16)).reshape(64, 64)
    path = tmp_path / "twelve.tif"
    tifffile.imwrite(path, image)
    (plane,) = read_planes(path)
    assert plane.dtype == np.uint16
    np.testing.assert_array_equal(plane, image)
    assert np.unique(plane).size == 4096
    assert np.unique(image >> 8).size == 16  # what the original's cv2 default flag kept


def test_tiff_multi_page_gives_one_plane_per_page(tmp_path: Path) -> None:
    stack = rng().integers(0, 4096, (5, 24, 31)).astype(np.uint16)
    path = tmp_path / "stack.tiff"
    tifffile.imwrite(path, stack)
    planes = read_planes(path)
    assert len(planes) == 5
    for plane, page in zip(planes, stack, strict=True):
        assert plane.dtype == np.uint16
        np.testing.assert_array_equal(plane, page)


def test_tiff_pages_written_one_by_one(tmp_path: Path) -> None:
    pages = [rng().integers(0, 256, (16, 20)).astype(np.uint8) + i for i in range(3)]
    path = tmp_path / "appended.tif"
    for page in pages:
        tifffile.imwrite(path, page, append=True)
    planes = read_planes(path)
    assert len(planes) == 3
    for plane, page in zip(planes, pages, strict=True):
        np.testing.assert_array_equal(plane, page)


@pytest.mark.parametrize("compression", ["zlib", "lzw", "zstd", "packbits"])
def test_tiff_compressed_exact(tmp_path: Path, compression: str) -> None:
    stack = rng().integers(0, 65536, (2, 40, 33)).astype(np.uint16)
    path = tmp_path / f"c-{compression}.tif"
    tifffile.imwrite(path, stack, compression=compression)
    with tifffile.TiffFile(path) as tif:  # the file really is compressed
        assert tif.pages[0].compression != 1
    planes = read_planes(path)
    assert len(planes) == 2
    for plane, page in zip(planes, stack, strict=True):
        assert plane.dtype == np.uint16
        np.testing.assert_array_equal(plane, page)


def test_tiff_upper_case_suffix(tmp_path: Path) -> None:
    image = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    path = tmp_path / "AS_09047_O01f00d2.TIF"
    tifffile.imwrite(path, image)
    np.testing.assert_array_equal(read_planes(path)[0], image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_rgb_becomes_grey_mean(tmp_path: Path, dtype: type) -> None:
    rgb = rng().integers(0, np.iinfo(dtype).max + 1, (21, 34, 3)).astype(dtype)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    planes = read_planes(path)
    assert len(planes) == 1
    assert planes[0].shape == (21, 34)
    assert planes[0].dtype == np.float32
    np.testing.assert_array_equal(planes[0], grey_mean(rgb))
    np.testing.assert_allclose(planes[0], rgb.astype(np.float64).mean(-1), rtol=1e-6)


def test_tiff_rgba_ignores_alpha(tmp_path: Path) -> None:
    rgba = rng().integers(0, 256, (12, 18, 4)).astype(np.uint8)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=[2])
    (plane,) = read_planes(path)
    np.testing.assert_array_equal(plane, grey_mean(rgba))


def test_tiff_rgb_planar_separate_becomes_grey_mean(tmp_path: Path) -> None:
    rgb = rng().integers(0, 256, (3, 20, 28)).astype(np.uint8)
    path = tmp_path / "rgb-separate.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    planes = read_planes(path)
    assert len(planes) == 1
    np.testing.assert_array_equal(planes[0], grey_mean(np.moveaxis(rgb, 0, -1)))


def test_tiff_grey_with_alpha_keeps_image_shape(tmp_path: Path) -> None:
    grey_alpha = rng().integers(0, 256, (20, 28, 2)).astype(np.uint8)
    path = tmp_path / "grey-alpha.tif"
    tifffile.imwrite(
        path, grey_alpha, photometric="minisblack", planarconfig="contig", extrasamples=[2]
    )
    planes = read_planes(path)
    assert all(p.shape == (20, 28) for p in planes)
    np.testing.assert_array_equal(planes[0], grey_alpha[..., 0])


# --- FLEX -------------------------------------------------------------------------------


def flex_xml(names_factors: list[tuple[str, str]]) -> str:
    arrays = "".join(
        f'<Array Name="{name}" Width="24" Height="16" Factor="{factor}" />'
        for name, factor in names_factors
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><Root><Arrays>{arrays}</Arrays></Root>'


def write_flex(path: Path, stack: np.ndarray, xml: str) -> None:
    tifffile.imwrite(
        path, stack, photometric="minisblack", extratags=[(FLEX_XML_TAG, "s", 0, xml, True)]
    )


# The XML must be read while the file is open: tifffile warns when it has to re-open it.
flex_warning = pytest.mark.filterwarnings("error:.*reading value from closed file:UserWarning")


@flex_warning
def test_flex_planes_scaled_by_factor(tmp_path: Path) -> None:
    stack = rng().integers(0, 256, (3, 16, 24)).astype(np.uint8)
    xml = flex_xml([("Exp1Cam1", "2.0"), ("Exp1Cam2", "2.0"), ("Exp2Cam1", "2.0")])
    path = tmp_path / "001001000.flex"
    write_flex(path, stack, xml)
    with tifffile.TiffFile(path) as tif:  # the synthetic file is what a FLEX looks like
        assert tif.pages[0].tags[FLEX_XML_TAG].value == xml
    planes = read_planes(path)
    assert len(planes) == 3
    for plane, page in zip(planes, stack, strict=True):
        assert plane.dtype == np.float32
        np.testing.assert_array_equal(plane, page.astype(np.float32) * 2)
    assert planes[0].max() > 255  # promoted beyond 8 bits


@flex_warning
def test_flex_per_page_factors(tmp_path: Path) -> None:
    stack = np.full((3, 16, 24), 100, np.uint8)
    xml = flex_xml([("a", "1.0"), ("b", "4"), ("c", "0.5")])
    path = tmp_path / "mixed.flex"
    write_flex(path, stack, xml)
    planes = read_planes(path)
    assert [float(p.max()) for p in planes] == [100.0, 400.0, 50.0]
    assert [float(p.min()) for p in planes] == [100.0, 400.0, 50.0]


@flex_warning
def test_flex_factor_one_keeps_dtype_and_values(tmp_path: Path) -> None:
    stack = rng().integers(0, 4096, (2, 16, 24)).astype(np.uint16)
    path = tmp_path / "plain.flex"
    write_flex(path, stack, flex_xml([("a", "1.0"), ("b", "1")]))
    planes = read_planes(path)
    for plane, page in zip(planes, stack, strict=True):
        assert plane.dtype == np.uint16
        np.testing.assert_array_equal(plane, page)


@flex_warning
def test_flex_factor_count_mismatch_is_ignored(tmp_path: Path) -> None:
    stack = rng().integers(0, 256, (2, 16, 24)).astype(np.uint8)
    path = tmp_path / "odd.flex"
    write_flex(path, stack, flex_xml([("a", "2.0")]))  # one factor for two pages
    planes = read_planes(path)
    assert [p.dtype for p in planes] == [np.uint8, np.uint8]
    np.testing.assert_array_equal(np.stack(planes), stack)


@flex_warning
def test_flex_tag_in_a_tif_file_is_honoured(tmp_path: Path) -> None:
    stack = np.full((1, 16, 24), 3, np.uint8)
    path = tmp_path / "flexlike.tif"
    write_flex(path, stack, flex_xml([("a", "3.0")]))
    (plane,) = read_planes(path)
    assert plane.dtype == np.float32
    assert float(plane.max()) == 9.0


def test_flex_read_emits_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "quiet.flex"
    write_flex(path, np.zeros((2, 16, 24), np.uint8), flex_xml([("a", "2.0"), ("b", "2.0")]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_planes(path)
    assert [str(w.message) for w in caught] == []


# --- PNG / JPEG / BMP / DIB ---------------------------------------------------------------


def test_png_16bit_round_trip_exact(tmp_path: Path) -> None:
    image = rng().integers(0, 65536, (45, 61)).astype(np.uint16)
    image[0, 0], image[-1, -1] = 0, 65535
    path = tmp_path / "sixteen.png"
    assert cv2.imwrite(str(path), image)
    (plane,) = read_planes(path)
    assert plane.dtype == np.uint16
    np.testing.assert_array_equal(plane, image)


def test_png_8bit_exact(tmp_path: Path) -> None:
    image = rng().integers(0, 256, (33, 17)).astype(np.uint8)
    path = tmp_path / "eight.png"
    assert cv2.imwrite(str(path), image)
    (plane,) = read_planes(path)
    assert plane.dtype == np.uint8
    np.testing.assert_array_equal(plane, image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_rgb_becomes_exact_grey_mean(tmp_path: Path, dtype: type) -> None:
    bgr = rng().integers(0, np.iinfo(dtype).max + 1, (29, 41, 3)).astype(dtype)
    path = tmp_path / "colour.png"
    assert cv2.imwrite(str(path), bgr)  # cv2 treats the array as BGR; the mean does not care
    (plane,) = read_planes(path)
    assert plane.shape == (29, 41)
    assert plane.dtype == np.float32
    np.testing.assert_array_equal(plane, grey_mean(bgr))


def test_png_rgba_ignores_alpha(tmp_path: Path) -> None:
    bgra = rng().integers(0, 256, (19, 23, 4)).astype(np.uint8)
    path = tmp_path / "alpha.png"
    assert cv2.imwrite(str(path), bgra)
    (plane,) = read_planes(path)
    np.testing.assert_array_equal(plane, grey_mean(bgra))


def test_jpeg_grey_and_rgb_decode(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:48, 0:64]
    grey = (yy * 2 + xx * 2).astype(np.uint8)  # smooth, 0..220: no wrap-around edges
    path = tmp_path / "grey.jpg"
    assert cv2.imwrite(str(path), grey, [cv2.IMWRITE_JPEG_QUALITY, 100])
    (plane,) = read_planes(path)
    assert plane.dtype == np.uint8
    np.testing.assert_array_equal(plane, cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    assert np.abs(plane.astype(int) - grey).max() <= 3  # lossy, but close

    colour = np.stack([grey, 255 - grey, np.full_like(grey, 77)], axis=-1)
    path = tmp_path / "colour.jpeg"
    assert cv2.imwrite(str(path), colour, [cv2.IMWRITE_JPEG_QUALITY, 100])
    (plane,) = read_planes(path)
    assert plane.dtype == np.float32
    np.testing.assert_array_equal(plane, grey_mean(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)))
    assert np.abs(plane - colour.astype(np.float32).mean(-1)).max() <= 3


@pytest.mark.parametrize("name", ["plain.bmp", "d0.dib", "D1.DIB"])
def test_bmp_and_dib_exact(tmp_path: Path, name: str) -> None:
    image = rng().integers(0, 256, (26, 30)).astype(np.uint8)
    bmp = tmp_path / "written.bmp"
    assert cv2.imwrite(str(bmp), image)
    path = bmp.rename(tmp_path / name)
    (plane,) = read_planes(path)
    assert plane.dtype == np.uint8
    np.testing.assert_array_equal(plane, image)


def test_every_documented_suffix_has_a_reader() -> None:
    assert set(READERS) == {
        ".tif",
        ".tiff",
        ".flex",
        ".png",
        ".jpg",
        ".jpeg",
        ".bmp",
        ".dib",
        ".dv",
    }


# --- errors -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.tif"
    err = read_error(path)
    assert err.reason == "missing"
    assert err.path == path
    assert isinstance(err, CytoImageNetError)
    assert "nope.tif" in str(err)


def test_directory_with_image_suffix_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert read_error(folder).reason == "missing"


@pytest.mark.parametrize("name", ["notes.txt", "image.gif", "no_suffix", "x.czi"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00" * 64)
    err = read_error(path)
    assert err.reason == "unsupported"
    assert name in str(err)


def _truncated_tiff(tmp_path: Path, keep: float, compression: str | None) -> Path:
    image = rng().integers(0, 4096, (64, 80)).astype(np.uint16)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, image, compression=compression)
    data = full.read_bytes()
    path = tmp_path / f"cut-{keep}-{compression}.tif"
    path.write_bytes(data[: max(8, int(len(data) * keep))])
    return path


@pytest.mark.parametrize("compression", [None, "zlib", "lzw"])
@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.99])
def test_truncated_tiff_is_unreadable(tmp_path: Path, keep: float, compression: str) -> None:
    path = _truncated_tiff(tmp_path, keep, compression)
    err = read_error(path)
    assert err.reason == "unreadable"
    assert path.name in str(err)


@pytest.mark.parametrize("keep", [0.005, 0.5, 0.99])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_png_and_jpeg_are_unreadable(tmp_path: Path, keep: float, suffix: str) -> None:
    image = rng().integers(0, 256, (64, 80)).astype(np.uint8)
    ok, buf = cv2.imencode(suffix, image)
    assert ok
    data = buf.tobytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    err = read_error(path)
    assert err.reason == "unreadable"
    assert path.name in str(err)


@pytest.mark.parametrize("suffix", [".tif", ".flex", ".png", ".jpg", ".bmp", ".dib"])
@pytest.mark.parametrize("content", [b"", b"this is not an image at all\n" * 20])
def test_garbage_and_empty_files_are_unreadable(
    tmp_path: Path, suffix: str, content: bytes
) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(content)
    err = read_error(path)
    assert err.reason == "unreadable"
    assert err.path == path
    assert f"garbage{suffix}" in str(err)


# --- read_field ---------------------------------------------------------------------------


def test_read_field_concatenates_channel_planes_in_order(tmp_path: Path) -> None:
    a = np.full((10, 12), 1, np.uint16)
    b = np.full((2, 10, 12), 2, np.uint8)
    c = np.full((10, 12), 3, np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", b)
    cv2.imwrite(str(tmp_path / "c.png"), c)
    planes = read_field([tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "c.png"])
    assert [int(p.max()) for p in planes] == [1, 2, 2, 3]
    assert [p.dtype for p in planes] == [np.uint16, np.uint8, np.uint8, np.uint8]


def test_read_field_shape_mismatch(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "w1.tif", np.zeros((10, 12), np.uint16))
    tifffile.imwrite(tmp_path / "w2.tif", np.zeros((12, 10), np.uint16))
    with pytest.raises(ImageReadError) as info:
        read_field([tmp_path / "w1.tif", tmp_path / "w2.tif"])
    assert info.value.reason == "shape-mismatch"
    assert info.value.path == tmp_path / "w1.tif"
    assert "(10, 12)" in str(info.value)
    assert "(12, 10)" in str(info.value)


def test_read_field_empty_list_is_missing() -> None:
    with pytest.raises(ImageReadError) as info:
        read_field([])
    assert info.value.reason == "missing"


def test_read_field_reports_the_missing_channel(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "w1.tif", np.zeros((10, 12), np.uint16))
    with pytest.raises(ImageReadError) as info:
        read_field([tmp_path / "w1.tif", tmp_path / "w2.tif"])
    assert info.value.reason == "missing"
    assert info.value.path == tmp_path / "w2.tif"


# --- real files ---------------------------------------------------------------------------

MISC = {
    # name: (number of planes, shape, dtype)
    "img2d.tif": (1, (512, 512), np.uint16),
    "mask2d.tif": (1, (512, 512), np.uint16),
    "nuclei.tif": (60, (256, 256), np.uint16),
    "nuclei_label.tif": (60, (256, 256), np.uint32),
    "cell.png": (1, (660, 550), np.uint8),
    "histo.jpg": (1, (300, 500), np.float32),  # RGB → grey mean
    "ihc.png": (1, (512, 512), np.float32),  # RGB → grey mean
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(MISC))
def test_real_misc_images(name: str) -> None:
    path = shared_path("misc_images", name)
    n, shape, dtype = MISC[name]
    planes = read_planes(path)
    assert len(planes) == n
    assert all(p.shape == shape and p.dtype == dtype for p in planes)


@pytest.mark.realdata
def test_real_16bit_tiff_matches_tifffile() -> None:
    path = shared_path("misc_images", "nuclei.tif")
    planes = read_planes(path)
    stack = tifffile.imread(path)
    np.testing.assert_array_equal(np.stack(planes), stack)
    assert int(stack.max()) > 4095  # data above 12 bits survives


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["histo.jpg", "ihc.png"])
def test_real_rgb_files_grey_by_mean(name: str) -> None:
    path = shared_path("misc_images", name)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded.ndim == 3
    (plane,) = read_planes(path)
    np.testing.assert_array_equal(plane, grey_mean(decoded))


@pytest.mark.realdata
def test_real_cellprofiler_tiffs_read() -> None:
    root = shared_path("cellprofiler_examples")
    files = sorted(p for p in root.glob("*/images/*") if p.suffix.lower() in (".tif", ".tiff"))
    assert len(files) >= 70
    seen: dict[tuple[tuple[int, int], str], int] = {}
    for path in files:
        planes = read_planes(path)
        assert len(planes) == 1, path
        key = (planes[0].shape, planes[0].dtype.name)
        seen[key] = seen.get(key, 0) + 1
        np.testing.assert_array_equal(planes[0], tifffile.imread(path))
    assert seen[((512, 512), "uint8")] >= 70
    assert ((1024, 1344), "uint16") in seen
    assert ((463, 461), "uint16") in seen
