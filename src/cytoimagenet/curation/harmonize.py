"""Harmonisation: raw adapter records → the unified metadata schema.

All rules are table-driven and pure:

* :func:`normalize_token` — lower-case, Unicode NFKC, straight quotes and hyphens,
  ``*`` → ``-`` (the original's rule), underscores → spaces, collapsed whitespace, no
  trailing punctuation; placeholders such as ``n/a`` become missing, and so does a value
  with a placeholder or control word *inside* it (``unknown target unknown_moa``,
  ``bromodomain_inhibitor negative_control``): such a value names no class.
* ``synonyms.csv`` — per-field synonym table (``neutrophil`` → ``white blood cell``,
  ``gpcr`` → ``cell membrane`` …), applied after normalisation.
* gene labels get the ``" targeted"`` suffix, separating "gene perturbed" from
  "protein visible" (``cell_visible``), as the original did.
* control annotations are mapped to ``negative`` / ``positive`` / ``empty`` / ``vehicle``
  / other and kept in ``control`` (:mod:`cytoimagenet.curation.controls`): the label step
  leaves those rows out unless asked.
* ``moa``, ``condition`` (lists) and ``strain`` are normalised like the label fields.
* raw doses (``concentration`` + ``concentration_unit``) are read and converted to µM,
  µg/ml or % (:mod:`cytoimagenet.curation.dose`).
* the evaluation exclusion (:mod:`cytoimagenet.curation.exclusion`) is always applied.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from importlib import resources
from typing import Final

import polars as pl

from cytoimagenet.curation.controls import control_expr, mark_controls
from cytoimagenet.curation.dose import dose_exprs
from cytoimagenet.curation.exclusion import exclusion_expr
from cytoimagenet.schema import LABEL_FIELDS, conform, validate
from cytoimagenet.sources.base import check_records
from cytoimagenet.sources.catalog import SourceInfo

#: Raw placeholders that mean "no value".
NULL_TOKENS: Final = frozenset({"", "-", "--", "na", "n/a", "nan", "none", "null", "unknown"})
#: Words that make a whole value a placeholder wherever they stand in it
#: (``unknown target unknown moa``, ``missing info possibly empty``), and ``control``: a
#: value naming a control (``cdk negative control``, idr0088's inactive probe analogues)
#: names no class of its own.
PLACEHOLDER_WORDS: Final = (
    "unknown",
    "n/a",
    "nan",
    "null",
    "none",
    "missing",
    "unspecified",
    "undefined",
    "control",
)
#: Fields harmonised like the label fields but outside the paper's seven categories.
EXTRA_LIST_FIELDS: Final = ("moa", "condition")
GENE_SUFFIX: Final = " targeted"

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "`": "'"})
_DASHES = re.compile(r"[‐‑‒–—―−]")
# Python's \s also matches \x1c-\x1f; polars (Rust) does not. Keep the two rules identical.
_SPACES = re.compile(r"[^\S\x1c-\x1f]+")
_STRIP = " \t\"'.,;:"
_PLACEHOLDER = "(?:^| )(?:" + "|".join(map(re.escape, PLACEHOLDER_WORDS)) + ")(?: |$)"


def normalize_token(value: str | None, *, placeholders: bool = True) -> str | None:
    """Normalise one raw label value; return ``None`` for a placeholder.

    Parameters
    ----------
    value : str or None
        The raw value.
    placeholders : bool
        Also return ``None`` for a value holding a :data:`PLACEHOLDER_WORDS` word (off
        for control annotations, which are made of such words).

    Examples
    --------
    >>> normalize_token("  U-2 OS ")
    'u-2 os'
    >>> normalize_token("Taxol*")
    'taxol-'
    >>> normalize_token("dna alkylating_agent")
    'dna alkylating agent'
    >>> normalize_token("bromodomain_inhibitor negative_control") is None
    True
    >>> normalize_token("missing_info_possibly_empty") is None
    True
    """
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", value).translate(_QUOTES).lower()
    text = _DASHES.sub("-", text).replace("*", "-").replace("_", " ")
    text = _SPACES.sub(" ", text).strip(_STRIP)
    if text in NULL_TOKENS or (placeholders and re.search(_PLACEHOLDER, text)):
        return None
    return text


def _normalize_expr(expr: pl.Expr, *, placeholders: bool = True) -> pl.Expr:
    """Apply :func:`normalize_token` to a string expression (tested to agree with it)."""
    out = (
        expr.str.normalize("NFKC")
        .str.replace_all("[‘’`]", "'")
        .str.replace_all("[“”]", '"')
        .str.to_lowercase()
        .str.replace_all(_DASHES.pattern, "-")
        .str.replace_all(r"\*", "-", literal=False)
        .str.replace_all("_", " ", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars(_STRIP)
    )
    drop = out.is_in(list(NULL_TOKENS))
    if placeholders:
        drop = drop | out.str.contains(_PLACEHOLDER)
    return pl.when(drop).then(None).otherwise(out)


@functools.cache
def synonyms() -> dict[str, dict[str, str]]:
    """Return the synonym table as ``{field: {from: to}}`` (keys already normalised)."""
    text = (resources.files("cytoimagenet.curation") / "synonyms.csv").read_text("utf-8")
    table: dict[str, dict[str, str]] = {}
    for row in csv.DictReader(text.splitlines()):
        src, dst = normalize_token(row["from"]), normalize_token(row["to"])
        if src and dst:
            table.setdefault(row["field"], {})[src] = dst
    return table


def canonical(field: str, value: str | None) -> str | None:
    """Normalise ``value`` and map it through the synonym table of ``field``.

    Examples
    --------
    >>> canonical("cell_type", "Neutrophil")
    'white blood cell'
    >>> canonical("gene", "EZH2")
    'ezh2 targeted'
    """
    token = normalize_token(value)
    if token is None:
        return None
    token = synonyms().get(field, {}).get(token, token)
    if field == "gene" and not token.endswith(GENE_SUFFIX):
        token += GENE_SUFFIX
    return token


def _as_list(records: pl.DataFrame, col: str) -> pl.Expr:
    if col not in records.columns:
        return pl.lit(None, dtype=pl.List(pl.String)).alias(col)
    if records.schema[col] == pl.List(pl.String):
        return pl.col(col)
    return pl.col(col).cast(pl.String).str.split("|").alias(col)


def _label_expr(field: str, default: list[str]) -> pl.Expr:
    mapping = synonyms().get(field, {})
    element = _normalize_expr(pl.element())
    if mapping:
        element = element.replace(mapping)
    if field == "gene":
        element = (
            pl.when(element.str.ends_with(GENE_SUFFIX))
            .then(element)
            .otherwise(element + pl.lit(GENE_SUFFIX))
        )
    values = pl.col(field).list.eval(element.drop_nulls()).list.unique(maintain_order=True)
    values = pl.when(values.list.len() > 0).then(values).otherwise(None)
    fallback = [t for t in (canonical(field, d) for d in default) if t]
    if fallback:
        values = values.fill_null(pl.lit(fallback, dtype=pl.List(pl.String)))
    return values.alias(field)


def _strain_expr(records: pl.DataFrame) -> pl.Expr:
    """Build ``strain``: one normalised string (the first of a ``|``-joined or list value)."""
    if "strain" not in records.columns:
        return pl.lit(None, dtype=pl.String).alias("strain")
    col = pl.col("strain")
    first = col.list.first() if isinstance(records.schema["strain"], pl.List) else col
    return _normalize_expr(first.cast(pl.String).str.split("|").list.first()).alias("strain")


def harmonize(records: pl.DataFrame, info: SourceInfo) -> pl.DataFrame:
    """Turn an adapter's raw records into a validated unified-schema table.

    Parameters
    ----------
    records : polars.DataFrame
        Output of a :class:`~cytoimagenet.sources.base.SourceAdapter`.
    info : SourceInfo
        The source's catalog entry (defaults, channels, pool).

    Returns
    -------
    polars.DataFrame
        One row per image, in the unified schema, ``idx`` = ``<source>-<key>``.
    """
    check_records(records, info.name)
    lists = (*LABEL_FIELDS, *EXTRA_LIST_FIELDS, "channels")
    frame = records.with_columns(_as_list(records, f) for f in lists)
    defaults = {
        "organism": info.organism,
        "cell_type": info.cell_type,
        "cell_visible": info.cell_visible,
    }
    microscopy = (
        pl.col("microscopy").cast(pl.String) if "microscopy" in frame.columns else pl.lit(None)
    )
    frame = frame.with_columns(
        *(_label_expr(f, defaults.get(f, [])) for f in (*LABEL_FIELDS, *EXTRA_LIST_FIELDS)),
        _strain_expr(frame),
        control_expr(frame, _normalize_expr(pl.col("control").cast(pl.String), placeholders=False)),
        *dose_exprs(frame),
        pl.col("channels").fill_null(pl.lit(info.channels, dtype=pl.List(pl.String))),
        _normalize_expr(microscopy.fill_null(pl.lit(info.microscopy)), placeholders=False)
        .str.replace(r"\s*\(\?\)$", "")
        .alias("microscopy"),
        (pl.lit(f"{info.name}-") + pl.col("key").cast(pl.String)).alias("idx"),
        pl.lit(info.database_name).alias("database"),
        pl.lit(info.title).alias("name"),
        pl.lit(info.name).alias("dir_name"),
        pl.lit(False).alias("crop"),
        pl.lit(1.0).alias("scaling"),
        pl.lit("pretraining" if info.pretraining else "evaluation").alias("pool"),
    )
    frame = mark_controls(frame)
    if "exclude_reason" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("exclude_reason"))
    for col in ("plate", "well", "site"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    frame = conform(frame.with_columns(exclusion_expr(info.name)))
    validate(frame, what=f"metadata of {info.name}")
    return frame
