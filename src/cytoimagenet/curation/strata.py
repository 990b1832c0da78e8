"""The two-stage stratified down-sampling of a large label (``original-code.md`` §2.6).

Above ``stage1_size`` images a first stage samples on (dataset, organism, cell_type) minus the
label's own field; then to ``class_size`` on the remaining label fields. Allocation is
largest-remainder (:mod:`cytoimagenet.curation.sampling`); each label draws from its own
generator, seeded from ``(seed, sha256(category, label))``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from cytoimagenet.curation.sampling import group_codes, stratified_sample

#: Stage-2 strata before removals (the original's list; gene is never a stratum).
STAGE2_BASE: tuple[str, ...] = (
    "organism",
    "cell_type",
    "cell_visible",
    "sirna",
    "compound",
    "phenotype",
)
#: Stage-1 strata before removing the label's own field.
STAGE1_BASE: tuple[str, ...] = ("dir_name", "organism", "cell_type")
#: Fields dropped from stage 2 when labelling by a field (siRNA and compound are exclusive).
EXCLUSIVE: dict[str, str] = {"sirna": "compound", "compound": "sirna"}


def stage2_strata(category: str, stage1_ran: bool) -> list[str]:
    """Return the stage-2 strata of a label from ``category`` (original-code.md §2.6).

    Examples
    --------
    >>> stage2_strata("compound", stage1_ran=False)
    ['organism', 'cell_type', 'cell_visible', 'phenotype']
    >>> stage2_strata("compound", stage1_ran=True)
    ['cell_visible', 'phenotype']
    """
    cols = [c for c in STAGE2_BASE if c != category]
    if stage1_ran:
        cols = [c for c in cols if c not in stage1_strata(category)]
    if category in EXCLUSIVE:
        cols = [c for c in cols if c != EXCLUSIVE[category]]
    return cols


def stage1_strata(category: str) -> list[str]:
    """Return the stage-1 strata of a label from ``category``."""
    return [c for c in STAGE1_BASE if c != category]


def label_rng(seed: int, category: str, label: str) -> np.random.Generator:
    """Return the generator of one label, keyed by a stable hash of its category and name."""
    # One generator per label, keyed by a stable hash: a label's draw does not depend on
    # Python's hash seed or on how many random numbers earlier labels consumed.
    digest = hashlib.sha256(f"{category}\x00{label}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def stratum_codes(pool: pl.DataFrame) -> dict[str, np.ndarray]:
    """Return dense integer codes of every stratum field of ``pool`` (lists ``|``-joined)."""
    codes = {}
    for col in set(STAGE1_BASE) | set(STAGE2_BASE):
        values = pool[col].list.join("|") if isinstance(pool.schema[col], pl.List) else pool[col]
        codes[col] = values.fill_null("").rank("dense").cast(pl.Int64).to_numpy()
    return codes


def downsample(
    rows: np.ndarray,
    category: str,
    label: str,
    codes: dict[str, np.ndarray],
    *,
    class_size: int,
    stage1_size: int,
    seed: int,
) -> np.ndarray:
    """Return at most ``class_size`` of ``rows`` (pool positions), stratified in two stages.

    Above ``stage1_size`` rows a first stage samples ``stage1_size`` on
    :func:`stage1_strata`; then ``class_size`` on :func:`stage2_strata`. ``codes`` holds the
    dense stratum codes of every pool row (:func:`stratum_codes`).
    """
    if len(rows) <= class_size:
        return rows
    rng = label_rng(seed, category, label)
    stage1_ran = len(rows) > stage1_size
    if stage1_ran:
        groups = group_codes([codes[c][rows] for c in stage1_strata(category)])
        rows = rows[stratified_sample(groups, stage1_size, rng)]
    strata = stage2_strata(category, stage1_ran)
    groups = (
        group_codes([codes[c][rows] for c in strata]) if strata else np.zeros(len(rows), np.int64)
    )
    return rows[stratified_sample(groups, class_size, rng)]
