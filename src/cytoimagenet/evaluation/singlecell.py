"""Single-cell localisation benchmarks: COOS-7 (fit on train, per test set) and CYCLoPs (LOO).

Both follow the CytoImageNet paper: 11-NN, Euclidean distance on z-scored features (the
original used faiss ``IndexFlatL2``), accuracy with a Wald CI over the scored cells. Labels
come from ``Metadata_Label``; COOS-7's split from ``Metadata_Split`` (``train`` plus any
other value, each scored as its own test set — ``test1`` … ``test4``). The vote's ties go
to the class of the nearest member (the original gave them to the smallest label).

Grouped protocols (``group_by``, e.g. ``Metadata_Field`` or ``Metadata_Plate``): a training
cell that shares the query's value in every ``group_by`` column may not be a neighbour.
Cells of one field (well, plate) share its illumination, focus and plate effects, so a
neighbour from the query's own field is easy to match whatever the features encode; the
ungrouped accuracy then rewards recognising the field rather than the localisation.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.checks import (
    check_classes,
    check_group_k,
    check_k,
    check_profiles,
    group_candidates,
    merge_checks,
)
from cytoimagenet.evaluation.feature_table import FeatureTable, zscore
from cytoimagenet.evaluation.knn import exclude_same, knn_predict
from cytoimagenet.evaluation.result import score_entry

log = logging.getLogger(__name__)

LABEL, SPLIT = "Metadata_Label", "Metadata_Split"
TRAIN = "train"
BENCHMARKS = ("coos7", "cyclops")
_CYCLOPS_DROPPED = {"DEAD", "GHOST", "SPINDLEPOLE"}


@dataclass(frozen=True)
class SingleCellProtocol:
    """Resolved settings of a COOS-7 or CYCLoPs evaluation."""

    name: str
    metric: str
    k: int
    normalize: str
    group_by: tuple[str, ...] = ()

    def description(self) -> str:
        """Return the frozen, human-readable description of every step."""
        if self.name == "coos7":
            norm = {
                "none": "features used as given",
                "zscore": "features z-scored by the training cells' mean/std",
            }[self.normalize]
            how = (
                "fitted on the Metadata_Split == 'train' cells, predicting each other split "
                "(test1…test4) separately"
            )
            unit = "cells of each test set"
        else:
            norm = {
                "none": "features used as given",
                "zscore": "features z-scored over all cells",
            }[self.normalize]
            how = "leave-one-out over all cells (a cell is never its own neighbour)"
            unit = "all cells"
        if self.group_by:
            cols = " and ".join(self.group_by)
            how += (
                f"; grouped by {cols}: cells sharing the query's {cols} cannot vote "
                "(same-field/well/plate neighbours excluded)"
            )
        return (
            f"{self.name.upper() if self.name == 'coos7' else 'CYCLoPs'} localisation: labels "
            f"from Metadata_Label; {norm}; exact {self.metric} {self.k}-NN {how}; majority vote, "
            "ties to the class of the nearest member (equal distances: lower row index); "
            f"accuracy over the {unit} with a Wald 95% CI 1.96·sqrt(p(1−p)/n) (Wilson in extra)."
        )

    def block(self) -> dict[str, object]:
        """Return the RESULT.json ``protocol`` block."""
        out: dict[str, object] = asdict(self)
        if self.group_by:
            out["group_by"] = list(self.group_by)
        else:  # ungrouped blocks stay as they were before grouping existed
            del out["group_by"]
        out["description"] = self.description()
        out["unit"] = "cell"
        return out


def resolve_singlecell(
    name: str,
    *,
    metric: str | None = None,
    k: int | None = None,
    normalize: str | None = None,
    group_by: Sequence[str] | None = None,
) -> SingleCellProtocol:
    """Return the protocol's settings with any given override applied.

    Parameters
    ----------
    name : {"coos7", "cyclops"}
        The benchmark.
    metric, k, normalize : optional
        Overrides of the defaults (euclidean, 11, zscore).
    group_by : sequence of str, optional
        Metadata columns whose shared values forbid a neighbour (grouped protocol);
        ``Field`` means ``Metadata_Field``.
    """
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown single-cell benchmark {name!r}; choose one of {BENCHMARKS}")
    if normalize not in (None, "none", "zscore"):
        raise ConfigError(
            f"--normalize {normalize!r} is for BBBC021 plates; {name} takes none or zscore"
        )
    # Columns get the ``Metadata_`` prefix when they lack it, as on the command line.
    named = (c if c.startswith("Metadata_") else f"Metadata_{c}" for c in group_by or ())
    groups = tuple(dict.fromkeys(named))
    return SingleCellProtocol(name, metric or "euclidean", k or 11, normalize or "zscore", groups)


def _group_keys(table: FeatureTable, columns: Sequence[str]) -> list[str]:
    """Return one key per row joining its ``columns`` values (refusing missing/empty ones)."""
    table.require(columns, " (named by --group-by)")
    values = [table.meta[c].cast(pl.String).to_list() for c in columns]
    counts = {c: sum(not v.strip() for v in col) for c, col in zip(columns, values, strict=True)}
    blank = {c: n for c, n in counts.items() if n}
    if blank:
        raise SchemaError(f"{table.source}: blank values in {blank} (named by --group-by)")
    return ["\x1f".join(parts) for parts in zip(*values, strict=True)]


def _grouping(
    table: FeatureTable,
    proto: SingleCellProtocol,
    candidates: np.ndarray,
    query: tuple[list[str], list[str]],
    train: tuple[list[str], list[str]],
) -> tuple[dict[str, object], dict[str, object]]:
    """Check a grouping; return its record for ``extra`` and its check for ``checks``.

    ``query`` and ``train`` are ``(labels, group keys)`` of the queries and of the rows
    they may pick (the same rows for leave-one-out). A query whose class has no member
    outside its own group can never be right: counted and warned about, and refused when
    it is every query (the grouping is then confounded with the label).

    Raises
    ------
    SchemaError
        When a query is left fewer than k candidates, or no query keeps a same-class one.
    """
    check_group_k(proto.k, candidates, proto.group_by, table.source, "cell")
    per_label = Counter(train[0])
    per_pair = Counter(zip(*train, strict=True))
    hopeless = sum(  # classes absent from train are already listed as unseen
        0 < per_label[y] == per_pair[y, g] for y, g in zip(*query, strict=True)
    )
    cols = ",".join(proto.group_by)
    record: dict[str, object] = {
        "group_by": list(proto.group_by),
        "groups": len(set(train[1]) | set(query[1])),
        "fewest_candidates": int(candidates.min()),
    }
    check: dict[str, object] = {"queries_without_own_class": hopeless}
    if hopeless == len(query[0]):
        raise SchemaError(
            f"{table.source}: --group-by {cols} is confounded with {LABEL}: no cell has a "
            f"candidate neighbour of its own class outside its {cols}, so every prediction "
            "is wrong by construction; group by a column that cuts across the classes"
        )
    if hopeless:
        text = (
            f"{hopeless} of {len(query[0])} cells have no candidate of their own class outside "
            f"their {cols} (always mispredicted under --group-by)"
        )
        log.warning("%s: %s", table.source, text)
        check["warning"] = text
    return record, check


def _labels(table: FeatureTable) -> list[str]:
    table.require([LABEL], " (the class of each cell)")
    labels = table.meta[LABEL].to_list()
    if len(set(labels)) < 2:
        raise SchemaError(f"{table.source}: {LABEL} has fewer than two classes")
    return labels


def _split_order(name: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else 10**9, name)


def evaluate_coos7(table: FeatureTable, proto: SingleCellProtocol) -> dict[str, dict[str, object]]:
    """Fit on the ``train`` cells and score every other split; keys are the split names.

    Raises
    ------
    SchemaError
        Without ``Metadata_Label``/``Metadata_Split``, train cells, or test cells.
    """
    labels = np.asarray(_labels(table), dtype=object)
    table.require([SPLIT], " (train / test1 … test4)")
    split = np.asarray(table.meta[SPLIT].to_list(), dtype=object)
    train = split == TRAIN
    tests = sorted({s for s in split.tolist() if s != TRAIN}, key=_split_order)
    if not train.any() or not tests:
        raise SchemaError(
            f"{table.source}: COOS-7 needs {SPLIT} == '{TRAIN}' rows and at least one test "
            f"split; found {sorted(set(split.tolist()))}"
        )
    check_classes(labels[train].tolist(), table.source, "cell", "of the 'train' split")
    keys = np.asarray(_group_keys(table, proto.group_by), dtype=object) if proto.group_by else None
    x = table.features
    if proto.normalize == "zscore":
        x = zscore(x, x[train])
    profile_checks = check_profiles(x[train], proto.metric, table.source, "training cell")
    scores: dict[str, dict[str, object]] = {}
    for name in tests:
        rows = split == name
        candidates = np.full(int(rows.sum()), int(train.sum()))
        exclude = None
        grouping: dict[str, object] = {}
        group_check: dict[str, object] = {}
        if keys is not None:
            held = Counter(keys[train].tolist())
            candidates = candidates - np.array([held[g] for g in keys[rows].tolist()])
            record, group_check = _grouping(
                table,
                proto,
                candidates,
                (labels[rows].tolist(), keys[rows].tolist()),
                (labels[train].tolist(), keys[train].tolist()),
            )
            grouping = {"grouping": record}
            exclude = exclude_same(keys[rows].tolist(), keys[train].tolist())
        checks = merge_checks(
            profile_checks, check_k(proto.k, candidates, table.source, "test cell"), group_check
        )
        pred = knn_predict(
            x[train],
            labels[train].tolist(),
            x[rows],
            k=proto.k,
            metric=proto.metric,
            exclude=exclude,
        )
        unseen = sorted(set(labels[rows].tolist()) - set(labels[train].tolist()))
        extra = {"train_cells": int(train.sum()), "unseen_classes": unseen, "checks": checks}
        extra.update(grouping)
        true = labels[rows].tolist()
        scores[name] = score_entry(true, [str(p) for p in pred.labels], extra=extra)
    return scores


def evaluate_cyclops(
    table: FeatureTable, proto: SingleCellProtocol
) -> dict[str, dict[str, object]]:
    """Leave-one-out k-NN over every cell; the one score is ``loo``.

    Raises
    ------
    SchemaError
        Without ``Metadata_Label``, or with fewer than two classes or ``k + 1`` cells.
    """
    labels = _labels(table)
    odd = sorted(set(labels) & _CYCLOPS_DROPPED)
    if odd:
        log.warning(
            "%s: labels %s are present; the CytoImageNet protocol removes DEAD and GHOST and "
            "merges SPINDLEPOLE into SPINDLE (the CYCLoPs loader does this)",
            table.source,
            odd,
        )
    if len(labels) <= proto.k + 1:
        raise SchemaError(
            f"{table.source}: {len(labels)} cells; leave-one-out {proto.k}-NN needs more than "
            f"{proto.k + 1} (each cell has the other {len(labels) - 1} as candidate neighbours, "
            "and k must be below that): lower --k"
        )
    candidates = np.full(len(labels), len(labels) - 1)
    exclude: object = "self"
    extra: dict[str, object] = {}
    group_check: dict[str, object] = {}
    if proto.group_by:
        keys = _group_keys(table, proto.group_by)
        candidates = group_candidates(keys)  # the query's own group, itself included, is out
        extra["grouping"], group_check = _grouping(
            table, proto, candidates, (labels, keys), (labels, keys)
        )
        exclude = ["self", exclude_same(keys)]
    x = zscore(table.features) if proto.normalize == "zscore" else table.features
    checks = merge_checks(
        check_profiles(x, proto.metric, table.source, "cell"),
        check_k(proto.k, candidates, table.source, "cell"),
        group_check,
    )
    pred = knn_predict(x, labels, k=proto.k, metric=proto.metric, exclude=exclude)
    extra = {"checks": checks, **extra}
    return {"loo": score_entry(labels, [str(p) for p in pred.labels], extra=extra)}
