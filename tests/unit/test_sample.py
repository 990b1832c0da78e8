"""The embedded sample source: deterministic, 16-bit, biologically distinct classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from cytoimagenet.sample import SampleSpec, generate_sample
from cytoimagenet.sample.generate import render_field

SPEC = SampleSpec(plates=1, sites=1, size=48, cells=4, seed=3)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate_sample(tmp_path / "a", SPEC)
    b = generate_sample(tmp_path / "b", SPEC)
    assert a.read_bytes() == b.read_bytes()
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.tif"))
    assert len(files) == 24 * 3
    for rel in files[:6]:
        assert np.array_equal(
            tifffile.imread(tmp_path / "a" / rel), tifffile.imread(tmp_path / "b" / rel)
        )


def test_images_are_16_bit_with_12_bit_content(tmp_path: Path) -> None:
    generate_sample(tmp_path, SPEC)
    image = tifffile.imread(tmp_path / "SP01" / "A01_s1_w1.tif")
    assert image.dtype == np.uint16 and image.shape == (48, 48)
    assert 255 < image.max() <= 4095  # more than 8 bits of information


def test_protein_localisation_differs_between_classes() -> None:
    rng = np.random.default_rng(0)
    nuclear = render_field(rng, 96, 6, "hela", "h2b", "dmso").astype(float)
    rng = np.random.default_rng(0)
    cyto = render_field(rng, 96, 6, "hela", "gapdh", "dmso").astype(float)
    nucleus_mask = nuclear[0] > 1000
    # A nuclear protein is brighter inside nuclei than outside; a cytoplasmic one is not.
    assert nuclear[1][nucleus_mask].mean() > 3 * nuclear[1][~nucleus_mask].mean()
    assert cyto[1][nucleus_mask].mean() < cyto[1][~nucleus_mask & (cyto[2] > 500)].mean()
