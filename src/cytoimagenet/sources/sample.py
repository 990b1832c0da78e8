"""Adapter of the embedded sample source (BBBC image-CSV layout)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from cytoimagenet.io.tables import read_delimited, require_columns
from cytoimagenet.sample.generate import CHANNELS, PROTEINS
from cytoimagenet.sources.base import SourceAdapter, register


class SampleAdapter(SourceAdapter):
    """Read ``sample_image.csv``: one row per field, one file column per channel."""

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per field of the sample plate."""
        (path,) = self.metadata_paths(raw)
        table = read_delimited(path)
        files = [f"Image_FileName_{c}" for c in CHANNELS]
        folders = [f"Image_PathName_{c}" for c in CHANNELS]
        meta = ["Plate", "Well", "Site", "CellLine", "Protein", "Compound"]
        require_columns(table, files + folders + [f"Image_Metadata_{m}" for m in meta], path)
        t = table.rename({f"Image_Metadata_{m}": m.lower() for m in meta})
        channel_paths = pl.concat_list(
            pl.col(d) + pl.lit("/") + pl.col(f) for d, f in zip(folders, files, strict=True)
        )
        return t.select(
            (pl.col("plate") + "_" + pl.col("well") + "_s" + pl.col("site")).alias("key"),
            pl.col(folders[0]).alias("path"),
            pl.col(files[0]).str.replace(r"_w\d+\.tif$", "").alias("filename"),
            channel_paths.alias("channel_paths"),
            "plate",
            "well",
            "site",
            pl.col("cellline").alias("cell_type"),
            (pl.lit("nucleus|actin|") + pl.col("protein").replace(PROTEINS)).alias("cell_visible"),
            pl.col("compound"),
            pl.when(pl.col("compound").str.to_lowercase() == "dmso")
            .then(pl.lit("negative control"))
            .alias("control"),
        )


register(SampleAdapter("sample"))
