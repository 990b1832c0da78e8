"""The user's own synonym and blocklist tables, applied at label time.

Harmonisation maps raw values through the packaged ``synonyms.csv`` once, when a source's
metadata table is built. The tables here are the user's, given to ``cytoimagenet labels``
(``--synonyms FILE``, ``--blocklist FILE``), so they act on the *harmonised tokens* of
the tables being labelled, on top of the packaged table, without rebuilding any metadata:

* **synonyms** — ``category,value,canonical[,reason]``: every ``value`` token of that
  label category becomes ``canonical`` before candidates are counted (so ``value`` and
  ``canonical`` pool into one label). A value the packaged table already maps elsewhere
  cannot occur in a harmonised table and is refused with the token to map instead.
* **blocklist** — ``category,value,reason``: ``value`` never becomes a label of that
  category (with ``--split-by-dose``, neither do its dose labels); its images stay free for
  other labels. The label report lists every blocked value with its reason.

Values are normalised as harmonisation does (lower case, NFKC, quotes, dashes, spaces);
gene values get the ``" targeted"`` suffix. Every problem is a :class:`ConfigError` of one
line naming the file and the row (rows counted as a spreadsheet does, the header row 1).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.curation.harmonize import GENE_SUFFIX, normalize_token, synonyms
from cytoimagenet.errors import ConfigError
from cytoimagenet.schema import LABEL_FIELDS, OPTIONAL_LABEL_FIELDS

SYNONYM_COLUMNS: Final = ("category", "value", "canonical")
SYNONYM_OPTIONAL: Final = ("reason",)
BLOCKLIST_COLUMNS: Final = ("category", "value", "reason")


@dataclass(frozen=True)
class Synonym:
    """One user synonym: ``value`` of ``category`` is labelled ``canonical``."""

    category: str
    value: str
    canonical: str
    reason: str = ""


@dataclass(frozen=True)
class Blocked:
    """One blocklist entry: ``value`` of ``category`` never becomes a label."""

    category: str
    value: str
    reason: str


def _categories() -> tuple[str, ...]:
    """Return the label fields a table may name: the paper's seven and the optional ones."""
    return (*LABEL_FIELDS, *OPTIONAL_LABEL_FIELDS)


def _token(category: str, raw: str) -> str | None:
    token = normalize_token(raw)
    if token and category == "gene" and not token.endswith(GENE_SUFFIX):
        token += GENE_SUFFIX
    return token


def _rows(path: Path, required: Sequence[str], optional: Sequence[str]) -> list[dict[str, str]]:
    """Read ``path`` as CSV and check its header; return the rows with their row number."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; expected a CSV table") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError(f"{path}: empty; expected a header row {','.join(required)}")
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in (*required, *optional)]
    if missing or unknown or len(set(header)) != len(header):
        wanted = ",".join(required) + "".join(f"[,{c}]" for c in optional)
        raise ConfigError(f"{path}, row 1: header is {','.join(header)!r}; expected {wanted}")
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ConfigError(
                f"{path}, row {number}: {len(cells)} fields, the header has {len(header)} "
                "(quote values that contain commas)"
            )
        row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
        category = row["category"].lower()
        if category not in _categories():
            raise ConfigError(
                f"{path}, row {number}: unknown category {row['category']!r}; "
                f"choose from {', '.join(_categories())}"
            )
        rows.append({**row, "category": category, "_row": str(number)})
    return rows


def read_synonyms(path: Path) -> tuple[Synonym, ...]:
    """Read and check a user synonym table (``category,value,canonical[,reason]``).

    Raises
    ------
    ConfigError
        One line naming the file and row: a bad header, an unknown category, an empty
        value or canonical, a value mapped twice, a chain (a canonical that is itself
        mapped), or a value the packaged table already maps to another token.
    """
    packaged = synonyms()
    found: dict[tuple[str, str], Synonym] = {}
    for row in _rows(path, SYNONYM_COLUMNS, SYNONYM_OPTIONAL):
        where = f"{path}, row {row['_row']}"
        cat = row["category"]
        value, canonical = _token(cat, row["value"]), _token(cat, row["canonical"])
        if not value or not canonical:
            empty = "value" if not value else "canonical"
            raise ConfigError(f"{where}: {empty} is empty or a placeholder such as 'n/a'")
        earlier = found.get((cat, value))
        if earlier and earlier.canonical != canonical:
            raise ConfigError(
                f"{where}: {cat} {value!r} is already mapped to {earlier.canonical!r} above"
            )
        target = packaged.get(cat, {}).get(value, value)
        if target != value:
            raise ConfigError(
                f"{where}: the packaged synonyms already turn {cat} {value!r} into "
                f"{target!r} when metadata is built; map {target!r} instead"
            )
        if value != canonical:
            found[(cat, value)] = Synonym(cat, value, canonical, row.get("reason", ""))
    for (cat, value), syn in found.items():
        if (cat, syn.canonical) in found:
            then = found[(cat, syn.canonical)].canonical
            raise ConfigError(
                f"{path}: {cat} {value!r} maps to {syn.canonical!r}, which is mapped again to "
                f"{then!r}; chains are not followed, map {value!r} to {then!r} directly"
            )
    return tuple(found.values())


def read_blocklist(path: Path) -> tuple[Blocked, ...]:
    """Read and check a user blocklist (``category,value,reason``).

    Raises
    ------
    ConfigError
        One line naming the file and row: a bad header, an unknown category, or an empty
        value or reason.
    """
    found: dict[tuple[str, str], Blocked] = {}
    for row in _rows(path, BLOCKLIST_COLUMNS, ()):
        where = f"{path}, row {row['_row']}"
        value = _token(row["category"], row["value"])
        if not value:
            raise ConfigError(f"{where}: value is empty or a placeholder such as 'n/a'")
        if not row["reason"]:
            raise ConfigError(f"{where}: no reason given; the label report lists it")
        found.setdefault((row["category"], value), Blocked(row["category"], value, row["reason"]))
    return tuple(found.values())


def apply_synonyms(pool: pl.DataFrame, table: Sequence[Synonym]) -> pl.DataFrame:
    """Map the label fields of ``pool`` through the user's synonyms (deduplicated lists)."""
    by_category: dict[str, dict[str, str]] = {}
    for syn in table:
        by_category.setdefault(syn.category, {})[syn.value] = syn.canonical
    return pool.with_columns(
        pl.col(cat).list.eval(pl.element().replace(mapping)).list.unique(maintain_order=True)
        for cat, mapping in by_category.items()
    )


def blocked_labels(tokens: pl.DataFrame, blocked: Mapping[tuple[str, str], str]) -> set[str]:
    """Return the labels of ``tokens`` whose (category, base value or label) is blocked.

    ``tokens`` has ``label``, ``base`` (the value before a dose was added) and ``category``;
    labels are compared in lower case, as blocklist values are written.
    """
    if not blocked:
        return set()
    return {
        label
        for label, base, category in tokens.select("label", "base", "category").iter_rows()
        if (category, base) in blocked or (category, label.lower()) in blocked
    }
