"""Features of numpy arrays equal ``extract``'s features of the same pixels in files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile

pytest.importorskip("torch")
pytest.importorskip("timm")

from cytoimagenet.errors import ConfigError
from cytoimagenet.features.api import as_nchw, extract_arrays
from cytoimagenet.features.step import ExtractJob, run_extract


def _crops(dtype: type, n: int = 5, side: int = 20) -> np.ndarray:
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    x = rng.uniform(0, top * 0.8, size=(n, side, side, 2))
    x[:, : side // 2, :, 1] /= 3  # channels differ in structure
    return x.astype(dtype)


def _files_features(tmp: Path, crops: np.ndarray, mode: str, model: str) -> pl.DataFrame:
    """Write each crop's channels to TIFFs and run ``extract`` on them."""
    rows = []
    for i, crop in enumerate(crops):
        paths = []
        for c in range(crop.shape[-1]):
            tifffile.imwrite(tmp / f"c{i}_{c}.tif", np.ascontiguousarray(crop[..., c]))
            paths.append(f"c{i}_{c}.tif")
        rows.append({"Metadata_Cell": i, "channels": ["DNA", "Actin"], "channel_paths": paths})
    pl.DataFrame(rows).write_parquet(tmp / "images.parquet")
    job = ExtractJob(
        model=model, images=tmp / "images.parquet", out=tmp / "f.parquet", mode=mode, size=32,
        batch_size=4,
    )  # fmt: skip
    run_extract(job, progress=False)
    return pl.read_parquet(tmp / "f.parquet")


@pytest.mark.parametrize(
    ("dtype", "mode"), [(np.uint16, "concat-norm"), (np.uint8, "merge"), (np.float32, "concat")]
)
def test_arrays_equal_files_in_both_layouts(tmp_path: Path, dtype: type, mode: str) -> None:
    crops = _crops(dtype)
    files = _files_features(tmp_path, crops, mode, "random")
    meta = pl.DataFrame({"Metadata_Cell": range(len(crops))})
    names = ["DNA", "Actin"]
    nhwc = extract_arrays(crops, meta, mode=mode, size=32, channel_names=names, batch_size=4)
    nchw = extract_arrays(
        np.moveaxis(crops, -1, 1), meta.to_pandas(), mode=mode, size=32, channel_axis=1,
        channel_names=names, batch_size=4,
    )  # fmt: skip
    feats = [c for c in files.columns if not c.startswith("Metadata_")]
    assert [c for c in nhwc.columns if not c.startswith("Metadata_")] == feats
    assert feats[0].startswith("Cells_CNN_random_")
    expected = files.select(feats).to_numpy()
    np.testing.assert_allclose(nhwc.select(feats).to_numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nchw.select(feats).to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert nhwc["Metadata_Cell"].to_list() == list(range(len(crops)))


def test_arrays_intensity_and_output_file(tmp_path: Path) -> None:
    crops = _crops(np.uint16, n=3)
    out = tmp_path / "x.parquet"
    table = extract_arrays(crops, None, model="intensity", out=out)
    assert table["Metadata_Index"].to_list() == [0, 1, 2]
    mean = next(c for c in table.columns if c.endswith("ch0_Mean"))
    np.testing.assert_allclose(table[mean], crops[..., 0].mean(axis=(1, 2)), rtol=1e-6)
    assert pl.read_parquet(out).equals(table)


def test_layouts_and_bad_input() -> None:
    assert as_nchw(np.zeros((2, 30, 30, 3), np.uint16)).shape == (2, 3, 30, 30)
    assert as_nchw(np.zeros((2, 3, 30, 30), bool)).dtype == np.uint8
    assert as_nchw(np.zeros((2, 3, 30, 30), np.float16)).dtype == np.float32
    with pytest.raises(ConfigError, match="cannot tell the channel axis"):
        as_nchw(np.zeros((2, 3, 8, 3)))
    assert as_nchw(np.zeros((2, 3, 8, 3)), channel_axis=-1).shape == (2, 3, 3, 8)
    with pytest.raises(ConfigError, match="expected N x C x H x W"):
        as_nchw(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="dtype complex"):
        as_nchw(np.zeros((2, 3, 8, 8), complex))
    with pytest.raises(ConfigError, match="one row per image"):
        extract_arrays(np.zeros((2, 8, 8), np.uint8), pl.DataFrame({"a": [1]}))
    with pytest.raises(ConfigError, match="mode"):
        extract_arrays(np.zeros((2, 8, 8), np.uint8), mode="nope")
