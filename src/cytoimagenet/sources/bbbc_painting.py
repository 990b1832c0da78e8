"""BBBC022 and BBBC025: CellProfiler per-image exports of Cell Painting screens.

One record per field; the five channel files sit in per-channel folders named by the
layout's ``folder`` template. The two differ only in that template, the plate and label
columns, so each is one :class:`PaintingLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import read_delimited, require_columns
from cytoimagenet.sources.base import SourceAdapter, register
from cytoimagenet.sources.bbbc import FIELD_RE, first_column


@dataclass(frozen=True)
class PaintingLayout:
    """Where a Cell Painting export's channel files live.

    Attributes
    ----------
    folder : str
        Folder of one channel of one plate, with ``{plate}``, ``{w}`` and ``{name}``.
    channels : tuple of (int, str)
        ``(w number, folder name)`` per catalog channel, in catalog order.
    plate : tuple of str
        Candidate plate columns, first present wins.
    labels : dict
        Label field → candidate columns (first present wins; ``compound`` falls back
        through all of its candidates row by row).
    required : tuple of str
        Label fields that must resolve to a column.
    """

    folder: str
    channels: tuple[tuple[int, str], ...]
    plate: tuple[str, ...]
    labels: dict[str, tuple[str, ...]]
    required: tuple[str, ...] = ()


ROLE = ("Image_Metadata_ASSAY_WELL_ROLE", "Image_Metadata_WellRole", "Image_Metadata_Type")
#: Well roles that are the screen's own samples, not controls.
TREATED = ["treated", "treatment", "compound", "sample", "experimental", "rnai"]


class CellPaintingAdapter(SourceAdapter):
    """One record per field of a CellProfiler per-image export (BBBC022, BBBC025).

    Channels are matched to file-name columns by the ``_w<n>`` in the file names, not by
    column names, which the two screens spell differently (``OrigER`` / ``ERSyto``).
    """

    def __init__(self, name: str, layout: PaintingLayout) -> None:
        super().__init__(name)
        self.layout = layout

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per field; controls from the well role are marked."""
        path = self.metadata_paths(raw)[0]
        table = read_delimited(path)
        lay = self.layout
        names = [c for c in table.columns if c.startswith("Image_FileName_")]
        by_w: dict[int, str] = {}
        for col in names:
            w = table[col].str.extract(FIELD_RE, 3).drop_nulls().mode()
            if w.len():
                by_w.setdefault(int(w[0]), col)
        missing = [f"w{w} ({n})" for w, n in lay.channels if w not in by_w]
        if missing:
            raise MetadataError(
                f"{path}: no Image_FileName_* column holds the {', '.join(missing)} files; "
                f"found {names}. Is this the file the source publishes, unmodified?"
            )
        plate = first_column(table, lay.plate)
        if plate is None:
            require_columns(table, [lay.plate[0]], path)
        cols = {f: [c for c in cands if c in table.columns] for f, cands in lay.labels.items()}
        for field in lay.required:
            if not cols[field]:
                require_columns(table, [lay.labels[field][0]], path)
        nucleus = by_w[min(by_w)]
        well = pl.col(nucleus).str.extract(FIELD_RE, 1).str.to_uppercase()
        site = pl.col(nucleus).str.extract(FIELD_RE, 2)
        if "Image_Metadata_Site" in table.columns:
            site = site.fill_null(pl.col("Image_Metadata_Site"))
        folder = [
            pl.format(lay.folder.format(plate="{}", w=w, name=n), pl.col(plate))
            for w, n in lay.channels
        ]
        labels = [
            pl.coalesce(*(pl.col(c) for c in cands)).alias(f) for f, cands in cols.items() if cands
        ]
        role = first_column(table, ROLE)
        role_expr = pl.col(role).str.to_lowercase() if role else pl.lit(None, pl.String)
        control = (
            pl.when(role_expr == "mock")
            .then(pl.lit("negative control"))
            .when(role_expr.is_in(TREATED))
            .then(None)
            .otherwise(role_expr)
        )
        extra = "__extra__" in table.columns
        out = table.select(
            pl.coalesce(
                pl.col(plate) + "_" + well + "_s" + site, pl.col(nucleus).str.replace(r"\.\w+$", "")
            ).alias("key"),
            folder[0].alias("path"),
            pl.col(nucleus).str.replace(r"_w\d.*$", "").alias("filename"),
            pl.concat_list(
                f + "/" + pl.col(by_w[w]) for f, (w, _) in zip(folder, lay.channels, strict=True)
            ).alias("channel_paths"),
            pl.col(plate).alias("plate"),
            well.alias("well"),
            site.alias("site"),
            *labels,
            control.alias("control"),
            # Rows with more fields than the header (unquoted commas) are misaligned.
            (
                pl.when(pl.col("__extra__").is_not_null()).then(
                    pl.lit(f"malformed row in {path.name}: more fields than the header")
                )
                if extra
                else pl.lit(None, pl.String)
            ).alias("exclude_reason"),
        )
        if "compound" in out.columns:
            # Mock wells carry no compound name: they are the DMSO solvent control.
            out = out.with_columns(
                pl.when(pl.col("control") == "negative control")
                .then(pl.col("compound").fill_null("DMSO"))
                .otherwise(pl.col("compound"))
            )
        return out


register(
    CellPaintingAdapter(
        "bbbc022",
        PaintingLayout(
            folder="BBBC022_v1_images_{plate}w{w}",
            channels=((1, "Hoechst"), (2, "ER"), (3, "Syto"), (4, "Ph_golgi"), (5, "Mito")),
            plate=("Image_Metadata_PlateID", "Image_Metadata_ASSAY_PLATE_BARCODE"),
            labels={
                "compound": (
                    "Image_Metadata_SOURCE_COMPOUND_NAME",
                    "Image_Metadata_BROAD_ID",
                )
            },
            required=("compound",),
        ),
    )
)
register(
    CellPaintingAdapter(
        "bbbc025",
        PaintingLayout(
            folder="{plate}_{name}",
            channels=(
                (2, "ERSyto"),
                (3, "ERSytoBleed"),
                (1, "Hoechst"),
                (5, "Mito"),
                (4, "PhGolgi"),
            ),
            plate=(
                "Image_Metadata_PlateID",
                "Image_Metadata_Plate",
                "Image_Metadata_ASSAY_PLATE_BARCODE",
            ),
            labels={
                "gene": (
                    "Image_Metadata_GeneSymbol",
                    "Image_Metadata_Gene_Symbol",
                    "Image_Metadata_Gene",
                    "Image_Metadata_gene",
                    "Image_Metadata_Symbol",
                ),
                "sirna": (
                    "Image_Metadata_siRNA",
                    "Image_Metadata_siRNA_ID",
                    "Image_Metadata_RNAi",
                    "Image_Metadata_BROAD_ID",
                ),
            },
            required=("gene",),
        ),
    )
)
