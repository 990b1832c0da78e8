"""Harmonisation: raw adapter records → the unified metadata schema.

All rules are table-driven and pure:

* :func:`normalize_token` — lower-case, Unicode NFKC, straight quotes and hyphens,
  ``*`` → ``-`` (the original's rule), collapsed whitespace, no trailing punctuation;
  placeholders such as ``n/a`` or ``missing_info_possibly_empty`` become missing.
* ``synonyms.csv`` — per-field synonym table (``neutrophil`` → ``white blood cell``,
  ``gpcr`` → ``cell membrane`` …), applied after normalisation.
* gene labels get the ``" targeted"`` suffix, separating "gene perturbed" from
  "protein visible" (``cell_visible``), as the original did.
* control annotations are mapped to ``negative`` / ``positive`` / ``empty`` / other and
  kept in ``control`` — marked, never silently turned into labels.
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

from cytoimagenet.curation.exclusion import exclusion_expr
from cytoimagenet.schema import LABEL_FIELDS, conform, validate
from cytoimagenet.sources.base import check_records
from cytoimagenet.sources.catalog import SourceInfo

#: Raw placeholders that mean "no value".
NULL_TOKENS: Final = frozenset(
    {"", "-", "--", "na", "n/a", "nan", "none", "null", "unknown", "missing_info_possibly_empty"}
)
GENE_SUFFIX: Final = " targeted"

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "`": "'"})
_DASHES = re.compile(r"[‐‑‒–—―−]")
# Python's \s also matches \x1c-\x1f; polars (Rust) does not. Keep the two rules identical.
_SPACES = re.compile(r"[^\S\x1c-\x1f]+")
_STRIP = " \t\"'.,;:"

_CONTROL_KINDS: Final = {
    "negative control": "negative",
    "negative_control": "negative",
    "negative": "negative",
    "neg": "negative",
    "positive control": "positive",
    "positive_control": "positive",
    "positive": "positive",
    "pos": "positive",
    "empty well": "empty",
    "empty": "empty",
    "empty_well": "empty",
}


def normalize_token(value: str | None) -> str | None:
    """Normalise one raw label value; return ``None`` for a placeholder.

    Examples
    --------
    >>> normalize_token("  U-2 OS ")
    'u-2 os'
    >>> normalize_token("Taxol*")
    'taxol-'
    >>> normalize_token("missing_info_possibly_empty") is None
    True
    """
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", value).translate(_QUOTES).lower()
    text = _DASHES.sub("-", text).replace("*", "-")
    text = _SPACES.sub(" ", text).strip(_STRIP)
    return None if text in NULL_TOKENS else text


def _normalize_expr(expr: pl.Expr) -> pl.Expr:
    """Apply :func:`normalize_token` to a string expression (tested to agree with it)."""
    out = (
        expr.str.normalize("NFKC")
        .str.replace_all("[‘’`]", "'")
        .str.replace_all("[“”]", '"')
        .str.to_lowercase()
        .str.replace_all(_DASHES.pattern, "-")
        .str.replace_all(r"\*", "-", literal=False)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars(_STRIP)
    )
    return pl.when(out.is_in(list(NULL_TOKENS))).then(None).otherwise(out)


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


def _control_expr(records: pl.DataFrame) -> pl.Expr:
    if "control" not in records.columns:
        return pl.lit(None, dtype=pl.String).alias("control")
    token = _normalize_expr(pl.col("control").cast(pl.String))
    return token.replace(_CONTROL_KINDS).alias("control")


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
    frame = records.with_columns(_as_list(records, f) for f in (*LABEL_FIELDS, "channels"))
    defaults = {
        "organism": info.organism,
        "cell_type": info.cell_type,
        "cell_visible": info.cell_visible,
    }
    microscopy = (
        pl.col("microscopy").cast(pl.String) if "microscopy" in frame.columns else pl.lit(None)
    )
    frame = frame.with_columns(
        *(_label_expr(f, defaults.get(f, [])) for f in LABEL_FIELDS),
        _control_expr(frame),
        pl.col("channels").fill_null(pl.lit(info.channels, dtype=pl.List(pl.String))),
        _normalize_expr(microscopy.fill_null(pl.lit(info.microscopy)))
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
    if "exclude_reason" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("exclude_reason"))
    for col in ("plate", "well", "site"):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    frame = conform(frame.with_columns(exclusion_expr(info.name)))
    validate(frame, what=f"metadata of {info.name}")
    return frame
