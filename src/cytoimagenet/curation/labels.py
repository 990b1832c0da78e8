"""Weak-label assignment: least-count-first, exact tokens, one label per image.

The algorithm of the CytoImageNet paper (§2.1), with the original code's defects removed
(see ``original-code.md`` §2.6):

1. **Candidates** are the values of the chosen label fields (multi-valued fields split)
   held by at least ``threshold`` images, counted on exact harmonised tokens.
2. Candidates are processed **least count first**; ties break by the category order of
   :data:`~cytoimagenet.schema.LABEL_FIELDS`, then by the value — never by an unstable sort.
3. Each image gets **at most one label**: images taken by an earlier label are gone (the
   used-index table). A candidate left with fewer than ``threshold`` images is skipped.
4. Labels with more than ``class_size`` images are **down-sampled, stratified**: above
   ``stage1_size`` images a first stage on (dataset, organism, cell_type) minus the label's
   own field; then to ``class_size`` on the remaining label fields (the table in
   ``original-code.md`` §2.6). Allocation is largest-remainder and seeded
   (:mod:`cytoimagenet.curation.sampling`).
5. Excluded rows (held-out evaluation datasets, known overlaps, source QC failures) never
   enter, whatever the table's own columns say; nor do control rows (non-null ``control``:
   vehicle, negative, positive, empty wells) unless ``include_controls`` is set.
6. A candidate that is only digits (an anonymised id such as RxRx1's ``1138``) is refused
   and reported, whatever its field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cytoimagenet.curation.dose import dose_text
from cytoimagenet.curation.exclusion import is_excluded
from cytoimagenet.curation.strata import downsample, stratum_codes
from cytoimagenet.curation.user_tables import Blocked, Synonym, apply_synonyms, blocked_labels
from cytoimagenet.errors import ConfigError
from cytoimagenet.schema import LABEL_FIELDS, OPTIONAL_LABEL_FIELDS, conform, validate

OPTIONAL_FIELDS: tuple[str, ...] = OPTIONAL_LABEL_FIELDS
#: Every field a label can come from, in tie-break order.
CATEGORY_ORDER: tuple[str, ...] = (*LABEL_FIELDS, *OPTIONAL_FIELDS)
#: A label that is only digits names nothing a reader can check.
BARE_NUMBER = re.compile(r"^\d+$")
REFUSED_NUMBER = "refused: bare number (an id, not a name)"


@dataclass(frozen=True)
class LabelOptions:
    """Parameters of the weak-label assignment.

    Attributes
    ----------
    threshold : int
        Minimum number of images of a candidate, before and after earlier labels.
    class_size : int
        Maximum images per label.
    seed : int
        Seed of every random draw.
    categories : tuple of str
        Label fields to draw candidates from: a subset of ``LABEL_FIELDS``, plus ``moa``
        or ``condition`` if asked for (:data:`OPTIONAL_FIELDS`).
    min_class_size : int or None
        Drop a label whose final size would be below this (defaults to ``threshold``).
    stage1_size : int
        Size above which the first, coarse stratification stage runs.
    exclude_labels : tuple of str
        Candidate values never used as labels.
    unseen_classes : int
        Also build this many held-out "unseen" classes from candidates *below* the
        threshold (most images first), drawn only from images no label took.
    unseen_min_size : int
        Smallest unseen class kept.
    split_by_dose : bool
        Compound labels per (compound, concentration): ``taxol 0.3 uM``. Rows without a
        dose keep the plain compound label.
    synonyms : tuple of Synonym
        The user's synonyms (:func:`~cytoimagenet.curation.user_tables.read_synonyms`),
        applied to the harmonised tokens before counting.
    blocklist : tuple of Blocked
        Values that never become labels (nor, split by dose, their dose labels).
    include_controls : bool
        Let control rows (non-null ``control``) be labelled too. Off by default: a vehicle
        or a control siRNA is the absence of a treatment, not a class.
    """

    threshold: int = 287
    class_size: int = 1000
    seed: int = 0
    categories: tuple[str, ...] = LABEL_FIELDS
    min_class_size: int | None = None
    stage1_size: int = 10_000
    exclude_labels: tuple[str, ...] = ()
    unseen_classes: int = 0
    unseen_min_size: int = 50
    split_by_dose: bool = False
    synonyms: tuple[Synonym, ...] = ()
    blocklist: tuple[Blocked, ...] = ()
    include_controls: bool = False

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in CATEGORY_ORDER]
        if unknown:
            raise ConfigError(
                f"unknown label categories {unknown}; choose from {list(CATEGORY_ORDER)}"
            )
        if self.threshold < 1 or self.class_size < 1:
            raise ConfigError("threshold and class_size must be positive")
        if self.class_size < self.threshold:
            raise ConfigError(f"class_size {self.class_size} is below threshold {self.threshold}")
        if self.stage1_size < self.class_size:
            raise ConfigError("stage1_size must be at least class_size")

    @property
    def minimum(self) -> int:
        """The smallest final class allowed."""
        return max(self.threshold, self.min_class_size or 0)


@dataclass
class LabelResult:
    """Output of :func:`assign_labels`.

    Attributes
    ----------
    table : polars.DataFrame
        Unified-schema rows of the selected images, ``label`` and ``category`` filled.
    candidates : polars.DataFrame
        Every candidate with its initial count, images left when its turn came, images
        taken, and ``status`` (``labelled`` or the reason it was skipped).
    unseen : polars.DataFrame
        Rows of the held-out unseen classes (empty unless requested).
    controls : polars.DataFrame
        Control rows left out of the pool: ``dir_name``, ``control`` (kind), ``images``.
    """

    table: pl.DataFrame
    candidates: pl.DataFrame
    options: LabelOptions = field(default_factory=LabelOptions)
    unseen: pl.DataFrame = field(default_factory=pl.DataFrame)
    controls: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"dir_name": pl.String, "control": pl.String, "images": pl.UInt32}
        )
    )


def _tokens(pool: pl.DataFrame, options: LabelOptions) -> pl.DataFrame:
    """Return every (label, category) with its base value, sorted image rows and count.

    ``base`` is the harmonised value; it differs from ``label`` only for dose labels.
    """
    frames = []
    for rank, category in enumerate(CATEGORY_ORDER):
        if category not in options.categories:
            continue
        tokens = pool.select(pl.col("_row"), pl.col(category).alias("base"))
        label = pl.col("base")
        if options.split_by_dose and category == "compound":
            tokens = tokens.with_columns(dose_text(pool).alias("_dose"))
            label = (
                pl.when(pl.col("_dose").is_null())
                .then(label)
                .otherwise(label + " " + pl.col("_dose"))
            )
        tokens = (
            tokens.explode("base")
            .drop_nulls("base")
            .select("_row", "base", label.alias("label"))
            .unique()
        )
        grouped = tokens.group_by("label").agg(
            pl.col("_row").sort().alias("rows"), pl.col("base").first()
        )
        frames.append(
            grouped.with_columns(
                pl.lit(category).alias("category"),
                pl.lit(rank).alias("_rank"),
                pl.col("rows").list.len().alias("images"),
            )
        )
    if not frames:
        schema = {
            "label": pl.String,
            "rows": pl.List(pl.UInt32),
            "base": pl.String,
            "category": pl.String,
            "_rank": pl.Int32,
            "images": pl.UInt32,
        }
        return pl.DataFrame(schema=schema)
    return pl.concat(frames)


def select_pool(
    tables: Sequence[pl.DataFrame], *, include_controls: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Concatenate unified tables and keep the rows that may be labelled.

    Parameters
    ----------
    tables : sequence of polars.DataFrame
        Unified metadata tables.
    include_controls : bool
        Keep control rows (non-null ``control``) in the pool.

    Returns
    -------
    pool : polars.DataFrame
        The rows that may be labelled.
    controls : polars.DataFrame
        Control rows left out (none when ``include_controls``), counted per
        ``dir_name`` and ``control`` kind in ``images``.

    Raises
    ------
    SchemaError
        If a table breaks the schema or two tables share an ``idx``.
    """
    merged = pl.concat([conform(t) for t in tables], how="vertical") if tables else pl.DataFrame()
    validate(merged, what="the merged metadata")
    pool = merged.filter(~is_excluded(merged))
    is_control = pl.col("control").is_not_null() & pl.lit(not include_controls)
    controls = (
        pool.filter(is_control)
        .group_by("dir_name", "control")
        .agg(pl.len().alias("images"))
        .sort("dir_name", "control")
    )
    return pool.filter(~is_control), controls


def assign_labels(
    tables: Sequence[pl.DataFrame], options: LabelOptions | None = None
) -> LabelResult:
    """Assign weak labels to the images of ``tables``.

    Parameters
    ----------
    tables : sequence of polars.DataFrame
        Unified metadata tables (one per source, or already merged).
    options : LabelOptions, optional
        Threshold, class size, seed and the rest.

    Returns
    -------
    LabelResult
        The labelled rows and the fate of every candidate.
    """
    options = options or LabelOptions()
    pool, controls = select_pool(tables, include_controls=options.include_controls)
    if options.synonyms:
        pool = apply_synonyms(pool, options.synonyms)
    pool = pool.with_row_index("_row")
    n = pool.height
    used = np.zeros(n, dtype=bool)
    label_of = np.full(n, -1, dtype=np.int64)
    codes = stratum_codes(pool)
    tokens = _tokens(pool, options)
    cands = tokens.filter(pl.col("images") >= options.threshold).sort(["images", "_rank", "label"])
    names: list[tuple[str, str]] = []
    fate: list[dict[str, object]] = []
    taken_names: dict[str, str] = {}
    excluded = set(options.exclude_labels)
    blocked = {(b.category, b.value): b.reason for b in options.blocklist}
    for row in cands.iter_rows(named=True):
        label, category = row["label"], row["category"]
        # Blocked values are lower-case tokens; dose labels write their unit as 'uM'.
        block = blocked.get((category, row["base"]), blocked.get((category, label.lower())))
        rows = np.asarray(row["rows"], dtype=np.int64)
        available = rows[~used[rows]]
        record = {
            "label": label,
            "category": category,
            "images": row["images"],
            "available": len(available),
        }
        if label in excluded:
            fate.append({**record, "taken": 0, "status": "excluded by option"})
            continue
        if BARE_NUMBER.match(label):
            fate.append({**record, "taken": 0, "status": REFUSED_NUMBER})
            continue
        if block is not None:
            fate.append({**record, "taken": 0, "status": f"blocked: {block}"})
            continue
        if label in taken_names:
            fate.append(
                {**record, "taken": 0, "status": f"name already labelled from {taken_names[label]}"}
            )
            continue
        if len(available) < options.minimum:
            why = (
                "below threshold after earlier labels"
                if len(available) < options.threshold
                else "below min class size"
            )
            fate.append({**record, "taken": 0, "status": why})
            continue
        chosen = downsample(
            available,
            category,
            label,
            codes,
            class_size=options.class_size,
            stage1_size=options.stage1_size,
            seed=options.seed,
        )
        used[chosen] = True
        label_of[chosen] = len(names)
        names.append((label, category))
        taken_names[label] = category
        fate.append({**record, "taken": len(chosen), "status": "labelled"})
    table = _labelled_table(pool, label_of, names)
    never = set(taken_names) | excluded | blocked_labels(tokens, blocked)
    unseen = _unseen(pool, tokens, used, never, options)
    schema = {
        "label": pl.String,
        "category": pl.String,
        "images": pl.Int64,
        "available": pl.Int64,
        "taken": pl.Int64,
        "status": pl.String,
    }
    candidates = pl.DataFrame(fate, schema=schema)
    return LabelResult(
        table=table, candidates=candidates, options=options, unseen=unseen, controls=controls
    )


def _unseen(
    pool: pl.DataFrame,
    tokens: pl.DataFrame,
    used: np.ndarray,
    taken: set[str],
    options: LabelOptions,
) -> pl.DataFrame:
    """Build held-out classes from candidates below the threshold, most images first."""
    if options.unseen_classes <= 0:
        return conform(pool.head(0))
    below = tokens.filter(
        (pl.col("images") < options.threshold) & ~pl.col("label").is_in(list(taken))
    ).sort(["images", "_rank", "label"], descending=[True, False, False])
    used = used.copy()
    label_of = np.full(len(used), -1, dtype=np.int64)
    names: list[tuple[str, str]] = []
    for row in below.iter_rows(named=True):
        if len(names) >= options.unseen_classes:
            break
        if row["label"] in {n for n, _ in names} or BARE_NUMBER.match(row["label"]):
            continue
        rows = np.asarray(row["rows"], dtype=np.int64)
        available = rows[~used[rows]]
        if len(available) < options.unseen_min_size:
            continue
        used[available] = True
        label_of[available] = len(names)
        names.append((row["label"], row["category"]))
    return _labelled_table(pool, label_of, names)


def _labelled_table(
    pool: pl.DataFrame, label_of: np.ndarray, names: list[tuple[str, str]]
) -> pl.DataFrame:
    picked = np.flatnonzero(label_of >= 0)
    ids = label_of[picked]
    labels = pl.Series("label", [names[i][0] for i in ids], dtype=pl.String)
    cats = pl.Series("category", [names[i][1] for i in ids], dtype=pl.String)
    table = pool[picked].with_columns(labels, cats).drop("_row")
    return conform(table).sort(["label", "idx"])
