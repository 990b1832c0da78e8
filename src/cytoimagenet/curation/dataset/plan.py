"""Plan a build: check the labels table against the raw root, then cut it into tasks.

Everything here is a pure function of the labels table and the job, so a resumed build plans
exactly the same tasks, file names and seeds.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from cytoimagenet.config import BuildJob
from cytoimagenet.curation.dataset.tasks import ImageOptions, ImageTask, Shard
from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.hashing import stable_hash
from cytoimagenet.imaging.crops import crops_per_image
from cytoimagenet.imaging.quality import QCThresholds

#: Columns a labels table must have for a build.
BUILD_COLUMNS = ("idx", "label", "dir_name", "channels", "channel_paths")

#: Output slots per source image: whole image or up to four crops.
SLOTS = 4


def label_folder(label: str) -> str:
    """Folder name of a label, as the published dataset spelled them, made file-system safe.

    Examples
    --------
    >>> label_folder("kinase inhibitor -- gefitinib")
    'kinase_inhibitor-gefitinib'
    >>> label_folder("cd4+ t cell")
    'cd4+_t_cell'
    """
    name = label.replace(" -- ", "-").replace(" ", "_").replace("/", "-").replace(",", "_")
    name = re.sub(r"[^\w.+=@-]", "_", name)
    return name.lstrip(".") or "_"


def check_labels(table: pl.DataFrame, root: Path, where: Path) -> pl.DataFrame:
    """Return the labelled rows of ``table`` after checking it can be built from ``root``.

    Raises
    ------
    SchemaError
        If a needed column is missing or no row has a label.
    ConfigError
        If a source's folder ``root/<dir_name>`` does not exist.
    """
    missing = [c for c in BUILD_COLUMNS if c not in table.columns]
    if missing:
        raise SchemaError(
            f"{where}: missing column(s) {', '.join(missing)}; "
            "pass the table written by `cytoimagenet labels`"
        )
    rows = table.filter(pl.col("label").is_not_null())
    if rows.is_empty():
        raise SchemaError(f"{where}: no labelled rows; run `cytoimagenet labels` on it first")
    for column in ("dir_name", "channel_paths"):
        empty = rows.filter(pl.col(column).is_null())
        if empty.height:
            raise SchemaError(
                f"{where}: {empty.height} labelled row(s) have no {column!r} "
                f"(first: {empty['idx'][0]}); rebuild the metadata with `cytoimagenet metadata`"
            )
    if rows["idx"].is_duplicated().any():
        dup = rows.filter(rows["idx"].is_duplicated())["idx"][0]
        raise SchemaError(f"{where}: idx {dup!r} appears more than once")
    check_inside_root(rows, root, where)
    absent = sorted(d for d in rows["dir_name"].unique().to_list() if not (root / d).is_dir())
    if absent:
        raise ConfigError(
            f"{root}: no folder for source(s) {', '.join(absent)}; the raw files of source S "
            "must lie under ROOT/S/ (download them with `cytoimagenet download`)"
        )
    return rows


#: A path that is absolute (POSIX, UNC or with a drive) or climbs out with a ``..`` part.
_ESCAPES = r"^([/\\]|[A-Za-z]:)|(^|[/\\])\.\.([/\\]|$)"


def check_inside_root(rows: pl.DataFrame, root: Path, where: Path) -> None:
    """Refuse ``dir_name`` / ``channel_paths`` values that lead outside ``root``.

    A labels table comes from elsewhere; its paths must not make the build read (and
    publish, as dataset images) arbitrary files. Values are checked as written (absolute
    paths, ``..`` parts), and each source folder also after resolving symlinks.

    Raises
    ------
    ConfigError
        Naming the first offending row's ``idx`` and value.
    """

    def refuse(idx: str, column: str, value: str, why: str) -> ConfigError:
        return ConfigError(
            f"{where}: row {idx!r} has {column} {value!r}, which {why}; the raw files must "
            f"lie under --root {root}: fix the table (paths relative to ROOT/<dir_name>/)"
        )

    bad = rows.filter(pl.col("dir_name").str.contains(_ESCAPES))
    if bad.height:
        raise refuse(bad["idx"][0], "dir_name", bad["dir_name"][0], "leaves the root")
    files = rows.select("idx", "channel_paths").explode("channel_paths")
    bad = files.filter(pl.col("channel_paths").str.contains(_ESCAPES))
    if bad.height:
        value = bad["channel_paths"][0]
        raise refuse(bad["idx"][0], "channel path", value, "leaves its source folder")
    base = root.resolve()
    for name in rows["dir_name"].unique().sort().to_list():
        target = (root / name).resolve()
        if target != base and base not in target.parents:
            idx = rows.filter(pl.col("dir_name") == name)["idx"][0]
            raise refuse(idx, "dir_name", name, f"resolves to {target}, outside the root")


def channel_files(channels: list[str] | None, paths: list[str]) -> list[str]:
    """Fluorescence channels (``f_*``) are merged; brightfield-like ones stay out of the merge.

    Rows without fluorescence channels (brightfield-only sources), or whose channel names do
    not line up with their files, merge every file.
    """
    if channels and len(channels) == len(paths):
        fluo = [p for c, p in zip(channels, paths, strict=True) if c.startswith("f_")]
        if fluo:
            return fluo
    return paths


def plan_shards(rows: pl.DataFrame, job: BuildJob, results: Path) -> list[Shard]:
    """Cut the labelled rows into shards of image tasks, in (label, idx) order."""
    folders: dict[str, str] = {}
    for label in sorted(rows["label"].unique().to_list()):
        folder = label_folder(label)
        if folder in folders.values():
            folder = f"{folder}-{stable_hash(label) % 10_000:04d}"
        folders[label] = folder
    options = ImageOptions(
        low=job.low,
        high=job.high,
        crops=job.crops,
        qc=QCThresholds(**job.qc.model_dump()),
        max_pixels=job.max_pixels,
    )
    ordered = rows.select("label", "idx", "dir_name", "channels", "channel_paths").sort(
        "label", "idx"
    )
    tasks: list[ImageTask] = []
    root = job.root.resolve()
    for (label,), group in ordered.group_by(["label"], maintain_order=True):
        n = group.height
        width = len(str(SLOTS * n - 1))
        for rank, row in enumerate(group.iter_rows(named=True)):
            files = channel_files(row["channels"], row["channel_paths"] or [])
            tasks.append(
                ImageTask(
                    idx=row["idx"],
                    files=tuple(str(root / row["dir_name"] / f) for f in files),
                    folder=folders[str(label)],
                    index=rank * SLOTS,
                    width=width,
                    n_crops=crops_per_image(n),
                    seed=stable_hash(job.seed, "crop", row["idx"]),
                )
            )
    size = job.shard_size
    return [
        Shard(
            shard_id=i // size,
            tasks=tuple(tasks[i : i + size]),
            out=str(job.out.resolve()),
            results=str(results.resolve()),
            options=options,
        )
        for i in range(0, len(tasks), size)
    ]
