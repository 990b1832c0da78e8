"""Mean average precision (mAP) with copairs: phenotypic activity and phenotypic consistency.

The field's retrieval metrics (Kalinin et al. 2025, the copairs package), computed by copairs
itself — nothing here re-implements them:

*phenotypic activity*
    each replicate profile of a treatment ranks every other profile by similarity; its
    positives are the other replicates of the treatment, its negatives the control profiles.
    AP per replicate, mAP per treatment: how well the treatment's replicates stand out
    from the controls.
*phenotypic consistency*
    each treatment profile ranks the other treatments; its positives share its annotation
    (e.g. the MoA) but not its compound, its negatives have another annotation. mAP per
    annotation: whether treatments of one mechanism look alike (the retrieval version of
    BBBC021's not-same-compound kNN).

Each mAP gets copairs' permutation p-value (``null_size`` draws of random rank lists of
the same positives and total) and Benjamini–Hochberg FDR-corrected p-values over the groups.
copairs is an optional dependency (``pip install 'cytoimagenet[profiles]'``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any, Final

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.checks import check_identical

EXTRA: Final = "pip install 'cytoimagenet[profiles]'"
DISTANCES: Final = ("cosine", "correlation", "euclidean")
_REF, _CONTROL = "Metadata_cin_reference_index", "Metadata_cin_is_control"


def require_copairs() -> ModuleType:
    """Return ``copairs.map``, or raise a :class:`ConfigError` naming the extra to install."""
    try:
        import copairs.map as copairs_map
    except ImportError as exc:
        raise ConfigError(
            f"mAP needs copairs, which is not installed ({exc}); install the profiles extra: "
            f"{EXTRA}"
        ) from None
    return copairs_map


@dataclass(frozen=True)
class MapSettings:
    """How mAP is computed.

    Attributes
    ----------
    distance : {"cosine", "correlation", "euclidean"}
        copairs' similarity of two profiles.
    null_size : int
        Random rank lists per null distribution (the smallest p-value is ``1/(null_size+1)``).
    threshold : float
        FDR level: a group is significant when its corrected p-value is below it.
    seed : int
        Seed of the null distributions.
    """

    distance: str = "cosine"
    null_size: int = 10_000
    threshold: float = 0.05
    seed: int = 0

    def block(self) -> dict[str, object]:
        """Return the settings for RESULT.json, with the copairs version."""
        from importlib.metadata import version

        return {**asdict(self), "fdr": "benjamini-hochberg", "copairs": version("copairs")}


def _group_name(row: Sequence[object]) -> str:
    return " | ".join(str(v) for v in row)


def _summarise(
    maps: Any, keys: list[str], settings: MapSettings, unit: str, profiles: int
) -> dict[str, object]:
    """RESULT.json entry of one mAP analysis from copairs' per-group table."""
    groups = []
    for rec in maps.to_dict("records"):
        groups.append(
            {
                "group": _group_name([rec[k] for k in keys]),
                "map": float(rec["mean_average_precision"]),
                "p_value": float(rec["p_value"]),
                "corrected_p_value": float(rec["corrected_p_value"]),
                "significant": bool(rec["corrected_p_value"] < settings.threshold),
            }
        )
    groups.sort(key=lambda g: g["group"])
    significant = sum(g["significant"] for g in groups)
    return {
        "map": float(np.mean([g["map"] for g in groups])),
        "groups": len(groups),
        "significant": significant,
        "fraction_significant": significant / len(groups),
        "threshold": settings.threshold,
        "unit": unit,
        "profiles": profiles,
        "per_group": groups,
    }


def _run(
    meta: Any,
    x: np.ndarray,
    pairs: tuple[list[str], list[str], list[str], list[str]],
    keep: Any,
    keys: list[str],
    settings: MapSettings,
    source: str,
    what: str,
) -> Any:
    """Run copairs' AP then mAP (with p-values and FDR); refuse unpaired input in one line."""
    copairs_map = require_copairs()
    from copairs.matching import UnpairedException

    pos_same, pos_diff, neg_same, neg_diff = pairs
    try:
        ap = copairs_map.average_precision(
            meta, x, pos_same, pos_diff, neg_same, neg_diff,
            distance=settings.distance, progress_bar=False,
        )  # fmt: skip
    except UnpairedException as exc:
        raise SchemaError(f"{source}: {what}: {exc}") from None
    ap = ap[keep(ap)]
    if ap["average_precision"].isna().all() or not (ap["n_pos_pairs"] > 0).any():
        raise SchemaError(f"{source}: {what}: no profile has both a positive and a negative")
    return copairs_map.mean_average_precision(
        ap, keys, null_size=settings.null_size, threshold=settings.threshold,
        seed=settings.seed, progress_bar=False,
    )  # fmt: skip


def phenotypic_activity(
    meta: pl.DataFrame,
    x: np.ndarray,
    treatment: list[str],
    control: np.ndarray,
    settings: MapSettings,
    source: str,
    unit: str = "profile",
) -> dict[str, object]:
    """Return the mAP of each treatment's replicates against the controls (copairs' recipe).

    Parameters
    ----------
    meta : polars.DataFrame
        Metadata of the rows of ``x``, with the ``treatment`` columns.
    x : numpy.ndarray
        ``(rows, features)`` profiles (replicates: wells, images or cells).
    treatment : list of str
        Columns whose values together name a treatment.
    control : numpy.ndarray
        Boolean mask of the control rows (they are the negatives and are not scored).

    Raises
    ------
    SchemaError
        With no control row, no treatment with two replicates, or identical profiles.
    """
    control = np.asarray(control, dtype=bool)
    what = "phenotypic activity mAP"
    if not control.any():
        raise SchemaError(f"{source}: {what} needs control rows (none matched --control)")
    counts = meta.filter(pl.Series(~control)).group_by(treatment).len()["len"]
    if counts.len() == 0 or counts.max() < 2:  # type: ignore[operator]
        raise SchemaError(
            f"{source}: {what} needs a treatment with at least 2 replicate {unit}s besides "
            f"the controls; found {counts.len()} treatment(s), each with 1"
        )
    check_identical(x, source, unit)
    from copairs.matching import assign_reference_index

    frame = meta.select(treatment).to_pandas()
    frame[_CONTROL] = control.astype(int)
    frame = assign_reference_index(frame, frame.index[control], reference_col=_REF)
    pairs = ([*treatment, _REF], [], [], [_CONTROL, _REF])
    maps = _run(
        frame, np.ascontiguousarray(x, dtype=np.float64), pairs,
        lambda ap: ap[_CONTROL] == 0, [*treatment, _REF], settings, source, what,
    )  # fmt: skip
    return _summarise(maps, treatment, settings, unit, int((~control).sum()))


def phenotypic_consistency(
    meta: pl.DataFrame,
    x: np.ndarray,
    annotation: str,
    differ: list[str],
    settings: MapSettings,
    source: str,
    unit: str = "treatment",
) -> dict[str, object]:
    """Return the mAP of each annotation (e.g. MoA) over profiles of other ``differ`` values.

    Positives of a profile share its ``annotation`` and differ in every ``differ`` column;
    negatives have another annotation.

    Raises
    ------
    SchemaError
        With fewer than two annotations, no annotation held by two profiles that differ
        in ``differ``, or identical profiles.
    """
    what = "phenotypic consistency mAP"
    classes = meta[annotation].n_unique()
    if classes < 2:
        raise SchemaError(
            f"{source}: {what} needs at least 2 {annotation} values among the {meta.height} "
            f"{unit}s; found {classes}"
        )
    spread = meta.group_by(annotation).agg(pl.struct(differ).n_unique().alias("n"))
    if spread["n"].max() < 2:  # type: ignore[operator]
        raise SchemaError(
            f"{source}: {what} needs an {annotation} shared by {unit}s of at least 2 different "
            f"{'/'.join(differ)}; every {annotation} has one"
        )
    check_identical(x, source, unit)
    frame = meta.select([annotation, *differ]).to_pandas()
    pairs = ([annotation], list(differ), [], [annotation])
    maps = _run(
        frame, np.ascontiguousarray(x, dtype=np.float64), pairs,
        lambda ap: ap[annotation].notna(), [annotation], settings, source, what,
    )  # fmt: skip
    return _summarise(maps, [annotation], settings, unit, meta.height)


def format_map(entry: dict[str, Any]) -> str:
    """Return ``0.734 (9/12 q<0.05)``: mAP averaged over groups and the significant share.

    Examples
    --------
    >>> format_map({"map": 0.7341, "groups": 12, "significant": 9, "threshold": 0.05})
    '0.734 (9/12 q<0.05)'
    """
    value = entry.get("map")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    threshold = entry.get("threshold", 0.05)
    return f"{value:.3f} ({entry['significant']}/{entry['groups']} q<{threshold:g})"
