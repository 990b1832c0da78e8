"""``--norm-scope``: percentiles per crop, per plate or per dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.planes import ArrayFields
from cytoimagenet.features.scope import PIXELS_PER_PLANE, group_bounds, plan_scope, rescale

pytest.importorskip("torch")
pytest.importorskip("timm")

from cytoimagenet.features.api import extract_arrays


def _images() -> np.ndarray:
    """Two 2-channel 16-bit images, A and B, with structure (not constant)."""
    rng = np.random.default_rng(1)
    return rng.integers(500, 8000, size=(2, 2, 24, 24), dtype=np.uint16)


def _features(images: np.ndarray, plates: list[str], **options: object) -> np.ndarray:
    meta = pl.DataFrame({"Metadata_Plate": plates})
    table = extract_arrays(images, meta, model="random", size=32, batch_size=8, **options)
    return table.select(pl.selectors.starts_with("Cells_")).to_numpy()


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    """Relative distance (random-weight features are tiny, so absolute tolerances mislead)."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


@pytest.mark.parametrize("mode", ["concat-norm", "merge-norm"])
def test_global_scale_kept_by_dataset_scope_erased_by_crop(mode: str) -> None:
    a = _images()[:1]
    pair = np.concatenate([a, a * 2])  # the same image, twice as bright
    crop = _features(pair, ["P1", "P1"], mode=mode)
    assert _gap(crop[0], crop[1]) < 1e-5
    for scope in ("dataset", "plate"):  # one plate: plate scope is the dataset here
        kept = _features(pair, ["P1", "P1"], mode=mode, norm_scope=scope)
        assert _gap(kept[0], kept[1]) > 0.05, scope


def test_plate_scope_removes_a_plate_wide_scale() -> None:
    ab = _images()
    # plate P2 holds the same two images, twice as bright: a plate effect, not biology
    images = np.concatenate([ab, ab * 2])
    plates = ["P1", "P1", "P2", "P2"]
    plate = _features(images, plates, norm_scope="plate")
    assert _gap(plate[:2], plate[2:]) < 1e-5
    assert _gap(plate[0], plate[1]) > 0.05  # A and B still differ
    dataset = _features(images, plates, norm_scope="dataset")
    assert _gap(dataset[:2], dataset[2:]) > 0.05


def test_bounds_are_the_percentiles_of_the_pooled_pixels() -> None:
    images = _images()
    bounds, sampled = group_bounds(ArrayFields(images), ["g", "g"], sample=10)
    for c in range(2):
        expect = np.percentile(images[:, c].astype(np.float64), [0.1, 99.9])
        np.testing.assert_allclose(bounds["g"][c], expect)
    assert sampled == {"g": 2}
    _, one = group_bounds(ArrayFields(images), ["g", "g"], sample=1)
    assert one == {"g": 1}
    big = np.random.default_rng(0).integers(0, 9, (1, 1, 200, 200), dtype=np.uint8)
    assert big[0, 0].size > PIXELS_PER_PLANE  # subsampled, still close
    got = group_bounds(ArrayFields(big), ["g"], sample=1)[0]["g"][0]
    assert got == (0.0, 8.0)


def test_rescale_clips_and_handles_constant() -> None:
    plane = np.array([[0, 50], [100, 200]], np.uint16)
    assert rescale(plane, 50, 150).tolist() == [[0.0, 0.0], [0.5, 1.0]]
    assert rescale(plane, 7, 7).max() == 0.0


def test_plan_scope_errors() -> None:
    fields = ArrayFields(_images())
    frame = pl.DataFrame({"Plate": ["P1", None]})
    with pytest.raises(ConfigError, match="row 1 has no plate"):
        plan_scope("plate", frame, fields, plate_column="Metadata_Plate", sample=4)
    with pytest.raises(ConfigError, match="--plate-column Batch: the table has no such column"):
        plan_scope("plate", frame, fields, plate_column="Batch", sample=4)
    plan, same = plan_scope("crop", frame, fields, plate_column="Batch", sample=4)
    assert plan is None and same is fields
    with pytest.raises(ConfigError, match="--norm-scope plate is for concat-norm and merge-norm"):
        extract_arrays(_images(), mode="concat", norm_scope="plate")


def test_extract_records_the_scope(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cytoimagenet.cli import app

    images = _images()
    rows = []
    for i, plate in enumerate(("P1", "P2")):
        names = []
        for c in range(2):
            tifffile.imwrite(tmp_path / f"{i}_{c}.tif", images[i, c] * (i + 1))
            names.append(f"{i}_{c}.tif")
        rows.append({"Metadata_Plate": plate, "channel_paths": "|".join(names)})
    pl.DataFrame(rows).write_csv(tmp_path / "images.csv")
    out = tmp_path / "f.parquet"
    done = CliRunner().invoke(
        app,
        ["extract", "--model", "random", "--images", str(tmp_path / "images.csv"), "--out",
         str(out), "--size", "32", "--norm-scope", "plate", "--no-progress"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    prov = json.loads((tmp_path / "f.provenance.json").read_text())
    record = prov["normalization"]
    assert record["scope"] == "plate" and record["column"] == "Metadata_Plate"
    assert set(record["groups"]) == {"P1", "P2"} and record["groups"]["P1"]["images"] == 1
    assert prov["config"]["norm_scope"] == "plate"
    import pyarrow.parquet as pq

    info = json.loads(pq.read_schema(out).metadata[b"cytoimagenet"])
    assert info["normalization"] == record
    bad = CliRunner().invoke(
        app,
        ["extract", "--model", "random", "--images", str(tmp_path / "images.csv"), "--out",
         str(out), "--norm-scope", "plate", "--plate-column", "Batch", "--no-progress"],
    )  # fmt: skip
    assert bad.exit_code != 0
    assert bad.output.count("error:") == 1 and "--plate-column Batch" in bad.output
