from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset.finalize import split_class, trim_class
from cytoimagenet.curation.dataset.plan import channel_files, label_folder, plan_shards


@pytest.mark.parametrize(
    ("label", "folder"),
    [
        ("human", "human"),
        ("kinase inhibitor -- gefitinib", "kinase_inhibitor-gefitinib"),
        ("a/b, c", "a-b__c"),
        ("mitochondria (tom20)", "mitochondria__tom20_"),
        ("..hidden", "hidden"),
        ("cd4+ t cell", "cd4+_t_cell"),
    ],
)
def test_label_folder(label: str, folder: str) -> None:
    assert label_folder(label) == folder


def test_fluorescence_channels_are_merged_and_brightfield_kept_out() -> None:
    paths = ["a--Cherry.tif", "a--GFP.tif", "a--Transmit.tif"]
    chans = ["f_cytoplasm", "f_protein", "brightfield"]
    assert channel_files(chans, paths) == paths[:2]
    assert channel_files(["brightfield"], ["x.png"]) == ["x.png"]
    assert channel_files(None, paths) == paths
    # Names that do not line up with the files: merge every file.
    assert channel_files(["f_a"], paths) == paths


def _rows(n_per_label: dict[str, int]) -> pl.DataFrame:
    rows = []
    for label, n in n_per_label.items():
        for i in range(n):
            rows.append(
                {
                    "label": label,
                    "idx": f"src-{label}-{i:03d}",
                    "dir_name": "src",
                    "channels": ["f_nucleus", "f_actin"],
                    "channel_paths": [f"p/{label}{i}_w1.tif", f"p/{label}{i}_w2.tif"],
                }
            )
    return pl.DataFrame(rows)


def test_plan_is_deterministic_and_names_are_unique(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    labels = tmp_path / "l.parquet"
    labels.write_bytes(b"")
    job = BuildJob(labels=labels, root=tmp_path, out=tmp_path / "out", shard_size=7)
    rows = _rows({"b": 450, "a": 12, "c": 1000})
    shards = plan_shards(rows, job, tmp_path / "state")
    again = plan_shards(rows.sample(fraction=1.0, shuffle=True, seed=1), job, tmp_path / "state")
    assert shards == again
    tasks = [t for s in shards for t in s.tasks]
    assert [s.shard_id for s in shards] == list(range(len(shards)))
    assert len(tasks) == rows.height
    names = [t.filename(slot) for t in tasks for slot in range(4)]
    assert len(set(names)) == len(names)
    by_label = {t.folder: t.n_crops for t in tasks}
    assert by_label == {"a": 4, "b": 3, "c": 1}
    assert all(len(t.files) == 2 and t.files[0].startswith(str(tmp_path)) for t in tasks)
    assert tasks[0].filename(0) == "a-00.png" and tasks[1].filename(3) == "a-07.png"
    assert len({t.seed for t in tasks}) == len(tasks)
    other = plan_shards(rows, job.model_copy(update={"seed": 1}), tmp_path / "state")
    assert [t.seed for s in other for t in s.tasks] != [t.seed for t in tasks]


def _outputs(crops_per_image: list[int]) -> pl.DataFrame:
    rows = []
    for i, n in enumerate(crops_per_image):
        for slot in range(n):
            rows.append({"idx": f"img{i:03d}", "filename": f"x-{4 * i + slot:04d}.png"})
    return pl.DataFrame(rows)


def test_trim_drops_one_crop_per_multi_crop_image_first() -> None:
    frame = _outputs([4] * 10 + [1] * 10)  # 50 rows
    kept, dropped = trim_class(frame, 45, np.random.default_rng(0))
    assert kept.height == 45 and dropped.height == 5
    assert dropped["idx"].is_unique().all()
    assert dropped["idx"].str.slice(3).cast(int).max() < 10  # only multi-crop images
    # Larger excess: one crop of every multi-crop image first, then random rows.
    kept, dropped = trim_class(frame, 30, np.random.default_rng(0))
    assert kept.height == 30
    assert dropped.filter(pl.col("idx") < "img010").height >= 10
    assert set(kept["filename"]) | set(dropped["filename"]) == set(frame["filename"])


def test_trim_is_seeded_and_leaves_small_classes_alone() -> None:
    frame = _outputs([3] * 20)
    a, _ = trim_class(frame, 25, np.random.default_rng(5))
    b, _ = trim_class(frame.reverse(), 25, np.random.default_rng(5))
    assert a["filename"].to_list() == b["filename"].to_list()
    kept, dropped = trim_class(frame, 100, np.random.default_rng(0))
    assert kept.equals(frame) and dropped.is_empty()


def test_split_groups_crops_and_hits_the_fraction() -> None:
    frame = _outputs([4] * 50 + [1] * 100)  # 300 rows
    dset = split_class(frame, 0.1, seed=0)
    tagged = frame.with_columns(dset.alias("dset"))
    assert (tagged.group_by("idx").agg(pl.col("dset").n_unique())["dset"] == 1).all()
    val = int((dset == "val").sum())
    assert 30 <= val <= 33
    assert split_class(frame.reverse(), 0.1, seed=0).reverse().equals(dset)
    assert not split_class(frame, 0.1, seed=1).equals(dset)
    assert (split_class(frame, 0.0, seed=0) == "train").all()
