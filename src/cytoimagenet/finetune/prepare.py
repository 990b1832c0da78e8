"""Preprocess every field once into model-sized ``uint8`` crops, cached, parallel, resumable.

Kensert et al. wrote their crops to PNGs once and every fold read them; here each task (a
BBBC021 plate, whose DMSO fields normalise it, or a BBBC014 plate row) writes
``groups/<name>.npy`` (``(N, S, S, 3)`` crops at the model input size) and then
``groups/<name>.parquet`` (one row per crop: field, box, and the plate's DMSO statistics);
the Parquet file marks the task done, so an interrupted preparation resumes where it stopped.
The cache folder's name carries a hash of the settings and of the field list, so runs with
the same preprocessing share it (``--cache``) and runs with other settings never mix.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from cytoimagenet.errors import CytoImageNetError
from cytoimagenet.finetune import data
from cytoimagenet.hashing import stable_hash
from cytoimagenet.imaging.readers import read_field
from cytoimagenet.io.atomic import atomic_path

log = logging.getLogger(__name__)

PREP_VERSION: Final = 1
#: Grid of each field when no ``--crop-size`` is given (Kensert's crops).
GRIDS: Final = {"bbbc021": 2, "bbbc014": 4}
INDEX_COLUMNS: Final = ("field", "crop", "y0", "x0", "h", "w", "offset")


@dataclass(frozen=True)
class PrepSpec:
    """What decides the crops.

    Attributes
    ----------
    dataset : str
        ``bbbc021`` or ``bbbc014``.
    input_size : int
        Side of the stored (squashed) crops: the model input.
    crop_size : int, optional
        Square tiles of this side; ``None`` cuts Kensert's grid (:data:`GRIDS`).
    """

    dataset: str
    input_size: int
    crop_size: int | None = None

    @property
    def grid(self) -> int:
        """Tiles per side of a field when ``crop_size`` is ``None``."""
        return GRIDS[self.dataset]


@dataclass(frozen=True)
class GroupTask:
    """The fields one worker turns into crops.

    Attributes
    ----------
    name : str
        Plate (BBBC021) or plate row (BBBC014); names the output files.
    folder : str
        The cache's ``groups`` folder.
    spec : PrepSpec
        Settings.
    controls : tuple
        Channel paths of the DMSO fields of the plate (BBBC021).
    fields : tuple
        ``(field id, channel paths)`` of the fields to crop.
    """

    name: str
    folder: str
    spec: PrepSpec
    controls: tuple[tuple[str, ...], ...]
    fields: tuple[tuple[str, tuple[str, ...]], ...]


def read_stack(paths: tuple[str, ...] | list[str]) -> np.ndarray:
    """Read a field's channel files into ``(H, W, C)`` float64 (one plane per file)."""
    planes = read_field([Path(p) for p in paths])
    if len(planes) != len(paths):
        raise CytoImageNetError(
            f"{paths[0]}: expected {len(paths)} grey planes, found {len(planes)} "
            "(multi-page or colour channel files are not the published layout)"
        )
    return np.stack([np.asarray(p, dtype=np.float64) for p in planes], axis=-1)


def plate_dmso_stats(controls: tuple[tuple[str, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel of all Anscombe-transformed DMSO pixels of a plate."""
    stats = data.DmsoStats()
    for paths in controls:
        stats.add(data.anscombe(read_stack(paths)))
    return stats.mean_std()


def bbbc021_crops(
    stack: np.ndarray, mean: np.ndarray, std: np.ndarray, spec: PrepSpec
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Crops of one BBBC021 field: Anscombe, DMSO z-score, field min–max, tiles, QC, resize."""
    image = data.to_uint8(data.rescale_255(data.standardize(data.anscombe(stack), mean, std)))
    out = []
    for box in data.tile_boxes(*image.shape[:2], crop_size=spec.crop_size, grid=spec.grid):
        y, x, h, w = box
        crop = image[y : y + h, x : x + w]
        if not data.is_empty_crop(crop):
            out.append((box, data.resize(crop, spec.input_size, spec.input_size)))
    return out


def bbbc014_crops(
    stack: np.ndarray, spec: PrepSpec
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Crops of one BBBC014 field, as Kensert: square, tiles, Anscombe, per-crop min–max.

    Each crop becomes RGB = (0, NFκB, DNA) and is resized; none is dropped (they kept 16).
    """
    side = min(stack.shape[:2])
    square = data.resize(stack, side, side)
    out = []
    for box in data.tile_boxes(side, side, crop_size=spec.crop_size, grid=spec.grid):
        y, x, h, w = box
        crop = data.to_uint8(data.rescale_255(data.anscombe(square[y : y + h, x : x + w])))
        rgb = np.concatenate([np.zeros_like(crop[..., :1]), crop], axis=-1)
        out.append((box, data.resize(rgb, spec.input_size, spec.input_size)))
    return out


def _paths(folder: str, name: str) -> tuple[Path, Path]:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Path(folder) / f"{safe}.npy", Path(folder) / f"{safe}.parquet"


def prepare_group(task: GroupTask) -> dict[str, Any]:
    """Write the crops of one group (skipped when done); return counts."""
    array_path, index_path = _paths(task.folder, task.name)
    if index_path.is_file() and array_path.is_file():
        return {"group": task.name, "skipped": True}
    spec = task.spec
    mean = std = np.zeros(0)
    if spec.dataset == "bbbc021":
        if not task.controls:
            raise CytoImageNetError(
                f"plate {task.name}: no DMSO field to normalise it against (Kensert z-scores "
                "every plate with its DMSO wells)"
            )
        mean, std = plate_dmso_stats(task.controls)
    rows: list[tuple[str, int, int, int, int, int, int]] = []
    crops: list[np.ndarray] = []
    dropped = 0
    for field_id, paths in task.fields:
        stack = read_stack(paths)
        if spec.dataset == "bbbc021":
            made = bbbc021_crops(stack, mean, std, spec)
            dropped += len(data.tile_boxes(*stack.shape[:2], crop_size=spec.crop_size,
                                           grid=spec.grid)) - len(made)  # fmt: skip
        else:
            made = bbbc014_crops(stack, spec)
        for i, ((y, x, h, w), crop) in enumerate(made):
            rows.append((field_id, i, y, x, h, w, len(crops)))
            crops.append(crop)
    size = spec.input_size
    array = np.stack(crops) if crops else np.zeros((0, size, size, 3), dtype=np.uint8)
    with atomic_path(array_path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array)
    index = pl.DataFrame(
        rows, schema=dict.fromkeys(INDEX_COLUMNS, pl.Int64) | {"field": pl.String}, orient="row"
    ).with_columns(
        pl.lit(task.name).alias("group_file"),
        pl.lit(mean.tolist(), pl.List(pl.Float64)).alias("dmso_mean"),
        pl.lit(std.tolist(), pl.List(pl.Float64)).alias("dmso_std"),
    )
    with atomic_path(index_path) as tmp:
        index.write_parquet(tmp)
    return {"group": task.name, "skipped": False, "crops": len(crops), "dropped": dropped}


@dataclass
class Prepared:
    """The crops of a dataset.

    Attributes
    ----------
    folder : Path
        The cache folder.
    files : list of str
        The ``.npy`` files; ``index['file_index']`` points into this list.
    index : polars.DataFrame
        One row per crop: ``file_index``, ``offset``, ``crop``, the box, and the field's
        columns (:data:`~cytoimagenet.finetune.layout.FIELD_COLUMNS` but ``paths``).
    summary : dict
        Crops made, dropped as empty, groups skipped (already done).
    """

    folder: Path
    files: list[str]
    index: pl.DataFrame
    summary: dict[str, int]


def cache_folder(cache: Path, spec: PrepSpec, fields: pl.DataFrame) -> Path:
    """Return ``cache/<dataset>-<size>px-<hash>``: the hash covers the settings and fields."""
    listing = fields.select("field", pl.col("paths").list.join("|")).sort("field").rows()
    key = stable_hash(PREP_VERSION, sorted(asdict(spec).items()), listing)
    return cache / f"{spec.dataset}-{spec.input_size}px-{key:016x}"


def _tasks(fields: pl.DataFrame, spec: PrepSpec, folder: Path) -> list[GroupTask]:
    # One task per plate, or per plate row for BBBC014 (a single plate).
    key = pl.col("plate") if spec.dataset == "bbbc021" else pl.col("well").str.slice(0, 1)
    fields = fields.with_columns(key.alias("_group"))
    tasks = []
    for (name,), part in fields.sort("field").group_by("_group", maintain_order=True):
        controls = part.filter(pl.col("role") == "control")["paths"].to_list()
        treated = part.filter(pl.col("role") == "treated").select("field", "paths").rows()
        if treated:
            tasks.append(
                GroupTask(
                    name=str(name),
                    folder=str(folder / "groups"),
                    spec=spec,
                    controls=tuple(tuple(p) for p in controls),
                    fields=tuple((f, tuple(p)) for f, p in treated),
                )
            )
    return sorted(tasks, key=lambda t: t.name)


def prepare_crops(
    fields: pl.DataFrame,
    spec: PrepSpec,
    cache: Path,
    *,
    workers: int = 1,
    progress: bool = True,
) -> Prepared:
    """Make (or reuse) the crops of every treated field; see the module docstring."""
    from tqdm import tqdm

    from cytoimagenet.parallel import run_tasks

    folder = cache_folder(cache, spec, fields)
    (folder / "groups").mkdir(parents=True, exist_ok=True)
    tasks = _tasks(fields, spec, folder)
    summary = {"groups": len(tasks), "groups_skipped": 0, "crops_made": 0, "crops_dropped": 0}
    with tqdm(total=len(tasks), desc="preparing crops", unit="group", leave=False,
              disable=not progress, file=sys.stderr) as bar:  # fmt: skip
        for _, result in run_tasks(prepare_group, tasks, workers=workers):
            summary["groups_skipped"] += int(result["skipped"])
            summary["crops_made"] += result.get("crops", 0)
            summary["crops_dropped"] += result.get("dropped", 0)
            bar.update()
    files, parts = [], []
    for i, task in enumerate(tasks):
        array_path, index_path = _paths(task.folder, task.name)
        files.append(str(array_path))
        parts.append(pl.read_parquet(index_path).with_columns(pl.lit(i).alias("file_index")))
    meta = fields.filter(pl.col("role") == "treated").drop("paths")
    index = pl.concat(parts).join(meta, on="field", how="inner", maintain_order="left")
    summary["crops"] = index.height
    if index.height == 0:
        raise CytoImageNetError(f"{folder}: preprocessing kept no crop (all fields empty?)")
    log.info("crops in %s: %s", folder, summary)
    return Prepared(folder, files, index, summary)
