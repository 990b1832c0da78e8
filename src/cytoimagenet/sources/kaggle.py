"""Adapters of the Kaggle datasets: HPA 2018 and 2021, C-NMC leukemia, cell cycle.

**HPA** (``kag_hpa``, ``kag_hpa_single``). The competitions publish ``train.csv`` (2018:
``Id,Target``, space-separated class ids 0-27; 2021: ``ID,Label``, ``|``-separated 0-18)
and one PNG per channel, ``train/<id>_<colour>.png``. As the original did, every
channel *file* is its own record and channels are not merged: blue shows the nucleus,
red the microtubules, yellow the ER, and green the protein whose localisation the
classes name. Record key = ``<id>_<colour>``, so an image gives four records.

The class tables below are the competitions' published lists. :data:`HPA_RENAMES`
applies the original authors' vocabulary (their 2021 map), so both competitions speak
the same words: the fibrillar centre is merged into nucleoli, cytosol is ``cell body``,
``negative`` is no label. Multi-labels are then pruned as the original did
(:func:`prune_localisations`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import find_files, read_delimited, require_columns
from cytoimagenet.sources.base import SourceAdapter, register, relpath

#: HPA Image Classification (2018), class id → published name.
HPA_2018_CLASSES: Final = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Peroxisomes",
    "Endosomes",
    "Lysosomes",
    "Intermediate filaments",
    "Actin filaments",
    "Focal adhesion sites",
    "Microtubules",
    "Microtubule ends",
    "Cytokinetic bridge",
    "Mitotic spindle",
    "Microtubule organizing center",
    "Centrosome",
    "Lipid droplets",
    "Plasma membrane",
    "Cell junctions",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Cytoplasmic bodies",
    "Rods & rings",
)

#: HPA Single-Cell Classification (2021), class id → published name.
HPA_2021_CLASSES: Final = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Intermediate filaments",
    "Actin filaments",
    "Microtubules",
    "Mitotic spindle",
    "Centrosome",
    "Plasma membrane",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Vesicles and punctate cytosolic patterns",
    "Negative",
)

#: Published name (lower-case) → the original's label; ``None`` drops the class.
HPA_RENAMES: Final[dict[str, str | None]] = {
    "nucleoli fibrillar center": "nucleoli",
    "endoplasmic reticulum": "er",
    "golgi apparatus": "golgi",
    "actin filaments": "actin",
    "plasma membrane": "cell membrane",
    "cytosol": "cell body",
    "vesicles and punctate cytosolic patterns": "vesicles",
    "negative": None,
}

#: Common localisations dropped from a multi-label, first to last, while more than one
#: label is left (the original's rule, so rarer localisations survive).
HPA_PRUNE_ORDER: Final = ("nucleus", "er", "golgi", "nucleoli", "mitochondria", "actin")

#: Channel colour → (what it shows, channel name); green's label comes from the classes.
HPA_COLOURS: Final[dict[str, tuple[str | None, str]]] = {
    "green": (None, "f_protein"),
    "red": ("microtubules", "f_microtubules"),
    "blue": ("nucleus", "f_nucleus"),
    "yellow": ("er", "f_er"),
}


def prune_localisations(labels: list[str]) -> list[str]:
    """Prune a multi-label the way the original did.

    While more than one label is left, remove the first of :data:`HPA_PRUNE_ORDER`
    present. The result is every uncommon label when there is one, else the last common
    label in that order.

    Examples
    --------
    >>> prune_localisations(["er", "golgi", "vesicles"])
    ['vesicles']
    >>> prune_localisations(["er", "golgi"])
    ['golgi']
    """
    kept = list(dict.fromkeys(labels))
    for common in HPA_PRUNE_ORDER:
        if len(kept) > 1 and common in kept:
            kept.remove(common)
    return kept


def _folder(path: Path, raw: Path) -> str:
    rel = relpath(path.parent, raw)
    return "" if rel == "." else f"{rel}/"


class HpaAdapter(SourceAdapter):
    """One record per channel file of each image listed in an HPA ``train.csv``.

    Parameters
    ----------
    name : str
        Catalog name.
    id_column, label_column : str
        The image id and class-id columns, as the competition names them.
    separator : str
        Separator of class ids within a cell.
    classes : tuple of str
        Published class names by id.
    """

    def __init__(
        self, name: str, id_column: str, label_column: str, separator: str, classes: tuple[str, ...]
    ) -> None:
        super().__init__(name)
        self.id_column = id_column
        self.label_column = label_column
        self.separator = separator
        self.classes = classes

    def localisations(self, value: str | None, path: Path) -> list[str]:
        """Map one raw class-id cell to its pruned localisation labels."""
        labels: list[str] = []
        for token in (value or "").split(self.separator):
            if not token.strip():
                continue
            if not token.strip().isdigit() or int(token) >= len(self.classes):
                raise MetadataError(
                    f"{path}: {self.label_column} value {value!r} holds {token!r}; expected "
                    f"class ids 0-{len(self.classes) - 1} separated by {self.separator!r}"
                )
            name = self.classes[int(token)].lower()
            label = HPA_RENAMES.get(name, name)
            if label is not None:
                labels.append(label)
        return prune_localisations(labels)

    def read(self, raw: Path) -> pl.DataFrame:
        """Return four records (green, red, blue, yellow) per listed image."""
        columns = [self.id_column, self.label_column]
        table, path = self.metadata_table(raw, columns, hint="keep one train.csv")
        # Few distinct label cells (hundreds), so map those, not the rows.
        cells = table[self.label_column].unique()
        mapping = pl.DataFrame(
            {
                self.label_column: cells,
                "localisation": [self.localisations(c, path) for c in cells.to_list()],
            },
            schema={self.label_column: pl.String, "localisation": pl.List(pl.String)},
        )
        colours = pl.DataFrame(
            {
                "colour": list(HPA_COLOURS),
                "shown": [v[0] for v in HPA_COLOURS.values()],
                "channel": [v[1] for v in HPA_COLOURS.values()],
            }
        )
        folder = f"{_folder(path, raw)}train"
        stem = pl.col(self.id_column) + "_" + pl.col("colour")
        shown = pl.concat_list(pl.col("shown"))
        return (
            table.join(mapping, on=self.label_column, how="left", nulls_equal=True)
            .join(colours, how="cross")
            .select(
                stem.alias("key"),
                pl.lit(folder).alias("path"),
                (stem + ".png").alias("filename"),
                pl.concat_list(pl.lit(folder + "/") + stem + ".png").alias("channel_paths"),
                pl.when(pl.col("colour") == "green")
                .then(pl.col("localisation"))
                .otherwise(shown)
                .alias("cell_visible"),
                pl.concat_list(pl.col("channel")).alias("channels"),
            )
        )


#: C-NMC class folder → phenotype. The original wrote the normal cells ("hem", healthy
#: donors' B-lymphoid precursors) as 'wildtype', a genotype word; a healthy cell has no
#: disease phenotype, so it carries none and stays a 'white blood cell' (catalog).
LEUKEMIA_FOLDERS: Final[dict[str, str | None]] = {"all": "leukemia", "hem": None}
#: C-NMC validation label (1 = ALL, 0 = normal) → phenotype.
LEUKEMIA_LABELS: Final[dict[str, str | None]] = {"1": "leukemia", "0": None}
#: Folder of the validation images, beside the labels CSV.
LEUKEMIA_VALIDATION_DIR: Final = "C-NMC_test_prelim_phase_data"
_LEUKEMIA_LABEL_COLUMNS: Final = ("new_names", "labels")


class LeukemiaAdapter(SourceAdapter):
    """C-NMC 2019 (Kaggle "Leukemia Classification").

    Layout: ``training_data/fold_<k>/{all,hem}/*.bmp`` (labelled by folder),
    ``validation_data/C-NMC_test_prelim_phase_data/<n>.bmp`` with
    ``C-NMC_test_prelim_phase_data_labels.csv`` (``Patient_ID,new_names,labels``), and the
    unlabelled ``testing_data/C-NMC_test_final_phase_data/<n>.bmp``. With images present
    every image is a record; with only the labels CSV, its validation rows are.

    Keys: ``<fold>_<stem>`` for training images, ``val_<n>`` and ``test_<n>`` for the
    numbered validation and test images (their numbers overlap).
    """

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per C-NMC image (or per validation label row)."""
        csvs = find_files(raw, self.info.metadata_files)
        if len(csvs) > 1:
            raise MetadataError(
                f"several C-NMC validation label files found ({', '.join(map(str, csvs))}); "
                "keep one"
            )
        images = sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() == ".bmp")
        if not images:
            # Metadata-only: the labels CSV lists the validation images beside it.
            path = self.metadata_paths(raw)[0]
            labels = self._labels(path)
            folder = f"{_folder(path, raw)}{LEUKEMIA_VALIDATION_DIR}/"
            files = labels.select((pl.lit(folder) + pl.col("new_names")).alias("rel"))
            return self._records(files, labels)
        files = pl.DataFrame({"rel": [relpath(p, raw) for p in images]}, schema={"rel": pl.String})
        return self._records(files, self._labels(csvs[0]) if csvs else None)

    def _labels(self, path: Path) -> pl.DataFrame:
        table = read_delimited(path)
        require_columns(table, _LEUKEMIA_LABEL_COLUMNS, path)
        return table.select(
            pl.col("new_names"),
            pl.col("labels").replace_strict(LEUKEMIA_LABELS, default=None).alias("_val_label"),
        )

    def _records(self, files: pl.DataFrame, labels: pl.DataFrame | None) -> pl.DataFrame:
        parts = pl.col("rel").str.split("/")
        parent = parts.list.get(-2, null_on_oob=True).fill_null("")
        grand = parts.list.get(-3, null_on_oob=True).fill_null("")
        name = parts.list.last()
        stem = name.str.replace(r"\.[^.]+$", "")
        kind = parent.str.to_lowercase()
        split = (
            pl.when(kind.is_in(list(LEUKEMIA_FOLDERS)))
            .then(grand)
            .when(kind.str.contains("prelim"))
            .then(pl.lit("val"))
            .when(kind.str.contains("final"))
            .then(pl.lit("test"))
            .otherwise(parent)
        )
        frame = files.with_columns(
            name.alias("filename"),
            parts.list.slice(0, parts.list.len() - 1).list.join("/").alias("path"),
            (split + "_" + stem).str.replace(r"^_", "").alias("key"),
            kind.replace_strict(LEUKEMIA_FOLDERS, default=None).alias("phenotype"),
            (split == "val").alias("_val"),
        )
        if labels is not None:
            frame = frame.join(
                labels, left_on="filename", right_on="new_names", how="left"
            ).with_columns(
                pl.when(pl.col("_val"))
                .then(pl.col("_val_label"))
                .otherwise(pl.col("phenotype"))
                .alias("phenotype")
            )
        return frame.select(
            "key", "path", "filename", pl.concat_list("rel").alias("channel_paths"), "phenotype"
        ).sort("key")


#: Kaggle cell-cycle folders → phenotype (the original: "interphase" if in the path).
CELL_CYCLE_PHASES: Final = ("interphase", "mitosis")


class CellCycleAdapter(SourceAdapter):
    """Cell Cycle Experiments: JPEGs in one folder per phase; labels come from the folder."""

    needs_images = True

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per image, its phase from the nearest phase folder."""
        rels = [relpath(p, raw) for p in self.image_files(raw, (".jpg", ".jpeg"))]
        pattern = r"(?i)(?:^|/)(" + "|".join(map(re.escape, CELL_CYCLE_PHASES)) + r")/[^/]*$"
        frame = pl.DataFrame({"rel": rels}, schema={"rel": pl.String})
        parts = pl.col("rel").str.split("/")
        stem = parts.list.last().str.replace(r"\.[^.]+$", "")
        phase = pl.col("rel").str.extract(pattern, 1).str.to_lowercase()
        return frame.select(
            pl.when(phase.is_not_null())
            .then(phase + "_" + stem)
            .otherwise(pl.col("rel").str.replace(r"\.[^.]+$", "").str.replace_all("/", "_"))
            .alias("key"),
            parts.list.slice(0, parts.list.len() - 1).list.join("/").alias("path"),
            parts.list.last().alias("filename"),
            pl.concat_list("rel").alias("channel_paths"),
            phase.alias("phenotype"),
        )


register(HpaAdapter("kag_hpa", "Id", "Target", " ", HPA_2018_CLASSES))
register(HpaAdapter("kag_hpa_single", "ID", "Label", "|", HPA_2021_CLASSES))
register(LeukemiaAdapter("kag_leukemia"))
register(CellCycleAdapter("kag_cell_cycle"))
