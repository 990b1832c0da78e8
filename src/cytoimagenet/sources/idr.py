"""Adapters of the Image Data Resource (IDR) studies: one shared reader, one spec per study.

IDR publishes one annotation table per screen or experiment
(``idrNNNN-screenA-annotation.csv[.gz|.zip]``, ``idrNNNN-experimentA-annotation.csv``; the
oldest studies also a tab-separated ``-library.txt``). Screens are keyed by ``Plate`` +
``Well``, experiments by ``Dataset Name`` + ``Image Name``. Column names follow IDR's
conventions (``Characteristics [Cell Line]``, ``Compound Name``, ``Control Type`` …) but
differ between studies and even between screens of one study, so each study is described
by a small declarative :class:`IdrStudy` (all of them in :mod:`cytoimagenet.sources.idr_studies`):
which published column feeds which label field, constant labels, how the channel files are
named, which rows are controls or QC failures.
:class:`IdrAdapter` reads every annotation file of the study found under the raw root,
unions their columns, and keeps one row per key.

Decisions that apply to all studies:

* Keys are ``<screen>_<plate>_<well>`` (or ``<experiment>_<dataset>_<image>``), with runs
  of characters other than letters, digits, ``.``, ``+``, ``-`` written ``_``. The screen is
  part of the key because plate names repeat across screens (idr0081 B/C and D/E image
  the same plates at two sites).
* Header names are matched case-insensitively and with IDR's URL templates removed
  (``Gene Identifier %% url=…`` → ``Gene Identifier``).
* Several copies of one annotation file (two versions of idr0041, the clean IDR idr0067
  file and CytoImageNet's ragged copy) are all read; a key seen in more than one file
  keeps the row of the preferred file: a file named as IDR publishes it before any other,
  then the shallower path, then the path in sort order. Ragged rows (more fields than the
  header, read into ``__extra__``) have shifted columns: they keep their key and path but
  no labels, and are marked in ``exclude_reason``.
* One record per well (screens) or per image (experiments). Channel file paths follow the
  study's published file naming (see each spec's ``files``); with metadata only, these
  are the paths the images *will* have once downloaded, and the image builder checks
  that they exist.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import polars as pl

from cytoimagenet.curation.dose import unit_from_header
from cytoimagenet.errors import MetadataError
from cytoimagenet.io.tables import read_delimited, require_columns
from cytoimagenet.sources.base import SourceAdapter

#: A source column: a name, ``(a, b)`` for "a, else b", or ``"re:<regex>"`` for every
#: column whose name matches the regex (e.g. ``Phenotype 1``, ``Phenotype 2`` …).
Column = str | tuple[str, ...]

LABELS: Final = ("organism", "cell_type", "cell_visible", "phenotype", "compound", "gene", "sirna")
#: Record fields a study may fill besides the labels (not label categories by default).
FACTS: Final = ("moa", "condition", "strain")
KEYS: Final = {"screen": ("Plate", "Well"), "experiment": ("Dataset Name", "Image Name")}
_PUBLISHED = re.compile(r"^idr\d{4}-(screen|experiment)[A-Z]-(annotation|library)\b")
_SCREEN = re.compile(r"(screen|experiment)([A-Z])")
_URL_TEMPLATE = re.compile(r"\s*%%.*$")
_UNSAFE = r"[^A-Za-z0-9.+\-]+"
_RAGGED = "metadata row misaligned (unquoted commas in the source file); labels unreliable"


@dataclass(frozen=True)
class Exclude:
    """Rows whose ``column`` matches ``pattern`` must never be labelled.

    The reason recorded is ``reason`` or, when empty, ``"<column>: <value>"``.
    """

    column: str
    pattern: str
    reason: str = ""


#: Dose columns as IDR studies name them, first present wins. A unit in parentheses in
#: the header (``(microMolar)``) is the unit of bare numbers; otherwise the cell says it
#: (``5 micromolar``, ``1 microgram per milliliter``).
DOSE_COLUMNS: Final = (
    "re:^Compound Concentration",
    "Dose",
    "Experimental Condition [Dose]",
    "Experimental Condition [Concentration]",
    "Concentration",
)

#: Source QC failures, as IDR studies write them (``fail``, ``Excluded: …``).
QC_FAIL: Final = Exclude("Quality Control", r"(?i)^\s*(fail|excluded)")


@dataclass(frozen=True)
class IdrStudy:
    """How one IDR study's annotation maps onto the record contract.

    Attributes
    ----------
    layout : {"screen", "experiment"}
        Screens are keyed by Plate + Well, experiments by Dataset Name + Image Name.
    labels : mapping
        Label field (or ``moa``, ``condition``, ``strain``) → source columns (see
        :data:`Column`); all non-empty values are kept.
    constants : mapping
        Label field → raw values every row carries (e.g. the stain of a fixed channel).
    split : mapping
        Column → separator used inside its cells for several values.
    control : tuple of str
        Columns holding the control annotation; the first non-empty one is used.
    control_values : mapping
        Raw control values rewritten (e.g. a placeholder that means "empty well").
    empty_well : (column, regex) or None
        Rows where ``column`` matches are marked ``empty well`` whatever ``control`` says.
    exclude : tuple of Exclude
        Rows never to label (source QC failures, non-image files …).
    microscopy : (column, {value: modality}) or None
        Per-row modality where the study mixes them.
    plate_variants : tuple of str
        Plate-name suffixes marking re-processed copies of a plate (kept only when the
        original plate is absent).
    plate_labels : mapping
        Label field → regex with one group, read from the plate name when the label
        columns are empty.
    folder, stem : str
        Templates of the record's ``path`` and ``filename``.
    files : tuple of str
        One template per channel file. Placeholders: ``{screen}`` ``{plate}`` ``{well}``
        (as published) ``{well02}`` (``A01``) ``{well02l}`` (``a01``) ``{dataset}``
        ``{image}`` ``{image_stem}`` ``{site}``.
    site : str or None
        Site written in the record when the paths name one site per well.
    required : tuple of str
        Columns beyond the keys a file of this study must have.
    rewrite : mapping
        Field → ``(regex, replacement)`` applied to each of its raw values: one spelling
        of an id where the source writes it two ways.
    dose : tuple of str
        Candidate dose columns (:data:`DOSE_COLUMNS` by default); the first present wins.
    """

    layout: Literal["screen", "experiment"] = "screen"
    labels: Mapping[str, tuple[Column, ...]] = field(default_factory=dict)
    constants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    split: Mapping[str, str] = field(default_factory=dict)
    control: tuple[str, ...] = ("Control Type",)
    control_values: Mapping[str, str] = field(default_factory=dict)
    empty_well: tuple[str, str] | None = None
    exclude: tuple[Exclude, ...] = (QC_FAIL,)
    microscopy: tuple[str, Mapping[str, str]] | None = None
    plate_variants: tuple[str, ...] = ()
    plate_labels: Mapping[str, str] = field(default_factory=dict)
    folder: str = "{plate}"
    stem: str = "{well}"
    files: tuple[str, ...] = ("{plate}/{well}.tif",)
    site: str | None = None
    required: tuple[str, ...] = ()
    rewrite: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    dose: tuple[str, ...] = DOSE_COLUMNS


def _normalise_header(name: str) -> str:
    return _URL_TEMPLATE.sub("", name).strip()


def _resolve(columns: list[str], name: str) -> list[str]:
    """Return the columns of a frame that ``name`` designates (case-insensitive)."""
    if name.startswith("re:"):
        rx = re.compile(name[3:], re.IGNORECASE)
        return [c for c in columns if rx.search(c)]
    lower = name.lower()
    return [c for c in columns if c.lower() == lower]


def _template(template: str) -> pl.Expr:
    """Build a string expression from a ``{placeholder}`` template over ``__<name>`` columns."""
    parts: list[pl.Expr] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if name is not None:
            parts.append(pl.col(f"__{name}"))
    return pl.concat_str(parts) if parts else pl.lit("")


def _non_empty(expr: pl.Expr) -> pl.Expr:
    """``expr`` with empty joins (all parts missing) as null."""
    return pl.when(expr.str.strip_chars("| ") == "").then(None).otherwise(expr)


def _file_rank(path: Path, raw: Path) -> tuple[int, int, str]:
    rel = path.relative_to(raw)
    return (0 if _PUBLISHED.match(path.name) else 1, len(rel.parts), rel.as_posix())


class IdrAdapter(SourceAdapter):
    """Read an IDR study's annotation files as described by its :class:`IdrStudy`."""

    def __init__(self, name: str, study: IdrStudy) -> None:
        super().__init__(name)
        self.study = study

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per well (screens) or image (experiments) of the study."""
        paths = sorted(self.metadata_paths(raw), key=lambda p: _file_rank(p, raw))
        frames = [self._read_file(p, rank) for rank, p in enumerate(paths)]
        table = pl.concat(frames, how="diagonal_relaxed")
        # Preferred file first, original plates before re-processed copies.
        table = (
            table.sort("__variant", "__rank", "__row")
            .unique("key", keep="first", maintain_order=True)
            .sort("__rank", "__row")
        )
        return table.drop("__variant", "__rank", "__row")

    def _read_file(self, path: Path, rank: int) -> pl.DataFrame:
        study = self.study
        frame = read_delimited(path)
        frame = frame.rename({c: _normalise_header(c) for c in frame.columns})
        columns = frame.columns
        keys = KEYS[study.layout]
        canon: dict[str, str] = {}
        for wanted in (*keys, *study.required):
            found = _resolve(columns, wanted)
            if found:
                canon[found[0]] = wanted
        frame = frame.rename({k: v for k, v in canon.items() if k != v})
        require_columns(frame, (*keys, *study.required), path)
        frame = frame.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
        match = _SCREEN.search(path.name)
        screen = "".join(match.groups()) if match else f"{study.layout}A"
        frame = frame.with_columns(
            pl.lit(screen).alias("__screen"),
            pl.lit(rank).alias("__rank"),
            pl.int_range(pl.len()).alias("__row"),
        )
        return self._records(frame)

    def _values(self, frame: pl.DataFrame, column: Column) -> pl.Expr | None:
        """One '|'-joined expression for a :data:`Column`, or None if the file lacks it."""
        names = (column,) if isinstance(column, str) else column
        resolved = [c for n in names for c in _resolve(frame.columns, n)]
        if not resolved:
            return None
        exprs = []
        for c in resolved:
            expr = pl.col(c)
            sep = next((s for k, s in self.study.split.items() if k.lower() == c.lower()), None)
            if sep:
                expr = expr.str.replace_all(re.escape(sep), "|")
            exprs.append(expr)
        if isinstance(column, tuple):
            return pl.coalesce(exprs)
        return _non_empty(pl.concat_str(exprs, separator="|", ignore_nulls=True))

    def _label(self, frame: pl.DataFrame, field_name: str) -> pl.Expr:
        study = self.study
        parts = [self._values(frame, c) for c in study.labels.get(field_name, ())]
        exprs = [p for p in parts if p is not None]
        if field_name in study.plate_labels:
            from_plate = pl.col("__plate").str.extract(study.plate_labels[field_name], 1)
            exprs = [pl.coalesce([*exprs, from_plate])] if exprs else [from_plate]
        exprs += [pl.lit(v) for v in study.constants.get(field_name, ())]
        if not exprs:
            return pl.lit(None, dtype=pl.String).alias(field_name)
        joined = pl.concat_str(exprs, separator="|", ignore_nulls=True)
        if field_name in study.rewrite:
            pattern, replacement = study.rewrite[field_name]
            joined = (
                joined.str.split("|")
                .list.eval(pl.element().str.replace(pattern, replacement))
                .list.join("|")
            )
        return _non_empty(joined)

    def _control(self, frame: pl.DataFrame) -> pl.Expr:
        study = self.study
        cols = [c for n in study.control for c in _resolve(frame.columns, n)]
        control = pl.coalesce([pl.col(c) for c in cols]) if cols else pl.lit(None, pl.String)
        if study.control_values:
            control = control.replace(dict(study.control_values))
        if study.empty_well:
            found = _resolve(frame.columns, study.empty_well[0])
            if found:
                empty = pl.col(found[0]).str.contains(study.empty_well[1]).fill_null(False)
                control = pl.when(empty).then(pl.lit("empty well")).otherwise(control)
        return control

    def _dose(self, frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
        """Raw dose and the unit its header states (both null if the file has none)."""
        found = next((c for n in self.study.dose for c in _resolve(frame.columns, n)), None)
        if found is None:
            return pl.lit(None, dtype=pl.String), pl.lit(None, dtype=pl.String)
        return pl.col(found).cast(pl.String), pl.lit(unit_from_header(found), dtype=pl.String)

    def _exclude(self, frame: pl.DataFrame) -> pl.Expr:
        reasons: list[pl.Expr] = []
        if "__extra__" in frame.columns:
            reasons.append(pl.when(pl.col("__extra__").is_not_null()).then(pl.lit(_RAGGED)))
        for rule in self.study.exclude:
            for c in _resolve(frame.columns, rule.column):
                hit = pl.col(c).str.contains(rule.pattern).fill_null(False)
                text = pl.lit(rule.reason) if rule.reason else pl.lit(f"{c}: ") + pl.col(c)
                reasons.append(pl.when(hit).then(text))
        return pl.coalesce(reasons) if reasons else pl.lit(None, dtype=pl.String)

    def _records(self, frame: pl.DataFrame) -> pl.DataFrame:
        study = self.study
        if study.layout == "screen":
            plate, well = pl.col("Plate").str.strip_chars(), pl.col("Well").str.strip_chars()
            parsed = well.str.extract_groups(r"^([A-Za-z]+)0*(\d+)$")
            well02 = pl.coalesce(
                parsed.struct[0].str.to_uppercase() + parsed.struct[1].str.zfill(2), well
            )
            base = plate
            for suffix in study.plate_variants:
                base = base.str.replace(re.escape(suffix) + "$", "")
            variant = (plate != base).cast(pl.Int32)
            frame = frame.with_columns(
                plate.alias("__plate"),
                well.alias("__well"),
                well02.alias("__well02"),
                well02.str.to_lowercase().alias("__well02l"),
                variant.alias("__variant"),
                pl.concat_str([pl.col("__screen"), base, well], separator="_").alias("__key"),
            )
        else:
            dataset, image = pl.col("Dataset Name"), pl.col("Image Name")
            frame = frame.with_columns(
                dataset.alias("__dataset"),
                image.alias("__image"),
                image.str.replace(r"\.[A-Za-z0-9]+$", "").alias("__image_stem"),
                pl.lit(0, dtype=pl.Int32).alias("__variant"),
                pl.concat_str([pl.col("__screen"), dataset, image], separator="_").alias("__key"),
            )
        frame = frame.with_columns(pl.lit(study.site, dtype=pl.String).alias("__site"))
        ragged = (
            pl.col("__extra__").is_not_null() if "__extra__" in frame.columns else pl.lit(False)
        )
        labels = [
            pl.when(ragged).then(None).otherwise(self._label(frame, f)).alias(f)
            for f in (*LABELS, *FACTS)
        ]
        dose, unit = self._dose(frame)
        microscopy = pl.lit(None, dtype=pl.String)
        if study.microscopy:
            found = _resolve(frame.columns, study.microscopy[0])
            if found:
                microscopy = pl.col(found[0]).replace_strict(
                    dict(study.microscopy[1]), default=None, return_dtype=pl.String
                )
        out = frame.select(
            pl.col("__key").str.replace_all(_UNSAFE, "_").alias("key"),
            _template(study.folder).alias("path"),
            _template(study.stem).alias("filename"),
            pl.concat_list([_template(t) for t in study.files]).alias("channel_paths"),
            *(
                (pl.col("__plate").alias("plate"), pl.col("__well02").alias("well"))
                if study.layout == "screen"
                else (pl.lit(None, pl.String).alias("plate"), pl.lit(None, pl.String).alias("well"))
            ),
            pl.col("__site").alias("site"),
            *labels,
            microscopy.alias("microscopy"),
            self._control(frame).alias("control"),
            self._exclude(frame).alias("exclude_reason"),
            pl.when(ragged).then(None).otherwise(dose).alias("concentration"),
            unit.alias("concentration_unit"),
            "__variant",
            "__rank",
            "__row",
        )
        # Re-processed plate copies share keys with their originals; anything else repeated
        # within one file is a broken file.
        dup = out.select(pl.struct("key", "__variant").is_duplicated()).to_series()
        if dup.any():
            example = out.filter(dup)["key"].head(3).to_list()
            raise MetadataError(
                f"{self.name}: one annotation file lists keys twice, e.g. {example}"
            )
        return out
