"""Benchmark image tables: BBBC021, COOS-7 and CYCLoPs in their published layouts.

Each loader reads a benchmark's raw folder and returns the image table that
``cytoimagenet extract`` consumes: ``channel_paths`` (files relative to the raw root, in
channel order), ``channels`` (their names) and ``Metadata_*`` columns, which ``extract``
carries through to the features file and ``evaluate`` reads back.

A sample whose image files are missing is never dropped silently, since that shrinks the
benchmark's n without anyone noticing: loading fails with the count and the first few files,
unless ``allow_missing`` is set, in which case the samples are dropped and listed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources import get_adapter
from cytoimagenet.sources.bbbc import pick
from cytoimagenet.sources.bbbc021_csv import (
    BBBC021_CHANNELS,
    COMPOUND,
    CONCENTRATION,
    FILE_COLUMNS,
    PATH_COLUMNS,
    plate_folder,
    read_annotated,
)
from cytoimagenet.sources.evaluation import CellFolderAdapter, pair_channels

log = logging.getLogger(__name__)

BENCHMARKS: Final = ("bbbc021", "coos7", "cyclops")
COOS7_SPLITS: Final = ("train", "test1", "test2", "test3", "test4")
#: A CYCLoPs WT2 cell stem: ``<PROTEIN>_<image>_rfp_<cell>`` (the image is the field of view).
CYCLOPS_STEM: Final = r"^(?P<protein>.+?)_(?P<image>\d+)_rfp_(?P<cell>\d+)$"
#: How many missing files an error or warning names.
SHOWN: Final = 5


@dataclass(frozen=True)
class BenchmarkImages:
    """A benchmark's image table and what loading it left out.

    Attributes
    ----------
    benchmark : str
        ``bbbc021``, ``coos7`` or ``cyclops``.
    table : polars.DataFrame
        ``channel_paths``, ``channels`` and ``Metadata_*`` columns, one row per image/cell.
    label_column : str
        The column holding the class (``Metadata_MoA`` or ``Metadata_Label``).
    dropped : tuple of str
        Samples dropped for missing files (``allow_missing``), as ``sample: file``.
    notes : tuple of str
        Other facts worth printing (classes removed, folders resolved …).
    inputs : tuple of Path
        Metadata files read (for provenance).
    """

    benchmark: str
    table: pl.DataFrame
    label_column: str
    dropped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()


def _listing(folder: Path, cache: dict[Path, frozenset[str]]) -> frozenset[str]:
    # One directory listing per folder instead of one stat per file: 40k files, 55 folders.
    if folder not in cache:
        cache[folder] = (
            frozenset(p.name for p in folder.iterdir()) if folder.is_dir() else frozenset()
        )
    return cache[folder]


def missing_files(root: Path, channel_paths: list[list[str]]) -> list[str | None]:
    """Return, per row, the first of its files absent under ``root`` (``None`` if complete)."""
    cache: dict[Path, frozenset[str]] = {}
    out: list[str | None] = []
    for paths in channel_paths:
        absent = None
        for rel in paths:
            full = root / rel
            if full.name not in _listing(full.parent, cache):
                absent = rel
                break
        out.append(absent)
    return out


def _drop_incomplete(
    table: pl.DataFrame,
    absent: list[str | None],
    sample: pl.Expr,
    what: str,
    root: Path,
    allow_missing: bool,
    context: str = "",
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Fail on (or, with ``allow_missing``, drop) rows whose ``absent`` entry is set."""
    flags = pl.Series("absent", absent, dtype=pl.String)
    bad = table.with_columns(flags).filter(pl.col("absent").is_not_null())
    if bad.height == 0:
        return table, ()
    listed = bad.select(pl.concat_str(sample, pl.lit(": "), "absent")).to_series().to_list()
    head = f"{context}{bad.height} of {table.height} {what} under {root} lack image files, e.g. "
    head += "; ".join(listed[:SHOWN])
    if not allow_missing:
        raise MetadataError(
            f"{head}. Download the missing files, or pass --allow-missing to drop these "
            f"{what} (the benchmark's n then shrinks and the summary lists them)."
        )
    log.warning("%s; dropped (--allow-missing)", head)
    kept = table.filter(flags.is_null())
    if kept.height == 0:
        raise MetadataError(f"{root}: none of the {what} has its image files; is it the raw root?")
    return kept, tuple(listed)


def _resolve_plate_folders(root: Path, folders: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map the image table's ``Week<k>/Week<k>_<plate>`` folders to the folders present.

    The BBBC021 zips unpack to ``Week<k>_<plate>/`` while the table says
    ``Week<k>/Week<k>_<plate>``; either layout under ``root`` is accepted. Returns the
    mapping and the folders found in neither layout.

    Raises
    ------
    MetadataError
        When no plate folder is found at all: ``root`` is then most likely the wrong folder.
    """
    found = {folder: plate_folder(root, folder) for folder in folders}
    mapping = {f: at for f, at in found.items() if at is not None and at != f}
    absent = [f for f, at in found.items() if at is None]
    if absent and len(absent) == len(folders):
        raise MetadataError(
            f"{root}: none of the {len(folders)} BBBC021 plate folders is there (looked for "
            f"{folders[0]}/ and {Path(folders[0]).name}/ …); --root must be the folder that "
            "holds the unpacked plate folders"
        )
    return mapping, absent


def load_bbbc021(
    root: Path,
    *,
    metadata: Path | None = None,
    annotated_only: bool = True,
    allow_missing: bool = False,
) -> BenchmarkImages:
    """Load BBBC021: ``BBBC021_v1_image.csv`` joined with ``BBBC021_v1_moa.csv``.

    Parameters
    ----------
    root : Path
        Folder holding the plate folders (``Week<k>/Week<k>_<plate>/`` as the image table
        names them, or ``Week<k>_<plate>/`` as the zips unpack).
    metadata : Path, optional
        Folder holding the two CSV files (``.gz`` allowed); ``root`` by default.
    annotated_only : bool
        Keep only the fields of the 103 MoA-annotated treatments and DMSO (default), or all
        13,200 fields (``Metadata_MoA`` null where unannotated).
    allow_missing : bool
        Drop fields with a missing image file instead of failing.

    Returns
    -------
    BenchmarkImages
        One row per field: ``Metadata_Plate, Metadata_Well, Metadata_Site, Metadata_Replicate,
        Metadata_ImageNumber, Metadata_Compound, Metadata_Concentration (float),
        Metadata_MoA, Metadata_Batch`` (the week). DMSO keeps the MoA file's ``DMSO``.
    """
    root = Path(root)
    adapter = get_adapter("bbbc021")
    found = adapter.metadata_paths(Path(metadata) if metadata else root)
    image_path = pick(found, "BBBC021_v1_image.csv", "bbbc021", root)
    moa_path = pick(found, "BBBC021_v1_moa.csv", "bbbc021", root)
    files, dirs = FILE_COLUMNS, PATH_COLUMNS
    plate, well = "Image_Metadata_Plate_DAPI", "Image_Metadata_Well_DAPI"
    table = read_annotated(image_path, moa_path, [plate, well, "ImageNumber"])
    if annotated_only:
        table = table.filter(pl.col("moa").is_not_null())
    if table.height == 0:
        raise MetadataError(f"{moa_path}: no field of {image_path} has an annotated treatment")

    folders = sorted(set().union(*(table[d].unique().to_list() for d in dirs)))
    mapping, absent_folders = _resolve_plate_folders(root, folders)
    notes = [f"plate folder(s) absent: {', '.join(absent_folders)}"] if absent_folders else []
    context = (
        f"{len(absent_folders)} of {len(folders)} plate folders are absent "
        f"(e.g. {', '.join(absent_folders[:SHOWN])}); "
        if absent_folders
        else ""
    )
    replicate = "Replicate" if "Replicate" in table.columns else None
    out = table.select(
        pl.concat_list(
            pl.col(d).replace(mapping) + "/" + pl.col(f) for d, f in zip(dirs, files, strict=True)
        ).alias("channel_paths"),
        pl.lit(list(BBBC021_CHANNELS), pl.List(pl.String)).alias("channels"),
        pl.col(plate).alias("Metadata_Plate"),
        pl.col(well).alias("Metadata_Well"),
        pl.col(files[0]).str.extract(r"_s(\d+)_").cast(pl.Int32).alias("Metadata_Site"),
        (pl.col(replicate) if replicate else pl.lit(None))
        .cast(pl.Int32, strict=False)
        .alias("Metadata_Replicate"),
        pl.col("ImageNumber").cast(pl.Int64, strict=False).alias("Metadata_ImageNumber"),
        pl.col(COMPOUND).alias("Metadata_Compound"),
        pl.col(CONCENTRATION).cast(pl.Float64, strict=False).alias("Metadata_Concentration"),
        pl.col("moa").alias("Metadata_MoA"),
        # The week is the batch of NSCB: plate names read Week<k>_<number>.
        pl.col(plate).str.extract(r"^([^_/]+)").alias("Metadata_Batch"),
    ).sort("Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_ImageNumber")

    absent = missing_files(root, out["channel_paths"].to_list())
    sample = pl.concat_str(["Metadata_Plate", "Metadata_Well"], separator=" ")
    sample = sample + " s" + pl.col("Metadata_Site").cast(pl.String)
    out, dropped = _drop_incomplete(out, absent, sample, "fields", root, allow_missing, context)
    return BenchmarkImages(
        "bbbc021", out, "Metadata_MoA", dropped, tuple(notes), (image_path, moa_path)
    )


def _cells(
    root: Path, name: str, allow_missing: bool
) -> tuple[pl.DataFrame, list[str], tuple[str, ...]]:
    """Pair a single-cell tree's channel files by stem; drop non-class folders.

    Returns the cells (``dir``, ``stem``, ``folder``, ``split``, ``channel_paths``,
    ``channels``, ``Metadata_Label``, ``Metadata_Cell``), notes, and the dropped cells.
    """
    adapter = get_adapter(name)
    if not isinstance(adapter, CellFolderAdapter):  # pragma: no cover - registry invariant
        raise TypeError(f"source {name!r} is not a single-cell folder dataset")
    layout = adapter.layout
    cells = pair_channels(root, adapter.image_files(root, (".tif", ".tiff")), layout)
    cells = cells.with_columns(
        pl.col("dir").str.extract(r"([^/]*)$").alias("folder"),
        pl.col("dir").str.extract(r"([^/]*)/[^/]*$").alias("split"),
    )
    if (cells["folder"] == "").any():
        raise MetadataError(
            f"{root}: {name} cell images must sit in class folders, <class>/<stem>_<channel>.tif; "
            "some lie directly in the root"
        )
    notes = []
    for state, why in layout.not_a_class.items():
        n = cells.filter(pl.col("folder") == state).height
        if n:
            notes.append(f"removed {n} cells of {state} ({why.split(': ', 1)[-1]})")
    cells = cells.filter(~pl.col("folder").is_in(list(layout.not_a_class)))
    for old, new in layout.rename.items():
        n = cells.filter(pl.col("folder") == old).height
        if n:
            notes.append(f"merged {n} cells of {old} into {new}")
    # Pairing is by stem, so a missing channel is a null here, never a shifted file.
    absent = cells.select(
        pl.when(pl.col("missing").is_not_null()).then("no " + pl.col("missing") + " file")
    ).to_series()
    sample = pl.col("dir") + "/" + pl.col("stem")
    cells, dropped = _drop_incomplete(cells, absent.to_list(), sample, "cells", root, allow_missing)
    cells = cells.with_columns(
        pl.concat_list(layout.channels).alias("channel_paths"),
        pl.lit(list(layout.channels), pl.List(pl.String)).alias("channels"),
        pl.col("folder").replace(layout.rename).alias("Metadata_Label"),
        pl.col("stem").alias("Metadata_Cell"),
    )
    return cells, notes, dropped


def load_coos7(root: Path, *, allow_missing: bool = False) -> BenchmarkImages:
    """Load COOS-7: ``<split>/<class>/<stem>_{protein,nucleus,mask}.tif``.

    Splits are ``train`` and ``test1``–``test4``; the mask is not a channel. Columns:
    ``Metadata_Label`` (the class folder), ``Metadata_Split``, ``Metadata_Cell`` (the stem),
    plus ``Metadata_Plate``/``Well``/``Field``/``Site`` where the HDF5 release holds per-cell
    identity datasets (:func:`~cytoimagenet.evaluation.coos7_release.release_identity`); the
    tree layout carries none.
    A ``root`` that holds the public HDF5 release instead (and no split folders) is unpacked
    once into ``root/coos7_tiff`` (:mod:`cytoimagenet.evaluation.coos7_release`); the paths
    stay relative to ``root``.
    """
    from cytoimagenet.evaluation.coos7_release import (
        find_release,
        release_identity,
        unpack_release,
    )

    root = Path(root)
    release = find_release(root)
    if release and not any((root / split).is_dir() for split in COOS7_SPLITS):
        tree = unpack_release(root)
        images = load_coos7(tree, allow_missing=allow_missing)
        prefix = f"{tree.relative_to(root).as_posix()}/"
        table = images.table.with_columns(
            pl.col("channel_paths").list.eval(pl.lit(prefix) + pl.element())
        )
        note = f"read the HDF5 release ({', '.join(p.name for p in release.values())})"
        identity = release_identity(release)
        if identity is not None:  # plate/well/field of each cell, where the files hold them
            table = table.join(identity, on="Metadata_Cell", how="left")
            note += f"; per-cell {', '.join(identity.columns[1:])} from the release"
        return replace(
            images, table=table, notes=(note, *images.notes), inputs=tuple(release.values())
        )
    cells, notes, dropped = _cells(root, "coos7", allow_missing)
    unknown = sorted(set(cells["split"].fill_null("<none>").to_list()) - set(COOS7_SPLITS))
    if unknown:
        raise MetadataError(
            f"{root}: COOS-7 cells must sit in <split>/<class>/ with split one of "
            f"{', '.join(COOS7_SPLITS)}; found split folder(s) {unknown}"
        )
    train = set(cells.filter(pl.col("split") == "train")["Metadata_Label"].to_list())
    unseen = sorted(set(cells["Metadata_Label"].to_list()) - train)
    if unseen:
        notes.append(f"classes with no training cells (never predictable): {unseen}")
    table = cells.select(
        "channel_paths",
        "channels",
        "Metadata_Label",
        pl.col("split").alias("Metadata_Split"),
        "Metadata_Cell",
    ).sort("Metadata_Split", "Metadata_Label", "Metadata_Cell")
    return BenchmarkImages("coos7", table, "Metadata_Label", dropped, tuple(notes))


def load_cyclops(root: Path, *, allow_missing: bool = False) -> BenchmarkImages:
    """Load CYCLoPs WT2: ``<CLASS>/<stem>_{gfp,rfp}.tif``.

    DEAD and GHOST cells are removed and SPINDLEPOLE is merged into SPINDLE (17 classes on
    the full data). Columns: ``Metadata_Label``, ``Metadata_Folder`` (the folder it came
    from), ``Metadata_Cell`` (the stem), and from stems that read
    ``<PROTEIN>_<image>_rfp_<cell>`` (:data:`CYCLOPS_STEM`) ``Metadata_Protein`` (the
    GFP-tagged strain) and ``Metadata_Field`` (``<PROTEIN>_<image>``, the field of view the
    cell was cropped from). The file names carry no plate or well; other stems leave the
    two columns empty, with a note.
    """
    root = Path(root)
    cells, notes, dropped = _cells(root, "cyclops", allow_missing)
    parsed = cells["stem"].str.extract_groups(CYCLOPS_STEM)
    protein, image = parsed.struct.field("protein"), parsed.struct.field("image")
    unparsed = int(protein.null_count())
    if unparsed:
        notes.append(
            f"{unparsed} of {cells.height} cell stems do not read <PROTEIN>_<image>_rfp_<cell>; "
            "their Metadata_Protein and Metadata_Field are empty"
        )
    table = cells.select(
        "channel_paths",
        "channels",
        "Metadata_Label",
        pl.col("folder").alias("Metadata_Folder"),
        "Metadata_Cell",
        protein.alias("Metadata_Protein"),
        (protein + "_" + image).alias("Metadata_Field"),
    ).sort("Metadata_Label", "Metadata_Folder", "Metadata_Cell")
    return BenchmarkImages("cyclops", table, "Metadata_Label", dropped, tuple(notes))
