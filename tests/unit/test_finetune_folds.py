"""Folds never leak a compound (real BBBC021 metadata), DMSO and taxol handling, BBBC014 folds."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cytoimagenet.errors import ConfigError, MetadataError
from cytoimagenet.finetune.folds import make_folds, select_folds, slug, split
from cytoimagenet.finetune.layout import (
    bbbc014_label,
    bbbc021_fields,
    find_bbbc021_metadata,
    read_bbbc014,
    resolve_paths,
)
from cytoimagenet.sample.plate import PlateSpec, generate_moa_plate

REAL = Path(__file__).parents[2] / ".." / "shared" / "data" / "bbbc021_metadata"


@pytest.fixture(scope="module")
def real_fields() -> pl.DataFrame:
    if not REAL.is_dir():
        pytest.skip("../shared/data/bbbc021_metadata is absent")
    return bbbc021_fields(*find_bbbc021_metadata(REAL))


def test_real_bbbc021_selection_matches_kensert(real_fields: pl.DataFrame) -> None:
    treated = real_fields.filter(pl.col("role") == "treated")
    assert treated["compound"].n_unique() == 38
    assert treated.select("compound", "concentration").n_unique() == 103
    assert treated["moa"].n_unique() == 12
    assert "DMSO" not in treated["moa"].to_list()
    # DMSO: controls only, on every plate, never a class
    control = real_fields.filter(pl.col("role") == "control")
    assert set(control["compound"]) == {"DMSO"} and control["moa"].null_count() == control.height
    assert set(control["plate"]) == set(real_fields["plate"])
    # Taxol only on Week1, D0* wells, at 0.3/1/3 µM
    taxol = treated.filter(pl.col("compound") == "taxol")
    assert taxol.height > 0
    assert taxol["plate"].str.starts_with("Week1_").all()
    assert taxol["well"].str.starts_with("D0").all()
    assert sorted(taxol["concentration"].unique()) == [0.3, 1.0, 3.0]
    assert treated["field"].n_unique() == treated.height


def test_real_bbbc021_folds_never_leak_a_compound(real_fields: pl.DataFrame) -> None:
    folds = make_folds(real_fields)
    assert len(folds) == 38 and len({f.name for f in folds}) == 38
    treated = real_fields.filter(pl.col("role") == "treated")
    tested: list[tuple[str, float]] = []
    for fold in folds:
        train, test = split(real_fields, fold)
        train_c = set(real_fields[train]["compound"])
        test_c = set(real_fields[test]["compound"])
        assert test_c == {fold.held_out}
        assert fold.held_out not in train_c
        assert "DMSO" not in train_c | test_c
        assert len(train) + len(test) == treated.height
        assert set(real_fields[train]["moa"]) <= set(treated["moa"])
        tested += real_fields[test].select("compound", "concentration").unique().rows()
    # every treatment is tested exactly once, over all folds
    assert len(tested) == len(set(tested)) == 103


def test_select_folds(real_fields: pl.DataFrame) -> None:
    folds = make_folds(real_fields)
    assert select_folds(folds, "all") == folds
    picked = select_folds(folds, "taxol, 0,cytochalasin B")
    assert [f.held_out for f in picked] == [folds[0].held_out, "cytochalasin B", "taxol"]
    with pytest.raises(ConfigError, match="no such fold"):
        select_folds(folds, "aspirin")
    with pytest.raises(ConfigError, match="no such fold"):
        select_folds(folds, "38")


def test_slug() -> None:
    assert slug("cytochalasin B") == "cytochalasin-b"
    assert slug("ALLN") == "alln"


def test_synthetic_layout_reads_like_bbbc021(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    spec = PlateSpec(weeks=2, dmso_wells=2, sites=1, size=32, cells=2,
                     moas=("Actin disruptors", "DNA damage"))  # fmt: skip
    generate_moa_plate(root, spec)
    fields = resolve_paths(bbbc021_fields(*find_bbbc021_metadata(root)), root)
    treated = fields.filter(pl.col("role") == "treated")
    assert treated["compound"].n_unique() == 4 and treated["moa"].n_unique() == 2
    assert fields.filter(pl.col("role") == "control").height == 4
    assert all(Path(p).is_file() for p in fields["paths"].explode())
    # the zip layout (plate folders straight under root) resolves as well
    (root / "Week1" / "Week1_S01").rename(root / "Week1_S01")
    again = resolve_paths(bbbc021_fields(*find_bbbc021_metadata(root)), root)
    assert all(Path(p).is_file() for p in again["paths"].explode())
    (root / "Week1_S01").rename(root / "gone")
    with pytest.raises(ConfigError, match="missing"):
        resolve_paths(bbbc021_fields(*find_bbbc021_metadata(root)), root)


def touch_bbbc014(root: Path, skip: str | None = None) -> Path:
    folder = root / "BBBC014_v1_images"
    folder.mkdir(parents=True)
    n = 0
    for row in "ABCDEFGH":
        for col in range(1, 13):
            n += 1
            for ch in "12":
                name = f"Channel {ch}-{n:02d}-{row}-{col:02d}-00.BMP"
                if name != skip:
                    (folder / name).touch()
    (folder / "Thumbs.db").touch()
    return root


def test_bbbc014_wells_labels_and_folds(tmp_path: Path) -> None:
    fields, inputs = read_bbbc014(touch_bbbc014(tmp_path / "raw"))
    assert inputs == [] and fields.height == 64
    assert fields.group_by("group").len().sort("group").rows() == [("A549", 32), ("MCF7", 32)]
    assert fields.group_by("moa").len().sort("moa").rows() == [("negative", 32), ("positive", 32)]
    cols = fields["concentration"].unique().sort().to_list()
    assert cols == [1.0, 2.0, 3.0, 4.0, 9.0, 10.0, 11.0, 12.0]
    assert bbbc014_label("E", 1) == ("A549", "positive")
    first = fields.filter(pl.col("well") == "A01")["paths"][0].to_list()
    assert [Path(p).name[:9] for p in first] == ["Channel 1", "Channel 2"]
    folds = make_folds(fields)
    assert [(f.name, f.held_out) for f in folds] == [("a549", "A549"), ("mcf7", "MCF7")]
    for fold in folds:
        train, test = split(fields, fold)
        assert len(train) == len(test) == 32
        assert set(fields[test]["group"]) == {fold.held_out}
        assert fold.held_out not in set(fields[train]["group"])
        assert set(fields[test]["well"]).isdisjoint(fields[train]["well"])
        assert sorted(fields[test]["moa"].value_counts()["count"]) == [16, 16]


def test_bbbc014_errors(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="no BBBC014 image"):
        read_bbbc014(tmp_path)
    root = touch_bbbc014(tmp_path / "raw", skip="Channel 2-05-A-05-00.BMP")
    read_bbbc014(root)  # column 5 is not used: no error
    root = touch_bbbc014(tmp_path / "raw2", skip="Channel 2-01-A-01-00.BMP")
    with pytest.raises(MetadataError, match="A01 lacks"):
        read_bbbc014(root)
