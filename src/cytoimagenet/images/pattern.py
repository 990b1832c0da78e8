r"""Image tables from a plate folder and a filename pattern with named fields.

A pattern is a path relative to the folder with ``{field}`` placeholders, e.g.
``{plate}/{well}_s{site}_w{channel}.tif``. A field matches any text without ``/`` (as little
as the rest of the pattern allows); ``{field:REGEX}`` gives its own expression, e.g.
``{site:\d+}``. A field used twice must match the same text both times. Files that differ only
in ``{channel}`` are the channels of one image: one row per value of all the other fields,
whose values become ``Metadata_<Field>`` columns (``{plate}`` → ``Metadata_Plate``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import polars as pl

from cytoimagenet.errors import ConfigError
from cytoimagenet.imaging.readers import READERS

#: The field whose values are an image's channels.
CHANNEL: Final = "channel"

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::((?:[^{}]|\{\d*,?\d*\})+))?\}")
_SHOWN: Final = 3


@dataclass(frozen=True)
class Pattern:
    """A compiled filename pattern: its expression and its fields in order."""

    text: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The fields that identify an image (all but ``channel``)."""
        return tuple(f for f in self.fields if f != CHANNEL)


def compile_pattern(text: str) -> Pattern:
    r"""Compile a filename pattern into a regular expression with named groups.

    Raises
    ------
    ConfigError
        When the pattern has no fields, an unbalanced brace, or a field's own expression is
        not a valid regular expression.

    Examples
    --------
    >>> p = compile_pattern(r"{plate}/{well}_s{site:\d+}_w{channel}.tif")
    >>> p.fields, p.keys
    (('plate', 'well', 'site', 'channel'), ('plate', 'well', 'site'))
    >>> p.regex.fullmatch("P1/B02_s3_w1.tif").groupdict()
    {'plate': 'P1', 'well': 'B02', 'site': '3', 'channel': '1'}
    """
    parts: list[str] = []
    fields: list[str] = []
    pos = 0
    for match in _FIELD.finditer(text):
        literal = text[pos : match.start()]
        if "{" in literal or "}" in literal:
            break
        parts.append(re.escape(literal))
        name, own = match.group(1), match.group(2)
        if name in fields:
            parts.append(f"(?P={name})")
        else:
            fields.append(name)
            parts.append(f"(?P<{name}>{own or '[^/]+?'})")
        pos = match.end()
    rest = text[pos:]
    if "{" in rest or "}" in rest:
        raise ConfigError(
            f"--pattern {text!r}: unbalanced or malformed braces near {rest[:20]!r}; write "
            "fields as {name} or {name:REGEX}"
        )
    if not fields:
        raise ConfigError(
            f"--pattern {text!r} has no {{field}}; e.g. "
            "'{plate}/{well}_s{site}_w{channel}.tif'"
        )
    parts.append(re.escape(rest))
    try:
        regex = re.compile("".join(parts))
    except re.error as exc:
        raise ConfigError(f"--pattern {text!r}: a field's expression is invalid ({exc})") from None
    return Pattern(text, regex, tuple(fields))


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``w2`` before ``w10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def metadata_name(name: str) -> str:
    """``plate`` → ``Metadata_Plate``; a name that has the prefix is kept."""
    if name.startswith("Metadata_"):
        return name
    return f"Metadata_{name[:1].upper()}{name[1:]}"


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = len(items) - _SHOWN
    return shown + (f" … and {more} more" if more > 0 else "")


@dataclass
class ScanResult:
    """Images found by a pattern: the table (absolute paths) and what was set aside."""

    table: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _image_files(folder: Path) -> list[str]:
    files = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(p.startswith(".") for p in rel.split("/")):
            files.append(rel)
    return sorted(files)


def _match_files(
    folder: Path, pattern: Pattern, channels: Sequence[str] | None, ignore_unmatched: bool
) -> tuple[dict[tuple[str, ...], dict[str, str]], list[str]]:
    """Group matching files by their key fields: key → channel → relative path."""
    groups: dict[tuple[str, ...], dict[str, str]] = defaultdict(dict)
    unmatched: list[str] = []
    unlisted = 0
    for rel in _image_files(folder):
        match = pattern.regex.fullmatch(rel)
        if match is None:
            if Path(rel).suffix.lower() in READERS:
                unmatched.append(rel)
            continue
        values = match.groupdict()
        channel = values.get(CHANNEL, "all")
        if channels is not None and channel not in channels:
            unlisted += 1
            continue
        # every character of a match is in a field or the pattern's literal text, so no two
        # files share all fields
        groups[tuple(values[k] for k in pattern.keys)][channel] = rel
    notes = []
    if unmatched and not ignore_unmatched:
        raise ConfigError(
            f"{len(unmatched)} image file(s) under {folder} match no --pattern "
            f"{pattern.text!r}: {_listing(unmatched)}; fix the pattern, or pass "
            "--ignore-unmatched to leave them out"
        )
    if unmatched:
        notes.append(f"{len(unmatched)} image file(s) match no pattern, left out")
    if unlisted:
        notes.append(f"{unlisted} file(s) of channels not in --channels, left out")
    return groups, notes


def scan_folder(
    folder: Path,
    pattern: Pattern,
    *,
    channels: Sequence[str] | None = None,
    allow_incomplete: bool = False,
    ignore_unmatched: bool = False,
) -> ScanResult:
    """Find the images of ``folder`` that ``pattern`` names, one row per image.

    Parameters
    ----------
    folder : Path
        The plate folder; the pattern is matched against paths relative to it.
    pattern : Pattern
        From :func:`compile_pattern`.
    channels : sequence of str, optional
        Values of ``{channel}`` to use, in this order; other channels are left out.
        Default: every value found, in natural order (``w2`` before ``w10``).
    allow_incomplete : bool
        Drop images that lack a channel (listed in ``dropped``) instead of failing.
    ignore_unmatched : bool
        Leave out image files the pattern does not match instead of failing.

    Returns
    -------
    ScanResult
        ``Metadata_<Field>`` columns (text), ``channels`` and ``channel_paths`` (lists;
        absolute paths), sorted by the fields in natural order.

    Raises
    ------
    ConfigError
        When nothing matches, image files match no pattern, or images lack channels.
    """
    groups, notes = _match_files(folder, pattern, channels, ignore_unmatched)
    if not groups:
        raise ConfigError(
            f"no file under {folder} matches --pattern {pattern.text!r}"
            + (f" with a channel in {list(channels)}" if channels else "")
            + f"; files there: {_listing(_image_files(folder)) or 'none'}"
        )
    order = (
        list(channels)
        if channels
        else sorted({c for g in groups.values() for c in g}, key=natural_key)
    )
    keys = sorted(groups, key=lambda k: tuple(natural_key(v) for v in k))
    incomplete = []
    rows = []
    for key in keys:
        missing = [c for c in order if c not in groups[key]]
        if missing:
            where = " ".join(f"{k}={v}" for k, v in zip(pattern.keys, key, strict=True))
            incomplete.append(f"{where or 'image'} lacks channel(s) {', '.join(missing)}")
            continue
        rows.append((*key, [str(folder / groups[key][c]) for c in order]))
    if incomplete and not allow_incomplete:
        raise ConfigError(
            f"{len(incomplete)} image(s) lack channels of {order}: {_listing(incomplete)}; "
            "pass --allow-incomplete to drop them, or --channels to choose channels"
        )
    if not rows:
        raise ConfigError(f"every image under {folder} lacks a channel of {order}")
    names = [metadata_name(k) for k in pattern.keys]
    table = pl.DataFrame(
        {n: [r[i] for r in rows] for i, n in enumerate(names)}
        | {
            "channels": [order] * len(rows),
            "channel_paths": [r[-1] for r in rows],
        },
        schema={
            **dict.fromkeys(names, pl.String),
            "channels": pl.List(pl.String),
            "channel_paths": pl.List(pl.String),
        },
    )
    return ScanResult(table, notes, incomplete)
