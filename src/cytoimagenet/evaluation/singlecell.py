"""Single-cell localisation benchmarks: COOS-7 (fit on train, per test set) and CYCLoPs (LOO).

Both follow the CytoImageNet paper: 11-NN, Euclidean distance on z-scored features (the
original used faiss ``IndexFlatL2``), accuracy with a Wald CI over the scored cells. Labels
come from ``Metadata_Label``; COOS-7's split from ``Metadata_Split`` (``train`` plus any
other value, each scored as its own test set — ``test1`` … ``test4``). The vote's ties go
to the class of the nearest member (the original gave them to the smallest label).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass

import numpy as np

from cytoimagenet.errors import ConfigError, SchemaError
from cytoimagenet.evaluation.checks import check_classes, check_k, check_profiles, merge_checks
from cytoimagenet.evaluation.feature_table import FeatureTable, zscore
from cytoimagenet.evaluation.knn import knn_predict
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
        return (
            f"{self.name.upper() if self.name == 'coos7' else 'CYCLoPs'} localisation: labels "
            f"from Metadata_Label; {norm}; exact {self.metric} {self.k}-NN {how}; majority vote, "
            "ties to the class of the nearest member (equal distances: lower row index); "
            f"accuracy over the {unit} with a Wald 95% CI 1.96·sqrt(p(1−p)/n) (Wilson in extra)."
        )

    def block(self) -> dict[str, object]:
        """Return the RESULT.json ``protocol`` block."""
        out: dict[str, object] = asdict(self)
        out["description"] = self.description()
        out["unit"] = "cell"
        return out


def resolve_singlecell(
    name: str, *, metric: str | None = None, k: int | None = None, normalize: str | None = None
) -> SingleCellProtocol:
    """Return the protocol's settings with any given override applied."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown single-cell benchmark {name!r}; choose one of {BENCHMARKS}")
    if normalize not in (None, "none", "zscore"):
        raise ConfigError(
            f"--normalize {normalize!r} is for BBBC021 plates; {name} takes none or zscore"
        )
    return SingleCellProtocol(name, metric or "euclidean", k or 11, normalize or "zscore")


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
    x = table.features
    if proto.normalize == "zscore":
        x = zscore(x, x[train])
    profile_checks = check_profiles(x[train], proto.metric, table.source, "training cell")
    scores: dict[str, dict[str, object]] = {}
    for name in tests:
        rows = split == name
        candidates = np.full(int(rows.sum()), int(train.sum()))
        checks = merge_checks(
            profile_checks, check_k(proto.k, candidates, table.source, "test cell")
        )
        pred = knn_predict(
            x[train], labels[train].tolist(), x[rows], k=proto.k, metric=proto.metric
        )
        unseen = sorted(set(labels[rows].tolist()) - set(labels[train].tolist()))
        extra = {"train_cells": int(train.sum()), "unseen_classes": unseen, "checks": checks}
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
    x = zscore(table.features) if proto.normalize == "zscore" else table.features
    checks = merge_checks(
        check_profiles(x, proto.metric, table.source, "cell"),
        check_k(proto.k, np.full(len(labels), len(labels) - 1), table.source, "cell"),
    )
    pred = knn_predict(x, labels, k=proto.k, metric=proto.metric, exclude="self")
    return {"loo": score_entry(labels, [str(p) for p in pred.labels], extra={"checks": checks})}
