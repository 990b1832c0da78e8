"""COOS-7's public release (one HDF5 file per split) unpacked into the tree the loader reads.

The release holds ``COOS7_v1.1_training.hdf5`` and ``COOS7_v1.1_test1.hdf5`` to
``…_test4.hdf5``. Each has a ``data`` array of shape ``(cells, channels, 64, 64)`` and a
``labels`` array of class codes. :func:`unpack_release` writes every cell as
``<split>/<class>/<split>_<index>_{protein,nucleus}.tif`` (full bit depth) so that
:func:`cytoimagenet.evaluation.loaders.load_coos7` and ``extract`` read the release exactly
as they read the curated tree the original evaluation used.

Two things are taken from the paper rather than from the files: the class name of each code
(:data:`COOS7_CLASSES`, in the order of the paper's class table) and the channel order
(protein, then nucleus). Neither can change a kNN accuracy: the classes are compared for
equality only, and the same channel order is used for every split. They only name things.

Unpacking is resumable: files are written under temporary names and renamed, existing cells
are skipped, and a split whose ``.<split>.done`` marker exists is not opened again.

Per-cell identity (plate, well, field) is read by :func:`release_identity` from any 1-D
dataset with one value per cell named like ``plate``, ``plateIDs``, ``well_id``, ``field`` or
``site``; which of them the public files hold was not checked here (no network), so none is
required and a file without them simply gives none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.atomic import atomic_path

#: Class names by code, in the order of the COOS paper's class table (see the module docstring).
COOS7_CLASSES: Final = (
    "endoplasmic_reticulum",
    "inner_mitochondrial_membrane",
    "golgi",
    "peroxisomes",
    "early_endosome",
    "cytosol",
    "nuclear_envelope",
)
#: Channel names of ``data[:, 0]`` and ``data[:, 1]``; a third (mask) channel is not written.
CHANNELS: Final = ("protein", "nucleus")
#: Folder, under the raw root, that receives the unpacked tree.
UNPACKED: Final = "coos7_tiff"

_RELEASE = re.compile(r"(?i)^coos7.*?_(training|train|test[1-4])\.(hdf5|h5)$")
_IDENTITY = re.compile(r"(?i)^(plate|well|field|site)(?:_?ids?|s)?$")
_BLOCK = 4096


def find_release(root: Path) -> dict[str, Path]:
    """Return ``{split: file}`` for the COOS-7 HDF5 files directly under ``root``.

    Splits are named as the loader names them: ``train``, ``test1`` … ``test4``.

    Raises
    ------
    MetadataError
        When two files claim one split.
    """
    found: dict[str, Path] = {}
    for path in sorted(Path(root).glob("*")):
        match = _RELEASE.match(path.name)
        if not match or not path.is_file():
            continue
        split = "train" if match[1].lower().startswith("train") else match[1].lower()
        if split in found:
            raise MetadataError(
                f"{root}: both {found[split].name} and {path.name} hold COOS-7 split "
                f"{split!r}; keep one"
            )
        found[split] = path
    return found


def _blocks(path: Path) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(first index, data block, label codes)`` of one release file, checked."""
    try:
        import h5py
    except ImportError as exc:
        raise ImportError(
            "reading COOS-7's HDF5 release needs h5py: pip install 'cytoimagenet[ml]'"
        ) from exc
    with h5py.File(path, "r") as handle:
        if "data" not in handle or "labels" not in handle:
            raise MetadataError(
                f"{path}: a COOS-7 release file holds 'data' and 'labels'; found {sorted(handle)}"
            )
        data, labels = handle["data"], handle["labels"]
        n = data.shape[0]
        if data.ndim != 4 or data.shape[1] < len(CHANNELS) or labels.shape[0] != n:
            raise MetadataError(
                f"{path}: expected data (cells, channels ≥ 2, height, width) and one label "
                f"per cell; found data {data.shape} and labels {labels.shape}"
            )
        for start in range(0, n, _BLOCK):
            codes = np.asarray(labels[start : start + _BLOCK]).reshape(-1)
            as_int = codes.astype(np.int64)
            bad = (as_int != codes) | (as_int < 0) | (as_int >= len(COOS7_CLASSES))
            if bad.any():
                first = int(np.argmax(bad))
                raise MetadataError(
                    f"{path}: label {codes[first].item()!r} of cell {start + first} is not a "
                    f"class code 0–{len(COOS7_CLASSES) - 1}"
                )
            yield start, np.asarray(data[start : start + _BLOCK]), as_int


def _stem(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def release_identity(release: dict[str, Path]) -> pl.DataFrame | None:
    """Return the per-cell plate/well/field/site of the release files, or ``None``.

    Parameters
    ----------
    release : dict
        ``{split: file}`` as :func:`find_release` returns it.

    Returns
    -------
    polars.DataFrame or None
        ``Metadata_Cell`` (the unpacked stem, ``<split>_<index>``) and one
        ``Metadata_Plate``/``Metadata_Well``/``Metadata_Field``/``Metadata_Site`` column per
        identity dataset found (text; null for a split whose file lacks it); ``None`` when no
        file holds any.
    """
    try:
        import h5py
    except ImportError as exc:
        raise ImportError(
            "reading COOS-7's HDF5 release needs h5py: pip install 'cytoimagenet[ml]'"
        ) from exc

    frames = []
    for split, path in release.items():
        with h5py.File(path, "r") as handle:
            n = handle["labels"].shape[0] if "labels" in handle else None
            columns: dict[str, list[str]] = {}
            for key in handle:
                match = _IDENTITY.match(key)
                item = handle[key]
                if match and isinstance(item, h5py.Dataset) and n and item.shape in ((n,), (n, 1)):
                    values = np.asarray(item[()]).reshape(-1)
                    name = f"Metadata_{match[1].capitalize()}"
                    columns[name] = [
                        v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()
                    ]
        if columns:
            stems = [_stem(split, i) for i in range(n or 0)]
            frames.append(pl.DataFrame({"Metadata_Cell": stems, **columns}))
    return pl.concat(frames, how="diagonal") if frames else None


def _write_split(split: str, path: Path, out: Path, progress: bool) -> int:
    import tifffile
    from tqdm.auto import tqdm

    written = 0
    with tqdm(desc=f"unpacking COOS-7 {split}", unit="cell", disable=not progress) as bar:
        for start, block, codes in _blocks(path):
            for offset, (cell, code) in enumerate(zip(block, codes, strict=True)):
                folder = out / split / COOS7_CLASSES[code]
                stem = _stem(split, start + offset)
                for plane, channel in zip(cell, CHANNELS, strict=False):
                    target = folder / f"{stem}_{channel}.tif"
                    if not target.exists():
                        with atomic_path(target) as tmp:
                            tifffile.imwrite(tmp, plane)
                written += 1
            bar.update(len(codes))
    return written


def unpack_release(root: Path, out: Path | None = None, *, progress: bool = True) -> Path:
    """Unpack every release file under ``root`` into ``out`` (``root/coos7_tiff``); return it.

    Raises
    ------
    MetadataError
        When ``root`` holds no release file, or a file is not laid out as the release is.
    """
    root = Path(root)
    release = find_release(root)
    if not release:
        raise MetadataError(
            f"{root}: no COOS-7 release file (COOS7_v1.1_training.hdf5, …_test1.hdf5 …)"
        )
    out = Path(out) if out is not None else root / UNPACKED
    for split, path in release.items():
        marker = out / f".{split}.done"
        if marker.is_file():
            continue
        cells = _write_split(split, path, out, progress)
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"source": path.name, "cells": cells}) + "\n")
    return out
