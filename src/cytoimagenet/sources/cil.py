"""Adapter of the Cell Image Library Kinome Atlas (``cil_kinome``).

The CIL serves each Kinome Atlas image as ``<cil id>.zip`` holding ``<cil id>.tif`` (a
two-channel confocal image of HeLa cells: nucleus and a tagged kinase). The kinase group of
each image is not in a machine-readable CIL table; the original authors compiled
``cil_kinome_metadata.csv`` (``file_name`` = ``<cil id>.zip``, ``kinase`` = group such as
``AGC``, ``TK``, ``Atypical``), which this adapter reads for its file list. The original
made the group the visible label ``<group> kinase``; but a kinase *group* is a gene
family, neither a structure nor a protein one can see (the tagged kinase of each image
is not named), so it is dropped: the images carry the catalog's organism and cell type
only. ``KinomeAdapter.group_as_cell_visible = True`` restores the original's labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources.base import SourceAdapter, register, relpath

KINOME_COLUMNS: Final = ("file_name", "kinase")
#: Appended to the kinase group to name what the protein channel shows.
KINASE_SUFFIX: Final = " kinase"


class KinomeAdapter(SourceAdapter):
    """One record per CIL image listed in ``cil_kinome_metadata.csv``.

    The image is ``<id>.tif`` beside the table once ``<id>.zip`` is unpacked; key = CIL id.
    """

    group_as_cell_visible: bool = False

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per listed image."""
        table, path = self.metadata_table(raw, KINOME_COLUMNS)
        stem = pl.col("file_name").str.replace(r"(?i)\.(zip|tiff?)$", "")
        bad = table.filter(~stem.str.contains(r"^\d+$") | pl.col("kinase").is_null())
        if bad.height:
            raise MetadataError(
                f"{path}: {bad.height} row(s) without a CIL id file name (<digits>.zip) or "
                f"kinase group, e.g. {bad.row(0)}"
            )
        rel = relpath(path.parent, raw)
        folder = "" if rel == "." else rel
        prefix = f"{folder}/" if folder else ""
        group = pl.col("kinase") + KINASE_SUFFIX if self.group_as_cell_visible else pl.lit(None)
        return table.select(
            stem.alias("key"),
            pl.lit(folder).alias("path"),
            (stem + ".tif").alias("filename"),
            pl.concat_list(pl.lit(prefix) + stem + ".tif").alias("channel_paths"),
            group.cast(pl.String).alias("cell_visible"),
        )


register(KinomeAdapter("cil_kinome"))
