"""The synthetic compound screen: BBBC021's published layout, seeded, with visible MoAs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tifffile

from cytoimagenet.evaluation.loaders import load_bbbc021
from cytoimagenet.sample.plate import MOAS, PlateSpec, generate_moa_plate, treatments

TINY = PlateSpec(weeks=2, dmso_wells=2, sites=1, size=48, cells=3)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_the_bbbc021_loader_reads_it_as_it_reads_the_real_release(tmp_path: Path) -> None:
    generate_moa_plate(tmp_path, TINY)
    images = load_bbbc021(tmp_path)
    table = images.table
    treated = table.filter(pl.col("Metadata_MoA") != "DMSO")
    assert table.height == 2 * (12 + 2)
    assert treated.select("Metadata_Compound", "Metadata_Concentration").n_unique() == 12
    assert treated["Metadata_MoA"].n_unique() == len(MOAS) == 3
    assert sorted(table["Metadata_Batch"].unique()) == ["Week1", "Week2"]
    # Two compounds per MoA: the not-same-compound 1-NN always has a candidate.
    per_moa = treated.group_by("Metadata_MoA").agg(pl.col("Metadata_Compound").n_unique())
    assert per_moa["Metadata_Compound"].to_list() == [2, 2, 2]
    plane = tifffile.imread(tmp_path / table["channel_paths"][0][0])
    assert plane.dtype == np.uint16 and plane.shape == (48, 48) and plane.max() < 4096
    assert len(treatments()) == 13


def test_seeded_and_phenotypes_scale_with_effect(tmp_path: Path) -> None:
    generate_moa_plate(tmp_path / "a", TINY)
    generate_moa_plate(tmp_path / "b", TINY)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    means = {}
    for effect in (0.0, 1.0):
        root = tmp_path / f"e{effect}"
        generate_moa_plate(root, PlateSpec(weeks=1, dmso_wells=1, sites=2, size=64, cells=6,
                                           effect=effect))  # fmt: skip
        table = load_bbbc021(root).table.filter(pl.col("Metadata_Compound") == "etoposide")
        dapi = [tifffile.imread(root / p[0]).astype(float) for p in table["channel_paths"]]
        means[effect] = float(np.mean([d[d > 400].sum() for d in dapi]))
    assert means[1.0] > 1.5 * means[0.0]  # DNA damage: bigger, brighter nuclei


def test_moa_subset_and_plate_gain(tmp_path: Path) -> None:
    spec = PlateSpec(weeks=2, dmso_wells=2, sites=1, size=48, cells=4,
                     moas=("DNA damage",), plate_gain=1.0)  # fmt: skip
    generate_moa_plate(tmp_path, spec)
    table = load_bbbc021(tmp_path).table
    assert set(table["Metadata_MoA"]) == {"DNA damage", "DMSO"}
    dmso = table.filter(pl.col("Metadata_MoA") == "DMSO").sort("Metadata_Plate")
    level = [np.median(tifffile.imread(tmp_path / p[0])) for p in dmso["channel_paths"]]
    assert level[2] > 1.7 * level[0]  # week 2 is imaged at twice the gain of week 1
    with pytest.raises(ValueError, match="subset"):
        PlateSpec(moas=("Kinase inhibitors",))
