"""Adapters of the evaluation-only datasets COOS-7 and CYCLoPs (never pretraining data).

Both are folders of single-cell crops whose class is the folder name, one file per
channel: ``<stem>_<channel>.tif``. Channel files are paired by *stem* (never by list
position, which shifted labels in the original CYCLoPs evaluation); a cell missing one
of its channels is kept with the files it has and an ``exclude_reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources.base import SourceAdapter, register, relpath


@dataclass(frozen=True)
class CellFolderLayout:
    """How a single-cell folder dataset is laid out.

    Attributes
    ----------
    channels : tuple of str
        File-name suffixes of the channels, in catalog channel order.
    ignored : tuple of str
        Suffixes of files that belong to a cell but are not channels (masks).
    split_level : bool
        Whether the class folder sits inside a split folder (``<split>/<class>/…``).
    rename : dict
        Class folder name → class label, for merged classes.
    not_a_class : dict
        Class folder name → why its cells must never be labelled.
    """

    channels: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    split_level: bool = False
    rename: dict[str, str] = field(default_factory=dict)
    not_a_class: dict[str, str] = field(default_factory=dict)


def pair_channels(raw: Path, files: list[Path], layout: CellFolderLayout) -> pl.DataFrame:
    """Group channel files into cells by folder and stem.

    Returns
    -------
    polars.DataFrame
        ``dir``, ``stem``, ``missing`` (channels absent, or null) and one column per
        channel holding the relative file path (null if absent).
    """
    suffixes = "|".join((*layout.channels, *layout.ignored))
    frame = pl.DataFrame({"file": [relpath(f, raw) for f in files]}, schema={"file": pl.String})
    parsed = frame["file"].str.extract_groups(rf"^(?:(.*)/)?(.+)_({suffixes})\.tiff?$")
    frame = (
        frame.with_columns(parsed.struct.rename_fields(["dir", "stem", "chan"]).alias("m"))
        .unnest("m")
        .filter(pl.col("chan").is_in(list(layout.channels)))
        .with_columns(pl.col("dir").fill_null(""))
    )
    if frame.height == 0:
        raise MetadataError(
            f"{raw}: no <stem>_{{{','.join(layout.channels)}}}.tif cell images found"
        )
    cells = frame.pivot("chan", index=["dir", "stem"], values="file", aggregate_function="first")
    for chan in layout.channels:
        if chan not in cells.columns:
            cells = cells.with_columns(pl.lit(None, pl.String).alias(chan))
    absent = pl.concat_list(
        pl.when(pl.col(c).is_null()).then(pl.lit(c)).otherwise(None) for c in layout.channels
    ).list.drop_nulls()
    return cells.with_columns(
        pl.when(absent.list.len() > 0).then(absent.list.join(", ")).alias("missing")
    )


class CellFolderAdapter(SourceAdapter):
    """One record per cell of a ``[<split>/]<class>/<stem>_<channel>.tif`` tree."""

    needs_images = True

    def __init__(self, name: str, layout: CellFolderLayout) -> None:
        super().__init__(name)
        self.layout = layout

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per cell; the class label comes from the folder name."""
        lay = self.layout
        cells = pair_channels(raw, self.image_files(raw, (".tif", ".tiff")), lay)
        folder = pl.col("dir").str.extract(r"([^/]*)$")
        split = pl.col("dir").str.extract(r"([^/]*)/[^/]*$") if lay.split_level else None
        label = folder.replace(lay.rename)
        # DEAD/GHOST-like folders are states, not localisations: phenotype, not cell_visible.
        is_class = ~folder.is_in(list(lay.not_a_class))
        reason = (
            pl.when(pl.col("missing").is_not_null())
            .then("missing channel file(s): " + pl.col("missing"))
            .when(~is_class)
            .then(folder.replace(lay.not_a_class))
        )
        key_parts = [split, folder, pl.col("stem")] if split is not None else [folder, "stem"]
        return cells.select(
            pl.concat_str(key_parts, separator="/").alias("key"),
            pl.col("dir").alias("path"),
            pl.col("stem").alias("filename"),
            pl.concat_list(lay.channels).list.drop_nulls().alias("channel_paths"),
            (split if split is not None else pl.lit(None, pl.String)).alias("plate"),
            pl.when(is_class).then(label.str.replace_all("_", " ")).alias("cell_visible"),
            pl.when(~is_class).then(folder).alias("phenotype"),
            reason.alias("exclude_reason"),
        ).sort("key")


register(
    CellFolderAdapter(
        "coos7",
        CellFolderLayout(channels=("protein", "nucleus"), ignored=("mask",), split_level=True),
    )
)
register(
    CellFolderAdapter(
        "cyclops",
        CellFolderLayout(
            channels=("gfp", "rfp"),
            rename={"SPINDLEPOLE": "SPINDLE"},
            not_a_class={
                "DEAD": "CYCLoPs class DEAD: a dead cell, not a localisation",
                "GHOST": "CYCLoPs class GHOST: no cell visible, not a localisation",
            },
        ),
    )
)
