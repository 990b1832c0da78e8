"""Percentile bounds, normalisation, channel merge and 8-bit mapping against numpy oracles."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tests.conftest import shared_path

from cytoimagenet.imaging.normalize import (
    MERGED_MAX,
    merge_channels,
    normalize,
    percentile_bounds,
    renormalize,
    to_uint8,
)

FAST = settings(max_examples=150, deadline=None)


def np_bounds(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[float, float]:
    lo, hi = np.percentile(image, [low, high])  # numpy's default method is "linear"
    return float(lo), float(hi)


def reference_unit(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """The paper's normalisation in float64: clip((x - lo) / (hi - lo), 0, 1); flat → 0."""
    lo, hi = np_bounds(image, low, high)
    if not hi > lo:
        return np.zeros(image.shape)
    return np.clip((image.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def int_images(dtype: type, max_side: int = 40) -> st.SearchStrategy[np.ndarray]:
    top = np.iinfo(dtype).max
    elements = st.one_of(
        st.integers(0, top),  # full range
        st.integers(0, 3),  # many ties
        st.sampled_from([0, top]),  # extremes
    )
    shapes = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=max_side)
    return hnp.arrays(dtype, shapes, elements=elements)


quantiles = st.one_of(st.sampled_from([0.0, 0.01, 0.1, 50.0, 75.0, 99.9, 100.0]), st.floats(0, 100))


# --- percentile_bounds --------------------------------------------------------------------


@FAST
@given(
    image=st.one_of(int_images(np.uint8), int_images(np.uint16)),
    low=quantiles,
    high=quantiles,
)
def test_percentile_bounds_match_numpy_for_uint8_and_uint16(
    image: np.ndarray, low: float, high: float
) -> None:
    got = percentile_bounds(image, low, high)
    exp = np_bounds(image, low, high)
    assert all(isinstance(v, float) for v in got)
    assert close(got[0], exp[0]), (got, exp)
    assert close(got[1], exp[1]), (got, exp)


@FAST
@given(image=st.one_of(int_images(np.uint8), int_images(np.uint16)), q=quantiles)
def test_percentile_bounds_are_order_statistics_or_between_them(
    image: np.ndarray, q: float
) -> None:
    lo, hi = percentile_bounds(image, q, q)
    assert lo == hi
    ordered = np.sort(image.ravel())
    pos = (ordered.size - 1) * q / 100
    below, above = ordered[math.floor(pos)], ordered[math.ceil(pos)]
    assert below <= lo <= above
    if below == above:  # ties and exact positions are exact
        assert lo == float(below)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_percentile_bounds_exact_cases(dtype: type) -> None:
    assert percentile_bounds(np.arange(101, dtype=dtype), 10, 90) == (10.0, 90.0)
    assert percentile_bounds(np.array([7], dtype=dtype)) == (7.0, 7.0)
    assert percentile_bounds(np.array([[0, 200]], dtype=dtype), 0, 100) == (0.0, 200.0)
    assert percentile_bounds(np.array([0, 200], dtype=dtype), 25, 75) == (50.0, 150.0)
    assert percentile_bounds(np.full((3, 4), 9, dtype=dtype)) == (9.0, 9.0)
    # 1001 values: the 0.1th and 99.9th percentiles are the 2nd smallest and 2nd largest.
    # (numpy itself gives 5.000000000000114 here: (99.9 / 100) * 1000 is 999.0000000000001.)
    values = np.repeat(np.arange(7, dtype=dtype), [1, 1, 300, 398, 299, 1, 1])
    got = percentile_bounds(values)
    assert close(got[0], 1.0)
    assert close(got[1], 5.0)


def test_percentile_bounds_full_uint16_range() -> None:
    image = np.array([0, 65535, 65535, 1, 2], dtype=np.uint16)
    got = percentile_bounds(image, 0, 100)
    assert got == (0.0, 65535.0)
    assert all(close(g, e) for g, e in zip(percentile_bounds(image), np_bounds(image), strict=True))


def test_percentile_bounds_bitwise_equal_to_numpy() -> None:
    image = np.array([0, 0, 0, 0, 0, 1], dtype=np.uint8)
    assert percentile_bounds(image) == np_bounds(image)  # 0.9950000000000001 vs 0.995000000000001


@FAST
@given(
    image=hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int32, np.int16, np.uint32]),
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=30),
        elements=st.integers(0, 2000),
    ).map(lambda a: a if a.dtype.kind == "u" else a - 1000),
    low=quantiles,
    high=quantiles,
)
def test_percentile_bounds_other_dtypes_equal_numpy(
    image: np.ndarray, low: float, high: float
) -> None:
    assert percentile_bounds(image, low, high) == np_bounds(image, low, high)


def test_percentile_bounds_empty_image_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile_bounds(np.zeros((0, 5), np.uint16))


# --- normalize ----------------------------------------------------------------------------


@FAST
@given(image=st.one_of(int_images(np.uint8), int_images(np.uint16)))
def test_normalize_integer_matches_reference(image: np.ndarray) -> None:
    out = normalize(image)
    assert out.dtype == np.float32
    assert out.shape == image.shape
    assert not np.isnan(out).any()
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    np.testing.assert_allclose(out, reference_unit(image), rtol=0, atol=1e-6)


@FAST
@given(
    image=hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int32]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=30),
        elements=st.integers(0, 70000),
    ),
    low=st.sampled_from([0.1, 1.0, 5.0]),
    high=st.sampled_from([99.9, 99.0, 95.0]),
)
def test_normalize_float_and_int32_match_reference(
    image: np.ndarray, low: float, high: float
) -> None:
    out = normalize(image, low, high)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() <= out.max() <= 1.0
    lo, hi = np_bounds(image, low, high)
    # float32 arithmetic: the error is a few ulps of the largest value, over the range.
    tol = 1e-6 + 4 * np.finfo(np.float32).eps * float(np.abs(image).max()) / max(hi - lo, 1e-30)
    np.testing.assert_allclose(out, reference_unit(image, low, high), rtol=0, atol=tol)


def test_normalize_hand_example() -> None:
    image = np.array([[0, 5], [10, 20]], dtype=np.uint16)
    assert normalize(image, 0, 100).tolist() == [[0.0, 0.25], [0.5, 1.0]]
    # Default bounds clip the extremes: both ends reach 0 and 1 exactly.
    ramp = np.arange(10_000, dtype=np.uint16).reshape(100, 100)
    out = normalize(ramp)
    assert out.min() == 0.0
    assert out.max() == 1.0
    assert (out == 0).sum() == 10  # values up to the 0.1th percentile (9.999)
    assert (out == 1).sum() == 10


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("value", [0, 1, 200])
def test_normalize_constant_image_is_zero_not_nan(dtype: type, value: int) -> None:
    out = normalize(np.full((6, 7), value, dtype=dtype))
    assert out.dtype == np.float32
    assert not np.isnan(out).any()
    assert (out == 0).all()


def test_normalize_near_constant_image_with_outliers() -> None:
    # Fewer than 0.1 % of outliers: both percentiles are the background, the image is flat.
    image = np.full((100, 100), 50, np.uint16)
    image[0, :5] = 4000
    assert (normalize(image) == 0).all()


def test_normalize_float64_keeps_its_precision() -> None:
    image = 1e6 + np.linspace(0, 1e-2, 10_000).reshape(100, 100)
    np.testing.assert_allclose(normalize(image), reference_unit(image), atol=1e-5)


def test_normalize_does_not_modify_its_input() -> None:
    image = np.linspace(0, 9, 60, dtype=np.float32).reshape(6, 10)
    before = image.copy()
    normalize(image)
    np.testing.assert_array_equal(image, before)


# --- merge_channels -----------------------------------------------------------------------


def reference_merge(planes: list[np.ndarray]) -> np.ndarray:
    return np.mean([reference_unit(p) for p in planes], axis=0) * MERGED_MAX


def test_merge_single_channel_equals_scaled_normalisation() -> None:
    image = np.random.default_rng(1).integers(0, 4096, (50, 60)).astype(np.uint16)
    merged = merge_channels([image])
    assert merged.dtype == np.uint16
    assert merged.shape == image.shape
    assert np.abs(merged.astype(np.float64) - np.rint(reference_merge([image]))).max() <= 1
    assert merged.min() == 0
    assert merged.max() == MERGED_MAX


@FAST
@given(
    planes=st.integers(1, 4).flatmap(
        lambda n: st.lists(
            hnp.arrays(
                st.sampled_from([np.uint8, np.uint16, np.float32]),
                (9, 11),
                elements=st.integers(0, 255),
            ),
            min_size=n,
            max_size=n,
        )
    )
)
def test_merge_channels_is_mean_of_normalised_channels(planes: list[np.ndarray]) -> None:
    merged = merge_channels(planes)
    assert merged.dtype == np.uint16
    assert merged.shape == (9, 11)
    expected = np.rint(reference_merge(planes))
    assert np.abs(merged.astype(np.float64) - expected).max() <= 1


def test_merge_three_channels_mixed_dtypes() -> None:
    gen = np.random.default_rng(7)
    planes = [
        gen.integers(0, 4096, (40, 30)).astype(np.uint16),
        gen.integers(0, 256, (40, 30)).astype(np.uint8),
        gen.normal(100, 10, (40, 30)).astype(np.float32),
    ]
    copies = [p.copy() for p in planes]
    merged = merge_channels(planes)
    assert merged.dtype == np.uint16
    assert np.abs(merged.astype(np.float64) - np.rint(reference_merge(planes))).max() <= 1
    for plane, copy in zip(planes, copies, strict=True):  # inputs untouched
        np.testing.assert_array_equal(plane, copy)


def test_merge_with_a_constant_channel() -> None:
    ramp = np.arange(10_000, dtype=np.uint16).reshape(100, 100)
    flat = np.full((100, 100), 3, np.uint16)
    merged = merge_channels([ramp, flat])
    # The flat channel contributes zeros: the result is half of the ramp's normalisation.
    assert int(merged.max()) == round(MERGED_MAX / 2)
    assert np.abs(merged.astype(np.float64) - np.rint(reference_merge([ramp, flat]))).max() <= 1


def test_merge_of_nothing_raises() -> None:
    with pytest.raises(ValueError):
        merge_channels([])


# --- to_uint8 and renormalize ---------------------------------------------------------------


def test_to_uint8_uint16_mapping() -> None:
    values = np.array([0, 128, 129, 257, 257 * 100 + 128, 257 * 100 + 129, 65534, 65535])
    out = to_uint8(values.astype(np.uint16))
    assert out.dtype == np.uint8
    # v * 255 / 65535 == v / 257, rounded: 128/257 < 0.5 <= 129/257.
    assert out.tolist() == [0, 0, 1, 1, 100, 101, 255, 255]
    every = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(to_uint8(every), np.rint(every / 257.0).astype(np.uint8))
    np.testing.assert_array_equal(
        to_uint8((np.arange(256) * 257).astype(np.uint16)), np.arange(256)
    )


def test_to_uint8_float_mapping() -> None:
    values = np.array([-0.5, 0.0, 1 / 255, 0.5, 254.4 / 255, 1.0, 2.0], dtype=np.float32)
    assert to_uint8(values).tolist() == [0, 0, 1, 128, 254, 255, 255]
    ramp = np.arange(256) / 255.0
    np.testing.assert_array_equal(to_uint8(ramp), np.arange(256))


def test_renormalize_stretches_a_crop_to_full_range() -> None:
    crop = np.random.default_rng(3).integers(20_000, 30_000, (64, 64)).astype(np.uint16)
    out = renormalize(crop)
    assert out.dtype == np.uint8
    assert out.min() == 0
    assert out.max() == 255
    expected = np.rint(reference_unit(crop) * 255)
    assert np.abs(out.astype(np.float64) - expected).max() <= 1
    assert np.mean(out == expected) > 0.99


def test_renormalize_constant_crop_is_black() -> None:
    assert (renormalize(np.full((8, 8), 40_000, np.uint16)) == 0).all()


def test_renormalize_float_crop() -> None:
    crop = np.linspace(5.0, 6.0, 400, dtype=np.float32).reshape(20, 20)
    out = renormalize(crop)
    assert out.dtype == np.uint8
    assert (out.min(), out.max()) == (0, 255)


# --- real data: BBBC021 single-cell crops (uint16, DAPI / tubulin / actin) --------------------


def first_crops(path: Path, n: int) -> np.ndarray:
    """Read only the first ``n`` crops of ``images`` in the npz (the array is 138 MB)."""
    with zipfile.ZipFile(path) as zf, zf.open("images.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        assert not fortran
        per = int(np.prod(shape[1:]))
        data = fh.read(n * per * dtype.itemsize)
    return np.frombuffer(data, dtype=dtype).reshape(n, *shape[1:])


@pytest.mark.realdata
def test_bbbc021_merge_keeps_many_grey_levels() -> None:
    crops = first_crops(shared_path("bbbc021_singlecell", "crops.npz"), 6)
    assert crops.shape == (6, 68, 68, 3)
    assert crops.dtype == np.uint16
    for crop in crops:
        planes = [crop[..., c] for c in range(3)]
        merged = merge_channels(planes)
        ours = to_uint8(merged)
        # float64 reference of the whole pipeline
        reference = np.rint(np.mean([reference_unit(p) for p in planes], axis=0) * 255)
        assert np.abs(ours.astype(np.float64) - reference).max() <= 1
        assert np.mean(ours == reference) > 0.97
        assert np.unique(ours).size > 100
        # The original read 16-bit files through cv2's 8-bit path (the top 8 bits); for this
        # 12- to 15-bit data that kept 10-71 levels per channel. Ours keeps far more.
        for plane in planes:
            truncated_levels = np.unique(plane >> 8).size
            ours_levels = np.unique(to_uint8(merge_channels([plane]))).size
            assert ours_levels > 2 * truncated_levels
            assert ours_levels > 100
