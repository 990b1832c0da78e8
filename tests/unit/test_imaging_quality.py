"""QC predicates on hand-made arrays and real images; the reasons the builder records."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from tests.conftest import shared_path

from cytoimagenet.imaging import merge_channels, read_planes, to_uint8
from cytoimagenet.imaging.quality import (
    QCThresholds,
    crop_reason,
    is_binary,
    is_dim,
    is_label_mask,
    is_too_small,
    is_uniform,
    mean_out_of_range,
    whole_image_reason,
)

QC = QCThresholds()


def noisy(shape: tuple[int, int] = (64, 64), seed: int = 0, top: int = 4096) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top, shape).astype(np.uint16)


def blob_mask(n: int = 12, side: int = 96, seed: int = 1) -> np.ndarray:
    """An instance mask: ``n`` filled discs with labels 1..n on a zero background."""
    gen = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    mask = np.zeros((side, side), np.uint16)
    for label in range(1, n + 1):
        cy, cx = gen.integers(8, side - 8, 2)
        r = gen.integers(4, 9)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = label
    return mask


# --- is_uniform ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_is_uniform_all_zero_and_constant(dtype: type) -> None:
    assert is_uniform(np.zeros((10, 10), dtype))
    assert is_uniform(np.full((10, 10), 7, dtype))
    assert is_uniform(np.zeros((1, 1), dtype))


def test_is_uniform_flat_with_few_outliers() -> None:
    image = np.full((100, 100), 500, np.uint16)
    image[0, :9] = 4095  # 9 outliers in 10 000 pixels: under 0.1 %
    assert is_uniform(image)
    image[1, :9] = 0  # and a few dark ones (sorted index 9.999 stays in the flat part)
    assert is_uniform(image)


def test_is_uniform_false_cases() -> None:
    assert not is_uniform(noisy())
    assert not is_uniform(np.array([[0, 1]], np.uint8))
    image = np.full((100, 100), 500, np.uint16)
    image[:5, :] = 4095  # 5 % bright: the 99.9th percentile moves
    assert not is_uniform(image)


def test_is_uniform_thresholds() -> None:
    image = np.full((100, 100), 500, np.uint16)
    image[0, :50] = 4095  # 0.5 % bright
    assert not is_uniform(image, 0.1, 99.9)
    assert is_uniform(image, 0.1, 99.0)


# --- is_binary ----------------------------------------------------------------------------


def test_is_binary() -> None:
    assert is_binary(np.array([[0, 255], [255, 255]], np.uint8))
    assert is_binary(np.array([[3, 3], [3, 9]], np.uint16))
    assert is_binary(np.array([[0.5, 0.25]], np.float32))
    assert not is_binary(np.full((4, 4), 255, np.uint8))  # one value
    assert not is_binary(np.array([[0, 1, 2]], np.uint8))  # three values
    assert not is_binary(np.array([[0, 1], [1, 2]], np.uint8))
    assert not is_binary(noisy())


# --- is_label_mask --------------------------------------------------------------------------


def test_is_label_mask_synthetic() -> None:
    mask = blob_mask()
    assert np.unique(mask).size > 3
    assert is_label_mask(mask)
    assert is_label_mask(mask.astype(np.int32))
    # The same blobs as a micrograph: noise breaks the flat regions.
    image = mask * 100 + noisy((96, 96), seed=5, top=200)
    assert not is_label_mask(image)
    assert not is_label_mask(noisy())


def test_is_label_mask_needs_integers_and_enough_foreground() -> None:
    mask = blob_mask()
    assert not is_label_mask(mask.astype(np.float32))
    tiny = np.zeros((20, 20), np.uint16)
    tiny[5:9, 5:9] = 1  # 12 foreground pairs: too few to judge
    assert not is_label_mask(tiny)
    assert not is_label_mask(np.zeros((64, 64), np.uint8))


def test_is_label_mask_thresholds() -> None:
    mask = blob_mask(n=40, side=128)
    levels = np.unique(mask).size
    assert is_label_mask(mask, max_levels=levels)
    assert not is_label_mask(mask, max_levels=levels - 1)
    assert not is_label_mask(mask, flat_fraction=1.01)


def _bbbc021_crop_channels(n: int) -> list[np.ndarray]:
    path = shared_path("bbbc021_singlecell", "crops.npz")
    with zipfile.ZipFile(path) as zf, zf.open("images.npy") as fh:
        version = np.lib.format.read_magic(fh)
        shape, _, dtype = (
            np.lib.format.read_array_header_1_0(fh)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(fh)
        )
        per = int(np.prod(shape[1:]))
        crops = np.frombuffer(fh.read(n * per * dtype.itemsize), dtype=dtype)
    crops = crops.reshape(n, *shape[1:])
    return [crops[i, ..., c] for i in range(n) for c in range(shape[-1])]


@pytest.mark.realdata
def test_is_label_mask_real_images() -> None:
    assert is_label_mask(read_planes(shared_path("misc_images", "mask2d.tif"))[0])
    labels = read_planes(shared_path("misc_images", "nuclei_label.tif"))
    assert is_label_mask(max(labels, key=lambda p: int(p.max())))
    for name in ("img2d.tif", "cell.png"):
        (plane,) = read_planes(shared_path("misc_images", name))
        assert not is_label_mask(plane), name
    assert not is_label_mask(read_planes(shared_path("misc_images", "nuclei.tif"))[30])
    for channel in _bbbc021_crop_channels(4):
        assert not is_label_mask(channel)


# --- size, dim, mean ------------------------------------------------------------------------


def test_is_too_small() -> None:
    assert is_too_small(np.zeros((15, 100)))
    assert is_too_small(np.zeros((100, 15)))
    assert not is_too_small(np.zeros((16, 16)))
    assert is_too_small(np.zeros((40, 40)), min_side=41)


def test_is_dim() -> None:
    image = np.zeros((10, 10), np.uint8)
    image[:2] = 200  # 80 % black: the 75th percentile is 0
    assert is_dim(image)
    image[:3] = 200  # 70 % black: the 75th percentile is interpolated above 0
    assert not is_dim(image)
    assert is_dim(np.zeros((4, 4), np.uint8))
    assert not is_dim(np.full((4, 4), 1, np.uint8))
    assert is_dim(image, percentile=50.0)


@pytest.mark.parametrize(
    ("mean", "rejected"),
    [
        (0.0, True),
        (0.5, True),
        (1.0, True),  # the bounds themselves are rejected: open interval
        (1.5, False),
        (128.0, False),
        (253.5, False),
        (254.0, True),
        (254.5, True),
        (255.0, True),
    ],
)
def test_mean_out_of_range_open_interval(mean: float, rejected: bool) -> None:
    low = int(mean)
    image = np.array([[low, low if mean == low else low + 1]], np.uint8)
    assert float(image.mean()) == mean
    assert mean_out_of_range(image) is rejected


def test_mean_out_of_range_custom_bounds() -> None:
    image = np.full((3, 3), 10, np.uint8)
    assert mean_out_of_range(image, 10, 200)
    assert not mean_out_of_range(image, 9.99, 200)
    assert mean_out_of_range(image, 0, 10)


# --- reasons ------------------------------------------------------------------------------


def test_whole_image_reasons() -> None:
    assert whole_image_reason(np.zeros((8, 100), np.uint8), QC) == "too-small"
    assert whole_image_reason(np.zeros((64, 64), np.uint8), QC) == "uniform"
    assert whole_image_reason(np.full((64, 64), 128, np.uint8), QC) == "uniform"
    binary = np.zeros((64, 64), np.uint8)
    binary[:, 32:] = 255
    assert whole_image_reason(binary, QC) == "binary-mask"
    mask8 = to_uint8(merge_channels([blob_mask()]))
    assert whole_image_reason(mask8, QC) == "label-mask"
    image8 = to_uint8(merge_channels([noisy()]))
    assert whole_image_reason(image8, QC) is None


def test_whole_image_reason_order_and_thresholds() -> None:
    tiny_binary = np.zeros((10, 10), np.uint8)
    tiny_binary[:, 5:] = 255
    assert whole_image_reason(tiny_binary, QC) == "too-small"  # size is checked first
    assert whole_image_reason(tiny_binary, QCThresholds(min_side=4)) == "binary-mask"
    mask8 = to_uint8(merge_channels([blob_mask()]))
    assert whole_image_reason(mask8, QCThresholds(mask_flat_fraction=1.01)) is None


def test_crop_reasons() -> None:
    assert crop_reason(np.zeros((70, 70), np.uint8), QC) == "crop-mean"
    assert crop_reason(np.full((70, 70), 255, np.uint8), QC) == "crop-mean"
    assert crop_reason(np.full((70, 70), 254, np.uint8), QC) == "crop-mean"
    dim = np.zeros((70, 70), np.uint8)
    dim[:10] = 255  # mean 36, but 86 % black
    assert crop_reason(dim, QC) == "dim"
    assert crop_reason(np.full((70, 70), 100, np.uint8), QC) is None
    assert crop_reason(to_uint8(merge_channels([noisy((70, 70))])), QC) is None
    assert crop_reason(dim, QCThresholds(dim_percentile=50.0)) == "dim"
    assert crop_reason(dim, QCThresholds(dim_percentile=90.0)) is None


def test_qc_defaults_follow_the_paper() -> None:
    assert (QC.uniform_low, QC.uniform_high) == (0.1, 99.9)
    assert (QC.crop_mean_low, QC.crop_mean_high) == (1.0, 254.0)
    assert QC.dim_percentile == 75.0


@pytest.mark.realdata
def test_whole_image_reason_on_real_merged_fields() -> None:
    (mask,) = read_planes(shared_path("misc_images", "mask2d.tif"))
    assert whole_image_reason(to_uint8(merge_channels([mask])), QC) is not None
    (image,) = read_planes(shared_path("misc_images", "img2d.tif"))
    assert whole_image_reason(to_uint8(merge_channels([image])), QC) is None
    nuclei = read_planes(shared_path("misc_images", "nuclei.tif"))
    assert whole_image_reason(to_uint8(merge_channels(nuclei[:3])), QC) is None
    (cell,) = read_planes(shared_path("misc_images", "cell.png"))
    assert whole_image_reason(to_uint8(merge_channels([cell])), QC) is None


def test_a_plane_with_nan_or_inf_is_rejected_as_non_finite() -> None:
    from cytoimagenet.imaging.normalize import PlaneStats
    from cytoimagenet.imaging.quality import QCThresholds, field_reason, has_non_finite

    good = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        plane = good.copy()
        plane[3, 4] = bad
        assert has_non_finite(plane)
        stats = [PlaneStats.of(good), PlaneStats.of(plane)]
        assert field_reason(stats, QCThresholds()) == "non-finite"
    assert not has_non_finite(good) and not has_non_finite(np.zeros((4, 4), np.uint16))
    assert field_reason([PlaneStats.of(good)], QCThresholds()) is None
