"""Adapters of BBBC datasets labelled by folder and file names (images must be present).

One declarative adapter, :class:`PathPatternAdapter`, serves all twelve sources: it walks
the image files, matches each relative path against the source's regular expression
(:class:`Layout`), and groups the channel files of one field into one record. What
differs per source is data only: the pattern, the channel tokens, the key template and
the label rules, all in :mod:`cytoimagenet.sources.bbbc_layouts`.

Decisions (documented here because the tests pin them):

* **Missing channel file.** A field whose channel set is incomplete is *kept*, with the
  channels that exist, and marked ``exclude_reason = "missing channel file(s): …"``, so
  it is reported and never labelled, and nothing crashes.
* **Odd files.** Files with an image suffix that match neither the pattern nor a known
  ``ignore`` pattern (merged previews, outline masks) are skipped with one warning that
  names how many and gives examples. If *no* file matches, :class:`MetadataError` names
  the pattern that was expected.
* **One record per channel file** (``merge=False``) is used for BBBC005 only: its two
  stains are separate synthetic renders, and the original curation labelled each file on
  its own (w1 → cell body, w2 → nucleus). Every other source merges a field's channels.
* **Keys** are built from path components (folder, plate, well, site, file stem), never
  from walk order, so they are stable.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cytoimagenet.errors import MetadataError
from cytoimagenet.sources.base import SourceAdapter

log = logging.getLogger(__name__)

#: A leading folder group shared by every pattern: everything above the file (or class folder).
FOLDER = r"(?P<folder>(?:[^/]+/)*?)"


@dataclass(frozen=True)
class Derived:
    """A record column taken from one regex group, optionally through a value map.

    Attributes
    ----------
    group : str
        Named group of the layout's pattern.
    mapping : Mapping[str, str] or None
        Lower-cased group value → record value; values missing from the map become null.
        ``None`` keeps the group value as it is.
    """

    group: str
    mapping: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Layout:
    """How one source names its image files, and what the names say.

    Attributes
    ----------
    suffixes : tuple of str
        Image suffixes to walk (case-insensitive).
    pattern : str
        Regular expression matched (case-insensitively) against the whole path relative
        to the raw root, with forward slashes. Named groups feed :attr:`key`,
        :attr:`columns` and :attr:`derived`; ``folder`` is the part above the file.
    key : str
        Template of the record key, e.g. ``"{folder}{well}_s{site}"``; must identify a
        field (or a file when ``merge`` is false).
    channel : str or None
        Group holding the channel token; ``None`` for one-file fields.
    channels : tuple of str
        Channel tokens in the catalog's channel order (names come from the catalog).
        Matched files with another token (a channel the source publishes but CytoImageNet
        leaves out) are dropped without a warning.
    merge : bool
        Group a field's channel files into one record (else one record per file).
    columns : Mapping[str, str]
        Templates of ``plate`` / ``well`` / ``site``.
    derived : Mapping[str, Derived]
        Label or ``control`` columns taken from groups.
    channel_labels : Mapping[str, Mapping[str, str]]
        Per channel token, constant label columns (used when ``merge`` is false).
    exclude : tuple of (str, str)
        ``(regex on the relative path, reason)``: matching files are recorded, never labelled.
    ignore : tuple of str
        Regexes of files known not to be source images (merged previews, masks).
    """

    suffixes: tuple[str, ...]
    pattern: str
    key: str
    channel: str | None = None
    channels: tuple[str, ...] = ()
    merge: bool = True
    columns: Mapping[str, str] = field(default_factory=dict)
    derived: Mapping[str, Derived] = field(default_factory=dict)
    channel_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    exclude: tuple[tuple[str, str], ...] = ()
    ignore: tuple[str, ...] = ()


def _template(template: str) -> pl.Expr:
    """Turn ``"{a}_s{b}"`` into a concatenation of group columns and literals."""
    parts: list[pl.Expr] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if name:
            parts.append(pl.col(name).fill_null(""))
    return pl.concat_str(parts)


class PathPatternAdapter(SourceAdapter):
    """Read a source whose labels live in folder and file names (see :class:`Layout`)."""

    needs_images = True

    def __init__(self, name: str, layout: Layout) -> None:
        super().__init__(name)
        self.layout = layout

    def _match(self, raw: Path) -> pl.DataFrame:
        """Return one row per matched file, with its regex groups as columns."""
        lay = self.layout
        files = self.image_files(raw, lay.suffixes)
        rel = pl.Series("file", [p.relative_to(raw).as_posix() for p in files])
        pattern = f"(?i)^{lay.pattern}$"
        table = pl.DataFrame([rel]).with_columns(rel.str.extract_groups(pattern).struct.unnest())
        hit = rel.str.contains(pattern)
        if lay.ignore:
            known = rel.str.contains(f"(?i)(?:{'|'.join(lay.ignore)})")
            odd = table.filter(~hit & ~known)["file"]
        else:
            odd = table.filter(~hit)["file"]
        if not hit.any():
            raise MetadataError(
                f"{raw}: none of the {len(files)} image files of source {self.name!r} is "
                f"named as the source publishes them; expected paths matching {pattern} "
                f"(e.g. {self.info.file_pattern}); found e.g. {rel.head(3).to_list()}"
            )
        if odd.len():
            log.warning(
                "%s: %d file(s) of %s do not follow its naming and were skipped, e.g. %s",
                raw,
                odd.len(),
                self.name,
                odd.head(3).to_list(),
            )
        return table.filter(hit)

    def read(self, raw: Path) -> pl.DataFrame:
        """Return one record per field (or per file), labelled from its path."""
        lay = self.layout
        names = self.info.channels
        if lay.channel is not None and len(lay.channels) != len(names):
            raise MetadataError(
                f"layout of {self.name!r} lists channel tokens {lay.channels} but the "
                f"catalog lists channels {names}"
            )
        table = self._match(raw)
        if lay.channel is None:
            table = table.with_columns(pl.lit("").alias("_ch"))
            tokens: tuple[str, ...] = ("",)
        else:
            table = table.with_columns(pl.col(lay.channel).str.to_lowercase().alias("_ch"))
            tokens = tuple(t.lower() for t in lay.channels)
        order = {t: i for i, t in enumerate(tokens)}
        channel_names = dict(zip(tokens, names or [""] * len(tokens), strict=False))
        table = (
            table.filter(pl.col("_ch").is_in(list(tokens)))
            .with_columns(
                _template(lay.key).alias("key"),
                pl.col("_ch").replace_strict(order, return_dtype=pl.Int32).alias("_order"),
                pl.col("_ch").replace_strict(channel_names, default=None).alias("_name"),
                *(_template(t).alias(c) for c, t in lay.columns.items()),
                *(self._derived(c, d) for c, d in lay.derived.items()),
                self._exclude_expr(),
            )
            .sort("key", "_order", "file")
            .unique(subset=["key", "_ch"], keep="first", maintain_order=True)
        )
        if not lay.merge:
            table = table.with_columns(self._channel_label_exprs())
            group_key = ["key", "_ch"]
        else:
            group_key = ["key"]
        kept = [*lay.columns, *lay.derived, *self._channel_label_columns()]
        records = table.group_by(group_key, maintain_order=True).agg(
            pl.col("file").alias("channel_paths"),
            pl.col("_name").alias("channels"),
            pl.col("_excluded").drop_nulls().first().alias("_excluded"),
            *(pl.col(c).first() for c in kept),
        )
        return self._finish(records, tokens if lay.merge else ())

    def _derived(self, column: str, rule: Derived) -> pl.Expr:
        expr = pl.col(rule.group)
        if rule.mapping is not None:
            # Map keys are lower-case: published folder names vary in case.
            expr = expr.str.to_lowercase().replace_strict(
                dict(rule.mapping), default=None, return_dtype=pl.String
            )
        return expr.alias(column)

    def _exclude_expr(self) -> pl.Expr:
        expr = pl.lit(None, dtype=pl.String)
        for pattern, reason in reversed(self.layout.exclude):
            expr = (
                pl.when(pl.col("file").str.contains(f"(?i){pattern}"))
                .then(pl.lit(reason))
                .otherwise(expr)
            )
        return expr.alias("_excluded")

    def _channel_label_columns(self) -> list[str]:
        return sorted({c for labels in self.layout.channel_labels.values() for c in labels})

    def _channel_label_exprs(self) -> list[pl.Expr]:
        out = []
        for column in self._channel_label_columns():
            values = {t.lower(): v.get(column) for t, v in self.layout.channel_labels.items()}
            out.append(pl.col("_ch").replace_strict(values, default=None).alias(column))
        return out

    def _finish(self, records: pl.DataFrame, expected: tuple[str, ...]) -> pl.DataFrame:
        """Add path, filename and exclude_reason; drop helper columns."""
        first = pl.col("channel_paths").list.first()
        missing = pl.lit(None, dtype=pl.String)
        if len(expected) > 1:
            absent = pl.lit(list(self.info.channels), dtype=pl.List(pl.String))
            absent = absent.list.set_difference(pl.col("channels")).list.sort()
            missing = (
                pl.when(absent.list.len() > 0)
                .then(pl.lit("missing channel file(s): ") + absent.list.join(", "))
                .otherwise(None)
            )
        # A multi-file field is named by its key's last part (the field stem).
        stem = pl.col("key") if len(expected) > 1 else first
        records = records.with_columns(
            first.str.extract(r"^(.*)/[^/]+$").fill_null(".").alias("path"),
            stem.str.extract(r"([^/]+)$").alias("filename"),
            pl.coalesce(pl.col("_excluded"), missing).alias("exclude_reason"),
        ).drop("_excluded", "_ch", strict=False)
        if self.layout.channel is None:
            # One file holds the whole field: the catalog's channel list applies.
            records = records.drop("channels")
        return records
