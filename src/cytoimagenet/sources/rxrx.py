"""Adapters of the Recursion RxRx datasets (RxRx1, RxRx2, RxRx19a, RxRx19b).

Every release publishes a ``metadata.csv`` with one row per *site* (``site_id, well_id,
cell_type, experiment, plate, well, site`` and dataset-specific label columns) and
images at ``images/<experiment>/Plate<plate>/<well>_s<site>_w<n>.png``, one file per
channel. RxRx1 also circulates in its Kaggle competition form (``train.csv``,
``test.csv``, ``train_controls.csv``, ``test_controls.csv``): one row per *well*, sites 1
and 2 implicit, the siRNA as an integer id (0-1138; 1108-1138 are controls, 1138 the
negative control), no ``sirna`` for test treatment wells, and the cell type only as the
prefix of ``experiment``. Both forms give the same keys (the release's ``site_id``:
``<experiment>_<plate>_<well>_<site>``), so a table built from either lines up.

``plate`` in the files is the plate's number *within its experiment* (1-4 in RxRx1), so
records write it ``<experiment>_<plate>`` (``HEPG2-01_1``): one id per physical plate.
RxRx2/19a/19b publish the dose in ``treatment_conc``, in the unit their READMEs state
(RxRx2 mg/mL, RxRx19a/b µM); RxRx1 has no dose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.io.tables import read_delimited, require_columns
from cytoimagenet.sources.base import SourceAdapter, only_one, register, relpath

#: Record columns every RxRx adapter returns, besides its labels and control.
RECORD_COLUMNS: Final = (
    "key",
    "path",
    "filename",
    "channel_paths",
    "plate",
    "well",
    "site",
    "organism",
    "cell_type",
)

#: Columns every release ``metadata.csv`` has (the RxRx READMEs' schema tables).
SITE_COLUMNS: Final = ("cell_type", "experiment", "plate", "well", "site")

#: Kaggle RxRx1 files and the columns each must have; sites 1 and 2 are implicit.
KAGGLE_FILES: Final[dict[str, tuple[str, ...]]] = {
    "train.csv": ("experiment", "plate", "well", "sirna"),
    "test.csv": ("experiment", "plate", "well"),
    "train_controls.csv": ("experiment", "plate", "well", "sirna", "well_type"),
    "test_controls.csv": ("experiment", "plate", "well", "sirna", "well_type"),
}
KAGGLE_SITES: Final = ("1", "2")

#: RxRx19a/b: what an untreated well is, by its (lower-cased) ``disease_condition``. The
#: RxRx19 preprints use mock and UV-inactivated virus (19a) and the healthy cocktail (19b)
#: as the negative reference and the disease model without drug as the positive one.
RXRX19A_UNTREATED: Final = {
    "mock": "negative control",
    "uv inactivated sars-cov-2": "negative control",
    "active sars-cov-2": "positive control",
}
RXRX19B_UNTREATED: Final = {
    "healthy": "negative control",
    "storm-severe": "positive control",
}
#: The dose column of RxRx2/19a/19b (its unit is in each release's README).
DOSE_COLUMN: Final = "treatment_conc"

#: Wells with neither compound nor disease condition.
UNTREATED: Final = "untreated"

#: Cell lines that are not human (RxRx19a's Vero cells come from an African green monkey).
NON_HUMAN_CELLS: Final = {"vero": "african green monkey"}


def _folder(path: Path, raw: Path) -> str:
    """Return the folder of ``path`` relative to ``raw`` as a prefix ending in ``/``."""
    rel = relpath(path.parent, raw)
    return "" if rel == "." else f"{rel}/"


def _site_records(frame: pl.DataFrame, n_channels: int) -> pl.DataFrame:
    """Add key, path, filename, channel_paths from ``experiment/plate/well/site``.

    ``frame`` needs a ``_folder`` column: the metadata file's folder (prefix form), under
    which the release keeps ``images/``.
    """
    stem = pl.col("well") + "_s" + pl.col("site")
    folder = pl.col("_folder") + "images/" + pl.col("experiment") + "/Plate" + pl.col("plate")
    return frame.with_columns(
        pl.concat_str("experiment", "plate", "well", "site", separator="_").alias("key"),
        folder.alias("path"),
        stem.alias("filename"),
    ).with_columns(
        pl.concat_list(
            pl.col("path") + "/" + pl.col("filename") + f"_w{n}.png"
            for n in range(1, n_channels + 1)
        ).alias("channel_paths"),
        pl.col("cell_type")
        .str.to_lowercase()
        .replace_strict(NON_HUMAN_CELLS, default=None, return_dtype=pl.String)
        .alias("organism"),
        # Plate numbers restart in every experiment: the experiment makes them unique.
        pl.concat_str("experiment", "plate", separator="_").alias("plate"),
    )


def _read_release(path: Path, raw: Path, needed: tuple[str, ...]) -> pl.DataFrame:
    table = read_delimited(path)
    require_columns(table, (*SITE_COLUMNS, *needed), path)
    return table.with_columns(pl.lit(_folder(path, raw)).alias("_folder"))


class RxRxRelease(SourceAdapter):
    """Read a release ``metadata.csv``: one row per site, labels from named columns.

    Parameters
    ----------
    name : str
        Catalog name.
    n_channels : int
        Channel files per site (``_w1`` … ``_w<n>``).
    labels : mapping of str to str
        Metadata column → record label field (e.g. ``treatment`` → ``compound``).
    control : callable returning polars.Expr, optional
        Builds the raw ``control`` annotation from the metadata columns.
    dose_unit : str, optional
        Unit of ``treatment_conc`` as the release's README states it; ``None`` when the
        release publishes no dose.
    """

    def __init__(
        self,
        name: str,
        n_channels: int,
        labels: Mapping[str, str],
        control: Callable[[], pl.Expr] | None = None,
        dose_unit: str | None = None,
    ) -> None:
        super().__init__(name)
        self.n_channels = n_channels
        self.labels = dict(labels)
        self.control = control
        self.dose_unit = dose_unit

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per site listed in the release's ``metadata.csv``."""
        path = only_one(self.metadata_paths(raw), self.name)
        table = _read_release(path, raw, tuple(self.labels))
        control = self.control() if self.control else pl.lit(None, dtype=pl.String)
        table = table.with_columns(control.alias("control"))
        labels = (pl.col(column).alias(field) for column, field in self.labels.items())
        dose = [pl.lit(None, dtype=pl.String)] * 2
        if self.dose_unit and DOSE_COLUMN in table.columns:
            dose = [pl.col(DOSE_COLUMN), pl.lit(self.dose_unit)]
        return _site_records(table, self.n_channels).select(
            *RECORD_COLUMNS,
            "control",
            *labels,
            dose[0].alias("concentration"),
            dose[1].alias("concentration_unit"),
        )


class RxRx1(SourceAdapter):
    """RxRx1: the release ``metadata.csv`` if present, else the Kaggle competition files.

    The release form wins when both are there: it names siRNAs by their ThermoFisher id
    (``s35651``; ``EMPTY`` for the negative control) and lists every site. The Kaggle
    form only has the integer id, which is kept as the siRNA value.
    """

    n_channels: int = 6

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per RxRx1 site."""
        found = self.metadata_paths(raw)
        release = [p for p in found if p.name == "metadata.csv"]
        if release:
            table = self._release(only_one(release, self.name), raw)
        else:
            table = self._kaggle([p for p in found if p.name in KAGGLE_FILES], raw)
        control = pl.when(pl.col("well_type").str.to_lowercase() != "treatment").then(
            pl.col("well_type")
        )
        records = _site_records(table, self.n_channels)
        return records.select(*RECORD_COLUMNS, "sirna", control.alias("control"))

    def _release(self, path: Path, raw: Path) -> pl.DataFrame:
        table = _read_release(path, raw, ("well_type", "sirna", "sirna_id"))
        return table.with_columns(pl.coalesce("sirna", "sirna_id").alias("sirna"))

    def _kaggle(self, paths: list[Path], raw: Path) -> pl.DataFrame:
        frames = []
        for path in paths:
            table = read_delimited(path)
            require_columns(table, KAGGLE_FILES[path.name], path)
            frames.append(table.with_columns(pl.lit(_folder(path, raw)).alias("_folder")))
        wells = pl.concat(frames, how="diagonal_relaxed")
        for column in ("sirna", "well_type"):
            if column not in wells.columns:
                wells = wells.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        sites = pl.DataFrame({"site": list(KAGGLE_SITES)})
        return wells.join(sites, how="cross").with_columns(
            pl.col("experiment").str.extract(r"^([^-]+)-").alias("cell_type")
        )


def _rxrx2_control() -> pl.Expr:
    # RxRx2 writes the wells without a soluble factor as the treatment "EMPTY".
    empty = pl.col("treatment").str.to_uppercase() == "EMPTY"
    return pl.when(empty).then(pl.lit("empty well"))


def _untreated(kinds: Mapping[str, str]) -> Callable[[], pl.Expr]:
    def control() -> pl.Expr:
        condition = pl.col("disease_condition").str.to_lowercase().str.strip_chars()
        kind = condition.replace_strict(dict(kinds), default=UNTREATED, return_dtype=pl.String)
        kind = kind.fill_null(UNTREATED)
        return pl.when(pl.col("treatment").is_null()).then(kind)

    return control


register(RxRx1("rec_rxrx1"))
register(RxRxRelease("rec_rxrx2", 6, {"treatment": "compound"}, _rxrx2_control, "mg/mL"))
register(
    RxRxRelease(
        "rec_rxrx19a",
        5,
        {"treatment": "compound", "disease_condition": "phenotype"},
        _untreated(RXRX19A_UNTREATED),
        "uM",
    )
)
register(
    RxRxRelease(
        "rec_rxrx19b",
        6,
        {"treatment": "compound", "disease_condition": "phenotype"},
        _untreated(RXRX19B_UNTREATED),
        "uM",
    )
)
