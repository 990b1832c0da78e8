"""Kensert preprocessing (Anscombe, DMSO z-score, min–max, crops, QC), dihedral augmentation,
the crop dataset and the per-plate preparation task."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cytoimagenet.finetune import data
from cytoimagenet.finetune.prepare import GroupTask, PrepSpec, prepare_group


def k_squared(k: np.ndarray | float) -> np.ndarray:
    """Raw values whose Anscombe transform is exactly ``2k``."""
    return np.asarray(k, dtype=np.float64) ** 2 - 0.375


def test_anscombe_values() -> None:
    assert data.anscombe(k_squared([1, 2.5, 10])).tolist() == [2.0, 5.0, 20.0]
    assert data.anscombe(np.array([0]))[0] == pytest.approx(2 * np.sqrt(0.375))


def test_dmso_normalisation_golden() -> None:
    # Two DMSO fields of one plate, 1×2 px, 2 channels; Anscombe values are 2k.
    dmso = [np.stack([k_squared([1, 3]), k_squared([2, 4])], axis=-1)[None],
            np.stack([k_squared([3, 1]), k_squared([4, 2])], axis=-1)[None]]  # fmt: skip
    stats = data.DmsoStats()
    for field in dmso:
        stats.add(data.anscombe(field))
    mean, std = stats.mean_std()
    # channel 0: values 2, 6, 6, 2 → mean 4, std 2; channel 1: 4, 8, 8, 4 → mean 6, std 2
    assert mean.tolist() == [4.0, 6.0]
    assert std.tolist() == [2.0, 2.0]
    treated = np.stack([k_squared([[5, 1]]), k_squared([[4, 2]])], axis=-1)  # 1×2×2
    z = data.standardize(data.anscombe(treated), mean, std)
    assert z[..., 0].tolist() == [[3.0, -1.0]]
    assert z[..., 1].tolist() == [[1.0, -1.0]]
    # joint min–max over both channels: -1 → 0, 1 → 127.5 → 128, 3 → 255
    out = data.to_uint8(data.rescale_255(z))
    assert out[..., 0].tolist() == [[255, 0]]
    assert out[..., 1].tolist() == [[128, 0]]


def test_dmso_stats_match_numpy_and_guard_zero_std() -> None:
    rng = np.random.default_rng(1)
    fields = [rng.uniform(0, 500, size=(5, 7, 3)) for _ in range(3)]
    stats = data.DmsoStats()
    for f in fields:
        stats.add(f)
    pixels = np.concatenate([f.reshape(-1, 3) for f in fields])
    mean, std = stats.mean_std()
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)
    flat = data.standardize(np.full((2, 2, 1), 5.0), np.array([5.0]), np.array([0.0]))
    assert np.isfinite(flat).all() and (flat == 0).all()
    with pytest.raises(ValueError, match="no DMSO"):
        data.DmsoStats().mean_std()


def test_rescale_constant_is_zero_not_nan() -> None:
    assert (data.rescale_255(np.full((3, 3, 3), 7.0)) == 0).all()


def test_tile_boxes_grid_and_square() -> None:
    # Kensert: 1024×1280 → four 512×640 crops
    assert data.tile_boxes(1024, 1280, crop_size=None, grid=2) == [
        (0, 0, 512, 640), (0, 640, 512, 640), (512, 0, 512, 640), (512, 640, 512, 640)
    ]  # fmt: skip
    boxes = data.tile_boxes(70, 100, crop_size=32, grid=2)
    assert boxes == [(3, 2, 32, 32), (3, 34, 32, 32), (3, 66, 32, 32),
                     (35, 2, 32, 32), (35, 34, 32, 32), (35, 66, 32, 32)]  # fmt: skip
    with pytest.raises(ValueError, match="larger"):
        data.tile_boxes(20, 100, crop_size=32, grid=2)


def test_empty_crop_rule() -> None:
    crop = np.zeros((50, 50, 3), dtype=np.uint8)  # 7500 values; 0.2 % = 15
    crop.flat[:15] = 51
    assert data.is_empty_crop(crop)
    crop.flat[15] = 51
    assert not data.is_empty_crop(crop)
    crop.flat[:] = 50  # not above 255/5.1 = 50
    assert data.is_empty_crop(crop)


def test_eight_dihedral_transforms_are_distinct_and_invertible() -> None:
    image = np.random.default_rng(0).integers(0, 255, size=(6, 6, 3), dtype=np.uint8)
    outs = [data.dihedral(image, k) for k in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    for k, out in enumerate(outs):
        assert np.array_equal(data.dihedral(out, data.dihedral_inverse(k)), image)
        assert out.shape == image.shape
    # the group closes: composing two transforms is one of the eight
    composed = data.dihedral(data.dihedral(image, 1), 4)
    assert any(np.array_equal(composed, o) for o in outs)
    with pytest.raises(ValueError):
        data.dihedral(image, 8)


def test_augment_is_seeded_and_kensert_stays_in_range() -> None:
    image = np.random.default_rng(0).integers(0, 255, size=(8, 8, 3), dtype=np.uint8)

    def run(mode: str, seed: int) -> np.ndarray:
        return data.augment_image(image, mode, np.random.default_rng([seed, 1, 2]))

    assert np.array_equal(run("kensert", 0), run("kensert", 0))
    assert run("kensert", 0).dtype == np.float32
    assert run("kensert", 3).min() >= 0 and run("kensert", 3).max() <= 255
    assert np.array_equal(run("none", 0), image.astype(np.float32))
    seen = {run("dihedral", s).tobytes() for s in range(64)}
    assert len(seen) == 8  # every dihedral transform is drawn, and nothing else changes


def test_crop_dataset_memmap_and_pickle(tmp_path: Path) -> None:
    crops = np.arange(4 * 4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 4, 3)
    np.save(tmp_path / "a.npy", crops)
    ds = data.CropDataset([str(tmp_path / "a.npy")], np.zeros(2), np.array([3, 1]),
                          np.array([1, 0]), augment="none", seed=0)  # fmt: skip
    x, y = ds[0]
    assert y == 1 and tuple(x.shape) == (3, 4, 4)
    assert np.array_equal(x.numpy().transpose(1, 2, 0), crops[3].astype(np.float32))
    clone = pickle.loads(pickle.dumps(ds))  # noqa: S301  (workers get paths, not arrays)
    assert clone._arrays == {} and np.array_equal(clone[1][0].numpy(), ds[1][0].numpy())


def write_field(folder: Path, name: str, planes: list[np.ndarray]) -> tuple[str, ...]:
    paths = []
    for c, plane in enumerate(planes):
        path = folder / f"{name}_w{c}.tif"
        tifffile.imwrite(path, plane.astype(np.uint16))
        paths.append(str(path))
    return tuple(paths)


def test_prepare_plate_normalises_against_its_own_dmso(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shape = (16, 20)
    dmso = [[rng.integers(100, 400, shape) for _ in range(3)] for _ in range(2)]
    treated = [rng.integers(100, 4000, shape) for _ in range(3)]
    controls = tuple(write_field(tmp_path, f"dmso{i}", p) for i, p in enumerate(dmso))
    field = write_field(tmp_path, "treated", treated)
    spec = PrepSpec("bbbc021", input_size=8)
    task = GroupTask("P1", str(tmp_path / "groups"), spec, controls, (("f1", field),))
    summary = prepare_group(task)
    assert summary == {"group": "P1", "skipped": False, "crops": 4, "dropped": 0}
    # expected, independently: scalar mean/std of all DMSO pixels per channel
    pix = np.stack([np.stack(p, -1) for p in dmso]).reshape(-1, 3).astype(np.float64)
    a = 2 * np.sqrt(pix + 0.375)
    z = (2 * np.sqrt(np.stack(treated, -1) + 0.375) - a.mean(0)) / a.std(0)
    scaled = np.rint((z - z.min()) / (z.max() - z.min()) * 255).astype(np.uint8)
    got = np.load(tmp_path / "groups" / "P1.npy")
    assert got.shape == (4, 8, 8, 3)
    import cv2

    first = cv2.resize(scaled[:8, :10], (8, 8), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(got[0], first)
    assert prepare_group(task) == {"group": "P1", "skipped": True}
    no_dmso = GroupTask("P2", str(tmp_path / "groups"), spec, (), (("f1", field),))
    with pytest.raises(Exception, match="no DMSO"):
        prepare_group(no_dmso)
