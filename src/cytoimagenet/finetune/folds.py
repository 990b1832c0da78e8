"""Cross-validation folds: leave-one-compound-out (BBBC021), across cell lines (BBBC014).

A fold holds out every row of some ``group`` values: a compound (all its concentrations) for
BBBC021, as Kensert et al. did over the 38 annotated compounds — DMSO is never in a fold,
it only normalises plates — or a cell line for BBBC014 (train on MCF7, test on A549, and the
reverse). Training rows are all the other treated rows; there is no validation split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes
    ----------
    index : int
        Position among the dataset's folds (0-based).
    name : str
        Folder name under ``RUN_DIR/folds`` (a slug of the held-out group).
    held_out : str
        The ``group`` value tested (compound or cell line).
    """

    index: int
    name: str
    held_out: str


def slug(text: str) -> str:
    """Folder-safe, lower-case name of a group.

    Examples
    --------
    >>> slug("cytochalasin B"), slug("PD-169316"), slug("5-fluorouracil")
    ('cytochalasin-b', 'pd-169316', '5-fluorouracil')
    """
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "group"


def make_folds(fields: pl.DataFrame) -> list[Fold]:
    """One fold per ``group`` of the treated fields, in sorted (case-insensitive) order.

    Raises
    ------
    ConfigError
        With fewer than two groups, or two groups whose folder names collide.
    """
    treated = fields.filter(pl.col("role") == "treated")
    groups = sorted(treated["group"].unique().to_list(), key=lambda g: (g.lower(), g))
    if len(groups) < 2:
        raise ConfigError(f"cross-validation needs two or more groups, found {groups}")
    folds = [Fold(i, slug(g), g) for i, g in enumerate(groups)]
    names = [f.name for f in folds]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"groups {dupes} give the same fold folder name")
    return folds


def select_folds(folds: Sequence[Fold], spec: str) -> list[Fold]:
    """Pick folds by ``all`` or a comma list of indices (0-based), names or held-out groups.

    Examples
    --------
    >>> fs = [Fold(0, "a549", "A549"), Fold(1, "mcf7", "MCF7")]
    >>> [f.name for f in select_folds(fs, "1")], [f.name for f in select_folds(fs, "A549")]
    (['mcf7'], ['a549'])

    Raises
    ------
    ConfigError
        For an index or name that is no fold.
    """
    if spec.strip().lower() == "all":
        return list(folds)
    chosen: dict[int, Fold] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        hits = [f for f in folds if item in (f.name, f.held_out) or slug(item) == f.name]
        if not hits and item.isdigit() and int(item) < len(folds):
            hits = [folds[int(item)]]
        if not hits:
            raise ConfigError(
                f"--folds {item!r}: no such fold; give indices 0-{len(folds) - 1} or names "
                f"such as {', '.join(f.name for f in folds[:3])}"
            )
        chosen.update({f.index: f for f in hits})
    if not chosen:
        raise ConfigError(f"--folds {spec!r} selects no fold")
    return [chosen[i] for i in sorted(chosen)]


def split(index: pl.DataFrame, fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    """Return the train and test row numbers of a crop (or field) table for ``fold``.

    Only treated rows take part; the test rows are those of the held-out group.
    """
    group = index["group"].to_numpy()
    treated = (index["role"] == "treated").to_numpy()
    test = treated & (group == fold.held_out)
    train = treated & (group != fold.held_out)
    return np.flatnonzero(train), np.flatnonzero(test)
