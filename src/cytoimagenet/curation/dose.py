"""Concentrations: raw dose values and units → one number in one of three units.

Sources write doses many ways: a number in a column whose header names the unit
(idr0088's ``Compound Concentration (microMolar)``), a number and a unit in one cell
(idr0016's ``5 micromolar``, idr0037's ``1 microgram per milliliter``), or a number in a
column whose unit the release's README states (RxRx19a/b ``treatment_conc``, in µM). Adapters
pass them on raw, as ``concentration`` (text or number) and ``concentration_unit`` (text);
harmonisation (:mod:`cytoimagenet.curation.harmonize`) calls :func:`dose_exprs`, which

* reads the leading number (``0.3``, ``.5``, ``1e-3``, ``+2``; no thousands separators and
  no decimal commas — ``1,5`` is not guessed at),
* takes the unit written after the number, else the unit column,
* converts to one unit per kind: **µM** (``uM``) for molar units, **µg/ml** (``ug/ml``) for
  mass concentrations, and ``%`` for percentages (v/v or w/v, as the source means it).

A value that cannot be read, a negative one, or a unit outside the table gives a null
concentration *and* unit: a number without a known unit would be compared with others
wrongly.
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl

#: Canonical units and what one of each alias is in it.
UNITS: Final[dict[str, tuple[str, float]]] = {
    "um": ("uM", 1.0),
    "umol/l": ("uM", 1.0),
    "nm": ("uM", 1e-3),
    "nmol/l": ("uM", 1e-3),
    "pm": ("uM", 1e-6),
    "pmol/l": ("uM", 1e-6),
    "mm": ("uM", 1e3),
    "mmol/l": ("uM", 1e3),
    "m": ("uM", 1e6),
    "mol/l": ("uM", 1e6),
    "ug/ml": ("ug/ml", 1.0),
    "mg/l": ("ug/ml", 1.0),
    "ng/ml": ("ug/ml", 1e-3),
    "ug/l": ("ug/ml", 1e-3),
    "pg/ml": ("ug/ml", 1e-6),
    "mg/ml": ("ug/ml", 1e3),
    "g/l": ("ug/ml", 1e3),
    "%": ("%", 1.0),
    "%v/v": ("%", 1.0),
    "%w/v": ("%", 1.0),
}
#: The units a normalised concentration can have.
CANONICAL_UNITS: Final = ("uM", "ug/ml", "%")

# Spelled-out words → symbols, applied in order to a lower-cased unit.
_WORDS: Final = (
    (r"[µμ]", "u"),
    (r"\bper\b", "/"),
    (r"\bmicro(molar|mol(e)?s?)\b", r"u\1"),
    (r"\bnano(molar|mol(e)?s?)\b", r"n\1"),
    (r"\bpico(molar|mol(e)?s?)\b", r"p\1"),
    (r"\bmilli(molar|mol(e)?s?)\b", r"m\1"),
    (r"molar\b", "m"),
    (r"mol(e)?s?\b", "mol"),
    (r"\bmicrograms?\b", "ug"),
    (r"\bnanograms?\b", "ng"),
    (r"\bpicograms?\b", "pg"),
    (r"\bmilligrams?\b", "mg"),
    (r"\bgrams?\b", "g"),
    (r"\bmillilit(er|re)s?\b", "ml"),
    (r"\blit(er|re)s?\b", "l"),
    (r"\bpercent\b", "%"),
    (r"\s+", ""),
)
_NUMBER: Final = r"^\s*\+?((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"


def normalize_unit(unit: str | None) -> tuple[str, float] | None:
    """Return ``(canonical unit, factor)`` for a raw unit, or ``None`` if it is unknown.

    Examples
    --------
    >>> normalize_unit("microMolar")
    ('uM', 1.0)
    >>> normalize_unit("nM")
    ('uM', 0.001)
    >>> normalize_unit("microgram per milliliter")
    ('ug/ml', 1.0)
    >>> normalize_unit("furlongs") is None
    True
    """
    if unit is None:
        return None
    text = unit.strip().lower()
    for pattern, repl in _WORDS:
        text = re.sub(pattern, repl, text)
    return UNITS.get(text)


def unit_from_header(header: str) -> str | None:
    """Return the unit a column header states in parentheses, e.g. ``(microMolar)``.

    Examples
    --------
    >>> unit_from_header("Compound Concentration (microMolar)")
    'microMolar'
    >>> unit_from_header("Dose") is None
    True
    """
    match = re.search(r"\(([^()]+)\)\s*$", header)
    return match.group(1).strip() if match else None


def dose_exprs(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """Return the ``concentration`` and ``concentration_unit`` expressions of ``frame``.

    Parameters
    ----------
    frame : polars.DataFrame
        Raw records; ``concentration`` (text or number) and ``concentration_unit`` (text)
        are optional.

    Returns
    -------
    tuple of polars.Expr
        ``concentration`` (Float64, in the canonical unit, 9 significant digits) and
        ``concentration_unit`` (one of :data:`CANONICAL_UNITS`); both null where the dose
        is missing, unreadable, negative or in an unknown unit.
    """
    if "concentration" not in frame.columns:
        return (
            pl.lit(None, dtype=pl.Float64).alias("concentration"),
            pl.lit(None, dtype=pl.String).alias("concentration_unit"),
        )
    text = pl.col("concentration").cast(pl.String)
    number = text.str.extract(_NUMBER, 1).cast(pl.Float64, strict=False)
    written = text.str.replace(_NUMBER, "").str.strip_chars()
    column = (
        pl.col("concentration_unit").cast(pl.String)
        if "concentration_unit" in frame.columns
        else pl.lit(None, dtype=pl.String)
    )
    raw_unit = pl.when(number.is_not_null() & (written != "")).then(written).otherwise(column)
    seen = frame.select(raw_unit.unique().alias("u"))["u"].drop_nulls().to_list()
    known = {u: normalize_unit(u) for u in seen}
    unit_of = {u: k[0] for u, k in known.items() if k}
    factor_of = {u: k[1] for u, k in known.items() if k}
    unit = raw_unit.replace_strict(unit_of, default=None, return_dtype=pl.String)
    factor = raw_unit.replace_strict(factor_of, default=None, return_dtype=pl.Float64)
    ok = number.is_not_null() & unit.is_not_null() & (number >= 0) & number.is_finite()
    value = (number * factor).round_sig_figs(9)
    return (
        pl.when(ok).then(value).otherwise(None).alias("concentration"),
        pl.when(ok).then(unit).otherwise(None).alias("concentration_unit"),
    )


def format_dose(value: float, unit: str) -> str:
    """Write a dose the way labels show it: shortest decimal, then the unit.

    Examples
    --------
    >>> format_dose(0.3, "uM")
    '0.3 uM'
    >>> format_dose(10.0, "ug/ml")
    '10 ug/ml'
    >>> format_dose(1762.5, "uM")
    '1762.5 uM'
    """
    text = f"{value:.9g}"
    if "e" in text:  # very small or large: plain decimal, no exponent
        text = f"{value:.12f}".rstrip("0").rstrip(".")
    return f"{text} {unit}"


def dose_text(frame: pl.DataFrame) -> pl.Series:
    """Return each row's dose as labels write it (``0.3 uM``); null where it has none.

    Formats each distinct (concentration, unit) pair once, so a large table costs one join.
    """
    keys = ["concentration", "concentration_unit"]
    pairs = frame.select(keys).drop_nulls().unique()
    text = [format_dose(v, u) for v, u in pairs.iter_rows()]
    pairs = pairs.with_columns(pl.Series("_dose", text, dtype=pl.String))
    return frame.select(keys).join(pairs, on=keys, how="left", maintain_order="left")["_dose"]
